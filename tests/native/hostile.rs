//! Issue #24's reproductions, each as a test: input a hostile user could give gets a clean
//! error (exit status 1, a message naming the problem) or a result, never a panic, an abort
//! or a run without end.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How the CLI ended: its exit code (`None` when killed by a signal, as an abort is) and
/// standard error.
struct Outcome {
    code: Option<i32>,
    stderr: String,
}

/// Runs the CLI, killing it after `limit` (a hang: the outcome has no exit code).
fn run(args: &[&str], limit: Duration) -> Outcome {
    run_command(Command::new(env!("CARGO_BIN_EXE_ptdit")).args(args), limit)
}

/// Runs `cmd` (the CLI, or a shell around it), as [`run`] does.
fn run_command(cmd: &mut Command, limit: Duration) -> Outcome {
    let mut child = cmd
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the ptdit binary starts");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for ptdit") {
            let mut stderr = String::new();
            use std::io::Read;
            let _ = child
                .stderr
                .take()
                .map(|mut e| e.read_to_string(&mut stderr));
            return Outcome {
                code: status.code(),
                stderr,
            };
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Outcome {
                code: None,
                stderr: format!("killed: it ran past {limit:?}"),
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the CLI refused `args` with exit status 1 and a message containing `says`; if not,
/// what it did.
fn check_refused(args: &[&str], says: &str) -> Result<(), String> {
    let o = run(args, Duration::from_secs(30));
    refusal(&o, &format!("`ptdit {}`", args.join(" ")), says)
}

/// Whether `o` is a refusal: exit status 1 and a message containing `says`; if not, what `what`
/// did.
fn refusal(o: &Outcome, what: &str, says: &str) -> Result<(), String> {
    match o.code == Some(1) && !o.stderr.contains("panicked") && o.stderr.contains(says) {
        true => Ok(()),
        false => Err(format!(
            "expected `{says}` in {what}, which gave {:?} (None: killed by a signal):\n{}",
            o.code, o.stderr
        )),
    }
}

/// The CLI must refuse `args` with exit status 1 and a message containing `says`.
fn refused(args: &[&str], says: &str) {
    if let Err(e) = check_refused(args, says) {
        panic!("{e}");
    }
}

/// The CLI must succeed on `args`.
fn accepted(args: &[&str]) {
    let o = run(args, Duration::from_secs(300));
    assert_eq!(o.code, Some(0), "`ptdit {}`:\n{}", args.join(" "), o.stderr);
}

fn out_png(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("ptdit-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).display().to_string()
}

#[test]
fn prompts_that_made_the_cleaning_backtrack_give_an_image() {
    let dots = "a.".repeat(334);
    let words = "dotted.words.like.this ".repeat(55);
    let out = out_png("dots.png");
    let quick = ["--steps", "1", "--upscale", "1", "--out", &out];
    accepted(&[&["generate", "--prompt", &dots][..], &quick].concat());
    accepted(
        &[
            &["generate", "--prompt", &words, "--negative-prompt", &dots][..],
            &quick,
        ]
        .concat(),
    );
    let long = "a".repeat(20_000);
    refused(
        &["generate", "--prompt", &long, "--out", &out],
        "at most 16384",
    );
    // A prompt file may hold anything: NUL is text, invalid UTF-8 and a huge file are refused.
    let file = |name: &str, bytes: &[u8]| {
        let path = out_png(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let nul = file("nul.txt", b"red\0apple\n");
    accepted(&[&["generate", "--prompt-file", &nul][..], &quick].concat());
    let latin1 = file("latin1.txt", b"caf\xe9 au lait");
    refused(
        &["generate", "--prompt-file", &latin1, "--out", &out],
        "not UTF-8 text (at byte 3)",
    );
    let huge = file("huge.txt", &vec![b'a'; 1 << 20]);
    refused(
        &["generate", "--prompt-file", &huge, "--out", &out],
        "longer than 65536 bytes",
    );
}

#[test]
fn absurd_sizes_steps_and_frames_are_refused_before_anything_is_allocated() {
    let out = out_png("absurd.png");
    for (arg, value, says) in [
        ("--size", "100000x100000", "largest buffer"),
        ("--size", "4294967296x8", "largest buffer"),
        ("--size", "18446744073709551608x8", "too large"),
        ("--upscale", "1000000", "between 1 and 16384"),
        ("--upscale", "4611686018427387904", "between 1 and 16384"),
        ("--upscale", "0", "between 1 and 16384"),
        ("--steps", "1000000000", "at most 1000"),
        ("--steps", "18446744073709551615", "at most 1000"),
        ("--steps", "100000", "at most 1000"),
        ("--frames", "1000000000", "at most 129"),
        ("--frames", "1000", "at most 129"),
    ] {
        refused(
            &["generate", "--prompt", "apple", arg, value, "--out", &out],
            says,
        );
    }
    // The upscaled size is checked against the model's output before the generation.
    refused(
        &[
            "generate",
            "--prompt",
            "apple",
            "--upscale",
            "1000",
            "--out",
            &out,
        ],
        "would exceed 16384 px",
    );
}

/// A request that fits the device's buffer limits but not its memory: an error that gives the
/// sizes, before anything is allocated. On a CPU adapter (lavapipe) device memory is host
/// memory, and Mesa 25.0 writes through a failed `mmap`: this command was a segfault in wgpu's
/// `write_buffer` (at 2048² under `ulimit -v 2000000`) before the engine checked the host
/// memory left. On any adapter, `PTDIT_MEMORY_BUDGET` caps the engine the same way.
#[test]
fn a_request_bigger_than_the_memory_left_is_refused_not_crashed() {
    let out = out_png("oom.png");
    // The built-in model refuses sizes it was not trained for before counting memory.
    let model = std::env::temp_dir().join(format!("ptdit-oom-model-{}", std::process::id()));
    crate::common::write_model_dir(&model, &crate::common::undeclared_default_model());
    let model = model.to_str().unwrap();
    let big = [
        "generate",
        "--model",
        model,
        "--prompt",
        "apple",
        "--steps",
        "1",
        "--upscale",
        "1",
        "--out",
        &out,
    ];
    let says = "not enough device memory for the denoising step";
    let budget = run_command(
        Command::new(env!("CARGO_BIN_EXE_ptdit"))
            .args([&big[..], &["--size", "256x256"]].concat())
            .env("PTDIT_MEMORY_BUDGET", "20M"),
        Duration::from_secs(60),
    );
    if let Err(e) = refusal(&budget, "256² under a 20 MiB budget", says) {
        panic!("{e}");
    }
    if crate::common::gpu().report.device_type != "Cpu" {
        return; // `ulimit -v` bounds the host, not a GPU's own memory.
    }
    let limited = run_command(
        Command::new("sh")
            .args(["-c", "ulimit -v 2000000 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_ptdit"))
            .args([&big[..], &["--size", "2048x2048"]].concat()),
        Duration::from_secs(120),
    );
    if let Err(e) = refusal(&limited, "2048² under `ulimit -v 2000000`", says) {
        panic!("{e}");
    }
}

#[test]
fn mistakes_in_arguments_are_caught_before_the_generation() {
    refused(
        &[
            "generate",
            "--prompt",
            "apple",
            "--out",
            "/nonexistent-dir/x.png",
        ],
        "does not exist",
    );
    // A negative guidance is a value, not a flag.
    let out = out_png("negative-cfg.png");
    accepted(&[
        "generate", "--prompt", "apple", "--cfg", "-7", "--steps", "1", "--out", &out,
    ]);
}

#[test]
fn a_model_without_scheduler_defaults_to_what_it_can_do() {
    use ptdit::pipeline::{default_model, generate::TextToImage, model_dir};
    // The built-in pixel-space model without `scheduler/` used to default to the released
    // 1024²: minutes a step on a software GPU. 4 windows a side is its 32 px.
    let mut files = default_model::files();
    files.retain(|path, _| !path.starts_with("scheduler/"));
    let c = model_dir::from_files(&files).unwrap();
    let pipe = TextToImage::new(&crate::common::gpu(), c).unwrap();
    let req = pipe.request("apple");
    assert_eq!((req.width, req.height, req.steps), (32, 32, 30));
}

#[test]
fn a_request_the_model_was_not_trained_for_is_refused_naming_what_it_was() {
    use ptdit::pipeline::generate::{Request, TextToImage};
    use ptdit::pipeline::{default_model, model_dir};
    let pipe = |files| {
        TextToImage::new(
            &crate::common::gpu(),
            model_dir::from_files(&files).unwrap(),
        )
        .unwrap()
    };
    let refusal = |p: &TextToImage, width, height, frames| {
        let req = Request {
            width,
            height,
            frames,
            ..p.request("apple")
        };
        p.check_request(&req).map(|_| ()).map_err(|e| e.to_string())
    };
    // The shipped image model: 32², one frame.
    let image = pipe(default_model::files());
    assert_eq!(image.request("apple").frames, 1);
    assert_eq!(refusal(&image, 32, 32, 1), Ok(()));
    let e = refusal(&image, 32, 32, 5).unwrap_err();
    assert!(
        e.contains("5 frame(s) need a video model") && e.contains("text-to-image at 32×32 px"),
        "{e}"
    );
    let e = refusal(&image, 64, 64, 1).unwrap_err();
    assert!(
        e.starts_with(
            "invalid input: 64×64 px: this model was trained for text-to-image at 32×32 px only"
        ),
        "{e}"
    );
    // A video model gets its trained frame count by default, and only that.
    let mut files = default_model::files();
    files.insert(
        "scheduler/scheduler_config.json".into(),
        br#"{"sample_size": [32, 32], "task": "text-to-video", "num_frames": 4}"#.to_vec(),
    );
    let video = pipe(files);
    assert_eq!(video.request("apple").frames, 4);
    assert_eq!(refusal(&video, 32, 32, 4), Ok(()));
    let e = refusal(&video, 32, 32, 2).unwrap_err();
    assert!(
        e.contains("2 frame(s): this model was trained for text-to-video, 4 frames at 32×32 px"),
        "{e}"
    );
    // A model that declares nothing takes what its windows allow.
    let open = pipe(crate::common::undeclared_default_model());
    assert_eq!(refusal(&open, 64, 48, 2), Ok(()));
}

/// The tiny model directory (`common::tiny`) under a fresh folder, with `edit` applied to the
/// JSON file `path` (a field set to a value) or the file replaced by raw bytes.
fn tiny_dir_with(case: &str, path: &str, edit: Edit) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ptdit-hostile-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut files = crate::common::tiny::tiny_model_files();
    files.insert(
        "tokenizer/tokenizer_config.json".into(),
        br#"{"model_max_length": 4}"#.to_vec(),
    );
    files.insert(
        "scheduler/scheduler_config.json".into(),
        br#"{"num_inference_steps": 1, "sample_size": [64, 64]}"#.to_vec(),
    );
    match edit {
        Edit::Set(key, value) => {
            let mut json: serde_json::Value = serde_json::from_slice(&files[path]).unwrap();
            json[key] = serde_json::from_str(value).unwrap();
            files.insert(path.into(), serde_json::to_vec(&json).unwrap());
        }
        Edit::Bytes(b) => {
            files.insert(path.into(), b.to_vec());
        }
        Edit::Remove => {
            files.retain(|k, _| !k.starts_with(path));
        }
    }
    crate::common::write_model_dir(&dir, &files);
    dir
}

enum Edit {
    Set(&'static str, &'static str),
    Bytes(&'static [u8]),
    Remove,
}

#[test]
fn malformed_configs_are_refused_naming_the_file() {
    const T5: &str = "text_encoder/config.json";
    const DIT: &str = "transformer/config.json";
    const VAE: &str = "vae/config.json";
    const TOK: &str = "tokenizer/tokenizer_config.json";
    const SCHED: &str = "scheduler/scheduler_config.json";
    let big = "4611686018427387904"; // 2^62
    const T5_W: &str =
        "text_encoder/model.safetensors: the weights do not match the model's config.json";
    const VAE_W: &str = "vae/model.safetensors: the weights do not match the model's config.json";
    let cases: Vec<(&str, Edit, &str)> = vec![
        (T5, Edit::Set("num_heads", "4"), T5_W),
        (T5, Edit::Set("d_kv", "16"), T5_W),
        (T5, Edit::Set("relative_attention_num_buckets", "64"), T5_W),
        (T5, Edit::Set("num_heads", big), T5),
        (T5, Edit::Set("d_kv", big), T5),
        (T5, Edit::Set("num_layers", "1000000"), T5),
        (T5, Edit::Set("d_model", "1000000000"), T5),
        (T5, Edit::Set("vocab_size", "5"), T5_W),
        (DIT, Edit::Set("num_attention_heads", big), DIT),
        (DIT, Edit::Set("attention_head_dim", big), DIT),
        (DIT, Edit::Set("patch_size", big), DIT),
        (DIT, Edit::Set("compress_ratios", "[1, 4611686018427387904, 2]"), DIT),
        (DIT, Edit::Set("proxy_compress_ratios", "[4611686018427387904, 2, 2]"), DIT),
        (DIT, Edit::Set("num_layers", "1000000"), DIT),
        (DIT, Edit::Set("caption_channels", "1000000000"), DIT),
        (DIT, Edit::Set("num_attention_heads", "3"), DIT),
        (DIT, Edit::Bytes(b"{\"num_attention_heads\": "), DIT),
        (VAE, Edit::Set("hidden_size_mult", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]"), VAE),
        (VAE, Edit::Set("hidden_size", big), VAE),
        (VAE, Edit::Set("z_channels", "5"), VAE_W),
        (TOK, Edit::Set("model_max_length", "1000000000"), TOK),
        (SCHED, Edit::Set("num_inference_steps", "1000000000000"), SCHED),
        (SCHED, Edit::Set("sample_size", "[100000, 100000]"), SCHED),
        (SCHED, Edit::Set("num_frames", "0"), "num_frames 0 must be between 1 and 129"),
        (SCHED, Edit::Set("num_frames", big), SCHED),
        (SCHED, Edit::Set("task", r#""text-to-audio""#), "text-to-audio"),
    ];
    let out = out_png("config.png");
    let mut failed = Vec::new();
    for (i, (path, edit, says)) in cases.into_iter().enumerate() {
        let dir = tiny_dir_with(&format!("config-{i}"), path, edit);
        let d = dir.display().to_string();
        let args = ["generate", "--model", &d, "--prompt", "a", "--out", &out];
        if let Err(e) = check_refused(&args, says) {
            failed.push(format!("case {i} ({path}): {e}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn model_dir_and_tokenizer_edges() {
    let out = out_png("edges.png");
    let quick = [
        "--prompt",
        "a",
        "--steps",
        "1",
        "--upscale",
        "1",
        "--out",
        &out,
    ];
    // HF writes int(1e30) for "no length limit": the released text length is taken.
    let dir = tiny_dir_with(
        "no-limit",
        "tokenizer/tokenizer_config.json",
        Edit::Set("model_max_length", "1000000000000000019884624838656"),
    );
    accepted(
        &[
            &["generate", "--model", &dir.display().to_string()][..],
            &quick,
        ]
        .concat(),
    );
    // A broken transformer config in a pixel-space model (no vae/) is reported as itself.
    let dir = tiny_dir_with("no-vae", "vae/", Edit::Remove);
    let config = dir.join("transformer/config.json");
    std::fs::write(&config, b"{\"in_channels\": 3,").unwrap();
    let d = dir.display().to_string();
    refused(
        &["generate", "--model", &d, "--prompt", "a"],
        "transformer/config.json",
    );
    // A misspelled optional key is named, with the key it is near.
    let dir = tiny_dir_with(
        "typo",
        "transformer/config.json",
        Edit::Set("shift_windw", "false"),
    );
    let o = run(
        &[
            &["generate", "--model", &dir.display().to_string()][..],
            &quick,
        ]
        .concat(),
        Duration::from_secs(300),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let says =
        "warning: transformer/config.json: `shift_windw` is not read; did you mean `shift_window`?";
    assert!(o.stderr.contains(says), "{}", o.stderr);
    // SentencePiece models whose normalisation map is empty (none), short or garbage.
    let spiece = |case: &str, map: &[u8]| {
        let dir = tiny_dir_with(case, "tokenizer/tokenizer.json", Edit::Remove);
        let model = crate::common::tiny::spiece_model_with_charsmap(map);
        std::fs::write(dir.join("tokenizer/spiece.model"), model).unwrap();
        dir.display().to_string()
    };
    accepted(
        &[
            &["generate", "--model", &spiece("spm-empty", b"")][..],
            &quick,
        ]
        .concat(),
    );
    for (i, map) in [&b"\x01\x02"[..], b"\x00\x01\x00\x00garbage", &[0xff; 64]]
        .iter()
        .enumerate()
    {
        let d = spiece(&format!("spm-{i}"), map);
        refused(
            &["generate", "--model", &d, "--prompt", "a"],
            "spiece.model: not a valid SentencePiece model file: precompiled_charsmap",
        );
    }
}

/// `ptdit verify` on a broken T5 fixture names the cause instead of failing a comparison.
#[test]
fn verify_names_what_is_wrong_with_a_fixture() {
    use ptdit::formats::safetensors::TensorFile;
    use ptdit::model::verify::{check_cpu, T5Fixture};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/t5_tiny.safetensors"
    );
    let fixture = |edit: &dyn Fn(&mut TensorFile)| {
        let mut f = TensorFile::read(path).unwrap();
        edit(&mut f);
        T5Fixture::from_file(f).and_then(|fx| check_cpu(&fx, 1e-3, ptdit::DType::F32))
    };
    fixture(&|_| {}).expect("the fixture as it is verifies");
    let set = |key: &'static str, i: usize, v: f32| {
        move |f: &mut TensorFile| {
            let t = f.tensors.get_mut(key).unwrap();
            let mut d = t.as_f32().to_vec();
            d[i] = v;
            *t = ptdit::HostTensor::f32(t.shape.dims().to_vec(), d);
        }
    };
    let e = fixture(&set("input.input_ids", 1, -3.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("input_ids[1] is -3, not a token id"), "{e}");
    let e = fixture(&set("output.last_hidden_state", 5, f32::NAN))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the golden `output.last_hidden_state` holds NaN at element 5"),
        "{e}"
    );
    let buckets = |f: &mut TensorFile| {
        let c = f.metadata.get_mut("config").unwrap();
        let mut j: serde_json::Value = serde_json::from_str(c).unwrap();
        j["relative_attention_num_buckets"] = 64.into();
        *c = j.to_string();
    };
    let e = fixture(&buckets).unwrap_err().to_string();
    assert!(
        e.contains("relative_attention_num_buckets and num_heads make (64,"),
        "{e}"
    );
}
