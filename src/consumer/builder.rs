//! `Consumer`: the options of a worker pool, and `Queue::consume` / `Queue::consume_batch`.

use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::consumer::handle::ConsumerHandle;
use crate::consumer::pool::{Pool, Settings};
use crate::consumer::retry::RetryPolicy;
use crate::consumer::Failure;
use crate::message::Message;
use crate::queue::{Delivery, Queue};

/// Builds a worker pool that runs a handler on a queue's messages: see the [module
/// docs](crate::consumer).
///
/// Defaults: one worker, [`RetryPolicy::default`] (exponential from 100 ms, capped at 60 s), no
/// limit on messages in flight beyond one per worker (or one batch per worker), a heartbeat that
/// keeps leases alive up to a maximum lease of 12 hours (SQS's maximum visibility timeout), and a
/// shutdown timeout of 30 seconds.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Consumer, Queue, RetryPolicy};
///
/// let dlq = Queue::unbounded();
/// let queue = Queue::builder().dead_letter(&dlq, 3).build();
/// queue.send_batch(1..=10).unwrap();
/// queue.close(); // the workers stop once the queue is closed and drained
///
/// let pool = Consumer::new(&queue)
///     .workers(4)
///     .retry(RetryPolicy::fixed(Duration::from_millis(1)))
///     .start(|msg| if *msg.payload() == 7 { Err("seven is unlucky") } else { Ok(()) });
/// let stats = pool.join();
/// assert_eq!((stats.processed, stats.failed, stats.dead_lettered), (9, 3, 1));
/// assert_eq!(dlq.try_recv().unwrap().dead_letter().unwrap().reason(), "seven is unlucky");
/// ```
///
/// It does nothing until it is finished, so the compiler warns about one left unfinished:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let queue: switchboard::Queue<u32> = switchboard::Queue::unbounded();
/// switchboard::Consumer::new(&queue).workers(4); // error: unused `Consumer`: no pool started
/// ```
#[must_use = "a Consumer starts no pool until start(), start_with_delivery() or start_batch()"]
pub struct Consumer<T> {
    queue: Queue<T>,
    settings: Settings,
    heartbeat_set: bool,
}

impl<T> Clone for Consumer<T> {
    /// Another builder with the same settings, on the same queue: each start makes its own
    /// pool, and pools started from clones compete for the queue's messages.
    fn clone(&self) -> Self {
        Consumer {
            queue: self.queue.clone(),
            settings: self.settings.clone(),
            heartbeat_set: self.heartbeat_set,
        }
    }
}

impl<T: Send + Sync + 'static> Consumer<T> {
    /// A pool builder for `queue`, with the defaults above.
    pub fn new(queue: &Queue<T>) -> Consumer<T> {
        Consumer {
            queue: queue.clone(),
            settings: Settings {
                workers: 1,
                retry: RetryPolicy::default(),
                max_in_flight: None,
                heartbeat: None,
                max_lease: Duration::from_secs(12 * 3600),
                shutdown_timeout: Duration::from_secs(30),
            },
            heartbeat_set: false,
        }
    }

    /// How many worker threads receive and handle messages (default 1; 0 is taken as 1). A
    /// count beyond what the machine can start makes `start` panic (see its `# Panics`).
    pub fn workers(mut self, workers: usize) -> Self {
        self.settings.workers = workers.max(1);
        self
    }

    /// How long failed messages wait before their next attempt (default
    /// [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.settings.retry = policy;
        self
    }

    /// At most `max` messages leased by the pool at once, across all workers (0 is taken as 1).
    /// Without it, each worker holds one message (or one batch) at a time.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.settings.max_in_flight = Some(max.max(1));
        self
    }

    /// How often, in real time, the pool's heartbeat looks at the leases of running handlers.
    ///
    /// A lease with less than half of the queue's visibility timeout left is extended by the
    /// visibility timeout, never beyond [`max_lease`](Consumer::max_lease) after it was received.
    /// The default interval is a quarter of the visibility timeout, between 1 ms and 1 s.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.settings.heartbeat = Some(interval.max(Duration::from_micros(100)));
        self.heartbeat_set = true;
        self
    }

    /// No heartbeat: a handler slower than the visibility timeout loses its lease, and the message
    /// goes to another receiver.
    pub fn without_heartbeat(mut self) -> Self {
        self.settings.heartbeat = None;
        self.heartbeat_set = true;
        self
    }

    /// The longest the heartbeat keeps a message leased, counted from its receipt (default 12
    /// hours). A handler still running then loses its lease; the message goes back to the queue
    /// and the handler's verdict changes nothing.
    pub fn max_lease(mut self, max: Duration) -> Self {
        self.settings.max_lease = max;
        self
    }

    /// How long a shutdown waits for running handlers (default 30 s) in
    /// [`ConsumerHandle::shutdown`] and when the handle is dropped.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.settings.shutdown_timeout = timeout;
        self
    }

    fn settings(&self) -> Settings {
        let mut s = self.settings.clone();
        if !self.heartbeat_set {
            let quarter = self.queue.visibility_timeout() / 4;
            s.heartbeat = Some(quarter.clamp(Duration::from_millis(1), Duration::from_secs(1)));
        }
        s
    }

    /// Starts the pool: `workers` threads that lease messages and run `handler` on each, plus one
    /// supervisor thread (heartbeat and shutdown deadline). The threads are named after the
    /// queue (`{name}-worker-{n}`, `{name}-supervisor`, NUL characters left out; `queue` for a
    /// queue without a name).
    ///
    /// `Ok` acks the message. `Err(e)` is a failed attempt: the message is retried after the
    /// policy's delay, or, on the queue's last attempt
    /// ([`max_attempts`](crate::Queue::max_attempts)), dead-lettered with `e.to_string()` as the
    /// reason; `Err(Failure::reject(reason))` dead-letters it at once (see [`Failure`]). A panic is caught and is a failed attempt too, with reason `"panicked: <message>"`;
    /// the worker carries on.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (or the memory for the pool's
    /// [`workers`](Consumer::workers) cannot be had).
    pub fn start<H, E>(self, handler: H) -> ConsumerHandle<T>
    where
        H: Fn(&Message<T>) -> Result<(), E> + Send + Sync + 'static,
        E: Into<Failure>,
    {
        self.start_with_delivery(move |d: &Delivery<T>| handler(d.message()))
    }

    /// As [`start`](Self::start), with the handler seeing the whole [`Delivery`]: the attempt
    /// number, the first delivery and enqueue times, the lease deadline, a dead letter's record.
    /// The pool still settles it by the handler's result.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (or the memory for the pool's
    /// [`workers`](Consumer::workers) cannot be had).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use switchboard::{Consumer, Queue, RetryPolicy};
    ///
    /// let queue = Queue::builder().max_attempts(3).build();
    /// let attempts = Arc::new(Mutex::new(Vec::new()));
    /// let pool = {
    ///     let attempts = Arc::clone(&attempts);
    ///     Consumer::new(&queue)
    ///         .retry(RetryPolicy::fixed(std::time::Duration::ZERO))
    ///         .start_with_delivery(move |d| {
    ///             attempts.lock().unwrap().push(d.attempt());
    ///             // Flaky: succeeds on the third try.
    ///             if d.attempt() < 3 { Err("not yet") } else { Ok(()) }
    ///         })
    /// };
    /// queue.send("job").unwrap();
    /// queue.close();
    /// assert_eq!(pool.join().processed, 1);
    /// assert_eq!(*attempts.lock().unwrap(), [1, 2, 3]);
    /// ```
    pub fn start_with_delivery<H, E>(self, handler: H) -> ConsumerHandle<T>
    where
        H: Fn(&Delivery<T>) -> Result<(), E> + Send + Sync + 'static,
        E: Into<Failure>,
    {
        let handler = Arc::new(handler);
        self.spawn(move |pool, w| pool.run_single(w, &*handler))
    }

    /// Starts a pool whose handler takes up to `max_batch` messages at once (0 is taken as 1) and
    /// returns one outcome per message, in order.
    ///
    /// Each outcome is settled as [`start`](Consumer::start) settles one; the successes of a batch
    /// are acked together. A message without an outcome (a vector too short) is a failed attempt;
    /// extra outcomes are ignored. A panic fails every message of the batch.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (or the memory for the pool's
    /// [`workers`](Consumer::workers) cannot be had).
    pub fn start_batch<H, E>(self, max_batch: usize, handler: H) -> ConsumerHandle<T>
    where
        H: Fn(&[&Message<T>]) -> Vec<Result<(), E>> + Send + Sync + 'static,
        E: Into<Failure>,
    {
        let handler = Arc::new(handler);
        self.spawn(move |pool, w| pool.run_batch(w, max_batch, &*handler))
    }

    fn spawn<F>(self, run: F) -> ConsumerHandle<T>
    where
        F: Fn(&Pool<T>, usize) + Send + Sync + 'static,
    {
        let settings = self.settings();
        let pool = Arc::new(Pool::new(self.queue, settings));
        let run = Arc::new(run);
        // Threads are named after the queue. A name may hold any character, but a thread's
        // may not hold NUL (std panics on one): those are left out (found by review).
        let name: String = pool
            .queue
            .name()
            .unwrap_or("queue")
            .chars()
            .filter(|&c| c != '\0')
            .collect();
        let mut threads = Vec::new();
        let workers = pool.settings.workers;
        for w in 0..workers {
            let (p, run) = (Arc::clone(&pool), Arc::clone(&run));
            match thread::Builder::new()
                .name(format!("{name}-worker-{w}"))
                .spawn(move || run(&p, w))
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Stop the workers already started before giving up.
                    pool.ctl.lock().alive -= workers - w;
                    pool.begin_shutdown(std::time::Instant::now());
                    panic!("failed to start a consumer worker thread: {e}");
                }
            }
        }
        let p = Arc::clone(&pool);
        let t = thread::Builder::new()
            .name(format!("{name}-supervisor"))
            .spawn(move || p.supervise())
            .expect("failed to start a consumer supervisor thread");
        threads.push(t);
        ConsumerHandle::new(pool, threads)
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("workers", &self.settings.workers)
            .field("retry", &self.settings.retry)
            .field("max_in_flight", &self.settings.max_in_flight)
            .field("heartbeat", &self.settings.heartbeat)
            .field("max_lease", &self.settings.max_lease)
            .field("shutdown_timeout", &self.settings.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Queue<T> {
    /// Runs `handler` on this queue's messages in a pool of `workers` threads: the in-process
    /// queue trigger. Shorthand for `Consumer::new(self).workers(workers).start(handler)`; see
    /// [`Consumer`] for the options and [`Consumer::start`] for how outcomes are settled.
    ///
    /// The handler's error type is anything `Display`; a handler that never fails names one for
    /// the compiler, as in `Ok::<(), String>(())`. A message that always fails is retried until
    /// the queue's [`max_attempts`](crate::QueueBuilder::max_attempts) send it to the dead-letter
    /// queue (or discard it, counted); a queue with no such limit retries it forever, and then
    /// [`join`](crate::ConsumerHandle::join) never returns: use a shutdown.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (or the memory for the pool's
    /// [`workers`](Consumer::workers) cannot be had).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use switchboard::Queue;
    ///
    /// let queue = Queue::unbounded();
    /// let total = Arc::new(AtomicU64::new(0));
    /// let pool = {
    ///     let total = Arc::clone(&total);
    ///     queue.consume(2, move |msg| {
    ///         total.fetch_add(*msg.payload(), Ordering::Relaxed);
    ///         Ok::<(), String>(())
    ///     })
    /// };
    /// queue.send_batch(1..=100u64).unwrap();
    /// queue.close();
    /// assert_eq!(pool.join().processed, 100);
    /// assert_eq!(total.load(Ordering::Relaxed), 5050);
    /// ```
    pub fn consume<H, E>(&self, workers: usize, handler: H) -> ConsumerHandle<T>
    where
        H: Fn(&Message<T>) -> Result<(), E> + Send + Sync + 'static,
        E: Into<Failure>,
    {
        Consumer::new(self).workers(workers).start(handler)
    }

    /// Runs a batch `handler` (up to `max_batch` messages at once, one outcome per message) in a
    /// pool of `workers` threads. Shorthand for
    /// `Consumer::new(self).workers(workers).start_batch(max_batch, handler)`.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (or the memory for the pool's
    /// [`workers`](Consumer::workers) cannot be had).
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let dlq = Queue::unbounded();
    /// let queue = Queue::builder().dead_letter(&dlq, 1).build();
    /// queue.send_batch(0..10).unwrap();
    /// queue.close();
    /// let pool = queue.consume_batch(1, 4, |batch| {
    ///     batch
    ///         .iter()
    ///         .map(|m| if m.payload() % 5 == 0 { Err("multiple of five") } else { Ok(()) })
    ///         .collect()
    /// });
    /// let stats = pool.join();
    /// assert_eq!((stats.processed, stats.dead_lettered), (8, 2));
    /// assert_eq!(dlq.len(), 2);
    /// ```
    pub fn consume_batch<H, E>(
        &self,
        workers: usize,
        max_batch: usize,
        handler: H,
    ) -> ConsumerHandle<T>
    where
        H: Fn(&[&Message<T>]) -> Vec<Result<(), E>> + Send + Sync + 'static,
        E: Into<Failure>,
    {
        Consumer::new(self)
            .workers(workers)
            .start_batch(max_batch, handler)
    }
}
