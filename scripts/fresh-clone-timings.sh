#!/usr/bin/env bash
# A fresh clone's time to its first results, in the README's order, from a cold target
# dir: the first printed emotion (`classify` on the committed demo bundle), then the
# demo's build and run, then the tests' build. Writes docs/results/fresh-clone-DATE.md.
#
#   bash scripts/fresh-clone-timings.sh            # clones HEAD into a temporary folder
#
# Slow on purpose (tens of minutes on 2 cores): it builds everything from nothing.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
cd "$work/clone"
export CARGO_TARGET_DIR="$work/target"
files=(data/synthetic-tess/*/*/{YAF_back_angry,YAF_back_disgust,OAF_back_fear,YAF_food_happy,OAF_bean_neutral,YAF_rose_ps,OAF_rose_sad}.wav)
rows=()
step() { # step NAME COMMAND...: runs it, keeps its time and the crates it compiled
  local name="$1" start log="$work/step.log"
  shift
  start=$(date +%s)
  "$@" >"$log" 2>&1
  rows+=("| $name | $(($(date +%s) - start)) | $(grep -c '^ *Compiling' "$log" || true) |")
}
step '`cargo run -p emotion-edge -- classify` (first printed emotion)' \
  cargo run -p emotion-edge -- classify --bundle data/demo-bundle --keyword-from-name "${files[@]}"
step '`cargo build -p host-trainer` (after it)' cargo build -p host-trainer
step '`host-trainer demo` (built)' cargo run -q -p host-trainer -- demo --out "$work/demo"
step '`cargo test --workspace --no-run` (after them)' cargo test --workspace --no-run
out="$repo/docs/results/fresh-clone-$(date +%F).md"
{
  echo "# Fresh clone: time to the first results ($(date +%F))"
  echo
  echo "Made by \`bash scripts/fresh-clone-timings.sh\` at $(git rev-parse --short HEAD): a fresh"
  echo "clone, an empty target dir, the steps in the README's order. Machine: $(nproc) CPUs,"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average at the end:"
  echo "$(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| step | seconds | crates compiled |"
  echo "|---|---:|---:|"
  printf '%s\n' "${rows[@]}"
} >"$out"
echo "written: $out"
