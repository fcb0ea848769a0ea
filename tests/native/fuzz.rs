//! A seeded mutation fuzzer over every parser of the engine, on stable Rust (issue #24).
//!
//! Each target starts from valid inputs (its seeds, made here) and feeds it mutants: bit flips,
//! bytes set to extremes, truncations, deleted and duplicated ranges, splices of another seed,
//! 4- and 8-byte size fields set to extremes, and numbers in text replaced by extreme ones.
//! Every input runs under `catch_unwind` and a watchdog: a panic or an input that runs past
//! [`HANG`] fails the test, with the input written to `target/fuzz-crashes/` (an abort from an
//! allocation kills the binary, which fails too). A crash found becomes a file in
//! `tests/fuzz-regressions/<target>/`, replayed first on every run.
//!
//! `PTDIT_FUZZ_SECS` sets the time per target (default 2, what CI runs); the long run is
//! `PTDIT_FUZZ_SECS=600 cargo test --release --test native fuzz`. `PTDIT_FUZZ_SEED` changes
//! the seed (default: fixed, so CI runs the same inputs every time); `PTDIT_FUZZ_ONLY=NAME`
//! runs one target.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ptdit::formats::{pickle, safetensors, torch};
use ptdit::model::t5::T5Config;
use ptdit::model::vae::VaeConfig;
use ptdit::model::PtditConfig;
use ptdit::pipeline::embeddings::PromptEmbeddings;
use ptdit::pipeline::text::Tokenizer;
use ptdit::pipeline::{default_model, model_dir, SchedulerConfig};
use ptdit::{DType, HostTensor};

/// The longest one input may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(20);

/// The project's seeded generator, with a bounded draw.
struct Rand(ptdit::rng::Rng);

impl Rand {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const EXTREME_WORDS: [u64; 8] = [
    0,
    1,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 31,
    1 << 62,
    u64::MAX,
    u64::MAX - 7,
];
const EXTREME_NUMBERS: [&str; 9] = [
    "0",
    "-1",
    "1e30",
    "4611686018427387904",
    "18446744073709551615",
    "99999999999999999999999",
    "1000000",
    "NaN",
    "0.5",
];

/// One mutation of `input`; `other` is another seed to splice from.
fn mutate(r: &mut Rand, input: &mut Vec<u8>, other: &[u8]) {
    let n = input.len();
    match r.below(9) {
        0 if n > 0 => {
            let i = r.below(n);
            input[i] ^= 1 << r.below(8);
        }
        1 if n > 0 => {
            let i = r.below(n);
            input[i] = [0, 1, 0x7f, 0x80, 0xff, r.next() as u8][r.below(6)];
        }
        2 => input.truncate(r.below(n + 1)),
        3 if n > 0 => {
            let a = r.below(n);
            let b = (a + 1 + r.below(64)).min(n);
            input.drain(a..b);
        }
        4 if n > 0 => {
            let a = r.below(n);
            let b = (a + 1 + r.below(256)).min(n);
            let copy = input[a..b].to_vec();
            let at = r.below(n + 1);
            input.splice(at..at, copy);
        }
        5 if !other.is_empty() => {
            let a = r.below(other.len());
            let b = (a + 1 + r.below(512)).min(other.len());
            let at = r.below(n + 1);
            input.splice(at..at, other[a..b].iter().copied());
        }
        6 if n >= 8 => {
            let i = r.below(n - 7);
            let v = EXTREME_WORDS[r.below(EXTREME_WORDS.len())];
            match r.below(2) {
                0 => input[i..i + 4].copy_from_slice(&(v as u32).to_le_bytes()),
                _ => input[i..i + 8].copy_from_slice(&v.to_le_bytes()),
            }
        }
        7 => {
            // A number in text: the digits around a random position, or anywhere.
            let digits: Vec<usize> = (0..n).filter(|&i| input[i].is_ascii_digit()).collect();
            if let Some(&i) = digits.get(r.below(digits.len())) {
                let (mut a, mut b) = (i, i);
                while a > 0 && input[a - 1].is_ascii_digit() {
                    a -= 1;
                }
                while b < n && input[b].is_ascii_digit() {
                    b += 1;
                }
                let with = EXTREME_NUMBERS[r.below(EXTREME_NUMBERS.len())];
                input.splice(a..b, with.bytes());
            }
        }
        _ => {
            let at = r.below(n + 1);
            let chars = b"{}[]\",:\\\0\n\xff";
            let c = chars[r.below(chars.len())];
            input.insert(at, c);
        }
    }
}

/// Where a crashing input is written.
fn crash_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes")
}

fn save_crash(target: &str, what: &str, input: &[u8]) -> PathBuf {
    let dir = crash_dir();
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{target}-{what}-{hash:016x}.bin"));
    let _ = std::fs::write(&path, input);
    path
}

fn seconds() -> f64 {
    std::env::var("PTDIT_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0)
}

/// Runs `run` on the regression cases of `target`, then on mutants of `seeds` for the time
/// set; fails on the first panic or hang, naming the saved input. Prints the count of inputs.
fn fuzz(target: &'static str, seeds: Vec<Vec<u8>>, run: impl Fn(&[u8])) {
    assert!(!seeds.is_empty(), "{target}: no seeds");
    if std::env::var("PTDIT_FUZZ_ONLY").is_ok_and(|only| only != target) {
        return;
    }
    let regressions = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut cases: Vec<Vec<u8>> = std::fs::read_dir(&regressions)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    cases.extend(seeds.iter().cloned());
    let regression_count = cases.len();

    // The watchdog: the current input and when it started.
    let current = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let clock = Instant::now();
    let watchdog = {
        let (current, started, done) = (current.clone(), started.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let s = started.load(Ordering::Relaxed);
                let now = clock.elapsed().as_millis() as u64;
                if s != u64::MAX && now.saturating_sub(s) > HANG.as_millis() as u64 {
                    let input = current.lock().map(|c| c.clone()).unwrap_or_default();
                    let path = save_crash(target, "hang", &input);
                    eprintln!(
                        "fuzz {target}: an input ran past {HANG:?}: {}",
                        path.display()
                    );
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let seed = std::env::var("PTDIT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let salt = (target.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut r = Rand(ptdit::rng::Rng::new(seed ^ salt));
    let budget = Duration::from_secs_f64(seconds());
    let mut count = 0usize;
    let mut failure = None;
    while failure.is_none() && (count < regression_count || clock.elapsed() < budget) {
        let input = match cases.get(count) {
            Some(c) => c.clone(),
            None => {
                let mut m = seeds[r.below(seeds.len())].clone();
                let other = &seeds[r.below(seeds.len())];
                for _ in 0..1 + r.below(4) {
                    mutate(&mut r, &mut m, other);
                }
                m
            }
        };
        if let Ok(mut c) = current.lock() {
            c.clone_from(&input);
        }
        started.store(clock.elapsed().as_millis() as u64, Ordering::Relaxed);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| run(&input))) {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let path = save_crash(target, "panic", &input);
            failure = Some(format!(
                "fuzz {target}: a panic ({msg}) on {}",
                path.display()
            ));
        }
        started.store(u64::MAX, Ordering::Relaxed);
        count += 1;
    }
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    if let Some(f) = failure {
        panic!("{f}");
    }
    println!(
        "fuzz {target}: {count} inputs in {:.1} s, 0 panics, 0 hangs",
        clock.elapsed().as_secs_f64()
    );
}

fn tiny_files() -> model_dir::Files {
    crate::common::tiny::tiny_model_files()
}

#[test]
fn fuzz_safetensors_whole_and_streamed() {
    let files = tiny_files();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .filter(|(k, _)| k.ends_with(".safetensors"))
        .map(|(_, v)| v.clone())
        .collect();
    fuzz("safetensors", seeds, |b| {
        if let Ok(f) = safetensors::TensorFile::parse(b) {
            for k in f.tensors.keys() {
                let _ = f.get(k);
            }
            let _ = f.config_text();
        }
        // Streamed in pieces of 3 and 4096 bytes.
        for piece in [3, 4096] {
            let mut s = safetensors::Stream::new();
            let ok = b
                .chunks(piece)
                .try_for_each(|c| s.push(c, |_| Ok(())))
                .and_then(|_| s.end());
            let _ = ok;
        }
    });
}

#[test]
fn fuzz_checkpoints() {
    let seeds = vec![
        crate::convert::checkpoint(),
        crate::convert::wrapped(&["ema", "model"], &["a", "module.b"], Some(b"big")),
    ];
    fuzz("checkpoint", seeds, |b| {
        let _ = torch::read_checkpoint(b);
    });
}

#[test]
fn fuzz_pickles() {
    // The pickles inside the checkpoints: a zip's checksums stop most mutants of a whole
    // checkpoint before its pickle is read.
    let seeds: Vec<Vec<u8>> = [
        crate::convert::checkpoint(),
        crate::convert::wrapped(&["ema"], &["a", "b"], None),
    ]
    .iter()
    .map(|z| {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(z.clone())).unwrap();
        let mut f = zip.by_name("archive/data.pkl").unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut v).unwrap();
        v
    })
    .collect();
    fuzz("pickle", seeds, |b| {
        let _ = pickle::parse(b);
    });
}

#[test]
fn fuzz_configs() {
    let files = tiny_files();
    let mut seeds: Vec<Vec<u8>> = ["transformer", "text_encoder", "vae"]
        .iter()
        .map(|c| files[&format!("{c}/config.json")].clone())
        .collect();
    seeds.push(serde_json::to_vec(&PtditConfig::released_xl()).unwrap());
    seeds.push(serde_json::to_vec(&T5Config::released_xxl()).unwrap());
    seeds.push(br#"{"num_inference_steps": 30, "guidance_scale": 4.0, "sample_size": [32, 32], "base_resolution": 1024, "transform_scale": 1.0}"#.to_vec());
    let mut q8 = PtditConfig::released_xl();
    q8.quantization = Some(ptdit::formats::quantized::Quantization::new(DType::Q8));
    seeds.push(serde_json::to_vec(&q8).unwrap());
    fuzz("config", seeds, |b| {
        let Ok(text) = std::str::from_utf8(b) else {
            return;
        };
        if let Ok(c) = PtditConfig::from_json(text) {
            if let Ok(w) = ptdit::model::ptdit::wanted(&c, DType::F32) {
                assert!(!w.device.is_empty());
            }
            let _ = c.grid(1, 64, 64);
        }
        if let Ok(c) = T5Config::from_json(text) {
            let _ = ptdit::model::t5::wanted(&c, DType::F32);
        }
        if let Ok(c) = VaeConfig::from_json(text) {
            let _ = ptdit::model::vae::wanted(&c, DType::F32);
        }
        if let Ok(s) = SchedulerConfig::from_json(text) {
            let _ = s.sampler().schedule(64, 64, 1);
        }
    });
}

#[test]
fn fuzz_model_directory_small_files() {
    // A model directory where one small file (the first byte picks which) is the input.
    let names = [
        "transformer/config.json",
        "text_encoder/config.json",
        "vae/config.json",
        "tokenizer/tokenizer_config.json",
        "scheduler/scheduler_config.json",
    ];
    let mut base = tiny_files();
    base.insert(names[3].into(), br#"{"model_max_length": 8}"#.to_vec());
    base.insert(names[4].into(), br#"{"num_inference_steps": 2}"#.to_vec());
    let seeds: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| [&[i as u8][..], &base[*n]].concat())
        .collect();
    fuzz("model-dir", seeds, |b| {
        let Some((&which, rest)) = b.split_first() else {
            return;
        };
        let mut files = base.clone();
        files.insert(names[which as usize % names.len()].into(), rest.to_vec());
        if let Ok(c) = model_dir::from_files(&files) {
            let _ = model_dir::wanted(&c, DType::F32);
        }
    });
}

#[test]
fn fuzz_tokenizers_and_prompts() {
    let files = default_model::files();
    let json = files["tokenizer/tokenizer.json"].clone();
    let toy = crate::common::tiny::tokenizer_json().into_bytes();
    let norm = format!(
        r#""normalizer": {{"type": "Precompiled", "precompiled_charsmap": "{}"}}"#,
        base64::encode(crate::common::tiny::one_rule_charsmap())
    );
    let with_map = String::from_utf8(toy.clone())
        .unwrap()
        .replace(r#""normalizer": null"#, &norm)
        .into_bytes();
    fuzz("tokenizer-json", vec![toy, with_map, json.clone()], |b| {
        if let Ok(t) = Tokenizer::from_bytes(b) {
            let _ = t.encode("a red apple, 2 cats on https://x.com", 16);
        }
    });
    let spm = crate::common::tiny::spiece_model();
    let with_map =
        crate::common::tiny::spiece_model_with_charsmap(&crate::common::tiny::one_rule_charsmap());
    fuzz("spiece", vec![spm, with_map], |b| {
        if let Ok(t) = Tokenizer::from_spiece(b) {
            let _ = t.encode("a red apple", 8);
        }
    });
    let emoji = Tokenizer::from_bytes(&json).unwrap();
    let prompts: Vec<Vec<u8>> = [
        "red apple",
        "a cat on a mat at www.example.com/x.png, 4k",
        "&quot;hello&quot; <b>world</b> #123 @someone 1920x1080",
        "thumbs up sign: dark skin tone, twemoji",
    ]
    .iter()
    .map(|p| p.as_bytes().to_vec())
    .collect();
    fuzz("prompt", prompts, |b| {
        let _ = emoji.encode(&String::from_utf8_lossy(b), 32);
    });
    // `generate --cache`, the JS API's `cache` option.
    let specs: Vec<Vec<u8>> = [
        "medium",
        "first-block:0.18,warmup=2,final=1,max=3,first=1,last=0,order=1",
        "accumulated:1e30",
    ]
    .iter()
    .map(|p| p.as_bytes().to_vec())
    .collect();
    fuzz("cache-spec", specs, |b| {
        if let Ok(Some(c)) = ptdit::pipeline::StepCache::parse(&String::from_utf8_lossy(b)) {
            let _ = c.check(6);
            let _ = c.control(usize::MAX - 1, usize::MAX);
        }
    });
}

#[test]
fn fuzz_embeddings_and_autotune_cache() {
    let e = PromptEmbeddings {
        cond: HostTensor::f32([1, 4, 8], vec![0.5; 32]),
        cond_mask: vec![1.0, 1.0, 0.0, 0.0],
        uncond: HostTensor::f32([1, 4, 8], vec![-0.5; 32]),
        uncond_mask: vec![1.0, 0.0, 0.0, 0.0],
    };
    fuzz("embeddings", vec![e.to_bytes("a", "b").unwrap()], |b| {
        if let Ok(e) = PromptEmbeddings::from_bytes(b) {
            let _ = e.check(4, 8);
        }
    });
    let cache = br#"{"llvmpipe|vulkan|abc": "rows+split+rows", "x": "wide+fused+tiled+f16"}"#;
    fuzz("autotune-cache", vec![cache.to_vec()], |b| {
        let table: Result<std::collections::HashMap<String, String>, _> = serde_json::from_slice(b);
        for v in table.iter().flat_map(|t| t.values()) {
            let _ = ptdit::autotune::parse_tuning(v);
        }
    });
}

/// The settings a PNG carries (`ptdit info FILE.png`, `generate --from`): its text chunks, read
/// from the header with compressed text inflated up to a bound, then parsed as settings.
#[test]
fn fuzz_png_settings() {
    use ptdit::pipeline::generate::Frame;
    use ptdit::pipeline::png;
    use ptdit::pipeline::settings::{ImageSettings, BUILT_IN_MODEL};
    let frame = Frame {
        width: 2,
        height: 2,
        rgb: vec![200; 12],
    };
    let settings = ImageSettings {
        prompt: "red apple".into(),
        negative_prompt: String::new(),
        seed: 7,
        steps: 30,
        guidance: 4.0,
        width: 32,
        height: 32,
        frames: 1,
        model: BUILT_IN_MODEL.into(),
        float: "f32".into(),
        cache: "off".into(),
        upscale: 4,
    };
    let with_settings =
        png::encode_with_text(std::slice::from_ref(&frame), &settings.to_text()).unwrap();
    // A compressed (zTXt) chunk too, so the inflation bound is exercised.
    let mut compressed = Vec::new();
    {
        let mut enc = ::png::Encoder::new(&mut compressed, 2, 2);
        enc.set_color(::png::ColorType::Rgb);
        enc.add_ztxt_chunk("prompt".into(), "a".repeat(4096))
            .unwrap();
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&frame.rgb).unwrap();
        w.finish().unwrap();
    }
    // Each mutant is read as it is, and again with its chunks' CRCs made right: a mutant with a
    // bad CRC stops at the first check, and the parsers behind it would go unfuzzed.
    fuzz("png-settings", vec![with_settings, compressed], |b| {
        for input in [b.to_vec(), with_crcs_repaired(b)] {
            if let Ok(text) = png::read_text(&input) {
                let _ = ImageSettings::from_text(&text);
            }
        }
    });
}

/// `png` with each whole chunk's CRC recomputed (length, type, data, CRC after the signature).
fn with_crcs_repaired(png: &[u8]) -> Vec<u8> {
    let mut out = png.to_vec();
    let mut at = 8;
    while at + 12 <= out.len() {
        let len = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|e| e + 4 <= out.len()) else {
            break;
        };
        let crc = crc32fast::hash(&out[at + 4..end]);
        out[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
    out
}

#[test]
fn fuzz_quantized_weights_upload() {
    // The tiny transformer stored q8 (its Linears' K are multiples of 32 where packed), loaded
    // through the streamed upload onto the device, as `generate --model` does.
    let files = tiny_files();
    let cfg_text = std::str::from_utf8(&files["transformer/config.json"]).unwrap();
    let mut cfg = PtditConfig::from_json(cfg_text).unwrap();
    cfg.quantization = Some(ptdit::formats::quantized::Quantization::new(DType::Q8));
    let src = std::env::temp_dir().join(format!("ptdit-fuzz-q-{}", std::process::id()));
    let out = src.with_extension("out");
    let _ = (std::fs::remove_dir_all(&src), std::fs::remove_dir_all(&out));
    crate::common::write_model_dir(&src, &files);
    let plan = ptdit::pipeline::quantize::Plan {
        transformer: Some(DType::Q8),
        text_encoder: None,
        rest_bf16: false,
    };
    ptdit::pipeline::quantize::quantize_dir(&src, &out, plan).unwrap();
    let packed = std::fs::read(out.join("transformer/model.safetensors")).unwrap();
    let float = files["transformer/model.safetensors"].clone();
    let ctx = crate::common::gpu();
    fuzz("quantized", vec![packed, float], |b| {
        let wanted = ptdit::model::ptdit::wanted(&cfg, DType::F32).unwrap();
        let mut up = ptdit::model::upload::Upload::new(&ctx, wanted);
        let ok = b
            .chunks(4096)
            .try_for_each(|c| up.push("model.safetensors", c))
            .and_then(|_| up.end("model.safetensors"));
        if ok.is_ok() {
            let _ = up.finish();
        }
    });
}
