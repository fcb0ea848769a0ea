//! A table the host reads row by row (T5's token table: 32,128 × 4,096 in the released
//! encoder, 0.49 GiB in f32, in wasm memory in the browser), kept as small as its component
//! allows:
//!
//! - as bf16 when the file holds bf16 (as `ptdit quantize --rest-bf16` writes it): half of
//!   f32, the same values;
//! - as q8 rows when the component's Linear weights are packed (`ptdit quantize`), in the
//!   Linear weights' own layout (`crate::quant`: int8, one f16 scale per 32 values of a row):
//!   about a quarter of f32, with q8's error;
//! - as f32 otherwise.
//!
//! It is built from the f32 pieces a file streams in, so the f32 table never exists whole.

use crate::quant::{self, BLOCK};
use crate::tensor::{DType, HostTensor, Shape};

/// How a host table is kept, as its component asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostForm {
    /// The file's values exactly: bf16 when the file holds bf16, f32 otherwise.
    Exact,
    /// q8 rows when each row holds whole blocks, as [`HostForm::Exact`] otherwise.
    Q8,
}

#[derive(Clone, Debug, PartialEq)]
enum Data {
    F32(Vec<f32>),
    Bf16(Vec<half::bf16>),
    /// The int8 values, then one f16 scale per block.
    Q8 {
        values: Vec<i8>,
        scales: Vec<half::f16>,
    },
}

/// A 2-D table `(rows, width)` on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTable {
    pub shape: Shape,
    data: Data,
}

impl HostTable {
    /// `t` as it is (f32).
    pub fn from_tensor(t: HostTensor) -> Self {
        HostTable {
            shape: t.shape.clone(),
            data: Data::F32(t.as_f32().to_vec()),
        }
    }

    /// The table's width (its last dimension).
    pub fn width(&self) -> usize {
        self.shape.dims().last().copied().unwrap_or(0)
    }

    /// Appends row `i` (as f32) to `out`; `None` when the table has no such row.
    pub fn row_into(&self, i: usize, out: &mut Vec<f32>) -> Option<()> {
        let w = self.width();
        let rows = self.shape.numel().checked_div(w)?;
        if i >= rows {
            return None;
        }
        let at = i * w;
        match &self.data {
            Data::F32(v) => out.extend_from_slice(&v[at..at + w]),
            Data::Bf16(v) => out.extend(v[at..at + w].iter().map(|x| x.to_f32())),
            Data::Q8 { values, scales } => out.extend(
                values[at..at + w]
                    .iter()
                    .enumerate()
                    .map(|(j, &q)| q as f32 * scales[(at + j) / BLOCK].to_f32()),
            ),
        }
        Some(())
    }

    /// Every value as f32 (for small tables read whole, such as T5's bucket table).
    pub fn to_tensor(&self) -> HostTensor {
        let rows = self.shape.numel().checked_div(self.width()).unwrap_or(0);
        let mut v = Vec::with_capacity(self.shape.numel());
        for i in 0..rows {
            self.row_into(i, &mut v);
        }
        HostTensor::f32(self.shape.clone(), v)
    }

    /// Host bytes the table holds.
    pub fn bytes(&self) -> usize {
        match &self.data {
            Data::F32(v) => 4 * v.len(),
            Data::Bf16(v) => 2 * v.len(),
            Data::Q8 { values, scales } => values.len() + 2 * scales.len(),
        }
    }

    /// The form it is kept in: `f32`, `bf16` or `q8`.
    pub fn kept_as(&self) -> &'static str {
        match &self.data {
            Data::F32(_) => "f32",
            Data::Bf16(_) => "bf16",
            Data::Q8 { .. } => "q8",
        }
    }
}

/// A [`HostTable`] filled from f32 pieces in order.
#[derive(Debug)]
pub struct TableBuilder {
    shape: Shape,
    data: Data,
    /// Values of a q8 block not yet complete.
    pending: Vec<f32>,
}

impl TableBuilder {
    /// A table of `shape` whose file stores it as `file_bf16` (or not), kept as `form` asks.
    pub fn new(shape: &[usize], file_bf16: bool, form: HostForm) -> Self {
        let width = shape.last().copied().unwrap_or(0);
        let data = match form {
            HostForm::Q8 if width > 0 && quant::fits_rows(DType::Q8, width) => Data::Q8 {
                values: Vec::new(),
                scales: Vec::new(),
            },
            _ if file_bf16 => Data::Bf16(Vec::new()),
            _ => Data::F32(Vec::new()),
        };
        TableBuilder {
            shape: Shape(shape.to_vec()),
            data,
            pending: Vec::new(),
        }
    }

    /// Appends the next values.
    pub fn push(&mut self, values: &[f32]) {
        match &mut self.data {
            Data::F32(v) => v.extend_from_slice(values),
            // Exact: the values came from bf16.
            Data::Bf16(v) => v.extend(values.iter().map(|&x| half::bf16::from_f32(x))),
            Data::Q8 { .. } => {
                self.pending.extend_from_slice(values);
                let whole = self.pending.len() / BLOCK * BLOCK;
                let rest = self.pending.split_off(whole);
                let full = std::mem::replace(&mut self.pending, rest);
                self.quantize(&full);
            }
        }
    }

    fn quantize(&mut self, x: &[f32]) {
        if let Data::Q8 { values, scales } = &mut self.data {
            let (mut q, mut s) = (Vec::new(), Vec::new());
            quant::quantize_into(DType::Q8, x, &mut q, &mut s);
            values.extend(q.iter().map(|&b| b as i8));
            scales.extend(
                s.chunks_exact(2)
                    .map(|p| half::f16::from_le_bytes([p[0], p[1]])),
            );
        }
    }

    /// The table (a last incomplete block, which a whole table never has, is quantized alone).
    pub fn finish(mut self) -> HostTable {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.quantize(&rest);
        }
        HostTable {
            shape: self.shape,
            data: self.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: usize, width: usize) -> Vec<f32> {
        (0..rows * width)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0)
            .collect()
    }

    /// Pieces that split blocks and rows give the table the whole tensor would.
    fn build(x: &[f32], shape: &[usize], bf16: bool, form: HostForm) -> HostTable {
        let mut b = TableBuilder::new(shape, bf16, form);
        for piece in x.chunks(45) {
            b.push(piece);
        }
        b.finish()
    }

    #[test]
    fn q8_rows_are_the_linear_weights_round_trip() {
        let (rows, w) = (5, 64);
        let x = table(rows, w);
        let t = build(&x, &[rows, w], false, HostForm::Q8);
        assert_eq!(t.kept_as(), "q8");
        assert_eq!(t.bytes(), rows * w + 2 * rows * w / 32);
        let expect = quant::round_trip(DType::Q8, &x);
        let mut got = Vec::new();
        for i in 0..rows {
            t.row_into(i, &mut got).unwrap();
        }
        assert_eq!(got, expect);
        assert!(t.row_into(rows, &mut got).is_none(), "no row 5");
    }

    #[test]
    fn bf16_files_are_kept_as_bf16_exactly_and_others_as_f32() {
        let x: Vec<f32> = table(3, 40)
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_f32())
            .collect();
        let t = build(&x, &[3, 40], true, HostForm::Exact);
        assert_eq!((t.kept_as(), t.bytes()), ("bf16", 2 * 120));
        assert_eq!(t.to_tensor().as_f32(), &x[..]);
        // q8 asked, but rows of 40 hold no whole blocks: kept exactly.
        let t = build(&x, &[3, 40], false, HostForm::Q8);
        assert_eq!((t.kept_as(), t.to_tensor().as_f32()), ("f32", &x[..]));
    }
}
