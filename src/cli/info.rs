//! `ptdit info`: what the engine would run on, or what settings made an image.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ptdit::pipeline::{model_info, png};
use ptdit::{Error, GpuContext, Result};

#[derive(Args)]
pub struct InfoArgs {
    /// A PNG written by ptdit: print the settings stored in it instead (repeat them with
    /// `ptdit generate --from FILE`).
    #[arg(conflicts_with = "model")]
    file: Option<PathBuf>,
    /// A model directory: print what it holds (components, parameters, storage, sizes it
    /// supports, what is missing) from its configs and weight headers, without a GPU.
    #[arg(long)]
    model: Option<PathBuf>,
}

/// Largest PNG read for its settings: they sit before the image data, so the read stops early
/// in any file this engine wrote, and a huge file is not held.
const MAX_PNG_BYTES: u64 = 256 << 20;

/// The text chunks of the PNG at `path`.
pub fn png_text(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    use std::io::Read;
    let name = path.display().to_string();
    let io = |e| Error::Io {
        path: name.clone(),
        source: e,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PNG_BYTES).read_to_end(&mut bytes))
        .map_err(io)?;
    png::read_text(&bytes).map_err(|e| e.in_file(&name))
}

fn print_model(dir: &std::path::Path) -> Result<ExitCode> {
    let info = model_info::describe(dir)?;
    println!("model          {}", dir.display());
    if !info.missing.is_empty() {
        println!("missing        {}", info.missing.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    for c in &info.components {
        println!("{:<14} {}", c.name, super::printable(&c.summary));
        if let Some(w) = &c.weights {
            let dtypes: Vec<String> = w.dtypes.iter().map(|(d, n)| format!("{n} {d}")).collect();
            println!(
                "{:<14} {} file(s), {} tensors ({}), {:.2} M parameters, {:.1} MiB",
                "",
                w.files,
                w.tensors,
                dtypes.join(", "),
                w.parameters as f64 / 1e6,
                mib(w.bytes)
            );
        }
    }
    for (k, v) in &info.supports {
        println!("{k:<14} {v}");
    }
    println!("missing        nothing");
    for w in &info.warnings {
        println!("warning        {}", super::printable(w));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: &InfoArgs) -> Result<ExitCode> {
    if let Some(dir) = &args.model {
        return print_model(dir);
    }
    if let Some(file) = &args.file {
        let text = png_text(file)?;
        if text.is_empty() {
            println!("{}: no text chunks (not written by ptdit)", file.display());
        }
        let width = text
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        for (k, v) in &text {
            let v = super::printable(v).replace('\n', &format!("\n{:width$}  ", ""));
            println!("{:width$}  {v}", super::printable(k));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let ctx = GpuContext::new_blocking()?;
    let r = &ctx.report;
    println!("adapter      {}", r.name);
    println!("backend      {}", r.backend);
    println!("device type  {}", r.device_type);
    println!("driver       {}", r.driver);
    println!(
        "shader-f16   {}",
        if ctx.has_f16() {
            "yes (enabled on the device)"
        } else {
            "no"
        }
    );
    match r.coop {
        Some(c) => println!(
            "coop matrix  {0}x{0} f16 x f16 -> f32, subgroups of {1} (the `coop` matmul and attention; PTDIT_COOP=0 turns them off)",
            c.edge, c.subgroup
        ),
        None => println!("coop matrix  no (the `coop` matmul is not used)"),
    }
    println!("features     {:?}", r.features);
    let l = &r.limits;
    println!("limits");
    println!(
        "  max_storage_buffer_binding_size    {} ({} MiB)",
        l.max_storage_buffer_binding_size,
        l.max_storage_buffer_binding_size >> 20
    );
    println!(
        "  max_buffer_size                    {} ({} MiB)",
        l.max_buffer_size,
        l.max_buffer_size >> 20
    );
    println!(
        "  max_storage_buffers_per_shader_stage {}",
        l.max_storage_buffers_per_shader_stage
    );
    println!(
        "  max_compute_workgroup_storage_size {}",
        l.max_compute_workgroup_storage_size
    );
    println!(
        "  max_compute_invocations_per_workgroup {}",
        l.max_compute_invocations_per_workgroup
    );
    println!(
        "  max_compute_workgroups_per_dimension {}",
        l.max_compute_workgroups_per_dimension
    );
    println!(
        "  min_storage_buffer_offset_alignment {}",
        l.min_storage_buffer_offset_alignment
    );
    println!(
        "  min_uniform_buffer_offset_alignment {}",
        l.min_uniform_buffer_offset_alignment
    );
    Ok(ExitCode::SUCCESS)
}
