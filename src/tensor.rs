//! Tensor descriptions (shape + dtype) and plain host tensors used by the CPU reference.

use std::fmt;

/// Element type of a tensor. Activations are f32; index maps (gathers) are u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    U32,
}

impl DType {
    pub fn size(self) -> usize {
        4
    }
}

/// A shape, printed the PyTorch way: `(2, 64, 1152)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// The last dimension (1 for a scalar).
    pub fn last(&self) -> usize {
        self.0.last().copied().unwrap_or(1)
    }
    /// Product of all dimensions but the last: the number of rows of a row-major matrix view.
    pub fn rows(&self) -> usize {
        self.numel() / self.last().max(1)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() == 1 {
            write!(f, ",")?;
        }
        write!(f, ")")
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}

/// What the graph knows about a tensor before anything runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorDesc {
    pub shape: Shape,
    pub dtype: DType,
}

impl TensorDesc {
    pub fn f32(shape: impl Into<Shape>) -> Self {
        TensorDesc {
            shape: shape.into(),
            dtype: DType::F32,
        }
    }
    pub fn u32(shape: impl Into<Shape>) -> Self {
        TensorDesc {
            shape: shape.into(),
            dtype: DType::U32,
        }
    }
    pub fn bytes(&self) -> u64 {
        (self.shape.numel() * self.dtype.size()) as u64
    }
}

/// Host data of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    U32(Vec<u32>),
}

/// A tensor in host memory: what the CPU reference computes on and what readback returns.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Shape,
    pub data: HostData,
}

impl HostTensor {
    pub fn f32(shape: impl Into<Shape>, data: Vec<f32>) -> Self {
        let shape = shape.into();
        debug_assert_eq!(shape.numel(), data.len());
        HostTensor {
            shape,
            data: HostData::F32(data),
        }
    }
    pub fn u32(shape: impl Into<Shape>, data: Vec<u32>) -> Self {
        let shape = shape.into();
        debug_assert_eq!(shape.numel(), data.len());
        HostTensor {
            shape,
            data: HostData::U32(data),
        }
    }
    pub fn zeros(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let n = shape.numel();
        HostTensor::f32(shape, vec![0.0; n])
    }
    pub fn desc(&self) -> TensorDesc {
        TensorDesc {
            shape: self.shape.clone(),
            dtype: match self.data {
                HostData::F32(_) => DType::F32,
                HostData::U32(_) => DType::U32,
            },
        }
    }
    /// The f32 data. Ops only call this on tensors the graph typed as f32.
    pub fn as_f32(&self) -> &[f32] {
        match &self.data {
            HostData::F32(v) => v,
            HostData::U32(_) => &[],
        }
    }
    pub fn as_u32(&self) -> &[u32] {
        match &self.data {
            HostData::U32(v) => v,
            HostData::F32(_) => &[],
        }
    }
    pub fn into_f32(self) -> Vec<f32> {
        match self.data {
            HostData::F32(v) => v,
            HostData::U32(v) => v.into_iter().map(|x| x as f32).collect(),
        }
    }
    /// Raw little-endian bytes, as uploaded to the GPU.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            HostData::F32(v) => bytemuck::cast_slice(v),
            HostData::U32(v) => bytemuck::cast_slice(v),
        }
    }
}
