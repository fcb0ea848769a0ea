//! Chooses each tunable op's kernel variant for this device by timing the variants, once:
//! the matmul kernel, then whether GELU is fused into it, then the attention kernel.
//!
//! The choice depends on the adapter far more than on the model: software GPUs (lavapipe,
//! SwiftShader) pay dearly for workgroup barriers, real GPUs for re-reading operands. So the
//! variants are timed on one representative matmul (512³, the size of the released model's
//! projections per window batch; on a GPU that runs 512³ in under a millisecond, where launching
//! it would hide the kernels' differences, the released model's MLP product at 1024², 8192 ×
//! 1152 × 4608), the fastest is kept in the context
//! ([`GpuContext::tuning`]), and the result is cached under a key made of the adapter, its
//! driver, this engine's version and a hash of the kernels' source, so a new driver or a changed
//! kernel is measured again. Natively the cache is a JSON file (`PTDIT_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/ptdit`, else `~/.cache/ptdit`); in the browser it lives in memory for the
//! page's lifetime, and [`memory_json`] / [`set_memory_json`] let the page keep it longer (the
//! web demo does, with the Cache API).
//!
//! On a device with cooperative matrices ([`GpuContext::coop`]) the `coop` matmul is timed
//! on f16 operands against the chosen kernel's f16 form, and the `coop` attention against the
//! chosen attention kernel on f16 operands; f16 graphs use each where it wins (`Tuning::coop`,
//! `Tuning::coop_attention`); f32 graphs keep the chosen kernels.
//!
//! `PTDIT_MATMUL=registers|tiled|rows|wide|split|coop` forces a variant without measuring
//! (native); GELU is then fused and attention tiled with `tiled`, `wide`, `split` and `coop`
//! (meant for real GPUs), and GELU separate and attention by rows with the other two (meant for
//! software GPUs). `coop` runs f16 graphs' products and attention on cooperative matrices, and
//! f32 graphs on `tiled`.

use std::collections::HashMap;
#[cfg(not(target_arch = "wasm32"))]
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::{ExecOptions, Executable, Graph};
use crate::kernel::{wgsl, AttentionKernel, MatmulKernel, Tuning};
use crate::tensor::DType;

/// Where tuning results are kept between runs.
#[derive(Clone, Debug)]
pub enum Cache {
    /// The platform default: a file natively, memory in the browser.
    Default,
    /// A JSON file in this folder (native).
    #[cfg(not(target_arch = "wasm32"))]
    Dir(PathBuf),
    /// This process's memory only.
    Memory,
}

/// What [`autotune`] decided and why.
#[derive(Clone, Debug)]
pub struct Report {
    pub tuning: Tuning,
    /// True when the choice came from the cache (nothing was measured).
    pub cached: bool,
    /// True when `PTDIT_MATMUL` forced the choice.
    pub forced: bool,
    /// Each matmul variant's measured GFLOP/s (empty when cached or forced).
    pub matmul_gflops: Vec<(MatmulKernel, f64)>,
    /// GFLOP/s of a Linear + GELU with the GELU fused and as a second dispatch (when measured).
    pub gelu_gflops: Option<(f64, f64)>,
    /// Each attention variant's measured GFLOP/s (empty when cached or forced).
    pub attention_gflops: Vec<(AttentionKernel, f64)>,
    /// GFLOP/s of the chosen matmul on f16 operands multiplying in f16 and in f32 (measured
    /// where the device has `shader-f16` and the kernel has f16 math).
    pub f16_math_gflops: Option<(f64, f64)>,
    /// GFLOP/s on f16 operands of `coop` and of the chosen kernel in its f16 form (measured
    /// where the device has cooperative matrices).
    pub coop_gflops: Option<(f64, f64)>,
    /// GFLOP/s of attention on f16 operands with `coop` and with the chosen attention kernel
    /// (measured where the device has cooperative matrices).
    pub coop_attention_gflops: Option<(f64, f64)>,
    /// The cache key: adapter, driver, engine version, kernel source hash.
    pub key: String,
    /// Something the user may want to know (an unreadable cache file that was replaced).
    pub note: Option<String>,
}

impl Report {
    /// One line for people.
    pub fn summary(&self) -> String {
        let how = if self.forced {
            "forced by PTDIT_MATMUL".to_string()
        } else if self.cached {
            "cached".to_string()
        } else {
            self.matmul_gflops
                .iter()
                .map(|(k, g)| format!("{} {g:.1} GFLOP/s", k.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let gelu = match self.gelu_gflops {
            Some((f, u)) if !self.cached && !self.forced => {
                format!(" (fused {f:.1}, separate {u:.1} GFLOP/s)")
            }
            _ => String::new(),
        };
        let attention = if self.attention_gflops.is_empty() {
            String::new()
        } else {
            let each: Vec<String> = self
                .attention_gflops
                .iter()
                .map(|(k, g)| format!("{} {g:.1}", k.name()))
                .collect();
            format!(" ({} GFLOP/s)", each.join(", "))
        };
        let f16 = match self.f16_math_gflops {
            Some((h, f)) => format!(" (f16 {h:.1}, f32 {f:.1} GFLOP/s)"),
            None => String::new(),
        };
        let coop = coop_clause("f16 graphs", self.tuning.coop, self.coop_gflops);
        let coop_attention = coop_clause(
            "f16 attention",
            self.tuning.coop_attention,
            self.coop_attention_gflops,
        );
        format!(
            "matmul kernel: {} ({how}); GELU {}{gelu}; f16 operands multiplied in {}{f16}{coop}; attention kernel: {}{attention}{coop_attention}",
            self.tuning.matmul.name(),
            if self.tuning.fuse_gelu {
                "fused into the matmul"
            } else {
                "as its own dispatch"
            },
            if self.tuning.f16_math { "f16" } else { "f32" },
            self.tuning.attention.name(),
        )
    }
}

/// The summary's clause on one use of cooperative matrices (`what`): whether it is on, and the
/// rates with and without them where they were measured; nothing when off and unmeasured.
fn coop_clause(what: &str, on: bool, gflops: Option<(f64, f64)>) -> String {
    let state = if on { "on" } else { "not on" };
    match (on, gflops) {
        (_, Some((c, o))) => {
            format!("; {what} {state} cooperative matrices ({c:.1} GFLOP/s, without {o:.1})")
        }
        (true, None) => format!("; {what} on cooperative matrices"),
        (false, None) => String::new(),
    }
}

static MEMORY: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

/// The in-memory cache (the browser's, or [`Cache::Memory`]) as JSON, for a host that keeps it
/// across page loads or processes (the web demo stores it with the Cache API, and only when it
/// changed): adapters as [`cache_key`] names them, and the choice for each.
pub fn memory_json() -> String {
    // Sorted, so the same table gives the same text and a host can tell whether it changed.
    let table: std::collections::BTreeMap<String, String> =
        load(&Cache::Memory).0.into_iter().collect();
    serde_json::to_string(&table).unwrap_or_default()
}

/// Replaces the in-memory cache with a table [`memory_json`] wrote. Entries for other adapters
/// or other kernel sources are kept but never match; an entry whose choice this version does not
/// know is measured again.
pub fn set_memory_json(json: &str) -> Result<()> {
    let table: HashMap<String, String> = serde_json::from_str(json).map_err(|e| {
        Error::Input(format!(
            "the tuning cache is not a JSON object of strings: {e}"
        ))
    })?;
    store(&Cache::Memory, &table)
}

/// Sets `ctx`'s kernel variants from the cache, or measures them and caches the result. Graphs
/// compiled afterwards use them. On llvmpipe here measuring takes 4 s with Mesa's shader cache
/// warm and 22 s cold, 20 of them compiling the two attention kernels (llvmpipe compiles a
/// pipeline at its first dispatch).
pub async fn autotune(ctx: &GpuContext, cache: &Cache) -> Result<Report> {
    let key = cache_key(ctx);
    let mut report = Report {
        tuning: Tuning::default(),
        cached: false,
        forced: false,
        matmul_gflops: Vec::new(),
        gelu_gflops: None,
        attention_gflops: Vec::new(),
        f16_math_gflops: None,
        coop_gflops: None,
        coop_attention_gflops: None,
        key: key.clone(),
        note: None,
    };
    if let Some(k) = forced() {
        report.tuning.matmul = k;
        let for_real_gpus = matches!(
            k,
            MatmulKernel::Tiled | MatmulKernel::Wide | MatmulKernel::Split | MatmulKernel::Coop
        );
        report.tuning.fuse_gelu = for_real_gpus;
        report.tuning.attention = if for_real_gpus {
            AttentionKernel::Tiled
        } else {
            AttentionKernel::Rows
        };
        report.tuning.coop_attention = k == MatmulKernel::Coop;
        report.forced = true;
        ctx.set_tuning(report.tuning);
        return Ok(report);
    }
    let (mut table, note) = load(cache);
    report.note = note;
    if let Some(t) = table.get(&key).and_then(|v| parse_tuning(v)) {
        report.tuning = t;
        report.cached = true;
        ctx.set_tuning(report.tuning);
        return Ok(report);
    }
    let mut mkn = MATMUL_SIZE;
    let mut best = best_matmul(ctx, mkn, &mut report.matmul_gflops).await?;
    if flops(MATMUL_SIZE) / (best.1 * 1e9) < FAST_RUN_SECS {
        // A GPU this fast spends 512³ mostly in launching it, where every kernel ties (on an
        // H100 all four ran it at 0.5 to 3.4 TFLOP/s while 4096³ spread them from 7 to 27): the
        // products that decide its speed are the released model's, tens of GFLOP each.
        report.matmul_gflops.clear();
        mkn = MATMUL_FAST;
        best = best_matmul(ctx, mkn, &mut report.matmul_gflops).await?;
    }
    report.tuning.matmul = best.0;
    if ctx.has_f16() && best.0.has_f16_math() {
        let half = time_matmul_f16(ctx, best.0, mkn, true).await?;
        let single = time_matmul_f16(ctx, best.0, mkn, false).await?;
        report.f16_math_gflops = Some((half, single));
        report.tuning.f16_math = half > single;
    }
    if ctx.coop().is_some() {
        // f16 graphs: cooperative matrices against the kernel they would otherwise run.
        let coop = time_matmul_f16(ctx, MatmulKernel::Coop, mkn, false).await?;
        let other = match report.f16_math_gflops {
            Some((half, single)) => half.max(single),
            None => time_matmul_f16(ctx, best.0, mkn, false).await?,
        };
        report.coop_gflops = Some((coop, other));
        report.tuning.coop = coop > other;
    }
    let fused = time_linear_gelu(ctx, best.0, true).await?;
    let split = time_linear_gelu(ctx, best.0, false).await?;
    report.gelu_gflops = Some((fused, split));
    report.tuning.fuse_gelu = fused > split;
    let mut best = (AttentionKernel::default(), 0.0);
    for k in AttentionKernel::ALL.into_iter().filter(|k| k.takes_f32()) {
        let g = time_attention(ctx, k, DType::F32).await?;
        report.attention_gflops.push((k, g));
        if g > best.1 {
            best = (k, g);
        }
    }
    report.tuning.attention = best.0;
    if ctx.coop().is_some() {
        // f16 graphs: attention on cooperative matrices against the kernel chosen above.
        let coop = time_attention(ctx, AttentionKernel::Coop, DType::F16).await?;
        let other = time_attention(ctx, best.0, DType::F16).await?;
        report.coop_attention_gflops = Some((coop, other));
        report.tuning.coop_attention = coop > other;
    }
    ctx.set_tuning(report.tuning);
    table.insert(key, format_tuning(report.tuning));
    if let Err(e) = store(cache, &table) {
        report.note = Some(format!("the tuning result was not cached: {e}"));
    }
    Ok(report)
}

/// The matmul the variants are timed on (M, K, N), and the larger one for a device that runs it
/// in under `FAST_RUN_SECS`: the released model's MLP up-projection at 1024² (CFG batch 2).
const MATMUL_SIZE: [usize; 3] = [512; 3];
const MATMUL_FAST: [usize; 3] = [8192, 1152, 4608];
const FAST_RUN_SECS: f64 = 1e-3;

fn flops([m, k, n]: [usize; 3]) -> f64 {
    2.0 * (m * k * n) as f64
}

/// Times every matmul variant on (M, K, N) (each on this product, whatever its size), appending
/// each rate to `rates`; the fastest and its GFLOP/s.
async fn best_matmul(
    ctx: &GpuContext,
    mkn: [usize; 3],
    rates: &mut Vec<(MatmulKernel, f64)>,
) -> Result<(MatmulKernel, f64)> {
    let mut best = (MatmulKernel::default(), 0.0);
    for k in MatmulKernel::ALL.into_iter().filter(|k| k.takes_f32()) {
        let g = time_matmul(ctx, k, mkn).await?;
        rates.push((k, g));
        if g > best.1 {
            best = (k, g);
        }
    }
    Ok(best)
}

/// The cache's text for a tuning: `matmul+fused|split+attention[+f16][+coop][+coop-attention]`,
/// e.g. `rows+split+rows` or `wide+fused+tiled+f16` (f16 operands multiplied in f16) or
/// `wide+fused+tiled+coop+coop-attention` (f16 graphs' products and attention on cooperative
/// matrices).
fn format_tuning(t: Tuning) -> String {
    let g = if t.fuse_gelu { "fused" } else { "split" };
    let mut text = format!("{}+{g}+{}", t.matmul.name(), t.attention.name());
    for (on, flag) in TUNING_FLAGS.iter().map(|(name, get)| (get(&t), name)) {
        if on {
            text.push('+');
            text.push_str(flag);
        }
    }
    text
}

/// The optional parts of a cached tuning, in the order they are written.
type FlagField = fn(&Tuning) -> bool;
const TUNING_FLAGS: [(&str, FlagField); 3] = [
    ("f16", |t| t.f16_math),
    ("coop", |t| t.coop),
    ("coop-attention", |t| t.coop_attention),
];

/// The tuning a cache entry names (what [`format_tuning`] writes); `None` for text this
/// version does not know.
pub fn parse_tuning(v: &str) -> Option<Tuning> {
    let mut parts = v.split('+');
    let (k, g, a) = (parts.next()?, parts.next()?, parts.next()?);
    // Each flag at most once, in TUNING_FLAGS' order.
    let mut on = [false; TUNING_FLAGS.len()];
    let mut next = 0;
    for part in parts {
        let i = next + TUNING_FLAGS[next..].iter().position(|(n, _)| *n == part)?;
        on[i] = true;
        next = i + 1;
    }
    let [f16_math, coop, coop_attention] = on;
    Some(Tuning {
        matmul: MatmulKernel::from_name(k)?,
        fuse_gelu: match g {
            "fused" => true,
            "split" => false,
            _ => return None,
        },
        attention: AttentionKernel::from_name(a)?,
        f16_math,
        coop,
        coop_attention,
        ..Tuning::default()
    })
}

/// GFLOP/s of one matmul variant on (M, K, N), whatever the product's size.
pub async fn time_matmul(ctx: &GpuContext, kernel: MatmulKernel, mkn: [usize; 3]) -> Result<f64> {
    let tuning = Tuning {
        matmul: kernel,
        per_shape: false,
        ..Default::default()
    };
    time_linear(ctx, tuning, mkn, false, DType::F32).await
}

/// GFLOP/s of one matmul variant on f16 operands (M, K, N), multiplying in f16 or in f32.
async fn time_matmul_f16(
    ctx: &GpuContext,
    kernel: MatmulKernel,
    mkn: [usize; 3],
    f16_math: bool,
) -> Result<f64> {
    let tuning = Tuning {
        matmul: kernel,
        per_shape: false,
        f16_math,
        ..Default::default()
    };
    time_linear(ctx, tuning, mkn, false, DType::F16).await
}

/// GFLOP/s of the MLP's first Linear + GELU at a released-like shape (512 tokens, 256 → 1024),
/// with the GELU fused or not.
async fn time_linear_gelu(ctx: &GpuContext, kernel: MatmulKernel, fused: bool) -> Result<f64> {
    let tuning = Tuning {
        matmul: kernel,
        fuse_gelu: fused,
        ..Default::default()
    };
    time_linear(ctx, tuning, [512, 256, 1024], true, DType::F32).await
}

/// Runs `y = x · wᵀ` (m, k, n) (then GELU) in `float` with `tuning`; GFLOP/s.
async fn time_linear(
    ctx: &GpuContext,
    tuning: Tuning,
    mkn: [usize; 3],
    gelu: bool,
    float: DType,
) -> Result<f64> {
    let [m, k, n] = mkn;
    let mut g = Graph::with_float(float);
    let a = g.input("a", g.float_desc([m, k]))?;
    let w = g.param("w", [n, k])?;
    let y = if gelu {
        g.matmul_gelu(a, w, None)?
    } else {
        g.matmul(a, w, None)?
    };
    g.output(y, "y")?;
    time_graph(ctx, &g, tuning).await
}

/// GFLOP/s of one attention variant on 2 sequences of 256 queries and keys, 4 heads of 64 (the
/// size of a few windows' self-attention, or a short global one), in a graph of `float`.
async fn time_attention(ctx: &GpuContext, kernel: AttentionKernel, float: DType) -> Result<f64> {
    let (z, l, heads, dh) = (2, 256, 4, 64);
    let mut g = Graph::with_float(float);
    let desc = g.float_desc([z, l, heads * dh]);
    let q = g.input("q", desc.clone())?;
    let k = g.input("k", desc.clone())?;
    let v = g.input("v", desc)?;
    let o = g.attention(q, k, v, heads, Default::default())?;
    g.output(o, "y")?;
    let tuning = Tuning {
        attention: kernel,
        coop_attention: false,
        ..ctx.tuning()
    };
    time_graph(ctx, &g, tuning).await
}

/// Runs `g` (random feeds, output `y`) with `tuning` repeatedly until at least 0.2 s have
/// passed, after a warm-up run that compiles the pipelines and whose result is read once (so a
/// kernel that fails shows here). Completion is awaited, not read back: on an H100, with the
/// 8192 × 4608 product read back after each batch, the five kernels timed within 15 % of each
/// other (346 to 401 GFLOP/s) where the benchmark, reading nothing, spread them from 7 to 27
/// TFLOP/s. GFLOP/s by the graph's own count.
async fn time_graph(ctx: &GpuContext, g: &Graph, tuning: Tuning) -> Result<f64> {
    let opts = ExecOptions {
        tuning: Some(tuning),
        ..Default::default()
    };
    let exe = Executable::with_options(ctx, g, &opts).await?;
    exe.write_random(g, 0, 1.0)?;
    exe.run()?;
    exe.read("y").await?;
    let flops = g.flops() as f64;
    let (mut runs, mut batch) = (0usize, 1usize);
    let start = now_secs();
    loop {
        for _ in 0..batch {
            exe.run()?;
        }
        ctx.finished("timing a kernel variant").await?;
        runs += batch;
        let spent = now_secs() - start;
        if spent >= 0.2 {
            return Ok(flops * runs as f64 / spent / 1e9);
        }
        batch = (batch * 2).min(64);
    }
}

fn forced() -> Option<MatmulKernel> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::env::var("PTDIT_MATMUL")
            .ok()
            .and_then(|v| MatmulKernel::from_name(v.trim()))
    }
    #[cfg(target_arch = "wasm32")]
    {
        None
    }
}

/// The key `ctx`'s tuning is cached under: adapter, backend, driver, engine version and a hash
/// of every file the timed kernels are made of (their include closures), so a new driver or a
/// changed kernel or include is measured again.
pub fn cache_key(ctx: &GpuContext) -> String {
    let r = &ctx.report;
    let mut h = 0xcbf2_9ce4_8422_2325u64; // FNV-1a: stable across Rust versions, unlike std's
                                          // Every file each timed kernel is made of (its include closure), once each.
    let mut files: Vec<&str> = MatmulKernel::ALL
        .iter()
        .map(|k| k.shader().0)
        .chain(
            AttentionKernel::ALL
                .iter()
                .flat_map(|k| [k.shader(64), k.shader(512)]),
        )
        .chain(["unary"])
        .flat_map(wgsl::include_closure)
        .collect();
    files.sort();
    files.dedup();
    for name in files {
        for b in name.bytes().chain(wgsl::source(name).unwrap_or("").bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    // With cooperative matrices off (`PTDIT_COOP=0`) the same adapter has other choices.
    let coop = match r.coop {
        Some(c) => format!(" | coop {0}x{0}", c.edge),
        None => String::new(),
    };
    format!(
        "{} | {} | {} | ptdit {} | kernels {h:016x}{coop}",
        r.name,
        r.backend,
        r.driver,
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(not(target_arch = "wasm32"))]
fn cache_file(cache: &Cache) -> Option<PathBuf> {
    let dir = match cache {
        Cache::Dir(d) => d.clone(),
        Cache::Memory => return None,
        Cache::Default => {
            let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
            if let Some(d) = env("PTDIT_CACHE_DIR") {
                PathBuf::from(d)
            } else if let Some(d) = env("XDG_CACHE_HOME") {
                PathBuf::from(d).join("ptdit")
            } else {
                PathBuf::from(env("HOME")?).join(".cache").join("ptdit")
            }
        }
    };
    Some(dir.join("autotune.json"))
}

#[cfg(target_arch = "wasm32")]
fn cache_file(_: &Cache) -> Option<std::path::PathBuf> {
    None
}

/// The cached table, and a note when a cache file existed but could not be used.
fn load(cache: &Cache) -> (HashMap<String, String>, Option<String>) {
    let Some(path) = cache_file(cache) else {
        let mem = MEMORY.lock().ok().and_then(|m| m.clone());
        return (mem.unwrap_or_default(), None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (HashMap::new(), None),
        Err(e) => return (HashMap::new(), Some(format!("{}: {e}", path.display()))),
    };
    match serde_json::from_str(&text) {
        Ok(t) => (t, None),
        Err(e) => (
            HashMap::new(),
            Some(format!(
                "{} is not a tuning cache ({e}); measured again and replaced it",
                path.display()
            )),
        ),
    }
}

fn store(cache: &Cache, table: &HashMap<String, String>) -> Result<()> {
    let Some(path) = cache_file(cache) else {
        if let Ok(mut m) = MEMORY.lock() {
            *m = Some(table.clone());
        }
        return Ok(());
    };
    let io = |e: std::io::Error| Error::io(&path, e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = serde_json::to_string_pretty(table).unwrap_or_default();
    // Written aside and renamed, so a concurrent reader never sees half a file.
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

#[cfg(not(target_arch = "wasm32"))]
fn now_secs() -> f64 {
    use std::sync::OnceLock;
    static T0: OnceLock<std::time::Instant> = OnceLock::new();
    T0.get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

#[cfg(target_arch = "wasm32")]
fn now_secs() -> f64 {
    js_sys::Date::now() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tuning_is_cached_as_text_that_reads_back_the_same() {
        for bits in 0..8u32 {
            for matmul in MatmulKernel::ALL {
                for attention in AttentionKernel::ALL {
                    let t = Tuning {
                        matmul,
                        attention,
                        fuse_gelu: bits == 5,
                        f16_math: bits & 1 != 0,
                        coop: bits & 2 != 0,
                        coop_attention: bits & 4 != 0,
                        ..Tuning::default()
                    };
                    assert_eq!(parse_tuning(&format_tuning(t)), Some(t), "{t:?}");
                }
            }
        }
    }
}
