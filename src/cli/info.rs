//! `ptdit info`: what the engine would run on.

use std::process::ExitCode;

use ptdit::{GpuContext, Result};

pub fn run() -> Result<ExitCode> {
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
