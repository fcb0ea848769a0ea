//! A restricted reader for the pickles inside PyTorch checkpoints. It executes nothing: it
//! understands the opcodes `torch.save` writes and accepts exactly the globals that rebuild
//! tensors (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, the `torch.*Storage`
//! types, `collections.OrderedDict`). Any other global (`os.system`, `builtins.eval`, …) is an
//! error naming it, before anything could use it.
//!
//! Its work is bounded by the input: each opcode makes at most one node in an arena, containers
//! hold the ids of their items, and the memo holds ids, so a value referenced a million times
//! is stored once and later appends are seen through every reference, as in Python. Only the
//! result is expanded into a tree, at most [`MAX_DEPTH`] deep and [`MAX_VALUES`] values in all
//! (a 382-byte pickle that references its lists from the memo would expand to gigabytes).

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

/// How deep the result may nest (a state dict is 2 to 4 levels deep).
pub const MAX_DEPTH: usize = 64;
/// How many values the result may hold in all (the released T5-XXL has 220 tensors, each a
/// handful of values).
pub const MAX_VALUES: usize = 1 << 22;

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

type Id = usize;

/// A value in the arena: containers hold ids, anything else is a leaf.
enum Node {
    Leaf(Value),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
}

struct Arena {
    nodes: Vec<Node>,
    /// Items copied by calls so far: bounded, or calling `OrderedDict` on one long list
    /// again and again would take quadratic time.
    copied: usize,
}

impl Arena {
    fn add(&mut self, n: Node) -> Id {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn leaf(&self, id: Id) -> Option<&Value> {
        match &self.nodes[id] {
            Node::Leaf(v) => Some(v),
            _ => None,
        }
    }

    fn is_mark(&self, id: Id) -> bool {
        matches!(self.leaf(id), Some(Value::Mark))
    }

    /// The tree under `id`, within the depth and the count of values left in `budget`.
    fn tree(&self, id: Id, depth: usize, budget: &mut usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(bad(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        *budget = budget.checked_sub(1).ok_or_else(|| {
            bad(format!(
                "it expands to more than {MAX_VALUES} values (memo references)"
            ))
        })?;
        let all = |ids: &[Id], budget: &mut usize| -> Result<Vec<Value>> {
            ids.iter()
                .map(|i| self.tree(*i, depth + 1, budget))
                .collect()
        };
        Ok(match &self.nodes[id] {
            Node::Leaf(v) => v.clone(),
            Node::Tuple(t) => Value::Tuple(all(t, budget)?),
            Node::List(l) => Value::List(all(l, budget)?),
            Node::Dict(d) => {
                let mut pairs = Vec::with_capacity(d.len());
                for (k, v) in d {
                    pairs.push((
                        self.tree(*k, depth + 1, budget)?,
                        self.tree(*v, depth + 1, budget)?,
                    ));
                }
                Value::Dict(pairs)
            }
        })
    }

    /// A small value (a call's arguments) as a tree.
    fn small(&self, id: Id) -> Result<Value> {
        let mut budget = 4096;
        self.tree(id, 0, &mut budget)
    }
}

/// Applies an allowed callable to its arguments (a tuple node); the result's id.
fn call(a: &mut Arena, f: Id, args: Id) -> Result<Id> {
    let (m, n) = match a.leaf(f) {
        Some(Value::Global(m, n)) => (m.clone(), n.clone()),
        _ => return Err(bad("REDUCE of something that is not a global")),
    };
    let args: Vec<Id> = match &a.nodes[args] {
        Node::Tuple(t) if t.len() <= 8 => t.clone(),
        Node::Tuple(_) => return Err(bad("a call with more than 8 arguments")),
        _ => return Err(bad("REDUCE arguments must be a tuple")),
    };
    match (m.as_str(), n.as_str()) {
        // OrderedDict() or OrderedDict([(key, value), ...]).
        ("collections", "OrderedDict") => {
            let items: Vec<Id> = match args.first().map(|i| &a.nodes[*i]) {
                None => Vec::new(),
                Some(Node::List(l) | Node::Tuple(l)) => l.clone(),
                Some(_) => return Err(bad("OrderedDict of something that is not a list")),
            };
            a.copied += items.len();
            if a.copied > MAX_VALUES {
                return Err(bad(format!("its calls copy more than {MAX_VALUES} values")));
            }
            let mut pairs = Vec::with_capacity(items.len());
            for i in items {
                match &a.nodes[i] {
                    Node::Tuple(kv) | Node::List(kv) if kv.len() == 2 => pairs.push((kv[0], kv[1])),
                    _ => return Err(bad("OrderedDict item that is not a (key, value) pair")),
                }
            }
            Ok(a.add(Node::Dict(pairs)))
        }
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            if args.len() < 4 {
                return Err(bad("_rebuild_tensor with too few arguments"));
            }
            let (key, dtype) = match a.leaf(args[0]) {
                Some(Value::Storage { key, dtype }) => (key.clone(), *dtype),
                _ => return Err(bad("tensor without storage")),
            };
            let t = Value::Tensor(TensorRef {
                storage: key,
                dtype,
                offset: as_usize(&a.small(args[1])?)?,
                shape: as_dims(&a.small(args[2])?)?,
                stride: as_dims(&a.small(args[3])?)?,
            });
            Ok(a.add(Node::Leaf(t)))
        }
        ("torch._utils", "_rebuild_parameter") => {
            args.first().copied().ok_or_else(|| bad("empty parameter"))
        }
        ("torch", "device") => Ok(a.add(Node::Leaf(Value::None))),
        (m, n) => Err(refused(format!("refusing to call `{m}.{n}`"))),
    }
}

/// Parses a pickle; returns its value. Only data and tensor rebuilding are accepted.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut a = Arena {
        nodes: Vec::new(),
        copied: 0,
    };
    let mut stack: Vec<Id> = Vec::new();
    let mut memo: std::collections::HashMap<u32, Id> = Default::default();
    let pop = |s: &mut Vec<Id>| s.pop().ok_or_else(|| bad("stack underflow"));
    let pop_mark = |s: &mut Vec<Id>, a: &Arena| -> Result<Vec<Id>> {
        let at = s
            .iter()
            .rposition(|v| a.is_mark(*v))
            .ok_or_else(|| bad("missing mark"))?;
        let items = s.split_off(at + 1);
        s.pop();
        Ok(items)
    };
    let pairs = |items: Vec<Id>| -> Result<Vec<(Id, Id)>> {
        match items.len() % 2 {
            0 => Ok(items.chunks(2).map(|c| (c[0], c[1])).collect()),
            _ => Err(bad("a dict's items are not key, value pairs")),
        }
    };
    loop {
        let op = r.u8()?;
        let leaf = |v: Value| Node::Leaf(v);
        let node = match op {
            0x80 => {
                r.u8()?; // PROTO
                continue;
            }
            0x95 => {
                r.le::<8>()?; // FRAME
                continue;
            }
            b'.' => {
                // STOP
                let root = pop(&mut stack)?;
                let mut budget = MAX_VALUES;
                return a.tree(root, 0, &mut budget);
            }
            b'}' => Node::Dict(Vec::new()),
            b']' => Node::List(Vec::new()),
            b')' => Node::Tuple(Vec::new()),
            b'(' => leaf(Value::Mark),
            b'N' => leaf(Value::None),
            0x88 => leaf(Value::Bool(true)),
            0x89 => leaf(Value::Bool(false)),
            b'J' => leaf(Value::Int(i32::from_le_bytes(r.le()?) as i64)),
            b'K' => leaf(Value::Int(r.u8()? as i64)),
            b'M' => leaf(Value::Int(u16::from_le_bytes(r.le()?) as i64)),
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
                leaf(Value::Int(v))
            }
            b'G' => leaf(Value::Float(f64::from_be_bytes(r.le()?))),
            b'X' => {
                let n = u32::from_le_bytes(r.le()?) as usize;
                leaf(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()))
            }
            0x8c => {
                let n = r.u8()? as usize;
                leaf(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()))
            }
            0x8d => {
                let n = usize::try_from(u64::from_le_bytes(r.le()?)).unwrap_or(usize::MAX);
                leaf(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()))
            }
            b'U' | b'C' => {
                let n = r.u8()? as usize;
                leaf(Value::Bytes(r.take(n)?.to_vec()))
            }
            b'T' | b'B' => {
                let n = u32::from_le_bytes(r.le()?) as usize;
                leaf(Value::Bytes(r.take(n)?.to_vec()))
            }
            b't' => Node::Tuple(pop_mark(&mut stack, &a)?),
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(bad("stack underflow"));
                }
                Node::Tuple(stack.split_off(stack.len() - n))
            }
            b'l' => Node::List(pop_mark(&mut stack, &a)?),
            b'd' => Node::Dict(pairs(pop_mark(&mut stack, &a)?)?),
            b'a' | b'e' => {
                let items = match op {
                    b'a' => vec![pop(&mut stack)?],
                    _ => pop_mark(&mut stack, &a)?,
                };
                match stack.last().map(|i| &mut a.nodes[*i]) {
                    Some(Node::List(l)) => l.extend(items),
                    _ => return Err(bad("append to a non-list")),
                }
                continue;
            }
            b's' | b'u' => {
                let items = match op {
                    b's' => {
                        let v = pop(&mut stack)?;
                        let k = pop(&mut stack)?;
                        vec![k, v]
                    }
                    _ => pop_mark(&mut stack, &a)?,
                };
                let items = pairs(items)?;
                match stack.last().map(|i| &mut a.nodes[*i]) {
                    Some(Node::Dict(d)) => d.extend(items),
                    _ => return Err(bad("setitem on a non-dict")),
                }
                continue;
            }
            b'c' | 0x93 => {
                let (m, n) = if op == b'c' {
                    (r.line()?, r.line()?)
                } else {
                    let n = pop(&mut stack)?;
                    let m = pop(&mut stack)?;
                    match (a.leaf(m), a.leaf(n)) {
                        (Some(Value::Str(m)), Some(Value::Str(n))) => (m.clone(), n.clone()),
                        _ => return Err(bad("STACK_GLOBAL needs two strings")),
                    }
                };
                if !allowed(&m, &n) {
                    return Err(refused(format!("it asks for the global `{m}.{n}`, which a checkpoint does not need; refusing to load it")));
                }
                leaf(Value::Global(m, n))
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let f = pop(&mut stack)?;
                let id = call(&mut a, f, args)?;
                stack.push(id);
                continue;
            }
            b'0' => {
                pop(&mut stack)?; // POP
                continue;
            }
            b'1' => {
                pop_mark(&mut stack, &a)?; // POP_MARK
                continue;
            }
            b'b' => {
                // BUILD: the state of an OrderedDict or a tensor's extra state; not needed.
                pop(&mut stack)?;
                continue;
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                let t: &[Id] = match &a.nodes[pid] {
                    Node::Tuple(t) => t,
                    _ => return Err(bad("unexpected persistent id")),
                };
                let part = |i: usize| t.get(i).and_then(|id| a.leaf(*id));
                match (part(0), part(1), part(2)) {
                    (Some(Value::Str(kind)), Some(Value::Global(_, ty)), Some(Value::Str(key)))
                        if kind == "storage" =>
                    {
                        let dtype = StorageType::from_name(ty)
                            .ok_or_else(|| bad(format!("unknown storage type {ty}")))?;
                        leaf(Value::Storage {
                            key: key.clone(),
                            dtype,
                        })
                    }
                    _ => return Err(bad("unexpected persistent id")),
                }
            }
            b'q' | b'r' | 0x94 => {
                let i = match op {
                    b'q' => r.u8()? as u32,
                    b'r' => u32::from_le_bytes(r.le()?),
                    _ => memo.len() as u32,
                };
                let top = *stack.last().ok_or_else(|| bad("memo of empty stack"))?;
                memo.insert(i, top);
                continue;
            }
            b'h' | b'j' => {
                let i = match op {
                    b'h' => r.u8()? as u32,
                    _ => u32::from_le_bytes(r.le()?),
                };
                stack.push(*memo.get(&i).ok_or_else(|| bad("unknown memo"))?);
                continue;
            }
            other => {
                return Err(bad(format!(
                    "unsupported opcode 0x{other:02x} at byte {}",
                    r.pos - 1
                )))
            }
        };
        let id = a.add(node);
        stack.push(id);
    }
}
