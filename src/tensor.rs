//! Tensor descriptions (shape + dtype) and plain host tensors used by the CPU reference.

use std::fmt;

/// Element type of a tensor on the GPU. Floats are f32, or f16 where the device has
/// `shader-f16` (host data is f32 either way, converted on upload and readback); index maps
/// (gathers) are u32.
///
/// `BF16`, `Q8` and `Q4` are storage formats of Linear weights only ([`crate::quant`]): the
/// host holds their values as f32, the device their packed words, and the matmul unpacks them
/// as it loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    U32,
    /// bfloat16, the released weights bit for bit; arithmetic in f32.
    BF16,
    /// int8, one f16 scale per block of 32 consecutive elements.
    Q8,
    /// int4 (offset 8), one f16 scale per block of 32 consecutive elements.
    Q4,
}

impl DType {
    /// Bytes of one element; only for the element types (the packed weight formats have no
    /// whole-byte element: see [`DType::bytes_for`]).
    pub fn size(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::Q8 | DType::Q4 => 1,
            _ => 4,
        }
    }
    /// Bits of one element's value (scales not counted).
    pub fn bits(self) -> usize {
        match self {
            DType::Q4 => 4,
            DType::Q8 => 8,
            DType::F16 | DType::BF16 => 16,
            DType::F32 | DType::U32 => 32,
        }
    }
    /// Bytes that `numel` elements take, the block scales of the quantized formats included.
    pub fn bytes_for(self, numel: usize) -> u64 {
        let n = numel as u64;
        match self {
            DType::Q8 | DType::Q4 => crate::quant::packed_bytes(self, numel),
            _ => n * self.size() as u64,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16)
    }
    /// A storage format of Linear weights that the matmul unpacks (`BF16`, `Q8`, `Q4`).
    pub fn is_packed(self) -> bool {
        matches!(self, DType::BF16 | DType::Q8 | DType::Q4)
    }
    /// The WGSL scalar type (packed formats are read as `u32` words).
    pub fn wgsl(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            _ => "u32",
        }
    }
    /// The name the CLI and model configs use (`f32`, `f16`, `bf16`, `q8`, `q4`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U32 => "u32",
            DType::BF16 => "bf16",
            DType::Q8 => "q8",
            DType::Q4 => "q4",
        }
    }
    /// The storage type named `name` (see [`DType::name`]), floats and packed formats only.
    pub fn from_name(name: &str) -> Option<Self> {
        [DType::F32, DType::F16, DType::BF16, DType::Q8, DType::Q4]
            .into_iter()
            .find(|d| d.name() == name)
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
    pub fn new(shape: impl Into<Shape>, dtype: DType) -> Self {
        TensorDesc {
            shape: shape.into(),
            dtype,
        }
    }

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
        self.dtype.bytes_for(self.shape.numel())
    }
    /// Bytes rounded up to whole 4-byte words, as buffer copies need.
    pub fn padded_bytes(&self) -> u64 {
        self.bytes().div_ceil(4) * 4
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
    /// True when this host data can be written to a tensor of `desc`: same shape, and f32 data
    /// for a float tensor (f32 or f16) or u32 data for a u32 one.
    pub fn fits(&self, desc: &TensorDesc) -> bool {
        self.shape == desc.shape
            && match self.data {
                HostData::F32(_) => desc.dtype.is_float() || desc.dtype.is_packed(),
                HostData::U32(_) => desc.dtype == DType::U32,
            }
    }

    /// The bytes a tensor of `dtype` holds on the GPU (f32 data is converted for f16 and packed
    /// for the weight formats).
    pub fn gpu_bytes(&self, dtype: DType) -> std::borrow::Cow<'_, [u8]> {
        match (&self.data, dtype) {
            (HostData::F32(v), d) if d.is_packed() => {
                std::borrow::Cow::Owned(crate::quant::pack(d, v))
            }
            (HostData::F32(v), DType::F16) => {
                let h: Vec<half::f16> = v.iter().map(|x| half::f16::from_f32(*x)).collect();
                let mut b: Vec<u8> = bytemuck::cast_slice(&h).to_vec();
                // Buffer copies move whole 4-byte words.
                b.resize(b.len().div_ceil(4) * 4, 0);
                std::borrow::Cow::Owned(b)
            }
            _ => std::borrow::Cow::Borrowed(self.bytes()),
        }
    }

    /// Host data from GPU bytes of a tensor of `desc` (trailing padding is ignored).
    pub fn from_gpu_bytes(desc: &TensorDesc, bytes: &[u8]) -> Self {
        let bytes = &bytes[..(desc.bytes() as usize).min(bytes.len())];
        match desc.dtype {
            DType::F32 => HostTensor::f32(desc.shape.clone(), bytemuck::pod_collect_to_vec(bytes)),
            DType::F16 => {
                let h: Vec<half::f16> = bytemuck::pod_collect_to_vec(bytes);
                HostTensor::f32(desc.shape.clone(), h.iter().map(|x| x.to_f32()).collect())
            }
            DType::U32 => HostTensor::u32(desc.shape.clone(), bytemuck::pod_collect_to_vec(bytes)),
            d => {
                let v = crate::quant::unpack(d, bytes, desc.shape.numel());
                HostTensor::f32(desc.shape.clone(), v)
            }
        }
    }

    /// The values a tensor of `dtype` would hold: f32 data rounded through f16 for f16, packed
    /// and unpacked again for the weight formats (the CPU reference mirrors the GPU's storage
    /// this way).
    pub fn rounded_to(mut self, dtype: DType) -> Self {
        match (&mut self.data, dtype) {
            (HostData::F32(v), DType::F16) => v
                .iter_mut()
                .for_each(|x| *x = half::f16::from_f32(*x).to_f32()),
            (HostData::F32(v), d) if d.is_packed() => *v = crate::quant::round_trip(d, v),
            _ => {}
        }
        self
    }

    /// Raw little-endian bytes, as uploaded to the GPU.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            HostData::F32(v) => bytemuck::cast_slice(v),
            HostData::U32(v) => bytemuck::cast_slice(v),
        }
    }
}

/// A tensor of a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub(crate) usize);

impl TensorId {
    /// Position of the tensor in the graph (dense, from 0).
    pub fn index(self) -> usize {
        self.0
    }
}
