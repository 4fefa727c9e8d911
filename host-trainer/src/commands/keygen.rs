//! `keygen`: a minisign key pair to sign bundles with (`export --sign`, `bundle sign`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::export::signing::{KeyFiles, generate, new_password};

/// `keygen`.
#[derive(Args)]
pub struct KeygenArgs {
    /// The folder for NAME.key (the secret key, readable by you only) and NAME.pub.
    #[arg(long)]
    out: PathBuf,
    /// The key files' name.
    #[arg(long, default_value = "emotion-edge")]
    name: String,
    /// Encrypt the secret key with the first line of this file (for scripts and CI)
    /// [default: ask for a password on the terminal].
    #[arg(long, value_name = "FILE", conflicts_with = "unencrypted")]
    password_file: Option<PathBuf>,
    /// Leave the secret key unencrypted: its file permissions are its only protection.
    #[arg(long)]
    unencrypted: bool,
    /// Replace existing key files (boards that trust the old public key will refuse
    /// bundles signed with the new one).
    #[arg(long)]
    force: bool,
}

/// Runs `keygen`.
pub fn run(args: KeygenArgs) -> Result<()> {
    let password = new_password(args.password_file.as_deref(), args.unencrypted)?;
    let encrypted = password.is_some();
    let files = KeyFiles::new(&args.out, &args.name);
    let id = generate(&files, password, args.force)?;
    println!(
        "key {id}: secret key {} ({}, mode 0600; keep it on this machine, never on a board), public key {}",
        files.secret.display(),
        if encrypted {
            "encrypted"
        } else {
            "NOT encrypted"
        },
        files.public.display()
    );
    println!(
        "sign: host-trainer export … --sign {0}, or host-trainer bundle sign --bundle DIR --key {0}",
        files.secret.display()
    );
    println!(
        "boards: copy {} into /etc/emotion-edge/trusted-keys/ (boards/install.sh --trusted-key FILE does): they then run only bundles this key signed",
        files.public.display()
    );
    Ok(())
}
