//! `--board`, `emotion-edge boards` and the embedded demo bundle, as a user meets them.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{
    corpus_file, demo_bundle as bundle, output_text as text, quick_bench_args, workspace,
};

fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .args(args)
        .current_dir(cwd)
        .env_remove("EMOTION_EDGE_BUNDLE")
        .output()
        .unwrap()
}

/// `bench --json` rows: they name the variant and threads the pipeline ran with.
fn bench_rows(extra: &[&str]) -> Vec<Value> {
    let bundle = bundle();
    let quick = quick_bench_args(&bundle);
    let mut args: Vec<&str> = quick.iter().map(String::as_str).collect();
    args.push("--json");
    args.extend_from_slice(extra);
    let out = run(&args, &workspace());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?}: {stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_boards_command_lists_every_shipped_profile_and_shows_one_in_full() {
    let out = run(&["boards"], &workspace());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for name in ["pi4", "pi5", "zero2w", "pi3"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "{name}: {stdout}"
        );
    }
    assert!(stdout.contains("armv7-unknown-linux-gnueabihf"), "{stdout}");

    let out = run(&["boards", "pi5"], &workspace());
    let (stdout, _) = text(&out);
    assert_eq!(
        stdout,
        std::fs::read_to_string(workspace().join("boards/pi5.toml")).unwrap(),
        "the profile is shown as shipped, wiring comments and all"
    );
}

#[test]
fn an_unknown_board_is_an_error_that_lists_the_known_ones() {
    let file = corpus_file();
    let out = run(
        &["classify", "--board", "pi9", file.to_str().unwrap()],
        &workspace(),
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no board profile `pi9`"), "{stderr}");
    assert!(stderr.contains("zero2w"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_board_chooses_the_variant_and_an_explicit_flag_wins() {
    let plain = bench_rows(&[]);
    // Nothing measured on this machine: its CPU class's preference (int8 on every class:
    // where integer kernels do not pay, its products compute in float).
    assert_eq!(plain[0]["variant"], "int8", "the CPU class's preference");
    let zero = bench_rows(&["--board", "zero2w"]);
    assert_eq!(zero[0]["variant"], "int8", "the Zero 2 W's profile");
    let overridden = bench_rows(&["--board", "zero2w", "--variant", "fp32"]);
    assert_eq!(overridden[0]["variant"], "fp32", "the flag wins");
}

#[test]
fn the_board_chooses_the_displays_and_an_explicit_flag_wins() {
    let bundle = bundle();
    let file = corpus_file();
    let common = [
        "listen",
        "--bundle",
        bundle.to_str().unwrap(),
        "--source",
        file.to_str().unwrap(),
        "--fast",
        "--no-text",
    ];
    // The Zero 2 W shows on its OLED, which this machine does not have: the error
    // names the bus and says what to enable.
    let mut args = common.to_vec();
    args.extend(["--board", "zero2w"]);
    let out = run(&args, &workspace());
    let (_, stderr) = text(&out);
    if !Path::new("/dev/i2c-1").exists() {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("/dev/i2c-1"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // `--display` replaces the board's list; the run classifies the file.
    args.extend(["--display", "terminal"]);
    let out = run(&args, &workspace());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("angry") || stdout.contains("%"), "{stdout}");
}

#[test]
fn the_embedded_bundle_is_found_from_the_repository_root() {
    // A fresh clone: no out/demo/bundle, no installed bundle; the committed demo bundle
    // is the last place looked in.
    let clone = tempfile::tempdir().unwrap();
    std::fs::create_dir(clone.path().join("data")).unwrap();
    std::os::unix::fs::symlink(bundle(), clone.path().join("data/demo-bundle")).unwrap();
    let file = corpus_file();
    let args = ["classify", "--json", file.to_str().unwrap()];
    if Path::new(emotion_edge::locate::INSTALLED_BUNDLE).exists() {
        eprintln!("skipped: an installed bundle comes first on this machine");
        return;
    }
    let out = run(&args, clone.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let found: Value = serde_json::from_str(stdout.trim()).unwrap();

    let bundle = bundle();
    let mut explicit = args.to_vec();
    explicit.extend(["--bundle", bundle.to_str().unwrap()]);
    let out = run(&explicit, &workspace());
    let named: Value = serde_json::from_str(text(&out).0.trim()).unwrap();
    assert_eq!(found["probabilities"], named["probabilities"]);
    assert_eq!(found["emotion"], named["emotion"]);
}

#[test]
fn every_profiles_target_has_a_cross_image_and_a_cargo_linker() {
    let read = |file: &str| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(workspace().join(file)).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let cross = read("Cross.toml");
    let cargo = read(".cargo/config.toml");
    for profile in emotion_edge::board::built_in() {
        let target = &profile.target;
        let pre_build = cross["target"][target.as_str()]["pre-build"]
            .as_array()
            .unwrap_or_else(|| panic!("Cross.toml has no pre-build for {target}"));
        let steps: Vec<&str> = pre_build.iter().filter_map(|s| s.as_str()).collect();
        assert!(
            steps
                .iter()
                .any(|s| s.contains("libasound2-dev:$CROSS_DEB_ARCH")),
            "{target}: the microphone needs the target's ALSA in the image: {steps:?}"
        );
        let config = &cargo["target"][target.as_str()];
        assert!(
            config["linker"]
                .as_str()
                .is_some_and(|l| l.ends_with("-gcc")),
            "{target}"
        );
        assert!(
            config["runner"]
                .as_str()
                .is_some_and(|r| r.starts_with("qemu-")),
            "{target}"
        );
        let env_name = format!("PKG_CONFIG_ALLOW_CROSS_{}", target.replace('-', "_"));
        assert_eq!(cargo["env"][&env_name].as_str(), Some("1"), "{env_name}");
    }
}
