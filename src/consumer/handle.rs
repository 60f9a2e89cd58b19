//! `ConsumerHandle`: a running pool's stats, shutdown and join.

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::consumer::pool::Pool;
use crate::endpoint::deadline_after;

/// Counts and gauges of a worker pool, from [`ConsumerHandle::stats`].
///
/// Every finished attempt is counted once, in `processed`, `retried`, `dead_lettered` or
/// `lease_lost`; `failed` counts the failed ones among them (`Err` or panic), `panicked` the
/// panics. `released` counts the leases a shutdown deadline ended (their messages back in the
/// queue, or, on their last attempt, dead-lettered or discarded by the queue's attempt limit):
/// the verdicts of their handlers, if they ever come, land in `lease_lost`.
///
/// ```
/// use switchboard::Queue;
/// # std::panic::set_hook(Box::new(|_| {})); // keep the doctest's output quiet
///
/// let queue = Queue::builder().max_attempts(1).build();
/// queue.send_batch(["fine", "boom"]).unwrap();
/// queue.close(); // the workers end once the queue is closed and drained
/// let pool = queue.consume(1, |msg| {
///     if *msg.payload() == "boom" {
///         panic!("boom");
///     }
///     Ok::<(), String>(())
/// });
/// let stats = pool.join();
/// assert_eq!((stats.processed, stats.failed, stats.panicked), (1, 1, 1));
/// assert_eq!(stats.dead_lettered, 1); // max_attempts(1) and no DLQ: discarded by the queue
/// assert_eq!(queue.stats().discarded, 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Messages handled with `Ok` and acked.
    pub processed: u64,
    /// Failed attempts: the handler returned `Err` or panicked.
    pub failed: u64,
    /// Failed attempts nacked for a retry after the policy's delay.
    pub retried: u64,
    /// Attempts that failed by a handler panic (each is also a failed attempt). In batch mode,
    /// a panic fails every message of its batch and counts once for each.
    pub panicked: u64,
    /// Failed last attempts, and failures the handler rejected
    /// ([`Failure::reject`](crate::Failure::reject)), sent to the dead-letter queue (or discarded
    /// and counted by a queue without one).
    pub dead_lettered: u64,
    /// Of `dead_lettered`, the failures the handler rejected, whatever attempts they had left.
    pub rejected: u64,
    /// Verdicts that came after the lease had ended (it expired, or was released at a shutdown
    /// deadline): they changed nothing, the message had gone back to the queue.
    pub lease_lost: u64,
    /// Leases a shutdown deadline ended, their messages unacked: back in the queue, or, on their
    /// last attempt, dead-lettered (or discarded by a queue that limits attempts without a
    /// dead-letter queue).
    pub released: u64,
    /// Lease extensions made by the heartbeat.
    pub heartbeats: u64,
    /// Messages leased by the pool's workers now.
    pub in_flight: usize,
    /// Worker threads still running.
    pub workers: usize,
    /// Time spent in the handler, summed over the workers.
    pub handler_time: Duration,
}

/// What a shutdown found, from [`ConsumerHandle::shutdown`].
///
/// ```
/// use switchboard::Queue;
///
/// let queue: Queue<u32> = Queue::unbounded();
/// let pool = queue.consume(2, |_| Ok::<(), String>(()));
/// let report = pool.shutdown();
/// assert!(report.is_clean());
/// assert_eq!(pool.join().workers, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Handlers still running at the deadline: their messages went back to the queue and their
    /// verdicts will change nothing. Their threads end when the handlers return.
    pub still_running: usize,
    /// Leases ended at the deadline, their messages unacked (in total for the pool; see
    /// [`ConsumerStats::released`]).
    pub released: u64,
}

impl ShutdownReport {
    /// Whether every worker stopped before the deadline and nothing had to be given back.
    pub fn is_clean(&self) -> bool {
        self.still_running == 0 && self.released == 0
    }
}

/// A running worker pool, from [`Queue::consume`](crate::Queue::consume) or
/// [`Consumer::start`](crate::Consumer::start).
///
/// [`shutdown`](ConsumerHandle::shutdown) stops it and waits for the running handlers (within a
/// deadline); [`join`](ConsumerHandle::join) waits for the workers to end, which they also do by
/// themselves once the queue is closed and drained. Dropping the handle starts the same shutdown
/// as `shutdown` but does not wait: the workers finish their messages in the background, and the
/// shutdown timeout still bounds how long they hold them.
///
/// ```
/// use std::sync::mpsc;
/// use switchboard::Queue;
///
/// let queue = Queue::unbounded();
/// let (done_tx, done_rx) = mpsc::channel();
/// let done_tx = std::sync::Mutex::new(done_tx);
/// let pool = queue.consume(2, move |msg| {
///     done_tx.lock().unwrap().send(*msg.payload()).unwrap();
///     Ok::<(), String>(())
/// });
/// queue.send(42).unwrap();
/// assert_eq!(done_rx.recv().unwrap(), 42);
/// assert!(pool.shutdown().is_clean());
/// let stats = pool.join();
/// assert_eq!(stats.processed, 1);
/// assert_eq!(queue.stats().acked, 1);
/// ```
///
/// Keep the handle for as long as the pool should run: a handle dropped at once (a call to
/// `consume` used as a statement) stops the pool before it takes more than a message or two.
/// The compiler warns about that:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let queue: switchboard::Queue<u32> = switchboard::Queue::unbounded();
/// queue.consume(2, |_| Ok::<(), String>(())); // error: unused `ConsumerHandle`
/// ```
#[must_use = "dropping a ConsumerHandle shuts the pool down: keep it while the pool should run"]
pub struct ConsumerHandle<T> {
    pool: Arc<Pool<T>>,
    threads: Vec<JoinHandle<()>>,
}

impl<T: Send + Sync + 'static> ConsumerHandle<T> {
    pub(crate) fn new(pool: Arc<Pool<T>>, threads: Vec<JoinHandle<()>>) -> Self {
        ConsumerHandle { pool, threads }
    }

    /// Counts and gauges: see [`ConsumerStats`].
    pub fn stats(&self) -> ConsumerStats {
        self.pool.stats()
    }

    /// How many worker threads the pool started.
    pub fn workers(&self) -> usize {
        self.pool.settings.workers
    }

    /// Whether every worker has ended (after a shutdown, or because the queue was closed and
    /// drained).
    pub fn is_finished(&self) -> bool {
        self.pool.ctl.lock().alive == 0
    }

    /// Stops the pool, waiting up to the shutdown timeout ([`Consumer::shutdown_timeout`],
    /// default 30 s) for running handlers. See [`shutdown_deadline`](Self::shutdown_deadline).
    ///
    /// [`Consumer::shutdown_timeout`]: crate::Consumer::shutdown_timeout
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let queue: Queue<u32> = Queue::unbounded();
    /// let pool = queue.consume(2, |_| Ok::<(), String>(()));
    /// assert!(pool.shutdown().is_clean()); // no handler was running
    /// assert!(pool.is_finished());
    /// queue.send(1).unwrap();
    /// assert_eq!(queue.len(), 1); // nobody takes it now
    /// ```
    pub fn shutdown(&self) -> ShutdownReport {
        self.shutdown_timeout(self.pool.settings.shutdown_timeout)
    }

    /// Stops the pool, waiting at most `timeout` for running handlers. See
    /// [`shutdown_deadline`](Self::shutdown_deadline).
    pub fn shutdown_timeout(&self, timeout: Duration) -> ShutdownReport {
        self.shutdown_deadline(deadline_after(timeout))
    }

    /// Stops the pool: no worker takes a new message, running handlers may finish until
    /// `deadline`. Returns when every worker has ended, or at the deadline, after giving the
    /// messages of the handlers still running back to the queue unacked (their leases are
    /// released; a message on its last attempt goes to the dead-letter queue, or is discarded by
    /// a queue that limits attempts without one, as when a `Delivery` is dropped). Those
    /// handlers' verdicts then change nothing. A message a worker
    /// still in its receive takes after that goes back as if never received, its attempt
    /// unspent (counted in `released` too, and in the queue's `abandoned`).
    ///
    /// Nothing is lost but what the queue's attempt limit discards: every message the pool took
    /// was acked, is back in the queue (now or after its retry delay), or is in the dead-letter
    /// queue. Calling it again is harmless; an earlier
    /// deadline wins.
    ///
    /// Called from one of this pool's own handlers, it starts the shutdown and returns at once
    /// (a handler cannot wait for its own worker to end): that handler's verdict still counts,
    /// and the report's `still_running` includes it.
    pub fn shutdown_deadline(&self, deadline: Instant) -> ShutdownReport {
        self.pool.begin_shutdown(deadline);
        // A handler of this pool cannot wait for its own worker to end: it would wait until the
        // deadline, then see its own message released. It starts the shutdown and goes on.
        let me = std::thread::current().id();
        let from_a_handler = self.threads.iter().any(|t| t.thread().id() == me);
        let mut ctl = self.pool.ctl.lock();
        while ctl.alive > 0 && !ctl.expired && !from_a_handler {
            self.pool.cv.wait(&mut ctl);
        }
        let (alive, expired, stranded) = (ctl.alive, ctl.expired, ctl.stranded);
        drop(ctl);
        // Workers alive but idle (woken by the shutdown, not yet ended) run no handler.
        let still_running = if alive == 0 {
            0
        } else if expired {
            stranded.min(alive)
        } else {
            self.pool.running().min(alive)
        };
        ShutdownReport {
            still_running,
            released: self.pool.stats().released,
        }
    }

    /// Waits until every worker thread has ended and returns the final stats.
    ///
    /// Without a shutdown, the workers end when the queue is closed and drained (nothing visible,
    /// delayed or in flight), so `queue.close()` then `join()` processes everything. A message
    /// that always fails keeps the queue from draining unless the queue limits its attempts
    /// ([`max_attempts`](crate::QueueBuilder::max_attempts) or a dead-letter queue): then `join`
    /// waits for ever. After a shutdown whose deadline passed, it waits for the handlers still
    /// running to return.
    ///
    /// # Panics
    ///
    /// Called from one of this pool's own handlers, which would wait for its own worker for
    /// ever ([`shutdown`](Self::shutdown) is the way out from there).
    ///
    /// A panic outside the handler's guard (a payload's drop at the ack, say) ends its worker
    /// (the others carry on), once every message of its batch has its verdict, counted; `join`
    /// hands the first such panic on once every worker has ended.
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let queue = Queue::unbounded();
    /// queue.send_batch(1..=5).unwrap();
    /// queue.close(); // the workers end once the queue is closed and drained
    /// let pool = queue.consume(3, |_| Ok::<(), String>(()));
    /// let stats = pool.join();
    /// assert_eq!((stats.processed, stats.workers), (5, 0));
    /// assert_eq!(queue.stats().acked, 5);
    /// ```
    pub fn join(mut self) -> ConsumerStats {
        // A handler of this pool would wait for its own worker, which waits for it: for ever
        // (found by review). Refused, as std refuses a thread joining itself.
        let me = std::thread::current().id();
        assert!(
            !self.threads.iter().any(|t| t.thread().id() == me),
            "ConsumerHandle::join called from one of the pool's own handlers (use shutdown)"
        );
        // Every worker is waited for before a panic is handed on: handing it on at once left
        // the others running, with no handle left to stop them.
        let mut panic = None;
        for t in self.threads.drain(..) {
            if let Err(p) = t.join() {
                panic.get_or_insert(p);
            }
        }
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
        self.pool.stats()
    }
}

impl<T> Drop for ConsumerHandle<T> {
    /// Starts a graceful shutdown and returns at once (see the type docs). Never blocks.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let deadline = deadline_after(self.pool.settings.shutdown_timeout);
            self.pool.begin_shutdown(deadline);
        }
    }
}

impl<T> fmt::Debug for ConsumerHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerHandle")
            .field("workers", &self.pool.settings.workers)
            .field("alive", &self.pool.ctl.lock().alive)
            .finish_non_exhaustive()
    }
}
