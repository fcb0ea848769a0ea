//! Subcommands of the `ptdit` binary.

mod bench;
mod convert;
mod encode;
mod generate;
pub(crate) mod info;
mod quantize;
mod random_model;
mod tokenize;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ptdit", version, about = "PT-DiT (Qihoo-T2X) on WebGPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the WebGPU adapter, backend, features and limits the engine would use; with a PNG
    /// the engine wrote, the settings that made it.
    Info(info::InfoArgs),
    /// Measure the engine against its baselines and print the figures.
    Bench(bench::BenchArgs),
    /// Convert an official PyTorch checkpoint to safetensors (without executing its pickle).
    Convert(convert::ConvertArgs),
    /// Encode a prompt and a negative prompt with the text encoder alone, for
    /// `generate --embeddings`.
    Encode(encode::EncodeArgs),
    /// Generate an image (or video frames) from a prompt.
    Generate(generate::GenerateArgs),
    /// Write a model directory with packed (bf16, q8, q4) Linear weights, per component.
    Quantize(quantize::QuantizeArgs),
    /// Write a model directory of the released shapes with random weights (any storage).
    RandomModel(random_model::RandomModelArgs),
    /// Print the token ids the pipeline would give each prompt (one a line on stdin).
    Tokenize(tokenize::TokenizeArgs),
    /// Check the engine against golden fixtures of the official PyTorch code.
    Verify(verify::VerifyArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => info::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Encode(args) => encode::run(&args),
        Command::Tokenize(args) => tokenize::run(&args),
        Command::Quantize(args) => quantize::run(&args),
        Command::RandomModel(args) => random_model::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", printable(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// `text` with control characters (but newlines and tabs) escaped: keys and names from a file
/// are printed, and a crafted one must not drive the terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A memory figure of this process from Linux's `/proc/self/status` (`VmRSS` now, `VmHWM` the
/// peak), in bytes, if the system says.
pub fn process_memory(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The largest value of the device's buffer memory seen by a thread that samples it.
pub struct PeakSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakSampler {
    pub fn start(ctx: &ptdit::GpuContext) -> Self {
        let ctx = ctx.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            // At least one sample, however short the phase.
            loop {
                peak = ctx.buffer_bytes().unwrap_or(0).max(peak);
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        PeakSampler { stop, thread }
    }

    pub fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
