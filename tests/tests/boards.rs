//! The board installation in `boards/`: `install.sh` lays out a board (under `--root`,
//! never on this machine), its systemd units pass `systemd-analyze verify`, it refuses
//! bad input, and the kiosk's `kiosk-browser` waits for the page and then starts
//! whichever Chromium is installed.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn boards() -> PathBuf {
    repo_root().join("boards")
}

fn demo_bundle() -> PathBuf {
    repo_root().join("data/demo-bundle")
}

/// Runs `boards/install.sh` with `args` (always under a `--root`: it never installs
/// on this machine).
fn install(args: &[&str]) -> Output {
    assert!(
        args.contains(&"--root") || args.iter().any(|a| a.starts_with("--root=")),
        "the tests install under --root only"
    );
    Command::new("bash")
        .arg(boards().join("install.sh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn write_executable(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A stand-in for the cross-built binary.
fn fake_binary(dir: &Path) -> PathBuf {
    let path = dir.join("emotion-edge");
    write_executable(&path, "#!/bin/sh\necho \"fake emotion-edge $*\"\n");
    path
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Installs the kiosk set-up for `board` under a fresh root; returns (root dir guard,
/// root path).
fn installed(board: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let binary = fake_binary(tmp.path());
    let bundle = demo_bundle();
    let mut args = vec![
        "--root",
        root.to_str().unwrap(),
        "--board",
        board,
        "--binary",
        binary.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = install(&args);
    assert!(
        out.status.success(),
        "install.sh failed:\n{}",
        describe(&out)
    );
    (tmp, root)
}

/// A top-level `key = value` of a board profile, unquoted.
fn profile_value(board: &str, key: &str) -> String {
    let profile = fs::read_to_string(boards().join(format!("{board}.toml"))).unwrap();
    profile
        .lines()
        .map(str::trim)
        .find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| {
                v.split('#')
                    .next()
                    .unwrap()
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
        })
        .unwrap_or_else(|| panic!("boards/{board}.toml has no {key}"))
}

/// The `[display] kinds` of a board profile.
fn profile_displays(board: &str) -> Vec<String> {
    let list = profile_value(board, "kinds");
    list.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|kind| kind.trim().trim_matches('"').to_string())
        .filter(|kind| !kind.is_empty())
        .collect()
}

/// The shipped board profiles (boards/*.toml).
fn board_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(boards())
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            (path.extension()? == "toml")
                .then(|| path.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}

/// `KEY=value` lines of an environment file.
fn env_value(file: &str, key: &str) -> Option<String> {
    file.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// The Xcursor file install.sh writes: one 1×1 fully transparent image.
fn blank_xcursor() -> Vec<u8> {
    let mut bytes = b"Xcur".to_vec();
    for value in [
        16u32,
        0x1_0000,
        1,
        0xfffd_0002,
        24,
        28,
        36,
        0xfffd_0002,
        24,
        1,
        1,
        1,
        0,
        0,
        0,
        0,
    ] {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

const CMDLINE: &str = "console=serial0,115200 console=tty1 root=PARTUUID=0a1b2c3d-02 rootfstype=ext4 fsck.repair=yes rootwait\n";

#[test]
fn install_lays_out_the_board_under_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    // A Raspberry Pi OS boot partition, to see consoleblank=0 added once.
    fs::create_dir_all(root.join("boot/firmware")).unwrap();
    fs::write(root.join("boot/firmware/cmdline.txt"), CMDLINE).unwrap();
    let binary = fake_binary(tmp.path());
    let bundle = demo_bundle();
    let args = [
        "--root",
        root.to_str().unwrap(),
        "--board",
        "pi4",
        "--binary",
        binary.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        "--kiosk",
        "--no-enable",
    ];
    let out = install(&args);
    assert!(out.status.success(), "{}", describe(&out));

    // The program and the kiosk's wrapper, executable; the units as shipped.
    let same = |installed: &str, shipped: &Path, want_mode: u32| {
        let path = root.join(installed);
        assert_eq!(
            fs::read(&path).unwrap_or_else(|e| panic!("{installed}: {e}")),
            fs::read(shipped).unwrap(),
            "{installed} differs from {}",
            shipped.display()
        );
        assert_eq!(mode(&path), want_mode, "mode of {installed}");
    };
    same("usr/local/bin/emotion-edge", &binary, 0o755);
    same(
        "usr/local/bin/kiosk-browser",
        &boards().join("kiosk/kiosk-browser"),
        0o755,
    );
    same(
        "etc/systemd/system/emotion-edge.service",
        &boards().join("systemd/emotion-edge.service"),
        0o644,
    );
    same(
        "etc/systemd/system/emotion-kiosk.service",
        &boards().join("kiosk/emotion-kiosk.service"),
        0o644,
    );
    same(
        "usr/local/share/doc/emotion-edge/README.md",
        &boards().join("README.md"),
        0o644,
    );

    // The bundle: every file, byte for byte, readable by all and writable by none but
    // the owner; nothing else, and no half-done copies left.
    let installed_bundle = root.join("var/lib/emotion-edge/bundle");
    let mut shipped: Vec<String> = fs::read_dir(&bundle)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut copied: Vec<String> = fs::read_dir(&installed_bundle)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    shipped.sort();
    copied.sort();
    assert_eq!(copied, shipped);
    assert!(copied.iter().any(|name| name == "manifest.bin"));
    for name in &copied {
        let path = installed_bundle.join(name);
        assert_eq!(
            fs::read(&path).unwrap(),
            fs::read(bundle.join(name)).unwrap(),
            "{name}"
        );
        assert_eq!(mode(&path), 0o644, "mode of bundle/{name}");
    }
    assert_eq!(mode(&installed_bundle), 0o755);
    let mut state: Vec<String> = fs::read_dir(root.join("var/lib/emotion-edge"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    state.sort();
    assert_eq!(state, ["bundle"]);

    // The settings.
    let defaults = fs::read_to_string(root.join("etc/default/emotion-edge")).unwrap();
    assert_eq!(
        env_value(&defaults, "EMOTION_EDGE_BOARD").as_deref(),
        Some("pi4")
    );
    assert_eq!(
        env_value(&defaults, "EMOTION_EDGE_WEB_PORT").as_deref(),
        Some("8080")
    );
    assert_eq!(
        env_value(&defaults, "EMOTION_EDGE_BUNDLE").as_deref(),
        Some("/var/lib/emotion-edge/bundle")
    );
    assert!(
        env_value(&defaults, "EMOTION_EDGE_ARGS").is_some(),
        "{defaults}"
    );

    // The memory limits from the profile's measured cap.
    let cap: u32 = profile_value("pi4", "memory_max_mb").parse().unwrap();
    let dropin =
        fs::read_to_string(root.join("etc/systemd/system/emotion-edge.service.d/10-board.conf"))
            .unwrap();
    assert!(dropin.contains("[Service]"), "{dropin}");
    assert!(dropin.contains(&format!("MemoryMax={cap}M")), "{dropin}");
    assert!(
        dropin.contains(&format!("MemoryHigh={}M", cap * 4 / 5)),
        "{dropin}"
    );

    // The transparent pointer.
    let theme = root.join("usr/local/share/icons/emotion-kiosk-blank");
    assert_eq!(
        fs::read(theme.join("cursors/default")).unwrap(),
        blank_xcursor()
    );
    assert_eq!(
        fs::read_link(theme.join("cursors/left_ptr")).unwrap(),
        Path::new("default")
    );
    assert!(
        fs::read_to_string(theme.join("index.theme"))
            .unwrap()
            .contains("[Icon Theme]")
    );
    let kiosk_unit = fs::read_to_string(boards().join("kiosk/emotion-kiosk.service")).unwrap();
    assert!(kiosk_unit.contains("XCURSOR_THEME=emotion-kiosk-blank"));

    // No console blanking, said once, the original kept.
    let cmdline = fs::read_to_string(root.join("boot/firmware/cmdline.txt")).unwrap();
    assert_eq!(
        cmdline,
        CMDLINE.replace("rootwait\n", "rootwait consoleblank=0\n")
    );
    assert_eq!(
        fs::read_to_string(root.join("boot/firmware/cmdline.txt.emotion-edge.bak")).unwrap(),
        CMDLINE
    );

    // --no-enable: nothing enabled.
    assert!(
        !root
            .join("etc/systemd/system/multi-user.target.wants")
            .exists()
    );

    // Again, the same: nothing changes, and it says the settings are up to date.
    let again = install(&args);
    assert!(again.status.success(), "{}", describe(&again));
    assert!(
        text(&again.stdout).contains("up to date"),
        "{}",
        describe(&again)
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/default/emotion-edge")).unwrap(),
        defaults
    );
    assert!(!root.join("etc/default/emotion-edge.new").exists());
    assert_eq!(
        fs::read_to_string(root.join("boot/firmware/cmdline.txt"))
            .unwrap()
            .matches("consoleblank=")
            .count(),
        1
    );
    // An edited bundle is replaced by the new copy.
    fs::write(installed_bundle.join("stale-file"), "x").unwrap();
    let again = install(&args);
    assert!(again.status.success(), "{}", describe(&again));
    assert!(!installed_bundle.join("stale-file").exists());

    // Other settings: the existing file is kept, and the run says so.
    let mut other = args.to_vec();
    other.extend_from_slice(&["--port", "9090"]);
    let changed = install(&other);
    assert!(changed.status.success(), "{}", describe(&changed));
    assert!(
        text(&changed.stderr).contains("kept the existing /etc/default/emotion-edge"),
        "{}",
        describe(&changed)
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/default/emotion-edge")).unwrap(),
        defaults
    );
    let new = fs::read_to_string(root.join("etc/default/emotion-edge.new")).unwrap();
    assert_eq!(
        env_value(&new, "EMOTION_EDGE_WEB_PORT").as_deref(),
        Some("9090")
    );
}

#[test]
fn install_under_root_enables_by_links_unless_told_not_to() {
    let (_tmp, root) = installed("pi5", &["--kiosk"]);
    for unit in ["emotion-edge.service", "emotion-kiosk.service"] {
        let link = root
            .join("etc/systemd/system/multi-user.target.wants")
            .join(unit);
        assert_eq!(
            fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display())),
            Path::new("/etc/systemd/system").join(unit)
        );
    }
    // Without --kiosk, no kiosk.
    let (_tmp, root) = installed("pi5", &[]);
    assert!(
        root.join("etc/systemd/system/multi-user.target.wants/emotion-edge.service")
            .is_symlink()
    );
    assert!(
        !root
            .join("etc/systemd/system/emotion-kiosk.service")
            .exists()
    );
    assert!(
        !root
            .join("etc/systemd/system/multi-user.target.wants/emotion-kiosk.service")
            .exists()
    );
    assert!(!root.join("usr/local/bin/kiosk-browser").exists());
}

#[test]
fn every_board_gets_its_memory_limits_and_a_web_display_for_the_kiosk() {
    let boards = board_names();
    assert!(boards.len() >= 4, "{boards:?}");
    for board in &boards {
        let cap: u32 = profile_value(board, "memory_max_mb").parse().unwrap();
        let displays = profile_displays(board);
        for kiosk in [false, true] {
            let extra: &[&str] = if kiosk {
                &["--kiosk", "--no-enable"]
            } else {
                &["--no-enable"]
            };
            let (_tmp, root) = installed(board, extra);
            let defaults = fs::read_to_string(root.join("etc/default/emotion-edge")).unwrap();
            assert_eq!(
                env_value(&defaults, "EMOTION_EDGE_BOARD").as_deref(),
                Some(board.as_str())
            );
            let args = env_value(&defaults, "EMOTION_EDGE_ARGS").unwrap();
            if kiosk && !displays.iter().any(|d| d == "web") {
                // The profile's displays, plus the page the kiosk shows.
                assert_eq!(
                    args,
                    format!("--display {},web", displays.join(",")),
                    "{board}"
                );
            } else {
                assert_eq!(
                    args, "",
                    "{board}, kiosk {kiosk}: the profile's displays stay"
                );
            }
            let dropin = fs::read_to_string(
                root.join("etc/systemd/system/emotion-edge.service.d/10-board.conf"),
            )
            .unwrap();
            assert!(
                dropin.contains(&format!("MemoryMax={cap}M")),
                "{board}: {dropin}"
            );
        }
    }
}

#[test]
fn install_refuses_bad_input_and_installs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let root_arg = root.to_str().unwrap();
    let binary = fake_binary(tmp.path());
    let binary_arg = binary.to_str().unwrap();
    let bundle = demo_bundle();
    let bundle_arg = bundle.to_str().unwrap();
    let not_a_bundle = tmp.path().join("empty");
    fs::create_dir(&not_a_bundle).unwrap();
    let missing = tmp.path().join("missing");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--board", "pi9", "--binary", binary_arg, "--bundle", bundle_arg,
            ],
            "unknown board 'pi9'",
        ),
        (
            vec![
                "--board",
                "pi4",
                "--binary",
                binary_arg,
                "--bundle",
                missing.to_str().unwrap(),
            ],
            "not found",
        ),
        (
            vec![
                "--board",
                "pi4",
                "--binary",
                binary_arg,
                "--bundle",
                not_a_bundle.to_str().unwrap(),
            ],
            "no manifest.bin",
        ),
        (
            vec![
                "--board",
                "pi4",
                "--binary",
                missing.to_str().unwrap(),
                "--bundle",
                bundle_arg,
            ],
            "binary",
        ),
        (
            vec!["--board", "pi4", "--bundle", bundle_arg],
            "--binary is required",
        ),
        (
            vec![
                "--board", "pi4", "--binary", binary_arg, "--bundle", bundle_arg, "--port", "70000",
            ],
            "not a port number",
        ),
        (
            vec![
                "--board",
                "pi4",
                "--binary",
                binary_arg,
                "--bundle",
                bundle_arg,
                "--frobnicate",
            ],
            "unknown argument '--frobnicate'",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["--root", root_arg];
        all.extend(args.iter());
        let out = install(&all);
        assert!(
            !out.status.success(),
            "{args:?} succeeded:\n{}",
            describe(&out)
        );
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("error") && stderr.contains(message),
            "{args:?}: expected {message:?}:\n{}",
            describe(&out)
        );
        assert!(!root.exists(), "{args:?} installed something");
    }
    // The unknown board's error names the shipped ones.
    let out = install(&[
        "--root", root_arg, "--board", "pi9", "--binary", binary_arg, "--bundle", bundle_arg,
    ]);
    for board in board_names() {
        assert!(text(&out.stderr).contains(&board), "{}", describe(&out));
    }
}

#[test]
fn install_warns_when_the_binary_is_not_for_the_board() {
    if Command::new("file").arg("--version").output().is_err() {
        eprintln!("skipped: `file` is not installed (install.sh then skips this check too)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let binary = fake_binary(tmp.path());
    // A script: not a program at all. The test's own executable: a program for this
    // machine, so not for an aarch64 board unless this machine is one.
    let this = std::env::current_exe().unwrap();
    let mut cases = vec![(binary.clone(), "not an ELF program")];
    if std::env::consts::ARCH != "aarch64" {
        cases.push((this, "is not built for aarch64-unknown-linux-gnu"));
    }
    for (program, message) in cases {
        let root = tmp.path().join("root");
        let out = install(&[
            "--root",
            root.to_str().unwrap(),
            "--board",
            "pi4",
            "--binary",
            program.to_str().unwrap(),
            "--bundle",
            demo_bundle().to_str().unwrap(),
            "--no-enable",
        ]);
        assert!(out.status.success(), "only a warning:\n{}", describe(&out));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("warning") && stderr.contains(message),
            "{}",
            describe(&out)
        );
        fs::remove_dir_all(&root).unwrap();
    }
}

#[test]
fn install_help_and_scripts_parse() {
    let out = Command::new("bash")
        .arg(boards().join("install.sh"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    for option in [
        "--board",
        "--binary",
        "--bundle",
        "--kiosk",
        "--port",
        "--root",
        "--no-enable",
    ] {
        assert!(text(&out.stdout).contains(option), "--help lacks {option}");
    }

    let scripts = [
        boards().join("install.sh"),
        boards().join("kiosk/kiosk-browser"),
    ];
    for script in &scripts {
        assert_eq!(
            mode(script) & 0o111,
            0o111,
            "{} is not executable",
            script.display()
        );
        let out = Command::new("bash").arg("-n").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "bash -n {}:\n{}",
            script.display(),
            describe(&out)
        );
    }
    match Command::new("shellcheck").arg("--version").output() {
        Ok(_) => {
            let out = Command::new("shellcheck").args(&scripts).output().unwrap();
            assert!(out.status.success(), "shellcheck:\n{}", describe(&out));
        }
        Err(_) => {
            eprintln!("note: shellcheck is not installed; only `bash -n` checked the scripts")
        }
    }
}

#[test]
fn every_directive_of_the_units_is_explained() {
    // Each block of settings is preceded by a comment saying why.
    for unit in [
        "systemd/emotion-edge.service",
        "kiosk/emotion-kiosk.service",
    ] {
        let content = fs::read_to_string(boards().join(unit)).unwrap();
        let mut commented = false;
        for (number, line) in content.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('[') {
                commented = false;
            } else if line.starts_with('#') {
                commented = true;
            } else {
                let key = line.split('=').next().unwrap();
                assert!(
                    commented
                        || matches!(key, "Description" | "Documentation" | "Type" | "WantedBy"),
                    "{unit}:{}: `{line}` has no comment above it",
                    number + 1
                );
            }
        }
    }
}

// --- systemd-analyze -------------------------------------------------------------------

/// Whether `systemd-analyze` runs here; when not: a failure on CI, else a skip.
fn systemd_analyze_available(test: &str) -> bool {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "systemd-analyze is missing: apt-get install systemd"
    );
    eprintln!("skipped {test}: systemd-analyze is missing (apt-get install systemd)");
    false
}

/// A root holding the installed board plus what a Raspberry Pi OS image has around
/// it: the system's units (this machine's, and stubs of the ones our units order
/// against where missing) and `cage`.
fn analysis_root() -> (tempfile::TempDir, PathBuf) {
    let (tmp, root) = installed("pi4", &["--kiosk", "--no-enable"]);
    let units = root.join("usr/lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    for host in ["/usr/lib/systemd/system", "/lib/systemd/system"] {
        let host = Path::new(host);
        if host.is_dir() && fs::canonicalize(host).unwrap() != fs::canonicalize(&units).unwrap() {
            let status = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", host.display()))
                .arg(&units)
                .status()
                .unwrap();
            assert!(status.success(), "copying {}", host.display());
            break;
        }
    }
    for stub in [
        "-.slice",
        "system.slice",
        "sysinit.target",
        "basic.target",
        "shutdown.target",
        "multi-user.target",
        "sound.target",
        "systemd-user-sessions.service",
        "systemd-logind.service",
        "dbus.socket",
        "getty@.service",
    ] {
        let path = units.join(stub);
        if !path.exists() && !path.is_symlink() {
            fs::write(
                &path,
                "[Unit]\nDescription=stub for systemd-analyze verify\n",
            )
            .unwrap();
        }
    }
    write_executable(&root.join("usr/bin/cage"), "#!/bin/sh\nexit 0\n");
    (tmp, root)
}

const OUR_UNITS: [&str; 2] = [
    "/etc/systemd/system/emotion-edge.service",
    "/etc/systemd/system/emotion-kiosk.service",
];

/// `systemd-analyze verify` of our installed units under `root`: (success, the lines
/// that name our units or files, every line).
fn verify(root: &Path) -> (bool, Vec<String>, String) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        // Errors of our units only, not of the system's units they order against.
        .arg("--recursive-errors=no")
        .arg(format!("--root={}", root.display()))
        .args(OUR_UNITS)
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    // Paths are reported under the root: take it off, so that only the names count.
    let ours = all
        .lines()
        .filter(|line| {
            let line = line.replace(root.to_str().unwrap(), "");
            ["emotion-edge", "emotion-kiosk", "kiosk-browser"]
                .iter()
                .any(|name| line.contains(name))
        })
        .map(str::to_string)
        .collect();
    (out.status.success(), ours, all)
}

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    if !systemd_analyze_available("installed_units_pass_systemd_analyze_verify") {
        return;
    }
    let (_tmp, root) = analysis_root();
    let (ok, ours, all) = verify(&root);
    if !all.trim().is_empty() {
        eprintln!("systemd-analyze verify said (lines not about our units are ignored):\n{all}");
    }
    assert!(
        ours.is_empty(),
        "systemd-analyze verify on our units:\n{}",
        ours.join("\n")
    );
    assert!(ok, "systemd-analyze verify failed:\n{all}");

    // The check can fail: a bad setting in the board's drop-in, and a program that is
    // not there, are both reported against our unit.
    let dropin = root.join("etc/systemd/system/emotion-edge.service.d/99-broken.conf");
    fs::write(&dropin, "[Service]\nMemoryMax=lots\n").unwrap();
    let (_, ours, all) = verify(&root);
    assert!(
        ours.iter()
            .any(|line| line.contains("99-broken.conf") && line.contains("lots")),
        "a bad drop-in went unnoticed:\n{all}"
    );
    fs::remove_file(&dropin).unwrap();
    fs::remove_file(root.join("usr/bin/cage")).unwrap();
    let (ok, ours, all) = verify(&root);
    assert!(
        !ok && ours
            .iter()
            .any(|line| line.contains("emotion-kiosk.service") && line.contains("/usr/bin/cage")),
        "a missing ExecStart program went unnoticed:\n{all}"
    );
}

#[test]
fn service_hardening_stays_ok() {
    if !systemd_analyze_available("service_hardening_stays_ok") {
        return;
    }
    let (_tmp, root) = analysis_root();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .arg(OUR_UNITS[0])
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    if all.contains("--offline") && !out.status.success() {
        eprintln!(
            "skipped: this systemd-analyze has no `security --offline` (systemd < 250):\n{all}"
        );
        return;
    }
    // "→ Overall exposure level for emotion-edge.service: 1.7 OK 🙂"
    let level: f32 = all
        .lines()
        .find_map(|line| {
            let rest = line
                .split("Overall exposure level for emotion-edge.service:")
                .nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no exposure level in:\n{all}"));
    assert!(
        level <= 2.0,
        "emotion-edge.service's exposure rose to {level} (1.5 when written):\n{all}"
    );
}

// --- kiosk-browser ---------------------------------------------------------------------

/// A PATH directory with the tools kiosk-browser uses and, as `browsers`, fake
/// browsers that write their arguments to `args.txt` beside them.
fn browser_path(dir: &Path, browsers: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for tool in ["bash", "timeout", "sleep", "sed"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    for browser in browsers {
        write_executable(
            &bin.join(browser),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' {browser} \"$@\" > '{}'\n",
                dir.join("args.txt").display()
            ),
        );
    }
    bin
}

fn kiosk_browser(path: &Path, wait_seconds: &str, args: &[&str]) -> Command {
    let mut command = Command::new(boards().join("kiosk/kiosk-browser"));
    command
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("KIOSK_WAIT_SECONDS", wait_seconds)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A loopback port with nothing listening on it (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn kiosk_browser_waits_for_the_page_then_starts_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    // Bookworm's name only: that one is picked.
    let path = browser_path(tmp.path(), &["chromium-browser"]);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut child = kiosk_browser(&path, "60", &["--kiosk", "--incognito", &url])
        .spawn()
        .unwrap();

    // Nothing answers yet: it waits, and no browser starts.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "kiosk-browser did not wait for the page"
    );
    assert!(
        !tmp.path().join("args.txt").exists(),
        "the browser started before the page answered"
    );

    // The page comes up: one answer to its probe, then the browser starts.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 512];
        while !request.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut buffer).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..n]);
        }
        stream
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "kiosk-browser did not start the browser"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", describe(&out));
    let request = server.join().unwrap();
    assert!(request.starts_with("GET / HTTP/1.0\r\n"), "{request:?}");
    let args = fs::read_to_string(tmp.path().join("args.txt")).unwrap();
    assert_eq!(
        args,
        format!("chromium-browser\n--kiosk\n--incognito\n{url}\n")
    );
}

#[test]
fn kiosk_browser_prefers_chromium_and_gives_up_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    // Both names (a Trixie image with the old name kept): `chromium` runs.
    let path = browser_path(tmp.path(), &["chromium", "chromium-browser"]);
    let url = format!("http://127.0.0.1:{}/", free_port());
    // Nothing ever answers: after the wait it starts the browser anyway, saying why.
    let out = kiosk_browser(&path, "1", &["--kiosk", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("did not answer"),
        "{}",
        describe(&out)
    );
    let args = fs::read_to_string(tmp.path().join("args.txt")).unwrap();
    assert_eq!(args, format!("chromium\n--kiosk\n{url}\n"));
}

#[test]
fn kiosk_browser_without_a_browser_says_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    let path = browser_path(tmp.path(), &[]);
    let out = kiosk_browser(&path, "1", &["--kiosk", "http://127.0.0.1:9/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("neither chromium nor chromium-browser") && stderr.contains("apt install"),
        "{}",
        describe(&out)
    );
}

#[test]
fn kiosk_unit_runs_the_wrapper_in_cage_on_the_configured_port() {
    let unit = fs::read_to_string(boards().join("kiosk/emotion-kiosk.service")).unwrap();
    let exec = unit
        .lines()
        .find(|line| line.starts_with("ExecStart="))
        .expect("ExecStart");
    assert!(
        exec.starts_with("ExecStart=/usr/bin/cage -s -- /usr/local/bin/kiosk-browser "),
        "{exec}"
    );
    assert!(
        exec.ends_with(" http://127.0.0.1:${EMOTION_EDGE_WEB_PORT}/"),
        "{exec}"
    );
    for flag in [
        "--kiosk",
        "--noerrdialogs",
        "--disable-infobars",
        "--incognito",
        "--no-first-run",
        "--check-for-update-interval=31536000",
    ] {
        assert!(
            exec.split_whitespace().any(|word| word == flag),
            "{flag} missing: {exec}"
        );
    }
    // The port both units read comes from the same file.
    let service = fs::read_to_string(boards().join("systemd/emotion-edge.service")).unwrap();
    for content in [&unit, &service] {
        assert!(content.contains("EnvironmentFile=-/etc/default/emotion-edge"));
        assert!(content.contains("Environment=EMOTION_EDGE_WEB_PORT=8080"));
    }
    assert!(service.contains("--web-port ${EMOTION_EDGE_WEB_PORT}"));
    assert!(service.contains("SuccessExitStatus=130"));
}

#[test]
fn install_puts_trusted_keys_in_place_and_warns_of_an_unsigned_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let key = repo_root().join("fixtures/signature/trusted.pub");
    let (_guard, root) = installed("pi4", &["--trusted-key", key.to_str().unwrap()]);
    let installed_key = root.join("etc/emotion-edge/trusted-keys/trusted.pub");
    assert_eq!(fs::read(&installed_key).unwrap(), fs::read(&key).unwrap());
    assert_eq!(mode(&installed_key), 0o644);

    // The demo bundle is not signed: installed, with a warning that says what to do.
    let binary = fake_binary(tmp.path());
    let install_with_key = |root: &Path, key: &Path| {
        install(&[
            "--root",
            root.to_str().unwrap(),
            "--board",
            "pi4",
            "--binary",
            binary.to_str().unwrap(),
            "--bundle",
            demo_bundle().to_str().unwrap(),
            "--trusted-key",
            key.to_str().unwrap(),
        ])
    };
    let out = install_with_key(&tmp.path().join("root2"), &key);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is not signed") && stderr.contains("host-trainer bundle sign"),
        "{stderr}"
    );

    // A secret key, a file that is no key, a missing file: refused, nothing installed.
    let secret = tmp.path().join("site.key");
    let secret_line = format!("RWRTY0Iy{}", "A".repeat(204));
    fs::write(
        &secret,
        format!("untrusted comment: minisign secret key\n{secret_line}\n"),
    )
    .unwrap();
    let garbage = tmp.path().join("notes.pub");
    fs::write(&garbage, "hello\n").unwrap();
    let missing = tmp.path().join("missing.pub");
    for (key, expected) in [
        (&secret, "SECRET key"),
        (&garbage, "not a minisign public key"),
        (&missing, "no such file"),
    ] {
        let root3 = tmp.path().join("root3");
        let out = install_with_key(&root3, key);
        assert!(!out.status.success(), "{}", describe(&out));
        assert!(text(&out.stderr).contains(expected), "{}", describe(&out));
        assert!(
            !root3.join("usr/local/bin/emotion-edge").exists(),
            "nothing installed"
        );
    }
}

/// install.sh's own table (for when it runs without the profiles beside it) and the
/// unit's default caps (the smallest board's) say what the profiles say.
#[test]
fn the_installer_table_and_the_unit_carry_the_profiles_caps() {
    let install = fs::read_to_string(boards().join("install.sh")).unwrap();
    for (table, key) in [
        ("board_memory_max", "memory_max_mb"),
        ("board_memory", "memory_mb"),
    ] {
        let line = install
            .lines()
            .find(|l| l.starts_with(&format!("declare -A {table}=(")))
            .unwrap_or_else(|| panic!("install.sh has no {table} table"));
        for board in board_names() {
            let value = profile_value(&board, key);
            assert!(
                line.contains(&format!("[{board}]={value} "))
                    || line.contains(&format!("[{board}]={value})")),
                "install.sh's {table} says otherwise than {board}.toml's {key} = {value}: {line}"
            );
        }
    }
    let unit = fs::read_to_string(boards().join("systemd/emotion-edge.service")).unwrap();
    let cap: u32 = profile_value("zero2w", "memory_max_mb").parse().unwrap();
    assert!(unit.contains(&format!("\nMemoryMax={cap}M\n")), "{unit}");
    assert!(
        unit.contains(&format!("\nMemoryHigh={}M\n", cap * 4 / 5)),
        "{unit}"
    );
}
