//! WGSL sources (one file per op in `shaders/`) and the tiny preprocessor that specialises them.
//!
//! A kernel variant is a source plus defines. Four markers exist, as in the larger WebGPU
//! runtimes: `{{NAME}}` is replaced by the define's value, `#if NAME` / `#else` / `#endif` lines
//! keep or drop a block depending on whether `NAME` is defined to something other than `0`,
//! `#include NAME` pastes another file of `shaders/` (shared helpers such as reductions), and
//! `#unroll I COUNT` / `#endunroll` repeat a block with `{{I}}` = 0, 1, … COUNT - 1. Dtype and
//! tile sizes are parameters of generation rather than copies of the file.

use std::collections::BTreeMap;

/// The WGSL source of a shader file in `shaders/`, by name.
pub fn source(name: &str) -> Option<&'static str> {
    Some(match name {
        "matmul" => include_str!("../../shaders/matmul.wgsl"),
        "matmul_tiled" => include_str!("../../shaders/matmul_tiled.wgsl"),
        "matmul_rows" => include_str!("../../shaders/matmul_rows.wgsl"),
        "matmul_wide" => include_str!("../../shaders/matmul_wide.wgsl"),
        "matmul_split" => include_str!("../../shaders/matmul_split.wgsl"),
        "matmul_io" => include_str!("../../shaders/matmul_io.wgsl"),
        "binary" => include_str!("../../shaders/binary.wgsl"),
        "unary" => include_str!("../../shaders/unary.wgsl"),
        "modulate" => include_str!("../../shaders/modulate.wgsl"),
        "adaln" => include_str!("../../shaders/adaln.wgsl"),
        "gate" => include_str!("../../shaders/gate.wgsl"),
        "layer_norm" => include_str!("../../shaders/layer_norm.wgsl"),
        "softmax" => include_str!("../../shaders/softmax.wgsl"),
        "attention" => include_str!("../../shaders/attention.wgsl"),
        "attention_loops" => include_str!("../../shaders/attention_loops.wgsl"),
        "attention_rows" => include_str!("../../shaders/attention_rows.wgsl"),
        "attention_io" => include_str!("../../shaders/attention_io.wgsl"),
        "attention_tiles" => include_str!("../../shaders/attention_tiles.wgsl"),
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

/// Applies `#if`/`#else`/`#endif`, `#unroll`/`#endunroll` and `{{NAME}}` substitution.
pub fn preprocess(src: &str, defines: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::with_capacity(src.len());
    // Each entry: (this block is kept, the enclosing block is kept).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let mut keep = true;
    let lines: Vec<&str> = src.lines().collect();
    let mut next = 0;
    while next < lines.len() {
        let (no, line) = (next, lines[next]);
        next += 1;
        let t = line.trim_start();
        if keep {
            if let Some(spec) = t.strip_prefix("#unroll ") {
                let end = matching_endunroll(&lines, next)
                    .ok_or_else(|| format!("line {}: #unroll without #endunroll", no + 1))?;
                out.push_str(&unroll(spec, &lines[next..end], defines, no)?);
                next = end + 1;
                continue;
            }
            if t.starts_with("#endunroll") {
                return Err(format!("line {}: #endunroll without #unroll", no + 1));
            }
        }
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

/// The index of the `#endunroll` closing an `#unroll` whose body starts at line `from`.
fn matching_endunroll(lines: &[&str], from: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, l) in lines.iter().enumerate().skip(from) {
        let t = l.trim_start();
        if t.starts_with("#unroll ") {
            depth += 1;
        } else if t.starts_with("#endunroll") {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        }
    }
    None
}

/// `#unroll NAME COUNT` (COUNT a number or a define): the body once per NAME in 0..COUNT, with
/// `{{NAME}}` standing for it. naga does not unroll loops, and a GPU's compiler keeps a
/// per-invocation array in registers only when it can resolve every index; an unrolled body
/// over separate variables (`acc{{d}}`) keeps them there.
fn unroll(
    spec: &str,
    body: &[&str],
    defines: &BTreeMap<&str, String>,
    no: usize,
) -> Result<String, String> {
    let mut words = spec.split_whitespace();
    let (Some(name), Some(count), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!("line {}: #unroll takes a name and a count", no + 1));
    };
    let count = defines.get(count).map_or(count, |v| v.as_str());
    let count: usize = count
        .parse()
        .map_err(|_| format!("line {}: #unroll count `{count}` is not a number", no + 1))?;
    let body = body.join("\n");
    let mut inner = defines.clone();
    let mut out = String::new();
    for i in 0..count {
        inner.insert(name, i.to_string());
        out.push_str(&preprocess(&body, &inner)?);
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
        // Unrolling, nested, with the count from a define or a number, and #if inside.
        let src = "#unroll i N\na{{i}}\n#unroll j 2\n#if A\nb{{i}}{{j}}\n#endif\n#endunroll\n#endunroll\nz";
        d.insert("N", "2".to_string());
        assert_eq!(
            preprocess(src, &d).unwrap(),
            "a0\nb00\nb01\na1\nb10\nb11\nz\n"
        );
        assert_eq!(preprocess("#unroll i 0\nx\n#endunroll", &d).unwrap(), "");
        assert!(preprocess("#if B\n#unroll i 9\nx\n#endunroll\n#endif", &d)
            .unwrap()
            .is_empty());
        assert!(preprocess("#unroll i 2\nx", &d).is_err());
        assert!(preprocess("x\n#endunroll", &d).is_err());
        assert!(preprocess("#unroll i Q\nx\n#endunroll", &d).is_err());
        let mut wg = BTreeMap::new();
        wg.insert("WG", "64".to_string());
        assert!(preprocess("#include reduce", &wg)
            .unwrap()
            .contains("fn reduce_sum"));
    }
}
