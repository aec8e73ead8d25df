//! The passwd and group databases (through NSS), as policy needs them: a
//! user's groups, and a group's members.

use std::ffi::{CStr, CString};
use std::sync::Mutex;

/// A user as the passwd database knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGroups {
    /// Primary group id.
    pub gid: u32,
    /// Names of the primary group and every supplementary group, primary
    /// first; a gid without a name is left out (policy names groups by name).
    pub groups: Vec<String>,
}

/// Calls a `get*_r` function with a growing buffer until it fits.
fn with_buffer<T>(
    start: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<Option<T>, i32>,
) -> std::io::Result<Option<T>> {
    let mut buf = vec![0u8; start];
    loop {
        match f(&mut buf) {
            Ok(v) => return Ok(v),
            Err(libc::ERANGE) if buf.len() < 1 << 24 => {
                let n = buf.len() * 4;
                buf.resize(n, 0);
            }
            Err(rc) => return Err(std::io::Error::from_raw_os_error(rc)),
        }
    }
}

/// Primary gid of `user`; `None` when the passwd database does not know it.
fn primary_gid(user: &CStr) -> std::io::Result<Option<u32>> {
    with_buffer(1024, |buf| {
        // SAFETY: passwd is plain old data; all-zero is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf outlives its use.
        let rc = unsafe {
            libc::getpwnam_r(
                user.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => Ok(None),
            0 => Ok(Some(pwd.pw_gid)),
            // "Not found" may also come back as one of these, depending on the NSS module.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
            rc => Err(rc),
        }
    })
}

/// Name of group `gid`, when it has one.
pub fn group_name(gid: u32) -> std::io::Result<Option<String>> {
    with_buffer(4096, |buf| {
        // SAFETY: group is plain old data; all-zero is a valid value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf outlives its use.
        let rc = unsafe {
            libc::getgrgid_r(
                gid,
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => Ok(None),
            // SAFETY: on success gr_name points to a NUL-terminated string in buf.
            0 => Ok(Some(
                unsafe { CStr::from_ptr(grp.gr_name) }
                    .to_string_lossy()
                    .into_owned(),
            )),
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
            rc => Err(rc),
        }
    })
}

/// The groups of `user` (primary plus supplementary, via `getgrouplist`);
/// `Ok(None)` when the passwd database does not know the user. An error
/// means the databases could not be asked (fail closed: the caller must not
/// guess).
pub fn user_groups(user: &str) -> std::io::Result<Option<UserGroups>> {
    let Ok(cuser) = CString::new(user) else {
        return Ok(None);
    };
    let Some(gid) = primary_gid(&cuser)? else {
        return Ok(None);
    };
    let mut n: libc::c_int = 32;
    let gids = loop {
        let mut list = vec![0 as libc::gid_t; usize::try_from(n).unwrap_or(32)];
        let mut count = n;
        // SAFETY: list has room for `count` gids; getgrouplist updates count.
        let rc = unsafe { libc::getgrouplist(cuser.as_ptr(), gid, list.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            list.truncate(usize::try_from(count).unwrap_or(0));
            break list;
        }
        if count <= n || count > 65_536 {
            return Err(std::io::Error::other("getgrouplist failed"));
        }
        n = count;
    };
    let mut groups = Vec::with_capacity(gids.len());
    // Primary first, then the rest in database order, without repeats.
    for g in std::iter::once(gid).chain(gids.into_iter().filter(|&g| g != gid)) {
        if let Some(name) = group_name(g)? {
            if !groups.contains(&name) {
                groups.push(name);
            }
        }
    }
    Ok(Some(UserGroups { gid, groups }))
}

/// getpwent is not reentrant: one walk at a time in this process.
static PASSWD_WALK: Mutex<()> = Mutex::new(());

/// Members of group `name`: those listed in the group database and those
/// whose primary group it is. Empty when the group does not exist.
pub fn group_members(name: &str) -> std::io::Result<Vec<String>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(Vec::new());
    };
    let found = with_buffer(4096, |buf| {
        // SAFETY: group is plain old data; all-zero is a valid value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf outlives its use.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => Ok(None),
            0 => {
                let mut members = Vec::new();
                let mut p = grp.gr_mem;
                // SAFETY: gr_mem is a NULL-terminated array of C strings in buf.
                unsafe {
                    while !p.is_null() && !(*p).is_null() {
                        members.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
                        p = p.add(1);
                    }
                }
                Ok(Some((grp.gr_gid, members)))
            }
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
            rc => Err(rc),
        }
    })?;
    let Some((gid, mut members)) = found else {
        return Ok(Vec::new());
    };
    let _walk = PASSWD_WALK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: setpwent/getpwent/endpwent are serialized by PASSWD_WALK; each
    // entry is copied out before the next call overwrites it.
    unsafe {
        libc::setpwent();
        loop {
            let p = libc::getpwent();
            if p.is_null() {
                break;
            }
            if (*p).pw_gid == gid {
                let n = CStr::from_ptr((*p).pw_name).to_string_lossy().into_owned();
                if !members.contains(&n) {
                    members.push(n);
                }
            }
        }
        libc::endpwent();
    }
    members.sort();
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_gn(user: &str) -> Vec<String> {
        let out = std::process::Command::new("id")
            .args(["-Gn", user])
            .output()
            .expect("id");
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn groups_agree_with_id_for_every_listed_member() {
        let root = user_groups("root").unwrap().unwrap();
        assert_eq!(root.gid, 0);
        assert_eq!(root.groups[0], "root");
        let mut want = id_gn("root");
        let mut got = root.groups.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        // Users listed as supplementary members somewhere (if the system has any).
        let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
        for line in text.lines().take(100) {
            let members = line.rsplit(':').next().unwrap_or("");
            for m in members.split(',').filter(|m| !m.is_empty()).take(2) {
                if let Some(g) = user_groups(m).unwrap() {
                    let mut want = id_gn(m);
                    let mut got = g.groups.clone();
                    want.sort();
                    got.sort();
                    assert_eq!(got, want, "groups of {m}");
                }
            }
        }
    }

    #[test]
    fn unknown_users_and_groups() {
        assert_eq!(user_groups("no-such-user-twofold").unwrap(), None);
        assert_eq!(user_groups("nul\0user").unwrap(), None);
        assert!(group_members("no-such-group-twofold").unwrap().is_empty());
        assert_eq!(group_name(4_000_000_000).unwrap(), None);
    }

    #[test]
    fn primary_group_members_are_found() {
        // nobody's primary group is nogroup on Debian; it is not listed there.
        let members = group_members("nogroup").unwrap();
        assert!(members.contains(&"nobody".to_owned()), "{members:?}");
        assert!(group_members("root").unwrap().contains(&"root".to_owned()));
    }
}
