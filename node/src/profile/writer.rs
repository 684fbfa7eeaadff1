//! The profile's one writer.
//!
//! redb takes one write transaction at a time. Without a node, a profile
//! writes on the caller's thread (a CLI command). With a node, every write
//! (received messages, delivery marks, a message the user sends, a new
//! contact) is a *job* for one dedicated thread, which takes every job that
//! is waiting, runs them all in one transaction and commits once (one
//! fsync for the lot), then answers each. Async tasks never hold a store
//! lock or wait on a disk; readers use read transactions and never wait
//! for the writer either.
//!
//! A job that returns an error must not have written anything (jobs check
//! first, then write); a database error aborts the whole transaction and
//! every job in it gets the error.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, WriteTransaction};

/// Write jobs queued for the writer thread. Past it, async writers wait
/// (without holding a tokio worker) until the disk catches up.
pub const WRITER_QUEUE: usize = 256;

/// Jobs committed in one transaction (one fsync).
pub const MAX_WRITE_BATCH: usize = 128;
use crate::profile::ProfileError;

type Finish = Box<dyn FnOnce(Result<(), ProfileError>) + Send>;
type Job = Box<dyn FnOnce(&WriteTransaction) -> (Finish, bool) + Send>;

/// Writes for one profile: in place, or on the writer thread.
#[derive(Default)]
pub(crate) struct Writer {
    thread: Mutex<Option<(SyncSender<Job>, JoinHandle<()>)>>,
}

fn is_db_error(e: &ProfileError) -> bool {
    matches!(e, ProfileError::Db(_))
}

/// Runs `f` in `txn` and returns how to answer once the transaction's fate
/// is known, and whether `f` failed on the database.
fn job<R: Send + 'static>(
    f: impl FnOnce(&WriteTransaction) -> Result<R, ProfileError>,
    txn: &WriteTransaction,
    answer: impl FnOnce(Result<R, ProfileError>) + Send + 'static,
) -> (Finish, bool) {
    let result = f(txn);
    let poisoned = result.as_ref().err().is_some_and(is_db_error);
    let finish: Finish = Box::new(move |committed| {
        answer(match (committed, result) {
            (Ok(()), r) => r,
            (Err(e), Ok(_)) => Err(e),
            (Err(_), Err(e)) => Err(e),
        })
    });
    (finish, poisoned)
}

fn begin(db: &Database) -> Result<WriteTransaction, ProfileError> {
    let mut txn = db.begin_write().map_err(crate::profile::db_error)?;
    txn.set_durability(redb::Durability::Immediate)
        .map_err(|e| ProfileError::Db(crate::profile::DbError::other(e.to_string())))?;
    // Data pages reach the disk before a header points at them: the
    // sealed file cannot verify a torn page (see `crate::profile::sealed`).
    txn.set_two_phase_commit(true);
    Ok(txn)
}

impl Writer {
    /// Moves writes to a thread of their own (a node is starting).
    pub(crate) fn start_thread(&self, db: Arc<Database>) {
        let mut t = self.thread.lock().expect("writer lock");
        if t.is_some() {
            return;
        }
        let (tx, rx) = sync_channel::<Job>(WRITER_QUEUE);
        let handle = std::thread::Builder::new()
            .name("strand-writer".into())
            .spawn(move || run(db, rx))
            .expect("spawn the writer thread");
        *t = Some((tx, handle));
    }

    /// Stops the writer thread after the jobs already queued, and waits
    /// for it. Later writes happen in place again.
    pub(crate) fn stop_thread(&self) {
        let taken = self.thread.lock().expect("writer lock").take();
        if let Some((tx, handle)) = taken {
            drop(tx);
            let _ = handle.join();
        }
    }

    fn sender(&self) -> Option<SyncSender<Job>> {
        self.thread
            .lock()
            .expect("writer lock")
            .as_ref()
            .map(|(tx, _)| tx.clone())
    }

    /// Runs `f` in a write transaction and waits for it to commit. Blocks:
    /// not for async tasks (use [`Writer::run_async`]).
    pub(crate) fn run<R: Send + 'static>(
        &self,
        db: &Database,
        f: impl FnOnce(&WriteTransaction) -> Result<R, ProfileError> + Send + 'static,
    ) -> Result<R, ProfileError> {
        let Some(tx) = self.sender() else {
            let txn = begin(db)?;
            let r = f(&txn)?;
            txn.commit().map_err(crate::profile::db_error)?;
            return Ok(r);
        };
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |txn| {
            job(f, txn, move |r| {
                let _ = reply.send(r);
            })
        });
        tx.send(job).map_err(|_| ProfileError::Closed)?;
        rx.recv().map_err(|_| ProfileError::Closed)?
    }

    /// [`Writer::run`] for async tasks: the job goes to the writer thread
    /// (or, with none, runs in place on a blocking thread).
    pub(crate) async fn run_async<R: Send + 'static>(
        &self,
        db: Arc<Database>,
        f: impl FnOnce(&WriteTransaction) -> Result<R, ProfileError> + Send + 'static,
    ) -> Result<R, ProfileError> {
        let Some(tx) = self.sender() else {
            return tokio::task::spawn_blocking(move || {
                let txn = begin(&db)?;
                let r = f(&txn)?;
                txn.commit().map_err(crate::profile::db_error)?;
                Ok(r)
            })
            .await
            .map_err(|_| ProfileError::Closed)?;
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        let mut job: Job = Box::new(move |txn| {
            job(f, txn, move |r| {
                let _ = reply.send(r);
            })
        });
        // A full queue means the disk is behind: wait for room without
        // holding a tokio worker.
        loop {
            match tx.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) => {
                    job = j;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(ProfileError::Closed),
            }
        }
        rx.await.map_err(|_| ProfileError::Closed)?
    }
}

fn run(db: Arc<Database>, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_WRITE_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let txn = match begin(&db) {
            Ok(t) => t,
            Err(e) => {
                // A job cannot run without a transaction: dropping it
                // answers its caller with `Closed`. Nothing was written.
                drop(jobs);
                tracing::error!("the store cannot write: {e}");
                continue;
            }
        };
        let mut finishes = Vec::with_capacity(jobs.len());
        let mut poisoned = false;
        for j in jobs {
            let (finish, bad) = j(&txn);
            poisoned |= bad;
            finishes.push(finish);
        }
        let outcome = if poisoned {
            drop(txn);
            Err(ProfileError::Db(crate::profile::DbError::other(
                "a write failed; the transaction was rolled back".into(),
            )))
        } else {
            txn.commit().map_err(crate::profile::db_error)
        };
        for finish in finishes {
            finish(outcome.clone());
        }
    }
}
