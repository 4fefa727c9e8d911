#!/usr/bin/env bash
# Fuzzes the WAV front-end, the board's WAV stream reader, the bundle manifest parser,
# the bundle loader and the ONNX graphs a bundle loads, with cargo fuzz (libFuzzer, nightly).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 600 s each, all five)
#
# Installs the nightly toolchain and cargo-fuzz when missing. Seeds come from
# fuzz/seeds/wav (every WAV layout the readers take), the conformance clip, a few corpus
# files and the demo bundle; the corpus grows in fuzz/corpus/<target>/. A crash leaves its
# input in fuzz/artifacts/<target>/: fix the cause, then copy the input to
# fuzz/regressions/<target>/ so `cargo test` replays it on stable.
#
# libFuzzer's limits make "allocates whatever a header claims" a crash too: no input may
# allocate more than 256 MB at once or grow the process past 1 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(wav_frontend wav_stream bundle_manifest bundle_loader onnx_graph)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked

seed() { # target files...
  local dir=fuzz/corpus/$1
  shift
  mkdir -p "$dir"
  for file in "$@"; do cp -n "$file" "$dir/" 2>/dev/null || true; done
}
wavs=(fuzz/seeds/wav/*.wav fixtures/conformance/say-the-word-back-16k.wav)
while IFS= read -r -d '' file; do wavs+=("$file"); done < <(
  find data/synthetic-tess -name '*.wav' -print0 | sort -z | awk 'BEGIN{RS=ORS="\0"} NR%40==1')
seed wav_frontend "${wavs[@]}"
seed wav_stream "${wavs[@]}"
seed bundle_manifest data/demo-bundle/manifest.bin data/demo-bundle/manifest.json \
  fixtures/bundle/format-2-manifest.bin fixtures/bundle/format-3-manifest.bin
# The loader's input: [manifest length, u16 LE][manifest.bin][keywords.bin] (fuzz/harness.rs).
mkdir -p fuzz/corpus/bundle_loader
manifest_len=$(stat -c %s data/demo-bundle/manifest.bin)
{ printf "\\x$(printf %02x $((manifest_len & 255)))\\x$(printf %02x $((manifest_len >> 8)))"
  cat data/demo-bundle/manifest.bin data/demo-bundle/keywords.bin; } > fuzz/corpus/bundle_loader/demo-bundle
# The graph target's input: [graph index, u8][ONNX bytes], the index into the demo
# bundle's graphs sorted by name (fuzz/harness.rs, demo_graphs).
mkdir -p fuzz/corpus/onnx_graph
index=0
while IFS= read -r graph; do
  { printf "\\x$(printf %02x "$index")"; cat "$graph"; } > "fuzz/corpus/onnx_graph/$(basename "$graph")"
  index=$((index + 1))
done < <(find data/demo-bundle -maxdepth 1 -name '*.onnx' | LC_ALL=C sort)

status=0
for target in "${TARGETS[@]}"; do
  echo "== $target for $SECONDS_EACH s"
  start=$(date +%s)
  # A whole graph is an input of onnx_graph (the VAD's is 2.8 MB), and a pipeline loads
  # per input; the other targets' inputs are small.
  limits=(-rss_limit_mb=1024 -malloc_limit_mb=256 -max_len=131072)
  [ "$target" != onnx_graph ] || limits=(-rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=4194304)
  if ! cargo +nightly fuzz run "$target" fuzz/corpus/"$target" -- \
      -max_total_time="$SECONDS_EACH" "${limits[@]}" -print_final_stats=1; then
    echo "!! $target crashed after $(( $(date +%s) - start )) s: see fuzz/artifacts/$target/"
    status=1
  fi
done
exit $status
