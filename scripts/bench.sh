#!/usr/bin/env bash
# The performance benchmark: one table, every row measured in one run.
#
#   bash scripts/bench.sh [OUT]            (default OUT: out/bench)
#
# 1. builds the release binaries (host-trainer, emotion-edge);
# 2. makes base-size random-weight checkpoints in the HF layout (HuBERT-base, BERT-base;
#    speed does not depend on the weight values);
# 3. runs the host job on them over the embedded corpus (`host-trainer demo --encoders`:
#    import, extract, train, export the fp32 and calibrated int8 bundle with its
#    quantisation report), unless OUT/demo/bundle exists;
# 4. installs the Python peers in a virtual environment (onnxruntime with onnx and sympy
#    for its quantisation tools, PyTorch, transformers from PyPI; BENCH_VENV to reuse
#    one) - peers of the benchmark only, never part of the product;
# 5. runs scripts/bench.py: onnxruntime's own int8 of both encoder graphs (made once,
#    cached in OUT/ort-int8), then every row in BENCH_RUNS separate processes (default
#    3) of BENCH_REPEATS timed runs (default 7) after BENCH_WARMUP (default 2); writes
#    OUT/bench.{md,json} and docs/results/bench-YYYY-MM-DD.{md,json};
# 6. scripts/bench_table.py puts the newest docs/results/bench-*.json into
#    docs/performance.md (between the bench-table markers).
#
# TRACT_CPU_ISA is removed from every child but the emulated-CPU-class rows, which set
# it themselves. About 30 minutes on a 2-core machine once built (the demo on base
# encoders takes ~7, the ORT quantisation ~3 the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/bench}
VENV=${BENCH_VENV:-$OUT/venv}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"

echo "== building (release)"
# Two commands: built together, resolver 3 unifies their features and rebuilds everything.
cargo build --release -p host-trainer
cargo build --release -p emotion-edge
HOST="$TARGET/release/host-trainer"
EDGE="$TARGET/release/emotion-edge"

echo "== base-size random-weight checkpoints"
ENCODERS="$OUT/encoders"
[ -f "$ENCODERS/facebook--hubert-base-ls960/model.safetensors" ] ||
  "$HOST" encoders random --kind hubert --size base --out "$ENCODERS/facebook--hubert-base-ls960"
[ -f "$ENCODERS/google-bert--bert-base-uncased/model.safetensors" ] ||
  "$HOST" encoders random --kind bert --size base \
    --tokenizer fixtures/conformance/bert-tiny/tokenizer.json \
    --out "$ENCODERS/google-bert--bert-base-uncased"

echo "== the host job on them (import, extract, train, export fp32 + int8)"
[ -f "$OUT/demo/bundle/manifest.bin" ] || "$HOST" demo --encoders "$ENCODERS" --out "$OUT/demo"

echo "== Python peers in $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import onnxruntime, onnx, sympy, torch, transformers" 2>/dev/null ||
  "$VENV/bin/pip" install --quiet onnxruntime onnx sympy torch transformers numpy

echo "== measuring"
COMMAND="bash scripts/bench.sh $*"
for var in BENCH_RUNS BENCH_REPEATS BENCH_WARMUP; do
  [ -z "${!var:-}" ] || COMMAND="$var=${!var} $COMMAND"
done
"$VENV/bin/python" scripts/bench.py --out "$OUT" --edge "$EDGE" \
  --bundle "$OUT/demo/bundle" --encoders "$ENCODERS" --command "$COMMAND" \
  ${BENCH_RUNS:+--runs "$BENCH_RUNS"} ${BENCH_REPEATS:+--repeats "$BENCH_REPEATS"} \
  ${BENCH_WARMUP:+--warmup "$BENCH_WARMUP"}

echo "== the performance page's table (docs/performance.md)"
"$VENV/bin/python" scripts/bench_table.py
