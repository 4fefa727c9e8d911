#!/usr/bin/env bash
# What each speech encoder costs per second of audio, for choosing one per board.
#
#   bash scripts/encoder-cost.sh [OUT]     (default OUT: out/encoder-cost)
#
# 1. builds the release host-trainer;
# 2. makes random-weight checkpoints in the real HF layouts and sizes (speed does not
#    depend on the weight values): DistilHuBERT (ntu-spml/distilhubert, 2 layers),
#    HuBERT-base (facebook/hubert-base-ls960) and WavLM-base-plus
#    (microsoft/wavlm-base-plus);
# 3. imports them as the board would run them: DistilHuBERT with its default layers
#    (1..2, all of them), HuBERT-base and WavLM-base-plus 5..9 (pruned after layer 9);
# 4. times each graph with tract on 1 thread (`host-trainer encoders cost`: a 2 s and a
#    4 s synthetic voiced clip, median of REPEATS runs after 2 warm-ups, fp32 and the
#    calibrated int8 variant a bundle ships);
# 5. writes docs/results/encoder-cost.md (COST_MD to write elsewhere): the table, this
#    CPU, the date, the command, and board estimates scaled the way the performance
#    page (docs/performance.md) scales them.
#
# About 10 minutes on a 2-core machine once built.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/encoder-cost}
REPEATS=${REPEATS:-7}
MD=${COST_MD:-docs/results/encoder-cost.md}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT" "$(dirname "$MD")"

echo "== building (release)"
cargo build --release -p host-trainer
HOST="$TARGET/release/host-trainer"

echo "== random-weight checkpoints (real sizes)"
CK="$OUT/checkpoints"
make_checkpoint() { # folder, then the arguments of `encoders random`
  local dir="$CK/$1"
  shift
  [ -f "$dir/model.safetensors" ] || "$HOST" encoders random "$@" --out "$dir"
}
make_checkpoint distilhubert --kind hubert --size distil
make_checkpoint hubert-base --kind hubert --size base
make_checkpoint wavlm-base-plus --kind wavlm --size base

echo "== imports"
GRAPHS="$OUT/graphs"
"$HOST" encoders import "$CK/distilhubert" --out "$GRAPHS/distilhubert.onnx"
"$HOST" encoders import "$CK/hubert-base" --layers 5..9 --out "$GRAPHS/hubert-base.onnx"
"$HOST" encoders import "$CK/wavlm-base-plus" --layers 5..9 --out "$GRAPHS/wavlm-base-plus.onnx"

echo "== timing (1 thread, fp32 and int8)"
JSONL="$OUT/encoder-cost.jsonl"
# Other work on the machine moves the figures: the load before and after is recorded.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMMAND="host-trainer encoders cost --int8 --threads 1 --seconds 2,4 --repeats $REPEATS --warmup 2 --json"
: >"$JSONL"
for name in distilhubert hubert-base wavlm-base-plus; do
  # One process per encoder: each is measured alone.
  $HOST ${COMMAND#host-trainer } "$GRAPHS/$name.onnx" | tee -a "$JSONL"
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== $MD"
python3 - "$JSONL" "$MD" "$COMMAND" "$REPEATS" "$LOAD_BEFORE" "$LOAD_AFTER" <<'EOF'
import datetime, json, re, sys

jsonl, md, command, repeats, load_before, load_after = sys.argv[1:7]
rows = [json.loads(line) for line in open(jsonl) if line.strip()]

cpu = {}
for line in open("/proc/cpuinfo"):
    key, _, value = line.partition(":")
    key, value = key.strip(), value.strip()
    if key in ("model name", "cpu MHz", "flags") and key not in cpu:
        cpu[key] = value
simd = [f for f in cpu.get("flags", "").split()
        if re.match(r"^(sse4_1|sse4_2|avx|avx2|fma|f16c|avx512\w*|avx_vnni|amx\w*)$", f)]
mhz = float(cpu.get("cpu MHz", "0") or 0)

# The performance page's assumptions for this machine (docs/performance.md): per cycle and
# core, 32 fp32 FLOP (2 x 256-bit FMA) and 128 int8 ops (AVX-512 VNNI). Board peaks
# per core, G(FL)OP/s: Pi 5 (A76, 2.4 GHz) 38 fp32 / 154 int8 (SDOT); Pi 4 (A72,
# 1.8 GHz) 29 / 58 (no dot product: twice fp32); Pi Zero 2 W (A53, 1.0 GHz) 4 / 8.
# A board's time = the time here x this core's peak / the board's peak (the same
# fraction of peak reached there as here), for one core; all 4 cores at 80 % efficiency.
here = {"fp32": 32 * mhz / 1e3, "int8": 128 * mhz / 1e3}
boards = [
    ("Pi Zero 2 W (4 x A53, 512 MB)", {"fp32": 4, "int8": 8}),
    ("Pi 4 (4 x A72)", {"fp32": 29, "int8": 58}),
    ("Pi 5 (4 x A76)", {"fp32": 38, "int8": 154}),
]
labels = {
    "distilhubert": "DistilHuBERT (ntu-spml/distilhubert)",
    "hubert-base": "HuBERT-base (facebook/hubert-base-ls960)",
    "wavlm-base-plus": "WavLM-base-plus (microsoft/wavlm-base-plus)",
}

by = {}
for r in rows:
    name = r["graph"].rsplit("/", 1)[-1].removesuffix(".onnx")
    by.setdefault((name, r["row"]["variant"]), []).append(r)

out = []
w = out.append
w("# Speech encoders: cost per second of audio")
w("")
w("Measured by `bash scripts/encoder-cost.sh` on "
  f"{datetime.date.today().isoformat()}: random-weight checkpoints in each model's real "
  "HF layout and size (speed does not depend on the weights), imported as the board runs "
  "them, timed with tract 0.23.9 on **1 thread**, release build, on a synthetic voiced "
  f"clip of 2 s and of 4 s (median of {repeats} runs after 2 warm-ups).")
w("")
w(f"- CPU: {cpu.get('model name', '?')}, {mhz:.0f} MHz (`/proc/cpuinfo`), "
  "SIMD flags: " + " ".join(f"`{f}`" for f in simd))
w(f"- command per graph: `{command} GRAPH`")
w(f"- load average (1, 5, 15 min) before timing {load_before}, after {load_after}; "
  "each figure is a median, and the spread between runs is in the JSON lines "
  "(`runs_ms`) the script leaves beside its checkpoints")
w("- int8: the variant a bundle ships (transformer products int8 with calibrated "
  "activation scales; conv feature encoder and positional conv float); calibrated here "
  "on synthetic speech.")
w("")
w("| encoder | layers kept | params in graph (M) | ONNX MB fp32 / int8 | GMAC per s of audio | "
  "fp32 ms per s of audio (2 s / 4 s clip) | int8 ms per s of audio (2 s / 4 s clip) |")
w("|---|---|---:|---:|---:|---:|---:|")
names = [n for n in labels if (n, "fp32") in by]
cost = {}
for name in names:
    fp32, int8 = by[(name, "fp32")], by.get((name, "int8"), [])
    facts = fp32[0]["facts"]
    def per_s(rs):
        return " / ".join(f"{r['row']['ms_per_audio_second']:.1f}" for r in rs) or "-"
    gmac = fp32[0]["row"].get("gmac_per_audio_second")
    int8_mb = f"{int8[0]['facts']['onnx_bytes'] / 1e6:.1f}" if int8 else "-"
    w(f"| {labels[name]} | {facts['hidden_states']} (graph stops after layer "
      f"{facts['layers_in_graph']}) | {facts['parameters'] / 1e6:.1f} | "
      f"{facts['onnx_bytes'] / 1e6:.1f} / {int8_mb} | "
      f"{gmac:.2f} | {per_s(fp32)} | {per_s(int8)} |" if gmac is not None else
      f"| {labels[name]} | {facts['hidden_states']} | {facts['parameters'] / 1e6:.1f} | "
      f"{facts['onnx_bytes'] / 1e6:.1f} / {int8_mb} | - | {per_s(fp32)} | {per_s(int8)} |")
    # The 2 s clip (TESS utterances are 1.3-3 s) sets the per-second figure used below.
    for variant, rs in (("fp32", fp32), ("int8", int8)):
        if rs:
            cost[(name, variant)] = rs[0]["row"]["ms_per_audio_second"]
w("")
w("## Estimated on the boards (not measured)")
w("")
w("ms per second of audio with all 4 cores, from the 2 s figures above, scaled as the "
  "performance page (docs/performance.md) scales them: the same fraction of the core's nominal "
  f"peak as reached here (this core taken as {here['fp32']:.0f} G fp32 FLOP/s and "
  f"{here['int8']:.0f} G int8 op/s: 32 and 128 per cycle at {mhz:.0f} MHz), board peaks "
  "per core Pi 5 38 / 154, Pi 4 29 / 58, Zero 2 W 4 / 8 (fp32 / int8), 4 cores at 80 % "
  "efficiency. Below 1000 keeps up with continuous speech. Each cell: int8 / fp32 (the "
  "performance page estimates int8; where a board's int8 peak is only twice its fp32 one, as on "
  "the Pi 4 and Zero 2 W, this scaling can favour fp32: a crude model, check on a board).")
w("")
w("| encoder | " + " | ".join(b for b, _ in boards) + " |")
w("|---|" + "---:|" * len(boards))
for name in names:
    cells = []
    for board, peak in boards:
        est = {v: cost[(name, v)] * here[v] / peak[v] / 3.2
               for v in ("int8", "fp32") if (name, v) in cost}
        cells.append(" / ".join(f"{est[v]:.0f}" for v in est))
    w(f"| {labels[name]} | " + " | ".join(cells) + " |")
w("")
# The hand-written reading of the figures survives a rerun (check it against them).
KEEP = "## Which encoder for which board"
try:
    previous = open(md).read()
except FileNotFoundError:
    previous = ""
if KEEP in previous:
    out.append(previous[previous.index(KEEP):].rstrip("\n"))
open(md, "w").write("\n".join(out) + "\n")
print(open(md).read())
EOF
