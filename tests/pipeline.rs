//! Text → PNG end to end on a small random-weight model directory the test writes, through the
//! library and through `ptdit generate`.
// Native only: these drive the GPU synchronously (pollster) or use files and processes.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::gpu;
use ptdit::model::t5::{self, T5Config};
use ptdit::model::vae::{self, VaeConfig};
use ptdit::model::{ptdit as net, random_weights, PtditConfig, Shapes};
use ptdit::pipeline::generate::{Request, TextToImage};
use ptdit::pipeline::model_dir;
use ptdit::rng::Rng;
use ptdit::HostTensor;

fn save(dir: &Path, config: &str, weights: &HashMap<String, HostTensor>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = weights
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                bytemuck::cast_slice(v.as_f32()).to_vec(),
                v.shape.dims().to_vec(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(k, b, s)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let data = safetensors::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), data).unwrap();
}

/// A Unigram tokenizer in HF's JSON format with a handful of pieces.
fn tokenizer_json() -> String {
    let pieces = [
        "▁a", "▁red", "▁apple", "▁cat", "▁on", "▁mat", "▁", "a", "e", "p", "l", "r", "d", "c", "t",
        "o", "n", "m",
    ];
    let mut vocab = vec![
        r#"["<pad>", 0.0]"#.to_string(),
        r#"["</s>", 0.0]"#.to_string(),
        r#"["<unk>", 0.0]"#.to_string(),
    ];
    vocab.extend(
        pieces
            .iter()
            .enumerate()
            .map(|(i, p)| format!(r#"["{p}", {}]"#, -1.0 - i as f32 * 0.1)),
    );
    format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}},
        "post_processor": null, "decoder": null,
        "model": {{"type": "Unigram", "unk_id": 2, "vocab": [{}], "byte_fallback": false}}}}"#,
        vocab.join(", ")
    )
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The same vocabulary as [`tokenizer_json`], as a SentencePiece `ModelProto`.
fn spiece_model() -> Vec<u8> {
    let pieces = [
        "▁a", "▁red", "▁apple", "▁cat", "▁on", "▁mat", "▁", "a", "e", "p", "l", "r", "d", "c", "t",
        "o", "n", "m",
    ];
    let mut all: Vec<(String, f32, u64)> = vec![
        ("<pad>".into(), 0.0, 3),
        ("</s>".into(), 0.0, 3),
        ("<unk>".into(), 0.0, 2),
    ];
    all.extend(
        pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_string(), -1.0 - i as f32 * 0.1, 1)),
    );
    let mut out = Vec::new();
    for (p, score, kind) in all {
        let mut m = Vec::new();
        field_bytes(&mut m, 1, p.as_bytes());
        varint(&mut m, 2 << 3 | 5);
        m.extend_from_slice(&score.to_le_bytes());
        varint(&mut m, 3 << 3);
        varint(&mut m, kind);
        field_bytes(&mut out, 1, &m);
    }
    out
}

#[test]
fn tokenizer_json_and_spiece_model_agree() {
    use ptdit::pipeline::text::Tokenizer;
    let json = Tokenizer::from_bytes(tokenizer_json().as_bytes()).unwrap();
    let spm = Tokenizer::from_spiece(&spiece_model()).unwrap();
    let t = json.encode("A red  apple", 8).unwrap();
    assert_eq!(t.ids, vec![3, 4, 5, 1, 0, 0, 0, 0], "pieces, EOS, padding");
    assert_eq!(t.mask, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    for prompt in [
        "A red  apple",
        "a cat on a mat",
        "",
        "catnap",
        "red red red red red red red red red",
    ] {
        assert_eq!(
            json.encode(prompt, 8).unwrap(),
            spm.encode(prompt, 8).unwrap(),
            "{prompt:?}"
        );
    }
    // Truncation keeps room for EOS.
    assert_eq!(
        json.encode("red red red red red red red red red", 4)
            .unwrap()
            .ids,
        vec![4, 4, 4, 1]
    );
    assert!(Tokenizer::from_spiece(b"\xff\xff").is_err());
}

/// Writes a complete tiny model directory: 64×64 px images (8×8 latents, 4×4 tokens in 2×2
/// windows).
pub fn tiny_model_dir(root: &Path) {
    let tcfg = r#"{"num_attention_heads": 2, "attention_head_dim": 16, "in_channels": 4, "out_channels": 8, "num_layers": 1,
        "cross_attention_dim": 32, "caption_channels": 24, "sample_size": 8, "patch_size": 2, "compress_ratios": [1, 2, 2],
        "proxy_compress_ratios": [1, 2, 2], "attention_bias": true, "activation_fn": "gelu-approximate",
        "norm_type": "ada_norm_single", "norm_elementwise_affine": false, "norm_eps": 1e-6, "shift_window": true}"#;
    let cfg = PtditConfig::from_json(tcfg).unwrap();
    let g = net::build(
        &cfg,
        &Shapes {
            batch: 2,
            grid: cfg.grid(1, 8, 8).unwrap(),
            text_len: 4,
            traces: false,
        },
    )
    .unwrap();
    save(&root.join("transformer"), tcfg, &random_weights(&g, 1));

    let ecfg = r#"{"vocab_size": 21, "d_model": 24, "d_kv": 8, "d_ff": 48, "num_layers": 1, "num_heads": 3,
        "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "feed_forward_proj": "gated-gelu",
        "dense_act_fn": "gelu_new", "layer_norm_epsilon": 1e-6}"#;
    let e = T5Config::from_json(ecfg).unwrap();
    let g = t5::build(&e, 1, 4, false).unwrap();
    let mut w = random_weights(&g, 2);
    let mut r = Rng::new(3);
    w.insert(
        t5::EMBED_KEY.into(),
        HostTensor::f32([21, 24], r.normals(21 * 24, 1.0)),
    );
    w.insert(
        t5::REL_BIAS_KEY.into(),
        HostTensor::f32([32, 3], r.normals(96, 0.5)),
    );
    save(&root.join("text_encoder"), ecfg, &w);

    std::fs::create_dir_all(root.join("tokenizer")).unwrap();
    std::fs::write(
        root.join("tokenizer").join("tokenizer.json"),
        tokenizer_json(),
    )
    .unwrap();

    let vcfg = r#"{"hidden_size": 32, "hidden_size_mult": [1, 1, 1, 1], "num_res_blocks": 1, "z_channels": 4, "embed_dim": 4,
        "attn_resolutions": [], "decoder_spatial_upsample": ["", "SpatialUpsample2x", "Spatial2xTime2x3DUpsample", "Spatial2xTime2x3DUpsample"],
        "decoder_temporal_upsample": ["", "", "", ""]}"#;
    let v = VaeConfig::from_json(vcfg).unwrap();
    let g = vae::build(&v, [1, 4, 1, 8, 8], false).unwrap();
    let mut w = random_weights(&g, 4);
    // GroupNorm weights near 1, as in a trained VAE, so the image has some contrast.
    for (k, v) in w.iter_mut() {
        if k.contains("norm") && k.ends_with("weight") {
            if let ptdit::tensor::HostData::F32(d) = &mut v.data {
                d.iter_mut().for_each(|x| *x += 1.0);
            }
        }
    }
    w.insert("encoder.conv_in.conv.weight".into(), HostTensor::zeros([1])); // ignored, as in the real checkpoint
    save(&root.join("vae"), vcfg, &w);
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ptdit-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn text_to_png_on_a_tiny_model() {
    let dir = tmp("pipeline");
    tiny_model_dir(&dir);
    let pipe = TextToImage::new(&gpu(), model_dir::load(&dir).unwrap());
    let req = Request {
        prompt: "a red apple".into(),
        width: 64,
        height: 64,
        steps: 3,
        seed: 7,
        ..Request::default()
    };
    let mut seen = Vec::new();
    let frames =
        pollster::block_on(pipe.generate(&req, |i, n, _| seen.push((i, n)), false)).unwrap();
    assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)]);
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].width, frames[0].height), (64, 64));
    let distinct: std::collections::HashSet<&u8> = frames[0].rgb.iter().collect();
    assert!(distinct.len() > 16, "the image is not flat");

    // Same seed, same image; another seed, another image.
    let again = pollster::block_on(pipe.generate(&req, |_, _, _| {}, false)).unwrap();
    assert_eq!(again, frames);
    let other = pollster::block_on(pipe.generate(
        &Request {
            seed: 8,
            ..req.clone()
        },
        |_, _, _| {},
        false,
    ))
    .unwrap();
    assert_ne!(other, frames);
    let png = ptdit::pipeline::png::encode(&frames).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn f16_storage_gives_nearly_the_same_image() {
    let dir = tmp("f16");
    tiny_model_dir(&dir);
    let mut pipe = TextToImage::new(&gpu(), model_dir::load(&dir).unwrap());
    let req = Request {
        prompt: "a red apple".into(),
        width: 64,
        height: 64,
        steps: 2,
        seed: 3,
        ..Request::default()
    };
    let f32_img = pollster::block_on(pipe.generate(&req, |_, _, _| {}, false)).unwrap();
    pipe.float = ptdit::DType::F16;
    let f16_img = pollster::block_on(pipe.generate(&req, |_, _, _| {}, false)).unwrap();
    let diff = f32_img[0]
        .rgb
        .iter()
        .zip(&f16_img[0].rgb)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    // f16 storage moves values by ~1e-3 of their scale (tests/ptdit.rs, tests/vae.rs): a few
    // levels of 255 at most, never a different picture.
    assert!(diff <= 8, "f16 vs f32 pixels differ by up to {diff}");
}

#[test]
fn video_frames_and_size_errors() {
    let dir = tmp("video");
    tiny_model_dir(&dir);
    let pipe = TextToImage::new(&gpu(), model_dir::load(&dir).unwrap());
    let req = Request {
        prompt: "a cat".into(),
        width: 64,
        height: 32,
        frames: 5,
        steps: 2,
        ..Request::default()
    };
    let frames = pollster::block_on(pipe.generate(&req, |_, _, _| {}, true)).unwrap();
    assert_eq!(frames.len(), 5);
    assert_eq!((frames[0].width, frames[0].height), (64, 32));
    let e = pipe.check_size(70, 64, 1).unwrap_err().to_string();
    assert!(
        e.contains("width 70 px")
            && e.contains("multiple of 32 px")
            && e.contains("nearest valid width is 64"),
        "{e}"
    );
    let e = pipe.check_size(64, 64, 4).unwrap_err().to_string();
    assert!(e.contains("4k + 1"), "{e}");
}

#[test]
fn a_model_directory_may_ship_spiece_model_instead() {
    let dir = tmp("spiece");
    tiny_model_dir(&dir);
    std::fs::remove_file(dir.join("tokenizer").join("tokenizer.json")).unwrap();
    std::fs::write(dir.join("tokenizer").join("spiece.model"), spiece_model()).unwrap();
    let c = model_dir::load(&dir).unwrap();
    assert_eq!(
        c.tokenizer.encode("a red apple", 5).unwrap().ids,
        vec![3, 4, 5, 1, 0]
    );
}

#[test]
fn missing_pieces_of_a_model_directory_are_listed() {
    let dir = tmp("missing");
    tiny_model_dir(&dir);
    std::fs::remove_dir_all(dir.join("vae")).unwrap();
    std::fs::remove_file(dir.join("tokenizer").join("tokenizer.json")).unwrap();
    let e = match model_dir::load(&dir) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("an incomplete directory was accepted"),
    };
    for needle in [
        "vae/config.json",
        "vae/*.safetensors",
        "tokenizer/tokenizer.json",
    ] {
        assert!(e.contains(needle), "`{needle}` not in {e}");
    }
}

#[test]
fn ptdit_generate_writes_a_png() {
    let dir = tmp("cli");
    tiny_model_dir(&dir);
    let out = dir.join("apple.png");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_ptdit"))
        .args([
            "generate",
            "--prompt",
            "a red apple",
            "--size",
            "64x64",
            "--steps",
            "2",
            "--model",
        ])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let reader = decoder.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (64, 64));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_ptdit"))
        .args(["generate", "--prompt", "x", "--size", "60x64", "--model"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nearest valid width is 64"));
}
