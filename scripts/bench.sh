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
# 4. installs the Python peers in a virtual environment (onnxruntime, PyTorch,
#    transformers from PyPI; BENCH_VENV to reuse one) - peers of the benchmark only;
# 5. runs scripts/bench.py: writes OUT/bench.md and OUT/bench.json.
#
# About 15 minutes on a 2-core machine once built (the demo on base encoders takes ~7).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/bench}
VENV=${BENCH_VENV:-$OUT/venv}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"

echo "== building (release)"
# Two commands: built together, resolver 3 unifies their features and rebuilds everything.
cargo build --release -p host-trainer
cargo build --release -p edge-runtime
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
"$VENV/bin/python" -c "import onnxruntime, torch, transformers" 2>/dev/null ||
  "$VENV/bin/pip" install --quiet onnxruntime torch transformers numpy

echo "== measuring"
"$VENV/bin/python" scripts/bench.py --out "$OUT" --edge "$EDGE" \
  --bundle "$OUT/demo/bundle" --encoders "$ENCODERS"
