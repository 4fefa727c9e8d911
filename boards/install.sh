#!/usr/bin/env bash
# Installs emotion-edge on a Raspberry Pi as a systemd service, and optionally the
# Chromium kiosk that shows its page. Run it on the Pi, as root; see boards/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: sudo ./install.sh --board NAME --binary PATH --bundle DIR [options]

Installs emotion-edge on this Raspberry Pi as the systemd service emotion-edge (and,
with --kiosk, the full-screen Chromium kiosk emotion-kiosk), then enables and starts it.

Required:
  --board NAME    board profile: pi4, pi5, zero2w, pi3 (compiled into the binary)
  --binary PATH   the emotion-edge binary built for this board (--features mic);
                  installed to /usr/local/bin/emotion-edge
  --bundle DIR    the model bundle (has manifest.bin); copied, read-only, to
                  /var/lib/emotion-edge/bundle

Options:
  --kiosk         also install the kiosk: cage + Chromium on tty1 showing the page
                  (needs: sudo apt install cage xwayland chromium; chromium-browser on Bookworm)
  --port N        port of the page on 127.0.0.1 (default 8080)
  --trusted-key FILE
                  a minisign public key (NAME.pub from `host-trainer keygen`); may be
                  given more than once. Installed to /etc/emotion-edge/trusted-keys/:
                  the service then runs only bundles one of them signed
  --root DIR      install under DIR instead of / (image building, tests): no users are
                  created and systemctl is not run; units are enabled by links under
                  DIR unless --no-enable
  --no-enable     install only: do not enable or start anything
  -h, --help      this help

Installs:
  /usr/local/bin/emotion-edge                     the program
  /var/lib/emotion-edge/bundle/                   the model bundle (root's, read-only)
  /etc/default/emotion-edge                       settings (an existing one is kept)
  /etc/emotion-edge/trusted-keys/NAME.pub         with --trusted-key: the keys bundles
                                                  must be signed by
  /etc/systemd/system/emotion-edge.service        the service, and in
  /etc/systemd/system/emotion-edge.service.d/10-board.conf   its memory limits
  /usr/local/share/doc/emotion-edge/README.md     the guide
  with --kiosk:
  /etc/systemd/system/emotion-kiosk.service       cage + Chromium on tty1
  /usr/local/bin/kiosk-browser                    starts chromium or chromium-browser
  /usr/local/share/icons/emotion-kiosk-blank/     a transparent mouse pointer
  consoleblank=0 in /boot/firmware/cmdline.txt    no console blanking
Users: emotion-edge (system user, runs the service; groups audio, i2c, gpio), and with
--kiosk kiosk (runs the browser; groups video, render, input).
EOF
}

say() { printf '%s\n' "install.sh: $*"; }
warn() { printf '%s\n' "install.sh: warning: $*" >&2; }
die() {
  printf '%s\n' "install.sh: error: $*" >&2
  exit 1
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# --- Arguments ----------------------------------------------------------------------
board='' binary='' bundle='' kiosk=0 port=8080 root='' enable=1
trusted_keys=()
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --board | --binary | --bundle | --port | --root | --trusted-key)
      (($# >= 2)) || die "$1 needs a value (see --help)"
      case $1 in
        --trusted-key) trusted_keys+=("$2") ;;
        --board) board=$2 ;;
        --binary) binary=$2 ;;
        --bundle) bundle=$2 ;;
        --port) port=$2 ;;
        --root) root=$2 ;;
      esac
      shift 2
      ;;
    --board=* | --binary=* | --bundle=* | --port=* | --root=* | --trusted-key=*)
      value=${1#*=}
      case $1 in
        --trusted-key=*) trusted_keys+=("$value") ;;
        --board=*) board=$value ;;
        --binary=*) binary=$value ;;
        --bundle=*) bundle=$value ;;
        --port=*) port=$value ;;
        --root=*) root=$value ;;
      esac
      shift
      ;;
    --kiosk) kiosk=1; shift ;;
    --no-enable) enable=0; shift ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[[ -n $board ]] || die "--board is required: one of $(printf '%s ' pi4 pi5 zero2w pi3)(see --help)"
[[ -n $binary ]] || die "--binary is required: the emotion-edge binary built for the board (see --help)"
[[ -n $bundle ]] || die "--bundle is required: the model bundle directory (see --help)"
for key in "${trusted_keys[@]}"; do
  [[ -f $key ]] || die "--trusted-key $key: no such file"
  # A public key is one base64 line of 56 characters; a secret key's is far longer.
  if grep -qi 'secret key' -- "$key" || grep -Eq '^RW[A-Za-z0-9+/]{60,}' -- "$key"; then
    die "--trusted-key $key: this is a SECRET key; it never goes on a board: give its NAME.pub"
  fi
  grep -Eq '^RW[A-Za-z0-9+/]{54}$' -- "$key" ||
    die "--trusted-key $key: not a minisign public key (NAME.pub from host-trainer keygen)"
done

# --- The board ----------------------------------------------------------------------
# The shipped profiles (boards/NAME.toml, compiled into the binary): the target triple
# the binary must be built for, the memory of the board's smallest model (MB), and the
# service's memory cap (memory_max_mb: 5/4 of the profile's measured peak,
# docs/results/board-memory.md).
# A profile next to this script (boards/NAME.toml in the repository) is read first.
declare -A board_target=(
  [pi4]=aarch64-unknown-linux-gnu
  [pi5]=aarch64-unknown-linux-gnu
  [zero2w]=aarch64-unknown-linux-gnu
  [pi3]=armv7-unknown-linux-gnueabihf
)
declare -A board_memory=([pi4]=1024 [pi5]=2048 [zero2w]=512 [pi3]=1024)
declare -A board_memory_max=([pi4]=608 [pi5]=608 [zero2w]=272 [pi3]=272)
declare -A board_displays=([pi4]='web,terminal' [pi5]='web,terminal' [zero2w]='oled,terminal' [pi3]='web,terminal')
profile_value() { # KEY FILE: the value of a top-level `KEY = "x"` or `KEY = 1` line
  sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\{0,1\}\([^\"#]*\)\"\{0,1\}[[:space:]]*\(#.*\)\{0,1\}\$/\1/p" "$2" |
    head -n 1 | sed 's/[[:space:]]*$//'
}
[[ $board =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "unknown board '$board': give a profile name such as pi4, pi5, zero2w, pi3"
target=${board_target[$board]:-} memory_mb=${board_memory[$board]:-} displays=${board_displays[$board]:-}
memory_max_mb=${board_memory_max[$board]:-}
if [[ -f $here/$board.toml ]]; then
  value=$(profile_value target "$here/$board.toml") && [[ -n $value ]] && target=$value
  value=$(profile_value memory_mb "$here/$board.toml") && [[ $value =~ ^[0-9]+$ ]] && memory_mb=$value
  memory_max_mb=''
  value=$(profile_value memory_max_mb "$here/$board.toml") && [[ $value =~ ^[0-9]+$ ]] && memory_max_mb=$value
  # [display] kinds = ["web", "terminal"]: what `listen --board` shows by default.
  value=$(sed -n 's/^[[:space:]]*kinds[[:space:]]*=[[:space:]]*\[\([^]]*\)\].*/\1/p' "$here/$board.toml" |
    head -n 1 | tr -d '" ') && [[ -n $value ]] && displays=$value
elif [[ -z $target ]]; then
  names=("${!board_target[@]}")
  for file in "$here"/*.toml; do
    if [[ -f $file ]]; then names+=("$(basename "$file" .toml)"); fi
  done
  known=$(printf '%s\n' "${names[@]}" | sort -u | tr '\n' ' ')
  die "unknown board '$board': the profiles are ${known% } (boards/NAME.toml)"
fi
memory_mb=${memory_mb:-512}
# A profile without memory_max_mb (written before it existed): 5/8 of the board's memory.
memory_max_mb=${memory_max_mb:-$((memory_mb * 5 / 8))}
((memory_max_mb >= 1 && memory_max_mb <= memory_mb)) ||
  die "board $board: memory_max_mb ($memory_max_mb) must be between 1 and its memory_mb ($memory_mb): fix $board.toml"
memory_high_mb=$((memory_max_mb * 4 / 5))

# The kiosk shows the web display: add it when the profile's displays lack it.
args=''
if ((kiosk)) && [[ ,$displays, != *,web,* ]]; then
  args="--display ${displays:+$displays,}web"
fi

# --- Inputs -------------------------------------------------------------------------
[[ -e $binary ]] || die "binary '$binary' not found (build it: see boards/README.md, 'Build the binary')"
[[ -f $binary ]] || die "binary '$binary' is not a file"
[[ -d $bundle ]] || die "bundle '$bundle' not found or not a directory"
[[ -f $bundle/manifest.bin ]] ||
  die "'$bundle' is not a model bundle: it has no manifest.bin (host-trainer export writes one; the repository has data/demo-bundle)"
if ! [[ $port =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
  die "--port '$port' is not a port number (1-65535)"
fi

if [[ -n $root ]]; then
  mkdir -p "$root" || die "cannot create --root '$root'"
  root=$(cd "$root" && pwd)
  [[ $root != / ]] || root=''
fi
live=0
[[ -n $root ]] || live=1
if ((live)) && ((EUID != 0)); then
  die "run as root (sudo $0 ...), or give --root DIR to install under a directory"
fi
for file in systemd/emotion-edge.service kiosk/emotion-kiosk.service kiosk/kiosk-browser README.md; do
  [[ -f $here/$file ]] || die "$here/$file is missing: run install.sh from a copy of the whole boards/ folder"
done

# The binary must run here. `file` says what it was built for (warning only: `file`
# may be old or absent, and --root images are often built on a PC).
case $target in
  aarch64-*) want_file='ARM aarch64' want_dpkg=arm64 ;;
  armv7-* | arm-*) want_file='ARM,' want_dpkg=armhf ;;
  *) want_file='' want_dpkg='' ;;
esac
if [[ -n $want_file ]] && command -v file >/dev/null 2>&1; then
  what=$(file -bL -- "$binary" 2>/dev/null || true)
  if [[ $what != *ELF* ]]; then
    warn "$binary is not an ELF program ($what); board $board needs one built for $target"
  elif [[ $what != *"$want_file"* ]]; then
    warn "$binary is not built for $target (board $board): file says: $what"
  fi
fi
if ((live)) && [[ -n $want_dpkg ]] && command -v dpkg >/dev/null 2>&1; then
  here_arch=$(dpkg --print-architecture)
  [[ $here_arch == "$want_dpkg" ]] ||
    warn "this system is $here_arch, but board $board's binaries are $target ($want_dpkg): is this the right OS image (64-bit vs 32-bit) or the right --board?"
fi

# --- Users --------------------------------------------------------------------------
ensure_group() { # NAME: create a missing system group (i2c, gpio exist on Raspberry Pi OS)
  getent group "$1" >/dev/null || { say "creating group $1"; groupadd --system "$1"; }
}
if ((live)); then
  for group in audio i2c gpio; do ensure_group "$group"; done
  if ! getent passwd emotion-edge >/dev/null; then
    say "creating system user emotion-edge"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment 'emotion-edge service' emotion-edge
  fi
  # The unit adds these groups itself (SupplementaryGroups); membership also lets
  # `sudo -u emotion-edge emotion-edge devices` see what the service sees.
  usermod --append --groups audio,i2c,gpio emotion-edge
  if ((kiosk)); then
    if ! getent passwd kiosk >/dev/null; then
      # A normal user (UID >= 1000), as logind gives the seat to user sessions; no
      # password, no shell: it only ever runs the browser.
      say "creating user kiosk"
      useradd --create-home --shell /usr/sbin/nologin --comment 'emotion-edge kiosk' kiosk
    fi
    groups=()
    for group in video render input; do
      if getent group "$group" >/dev/null; then groups+=("$group"); else warn "no group $group here; kiosk is not added to it"; fi
    done
    if ((${#groups[@]})); then (IFS=, && usermod --append --groups "${groups[*]}" kiosk); fi
  fi
fi

# --- Files --------------------------------------------------------------------------
put() { # MODE SOURCE DEST: install one file (a new inode: safe while the old one runs)
  install -D -m "$1" -- "$2" "$root$3"
  say "installed $3"
}

put 0755 "$binary" /usr/local/bin/emotion-edge
# Trusted keys: public halves only (the secret key never leaves the host). With one
# here the service refuses bundles that no trusted key signed.
for key in "${trusted_keys[@]}"; do
  put 0644 "$key" "/etc/emotion-edge/trusted-keys/$(basename -- "$key")"
done
if [[ -d $root/etc/emotion-edge/trusted-keys ]] && [[ ! -f $bundle/manifest.bin.minisig ]] &&
  compgen -G "$root/etc/emotion-edge/trusted-keys/*.pub" >/dev/null; then
  warn "$bundle is not signed but this board trusts keys in /etc/emotion-edge/trusted-keys: the service will refuse it (sign it: host-trainer bundle sign --bundle DIR --key KEY)"
fi
put 0644 "$here/README.md" /usr/local/share/doc/emotion-edge/README.md

# The bundle: copied whole next to the old one, then swapped in, so the service never
# sees half a bundle. Owned by root, readable by all, writable by none but root.
state=$root/var/lib/emotion-edge
dest=$state/bundle
mkdir -p "$state"
chmod 0755 "$state"
if [[ -d $dest ]] && [[ $(cd "$bundle" && pwd -P) == $(cd "$dest" && pwd -P) ]]; then
  say "bundle: $bundle is already the installed bundle"
else
  rm -rf "$dest.new" "$dest.old"
  cp -R -- "$bundle" "$dest.new"
  find "$dest.new" -type d -exec chmod 0755 {} +
  find "$dest.new" -type f -exec chmod 0644 {} +
  ((live)) && chown -R root:root "$dest.new"
  [[ -f $dest.new/manifest.bin ]] || die "copying the bundle failed ($dest.new has no manifest.bin)"
  # A variant measurement made on this board (`emotion-edge bench --choose`) is kept: the
  # program itself ignores it if it was made for another bundle.
  if [[ -f $dest/variant-choice.json && ! -e $dest.new/variant-choice.json ]]; then
    cp -p -- "$dest/variant-choice.json" "$dest.new/variant-choice.json"
    say "kept the variant measurement /var/lib/emotion-edge/bundle/variant-choice.json"
  fi
  [[ -e $dest ]] && mv -- "$dest" "$dest.old"
  mv -- "$dest.new" "$dest"
  rm -rf "$dest.old"
  say "installed /var/lib/emotion-edge/bundle (from $bundle)"
fi

# The settings. An existing file is the administrator's: keep it, and put this run's
# settings next to it for comparison.
settings=$(
  cat <<EOF
# Settings of emotion-edge.service and emotion-kiosk.service (see
# /usr/local/share/doc/emotion-edge/README.md). Written by install.sh; after a change:
#   sudo systemctl restart emotion-edge emotion-kiosk
# systemd reads this file, not a shell: no \$VARIABLES, and no quoting inside a value.

# The board profile compiled into the binary (pi4, pi5, zero2w, pi3): threads, bundle
# variant, microphone, and displays (this one's: ${displays:-its own}).
EMOTION_EDGE_BOARD=$board
# Port of the kiosk page, served on 127.0.0.1 only.
EMOTION_EDGE_WEB_PORT=$port
# The model bundle (read-only for the service; not under /home).
EMOTION_EDGE_BUNDLE=/var/lib/emotion-edge/bundle
# More arguments for \`emotion-edge listen\`, split at spaces; they win over the
# profile. E.g. --display web,terminal,oled (terminal: a line per utterance in the
# journal; web: the kiosk page; oled; led) --source mic:USB --prompt-cycle
EMOTION_EDGE_ARGS=$args
EOF
)
defaults=$root/etc/default/emotion-edge
mkdir -p "$(dirname "$defaults")"
if [[ ! -e $defaults ]]; then
  printf '%s\n' "$settings" >"$defaults"
  chmod 0644 "$defaults"
  say "installed /etc/default/emotion-edge"
elif [[ $(<"$defaults") == "$settings" ]]; then
  say "/etc/default/emotion-edge is up to date"
else
  printf '%s\n' "$settings" >"$defaults.new"
  chmod 0644 "$defaults.new"
  warn "kept the existing /etc/default/emotion-edge (its settings are used); this run's settings are in /etc/default/emotion-edge.new: compare with diff, and move it over to use them"
  old_board=$(sed -n 's/^EMOTION_EDGE_BOARD=//p' "$defaults" | tail -n 1)
  old_port=$(sed -n 's/^EMOTION_EDGE_WEB_PORT=//p' "$defaults" | tail -n 1)
  [[ -z $old_board || $old_board == "$board" ]] ||
    warn "the kept file says EMOTION_EDGE_BOARD=$old_board, not $board"
  [[ -z $old_port || $old_port == "$port" ]] ||
    warn "the kept file says EMOTION_EDGE_WEB_PORT=$old_port, not $port"
  old_args=$(sed -n 's/^EMOTION_EDGE_ARGS=//p' "$defaults" | tail -n 1)
  [[ $old_args == "$args" ]] ||
    warn "the kept file says EMOTION_EDGE_ARGS=$old_args, not ${args:-(empty)}"
fi

# The service, and its memory limits for this board (the unit's own are the Pi Zero 2
# W's): the profile's memory_max_mb, sized from its measured peak (expected_memory_mb)
# with at least 15 % headroom, and MemoryHigh at 4/5 of it.
units=$root/etc/systemd/system
put 0644 "$here/systemd/emotion-edge.service" /etc/systemd/system/emotion-edge.service
mkdir -p "$units/emotion-edge.service.d"
cat >"$units/emotion-edge.service.d/10-board.conf" <<EOF
# Written by install.sh for board $board (smallest model: $memory_mb MB of memory) from
# its profile's memory_max_mb, which leaves headroom above the profile's measured peak
# (expected_memory_mb; "emotion-edge bench --board $board" checks it on the board).
# Above MemoryHigh the kernel reclaims hard; at MemoryMax the OOM killer stops the
# service (and Restart= starts it again).
[Service]
MemoryHigh=${memory_high_mb}M
MemoryMax=${memory_max_mb}M
EOF
chmod 0644 "$units/emotion-edge.service.d/10-board.conf"
say "installed /etc/systemd/system/emotion-edge.service.d/10-board.conf (MemoryHigh=${memory_high_mb}M, MemoryMax=${memory_max_mb}M)"

# --- The kiosk ----------------------------------------------------------------------
# An Xcursor file with one 1x1 transparent image (little-endian): a pointer nobody sees.
blank_cursor() {
  local value
  printf 'Xcur'
  # file header (16 bytes, version 1.0, 1 entry); the entry (image, nominal size 24,
  # at byte 28); the image chunk (36 bytes, version 1, 1x1, hotspot 0,0, delay 0); ARGB 0
  for value in 16 65536 1 4294770690 24 28 36 4294770690 24 1 1 1 0 0 0 0; do
    printf '%b' "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((value & 255)) $(((value >> 8) & 255)) \
      $(((value >> 16) & 255)) $(((value >> 24) & 255)))"
  done
}

if ((kiosk)); then
  put 0644 "$here/kiosk/emotion-kiosk.service" /etc/systemd/system/emotion-kiosk.service
  put 0755 "$here/kiosk/kiosk-browser" /usr/local/bin/kiosk-browser

  theme=$root/usr/local/share/icons/emotion-kiosk-blank
  mkdir -p "$theme/cursors"
  printf '[Icon Theme]\nName=emotion-kiosk-blank\nComment=Transparent pointer for the emotion-edge kiosk\n' >"$theme/index.theme"
  blank_cursor >"$theme/cursors/default"
  for name in left_ptr arrow top_left_arrow pointer hand1 hand2 text xterm ibeam \
    crosshair cross wait watch progress left_ptr_watch help question_arrow move fleur \
    grab grabbing all-scroll not-allowed no-drop copy alias cell context-menu \
    col-resize row-resize ns-resize ew-resize nesw-resize nwse-resize n-resize \
    s-resize e-resize w-resize ne-resize nw-resize se-resize sw-resize \
    sb_h_double_arrow sb_v_double_arrow zoom-in zoom-out vertical-text; do
    ln -sfn default "$theme/cursors/$name"
  done
  find "$theme" -type d -exec chmod 0755 {} +
  find "$theme" -type f -exec chmod 0644 {} +
  say "installed /usr/local/share/icons/emotion-kiosk-blank (a transparent pointer)"

  # No console blanking (the kernel's consoleblank=), for the screen before cage takes
  # it; the same setting raspi-config's "Screen Blanking" writes.
  cmdline=''
  for candidate in /boot/firmware/cmdline.txt /boot/cmdline.txt; do
    if [[ -f $root$candidate ]]; then
      cmdline=$candidate
      break
    fi
  done
  if [[ -z $cmdline ]]; then
    say "no /boot/firmware/cmdline.txt here: console blanking left as it is"
  elif grep -q 'consoleblank=' "$root$cmdline"; then
    say "$cmdline already sets consoleblank (left as it is)"
  elif (($(wc -l <"$root$cmdline") > 1)); then
    warn "$cmdline has more than one line; not touched: add consoleblank=0 to its first line yourself"
  else
    cp -p -- "$root$cmdline" "$root$cmdline.emotion-edge.bak"
    sed -i '1s/[[:space:]]*$/ consoleblank=0/' "$root$cmdline"
    say "added consoleblank=0 to $cmdline (was: $cmdline.emotion-edge.bak); applies after a reboot"
  fi
  if ((live)); then
    command -v cage >/dev/null 2>&1 || warn "cage is not installed: sudo apt install cage"
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
      warn "no browser: sudo apt install chromium (or chromium-browser on Bookworm)"
  fi
fi

# --- Enable -------------------------------------------------------------------------
services=(emotion-edge.service)
((kiosk)) && services+=(emotion-kiosk.service)
if ((!enable)); then
  say "not enabled (--no-enable): sudo systemctl enable --now ${services[*]}"
elif ((!live)); then
  # What `systemctl enable` does, without a running systemd: links in the wants
  # directory of the target the units are WantedBy.
  mkdir -p "$units/multi-user.target.wants"
  for service in "${services[@]}"; do
    ln -sfn "/etc/systemd/system/$service" "$units/multi-user.target.wants/$service"
    say "enabled $service (link in $root/etc/systemd/system/multi-user.target.wants)"
  done
  say "under --root no users were created: on first boot of that system, run install.sh again, or create them as install.sh does"
elif [[ ! -d /run/systemd/system ]]; then
  systemctl enable "${services[@]}"
  say "systemd is not running here (a chroot?): enabled; they start at the next boot"
else
  systemctl daemon-reload
  systemctl enable "${services[@]}"
  # restart, not start: a re-install must replace the running binary and bundle.
  systemctl restart emotion-edge.service
  if ((kiosk)); then
    if [[ $(tty 2>/dev/null || true) == /dev/tty1 ]]; then
      say "not starting the kiosk now: it takes over tty1, where this shell runs; reboot to start it"
    else
      systemctl restart emotion-kiosk.service
    fi
  fi
  say "started: systemctl status ${services[*]}; journalctl -u emotion-edge -f"
fi
say "done"
