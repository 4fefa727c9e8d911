//! Where the broker is and how to log in: the URL (`mqtt://` or `mqtts://`), the
//! credentials file (user name and password never travel on the command line, where
//! `ps` and the journal would show them) and the CA that signs a TLS broker's certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

/// Plain MQTT's port when the URL names none.
pub const DEFAULT_PORT: u16 = 1883;
/// MQTT over TLS's port when the URL names none.
pub const DEFAULT_TLS_PORT: u16 = 8883;
/// Readings kept while the broker is away, when neither flag nor board says.
pub const DEFAULT_BUFFER: usize = 1000;
/// Home Assistant's default discovery prefix.
pub const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";

/// Why the MQTT output cannot start; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum MqttConfigError {
    /// Not `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`.
    #[error("--mqtt `{url}`: {why} (expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT])")]
    Url {
        /// What was given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A user name or password in the URL.
    #[error(
        "--mqtt `{0}` carries a user name or password: put them in a credentials file \
         (--mqtt-credentials FILE, or `credentials` in the board's [mqtt]) instead, so \
         they never show in `ps` or the journal"
    )]
    SecretInUrl(String),
    /// The credentials file cannot be read or parsed.
    #[error("the MQTT credentials file {path}: {detail}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The CA file cannot be read or holds no certificate.
    #[error("the MQTT CA file {path}: {detail}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// No device id given and the host name does not make one.
    #[error("{0}")]
    DeviceId(String),
    /// The spool folder cannot be made or read.
    #[error("the MQTT spool {path}: {detail}")]
    Spool {
        /// The folder.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// TLS could not be set up.
    #[error("MQTT over TLS: {0}")]
    Tls(String),
}

/// A broker's address from `--mqtt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or IP address (a name is what the TLS certificate must match).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `mqtts://`.
    pub tls: bool,
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for BrokerUrl {
    type Err = MqttConfigError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| MqttConfigError::Url {
            url: url.to_string(),
            why: why.to_string(),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" | "tls" => true,
            other => return Err(bad(&format!("unknown scheme `{other}`"))),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('@') {
            return Err(MqttConfigError::SecretInUrl(url.to_string()));
        }
        if authority.contains(['/', '?', '#']) {
            return Err(bad("a path or query is not used by MQTT"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| bad(&format!("`{p}` is not a port")))?,
            None if tls => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
        };
        Ok(BrokerUrl {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

/// The login in a credentials file (TOML: `username = "…"` and `password = "…"`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The broker's user name.
    pub username: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password, whatever prints this.
        write!(f, "Credentials {{ username: {:?}, .. }}", self.username)
    }
}

/// Reads a credentials file. A note goes to stderr when others may read it.
pub fn read_credentials(path: &Path) -> Result<Credentials, MqttConfigError> {
    let fail = |detail: String| MqttConfigError::Credentials {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let credentials: Credentials = toml::from_str(&text).map_err(|e| {
        fail(format!(
            "{} (write two lines: username = \"…\" and password = \"…\")",
            e.message()
        ))
    })?;
    if credentials.username.is_empty() {
        return Err(fail("the username is empty".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "note: the MQTT credentials file {} can be read by other users (chmod 600 it)",
                path.display()
            );
        }
    }
    Ok(credentials)
}

/// rustls' client settings: the CA file's certificates when given, else the system's
/// (a broker with a public certificate); the `ring` provider.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, MqttConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca = |detail: String| MqttConfigError::Ca {
                path: path.to_path_buf(),
                detail,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca("no PEM certificate in it".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(MqttConfigError::Tls(
                    "no CA certificates on this system (install ca-certificates, or give \
                     the broker's CA with --mqtt-ca FILE)"
                        .into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttConfigError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// This machine's host name as a device id, when it makes one.
pub fn host_device_id() -> Result<String, MqttConfigError> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    super::message::device_id_from(&name).ok_or_else(|| {
        MqttConfigError::DeviceId(format!(
            "the host name `{}` does not make an MQTT device id: give one with --mqtt-device ID ([A-Za-z0-9_-])",
            name.trim()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Result<BrokerUrl, String> {
        text.parse::<BrokerUrl>().map_err(|e| e.to_string())
    }

    #[test]
    fn urls_give_host_port_and_tls() {
        let plain = url("mqtt://broker.local").unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.tls),
            ("broker.local", 1883, false)
        );
        let tls = url("mqtts://broker.local/").unwrap();
        assert_eq!((tls.port, tls.tls), (8883, true));
        let v6 = url("mqtt://[::1]:1999").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 1999));
        assert_eq!(v6.to_string(), "mqtt://[::1]:1999");
        assert_eq!(url("MQTT://10.0.0.2:2000").unwrap().port, 2000);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (bad, says) in [
            ("broker.local", "no scheme"),
            ("http://broker", "unknown scheme `http`"),
            ("mqtt://", "no host"),
            ("mqtt://host:0", "`0` is not a port"),
            ("mqtt://host:99999", "is not a port"),
            ("mqtt://host/topic", "path"),
        ] {
            let error = url(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
        let error = url("mqtt://user:secret@host").unwrap_err();
        assert!(error.contains("credentials file"), "{error}");
    }

    #[test]
    fn credentials_come_from_a_file_and_never_print_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mqtt.credentials");
        std::fs::write(&path, "username = \"kiosk\"\npassword = \"s3cret\"\n").unwrap();
        let read = read_credentials(&path).unwrap();
        assert_eq!(read.username, "kiosk");
        assert!(!format!("{read:?}").contains("s3cret"));
        std::fs::write(&path, "user = \"kiosk\"\n").unwrap();
        let error = read_credentials(&path).unwrap_err().to_string();
        assert!(error.contains("username = "), "{error}");
        let error = read_credentials(&dir.path().join("missing")).unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = tls_config(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("no PEM certificate"), "{error}");
    }
}
