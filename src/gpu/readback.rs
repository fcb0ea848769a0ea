//! Reading GPU data back: one staging buffer, mapped asynchronously (the browser allows nothing
//! else), with natively a blocking poll to drive the map.

use super::GpuContext;
use crate::error::{Error, Result};

/// Runs `record` (copies into the staging buffer it is given, `size` bytes, mappable), submits
/// it, waits for the map and returns the bytes. `what` names the data in errors, including any
/// validation error the work before it left behind.
pub async fn read_staged(
    ctx: &GpuContext,
    size: u64,
    what: &str,
    record: impl FnOnce(&mut wgpu::CommandEncoder, &wgpu::Buffer),
) -> Result<Vec<u8>> {
    let dev = &ctx.device;
    let staging = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("readback"),
    });
    record(&mut enc, &staging);
    ctx.queue.submit([enc.finish()]);
    let (tx, rx) = futures_channel::oneshot::channel();
    staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    let gpu_err = |detail: String| Error::Gpu {
        during: format!("reading {what}"),
        detail,
    };
    #[cfg(not(target_arch = "wasm32"))]
    dev.poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| gpu_err(e.to_string()))?;
    let mapped = rx
        .await
        .map_err(|_| Error::DeviceLost(format!("reading {what} was cancelled")))?;
    ctx.take_errors(&format!("the work before reading {what}"))?;
    mapped.map_err(|e| gpu_err(e.to_string()))?;
    let bytes = staging
        .slice(..)
        .get_mapped_range()
        .map_err(|e| gpu_err(e.to_string()))?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}

/// The first `size` bytes of `buffer`.
pub async fn read_buffer(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    size: u64,
    what: &str,
) -> Result<Vec<u8>> {
    read_staged(ctx, size, what, |enc, staging| {
        enc.copy_buffer_to_buffer(buffer, 0, staging, 0, size)
    })
    .await
}
