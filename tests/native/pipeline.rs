//! Text → PNG end to end on a small random-weight model directory the test writes, through the
//! library and through `ptdit generate`.
// Native only: these drive the GPU synchronously (pollster) or use files and processes.

use std::path::Path;

use crate::common::gpu;
use crate::common::tiny::{spiece_model, tiny_model_files, tokenizer_json};
use ptdit::pipeline::generate::{Request, TextToImage};
use ptdit::pipeline::model_dir;

/// Writes the tiny model directory to disk.
fn tiny_model_dir(root: &Path) {
    crate::common::write_model_dir(root, &tiny_model_files());
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

/// The tiny model written to a fresh directory `name`, and its pipeline (f32).
fn tiny_pipeline(name: &str) -> (std::path::PathBuf, TextToImage) {
    let dir = tmp(name);
    tiny_model_dir(&dir);
    let pipe = TextToImage::new(&gpu(), model_dir::load(&dir).unwrap()).unwrap();
    (dir, pipe)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ptdit-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn text_to_png_on_a_tiny_model() {
    let (_, pipe) = tiny_pipeline("pipeline");
    let req = Request {
        prompt: "a red apple".into(),
        width: 64,
        height: 64,
        steps: 3,
        seed: 7,
        ..Request::default()
    };
    let mut seen = Vec::new();
    let frames = pollster::block_on(pipe.generate(
        &req,
        |i, n, _| {
            seen.push((i, n));
            true
        },
        false,
    ))
    .unwrap();
    assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)]);
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].width, frames[0].height), (64, 64));
    let distinct: std::collections::HashSet<&u8> = frames[0].rgb.iter().collect();
    assert!(distinct.len() > 16, "the image is not flat");

    // Same seed, same image; another seed, another image.
    let again = pollster::block_on(pipe.generate(&req, |_, _, _| true, false)).unwrap();
    assert_eq!(again, frames);
    let other = pollster::block_on(pipe.generate(
        &Request {
            seed: 8,
            ..req.clone()
        },
        |_, _, _| true,
        false,
    ))
    .unwrap();
    assert_ne!(other, frames);
    let png = ptdit::pipeline::png::encode(&frames).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn f16_storage_gives_nearly_the_same_image() {
    let (dir, pipe) = tiny_pipeline("f16");
    let req = Request {
        prompt: "a red apple".into(),
        width: 64,
        height: 64,
        steps: 2,
        seed: 3,
        ..Request::default()
    };
    let f32_img = pollster::block_on(pipe.generate(&req, |_, _, _| true, false)).unwrap();
    // Streamed from disk straight into f16 buffers.
    let f16 = ptdit::DType::F16;
    let streamed = model_dir::open(&gpu(), &dir, f16).unwrap();
    let pipe = TextToImage::with_float(&gpu(), streamed, f16).unwrap();
    let f16_img = pollster::block_on(pipe.generate(&req, |_, _, _| true, false)).unwrap();
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
    let (_, pipe) = tiny_pipeline("video");
    let req = Request {
        prompt: "a cat".into(),
        width: 64,
        height: 32,
        frames: 5,
        steps: 2,
        ..Request::default()
    };
    let frames = pollster::block_on(pipe.generate(&req, |_, _, _| true, true)).unwrap();
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
        c.tokenizer
            .as_ref()
            .unwrap()
            .encode("a red apple", 5)
            .unwrap()
            .ids,
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
    // 64 px images are enlarged ×2 for viewing by default (at least 128 px; --upscale 1 keeps
    // the model's pixels).
    assert_eq!((reader.info().width, reader.info().height), (128, 128));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_ptdit"))
        .args(["generate", "--prompt", "x", "--size", "60x64", "--model"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nearest valid width is 64"));
}

/// `warm` builds every kernel that a default-size request runs before the VAE, so denoising
/// after it compiles nothing new. (On its own device, so other tests' kernels do not count.)
#[test]
fn warm_builds_the_kernels_of_a_request_before_it_runs() {
    let ctx = ptdit::GpuContext::new_blocking().unwrap();
    let pipe = TextToImage::new(&ctx, model_dir::from_files(&tiny_model_files()).unwrap()).unwrap();
    assert_eq!(
        ctx.compiled_kernels(),
        0,
        "uploading weights compiles nothing"
    );
    pollster::block_on(pipe.warm()).unwrap();
    let built = ctx.compiled_kernels();
    assert!(built > 5, "warm built only {built} kernels");
    let req = Request {
        steps: 2,
        ..pipe.request("a red apple")
    };
    pollster::block_on(pipe.denoise(&req, |_, _, _| true, false)).unwrap();
    assert_eq!(
        ctx.compiled_kernels(),
        built,
        "denoising built kernels that warm had not"
    );
}
