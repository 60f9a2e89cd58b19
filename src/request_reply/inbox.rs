//! The private reply channel of one request: where its replies land, matched by construction.
//!
//! Each request (or scatter) gets its own `Inbox` (a thread's finished one is reused once nobody
//! else holds it: `take`, `recycle`); every copy of the request holds a
//! [`ReplyTo`](super::ReplyTo) counted in `live`. A reply is accepted while the inbox is open and
//! counted as late once the requester has stopped waiting (`close`); replies still queued at close
//! count as late too. When the last `ReplyTo` goes without replying, a waiter learns at once that
//! no more replies can come.
//!
//! The waiter spins briefly on `signal` (bumped on every reply and when `live` reaches zero),
//! looking every spin-loop hint (`spin::poll`), then yields, before parking on the condition
//! variable: a responder that answers within a few microseconds then costs no futex wake-up.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::request::{Reply, ReplyTo};
use crate::message::{CorrelationId, ReplyMeta, ReturnAddress};
use crate::spin;

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
    /// The number of the next request copy (the request itself is 0): its replies carry it.
    copies: AtomicU32,
    /// Whether the waiter is parked, or about to: set under the lock before it checks `live`,
    /// so that a `release` that does not see it cannot be missed (the waiter then sees `live`
    /// at zero), and one that sees it takes the lock to notify.
    waiting: AtomicBool,
    /// Set when a service's gate dropped the request unread because its last responder had
    /// gone (`Gate::drain`): the requester then reports no responder, not an unanswered request.
    unserved: AtomicBool,
    pub(crate) correlation_id: CorrelationId,
    pub(crate) stats: Arc<Stats>,
    _gap: [u64; 8],
    /// Bumped after every accepted reply and when `live` drops to zero.
    signal: AtomicUsize,
}

thread_local! {
    /// The reply metadata of this thread's last request, kept for its next one. Its return
    /// address leads to that request's inbox, so the one spare gives both back.
    static SPARE: Cell<Option<ReplyMeta>> = const { Cell::new(None) };
}

/// Keeps a finished request's reply metadata (and through it the inbox) as this thread's spare;
/// [`Inbox::take`] reuses it once the messages and return addresses holding it are gone.
pub(crate) fn recycle(meta: ReplyMeta) {
    // The previous spare (if any) is dropped here.
    SPARE.with(|s| s.set(Some(meta)));
}

/// Closes an inbox when dropped: a conversation closes its reply channel however it ends, one
/// that user code unwinds (an endpoint, a payload's clone, a completion predicate) included, so
/// that replies sent after it go back to their responders and count as late.
pub(crate) struct Closing<'a, Rep>(pub(crate) &'a Inbox<Rep>);

impl<Rep> Drop for Closing<'_, Rep> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// What a wait found.
pub(crate) enum Next<Rep> {
    Reply(Reply<Rep>),
    /// No reply queued and no `ReplyTo` left: nothing more can come.
    Exhausted,
    Timeout,
}

/// The copy number of a reply sent through the request message's own return address (shared
/// by every copy of the message, so it cannot tell them apart): each such reply counts as from
/// a responder of its own.
pub(crate) const UNKNOWN_COPY: u32 = u32::MAX;

/// Yields before parking, after the spin (`spin::poll`).
const YIELDS: u32 = 4;

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
            copies: AtomicU32::new(1),
            _gap: [0; 8],
            signal: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            unserved: AtomicBool::new(false),
            correlation_id,
            stats,
        }
    }

    /// An open inbox for a new request, and the reply metadata (correlation id, return address)
    /// that leads to it: this thread's spare ones if they are of this reply type and nothing else
    /// holds them any more, else new ones. Reuse saves two allocations a request, made on this
    /// thread and freed on the responder's. It is safe because metadata nobody else holds is on
    /// no message, and an inbox only that metadata holds has no `ReplyTo` left that could reply
    /// (each holds the `Arc`), so nothing of the previous request can reach the new one.
    pub(crate) fn take(
        correlation_id: CorrelationId,
        stats: &Arc<Stats>,
    ) -> (Arc<Inbox<Rep>>, ReplyMeta)
    where
        Rep: Send + 'static,
    {
        if let Some(mut meta) = SPARE.with(Cell::take) {
            if let Some(inbox) = Inbox::reuse(&mut meta, correlation_id, stats) {
                return (inbox, meta);
            }
        }
        let inbox = Arc::new(Inbox::new(correlation_id, Arc::clone(stats)));
        let to = ReturnAddress::counting(ReplyTo::uncounted(Arc::clone(&inbox)));
        (inbox, ReplyMeta::new(correlation_id, to))
    }

    /// Opens the spare's inbox again for a new request, if nothing else holds either.
    fn reuse(
        meta: &mut ReplyMeta,
        correlation_id: CorrelationId,
        stats: &Arc<Stats>,
    ) -> Option<Arc<Inbox<Rep>>>
    where
        Rep: Send + 'static,
    {
        let (id, to) = meta.unique_mut()?;
        let inbox = to.unique_mut::<ReplyTo<Rep>>()?.inbox_mut();
        let i = Arc::get_mut(inbox)?;
        let st = i.state.get_mut();
        debug_assert!(st.first.is_none() && st.rest.is_empty());
        debug_assert_eq!(*i.live.get_mut(), 0);
        st.open = true;
        *i.waiting.get_mut() = false;
        *i.unserved.get_mut() = false;
        *i.copies.get_mut() = 1;
        i.correlation_id = correlation_id;
        if !Arc::ptr_eq(&i.stats, stats) {
            i.stats = Arc::clone(stats);
        }
        *id = correlation_id;
        Some(Arc::clone(inbox))
    }

    /// A number for a new request copy (see `ReplyTo::copy`).
    pub(crate) fn next_copy(&self) -> u32 {
        // Wraps after 2^32 copies of one request: at worst two copies then share a number.
        self.copies.fetch_add(1, Ordering::Relaxed) % UNKNOWN_COPY
    }

    pub(crate) fn acquire(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the request as dropped unread for want of a responder (see `unserved`). Called
    /// before the drop that releases its `ReplyTo`, so a waiter that finds `live` at zero
    /// sees it.
    pub(crate) fn mark_unserved(&self) {
        self.unserved.store(true, Ordering::SeqCst);
    }

    /// Whether a service's gate dropped the request unread.
    pub(crate) fn was_unserved(&self) -> bool {
        self.unserved.load(Ordering::SeqCst)
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

    /// Whether a responder may still reply (a `ReplyTo` is alive).
    pub(crate) fn has_live(&self) -> bool {
        self.live.load(Ordering::SeqCst) > 0
    }

    /// How many replies are queued, unread.
    pub(crate) fn queued(&self) -> usize {
        let st = self.state.lock();
        usize::from(st.first.is_some()) + st.rest.len()
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
                let park = step > YIELDS;
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
            if step == 0 {
                spin::poll(|| self.signal.load(Ordering::Acquire) != seen);
                step = 1;
            }
            while step <= YIELDS && self.signal.load(Ordering::Acquire) == seen {
                std::thread::yield_now();
                step += 1;
            }
        }
    }

    /// Stops accepting replies; those queued and unread count as late. Returns how many.
    pub(crate) fn close(&self) -> usize {
        let mut st = self.state.lock();
        st.open = false;
        if st.first.is_none() && st.rest.is_empty() {
            // The common end of a request: its one reply was taken.
            return 0;
        }
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
    use crate::message::Message;

    fn cid(n: u64) -> CorrelationId {
        CorrelationId::from_u64(n)
    }

    /// Ends a request as a requester does (close, let go, recycle), then takes an inbox for the
    /// next one: whether it is the same inbox, and the new inbox and metadata.
    fn finish_and_take(
        inbox: Arc<Inbox<u32>>,
        meta: ReplyMeta,
        next: u64,
        stats: &Arc<Stats>,
    ) -> (bool, Arc<Inbox<u32>>, ReplyMeta) {
        inbox.close();
        let ptr = Arc::as_ptr(&inbox);
        drop(inbox);
        recycle(meta);
        let (again, meta) = Inbox::<u32>::take(cid(next), stats);
        (Arc::as_ptr(&again) == ptr, again, meta)
    }

    #[test]
    fn a_recycled_inbox_and_its_metadata_are_reused_open_and_empty() {
        let stats = Arc::default();
        let (first, meta) = Inbox::<u32>::take(cid(1), &stats);
        let msg = Message::new(()).with_reply_kit(&meta);
        let to = ReplyTo::new(Arc::clone(&first));
        to.send(7).unwrap();
        assert!(matches!(first.wait(Instant::now()), Next::Reply(r) if r.body == 7));
        drop(msg);
        let (reused, second, meta) = finish_and_take(first, meta, 2, &stats);
        assert!(reused, "the spare is reused");
        assert_eq!(second.correlation_id, cid(2));
        let msg = Message::new(()).with_reply_kit(&meta);
        assert_eq!(msg.correlation_id(), Some(cid(2)), "the metadata follows");
        let on_msg = msg.reply_to().unwrap().get::<ReplyTo<u32>>().unwrap();
        assert_eq!(on_msg.correlation_id(), cid(2));
        assert!(second.is_open());
        // The metadata's address does not count as a copy that may reply...
        assert!(matches!(second.wait(Instant::now()), Next::Exhausted));
        // ...a clone of it does.
        let to = on_msg.clone();
        assert!(matches!(second.wait(Instant::now()), Next::Timeout));
        to.send(8).unwrap();
        assert!(matches!(second.wait(Instant::now()), Next::Reply(r) if r.body == 8));
    }

    #[test]
    fn an_inbox_with_a_live_return_address_is_not_reused() {
        let stats = Arc::default();
        let (first, meta) = Inbox::<u32>::take(cid(1), &stats);
        let stale = ReplyTo::new(Arc::clone(&first));
        let (reused, second, _meta) = finish_and_take(first, meta, 2, &stats);
        assert!(!reused, "still held by a return address");
        // The stale address's reply is late, and never reaches the new request.
        let _waiting = ReplyTo::new(Arc::clone(&second));
        assert!(stale.send(9).unwrap_err().is_late());
        assert!(matches!(second.wait(Instant::now()), Next::Timeout));
        assert_eq!(stats.late.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn metadata_still_on_a_message_is_not_reused() {
        let stats = Arc::default();
        let (first, meta) = Inbox::<u32>::take(cid(1), &stats);
        let kept = Message::new(()).with_reply_kit(&meta);
        let (reused, _second, meta) = finish_and_take(first, meta, 2, &stats);
        assert!(!reused, "still on a message");
        // The kept message's metadata is untouched by the new request.
        assert_eq!(kept.correlation_id(), Some(cid(1)));
        let m = Message::new(()).with_reply_kit(&meta);
        assert_eq!(m.correlation_id(), Some(cid(2)));
    }

    #[test]
    fn a_clone_of_the_metadata_address_keeps_the_requester_waiting() {
        let stats = Arc::default();
        let (inbox, meta) = Inbox::<u32>::take(cid(1), &stats);
        let msg = Message::new(()).with_reply_kit(&meta);
        let forwarded = msg.reply_to().cloned().unwrap();
        drop(msg);
        assert!(matches!(inbox.wait(Instant::now()), Next::Timeout));
        let copy = forwarded.clone();
        drop(forwarded);
        assert!(matches!(inbox.wait(Instant::now()), Next::Timeout));
        let to = copy.get::<ReplyTo<u32>>().unwrap().clone();
        drop(copy);
        to.send(4).unwrap();
        assert!(matches!(inbox.wait(Instant::now()), Next::Reply(r) if r.body == 4));
        assert!(matches!(inbox.wait(Instant::now()), Next::Exhausted));
        // Its metadata is free again once the copies are gone.
        assert!(finish_and_take(inbox, meta, 2, &stats).0);
    }

    #[test]
    fn a_spare_of_another_reply_type_is_replaced() {
        let stats = Arc::default();
        let (a, meta) = Inbox::<u32>::take(cid(1), &stats);
        a.close();
        drop(a);
        recycle(meta);
        let (b, _meta) = Inbox::<String>::take(cid(2), &stats);
        assert!(b.is_open());
        assert_eq!(b.correlation_id, cid(2));
    }

    #[test]
    fn a_message_with_metadata_of_its_own_gets_the_reply_metadata_copied_in() {
        let stats = Arc::default();
        let (inbox, meta) = Inbox::<u32>::take(cid(3), &stats);
        let m = Message::new(()).with_attr("k", "v").with_reply_kit(&meta);
        assert_eq!(m.correlation_id(), Some(cid(3)));
        assert_eq!(m.attr("k").and_then(|v| v.as_str()), Some("v"));
        let to = m.reply_to().unwrap().get::<ReplyTo<u32>>().unwrap().clone();
        to.send(1).unwrap();
        assert!(matches!(inbox.wait(Instant::now()), Next::Reply(r) if r.body == 1));
    }
}
