//! WGSL sources (`shaders/`, grouped by op family, one file per variant) and the tiny preprocessor that specialises them.
//!
//! A kernel variant is a source plus defines. Four markers exist, as in the larger WebGPU
//! runtimes: `{{NAME}}` is replaced by the define's value, `#if NAME` (or `#if !NAME`) / `#else` /
//! `#endif` lines keep or drop a block depending on whether `NAME` is defined to something
//! other than `0`,
//! `#include NAME` pastes another file of `shaders/` (shared helpers such as reductions), and
//! `#unroll I COUNT` / `#endunroll` repeat a block with `{{I}}` = 0, 1, … COUNT - 1. Dtype and
//! tile sizes are parameters of generation rather than copies of the file.

use std::collections::BTreeMap;

use super::ParamBlock;

/// Every file of `shaders/`, by its path without `.wgsl` (`matmul/wide`, `common/reduce`),
/// collected by `build.rs`.
pub static SOURCES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

/// The WGSL source of a shader file in `shaders/`, by name (`matmul/wide`).
pub fn source(name: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The files a shader is made of: itself and everything it includes, directly or not, whatever
/// its `#if`s decide (so a hash of them covers every specialisation).
pub fn include_closure(name: &str) -> Vec<&'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        let Some((name, src)) = SOURCES.iter().find(|(s, _)| *s == n) else {
            continue;
        };
        if seen.contains(name) {
            continue;
        }
        seen.push(name);
        for line in src.lines() {
            if let Some(inc) = line.trim_start().strip_prefix("#include ") {
                todo.push(inc.trim().to_string());
            }
        }
    }
    seen.sort();
    seen
}

/// One specialisation of a shader: which file, which defines, which storage bindings it reads
/// (in slot order; the one it writes comes last), and its parameter block's declarations.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kernel {
    pub shader: &'static str,
    pub defines: BTreeMap<&'static str, String>,
    /// The bindings it reads, by the name the shader gives them: binding `i + 1` is `reads[i]`,
    /// and the shader finds its slot as `{{B_NAME}}`; the output is `{{B_OUT}}`, after them.
    pub reads: Vec<&'static str>,
    /// The WGSL declarations of its [`ParamBlock`], set when it is dispatched with one.
    pub params: &'static [&'static str],
}

impl Kernel {
    pub fn new(shader: &'static str) -> Self {
        Kernel {
            shader,
            defines: BTreeMap::new(),
            reads: Vec::new(),
            params: &[],
        }
    }
    /// The next binding read, named as the shader names its slot (`B_` + the name in capitals).
    pub fn read(mut self, name: &'static str) -> Self {
        self.reads.push(name);
        self
    }
    /// [`Kernel::read`] where `on`.
    pub fn read_if(self, on: bool, name: &'static str) -> Self {
        if on {
            self.read(name)
        } else {
            self
        }
    }
    /// Compiles the kernel with `P`'s WGSL struct, also named `Params`.
    pub fn with_params<P: ParamBlock>(mut self) -> Self {
        self.params = P::DECLS;
        self
    }
    pub fn define(mut self, name: &'static str, value: impl ToString) -> Self {
        self.defines.insert(name, value.to_string());
        self
    }
    pub fn flag(self, name: &'static str, on: bool) -> Self {
        self.define(name, if on { 1 } else { 0 })
    }
    /// How many storage bindings it reads.
    pub fn read_count(&self) -> u32 {
        self.reads.len() as u32
    }
    /// A stable key for the pipeline cache (bindings and defines decide the text).
    pub fn key(&self) -> String {
        let mut k = self.shader.to_string();
        for r in &self.reads {
            k.push_str(&format!(",{r}"));
        }
        for (n, v) in &self.defines {
            k.push_str(&format!(";{n}={v}"));
        }
        k
    }
    /// The WGSL text of this specialisation: `enable f16;` first when any type define names
    /// f16, then the parameter block, then the shader with its bindings' slots filled in.
    pub fn wgsl(&self) -> Result<String, String> {
        let src = source(self.shader).ok_or_else(|| format!("unknown shader `{}`", self.shader))?;
        let slots: Vec<(String, String)> = self
            .reads
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("B_{}", r.to_uppercase()), (i + 1).to_string()))
            .chain([("B_OUT".to_string(), (self.reads.len() + 1).to_string())])
            .collect();
        let mut defines: BTreeMap<&str, String> =
            self.defines.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (k, v) in &slots {
            defines.insert(k.as_str(), v.clone());
        }
        // Directives come before any declaration: `enable f16;` when a type define names f16,
        // then those the shader states itself (`enable subgroups;`), ahead of the parameter
        // block.
        let body = preprocess(src, &defines)?;
        let (enables, body): (Vec<&str>, Vec<&str>) = body
            .lines()
            .partition(|l| l.trim_start().starts_with("enable "));
        let mut text = String::new();
        if self.defines.values().any(|v| v == "f16") {
            text.push_str("enable f16;\n");
        }
        for e in enables {
            text.push_str(e.trim());
            text.push('\n');
        }
        for decl in self.params {
            text.push_str(decl);
        }
        if let Some(top) = self.params.last() {
            let name = top
                .strip_prefix("struct ")
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or("Params");
            if name != "Params" {
                text.push_str(&format!("alias Params = {name};\n"));
            }
        }
        for line in body {
            text.push_str(line);
            text.push('\n');
        }
        Ok(text)
    }
}

/// Where `PTDIT_DUMP_WGSL=DIR` asks for every specialised kernel to be written (natively), as
/// `DIR/<key>.wgsl`: the text the driver compiles, for reading or for another tool.
#[cfg(not(target_arch = "wasm32"))]
pub fn dump(kernel: &Kernel, wgsl: &str) {
    let Some(dir) = std::env::var_os("PTDIT_DUMP_WGSL").filter(|d| !d.is_empty()) else {
        return;
    };
    let name: String = kernel
        .key()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '=' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = std::path::PathBuf::from(dir);
    // A dump is a debugging aid: a directory that cannot be written is reported, not fatal.
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(dir.join(format!("{name}.wgsl")), wgsl))
    {
        eprintln!("PTDIT_DUMP_WGSL: cannot write {}: {e}", dir.display());
    }
}

#[cfg(target_arch = "wasm32")]
pub fn dump(_kernel: &Kernel, _wgsl: &str) {}

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
            let (negated, name) = match name.trim().strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, name.trim()),
            };
            let on = defines.get(name).is_some_and(|v| v != "0" && !v.is_empty()) != negated;
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
        assert_eq!(
            preprocess("#if !A\nno\n#else\nyes\n#endif\n#if !B\nb\n#endif", &d).unwrap(),
            "yes\nb\n"
        );
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
        assert!(preprocess("#include common/reduce", &wg)
            .unwrap()
            .contains("fn reduce_sum"));
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn enable_directives_open_the_text() {
        // WGSL wants directives before any declaration; `coop` states its own.
        let k = Kernel::new("matmul/coop")
            .read("a")
            .read("w")
            .define("T", "f16")
            .define("CM", 8)
            .define("FR", 4)
            .define("SG", 8);
        let text = k.wgsl().unwrap();
        assert!(
            text.starts_with("enable f16;\nenable wgpu_cooperative_matrix;\n"),
            "{}",
            &text[..80]
        );
        assert_eq!(text.matches("enable ").count(), 2);
    }

    #[test]
    fn the_table_holds_every_shader_and_closures_follow_includes() {
        assert!(source("matmul/wide").is_some_and(|s| s.contains("#include matmul/io")));
        assert!(source("no/such").is_none());
        assert_eq!(
            include_closure("matmul/wide"),
            [
                "common/activations",
                "common/adaln",
                "matmul/io",
                "matmul/wide"
            ]
        );
        // Every include of every shader names a file of the table.
        for (name, _) in SOURCES {
            for inc in include_closure(name) {
                assert!(source(inc).is_some(), "{name} includes a missing {inc}");
            }
        }
    }
}
