#!/usr/bin/env python3
"""Checks the documentation's links: every relative link (and image) in README.md,
ARCHITECTURE.md, docs/**/*.md, boards/README.md and data/README.md names a file or
folder that exists, and every `#anchor` names a heading of its page (GitHub's slugs).
Also: README.md is at most 200 lines (the front door).

    python3 scripts/check_docs.py        # exit 1 and a list when something is wrong

Standard library only; no part of the product.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMG = re.compile(r"<img\s[^>]*src=\"([^\"]+)\"")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def pages():
    found = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "boards/README.md",
             ROOT / "data/README.md"]
    found += sorted((ROOT / "docs").rglob("*.md"))
    return [p for p in found if p.is_file()]


def outside_code(text):
    """The lines of a Markdown text outside fenced code blocks, with their numbers."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped (letters, digits,
    spaces, hyphens and underscores kept), spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        seen, found = {}, set()
        for _, line in outside_code(path.read_text()):
            match = HEADING.match(line)
            if not match:
                continue
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        cache[path] = found
    return cache[path]


def check(page):
    problems = []
    for number, line in outside_code(page.read_text()):
        line = re.sub(r"``[^`]*``", "", line)
        targets = [m.group(1) for m in LINK.finditer(line)] + IMG.findall(line)
        for target in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, file:
                continue
            where = f"{page.relative_to(ROOT)}:{number}"
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.exists():
                problems.append(f"{where}: {target}: no such file")
                continue
            if anchor:
                if dest.is_dir() or dest.suffix != ".md":
                    problems.append(f"{where}: {target}: an anchor into a non-Markdown file")
                elif anchor not in anchors(dest):
                    problems.append(f"{where}: {target}: no heading with that anchor in "
                                    f"{dest.relative_to(ROOT)}")
    return problems


def main():
    problems = []
    checked = pages()
    for page in checked:
        problems += check(page)
    lines = len((ROOT / "README.md").read_text().splitlines())
    if lines > README_MAX_LINES:
        problems.append(f"README.md: {lines} lines, over {README_MAX_LINES}")
    for problem in problems:
        print(problem)
    print(f"{len(checked)} pages checked, README.md {lines} lines: "
          f"{'ok' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
