#!/usr/bin/env bash
# The open-set keyword spotter on the demo corpus: FAR on recorded speech of unseen
# speakers, FRR on the corpus's test words, measured through the board's pipeline.
#
#   bash scripts/keyword-open-set.sh [OUT]     (default OUT: out/keyword-open-set)
#
# 1. runs `host-trainer demo --out OUT` (its keyword spotter is an open-set one, trained
#    with the real-speech set: $EMOTION_REAL_SPEECH or /var/cache/emotion-edge/real-speech,
#    which scripts/fetch-real-speech.sh makes; the script stops without it);
# 2. runs the example `keyword_open_set` over OUT: every figure measured again through
#    the bundle's fp32 pipeline and checked against what the export recorded;
# 3. writes docs/results/keyword-open-set-2026-12-03.md (RESULT_MD to write elsewhere),
#    the commands at its top.
#
# About 15 minutes on a busy 2-core machine (dev build; the extraction of the recorded
# speech's 2,400 windows is most of the spotter's share).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/keyword-open-set}
MD=${RESULT_MD:-docs/results/keyword-open-set-2026-12-03.md}
ROOT=${EMOTION_REAL_SPEECH:-/var/cache/emotion-edge/real-speech}
if [[ ! -f "$ROOT/index.tsv" ]]; then
  echo "no real-speech set in $ROOT: bash scripts/fetch-real-speech.sh first" >&2
  exit 1
fi
cargo run -p host-trainer -- demo --out "$OUT"
cargo run -p host-trainer --example keyword_open_set -- "$OUT" "$MD" \
  "bash scripts/keyword-open-set.sh $OUT
# = cargo run -p host-trainer -- demo --out $OUT
#   cargo run -p host-trainer --example keyword_open_set -- $OUT $MD"
