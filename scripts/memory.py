#!/usr/bin/env python3
"""Memory and latency of the board's program with a bundle: what each lever of issue 20
does to `emotion-edge`'s peak RSS, and where the time from end of speech to shown goes.
Writes docs/results/memory-levers.md (or --results). Prints figures; asserts nothing.

    python3 scripts/memory.py --edge target/release/emotion-edge \\
        --bundle out/bench/demo/bundle [--out out/memory]

Every figure is one process's own peak resident memory (VmHWM, read from /proc while it
runs; `scripts/bench.py`'s `run_child`). `listen --fast` reads a stream of corpus
utterances with silence between them (bench.py's `joined_corpus`); the latency rows play
the same stream in real time. Needs numpy (bench.py's imports).
"""

import argparse
import datetime
import json
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ROOT, child_env, joined_corpus, run_child  # noqa: E402

# glibc's largest moving mmap threshold on 64-bit: what it climbs to once a graph load
# has freed blocks of that size, so large blocks then come from (and stay in) the heap.
MOVED_THRESHOLD = str(32 * 1024 * 1024)
# A transcript outside every keyword table: the text encoder must run.
UNSEEN_TRANSCRIPT = "the kiosk heard a sentence nobody trained it on"


def listen(edge, bundle, stream, out, variant, threads=1, fast=True, env=None):
    command = [edge, "listen", "--bundle", bundle, "--source", stream, "--json",
               "--threads", threads, "--variant", variant]
    if fast:
        command.append("--fast")
    stdout, rss = run_child(command, out / "log-memory.txt", env)
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return rows, rss, command


def memory_stream(out):
    """The corpus files and the stream `listen` reads here: 8 corpus utterances, spread
    over the corpus, with silence between them (in `out`, made if missing)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = sorted((ROOT / "data/synthetic-tess").rglob("*.wav"))
    return corpus, joined_corpus(out, corpus[:: max(1, len(corpus) // 8)][:8])


def classify(edge, bundle, clip, out, variant, extra):
    command = [edge, "classify", "--bundle", bundle, "--json", "--threads", "1",
               "--variant", variant, *extra, clip]
    stdout, rss = run_child(command, out / "log-memory.txt")
    return rss, command


def summary(values):
    if not values:
        return "none"
    return f"median {statistics.median(values):.0f}, min {min(values):.0f}, max {max(values):.0f}"


def stage_medians(rows):
    """Median of each per-stage timing the JSON lines carry (ms)."""
    stages = {}
    for row in rows:
        for key, value in (row.get("latency_ms") or {}).items():
            if isinstance(value, (int, float)):
                stages.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in stages.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edge", required=True, help="the emotion-edge binary (release)")
    parser.add_argument("--bundle", required=True, help="a base-size bundle with fp32 and int8")
    parser.add_argument("--demo-bundle", default=str(ROOT / "data/demo-bundle"),
                        help="the tiny bundle, for reference")
    parser.add_argument("--out", default="out/memory", help="scratch folder (stream, logs)")
    parser.add_argument("--results", default=str(ROOT / "docs/results/memory-levers.md"))
    parser.add_argument("--command", default=shlex.join(sys.argv),
                        help="the command line recorded in the results")
    args = parser.parse_args()
    out = Path(args.out)
    corpus, stream = memory_stream(out)
    clip = corpus[0]

    rows = []

    def row(label, rss, command, note=""):
        print(f"{label}: peak RSS {rss:.1f} MB {note}", flush=True)
        rows.append((label, rss, note, shlex.join(str(c) for c in command)))

    heard, rss, command = listen(args.edge, args.bundle, stream, out, "int8")
    row("listen, int8, 1 thread (the defaults)", rss, command, f"{len(heard)} utterances")
    _, rss, command = listen(args.edge, args.bundle, stream, out, "int8", threads=2)
    row("listen, int8, 2 threads (one shared pool)", rss, command)
    _, rss, command = listen(args.edge, args.bundle, stream, out, "fp32")
    row("listen, fp32, 1 thread", rss, command)
    moved = child_env()
    moved["MALLOC_MMAP_THRESHOLD_"] = MOVED_THRESHOLD
    _, rss, command = listen(args.edge, args.bundle, stream, out, "int8", env=moved)
    row("listen, int8, 1 thread, no low mmap threshold while loading (MALLOC_MMAP_THRESHOLD_ "
        "set: the program then leaves glibc's settings alone)", rss,
        ["MALLOC_MMAP_THRESHOLD_=" + MOVED_THRESHOLD, *command])
    for variant in ("int8", "fp32"):
        rss, command = classify(args.edge, args.bundle, clip, out, variant,
                                ["--transcript", UNSEEN_TRANSCRIPT])
        row(f"classify, {variant}, a transcript outside the keyword table (text encoder loaded)",
            rss, command)
    _, rss, command = listen(args.edge, args.demo_bundle, stream, out, "int8")
    row("listen, tiny demo bundle, int8 (reference)", rss, command)

    print("listen in real time, int8, 1 thread", flush=True)
    heard, _, latency_command = listen(args.edge, args.bundle, stream, out, "int8", fast=False)
    shown = [r["shown_after_ms"] for r in heard if "shown_after_ms" in r]
    stages = stage_medians(heard)
    print(f"end of speech -> shown: {summary(shown)} ms; stages {stages}", flush=True)

    lines = [
        f"# Memory and latency levers ({datetime.date.today().isoformat()})",
        "",
        f"Made by `{args.command}` (scripts/memory.py). Bundle: `{args.bundle}`; "
        f"stream: {len(corpus[:: max(1, len(corpus) // 8)][:8])} corpus utterances with 1.5 s "
        "of silence between them. Peak RSS is each process's own VmHWM.",
        "",
        "| configuration | peak RSS MB | note | command |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {label} | {rss:.1f} | {note} | `{command}` |" for label, rss, note, command in rows]
    lines += [
        "",
        "## End of speech → shown (listen in real time, int8, 1 thread)",
        "",
        f"`{shlex.join(str(c) for c in latency_command)}`",
        "",
        f"- shown after the end of speech: {summary(shown)} ms over {len(shown)} utterances",
        "- of which the post-roll: 100 ms (the segmenter's `post_roll_ms`, the front-end's "
        "trim margin), then the utterance is classified",
    ]
    lines += [f"- median {key}: {value:.1f} ms" for key, value in sorted(stages.items())]
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
