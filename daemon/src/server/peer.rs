//! Who is on the other end of a connection, and what they may do.
//!
//! **Invariant:** identity comes from `SO_PEERCRED` only, never from a payload.

use crate::accounts::Directory;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::geteuid;
use std::os::unix::net::UnixStream;
use twofold_config::groups::group_named;

/// The credentials of a connected peer process, as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id at connect time.
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// Reads `SO_PEERCRED` of a connected Unix stream.
pub fn peer_cred(stream: &UnixStream) -> std::io::Result<PeerCred> {
    let cred = getsockopt(stream, PeerCredentials)?;
    Ok(PeerCred {
        pid: cred.pid(),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}

/// The daemon's own effective uid.
pub fn own_euid() -> u32 {
    geteuid().as_raw()
}

/// An account as [`Peer::is_self`] compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose<'a> {
    /// A uid, e.g. of the account a login's user name stands for.
    Uid(u32),
    /// An account name as a request gives it, unresolved.
    Name(&'a str),
}

impl From<u32> for Whose<'_> {
    fn from(uid: u32) -> Self {
        Whose::Uid(uid)
    }
}

impl<'a> From<&'a str> for Whose<'a> {
    fn from(name: &'a str) -> Self {
        Whose::Name(name)
    }
}

impl<'a> From<&'a String> for Whose<'a> {
    fn from(name: &'a String) -> Self {
        Whose::Name(name)
    }
}

/// A connected peer with everything authorization needs, resolved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Kernel-reported credentials.
    pub cred: PeerCred,
    /// The peer's account name, when its uid has a passwd entry.
    pub name: Option<String>,
    /// Whether the peer may make admin requests.
    pub admin: bool,
}

impl Peer {
    /// Resolves the peer's name (through the daemon's cache) and admin
    /// right. A failed lookup leaves the peer without name or admin right
    /// (fail closed).
    pub(crate) fn resolve(cred: PeerCred, admin_group: Option<&str>, dir: &Directory) -> Peer {
        let account = dir.peer(cred.uid).ok().flatten();
        let name = account
            .as_ref()
            .map(|a| a.name.to_string_lossy().into_owned());
        let mut admin = cred.uid == 0 || cred.uid == own_euid();
        if !admin {
            if let (Some(group), Some(acct), Some(name)) = (admin_group, &account, &name) {
                if let Ok(Some(g)) = group_named(group) {
                    admin = acct.gid == g.gid || g.members.contains(name);
                }
            }
        }
        Peer { cred, name, admin }
    }

    /// Whether the peer is root.
    pub fn is_root(&self) -> bool {
        self.cred.uid == 0
    }

    /// Whether `account` is the peer's own. By uid: a login resolves the
    /// name it is given to its account first, so any name of the peer's
    /// own uid is its own and a name of another uid never is. A name is
    /// the peer's own only when it is the name its uid resolved to (an
    /// alias is not: that refuses, it never grants).
    pub fn is_self<'a>(&self, account: impl Into<Whose<'a>>) -> bool {
        match account.into() {
            Whose::Uid(uid) => self.cred.uid == uid,
            Whose::Name(user) => self.name.as_deref() == Some(user),
        }
    }

    /// Who acted, for the audit trail: `name(uid)`, or `uid(N)` without a name.
    pub fn actor(&self) -> String {
        match &self.name {
            Some(n) => format!("{n}({})", self.cred.uid),
            None => format!("uid({})", self.cred.uid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_of_a_socketpair_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let cred = peer_cred(&a).unwrap();
        assert_eq!(cred.pid, std::process::id() as i32);
        assert_eq!(cred.uid, own_euid());
        let peer = Peer::resolve(cred, None, &Directory::default());
        assert!(peer.admin, "the daemon's own uid is an admin");
    }

    #[test]
    fn stranger_is_not_admin_unless_in_the_group() {
        // uid 65534 (nobody) with primary group nogroup.
        let cred = PeerCred {
            pid: 1,
            uid: 65534,
            gid: 65534,
        };
        let plain = Peer::resolve(cred, None, &Directory::default());
        assert!(!plain.admin || own_euid() == 65534);
        assert_eq!(plain.name.as_deref(), Some("nobody"));
        assert!(plain.is_self("nobody") && !plain.is_self("root"));
        assert!(plain.is_self(65534_u32) && !plain.is_self(0_u32));
        let via_primary = Peer::resolve(cred, Some("nogroup"), &Directory::default());
        assert!(via_primary.admin, "primary group membership counts");
        let other = Peer::resolve(cred, Some("root"), &Directory::default());
        assert!(!other.admin || own_euid() == 65534);
    }
}
