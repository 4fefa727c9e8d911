#!/usr/bin/env bash
# make-demo-bundle.sh - rebuild data/demo-bundle, the small bundle committed in the repo.
#
# It is the random split's models from `host-trainer demo` (tiny random-weight encoders,
# heads trained on the embedded synthetic corpus), exported without the text encoder
# (the keyword table covers the corpus's words), fp32 and int8, with the Silero VAD
# (data/vad). The board's program finds it last (after out/demo/bundle and
# /var/lib/emotion-edge/bundle), CI classifies with it on x86 and on aarch64 under qemu,
# and the kiosk's browser test listens with it.
# Rebuild it when the bundle format or the front-end changes (the tests fail until then);
# for a new VAD alone, `host-trainer bundle add-vad --bundle data/demo-bundle` (no retraining).
#
# Usage: scripts/make-demo-bundle.sh [--skip-demo]   (run from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
if [[ "${1:-}" != "--skip-demo" ]]; then
  cargo run --release -p host-trainer -- demo --out out/demo
fi
for needed in out/demo/manifest.csv out/demo/splits.json out/demo/runs out/demo/features \
  out/demo/encoders/speech.onnx out/demo/encoders/text.onnx; do
  [[ -e "$needed" ]] || { echo "error: $needed is missing: run without --skip-demo" >&2; exit 1; }
done
rm -rf data/demo-bundle
cargo run --release -p host-trainer -- export \
  --manifest out/demo/manifest.csv --splits out/demo/splits.json \
  --features out/demo/features --runs out/demo/runs --split random \
  --speech-encoder out/demo/encoders/speech.onnx --text-encoder out/demo/encoders/text.onnx \
  --tokenizer out/demo/encoders/bert-tiny-random/tokenizer.json \
  --out data/demo-bundle
du -sh data/demo-bundle
