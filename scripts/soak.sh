#!/usr/bin/env bash
# The soak of `emotion-edge listen`, recorded: runs the ignored hour-long test of
# emotion-edge/tests/soak.rs and writes what it measured to a dated file.
#
#   bash scripts/soak.sh [AUDIO_SECONDS]     (default 3600: an hour of audio)
#
# The test streams corpus utterances with 1 s gaps into
# `emotion-edge listen --source - --fast --json --no-text` on the committed demo bundle
# (data/demo-bundle), as fast as the program takes them, reads the child's RSS every
# 200 ms, and checks that every utterance sent was classified (none failed, dropped,
# overrun or cut) and that RSS after warm-up (the first 10 % of the run) grows by at
# most 5 %. It is `cargo test`'s dev build, as the test suite builds it.
#
# Writes docs/results/soak-YYYY-MM-DD.md (SOAK_MD to write elsewhere): the command, the
# date, this machine (CPU, cores, load), the commit, the result and the test's own
# figures. The record is written whether the test passes or fails; the exit status is
# the test's. About a minute on a 2-core machine once the test is built.
set -euo pipefail
cd "$(dirname "$0")/.."
AUDIO_SECONDS=${1:-3600}
DATE=$(date -u +%F)
MD=${SOAK_MD:-docs/results/soak-$DATE.md}
COMMAND="bash scripts/soak.sh${*:+ $*}"
TEST=(cargo test -p emotion-edge --test soak -- --ignored --nocapture an_hour)
mkdir -p "$(dirname "$MD")"

echo "== building the soak test (dev profile)"
cargo test -p emotion-edge --test soak --no-run

load=$(cut -d' ' -f1-3 /proc/loadavg)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== soaking: $AUDIO_SECONDS s of audio"
status=0
SOAK_AUDIO_SECONDS=$AUDIO_SECONDS "${TEST[@]}" 2>&1 | tee "$log" || status=$?

line=$(grep -m1 '^soak: ' "$log" || true)
cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit with uncommitted changes"
result=$([ "$status" -eq 0 ] && echo "passed" || echo "FAILED (exit status $status)")

# The test's line, e.g. "soak: 3600 s of audio (1374 utterances) in 48.6 s (74x real
# time); 1374 classified; RSS after warm-up 43.1-43.5 MB (first 43.1, growth +0.9 %),
# peak 43.6 MB, 243 samples", taken apart for the table.
field() { sed -nE "s/$1/\\1/p" <<<"$line"; }
{
  echo "# Soak of \`emotion-edge listen\`, $DATE"
  echo
  echo "Made by:"
  echo
  echo '```sh'
  echo "$COMMAND"
  echo '```'
  echo
  echo "which runs \`SOAK_AUDIO_SECONDS=$AUDIO_SECONDS ${TEST[*]}\`"
  echo "([emotion-edge/tests/soak.rs](../../emotion-edge/tests/soak.rs)): corpus utterances"
  echo "with 1 s gaps streamed into \`emotion-edge listen --source - --fast --json --no-text\`"
  echo "on the committed demo bundle as fast as it takes them, RSS read every 200 ms. Dev"
  echo "build. Machine: $cpu, $(nproc) cores, load average $load at the start; git $commit;"
  echo "$(rustc --version)."
  echo
  echo "| what | measured |"
  echo "|---|---|"
  echo "| result | $result |"
  echo "| audio streamed | $(field '^soak: ([0-9.]+ s) of audio.*') ($(field '.*\(([0-9]+) utterances\).*') utterances) |"
  echo "| wall time | $(field '.* in ([0-9.]+ s) \(.*') ($(field '.*\(([0-9.]+x) real time\).*') real time) |"
  echo "| classified | $(field '.*; ([0-9]+) classified;.*') |"
  echo "| RSS after warm-up | $(field '.*RSS after warm-up ([0-9.]+-[0-9.]+ MB).*') (at the end of warm-up $(field '.*\(first ([0-9.]+),.*') MB, growth $(field '.*growth ([-+0-9.]+ %).*')) |"
  echo "| peak RSS | $(field '.*peak ([0-9.]+ MB).*') |"
  echo
  echo "The test's own line:"
  echo
  echo '```'
  echo "${line:-(none: the test printed no figures)}"
  echo '```'
} >"$MD"
echo "== wrote $MD ($result)"
exit "$status"
