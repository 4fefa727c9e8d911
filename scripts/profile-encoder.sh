#!/usr/bin/env bash
# Where a bundle's speech encoder spends its time, node by node: tract's optimised plan
# timed over a few runs of a 2 s clip on 1 thread (emotion-core/examples/profile_graph.rs), for
# fp32 and int8 with this CPU's kernels, and int8 with tract restricted to an AVX2 + FMA
# CPU's kernels (TRACT_CPU_ISA) both as the board computes it there (products in float)
# and with integer kernels forced (the cliff the float rewrite avoids). Writes figures;
# asserts nothing.
#
# Usage: scripts/profile-encoder.sh BUNDLE [OUT.md]
#   (default OUT: docs/results/encoder-profile-YYYY-MM-DD.md; BUNDLE: a base-size
#   bundle, e.g. out/bench/demo/bundle from scripts/bench.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit $(( $# < 1 ))
fi
BUNDLE=$1
OUT=${2:-docs/results/encoder-profile-$(date +%F).md}
TARGET=${CARGO_TARGET_DIR:-target}
AVX2=-avx512f,-avx512vnni,-avxvnni,-avx512fp16,-amx-int8,-amx-bf16
cargo build --release -p emotion-core --example profile_graph
PROFILE="$TARGET/release/examples/profile_graph"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
family=$(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs)

profile() { # LABEL GRAPH ENV...
  local label=$1 graph=$2
  shift 2
  printf '## %s\n\n```text\n' "$label"
  env -u TRACT_CPU_ISA -u EMOTION_EDGE_INT8 PROFILE_WIDTH=90 "$@" \
    "$PROFILE" "$BUNDLE/$graph" 2 5 | sed "s|$BUNDLE/||"
  printf '```\n\n'
}

{
  printf '# Speech encoder profile (%s)\n\n' "$(date +%F)"
  printf 'Made by `bash scripts/profile-encoder.sh %s` on %s (cpu family %s), git %s.\n' \
    "$*" "$cpu" "$family" "$(git rev-parse --short HEAD)"
  printf 'Each section: the median of 5 runs of a 2 s clip on 1 thread after one untimed run,\n'
  printf 'then the time per run by op and the slowest nodes (timing each node adds a little).\n\n'
  profile "fp32, this CPU's kernels" speech_encoder.fp32.onnx
  profile "int8, this CPU's kernels" speech_encoder.int8.onnx
  profile "int8, AVX2 + FMA kernels, as the board computes it there (products in float)" \
    speech_encoder.int8.onnx TRACT_CPU_ISA=$AVX2
  profile "int8, AVX2 + FMA kernels, integer kernels forced (EMOTION_EDGE_INT8=integer)" \
    speech_encoder.int8.onnx TRACT_CPU_ISA=$AVX2 EMOTION_EDGE_INT8=integer
} > "$OUT"
echo "wrote $OUT"
