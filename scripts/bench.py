#!/usr/bin/env python3
"""The performance table: emotion-edge (tract) against onnxruntime and the reference
study's PyTorch stack, measured side by side in one run. Prepared and started by
scripts/bench.sh; writes OUT/bench.md (the table, the ratios against the targets, the
board estimates) and OUT/bench.json (one record per row). Prints figures; asserts
nothing.

Every measured configuration runs in its own process, so each row's peak RSS is that
configuration's own (`wait4`'s maxrss of the child). Medians of timed runs after
untimed warm-up runs. Audio: a speech-like 16 kHz signal (harmonics under a 3 Hz
envelope, no silence, so the front-end's trim keeps all of it) of the stated length.
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

ALL_THREADS = os.cpu_count() or 1
RATE = 16_000
WARMUP, REPEATS = 2, 7
# Silence at each end of the benchmark clip: the front-end's trim margin (100 ms).
EDGE_SILENCE = 0.1

# Nominal peak arithmetic per core and cycle: (fp32 FLOP, int8 ops), one
# multiply-accumulate = 2. This machine: AMD Zen 4, two 256-bit FMA pipes and AVX-512
# VNNI (vpdpbusd) on both. Boards: Cortex-A72 (Pi 4) and A76 (Pi 5) have two 128-bit
# NEON FMA pipes; the A76 has SDOT (4 int8 MAC per lane), the A72 none (tract widens to
# 16 bits: taken as twice the fp32 rate); the A53 (Zero 2 W) issues one 128-bit FMA per
# two cycles.
HOST_PER_CYCLE = (32, 128)
BOARDS = [
    # name, cores, GHz, fp32 FLOP/cycle/core, int8 ops/cycle/core
    ("Raspberry Pi 5 (Cortex-A76)", 4, 2.4, 16, 64),
    ("Raspberry Pi 4 (Cortex-A72)", 4, 1.8, 16, 32),
    ("Raspberry Pi Zero 2 W (Cortex-A53)", 4, 1.0, 4, 8),
]


def speech_like(seconds, edge_silence=EDGE_SILENCE):
    """`seconds` of audio: voiced, with `edge_silence` of silence at each end (as a
    recorded utterance has), so the front-end's trim (speech + 100 ms each side) hands
    the encoder exactly `seconds`."""
    t = np.arange(int((seconds - 2 * edge_silence) * RATE), dtype=np.float64) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)
    x = envelope * sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 700, 1200), 1))
    x = (x - x.mean()) / x.std()
    pad = np.zeros(int(edge_silence * RATE))
    return np.concatenate([pad, x, pad]).astype(np.float32)


def write_wav(path, samples):
    pcm = np.clip(samples / (np.abs(samples).max() + 1e-9) * 0.5 * 32767, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def timed(run):
    for _ in range(WARMUP):
        run()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_self_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----- peers, each run in a child process -------------------------------------------


def peer_ort(model, threads, seconds):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    x = speech_like(seconds, edge_silence=0.0)[None]
    name = session.get_inputs()[0].name
    return timed(lambda: session.run(None, {name: x}))


def peer_torch(encoders, threads, seconds, hubert_layers):
    import torch
    from transformers import BertModel, HubertModel, PreTrainedTokenizerFast

    torch.set_num_threads(threads)
    hubert = HubertModel.from_pretrained(f"{encoders}/facebook--hubert-base-ls960").eval()
    hubert.encoder.layers = hubert.encoder.layers[:hubert_layers]
    bert_dir = f"{encoders}/google-bert--bert-base-uncased"
    bert = BertModel.from_pretrained(bert_dir).eval()
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=f"{bert_dir}/tokenizer.json")
    x = torch.from_numpy(speech_like(seconds, edge_silence=0.0))[None]
    ids = torch.tensor([tokenizer("say the word back")["input_ids"]])

    def run():
        with torch.inference_mode():
            hubert(x, output_hidden_states=True)
            bert(ids, output_hidden_states=True)

    return timed(run)


def peer_torch_export(encoders, out):
    """HF's own ONNX export of the pruned HuBERT (torch.onnx, TorchScript exporter):
    the graph a Python user would give onnxruntime."""
    import torch
    from transformers import HubertModel

    hubert = HubertModel.from_pretrained(f"{encoders}/facebook--hubert-base-ls960").eval()
    hubert.encoder.layers = hubert.encoder.layers[:9]
    torch.onnx.export(
        hubert, (torch.zeros(1, 2 * RATE),), out, input_names=["input_values"],
        output_names=["last_hidden_state"], dynamic_axes={"input_values": {1: "samples"}},
        opset_version=17, dynamo=False,
    )
    return 0.0


def child_main(argv):
    kind, args = argv[0], json.loads(argv[1])
    if kind == "ort":
        seconds = peer_ort(args["model"], args["threads"], args["seconds"])
    elif kind == "torch":
        seconds = peer_torch(args["encoders"], args["threads"], args["seconds"], args["hubert_layers"])
    elif kind == "torch-export":
        seconds = peer_torch_export(args["encoders"], args["model"])
    else:
        raise SystemExit(f"unknown peer {kind}")
    print(json.dumps({"median_seconds": seconds}))


# ----- running children -------------------------------------------------------------


def run_child(command, log):
    """Runs `command`, returns (stdout, peak RSS MB of that process alone)."""
    command = [str(c) for c in command]
    with open(log, "w") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({process.returncode}); see {log}")
    return stdout, usage.ru_maxrss / 1024


def python_peer(out, kind, **args):
    stdout, rss = run_child(
        [sys.executable, __file__, "--child", kind, json.dumps(args)], out / f"log-{kind}.txt"
    )
    return json.loads(stdout.strip().splitlines()[-1])["median_seconds"], rss


def edge_bench(edge, bundle, variant, threads, seconds, out):
    wav = out / f"signal-{seconds:g}s.wav"
    write_wav(wav, speech_like(seconds))
    stdout, rss = run_child(
        [edge, "bench", "--bundle", bundle, "--variant", variant, "--threads-list", str(threads),
         "--file", wav, "--repeats", str(REPEATS), "--warmup", str(WARMUP), "--json"],
        out / "log-edge-bench.txt",
    )
    return json.loads(stdout.strip().splitlines()[-1]), rss


def listen(edge, bundle, stream, fast, threads, out):
    command = [edge, "listen", "--source", stream, "--json", "--threads", str(threads)]
    if bundle:
        command += ["--bundle", bundle]
    if fast:
        command.append("--fast")
    start = time.perf_counter()
    stdout, rss = run_child(command, out / "log-listen.txt")
    wall = time.perf_counter() - start
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    latencies = [line["shown_after_ms"] for line in lines if "shown_after_ms" in line]
    return latencies, rss, wall


def joined_corpus(out, files, gap_seconds=1.5):
    """Corpus files one after another with silence between (a kiosk's stream), 16 kHz."""
    chunks = []
    for path in files:
        with wave.open(str(path)) as w:
            rate, data = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")
        positions = np.arange(0, len(data) - 1, rate / RATE)
        chunks.append(np.interp(positions, np.arange(len(data)), data.astype(np.float64)))
        chunks.append(np.zeros(int(gap_seconds * RATE)))
    stream = out / "stream.wav"
    with wave.open(str(stream), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.concatenate(chunks).astype("<i2").tobytes())
    return stream


# ----- the table ----------------------------------------------------------------------


def row(stack, variant, threads, seconds, median, rss, note=""):
    return {
        "stack": stack, "variant": variant, "threads": threads, "audio_seconds": seconds,
        "median_seconds": round(median, 5), "real_time_factor": round(median / seconds, 4),
        "peak_rss_mb": round(rss, 1), "note": note,
    }


def cpu_mhz():
    try:
        text = Path("/proc/cpuinfo").read_text()
        return float(re.search(r"cpu MHz\s*:\s*([\d.]+)", text).group(1))
    except (OSError, AttributeError):
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--edge", required=True, help="the emotion-edge binary")
    parser.add_argument("--bundle", required=True, help="the base-size bundle (fp32 + int8)")
    parser.add_argument("--encoders", required=True, help="the base-size checkpoints")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows, edge_rows = [], {}
    threads_all = sorted({1, ALL_THREADS})

    def say(text):
        print(text, flush=True)

    # Edge pipeline: front-end + pruned HuBERT + heads, both variants, 1..all threads.
    for variant in ("fp32", "int8"):
        for threads in threads_all:
            say(f"emotion-edge {variant}, {threads} thread(s), 2 s")
            bench, rss = edge_bench(args.edge, args.bundle, variant, threads, 2.0, out)
            edge_rows[(variant, threads)] = bench
            rows.append(row("emotion-edge (tract)", f"pipeline {variant}", threads, 2.0,
                            bench["total_ms"] / 1e3, rss,
                            f"front-end {bench['frontend_ms']:.1f} ms, encoder {bench['speech_encoder_ms']:.1f} ms"))
    # Length scaling, int8, one thread.
    scaling = []
    for seconds in (1, 2, 4, 6, 8, 10):
        say(f"emotion-edge int8, 1 thread, {seconds} s")
        bench, rss = edge_bench(args.edge, args.bundle, "int8", 1, float(seconds), out)
        scaling.append((seconds, bench["total_ms"] / 1e3))
        rows.append(row("emotion-edge (tract)", "pipeline int8 (length)", 1, float(seconds),
                        bench["total_ms"] / 1e3, rss))

    # onnxruntime on the fp32 pruned encoder alone: HF's own export and ours.
    hf_onnx = out / "hf-hubert-pruned9.onnx"
    if not hf_onnx.exists():
        say("exporting HF's HuBERT (9 layers) with torch.onnx")
        python_peer(out, "torch-export", encoders=args.encoders, model=str(hf_onnx))
    ort_best = {}
    for label, model in (("HF torch.onnx export", hf_onnx),
                         ("emotion-edge graph", Path(args.bundle) / "speech_encoder.fp32.onnx")):
        for threads in threads_all:
            say(f"onnxruntime, {label}, {threads} thread(s)")
            median, rss = python_peer(out, "ort", model=str(model), threads=threads, seconds=2.0)
            ort_best[threads] = min(ort_best.get(threads, median), median)
            rows.append(row("onnxruntime", f"encoder fp32 ({label})", threads, 2.0, median, rss))
    # The reference study's stack: PyTorch eager, HuBERT-base 12 layers + BERT-base.
    torch_time = {}
    for threads in threads_all:
        say(f"PyTorch eager, {threads} thread(s)")
        median, rss = python_peer(out, "torch", encoders=args.encoders, threads=threads,
                                  seconds=2.0, hubert_layers=12)
        torch_time[threads] = median
        rows.append(row("PyTorch eager", "HuBERT-base 12 layers + BERT-base, fp32", threads,
                        2.0, median, rss))

    # listen: memory with the default bundle (and the base one), latency in real time.
    corpus = sorted(Path("data/synthetic-tess").rglob("*.wav"))
    stream = joined_corpus(out, corpus[:: max(1, len(corpus) // 8)][:8])
    with wave.open(str(stream)) as w:
        stream_seconds = w.getnframes() / w.getframerate()
    listen_rows = {}
    for label, bundle in (("default bundle", None), ("base bundle, int8", args.bundle)):
        say(f"listen --fast, {label}")
        latencies, rss, wall = listen(args.edge, bundle, stream, True, 1, out)
        rows.append(row("emotion-edge listen --fast", label, 1, stream_seconds, wall, rss,
                        f"{len(latencies)} utterances, one run over the whole stream"))
        say(f"listen in real time, {label}")
        latencies, _, _ = listen(args.edge, bundle, stream, False, 1, out)
        listen_rows[label] = (rss, latencies)

    # Work and rates.
    fp32_1, int8_1 = edge_rows[("fp32", 1)], edge_rows[("int8", 1)]
    gmac_per_s = int8_1["encoder_gmac"] / int8_1["audio_seconds"]
    mhz = cpu_mhz()
    summary = {"rows": rows, "cpu_mhz": mhz, "threads_all": ALL_THREADS,
               "encoder_gmac_per_audio_second": gmac_per_s}

    md = ["| stack | variant | threads | audio s | median s | real-time factor | peak RSS MB | note |",
          "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r['stack']} | {r['variant']} | {r['threads']} | {r['audio_seconds']:g} | "
                  f"{r['median_seconds']:.3f} | {r['real_time_factor']:.3f} | {r['peak_rss_mb']:.0f} | {r['note']} |")
    md += ["", "## Targets", ""]
    pipe_int8 = int8_1["total_ms"] / 1e3
    md.append(f"- Edge pipeline int8, 1 thread, 2 s: {pipe_int8 * 1e3:.0f} ms = "
              f"**{pipe_int8 / ort_best[1]:.2f} ×** onnxruntime's fp32 pruned encoder alone "
              f"({ort_best[1] * 1e3:.0f} ms, its faster graph); fp32 pipeline "
              f"{fp32_1['total_ms']:.0f} ms ({fp32_1['total_ms'] / 1e3 / ort_best[1]:.2f} ×). Target ≤ 1.0 ×.")
    for threads in threads_all:
        ours = edge_rows[("int8", threads)]["total_ms"] / 1e3
        md.append(f"- Against the reference study's PyTorch stack, {threads} thread(s): "
                  f"{torch_time[threads] * 1e3:.0f} ms vs {ours * 1e3:.0f} ms, **{torch_time[threads] / ours:.2f} ×** faster. Target ≥ 3 ×.")
    top = edge_rows[("int8", ALL_THREADS)]["total_ms"]
    md.append(f"- Threads: int8 pipeline {int8_1['total_ms']:.0f} ms on 1 thread, {top:.0f} ms on "
              f"{ALL_THREADS} ({int8_1['total_ms'] / top:.2f} × faster).")
    slope, intercept = np.polyfit([s for s, _ in scaling], [t for _, t in scaling], 1)
    worst = max(abs(t - (slope * s + intercept)) / t for s, t in scaling)
    md.append(f"- Length: {', '.join(f'{s} s {t * 1e3:.0f} ms' for s, t in scaling)}; a line fits "
              f"{slope * 1e3:.0f} ms per second of audio + {intercept * 1e3:.0f} ms, worst deviation {worst * 100:.1f} %.")
    for label, (rss, latencies) in listen_rows.items():
        if latencies:
            md.append(f"- `listen`, {label}: peak RSS {rss:.0f} MB (target ≤ 150 MB); end of speech → "
                      f"shown, real time: median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms "
                      f"over {len(latencies)} utterances (target ≤ 300 ms).")
        summary[f"listen {label}"] = {"peak_rss_mb": rss, "latencies_ms": latencies}
    md += ["", "## Work, this CPU's peak, the boards", ""]
    md.append(f"- Speech encoder (HuBERT-base pruned to 9 layers), counted from the graph: "
              f"{gmac_per_s:.2f} GMAC = {2 * gmac_per_s:.1f} GFLOP per second of audio.")
    if mhz:
        for variant, bench, per_cycle in (("fp32", fp32_1, HOST_PER_CYCLE[0]), ("int8", int8_1, HOST_PER_CYCLE[1])):
            peak = per_cycle * mhz / 1e3
            md.append(f"- {variant}, 1 thread: {bench['encoder_gflops']:.0f} G(FL)OP/s = "
                      f"{100 * bench['encoder_gflops'] / peak:.0f} % of this core's nominal peak "
                      f"({peak:.0f} at {mhz:.0f} MHz, {per_cycle} per cycle).")
        eff = {v: b["encoder_gflops"] / (HOST_PER_CYCLE[i] * mhz / 1e3)
               for i, (v, b) in enumerate((("fp32", fp32_1), ("int8", int8_1)))}
        md += ["", "| board | cores × GHz | peak fp32 / int8 per core (G) | est. encoder, 2 s, 1 core, int8 | est. 2 s, all cores, int8 | real-time factor, all cores |",
               "|---|---|---|---:|---:|---:|"]
        work = 2 * gmac_per_s * 2.0  # G(FL)OP for 2 s
        for name, cores, ghz, f32c, i8c in BOARDS:
            one = work / (i8c * ghz * eff["int8"])
            every = one / (cores * 0.8)
            md.append(f"| {name} | {cores} × {ghz} | {f32c * ghz:.0f} / {i8c * ghz:.0f} | {one:.2f} s | {every:.2f} s | {every / 2.0:.2f} |")
        md.append("")
        md.append(f"Estimates: the work above divided by the board's int8 peak times the fraction of "
                  f"peak tract reached here ({100 * eff['int8']:.0f} %), all cores at 80 % parallel "
                  f"efficiency. Not measured on a board.")
        summary["efficiency"] = eff
    (out / "bench.md").write_text("\n".join(md) + "\n")
    (out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n".join(md))
    print(f"\nwritten: {out / 'bench.md'}, {out / 'bench.json'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
