#!/usr/bin/env bash
# make-synthetic-tess.sh - build a small, synthetic, TESS-shaped speech corpus
# with espeak-ng + sox.  See --help and data/README.md.
#
# The output is laid out exactly like the Kaggle download of the Toronto
# Emotional Speech Set (TESS), so every loader written for TESS can read it:
#
#   OUT/TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav
#   OUT/TESS Toronto emotional speech set data/YAF_pleasant_surprised/YAF_back_ps.wav
#   ...
#   OUT/SHA256SUMS   (every wav, paths relative to OUT, LC_ALL=C sorted)
#   OUT/README.md    (what it is, tool versions, voices, words, prosody table)
#
# It is SYNTHETIC: robot speech with hand-made "emotional" prosody.  It is
# NOT emotional speech, and numbers measured on it say nothing about TESS.
#
# Determinism: no random numbers anywhere.  espeak-ng is deterministic for a
# given version, sox runs with -D (no dither) and -G (clipping guard) and only
# deterministic effects, and the per-word variation is derived from cksum(1)
# of the speaker and word.  Two runs with the same espeak-ng and sox versions
# give byte-identical wavs (and the same SHA256SUMS).

set -euo pipefail

# Fixed locale: sorting, printf number formatting and espeak-ng must not
# depend on the caller's environment.
export LC_ALL=C

readonly SCRIPT_NAME="make-synthetic-tess.sh"
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
readonly SCRIPT_DIR
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
readonly REPO_ROOT

readonly TOP_DIR="TESS Toronto emotional speech set data"
readonly RATE=24414 # TESS sampling rate (Hz)

# ---------------------------------------------------------------- defaults --

DEFAULT_OUT="$REPO_ROOT/data/synthetic-tess"
# 12 of TESS's 200 target words ("Say the word ___").
DEFAULT_WORDS="back bean chair dog food good king love near pain rose youth"
# SPEAKER:ESPEAK_VOICE:PITCH_OFFSET (offset added to every emotion's -p).
# OAF (older adult female, 64 in TESS): en-us + variant f2 (rougher, breathy),
#   pitched down.  YAF (younger adult female, 26 in TESS): en-us + variant f4
#   (different formants, no roughness), pitched up.
DEFAULT_VOICES="OAF:en-us+f2:-10 YAF:en-us+f4:+10"
DEFAULT_PAD_START=0.15 # seconds of silence before each utterance
DEFAULT_PAD_END=0.20   # seconds of silence after each utterance

# ------------------------------------------------------ emotion prosody -----
# One row per TESS emotion, in TESS's alphabetical code order:
#   code | espeak -s (wpm) | espeak -p (0-99) | espeak -a (0-200)
#        | SSML <prosody range> | final punctuation | sox gain (dB) | sox effects
# The final punctuation changes espeak-ng's clause intonation ("." falling,
# "!" exclamation, "?" rising: pleasant surprise sounds like a question).
# sox effects are all deterministic (no dither, no noise, no random LFO
# phase); they run after resampling to 24414 Hz.  The gain is applied before
# everything else: with -G, sox 14.4.2 fails with "gain: can't reclaim
# headroom" when a gain effect follows a filter.
readonly EMOTIONS=(
	"angry|180|40|150|high|!|0|highpass 150 overdrive 12 10"
	"disgust|130|28|100|low|.|-2|lowpass 3000"
	"fear|205|70|100|x-high|.|0|tremolo 9 60 highpass 300"
	"happy|185|66|125|x-high|!|0|treble 3 3000"
	"neutral|165|48|100|medium|.|0|"
	"ps|170|84|130|x-high|?|0|treble 5 3000"
	"sad|115|34|70|x-low|.|-5|lowpass 2000"
)

# espeak-ng ends every utterance with a pause whose length depends on the
# rate, the punctuation and the SSML (0.3-0.6 s).  It is trimmed (sox
# "silence" on the reversed signal: everything after the last 20 ms whose RMS
# is above -60 dBFS) and replaced by an explicit --pad-end.
readonly TRIM_THRESHOLD=-60d

# ---------------------------------------------------------------- helpers ---

die() {
	printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
	exit 1
}

usage() {
	cat <<EOF
Usage: scripts/$SCRIPT_NAME [options]

Generate a synthetic corpus laid out exactly like the Kaggle TESS download
("$TOP_DIR/OAF_angry/OAF_back_angry.wav", ...), using espeak-ng and sox.
Every utterance is TESS's carrier phrase "Say the word WORD"; the 7 emotions
differ in speaking rate, pitch, pitch range, amplitude, clause intonation and
sox effects.  Output: 16-bit signed PCM mono WAV at $RATE Hz, plus
OUT/SHA256SUMS and OUT/README.md.  Runs are byte-for-byte reproducible.

This is NOT real emotional speech.  Use it for plumbing tests and smoke
tests only; accuracy on it says nothing about accuracy on TESS.

Options:
  -o, --out DIR        output directory (default: data/synthetic-tess in the
                       repository).  It is built in a temporary directory next
                       to DIR and then moved into place.  An existing DIR is
                       replaced only if it is empty or holds a previous corpus
                       (a SHA256SUMS file and the TESS top folder).
  -w, --words "W ..."  target words, separated by spaces or newlines
                       (default: "$DEFAULT_WORDS").
                       Lower-case letters only, as in TESS; duplicates are
                       dropped and the list is sorted.
  -v, --voices "S:V[:P] ..."
                       speakers: S = speaker id (upper-case letters/digits;
                       OAF and YAF get TESS's real folder names, any other id
                       gets YAF-style lower-case folders such as S_angry,
                       S_pleasant_surprised), V = espeak-ng voice (see
                       "espeak-ng --voices=en" and variants "+f1".."+f5"),
                       P = pitch offset added to -p (default 0).
                       (default: "$DEFAULT_VOICES")
      --pad-start SEC  silence before each utterance (default $DEFAULT_PAD_START)
      --pad-end SEC    silence after each utterance (default $DEFAULT_PAD_END)
  -q, --quiet          no progress output
  -h, --help           show this help and exit

Examples:
  scripts/$SCRIPT_NAME                      # regenerate data/synthetic-tess
  scripts/$SCRIPT_NAME --out /tmp/big --words "\$(cat words.txt)" \\
      --voices "OAF:en-us+f2:-10 YAF:en-us+f4:+10 F3:en-gb+f3:0 F5:en-us+f5:+4"

Requires espeak-ng and sox (Debian/Ubuntu: apt-get install espeak-ng sox).
EOF
}

# TESS folder name for SPEAKER x emotion code.  TESS's own folder names are
# inconsistent (OAF_Fear, OAF_Pleasant_surprise, OAF_Sad vs YAF_fear,
# YAF_pleasant_surprised, YAF_sad); reproduce them exactly.
folder_name() {
	local spk="$1" code="$2"
	if [[ "$spk" == "OAF" ]]; then
		case "$code" in
		fear) echo "OAF_Fear" ;;
		ps) echo "OAF_Pleasant_surprise" ;;
		sad) echo "OAF_Sad" ;;
		*) echo "OAF_$code" ;;
		esac
	else
		case "$code" in
		ps) echo "${spk}_pleasant_surprised" ;;
		*) echo "${spk}_$code" ;;
		esac
	fi
}

emotion_name() {
	case "$1" in
	ps) echo "pleasant surprise" ;;
	*) echo "$1" ;;
	esac
}

# Deterministic small integer in [-(n-1)/2, (n-1)/2] from a string and a salt.
hash_offset() {
	local s="$1" salt="$2" n="$3" h
	h="$(printf '%s/%s' "$salt" "$s" | cksum)"
	h="${h%% *}"
	echo $((h % n - (n - 1) / 2))
}

clamp() {
	local v="$1" lo="$2" hi="$3"
	((v < lo)) && v=$lo
	((v > hi)) && v=$hi
	echo "$v"
}

is_number() { [[ "$1" =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

# ------------------------------------------------------------------ options --

out="$DEFAULT_OUT"
words_arg="$DEFAULT_WORDS"
voices_arg="$DEFAULT_VOICES"
pad_start="$DEFAULT_PAD_START"
pad_end="$DEFAULT_PAD_END"
quiet=0

need_arg() { [[ $# -ge 2 ]] || die "option $1 needs an argument (see --help)"; }

while [[ $# -gt 0 ]]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	-o | --out)
		need_arg "$@"
		out="$2"
		shift 2
		;;
	--out=*)
		out="${1#*=}"
		shift
		;;
	-w | --words)
		need_arg "$@"
		words_arg="$2"
		shift 2
		;;
	--words=*)
		words_arg="${1#*=}"
		shift
		;;
	-v | --voices)
		need_arg "$@"
		voices_arg="$2"
		shift 2
		;;
	--voices=*)
		voices_arg="${1#*=}"
		shift
		;;
	--pad-start)
		need_arg "$@"
		pad_start="$2"
		shift 2
		;;
	--pad-end)
		need_arg "$@"
		pad_end="$2"
		shift 2
		;;
	-q | --quiet)
		quiet=1
		shift
		;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

log() { ((quiet)) || printf '%s\n' "$*" >&2; }

# ------------------------------------------------------------ dependencies --

missing=()
for tool in espeak-ng sox soxi; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
	die "${missing[*]} not found on PATH; install them with: apt-get install espeak-ng sox"
fi
for tool in sha256sum cksum mktemp sort find du; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH (GNU coreutils/findutils)"
done

# ---------------------------------------------------------- validate input --

[[ -n "$out" ]] || die "--out must not be empty"
is_number "$pad_start" || die "--pad-start must be a number of seconds, got '$pad_start'"
is_number "$pad_end" || die "--pad-end must be a number of seconds, got '$pad_end'"

# Words: split on any whitespace, validate, sort -u (C locale).
read -r -d '' -a raw_words < <(printf '%s\0' "$words_arg") || true
words=()
for w in "${raw_words[@]}"; do
	[[ "$w" =~ ^[a-z]+$ ]] || die "word '$w' must be lower-case letters a-z only (TESS file names are SPEAKER_word_code.wav)"
	words+=("$w")
done
((${#words[@]})) || die "--words is empty"
mapfile -t words < <(printf '%s\n' "${words[@]}" | sort -u)

# Voices.
read -r -d '' -a raw_voices < <(printf '%s\0' "$voices_arg") || true
speakers=()
declare -A voice_of=() pitch_off_of=()
for spec in "${raw_voices[@]}"; do
	IFS=: read -r spk voice poff extra <<<"$spec"
	[[ -z "${extra:-}" ]] || die "bad voice spec '$spec' (want SPEAKER:VOICE[:PITCH_OFFSET])"
	[[ "${spk:-}" =~ ^[A-Z0-9]+$ ]] || die "bad speaker id in '$spec' (upper-case letters/digits, no '_')"
	[[ -n "${voice:-}" ]] || die "missing espeak-ng voice in '$spec'"
	poff="${poff:-0}"
	[[ "$poff" =~ ^[+-]?[0-9]+$ ]] || die "bad pitch offset in '$spec' (want an integer such as -8 or +8)"
	[[ -z "${voice_of[$spk]+x}" ]] || die "speaker '$spk' given twice"
	speakers+=("$spk")
	voice_of[$spk]="$voice"
	pitch_off_of[$spk]=$((10#${poff#[+-]}))
	[[ "$poff" != -* ]] || pitch_off_of[$spk]=$((-${pitch_off_of[$spk]}))
done
((${#speakers[@]})) || die "--voices is empty"

# Check that every voice really exists (espeak-ng silently ignores an unknown
# "+variant", so look the variant up in its list too).
for spk in "${speakers[@]}"; do
	v="${voice_of[$spk]}"
	if ! espeak-ng -v "$v" -q "x" >/dev/null 2>&1; then
		die "espeak-ng does not know voice '$v' (speaker $spk); see: espeak-ng --voices=en"
	fi
	if [[ "$v" == *+* ]]; then
		variant="${v#*+}"
		variants="$(espeak-ng --voices=variant 2>/dev/null || true)"
		if ! grep -Eq "[[:space:]]!v/${variant}([[:space:]]|\$)" <<<"$variants"; then
			die "espeak-ng has no voice variant '$variant' (speaker $spk); see: espeak-ng --voices=variant"
		fi
	fi
done

# ----------------------------------------------------------- output target --

out_parent="$(dirname -- "$out")"
mkdir -p -- "$out_parent"
out_parent="$(cd -- "$out_parent" && pwd -P)"
out="$out_parent/$(basename -- "$out")"

if [[ -e "$out" && ! -d "$out" ]]; then
	die "'$out' exists and is not a directory"
fi
if [[ -d "$out" ]] && [[ -n "$(ls -A -- "$out")" ]]; then
	if [[ ! -f "$out/SHA256SUMS" || ! -d "$out/$TOP_DIR" ]]; then
		die "'$out' is not empty and does not look like a corpus made by this script; refusing to replace it"
	fi
fi

# Build next to the target (same file system, so the final mv is a rename).
tmp="$(mktemp -d -- "$out_parent/.$(basename -- "$out").tmp.XXXXXX")"
work="$(mktemp -d)"
cleanup() { rm -rf -- "$tmp" "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- generate --

espeak_version="$(espeak-ng --version | head -n1 | sed 's/ *Data at:.*$//')"
sox_version="$(sox --version 2>&1 | head -n1 | sed 's/^sox: *//')"
log "espeak-ng: $espeak_version"
log "sox:       $sox_version"
log "speakers:  ${speakers[*]}   words: ${#words[@]}   emotions: ${#EMOTIONS[@]}"

n=0
for spk in "${speakers[@]}"; do
	voice="${voice_of[$spk]}"
	spk_poff="${pitch_off_of[$spk]}"
	for row in "${EMOTIONS[@]}"; do
		IFS='|' read -r code speed pitch amp range punct gain effects <<<"$row"
		folder="$(folder_name "$spk" "$code")"
		mkdir -p -- "$tmp/$TOP_DIR/$folder"
		for word in "${words[@]}"; do
			# Small deterministic per-word (and per-speaker) variation so the
			# corpus is not 12 copies of one contour: pitch +-3, rate +-5 wpm.
			p=$(clamp $((pitch + spk_poff + $(hash_offset "$spk $word" pitch 7))) 0 99)
			s=$(clamp $((speed + $(hash_offset "$spk $word" speed 11))) 80 450)
			ssml="<speak><prosody range=\"$range\">Say the word $word$punct</prosody></speak>"
			raw="$work/raw.wav"
			espeak-ng -v "$voice" -m -s "$s" -p "$p" -a "$amp" -w "$raw" "$ssml"
			[[ -s "$raw" ]] || die "espeak-ng produced no audio for '$ssml'"
			trimmed="$work/trimmed.wav"
			sox -D -q "$raw" "$trimmed" reverse silence 1 0.02 "$TRIM_THRESHOLD" reverse ||
				die "sox failed to trim $raw ('$ssml')"
			wav="$tmp/$TOP_DIR/$folder/${spk}_${word}_${code}.wav"
			# shellcheck disable=SC2086  # $effects is a word list on purpose
			sox -D -G -q "$trimmed" -b 16 -e signed-integer -c 1 "$wav" \
				gain "$gain" rate -v "$RATE" $effects pad "$pad_start" "$pad_end" ||
				die "sox failed for $wav (gain $gain, effects: ${effects:-none})"
			n=$((n + 1))
		done
	done
	log "  $spk ($voice, pitch offset $spk_poff): done"
done

# ------------------------------------------------------------- checksums ----

(
	cd -- "$tmp"
	find "$TOP_DIR" -type f -name '*.wav' -print0 | sort -z | xargs -0 sha256sum
) >"$tmp/SHA256SUMS"

total_bytes="$(find "$tmp/$TOP_DIR" -type f -name '*.wav' -print0 | du -cb --files0-from=- | tail -n1 | cut -f1)"

# ----------------------------------------------------------------- README ---

{
	cat <<EOF
# Synthetic TESS-like corpus (espeak-ng + sox)

**This is synthetic speech, NOT real emotional speech.** It is a stand-in
for the Toronto Emotional Speech Set (TESS), which cannot be downloaded in
this environment. Every file was rendered by the espeak-ng formant
synthesiser with hand-picked "emotional" prosody and post-processed with
sox. It exists so that the data loader, feature front end, trainer and
evaluation can be exercised end to end. **Accuracy, confusion matrices or
any other result measured on it say nothing about TESS or about real
speech.** A classifier can learn these emotions from rate, pitch, loudness
and filtering alone.

Generated by \`scripts/$SCRIPT_NAME\`; do not edit by hand, re-run the
script instead (see \`data/README.md\`).

## Layout

Exactly the layout of the Kaggle TESS download:

\`\`\`
$TOP_DIR/
EOF
	for spk in "${speakers[@]}"; do
		for row in "${EMOTIONS[@]}"; do
			code="${row%%|*}"
			f="$(folder_name "$spk" "$code")"
			printf '  %s/%s_%s_%s.wav ...\n' "$f" "$spk" "${words[0]}" "$code"
		done
	done
	cat <<EOF
SHA256SUMS   sha256 of every wav, paths relative to this folder, LC_ALL=C order
README.md    this file
\`\`\`

- ${#speakers[@]} speakers × ${#EMOTIONS[@]} emotions × ${#words[@]} words = $n files,
  $total_bytes bytes of wav in total.
- 16-bit signed PCM, mono, $RATE Hz (TESS's rate), RIFF/WAVE.
- Each utterance is TESS's carrier phrase "Say the word WORD", padded with
  ${pad_start} s of silence before and ${pad_end} s after.
- Emotion codes in file names: \`angry disgust fear happy neutral ps sad\`
  (\`ps\` = pleasant surprise), as in TESS.

## How it was made

- $espeak_version
- $sox_version
- Command: \`scripts/$SCRIPT_NAME$(
		[[ "$words_arg" == "$DEFAULT_WORDS" ]] || printf ' --words "%s"' "${words[*]}"
		[[ "$voices_arg" == "$DEFAULT_VOICES" ]] || printf ' --voices "%s"' "$voices_arg"
		[[ "$pad_start" == "$DEFAULT_PAD_START" ]] || printf ' --pad-start %s' "$pad_start"
		[[ "$pad_end" == "$DEFAULT_PAD_END" ]] || printf ' --pad-end %s' "$pad_end"
	)\`

Per file:

\`\`\`
espeak-ng -v VOICE -m -s RATE -p PITCH -a AMP -w raw.wav \\
  '<speak><prosody range="RANGE">Say the word WORD<ending></prosody></speak>'
sox -D raw.wav trimmed.wav reverse silence 1 0.02 $TRIM_THRESHOLD reverse
sox -D -G trimmed.wav -b 16 -e signed-integer -c 1 OUT.wav \\
  gain GAIN rate -v $RATE EFFECTS pad ${pad_start} ${pad_end}
\`\`\`

The first sox call cuts espeak-ng's own trailing pause (its length varies
with rate, punctuation and SSML) so that the silence at the end is the
explicit padding. \`-D\` turns dithering off and \`-G\` guards against
clipping; no effect uses random numbers, so the output is byte-identical on
every run with the same espeak-ng and sox versions (check with \`sha256sum -c SHA256SUMS\`). Other
versions of espeak-ng or sox may give slightly different audio.

### Speakers (voices)

| speaker | espeak-ng voice | pitch offset added to -p |
|---------|-----------------|--------------------------|
EOF
	for spk in "${speakers[@]}"; do
		printf '| %s | `%s` | %+d |\n' "$spk" "${voice_of[$spk]}" "${pitch_off_of[$spk]}"
	done
	cat <<EOF

OAF stands in for TESS's older talker (64 years) and YAF for the younger
one (26 years); they are espeak-ng's female voice variants with a lower and
a higher pitch, not people.

### Words

${words[*]}

Per word and speaker a deterministic offset (from \`cksum\` of the
speaker and word) of -3..+3 is added to the pitch and -5..+5 wpm to the
rate (pitch clamped to 0-99), so that the utterances of one emotion are not
all identical in contour.

### Emotion prosody

| code | emotion | rate -s (wpm) | pitch -p | amplitude -a | SSML range | ending | sox gain (dB) | sox effects |
|------|---------|---------------|----------|--------------|------------|--------|---------------|-------------|
EOF
	for row in "${EMOTIONS[@]}"; do
		IFS='|' read -r code speed pitch amp range punct gain effects <<<"$row"
		printf '| %s | %s | %s | %s | %s | %s | `%s` | %s | %s |\n' \
			"$code" "$(emotion_name "$code")" "$speed" "$pitch" "$amp" "$range" \
			"$punct" "$gain" "${effects:+\`$effects\`}"
	done
	cat <<EOF

(Pitch, range and amplitude are espeak-ng's relative scales: -p 0-99 with
50 the voice's normal pitch, -a 0-200 with 100 normal; the ending sets
espeak-ng's clause intonation: \`.\` falling, \`!\` exclamation, \`?\` rising.)

### Measured (all speakers and words)

So that it is visible that the emotions differ measurably: mean duration
(\`soxi -D\`) and mean RMS level (\`sox FILE -n stat\`) per emotion.

| code | files | mean duration (s) | min-max duration (s) | mean RMS (dBFS) |
|------|-------|-------------------|----------------------|-----------------|
EOF
	for row in "${EMOTIONS[@]}"; do
		code="${row%%|*}"
		find "$tmp/$TOP_DIR" -type f -name "*_${code}.wav" -print0 | sort -z |
			while IFS= read -r -d '' f; do
				printf '%s %s\n' "$(soxi -D "$f")" \
					"$(sox "$f" -n stat 2>&1 | awk '/^RMS +amplitude:/ {print $3}')"
			done |
			awk -v code="$code" '
				{ n++; d += $1; r += $2
				  if (n == 1 || $1 < lo) lo = $1
				  if (n == 1 || $1 > hi) hi = $1 }
				END { printf "| %s | %d | %.3f | %.2f-%.2f | %.1f |\n",
				      code, n, d / n, lo, hi, 20 * log(r / n) / log(10) }'
	done
	cat <<EOF

(Durations include the ${pad_start} s + ${pad_end} s padding; the real TESS
files last about 1.25-2.98 s.)
EOF
} >"$tmp/README.md"

# --------------------------------------------------------- move into place --

if [[ -d "$out" ]]; then
	old="$(mktemp -d -- "$out_parent/.$(basename -- "$out").old.XXXXXX")"
	mv -- "$out" "$old/corpus"
	if ! mv -- "$tmp" "$out"; then
		mv -- "$old/corpus" "$out"
		rmdir -- "$old"
		die "could not move the new corpus into place; '$out' left unchanged"
	fi
	rm -rf -- "$old"
else
	mv -- "$tmp" "$out"
fi
chmod 755 "$out"

log "wrote $n files ($total_bytes bytes of wav) to $out"
