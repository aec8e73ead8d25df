//! Group commit: every login write waiting at one moment runs in one
//! transaction, so many logins share one fsync. The transaction is run by
//! one of the waiting logins' own threads (the leader), not a writer thread.
//!
//! Durable and deferred writes: a login's result is handed back only once
//! its transaction is committed. A *durable* write ([`GroupCommit::run`]:
//! a spent code, an enrollment, any audit row that is not a wrong code's)
//! is also on disk by then (`synchronous=FULL`, an fsync per group). A
//! *deferred* write ([`GroupCommit::run_deferred`]: a wrong code's failure,
//! its lock and audit rows) is committed to the write-ahead log — it
//! survives a crash or `kill -9` of twofoldd, and every other login and
//! daemon sees it at once — but reaches the disk with the next durable
//! group or the next [`GroupCommit::sync_deferred`], which twofoldd calls
//! every 100 ms: only a power loss or kernel crash within that window can
//! lose it.
//!
//! Each job runs inside its own savepoint and keeps its SQL guards (`WHERE
//! last_step < ?`, `WHERE used_at IS NULL`), so its changed-row counts decide
//! that login exactly as a transaction of its own would; a job that fails is
//! rolled back to its savepoint without touching the others. No job's result
//! is handed back before the whole transaction is committed
//! (`synchronous=FULL`): if the commit fails, every job in it gets an error.

use super::Db;
use crate::store::StoreError;
use rusqlite::{Transaction, TransactionBehavior};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// At most this many jobs share a transaction, so one batch cannot hold the
/// store for long.
const MAX_BATCH: usize = 256;

/// How many group commits ran and how many jobs they carried.
#[derive(Debug, Default)]
pub struct CommitStats {
    submitted: AtomicU64,
    batches: AtomicU64,
    jobs: AtomicU64,
    deferred_syncs: AtomicU64,
}

impl CommitStats {
    /// Jobs queued for a group transaction so far.
    pub fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::SeqCst)
    }
    /// Group transactions committed (or tried).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::SeqCst)
    }
    /// Jobs those transactions carried.
    pub fn jobs(&self) -> u64 {
        self.jobs.load(Ordering::SeqCst)
    }
    /// Times [`GroupCommit::sync_deferred`] found deferred writes and
    /// synced them.
    pub fn deferred_syncs(&self) -> u64 {
        self.deferred_syncs.load(Ordering::SeqCst)
    }
}

/// One login's writes, type-erased so one queue carries them all.
trait Job: Send {
    /// Runs the writes inside `tx` (under a savepoint of its own).
    fn run(&mut self, tx: &Transaction<'_>);
    /// Runs the writes as the only job of `tx` (no savepoint: if they
    /// fail, the caller rolls the whole transaction back); `false` when
    /// they failed.
    fn run_alone(&mut self, tx: &Transaction<'_>) -> bool;
    /// Hands the result back once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
    /// Whether the job needs its writes on disk before its result.
    fn durable(&self) -> bool;
}

struct Typed<T, F> {
    durable: bool,
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: SyncSender<Result<T, StoreError>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, tx: &Transaction<'_>) {
        let Some(work) = self.work.take() else {
            return;
        };
        let result = tx
            .prepare_cached("SAVEPOINT login")
            .and_then(|mut st| st.execute([]))
            .map(drop)
            .map_err(StoreError::from)
            .and_then(|()| {
                catch_unwind(AssertUnwindSafe(|| work(tx)))
                    .unwrap_or_else(|_| Err(StoreError::Commit("a login's writes panicked".into())))
            });
        let ended = if result.is_ok() {
            tx.prepare_cached("RELEASE login")
                .and_then(|mut st| st.execute([]))
                .map(drop)
        } else {
            // Undo this job's partial writes only; the others stand.
            tx.execute_batch("ROLLBACK TO login; RELEASE login")
        };
        let ended = ended.map_err(StoreError::from);
        self.result = Some(match (result, ended) {
            (Ok(v), Ok(())) => Ok(v),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        });
    }

    fn run_alone(&mut self, tx: &Transaction<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| work(tx)))
            .unwrap_or_else(|_| Err(StoreError::Commit("a login's writes panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &StoreError>) {
        let out = match (commit, self.result) {
            (Err(e), _) => Err(StoreError::Commit(e.to_string())),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(StoreError::Commit("the login's writes did not run".into())),
        };
        // The login may have gone (its thread ended): nothing to tell then.
        let _ = self.reply.send(out);
    }

    fn durable(&self) -> bool {
        self.durable
    }
}

/// Logins waiting for a group transaction, and whether one of them is
/// running it now.
#[derive(Default)]
struct Queue {
    jobs: Vec<Box<dyn Job>>,
    leader: bool,
    /// Logins waiting on `turn` (a notify is a system call even when
    /// nobody waits, so a lone login skips it).
    waiting: usize,
}

/// Group commit without a writer thread: the login that finds nobody
/// committing becomes the leader and, in its own thread, commits every
/// login queued once it holds the store; the others wait for their result
/// or for their turn to lead. With one login in flight there is no
/// hand-off between threads at all (a writer thread cost two wake-ups per
/// login); with many, they still share one transaction and one fsync.
pub struct GroupCommit {
    store: Arc<Mutex<Db>>,
    queue: Mutex<Queue>,
    /// Signalled when a leader steps down (its batch answered).
    turn: Condvar,
    stats: Arc<CommitStats>,
    /// Deferred writes are committed but not yet fsynced.
    unsynced: AtomicBool,
    /// The store's write-ahead log, which [`GroupCommit::sync_deferred`] syncs.
    wal: std::path::PathBuf,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Group commit over `store`, counting into `stats`.
    pub fn new(store: Arc<Mutex<Db>>, stats: Arc<CommitStats>) -> GroupCommit {
        let wal = store.lock().unwrap_or_else(|e| e.into_inner()).wal.clone();
        GroupCommit {
            wal,
            store,
            queue: Mutex::new(Queue::default()),
            turn: Condvar::new(),
            stats,
            unsynced: AtomicBool::new(false),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `work` in the next group transaction and returns its result
    /// once that transaction is durable. The caller must not hold the store.
    pub fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(true, work)
    }

    /// Runs `work` in the next group transaction and returns its result
    /// once that transaction is committed, without waiting for an fsync
    /// (see the module's documentation). The caller must not hold the store.
    pub fn run_deferred<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(false, work)
    }

    /// Puts deferred writes committed so far on disk, if there are any;
    /// `true` when it synced. On an error they stay pending (retried at the
    /// next call).
    pub fn sync_deferred(&self) -> std::io::Result<bool> {
        if !self.unsynced.swap(false, Ordering::SeqCst) {
            return Ok(false);
        }
        // Not under the store's lock: logins go on while the disk flushes.
        // A commit that lands meanwhile sets the flag again for next time.
        if let Err(e) = super::sync_file(&self.wal) {
            self.unsynced.store(true, Ordering::SeqCst);
            return Err(e);
        }
        self.stats.deferred_syncs.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    fn submit<T, F>(&self, durable: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        let mut queue = self.queue();
        queue.jobs.push(Box::new(Typed {
            durable,
            work: Some(work),
            result: None,
            reply,
        }));
        self.stats.submitted.fetch_add(1, Ordering::SeqCst);
        loop {
            // A leader answers its batch before it steps down (under this
            // lock), so a waiter woken by it finds its result here.
            if let Ok(result) = answer.try_recv() {
                return result;
            }
            if queue.leader {
                queue.waiting += 1;
                queue = self.turn.wait(queue).unwrap_or_else(|e| e.into_inner());
                queue.waiting -= 1;
                continue;
            }
            queue.leader = true;
            drop(queue);
            let stepping_down = StepDown(self);
            self.lead();
            drop(stepping_down);
            queue = self.queue();
        }
    }

    /// Commits one batch: every login queued once the store is ours.
    fn lead(&self) {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        // Everything that queued while we waited for the store joins this batch.
        let mut batch: Vec<Box<dyn Job>> = {
            let mut queue = self.queue();
            let n = queue.jobs.len().min(MAX_BATCH);
            queue.jobs.drain(..n).collect()
        };
        self.stats.batches.fetch_add(1, Ordering::SeqCst);
        self.stats
            .jobs
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        let durable = batch.iter().any(|j| j.durable());
        let done = run_batch(&mut store, &mut batch, durable);
        if done.is_ok() {
            // A durable group's fsync covers every deferred write before it.
            self.unsynced.store(!durable, Ordering::SeqCst);
        }
        drop(store);
        for job in batch {
            job.finish(done.as_ref().map(|_| ()));
        }
    }
}

/// Ends a leader's turn, even if its batch panicked, so the logins behind
/// it are never left waiting for a leader that is gone.
struct StepDown<'a>(&'a GroupCommit);

impl Drop for StepDown<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.queue();
        queue.leader = false;
        if queue.waiting > 0 {
            self.0.turn.notify_all();
        }
    }
}

fn run_batch(store: &mut Db, batch: &mut [Box<dyn Job>], durable: bool) -> Result<(), StoreError> {
    if !durable {
        store.set_durable(false)?;
    }
    let done = in_transaction(store, batch);
    if !durable {
        // Every other write on this connection stays durable; if this
        // fails, fail the batch rather than leave the setting behind.
        store.set_durable(true)?;
    }
    done
}

fn in_transaction(store: &mut Db, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let [job] = batch {
        // Alone (the usual case with one login in flight): the transaction
        // is the job's, so no savepoint; failed writes roll it all back
        // (dropping `tx`) and the job reports its own error.
        if job.run_alone(&tx) {
            tx.commit()?;
        }
        return Ok(());
    }
    for job in batch.iter_mut() {
        job.run(&tx);
    }
    tx.commit()?;
    Ok(())
}
