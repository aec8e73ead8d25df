//! The passwd and group databases, asked at most once per user while they
//! do not change.
//!
//! Every login needs the target user's account (which account does the
//! name stand for? which groups?) and every connection its peer's name;
//! through NSS each answer re-reads
//! `/etc/passwd` and `/etc/group` (tens of `openat`/`read` per login). The
//! answers are kept while the files NSS reads are unchanged — a stamp of
//! `/etc/passwd`, `/etc/group` and `/etc/nsswitch.conf` (device, inode, size,
//! mtime and ctime to the nanosecond), taken before each use — and for at
//! most [`MAX_AGE`], which bounds how long a source that is not a file
//! (`systemd`, LDAP) can be out of date. An edit of any of the files empties
//! the cache before the next answer, so no login sees a stale group list.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twofold_config::groups::{self, Account as PasswdEntry};

/// The longest an answer is reused, even when no file changed.
pub const MAX_AGE: Duration = Duration::from_secs(10);
/// Entries kept at most (of each kind); the cache starts over when full.
const MAX_ENTRIES: usize = 4096;

/// The account a login or request is about, as the system knows it.
///
/// Names are not accounts: the name a client sends may be a second passwd
/// name of a uid, a case variant or a `DOMAIN\user` / `user@domain`
/// spelling. Everything twofold keeps about an account (factors, failures,
/// locks, grace, audit) is keyed by [`Account::name`], the one name of its
/// uid, so every alias reaches the same state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    /// The account's name: what the passwd database answers for its uid
    /// (the uid's first entry), or the name as given when the database
    /// knows no entry of that name.
    pub name: String,
    /// Its uid; `None` when the passwd database does not know the name.
    pub uid: Option<u32>,
    /// Primary and supplementary group names of the account (empty when
    /// unknown, or when they were not asked for).
    pub groups: Vec<String>,
}

impl Account {
    /// Whether the passwd database knows the name.
    pub fn known(&self) -> bool {
        self.uid.is_some()
    }
}

/// The account `user` stands for, straight from NSS (see [`Account`]).
fn look_up(user: &str, want_groups: bool) -> std::io::Result<Account> {
    let Some(entry) = groups::canonical_account(user)? else {
        return Ok(Account {
            name: user.to_owned(),
            uid: None,
            groups: Vec::new(),
        });
    };
    let uid = entry.uid;
    // The name keys storage and reaches paths, URIs and logs: a database
    // answer that could not be a client's name is refused, not mangled
    // (fail closed, like any other answer NSS cannot give).
    let invalid = |why: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the account name of uid {uid} {why}"),
        )
    };
    let name = entry
        .name
        .into_string()
        .map_err(|_| invalid("is not UTF-8".into()))?;
    crate::validate::user(&name).map_err(|e| invalid(format!("is refused: {}", e.why)))?;
    let groups = if want_groups {
        groups::groups_of(&name, entry.gid)?
    } else {
        Vec::new()
    };
    Ok(Account {
        name,
        uid: Some(uid),
        groups,
    })
}

/// What a file looked like: changes when it is edited or replaced.
type FileStamp = Option<(u64, u64, u64, i64, i64, i64, i64)>;

fn file_stamp(path: &PathBuf) -> FileStamp {
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

#[derive(Default)]
struct Cache {
    stamp: Vec<FileStamp>,
    since: Option<Instant>,
    /// By user name, with groups (`true`) or without.
    users: HashMap<(String, bool), Account>,
    /// By uid.
    peers: HashMap<u32, Option<PasswdEntry>>,
}

/// The cached databases.
pub(crate) struct Directory {
    files: Vec<PathBuf>,
    cache: Mutex<Cache>,
    /// How many answers came from NSS rather than the cache.
    asked: Arc<AtomicU64>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("files", &self.files)
            .finish()
    }
}

impl Default for Directory {
    fn default() -> Self {
        Directory::watching(["/etc/passwd", "/etc/group", "/etc/nsswitch.conf"])
    }
}

impl Directory {
    /// A cache emptied whenever one of `files` changes.
    pub fn watching<P: Into<PathBuf>>(files: impl IntoIterator<Item = P>) -> Directory {
        Directory {
            files: files.into_iter().map(Into::into).collect(),
            cache: Mutex::default(),
            asked: Arc::default(),
        }
    }

    /// The counter of answers that came from NSS (shared with [`crate::Stats`]).
    pub fn asked(&self) -> Arc<AtomicU64> {
        self.asked.clone()
    }

    /// The cache, emptied first if a watched file changed or it got old.
    fn fresh(&self) -> std::sync::MutexGuard<'_, Cache> {
        let stamp: Vec<FileStamp> = self.files.iter().map(file_stamp).collect();
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let expired = c.since.is_none_or(|t| t.elapsed() > MAX_AGE);
        if expired || c.stamp != stamp {
            *c = Cache {
                stamp,
                since: Some(Instant::now()),
                ..Cache::default()
            };
        }
        c
    }

    /// The account `user` stands for (see [`Account`]); with
    /// `want_groups`, its group names too. An error means NSS could not
    /// answer (fail closed; errors are not cached).
    pub fn account(&self, user: &str, want_groups: bool) -> std::io::Result<Account> {
        self.answer(user, want_groups, true)
    }

    /// Like [`Directory::account`], but an answer NSS gives is not kept:
    /// for names an unprivileged peer chooses, which must not fill (and
    /// so empty) the cache that root's logins are answered from.
    pub fn account_unkept(&self, user: &str, want_groups: bool) -> std::io::Result<Account> {
        self.answer(user, want_groups, false)
    }

    fn answer(&self, user: &str, want_groups: bool, keep: bool) -> std::io::Result<Account> {
        let key = (user.to_owned(), want_groups);
        let stamp = {
            let c = self.fresh();
            if let Some(a) = c.users.get(&key) {
                return Ok(a.clone());
            }
            c.stamp.clone()
        };
        // Asked without holding the cache: NSS may be slow.
        self.asked.fetch_add(1, Ordering::Relaxed);
        let account = look_up(user, want_groups)?;
        if keep {
            self.keep(&stamp, |c| {
                if c.users.len() >= MAX_ENTRIES {
                    c.users.clear();
                }
                c.users.insert(key, account.clone());
            });
        }
        Ok(account)
    }

    /// The passwd entry of `uid` (a peer); `None` when there is none.
    pub fn peer(&self, uid: u32) -> std::io::Result<Option<PasswdEntry>> {
        let stamp = {
            let c = self.fresh();
            if let Some(a) = c.peers.get(&uid) {
                return Ok(a.clone());
            }
            c.stamp.clone()
        };
        self.asked.fetch_add(1, Ordering::Relaxed);
        let entry = groups::account_of(uid)?;
        self.keep(&stamp, |c| {
            if c.peers.len() >= MAX_ENTRIES {
                c.peers.clear();
            }
            c.peers.insert(uid, entry.clone());
        });
        Ok(entry)
    }

    /// Stores an answer read after `stamp` was taken, unless a file changed
    /// since (the answer may predate the edit: then it is not kept).
    fn keep(&self, stamp: &[FileStamp], put: impl FnOnce(&mut Cache)) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now: Vec<FileStamp> = self.files.iter().map(file_stamp).collect();
        if c.stamp == stamp && now == stamp {
            put(&mut c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_reused_until_a_watched_file_changes() {
        let file = std::env::temp_dir().join(format!("tf-accounts-{}", std::process::id()));
        std::fs::write(&file, "a").unwrap();
        let dir = Directory::watching([&file]);
        let asked = || dir.asked.load(Ordering::Relaxed);
        let root = dir.account("root", true).unwrap();
        assert!(root.known() && root.groups[0] == "root", "{root:?}");
        assert_eq!((root.name.as_str(), root.uid), ("root", Some(0)));
        assert_eq!(dir.account("root", true).unwrap(), root);
        assert_eq!(dir.peer(0).unwrap().unwrap().name, "root");
        assert_eq!(dir.peer(0).unwrap().unwrap().name, "root");
        assert_eq!(asked(), 2, "second answers come from the cache");
        // Same size, new content: the mtime/ctime stamp still tells.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, "b").unwrap();
        assert_eq!(dir.account("root", true).unwrap(), root);
        assert_eq!(asked(), 3, "an edit empties the cache");
        std::fs::remove_file(&file).unwrap();
        assert_eq!(dir.account("root", true).unwrap(), root);
        assert_eq!(asked(), 4, "so does removing the file");
    }

    #[test]
    fn groups_are_read_only_when_asked_for() {
        let dir = Directory::watching(Vec::<PathBuf>::new());
        let plain = dir.account("root", false).unwrap();
        assert_eq!(
            plain,
            Account {
                name: "root".into(),
                uid: Some(0),
                groups: Vec::new()
            }
        );
        let unknown = dir.account("no-such-user-twofold", true).unwrap();
        assert_eq!(
            unknown,
            Account {
                name: "no-such-user-twofold".into(),
                uid: None,
                groups: Vec::new()
            },
            "an unknown name stays as given"
        );
        assert!(!dir.account("no-such-user-twofold", false).unwrap().known());
        assert!(!dir.account("nul\0user", false).unwrap().known());
    }

    #[test]
    fn unkept_answers_are_not_cached() {
        let dir = Directory::watching(Vec::<PathBuf>::new());
        let asked = || dir.asked.load(Ordering::Relaxed);
        for _ in 0..2 {
            assert!(dir.account_unkept("tf-unkept-user", false).is_ok());
        }
        assert_eq!(asked(), 2, "each unkept answer came from NSS");
        dir.account("root", false).unwrap();
        assert_eq!(dir.account_unkept("root", false).unwrap().uid, Some(0));
        assert_eq!(asked(), 3, "a kept answer serves unkept questions too");
    }
}
