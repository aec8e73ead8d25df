//! The master key file and the keys derived from it.
//!
//! The master key never leaves this module: it is read (or created), checked
//! for safe permissions, and turned into one key per purpose with HMAC-SHA256,
//! so the TOTP encryption key and the backup-code index key are independent.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use twofold_proto::Method;
use zeroize::{Zeroize, Zeroizing};

/// Length of every key, in bytes.
pub const KEY_LEN: usize = 32;
/// Length of an XChaCha20-Poly1305 nonce, in bytes.
pub const NONCE_LEN: usize = 24;

/// Fixed label at the start of a TOTP secret's associated data (kept as it
/// was before factors shared one table, so stored secrets still open);
/// other methods' secrets start with `twofold/<method>-secret/v1`.
const TOTP_AD_LABEL: &[u8] = b"twofold/totp-secret/v1";

/// Why the master key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file or its directory could not be read or created.
    #[error("master key {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Group or others may read or write the file.
    #[error(
        "master key {path} has mode {mode:04o}: it must not be readable or writable by group or others (chmod 600 {path})"
    )]
    Permissions {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file belongs to someone other than the daemon's user, who could
    /// replace it.
    #[error(
        "master key {path} is owned by uid {owner}, not by the uid twofoldd runs as ({euid}): chown it, or run twofoldd as its owner"
    )]
    Owner {
        /// The key file.
        path: String,
        /// Its owner.
        owner: u32,
        /// The daemon's effective uid.
        euid: u32,
    },
    /// The file holds neither 64 hex characters nor 32 raw bytes.
    #[error("master key {path}: expected 64 hex characters (optionally followed by a newline) or 32 raw bytes, found {len} bytes")]
    Format {
        /// The key file.
        path: String,
        /// How many bytes it holds.
        len: usize,
    },
    /// The system random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// A secret could not be encrypted (only possible for absurd lengths).
    #[error("TOTP secret cannot be encrypted")]
    Encrypt,
}

/// A secret could not be encrypted or decrypted (wrong key, tampered or moved row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a stored secret cannot be decrypted: wrong master key, or the row was altered or moved")]
pub struct SealError;

/// Keys derived from the master key; wiped on drop.
pub struct Keys {
    totp: [u8; KEY_LEN],
    index: [u8; KEY_LEN],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.totp.zeroize();
        self.index.zeroize();
    }
}

impl Keys {
    /// Reads the master key at `path`, creating it (0600, directory 0700) when
    /// absent, and derives the working keys.
    pub fn load_or_create(path: &Path) -> Result<Keys, KeyError> {
        let master = read_or_create_master(path)?;
        Ok(Keys::derive(&master))
    }

    /// Derives the working keys from a master key.
    pub fn derive(master: &[u8; KEY_LEN]) -> Keys {
        Keys {
            totp: hmac256(master, &[b"twofold/key/totp-encryption/v1"]),
            index: hmac256(master, &[b"twofold/key/backup-index/v1"]),
        }
    }

    /// Encrypts a factor's secret bound to its method, user and credential
    /// row; returns the ciphertext and the fresh random nonce.
    pub fn seal(
        &self,
        method: &Method,
        user: &str,
        credential: i64,
        secret: &[u8],
    ) -> Result<(Vec<u8>, [u8; NONCE_LEN]), KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let aad = secret_aad(method, user, credential);
        let cipher = XChaCha20Poly1305::new(&self.totp.into());
        let ct = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Encrypt)?;
        Ok((ct, nonce))
    }

    /// Decrypts a factor's secret; fails unless method, user and credential
    /// row are the ones it was sealed for.
    pub fn open(
        &self,
        method: &Method,
        user: &str,
        credential: i64,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError)?;
        let aad = secret_aad(method, user, credential);
        let cipher = XChaCha20Poly1305::new(&self.totp.into());
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError)
    }

    /// Keyed lookup of a normalized single-use code, so a login finds the
    /// one row to verify instead of trying every hash. (Backup codes keep
    /// the input they had before other methods' codes shared the table.)
    pub fn code_lookup(&self, method: &Method, user: &str, normalized: &str) -> [u8; 32] {
        if *method == Method::BACKUP_CODE {
            return hmac256(
                &self.index,
                &[user.as_bytes(), b"\0", normalized.as_bytes()],
            );
        }
        hmac256(
            &self.index,
            &[
                method.as_str().as_bytes(),
                b"\0",
                user.as_bytes(),
                b"\0",
                normalized.as_bytes(),
            ],
        )
    }
}

fn secret_aad(method: &Method, user: &str, credential: i64) -> Vec<u8> {
    // NUL separates the parts: user names never contain it, so no two
    // (user, credential) pairs give the same bytes.
    let mut aad = Vec::with_capacity(TOTP_AD_LABEL.len() + user.len() + 24);
    if *method == Method::TOTP {
        aad.extend_from_slice(TOTP_AD_LABEL);
    } else {
        aad.extend_from_slice(b"twofold/");
        aad.extend_from_slice(method.as_str().as_bytes());
        aad.extend_from_slice(b"-secret/v1");
    }
    aad.push(0);
    aad.extend_from_slice(user.as_bytes());
    aad.push(0);
    aad.extend_from_slice(credential.to_string().as_bytes());
    aad
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Fills `buf` from the operating system's random number generator.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(|e| KeyError::Random(e.to_string()))
}

fn read_or_create_master(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    match File::open(path) {
        Ok(file) => read_master(path, file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_master(path).map_err(io),
        Err(e) => Err(io(e)),
    }
}

fn read_master(path: &Path, mut file: File) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let shown = path.display().to_string();
    // fstat on the opened file, so the mode checked is the mode of what is read.
    let meta = file.metadata().map_err(|source| KeyError::Io {
        path: shown.clone(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: shown, mode });
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(KeyError::Owner {
            path: shown,
            owner: meta.uid(),
            euid,
        });
    }
    let mut raw = Zeroizing::new(Vec::with_capacity(80));
    // Read at most one byte past the longest valid form, so a huge file is not slurped.
    (&mut file)
        .take(66)
        .read_to_end(&mut raw)
        .map_err(|source| KeyError::Io {
            path: shown.clone(),
            source,
        })?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let text: &[u8] = raw.strip_suffix(b"\n").unwrap_or(&raw);
    if text.len() == 2 * KEY_LEN && text.iter().all(u8::is_ascii_hexdigit) {
        for (i, pair) in text.chunks(2).enumerate() {
            key[i] = (hex_val(pair[0]) << 4) | hex_val(pair[1]);
        }
    } else if raw.len() == KEY_LEN {
        key.copy_from_slice(&raw);
    } else {
        return Err(KeyError::Format {
            path: shown,
            len: raw.len(),
        });
    }
    Ok(key)
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        // Callers check is_ascii_hexdigit first.
        _ => 0,
    }
}

fn create_master(path: &Path) -> std::io::Result<Zeroizing<[u8; KEY_LEN]>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(&mut key[..]).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut text = Zeroizing::new(String::with_capacity(2 * KEY_LEN + 1));
    // No format!: its temporaries would leave key fragments in freed memory.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in key.iter() {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    text.push('\n');
    // create_new: never truncate a key another process just wrote.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tf-keys-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn created_key_is_0600_in_a_0700_dir_and_reloads() {
        let dir = tmp("create");
        let path = dir.join("etc/master.key");
        let k1 = Keys::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        let k2 = Keys::load_or_create(&path).unwrap();
        assert_eq!(
            k1.code_lookup(&Method::BACKUP_CODE, "a", "b"),
            k2.code_lookup(&Method::BACKUP_CODE, "a", "b")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn group_readable_key_is_refused_naming_file_and_mode() {
        let dir = tmp("mode");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        std::fs::write(&path, "00".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keys::load_or_create(&path).unwrap_err();
        let shown = err.to_string();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o644, .. }),
            "{shown}"
        );
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(shown.contains("0644"), "{shown}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn raw_and_hex_forms_give_the_same_key_and_junk_is_refused() {
        let dir = tmp("forms");
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        };
        let raw = write("raw", &[0xabu8; 32]);
        let hex = write("hex", "AB".repeat(32).as_bytes());
        let hexnl = write("hexnl", format!("{}\n", "ab".repeat(32)).as_bytes());
        let a = Keys::load_or_create(&raw)
            .unwrap()
            .code_lookup(&Method::BACKUP_CODE, "u", "c");
        let b = Keys::load_or_create(&hex)
            .unwrap()
            .code_lookup(&Method::BACKUP_CODE, "u", "c");
        let c = Keys::load_or_create(&hexnl)
            .unwrap()
            .code_lookup(&Method::BACKUP_CODE, "u", "c");
        assert_eq!(a, b);
        assert_eq!(b, c);
        let junk = write("junk", b"not a key\n");
        assert!(matches!(
            Keys::load_or_create(&junk),
            Err(KeyError::Format { len: 10, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sealed_secret_opens_only_for_its_user_and_row() {
        let keys = Keys::derive(&[7u8; 32]);
        let (ct, nonce) = keys
            .seal(&Method::TOTP, "alice", 42, b"secret-bytes")
            .unwrap();
        assert_eq!(
            &keys.open(&Method::TOTP, "alice", 42, &nonce, &ct).unwrap()[..],
            b"secret-bytes"
        );
        assert_eq!(
            keys.open(&Method::TOTP, "bob", 42, &nonce, &ct),
            Err(SealError)
        );
        assert_eq!(
            keys.open(&Method::TOTP, "alice", 43, &nonce, &ct),
            Err(SealError)
        );
        let other = Keys::derive(&[8u8; 32]);
        assert_eq!(
            other.open(&Method::TOTP, "alice", 42, &nonce, &ct),
            Err(SealError)
        );
    }
}
