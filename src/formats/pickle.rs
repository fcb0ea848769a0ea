//! A restricted reader for the pickles inside PyTorch checkpoints. It executes nothing: it
//! understands the opcodes `torch.save` writes and accepts exactly the globals that rebuild
//! tensors (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, the `torch.*Storage`
//! types, `collections.OrderedDict`). Any other global (`os.system`, `builtins.eval`, …) is an
//! error naming it, before anything could use it.

use crate::error::{Error, LoadError, Result};

/// Element types of PyTorch storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageType {
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageType {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => StorageType::F32,
            "HalfStorage" => StorageType::F16,
            "BFloat16Storage" => StorageType::BF16,
            "DoubleStorage" => StorageType::F64,
            "LongStorage" => StorageType::I64,
            "IntStorage" => StorageType::I32,
            "ShortStorage" => StorageType::I16,
            "CharStorage" => StorageType::I8,
            "ByteStorage" => StorageType::U8,
            "BoolStorage" => StorageType::Bool,
            _ => return None,
        })
    }
    pub fn size(self) -> usize {
        match self {
            StorageType::F64 | StorageType::I64 => 8,
            StorageType::F32 | StorageType::I32 => 4,
            StorageType::F16 | StorageType::BF16 | StorageType::I16 => 2,
            StorageType::I8 | StorageType::U8 | StorageType::Bool => 1,
        }
    }
}

/// A tensor as the pickle describes it: which storage, and the view into it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: String,
    pub dtype: StorageType,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Storage { key: String, dtype: StorageType },
    Tensor(TensorRef),
    Mark,
}

fn allowed(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        ("collections", "OrderedDict")
            | ("torch._utils", "_rebuild_tensor_v2")
            | ("torch._utils", "_rebuild_tensor")
            | ("torch._utils", "_rebuild_parameter")
            | ("torch", "device")
    ) || (module == "torch" && StorageType::from_name(name).is_some())
}

fn bad(msg: impl Into<String>) -> Error {
    Error::load(LoadError::BadFile {
        format: "checkpoint pickle",
        detail: msg.into(),
    })
}

/// What the pickle asks for is refused, never run.
fn refused(msg: String) -> Error {
    Error::load(LoadError::Refused(msg))
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| bad("truncated"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn line(&mut self) -> Result<String> {
        let rest = &self.b[self.pos..];
        let n = rest
            .iter()
            .position(|c| *c == b'\n')
            .ok_or_else(|| bad("unterminated line"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
}

fn as_usize(v: &Value) -> Result<usize> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(bad(format!(
            "expected a non-negative integer, found {other:?}"
        ))),
    }
}

fn as_dims(v: &Value) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(t) | Value::List(t) => t.iter().map(as_usize).collect(),
        other => Err(bad(format!("expected a shape tuple, found {other:?}"))),
    }
}

/// Applies an allowed callable to its arguments.
fn call(f: &Value, args: Vec<Value>) -> Result<Value> {
    let (m, n) = match f {
        Value::Global(m, n) => (m.as_str(), n.as_str()),
        other => return Err(bad(format!("cannot call {other:?}"))),
    };
    match (m, n) {
        ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            if args.len() < 4 {
                return Err(bad("_rebuild_tensor with too few arguments"));
            }
            let (key, dtype) = match &args[0] {
                Value::Storage { key, dtype } => (key.clone(), *dtype),
                other => return Err(bad(format!("tensor without storage: {other:?}"))),
            };
            Ok(Value::Tensor(TensorRef {
                storage: key,
                dtype,
                offset: as_usize(&args[1])?,
                shape: as_dims(&args[2])?,
                stride: as_dims(&args[3])?,
            }))
        }
        ("torch._utils", "_rebuild_parameter") => args
            .into_iter()
            .next()
            .ok_or_else(|| bad("empty parameter")),
        ("torch", "device") => Ok(Value::None),
        (m, n) => Err(refused(format!("refusing to call `{m}.{n}`"))),
    }
}

/// Parses a pickle; returns its value. Only data and tensor rebuilding are accepted.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: std::collections::HashMap<u32, Value> = Default::default();
    let pop = |s: &mut Vec<Value>| s.pop().ok_or_else(|| bad("stack underflow"));
    let pop_mark = |s: &mut Vec<Value>| -> Result<Vec<Value>> {
        let at = s
            .iter()
            .rposition(|v| *v == Value::Mark)
            .ok_or_else(|| bad("missing mark"))?;
        let items = s.split_off(at + 1);
        s.pop();
        Ok(items)
    };
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.le::<8>()?; // FRAME
            }
            b'.' => return pop(&mut stack), // STOP
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b'(' => stack.push(Value::Mark),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'J' => stack.push(Value::Int(i32::from_le_bytes(r.le()?) as i64)),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(u16::from_le_bytes(r.le()?) as i64)),
            0x8a => {
                // LONG1
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                if n > 8 {
                    return Err(bad("integer too large"));
                }
                let mut v: i64 = 0;
                for (i, byte) in b.iter().enumerate() {
                    v |= (*byte as i64) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => stack.push(Value::Float(f64::from_be_bytes(r.le()?))),
            b'X' => {
                let n = u32::from_le_bytes(r.le()?) as usize;
                stack.push(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            0x8c => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            0x8d => {
                let n = u64::from_le_bytes(r.le()?) as usize;
                stack.push(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            b'U' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'T' | b'B' => {
                let n = u32::from_le_bytes(r.le()?) as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'C' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(bad("stack underflow"));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'l' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::List(items));
            }
            b'd' => {
                let items = pop_mark(&mut stack)?;
                let pairs = items
                    .chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect();
                stack.push(Value::Dict(pairs));
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop(&mut stack)?]
                } else {
                    pop_mark(&mut stack)?
                };
                match stack.last_mut() {
                    Some(Value::List(l)) => l.extend(items),
                    _ => return Err(bad("append to a non-list")),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack)?
                };
                match stack.last_mut() {
                    Some(Value::Dict(d)) => d.extend(
                        items
                            .chunks(2)
                            .filter(|c| c.len() == 2)
                            .map(|c| (c[0].clone(), c[1].clone())),
                    ),
                    _ => return Err(bad("setitem on a non-dict")),
                }
            }
            b'c' | 0x93 => {
                let (m, n) = if op == b'c' {
                    (r.line()?, r.line()?)
                } else {
                    let n = pop(&mut stack)?;
                    let m = pop(&mut stack)?;
                    match (m, n) {
                        (Value::Str(m), Value::Str(n)) => (m, n),
                        _ => return Err(bad("STACK_GLOBAL needs two strings")),
                    }
                };
                if !allowed(&m, &n) {
                    return Err(refused(format!("it asks for the global `{m}.{n}`, which a checkpoint does not need; refusing to load it")));
                }
                stack.push(Value::Global(m, n));
            }
            b'R' => {
                let args = match pop(&mut stack)? {
                    Value::Tuple(a) => a,
                    other => {
                        return Err(bad(format!(
                            "REDUCE arguments must be a tuple, found {other:?}"
                        )))
                    }
                };
                let f = pop(&mut stack)?;
                stack.push(call(&f, args)?);
            }
            b'b' => {
                // BUILD: the state of an OrderedDict or a tensor's extra state; not needed.
                pop(&mut stack)?;
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                let t = match pid {
                    Value::Tuple(t) => t,
                    other => return Err(bad(format!("unexpected persistent id {other:?}"))),
                };
                match (t.first(), t.get(1), t.get(2)) {
                    (Some(Value::Str(kind)), Some(Value::Global(_, ty)), Some(Value::Str(key)))
                        if kind == "storage" =>
                    {
                        let dtype = StorageType::from_name(ty)
                            .ok_or_else(|| bad(format!("unknown storage type {ty}")))?;
                        stack.push(Value::Storage {
                            key: key.clone(),
                            dtype,
                        });
                    }
                    _ => return Err(bad(format!("unexpected persistent id {t:?}"))),
                }
            }
            b'q' => {
                let i = r.u8()? as u32;
                memo.insert(
                    i,
                    stack
                        .last()
                        .cloned()
                        .ok_or_else(|| bad("memo of empty stack"))?,
                );
            }
            b'r' => {
                let i = u32::from_le_bytes(r.le()?);
                memo.insert(
                    i,
                    stack
                        .last()
                        .cloned()
                        .ok_or_else(|| bad("memo of empty stack"))?,
                );
            }
            0x94 => {
                let i = memo.len() as u32;
                memo.insert(
                    i,
                    stack
                        .last()
                        .cloned()
                        .ok_or_else(|| bad("memo of empty stack"))?,
                );
            }
            b'h' => {
                let i = r.u8()? as u32;
                stack.push(memo.get(&i).cloned().ok_or_else(|| bad("unknown memo"))?);
            }
            b'j' => {
                let i = u32::from_le_bytes(r.le()?);
                stack.push(memo.get(&i).cloned().ok_or_else(|| bad("unknown memo"))?);
            }
            other => {
                return Err(bad(format!(
                    "unsupported opcode 0x{other:02x} at byte {}",
                    r.pos - 1
                )))
            }
        }
    }
}
