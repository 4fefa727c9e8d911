#!/usr/bin/env python3
"""The performance table: emotion-edge (tract) against onnxruntime (fp32 and its own
int8) and the reference study's PyTorch stack, measured side by side in one run.
Prepared and started by scripts/bench.sh; writes OUT/bench.md and OUT/bench.json, and
docs/results/bench-YYYY-MM-DD.{json,md} (scripts/bench_table.py puts the newest into
docs/performance.md). Prints figures; asserts nothing. Python is a peer of the benchmark only.

Every row is measured in several separate processes (`--runs`, rounds interleaved,
every other round in reverse order, so a slow spell of the machine spreads over all
rows); each process reports the median of its timed runs after untimed warm-up runs.
A row's median is the median of its process medians, min and max the lowest and highest
of them, its peak RSS the highest of the processes' own high-water marks (VmHWM, read
from /proc while each child runs; not `wait4`'s maxrss, which counts this script's
resident size at the fork). Audio: a speech-like 16 kHz signal (harmonics under a 3 Hz
envelope, no silence, so the front-end's trim keeps all of it) of the stated length.

CPU classes: tract reads `TRACT_CPU_ISA` (comma-separated +/- edits of the detected
features) and takes the removed features' kernels out of its pool, so one machine also
measures what a smaller CPU's kernels do. It is set for those emotion-edge children
only, and removed from every other child's environment.

`--quick` tries the logic on small inputs (any bundle, e.g. data/demo-bundle): fewer
runs and repeats, no PyTorch, one extra length, and nothing written to docs/results
unless `--results` says where.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
import wave
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_table  # noqa: E402  (the Markdown renderer docs/performance.md shares)

ROOT = Path(__file__).resolve().parent.parent
ALL_THREADS = os.cpu_count() or 1
RATE = 16_000
# Silence at each end of the benchmark clip: the front-end's trim margin (100 ms).
EDGE_SILENCE = 0.1
CLIP_SECONDS = 2.0
HUBERT_LAYERS_EDGE = 9
ISA_VAR = "TRACT_CPU_ISA"

# Targets of issue 20 (the pipeline at 1 and 2 threads).
TARGET_VS_ORT_INT8 = 0.8
TARGET_VS_ORT_FP32 = 0.6
TARGET_VS_TORCH = 3.0
TARGET_SPEEDUP_2T = 1.7

# The SIMD features that decide tract's kernels, as /proc/cpuinfo spells them.
X86_FLAGS = ["avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"]
ARM_FLAGS = ["asimd", "asimddp", "fphp", "asimdhp", "sve"]
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55",
             "0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd09": "Cortex-A73",
             "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1",
             "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78", "0xd49": "Neoverse-N2"}
# Smaller CPU classes emulated with TRACT_CPU_ISA: (label, value, /proc/cpuinfo flags
# of which the host must have at least one for the restriction to change anything).
EMULATED = {
    "x86_64": [("x86 AVX2 (tract kernels restricted with TRACT_CPU_ISA)",
                "-avx512f,-avx512vnni,-avx512fp16,-avxvnni,-amx-int8,-amx-bf16",
                ["avx512f", "avx512_vnni", "avx_vnni", "amx_int8"])],
    "aarch64": [("Arm NEON without dot product, Cortex-A72 class (tract kernels restricted "
                 "with TRACT_CPU_ISA)", "-dotprod,-fp16,-sve2,-sme,-sme2", ["asimddp"])],
}

# Nominal peak arithmetic per core and cycle: (fp32 FLOP, int8 ops), one
# multiply-accumulate = 2, for this machine's CPU (`host_per_cycle`). Boards: Cortex-A72
# (Pi 4) and A76 (Pi 5) have two 128-bit NEON FMA pipes; the A76 has SDOT (4 int8 MAC per
# lane), the A72 none (tract widens to 16 bits: taken as twice the fp32 rate); the A53
# (Zero 2 W) issues one 128-bit FMA per two cycles.
HOST_CORES = {
    # (vendor, family): (fp32 FLOP, int8 ops, what)
    ("AuthenticAMD", 25): (32, 128, "AMD Zen 4: two 256-bit FMA pipes, AVX-512 VNNI "
                                    "(vpdpbusd) at 256 bits per pipe"),
    ("AuthenticAMD", 26): (64, 256, "AMD Zen 5: two 512-bit FMA pipes, AVX-512 VNNI at "
                                    "512 bits per pipe"),
}


def host_per_cycle():
    """(fp32 FLOP, int8 ops, description) per core and cycle for this machine's CPU, from
    /proc/cpuinfo's vendor and family; an AVX2 + FMA core's figures where unknown."""
    vendor, family = None, None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "vendor_id":
                vendor = value
            elif key == "cpu family":
                family = int(value)
            if vendor and family is not None:
                break
    except (OSError, ValueError):
        pass
    return HOST_CORES.get((vendor, family), (
        32, 64, f"{vendor or 'unknown vendor'} family {family}: not in scripts/bench.py's "
                "table, assumed two 256-bit FMA pipes and no int8 dot product"))


HOST_PER_CYCLE = host_per_cycle()
BOARDS = [
    # name, cores, GHz, fp32 FLOP/cycle/core, int8 ops/cycle/core
    ("Raspberry Pi 5 (Cortex-A76)", 4, 2.4, 16, 64),
    ("Raspberry Pi 4 (Cortex-A72)", 4, 1.8, 16, 32),
    ("Raspberry Pi Zero 2 W (Cortex-A53)", 4, 1.0, 4, 8),
]

WARMUP, REPEATS = 2, 7  # set from the command line in main()


def say(text):
    print(text, flush=True)


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


def timed(run, warmup, repeats):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


# ----- the machine --------------------------------------------------------------------


def cpu_info():
    """Model name and the SIMD flags that decide tract's kernels, from /proc/cpuinfo."""
    arch = platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"arch": arch, "model": None, "flags": []}

    def field(name):
        match = re.search(rf"^{name}\s*:\s*(.+)$", text, re.MULTILINE)
        return match.group(1).strip() if match else None

    model = field("model name")
    if model is None:  # aarch64 kernels print no model name: name the core from its part
        part = field("CPU part")
        model = ARM_PARTS.get((part or "").lower(), f"CPU part {part}" if part else None)
    present = set((field("flags") or field("Features") or "").split())
    wanted = ARM_FLAGS if arch in ("aarch64", "arm64") else X86_FLAGS
    return {"arch": arch, "model": model, "flags": [f for f in wanted if f in present]}


def cpu_mhz():
    try:
        text = Path("/proc/cpuinfo").read_text()
        return float(re.search(r"cpu MHz\s*:\s*([\d.]+)", text).group(1))
    except (OSError, AttributeError):
        return None


def native_class(cpu):
    flags = set(cpu["flags"])
    if cpu["arch"] in ("aarch64", "arm64"):
        return "Arm NEON + dot product" if "asimddp" in flags else "Arm NEON"
    for flag, name in (("amx_int8", "x86 AMX"), ("avx512_vnni", "x86 AVX-512 VNNI"),
                       ("avx_vnni", "x86 AVX-VNNI"), ("avx512f", "x86 AVX-512"),
                       ("avx2", "x86 AVX2")):
        if flag in flags:
            return name
    return "x86"


def versions():
    found = {"python": platform.python_version()}
    for name in ("onnxruntime", "onnx", "torch", "transformers", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    lock = ROOT / "Cargo.lock"
    if lock.exists():
        match = re.search(r'name = "tract-core"\nversion = "([^"]+)"', lock.read_text())
        if match:
            found["tract"] = match.group(1)
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        found["git"] = head + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        pass
    return found


# ----- peers, each run in a child process -------------------------------------------


def peer_ort(model, threads, seconds, warmup, repeats):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    x = speech_like(seconds, edge_silence=0.0)[None]
    name = session.get_inputs()[0].name
    return timed(lambda: session.run(None, {name: x}), warmup, repeats)


def peer_torch(encoders, threads, seconds, hubert_layers, warmup, repeats):
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

    return timed(run, warmup, repeats)


def peer_torch_export(encoders, out, hubert_layers):
    """HF's own ONNX export of the pruned HuBERT (torch.onnx, TorchScript exporter):
    the graph a Python user would give onnxruntime."""
    import torch
    from transformers import HubertModel

    hubert = HubertModel.from_pretrained(f"{encoders}/facebook--hubert-base-ls960").eval()
    hubert.encoder.layers = hubert.encoder.layers[:hubert_layers]
    torch.onnx.export(
        hubert, (torch.zeros(1, 2 * RATE),), out, input_names=["input_values"],
        output_names=["last_hidden_state"], dynamic_axes={"input_values": {1: "samples"}},
        opset_version=17, dynamo=False,
    )
    return []


def peer_ort_quantise(source, pre, outputs):
    """onnxruntime's own dynamic int8 of `source`: its pre-processing first (symbolic
    shape inference, ORT's graph optimisation, ONNX shape inference: what the ORT
    quantisation docs recommend), then `quantize_dynamic` once per op set. Returns what
    was done and the node types of each result."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    attempts = [
        ("quant_pre_process (symbolic shape inference, ORT optimisation, ONNX shape inference)", {}),
        ("quant_pre_process without symbolic shape inference (it failed on this graph)",
         {"skip_symbolic_shape": True}),
    ]
    done, quant_input = "none: quant_pre_process failed on this graph, quantised as exported", source
    for label, kwargs in attempts:
        try:
            # It leaves temporary graphs in the working directory when it fails.
            with contextlib.chdir(Path(pre).resolve().parent):
                quant_pre_process(str(Path(source).resolve()), str(Path(pre).resolve()), **kwargs)
            done, quant_input = label, pre
            break
        except Exception as error:  # noqa: BLE001  (any failure: try the next, say so)
            print(f"{label}: {type(error).__name__}: {error}", file=sys.stderr)
    results = {}
    for key, path in outputs.items():
        op_types = ["MatMul"] if key == "matmul" else None
        quantize_dynamic(quant_input, path, weight_type=QuantType.QInt8, op_types_to_quantize=op_types)
        counts = {}
        for node in onnx.load(path, load_external_data=False).graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
        results[key] = counts
    return {"pre_process": done, "node_counts": results}


def child_main(argv):
    kind, args = argv[0], json.loads(argv[1])
    if kind == "ort":
        result = peer_ort(args["model"], args["threads"], args["seconds"], args["warmup"], args["repeats"])
    elif kind == "torch":
        result = peer_torch(args["encoders"], args["threads"], args["seconds"], args["hubert_layers"],
                            args["warmup"], args["repeats"])
    elif kind == "torch-export":
        result = peer_torch_export(args["encoders"], args["model"], args["hubert_layers"])
    elif kind == "ort-quantise":
        result = peer_ort_quantise(args["source"], args["pre"], args["outputs"])
    else:
        raise SystemExit(f"unknown peer {kind}")
    print(json.dumps({"result": result, "peak_rss_mb": vm_hwm_mb()}))


# ----- running children -------------------------------------------------------------


def child_env(isa=None):
    env = {k: v for k, v in os.environ.items() if k != ISA_VAR}
    if isa is not None:
        env[ISA_VAR] = isa
    return env


def vm_hwm_mb(pid="self"):
    """A process's own peak resident memory (VmHWM), MB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_child(command, log, env=None):
    """Runs `command`, returns (stdout, its peak RSS in MB). The peak is the child's own
    VmHWM, read every 10 ms while it runs: `wait4`'s maxrss would do, except that on
    Linux it starts from the parent's resident size at the fork (this script's ~30 MB),
    which it keeps through exec. Falls back to maxrss where /proc cannot be read."""
    command = [str(c) for c in command]
    with open(log, "a") as err:
        err.write(f"\n$ {shlex.join(command)}\n")
        err.flush()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True,
                                   env=env if env is not None else child_env())
        peak, done = [None], threading.Event()

        def watch():
            while not done.is_set():
                mb = vm_hwm_mb(process.pid)
                if mb is not None:
                    peak[0] = mb
                done.wait(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        watcher.join()
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({process.returncode}); see {log}")
    return stdout, peak[0] if peak[0] is not None else usage.ru_maxrss / 1024


def python_peer(out, kind, **args):
    stdout, rss = run_child(
        [sys.executable, __file__, "--child", kind, json.dumps(args)], out / f"log-{kind}.txt"
    )
    reply = json.loads(stdout.strip().splitlines()[-1])
    # The child's own last word on its peak, or what was seen of it from here.
    return reply["result"], max(filter(None, (rss, reply.get("peak_rss_mb"))))


def last_json(stdout):
    lines = [line for line in stdout.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"no JSON in the output: {stdout[-500:]!r}")
    return json.loads(lines[-1])


def edge_bench(edge, bundle, variant, threads, seconds, out, isa=None):
    wav = out / f"signal-{seconds:g}s.wav"
    if not wav.exists():
        write_wav(wav, speech_like(seconds))
    stdout, rss = run_child(
        [edge, "bench", "--bundle", bundle, "--variant", variant, "--threads-list", str(threads),
         "--file", wav, "--repeats", str(REPEATS), "--warmup", str(WARMUP), "--json"],
        out / "log-edge-bench.txt", env=child_env(isa),
    )
    bench = last_json(stdout)
    own = bench.get("peak_rss_mb")  # its VmHWM when it finished measuring
    return bench, max(rss, own) if isinstance(own, (int, float)) else rss


def listen(edge, bundle, stream, fast, threads, out, variant=None):
    command = [edge, "listen", "--source", stream, "--json", "--threads", str(threads)]
    if bundle:
        command += ["--bundle", bundle]
    if variant:
        command += ["--variant", variant]
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


# ----- onnxruntime's int8, made once and cached ------------------------------------------


def file_stamp(path):
    stat = Path(path).stat()
    return {"source": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def ort_int8(out, name, source):
    """onnxruntime's dynamic int8 of `source`: MatMul only and its default op set, both
    after its pre-processing. Cached in OUT/ort-int8 against the source's size and
    modification time."""
    folder = out / "ort-int8"
    folder.mkdir(exist_ok=True)
    outputs = {"matmul": str(folder / f"{name}.int8-matmul.onnx"),
               "default": str(folder / f"{name}.int8-default.onnx")}
    sidecar = folder / f"{name}.json"
    stamp = file_stamp(source)
    if sidecar.exists() and all(Path(p).exists() for p in outputs.values()):
        cached = json.loads(sidecar.read_text())
        if cached.get("stamp") == stamp:
            say(f"onnxruntime int8 of {name}: cached in {folder}")
            return cached, outputs
    say(f"onnxruntime int8 of {name}: quant_pre_process, quantize_dynamic (MatMul only; default op set)")
    try:
        info, _ = python_peer(out, "ort-quantise", source=str(source),
                              pre=str(folder / f"{name}.pre.onnx"), outputs=outputs)
    except RuntimeError as error:  # its rows are left out, and the results say so
        say(f"onnxruntime int8 of {name} failed: {error}")
        return None, outputs
    info["stamp"] = stamp
    sidecar.write_text(json.dumps(info, indent=2) + "\n")
    return info, outputs


def quant_note(counts):
    shown = [op for op in ("MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "MatMul", "Conv")
             if counts.get(op)]
    return ", ".join(f"{op} {counts[op]}" for op in shown) + " nodes"


# ----- the measuring plan ----------------------------------------------------------------


class Job:
    """One row: measured once per round, each time in a fresh process."""

    def __init__(self, key, stack, variant, threads, seconds, measure, note="", isa=None, kind="edge"):
        self.key, self.stack, self.variant, self.threads = key, stack, variant, threads
        self.seconds, self.measure, self.note, self.isa, self.kind = seconds, measure, note, isa, kind
        self.medians, self.rss, self.stages = [], [], []


def edge_job(args, out, key, stack, variant, threads, seconds, isa=None):
    def measure():
        bench, rss = edge_bench(args.edge, args.bundle, variant, threads, seconds, out, isa)
        return bench["total_ms"] / 1e3, rss, bench
    return Job(key, stack, f"pipeline {variant}" + (" (length)" if key[0] == "length" else ""),
               threads, seconds, measure, isa=isa)


def peer_job(out, key, stack, variant, threads, kind, note="", **peer_args):
    def measure():
        times, rss = python_peer(out, kind, threads=threads, warmup=WARMUP, repeats=REPEATS, **peer_args)
        return statistics.median(times), rss, None
    return Job(key, stack, variant, threads, CLIP_SECONDS, measure, note=note, kind=kind)


def stage_medians(stages):
    """Median of each emotion-edge bench figure across the processes (fields read
    defensively: another version may add or drop some)."""
    def med(name):
        values = [s[name] for s in stages if isinstance(s.get(name), (int, float))]
        return statistics.median(values) if values else None

    heads = {}
    for s in stages:
        for pair in s.get("heads_ms") or []:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                heads.setdefault(pair[0], []).append(pair[1])
            elif isinstance(pair, dict) and "name" in pair:
                heads.setdefault(pair["name"], []).append(pair.get("ms", 0.0))
    found = {name: med(name) for name in ("total_ms", "frontend_ms", "speech_encoder_ms", "text_ms",
                                           "spotter_ms", "load_ms", "encoder_gmac", "encoder_gflops",
                                           "audio_seconds")}
    found["heads_ms"] = {name: statistics.median(v) for name, v in heads.items()}
    # Whatever the total holds beyond front-end and encoder (text lookup, the default
    # head), per process: the binary's stage figures are separate medians, so this can
    # dip below zero by noise; it is clipped there.
    rest = [max(s["total_ms"] - s["frontend_ms"] - s["speech_encoder_ms"], 0.0) for s in stages
            if all(isinstance(s.get(k), (int, float)) for k in ("total_ms", "frontend_ms", "speech_encoder_ms"))]
    found["rest_ms"] = statistics.median(rest) if rest else None
    reported = [s.get("cpu") for s in stages if s.get("cpu") is not None]
    if reported:
        found["reported_cpu"] = reported[0]
    return found


def stage_note(st):
    parts = []
    if st.get("frontend_ms") is not None:
        parts.append(f"front-end {st['frontend_ms']:.1f} ms")
    if st.get("speech_encoder_ms") is not None:
        parts.append(f"encoder {st['speech_encoder_ms']:.1f} ms")
    if st.get("heads_ms"):
        parts.append("heads " + ", ".join(f"{k} {v:.2f}" for k, v in st["heads_ms"].items()) + " ms")
    return "; ".join(parts)


def record(job, cpu):
    medians = job.medians
    row = {
        "stack": job.stack, "variant": job.variant, "threads": job.threads,
        "audio_seconds": job.seconds,
        "median_s": round(statistics.median(medians), 5),
        "min_s": round(min(medians), 5), "max_s": round(max(medians), 5),
        "peak_rss_mb": round(max(job.rss), 1),
        "note": job.note, "cpu": cpu, "tract_cpu_isa": job.isa,
        "process_medians_s": [round(m, 5) for m in medians],
    }
    if job.stages:
        row["stages"] = stage_medians(job.stages)
        row["note"] = "; ".join(p for p in (stage_note(row["stages"]), job.note) if p)
    return row


# ----- ratios, targets and what holds the pipeline back -------------------------------


def ratio_status(value, target, at_most, worst):
    met = value <= target if at_most else value >= target
    if not met:
        return "**missed**"
    robust = worst <= target if at_most else worst >= target
    return "met" + ("" if robust else f" on the medians only (worst pairing of the spreads: {worst:.2f} ×)")


def analyse(rows, threads_list, cpu):
    """Targets, per-class observations and the 'what holds it back' lines."""
    def find(stack, variant, threads, isa=None):
        for r in rows:
            if (r["stack"] == stack and r["variant"] == variant and r["threads"] == threads
                    and r["tract_cpu_isa"] == isa):
                return r
        return None

    edge = "emotion-edge (tract)"
    targets, observations, holds = [], [], []
    missed = {}

    def best(prefix, threads):
        found = [r for r in rows if r["stack"] == "onnxruntime" and r["threads"] == threads
                 and r["variant"].startswith(prefix)]
        return min(found, key=lambda r: r["median_s"]) if found else None

    pair_threads = [t for t in threads_list if t in (1, 2)]
    for t in pair_threads:
        ours = find(edge, "pipeline int8", t)
        if ours is None:
            continue
        for prefix, target, name in (("encoder int8", TARGET_VS_ORT_INT8, "int8"),
                                     ("encoder fp32", TARGET_VS_ORT_FP32, "fp32")):
            peer = best(prefix, t)
            if peer is None:
                continue
            value = ours["median_s"] / peer["median_s"]
            worst = ours["max_s"] / peer["min_s"]
            status = ratio_status(value, target, True, worst)
            targets.append({
                "what": f"emotion-edge int8 pipeline ÷ onnxruntime {name} (its fastest {name} graph, "
                        f"encoder alone), {t} thread(s): ≤ {target} ×",
                "measured": f"{ours['median_s'] * 1e3:.0f} ms ÷ {peer['median_s'] * 1e3:.0f} ms "
                            f"({peer['variant']}) = **{value:.2f} ×**",
                "status": status, "value": round(value, 4), "target": target, "threads": t,
            })
            if "missed" in status:
                missed.setdefault(("ort", t), []).append((name, peer, target))
        torch_row = find("PyTorch eager", "HuBERT-base 12 layers + BERT-base, fp32", t)
        if torch_row is not None:
            value = torch_row["median_s"] / ours["median_s"]
            worst = torch_row["min_s"] / ours["max_s"]
            status = ratio_status(value, TARGET_VS_TORCH, False, worst)
            targets.append({
                "what": f"the reference study's PyTorch stack ÷ emotion-edge int8 pipeline, {t} thread(s): "
                        f"≥ {TARGET_VS_TORCH:g} ×",
                "measured": f"{torch_row['median_s'] * 1e3:.0f} ms ÷ {ours['median_s'] * 1e3:.0f} ms = "
                            f"**{value:.2f} ×**",
                "status": status, "value": round(value, 4), "target": TARGET_VS_TORCH, "threads": t,
            })
            if "missed" in status:
                missed[("torch", t)] = torch_row
    one, two = find(edge, "pipeline int8", 1), find(edge, "pipeline int8", 2)
    if one and two:
        value = one["median_s"] / two["median_s"]
        worst = one["min_s"] / two["max_s"]
        fp32 = (find(edge, "pipeline fp32", 1), find(edge, "pipeline fp32", 2))
        also = (f"; fp32 {fp32[0]['median_s'] * 1e3:.0f} → {fp32[1]['median_s'] * 1e3:.0f} ms "
                f"({fp32[0]['median_s'] / fp32[1]['median_s']:.2f} ×)" if all(fp32) else "")
        status = ratio_status(value, TARGET_SPEEDUP_2T, False, worst)
        targets.append({
            "what": f"emotion-edge int8 pipeline, 2 threads ≥ {TARGET_SPEEDUP_2T} × faster than 1",
            "measured": f"{one['median_s'] * 1e3:.0f} → {two['median_s'] * 1e3:.0f} ms = **{value:.2f} ×**{also}",
            "status": status, "value": round(value, 4), "target": TARGET_SPEEDUP_2T, "threads": 2,
        })
        if "missed" in status:
            missed[("threads", 2)] = (one, two)

    # int8 against fp32 per CPU class (tract's kernels; onnxruntime and PyTorch run native).
    classes = [(f"{native_class(cpu)}, native", None)]
    classes += sorted({(r["stack"].split(", ", 1)[1], r["tract_cpu_isa"]) for r in rows
                       if r["stack"].startswith(edge + ", ") and r["tract_cpu_isa"]})
    for label, isa in classes:
        stack = edge if isa is None else f"{edge}, {label}"
        f, i = find(stack, "pipeline fp32", 1, isa), find(stack, "pipeline int8", 1, isa)
        if not (f and i):
            continue
        fe, ie = f.get("stages", {}).get("speech_encoder_ms"), i.get("stages", {}).get("speech_encoder_ms")
        enc = (f"; speech encoder alone {fe:.0f} → {ie:.0f} ms ({fe / ie:.2f} ×)" if fe and ie else "")
        reported = i.get("stages", {}).get("reported_cpu")
        features = reported.get("features") if isinstance(reported, dict) else None
        seen = f" (tract reports its kernels' features as {', '.join(features)})" if features else ""
        observations.append(
            f"CPU class {label}" + (f" (`{ISA_VAR}={isa}`)" if isa else "") + f"{seen}, 1 thread: "
            f"fp32 pipeline {f['median_s'] * 1e3:.0f} ms, int8 {i['median_s'] * 1e3:.0f} ms: int8 is "
            f"**{f['median_s'] / i['median_s']:.2f} ×** as fast as fp32{enc}.")
        if isa and ie and fe and ie >= fe:
            holds.append(f"Under {label}, the int8 speech encoder ({ie:.0f} ms) is no faster than "
                         f"fp32 ({fe:.0f} ms) on one thread: int8 does not pay on that class with "
                         f"tract's kernels; `cargo run --release -p emotion-core --example profile_graph -- "
                         f"BUNDLE/speech_encoder.int8.onnx` with the same `{ISA_VAR}` shows which nodes.")

    # What holds it back: stage figures only.
    def split(r):
        st = r.get("stages", {})
        total, fe, enc = st.get("total_ms"), st.get("frontend_ms"), st.get("speech_encoder_ms")
        if None in (total, fe, enc):
            return None
        rest = st.get("rest_ms")
        return total, fe, enc, max(total - fe - enc, 0.0) if rest is None else rest

    def split_text(r):
        total, fe, enc, rest = split(r)
        return (f"{total:.0f} ms, of which front-end {fe:.1f} ms ({100 * fe / total:.0f} %), speech "
                f"encoder {enc:.0f} ms ({100 * enc / total:.0f} %), text lookup and head {rest:.1f} ms "
                f"({100 * rest / total:.0f} %) (medians of each stage: they need not add up exactly)")

    for (what, t), detail in sorted(missed.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ours = find(edge, "pipeline int8", t)
        if ours is None or split(ours) is None:
            continue
        total, fe, enc, rest = split(ours)
        if what == "ort":
            parts = []
            for name, peer, target in detail:
                theirs = peer["median_s"] * 1e3
                room = target * theirs - fe - rest
                parts.append(
                    f"against onnxruntime {name} ({theirs:.0f} ms, {peer['variant']}) our speech encoder "
                    f"alone takes {enc / theirs:.2f} × theirs, and {target} × leaves "
                    + (f"{room:.0f} ms for it after our front-end, text lookup and head"
                       if room > 0 else "nothing for it: our front-end, text lookup and head alone take "
                                        f"{fe + rest:.1f} ms"))
            holds.append(f"{t} thread(s): our int8 pipeline takes {split_text(ours)}; " + "; ".join(parts) + ".")
        elif what == "torch":
            torch_ms = detail["median_s"] * 1e3
            holds.append(
                f"{t} thread(s), against the PyTorch stack ({torch_ms:.0f} ms): ≥ {TARGET_VS_TORCH:g} × needs "
                f"our pipeline ≤ {torch_ms / TARGET_VS_TORCH:.0f} ms; it takes {split_text(ours)}.")
        elif what == "threads":
            one_r, two_r = detail
            if split(one_r) and split(two_r):
                a, b = split(one_r), split(two_r)
                names = ("total", "front-end", "speech encoder", "text lookup and head")
                holds.append(
                    "2 threads against 1, int8 pipeline, stage by stage: " + "; ".join(
                        f"{n} {x:.1f} → {y:.1f} ms ({x / y:.2f} ×)" if x > 0 and y > 0 else f"{n} {x:.1f} → {y:.1f} ms"
                        for n, x, y in zip(names, a, b)) + ".")
    enc_rate = one.get("stages", {}).get("encoder_gflops") if one else None
    mhz = cpu_mhz()
    if holds and enc_rate and mhz:
        peak = HOST_PER_CYCLE[1] * mhz / 1e3
        holds.append(f"The int8 speech encoder, 1 thread, native kernels: {enc_rate:.0f} G(FL)OP/s counted "
                     f"from its graph = {100 * enc_rate / peak:.0f} % of this core's nominal int8 peak "
                     f"({peak:.0f} at {mhz:.0f} MHz).")
    if not holds:
        holds.append("Nothing: every target above is met." if targets else
                     "No target could be judged (rows missing).")
    return targets, observations, holds


# ----- main -----------------------------------------------------------------------------


def main():
    global WARMUP, REPEATS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--edge", required=True, help="the emotion-edge binary")
    parser.add_argument("--bundle", required=True, help="the bundle (fp32 + int8; base size for the real table)")
    parser.add_argument("--encoders", help="the checkpoints in the HF layout (PyTorch and HF's ONNX export)")
    parser.add_argument("--quick", action="store_true",
                        help="try the logic: 2 runs of 3 repeats, no PyTorch, lengths 2 and 4 s only, "
                             "nothing in docs/results unless --results")
    parser.add_argument("--runs", type=int, help="separate processes per row (default 3; quick 2)")
    parser.add_argument("--repeats", type=int, help="timed runs per process (default 7; quick 3)")
    parser.add_argument("--warmup", type=int, help="untimed runs per process first (default 2; quick 1)")
    parser.add_argument("--no-torch", action="store_true", help="no PyTorch rows, no HF export")
    parser.add_argument("--torch", action="store_true", help="PyTorch rows and HF export even with --quick")
    parser.add_argument("--no-listen", action="store_true", help="no listen rows")
    parser.add_argument("--results", type=Path,
                        help="where bench-DATE.{json,md} go (default docs/results; none with --quick)")
    parser.add_argument("--command", help="the command line to print at the top of the results")
    args = parser.parse_args()
    quick = args.quick
    runs = args.runs or (2 if quick else 3)
    REPEATS = args.repeats or (3 if quick else 7)
    WARMUP = args.warmup if args.warmup is not None else (1 if quick else 2)
    use_torch = (args.torch or not quick) and not args.no_torch and args.encoders is not None
    results_dir = args.results or (None if quick else ROOT / "docs/results")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for log in out.glob("log-*.txt"):
        log.unlink()
    if os.environ.get(ISA_VAR):
        say(f"note: {ISA_VAR}={os.environ[ISA_VAR]} is set here; it is removed for every row but "
            f"the emulated CPU classes")
    cpu = cpu_info()
    threads_list = sorted({1, min(2, ALL_THREADS), ALL_THREADS})
    lengths = (4.0,) if quick else (1.0, 4.0, 6.0, 8.0, 10.0)
    edge = "emotion-edge (tract)"

    jobs = []
    for variant in ("fp32", "int8"):
        for threads in threads_list:
            jobs.append(edge_job(args, out, ("edge", variant, threads), edge, variant, threads, CLIP_SECONDS))
    for label, isa, needs in EMULATED.get(cpu["arch"], []):
        if set(needs) & set(cpu["flags"]):
            for variant in ("fp32", "int8"):
                jobs.append(edge_job(args, out, ("class", label, variant), f"{edge}, {label}",
                                     variant, 1, CLIP_SECONDS, isa=isa))
    for seconds in lengths:
        jobs.append(edge_job(args, out, ("length", seconds), edge, "int8", 1, seconds))

    # onnxruntime: the pruned encoder alone, fp32 and its own int8 of HF's export and ours.
    sources = []
    if use_torch:
        hf_onnx = out / "hf-hubert-pruned9.onnx"
        if not hf_onnx.exists():
            say(f"exporting HF's HuBERT ({HUBERT_LAYERS_EDGE} layers) with torch.onnx")
            python_peer(out, "torch-export", encoders=args.encoders, model=str(hf_onnx),
                        hubert_layers=HUBERT_LAYERS_EDGE)
        sources.append(("HF torch.onnx export", "hf-hubert-pruned9", hf_onnx))
    sources.append(("emotion-edge graph", "emotion-edge-encoder", Path(args.bundle) / "speech_encoder.fp32.onnx"))
    quantisation = []
    for label, name, source in sources:
        for threads in threads_list:
            jobs.append(peer_job(out, ("ort", label, "fp32", threads), "onnxruntime",
                                 f"encoder fp32 ({label})", threads, "ort", model=str(source),
                                 seconds=CLIP_SECONDS))
        info, paths = ort_int8(out, name, source)
        if info is None:
            quantisation.append({"source": label, "file": str(source),
                                 "pre_process": "quantisation failed (see OUT/log-ort-quantise.txt): no int8 rows"})
            continue
        quantisation.append({"source": label, "file": str(source), **{k: v for k, v in info.items() if k != "stamp"}})
        for key, op_label in (("matmul", "MatMul only"), ("default", "default op set")):
            note = f"ORT quantize_dynamic QInt8, {op_label}: {quant_note(info['node_counts'][key])}"
            for threads in threads_list:
                jobs.append(peer_job(out, ("ort", label, key, threads), "onnxruntime",
                                     f"encoder int8, {op_label} ({label})", threads, "ort", note=note,
                                     model=paths[key], seconds=CLIP_SECONDS))
    if use_torch:
        for threads in threads_list:
            jobs.append(peer_job(out, ("torch", threads), "PyTorch eager",
                                 "HuBERT-base 12 layers + BERT-base, fp32", threads, "torch",
                                 encoders=args.encoders, seconds=CLIP_SECONDS, hubert_layers=12))

    started = time.perf_counter()
    for run in range(runs):
        order = jobs if run % 2 == 0 else list(reversed(jobs))
        for n, job in enumerate(order, 1):
            say(f"[round {run + 1}/{runs}, {n}/{len(order)}] {job.stack}, {job.variant}, "
                f"{job.threads} thread(s), {job.seconds:g} s")
            median, rss, stages = job.measure()
            job.medians.append(median)
            job.rss.append(rss)
            if stages is not None:
                job.stages.append(stages)
    say(f"measured in {time.perf_counter() - started:.0f} s")
    rows = [record(job, cpu) for job in jobs]

    # listen: memory with the default bundle (and this one), latency in real time. One
    # process each: a real-time run over the whole stream.
    listen_summary = {}
    if not args.no_listen:
        corpus = sorted((ROOT / "data/synthetic-tess").rglob("*.wav"))
        stream = joined_corpus(out, corpus[:: max(1, len(corpus) // 8)][:8])
        with wave.open(str(stream)) as w:
            stream_seconds = w.getnframes() / w.getframerate()
        bundle_label = "quick bundle, int8" if quick else "base bundle, int8"
        for label, bundle, variant in (("default bundle", None, None), (bundle_label, args.bundle, "int8")):
            say(f"listen --fast, {label}")
            latencies, rss, wall = listen(args.edge, bundle, stream, True, 1, out, variant)
            rows.append({
                "stack": "emotion-edge listen --fast", "variant": label, "threads": 1,
                "audio_seconds": round(stream_seconds, 3), "median_s": round(wall, 5),
                "min_s": round(wall, 5), "max_s": round(wall, 5), "peak_rss_mb": round(rss, 1),
                "note": f"{len(latencies)} utterances, one process over the whole stream",
                "cpu": cpu, "tract_cpu_isa": None, "process_medians_s": [round(wall, 5)],
            })
            say(f"listen in real time, {label}")
            latencies, _, _ = listen(args.edge, bundle, stream, False, 1, out, variant)
            listen_summary[label] = {"peak_rss_mb": round(rss, 1), "latencies_ms": latencies}

    targets, observations, holds = analyse(rows, threads_list, cpu)

    # Length scaling (the 2 s point is the int8 1-thread row).
    by_key = {job.key: row for job, row in zip(jobs, rows)}
    scaling = sorted([(CLIP_SECONDS, by_key[("edge", "int8", 1)]["median_s"])]
                     + [(s, by_key[("length", s)]["median_s"]) for s in lengths])
    if len(scaling) >= 2:
        slope, intercept = np.polyfit([s for s, _ in scaling], [t for _, t in scaling], 1)
        worst = max(abs(t - (slope * s + intercept)) / t for s, t in scaling)
        observations.append(
            f"Length, int8 pipeline, 1 thread: {', '.join(f'{s:g} s {t * 1e3:.0f} ms' for s, t in scaling)} "
            f"(2 s: the pipeline int8 row); a line fits {slope * 1e3:.0f} ms per second of audio + "
            f"{intercept * 1e3:.0f} ms, worst deviation {worst * 100:.1f} %.")
    for label, entry in listen_summary.items():
        latencies = entry["latencies_ms"]
        if latencies:
            base = label != "default bundle"
            rss_target, shown_target = (
                ("≤ 200 MB, base-size int8", "≤ 200 ms, base-size int8") if base
                else ("≤ 150 MB, default bundle", "≤ 300 ms, default bundle"))
            observations.append(
                f"`listen`, {label}: peak RSS {entry['peak_rss_mb']:.0f} MB (target {rss_target}); "
                f"end of speech → shown, real time: median "
                f"{statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms over {len(latencies)} "
                f"utterances (target {shown_target}).")

    # Work, this CPU's peak, the boards (native kernels, 1 thread).
    work, boards = {"lines": []}, []
    st_f = by_key[("edge", "fp32", 1)].get("stages", {})
    st_i = by_key[("edge", "int8", 1)].get("stages", {})
    mhz = cpu_mhz()
    gmac, seconds = st_i.get("encoder_gmac"), st_i.get("audio_seconds") or CLIP_SECONDS
    if gmac:
        per_s = gmac / seconds
        work["encoder_gmac_per_audio_second"] = per_s
        work["lines"].append(f"Speech encoder (HuBERT pruned to {HUBERT_LAYERS_EDGE} layers), counted from "
                             f"the graph: {per_s:.2f} GMAC = {2 * per_s:.1f} GFLOP per second of audio.")
        eff = {}
        for variant, st, per_cycle in (("fp32", st_f, HOST_PER_CYCLE[0]), ("int8", st_i, HOST_PER_CYCLE[1])):
            rate = st.get("encoder_gflops")
            if rate and mhz:
                peak = per_cycle * mhz / 1e3
                eff[variant] = rate / peak
                work["lines"].append(
                    f"{variant}, 1 thread: {rate:.0f} G(FL)OP/s = {100 * rate / peak:.0f} % of this core's "
                    f"nominal peak ({peak:.0f} at {mhz:.0f} MHz, {per_cycle} per cycle, {HOST_PER_CYCLE[2]}; "
                    f"the core may boost above that clock).")
        if "int8" in eff:
            flop = 2 * per_s * CLIP_SECONDS
            for name, cores, ghz, f32c, i8c in BOARDS:
                one_core = flop / (i8c * ghz * eff["int8"])
                every = one_core / (cores * 0.8)
                boards.append({"name": name, "cores": cores, "ghz": ghz, "peak_fp32": f32c * ghz,
                               "peak_int8": i8c * ghz, "one_core_s": round(one_core, 3),
                               "all_cores_s": round(every, 3), "real_time_factor": round(every / CLIP_SECONDS, 3)})
            work["board_note"] = (
                f"Board figures are estimates, not measurements: the work above divided by the board's "
                f"int8 peak, scaled by the fraction of peak tract reached here ({100 * eff['int8']:.0f} %, "
                f"native kernels), all cores at 80 % parallel efficiency. The A72 (Pi 4) has no int8 "
                f"dot-product instruction, so its int8 rate is taken as twice its fp32 rate.")
        work["efficiency"] = eff

    ort_notes = "; ".join(f"{q['source']}: {q['pre_process']}" for q in quantisation)
    method_notes = [
        f"Clip: {CLIP_SECONDS:g} s of voiced, speech-like signal at 16 kHz with {EDGE_SILENCE * 1e3:.0f} ms "
        f"of silence at each end for emotion-edge (its trim hands the encoder exactly {CLIP_SECONDS:g} s); "
        f"the Python peers get the same {CLIP_SECONDS:g} s without silence.",
        "emotion-edge rows are the whole pipeline (front-end, pruned HuBERT, keyword text, head); "
        "onnxruntime rows the pruned speech encoder alone.",
        "onnxruntime int8: its own `quantize_dynamic` (weights QInt8, activations quantised at run "
        "time), once with `op_types_to_quantize=[\"MatMul\"]` and once with its default op set (Conv "
        "becomes ConvInteger), each after `quant_pre_process`, which the ORT quantisation docs "
        f"recommend before quantising ({ort_notes}). Speed only: their accuracy is not checked.",
        f"CPU-class rows set `{ISA_VAR}` for that emotion-edge process only; onnxruntime and PyTorch "
        f"always run with this CPU's own kernels.",
    ]
    big = sorted(((f.stat().st_size / 1e6, f.name) for f in Path(args.bundle).iterdir()
                  if f.is_file() and f.stat().st_size >= 1e6), reverse=True)
    if big:
        method_notes.append(
            "Every emotion-edge process loads the whole bundle; its files of 1 MB or more: "
            + ", ".join(f"{name} {size:.1f} MB" for size, name in big) + ".")
    if listen_summary:
        method_notes.append("`listen` rows: one process each over a stream of corpus utterances with "
                            "1.5 s gaps (peak RSS; latency measured in a second, real-time run).")
    date = datetime.date.today().isoformat()
    command = args.command or shlex.join([Path(sys.executable).name, *sys.argv])
    summary = {
        "schema": 2, "date": date, "command": command, "quick": quick,
        "machine": {"cpu": cpu, "cpu_mhz": mhz, "cores": ALL_THREADS},
        "versions": versions(),
        "settings": {"process_runs": runs, "repeats": REPEATS, "warmup": WARMUP,
                     "spread": "across process medians", "threads": threads_list,
                     "emulated_classes": {label: isa for label, isa, _ in EMULATED.get(cpu["arch"], [])},
                     "method_notes": method_notes},
        "ort_quantisation": quantisation,
        "rows": rows, "targets": targets, "observations": observations, "holds_back": holds,
        "work": work, "boards": boards, "listen": listen_summary,
    }
    md = bench_table.render_results_md(summary)
    text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    written = [out / "bench.md", out / "bench.json"]
    (out / "bench.md").write_text(md)
    (out / "bench.json").write_text(text)
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / f"bench-{date}.md").write_text(md)
        (results_dir / f"bench-{date}.json").write_text(text)
        written += [results_dir / f"bench-{date}.md", results_dir / f"bench-{date}.json"]
    print(md)
    print("written: " + ", ".join(map(str, written)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
