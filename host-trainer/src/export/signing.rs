//! Signing bundles on the host: minisign key pairs (`host-trainer keygen`) and the
//! signature of a bundle's manifest (`export --sign`, `bundle sign`), which a board
//! given the public key checks ([`emotion_core::signature`]). The secret key stays on
//! the host; only the `.pub` file goes to the boards.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use emotion_core::bundle::{MANIFEST_FILE, sha256_hex};
use emotion_core::fs::write_atomically;
use emotion_core::signature::{KeyId, SIGNATURE_FILE, TrustedKey, TrustedKeys};

/// The secret key file's extension; its public key is the same name with `.pub`.
pub const SECRET_KEY_EXTENSION: &str = "key";

/// A secret key, decrypted, with its public key.
pub struct SigningKey {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
    /// The file it came from.
    pub path: PathBuf,
}

/// The first line of `path`, without its line ending: a password.
fn read_password(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let password = text.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        bail!("{}: the password file is empty", path.display());
    }
    Ok(password)
}

impl SigningKey {
    /// Reads a minisign secret key (`host-trainer keygen`'s or `minisign -G`'s). An
    /// encrypted one is opened with the first line of `password_file`, else with a
    /// password asked on the terminal; with neither, an error says what to give.
    pub fn read(path: &Path, password_file: Option<&Path>) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the secret key {}", path.display()))?;
        let unencrypted = minisign::SecretKey::from_unencrypted_box(text.clone().into());
        let secret = match unencrypted {
            Ok(secret) => secret,
            // Measured: the C minisign 0.11 (Debian's) writes `-G -W` keys that the
            // minisign crate reads as corrupted; its password-protected keys open.
            Err(e) if e.to_string().contains("Corrupted") => bail!(
                "{}: this secret key does not open (minisign: {e}); a key made by the C \
                 `minisign -G -W` (0.11) is one this program cannot read: make one with \
                 `host-trainer keygen`, or `minisign -G` with a password",
                path.display()
            ),
            // minisign says so (its only way to) when the key's KDF is not "none".
            Err(e) if !e.to_string().contains("encrypted") => bail!(
                "{}: not a minisign secret key ({e}); give the NAME.key `host-trainer keygen` \
                 or `minisign -G` wrote",
                path.display()
            ),
            Err(_) => {
                let password = match password_file {
                    Some(file) => Some(read_password(file)?),
                    None if std::io::stdin().is_terminal() => None,
                    None => bail!(
                        "{}: the secret key is encrypted and there is no terminal to ask its password on: give --password-file FILE",
                        path.display()
                    ),
                };
                minisign::SecretKey::from_box(text.into(), password).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: cannot open the secret key: {e} (a minisign secret key, \
                         as `host-trainer keygen` writes, is expected)",
                        path.display()
                    )
                })?
            }
        };
        let public = minisign::PublicKey::from_secret_key(&secret)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Self {
            secret,
            public,
            path: path.to_owned(),
        })
    }

    /// The public key's id, as the board names it.
    pub fn id(&self) -> KeyId {
        let mut id = [0u8; 8];
        id.copy_from_slice(self.public.keynum());
        KeyId::from_bytes(id)
    }

    /// The public key in minisign's `.pub` format.
    pub fn public_box(&self) -> Result<String> {
        let public = self.public.to_box().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(String::from(public))
    }
}

/// Signs the bundle in `dir`: `manifest.bin.minisig` beside its manifest (written
/// whole, then renamed into place), checked against the public key as a board checks
/// it before this returns.
pub fn sign_bundle(dir: &Path, key: &SigningKey) -> Result<KeyId> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = std::fs::read(&manifest_path)
        .with_context(|| format!("cannot read {} (not a bundle?)", manifest_path.display()))?;
    // The trusted comment is signed too: what was signed, for whoever reads the file.
    let trusted_comment = format!(
        "emotion-edge bundle manifest sha256:{} signed {}",
        sha256_hex(&manifest),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let signature = minisign::sign(
        Some(&key.public),
        &key.secret,
        manifest.as_slice(),
        Some(&trusted_comment),
        Some(&format!("signature from emotion-edge key {}", key.id())),
    )
    .map_err(|e| anyhow::anyhow!("cannot sign {}: {e}", manifest_path.display()))?;
    let path = dir.join(SIGNATURE_FILE);
    write_atomically(&path, signature.to_string().as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;

    let public = TrustedKey::parse(&key.public_box()?, &key.path.with_extension("pub"))?;
    TrustedKeys::from_keys(vec![public])
        .check_bundle(dir)?
        .context("the signature was not checked")
}

/// Where `keygen` writes a key pair.
pub struct KeyFiles {
    /// The secret key (mode 0600).
    pub secret: PathBuf,
    /// The public key.
    pub public: PathBuf,
}

impl KeyFiles {
    /// `DIR/NAME.key` and `DIR/NAME.pub`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            secret: dir.join(format!("{name}.{SECRET_KEY_EXTENSION}")),
            public: dir.join(format!("{name}.pub")),
        }
    }
}

/// A new key pair in `files`: encrypted with `password` when given. Refuses to replace
/// existing files unless `force`.
pub fn generate(files: &KeyFiles, password: Option<String>, force: bool) -> Result<KeyId> {
    for path in [&files.secret, &files.public] {
        if path.exists() && !force {
            bail!(
                "{} exists; a new key would lock out every board that trusts the old one: \
                 choose another --name or --out, or give --force",
                path.display()
            );
        }
    }
    let pair = match password {
        Some(password) => minisign::KeyPair::generate_encrypted_keypair(Some(password)),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| anyhow::anyhow!("cannot make a key pair: {e}"))?;
    let mut id = [0u8; 8];
    id.copy_from_slice(pair.pk.keynum());
    let id = KeyId::from_bytes(id);
    let secret_box = pair
        .sk
        .to_box(Some(&format!("emotion-edge secret key {id}")))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let public_box = pair.pk.to_box().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (secret_box, public_box) = (String::from(secret_box), String::from(public_box));
    if let Some(dir) = files.secret.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_secret(&files.secret, &secret_box)?;
    std::fs::write(&files.public, public_box)
        .with_context(|| format!("cannot write {}", files.public.display()))?;
    Ok(id)
}

/// Writes the secret key readable by its owner only, from its first byte.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The password for a new key: the first line of `file`; `None` with `unencrypted`;
/// else asked twice on the terminal.
pub fn new_password(file: Option<&Path>, unencrypted: bool) -> Result<Option<String>> {
    if unencrypted {
        return Ok(None);
    }
    if let Some(file) = file {
        return read_password(file).map(Some);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no terminal to ask the new key's password on: give --password-file FILE, or \
             --unencrypted for a key protected by its file permissions only"
        );
    }
    let first = rpassword::prompt_password("Password for the new secret key: ")?;
    let again = rpassword::prompt_password("The same password again: ")?;
    if first != again {
        bail!("the two passwords differ; nothing written");
    }
    if first.is_empty() {
        bail!("an empty password; give --unencrypted for a key without one");
    }
    Ok(Some(first))
}
