//! A GGUF (v2, v3) reader over a memory map: metadata and the tensor table
//! are parsed once, every offset and size is checked against the file, and
//! tensor data is handed out as slices of the mapping (no copy).
//!
//! # Limits
//! A file is untrusted input: every count and length in it is checked
//! before anything is allocated or read from it, and anything wrong is a
//! [`GgufError`] naming the key or tensor, never a panic. The caps
//! ([`limits`]): at most [`MAX_TENSORS`](limits::MAX_TENSORS) (65 536)
//! tensors of at most [`MAX_DIMS`](limits::MAX_DIMS) dimensions,
//! [`MAX_KV`](limits::MAX_KV) (65 536) metadata pairs, metadata arrays of
//! [`MAX_ARRAY_LEN`](limits::MAX_ARRAY_LEN) (16 M) elements nested at most
//! [`MAX_DEPTH`](limits::MAX_DEPTH) deep, strings of
//! [`MAX_STRING`](limits::MAX_STRING) (1 MiB) bytes; beyond the caps,
//! nothing read can be larger than the file. Limits on what a model
//! allocates later: the KV cache must fit the memory the machine has
//! available ([`KvCache::new`](crate::KvCache::new)), and prompt text is at
//! most [`MAX_PROMPT_BYTES`](crate::tokenizer::MAX_PROMPT_BYTES). The
//! parser is fuzzed (`fuzz/`, target `gguf_parse`) and its tests run
//! under Miri in CI.

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::path::Path;

/// Caps applied before anything is allocated from a count in the file.
pub mod limits {
    /// Tensors in one file (2B-4T has 332; a 70B model about 800).
    pub const MAX_TENSORS: u64 = 1 << 16;
    /// Metadata key/value pairs.
    pub const MAX_KV: u64 = 1 << 16;
    /// Elements of one metadata array (a vocabulary's merges: ~280 000).
    pub const MAX_ARRAY_LEN: u64 = 1 << 24;
    /// Bytes of one string (keys, tokens, chat templates).
    pub const MAX_STRING: u64 = 1 << 20;
    /// Nesting of arrays of arrays.
    pub const MAX_DEPTH: u32 = 4;
    /// Dimensions of one tensor.
    pub const MAX_DIMS: u32 = 4;
}

/// Everything that can be wrong with a GGUF file; each names what and where.
#[derive(Debug)]
pub enum GgufError {
    Io(std::io::Error),
    BadMagic([u8; 4]),
    UnsupportedVersion(u32),
    /// The file ends inside `what`, which starts at byte `offset`.
    Truncated {
        what: String,
        offset: usize,
    },
    TooMany {
        what: &'static str,
        count: u64,
        max: u64,
    },
    BadUtf8 {
        what: String,
        offset: usize,
    },
    BadValueType {
        key: String,
        ty: u32,
    },
    DuplicateKey(String),
    BadAlignment(u64),
    DuplicateTensor(String),
    BadShape {
        tensor: String,
        dims: Vec<u64>,
    },
    UnknownType {
        tensor: String,
        id: u32,
    },
    /// bitnet.cpp's TL1/TL2: their tile parameters are not in the file.
    LutType {
        tensor: String,
        id: u32,
    },
    /// The element count does not fit the type's block size.
    BlockMismatch {
        tensor: String,
        elements: u64,
        block: u64,
    },
    OutOfBounds {
        tensor: String,
        start: u64,
        size: u64,
        file_len: u64,
    },
    Misaligned {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    Overlap {
        first: String,
        second: String,
    },
    /// A metadata key has another type than the one asked for.
    WrongType {
        key: String,
        expected: &'static str,
    },
    MissingKey(String),
    MissingTensor(String),
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GgufError::*;
        match self {
            Io(e) => write!(f, "cannot read the file: {e}"),
            BadMagic(m) => write!(f, "not a GGUF file (magic {m:02x?}, expected \"GGUF\")"),
            UnsupportedVersion(v) => write!(f, "GGUF version {v} is not supported (2 and 3 are)"),
            Truncated { what, offset } => {
                write!(f, "file is truncated: {what} at byte {offset} runs past the end")
            }
            TooMany { what, count, max } => write!(f, "{what}: {count} is more than the limit of {max}"),
            BadUtf8 { what, offset } => write!(f, "{what} at byte {offset} is not valid UTF-8"),
            BadValueType { key, ty } => write!(f, "metadata {key:?}: unknown value type {ty}"),
            DuplicateKey(k) => write!(f, "metadata key {k:?} appears twice"),
            BadAlignment(a) => write!(f, "general.alignment = {a} is not a power of two"),
            DuplicateTensor(n) => write!(f, "tensor {n:?} appears twice"),
            BadShape { tensor, dims } => write!(f, "tensor {tensor:?} has an invalid shape {dims:?}"),
            UnknownType { tensor, id } => {
                write!(f, "tensor {tensor:?} has ggml type {id}, which this engine cannot read")
            }
            LutType { tensor, id } => write!(
                f,
                "tensor {tensor:?} is bitnet.cpp {} (type {id}), whose tile layout the file does not record; re-quantize the model to I2_S",
                if *id == 38 { "TL1" } else { "TL2" }
            ),
            BlockMismatch { tensor, elements, block } => write!(
                f,
                "tensor {tensor:?}: {elements} elements per row is not a multiple of the block size {block}"
            ),
            OutOfBounds { tensor, start, size, file_len } => write!(
                f,
                "tensor {tensor:?} (bytes {start}..{}) lies past the end of the file ({file_len} bytes)",
                start.saturating_add(*size)
            ),
            Misaligned { tensor, offset, alignment } => {
                write!(f, "tensor {tensor:?} offset {offset} is not a multiple of the alignment {alignment}")
            }
            Overlap { first, second } => write!(f, "tensors {first:?} and {second:?} overlap"),
            WrongType { key, expected } => write!(f, "metadata {key:?} is not {expected}"),
            MissingKey(k) => write!(f, "required metadata {k:?} is missing"),
            MissingTensor(n) => write!(f, "required tensor {n:?} is missing"),
        }
    }
}

impl std::error::Error for GgufError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GgufError::Io(e) => Some(e),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, GgufError>;

/// ggml tensor types this engine knows the size of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q6K,
    /// llama.cpp TQ1_0 (34).
    Tq1_0,
    /// llama.cpp TQ2_0 (35).
    Tq2_0,
    /// bitnet.cpp I2_S (36): `M·K/4` code bytes + a 32-byte tail holding the f32 scale.
    I2S,
}

impl TensorType {
    fn from_id(id: u32, tensor: &str) -> Result<TensorType> {
        Ok(match id {
            0 => TensorType::F32,
            1 => TensorType::F16,
            8 => TensorType::Q8_0,
            14 => TensorType::Q6K,
            30 => TensorType::BF16,
            34 => TensorType::Tq1_0,
            35 => TensorType::Tq2_0,
            36 => TensorType::I2S,
            38 | 39 => {
                return Err(GgufError::LutType {
                    tensor: tensor.into(),
                    id,
                })
            }
            _ => {
                return Err(GgufError::UnknownType {
                    tensor: tensor.into(),
                    id,
                })
            }
        })
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
            TensorType::Q8_0 => 8,
            TensorType::Q6K => 14,
            TensorType::BF16 => 30,
            TensorType::Tq1_0 => 34,
            TensorType::Tq2_0 => 35,
            TensorType::I2S => 36,
        }
    }

    /// The name llama.cpp / bitnet.cpp print.
    pub fn name(self) -> &'static str {
        match self {
            TensorType::F32 => "F32",
            TensorType::F16 => "F16",
            TensorType::BF16 => "BF16",
            TensorType::Q8_0 => "Q8_0",
            TensorType::Q6K => "Q6_K",
            TensorType::Tq1_0 => "TQ1_0",
            TensorType::Tq2_0 => "TQ2_0",
            TensorType::I2S => "I2_S",
        }
    }

    /// (weights per block, bytes per block) for the row-blocked types.
    fn block(self) -> (u64, u64) {
        match self {
            TensorType::F32 => (1, 4),
            TensorType::F16 | TensorType::BF16 => (1, 2),
            TensorType::Q8_0 => (32, 34),
            TensorType::Q6K => (256, 210),
            TensorType::Tq1_0 => (256, 54),
            TensorType::Tq2_0 => (256, 66),
            TensorType::I2S => (128, 32),
        }
    }

    /// Bytes of a tensor with `dims` (ggml order: `dims[0]` is the row length).
    fn size(self, tensor: &str, dims: &[u64]) -> Result<u64> {
        let (block, bytes) = self.block();
        let row = dims[0];
        if !row.is_multiple_of(block) {
            return Err(GgufError::BlockMismatch {
                tensor: tensor.into(),
                elements: row,
                block,
            });
        }
        let rows = dims[1..].iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let overflow = || GgufError::BadShape {
            tensor: tensor.into(),
            dims: dims.to_vec(),
        };
        let data = rows
            .and_then(|r| r.checked_mul(row / block))
            .and_then(|b| b.checked_mul(bytes))
            .ok_or_else(overflow)?;
        let tail = if self == TensorType::I2S { 32 } else { 0 };
        data.checked_add(tail).ok_or_else(overflow)
    }

    /// Bytes of a tensor of this type with `dims` (ggml order, row length
    /// first); `None` when the row length does not fit the block size or the
    /// size overflows.
    pub fn byte_size(self, dims: &[u64]) -> Option<u64> {
        if dims.is_empty() {
            return None;
        }
        self.size("", dims).ok()
    }
}

/// A metadata value. Strings and arrays are ranges of the file, read on demand.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    /// UTF-8 checked at parse time.
    Str(Range<usize>),
    Array(Array),
}

/// A metadata array: `len` elements of value type `elem`, starting at `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub elem: u32,
    pub len: usize,
    pub bytes: Range<usize>,
}

/// One entry of the tensor table.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the row length (`K`), `dims[1]` the rows (`M`).
    pub dims: Vec<u64>,
    pub ty: TensorType,
    /// Absolute byte range of the data in the file.
    pub data: Range<usize>,
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// An open GGUF file.
pub struct Gguf {
    bytes: Bytes,
    pub version: u32,
    pub alignment: u64,
    kv: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
}

impl fmt::Debug for Gguf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gguf")
            .field("version", &self.version)
            .field("kv", &self.kv.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl Gguf {
    /// Maps `path` read-only and parses it.
    ///
    /// The mapping assumes the file is not modified while open (true of model
    /// files; a concurrent writer could change what the kernels read, though
    /// never the bounds checked here). Falls back to reading the file into
    /// memory where mapping is impossible (e.g. some pipes or network file systems).
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let file = File::open(path.as_ref()).map_err(GgufError::Io)?;
        // SAFETY: read-only private mapping; see the doc comment for the
        // not-modified-underneath contract.
        let bytes = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(m) => Bytes::Mapped(m),
            Err(_) => Bytes::Owned(std::fs::read(path.as_ref()).map_err(GgufError::Io)?),
        };
        Gguf::parse(bytes)
    }

    /// Parses an in-memory file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Gguf> {
        Gguf::parse(Bytes::Owned(bytes))
    }

    fn parse(bytes: Bytes) -> Result<Gguf> {
        let data: &[u8] = match &bytes {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        };
        let mut r = Reader { data, pos: 0 };
        let magic: [u8; 4] = r.take(4, "magic")?.try_into().expect("4 bytes");
        if &magic != b"GGUF" {
            return Err(GgufError::BadMagic(magic));
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = r.count("tensor count", limits::MAX_TENSORS)?;
        let n_kv = r.count("metadata count", limits::MAX_KV)?;

        let mut kv: Vec<(String, Value)> = Vec::with_capacity(n_kv.min(1024));
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?.to_string();
            if kv.iter().any(|(k, _)| *k == key) {
                return Err(GgufError::DuplicateKey(key));
            }
            let ty = r.u32(&key)?;
            let value = r.value(&key, ty, 0)?;
            kv.push((key, value));
        }
        let alignment = match kv.iter().find(|(k, _)| k == "general.alignment") {
            None => 32,
            Some((_, v)) => match v.as_u64() {
                Some(a) if a.is_power_of_two() => a,
                Some(a) => return Err(GgufError::BadAlignment(a)),
                None => {
                    return Err(GgufError::WrongType {
                        key: "general.alignment".into(),
                        expected: "an integer",
                    })
                }
            },
        };

        let mut infos = Vec::with_capacity(n_tensors.min(4096));
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor #{i} name"))?.to_string();
            let n_dims = r.u32(&name)?;
            if n_dims == 0 || n_dims > limits::MAX_DIMS {
                return Err(GgufError::BadShape {
                    tensor: name,
                    dims: vec![n_dims as u64],
                });
            }
            let dims = (0..n_dims)
                .map(|_| r.u64(&name))
                .collect::<Result<Vec<u64>>>()?;
            if dims.contains(&0) {
                return Err(GgufError::BadShape { tensor: name, dims });
            }
            let ty = TensorType::from_id(r.u32(&name)?, &name)?;
            let offset = r.u64(&name)?;
            infos.push((name, dims, ty, offset));
        }
        let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
        let file_len = data.len() as u64;

        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(infos.len());
        for (name, dims, ty, offset) in infos {
            if offset % alignment != 0 {
                return Err(GgufError::Misaligned {
                    tensor: name,
                    offset,
                    alignment,
                });
            }
            let size = ty.size(&name, &dims)?;
            let start = data_start.checked_add(offset);
            let end = start.and_then(|s| s.checked_add(size));
            let (Some(start), Some(end)) = (start, end) else {
                return Err(GgufError::OutOfBounds {
                    tensor: name,
                    start: offset,
                    size,
                    file_len,
                });
            };
            if end > file_len {
                return Err(GgufError::OutOfBounds {
                    tensor: name,
                    start,
                    size,
                    file_len,
                });
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                data: start as usize..end as usize,
            });
        }
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by(|&a, &b| tensors[a].name.cmp(&tensors[b].name));
        if let Some(w) = order
            .windows(2)
            .find(|w| tensors[w[0]].name == tensors[w[1]].name)
        {
            return Err(GgufError::DuplicateTensor(tensors[w[0]].name.clone()));
        }
        order.sort_by_key(|&i| tensors[i].data.start);
        if let Some(w) = order
            .windows(2)
            .find(|w| tensors[w[0]].data.end > tensors[w[1]].data.start)
        {
            return Err(GgufError::Overlap {
                first: tensors[w[0]].name.clone(),
                second: tensors[w[1]].name.clone(),
            });
        }
        Ok(Gguf {
            bytes,
            version,
            alignment,
            kv,
            tensors,
        })
    }

    /// The whole file (mapped or read).
    pub fn bytes(&self) -> &[u8] {
        self.data()
    }

    fn data(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }

    /// Whether the tensor data is memory-mapped (not copied).
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped(_))
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.kv.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(r)) => Ok(Some(self.str_at(r.clone()))),
            Some(_) => Err(GgufError::WrongType {
                key: key.into(),
                expected: "a string",
            }),
        }
    }

    /// An unsigned integer value of any width.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| GgufError::WrongType {
                key: key.into(),
                expected: "a non-negative integer",
            }),
        }
    }

    /// A float value (f32 or f64).
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::F32(v)) => Ok(Some(*v)),
            Some(Value::F64(v)) => Ok(Some(*v as f32)),
            Some(_) => Err(GgufError::WrongType {
                key: key.into(),
                expected: "a float",
            }),
        }
    }

    /// A boolean value.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(v)) => Ok(Some(*v)),
            Some(_) => Err(GgufError::WrongType {
                key: key.into(),
                expected: "a boolean",
            }),
        }
    }

    /// The strings of an array value (UTF-8 was checked at parse time).
    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let wrong = || GgufError::WrongType {
            key: key.into(),
            expected: "an array of strings",
        };
        let Value::Array(a) = v else {
            return Err(wrong());
        };
        if a.elem != 8 {
            return Err(wrong());
        }
        let data = self.data();
        let mut pos = a.bytes.start;
        let mut out = Vec::with_capacity(a.len);
        for _ in 0..a.len {
            // Lengths and UTF-8 were validated while parsing.
            let len = u64::from_le_bytes(data[pos..pos + 8].try_into().expect("8 bytes")) as usize;
            out.push(std::str::from_utf8(&data[pos + 8..pos + 8 + len]).expect("checked at parse"));
            pos += 8 + len;
        }
        Ok(Some(out))
    }

    /// The numbers of an array of 32-bit values (i32, u32 or f32, by `elem`).
    pub fn get_array_4byte(&self, key: &str, elem: u32) -> Result<Option<Vec<[u8; 4]>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v {
            Value::Array(a) if a.elem == elem => Ok(Some(
                self.data()[a.bytes.clone()]
                    .chunks_exact(4)
                    .map(|c| c.try_into().expect("4 bytes"))
                    .collect(),
            )),
            _ => Err(GgufError::WrongType {
                key: key.into(),
                expected: "an array of 32-bit numbers",
            }),
        }
    }

    fn str_at(&self, r: Range<usize>) -> &str {
        std::str::from_utf8(&self.data()[r]).expect("checked at parse")
    }

    /// The tensor table, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor's info and data (a slice of the mapping).
    pub fn tensor(&self, name: &str) -> Option<(&TensorInfo, &[u8])> {
        let t = self.tensors.iter().find(|t| t.name == name)?;
        Some((t, &self.data()[t.data.clone()]))
    }

    /// Like [`Gguf::tensor`], with a missing tensor as an error.
    pub fn require_tensor(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        self.tensor(name)
            .ok_or_else(|| GgufError::MissingTensor(name.into()))
    }
}

impl Value {
    /// Any unsigned, or non-negative signed, integer as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(GgufError::Truncated {
                what: what.into(),
                offset: self.pos,
            });
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    fn count(&mut self, what: &'static str, max: u64) -> Result<usize> {
        let n = self.u64(what)?;
        if n > max {
            return Err(GgufError::TooMany {
                what,
                count: n,
                max,
            });
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<&'a str> {
        let start = self.pos;
        let n = self.u64(what)?;
        if n > limits::MAX_STRING {
            return Err(GgufError::TooMany {
                what: "string length",
                count: n,
                max: limits::MAX_STRING,
            });
        }
        let bytes = self.take(n as usize, what)?;
        std::str::from_utf8(bytes).map_err(|_| GgufError::BadUtf8 {
            what: what.into(),
            offset: start,
        })
    }

    fn value(&mut self, key: &str, ty: u32, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.take(1, key)?[0]),
            1 => Value::I8(self.take(1, key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(
                self.take(2, key)?.try_into().expect("2"),
            )),
            3 => Value::I16(i16::from_le_bytes(
                self.take(2, key)?.try_into().expect("2"),
            )),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(self.u32(key)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(key)?)),
            7 => Value::Bool(self.take(1, key)?[0] != 0),
            8 => {
                let s = self.string(key)?;
                let end = self.pos;
                Value::Str(end - s.len()..end)
            }
            9 => {
                let elem = self.u32(key)?;
                let len = self.count("metadata array length", limits::MAX_ARRAY_LEN)?;
                if depth >= limits::MAX_DEPTH {
                    return Err(GgufError::TooMany {
                        what: "array nesting depth",
                        count: depth as u64 + 1,
                        max: limits::MAX_DEPTH as u64,
                    });
                }
                let start = self.pos;
                match fixed_size(elem) {
                    Some(size) => {
                        self.take(len * size, key)?;
                    }
                    None => {
                        for _ in 0..len {
                            self.value(key, elem, depth + 1)?;
                        }
                    }
                }
                Value::Array(Array {
                    elem,
                    len,
                    bytes: start..self.pos,
                })
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(self.u64(key)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(key)?)),
            _ => {
                return Err(GgufError::BadValueType {
                    key: key.into(),
                    ty,
                })
            }
        })
    }
}

/// Bytes per element of the fixed-size value types.
fn fixed_size(ty: u32) -> Option<usize> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

mod writer;
pub use writer::{partial_path, write_ternary, GgufWriter, MetaValue, TernaryFormat};
