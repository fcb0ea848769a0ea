//! How an op turns into dispatches: it binds ranges of its tensors and states its parameters.
//!
//! Every storage binding must stay within the device's `max_storage_buffer_binding_size`
//! (128 MiB in browsers). Ops split their work into chunks whose bindings fit, using
//! [`EncodeCx::rows_per_chunk`], and bind sub-ranges with [`EncodeCx::bind`]. A sub-range must
//! start at an aligned byte offset, so `bind` starts the binding at the aligned address below
//! and returns where the wanted data starts inside it, in elements; the kernel adds that offset.

use super::{CoopShape, Kernel, ParamBlock, Tuning};
use crate::error::{Error, Result};
use crate::tensor::{DType, TensorDesc, TensorId};

/// A tensor as an op sees it while encoding.
#[derive(Clone, Debug)]
pub struct TensorArg {
    pub id: TensorId,
    pub desc: TensorDesc,
}

#[derive(Clone, Debug)]
pub(crate) struct BindRange {
    pub tensor: TensorId,
    pub offset: u64,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Dispatch {
    pub kernel: Kernel,
    pub bindings: Vec<BindRange>,
    pub params: Vec<u32>,
    pub groups: [u32; 3],
}

pub struct EncodeCx {
    pub(crate) op: &'static str,
    /// Largest byte range one storage binding may cover.
    pub limit: u64,
    /// Required alignment of a binding's start, in bytes.
    pub align: u64,
    /// Largest workgroup count per dispatch dimension.
    pub max_groups: u32,
    /// The op's float type (its output's): kernels are specialised with `T` = f32 or f16.
    pub float: DType,
    /// The kernel variants chosen for this device.
    pub tuning: Tuning,
    /// The device's cooperative-matrix shape, where it has one.
    pub coop: Option<CoopShape>,
    pub(crate) bound: Vec<BindRange>,
    pub(crate) out: Vec<Dispatch>,
}

impl EncodeCx {
    pub(crate) fn new(
        op: &'static str,
        limit: u64,
        align: u64,
        max_groups: u32,
        float: DType,
        tuning: Tuning,
        coop: Option<CoopShape>,
    ) -> Self {
        EncodeCx {
            op,
            limit,
            align,
            max_groups,
            float,
            tuning,
            coop,
            bound: Vec::new(),
            out: Vec::new(),
        }
    }

    /// How many rows of `row_elems` f32/u32 elements one binding can hold, wherever the chunk
    /// starts (a sub-range may begin up to `align - 4` bytes after the aligned address).
    pub fn rows_per_chunk(&self, what: &str, row_elems: usize) -> Result<usize> {
        let row_bytes = (row_elems as u64) * 4;
        let room = self.limit.saturating_sub(self.align - 4);
        let rows = room / row_bytes.max(1);
        if rows == 0 {
            return Err(Error::Limit {
                op: self.op,
                detail: format!(
                    "one row of {what} is {row_bytes} bytes, more than the device's storage \
                     binding limit of {} bytes allows",
                    self.limit
                ),
            });
        }
        Ok(rows.min(u32::MAX as u64) as usize)
    }

    /// True when the whole tensor fits in one binding.
    pub fn fits(&self, t: &TensorArg) -> bool {
        t.desc.bytes() <= self.limit
    }

    /// Binds elements `[start, start + len)` of `t` as the next binding of the dispatch being
    /// built; returns the element offset of `start` inside the binding. For a packed weight
    /// format these are its quantized values ([`EncodeCx::bind_scales`] binds their scales).
    pub fn bind(&mut self, t: &TensorArg, start: usize, len: usize) -> Result<u32> {
        let bits = t.desc.dtype.bits() as u64;
        self.bind_bits(t, start as u64 * bits, len as u64 * bits, bits, len)
    }

    /// Binds the f16 scales of elements `[start, start + len)` of a q8/q4 weight (one per
    /// block of 32, after the values: `crate::quant`); returns the offset of the first in
    /// f16 units.
    pub fn bind_scales(&mut self, t: &TensorArg, start: usize, len: usize) -> Result<u32> {
        let base = crate::quant::values_bytes(t.desc.dtype, t.desc.shape.numel()) * 8;
        let (first, count) = (
            start / crate::quant::BLOCK,
            len.div_ceil(crate::quant::BLOCK),
        );
        self.bind_bits(t, base + first as u64 * 16, count as u64 * 16, 16, count)
    }

    /// Binds bits `[begin, begin + len_bits)` of `t`; returns the start's offset inside the
    /// binding in units of `unit` bits.
    fn bind_bits(
        &mut self,
        t: &TensorArg,
        begin: u64,
        len_bits: u64,
        unit: u64,
        len: usize,
    ) -> Result<u32> {
        let (begin, end) = (begin / 8, (begin + len_bits).div_ceil(8));
        let aligned = begin / self.align * self.align;
        // Bindings of vec4 arrays must be a multiple of 16 bytes; buffers are padded to 256.
        let size = (end - aligned).div_ceil(16) * 16;
        if size > self.limit {
            return Err(Error::Limit {
                op: self.op,
                detail: format!(
                    "binding {len} elements of a {} tensor takes {size} bytes, over the device's \
                     storage binding limit of {} bytes",
                    t.desc.shape, self.limit
                ),
            });
        }
        self.bound.push(BindRange {
            tensor: t.id,
            offset: aligned,
            size,
        });
        Ok(((begin - aligned) * 8 / unit) as u32)
    }

    /// Binds the whole tensor; fails with a clear message if it exceeds the binding limit.
    pub fn bind_all(&mut self, t: &TensorArg) -> Result<u32> {
        self.bind(t, 0, t.desc.shape.numel())
    }

    /// Records a dispatch of `kernel` with `params` over the bindings made since the last
    /// dispatch, which must be the kernel's reads and then its output.
    pub fn dispatch<P: ParamBlock>(
        &mut self,
        kernel: Kernel,
        params: &P,
        groups: [u32; 3],
    ) -> Result<()> {
        let mut kernel = kernel.with_params::<P>();
        if !kernel.defines.contains_key("T") && self.float.is_float() {
            kernel = kernel.define("T", self.float.wgsl());
        }
        if groups.iter().any(|g| *g > self.max_groups) {
            return Err(Error::Limit {
                op: self.op,
                detail: format!(
                    "dispatch of {groups:?} workgroups exceeds the device's {} per dimension",
                    self.max_groups
                ),
            });
        }
        let bindings = std::mem::take(&mut self.bound);
        if bindings.len() as u32 != kernel.read_count() + 1 {
            return Err(Error::Graph(format!(
                "{}: kernel `{}` takes {} bindings but {} were made",
                self.op,
                kernel.shader,
                kernel.read_count() + 1,
                bindings.len()
            )));
        }
        if groups.contains(&0) {
            return Ok(());
        }
        self.out.push(Dispatch {
            kernel,
            bindings,
            params: params.words(),
            groups,
        });
        Ok(())
    }

    /// Splits `n` workgroups over x and y so neither exceeds the per-dimension limit. Kernels
    /// recover the flat index as `wid.x + wid.y * num_workgroups.x`.
    pub fn grid(&self, n: usize) -> [u32; 3] {
        let max = self.max_groups as usize;
        if n <= max {
            [n as u32, 1, 1]
        } else {
            let y = n.div_ceil(max);
            [n.div_ceil(y) as u32, y as u32, 1]
        }
    }
}
