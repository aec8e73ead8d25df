//! How much an unprivileged peer may make the daemon write. Every login
//! conversation and every code check a non-root peer asks for writes at
//! least one audit row (and a wrong code, a failure row), so each spends a
//! token of its uid's bucket: a burst, refilled at a steady rate on the
//! daemon's clock. An empty bucket refuses the request before anything is
//! written, so one local user cannot fill the disk with audit rows. Root's
//! peers (sshd, sudo, su, login) are not limited here; their logins are
//! bounded by the rate limits on failures.

use std::collections::HashMap;
use std::sync::Mutex;

/// Requests a uid may make at once after a quiet spell.
pub const BURST: u32 = 20;
/// One more request per this many seconds.
pub const REFILL_SECS: u64 = 6;
/// Buckets kept at most; full ones are forgotten first.
const MAX_UIDS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    /// When `tokens` was last brought up to date.
    at: u64,
    /// Whether the refusal since it ran dry was logged already.
    told: bool,
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Seconds until the next request is allowed.
    pub retry_in: u64,
    /// Whether this is the first refusal since the bucket ran dry (log it;
    /// the rest are counted silently, so a flood cannot fill the log).
    pub first: bool,
}

/// The buckets of every unprivileged uid seen lately.
#[derive(Debug, Default)]
pub struct WriteBudget {
    buckets: Mutex<HashMap<u32, Bucket>>,
}

impl WriteBudget {
    /// Spends one token of `uid` at `now`, or says when to retry.
    pub fn take(&self, uid: u32, now: u64) -> Result<(), Refused> {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_UIDS && !map.contains_key(&uid) {
            map.retain(|_, b| refill(*b, now).tokens < BURST);
            if map.len() >= MAX_UIDS {
                map.clear();
            }
        }
        let b = map.entry(uid).or_insert(Bucket {
            tokens: BURST,
            at: now,
            told: false,
        });
        *b = refill(*b, now);
        if b.tokens > 0 {
            b.tokens -= 1;
            b.told = false;
            return Ok(());
        }
        let first = !b.told;
        b.told = true;
        Err(Refused {
            retry_in: REFILL_SECS.saturating_sub(now.saturating_sub(b.at)).max(1),
            first,
        })
    }
}

/// `b` with the tokens earned since it was last brought up to date.
fn refill(mut b: Bucket, now: u64) -> Bucket {
    let earned = now.saturating_sub(b.at) / REFILL_SECS;
    if earned > 0 {
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        b.tokens = b.tokens.saturating_add(earned).min(BURST);
        b.at = b.at.saturating_add(u64::from(earned) * REFILL_SECS);
    }
    if b.tokens == BURST {
        b.at = now;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_refill_and_a_single_logged_refusal() {
        let b = WriteBudget::default();
        for _ in 0..BURST {
            assert_eq!(b.take(1000, 100), Ok(()));
        }
        let r = b.take(1000, 100).unwrap_err();
        assert!(r.first && r.retry_in == REFILL_SECS, "{r:?}");
        assert!(!b.take(1000, 101).unwrap_err().first, "logged once");
        assert_eq!(b.take(1000, 100 + REFILL_SECS), Ok(()));
        assert!(b.take(1000, 100 + REFILL_SECS).is_err());
        // Other uids have their own bucket.
        assert_eq!(b.take(1001, 100), Ok(()));
        // A quiet spell fills the bucket again, no further.
        let later = 100 + REFILL_SECS * u64::from(BURST) * 10;
        for _ in 0..BURST {
            assert_eq!(b.take(1000, later), Ok(()));
        }
        assert!(b.take(1000, later).is_err());
    }

    #[test]
    fn many_uids_do_not_grow_the_table_without_bound() {
        let b = WriteBudget::default();
        for uid in 0..(MAX_UIDS as u32 * 3) {
            let _ = b.take(uid, 5);
        }
        assert!(b.buckets.lock().unwrap().len() <= MAX_UIDS);
    }
}
