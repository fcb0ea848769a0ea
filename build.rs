//! Writes the table of WGSL sources (`shaders/**/*.wgsl`, each under its path without the
//! extension, e.g. `matmul/wide`) that `kernel::wgsl::source` serves, so that adding a shader
//! file is all it takes to make it available.

use std::fs;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, root, out)?;
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            let rel = path.strip_prefix(root).unwrap_or(&path).with_extension("");
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, path.clone()));
        }
    }
    Ok(())
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    println!("cargo:rerun-if-changed=shaders");
    let mut files = Vec::new();
    if let Err(e) = collect(&root, &root, &mut files) {
        panic!("reading {}: {e}", root.display());
    }
    files.sort();
    let mut table = String::from("&[\n");
    for (name, path) in &files {
        table.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    table.push_str("]\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(e) = fs::write(out.join("shaders.rs"), table) {
        panic!("writing the shader table: {e}");
    }
}
