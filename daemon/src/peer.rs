//! Who is on the other end of a connection, and what they may do.
//!
//! **Invariant:** identity comes from `SO_PEERCRED` only, never from a payload.

use std::ffi::{CStr, CString};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

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
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes of their sizes; the fd is open.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// A passwd entry: what authorization needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// Primary group id.
    pub gid: u32,
}

/// Looks up `uid` in the passwd database; `None` when it has no entry.
pub fn account_of(uid: u32) -> std::io::Result<Option<Account>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: passwd is plain old data; all-zero is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf outlives its use below.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside buf.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return Ok(Some(Account {
            name: name.to_string_lossy().into_owned(),
            gid: pwd.pw_gid,
        }));
    }
}

/// A group entry: its id and listed members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group id.
    pub gid: u32,
    /// Members listed in the group database (not those with it as primary group).
    pub members: Vec<String>,
}

/// Looks up group `name`; `None` when it does not exist.
pub fn group_named(name: &str) -> std::io::Result<Option<Group>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None);
    };
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: group is plain old data; all-zero is a valid value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf outlives its use below.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 24 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        let mut members = Vec::new();
        let mut p = grp.gr_mem;
        // SAFETY: gr_mem is a NULL-terminated array of C strings inside buf.
        unsafe {
            while !p.is_null() && !(*p).is_null() {
                members.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
                p = p.add(1);
            }
        }
        return Ok(Some(Group {
            gid: grp.gr_gid,
            members,
        }));
    }
}

/// The daemon's own effective uid.
pub fn own_euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
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
    /// Resolves the peer's name and admin right. A failed lookup leaves the
    /// peer without name or admin right (fail closed).
    pub fn resolve(cred: PeerCred, admin_group: Option<&str>) -> Peer {
        let account = account_of(cred.uid).ok().flatten();
        let mut admin = cred.uid == 0 || cred.uid == own_euid();
        if !admin {
            if let (Some(group), Some(acct)) = (admin_group, account.as_ref()) {
                if let Ok(Some(g)) = group_named(group) {
                    admin = acct.gid == g.gid || g.members.contains(&acct.name);
                }
            }
        }
        Peer {
            cred,
            name: account.map(|a| a.name),
            admin,
        }
    }

    /// Whether the peer is root.
    pub fn is_root(&self) -> bool {
        self.cred.uid == 0
    }

    /// Whether `user` is the peer's own account.
    pub fn is_self(&self, user: &str) -> bool {
        self.name.as_deref() == Some(user)
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
        let peer = Peer::resolve(cred, None);
        assert!(peer.admin, "the daemon's own uid is an admin");
    }

    #[test]
    fn root_resolves_and_missing_entries_are_none() {
        assert_eq!(account_of(0).unwrap().unwrap().name, "root");
        assert_eq!(account_of(4_000_000_000).unwrap(), None);
        assert_eq!(group_named("root").unwrap().unwrap().gid, 0);
        assert_eq!(group_named("no-such-group-twofold").unwrap(), None);
        assert_eq!(group_named("nul\0group").unwrap(), None);
    }

    #[test]
    fn stranger_is_not_admin_unless_in_the_group() {
        // uid 65534 (nobody) with primary group nogroup.
        let cred = PeerCred {
            pid: 1,
            uid: 65534,
            gid: 65534,
        };
        let plain = Peer::resolve(cred, None);
        assert!(!plain.admin || own_euid() == 65534);
        assert_eq!(plain.name.as_deref(), Some("nobody"));
        assert!(plain.is_self("nobody") && !plain.is_self("root"));
        let via_primary = Peer::resolve(cred, Some("nogroup"));
        assert!(via_primary.admin, "primary group membership counts");
        let other = Peer::resolve(cred, Some("root"));
        assert!(!other.admin || own_euid() == 65534);
    }
}
