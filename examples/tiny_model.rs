//! Writes a complete tiny model directory with random weights (the tests' model): a stand-in
//! for end-to-end runs of the CLI and the web demo where the real weights are not at hand.
//!   cargo run --example tiny_model -- OUT_DIR

#[path = "../tests/common/tiny.rs"]
mod tiny;

fn main() -> std::process::ExitCode {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: tiny_model OUT_DIR");
        return std::process::ExitCode::FAILURE;
    };
    let root = std::path::Path::new(&out);
    for (path, bytes) in tiny::tiny_model_files() {
        let p = root.join(path);
        if let Err(e) = p
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::write(&p, bytes))
        {
            eprintln!("{}: {e}", p.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    println!("wrote a tiny random model to {}", root.display());
    std::process::ExitCode::SUCCESS
}
