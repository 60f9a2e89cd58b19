//! The private reply channel of one request: where its replies land, matched by construction.
//!
//! Each request (or scatter) gets its own `Inbox` (a thread's finished one is reused once nobody
//! else holds it: `take`, `recycle`); every copy of the request holds a
//! [`ReplyTo`](super::ReplyTo) counted in `live`. A reply is accepted while the inbox is open and
//! counted as late once the requester has stopped waiting (`close`); replies still queued at close
//! count as late too. When the last `ReplyTo` goes without replying, a waiter learns at once that
//! no more replies can come.
//!
//! The waiter spins briefly on `signal` (bumped on every reply and when `live` reaches zero)
//! before parking on the condition variable, as crossbeam-channel does: a responder that answers
//! within a few microseconds then costs no futex wake-up.

use std::any::Any;
use std::cell::Cell;
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

/// `repr(C)` with a gap before `signal`: the waiter spins reading `signal`, and were it on the
/// line the responder writes (lock, reply, count) it would pull that line away between each of
/// those writes. Padding, not alignment: a 64-byte-aligned `Arc` would take the allocator's slow
/// aligned path on every request (measured: a slower round trip, not a faster one).
#[repr(C)]
pub(crate) struct Inbox<Rep> {
    /// What responders write: the replies, the live count and the waiter's parking flag.
    state: Mutex<State<Rep>>,
    ready: Condvar,
    /// Live `ReplyTo` handles.
    live: AtomicUsize,
    /// Whether the waiter is parked, or about to: set under the lock before it checks `live`,
    /// so that a `release` that does not see it cannot be missed (the waiter then sees `live`
    /// at zero), and one that sees it takes the lock to notify.
    waiting: AtomicBool,
    pub(crate) correlation_id: CorrelationId,
    pub(crate) stats: Arc<Stats>,
    _gap: [u64; 8],
    /// Bumped after every accepted reply and when `live` drops to zero.
    signal: AtomicUsize,
}

thread_local! {
    /// One finished inbox per thread, kept for the thread's next request (type-erased: a thread
    /// may run requesters of several reply types; a spare of another type is simply replaced).
    static SPARE: Cell<Option<Arc<dyn Any + Send + Sync>>> = const { Cell::new(None) };
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
            _gap: [0; 8],
            signal: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            correlation_id,
            stats,
        }
    }

    /// An open inbox for a new request: this thread's spare one if it has one of this type that
    /// nobody else holds any more, else a new one. Reuse saves an allocation per request; it is
    /// safe because an inbox nobody else holds has no `ReplyTo` left (each holds the `Arc`), so
    /// no reply to its previous request can reach it.
    pub(crate) fn take(correlation_id: CorrelationId, stats: &Arc<Stats>) -> Arc<Inbox<Rep>>
    where
        Rep: Send + 'static,
    {
        if let Some(spare) = SPARE.with(Cell::take) {
            if let Ok(mut inbox) = spare.downcast::<Inbox<Rep>>() {
                if let Some(i) = Arc::get_mut(&mut inbox) {
                    let st = i.state.get_mut();
                    debug_assert!(st.first.is_none() && st.rest.is_empty());
                    debug_assert_eq!(*i.live.get_mut(), 0);
                    st.open = true;
                    *i.waiting.get_mut() = false;
                    i.correlation_id = correlation_id;
                    if !Arc::ptr_eq(&i.stats, stats) {
                        i.stats = Arc::clone(stats);
                    }
                    return inbox;
                }
            }
        }
        Arc::new(Inbox::new(correlation_id, Arc::clone(stats)))
    }

    /// Keeps a closed inbox as this thread's spare, if nobody else holds it.
    pub(crate) fn recycle(mut inbox: Arc<Inbox<Rep>>)
    where
        Rep: Send + 'static,
    {
        if Arc::get_mut(&mut inbox).is_some() {
            // The previous spare (if any, of another type) is dropped here.
            SPARE.with(|s| s.set(Some(inbox)));
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

    /// Offers a reply from a `ReplyTo` that goes away with it: accepted while open, counted late
    /// (and handed back) once closed. Releases the handle's count in the same step, so that the
    /// waiter is signalled once, not once for the reply and again for the release.
    pub(crate) fn offer_and_release(&self, reply: Reply<Rep>) -> Result<(), Reply<Rep>> {
        let mut st = self.state.lock();
        let result = if st.open {
            st.push(reply);
            Ok(())
        } else {
            Err(reply)
        };
        // Under the lock: a waiter that finds `live` at zero also finds the reply.
        self.live.fetch_sub(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            self.ready.notify_one();
        }
        drop(st);
        self.signal.fetch_add(1, Ordering::Release);
        if result.is_err() {
            Stats::bump(&self.stats.late);
        }
        result
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_reply::request::ReplyTo;

    #[test]
    fn a_recycled_inbox_is_reused_open_and_empty() {
        let stats = Arc::default();
        let first = Inbox::<u32>::take(CorrelationId::from_u64(1), &stats);
        let ptr = Arc::as_ptr(&first);
        let to = ReplyTo::new(Arc::clone(&first));
        to.send(7).unwrap();
        assert!(matches!(first.wait(Instant::now()), Next::Reply(r) if r.body == 7));
        first.close();
        Inbox::recycle(first);

        let second = Inbox::<u32>::take(CorrelationId::from_u64(2), &stats);
        assert_eq!(Arc::as_ptr(&second), ptr, "the spare is reused");
        assert_eq!(second.correlation_id, CorrelationId::from_u64(2));
        assert!(second.is_open());
        assert!(matches!(second.wait(Instant::now()), Next::Exhausted));
        let to = ReplyTo::new(Arc::clone(&second));
        to.send(8).unwrap();
        assert!(matches!(second.wait(Instant::now()), Next::Reply(r) if r.body == 8));
    }

    #[test]
    fn an_inbox_with_a_live_return_address_is_not_recycled() {
        let stats = Arc::default();
        let first = Inbox::<u32>::take(CorrelationId::from_u64(1), &stats);
        let stale = ReplyTo::new(Arc::clone(&first));
        first.close();
        let ptr = Arc::as_ptr(&first);
        Inbox::recycle(first);
        let second = Inbox::<u32>::take(CorrelationId::from_u64(2), &stats);
        assert_ne!(Arc::as_ptr(&second), ptr, "still held by a return address");
        // The stale address's reply is late, and never reaches the new request.
        let _waiting = ReplyTo::new(Arc::clone(&second));
        assert!(stale.send(9).unwrap_err().is_late());
        assert!(matches!(second.wait(Instant::now()), Next::Timeout));
        assert_eq!(stats.late.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_spare_of_another_reply_type_is_replaced() {
        let stats = Arc::default();
        let a = Inbox::<u32>::take(CorrelationId::from_u64(1), &stats);
        a.close();
        Inbox::recycle(a);
        let b = Inbox::<String>::take(CorrelationId::from_u64(2), &stats);
        assert!(b.is_open());
        assert_eq!(b.correlation_id, CorrelationId::from_u64(2));
    }
}
