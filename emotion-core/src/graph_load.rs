//! ONNX graph to tract plan with as little memory as the graph's own size allows: the
//! one path every graph of a bundle loads through (encoders, heads, keyword spotter).
//!
//! Loading a graph the plain way holds it several times over at once: the file's bytes,
//! tract's own copy of them (`proto_model_for_read` reads into a fresh buffer), the
//! decoded protobuf (every weight copied out of the bytes), tract's tensors (copied out
//! of the protobuf), then the optimised model (weights packed for the kernels). For a
//! base-size speech encoder that was most of the board program's peak memory. Here:
//!
//! 1. [`crate::onnx_model::decode_model`] decodes the protobuf straight from a reader (a bundle file, its
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
use std::sync::{Arc, Mutex, OnceLock};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::ops::konst::Const;

use crate::onnx_model::OnnxModel;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    use tract_onnx::pb::ModelProto;

    use crate::onnx_model::{DecodeFailure, decode_model, decode_model_bytes};

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
