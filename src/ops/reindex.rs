//! Re-indexing: permute the axes of a view of the input, with an optional roll per axis.
//!
//! The input is seen as `view` (same element count, row-major); output axis `j` is view axis
//! `perm[j]`, rolled by `shifts[perm[j]]` with `torch.roll` semantics; the result is laid out
//! row-major and given the shape `out`. Window partition and patchify are permutes of a split
//! view, e.g. `(B, F/wf, wf, H/wh, wh, W/ww, ww, D) -> (B, F/wf, H/wh, W/ww, wf, wh, ww, D)`.
//!
//! The output is split freely; the input is read at scattered places, so it is bound whole.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{DType, HostTensor, Shape, TensorDesc, TensorId};

crate::param_block! {
    pub struct ReindexParams {
        dims: [[u32; 4]; 3],
        strides: [[u32; 4]; 3],
        shifts: [[u32; 4]; 3],
        rank: u32,
        n: u32,
        start: u32,
        off_x: u32,
        off_out: u32,
    }
}

pub const MAX_RANK: usize = 12;

#[derive(Clone, Debug)]
pub struct Reindex {
    pub view: Vec<usize>,
    pub perm: Vec<usize>,
    /// Roll per view axis, normalised to `0..n`.
    pub shifts: Vec<usize>,
    pub out: Vec<usize>,
    /// Converts between float types on the way (f32 latents into an f16 model and back).
    pub out_dtype: Option<DType>,
}

impl Reindex {
    pub fn new(view: &[usize], perm: &[usize], shifts: &[i64], out: &[usize]) -> Self {
        let shifts = view
            .iter()
            .zip(shifts.iter().chain(std::iter::repeat(&0)))
            .map(|(n, s)| s.rem_euclid((*n).max(1) as i64) as usize)
            .collect();
        Reindex {
            view: view.to_vec(),
            perm: perm.to_vec(),
            shifts,
            out: out.to_vec(),
            out_dtype: None,
        }
    }

    /// Output dims, input strides and shifts, all in output-axis order.
    fn plan(&self) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
        let r = self.view.len();
        let mut strides = vec![1usize; r];
        for a in (0..r.saturating_sub(1)).rev() {
            strides[a] = strides[a + 1] * self.view[a + 1];
        }
        let dims = self.perm.iter().map(|p| self.view[*p]).collect();
        let st = self.perm.iter().map(|p| strides[*p]).collect();
        let sh = self.perm.iter().map(|p| self.shifts[*p]).collect();
        (dims, st, sh)
    }
}

impl Op for Reindex {
    fn name(&self) -> &'static str {
        "reindex"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        if inputs.len() != 1 {
            return Err(Error::shape("reindex", "takes 1 input"));
        }
        let x = &inputs[0].shape;
        let r = self.view.len();
        let mut seen = vec![false; r];
        let perm_ok = self.perm.len() == r
            && self
                .perm
                .iter()
                .all(|p| *p < r && !std::mem::replace(&mut seen[*p], true));
        if !perm_ok || r > MAX_RANK || r == 0 {
            return Err(Error::shape(
                "reindex",
                format!(
                    "{:?} is not a permutation of {r} axes (at most {MAX_RANK})",
                    self.perm
                ),
            ));
        }
        let vn: usize = self.view.iter().product();
        let on: usize = self.out.iter().product();
        if vn != x.numel() || on != vn {
            return Err(Error::shape(
                "reindex",
                format!(
                    "view {} and output {} must hold the {} elements of {x}",
                    Shape(self.view.clone()),
                    Shape(self.out.clone()),
                    x.numel()
                ),
            ));
        }
        let dtype = self.out_dtype.unwrap_or(inputs[0].dtype);
        if dtype.is_float() != inputs[0].dtype.is_float() {
            return Err(Error::shape(
                "reindex",
                format!("cannot convert {:?} to {dtype:?}", inputs[0].dtype),
            ));
        }
        Ok(TensorDesc {
            shape: Shape(self.out.clone()),
            dtype,
        })
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let (dims, strides, shifts) = self.plan();
        let n = out.shape.numel();
        let src_of = |o: usize| self.source(&dims, &strides, &shifts, o);
        match out.dtype {
            DType::U32 => {
                let x = inputs[0].as_u32();
                HostTensor::u32(out.shape.clone(), (0..n).map(|o| x[src_of(o)]).collect())
            }
            _ => {
                let x = inputs[0].as_f32();
                HostTensor::f32(out.shape.clone(), (0..n).map(|o| x[src_of(o)]).collect())
            }
        }
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let (dims, strides, shifts) = self.plan();
        let pack = |v: &[usize]| {
            let mut p = [[0u32; 4]; 3];
            for (i, x) in v.iter().take(MAX_RANK).enumerate() {
                p[i / 4][i % 4] = *x as u32;
            }
            p
        };
        let n = out.desc.shape.numel();
        let kernel = Kernel::new("reindex")
            .read("x")
            .define("T_IN", inputs[0].desc.dtype.wgsl())
            .define("T", out.desc.dtype.wgsl());
        let mut per = cx.rows_per_chunk("the output", 1)?;
        let room = cx.limit.saturating_sub(cx.align - 4) / 4;
        let whole = cx.fits(&inputs[0]);
        let mut s = 0;
        while s < n {
            let e = (s + per).min(n);
            // The input is read at scattered places: bind it whole when it fits, else the
            // exact span this chunk reads, halving the chunk until that span fits.
            let (lo, hi) = if whole {
                (0, inputs[0].desc.shape.numel())
            } else {
                let (lo, hi) = self.span(s, e);
                if (hi - lo) as u64 > room {
                    if e - s == 1 {
                        return Err(Error::Limit {
                            op: "reindex",
                            detail: "cannot bind the input range of a single element".into(),
                        });
                    }
                    per = (e - s) / 2;
                    continue;
                }
                (lo, hi)
            };
            let ox = cx.bind(&inputs[0], lo, hi - lo)?;
            let oo = cx.bind(out, s, e - s)?;
            // The kernel indexes the input by global source index; the binding starts at `lo`,
            // so the offset is `ox - lo`, which u32 arithmetic in the kernel wraps back.
            let off_x = ox.wrapping_sub(lo as u32);
            let params = ReindexParams {
                dims: pack(&dims),
                strides: pack(&strides),
                shifts: pack(&shifts),
                rank: dims.len() as u32,
                n: (e - s) as u32,
                start: s as u32,
                off_x,
                off_out: oo,
            };
            let grid = cx.grid((e - s).div_ceil(256));
            cx.dispatch(kernel.clone(), &params, grid)?;

            s = e;
        }
        Ok(())
    }
}

impl Reindex {
    /// Source index of output element `o`.
    fn source(&self, dims: &[usize], strides: &[usize], shifts: &[usize], o: usize) -> usize {
        let mut rest = o;
        let mut src = 0;
        for a in (0..dims.len()).rev() {
            let c = rest % dims[a];
            rest /= dims[a];
            src += ((c + dims[a] - shifts[a]) % dims[a]) * strides[a];
        }
        src
    }

    /// The range `[lo, hi)` of input elements that output elements `[s, e)` read.
    fn span(&self, s: usize, e: usize) -> (usize, usize) {
        let (dims, strides, shifts) = self.plan();
        (s..e)
            .map(|o| self.source(&dims, &strides, &shifts, o))
            .fold((usize::MAX, 0), |(lo, hi), x| (lo.min(x), hi.max(x + 1)))
    }
}

impl Graph {
    /// Permutes the axes of `view` (a row-major view of `x`), rolling view axis `a` by
    /// `shifts[a]`, and gives the result the shape `out`.
    pub fn reindex(
        &mut self,
        x: TensorId,
        view: &[usize],
        perm: &[usize],
        shifts: &[i64],
        out: &[usize],
    ) -> Result<TensorId> {
        self.push(Reindex::new(view, perm, shifts, out), &[x])
    }
    /// [`Graph::reindex`] that also converts to another float type.
    pub fn reindex_to(
        &mut self,
        x: TensorId,
        view: &[usize],
        perm: &[usize],
        out: &[usize],
        dtype: DType,
    ) -> Result<TensorId> {
        let mut op = Reindex::new(view, perm, &[], out);
        op.out_dtype = Some(dtype);
        self.push(op, &[x])
    }
    /// `x` in another float type.
    pub fn cast(&mut self, x: TensorId, dtype: DType) -> Result<TensorId> {
        let d = self.shape(x).dims().to_vec();
        let perm: Vec<usize> = (0..d.len()).collect();
        self.reindex_to(x, &d, &perm, &d, dtype)
    }
    /// `x.permute(perm)`.
    pub fn permute(&mut self, x: TensorId, perm: &[usize]) -> Result<TensorId> {
        let view = self.shape(x).dims().to_vec();
        let out: Vec<usize> = perm
            .iter()
            .map(|p| view.get(*p).copied().unwrap_or(0))
            .collect();
        self.reindex(x, &view, perm, &[], &out)
    }
    /// `torch.roll(x, shifts)` over all axes (`shifts` per axis, missing ones 0).
    pub fn roll(&mut self, x: TensorId, shifts: &[i64]) -> Result<TensorId> {
        let view = self.shape(x).dims().to_vec();
        let perm: Vec<usize> = (0..view.len()).collect();
        self.reindex(x, &view, &perm, shifts, &view)
    }
    /// Raster `(B, F, H, W, D)` tokens into window-major `(B·P, S, D)` for windows `(wf, wh, ww)`.
    pub fn window_partition(&mut self, x: TensorId, window: [usize; 3]) -> Result<TensorId> {
        let s = self.shape(x).dims().to_vec();
        if s.len() != 5 || (0..3).any(|a| window[a] == 0 || !s[a + 1].is_multiple_of(window[a])) {
            return Err(Error::shape(
                "window_partition",
                format!(
                    "{} is not (B, F, H, W, D) in whole windows {window:?}",
                    Shape(s)
                ),
            ));
        }
        let [wf, wh, ww] = window;
        let (b, f, h, w, d) = (s[0], s[1] / wf, s[2] / wh, s[3] / ww, s[4]);
        let view = [b, f, wf, h, wh, w, ww, d];
        self.reindex(
            x,
            &view,
            &[0, 1, 3, 5, 2, 4, 6, 7],
            &[],
            &[b * f * h * w, wf * wh * ww, d],
        )
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    pub(crate) fn permute(f: DType, shape: &[usize], perm: &[usize]) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let x = g.input("x", g.float_desc(shape.to_vec()))?;
        let y = g.permute(x, perm)?;
        g.output(y, "y")?;
        done(g, vec![("x", rand(shape, 23, 1.0))])
    }

    pub(crate) fn roll(f: DType, shape: &[usize], shifts: &[i64]) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let x = g.input("x", g.float_desc(shape.to_vec()))?;
        let y = g.roll(x, shifts)?;
        g.output(y, "y")?;
        done(g, vec![("x", rand(shape, 24, 1.0))])
    }

    /// `[b, frames, h, w, d]` cut into `win` windows.
    pub(crate) fn window_partition(f: DType, shape: [usize; 5], win: [usize; 3]) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let x = g.input("x", g.float_desc(shape))?;
        let y = g.window_partition(x, win)?;
        g.output(y, "y")?;
        done(g, vec![("x", rand(&shape, 25, 1.0))])
    }

    /// The same permute on a u32 constant (index maps are built this way); `f` does not apply.
    pub(crate) fn permute_u32(f: DType, shape: &[usize], perm: &[usize]) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let n: usize = shape.iter().product();
        let x = g.constant(
            "x",
            HostTensor::u32(shape.to_vec(), (0..n as u32).collect()),
        )?;
        let y = g.permute(x, perm)?;
        g.output(y, "y")?;
        done(g, vec![])
    }
}
