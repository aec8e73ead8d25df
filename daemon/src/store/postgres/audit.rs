//! The audit trail on PostgreSQL: one hash chain per (host, lane), rows
//! with a fleet-wide id (listing, `--follow`) and a position in their
//! chain (`seq`, what the hash covers).

use super::client::PgClient;
use super::pool::Head;
use super::{from_db, to_db, Ctx, Tx};
use crate::audit::{row_hash, AuditEvent, ChainRow};
use crate::store::{AuditFilter, StoreError, Walk};
use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use twofold_proto::AuditRecord;

/// The hash a chain starts from: its host and lane, so a chain's rows
/// cannot be passed off as another host's.
pub(crate) fn genesis(host: &str, lane: i32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"twofold/audit/chain/v1");
    h.update((host.len() as u64).to_be_bytes());
    h.update(host.as_bytes());
    h.update(lane.to_be_bytes());
    h.finalize().into()
}

/// Makes sure the head of this lane's chain exists (on each new connection),
/// so appending only ever locks and updates it.
pub(crate) fn open_chain(c: &mut PgClient, host: &str, lane: i32) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO audit_head (host, lane, last_seq, hash) VALUES ($1, $2, 0, $3)
         ON CONFLICT (host, lane) DO NOTHING",
        &[&host, &lane, &&genesis(host, lane)[..]],
    )?;
    Ok(())
}

/// Appends `events` at time `at` to the chain of `ctx`'s lane, inside `tx`.
/// The returned records carry their fleet-wide ids.
///
/// One statement moves the head and inserts the rows. The head the last
/// commit on this connection left is used when known; the head's `UPDATE`
/// is conditional on it (and takes the head's row lock), so a head moved
/// meanwhile (another process with this host's name and lane) inserts
/// nothing, and the head is then read under its row lock and the rows
/// hashed again.
pub(crate) fn append(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    at: u64,
    events: &[AuditEvent],
) -> Result<Vec<AuditRecord>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut cached = tx.head(ctx.lane).cloned();
    for _ in 0..2 {
        let head = match cached.take() {
            Some(h) => h,
            None => read_head(tx, ctx)?,
        };
        if let Some(out) = try_append(tx, ctx, at, events, &head)? {
            super::sends::queue_notices(tx, at, &out)?;
            return Ok(out);
        }
        tx.set_head(None);
    }
    Err(StoreError::Corrupt(format!(
        "audit chain {}#{}: its head moved under its row lock",
        ctx.host, ctx.lane
    )))
}

/// The head of `ctx`'s chain, locked until the transaction ends.
fn read_head(tx: &mut Tx<'_>, ctx: &Ctx<'_>) -> Result<Head, StoreError> {
    tx.set_head(None);
    tx.execute(
        "INSERT INTO audit_head (host, lane, last_seq, hash) VALUES ($1, $2, 0, $3)
         ON CONFLICT (host, lane) DO NOTHING",
        &[&ctx.host, &ctx.lane, &&genesis(ctx.host, ctx.lane)[..]],
    )?;
    let r = tx.query_one(
        "SELECT last_seq, hash FROM audit_head WHERE host = $1 AND lane = $2 FOR UPDATE",
        &[&ctx.host, &ctx.lane],
    )?;
    Ok(Head {
        lane: ctx.lane,
        seq: from_db(r.get(0)),
        hash: r.get(1),
    })
}

/// Appends `events` after `head`; `None` (nothing written) when the
/// stored head is not `head`.
fn try_append(
    tx: &mut Tx<'_>,
    ctx: &Ctx<'_>,
    at: u64,
    events: &[AuditEvent],
    head: &Head,
) -> Result<Option<Vec<AuditRecord>>, StoreError> {
    let rows = Chained::new(ctx, at, events, head);
    let sql = format!("WITH {} SELECT seq, id FROM a", Chained::ctes(1, "", MOVED));
    let ids: Vec<(i64, i64)> = tx
        .query(&sql, &rows.params())?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    rows.written(tx, &ids)
}

/// The condition of [`Chained::ctes`]'s rows that writes them only if the
/// head moved.
pub(crate) const MOVED: &str = "EXISTS (SELECT 1 FROM h)";

/// Audit rows hashed after a chain head, for the statement of
/// [`Chained::ctes`] (alone, or after the spend they tell of).
pub(crate) struct Chained {
    recs: Vec<AuditRecord>,
    host: String,
    old: Head,
    new: Head,
    /// `old.seq` and `new.seq` as stored.
    old_seq: i64,
    new_seq: i64,
    at: i64,
    seqs: Vec<i64>,
    cols: [Vec<String>; 8],
    prevs: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
}

impl Chained {
    /// `events` at `at` after `head`, on `ctx`'s chain.
    pub(crate) fn new(ctx: &Ctx<'_>, at: u64, events: &[AuditEvent], head: &Head) -> Chained {
        let (mut last, mut prev) = (head.seq, head.hash.clone());
        let n = events.len();
        let mut c = Chained {
            recs: Vec::with_capacity(n),
            host: ctx.host.to_owned(),
            old: head.clone(),
            new: head.clone(),
            old_seq: to_db(head.seq),
            new_seq: 0,
            at: to_db(at),
            seqs: Vec::with_capacity(n),
            cols: Default::default(),
            prevs: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
        };
        for ev in events {
            let rec = ev.record(last + 1, at);
            let hash = row_hash(&prev, &rec);
            c.seqs.push(to_db(rec.id));
            c.prevs.push(std::mem::replace(&mut prev, hash.to_vec()));
            c.hashes.push(hash.to_vec());
            for (col, v) in c.cols.iter_mut().zip([
                &rec.event,
                &rec.user,
                &rec.service,
                &rec.rhost,
                &rec.tty,
                &rec.method,
                &rec.actor,
                &rec.detail,
            ]) {
                col.push(v.clone());
            }
            last = rec.id;
            c.recs.push(rec);
        }
        c.new_seq = to_db(last);
        c.new = Head {
            lane: ctx.lane,
            seq: last,
            hash: prev,
        };
        c
    }

    /// The CTEs `h` (the head moved, only if it is the one the rows were
    /// hashed after, and `when`) and `a` (the rows, only if `rows_when`,
    /// [`MOVED`] for "only if `h` moved it"; `RETURNING seq, id`), with
    /// [`Chained::params`] from `$first` on.
    pub(crate) fn ctes(first: usize, when: &str, rows_when: &str) -> String {
        let p: Vec<String> = (first..first + 18).map(|i| format!("${i}")).collect();
        format!(
            "h AS (UPDATE audit_head SET last_seq = {p4}, hash = {p5}
                   WHERE host = {p0} AND lane = {p1} AND last_seq = {p2} AND hash = {p3} {when}
                   RETURNING 1),
             a AS (INSERT INTO audit (host, lane, seq, at, event, username, service, rhost,
                                      tty, method, actor, detail, prev_hash, hash)
                   SELECT {p0}, {p1}, r.seq, {p6}, r.event, r.username, r.service, r.rhost,
                          r.tty, r.method, r.actor, r.detail, r.prev_hash, r.hash
                   FROM unnest({p7}::BIGINT[], {p8}::TEXT[], {p9}::TEXT[], {p10}::TEXT[],
                               {p11}::TEXT[], {p12}::TEXT[], {p13}::TEXT[], {p14}::TEXT[],
                               {p15}::TEXT[], {p16}::BYTEA[], {p17}::BYTEA[])
                        AS r(seq, event, username, service, rhost, tty, method, actor, detail,
                             prev_hash, hash)
                   WHERE {rows_when}
                   ORDER BY r.seq
                   RETURNING seq, id)",
            p0 = p[0],
            p1 = p[1],
            p2 = p[2],
            p3 = p[3],
            p4 = p[4],
            p5 = p[5],
            p6 = p[6],
            p7 = p[7],
            p8 = p[8],
            p9 = p[9],
            p10 = p[10],
            p11 = p[11],
            p12 = p[12],
            p13 = p[13],
            p14 = p[14],
            p15 = p[15],
            p16 = p[16],
            p17 = p[17],
        )
    }

    /// The 18 parameters of [`Chained::ctes`], in order.
    pub(crate) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut v: Vec<&(dyn ToSql + Sync)> = vec![
            &self.host,
            &self.old.lane,
            &self.old_seq,
            &self.old.hash,
            &self.new_seq,
            &self.new.hash,
            &self.at,
            &self.seqs,
        ];
        for c in &self.cols {
            v.push(c);
        }
        v.push(&self.prevs);
        v.push(&self.hashes);
        v
    }

    /// The records with their fleet-wide ids from the `(seq, id)` the
    /// statement returned, the head kept in `tx`; `None` when nothing was
    /// written (the stored head was another).
    pub(crate) fn written(
        self,
        tx: &mut Tx<'_>,
        ids: &[(i64, i64)],
    ) -> Result<Option<Vec<AuditRecord>>, StoreError> {
        Ok(match self.finish(ids)? {
            Some((recs, head)) => {
                tx.set_head(Some(head));
                Some(recs)
            }
            None => None,
        })
    }

    /// The records with their fleet-wide ids from the `(seq, id)` the
    /// statement returned, and the chain head they leave; `None` when
    /// nothing was written.
    pub(crate) fn finish(
        mut self,
        ids: &[(i64, i64)],
    ) -> Result<Option<(Vec<AuditRecord>, Head)>, StoreError> {
        if ids.len() != self.recs.len() {
            if ids.is_empty() {
                return Ok(None);
            }
            return Err(StoreError::Corrupt("audit rows not all written".into()));
        }
        for &(seq, id) in ids {
            let rec = self
                .recs
                .iter_mut()
                .find(|rec| to_db(rec.id) == seq)
                .ok_or_else(|| StoreError::Corrupt("audit row position".into()))?;
            rec.id = from_db(id);
        }
        Ok(Some((self.recs, self.new)))
    }
}

fn record(r: &Row) -> AuditRecord {
    AuditRecord {
        id: from_db(r.get(0)),
        at: from_db(r.get(1)),
        event: r.get(2),
        user: r.get(3),
        service: r.get(4),
        rhost: r.get(5),
        tty: r.get(6),
        method: r.get(7),
        actor: r.get(8),
        detail: r.get(9),
    }
}

enum Arg {
    Int(i64),
    Text(String),
}

/// Up to `limit` rows matching `f`, by fleet-wide id; the statement names
/// only the filters given.
pub(crate) fn rows(
    tx: &mut Tx<'_>,
    f: &AuditFilter,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut sql = String::from(
        "SELECT id, at, event, username, service, rhost, tty, method, actor, detail FROM audit
         WHERE id > $1",
    );
    let mut args = vec![Arg::Int(to_db(f.after_id))];
    let mut and = |clause: &str, v: Arg| {
        args.push(v);
        sql.push_str(&format!(" AND {clause} ${}", args.len()));
    };
    if let Some(u) = &f.user {
        and("username =", Arg::Text(u.clone()));
    }
    if let Some(e) = &f.event {
        and("event =", Arg::Text(e.clone()));
    }
    if let Some(s) = &f.service {
        and("service =", Arg::Text(s.clone()));
    }
    if let Some(t) = f.since {
        and("at >=", Arg::Int(to_db(t)));
    }
    if let Some(t) = f.until {
        and("at <=", Arg::Int(to_db(t)));
    }
    args.push(Arg::Int(i64::from(limit)));
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", args.len()));
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| match a {
            Arg::Int(i) => i as &(dyn ToSql + Sync),
            Arg::Text(t) => t as &(dyn ToSql + Sync),
        })
        .collect();
    Ok(tx.query(&sql, &params)?.iter().map(record).collect())
}

/// Walks every chain in one snapshot: for each (host, lane), its name,
/// its anchor, its rows in order (with their position as id, which the
/// hash covers), and its head. Stops when `f` returns `false`.
pub(crate) fn walk(tx: &mut Tx<'_>, f: &mut dyn FnMut(Walk<'_>) -> bool) -> Result<(), StoreError> {
    let chains = tx.query(
        "SELECT h.host, h.lane, h.last_seq, h.hash, a.last_seq, a.hash
         FROM audit_head h LEFT JOIN audit_anchor a ON a.host = h.host AND a.lane = h.lane
         ORDER BY h.host, h.lane",
        &[],
    )?;
    for c in chains {
        let (host, lane): (String, i32) = (c.get(0), c.get(1));
        let name = format!("{host}#{lane}");
        if !f(Walk::Chain(&name)) {
            return Ok(());
        }
        let anchor_seq = c.get::<_, Option<i64>>(4).map(from_db).unwrap_or(0);
        let anchor_hash = c
            .get::<_, Option<Vec<u8>>>(5)
            .unwrap_or_else(|| genesis(&host, lane).to_vec());
        if !f(Walk::Anchor(anchor_seq, &anchor_hash)) {
            return Ok(());
        }
        let rows = tx.query(
            "SELECT seq, at, event, username, service, rhost, tty, method, actor, detail,
                    prev_hash, hash FROM audit WHERE host = $1 AND lane = $2 ORDER BY seq",
            &[&host, &lane],
        )?;
        let mut go_on = true;
        for r in &rows {
            let row = ChainRow {
                record: record(r),
                prev_hash: r.get(10),
                hash: r.get(11),
            };
            if !f(Walk::Row(&row)) {
                go_on = false;
                break;
            }
        }
        let last = from_db(c.get(2));
        let hash: Vec<u8> = c.get(3);
        f(Walk::Head((last > 0).then_some((last, hash.as_slice()))));
        if !go_on {
            return Ok(());
        }
    }
    Ok(())
}

/// Rows per event since `since`.
pub(crate) fn counts(c: &mut Tx<'_>, since: u64) -> Result<Vec<(String, u64)>, StoreError> {
    Ok(c.query(
        "SELECT event, COUNT(*) FROM audit WHERE at >= $1 GROUP BY event",
        &[&to_db(since)],
    )?
    .iter()
    .map(|r| (r.get(0), from_db(r.get(1))))
    .collect())
}

/// The advisory lock that runs the hosts' prunes one at a time (any fixed
/// number, apart from the migrations' and the accounts' keys).
const PRUNE_LOCK: i64 = 0x0074_776f_7072_756e;

/// Removes each chain's oldest rows written before `cutoff` (a prefix of
/// each chain), moving its anchor to the last one removed; returns how
/// many rows went and from how many chains.
pub(crate) fn prune(tx: &mut Tx<'_>, cutoff: u64, now: u64) -> Result<(u64, u64), StoreError> {
    // Every host prunes every chain: one at a time, each after the last
    // committed (READ COMMITTED: the statements below see it), so an
    // earlier cutoff of a slower host can never move an anchor back past
    // rows another host already removed (a false break in `audit verify`).
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PRUNE_LOCK])?;
    let chains = tx.query("SELECT host, lane FROM audit_head ORDER BY host, lane", &[])?;
    let (mut rows, mut pruned) = (0, 0);
    for c in chains {
        let (host, lane): (String, i32) = (c.get(0), c.get(1));
        let last = tx.query_opt(
            "SELECT seq, hash FROM audit
             WHERE host = $1 AND lane = $2
               AND seq < COALESCE((SELECT MIN(seq) FROM audit
                                   WHERE host = $1 AND lane = $2 AND at >= $3),
                                  9223372036854775807)
             ORDER BY seq DESC LIMIT 1",
            &[&host, &lane, &to_db(cutoff)],
        )?;
        let Some(last) = last else { continue };
        let (seq, hash): (i64, Vec<u8>) = (last.get(0), last.get(1));
        tx.execute(
            "INSERT INTO audit_anchor (host, lane, last_seq, hash, pruned_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (host, lane) DO UPDATE SET last_seq = EXCLUDED.last_seq,
                 hash = EXCLUDED.hash, pruned_at = EXCLUDED.pruned_at
             WHERE audit_anchor.last_seq < EXCLUDED.last_seq",
            &[&host, &lane, &seq, &hash, &to_db(now)],
        )?;
        rows += tx.execute(
            "DELETE FROM audit WHERE host = $1 AND lane = $2 AND seq <= $3",
            &[&host, &lane, &seq],
        )?;
        pruned += 1;
    }
    Ok((rows, pruned))
}
