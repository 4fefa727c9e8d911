//! `keygen` and `bundle sign` as a user meets them, on a copy of the committed demo
//! bundle: the key pair is minisign's (Debian's `minisign` tool verifies the signature
//! this program writes, and this program signs with a key that tool made); an encrypted
//! key opens with its password file and refuses a wrong one; `bundle add-vad` with
//! nothing to add keeps the signature (bundle_cli: a rewrite leaves it out).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{host_trainer, host_trainer_ok, text};
use emotion_core::bundle::MANIFEST_FILE;
use emotion_core::signature::{SIGNATURE_FILE, TrustedKeys};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A copy of the committed demo bundle.
fn demo_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("bundle");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(repo().join("data/demo-bundle")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    copy
}

/// The minisign tool: `None` outside CI when missing (said on stderr), a failure under
/// CI (`.ci/run` installs it).
fn minisign_tool() -> bool {
    let found = Command::new("minisign").arg("-v").output().is_ok();
    if !found && std::env::var_os("CI").is_some() {
        panic!("minisign is required under CI (.ci/run installs it)");
    }
    if !found {
        eprintln!("skipped the minisign cross-checks: minisign is not installed");
    }
    found
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

fn sign_args(bundle: &Path, key: &Path, password: Option<&Path>) -> Vec<String> {
    let mut args = vec![
        "bundle".to_string(),
        "sign".into(),
        "--bundle".into(),
        s(bundle),
        "--key".into(),
        s(key),
    ];
    if let Some(password) = password {
        args.extend(["--password-file".to_string(), s(password)]);
    }
    args
}

/// `host-trainer bundle sign`.
fn sign(bundle: &Path, key: &Path, password: Option<&Path>) -> std::process::Output {
    host_trainer(&sign_args(bundle, key, password))
}

/// `host-trainer bundle sign`, which must succeed; its stdout.
fn sign_ok(bundle: &Path, key: &Path, password: Option<&Path>) -> String {
    host_trainer_ok(&sign_args(bundle, key, password))
}

#[test]
fn keygen_and_bundle_sign_make_what_minisign_and_the_board_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let stdout = host_trainer_ok(&["keygen", "--out", &s(&keys), "--unencrypted"]);
    let (secret, public) = (keys.join("emotion-edge.key"), keys.join("emotion-edge.pub"));
    assert!(stdout.contains("emotion-edge.pub"), "{stdout}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the secret key is its owner's only: {mode:o}"
        );
    }
    // A second keygen would lock boards out of the first key: refused.
    let again = host_trainer(&["keygen", "--out", &s(&keys), "--unencrypted"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );

    let bundle = demo_copy(tmp.path());
    let stdout = sign_ok(&bundle, &secret, None);
    assert!(stdout.contains("signed"), "{stdout}");
    let trusted = TrustedKeys::read_dir(&keys).unwrap();
    let signer = trusted.check_bundle(&bundle).unwrap().unwrap();
    assert!(stdout.contains(&signer.to_string()), "{stdout}");

    if minisign_tool() {
        // The real tool verifies what this program signed...
        let out = Command::new("minisign")
            .args(["-V", "-p"])
            .arg(&public)
            .arg("-m")
            .arg(bundle.join(MANIFEST_FILE))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        // ...and this program signs with a key the real tool made (with a password,
        // which the tool reads from stdin without a terminal).
        let (tool_key, tool_pub) = (tmp.path().join("tool.key"), tmp.path().join("tool.pub"));
        let password = tmp.path().join("tool-password");
        std::fs::write(&password, "tool password\n").unwrap();
        let mut child = Command::new("minisign")
            .args(["-G", "-p"])
            .arg(&tool_pub)
            .arg("-s")
            .arg(&tool_key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"tool password\ntool password\n").unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        sign_ok(&bundle, &tool_key, Some(&password));
        let tool_trusted = TrustedKeys::read_files(&[tool_pub]).unwrap();
        assert!(tool_trusted.check_bundle(&bundle).unwrap().is_some());
        assert!(
            trusted.check_bundle(&bundle).is_err(),
            "the old key no longer signs it"
        );

        // The tool's unencrypted keys (`-G -W`, 0.11) do not open in the minisign
        // crate: a clear error that says what works instead.
        let (bare_key, bare_pub) = (tmp.path().join("bare.key"), tmp.path().join("bare.pub"));
        let out = Command::new("minisign")
            .args(["-G", "-W", "-p"])
            .arg(&bare_pub)
            .arg("-s")
            .arg(&bare_key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = sign(&bundle, &bare_key, None);
        if !out.status.success() {
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains("bare.key") && stderr.contains("host-trainer keygen"),
                "{stderr}"
            );
            assert!(
                tool_trusted.check_bundle(&bundle).unwrap().is_some(),
                "left as it was"
            );
        }
    }

    // add-vad with nothing to add leaves the bundle, and its signature, as they are.
    let stdout = host_trainer_ok(&["bundle", "add-vad", "--bundle", &s(&bundle)]);
    assert!(stdout.contains("nothing to do"), "{stdout}");
    assert!(bundle.join(SIGNATURE_FILE).exists(), "{stdout}");
}

#[test]
fn an_encrypted_key_opens_with_its_password_and_refuses_a_wrong_one() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let password = tmp.path().join("password");
    std::fs::write(&password, "correct horse\n").unwrap();
    host_trainer_ok(&[
        "keygen",
        "--out",
        &s(&keys),
        "--name",
        "site",
        "--password-file",
        &s(&password),
    ]);
    let secret = keys.join("site.key");
    let bundle = demo_copy(tmp.path());

    // No password and no terminal: an error that says what to give.
    let out = sign(&bundle, &secret, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--password-file"),
        "{}",
        text(&out.stderr)
    );
    assert!(!bundle.join(SIGNATURE_FILE).exists());

    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "battery staple\n").unwrap();
    let out = sign(&bundle, &secret, Some(&wrong));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("site.key") && stderr.contains("password"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!bundle.join(SIGNATURE_FILE).exists());

    sign_ok(&bundle, &secret, Some(&password));
    let trusted = TrustedKeys::read_dir(&keys).unwrap();
    assert!(trusted.check_bundle(&bundle).unwrap().is_some());

    // Not a key.
    let garbage = tmp.path().join("notes.key");
    std::fs::write(&garbage, "untrusted comment: x\nhello\n").unwrap();
    let out = sign(&bundle, &garbage, None);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("notes.key") && stderr.contains("not a minisign secret key"),
        "{stderr}"
    );

    // Not a bundle: the error names the folder.
    let out = sign(&tmp.path(), &secret, Some(&password));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(MANIFEST_FILE),
        "{}",
        text(&out.stderr)
    );
}
