//! The master key seals the secrets the service must read back (the token signing key) before
//! they are stored, so a copy of the database alone (a backup, a replica, a dump) yields no key
//! that can sign tokens. It comes from `ROSTER_MASTER_KEY`, or from a key file under the data
//! directory that is created on first start. Every instance on one database needs the same key.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

/// The prefix of a sealed value: version 1 is ChaCha20-Poly1305 with a random 96-bit nonce.
const SEALED_PREFIX: &str = "sealed:v1:";

/// The file the key is kept in when `ROSTER_MASTER_KEY` is not set.
pub const KEY_FILE: &str = "master.key";

pub struct MasterKey {
    cipher: ChaCha20Poly1305,
    /// Where the key came from, for error messages.
    source: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("source", &self.source).finish_non_exhaustive()
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
}

impl MasterKey {
    pub fn from_bytes(key: [u8; 32], source: impl Into<String>) -> Self {
        Self { cipher: ChaCha20Poly1305::new(&Key::from(key)), source: source.into() }
    }

    /// The configured key (32 bytes, base64), or the key file in `data_dir`, created with a
    /// fresh random key (mode 0600) when missing.
    pub fn resolve(configured: Option<&SecretString>, data_dir: &Path) -> Result<Self, String> {
        if let Some(text) = configured {
            let key = decode_key(text.expose_secret()).ok_or(
                "ROSTER_MASTER_KEY must be 32 random bytes in base64 (for example the output of `openssl rand -base64 32`)",
            )?;
            return Ok(Self::from_bytes(key, "ROSTER_MASTER_KEY"));
        }
        let path: PathBuf = data_dir.join(KEY_FILE);
        let source = format!("the key file {}", path.display());
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = decode_key(&text).ok_or_else(|| {
                    format!("{source} does not hold 32 bytes in base64; restore it or set ROSTER_MASTER_KEY")
                })?;
                Ok(Self::from_bytes(key, source))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_key_file(&path, &STANDARD.encode(key))?;
                log::info!(
                    "generated a master key in {} (set ROSTER_MASTER_KEY to the same value on every instance that shares this database)",
                    path.display()
                );
                Ok(Self::from_bytes(key, source))
            }
            Err(e) => Err(format!("cannot read {source}: {e}")),
        }
    }

    /// Seals `plain`, bound to `context` (a value that must match when opening, such as the
    /// key id), as text for a database column.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<String, String> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad: context.as_bytes() })
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Whether a stored value is sealed (older databases stored the signing key in clear).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }

    /// Opens a value sealed with this key and the same `context`.
    pub fn open(&self, stored: &str, context: &str) -> Result<Vec<u8>, String> {
        let wrong = || {
            format!(
                "a secret in the database cannot be opened with the master key from {}: every instance on one database needs the same master key (ROSTER_MASTER_KEY)",
                self.source
            )
        };
        let body = stored.strip_prefix(SEALED_PREFIX).ok_or_else(wrong)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| wrong())?;
        if bytes.len() < 12 {
            return Err(wrong());
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| wrong())?;
        self.cipher.decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad: context.as_bytes() }).map_err(|_| wrong())
    }
}

fn write_key_file(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| format!("cannot create the key file {}: {e}", path.display()))?;
    file.write_all(format!("{text}\n").as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_context() {
        let key = MasterKey::from_bytes([7u8; 32], "test");
        let sealed = key.seal(b"secret seed", "kid-1").unwrap();
        assert!(MasterKey::is_sealed(&sealed));
        assert!(!sealed.contains("secret"));
        assert_eq!(key.open(&sealed, "kid-1").unwrap(), b"secret seed");
        assert!(key.open(&sealed, "kid-2").is_err(), "bound to its context");
        let other = MasterKey::from_bytes([8u8; 32], "other");
        assert!(other.open(&sealed, "kid-1").unwrap_err().contains("same master key"));
        assert_ne!(key.seal(b"secret seed", "kid-1").unwrap(), sealed, "a fresh nonce each time");
    }

    #[test]
    fn a_key_file_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::resolve(None, dir.path()).unwrap();
        let sealed = first.seal(b"x", "c").unwrap();
        let again = MasterKey::resolve(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed, "c").unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_keys_must_be_32_bytes_of_base64() {
        let dir = std::path::Path::new("/nonexistent");
        let good = SecretString::from(STANDARD.encode([1u8; 32]));
        assert!(MasterKey::resolve(Some(&good), dir).is_ok());
        let short = SecretString::from(STANDARD.encode([1u8; 16]));
        assert!(MasterKey::resolve(Some(&short), dir).unwrap_err().contains("32 random bytes"));
        let text = SecretString::from("correct horse battery staple".to_string());
        assert!(MasterKey::resolve(Some(&text), dir).is_err());
    }
}
