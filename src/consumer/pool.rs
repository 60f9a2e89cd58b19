//! The pool's internals: the worker loops, the supervisor (heartbeat and shutdown deadline), and
//! the shared state they use.
//!
//! Invariants:
//! - Each worker records the leases it holds in its own `Held` table (its own lock, so workers do
//!   not contend), from just after the receive until just before the verdict. The supervisor
//!   reads the tables to extend leases (heartbeat) and, at a shutdown deadline, takes what is in
//!   them and releases those leases by key. A table it has closed accepts nothing more: a worker
//!   that receives after that gives its messages back at once.
//! - Counters are per worker (a cache line each) and summed by `stats`; the hot path touches no
//!   shared atomic except the stop flag.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::clock::Nanos;
use crate::consumer::retry::{RetryPolicy, XorShift};
use crate::consumer::{ConsumerStats, Failure};
use crate::error::RecvTimeoutError;
use crate::message::Message;
use crate::queue::{Delivery, LeaseKey, Leftovers, Queue};

/// How long an idle worker waits in one receive before it looks at the stop flag again. A
/// shutdown wakes blocked workers at once (`Queue::wake_receivers`); this is the backstop for a
/// wake-up token that another receiver of the same queue (another pool, say) took first and
/// holds while it goes on waiting. Ten looks a second per idle worker cost nothing measurable,
/// and bound such a shutdown's wait (it was 1 s: found by review).
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// The settings a pool runs with.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub workers: usize,
    pub retry: RetryPolicy,
    pub max_in_flight: Option<usize>,
    /// How often (real time) the supervisor looks at the leases; `None`: no heartbeat.
    pub heartbeat: Option<Duration>,
    pub max_lease: Duration,
    pub shutdown_timeout: Duration,
}

/// A lease a worker holds, as the supervisor sees it.
struct Tracked<T> {
    key: LeaseKey<T>,
    leased_at: Nanos,
    deadline: Nanos,
}

struct Held<T> {
    leases: Vec<Tracked<T>>,
    /// Set at the shutdown deadline: nothing more may be tracked.
    closed: bool,
}

#[derive(Default)]
struct Counters {
    processed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    panicked: AtomicU64,
    dead_lettered: AtomicU64,
    rejected: AtomicU64,
    lease_lost: AtomicU64,
    released: AtomicU64,
    handler_nanos: AtomicU64,
}

/// One worker's state, on cache lines of its own.
#[repr(align(128))]
struct Slot<T> {
    held: Mutex<Held<T>>,
    c: Counters,
}

/// A counting semaphore for `max_in_flight`.
struct Permits {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Permits {
    /// Takes between 1 and `want` permits, waiting for one; 0 once `stop` is set.
    fn acquire(&self, want: usize, stop: &AtomicBool) -> usize {
        let mut free = self.free.lock();
        loop {
            if stop.load(Ordering::Acquire) {
                return 0;
            }
            if *free > 0 {
                let n = want.min(*free);
                *free -= n;
                return n;
            }
            self.cv.wait_for(&mut free, POLL);
        }
    }

    fn release(&self, n: usize) {
        if n > 0 {
            *self.free.lock() += n;
            self.cv.notify_all();
        }
    }
}

/// Lifecycle state, under `Pool::ctl`.
pub(crate) struct Ctl {
    pub stopping: bool,
    pub deadline: Option<Instant>,
    /// Worker threads still running.
    pub alive: usize,
    /// The shutdown deadline passed and the leases of running handlers were released.
    pub expired: bool,
    /// How many handlers were running then (their workers held leases).
    pub stranded: usize,
}

pub(crate) struct Pool<T> {
    pub queue: Queue<T>,
    pub settings: Settings,
    /// The leases' visibility timeout, which the heartbeat renews.
    visibility: Duration,
    max_attempts: Option<u32>,
    stop: AtomicBool,
    pub ctl: Mutex<Ctl>,
    pub cv: Condvar,
    slots: Vec<Slot<T>>,
    permits: Option<Permits>,
    heartbeats: AtomicU64,
}

/// What a handler made of one message.
enum Outcome {
    Ok,
    Failed(Failure),
    Panicked(String),
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    let msg = if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.as_str()
    } else {
        "a non-string panic payload"
    };
    format!("panicked: {msg}")
}

/// Permits a worker holds, given back when dropped: a worker that a panic outside the handler's
/// guard ends (a payload's drop at the ack, say) gives them back as it goes, or the workers left
/// would wait for them for ever.
struct Taken<'a, T> {
    pool: &'a Pool<T>,
    n: usize,
}

impl<T> Drop for Taken<'_, T> {
    fn drop(&mut self) {
        if let Some(p) = &self.pool.permits {
            p.release(self.n);
        }
    }
}

impl<T> Taken<'_, T> {
    /// Gives back the permits beyond the first `n` (those of messages a batch did not get).
    fn keep(&mut self, n: usize) {
        if let (Some(p), true) = (&self.pool.permits, n < self.n) {
            p.release(self.n - n);
            self.n = n;
        }
    }
}

/// Decrements the live-worker count when a worker ends, however it ends.
struct Exit<'a, T>(&'a Pool<T>);

impl<T> Drop for Exit<'_, T> {
    fn drop(&mut self) {
        let mut ctl = self.0.ctl.lock();
        ctl.alive -= 1;
        self.0.cv.notify_all();
    }
}

impl<T> Pool<T> {
    pub(crate) fn new(queue: Queue<T>, settings: Settings) -> Pool<T> {
        let visibility = queue.visibility_timeout();
        let max_attempts = queue.max_attempts();
        // Reserved fallibly: a worker count beyond memory is the documented "cannot start a
        // thread" panic, not a capacity-overflow panic or an allocation-failure abort.
        let mut slots = Vec::new();
        if let Err(e) = slots.try_reserve_exact(settings.workers) {
            panic!(
                "failed to start a consumer worker thread: no memory for {} workers: {e}",
                settings.workers
            );
        }
        slots.extend((0..settings.workers).map(|_| Slot {
            held: Mutex::new(Held {
                leases: Vec::new(),
                closed: false,
            }),
            c: Counters::default(),
        }));
        let permits = settings.max_in_flight.map(|n| Permits {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        });
        Pool {
            queue,
            visibility,
            max_attempts,
            stop: AtomicBool::new(false),
            ctl: Mutex::new(Ctl {
                stopping: false,
                deadline: None,
                alive: settings.workers,
                expired: false,
                stranded: 0,
            }),
            cv: Condvar::new(),
            slots,
            permits,
            heartbeats: AtomicU64::new(0),
            settings,
        }
    }

    // ----- lifecycle --------------------------------------------------------------------------

    /// Stops the intake; the supervisor releases what is still held at `deadline` (the earlier
    /// one if a shutdown was already under way).
    pub(crate) fn begin_shutdown(&self, deadline: Instant) {
        // SeqCst: pairs with the load a worker's receive makes after announcing its wait, so
        // that either it sees the flag or the wake-up below sees it waiting.
        self.stop.store(true, Ordering::SeqCst);
        self.queue.wake_receivers();
        {
            let mut ctl = self.ctl.lock();
            ctl.stopping = true;
            ctl.deadline = Some(ctl.deadline.map_or(deadline, |d| d.min(deadline)));
            self.cv.notify_all();
        }
        if let Some(p) = &self.permits {
            let _lock = p.free.lock();
            p.cv.notify_all();
        }
    }

    /// Tracks leases for worker `w`; false (tracking nothing) once its table is closed.
    fn track(&self, w: usize, ds: &[Delivery<T>]) -> bool {
        let mut held = self.slots[w].held.lock();
        if held.closed {
            return false;
        }
        let vis = u64::try_from(self.visibility.as_nanos()).unwrap_or(u64::MAX);
        held.leases.extend(ds.iter().map(|d| {
            // Leased one visibility timeout before its first deadline: no clock read needed.
            let deadline = d.deadline_nanos();
            Tracked {
                key: d.key(),
                leased_at: deadline.saturating_sub(vis),
                deadline,
            }
        }));
        true
    }

    fn untrack(&self, w: usize) {
        self.slots[w].held.lock().leases.clear();
    }

    /// The supervisor: heartbeats until the workers are gone, and enforces the shutdown deadline.
    pub(crate) fn supervise(&self) {
        loop {
            {
                let mut ctl = self.ctl.lock();
                if ctl.alive == 0 {
                    return;
                }
                if ctl.stopping && ctl.deadline.is_some_and(|d| Instant::now() >= d) {
                    drop(ctl);
                    let stranded = self.release_all();
                    let mut ctl = self.ctl.lock();
                    ctl.expired = true;
                    ctl.stranded = stranded;
                    self.cv.notify_all();
                    return;
                }
                // A heartbeat too far off to express (Duration::MAX, say) never ticks.
                let tick = self
                    .settings
                    .heartbeat
                    .and_then(|i| Instant::now().checked_add(i));
                let wake = match (tick, ctl.deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match wake {
                    Some(at) => {
                        self.cv.wait_until(&mut ctl, at);
                    }
                    None => self.cv.wait(&mut ctl),
                }
            }
            if self.settings.heartbeat.is_some() {
                // An extension runs the queue's timers, and what they discard drops on the way
                // out: a payload's drop is user code. Such a drop runs here only if the
                // supervisor is left with the last handle on a discarded message by a holder
                // letting go on another thread at that moment (a race; no test makes it). A
                // panic there must not end the supervisor, or the heartbeats would stop and the
                // shutdown deadline would go unenforced: it is retried at the next tick.
                let _ = catch_unwind(AssertUnwindSafe(|| self.heartbeat()));
            }
        }
    }

    /// Extends every held lease with less than half its visibility timeout left, by the
    /// visibility timeout, never past `max_lease` after it was received.
    fn heartbeat(&self) {
        let vis = self.visibility;
        let half = u64::try_from((vis / 2).as_nanos()).unwrap_or(u64::MAX);
        for slot in &self.slots {
            // On the real clock, time left moves in coarse ticks (4 ms with HZ=250): a lease
            // looks due a tick early, or a short visibility timeout (8 ms and under) never
            // shows less than half left before it runs out, and a 16 ms one only for the one
            // tick a heartbeat may miss (found by review: such a slow handler's message went
            // to a second worker with the heartbeat on).
            let due_within = |t: &Tracked<T>| {
                let tick = u64::try_from(t.key.clock_resolution().as_nanos()).unwrap_or(0);
                due(t.deadline.saturating_sub(t.key.now()), half, tick)
            };
            // Chosen under the worker's lock, extended after it: an extension runs the queue's
            // timers, and what they discard drops on the way out (a payload's drop is user code,
            // which must not run under a lock of ours; found by review).
            let due: Vec<(LeaseKey<T>, Nanos, Nanos)> = slot
                .held
                .lock()
                .leases
                .iter()
                .filter(|t| due_within(t))
                .map(|t| {
                    let limit = crate::clock::add(t.leased_at, self.settings.max_lease);
                    (t.key.clone(), t.deadline, limit)
                })
                .collect();
            for (key, deadline, limit) in due {
                // The extension is worked out now, not when the lease was chosen: the clock may
                // have moved since, and a lease never goes past `max_lease` (found by review).
                let now = key.now();
                let target = crate::clock::add(now, vis).min(limit);
                if target <= deadline.max(now) {
                    continue;
                }
                // The queue reads its clock again, under its lock: `extend_within` keeps the
                // lease inside `limit` even if the clock moved since `now` was read.
                if let Ok(d) = key.extend_within(Duration::from_nanos(target - now), limit) {
                    self.heartbeats.fetch_add(1, Ordering::Relaxed);
                    let mut held = slot.held.lock();
                    if let Some(t) = held.leases.iter_mut().find(|t| t.key.is(&key)) {
                        t.deadline = d;
                    }
                }
            }
        }
    }

    /// At the shutdown deadline: gives back every lease still held, and closes the tables.
    /// Returns how many workers held leases (were running their handler).
    fn release_all(&self) -> usize {
        let mut stranded = 0;
        for slot in &self.slots {
            let leases = {
                let mut held = slot.held.lock();
                held.closed = true;
                std::mem::take(&mut held.leases)
            };
            stranded += usize::from(!leases.is_empty());
            for t in leases {
                // Every lease is released even if a discarded payload panics in its drop on
                // the way (see `supervise`); the one whose release panicked is left out of the
                // count.
                if let Ok(Ok(())) = catch_unwind(AssertUnwindSafe(|| t.key.release())) {
                    slot.c.released.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        stranded
    }

    /// How many workers are running their handler now (they hold leases).
    pub(crate) fn running(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !s.held.lock().leases.is_empty())
            .count()
    }

    // ----- workers ----------------------------------------------------------------------------

    fn take_permits(&self, want: usize) -> Option<Taken<'_, T>> {
        let n = match &self.permits {
            None => 0,
            Some(p) => match p.acquire(want, &self.stop) {
                0 => return None,
                n => n,
            },
        };
        Some(Taken { pool: self, n })
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Gives back deliveries received after the shutdown deadline, as if never received.
    fn give_back(&self, w: usize, ds: Vec<Delivery<T>>) {
        self.slots[w]
            .c
            .released
            .fetch_add(ds.len() as u64, Ordering::Relaxed);
        // Not a delivery any handler saw: its attempt is not spent (a drop would count one, and
        // dead-letter a message on its last attempt unhandled).
        for d in ds {
            d.unlease();
        }
    }

    /// The loop of a worker running a one-message handler.
    pub(crate) fn run_single<H, E>(&self, w: usize, handler: &H)
    where
        H: Fn(&Delivery<T>) -> Result<(), E>,
        E: Into<Failure>,
    {
        let _exit = Exit(self);
        let mut rng = XorShift::seeded(w as u64);
        // What the verdicts let go of, dropped once they are counted (see `settle`).
        let mut later = Leftovers::default();
        // The end of the last handler call doubles as "now" for the next receive's deadline
        // (saving a clock read per message); a stale one only makes that receive time out early.
        let mut last: Option<Instant> = None;
        while !self.stopped() {
            let Some(permits) = self.take_permits(1) else {
                break;
            };
            let deadline = last.take().unwrap_or_else(Instant::now) + POLL;
            let d = match self.queue.receive_until(deadline, &self.stop) {
                Ok(d) => d,
                Err(e) => {
                    drop(permits);
                    match e {
                        RecvTimeoutError::Timeout => continue,
                        RecvTimeoutError::Closed => break,
                    }
                }
            };
            if !self.track(w, std::slice::from_ref(&d)) {
                self.give_back(w, vec![d]);
                drop(permits);
                break;
            }
            let start = Instant::now();
            // The error's reason is written inside the guard too: a `Display` that panics is a
            // panicking handler, not a dead worker.
            let result = catch_unwind(AssertUnwindSafe(|| handler(&d).map_err(Into::into)));
            last = Some(self.add_time(w, start));
            self.untrack(w);
            let outcome = match result {
                Ok(Ok(())) => Outcome::Ok,
                Ok(Err(reason)) => Outcome::Failed(reason),
                Err(p) => Outcome::Panicked(panic_message(&*p)),
            };
            self.settle(w, d, outcome, &mut rng, &mut later);
            // Let go of the message before its permit: `max_in_flight` caps what the pool holds.
            later.clear();
            drop(permits);
        }
    }

    /// The loop of a worker running a batch handler.
    pub(crate) fn run_batch<H, E>(&self, w: usize, max: usize, handler: &H)
    where
        H: Fn(&[&Message<T>]) -> Vec<Result<(), E>>,
        E: Into<Failure>,
    {
        let _exit = Exit(self);
        let mut rng = XorShift::seeded(w as u64);
        let mut later = Leftovers::default();
        let max = max.max(1);
        while !self.stopped() {
            let Some(mut permits) = self.take_permits(max) else {
                break;
            };
            let want = if self.permits.is_some() {
                permits.n
            } else {
                max
            };
            let ds = match self
                .queue
                .receive_many_until(want, Instant::now() + POLL, &self.stop)
            {
                Ok(ds) if ds.is_empty() => {
                    drop(permits);
                    continue;
                }
                Ok(ds) => ds,
                Err(_) => {
                    drop(permits);
                    break;
                }
            };
            // A batch smaller than the permits taken leaves the rest to the other workers.
            permits.keep(ds.len());
            if !self.track(w, &ds) {
                self.give_back(w, ds);
                drop(permits);
                break;
            }
            let start = Instant::now();
            let result = {
                let msgs: Vec<&Message<T>> = ds.iter().map(|d| d.message()).collect();
                // The outcomes (errors' texts included) are made inside the guard: a `Display`
                // that panics fails the batch like a panicking handler.
                catch_unwind(AssertUnwindSafe(|| {
                    handler(&msgs)
                        .into_iter()
                        .take(msgs.len())
                        .map(|r| match r {
                            Ok(()) => Outcome::Ok,
                            Err(e) => Outcome::Failed(e.into()),
                        })
                        .collect::<Vec<_>>()
                }))
            };
            let _ = self.add_time(w, start);
            self.untrack(w);
            let mut outcomes: Vec<Outcome> = match result {
                Ok(outcomes) => outcomes,
                Err(p) => {
                    let msg = panic_message(&*p);
                    ds.iter().map(|_| Outcome::Panicked(msg.clone())).collect()
                }
            };
            while outcomes.len() < ds.len() {
                outcomes.push(Outcome::Failed(Failure::retry(
                    "the batch handler returned no outcome for this message",
                )));
            }
            // Every message of the batch gets its verdict, counted, before any payload drops
            // (see `settle`): one whose drop panics must not leave the rest unsettled, to come
            // back as abandoned though the handler processed them.
            let mut oks = Vec::new();
            for (d, o) in ds.into_iter().zip(outcomes) {
                match o {
                    Outcome::Ok => oks.push(d),
                    o => self.settle(w, d, o, &mut rng, &mut later),
                }
            }
            if !oks.is_empty() {
                let n = oks.len() as u64;
                let lost = self.queue.ack_many_keeping(oks, &mut later).len() as u64;
                let c = &self.slots[w].c;
                c.processed.fetch_add(n - lost, Ordering::Relaxed);
                c.lease_lost.fetch_add(lost, Ordering::Relaxed);
            }
            // Let go of the batch before its permits: `max_in_flight` caps what the pool holds.
            later.clear();
            drop(permits);
        }
    }

    /// Adds the time since `start` to worker `w`'s handler time; returns now.
    fn add_time(&self, w: usize, start: Instant) -> Instant {
        let end = Instant::now();
        let ns = u64::try_from((end - start).as_nanos()).unwrap_or(u64::MAX);
        self.slots[w]
            .c
            .handler_nanos
            .fetch_add(ns, Ordering::Relaxed);
        end
    }

    /// The verdict: ack on success; on failure, retry after the policy's delay, or dead-letter
    /// with the failure as the reason when this was the message's last attempt. What it lets go
    /// of (the message, when acked or discarded) is left in `later`: a payload's drop is user
    /// code, and one that panics (ending the worker) must find the verdict counted (found by an
    /// audit of payload drops: the count came after the drop, and the panic left it out).
    fn settle(
        &self,
        w: usize,
        d: Delivery<T>,
        outcome: Outcome,
        rng: &mut XorShift,
        later: &mut Leftovers<T>,
    ) {
        let c = &self.slots[w].c;
        let (reason, panicked, retry) = match outcome {
            Outcome::Ok => {
                let counter = match d.ack_keeping(later) {
                    Ok(()) => &c.processed,
                    Err(_) => &c.lease_lost,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Outcome::Failed(f) => {
                let retry = f.is_retry();
                (f.reason, false, retry)
            }
            Outcome::Panicked(r) => (r, true, true),
        };
        c.failed.fetch_add(1, Ordering::Relaxed);
        if panicked {
            c.panicked.fetch_add(1, Ordering::Relaxed);
        }
        let attempt = d.attempt();
        let counter = if !retry || self.max_attempts.is_some_and(|m| attempt >= m) {
            match d.reject_keeping(reason, later) {
                Ok(()) => {
                    if !retry {
                        c.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    &c.dead_lettered
                }
                Err(_) => &c.lease_lost,
            }
        } else {
            let delay = self.settings.retry.delay_with(attempt, rng);
            match d.nack_after_keeping(delay, later) {
                Ok(()) => &c.retried,
                Err(_) => &c.lease_lost,
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    // ----- introspection ----------------------------------------------------------------------

    pub(crate) fn stats(&self) -> ConsumerStats {
        let mut s = ConsumerStats {
            heartbeats: self.heartbeats.load(Ordering::Relaxed),
            workers: self.ctl.lock().alive,
            ..ConsumerStats::default()
        };
        let mut nanos = 0u64;
        for slot in &self.slots {
            let c = &slot.c;
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            s.processed += get(&c.processed);
            s.failed += get(&c.failed);
            s.retried += get(&c.retried);
            s.panicked += get(&c.panicked);
            s.dead_lettered += get(&c.dead_lettered);
            s.rejected += get(&c.rejected);
            s.lease_lost += get(&c.lease_lost);
            s.released += get(&c.released);
            nanos = nanos.saturating_add(get(&c.handler_nanos));
            s.in_flight += slot.held.lock().leases.len();
        }
        s.handler_time = Duration::from_nanos(nanos);
        s
    }
}

/// Whether the heartbeat extends a lease with `left` nanoseconds to go, given half the
/// visibility timeout and the clock's tick (its resolution): a tick's margin, so that the last
/// reading before the lease runs out, a tick or less from its end, is always due.
fn due(left: Nanos, half: Nanos, tick: Nanos) -> bool {
    left < half.saturating_add(tick)
}

#[cfg(test)]
mod tests {
    use super::due;

    const MS: u64 = 1_000_000;

    /// On a clock that moves in ticks, the time left takes the values `vis - k * tick`. The
    /// heartbeat must see one of them as due before the lease runs out (left 0): with the
    /// last reading before that (a tick or less to go) due, the whole tick before expiry is
    /// its window. Without the tick's margin, an 8 ms lease on a 4 ms clock showed 8, 4, 0
    /// and never less than half left.
    #[test]
    fn the_last_reading_before_expiry_is_always_due() {
        for tick in [0, MS, 4 * MS, 10 * MS] {
            for vis in [5 * MS, 8 * MS, 12 * MS, 16 * MS, 100 * MS, 30_000 * MS] {
                if vis <= tick {
                    continue;
                }
                let half = vis / 2;
                // The first reading shows `vis` left, each later one a tick less; the last
                // one above 0 is the heartbeat's last chance.
                let step = tick.max(1);
                let last = vis - (vis - 1) / step * step;
                assert!(last > 0 && last <= step);
                assert!(due(last, half, tick), "vis {vis}, tick {tick}: {last} left");
                // A fresh lease is not extended again at once unless the tick is as coarse
                // as half the timeout.
                if tick < half {
                    assert!(!due(vis, half, tick), "vis {vis}, tick {tick}");
                }
            }
        }
    }
}
