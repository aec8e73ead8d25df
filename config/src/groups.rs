//! The passwd and group databases (through NSS): an account by uid, by
//! name or as the account a name stands for, a user's groups, a group by
//! name and its members. The one place in twofold that calls the `get*_r`
//! functions.

use std::ffi::{CStr, CString, OsString};
use std::os::unix::ffi::OsStringExt;
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

/// A passwd entry: what authorization and the CLI need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name, as the bytes the database holds (callers decide how to
    /// treat a name that is not UTF-8).
    pub name: OsString,
    /// User id: what makes two names one account.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// A group entry: its id and listed members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group id.
    pub gid: u32,
    /// Members listed in the group database (not those with it as primary
    /// group; [`group_members`] adds those).
    pub members: Vec<String>,
}

/// First buffer size and the most `with_buffer` grows to, for passwd entries.
const PASSWD_BUF: (usize, usize) = (1024, 1 << 20);
/// The same for group entries, whose member lists can be long.
const GROUP_BUF: (usize, usize) = (4096, 1 << 24);

/// Calls a `get*_r` function with a growing buffer until it fits: `f` gets
/// the buffer and returns the `get*_r` result code and, on success, what it
/// read. A code that means "not found" for some NSS module is `Ok(None)`;
/// `ERANGE` grows the buffer fourfold up to `max`; other codes are errors.
fn with_buffer<T>(
    (start, max): (usize, usize),
    mut f: impl FnMut(&mut [u8]) -> Result<Option<T>, i32>,
) -> std::io::Result<Option<T>> {
    let mut buf = vec![0u8; start];
    loop {
        match f(&mut buf) {
            Ok(v) => return Ok(v),
            Err(libc::ERANGE) if buf.len() < max => {
                let n = buf.len() * 4;
                buf.resize(n, 0);
            }
            // "Not found" may also come back as one of these, depending on the NSS module.
            Err(libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM) => return Ok(None),
            Err(rc) => return Err(std::io::Error::from_raw_os_error(rc)),
        }
    }
}

/// A passwd lookup by uid or by name, through `lookup` (`getpwuid_r` or
/// `getpwnam_r` with the key bound); `None` when there is no entry.
fn passwd_entry(
    lookup: impl Fn(&mut libc::passwd, &mut [u8], &mut *mut libc::passwd) -> libc::c_int,
) -> std::io::Result<Option<Account>> {
    with_buffer(PASSWD_BUF, |buf| {
        // SAFETY: passwd is plain old data; all-zero is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        match lookup(&mut pwd, buf, &mut result) {
            0 if result.is_null() || pwd.pw_name.is_null() => Ok(None),
            // SAFETY: on success pw_name points to a NUL-terminated string in buf.
            0 => Ok(Some(Account {
                name: OsString::from_vec(
                    unsafe { CStr::from_ptr(pwd.pw_name) }.to_bytes().to_vec(),
                ),
                uid: pwd.pw_uid,
                gid: pwd.pw_gid,
            })),
            rc => Err(rc),
        }
    })
}

/// The passwd entry of `uid`; `None` when the database has none. An error
/// means the database could not be asked.
pub fn account_of(uid: u32) -> std::io::Result<Option<Account>> {
    passwd_entry(|pwd, buf, result| {
        // SAFETY: every pointer is valid for the call; buf outlives its use.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), result) }
    })
}

/// The passwd entry named `user`; `None` when the database has none (or the
/// name cannot be a C string). An error means the database could not be asked.
pub fn account_named(user: &str) -> std::io::Result<Option<Account>> {
    let Ok(cuser) = CString::new(user) else {
        return Ok(None);
    };
    named(&cuser)
}

/// The account `user` stands for, as the passwd entry of its uid: the
/// entry named `user` gives the uid, and the first entry of that uid (what
/// `getpwuid` answers) gives the account's own name. So a second name for
/// a uid, a case variant a case-insensitive directory accepts, or a
/// `DOMAIN\user` / `user@domain` spelling all come back as the one
/// account they log in to. When a source answers the name but not the uid,
/// the entry named `user` is the answer. `None` when no entry is named
/// `user`; an error means the database could not be asked.
pub fn canonical_account(user: &str) -> std::io::Result<Option<Account>> {
    let Some(named) = account_named(user)? else {
        return Ok(None);
    };
    Ok(Some(account_of(named.uid)?.unwrap_or(named)))
}

fn named(user: &CStr) -> std::io::Result<Option<Account>> {
    passwd_entry(|pwd, buf, result| {
        // SAFETY: every pointer is valid for the call; buf outlives its use.
        unsafe {
            libc::getpwnam_r(
                user.as_ptr(),
                pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                result,
            )
        }
    })
}

/// Primary gid of `user`; `None` when the passwd database does not know it.
fn primary_gid(user: &CStr) -> std::io::Result<Option<u32>> {
    Ok(named(user)?.map(|a| a.gid))
}

/// A group lookup by gid or by name, through `lookup` (`getgrgid_r` or
/// `getgrnam_r` with the key bound); `read` copies what the caller needs out
/// of the entry while its strings still live in the buffer. `None` when
/// there is no entry.
fn group_entry<T>(
    lookup: impl Fn(&mut libc::group, &mut [u8], &mut *mut libc::group) -> libc::c_int,
    read: impl Fn(&libc::group) -> T,
) -> std::io::Result<Option<T>> {
    with_buffer(GROUP_BUF, |buf| {
        // SAFETY: group is plain old data; all-zero is a valid value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        match lookup(&mut grp, buf, &mut result) {
            0 if result.is_null() => Ok(None),
            0 => Ok(Some(read(&grp))),
            rc => Err(rc),
        }
    })
}

/// Name of group `gid`, when it has one.
pub fn group_name(gid: u32) -> std::io::Result<Option<String>> {
    group_entry(
        |grp, buf, result| {
            // SAFETY: every pointer is valid for the call; buf outlives its use.
            unsafe { libc::getgrgid_r(gid, grp, buf.as_mut_ptr().cast(), buf.len(), result) }
        },
        // SAFETY: on success gr_name points to a NUL-terminated string in buf.
        |grp| {
            unsafe { CStr::from_ptr(grp.gr_name) }
                .to_string_lossy()
                .into_owned()
        },
    )
}

/// Group `name` with its listed members; `None` when it does not exist (or
/// the name cannot be a C string).
pub fn group_named(name: &str) -> std::io::Result<Option<Group>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None);
    };
    group_entry(
        |grp, buf, result| {
            // SAFETY: every pointer is valid for the call; buf outlives its use.
            unsafe {
                libc::getgrnam_r(
                    cname.as_ptr(),
                    grp,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    result,
                )
            }
        },
        |grp| {
            let mut members = Vec::new();
            let mut p = grp.gr_mem;
            // SAFETY: gr_mem is a NULL-terminated array of C strings in buf.
            unsafe {
                while !p.is_null() && !(*p).is_null() {
                    members.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
                    p = p.add(1);
                }
            }
            Group {
                gid: grp.gr_gid,
                members,
            }
        },
    )
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
    let groups = groups_of_c(&cuser, gid)?;
    Ok(Some(UserGroups { gid, groups }))
}

/// The group names of the account `name` whose primary group is `gid`
/// (primary first, then supplementary, via `getgrouplist`), for a caller
/// that already holds its passwd entry. An error means the databases could
/// not be asked (or `name` cannot be a C string).
pub fn groups_of(name: &str, gid: u32) -> std::io::Result<Vec<String>> {
    let cname = CString::new(name)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in a name"))?;
    groups_of_c(&cname, gid)
}

fn groups_of_c(user: &CStr, gid: u32) -> std::io::Result<Vec<String>> {
    let mut n: libc::c_int = 32;
    let gids = loop {
        let mut list = vec![0 as libc::gid_t; usize::try_from(n).unwrap_or(32)];
        let mut count = n;
        // SAFETY: list has room for `count` gids; getgrouplist updates count.
        let rc = unsafe { libc::getgrouplist(user.as_ptr(), gid, list.as_mut_ptr(), &mut count) };
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
    Ok(groups)
}

/// getpwent is not reentrant: one walk at a time in this process.
static PASSWD_WALK: Mutex<()> = Mutex::new(());

/// Members of group `name`: those listed in the group database and those
/// whose primary group it is. Empty when the group does not exist.
pub fn group_members(name: &str) -> std::io::Result<Vec<String>> {
    let Some(Group { gid, mut members }) = group_named(name)? else {
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
    fn root_resolves_and_missing_entries_are_none() {
        assert_eq!(account_of(0).unwrap().unwrap().name, "root");
        assert_eq!(account_of(4_000_000_000).unwrap(), None);
        assert_eq!(account_named("root").unwrap().unwrap().gid, 0);
        assert_eq!(account_named("root").unwrap().unwrap().uid, 0);
        let root = canonical_account("root").unwrap().unwrap();
        assert_eq!((root.name.to_str(), root.uid), (Some("root"), 0));
        assert_eq!(canonical_account("no-such-user-twofold").unwrap(), None);
        assert_eq!(canonical_account("nul\0user").unwrap(), None);
        assert_eq!(
            groups_of("root", 0).unwrap(),
            user_groups("root").unwrap().unwrap().groups
        );
        assert_eq!(account_named("no-such-user-twofold").unwrap(), None);
        assert_eq!(account_named("nul\0user").unwrap(), None);
        assert_eq!(group_named("root").unwrap().unwrap().gid, 0);
        assert_eq!(group_named("no-such-group-twofold").unwrap(), None);
        assert_eq!(group_named("nul\0group").unwrap(), None);
    }

    #[test]
    fn primary_group_members_are_found() {
        // nobody's primary group is nogroup on Debian; it is not listed there.
        let members = group_members("nogroup").unwrap();
        assert!(members.contains(&"nobody".to_owned()), "{members:?}");
        assert!(group_members("root").unwrap().contains(&"root".to_owned()));
    }
}
