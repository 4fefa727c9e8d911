//! Where an encoder graph spends its time: every node of tract's optimised plan timed
//! over a few runs, the slowest printed with their op and kernel.
//!
//!   cargo run --release -p emotion-core --example profile_graph -- GRAPH.onnx [SECONDS] [RUNS]
//!
//! `TRACT_CPU_ISA=-avx512f,-avx512vnni,-avxvnni` makes an AVX-512 machine pick the kernels
//! of an AVX2 + FMA one (tract's own knob), which is how the int8 cliff of issue 20 was
//! found without such a CPU. `EMOTION_EDGE_INT8=integer|float` overrides how an int8 graph's
//! products are computed (default: as the board decides for this CPU,
//! `emotion_core::int8::Int8Compute::Auto`). Prints figures; asserts nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use emotion_core::int8::{Int8Compute, products_in_float};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{SimpleState, eval};

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or_else(|| {
        tract_onnx::tract_core::internal::format_err!(
            "usage: profile_graph GRAPH.onnx [SECONDS] [RUNS]"
        )
    })?;
    let seconds: f32 = args.get(2).map_or(Ok(2.0), |s| s.parse())?;
    let runs: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    let mut proto = tract_onnx::onnx().proto_model_for_path(path)?;
    let compute = Int8Compute::from_env()
        .map_err(|e| tract_onnx::tract_core::internal::format_err!("{e}"))?;
    let rewritten = products_in_float(&mut proto, compute.min_integer_weight_values())
        .map_err(|e| tract_onnx::tract_core::internal::format_err!("{e}"))?;
    println!("int8 compute {compute:?}: {rewritten} quantised products computed in float");
    let model = tract_onnx::onnx().model_for_proto_model(&proto)?;
    drop(proto);
    if model.symbols.get("samples").is_some() {
        model.symbols.add_assertion("samples>=400")?;
    }
    let plan = model.into_optimized()?.into_runnable()?;
    let samples = (seconds * 16_000.0) as usize;
    let input = Tensor::from_shape(
        &[1, samples],
        &(0..samples)
            .map(|i| (i as f32 * 0.01).sin())
            .collect::<Vec<f32>>(),
    )?;
    let mut spent: HashMap<usize, Duration> = HashMap::new();
    let mut state = SimpleState::new(&plan)?;
    let mut totals = Vec::new();
    for run in 0..=runs {
        let start = Instant::now();
        let mut times = Vec::new();
        state.run_plan_with_eval(
            tvec!(input.clone().into_tvalue()),
            |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let out = eval(ctx, op_state, node, inputs);
                times.push((node.id, t.elapsed()));
                out
            },
        )?;
        if run > 0 {
            totals.push(start.elapsed());
            for (id, t) in times {
                *spent.entry(id).or_default() += t;
            }
        }
    }
    totals.sort();
    let median = totals[totals.len() / 2];
    println!(
        "{path}: {seconds} s of audio, median {:.1} ms over {runs} runs (min {:.1}, max {:.1})",
        ms(median),
        ms(totals[0]),
        ms(*totals.last().unwrap())
    );
    let mut by_op: HashMap<String, Duration> = HashMap::new();
    let model = plan.model();
    for (&id, &t) in &spent {
        *by_op
            .entry(model.node(id).op().name().to_string())
            .or_default() += t;
    }
    let mut by_op: Vec<_> = by_op.into_iter().collect();
    by_op.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    println!("\nby op (ms per run):");
    for (op, t) in by_op.iter().take(15) {
        println!("  {:>8.2}  {op}", ms(*t) / runs as f64);
    }
    let mut nodes: Vec<_> = spent.into_iter().collect();
    nodes.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    println!("\nslowest nodes (ms per run):");
    for (id, t) in nodes.iter().take(25) {
        let node = model.node(*id);
        let op = format!("{:?}", node.op());
        println!(
            "  {:>8.2}  {} [{}] {}",
            ms(*t) / runs as f64,
            node.name,
            node.op().name(),
            op.chars()
                .take(
                    std::env::var("PROFILE_WIDTH")
                        .ok()
                        .and_then(|w| w.parse().ok())
                        .unwrap_or(160)
                )
                .collect::<String>()
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
