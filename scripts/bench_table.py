#!/usr/bin/env python3
"""docs/performance.md's benchmark table, regenerated from the newest docs/results/bench-*.json.

    python3 scripts/bench_table.py [--results docs/results] [--page docs/performance.md] [--check]

scripts/bench.py writes docs/results/bench-YYYY-MM-DD.json (and .md, rendered by this
module, so the performance page and the results file say the same thing); this script
replaces what lies between `<!-- bench-table:start -->` and `<!-- bench-table:end -->`
in the page with the newest of them (its link to the results file relative to the
page). `--check` changes nothing and exits 1 when the page is not what the newest
results render to. Standard library only: it is no part of the product and needs no
virtual environment.
"""

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
RESULT_NAME = re.compile(r"^bench-(\d{4}-\d{2}-\d{2})(?:[-_.][\w.-]*)?\.json$")


def _num(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def _cpu_text(cpu):
    if not cpu:
        return "unknown CPU"
    flags = ", ".join(cpu.get("flags") or []) or "no SIMD flags read"
    return f"{cpu.get('model') or 'unknown model'} ({cpu.get('arch', '?')}; {flags})"


def _versions_text(versions):
    order = ("tract", "onnxruntime", "onnx", "torch", "transformers", "numpy", "python")
    parts = [f"{name} {versions[name]}" for name in order if versions.get(name)]
    return ", ".join(parts) or "versions not recorded"


def table_lines(rows):
    lines = [
        "| stack | variant | threads | audio s | median s | min–max s | real-time factor | peak RSS MB | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        runs = len(r.get("process_medians_s") or []) or 1
        spread = ("–" if runs < 2 else
                  f"{_num(r.get('min_s'), '.3f')}–{_num(r.get('max_s'), '.3f')}")
        median, seconds = r.get("median_s"), r.get("audio_seconds")
        rtf = median / seconds if median is not None and seconds else None
        lines.append(
            f"| {r.get('stack', '?')} | {r.get('variant', '?')} | {r.get('threads', '?')} | "
            f"{_num(seconds, 'g')} | {_num(median, '.3f')} | {spread} | {_num(rtf, '.3f')} | "
            f"{_num(r.get('peak_rss_mb'), '.0f')} | {r.get('note') or ''} |"
        )
    return lines


def render(summary, page=False, source=None, with_command=True):
    """Markdown lines for one bench summary (the JSON bench.py writes)."""
    s = summary
    settings = s.get("settings", {})
    machine = s.get("machine", {})
    lines = []
    quick = " **Quick run: too few repeats for the figures to mean much.**" if s.get("quick") else ""
    mhz = machine.get("cpu_mhz")
    made_by = f": `{s.get('command', '?')}`" if with_command else ""
    lines.append(
        f"Run of {s.get('date', '?')}{made_by}.{quick} CPU: "
        f"{_cpu_text(machine.get('cpu'))}, {machine.get('cores', '?')} cores"
        + (f", {mhz:.0f} MHz as /proc/cpuinfo reports" if mhz else "")
        + f"; {_versions_text(s.get('versions', {}))}"
        + (f"; git {s['versions']['git']}" if s.get("versions", {}).get("git") else "")
        + "."
    )
    lines.append("")
    lines.append(
        f"Every row runs in {settings.get('process_runs', '?')} separate processes (rounds "
        f"interleaved, every other round in reverse order), each the median of "
        f"{settings.get('repeats', '?')} timed runs after {settings.get('warmup', '?')} "
        f"untimed run(s). **median s** is the median of those process medians, **min–max s** "
        f"their lowest and highest (the spread between processes, not between single "
        f"runs), **peak RSS** the highest of the processes' own high-water marks (VmHWM). "
        + " ".join(settings.get("method_notes", []))
    )
    if page and source:
        lines += ["", f"Full results: [`{source}`]({source}) and the JSON beside it "
                      f"(one record per row)."]
    lines += [""] + table_lines(s.get("rows", []))

    targets = s.get("targets", [])
    if targets:
        lines += ["", "| target | measured | status |", "|---|---|---|"]
        for t in targets:
            lines.append(f"| {t['what']} | {t['measured']} | {t['status']} |")
    extra = s.get("observations", [])
    if extra:
        lines += [""] + [f"- {line}" for line in extra]

    lines += ["", "**What holds it back** (filled by scripts/bench.py from the emotion-edge "
                  "bench's per-stage medians; nothing here is estimated):", ""]
    lines += [f"- {line}" for line in s.get("holds_back", [])] or ["- (no stage figures)"]

    work = s.get("work", {})
    if work.get("lines"):
        lines += ["", "**Work and rates** (`emotion-edge bench` counts the encoder's "
                      "multiply-accumulates from the optimised graph):", ""]
        lines += [f"- {line}" for line in work["lines"]]
    boards = s.get("boards", [])
    if boards:
        lines += ["", "| board | cores × GHz | peak fp32 / int8 per core (G) | est. encoder, 2 s, "
                      "1 core, int8 | est. 2 s, all cores, int8 | real-time factor, all cores |",
                  "|---|---|---|---:|---:|---:|"]
        for b in boards:
            lines.append(
                f"| {b['name']} | {b['cores']} × {b['ghz']} | {b['peak_fp32']:.0f} / {b['peak_int8']:.0f} | "
                f"{b['one_core_s']:.2f} s | {b['all_cores_s']:.2f} s | {b['real_time_factor']:.2f} |")
        if work.get("board_note"):
            lines += ["", work["board_note"]]
    return lines


def wrapped(lines, width=88):
    """Prose and list items wrapped as the docs' own text is; tables, headings and
    code left as they are."""
    out, in_code = [], False
    for line in lines:
        if line.startswith("```"):
            in_code = not in_code
        if in_code or line.startswith(("```", "|", "#", "<!--")) or len(line) <= width:
            out.append(line)
        else:
            indent = "  " if line.startswith("- ") else ""
            out += _safe(textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False,
                                       break_on_hyphens=False), indent)
    return out


# A wrapped line must not start what Markdown reads as a list item, quote, heading,
# table row or heading underline.
_RISKY = re.compile(r"^\s*(?:[-+*>#|=]|\d+[.)])(?:\s|$)")


def _safe(lines, indent):
    lines = list(lines)
    i = 1
    while i < len(lines):
        if _RISKY.match(lines[i]):
            head, _, word = lines[i - 1].rpartition(" ")
            if head.strip():
                lines[i - 1], lines[i] = head, indent + word + " " + lines[i].lstrip()
                continue
            lines[i - 1] = lines[i - 1] + " " + lines.pop(i).lstrip()
            continue
        i += 1
    return lines


def render_results_md(summary):
    """The whole docs/results/bench-DATE.md: the command that made it first."""
    head = [f"# Benchmark, {summary.get('date', '?')}", "",
            "Made by:", "", "```sh", summary.get("command", "?"), "```", ""]
    return "\n".join(wrapped(head + render(summary, with_command=False))) + "\n"


def newest_results(results):
    found = []
    for path in Path(results).glob("bench-*.json"):
        match = RESULT_NAME.match(path.name)
        if match:
            found.append((match.group(1), path.stat().st_mtime, path))
    return max(found)[2] if found else None


def page_block(summary, source):
    return "\n".join([START] + wrapped(render(summary, page=True, source=source)) + [END])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("docs/results"))
    parser.add_argument("--page", "--readme", dest="page", type=Path,
                        default=Path("docs/performance.md"),
                        help="the Markdown page holding the bench-table markers")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args()
    newest = newest_results(args.results)
    if newest is None:
        print(f"no bench-*.json in {args.results}; {args.page} left as it is", file=sys.stderr)
        return 1
    summary = json.loads(newest.read_text())
    text = args.page.read_text()
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        print(f"{args.page}: needs exactly one {START} … {END} pair", file=sys.stderr)
        return 2
    try:
        source = newest.resolve().relative_to(args.page.resolve().parent).with_suffix(".md")
    except ValueError:
        source = newest.with_suffix(".md")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    updated = before + page_block(summary, source.as_posix()) + after
    if args.check:
        stale = updated != text
        print(f"{args.page}: {'stale' if stale else 'up to date'} against {newest}")
        return 1 if stale else 0
    if updated != text:
        args.page.write_text(updated)
    print(f"{args.page}: performance table from {newest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
