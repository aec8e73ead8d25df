//! argon2id for backup codes, with bounded memory.
//!
//! argon2 is memory-hard on purpose: each run fills `m` KiB. Run on every
//! connection's thread, 64 concurrent backup-code logins once took over a
//! GiB, which glibc then kept. Here at most [`permits`] runs happen at once
//! (they are CPU-bound, so more would not finish sooner); the others queue.
//! Each permit owns one memory area, allocated once and reused, wiped after
//! every run; an area grown for an older, larger hash is given back after
//! that run. New hashes use OWASP's m = 7 MiB, t = 5, p = 1 (as strong as
//! m = 19 MiB, t = 2); a stored PHC string keeps verifying with its own
//! parameters.

use argon2::password_hash::phc::{Ident, Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version, ARGON2ID_IDENT};
use std::sync::{Condvar, Mutex, OnceLock};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Memory of new hashes, in KiB (OWASP: 7 MiB with t = 5).
pub const M_COST: u32 = 7 * 1024;
/// Passes of new hashes.
pub const T_COST: u32 = 5;
/// Lanes of new hashes.
pub const P_COST: u32 = 1;
/// Hash length in bytes.
const OUT_LEN: usize = 32;
/// The shortest hash a stored string may hold (PHC allows 10 bytes).
const MIN_STORED_OUT_LEN: usize = 16;
/// The parameters of a stored string, all of them, in this order.
const PARAM_NAMES: [Ident; 3] = [
    Ident::new_unwrap("m"),
    Ident::new_unwrap("t"),
    Ident::new_unwrap("p"),
];
/// The largest `m` (KiB) a stored hash may ask for; above it, verification
/// fails (a hash twofold never writes, and a way to exhaust memory).
pub const MAX_M_COST: u32 = 64 * 1024;
/// The most passes and lanes a stored hash may ask for (CPU bound).
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 8;
/// At most this many concurrent runs, whatever the core count.
const MAX_PERMITS: usize = 4;

/// Why a hash could not be made.
#[derive(Debug, thiserror::Error)]
#[error("argon2: {0}")]
pub struct KdfError(String);

/// Concurrent runs allowed on this machine: see [`permits_for`].
pub fn permits() -> usize {
    permits_for(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    )
}

/// Concurrent runs allowed with `cores` cores: one on one or two cores,
/// else one per core, at most [`MAX_PERMITS`]. Each permit keeps
/// [`M_COST`] KiB resident; on two cores a second permit would put the
/// daemon over its 20 MiB budget (BENCHMARKS.md, target 5) for at most
/// twice the backup-code throughput, and it would take the core the TOTP
/// logins and the login processes themselves run on.
pub fn permits_for(cores: usize) -> usize {
    if cores <= 2 {
        1
    } else {
        cores.min(MAX_PERMITS)
    }
}

/// The permits and their memory areas.
struct Pool {
    free: Mutex<Vec<Vec<Block>>>,
    returned: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        free: Mutex::new((0..permits()).map(|_| Vec::new()).collect()),
        returned: Condvar::new(),
    })
}

/// Runs argon2id with `params` on a permit's memory, waiting for a permit.
fn run(params: Params, pwd: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), KdfError> {
    let pool = pool();
    let mut area = {
        let mut free = pool.free.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(a) = free.pop() {
                break a;
            }
            free = pool.returned.wait(free).unwrap_or_else(|e| e.into_inner());
        }
    };
    let need = params.block_count();
    if area.len() < need {
        area.resize(need, Block::default());
    }
    let result = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(pwd, salt, out, &mut area[..need])
        .map_err(|e| KdfError(e.to_string()));
    // The blocks hold values derived from the code: wiped before reuse.
    area[..need].iter_mut().for_each(Zeroize::zeroize);
    if area.len() > default_blocks() {
        // Grown for an older, larger hash: give that memory back.
        area = Vec::new();
    }
    pool.free
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(area);
    pool.returned.notify_one();
    result
}

fn default_blocks() -> usize {
    new_params().map(|p| p.block_count()).unwrap_or(0)
}

fn new_params() -> Result<Params, KdfError> {
    Params::new(M_COST, T_COST, P_COST, Some(OUT_LEN)).map_err(|e| KdfError(e.to_string()))
}

/// The argon2id PHC string of `pwd` with a fresh `salt` (16 bytes) and the
/// parameters of new hashes.
pub fn hash(pwd: &[u8], salt: &[u8; 16]) -> Result<String, KdfError> {
    let params = new_params()?;
    let mut out = Zeroizing::new([0u8; OUT_LEN]);
    run(params.clone(), pwd, salt, &mut out[..])?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| KdfError(e.to_string()))?,
        salt: Some(Salt::new(salt).map_err(|e| KdfError(e.to_string()))?),
        hash: Some(Output::new(&out[..]).map_err(|e| KdfError(e.to_string()))?),
    };
    Ok(phc.to_string())
}

/// Parses `phc` with the argon2 crate's own PHC parser, then accepts only
/// the form twofold writes: argon2id, version 19, exactly `m`, `t`, `p` in
/// that order (no `keyid` or `data`) within the limits above, a salt and a
/// hash of at least [`MIN_STORED_OUT_LEN`] bytes. Anything else is `None`.
fn parse(phc: &str) -> Option<(Params, Salt, Output)> {
    let phc = PasswordHash::new(phc).ok()?;
    if phc.algorithm != ARGON2ID_IDENT
        || phc.version != Some(Version::V0x13.into())
        || !phc.params.iter().map(|(name, _)| name).eq(PARAM_NAMES)
    {
        return None;
    }
    // Decimal values (no sign, no leading zero), argon2's own ranges, and
    // the output length of the stored hash.
    let params = Params::try_from(&phc).ok()?;
    if params.m_cost() > MAX_M_COST || params.t_cost() > MAX_T_COST || params.p_cost() > MAX_P_COST
    {
        return None;
    }
    let (Some(salt), Some(hash)) = (phc.salt, phc.hash) else {
        return None;
    };
    (hash.len() >= MIN_STORED_OUT_LEN).then_some((params, salt, hash))
}

/// Whether `pwd` matches `phc` (one argon2 run with the string's own
/// parameters; compared in constant time). A string that does not parse,
/// or asks for more than the limits, never matches.
pub fn verify(pwd: &[u8], phc: &str) -> bool {
    let Some((params, salt, expected)) = parse(phc) else {
        return false;
    };
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    if run(params, pwd, &salt, &mut out).is_err() {
        return false;
    }
    bool::from(out.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn new_hashes_use_owasp_parameters_and_verify_elsewhere() {
        let phc = hash(b"abcde23456", &[7u8; 16]).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{phc}");
        assert!(verify(b"abcde23456", &phc));
        assert!(!verify(b"abcde23457", &phc));
        // The argon2 crate's own verifier agrees (same string format).
        assert!(Argon2::default()
            .verify_password(b"abcde23456", phc.as_str())
            .is_ok());
    }

    #[test]
    fn hashes_made_with_the_old_default_parameters_still_verify() {
        // m=19456, t=2, p=1: what twofoldd wrote before.
        let old = Argon2::default()
            .hash_password_with_salt(b"abcde23456", &[9u8; 16])
            .unwrap()
            .to_string();
        assert!(old.contains("m=19456,t=2,p=1"), "{old}");
        assert!(verify(b"abcde23456", &old));
        assert!(!verify(b"abcde23457", &old));
        // A larger area was needed: it went back, the pool keeps its size.
        let free = pool().free.lock().unwrap();
        assert!(free.iter().all(|a| a.len() <= default_blocks()));
    }

    #[test]
    fn malformed_or_oversized_phc_strings_never_match() {
        let good = hash(b"abcde23456", &[1u8; 16]).unwrap();
        let salt_hash = good.rsplitn(3, '$').take(2).collect::<Vec<_>>();
        let tail = format!("{}${}", salt_hash[1], salt_hash[0]);
        for bad in [
            String::new(),
            "not a phc string".into(),
            format!("$argon2i$v=19$m=7168,t=5,p=1${tail}"),
            format!("$argon2id$v=16$m=7168,t=5,p=1${tail}"),
            format!("$argon2id$m=7168,t=5,p=1${tail}"),
            format!("$argon2id$v=19$t=5,m=7168,p=1${tail}"),
            format!("$argon2id$v=19$m=07168,t=5,p=1${tail}"),
            format!("$argon2id$v=19$m=+7168,t=5,p=1${tail}"),
            format!("$argon2id$v=19$m=7168,t=5,p=1,keyid=AAAA${tail}"),
            format!("$argon2id$v=19$m=7168,t=5,p=1,data=AAAA${tail}"),
            // argon2 would default the missing p to 1: not a form we write.
            format!("$argon2id$v=19$m=7168,t=5${tail}"),
            format!("$argon2id$v=19$m=7168,t=5,p=1,p=1${tail}"),
            format!("$argon2id$v=19$m=4194304,t=5,p=1${tail}"),
            format!("$argon2id$v=19$m=7168,t=1000,p=1${tail}"),
            format!("$argon2id$v=19$m=7168,t=5,p=1${tail}$"),
            format!("$argon2id$v=19$m=7168,t=5,p=1${}$", salt_hash[1]),
            format!("$argon2id$v=19$m=7168,t=5,p=1$!!!${}", salt_hash[0]),
        ] {
            assert!(!verify(b"abcde23456", &bad), "{bad:?}");
        }
        assert!(verify(b"abcde23456", &good));
    }

    #[test]
    fn one_permit_on_two_cores_keeps_argon2_memory_under_the_budget() {
        // Target 5: ~12 MiB of daemon under load + permits × 7 MiB < 20 MiB.
        assert_eq!(permits_for(1), 1);
        assert_eq!(permits_for(2), 1);
        assert_eq!(permits_for(3), 3);
        assert_eq!(permits_for(4), 4);
        assert_eq!(permits_for(64), MAX_PERMITS);
        assert!(permits() >= 1 && permits() <= MAX_PERMITS);
    }

    #[test]
    fn concurrent_runs_wait_for_a_permit_and_all_finish() {
        let phc = hash(b"abcde23456", &[3u8; 16]).unwrap();
        let n = permits() * 3;
        let ok = std::thread::scope(|s| {
            let hs: Vec<_> = (0..n)
                .map(|_| s.spawn(|| verify(b"abcde23456", &phc)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&b| b)
                .count()
        });
        assert_eq!(ok, n);
        // Every permit comes back. Other tests of this process (`cargo
        // test` runs them in threads) may hold one for a moment, so wait
        // for them; the lock is released before asserting, so a failure
        // here cannot poison the pool for the other tests.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let free = loop {
            let free = pool().free.lock().unwrap_or_else(|e| e.into_inner()).len();
            if free == permits() || std::time::Instant::now() > deadline {
                break free;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(free, permits());
    }
}
