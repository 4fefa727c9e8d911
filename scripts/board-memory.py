#!/usr/bin/env python3
"""The board service's peak memory, measured for each shipped board profile: `listen`
with the profile's threads and every variant it may run (both for `variant = "auto"`,
which a `bench --choose` measurement may turn to fp32), on a base-size bundle. Writes
docs/results/board-memory.json (read by emotion-edge's profile test: each profile's
`expected_memory_mb` is its worst peak here, and `memory_max_mb` follows from it by
`emotion_edge::board::memory_cap_mb`) and board-memory.md. Prints figures; asserts
nothing.

    python3 scripts/board-memory.py --edge target/release/emotion-edge \\
        --bundle out/bench/demo/bundle [--out out/memory]

`listen --fast` reads the stream scripts/memory.py reads (8 corpus utterances with
silence between them); the peak is the process's own VmHWM (bench.py's `run_child`).
`listen` loads the text encoder only for a `--prompt` word outside the keyword table
(memory-levers.md has that peak); a service set up so needs a larger cap.
"""

import argparse
import datetime
import json
import math
import platform
import shlex
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ROOT, cpu_info  # noqa: E402
from memory import listen, memory_stream  # noqa: E402

VARIANTS = ("int8", "fp32")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edge", required=True, help="the emotion-edge binary (release)")
    parser.add_argument("--bundle", required=True, help="a base-size bundle with fp32 and int8")
    parser.add_argument("--out", default="out/memory", help="scratch folder (stream, logs)")
    parser.add_argument("--results", default=str(ROOT / "docs/results/board-memory"),
                        help="where the .json and .md go (without the suffix)")
    parser.add_argument("--command", default=shlex.join(sys.argv),
                        help="the command line recorded in the results")
    args = parser.parse_args()
    out = Path(args.out)
    _, stream = memory_stream(out)

    measured = {}  # (variant, threads) -> (peak MB, command)
    profiles = {}
    for path in sorted((ROOT / "boards").glob("*.toml")):
        profile = tomllib.loads(path.read_text())
        threads = int(profile["threads"])
        pinned = profile.get("variant", "auto")
        variants = VARIANTS if pinned == "auto" else (pinned,)
        peaks = {}
        for variant in variants:
            if (variant, threads) not in measured:
                heard, rss, command = listen(args.edge, args.bundle, stream, out, variant,
                                             threads=threads)
                print(f"listen, {variant}, {threads} threads: peak RSS {rss:.1f} MB "
                      f"({len(heard)} utterances)", flush=True)
                measured[(variant, threads)] = (rss, shlex.join(str(c) for c in command))
            peaks[variant] = round(measured[(variant, threads)][0], 1)
        worst = max(peaks.values())
        profiles[profile["name"]] = {
            "threads": threads,
            "variant": pinned,
            "peak_mb": peaks,
            "expected_memory_mb": math.ceil(worst),
        }

    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": datetime.date.today().isoformat(),
        "command": args.command,
        "machine": f"{cpu_info().get('model') or 'unknown CPU'} ({platform.machine()})",
        "bundle": args.bundle,
        "profiles": profiles,
    }
    results.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# The board service's peak memory per profile ({record['date']})",
        "",
        f"Made by `{args.command}` (scripts/board-memory.py) on {record['machine']}, with the "
        f"base-size bundle `{args.bundle}` (HuBERT-base layers 5–9 and BERT-base sizes, "
        "random weights). Each figure is `emotion-edge listen --fast`'s own peak resident "
        "memory (VmHWM) over 8 corpus utterances. Not measured on a Pi (none here): an "
        "aarch64 build's heap differs a little; `emotion-edge bench --board NAME` on the "
        "board measures it there.",
        "",
        "`expected_memory_mb` in boards/NAME.toml is the worst peak of the variants the "
        "profile may run; `memory_max_mb` follows from it "
        "(`emotion_edge::board::memory_cap_mb`: MemoryHigh, 4/5 of the cap, at or above the "
        "peak); a test holds the profiles to this file.",
        "",
        "| profile | threads | variant | peak MB per variant | expected_memory_mb |",
        "|---|---:|---|---|---:|",
    ]
    for name, p in profiles.items():
        per_variant = ", ".join(f"{v} {mb:.1f}" for v, mb in p["peak_mb"].items())
        lines.append(f"| {name} | {p['threads']} | {p['variant']} | {per_variant} | "
                     f"{p['expected_memory_mb']} |")
    lines += ["", "## Commands", ""]
    lines += [f"- {variant}, {threads} threads: `{command}`"
              for (variant, threads), (_, command) in sorted(measured.items())]
    results.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {results.with_suffix('.json')} and {results.with_suffix('.md')}")


if __name__ == "__main__":
    main()
