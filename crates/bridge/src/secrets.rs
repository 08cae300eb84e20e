//! The cloud token and the site keys: where they come from and the file-permission rule.
//!
//! Rule: a secret file must not be readable or writable by "other" (`mode & 0o007 == 0`);
//! group access is allowed so the service group (`encoder-bridge`) can read a root-owned file.
//! Files under `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`) are accepted as systemd
//! lays them out. Contents never reach a log line, an error or a trace.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use encoder_protocol::keys::{Crypto1Key, MasterKey, SiteKeys};

use crate::config::Config;

/// The systemd credential name of the token.
pub const CREDENTIAL_NAME: &str = "token";

/// A secret problem: what and the one-line fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError {
    /// What is wrong (names the file or variable, never the contents).
    pub problem: String,
    /// The fix.
    pub fix: String,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (fix: {})", self.problem, self.fix)
    }
}

impl std::error::Error for SecretError {}

/// The bearer token; `Debug` and `Display` hide it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token text, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where the token was found, for `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `cloud.token_file`.
    File(PathBuf),
    /// `cloud.token_env`.
    Env(String),
    /// `$CREDENTIALS_DIRECTORY/token`.
    Credential(PathBuf),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "file {}", p.display()),
            Self::Env(v) => write!(f, "environment variable {v}"),
            Self::Credential(p) => write!(f, "systemd credential {}", p.display()),
        }
    }
}

/// Checks the permission rule on `path`.
pub fn check_permissions(path: &Path) -> Result<(), SecretError> {
    let meta = std::fs::metadata(path).map_err(|e| SecretError {
        problem: format!("cannot read {}: {e}", path.display()),
        fix: "create it (mode 0640, group encoder-bridge) or correct the path in the configuration"
            .into(),
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o007 != 0 {
        return Err(SecretError {
            problem: format!(
                "{} is accessible by other users (mode {:o})",
                path.display(),
                mode & 0o777
            ),
            fix: format!("chmod o-rwx {}", path.display()),
        });
    }
    Ok(())
}

fn read_secret_file(path: &Path, check: bool) -> Result<String, SecretError> {
    if check {
        check_permissions(path)?;
    }
    let text = std::fs::read_to_string(path).map_err(|e| SecretError {
        problem: format!("cannot read {}: {}", path.display(), e.kind()),
        fix: "make it readable by the service user (group encoder-bridge, mode 0640)".into(),
    })?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(SecretError {
            problem: format!("{} is empty", path.display()),
            fix: "write the secret into it".into(),
        });
    }
    Ok(text)
}

/// Loads the token: `cloud.token_file`, then `cloud.token_env`, then the systemd credential.
pub fn load_token(config: &Config) -> Result<(Token, TokenSource), SecretError> {
    if let Some(path) = &config.cloud.token_file {
        let text = read_secret_file(path, true)?;
        return Ok((Token(text), TokenSource::File(path.clone())));
    }
    if let Some(var) = &config.cloud.token_env
        && let Ok(text) = std::env::var(var)
        && !text.trim().is_empty()
    {
        return Ok((Token(text.trim().to_owned()), TokenSource::Env(var.clone())));
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(CREDENTIAL_NAME);
        if path.exists() {
            // systemd makes the credential readable by the service only.
            let text = read_secret_file(&path, false)?;
            return Ok((Token(text), TokenSource::Credential(path)));
        }
    }
    Err(SecretError {
        problem: "no cloud token: cloud.token_file is not set, cloud.token_env is unset or empty, and there is no systemd credential \"token\"".into(),
        fix: "set cloud.token_file = \"/etc/encoder-bridge/token\" (mode 0640) or LoadCredential=token:/etc/encoder-bridge/token".into(),
    })
}

/// Loads the site master keys.
pub fn load_site_keys(config: &Config) -> Result<SiteKeys, SecretError> {
    let mut loaded: Vec<(u8, MasterKey)> = Vec::new();
    for entry in &config.site_keys.keys {
        let text = read_secret_file(&entry.file, true)?;
        let key = MasterKey::from_hex(&text).map_err(|_| SecretError {
            problem: format!(
                "{} (site key version {}) is not 32 hex digits",
                entry.file.display(),
                entry.version
            ),
            fix: "write the 16-byte master key as 32 hex digits: `openssl rand -hex 16 > FILE`"
                .into(),
        })?;
        loaded.push((entry.version, key));
    }
    let current = config
        .site_keys
        .current
        .or_else(|| loaded.iter().map(|(v, _)| *v).max())
        .ok_or_else(|| SecretError {
            problem: "no site key".into(),
            fix: "add [[site_keys.key]] to the configuration".into(),
        })?;
    let position = loaded
        .iter()
        .position(|(v, _)| *v == current)
        .ok_or_else(|| SecretError {
            problem: format!("site_keys.current = {current} has no key"),
            fix: "list that version in [[site_keys.key]]".into(),
        })?;
    let (version, key) = loaded.swap_remove(position);
    let mut keys = SiteKeys::new(version, key);
    for (version, key) in loaded {
        keys = keys.with_key(version, key).map_err(|_| SecretError {
            problem: format!("site key version {version} is listed twice"),
            fix: "give each [[site_keys.key]] its own version".into(),
        })?;
    }
    if let Some(list) = &config.site_keys.published_directory_keys {
        let mut published = Vec::with_capacity(list.len());
        for text in list {
            let key = encoder_protocol::hex::decode(text)
                .and_then(|b| <[u8; 6]>::try_from(b).ok())
                .ok_or_else(|| SecretError {
                    problem: format!(
                        "site_keys.published_directory_keys: {text:?} is not a 6-byte key"
                    ),
                    fix: "write each key as 12 hex digits, e.g. \"D3F7D3F7D3F7\"".into(),
                })?;
            published.push(Crypto1Key::new(key));
        }
        keys = keys.with_published_directory_keys(published);
    }
    Ok(keys)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    fn config(dir: &Path) -> Config {
        Config::parse(&format!(
            "[cloud]\nurl = \"wss://x/\"\ntoken_file = \"{}\"\n[[site_keys.key]]\nversion = 1\nfile = \"{}\"\n[[site_keys.key]]\nversion = 2\nfile = \"{}\"\n",
            dir.join("token").display(),
            dir.join("k1").display(),
            dir.join("k2").display()
        ))
        .expect("config")
    }

    #[test]
    fn world_readable_secrets_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "token", "s3cret\n", 0o644);
        let e = load_token(&config(dir.path())).expect_err("world readable");
        assert!(e.fix.starts_with("chmod o-rwx"), "{e}");
        assert!(!e.to_string().contains("s3cret"));
        write(dir.path(), "token", "s3cret\n", 0o640);
        let (token, source) = load_token(&config(dir.path())).expect("token");
        assert_eq!(token.expose(), "s3cret");
        assert!(!format!("{token:?}").contains("s3cret"));
        assert!(matches!(source, TokenSource::File(_)));
    }

    #[test]
    fn site_keys_with_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "k1",
            "000102030405060708090a0b0c0d0e0f\n",
            0o600,
        );
        write(dir.path(), "k2", "101112131415161718191a1b1c1d1e1f", 0o640);
        let keys = load_site_keys(&config(dir.path())).expect("keys");
        assert_eq!(keys.current_version(), 2);
        assert_eq!(keys.versions(), vec![2, 1]);
        write(dir.path(), "k2", "nothex", 0o640);
        let e = load_site_keys(&config(dir.path())).expect_err("bad key");
        assert!(e.problem.contains("version 2"), "{e}");
        assert!(!e.to_string().contains("nothex"));
    }

    #[test]
    fn published_directory_keys_default_and_configured() {
        use encoder_protocol::keys::PUBLISHED_DIRECTORY_KEYS;
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "k1", "000102030405060708090a0b0c0d0e0f", 0o600);
        write(dir.path(), "k2", "101112131415161718191a1b1c1d1e1f", 0o600);
        let keys = load_site_keys(&config(dir.path())).expect("keys");
        assert_eq!(keys.published_directory_keys(), PUBLISHED_DIRECTORY_KEYS);
        let with = |list: &str| {
            let mut c = config(dir.path());
            c.site_keys.published_directory_keys = Some(
                list.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            );
            load_site_keys(&c)
        };
        let keys = with("D3F7D3F7D3F7").expect("one key");
        assert_eq!(keys.published_directory_keys(), [Crypto1Key::NFC_FORUM]);
        assert!(
            with("")
                .expect("none")
                .published_directory_keys()
                .is_empty()
        );
        let e = with("D3F7").expect_err("short key");
        assert!(e.problem.contains("not a 6-byte key"), "{e}");
    }
}
