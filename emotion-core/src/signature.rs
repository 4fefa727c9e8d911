//! Signed bundles: who made a bundle, not only whether its files still match its
//! manifest. The manifest lists every file's SHA-256, so signing `manifest.bin` signs
//! the bundle; anyone can rewrite the manifest with fresh checksums, nobody without the
//! secret key can sign it.
//!
//! The signature is [minisign](https://jedisct1.github.io/minisign/)'s (Ed25519 over
//! the BLAKE2b-512 of the file, plus a signed trusted comment), in
//! `manifest.bin.minisig` beside the manifest: `host-trainer export --sign KEY` and
//! `host-trainer bundle sign` write it, and so does `minisign -Sm manifest.bin` with a
//! key the `minisign` tool made. A board given trusted public keys ([`TrustedKeys`],
//! minisign's `.pub` files) refuses a bundle that is unsigned, signed by another key, or
//! whose signature does not match ([`TrustError`]); with no keys it checks nothing
//! here (the checksums still hold).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::bundle::{MANIFEST_FILE, MAX_MANIFEST_BYTES};

/// The signature file in a bundle.
pub const SIGNATURE_FILE: &str = "manifest.bin.minisig";
/// The folder a board reads its trusted keys from when none is given.
pub const DEFAULT_TRUSTED_KEYS_DIR: &str = "/etc/emotion-edge/trusted-keys";
/// Extension of a public key file in a trusted-keys folder.
pub const PUBLIC_KEY_EXTENSION: &str = "pub";
/// The most bytes read from a key or signature file (minisign's are under 1 kB).
const MOST_BYTES: u64 = 64 * 1024;

/// A minisign key id: 8 bytes, shown as minisign shows it (16 hex digits, the bytes as
/// a little-endian number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl KeyId {
    /// The id from its 8 bytes, as stored in a key (minisign's `keynum`).
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    /// The id in bytes 2..10 of a decoded minisign key or signature line (after the
    /// two algorithm bytes).
    fn of_line(line: &str) -> Option<Self> {
        let bytes = base64_decode(line.trim())?;
        let id: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
        Some(Self(id))
    }
}

/// One trusted public key.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Its id.
    pub id: KeyId,
    /// The file it came from.
    pub path: PathBuf,
    key: minisign_verify::PublicKey,
}

/// The public keys a board trusts; empty: signatures are not required.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<TrustedKey>,
}

/// Why a key cannot be read or a bundle is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key or signature file cannot be read.
    #[error("{}: {detail}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A file in the trusted-keys folder is not a minisign public key.
    #[error(
        "{}: not a minisign public key ({detail}); a trusted key is the .pub file \
         `host-trainer keygen` or `minisign -G` writes",
        path.display()
    )]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// Keys are configured and the bundle has no signature.
    #[error(
        "{}: the bundle is not signed ({SIGNATURE_FILE} is missing) and this board only \
         runs bundles signed by a trusted key ({}); sign it on the host with `host-trainer \
         bundle sign --bundle {} --key KEY` or export it with --sign KEY",
        bundle.display(), ids(trusted), bundle.display()
    )]
    Unsigned {
        /// The bundle.
        bundle: PathBuf,
        /// The trusted keys.
        trusted: Vec<KeyId>,
    },
    /// The signature file is not a minisign signature.
    #[error("{}: {SIGNATURE_FILE} is not a minisign signature ({detail})", bundle.display())]
    BadSignatureFile {
        /// The bundle.
        bundle: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// Signed, by a key the board does not trust.
    #[error(
        "{}: signed by key {key}, which this board does not trust (trusted: {}); add its \
         .pub file to the trusted keys, or sign the bundle with a trusted key",
        bundle.display(), ids(trusted)
    )]
    UntrustedKey {
        /// The bundle.
        bundle: PathBuf,
        /// The key that signed it.
        key: KeyId,
        /// The trusted keys.
        trusted: Vec<KeyId>,
    },
    /// Signed by a trusted key, and the signature does not match the manifest.
    #[error(
        "{}: the signature by key {key} does not match {MANIFEST_FILE}: the manifest (or \
         the signature) was changed after signing; export or sign the bundle again",
        bundle.display()
    )]
    Mismatch {
        /// The bundle.
        bundle: PathBuf,
        /// The key named by the signature.
        key: KeyId,
    },
}

fn ids(keys: &[KeyId]) -> String {
    let ids: Vec<String> = keys.iter().map(KeyId::to_string).collect();
    ids.join(", ")
}

/// A file's bytes, refused when longer than `most` (a device or a FIFO has no length to
/// check first).
fn read_at_most(path: &Path, most: u64) -> Result<Vec<u8>, TrustError> {
    let error = |detail: String| TrustError::Read {
        path: path.to_owned(),
        detail,
    };
    crate::fs::read_at_most(path, most)
        .map_err(|e| error(e.to_string()))?
        .ok_or_else(|| error(format!("more than {most} bytes")))
}

/// A key or signature file's text, refused when larger than [`MOST_BYTES`].
fn read_small(path: &Path) -> Result<String, TrustError> {
    let bytes = read_at_most(path, MOST_BYTES)?;
    String::from_utf8(bytes).map_err(|_| TrustError::Read {
        path: path.to_owned(),
        detail: "not text".to_owned(),
    })
}

impl TrustedKey {
    /// A minisign public key file: its box (`untrusted comment:` line, then the key) or
    /// the bare base64 key.
    pub fn read(path: &Path) -> Result<Self, TrustError> {
        Self::parse(&read_small(path)?, path)
    }

    /// A minisign public key from its text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TrustError> {
        let bad = |detail: &str| TrustError::BadKey {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| bad("no key line"))?;
        let key =
            minisign_verify::PublicKey::from_base64(line).map_err(|e| bad(&format!("{e}")))?;
        let id = KeyId::of_line(line).ok_or_else(|| bad("no key id"))?;
        Ok(Self {
            id,
            path: path.to_owned(),
            key,
        })
    }
}

impl TrustedKeys {
    /// Every `*.pub` file in `dir`, in name order. A file that is not a key is an error
    /// (a board that silently trusted fewer keys than its owner installed would refuse
    /// good bundles for no reason it could tell); no `.pub` file at all: no keys.
    pub fn read_dir(dir: &Path) -> Result<Self, TrustError> {
        let entries = std::fs::read_dir(dir).map_err(|e| TrustError::Read {
            path: dir.to_owned(),
            detail: e.to_string(),
        })?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| TrustError::Read {
                path: dir.to_owned(),
                detail: e.to_string(),
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == PUBLIC_KEY_EXTENSION) {
                paths.push(path);
            }
        }
        paths.sort();
        Self::read_files(&paths)
    }

    /// The keys in `paths`.
    pub fn read_files(paths: &[PathBuf]) -> Result<Self, TrustError> {
        let keys = paths
            .iter()
            .map(|p| TrustedKey::read(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    /// These keys.
    pub fn from_keys(keys: Vec<TrustedKey>) -> Self {
        Self { keys }
    }

    /// The keys.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// True without keys: nothing to check.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the signature of the bundle in `dir` when keys are configured: the key
    /// that signed it, or `None` with no keys. The manifest read here is the one whose
    /// checksums the bundle's loader then holds every file to.
    pub fn check_bundle(&self, dir: &Path) -> Result<Option<KeyId>, TrustError> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let trusted: Vec<KeyId> = self.keys.iter().map(|k| k.id).collect();
        let signature_path = dir.join(SIGNATURE_FILE);
        if !signature_path.exists() {
            return Err(TrustError::Unsigned {
                bundle: dir.to_owned(),
                trusted,
            });
        }
        let text = read_small(&signature_path)?;
        let bad = |detail: String| TrustError::BadSignatureFile {
            bundle: dir.to_owned(),
            detail,
        };
        let signature =
            minisign_verify::Signature::decode(&text).map_err(|e| bad(e.to_string()))?;
        let signer = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .and_then(KeyId::of_line)
            .ok_or_else(|| bad("no key id".to_owned()))?;
        let Some(key) = self.keys.iter().find(|k| k.id == signer) else {
            return Err(TrustError::UntrustedKey {
                bundle: dir.to_owned(),
                key: signer,
                trusted,
            });
        };
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest = read_at_most(&manifest_path, MAX_MANIFEST_BYTES)?;
        key.key
            .verify(&manifest, &signature, false)
            .map_err(|_| TrustError::Mismatch {
                bundle: dir.to_owned(),
                key: signer,
            })?;
        Ok(Some(signer))
    }
}

/// Standard base64 (with or without `=` padding); `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/signature")
    }

    /// A bundle folder holding the fixture's signed manifest (and its signature unless
    /// `signed` is false).
    fn bundle(signed: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixtures().join("manifest.bin"),
            dir.path().join(MANIFEST_FILE),
        )
        .unwrap();
        if signed {
            std::fs::copy(
                fixtures().join(SIGNATURE_FILE),
                dir.path().join(SIGNATURE_FILE),
            )
            .unwrap();
        }
        dir
    }

    fn keys(names: &[&str]) -> TrustedKeys {
        let paths: Vec<PathBuf> = names.iter().map(|n| fixtures().join(n)).collect();
        TrustedKeys::read_files(&paths).unwrap()
    }

    #[test]
    fn key_ids_read_as_minisign_prints_them() {
        let key = TrustedKey::read(&fixtures().join("trusted.pub")).unwrap();
        assert_eq!(key.id.to_string(), "61164CD90585734A");
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert!(base64_decode("TW!u").is_none());
    }

    #[test]
    fn a_signature_by_a_trusted_key_passes_and_no_keys_check_nothing() {
        let dir = bundle(true);
        let signer = keys(&["other.pub", "trusted.pub"])
            .check_bundle(dir.path())
            .unwrap();
        assert_eq!(signer.unwrap().to_string(), "61164CD90585734A");
        let unsigned = bundle(false);
        assert!(
            TrustedKeys::default()
                .check_bundle(unsigned.path())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn unsigned_untrusted_and_changed_bundles_are_refused_by_name() {
        let trusted = keys(&["trusted.pub"]);
        let unsigned = bundle(false);
        let err = trusted.check_bundle(unsigned.path()).unwrap_err();
        assert!(matches!(err, TrustError::Unsigned { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("not signed") && text.contains("61164CD90585734A"),
            "{text}"
        );
        assert!(
            text.contains(&unsigned.path().display().to_string()),
            "{text}"
        );

        let other = keys(&["other.pub"]);
        let signed = bundle(true);
        let err = other.check_bundle(signed.path()).unwrap_err();
        assert!(matches!(err, TrustError::UntrustedKey { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("61164CD90585734A") && text.contains("F9208608B18F4B98"),
            "{text}"
        );

        // One byte of the manifest changed (its checksums rewritten, say): no match.
        let mut manifest = std::fs::read(signed.path().join(MANIFEST_FILE)).unwrap();
        manifest[0] ^= 1;
        std::fs::write(signed.path().join(MANIFEST_FILE), manifest).unwrap();
        let err = trusted.check_bundle(signed.path()).unwrap_err();
        assert!(matches!(err, TrustError::Mismatch { .. }), "{err}");

        // The trusted comment is signed too: editing it breaks the signature.
        let changed = bundle(true);
        let path = changed.path().join(SIGNATURE_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("test fixture", "test fixturE")).unwrap();
        let err = trusted.check_bundle(changed.path()).unwrap_err();
        assert!(matches!(err, TrustError::Mismatch { .. }), "{err}");
    }

    #[test]
    fn files_that_are_no_key_or_no_signature_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("empty.pub", ""),
            ("short.pub", "untrusted comment: x\nRWQ=\n"),
            ("text.pub", "hello\n"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = TrustedKey::read(&path).unwrap_err();
            assert!(matches!(err, TrustError::BadKey { .. }), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let huge = dir.path().join("huge.pub");
        std::fs::write(&huge, vec![b'A'; 100_000]).unwrap();
        assert!(matches!(
            TrustedKey::read(&huge),
            Err(TrustError::Read { .. })
        ));

        let signed = bundle(true);
        for garbage in [
            "",
            "untrusted comment: x\n",
            "untrusted comment: x\nnot base64!\n",
        ] {
            std::fs::write(signed.path().join(SIGNATURE_FILE), garbage).unwrap();
            let err = keys(&["trusted.pub"])
                .check_bundle(signed.path())
                .unwrap_err();
            assert!(matches!(err, TrustError::BadSignatureFile { .. }), "{err}");
        }
    }

    #[test]
    fn a_manifest_that_never_ends_is_refused_not_read_forever() {
        let endless = bundle(true);
        std::fs::remove_file(endless.path().join(MANIFEST_FILE)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", endless.path().join(MANIFEST_FILE)).unwrap();
        let err = keys(&["trusted.pub"])
            .check_bundle(endless.path())
            .unwrap_err();
        assert!(matches!(err, TrustError::Read { .. }), "{err}");
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn a_keys_folder_takes_only_pub_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixtures().join("trusted.pub"), dir.path().join("a.pub")).unwrap();
        std::fs::write(dir.path().join("README"), "not a key").unwrap();
        let keys = TrustedKeys::read_dir(dir.path()).unwrap();
        assert_eq!(keys.keys().len(), 1);
        assert!(TrustedKeys::read_dir(&dir.path().join("missing")).is_err());
    }
}
