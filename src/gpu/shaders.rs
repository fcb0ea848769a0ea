//! WGSL sources (one file per op in `shaders/`) and the tiny preprocessor that specialises them.
//!
//! A kernel variant is a source plus defines. Three markers exist, as in the larger WebGPU
//! runtimes: `{{NAME}}` is replaced by the define's value, `#if NAME` / `#else` / `#endif` lines
//! keep or drop a block depending on whether `NAME` is defined to something other than `0`, and
//! `#include NAME` pastes another file of `shaders/` (shared helpers such as reductions). Dtype and
//! tile sizes are parameters of generation rather than copies of the file.

use std::collections::BTreeMap;

/// The WGSL source of a shader file in `shaders/`, by name.
pub fn source(name: &str) -> Option<&'static str> {
    Some(match name {
        "matmul" => include_str!("../../shaders/matmul.wgsl"),
        "matmul_tiled" => include_str!("../../shaders/matmul_tiled.wgsl"),
        "matmul_rows" => include_str!("../../shaders/matmul_rows.wgsl"),
        "matmul_wide" => include_str!("../../shaders/matmul_wide.wgsl"),
        "matmul_io" => include_str!("../../shaders/matmul_io.wgsl"),
        "binary" => include_str!("../../shaders/binary.wgsl"),
        "unary" => include_str!("../../shaders/unary.wgsl"),
        "modulate" => include_str!("../../shaders/modulate.wgsl"),
        "adaln" => include_str!("../../shaders/adaln.wgsl"),
        "gate" => include_str!("../../shaders/gate.wgsl"),
        "layer_norm" => include_str!("../../shaders/layer_norm.wgsl"),
        "softmax" => include_str!("../../shaders/softmax.wgsl"),
        "attention" => include_str!("../../shaders/attention.wgsl"),
        "attention_rows" => include_str!("../../shaders/attention_rows.wgsl"),
        "attention_io" => include_str!("../../shaders/attention_io.wgsl"),
        "window_mean" => include_str!("../../shaders/window_mean.wgsl"),
        "reindex" => include_str!("../../shaders/reindex.wgsl"),
        "cfg_euler" => include_str!("../../shaders/cfg_euler.wgsl"),
        "conv3d" => include_str!("../../shaders/conv3d.wgsl"),
        "group_norm" => include_str!("../../shaders/group_norm.wgsl"),
        "upsample" => include_str!("../../shaders/upsample.wgsl"),
        "reduce" => include_str!("../../shaders/reduce.wgsl"),
        "activations" => include_str!("../../shaders/activations.wgsl"),
        "to_rgba8" => include_str!("../../shaders/to_rgba8.wgsl"),
        _ => return None,
    })
}

/// One specialisation of a shader: which file, which defines, and how many storage bindings it
/// reads (the last binding is always the one it writes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kernel {
    pub shader: &'static str,
    pub defines: BTreeMap<&'static str, String>,
    pub reads: u32,
}

impl Kernel {
    pub fn new(shader: &'static str, reads: u32) -> Self {
        Kernel {
            shader,
            defines: BTreeMap::new(),
            reads,
        }
    }
    pub fn define(mut self, name: &'static str, value: impl ToString) -> Self {
        self.defines.insert(name, value.to_string());
        self
    }
    pub fn flag(self, name: &'static str, on: bool) -> Self {
        self.define(name, if on { 1 } else { 0 })
    }
    /// A stable key for the pipeline cache.
    pub fn key(&self) -> String {
        let mut k = self.shader.to_string();
        for (n, v) in &self.defines {
            k.push_str(&format!(";{n}={v}"));
        }
        k
    }
    /// The WGSL text of this specialisation; `enable f16;` comes first when any type define
    /// names f16.
    pub fn wgsl(&self) -> Result<String, String> {
        let src = source(self.shader).ok_or_else(|| format!("unknown shader `{}`", self.shader))?;
        let body = preprocess(src, &self.defines)?;
        if self.defines.values().any(|v| v == "f16") {
            Ok(format!("enable f16;\n{body}"))
        } else {
            Ok(body)
        }
    }
}

/// Applies `#if`/`#else`/`#endif` and `{{NAME}}` substitution.
pub fn preprocess(src: &str, defines: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::with_capacity(src.len());
    // Each entry: (this block is kept, the enclosing block is kept).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let mut keep = true;
    for (no, line) in src.lines().enumerate() {
        let t = line.trim_start();
        if let Some(name) = t.strip_prefix("#if ") {
            let on = defines
                .get(name.trim())
                .is_some_and(|v| v != "0" && !v.is_empty());
            stack.push((on, keep));
            keep = keep && on;
            continue;
        }
        if t.starts_with("#else") {
            let (on, outer) = stack
                .last_mut()
                .ok_or_else(|| format!("line {}: #else without #if", no + 1))?;
            *on = !*on;
            keep = *outer && *on;
            continue;
        }
        if t.starts_with("#endif") {
            let (_, outer) = stack
                .pop()
                .ok_or_else(|| format!("line {}: #endif without #if", no + 1))?;
            keep = outer;
            continue;
        }
        if !keep {
            continue;
        }
        if let Some(name) = t.strip_prefix("#include ") {
            let inc = source(name.trim()).ok_or_else(|| {
                format!("line {}: no shader `{}` to include", no + 1, name.trim())
            })?;
            out.push_str(&preprocess(inc, defines)?);
            continue;
        }
        let mut l = line.to_string();
        while let Some(start) = l.find("{{") {
            let end = l[start..]
                .find("}}")
                .ok_or_else(|| format!("line {}: unclosed {{{{", no + 1))?
                + start;
            let name = &l[start + 2..end];
            let v = defines
                .get(name)
                .ok_or_else(|| format!("line {}: `{name}` is not defined", no + 1))?;
            l.replace_range(start..end + 2, v);
        }
        out.push_str(&l);
        out.push('\n');
    }
    if !stack.is_empty() {
        return Err("#if without #endif".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocess_if_else_and_values() {
        let mut d = BTreeMap::new();
        d.insert("A", "1".to_string());
        d.insert("N", "7".to_string());
        let src = "x\n#if A\ny{{N}}\n#if B\nno\n#else\nyes\n#endif\n#else\nz\n#endif\nw";
        assert_eq!(preprocess(src, &d).unwrap(), "x\ny7\nyes\nw\n");
        assert!(preprocess("#if A\n", &d).is_err());
        assert!(preprocess("{{Q}}", &d).is_err());
        assert!(preprocess("#include no_such_file", &d).is_err());
        let mut wg = BTreeMap::new();
        wg.insert("WG", "64".to_string());
        assert!(preprocess("#include reduce", &wg)
            .unwrap()
            .contains("fn reduce_sum"));
    }
}
