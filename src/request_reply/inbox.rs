//! The private reply channel of one request: where its replies land, matched by construction.
//!
//! Each request (or scatter) gets its own `Inbox`; every copy of the request holds a
//! [`ReplyTo`](super::ReplyTo) counted in `live`. A reply is accepted while the inbox is open and
//! counted as late once the requester has stopped waiting (`close`); replies still queued at close
//! count as late too. When the last `ReplyTo` goes without replying, a waiter learns at once that
//! no more replies can come.
//!
//! The waiter spins briefly on `signal` (bumped on every reply and when `live` reaches zero)
//! before parking on the condition variable, as crossbeam-channel does: a responder that answers
//! within a few microseconds then costs no futex wake-up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::request::Reply;
use crate::message::CorrelationId;

/// Counters shared by a requester (or scatter-gather) and the inboxes of its requests.
#[derive(Default)]
pub(crate) struct Stats {
    pub requests: AtomicU64,
    pub replies: AtomicU64,
    pub late: AtomicU64,
    pub timed_out: AtomicU64,
    pub unanswered: AtomicU64,
    pub no_responder: AtomicU64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct State<Rep> {
    open: bool,
    /// The replies, in arrival order: the first inline (a request-reply allocates no buffer),
    /// the rest behind it.
    first: Option<Reply<Rep>>,
    rest: VecDeque<Reply<Rep>>,
}

impl<Rep> State<Rep> {
    fn push(&mut self, r: Reply<Rep>) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(r);
        } else {
            self.rest.push_back(r);
        }
    }

    fn pop(&mut self) -> Option<Reply<Rep>> {
        self.first.take().or_else(|| self.rest.pop_front())
    }
}

pub(crate) struct Inbox<Rep> {
    state: Mutex<State<Rep>>,
    ready: Condvar,
    /// Live `ReplyTo` handles.
    live: AtomicUsize,
    /// Bumped after every accepted reply and when `live` drops to zero.
    signal: AtomicUsize,
    /// Whether the waiter is parked, or about to: set under the lock before it checks `live`,
    /// so that a `release` that does not see it cannot be missed (the waiter then sees `live`
    /// at zero), and one that sees it takes the lock to notify.
    waiting: AtomicBool,
    pub(crate) correlation_id: CorrelationId,
    pub(crate) stats: Arc<Stats>,
}

/// What a wait found.
pub(crate) enum Next<Rep> {
    Reply(Reply<Rep>),
    /// No reply queued and no `ReplyTo` left: nothing more can come.
    Exhausted,
    Timeout,
}

/// Spin steps before parking: 2^0..2^6 spin-loop hints, then yields up to step 10.
const SPIN_LIMIT: u32 = 6;
const YIELD_LIMIT: u32 = 10;

impl<Rep> Inbox<Rep> {
    /// An open inbox with no `ReplyTo` yet (the first one is counted by `ReplyTo::new`).
    pub(crate) fn new(correlation_id: CorrelationId, stats: Arc<Stats>) -> Inbox<Rep> {
        Inbox {
            state: Mutex::new(State {
                open: true,
                first: None,
                rest: VecDeque::new(),
            }),
            ready: Condvar::new(),
            live: AtomicUsize::new(0),
            signal: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            correlation_id,
            stats,
        }
    }

    pub(crate) fn acquire(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    /// A `ReplyTo` went away.
    pub(crate) fn release(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.signal.fetch_add(1, Ordering::Release);
            // Only a parked waiter needs the lock taken (a spinning one sees `signal`).
            if self.waiting.load(Ordering::SeqCst) {
                let st = self.state.lock();
                self.ready.notify_one();
                drop(st);
            }
        }
    }

    /// Offers a reply: accepted while open, counted late (and handed back) once closed.
    pub(crate) fn offer(&self, reply: Reply<Rep>) -> Result<(), Reply<Rep>> {
        let mut st = self.state.lock();
        if !st.open {
            drop(st);
            Stats::bump(&self.stats.late);
            return Err(reply);
        }
        st.push(reply);
        if self.waiting.load(Ordering::Relaxed) {
            self.ready.notify_one();
        }
        drop(st);
        self.signal.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Whether replies are still awaited.
    pub(crate) fn is_open(&self) -> bool {
        self.state.lock().open
    }

    /// Waits for the next reply until `deadline`.
    pub(crate) fn wait(&self, deadline: Instant) -> Next<Rep> {
        let mut step = 0u32;
        loop {
            let seen = self.signal.load(Ordering::Acquire);
            {
                let mut st = self.state.lock();
                if let Some(r) = st.pop() {
                    return Next::Reply(r);
                }
                let park = step > YIELD_LIMIT;
                if park {
                    self.waiting.store(true, Ordering::SeqCst);
                }
                if self.live.load(Ordering::SeqCst) == 0 {
                    self.waiting.store(false, Ordering::Relaxed);
                    return Next::Exhausted;
                }
                if park {
                    if Instant::now() >= deadline {
                        self.waiting.store(false, Ordering::Relaxed);
                        return Next::Timeout;
                    }
                    self.ready.wait_until(&mut st, deadline);
                    self.waiting.store(false, Ordering::Relaxed);
                    continue;
                }
            }
            // Spin (then yield) until something happens, before parking.
            while step <= YIELD_LIMIT && self.signal.load(Ordering::Acquire) == seen {
                if step <= SPIN_LIMIT {
                    for _ in 0..(1u32 << step) {
                        std::hint::spin_loop();
                    }
                } else {
                    std::thread::yield_now();
                }
                step += 1;
            }
        }
    }

    /// Stops accepting replies; those queued and unread count as late. Returns how many.
    pub(crate) fn close(&self) -> usize {
        let mut st = self.state.lock();
        st.open = false;
        let first = st.first.take();
        let rest = std::mem::take(&mut st.rest);
        drop(st);
        let n = usize::from(first.is_some()) + rest.len();
        if n != 0 {
            self.stats.late.fetch_add(n as u64, Ordering::Relaxed);
        }
        // Dropped outside the lock (a reply's drop is user code).
        drop((first, rest));
        n
    }
}
