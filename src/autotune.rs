//! Chooses each tunable op's kernel variant for this device by timing the variants, once:
//! the matmul kernel, then whether GELU is fused into it.
//!
//! The choice depends on the adapter far more than on the model: software GPUs (lavapipe,
//! SwiftShader) pay dearly for workgroup barriers, real GPUs for re-reading operands. So the
//! variants are timed on one representative matmul (512³, the size of the released model's
//! projections per window batch), the fastest is kept in the context ([`GpuContext::tuning`]),
//! and the result is cached under a key made of the adapter, its driver, this engine's version
//! and a hash of the kernels' source, so a new driver or a changed kernel is measured again.
//! Natively the cache is a JSON file (`PTDIT_CACHE_DIR`, else `$XDG_CACHE_HOME/ptdit`, else
//! `~/.cache/ptdit`); in the browser it lives in memory for the page's lifetime.
//!
//! `PTDIT_MATMUL=registers|tiled` forces a variant without measuring (native); GELU is then
//! fused with the tiled kernel (meant for real GPUs) and separate with the register one.

use std::collections::HashMap;
#[cfg(not(target_arch = "wasm32"))]
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::gpu::{shaders, GpuContext, MatmulKernel, Tuning};
use crate::graph::{ExecOptions, Executable, Graph};
use crate::rng::Rng;
use crate::tensor::{HostTensor, TensorDesc};

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
        format!(
            "matmul kernel: {} ({how}); GELU {}{gelu}",
            self.tuning.matmul.name(),
            if self.tuning.fuse_gelu {
                "fused into the matmul"
            } else {
                "as its own dispatch"
            }
        )
    }
}

static MEMORY: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

/// Sets `ctx`'s kernel variants from the cache, or measures them (about a second on a software
/// GPU, far less on a real one) and caches the result. Graphs compiled afterwards use them.
pub async fn autotune(ctx: &GpuContext, cache: &Cache) -> Result<Report> {
    let key = cache_key(ctx);
    let mut report = Report {
        tuning: Tuning::default(),
        cached: false,
        forced: false,
        matmul_gflops: Vec::new(),
        gelu_gflops: None,
        key: key.clone(),
        note: None,
    };
    if let Some(k) = forced() {
        report.tuning.matmul = k;
        report.tuning.fuse_gelu = k == MatmulKernel::Tiled;
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
    let mut best = (MatmulKernel::default(), 0.0);
    for k in MatmulKernel::ALL {
        let g = time_matmul(ctx, k, 512).await?;
        report.matmul_gflops.push((k, g));
        if g > best.1 {
            best = (k, g);
        }
    }
    report.tuning.matmul = best.0;
    let fused = time_linear_gelu(ctx, best.0, true).await?;
    let split = time_linear_gelu(ctx, best.0, false).await?;
    report.gelu_gflops = Some((fused, split));
    report.tuning.fuse_gelu = fused > split;
    ctx.set_tuning(report.tuning);
    table.insert(key, format_tuning(report.tuning));
    if let Err(e) = store(cache, &table) {
        report.note = Some(format!("the tuning result was not cached: {e}"));
    }
    Ok(report)
}

/// The cache's text for a tuning: `kernel+fused` or `kernel+split`.
fn format_tuning(t: Tuning) -> String {
    let g = if t.fuse_gelu { "fused" } else { "split" };
    format!("{}+{g}", t.matmul.name())
}

fn parse_tuning(v: &str) -> Option<Tuning> {
    let (k, g) = v.split_once('+')?;
    Some(Tuning {
        matmul: MatmulKernel::from_name(k)?,
        fuse_gelu: match g {
            "fused" => true,
            "split" => false,
            _ => return None,
        },
    })
}

/// GFLOP/s of one matmul variant at size³.
pub async fn time_matmul(ctx: &GpuContext, kernel: MatmulKernel, size: usize) -> Result<f64> {
    let tuning = Tuning {
        matmul: kernel,
        fuse_gelu: false,
    };
    time_linear(ctx, tuning, [size, size, size], false).await
}

/// GFLOP/s of the MLP's first Linear + GELU at a released-like shape (512 tokens, 256 → 1024),
/// with the GELU fused or not.
async fn time_linear_gelu(ctx: &GpuContext, kernel: MatmulKernel, fused: bool) -> Result<f64> {
    let tuning = Tuning {
        matmul: kernel,
        fuse_gelu: fused,
    };
    time_linear(ctx, tuning, [512, 256, 1024], true).await
}

/// Runs `y = x · wᵀ` (m, k, n) (then GELU) repeatedly until at least 0.2 s have passed, after a
/// warm-up run that compiles the pipelines; completion is observed by reading the result.
async fn time_linear(ctx: &GpuContext, tuning: Tuning, mkn: [usize; 3], gelu: bool) -> Result<f64> {
    let [m, k, n] = mkn;
    let mut g = Graph::new();
    let a = g.input("a", TensorDesc::f32([m, k]))?;
    let w = g.param("w", [n, k])?;
    let y = if gelu {
        g.matmul_gelu(a, w, None)?
    } else {
        g.matmul(a, w, None)?
    };
    g.output(y, "y")?;
    let opts = ExecOptions {
        tuning: Some(tuning),
        ..Default::default()
    };
    let exe = Executable::with_options(ctx, &g, &opts).await?;
    let mut rng = Rng::new(0);
    exe.write("a", &HostTensor::f32([m, k], rng.normals(m * k, 1.0)))?;
    exe.write("w", &HostTensor::f32([n, k], rng.normals(n * k, 1.0)))?;
    exe.run()?;
    exe.read("y").await?;
    let flops = 2.0 * (m * k * n) as f64;
    let (mut runs, mut batch) = (0usize, 1usize);
    let start = now_secs();
    loop {
        for _ in 0..batch {
            exe.run()?;
        }
        exe.read("y").await?;
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

fn cache_key(ctx: &GpuContext) -> String {
    let r = &ctx.report;
    let mut h = 0xcbf2_9ce4_8422_2325u64; // FNV-1a: stable across Rust versions, unlike std's
    let timed = MatmulKernel::ALL.map(|k| k.shader().0);
    for name in timed.iter().chain(&["matmul_io", "unary", "activations"]) {
        for b in shaders::source(name).unwrap_or("").bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!(
        "{} | {} | {} | ptdit {} | kernels {h:016x}",
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
