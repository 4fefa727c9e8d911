#!/usr/bin/env bash
# The segmentation table: every segmenter of emotion_edge::segmentation_bench on real
# word and phrase streams, clean and in white, pink, babble and recorded noise at 20, 10,
# 5 and 0 dB SNR (precision, recall, F1, splits, merges, boundary errors, CPU cost).
#
#   bash scripts/segmentation-table.sh [ARGS...]
#
# ARGS go to the example (`--segmenters energy[,NAME..]`, `--seed N`, `--streams N`,
# `--seconds S`); the defaults are the committed table's. Fetches the real-speech set
# first when the cache has none (scripts/fetch-real-speech.sh; the cache is
# $EMOTION_REAL_SPEECH, else /var/cache/emotion-edge/real-speech when it exists or can be
# made, else ${XDG_CACHE_HOME:-~/.cache}/emotion-edge/real-speech), builds the example in
# release and writes docs/results/segmentation-YYYY-MM-DD.md. About a minute once built.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${EMOTION_REAL_SPEECH:-}" ]; then
  EMOTION_REAL_SPEECH=/var/cache/emotion-edge/real-speech
  if [ ! -f "$EMOTION_REAL_SPEECH/index.tsv" ] &&
    ! mkdir -p "$EMOTION_REAL_SPEECH" 2>/dev/null; then
    EMOTION_REAL_SPEECH="${XDG_CACHE_HOME:-$HOME/.cache}/emotion-edge/real-speech"
  fi
fi
export EMOTION_REAL_SPEECH
if [ ! -f "$EMOTION_REAL_SPEECH/index.tsv" ]; then
  echo "== fetching the real-speech set into $EMOTION_REAL_SPEECH"
  bash scripts/fetch-real-speech.sh "$EMOTION_REAL_SPEECH"
fi

OUT="docs/results/segmentation-$(date +%F).md"
SEGMENTATION_TABLE_COMMAND="bash scripts/segmentation-table.sh${*:+ $*}"
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || REVISION="$REVISION with uncommitted changes"
export SEGMENTATION_TABLE_COMMAND SEGMENTATION_TABLE_REVISION="$REVISION"

echo "== building and running the segmentation table (release)"
start=$(date +%s)
cargo run --release -p emotion-edge --example segmentation_table -- --out "$OUT" "$@"
echo "== $OUT ($(($(date +%s) - start)) s with the build)"
