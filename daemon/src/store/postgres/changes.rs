//! Changes to an account on PostgreSQL: pending and confirmed
//! credentials, replaced and issued codes, removals — each with its audit
//! rows in the transaction that makes it.

use super::audit::append;
use super::login::spend;
use super::{to_db, Ctx, Tx};
use crate::audit::AuditEvent;
use crate::store::{Change, Claim, NewCode, NewCredential, Removal, StoreError};
use twofold_proto::{AuditRecord, Method};

fn has_confirmed(tx: &mut Tx<'_>, user: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM credentials
                            WHERE username = $1 AND confirmed_at IS NOT NULL)",
            &[&user],
        )?
        .get(0))
}

fn add_user(tx: &mut Tx<'_>, user: &str, now: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO users (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&user, &to_db(now)],
    )?;
    Ok(())
}

fn insert_codes(
    tx: &mut Tx<'_>,
    user: &str,
    m: &Method,
    codes: &[NewCode],
    now: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM codes WHERE username = $1 AND method = $2",
        &[&user, &m.as_str()],
    )?;
    let insert = "INSERT INTO codes (username, method, lookup, hash, created_at, expires_at)
                  VALUES ($1, $2, $3, $4, $5, $6)";
    for c in codes {
        tx.execute(
            insert,
            &[
                &user,
                &m.as_str(),
                &&c.lookup[..],
                &c.hash,
                &to_db(now),
                &c.expires_at.map(to_db),
            ],
        )?;
    }
    Ok(())
}

/// Removes the user's codes of `codes_too` when no confirmed credential is
/// left (recovery codes hang on one).
fn remove_codes_if_last(
    tx: &mut Tx<'_>,
    user: &str,
    codes_too: &[Method],
) -> Result<(), StoreError> {
    if !has_confirmed(tx, user)? {
        for m in codes_too {
            tx.execute(
                "DELETE FROM codes WHERE username = $1 AND method = $2",
                &[&user, &m.as_str()],
            )?;
        }
    }
    Ok(())
}

/// Stores a pending credential (see [`Store::start_pending`](crate::store::Store::start_pending)).
pub(crate) fn start_pending(
    tx: &mut Tx<'_>,
    user: &str,
    new: &NewCredential,
    now: u64,
) -> Result<bool, StoreError> {
    if new.single {
        let confirmed: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM credentials WHERE username = $1
                                AND method = $2 AND confirmed_at IS NOT NULL)",
                &[&user, &new.method.as_str()],
            )?
            .get(0);
        if confirmed {
            return Ok(false);
        }
        tx.execute(
            "DELETE FROM credentials WHERE username = $1 AND method = $2",
            &[&user, &new.method.as_str()],
        )?;
    }
    add_user(tx, user, now)?;
    tx.execute(
        "INSERT INTO credentials (id, username, method, label, sealed, nonce, params,
                                  created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &new.id,
            &user,
            &new.method.as_str(),
            &new.label,
            &new.sealed,
            &new.nonce,
            &new.params,
            &to_db(now),
        ],
    )?;
    Ok(true)
}

/// Confirms pending credential `id` (see [`Store::confirm`](crate::store::Store::confirm)).
#[allow(
    clippy::too_many_arguments,
    reason = "the trait operation's arguments, passed on"
)]
pub(crate) fn confirm(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    id: i64,
    counter: Option<u64>,
    codes: &Option<(Method, Vec<NewCode>)>,
    authorize: &Option<Claim>,
    now: u64,
    events: &[AuditEvent],
) -> Result<Change, StoreError> {
    // The row lock orders this confirmation after any other of the
    // same credential, from any host.
    let Some(user) = tx
        .query_opt(
            "SELECT username FROM credentials WHERE id = $1 AND confirmed_at IS NULL
             FOR UPDATE",
            &[&id],
        )?
        .map(|r| r.get::<_, String>(0))
    else {
        return Ok(Change::Nothing);
    };
    if let Some(c) = authorize {
        if !spend(tx, c, now, false)? {
            return Ok(Change::Lost);
        }
    }
    let changed = tx.execute(
        "UPDATE credentials SET confirmed_at = $2, counter = $3
         WHERE id = $1 AND confirmed_at IS NULL",
        &[&id, &to_db(now), &counter.map(to_db)],
    )?;
    if changed != 1 {
        return Ok(Change::Nothing);
    }
    if let Some((method, codes)) = codes {
        insert_codes(tx, &user, method, codes, now)?;
    }
    Ok(Change::Done(append(tx, ctx, now, events)?))
}

/// Replaces `user`'s `method` codes whatever is enrolled.
pub(crate) fn issue_codes(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    user: &str,
    method: &Method,
    codes: &[NewCode],
    now: u64,
    events: &[AuditEvent],
) -> Result<Vec<AuditRecord>, StoreError> {
    add_user(tx, user, now)?;
    insert_codes(tx, user, method, codes, now)?;
    append(tx, ctx, now, events)
}

/// Replaces `user`'s `method` codes when a confirmed credential exists.
#[allow(
    clippy::too_many_arguments,
    reason = "the trait operation's arguments, passed on"
)]
pub(crate) fn replace_codes(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    user: &str,
    method: &Method,
    codes: &[NewCode],
    authorize: &Option<Claim>,
    now: u64,
    events: &[AuditEvent],
) -> Result<Change, StoreError> {
    if !has_confirmed(tx, user)? {
        return Ok(Change::Nothing);
    }
    if let Some(c) = authorize {
        if !spend(tx, c, now, false)? {
            return Ok(Change::Lost);
        }
    }
    insert_codes(tx, user, method, codes, now)?;
    Ok(Change::Done(append(tx, ctx, now, events)?))
}

/// Removes what `what` says (see [`Store::remove`](crate::store::Store::remove)).
#[allow(
    clippy::too_many_arguments,
    reason = "the trait operation's arguments, passed on"
)]
pub(crate) fn remove(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    user: &str,
    what: &Removal,
    authorize: &Option<Claim>,
    now: u64,
    always: &[AuditEvent],
    if_removed: &[AuditEvent],
) -> Result<Change, StoreError> {
    let there: bool = match what {
        Removal::All => tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM credentials WHERE username = $1)
                 OR EXISTS (SELECT 1 FROM codes WHERE username = $1)",
            &[&user],
        )?,
        Removal::Method { method, .. } => tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM credentials WHERE username = $1 AND method = $2)",
            &[&user, &method.as_str()],
        )?,
        Removal::Credential { id, .. } => tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM credentials WHERE username = $1 AND id = $2)",
            &[&user, id],
        )?,
    }
    .get(0);
    if !there && always.is_empty() {
        return Ok(Change::Nothing);
    }
    if let Some(c) = authorize {
        if !spend(tx, c, now, false)? {
            return Ok(Change::Lost);
        }
    }
    match what {
        Removal::All => {
            tx.execute("DELETE FROM credentials WHERE username = $1", &[&user])?;
            tx.execute("DELETE FROM codes WHERE username = $1", &[&user])?;
        }
        Removal::Method { method, codes_too } => {
            tx.execute(
                "DELETE FROM credentials WHERE username = $1 AND method = $2",
                &[&user, &method.as_str()],
            )?;
            remove_codes_if_last(tx, user, codes_too)?;
        }
        Removal::Credential { id, codes_too } => {
            tx.execute(
                "DELETE FROM credentials WHERE username = $1 AND id = $2",
                &[&user, id],
            )?;
            remove_codes_if_last(tx, user, codes_too)?;
        }
    }
    let mut events = always.to_vec();
    if there {
        events.extend(if_removed.iter().cloned());
    }
    Ok(Change::Done(append(tx, ctx, now, &events)?))
}
