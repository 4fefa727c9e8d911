//! A restricted Python pickle machine: enough of the pickle language to read what
//! `torch.save` writes (dicts of tensors), and nothing that could run code.
//!
//! A pickle is a program: `GLOBAL` names any Python callable and `REDUCE` calls it. This
//! machine executes no Python. It knows a short list of globals ([`Global`]) that a
//! checkpoint legitimately needs (`collections.OrderedDict`, torch's tensor-rebuild
//! functions, the storage classes) and refuses every other one with an error naming it.
//! "Calling" a known global builds a plain value: a dict, or a [`TensorRef`] that points
//! into a storage which the caller (`pytorch`) resolves.
//!
//! Objects live in an arena ([`Pickled::objects`]) and values refer to them by index, so
//! a hostile pickle nesting a million lists costs a flat vector, never a deep recursion.
//!
//! Why not a crate: `serde-pickle` refuses `GLOBAL`/persistent ids (so it cannot read a
//! checkpoint), and the crates that read torch pickles (candle's, repugnant-pickle) either
//! come with a whole tensor library or trust every global.

use std::collections::HashMap;

/// A value on the machine's stack.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits 64 bits.
    Int(i64),
    /// An integer wider than 64 bits (little-endian two's complement bytes, as stored).
    Long(Vec<u8>),
    /// A float.
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes` / `bytearray`.
    Bytes(Vec<u8>),
    /// A known global (a class or function from the allow-list).
    Global(Global),
    /// An object in the arena: a container, a storage or a tensor.
    Object(usize),
}

/// A container or torch object built by the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A list or a set (order kept).
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict or `OrderedDict` (insertion order kept; a repeated key replaces).
    Dict(Vec<(Value, Value)>),
    /// A storage named by a persistent id.
    Storage(StorageRef),
    /// A tensor: a strided view of a storage.
    Tensor(TensorRef),
}

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDtype {
    /// `FloatStorage`.
    F32,
    /// `HalfStorage`.
    F16,
    /// `BFloat16Storage`.
    BF16,
    /// `DoubleStorage`.
    F64,
    /// `LongStorage`.
    I64,
    /// `IntStorage`.
    I32,
    /// `ShortStorage`.
    I16,
    /// `CharStorage`.
    I8,
    /// `ByteStorage`.
    U8,
    /// `BoolStorage`.
    Bool,
}

impl StorageDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StorageDtype::F64 | StorageDtype::I64 => 8,
            StorageDtype::F32 | StorageDtype::I32 => 4,
            StorageDtype::F16 | StorageDtype::BF16 | StorageDtype::I16 => 2,
            StorageDtype::I8 | StorageDtype::U8 | StorageDtype::Bool => 1,
        }
    }

    /// The dtype of a torch storage class name (`FloatStorage`, …).
    fn from_storage_class(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => StorageDtype::F32,
            "HalfStorage" => StorageDtype::F16,
            "BFloat16Storage" => StorageDtype::BF16,
            "DoubleStorage" => StorageDtype::F64,
            "LongStorage" => StorageDtype::I64,
            "IntStorage" => StorageDtype::I32,
            "ShortStorage" => StorageDtype::I16,
            "CharStorage" => StorageDtype::I8,
            "ByteStorage" => StorageDtype::U8,
            "BoolStorage" => StorageDtype::Bool,
            _ => return None,
        })
    }

    /// The name safetensors uses for this dtype (`F32`, `BF16`, …), for messages.
    pub fn name(self) -> &'static str {
        match self {
            StorageDtype::F32 => "F32",
            StorageDtype::F16 => "F16",
            StorageDtype::BF16 => "BF16",
            StorageDtype::F64 => "F64",
            StorageDtype::I64 => "I64",
            StorageDtype::I32 => "I32",
            StorageDtype::I16 => "I16",
            StorageDtype::I8 => "I8",
            StorageDtype::U8 => "U8",
            StorageDtype::Bool => "BOOL",
        }
    }
}

/// The globals a checkpoint may name. Everything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`: calling it makes a dict.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2` / `_rebuild_tensor`: makes a tensor.
    RebuildTensor,
    /// `torch._utils._rebuild_parameter` (and `_with_state`): passes its tensor through.
    RebuildParameter,
    /// `torch._tensor._rebuild_from_type_v2`: calls its function on its arguments.
    RebuildFromType,
    /// `torch.Tensor` / `torch.nn.parameter.Parameter`, as the type argument above.
    TensorClass,
    /// `_codecs.encode`: how protocol 2 stores `bytes`.
    CodecsEncode,
    /// A storage class (`torch.FloatStorage`, …), named inside persistent ids.
    StorageClass(StorageDtype),
}

impl Global {
    /// The allowed global `module.name`, if it is one.
    fn resolve(module: &str, name: &str) -> Option<Self> {
        Some(match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                Global::RebuildParameter
            }
            ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromType,
            ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => Global::TensorClass,
            ("_codecs", "encode") => Global::CodecsEncode,
            ("torch", class) => Global::StorageClass(StorageDtype::from_storage_class(class)?),
            _ => return None,
        })
    }
}

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location,
/// numel[, view])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// The storage's key: its entry `data/{key}` in a zip checkpoint.
    pub key: String,
    /// Element type.
    pub dtype: StorageDtype,
    /// Elements in the storage, as the persistent id says.
    pub numel: usize,
    /// Legacy format only: this is a view of storage `key` starting `offset` elements in.
    pub view_offset: usize,
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// Its storage.
    pub storage: StorageRef,
    /// Offset of element 0 in the storage, in elements.
    pub storage_offset: usize,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub strides: Vec<usize>,
}

/// A pickle the machine will not (or cannot) run.
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    /// The pickle names a global outside the allow-list.
    #[error(
        "the pickle asks for the Python global `{0}`, which a checkpoint of tensors never \
         needs; refusing to load it (nothing was executed)"
    )]
    ForeignGlobal(String),
    /// An opcode the machine does not run.
    #[error("unsupported pickle opcode 0x{opcode:02x} at byte {at}")]
    UnsupportedOpcode {
        /// The opcode.
        opcode: u8,
        /// Its position.
        at: usize,
    },
    /// The pickle ends inside an instruction or without `STOP`.
    #[error("the pickle is truncated (at byte {0})")]
    Truncated(usize),
    /// Anything else that does not fit (stack, memo, argument types).
    #[error("malformed pickle at byte {at}: {reason}")]
    Malformed {
        /// The position of the instruction.
        at: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The result of running a pickle: its top value and the objects it refers to.
#[derive(Debug, Default)]
pub struct Pickled {
    /// The arena [`Value::Object`] indexes into.
    pub objects: Vec<Object>,
    /// The value `STOP` returned.
    pub root: Value,
}

impl Default for Value {
    fn default() -> Self {
        Value::None
    }
}

impl Pickled {
    /// The object `value` refers to, if any.
    pub fn object(&self, value: &Value) -> Option<&Object> {
        match value {
            Value::Object(i) => self.objects.get(*i),
            _ => None,
        }
    }
}

/// Objects a pickle may create: far above any checkpoint (≈ 10 per tensor), far below
/// what would exhaust memory.
const MAX_OBJECTS: usize = 10_000_000;

/// Runs the pickle in `data` (starting at byte 0) and returns its value and the number
/// of bytes it used (a legacy checkpoint holds several pickles back to back).
pub fn unpickle(data: &[u8]) -> Result<(Pickled, usize), PickleError> {
    Machine::new(data).run()
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the current instruction started, for messages.
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    objects: Vec<Object>,
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            at: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            objects: Vec::new(),
        }
    }

    fn malformed(&self, reason: impl Into<String>) -> PickleError {
        PickleError::Malformed {
            at: self.at,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or(PickleError::Truncated(self.data.len()))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A 4-byte length.
    fn len32(&mut self) -> Result<usize, PickleError> {
        let n = self.u32()?;
        usize::try_from(n).map_err(|_| PickleError::Truncated(self.data.len()))
    }

    /// An 8-byte length.
    fn len64(&mut self) -> Result<usize, PickleError> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| PickleError::Truncated(self.data.len()))
    }

    /// A text line (GLOBAL's arguments), without its newline.
    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or(PickleError::Truncated(self.data.len()))?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| self.malformed("a name is not UTF-8"))
    }

    fn string(&mut self, n: usize) -> Result<String, PickleError> {
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.malformed("a string is not UTF-8"))
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed("the stack is empty"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.malformed("the stack is empty"))
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed("the stack is empty"));
        }
        let at = self.at;
        self.stack.last_mut().ok_or(PickleError::Malformed {
            at,
            reason: "the stack is empty".into(),
        })
    }

    /// Everything above the last mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed("no mark on the stack"))?;
        Ok(self.stack.split_off(mark))
    }

    fn new_object(&mut self, object: Object) -> Result<Value, PickleError> {
        if self.objects.len() >= MAX_OBJECTS {
            return Err(self.malformed(format!("more than {MAX_OBJECTS} objects")));
        }
        self.objects.push(object);
        Ok(Value::Object(self.objects.len() - 1))
    }

    fn push_object(&mut self, object: Object) -> Result<(), PickleError> {
        let value = self.new_object(object)?;
        self.stack.push(value);
        Ok(())
    }

    fn object_mut(&mut self, value: &Value) -> Result<&mut Object, PickleError> {
        let at = self.at;
        match value {
            Value::Object(i) => self.objects.get_mut(*i),
            _ => None,
        }
        .ok_or(PickleError::Malformed {
            at,
            reason: "expected a container".into(),
        })
    }

    fn tuple_items(&self, value: &Value) -> Result<Vec<Value>, PickleError> {
        match value {
            Value::Object(i) => match self.objects.get(*i) {
                Some(Object::Tuple(items) | Object::List(items)) => Ok(items.clone()),
                _ => Err(self.malformed("expected a tuple")),
            },
            _ => Err(self.malformed("expected a tuple")),
        }
    }

    fn append(&mut self, target: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        match self.object_mut(target)? {
            Object::List(list) => {
                list.extend(items);
                Ok(())
            }
            _ => Err(self.malformed("APPEND to something that is not a list")),
        }
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("SETITEMS with an odd number of values"));
        }
        let Object::Dict(dict) = self.object_mut(target)? else {
            return Err(self.malformed("SETITEM on something that is not a dict"));
        };
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            match dict.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => dict.push((key, value)),
            }
        }
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        let global = Global::resolve(module, name)
            .ok_or_else(|| PickleError::ForeignGlobal(format!("{module}.{name}")))?;
        self.stack.push(Value::Global(global));
        Ok(())
    }

    fn int_arg(&self, value: &Value, what: &str) -> Result<usize, PickleError> {
        match value {
            Value::Int(v) => {
                usize::try_from(*v).map_err(|_| self.malformed(format!("{what} is negative ({v})")))
            }
            _ => Err(self.malformed(format!("{what} is not an integer"))),
        }
    }

    fn int_tuple(&self, value: &Value, what: &str) -> Result<Vec<usize>, PickleError> {
        self.tuple_items(value)?
            .iter()
            .map(|v| self.int_arg(v, what))
            .collect()
    }

    /// `callable(*args)` for an allowed callable.
    fn call(&mut self, callable: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Global(global) = callable else {
            return Err(self.malformed("REDUCE on something that is not a known global"));
        };
        let args = self.tuple_items(&args)?;
        match global {
            Global::OrderedDict => {
                let dict = self.new_object(Object::Dict(Vec::new()))?;
                if let Some(pairs) = args.first() {
                    for pair in self.tuple_items(pairs)? {
                        let kv = self.tuple_items(&pair)?;
                        self.set_items(&dict, kv)?;
                    }
                }
                Ok(dict)
            }
            Global::RebuildTensor => {
                let [storage, offset, shape, strides, ..] = args.as_slice() else {
                    return Err(self.malformed("_rebuild_tensor with fewer than 4 arguments"));
                };
                let storage = match self.object_mut(storage)? {
                    Object::Storage(s) => s.clone(),
                    _ => return Err(self.malformed("_rebuild_tensor of something not a storage")),
                };
                let tensor = TensorRef {
                    storage,
                    storage_offset: self.int_arg(offset, "a storage offset")?,
                    shape: self.int_tuple(shape, "a size")?,
                    strides: self.int_tuple(strides, "a stride")?,
                };
                if tensor.shape.len() != tensor.strides.len() {
                    return Err(self.malformed("a tensor's size and stride differ in length"));
                }
                self.new_object(Object::Tensor(tensor))
            }
            Global::RebuildParameter => args
                .into_iter()
                .next()
                .ok_or_else(|| self.malformed("_rebuild_parameter without a tensor")),
            Global::RebuildFromType => {
                let [function, _class, inner_args, ..] = args.as_slice() else {
                    return Err(self.malformed("_rebuild_from_type_v2 with too few arguments"));
                };
                if matches!(function, Value::Global(Global::RebuildFromType)) {
                    return Err(self.malformed("_rebuild_from_type_v2 calling itself"));
                }
                self.call(function.clone(), inner_args.clone())
            }
            Global::CodecsEncode => match args.first() {
                // latin-1 text back to the bytes it stands for.
                Some(Value::Str(text)) => {
                    Ok(Value::Bytes(text.chars().map(|c| c as u32 as u8).collect()))
                }
                _ => Err(self.malformed("_codecs.encode of something not a string")),
            },
            Global::TensorClass | Global::StorageClass(_) => {
                Err(self.malformed("a class called directly"))
            }
        }
    }

    /// `persistent_load(pid)` for torch's storage ids.
    fn persistent(&mut self, pid: Value) -> Result<Value, PickleError> {
        let items = self.tuple_items(&pid)?;
        let [Value::Str(kind), class, key, _location, numel, rest @ ..] = items.as_slice() else {
            return Err(self.malformed("a persistent id that is not a storage"));
        };
        if kind != "storage" {
            return Err(self.malformed(format!("a persistent id of kind `{kind}`")));
        }
        let Value::Global(Global::StorageClass(dtype)) = class else {
            return Err(self.malformed("a storage whose type is not a torch storage class"));
        };
        let key = match key {
            Value::Str(k) => k.clone(),
            Value::Int(k) => k.to_string(),
            _ => return Err(self.malformed("a storage key that is not a string")),
        };
        let mut storage = StorageRef {
            key,
            dtype: *dtype,
            numel: self.int_arg(numel, "a storage size")?,
            view_offset: 0,
        };
        // Legacy format: `view_metadata` = (view_key, offset, view_size) or None.
        if let Some(view) = rest.first().filter(|v| **v != Value::None) {
            let view = self.tuple_items(view)?;
            let [_, offset, size] = view.as_slice() else {
                return Err(self.malformed("a storage view that is not (key, offset, size)"));
            };
            storage.view_offset = self.int_arg(offset, "a view offset")?;
            storage.numel = self.int_arg(size, "a view size")?;
        }
        self.new_object(Object::Storage(storage))
    }

    fn run(mut self) -> Result<(Pickled, usize), PickleError> {
        loop {
            self.at = self.pos;
            let opcode = self.u8()?;
            if opcode == b'.' {
                // STOP
                let root = self.pop()?;
                let used = self.pos;
                return Ok((
                    Pickled {
                        objects: self.objects,
                        root,
                    },
                    used,
                ));
            }
            let known = self.framing_or_stack_op(opcode)?
                || self.constant_op(opcode)?
                || self.container_op(opcode)?
                || self.memo_op(opcode)?
                || self.call_op(opcode)?;
            if !known {
                return Err(PickleError::UnsupportedOpcode {
                    opcode,
                    at: self.at,
                });
            }
        }
    }

    // Each opcode family below returns `Ok(false)`, having read nothing, for an
    // opcode outside it.

    /// Protocol and frame headers, marks, POP and DUP.
    fn framing_or_stack_op(&mut self, opcode: u8) -> Result<bool, PickleError> {
        match opcode {
            0x80 => {
                // PROTO
                let protocol = self.u8()?;
                if protocol > 5 {
                    return Err(self.malformed(format!("pickle protocol {protocol}")));
                }
            }
            0x95 => {
                // FRAME: a length hint only.
                self.u64()?;
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let top = self.top()?.clone();
                self.stack.push(top);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// None, booleans, numbers, strings and bytes.
    fn constant_op(&mut self, opcode: u8) -> Result<bool, PickleError> {
        let value = match opcode {
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'J' => Value::Int(i64::from(self.u32()? as i32)),
            b'K' => Value::Int(i64::from(self.u8()?)),
            b'M' => Value::Int(i64::from(self.u16()?)),
            0x8a | 0x8b => self.long(opcode)?,
            b'G' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Float(f64::from_be_bytes(a))
            }
            b'X' | 0x8c | 0x8d => {
                let n = match opcode {
                    0x8c => usize::from(self.u8()?),
                    b'X' => self.len32()?,
                    _ => self.len64()?,
                };
                Value::Str(self.string(n)?)
            }
            b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 => {
                // Byte strings (protocol 2's str8 and protocol 3+'s bytes).
                let n = match opcode {
                    b'U' | b'C' => usize::from(self.u8()?),
                    b'T' | b'B' => self.len32()?,
                    _ => self.len64()?,
                };
                Value::Bytes(self.take(n)?.to_vec())
            }
            _ => return Ok(false),
        };
        self.stack.push(value);
        Ok(true)
    }

    /// LONG1 / LONG4: little-endian two's complement.
    fn long(&mut self, opcode: u8) -> Result<Value, PickleError> {
        let n = if opcode == 0x8a {
            usize::from(self.u8()?)
        } else {
            self.len32()?
        };
        let bytes = self.take(n)?;
        Ok(if n == 0 {
            Value::Int(0)
        } else if n <= 8 {
            let fill = if bytes[n - 1] & 0x80 != 0 { 0xff } else { 0 };
            let mut a = [fill; 8];
            a[..n].copy_from_slice(bytes);
            Value::Int(i64::from_le_bytes(a))
        } else {
            Value::Long(bytes.to_vec())
        })
    }

    /// Building tuples, lists and dicts, and filling them.
    fn container_op(&mut self, opcode: u8) -> Result<bool, PickleError> {
        match opcode {
            b')' => self.push_object(Object::Tuple(Vec::new()))?,
            b't' => {
                let items = self.pop_mark()?;
                self.push_object(Object::Tuple(items))?;
            }
            0x85..=0x87 => {
                let n = usize::from(opcode - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push_object(Object::Tuple(items))?;
            }
            b']' | 0x8f => self.push_object(Object::List(Vec::new()))?,
            b'l' | 0x91 => {
                let items = self.pop_mark()?;
                self.push_object(Object::List(items))?;
            }
            b'}' => self.push_object(Object::Dict(Vec::new()))?,
            b'd' => {
                let items = self.pop_mark()?;
                let dict = self.new_object(Object::Dict(Vec::new()))?;
                self.set_items(&dict, items)?;
                self.stack.push(dict);
            }
            b'a' => {
                let item = self.pop()?;
                let list = self.top()?.clone();
                self.append(&list, vec![item])?;
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                let list = self.top()?.clone();
                self.append(&list, items)?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                let dict = self.top()?.clone();
                self.set_items(&dict, vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                let dict = self.top()?.clone();
                self.set_items(&dict, items)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// PUT (memoise the top of the stack) and GET.
    fn memo_op(&mut self, opcode: u8) -> Result<bool, PickleError> {
        match opcode {
            b'q' | b'r' | 0x94 => {
                let key = match opcode {
                    b'q' => u64::from(self.u8()?),
                    b'r' => u64::from(self.u32()?),
                    _ => self.memo.len() as u64,
                };
                let top = self.top()?.clone();
                self.memo.insert(key, top);
            }
            b'h' | b'j' => {
                let key = if opcode == b'h' {
                    u64::from(self.u8()?)
                } else {
                    u64::from(self.u32()?)
                };
                let value = self
                    .memo
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| self.malformed(format!("memo entry {key} is not set")))?;
                self.stack.push(value);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Globals, REDUCE, persistent ids and BUILD: where the allow-list applies.
    fn call_op(&mut self, opcode: u8) -> Result<bool, PickleError> {
        match opcode {
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return Err(self.malformed("STACK_GLOBAL of something not a string"));
                };
                self.global(&module, &name)?;
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let value = self.call(callable, args)?;
                self.stack.push(value);
            }
            b'Q' => {
                let pid = self.pop()?;
                let value = self.persistent(pid)?;
                self.stack.push(value);
            }
            b'b' => {
                // BUILD: object state (an OrderedDict's `_metadata`, a tensor's
                // hooks). None of it changes the tensors: checked, then dropped.
                let _state = self.pop()?;
                if !matches!(self.top()?, Value::Object(_)) {
                    return Err(self.malformed("BUILD on something that is not an object"));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dict_of_plain_values() {
        // pickle.dumps({'a': 1, 'b': [2.5, None], 'c': (True,)}, protocol=2)
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(G@\x04\x00\x00\x00\x00\x00\x00NeX\x01\x00\x00\x00cq\x04\x88\x85q\x05u.";
        let (pickled, used) = unpickle(data).expect("runs");
        assert_eq!(used, data.len());
        let Some(Object::Dict(items)) = pickled.object(&pickled.root) else {
            panic!("not a dict: {:?}", pickled.root);
        };
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], (Value::Str("a".into()), Value::Int(1)));
        assert_eq!(
            pickled.object(&items[1].1),
            Some(&Object::List(vec![Value::Float(2.5), Value::None]))
        );
        assert_eq!(
            pickled.object(&items[2].1),
            Some(&Object::Tuple(vec![Value::Bool(true)]))
        );
    }

    #[test]
    fn foreign_globals_are_refused_before_anything_runs() {
        // pickle.dumps of os.system('true') via __reduce__, protocol 2.
        let data = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.";
        let error = unpickle(data).expect_err("refused");
        assert!(
            matches!(&error, PickleError::ForeignGlobal(name) if name == "posix.system"),
            "{error}"
        );
        // STACK_GLOBAL (protocol 4) too.
        let data = b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x8c\x04eval\x93.";
        assert!(matches!(
            unpickle(data),
            Err(PickleError::ForeignGlobal(name)) if name == "builtins.eval"
        ));
    }

    #[test]
    fn truncated_and_malformed_pickles_are_errors() {
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01";
        assert!(matches!(unpickle(data), Err(PickleError::Truncated(_))));
        assert!(matches!(unpickle(b"."), Err(PickleError::Malformed { .. })));
        assert!(matches!(
            unpickle(b"h\x07."),
            Err(PickleError::Malformed { .. })
        ));
        assert!(matches!(
            unpickle(b"\xff"),
            Err(PickleError::UnsupportedOpcode { opcode: 0xff, .. })
        ));
        // A million nested lists: a flat arena, no recursion, no overflow.
        let mut deep = b"\x80\x02".to_vec();
        for _ in 0..1_000_000 {
            deep.push(b']');
        }
        for _ in 0..999_999 {
            deep.push(b'a');
        }
        deep.push(b'.');
        let (pickled, _) = unpickle(&deep).expect("runs");
        assert_eq!(pickled.objects.len(), 1_000_000);
    }

    #[test]
    fn wide_integers_and_negative_ones() {
        // LONG1 with 10 bytes (torch's legacy magic number) and -2 as LONG1.
        let data = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19\x8a\x01\xfe\x86.";
        let (pickled, _) = unpickle(data).expect("runs");
        let Some(Object::Tuple(items)) = pickled.object(&pickled.root) else {
            panic!("not a tuple");
        };
        assert!(matches!(&items[0], Value::Long(bytes) if bytes.len() == 10));
        assert_eq!(items[1], Value::Int(-2));
    }
}
