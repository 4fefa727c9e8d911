//! An ONNX model decoded with its weights apart: the protobuf without its initializers,
//! and each weight on its own, read straight from a file through a small window (the
//! file's bytes are never held whole). [`crate::graph_load`] turns it into a tract plan;
//! [`crate::int8`] rewrites its quantised products first where integer kernels lose.

use std::io::Read;

use prost::bytes::{Buf, Bytes};
use tract_onnx::pb::{ModelProto, TensorProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::{ensure, format_err};

/// Bytes read from the file at a time while decoding.
const WINDOW: usize = 256 * 1024;

/// A weight's `raw_data` from this size on is read straight into a tract tensor.
const DIRECT_RAW_DATA: usize = 4096;

/// An ONNX model as decoded here: the protobuf without its weights (its graph's
/// `initializer` list is empty), and the weights.
#[derive(Debug)]
pub(crate) struct OnnxModel {
    /// Everything but the weights.
    pub(crate) proto: ModelProto,
    /// The graph's initializers, in file order.
    pub(crate) weights: Vec<Weight>,
}

/// One initializer of the graph.
#[derive(Debug)]
pub(crate) struct Weight {
    /// Its protobuf, without `raw_data` when that is in `raw`.
    pub(crate) proto: TensorProto,
    /// A large `raw_data`, read straight into an aligned byte tensor.
    pub(crate) raw: Option<Tensor>,
}

impl OnnxModel {
    /// True when `name` is one of the graph's initializers.
    pub(crate) fn is_weight(&self, name: &str) -> bool {
        self.weight(name).is_some()
    }

    /// A decoded protobuf's weights moved out of its graph.
    pub(crate) fn from_proto(mut proto: ModelProto) -> Self {
        let weights = proto
            .graph
            .as_mut()
            .map(|graph| std::mem::take(&mut graph.initializer))
            .unwrap_or_default()
            .into_iter()
            .map(|proto| Weight { proto, raw: None })
            .collect();
        OnnxModel { proto, weights }
    }

    /// The initializer named `name`.
    pub(crate) fn weight(&self, name: &str) -> Option<&Weight> {
        self.weights.iter().find(|w| w.proto.name == name)
    }

    /// The protobuf as a plain decoder would give it, weights included.
    pub(crate) fn into_proto(mut self) -> ModelProto {
        if let Some(graph) = self.proto.graph.as_mut() {
            graph.initializer = self
                .weights
                .into_iter()
                .map(|w| {
                    let mut proto = w.proto;
                    if let Some(raw) = w.raw {
                        proto.raw_data = raw.as_bytes().to_vec();
                    }
                    proto
                })
                .collect();
        }
        self.proto
    }
}

impl Weight {
    /// A weight made here (not read from a file).
    pub(crate) fn new(proto: TensorProto) -> Self {
        Weight { proto, raw: None }
    }

    /// Its `raw_data` bytes, wherever they are held.
    pub(crate) fn raw_data(&self) -> &[u8] {
        match &self.raw {
            Some(raw) => raw.as_bytes(),
            None => &self.proto.raw_data,
        }
    }

    /// The weight as a tract tensor; a large `raw_data` becomes it without a copy.
    pub(crate) fn into_tensor(
        self,
        provider: &dyn tract_onnx::data_resolver::ModelDataResolver,
    ) -> TractResult<Tensor> {
        let Weight { mut proto, raw } = self;
        if let Some(mut raw) = raw {
            let dt: DatumType = tract_onnx::pb::tensor_proto::DataType::try_from(proto.data_type)
                .map_err(|e| {
                    format_err!(
                        "unknown ONNX TensorProto.DataType ({}): {e}",
                        proto.data_type
                    )
                })?
                .try_into()?;
            let shape = proto
                .dims
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| format_err!("negative dimension {d}")))
                .collect::<TractResult<Vec<usize>>>()?;
            let expected = shape
                .iter()
                .try_fold(dt.size_of(), |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| format_err!("tensor shape {shape:?} of {dt:?} is too large"))?;
            if dt.is_copy() && dt != DatumType::Bool && cfg!(target_endian = "little") {
                ensure!(
                    expected == raw.len(),
                    "raw data of {} bytes for a {shape:?} {dt:?} tensor of {expected} bytes",
                    raw.len()
                );
                // SAFETY: the byte tensor holds exactly the bytes of a `shape` tensor of
                // `dt` (checked above), little-endian as ONNX stores them, in storage
                // aligned as tract aligns every tensor; `dt` is a plain copy type.
                unsafe {
                    raw.set_datum_type(dt);
                    raw.set_shape_unchecked(&shape);
                }
                return Ok(raw);
            }
            // Anything else goes through tract's own conversion.
            proto.raw_data = raw.as_bytes().to_vec();
        }
        tract_onnx::tensor::load_tensor(provider, &proto, None)
    }
}

/// Why a graph could not be decoded from a reader.
#[derive(Debug)]
pub(crate) enum DecodeFailure {
    /// Reading failed (the decoder saw zeros from there on).
    Io(std::io::Error),
    /// The bytes are not an ONNX model.
    Decode(String),
}

/// Decodes an ONNX model of `len` bytes from `reader`, reading it through a small
/// window, each large weight straight into the tract tensor it becomes. A reader that
/// ends early or fails is padded with zeros so the decoder always sees `len` bytes (the
/// caller's size check then reports the short file).
pub(crate) fn decode_model<R: Read>(reader: R, len: u64) -> Result<OnnxModel, DecodeFailure> {
    let len = usize::try_from(len)
        .map_err(|_| DecodeFailure::Decode(format!("{len} bytes do not fit in memory")))?;
    let mut buf = StreamBuf::new(reader, len);
    let decoded = wire::model(&mut buf);
    if let Some(e) = buf.error.take() {
        return Err(DecodeFailure::Io(e));
    }
    decoded.map_err(DecodeFailure::Decode)
}

/// Decodes an ONNX model held in memory (without tract's copy of the bytes).
pub(crate) fn decode_model_bytes(bytes: &[u8]) -> Result<OnnxModel, String> {
    wire::model(&mut &bytes[..])
}

/// The protobuf wire format, walked by hand for the three levels that hold the weights
/// (model → graph → initializer), so that a weight's `raw_data` is read straight into
/// its tensor; every other field is gathered as it is and decoded by prost.
mod wire {
    use prost::Message as _;
    use prost::bytes::Buf;
    use tract_onnx::pb::{GraphProto, ModelProto, TensorProto};
    use tract_onnx::prelude::*;

    use super::{DIRECT_RAW_DATA, OnnxModel, Weight};

    /// `ModelProto.graph`, `GraphProto.initializer`, `TensorProto.raw_data`.
    const MODEL_GRAPH: u64 = 7;
    const GRAPH_INITIALIZER: u64 = 5;
    const TENSOR_RAW_DATA: u64 = 9;

    fn fail(detail: impl std::fmt::Display) -> String {
        format!("failed to decode Protobuf message: {detail}")
    }

    pub(super) fn model<B: Buf>(buf: &mut B) -> Result<OnnxModel, String> {
        let mut graph = None;
        let mut weights = Vec::new();
        let len = buf.remaining();
        let rest = walk(buf, len, |buf, field, len| {
            if field != MODEL_GRAPH {
                return Ok(false);
            }
            let (g, w) = self::graph(buf, len)?;
            graph = Some(g);
            weights = w;
            Ok(true)
        })?;
        let mut proto = ModelProto::decode(&rest[..]).map_err(|e| format!("{e:#}"))?;
        proto.graph = graph;
        Ok(OnnxModel { proto, weights })
    }

    fn graph<B: Buf>(buf: &mut B, len: usize) -> Result<(GraphProto, Vec<Weight>), String> {
        let mut weights = Vec::new();
        let rest = walk(buf, len, |buf, field, len| {
            if field != GRAPH_INITIALIZER {
                return Ok(false);
            }
            weights.push(tensor(buf, len)?);
            Ok(true)
        })?;
        let graph = GraphProto::decode(&rest[..]).map_err(|e| format!("{e:#}"))?;
        Ok((graph, weights))
    }

    fn tensor<B: Buf>(buf: &mut B, len: usize) -> Result<Weight, String> {
        let mut raw = None;
        let rest = walk(buf, len, |buf, field, len| {
            if field != TENSOR_RAW_DATA || len < DIRECT_RAW_DATA {
                return Ok(false);
            }
            // SAFETY: every byte is written just below, before the tensor is read.
            let mut t = unsafe { Tensor::uninitialized_dt(DatumType::U8, &[len]) }
                .map_err(|e| fail(format!("{e:#}")))?;
            buf.copy_to_slice(t.as_bytes_mut());
            // A later raw_data replaces an earlier one, as in protobuf.
            raw = Some(t);
            Ok(true)
        })?;
        let mut proto = TensorProto::decode(&rest[..]).map_err(|e| format!("{e:#}"))?;
        if raw.is_some() {
            // Two raw_data fields (no writer does that): the large one.
            proto.raw_data.clear();
        }
        Ok(Weight { proto, raw })
    }

    /// Walks the `len` bytes of one message. Each length-delimited field goes to
    /// `take(buf, field, length)` first: `true` means it read exactly `length` bytes of
    /// it; otherwise (and for every other field) the field is copied, key and all, into
    /// the bytes returned, for prost to decode.
    fn walk<B: Buf>(
        buf: &mut B,
        len: usize,
        mut take: impl FnMut(&mut B, u64, usize) -> Result<bool, String>,
    ) -> Result<Vec<u8>, String> {
        let end = buf
            .remaining()
            .checked_sub(len)
            .ok_or_else(|| fail("buffer underflow"))?;
        let mut rest = Vec::new();
        while buf.remaining() > end {
            let key = varint(buf)?;
            let (field, wire) = (key >> 3, key & 7);
            put_varint(&mut rest, key);
            match wire {
                0 => {
                    let value = varint(buf)?;
                    put_varint(&mut rest, value);
                }
                1 => copy(buf, 8, &mut rest)?,
                5 => copy(buf, 4, &mut rest)?,
                2 => {
                    let length = usize::try_from(varint(buf)?)
                        .ok()
                        .filter(|&l| l <= buf.remaining() - end)
                        .ok_or_else(|| fail("buffer underflow"))?;
                    let before = buf.remaining();
                    if take(buf, field, length)? {
                        if before - buf.remaining() != length {
                            return Err(fail(format!("field {field} was not read whole")));
                        }
                        rest.truncate(rest.len() - varint_len(key));
                    } else {
                        put_varint(&mut rest, length as u64);
                        copy(buf, length, &mut rest)?;
                    }
                }
                other => return Err(fail(format!("invalid wire type value: {other}"))),
            }
        }
        if buf.remaining() != end {
            return Err(fail("a field runs past the end of its message"));
        }
        Ok(rest)
    }

    fn varint<B: Buf>(buf: &mut B) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            if !buf.has_remaining() {
                return Err(fail("buffer underflow"));
            }
            let byte = buf.get_u8();
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(fail("invalid varint"))
    }

    fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push(value as u8 | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn varint_len(value: u64) -> usize {
        (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
    }

    fn copy<B: Buf>(buf: &mut B, mut n: usize, out: &mut Vec<u8>) -> Result<(), String> {
        if n > buf.remaining() {
            return Err(fail("buffer underflow"));
        }
        out.reserve(n);
        while n > 0 {
            let chunk = buf.chunk();
            let k = chunk.len().min(n);
            out.extend_from_slice(&chunk[..k]);
            buf.advance(k);
            n -= k;
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn varint_lengths() {
            for value in [0u64, 1, 127, 128, 16383, 16384, u64::MAX] {
                let mut out = Vec::new();
                super::put_varint(&mut out, value);
                assert_eq!(out.len(), super::varint_len(value), "{value}");
                assert_eq!(super::varint(&mut &out[..]).unwrap(), value);
            }
        }
    }
}

/// A [`Buf`] over a reader of known length, through a fixed window.
struct StreamBuf<R> {
    reader: R,
    window: Vec<u8>,
    /// Start and end of the unread bytes in `window`.
    pos: usize,
    filled: usize,
    /// Bytes not yet read into the window.
    left: usize,
    /// The first read failure; zeros stand in for the rest.
    error: Option<std::io::Error>,
}

impl<R: Read> StreamBuf<R> {
    fn new(reader: R, len: usize) -> Self {
        let mut buf = Self {
            reader,
            window: vec![0; WINDOW.min(len)],
            pos: 0,
            filled: 0,
            left: len,
            error: None,
        };
        buf.refill();
        buf
    }

    /// Reads the next window once the current one is used up.
    fn refill(&mut self) {
        if self.pos < self.filled || self.left == 0 {
            return;
        }
        let want = self.window.len().min(self.left);
        let mut got = 0;
        while got < want && self.error.is_none() {
            match self.reader.read(&mut self.window[got..want]) {
                Ok(0) => {
                    self.error = Some(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file ended early",
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => self.error = Some(e),
            }
        }
        self.window[got..want].fill(0);
        self.pos = 0;
        self.filled = want;
        self.left -= want;
    }
}

impl<R: Read> Buf for StreamBuf<R> {
    fn remaining(&self) -> usize {
        self.filled - self.pos + self.left
    }

    fn chunk(&self) -> &[u8] {
        &self.window[self.pos..self.filled]
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining(), "advance past the end of the graph");
        while cnt > 0 {
            let step = cnt.min(self.filled - self.pos);
            self.pos += step;
            cnt -= step;
            self.refill();
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        assert!(len <= self.remaining(), "copy past the end of the graph");
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let take = (len - out.len()).min(self.filled - self.pos);
            out.extend_from_slice(&self.window[self.pos..self.pos + take]);
            self.advance(take);
        }
        Bytes::from(out)
    }
}
