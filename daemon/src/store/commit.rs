//! Group commit: one writer thread runs every login write waiting at that
//! moment in one transaction, so many logins share one fsync.
//!
//! Each job runs inside its own savepoint and keeps its SQL guards (`WHERE
//! last_step < ?`, `WHERE used_at IS NULL`), so its changed-row counts decide
//! that login exactly as a transaction of its own would; a job that fails is
//! rolled back to its savepoint without touching the others. No job's result
//! is handed back before the whole transaction is committed
//! (`synchronous=FULL`): if the commit fails, every job in it gets an error.

use super::{Store, StoreError};
use rusqlite::{Transaction, TransactionBehavior};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

/// At most this many jobs share a transaction, so one batch cannot hold the
/// store for long.
const MAX_BATCH: usize = 256;

/// How many group commits ran and how many jobs they carried.
#[derive(Debug, Default)]
pub struct CommitStats {
    submitted: AtomicU64,
    batches: AtomicU64,
    jobs: AtomicU64,
}

impl CommitStats {
    /// Jobs handed to the writer so far (counted once queued).
    pub fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::SeqCst)
    }
    /// Transactions the writer committed (or tried to).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::SeqCst)
    }
    /// Jobs those transactions carried.
    pub fn jobs(&self) -> u64 {
        self.jobs.load(Ordering::SeqCst)
    }
}

/// One login's writes, type-erased so one queue carries them all.
trait Job: Send {
    /// Runs the writes inside `tx` (under a savepoint of its own).
    fn run(&mut self, tx: &Transaction<'_>);
    /// Hands the result back once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct Typed<T, F> {
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

    fn finish(self: Box<Self>, commit: Result<(), &StoreError>) {
        let out = match (commit, self.result) {
            (Err(e), _) => Err(StoreError::Commit(e.to_string())),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(StoreError::Commit("the login's writes did not run".into())),
        };
        // The login may have gone (its thread ended): nothing to tell then.
        let _ = self.reply.send(out);
    }
}

/// The queue in front of the writer thread.
#[derive(Debug)]
pub struct GroupCommit {
    queue: Mutex<Sender<Box<dyn Job>>>,
    stats: Arc<CommitStats>,
}

impl GroupCommit {
    /// Starts the writer thread over `store`; it ends when this is dropped.
    /// Counts into `stats`.
    pub fn start(store: Arc<Mutex<Store>>, stats: Arc<CommitStats>) -> GroupCommit {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let stats2 = stats.clone();
        let spawned = std::thread::Builder::new()
            .name("twofoldd-commit".into())
            .spawn(move || writer(&store, &rx, &stats2));
        // Without a writer every submit fails (the receiver is gone), so
        // logins end `Unavailable`: fail closed.
        drop(spawned);
        GroupCommit {
            queue: Mutex::new(tx),
            stats,
        }
    }

    /// Runs `work` in the next group transaction and returns its result
    /// once that transaction is durable.
    pub fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Box::new(Typed {
            work: Some(work),
            result: None,
            reply,
        });
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job);
        if sent.is_err() {
            return Err(StoreError::Commit(
                "the database writer is not running".into(),
            ));
        }
        self.stats.submitted.fetch_add(1, Ordering::SeqCst);
        answer
            .recv()
            .unwrap_or_else(|_| Err(StoreError::Commit("the database writer stopped".into())))
    }
}

fn writer(store: &Mutex<Store>, rx: &Receiver<Box<dyn Job>>, stats: &CommitStats) {
    while let Ok(first) = rx.recv() {
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        // Everything that queued while we waited for the store joins this batch.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        stats.batches.fetch_add(1, Ordering::SeqCst);
        stats.jobs.fetch_add(batch.len() as u64, Ordering::SeqCst);
        let done = run_batch(&mut store, &mut batch);
        drop(store);
        for job in batch {
            job.finish(done.as_ref().map(|_| ()));
        }
    }
}

fn run_batch(store: &mut Store, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        job.run(&tx);
    }
    tx.commit()?;
    Ok(())
}
