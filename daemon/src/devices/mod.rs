//! Remembered devices: what proves a login comes from a device that passed
//! a second factor before (the SSH key sshd verified, the login session of
//! the asking process), never an IP address.
//!
//! **Invariant:** a proof comes from what the daemon can trust: the key
//! lines only from a root peer (sshd) on a service `[remember]` names for
//! SSH keys; a session only from the kernel (`SO_PEERCRED` pid → `/proc`),
//! never from anything the client sends.

pub mod session;
pub mod sshkey;

use crate::server::peer::Peer;
use twofold_config::Remember;

/// The kind of a remembered SSH key.
pub const SSH_KEY: &str = "ssh_key";
/// The kind of a remembered login session.
pub const SESSION: &str = "session";

/// One thing a login proved that may be (or was) remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// [`SSH_KEY`] or [`SESSION`].
    pub kind: &'static str,
    /// Its stable identity: `ssh-ed25519 SHA256:…` for a key,
    /// `sid=N tty=pts/3 start=T` for a session.
    pub what: String,
    /// How long it is remembered after a second factor.
    pub ttl: u64,
}

/// The proofs a login carries that the policy lets be remembered; `Err`
/// (for the log) when the policy allows remembering but what was sent or
/// read cannot be used (the login is then prompted as usual).
///
/// `ssh_auth_info` is what the module read from `SSH_AUTH_INFO_0`. A
/// session is proven only for a process with a controlling terminal
/// (sudo, su in a terminal; not sshd's authentication, which has none).
pub fn proofs(
    remember: &Remember,
    peer: &Peer,
    ssh_auth_info: Option<&str>,
) -> Result<Vec<Proof>, String> {
    match remember {
        Remember::Off(_) => Ok(Vec::new()),
        Remember::SshKey(ttl) => {
            let Some(info) = ssh_auth_info else {
                // keyboard-interactive alone: no key was verified.
                return Ok(Vec::new());
            };
            if !peer.is_root() {
                // Only sshd (root) puts a verified key there; anyone else
                // could send any public key.
                return Err(format!(
                    "ignoring SSH key lines sent by uid {}: only root (sshd) is trusted with them",
                    peer.cred.uid
                ));
            }
            let keys = sshkey::fingerprints(info)?;
            Ok(keys
                .into_iter()
                .map(|what| Proof {
                    kind: SSH_KEY,
                    what,
                    ttl: ttl.0,
                })
                .collect())
        }
        Remember::Session(ttl) => {
            let s = session::of_pid(peer.cred.pid)
                .map_err(|e| format!("cannot read the session of pid {}: {e}", peer.cred.pid))?;
            Ok(s.map(|s| Proof {
                kind: SESSION,
                what: s.key(),
                ttl: ttl.0,
            })
            .into_iter()
            .collect())
        }
    }
}
