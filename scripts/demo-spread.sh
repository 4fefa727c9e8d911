#!/usr/bin/env bash
# How much the demo's comparison table moves from one x86 machine to another.
#
#   bash scripts/demo-spread.sh [OUT]     (default OUT: out/demo-spread)
#
# The demo is deterministic on one machine (run it twice: the same table), but not
# across machines: tract picks its matrix and reduction kernels by the CPU's features
# (AVX-512, AVX2+FMA, AVX), so the encoder features differ in their last bits (≤ 5e-6
# here), and 40 epochs of training turn that into other weights and other test scores.
# Rounding the features does not help (stored as f16, 1,340 of 379,456 values still
# differ between two kernel sets, and the tables still differ). So this script measures
# the spread instead: it runs `host-trainer demo` once per kernel class this CPU can
# stand in for (TRACT_CPU_ISA takes kernels out of tract's pool: docs/performance.md),
# reads each report.json and each fusion run's fusion.json, and writes
# docs/results/demo-spread-DATE.md (SPREAD_MD to write elsewhere): each class's table,
# the range per cell, and whether fusion scored at least speech less one point on every
# split of every class.
#
# Not covered: burn's own kernels (gemm picks FMA on every x86-64 that has it, AVX-512
# or not), glibc's libm (exp, tanh) across versions, and non-x86 hosts.
# About 3.5 minutes per class on a 2-core machine once built (dev profile, as the README).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo-spread}
DAY=$(date -u +%Y-%m-%d)
MD=${SPREAD_MD:-docs/results/demo-spread-$DAY.md}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT" "$(dirname "$MD")"

echo "== building (dev profile)"
cargo build -p host-trainer
HOST="$TARGET/debug/host-trainer"

# name|TRACT_CPU_ISA edit|what machines run these kernels
CLASSES=(
  "native||this CPU as it is"
  "avx2-fma|-avx512f,-avx512vnni,-avx512fp16,-avxvnni|x86-64 with AVX2 and FMA, no AVX-512 (most Intel desktops and laptops, AMD Zen 1-3)"
  "avx|-avx512f,-avx512vnni,-avx512fp16,-avxvnni,-avx2,-fma|x86-64 with AVX only (Sandy/Ivy Bridge)"
  "sse|-avx512f,-avx512vnni,-avx512fp16,-avxvnni,-avx2,-fma,-avx,-f16c|x86-64 without AVX (Atom-class Celerons and Pentiums)"
)
: >"$OUT/classes.txt"
for entry in "${CLASSES[@]}"; do
  IFS='|' read -r name isa what <<<"$entry"
  echo "== demo, kernel class $name (TRACT_CPU_ISA=${isa:-unset})"
  rm -rf "${OUT:?}/$name"
  if [[ -n "$isa" ]]; then
    TRACT_CPU_ISA="$isa" "$HOST" demo --out "$OUT/$name" >"$OUT/$name.log" 2>&1
  else
    env -u TRACT_CPU_ISA "$HOST" demo --out "$OUT/$name" >"$OUT/$name.log" 2>&1
  fi
  echo "$name|$isa|$what" >>"$OUT/classes.txt"
  grep -A6 '^| model |' "$OUT/$name.log" | head -6
done

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
CORES=$(nproc)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 - "$OUT" "$MD" "$CPU" "$CORES" "$COMMIT" "$DAY" <<'EOF'
import json, sys
out, md, cpu, cores, commit, day = sys.argv[1:7]
classes = [line.rstrip("\n").split("|", 2) for line in open(f"{out}/classes.txt")]
splits = ["random", "speaker-OAF-to-YAF", "speaker-YAF-to-OAF"]
models = ["speech", "text", "fusion"]
tables, texts = {}, {}
for name, _, _ in classes:
    tables[name] = json.load(open(f"{out}/{name}/report/report.json"))["comparison"]
    texts[name] = {}
    for split in splits:
        try:
            texts[name][split] = json.load(open(f"{out}/{name}/runs/fusion/{split}/fusion.json"))
        except FileNotFoundError:
            texts[name][split] = None

def pct(x):
    return f"{100 * x:.1f}"

lines = [f"# The demo's table across x86 kernel classes, {day}", "",
         "Made by:", "", "```sh", "bash scripts/demo-spread.sh", "```", "",
         f"at commit `{commit}` on {cpu} ({cores} vCPU): `host-trainer demo` (seed 42, the "
         "embedded synthetic corpus, tiny random-weight encoders) once per tract kernel "
         "class, the other classes stood in for with `TRACT_CPU_ISA`. Only tract's kernels "
         "change between the runs; each run alone is reproducible on its machine.", "",
         "| class | `TRACT_CPU_ISA` | machines |", "|---|---|---|"]
for name, isa, what in classes:
    lines.append(f"| {name} | {('`' + isa + '`') if isa else '(unset)'} | {what} |")
lines += ["", "## Each class's table", "",
          "Test accuracy / macro-F1 in %; test parts of 28, 84 and 84 utterances (one "
          "utterance is 3.6 points on the random split, 1.2 on a speaker split).", ""]
for name, _, _ in classes:
    lines += [f"**{name}**", "", "| model | " + " | ".join(splits) + " |",
              "|---|" + "---:|" * len(splits)]
    for model in models:
        cells = [" / ".join(pct(v) for v in tables[name][model][s]) for s in splits]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    kept = []
    for s in splits:
        t = texts[name][s]
        if t is None:
            kept.append(f"{s}: no fusion.json")
        elif t["text_kept"]:
            kept.append(f"{s}: text kept (validation macro-F1 {pct(t['val_macro_f1'])} against "
                        f"the speech model's {pct(t['speech_val_macro_f1'])}, gate {t['text_gate']:+.3f})")
        else:
            kept.append(f"{s}: text not kept (fusion is the speech model)")
    lines += ["", "Fusion's text path: " + "; ".join(kept) + ".", ""]

lines += ["## Range per cell", "",
          "Lowest–highest test accuracy (macro-F1) over the classes above. These are a few "
          "samples of a chaotic process (the same last-bit differences, another trajectory), "
          "not its bounds: another x86 machine may print figures outside them, most likely on "
          "the random split, where one utterance is 3.6 points.", "",
          "| model | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
for model in models:
    cells = []
    for s in splits:
        acc = [tables[n][model][s][0] for n, _, _ in classes]
        f1 = [tables[n][model][s][1] for n, _, _ in classes]
        cells.append(f"{pct(min(acc))}–{pct(max(acc))} ({pct(min(f1))}–{pct(max(f1))})")
    lines.append(f"| {model} | " + " | ".join(cells) + " |")

worst = min((tables[n]["fusion"][s][i] - tables[n]["speech"][s][i], n, s)
            for n, _, _ in classes for s in splits for i in (0, 1))
holds = worst[0] >= -0.01
lines += ["", "Fusion at least speech less one point, on every split of every class: "
          + ("**yes**" if holds else "**no**")
          + f" (the closest: {100 * worst[0]:+.1f} points, {worst[1]}, {worst[2]}).", ""]
open(md, "w").write("\n".join(lines))
print(f"wrote {md}")
EOF
