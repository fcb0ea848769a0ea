//! `ptdit tokenize DIR --len N`: prompts (one a line on stdin) to token ids and mask, exactly as
//! the pipeline feeds them to the text encoder. The training tool uses it so that the model
//! is trained on the engine's own tokens (prompt cleaning included).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ptdit::pipeline::text::Tokenizer;
use ptdit::{Error, Result};

#[derive(Args)]
pub struct TokenizeArgs {
    /// A tokenizer directory (tokenizer.json or spiece.model).
    tokenizer: PathBuf,
    /// Tokens per prompt, EOS and padding included.
    #[arg(long, default_value_t = ptdit::pipeline::text::MAX_LEN)]
    len: usize,
}

pub fn run(args: &TokenizeArgs) -> Result<ExitCode> {
    let tok = Tokenizer::from_dir(&args.tokenizer)?;
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let io = |e: std::io::Error| Error::Io {
        path: "<stdio>".into(),
        source: e,
    };
    for line in stdin.lock().lines() {
        let t = tok.encode(&line.map_err(io)?, args.len)?;
        let n = t.mask.iter().filter(|m| **m > 0.0).count();
        writeln!(out, "{}", serde_json::json!({"ids": t.ids, "len": n})).map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(ExitCode::SUCCESS)
}
