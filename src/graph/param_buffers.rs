//! Weights that live on the device on their own, apart from any compiled graph: uploaded or
//! streamed once, then bound by every graph compiled with them. A pipeline recompiles its step
//! graph for each image size; with these it uploads nothing again, and a multi-GB file can go
//! to the device piece by piece without ever being whole in host memory.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::tensor::TensorDesc;

/// One param's buffer (padded as the executor pads its own) and what it holds.
#[derive(Clone, Debug)]
pub struct ParamBuffer {
    pub buffer: wgpu::Buffer,
    pub desc: TensorDesc,
}

/// Param buffers by the graph's param names (the official keys).
#[derive(Clone, Debug, Default)]
pub struct ParamBuffers {
    map: HashMap<String, ParamBuffer>,
}

impl ParamBuffers {
    pub fn new() -> Self {
        Self::default()
    }

    /// A zeroed buffer for `name`, kept in the set; the caller fills it.
    pub fn create(
        &mut self,
        ctx: &GpuContext,
        name: &str,
        desc: TensorDesc,
    ) -> Result<&ParamBuffer> {
        // Sized as the executor sizes its own buffers: kernels may bind whole 16-byte words.
        let size = super::planner::align(desc.bytes());
        let max = ctx.device.limits().max_buffer_size;
        if size > max {
            return Err(Error::Limit {
                op: "weights",
                detail: format!(
                    "`{name}` {} needs a buffer of {size} bytes; this device allows at most {max}",
                    desc.shape
                ),
            });
        }
        ctx.reserve(&format!("the weight `{name}`"), size)?;
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.map
            .insert(name.to_string(), ParamBuffer { buffer, desc });
        Ok(&self.map[name])
    }

    pub fn get(&self, name: &str) -> Option<&ParamBuffer> {
        self.map.get(name)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Device bytes held.
    pub fn bytes(&self) -> u64 {
        self.map.values().map(|p| p.buffer.size()).sum()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(|k| k.as_str())
    }
}
