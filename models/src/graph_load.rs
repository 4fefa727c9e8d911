//! ONNX graph to tract plan with as little memory as the graph's own size allows: the
//! one path every graph of a bundle loads through (encoders, heads, keyword spotter).
//!
//! Loading a graph the plain way holds it several times over at once: the file's bytes,
//! tract's own copy of them (`proto_model_for_read` reads into a fresh buffer), the
//! decoded protobuf (every weight copied out of the bytes), tract's tensors (copied out
//! of the protobuf), then the optimised model (weights packed for the kernels). For a
//! base-size speech encoder that was most of the board program's peak memory. Here:
//!
//! 1. [`decode_model`] decodes the protobuf straight from a reader (a bundle file, its
//!    SHA-256 computed on the way) through a small window: the file's bytes are never
//!    held whole.
//! 2. [`runnable_plan`] takes the weights (initializers) out of the protobuf before tract
//!    parses it, so tract builds the graph with a source where each weight goes, drops
//!    the protobuf, then turns the weights into tensors one at a time, each protobuf copy
//!    freed as its tensor is made, and puts each in its source's place as a constant.
//! 3. tract optimises the model (packing the weights) and the plan keeps only that.
//!
//! The graph tract optimises is the one it would have parsed with the weights inline
//! (same nodes, same constants), so the results are the same; a test compares them.
//!
//! [`executor`] gives every graph of the process one thread pool per thread count.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};

use prost::bytes::{Buf, Bytes};
use tract_onnx::pb::{ModelProto, TensorProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::{ensure, format_err};
use tract_onnx::tract_hir::ops::konst::Const;

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
    raw: Option<Tensor>,
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
    fn into_tensor(
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

/// Optimises an ONNX model and makes it runnable, its matrix products on `threads`
/// threads (1 = the calling thread only, else the process's shared pool of that size),
/// with `assertion` (e.g. `samples>=400`) known about its symbolic dimensions. The
/// model is consumed: each weight's protobuf copy, if any, is freed as its tensor is
/// made.
pub(crate) fn runnable_plan(
    mut model: OnnxModel,
    threads: usize,
    assertion: Option<&str>,
) -> Result<Arc<TypedSimplePlan>, String> {
    let err = |e: TractError| format!("{e:#}");
    // What the load frees goes back (and the heap is trimmed) as it ends.
    let _loading = crate::memory::Loading::start();
    let compute = crate::int8::Int8Compute::from_env()?;
    crate::int8::rewrite_products(&mut model, compute.min_integer_weight_values())?;
    let onnx = tract_onnx::onnx();
    let OnnxModel {
        mut proto,
        mut weights,
    } = model;
    let graph = proto
        .graph
        .as_mut()
        .ok_or_else(|| "model proto does not contain a graph".to_string())?;
    let weight_names: HashSet<String> = weights.iter().map(|w| w.proto.name.clone()).collect();
    // Old-style graphs also list their initializers as inputs; without the initializer
    // tract would make a typed source of each. Unlisted, it makes an untyped source
    // where a node reads the name, which is what is replaced below.
    graph.input.retain(|i| !weight_names.contains(&i.name));
    let parsed = onnx.parse(&proto, None).map_err(err)?;
    drop(proto);
    let mut model = parsed.model;
    let mut sources: HashMap<String, OutletId> = HashMap::new();
    for name in parsed.unresolved_inputs {
        if !weight_names.contains(&name) {
            return Err(format!(
                "Could not resolve inputs at top-level: {name:?} is neither an input nor an initializer"
            ));
        }
        let outlet = parsed.outlets_by_name[&name];
        sources.insert(name, outlet);
    }
    // Last first, so that each weight's protobuf bytes are freed as soon as its tensor
    // exists (popping keeps the vector's slots, not their contents).
    while let Some(weight) = weights.pop() {
        let Some(outlet) = sources.remove(&weight.proto.name) else {
            // An initializer no node reads: tract would keep it as an unused constant,
            // which optimisation removes.
            continue;
        };
        let name = weight.proto.name.clone();
        let tensor = weight
            .into_tensor(&*onnx.provider)
            .map_err(|e| format!("initializer {name}: {e:#}"))?
            .into_arc_tensor();
        let fact = TypedFact::try_from(tensor.clone()).map_err(err)?;
        let node = model.node_mut(outlet.node);
        node.op = Const::new(tensor).map_err(err)?.into();
        node.outputs[0].fact = fact.into();
        model.inputs.retain(|input| *input != outlet);
    }
    drop(weights);
    if let Some(assertion) = assertion {
        model.symbols.add_assertion(assertion).map_err(err)?;
    }
    let options = RunOptions {
        executor: executor(threads),
        ..RunOptions::default()
    };
    model
        .into_optimized()
        .and_then(|model| model.into_runnable_with_options(&options))
        .map_err(err)
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

/// The process's thread pool for `threads` threads (`None`, the calling thread only,
/// for 1): made on first use and shared by every graph loaded with that count, so that
/// a pipeline (speech encoder, heads, spotter, text encoder) and its clones run on one
/// pool instead of one pool per graph.
pub(crate) fn executor(threads: usize) -> Option<multithread::Executor> {
    static POOLS: OnceLock<Mutex<HashMap<usize, multithread::Executor>>> = OnceLock::new();
    if threads <= 1 {
        return None;
    }
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut pools = pools
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Some(
        pools
            .entry(threads)
            .or_insert_with(|| multithread::Executor::multithread(threads))
            .clone(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_graph(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/demo-bundle")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A reader that hands out a few bytes at a time (windows end mid-field).
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn streamed_decoding_equals_decoding_the_whole_file() {
        for name in ["speech_encoder.fp32.onnx", "head_fusion.int8.onnx"] {
            let bytes = demo_graph(name);
            let whole = <ModelProto as prost::Message>::decode(&bytes[..]).unwrap();
            assert_eq!(decode_model_bytes(&bytes).unwrap().into_proto(), whole);
            for step in [1, 7, 4096, usize::MAX] {
                let streamed = decode_model(Trickle(&bytes, step), bytes.len() as u64).unwrap();
                assert!(streamed.weights.iter().any(|w| w.raw.is_some()), "{name}");
                assert_eq!(
                    streamed.into_proto(),
                    whole,
                    "{name}, {step} bytes per read"
                );
            }
        }
    }

    #[test]
    fn a_short_or_failing_reader_is_an_error_not_a_panic() {
        let bytes = demo_graph("head_speech.fp32.onnx");
        let half = &bytes[..bytes.len() / 2];
        match decode_model(half, bytes.len() as u64) {
            Err(DecodeFailure::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
            other => panic!("{other:?}"),
        }
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        assert!(matches!(
            decode_model(Failing, 1000),
            Err(DecodeFailure::Io(_))
        ));
        assert!(matches!(
            decode_model(&b"not a graph at all"[..], 18),
            Err(DecodeFailure::Decode(_))
        ));
    }

    /// The plan built with the weights taken out and put back computes exactly what
    /// tract's own loading computes (of the graph with its int8 products rewritten as
    /// this CPU needs, which `runnable_plan` does first).
    #[test]
    fn weights_put_back_as_constants_give_the_same_results() {
        let bytes = demo_graph("speech_encoder.int8.onnx");
        let onnx = tract_onnx::onnx();
        let mut proto = onnx.proto_model_for_read(&mut &bytes[..]).unwrap();
        let compute = crate::int8::Int8Compute::from_env().unwrap();
        crate::int8::products_in_float(&mut proto, compute.min_integer_weight_values()).unwrap();
        let reference = onnx
            .model_for_proto_model(&proto)
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let plan = runnable_plan(decode_model_bytes(&bytes).unwrap(), 1, None).unwrap();
        let samples: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let input = || {
            tvec!(
                Tensor::from_shape(&[1, samples.len()], &samples)
                    .unwrap()
                    .into()
            )
        };
        let want = reference.run(input()).unwrap();
        let got = plan.run(input()).unwrap();
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(
                w.to_plain_array_view::<f32>().unwrap(),
                g.to_plain_array_view::<f32>().unwrap()
            );
        }
    }

    #[test]
    fn one_pool_per_thread_count() {
        assert!(executor(1).is_none());
        let (
            Some(multithread::Executor::MultiThread(a)),
            Some(multithread::Executor::MultiThread(b)),
        ) = (executor(3), executor(3))
        else {
            panic!("a 3-thread executor is a pool");
        };
        assert!(Arc::ptr_eq(&a, &b));
        let Some(multithread::Executor::MultiThread(c)) = executor(2) else {
            panic!("a 2-thread executor is a pool");
        };
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.current_num_threads(), 3);
    }
}
