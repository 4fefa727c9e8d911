//! Reading `pytorch_model.bin` without Python: the tensors of a `torch.save`d state dict.
//!
//! Two containers exist:
//! - the zip format (torch ≥ 1.6): `{archive}/data.pkl` is a pickle of the state dict
//!   whose tensors name their storages by key, each stored uncompressed as
//!   `{archive}/data/{key}`; `{archive}/byteorder` says `little` (absent before 2.1);
//! - the legacy format: pickles back to back (magic number, protocol, system info, the
//!   state dict, the storage keys), then each storage's raw bytes after an 8-byte count.
//!
//! The pickle runs on the restricted machine in [`super::pickle`]: no Python global
//! outside a short allow-list is accepted, nothing is executed. Storages are not copied:
//! each tensor is a strided view of the file's bytes ([`StoredTensor`]), checked to lie
//! inside its storage, and every zip entry's CRC is checked.

use std::io::{Cursor, Read};

use super::pickle::{Object, PickleError, Pickled, StorageDtype, TensorRef, Value, unpickle};

/// One tensor of a checkpoint file, as stored (not yet converted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTensor {
    /// Its name in the file.
    pub name: String,
    /// Element type.
    pub dtype: StorageDtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides in elements (row-major contiguous for safetensors).
    pub strides: Vec<usize>,
    /// Which buffer of the [`TorchWeights`] holds it (0: the file itself).
    pub buffer: usize,
    /// Byte offset of element 0 in that buffer.
    pub byte_offset: usize,
}

impl StoredTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the elements lie in row-major order without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.strides == contiguous_strides(&self.shape)
    }

    /// The bytes of each element, in row-major order, or `None` if any lies outside
    /// `buffer` (the buffer this tensor names).
    pub fn element_bytes<'a>(&self, buffer: &'a [u8]) -> Option<Vec<&'a [u8]>> {
        let size = self.dtype.size();
        let numel = self.numel();
        if self.is_contiguous() {
            let end = self.byte_offset.checked_add(numel.checked_mul(size)?)?;
            return Some(
                buffer
                    .get(self.byte_offset..end)?
                    .chunks_exact(size)
                    .collect(),
            );
        }
        let mut out = Vec::with_capacity(numel);
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..numel {
            let element: usize = index.iter().zip(&self.strides).map(|(i, s)| i * s).sum();
            let start = self.byte_offset.checked_add(element.checked_mul(size)?)?;
            out.push(buffer.get(start..start.checked_add(size)?)?);
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < self.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Some(out)
    }

    /// The byte just past the last element this tensor reaches, if it fits in `usize`.
    fn end(&self) -> Option<usize> {
        if self.shape.contains(&0) {
            return Some(self.byte_offset);
        }
        let last = self
            .shape
            .iter()
            .zip(&self.strides)
            .try_fold(0usize, |acc, (n, s)| {
                acc.checked_add((n - 1).checked_mul(*s)?)
            })?;
        last.checked_add(1)?
            .checked_mul(self.dtype.size())?
            .checked_add(self.byte_offset)
    }
}

/// Row-major strides of `shape`, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1].max(1);
    }
    strides
}

/// The tensors of a PyTorch checkpoint file, and the buffers their bytes lie in.
#[derive(Debug, Default)]
pub struct TorchWeights {
    /// Buffer 0 is the file; further buffers hold storages that had to be copied out.
    pub buffers: Vec<Vec<u8>>,
    /// Every tensor of the state dict, in the file's order.
    pub tensors: Vec<StoredTensor>,
}

/// Why a file is not a readable PyTorch checkpoint (the caller adds the file's path).
#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    /// Neither a zip nor a legacy pickle.
    #[error(
        "not a PyTorch checkpoint (neither the zip format of torch.save nor its legacy format)"
    )]
    NotACheckpoint,
    /// The zip container is damaged (truncated, bad CRC, missing entry).
    #[error("damaged zip archive ({0}): a truncated or interrupted download? fetch the file again")]
    Zip(String),
    /// The pickle could not be run.
    #[error("{0}")]
    Pickle(#[from] PickleError),
    /// The pickle is fine, but what it describes does not fit the data.
    #[error("{0}")]
    Invalid(String),
    /// A tensor points outside its storage or names a storage that is not there.
    #[error("tensor `{name}`: {reason}")]
    Tensor {
        /// The tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Reads the checkpoint whose whole content is `bytes`.
pub fn read(bytes: Vec<u8>) -> Result<TorchWeights, TorchError> {
    if bytes.is_empty() {
        return Err(TorchError::Invalid(
            "the file is empty (an interrupted download or copy?)".into(),
        ));
    }
    if bytes.starts_with(b"version https://git-lfs") {
        return Err(TorchError::Invalid(
            "a git-lfs pointer, not the weights: run `git lfs pull` in the clone, or \
             download the file itself (`host-trainer fetch`)"
                .into(),
        ));
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        read_zip(bytes)
    } else if bytes.starts_with(b"\x80") {
        read_legacy(bytes)
    } else {
        Err(TorchError::NotACheckpoint)
    }
}

fn zip_error(error: impl std::fmt::Display) -> TorchError {
    TorchError::Zip(error.to_string())
}

fn read_zip(bytes: Vec<u8>) -> Result<TorchWeights, TorchError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes.as_slice())).map_err(zip_error)?;
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(zip_error)?;
    let pickle_name = names
        .iter()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
        .ok_or_else(|| TorchError::Zip("no `<archive>/data.pkl` entry".into()))?
        .clone();
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
    if let Some(order) = names.iter().find(|n| **n == format!("{prefix}byteorder")) {
        let order = read_entry(&mut archive, order)?;
        if order != b"little" {
            return Err(TorchError::Invalid(format!(
                "byte order `{}`: only little-endian checkpoints are read",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let pickle = read_entry(&mut archive, &pickle_name)?;
    let (pickled, _) = unpickle(&pickle)?;
    let found = state_dict_tensors(&pickled)?;

    let mut weights = TorchWeights::default();
    let mut copied: Vec<String> = Vec::new();
    let mut located: std::collections::HashMap<String, (usize, usize, usize)> =
        std::collections::HashMap::new();
    for (name, tensor) in found {
        let key = &tensor.storage.key;
        let (buffer, start, len) = match located.get(key) {
            Some(place) => *place,
            None => {
                let entry = format!("{prefix}data/{key}");
                let place =
                    locate_entry(&mut archive, &bytes, &entry, &mut copied).map_err(|reason| {
                        TorchError::Tensor {
                            name: name.clone(),
                            reason: format!("storage `{entry}`: {reason}"),
                        }
                    })?;
                located.insert(key.clone(), place);
                place
            }
        };
        let stored = place_tensor(&name, &tensor, buffer, start, len)?;
        weights.tensors.push(stored);
    }
    let extra = copied_buffers(&mut archive, &copied)?;
    weights.buffers.push(bytes);
    weights.buffers.extend(extra);
    Ok(weights)
}

/// Reads a whole (small) entry, checking its CRC.
fn read_entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
) -> Result<Vec<u8>, TorchError> {
    let mut file = archive.by_name(name).map_err(zip_error)?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)
        .map_err(|e| TorchError::Zip(format!("{name}: {e}")))?;
    Ok(out)
}

/// Where entry `name`'s bytes are: `(buffer, start, len)`. A stored entry is read in place
/// from the file (buffer 0) after a CRC check; anything else is queued in `copied` and
/// gets its own buffer.
fn locate_entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    bytes: &[u8],
    name: &str,
    copied: &mut Vec<String>,
) -> Result<(usize, usize, usize), String> {
    let file = archive.by_name(name).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => "missing from the archive".to_string(),
        other => other.to_string(),
    })?;
    let len = usize::try_from(file.size()).map_err(|_| "too large".to_string())?;
    if file.compression() == zip::CompressionMethod::Stored
        && let Some(start) = file.data_start()
    {
        let start = usize::try_from(start).map_err(|_| "too large".to_string())?;
        let data = start
            .checked_add(len)
            .and_then(|end| bytes.get(start..end))
            .ok_or_else(|| "lies past the end of the file (truncated?)".to_string())?;
        if crc32fast::hash(data) != file.crc32() {
            return Err("CRC mismatch: the file is damaged".into());
        }
        return Ok((0, start, len));
    }
    copied.push(name.to_string());
    Ok((copied.len(), 0, len))
}

/// Decompresses the entries `locate_entry` could not read in place, in order.
fn copied_buffers(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    copied: &[String],
) -> Result<Vec<Vec<u8>>, TorchError> {
    copied
        .iter()
        .map(|name| read_entry(archive, name))
        .collect()
}

/// The legacy (pre-1.6) format: magic, protocol, system info, state dict, storage keys,
/// then per key an 8-byte element count and the raw elements.
fn read_legacy(bytes: Vec<u8>) -> Result<TorchWeights, TorchError> {
    const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    let (magic, mut pos) = unpickle(&bytes).map_err(|_| TorchError::NotACheckpoint)?;
    if magic.root != Value::Long(MAGIC.to_vec()) {
        return Err(TorchError::NotACheckpoint);
    }
    let next = |pos: &mut usize| -> Result<Pickled, TorchError> {
        let rest = bytes.get(*pos..).unwrap_or_default();
        let (pickled, used) = unpickle(rest)?;
        *pos += used;
        Ok(pickled)
    };
    let _protocol = next(&mut pos)?;
    let sys_info = next(&mut pos)?;
    if let Some(Object::Dict(items)) = sys_info.object(&sys_info.root) {
        let little = items
            .iter()
            .find(|(k, _)| *k == Value::Str("little_endian".into()));
        if let Some((_, Value::Bool(false))) = little {
            return Err(TorchError::Invalid(
                "a big-endian checkpoint: only little-endian checkpoints are read".into(),
            ));
        }
    }
    let state = next(&mut pos)?;
    let keys = next(&mut pos)?;
    let Some(Object::List(keys)) = keys.object(&keys.root) else {
        return Err(TorchError::Invalid(
            "the storage key list is missing".into(),
        ));
    };
    let found = state_dict_tensors(&state)?;

    // Storages follow in key order: an 8-byte element count, then the elements.
    let mut places = std::collections::HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err(TorchError::Invalid(
                "a storage key that is not a string".into(),
            ));
        };
        let dtype = found
            .iter()
            .find(|(_, t)| t.storage.key == *key)
            .map(|(_, t)| t.storage.dtype)
            .unwrap_or(StorageDtype::U8);
        let count = bytes
            .get(pos..pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .ok_or_else(|| TorchError::Invalid(format!("storage `{key}` is truncated")))?;
        pos += 8;
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(dtype.size()))
            .filter(|len| pos.checked_add(*len).is_some_and(|end| end <= bytes.len()))
            .ok_or_else(|| TorchError::Invalid(format!("storage `{key}` is truncated")))?;
        places.insert(key.clone(), (pos, len));
        pos += len;
    }
    let mut weights = TorchWeights::default();
    for (name, tensor) in found {
        let (start, len) =
            places
                .get(&tensor.storage.key)
                .copied()
                .ok_or_else(|| TorchError::Tensor {
                    name: name.clone(),
                    reason: format!("storage `{}` is not in the file", tensor.storage.key),
                })?;
        let view = tensor.storage.view_offset * tensor.storage.dtype.size();
        let stored = place_tensor(
            &name,
            &tensor,
            0,
            start + view.min(len),
            len - view.min(len),
        )?;
        weights.tensors.push(stored);
    }
    weights.buffers.push(bytes);
    Ok(weights)
}

/// The tensor `tensor` over a storage of `len` bytes at `start` of buffer `buffer`,
/// checked to lie inside it.
fn place_tensor(
    name: &str,
    tensor: &TensorRef,
    buffer: usize,
    start: usize,
    len: usize,
) -> Result<StoredTensor, TorchError> {
    let dtype = tensor.storage.dtype;
    let bad = |reason: String| TorchError::Tensor {
        name: name.to_string(),
        reason,
    };
    let offset = tensor
        .storage_offset
        .checked_mul(dtype.size())
        .ok_or_else(|| bad("storage offset overflows".into()))?;
    let stored = StoredTensor {
        name: name.to_string(),
        dtype,
        shape: tensor.shape.clone(),
        strides: tensor.strides.clone(),
        buffer,
        byte_offset: start
            .checked_add(offset)
            .ok_or_else(|| bad("storage offset overflows".into()))?,
    };
    let end = stored
        .end()
        .ok_or_else(|| bad("its size overflows".into()))?;
    if end > start + len {
        return Err(bad(format!(
            "shape {:?} with strides {:?} at offset {} reaches byte {} of a {len}-byte storage",
            stored.shape,
            stored.strides,
            tensor.storage_offset,
            end - start
        )));
    }
    Ok(stored)
}

/// The `name → tensor` pairs of a state dict, in order. Nested dicts (e.g. a training
/// checkpoint's `{"model": {...}}`) are flattened with dotted names; other values
/// (metadata, counters) are skipped.
fn state_dict_tensors(pickled: &Pickled) -> Result<Vec<(String, TensorRef)>, TorchError> {
    let Some(Object::Dict(_)) = pickled.object(&pickled.root) else {
        return Err(TorchError::Invalid(
            "the pickle holds no dict of tensors (not a state dict)".into(),
        ));
    };
    let mut out = Vec::new();
    let mut pending = vec![(String::new(), pickled.root.clone(), 0usize)];
    while let Some((prefix, value, depth)) = pending.pop() {
        match pickled.object(&value) {
            Some(Object::Tensor(tensor)) => out.push((prefix, tensor.clone())),
            Some(Object::Dict(items)) if depth < 4 => {
                for (key, value) in items.iter().rev() {
                    let Value::Str(key) = key else { continue };
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    pending.push((name, value.clone(), depth + 1));
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(TorchError::Invalid("the state dict holds no tensor".into()));
    }
    Ok(out)
}
