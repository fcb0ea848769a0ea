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

/// Runs the CLI, killing it after `limit` (which fails the test: a hang).
fn run(args: &[&str], limit: Duration) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptdit"))
        .args(args)
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
            panic!("`ptdit {}` ran past {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The CLI must refuse `args` with exit status 1 and a message containing `says`.
fn refused(args: &[&str], says: &str) {
    let o = run(args, Duration::from_secs(120));
    let shown = format!(
        "`ptdit {}` gave {:?}:\n{}",
        args.join(" "),
        o.code,
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"), "{shown}");
    assert_eq!(o.code, Some(1), "{shown}");
    assert!(o.stderr.contains(says), "expected `{says}` in {shown}");
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
