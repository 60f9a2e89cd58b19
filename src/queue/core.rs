//! The queue's shared state: the main lane (a crossbeam channel), the slow state under a mutex
//! (returned messages, delayed messages, leases), and the counters.
//!
//! Invariants:
//! - Fresh messages travel the main lane; everything else that becomes visible again (a returned
//!   lease, a due delayed message, a dead letter arriving, a redrive) goes to the ready lane, which
//!   is unbounded so that a put-back never waits and never fails (Drop cannot block).
//! - `accepted - popped` is the number of messages in the main lane (or being pushed into it, or
//!   being moved from it into a lease or out as expired: counted popped once there).
//!   `accepted` shares a word with the closed bit, so a send and `close` are totally ordered: a send
//!   that got in before the bit is counted, and receivers do not report `Closed` until every counted
//!   message was popped.
//! - `next_event` is `READY` when the ready lane holds something, else the earliest timer, else
//!   `NONE`. The plain path reads it once and touches nothing else of the slow state.
//! - Every state change a blocked receiver could be waiting for goes through `wake`/`wake_all`,
//!   which push `Wake` tokens into the main lane (the seam an async version will hook into).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel as cb;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::clock::{self, Clock, Nanos, Wake};
use crate::error::{
    AckError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::message::{DeadLetter, Message, MessageId};
use crate::queue::fifo::{group_of, Dedup, Groups, Seen};
use crate::queue::{Delivery, Queue, QueueStats, Sent};
use crate::spin;

pub(crate) const NONE: u64 = u64::MAX;
pub(crate) const READY: u64 = 0;

/// Keeps a hot atomic on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct Padded<T>(pub T);

/// A fresh message in the main lane: the message itself, nothing more. Its timestamp is its
/// enqueue time (every send stamps it): the lane's slot size is most of a send's cost, since the
/// cache lines a message fills are what moves between cores.
pub(crate) struct Fresh<T> {
    pub msg: Message<T>,
}

impl<T> Fresh<T> {
    #[inline]
    fn enqueued(&self) -> Nanos {
        self.msg.timestamp_nanos()
    }
}

/// What travels the main lane. `Message`'s non-zero id makes `Wake` free in size.
pub(crate) enum Slot<T> {
    Msg(Fresh<T>),
    Wake,
}

/// The allocation a leased message lives in, shared by its lease and its `Delivery` (and, once
/// the lease ran out, by whoever gets the message next). An ack takes the message out and keeps
/// the allocation as a spare for a later lease (`Slow::spare`), so that a steady stream of
/// leases and acks allocates nothing: with batches, allocating and freeing it was more than a
/// quarter of a leased receive's instructions. Empty only while spare.
pub(crate) struct Held<T>(Option<Message<T>>);

impl<T> Held<T> {
    #[inline]
    pub(crate) fn message(&self) -> &Message<T> {
        self.0
            .as_ref()
            .expect("a held message stays until its allocation is spare")
    }

    pub(crate) fn into_message(self) -> Message<T> {
        self.0
            .expect("a held message stays until its allocation is spare")
    }
}

/// What `Slow::recycle` leaves to drop after the lock: the acked message, if any, or the
/// handle on it that another holder shares.
pub(crate) type Recycled<T> = Result<Option<Message<T>>, Arc<Held<T>>>;

/// The most spare allocations a queue keeps: enough for a batch of leases, within about 4 KiB
/// (none when one alone is larger).
fn spare_max<T>() -> usize {
    (4096 / (std::mem::size_of::<Held<T>>() + 16)).min(64)
}

/// A message's body outside the main lane: owned, or shared with an expired lease's holder.
pub(crate) enum Body<T> {
    Owned(Message<T>),
    Shared(Arc<Held<T>>),
}

impl<T> Body<T> {
    fn message(&self) -> &Message<T> {
        match self {
            Body::Owned(m) => m,
            Body::Shared(m) => m.message(),
        }
    }

    /// Whether a plain receive can take the message by value now.
    fn ownable(&self) -> bool {
        match self {
            Body::Owned(_) => true,
            Body::Shared(a) => Arc::strong_count(a) == 1,
        }
    }

    fn into_owned(self) -> Result<Message<T>, Body<T>> {
        match self {
            Body::Owned(m) => Ok(m),
            Body::Shared(a) => Arc::try_unwrap(a)
                .map(Held::into_message)
                .map_err(Body::Shared),
        }
    }

    /// The body in an allocation of its own, a spare one if there is one.
    fn into_shared(self, spare: &mut Vec<Arc<Held<T>>>) -> Arc<Held<T>> {
        match self {
            Body::Owned(m) => match spare.pop() {
                Some(mut a) => {
                    let held = Arc::get_mut(&mut a).expect("a spare allocation is ours alone");
                    held.0 = Some(m);
                    a
                }
                None => Arc::new(Held(Some(m))),
            },
            Body::Shared(a) => a,
        }
    }
}

/// A message outside the main lane: delayed, returned, a dead letter, or waiting in a FIFO
/// group.
pub(crate) struct Entry<T> {
    pub body: Body<T>,
    /// Out of line, and none for a message that was never delivered, dead-lettered or moved:
    /// a delayed or FIFO message then waits in 32 bytes less (DESIGN's memory goal).
    pub history: Option<Box<Hist<T>>>,
}

/// An entry's history as kept: two words for a message back from its leases in its own queue
/// (the common case: how often and since when it was delivered), the whole record behind a
/// box of its own for a dead letter or a moved message. A returned message so waits in its
/// payload plus 48 bytes, the DESIGN's goal for a queued message (found by review: with the
/// whole record and its body still shared as during its lease, it took 144).
pub(crate) enum Hist<T> {
    Returned {
        attempts: u32,
        first_delivered: Nanos,
    },
    Full(Box<History<T>>),
}

impl<T> Hist<T> {
    fn into_history(self) -> History<T> {
        match self {
            Hist::Returned {
                attempts,
                first_delivered,
            } => History {
                attempts,
                first_delivered,
                ..History::default()
            },
            Hist::Full(h) => *h,
        }
    }

    fn full(&self) -> Option<&History<T>> {
        match self {
            Hist::Returned { .. } => None,
            Hist::Full(h) => Some(h),
        }
    }
}

/// What an entry brings from earlier deliveries, or from being dead-lettered or moved.
pub(crate) struct History<T> {
    /// When it came into this queue, if not when its message was stamped (a dead letter, a
    /// redriven message); 0 for the stamp.
    pub arrived: Nanos,
    pub attempts: u32,
    pub first_delivered: Nanos,
    /// Dead-letter information, set on the message itself only when a plain receive takes it.
    pub dead: Option<Box<DeadLetter>>,
    /// The queue a dead letter came from, for `redrive`.
    pub source: Option<std::sync::Weak<Shared<T>>>,
}

impl<T> History<T> {
    /// Boxed as small as it goes, or none when there is nothing to keep.
    fn boxed(self) -> Option<Box<Hist<T>>> {
        let returned = self.arrived == 0 && self.dead.is_none() && self.source.is_none();
        if !returned {
            return Some(Box::new(Hist::Full(Box::new(self))));
        }
        (self.attempts != 0 || self.first_delivered != 0).then(|| {
            Box::new(Hist::Returned {
                attempts: self.attempts,
                first_delivered: self.first_delivered,
            })
        })
    }
}

impl<T> Default for History<T> {
    fn default() -> Self {
        History {
            arrived: 0,
            attempts: 0,
            first_delivered: 0,
            dead: None,
            source: None,
        }
    }
}

impl<T> Entry<T> {
    /// The FIFO group of the entry's message.
    fn group(&self) -> &str {
        group_of(self.body.message())
    }

    fn fresh(f: Fresh<T>) -> Entry<T> {
        Entry {
            body: Body::Owned(f.msg),
            history: None,
        }
    }

    /// When the entry came into this queue: its message's stamp unless it came otherwise.
    fn enqueued(&self) -> Nanos {
        match self.full_history().map_or(0, |h| h.arrived) {
            0 => self.body.message().timestamp_nanos(),
            at => at,
        }
    }

    fn set_enqueued(&mut self, at: Nanos) {
        if self.full_history().is_some() || at != self.body.message().timestamp_nanos() {
            self.history_mut().arrived = at;
        }
    }

    fn attempts(&self) -> u32 {
        match self.history.as_deref() {
            None => 0,
            Some(Hist::Returned { attempts, .. }) => *attempts,
            Some(Hist::Full(h)) => h.attempts,
        }
    }

    /// The whole record, when the entry keeps one (a dead letter, a moved message).
    fn full_history(&self) -> Option<&History<T>> {
        self.history.as_deref().and_then(Hist::full)
    }

    /// The history, taken out.
    fn take_history(&mut self) -> History<T> {
        self.history
            .take()
            .map_or_else(History::default, |h| h.into_history())
    }

    /// Whether the entry is a dead letter: its record beside it. A record on the message itself
    /// does not count: only a plain receive writes one there, as the message leaves its queue,
    /// so a message carrying one was sent by hand, and is a message sent directly (as it is in
    /// the main lane, where nothing looks for a record).
    fn is_dead(&self) -> bool {
        self.full_history().is_some_and(|h| h.dead.is_some())
    }

    /// Whether a dead-letter record on the message, if any, can be cleared now: nobody else
    /// reads the body. Only the queue makes new handles on a body, under its lock, so under that
    /// lock the answer stays true.
    fn record_clearable(&self) -> bool {
        match &self.body {
            Body::Owned(_) => true,
            Body::Shared(h) => Arc::strong_count(h) == 1 || h.message().dead_letter().is_none(),
        }
    }

    /// The whole record, made from what the entry keeps.
    fn history_mut(&mut self) -> &mut History<T> {
        if self.full_history().is_none() {
            let h = self.take_history();
            self.history = Some(Box::new(Hist::Full(Box::new(h))));
        }
        match self.history.as_deref_mut() {
            Some(Hist::Full(h)) => h,
            _ => unreachable!("made whole above"),
        }
    }
}

struct Delayed<T> {
    due: Nanos,
    /// The order among equal due times, and in its top bit (`FRONT`) whether this is a FIFO
    /// message returned with `nack_after`: it goes back to the head of its group, which stays
    /// busy until then. One word for both keeps a delayed message within DESIGN's memory goal.
    seq: u64,
    entry: Entry<T>,
}

/// The bit of `Delayed::seq` that marks a message going back to the front of its group.
const FRONT: u64 = 1 << 63;

impl<T> Delayed<T> {
    fn key(&self) -> (Nanos, u64) {
        (self.due, self.seq & !FRONT)
    }

    fn front(&self) -> bool {
        self.seq & FRONT != 0
    }
}

impl<T> PartialEq for Delayed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl<T> Eq for Delayed<T> {}
impl<T> PartialOrd for Delayed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Delayed<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest due first.
        other.key().cmp(&self.key())
    }
}

/// An outstanding lease.
struct Lease<T> {
    held: Arc<Held<T>>,
    deadline: Nanos,
    enqueued: Nanos,
    attempts: u32,
    first_delivered: Nanos,
    dead: Option<Box<DeadLetter>>,
    /// FIFO queues: the slot of the message's group (see `Groups::release_at`); `u32::MAX` for
    /// none. A `u32` fits beside `attempts`, so standard leases grow no larger.
    group: u32,
    /// A dead letter's source queue, kept through a lease in the dead-letter queue so that a
    /// letter inspected on lease and put back can still be redriven.
    source: Option<std::sync::Weak<Shared<T>>>,
}

impl<T> Lease<T> {
    /// The message back out of its lease, with its history, to be returned or dead-lettered.
    /// Its body is the message itself again, and the allocation it was leased in a spare for
    /// the next lease, unless the holder of an expired lease still reads it (the holder that
    /// settles lets go of its handle first).
    fn into_entry(self, spare: &mut Vec<Arc<Held<T>>>) -> Entry<T> {
        let stamped = self.held.message().timestamp_nanos();
        let history = History {
            // 0: the message's own stamp, which it carries.
            arrived: if self.enqueued == stamped {
                0
            } else {
                self.enqueued
            },
            attempts: self.attempts,
            first_delivered: self.first_delivered,
            dead: self.dead,
            source: self.source,
        };
        let body = match Slow::recycle_into(spare, self.held) {
            Ok(Some(m)) => Body::Owned(m),
            Ok(None) => unreachable!("a leased allocation holds its message"),
            Err(shared) => Body::Shared(shared),
        };
        Entry {
            body,
            history: history.boxed(),
        }
    }
}

struct LeaseSlot<T> {
    /// The generation of the slot's lease (or of its last one): a key with another generation
    /// is stale.
    gen: u64,
    lease: Option<Lease<T>>,
}

/// Lease and lane bookkeeping above this many entries is given back when it empties: a burst
/// of leases, returned messages or delays does not pin its memory for the queue's life.
const KEEP_ENTRIES: usize = 64;

/// (deadline, slot, generation): a timer entry; stale when the slot moved on or the deadline
/// changed (lazy deletion, compacted when stale entries dominate).
type Timer = (Nanos, u32, u64);

#[derive(Default)]
struct Counters {
    sent_slow: u64,
    received_ready: u64,
    expired_main: u64,
    acked: u64,
    nacked: u64,
    abandoned: u64,
    lease_expired: u64,
    redelivered: u64,
    expired: u64,
    dead_lettered: u64,
    discarded: u64,
    redriven: u64,
}

pub(crate) struct Slow<T> {
    ready: VecDeque<Entry<T>>,
    delayed: BinaryHeap<Delayed<T>>,
    slots: Vec<LeaseSlot<T>>,
    free: Vec<u32>,
    live: usize,
    /// Calls of `shrink_idle` left before it looks at trimming the lease table again.
    table_check: usize,
    /// The generation of the next lease. One counter for all slots, so that a key of an ended
    /// lease never matches a later lease, even in a slot made again after `shrink_idle`; 64
    /// bits, so that it never wraps (a `u32` would after 2^32 leases, minutes at full speed,
    /// and a holder stalled that long could then settle another's lease; found by review).
    next_gen: u64,
    /// Timers of leases on the queue's default visibility timeout: deadlines arrive in order.
    fifo: VecDeque<Timer>,
    /// Timers of leases with another timeout, or extended.
    heap: BinaryHeap<Reverse<Timer>>,
    seq: u64,
    /// Alternate between the ready lane and the main lane while both hold messages.
    prefer_main: bool,
    /// FIFO queues keep every waiting message here, per group, instead of the lanes.
    groups: Option<Box<Groups<Entry<T>>>>,
    /// Made on the first de-duplicated send: most queues never need one.
    dedup: Option<Box<Dedup>>,
    /// Allocations of acked messages, for the next leases (see `Held`).
    spare: Vec<Arc<Held<T>>>,
    /// Messages made visible since the last `publish_next`: how many waiters to wake.
    new_ready: usize,
    /// The latest arrival time given to an entry from elsewhere (see `accept_entries`).
    last_arrival: Nanos,
    c: Counters,
}

impl<T> Slow<T> {
    fn new(fifo: bool) -> Self {
        Slow {
            groups: fifo.then(|| Box::new(Groups::new())),
            new_ready: 0,
            last_arrival: 0,
            dedup: None,
            spare: Vec::new(),
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            table_check: 0,
            next_gen: 0,
            fifo: VecDeque::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            prefer_main: false,
            c: Counters::default(),
        }
    }

    fn timer_valid(&self, (deadline, slot, gen): Timer) -> bool {
        // A slot cut off the table's top (`trim_table`) held no lease: its timers are stale.
        self.slots.get(slot as usize).is_some_and(|s| {
            s.gen == gen && s.lease.as_ref().is_some_and(|l| l.deadline == deadline)
        })
    }

    fn next_timer(&mut self) -> Nanos {
        while let Some(&t) = self.fifo.front() {
            if self.timer_valid(t) {
                break;
            }
            self.fifo.pop_front();
        }
        while let Some(&Reverse(t)) = self.heap.peek() {
            if self.timer_valid(t) {
                break;
            }
            self.heap.pop();
        }
        let mut next = NONE;
        if let Some(&(d, _, _)) = self.fifo.front() {
            next = next.min(d);
        }
        if let Some(&Reverse((d, _, _))) = self.heap.peek() {
            next = next.min(d);
        }
        if let Some(d) = self.delayed.peek() {
            next = next.min(d.due);
        }
        next
    }

    fn compact_timers(&mut self) {
        if self.fifo.len() > 64 && self.fifo.len() > 4 * self.live {
            let fifo = std::mem::take(&mut self.fifo);
            self.fifo = fifo.into_iter().filter(|t| self.timer_valid(*t)).collect();
        }
        if self.heap.len() > 64 && self.heap.len() > 4 * self.live {
            let heap = std::mem::take(&mut self.heap);
            self.heap = heap.into_iter().filter(|t| self.timer_valid(t.0)).collect();
        }
    }

    /// Drops timer entries of settled leases from the front of the in-order queue: with acks in
    /// delivery order (the common case) this keeps it as short as the leases outstanding.
    fn trim_stale_timers(&mut self) {
        while let Some(&t) = self.fifo.front() {
            if self.timer_valid(t) {
                break;
            }
            self.fifo.pop_front();
        }
    }

    /// Takes the message out of an acked lease's allocation, which it keeps as a spare when
    /// nobody else holds it (the acking `Delivery` let go of its handle first). What it returns
    /// is for the caller to drop once the lock is released, as a payload's drop is user code:
    /// the message, or the handle itself when another holder (an expired lease's) shares it,
    /// since that holder may let go on its thread meanwhile and leave the last handle here.
    #[inline]
    fn recycle(&mut self, held: Arc<Held<T>>) -> Recycled<T> {
        Slow::recycle_into(&mut self.spare, held)
    }

    /// `recycle`, into `spare`.
    #[inline]
    fn recycle_into(spare: &mut Vec<Arc<Held<T>>>, mut held: Arc<Held<T>>) -> Recycled<T> {
        let Some(h) = Arc::get_mut(&mut held) else {
            return Err(held);
        };
        let msg = h.0.take();
        if spare.len() < spare_max::<T>() {
            spare.push(held);
        }
        Ok(msg)
    }

    /// Gives back the memory of large bookkeeping that has emptied: the lease table once no
    /// lease is out (every timer is stale then), the ready lane and the delay heap once empty.
    #[inline]
    fn shrink_idle(&mut self) {
        // Every ack comes here: a queue whose tables are all small (the usual case) leaves after
        // three comparisons, before the branches below, each of which needs one of them large.
        if self.slots.len() <= KEEP_ENTRIES
            && self.ready.capacity() <= KEEP_ENTRIES
            && self.delayed.capacity() <= KEEP_ENTRIES
        {
            return;
        }
        self.shrink_large();
    }

    /// `shrink_idle` past its quick look.
    #[cold]
    fn shrink_large(&mut self) {
        if self.live == 0 && self.slots.len() > KEEP_ENTRIES {
            self.slots = Vec::new();
            self.free = Vec::new();
            self.fifo = VecDeque::new();
            self.heap = BinaryHeap::new();
        } else if self.slots.len() > KEEP_ENTRIES && self.live * 4 < self.slots.len() {
            // Mostly free, but a lease is out (on a busy queue one almost always is): trim from
            // time to time, every half table's worth of calls, so the work stays amortized.
            match self.table_check.checked_sub(1) {
                Some(n) => self.table_check = n,
                None => {
                    self.trim_table();
                    self.table_check = self.slots.len() / 2;
                }
            }
        }
        if self.ready.is_empty() && self.ready.capacity() > KEEP_ENTRIES {
            self.ready = VecDeque::new();
        } else if self.ready.capacity() > 4 * self.ready.len() + KEEP_ENTRIES {
            self.ready.shrink_to(2 * self.ready.len());
        }
        if self.delayed.is_empty() && self.delayed.capacity() > KEEP_ENTRIES {
            self.delayed = BinaryHeap::new();
        } else if self.delayed.capacity() > 4 * self.delayed.len() + KEEP_ENTRIES {
            self.delayed.shrink_to(2 * self.delayed.len());
        }
    }

    /// Gives back the top of a lease table left large by a burst while some lease stays out
    /// (found by review: a burst of 10,000 leases with one held through it kept 1.1 MB for as
    /// long as any lease was out). Later leases take the lowest free slots first, so that the
    /// top empties; the free slots at the top are cut off. Keys of leases in them ended long
    /// ago, and a slot made again later gets a new generation, so no stale key matches.
    fn trim_table(&mut self) {
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        let len = self
            .slots
            .iter()
            .rposition(|s| s.lease.is_some())
            .map_or(0, |i| i + 1);
        if len == self.slots.len() {
            return;
        }
        self.slots.truncate(len);
        self.free.retain(|&slot| (slot as usize) < len);
        let keep = len.max(KEEP_ENTRIES);
        if self.slots.capacity() > 2 * keep {
            self.slots.shrink_to(keep);
            self.free.shrink_to(keep);
        }
    }

    /// Whether the lease `(slot, gen)` is still out.
    fn holds(&self, slot: u32, gen: u64) -> bool {
        self.slots
            .get(slot as usize)
            .is_some_and(|s| s.gen == gen && s.lease.is_some())
    }

    /// Moves out of `batch` the deliveries whose lease has ended (run out while the batch was
    /// being filled) and whose message the batch leased again, keeping the order of the rest; the
    /// caller drops them after the lock (the batch would otherwise hold that message twice). An
    /// ended delivery whose message the batch did not take again stays: it is handed out as
    /// `receive` hands out a lease that ran out, so that the attempt it spent (perhaps the last,
    /// its message now dead-lettered) was spent on a delivery someone saw (found by review: a
    /// batch dropped it unseen).
    fn take_ended(&self, batch: &mut Vec<Delivery<T>>) -> Vec<Delivery<T>> {
        let held = |d: &Delivery<T>| {
            let (slot, gen, _) = d.lease_key();
            self.holds(slot, gen)
        };
        if batch.iter().all(held) {
            return Vec::new();
        }
        // Sorted, so that a large batch is not walked once per delivery.
        let mut again: Vec<MessageId> = batch.iter().filter(|d| held(d)).map(|d| d.id()).collect();
        again.sort_unstable();
        let (keep, twice) = std::mem::take(batch)
            .into_iter()
            .partition(|d| held(d) || again.binary_search(&d.id()).is_err());
        *batch = keep;
        twice
    }

    fn take_lease(&mut self, slot: u32, gen: u64) -> Option<Lease<T>> {
        let s = self.slots.get_mut(slot as usize)?;
        if s.gen != gen {
            return None;
        }
        let lease = s.lease.take()?;
        self.free.push(slot);
        self.live -= 1;
        Some(lease)
    }
}

/// Static configuration.
pub(crate) struct Config<T> {
    pub capacity: Option<usize>,
    pub visibility: Duration,
    pub dead_letter: Option<Queue<T>>,
    pub max_attempts: Option<u32>,
    pub retention: Option<Duration>,
    pub dead_letter_expired: bool,
    pub name: Option<String>,
    pub clock: Clock,
    pub fifo: bool,
    pub dedup_window: Duration,
    pub dedup_max: usize,
    pub dedup_key: Option<DedupKey<T>>,
}

/// A content-based de-duplication key function.
pub(crate) type DedupKey<T> = Arc<dyn Fn(&Message<T>) -> String + Send + Sync>;

/// How long a send may wait for room.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    Never,
    Until(Option<Instant>),
}

/// How a receive takes its message.
#[derive(Clone, Copy)]
pub(crate) enum How {
    /// At-most-once: the message leaves the queue.
    Plain,
    /// At-least-once, with this visibility timeout.
    Lease(Duration),
}

/// Where a lease stands, as its Delivery records it.
pub(crate) struct LeaseInfo {
    pub slot: u32,
    pub gen: u64,
    pub attempts: u32,
    pub first_delivered: Nanos,
    pub enqueued: Nanos,
    pub deadline: Nanos,
}

/// What a receive got.
pub(crate) enum Out<T> {
    Plain(Message<T>),
    Lease(Delivery<T>),
}

impl<T> Out<T> {
    /// The message of a plain receive.
    pub(crate) fn into_message(self) -> Message<T> {
        match self {
            Out::Plain(m) => m,
            Out::Lease(_) => unreachable!("a plain receive hands out messages"),
        }
    }

    /// The delivery of a leased receive.
    pub(crate) fn into_delivery(self) -> Delivery<T> {
        match self {
            Out::Lease(d) => d,
            Out::Plain(_) => unreachable!("a leased receive hands out deliveries"),
        }
    }
}

/// What leaves the queue under its lock (see `Leaving`), dealt with after the lock.
type Outgoing<T> = Vec<Leaving<T>>;

/// What settling leases lets go of, for the caller to drop (user code, which may panic) once
/// it has nothing more to settle: every delivery of a batch ack, on whatever queue (see
/// `Queue::ack_many`), or every verdict of a consumer pool's worker, counted.
pub(crate) struct Leftovers<T> {
    /// The acked messages, or the handles on them that an expired lease's holder shares.
    acked: Vec<Recycled<T>>,
    /// Messages discarded meanwhile (rejected or out of attempts with no dead-letter queue,
    /// expired).
    discarded: Vec<Entry<T>>,
    /// Settled deliveries: one whose lease had ended, or that was nacked or rejected, still
    /// holds its message, and may be the last to.
    pub(crate) deliveries: Vec<Delivery<T>>,
}

impl<T> Leftovers<T> {
    /// Drops what was left, keeping the room for the next round.
    pub(crate) fn clear(&mut self) {
        self.acked.clear();
        self.discarded.clear();
        self.deliveries.clear();
    }
}

impl<T> Default for Leftovers<T> {
    fn default() -> Self {
        Leftovers {
            acked: Vec::new(),
            discarded: Vec::new(),
            deliveries: Vec::new(),
        }
    }
}

/// An entry leaving the queue under its lock, dealt with once the lock is released (`forward`).
enum Leaving<T> {
    /// For the dead-letter queue.
    DeadLetter(Entry<T>),
    /// Discarded (expired, or out of attempts with no dead-letter queue): its payload drops
    /// after the lock, since a payload's drop is user code, which may use this queue.
    Discarded(Entry<T>),
}

/// What senders write: on a line of its own, apart from what receivers write.
#[derive(Default)]
struct SendSide {
    /// accepted-into-main-lane count << 1 | closed bit.
    state: AtomicU64,
    /// Senders waiting for room in the main lane: their messages are counted in `state` (so
    /// that `close` orders with them) but are not in the queue yet.
    blocked: AtomicU64,
    /// Enqueue times of every 64th accepted message, for the oldest-message age (a ring: it
    /// holds the last five blocks of 64 sends).
    samples: [AtomicU64; 5],
    /// The enqueue time of the first message accepted.
    first: AtomicU64,
}

/// What a send's sample overwrote (`Shared::sample`): the ring slot and its value, and the
/// first send's time, each if written.
#[derive(Clone, Copy, Default)]
struct Sampled {
    sample: Option<(usize, Nanos)>,
    first: Option<Nanos>,
    /// The time written.
    mine: Nanos,
}

/// What receivers write on every receive and when they block, on a line of its own so that a
/// receiver does not invalidate the line senders write.
#[derive(Default)]
struct RecvSide {
    /// Messages (not tokens) popped from the main lane.
    popped: AtomicU64,
    /// The enqueue time of the last message popped from the main lane: the head was sent after
    /// it, most often just after (the oldest-message age of a deep backlog).
    last_popped: AtomicU64,
    next_event: AtomicU64,
    waiters: AtomicUsize,
}

/// The waiting machinery of bounded and FIFO queues.
struct Waits {
    /// Signalled when a FIFO queue's waiting messages drop below capacity, and on close.
    room: Condvar,
    /// Wake tokens for receivers of a bounded queue, whose main lane must not carry them (a token
    /// left behind would take a message's room). Unbounded and FIFO queues use the main lane.
    bell: Option<(cb::Sender<()>, cb::Receiver<()>)>,
    /// Bounded queues (the only ones whose senders wait for room): dropped by `close` to wake
    /// senders blocked on a full main lane.
    close_tx: Mutex<Option<cb::Sender<()>>>,
    close_rx: Option<cb::Receiver<()>>,
}

/// `repr(C)`: the senders' line first, the receivers' line last, the read-mostly fields between,
/// so the two written lines are never neighbours (adjacent-line prefetchers pair lines).
#[repr(C)]
pub(crate) struct Shared<T> {
    send: Padded<SendSide>,
    tx: cb::Sender<Slot<T>>,
    rx: cb::Receiver<Slot<T>>,
    /// Made on first use (a lease, a delay, a FIFO or de-duplicated send, stats): a queue used
    /// only through the plain path never pays for it, and in its own allocation the lock that
    /// leased receivers take per message shares no line with what every send reads.
    slow: OnceLock<Box<Mutex<Slow<T>>>>,
    /// Set once by `close`; read by every receive, so it lives apart from `state`, which every
    /// send writes.
    closed: AtomicBool,
    /// What only bounded and FIFO queues need, out of line so an idle unbounded queue stays small.
    waits: Option<Box<Waits>>,
    pub(crate) config: Config<T>,
    recv: Padded<RecvSide>,
}

const SAMPLE_SHIFT: u32 = 6;

/// A receive counted in `waiters` for as long as it lives: one that user code unwinds (the
/// drop of a message it discards) stops counting itself too, or every later wake-up would send
/// a token for a receiver that is not there.
struct Waiting<'a>(&'a AtomicUsize);

impl Waiting<'_> {
    fn announce(waiters: &AtomicUsize) -> Waiting<'_> {
        waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The wake tokens a receive took, passed on when it leaves, however it leaves: a receive that
/// unwound (an expired message's payload panicking in its drop) lost them, and a receiver
/// waiting since before a new deadline then slept past it (found by review).
struct PassOn<'a, T> {
    shared: &'a Shared<T>,
    taken: usize,
}

impl<T> Drop for PassOn<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.shared.pass_on(self.taken);
    }
}

/// Drops the duplicate a locked send handed back (after the lock: a payload's drop is user code).
fn drop_duplicate<T>((sent, duplicate): (Sent, Option<Message<T>>)) -> Sent {
    drop(duplicate);
    sent
}

/// Tries before a sender blocked for room parks: spins, then yields (crossbeam's `Backoff`).
pub(crate) const SPIN_STEPS: u32 = 10;

/// Yields of a blocked receiver before it announces its wait, after its spin (`spin::poll`).
const RECV_YIELDS: u32 = 4;

/// A sender waiting for room in a full bounded queue retries once `1 / ROOM_DIVISOR` of the
/// capacity (at least one slot) is free.
pub(crate) const ROOM_DIVISOR: usize = 8;

/// The largest capacity kept in a bounded channel, whose slots are all allocated up front. A
/// larger bound is counted instead, over a channel that allocates as it fills (see `counted`).
pub(crate) const ARRAY_MAX: usize = 1 << 16;

/// How long at most a sender waiting for room in a counted queue sleeps between looks.
pub(crate) const COUNTED_POLL: Duration = Duration::from_millis(1);

/// How many times at most a sender waiting for that much room yields before it parks.
const ROOM_YIELDS: u32 = 200;

/// How often a plain receiver blocked on ready messages that it cannot own yet (still held by
/// an expired lease's holder, which wakes only the queue it leased from and that queue's
/// dead-letter queue) looks again: bounds the wait of a message redriven to a third queue.
const SHARED_POLL: Duration = Duration::from_millis(1);

/// One step of a sender's wait for room with hysteresis (see `Shared::send_waiting`): spins or
/// yields as `backoff` does, then tells whether to try the send: once `roomy`, and at the last
/// step in any case, after yielding (a bounded number of times) until `roomy` or `give_up`.
///
/// A wait that begins given up (its deadline spent on the earlier targets of a fan-out, a
/// publish's other subscriptions or chained queues) tries at once, with no spin or yield: each
/// full target after the deadline cost a whole backoff, and a 10 ms publish to 2,000 full
/// subscriptions took seconds on a busy machine (found by review).
pub(crate) fn room_step(step: u32, roomy: impl Fn() -> bool, give_up: impl Fn() -> bool) -> bool {
    if step == 0 && give_up() {
        return true;
    }
    backoff(step);
    if step + 1 < SPIN_STEPS {
        return roomy();
    }
    for _ in 0..ROOM_YIELDS {
        if roomy() || give_up() {
            break;
        }
        std::thread::yield_now();
    }
    true
}

#[inline]
fn backoff(step: u32) {
    if step < 6 {
        for _ in 0..1u32 << step {
            std::hint::spin_loop();
        }
    } else {
        std::thread::yield_now();
    }
}

impl<T> Shared<T> {
    pub(crate) fn new(config: Config<T>) -> Arc<Shared<T>>
    where
        T: Send + Sync + 'static,
    {
        // A FIFO queue keeps its messages in per-group queues; its channel carries wake tokens.
        let (tx, rx) = match config.capacity {
            Some(n) if !config.fifo && n <= ARRAY_MAX => cb::bounded(n),
            _ => cb::unbounded(),
        };
        let waits = (config.capacity.is_some() || config.fifo).then(|| {
            let bounded = config.capacity.is_some() && !config.fifo;
            let (close_tx, close_rx) = if bounded {
                let (tx, rx) = cb::bounded(0);
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            Box::new(Waits {
                room: Condvar::new(),
                bell: bounded.then(cb::unbounded),
                close_tx: Mutex::new(close_tx),
                close_rx,
            })
        });
        let shared = Arc::new(Shared {
            tx,
            rx,
            send: Padded::default(),
            recv: Padded(RecvSide {
                popped: AtomicU64::new(0),
                last_popped: AtomicU64::new(0),
                next_event: AtomicU64::new(NONE),
                waiters: AtomicUsize::new(0),
            }),
            slow: OnceLock::new(),
            closed: AtomicBool::new(false),
            waits,
            config,
        });
        let weak: std::sync::Weak<dyn Wake> = Arc::downgrade(&shared) as _;
        shared.config.clock.register(weak);
        shared
    }

    /// Whether the bound is counted over an unbounded channel: capacities above `ARRAY_MAX`,
    /// whose up-front slots would cost capacity times the slot size however little is queued
    /// (a capacity of `usize::MAX` is beyond what a bounded channel can even describe).
    #[inline]
    fn counted(&self) -> Option<usize> {
        self.config
            .capacity
            .filter(|&c| c > ARRAY_MAX && !self.config.fifo)
    }

    /// The waiting machinery (bounded and FIFO queues only).
    fn waits(&self) -> &Waits {
        self.waits
            .as_deref()
            .expect("bounded and FIFO queues have their waits")
    }

    /// The slow state, made on first use.
    #[inline]
    fn slow(&self) -> &Mutex<Slow<T>> {
        self.slow
            .get_or_init(|| Box::new(Mutex::new(Slow::new(self.config.fifo))))
    }

    #[inline]
    pub(crate) fn now(&self) -> Nanos {
        self.config.clock.nanos()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    // ----- waking -----------------------------------------------------------------------------

    /// Wakes up to `n` blocked receivers. The `SeqCst` load pairs with the `SeqCst` increment a
    /// receiver makes before its last check, so either it sees our change or we see it waiting.
    fn wake(&self, n: usize) {
        let waiting = self.recv.0.waiters.load(Ordering::SeqCst);
        for _ in 0..n.min(waiting) {
            let sent = match self.waits.as_ref().and_then(|w| w.bell.as_ref()) {
                Some((bell, _)) => bell.try_send(()).is_ok(),
                // A full main lane means receivers have messages and are not blocked.
                None => self.tx.try_send(Slot::Wake).is_ok(),
            };
            if !sent {
                break;
            }
        }
    }

    /// Wakes one blocked receiver (a stale holder let go of a shared message, say). The message
    /// may have moved on to the dead-letter queue (its last lease ran out, or it was rejected),
    /// still shared: a receiver waiting there for it is woken too.
    pub(crate) fn nudge(&self) {
        self.wake(1);
        if let Some(dlq) = &self.config.dead_letter {
            dlq.shared.wake(1);
        }
    }

    pub(crate) fn wake_all_waiters(&self) {
        self.wake(usize::MAX);
    }

    /// A new deadline (a lease): lower `next_event` to it if earlier, and wake a receiver to
    /// recompute its wait. `next_event` may run early (a settled lease's stale timer), never late.
    fn note_deadline(&self, at: Nanos) {
        // Usually an earlier lease's deadline is already published: no write at all then.
        if self.recv.0.next_event.load(Ordering::Acquire) <= at {
            return;
        }
        let before = self.recv.0.next_event.fetch_min(at, Ordering::SeqCst);
        if at < before {
            self.wake(1);
        }
    }

    /// Publishes the slow state's next event; wakes a receiver when it moved earlier.
    fn publish_next(&self, slow: &mut Slow<T>) {
        slow.shrink_idle();
        self.age_dedup(slow);
        let fifo_ready = slow.groups.as_deref().is_some_and(Groups::has_available);
        let next = if slow.ready.is_empty() && !fifo_ready {
            slow.next_timer()
        } else {
            READY
        };
        let before = self.recv.0.next_event.swap(next, Ordering::SeqCst);
        // Wake one waiter per message that became visible since the last publish; none when
        // nothing new came (a receiver that looked and could not take what is there must not
        // wake itself into a spin).
        let fresh = std::mem::take(&mut slow.new_ready);
        if next == READY && fresh > 0 {
            self.wake(fresh);
        } else if next < before {
            // Visible now, or an earlier deadline: one waiter recomputes its wait.
            self.wake(1);
        }
        if self.is_closed() && (fresh > 0 || next != before) {
            self.wake_all_waiters();
        }
    }

    // ----- sending ----------------------------------------------------------------------------

    /// Counts a send into the main lane, unless closed.
    #[inline]
    fn accept(&self) -> Result<u64, ()> {
        let s = self.send.0.state.fetch_add(2, Ordering::AcqRel);
        if s & 1 != 0 {
            self.unaccept();
            return Err(());
        }
        Ok(s >> 1)
    }

    /// Takes back a count for a send that did not happen.
    fn unaccept(&self) {
        let s = self.send.0.state.fetch_sub(2, Ordering::AcqRel);
        if s & 1 != 0 {
            // Receivers of a closed queue wait until every accepted message was popped.
            self.wake_all_waiters();
        }
    }

    /// Samples the enqueue time of every 64th accepted send (see `SendSide::samples`); says what
    /// it overwrote, to put back if the send is refused after all.
    #[inline]
    fn sample(&self, seq: u64, now: Nanos) -> Sampled {
        if seq & ((1 << SAMPLE_SHIFT) - 1) != 0 {
            return Sampled::default();
        }
        let first = (seq == 0).then(|| self.send.0.first.swap(now, Ordering::Relaxed));
        let i = (seq >> SAMPLE_SHIFT) as usize % self.send.0.samples.len();
        let sample = Some((i, self.send.0.samples[i].swap(now, Ordering::Relaxed)));
        Sampled {
            sample,
            first,
            mine: now,
        }
    }

    /// Samples again the time of a send that waited for room and went in later (it is
    /// stamped anew), unless it is not a sampled one; returns what `refuse` puts back then.
    fn resample(&self, mut sampled: Sampled, now: Nanos) -> Sampled {
        if let Some((i, _)) = sampled.sample {
            self.send.0.samples[i].store(now, Ordering::Relaxed);
        }
        if sampled.first.is_some() {
            self.send.0.first.store(now, Ordering::Relaxed);
        }
        sampled.mine = now;
        sampled
    }

    /// Takes back an accepted send that was refused (full, timed out, closed): what its sample
    /// overwrote first, then its count, so that a later send given the same number samples
    /// after it. Found by review: a refused send left its own time as the sample of the
    /// messages waiting, and `oldest_age` read 0 for messages 100 s old.
    #[cold]
    fn refuse(&self, sampled: Sampled) {
        // Only what this send wrote is put back: a send 320 numbers later, accepted while this
        // one waited for room, may have sampled the same slot of the ring since.
        let put_back = |cell: &AtomicU64, prev: Nanos| {
            let mine = sampled.mine;
            let _ = cell.compare_exchange(mine, prev, Ordering::Relaxed, Ordering::Relaxed);
        };
        if let Some((i, prev)) = sampled.sample {
            put_back(&self.send.0.samples[i], prev);
        }
        if let Some(prev) = sampled.first {
            put_back(&self.send.0.first, prev);
        }
        self.unaccept();
    }

    /// Stamps an accepted message's arrival (sampled for the oldest message's age); returns its
    /// id, for the sender's `Sent`, and what the sample overwrote (for `refuse`).
    #[inline]
    fn stamp_fresh(&self, seq: u64, msg: &mut Message<T>) -> (MessageId, Sampled) {
        let now = self.now();
        msg.stamp(now);
        let sampled = self.sample(seq, now);
        (msg.id(), sampled)
    }

    /// Whether a send must take the lock: FIFO queues, and de-duplication.
    #[inline]
    fn send_needs_lock(&self, msg: &Message<T>) -> bool {
        self.config.fifo || self.config.dedup_key.is_some() || msg.dedup_id().is_some()
    }

    #[inline]
    pub(crate) fn try_send(&self, msg: Message<T>) -> Result<Sent, TrySendError<T>> {
        if self.send_needs_lock(&msg) {
            return self
                .send_locked(msg, Wait::Never)
                .map(drop_duplicate)
                .map_err(|e| match e {
                    SendTimeoutError::Timeout(m) => TrySendError::Full(m),
                    SendTimeoutError::Closed(m) => TrySendError::Closed(m),
                });
        }
        self.try_send_main(msg)
    }

    #[inline]
    fn try_send_main(&self, mut msg: Message<T>) -> Result<Sent, TrySendError<T>> {
        let Ok(seq) = self.accept() else {
            return Err(TrySendError::Closed(msg));
        };
        if let Some(cap) = self.counted() {
            // Every message in the lane holds a count in `seq`, so this never admits one too
            // many (a concurrent send about to take its count back may refuse one too early).
            let popped = self.recv.0.popped.load(Ordering::Acquire);
            if seq.saturating_sub(popped) >= cap as u64 {
                self.unaccept();
                return Err(TrySendError::Full(msg));
            }
        }
        let (id, sampled) = self.stamp_fresh(seq, &mut msg);
        match self.tx.try_send(Slot::Msg(Fresh { msg })) {
            Ok(()) => Ok(Sent::Enqueued(id)),
            Err(e) => {
                self.refuse(sampled);
                match e.into_inner() {
                    Slot::Msg(f) => Err(TrySendError::Full(f.msg)),
                    Slot::Wake => unreachable!("a send carries a message"),
                }
            }
        }
    }

    /// `send` with no deadline, written to build its own result type: going through `send` and
    /// converting its error copied the result on the stack, which stalled on store forwarding
    /// (perf: about a tenth of a single-thread send and receive).
    #[inline]
    pub(crate) fn send_forever(&self, mut msg: Message<T>) -> Result<Sent, SendError<T>> {
        if self.send_needs_lock(&msg) || self.counted().is_some() {
            return self.send_forever_slow(msg);
        }
        let Ok(seq) = self.accept() else {
            return Err(SendError(msg));
        };
        let (id, sampled) = self.stamp_fresh(seq, &mut msg);
        match self.tx.try_send(Slot::Msg(Fresh { msg })) {
            Ok(()) => Ok(Sent::Enqueued(id)),
            Err(e) => self.send_forever_blocking(e.into_inner(), id, sampled),
        }
    }

    #[cold]
    #[inline(never)]
    fn send_forever_slow(&self, msg: Message<T>) -> Result<Sent, SendError<T>> {
        self.send(msg, None).map_err(|e| SendError(e.into_inner()))
    }

    #[cold]
    #[inline(never)]
    fn send_forever_blocking(
        &self,
        slot: Slot<T>,
        id: MessageId,
        sampled: Sampled,
    ) -> Result<Sent, SendError<T>> {
        match self.send_blocking(slot, None, sampled) {
            Ok(()) => Ok(Sent::Enqueued(id)),
            Err(e) => Err(SendError(e.into_inner())),
        }
    }

    #[inline]
    pub(crate) fn send(
        &self,
        msg: Message<T>,
        deadline: Option<Instant>,
    ) -> Result<Sent, SendTimeoutError<T>> {
        if self.send_needs_lock(&msg) {
            return self
                .send_locked(msg, Wait::Until(deadline))
                .map(drop_duplicate);
        }
        self.send_main(msg, deadline)
    }

    /// A send within a fan-out already under way (a chained queue's): as `try_send`
    /// (`Wait::Never`) or `send`, but a duplicate that de-duplication turns away is left in
    /// `later`, to drop (user code, which may panic) once that fan-out is over, rather than
    /// dropped here, in the middle of it (found by an audit of payload drops).
    pub(crate) fn send_keeping(
        &self,
        msg: Message<T>,
        wait: Wait,
        later: &mut Vec<Message<T>>,
    ) -> Result<Sent, SendTimeoutError<T>> {
        if self.send_needs_lock(&msg) {
            let (sent, duplicate) = self.send_locked(msg, wait)?;
            later.extend(duplicate);
            return Ok(sent);
        }
        match wait {
            Wait::Never => self.try_send_main(msg).map_err(|e| match e {
                TrySendError::Full(m) => SendTimeoutError::Timeout(m),
                TrySendError::Closed(m) => SendTimeoutError::Closed(m),
            }),
            Wait::Until(deadline) => self.send_main(msg, deadline),
        }
    }

    #[inline]
    fn send_main(
        &self,
        mut msg: Message<T>,
        deadline: Option<Instant>,
    ) -> Result<Sent, SendTimeoutError<T>> {
        if self.counted().is_some() {
            return self.send_counted(msg, deadline);
        }
        let Ok(seq) = self.accept() else {
            return Err(SendTimeoutError::Closed(msg));
        };
        let (id, sampled) = self.stamp_fresh(seq, &mut msg);
        let slot = Slot::Msg(Fresh { msg });
        let slot = match self.tx.try_send(slot) {
            Ok(()) => return Ok(Sent::Enqueued(id)),
            Err(e) => e.into_inner(),
        };
        self.send_blocking(slot, deadline, sampled)
            .map(|()| Sent::Enqueued(id))
    }

    /// The send of a queue whose bound is counted: no channel operation waits for room in it,
    /// so a sender that finds it full looks again, spinning, then yielding, then sleeping at
    /// most `COUNTED_POLL` between looks. Such a queue is full only with more than `ARRAY_MAX`
    /// messages waiting, behind which a millisecond more is no delay worth a wake-up path on
    /// every receive.
    #[cold]
    fn send_counted(
        &self,
        mut msg: Message<T>,
        deadline: Option<Instant>,
    ) -> Result<Sent, SendTimeoutError<T>> {
        let mut step = 0;
        loop {
            msg = match self.try_send_main(msg) {
                Ok(sent) => return Ok(sent),
                Err(TrySendError::Closed(m)) => return Err(SendTimeoutError::Closed(m)),
                Err(TrySendError::Full(m)) => m,
            };
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(SendTimeoutError::Timeout(msg));
            }
            if step < SPIN_STEPS {
                backoff(step);
                step += 1;
            } else {
                let nap = deadline.map_or(COUNTED_POLL, |d| (d - now).min(COUNTED_POLL));
                std::thread::sleep(nap);
            }
        }
    }

    /// Waits for room in the main lane, or for `close`, or for the deadline.
    #[cold]
    fn send_blocking(
        &self,
        slot: Slot<T>,
        deadline: Option<Instant>,
        sampled: Sampled,
    ) -> Result<(), SendTimeoutError<T>> {
        self.send.0.blocked.fetch_add(1, Ordering::AcqRel);
        let result = self.send_waiting(slot, deadline, sampled);
        self.send.0.blocked.fetch_sub(1, Ordering::AcqRel);
        result
    }

    fn send_waiting(
        &self,
        mut slot: Slot<T>,
        deadline: Option<Instant>,
        mut sampled: Sampled,
    ) -> Result<(), SendTimeoutError<T>> {
        // Spin briefly, then yield, before the heavier blocking select (which also watches for
        // `close`), like crossbeam's own send, with one difference: the retries wait until a
        // good part of the queue is free again (hysteresis). A sender that took each slot the
        // moment a receiver freed it would write the very cache line the receiver is reading,
        // message after message; measured with a leased consumer slower than its producer, that
        // contention tripled the cost of a message (`cargo bench --bench queue -- spsc_bounded`).
        let capacity = self.config.capacity.unwrap_or(usize::MAX);
        let room = (capacity / ROOM_DIVISOR).max(1);
        // A rendezvous queue (capacity 0) has no room to wait for: its sends meet receivers.
        let roomy = || capacity == 0 || capacity.saturating_sub(self.tx.len()) >= room;
        let give_up = || self.is_closed() || deadline.is_some_and(|d| Instant::now() >= d);
        // A message enters the queue when it gets room, however long it waited for it: each try
        // stamps it anew, so that its time-to-live, the queue's retention and its enqueue time
        // count from then (as a FIFO queue's waiting send is stamped when it goes in).
        let restamp = |slot: &mut Slot<T>, sampled: &mut Sampled| {
            if let Slot::Msg(f) = slot {
                let now = self.now();
                f.msg.stamp(now);
                *sampled = self.resample(*sampled, now);
            }
        };
        for step in 0..SPIN_STEPS {
            if !room_step(step, roomy, give_up) {
                continue;
            }
            restamp(&mut slot, &mut sampled);
            slot = match self.tx.try_send(slot) {
                Ok(()) => return Ok(()),
                Err(e) => e.into_inner(),
            };
            if give_up() {
                break;
            }
        }
        let into_msg = |s: Slot<T>| match s {
            Slot::Msg(f) => f.msg,
            Slot::Wake => unreachable!("a send carries a message"),
        };
        let close_rx = self
            .waits()
            .close_rx
            .as_ref()
            .expect("only bounded queues wait for room");
        let mut sel = cb::Select::new();
        let send_i = sel.send(&self.tx);
        let _close_i = sel.recv(close_rx);
        let op = match deadline {
            None => sel.select(),
            Some(d) => match sel.select_deadline(d) {
                Ok(op) => op,
                Err(_) => {
                    self.refuse(sampled);
                    return Err(SendTimeoutError::Timeout(into_msg(slot)));
                }
            },
        };
        if op.index() == send_i {
            restamp(&mut slot, &mut sampled);
            match op.send(&self.tx, slot) {
                Ok(()) => Ok(()),
                Err(e) => {
                    self.refuse(sampled);
                    Err(SendTimeoutError::Closed(into_msg(e.into_inner())))
                }
            }
        } else {
            // `close` dropped the other end: the channel reports disconnection.
            let _ = op.recv(close_rx);
            self.refuse(sampled);
            Err(SendTimeoutError::Closed(into_msg(slot)))
        }
    }

    /// The de-duplication key of a message: its dedup id, else the content key, if configured.
    fn dedup_key_of(&self, msg: &Message<T>) -> Option<String> {
        match msg.dedup_id() {
            Some(id) => Some(id.to_owned()),
            None => self.config.dedup_key.as_ref().map(|f| f(msg)),
        }
    }

    /// What the de-duplication window holds for `key` now.
    fn look_dedup(&self, slow: &mut Slow<T>, key: &str, now: Nanos) -> Seen {
        let window = u64::try_from(self.config.dedup_window.as_nanos()).unwrap_or(u64::MAX);
        Self::dedup(slow).look(key, now, window, self.config.dedup_max)
    }

    /// Forgets the de-duplication keys that aged out, whatever the traffic: not only at the next
    /// de-duplicated send (a burst of keys followed by plain sends kept them for ever).
    fn age_dedup(&self, slow: &mut Slow<T>) {
        if let Some(d) = slow.dedup.as_deref_mut() {
            let window = u64::try_from(self.config.dedup_window.as_nanos()).unwrap_or(u64::MAX);
            d.age(self.now(), window, self.config.dedup_max);
        }
    }

    /// The de-duplication window, made on the first de-duplicated send.
    fn dedup(slow: &mut Slow<T>) -> &mut Dedup {
        slow.dedup.get_or_insert_with(|| Box::new(Dedup::new()))
    }

    /// Waits (the lock released meanwhile) until a send waiting for room ends, or room or
    /// `close` comes (each signals `room`). `Err` hands the message back: a timeout, or, for a
    /// send that may not wait, `Timeout` too (its caller reports it as `Full`).
    fn wait_room(
        &self,
        slow: &mut MutexGuard<'_, Slow<T>>,
        msg: Message<T>,
        wait: Wait,
    ) -> Result<Message<T>, SendTimeoutError<T>> {
        let timed_out = match wait {
            Wait::Never => true,
            Wait::Until(None) => {
                self.waits().room.wait(slow);
                false
            }
            Wait::Until(Some(d)) => self.waits().room.wait_until(slow, d).timed_out(),
        };
        if self.is_closed() {
            Err(SendTimeoutError::Closed(msg))
        } else if timed_out {
            Err(SendTimeoutError::Timeout(msg))
        } else {
            Ok(msg)
        }
    }

    /// The send of FIFO queues and of de-duplicated messages: through the lock.
    ///
    /// A de-duplication key is recorded only together with its message's enqueueing, under the
    /// lock, so a sender told [`Sent::Duplicate`] can rely on the original being in the queue.
    /// The one send that cannot enqueue under the lock, a standard queue's send waiting for room
    /// in its main lane, records its key as pending meanwhile: a send of the same key then
    /// waits for it to end (or, if it may not wait, finds the queue full, as the first did).
    ///
    /// A duplicate comes back beside `Sent::Duplicate`, for the caller to drop.
    #[cold]
    fn send_locked(
        &self,
        mut msg: Message<T>,
        wait: Wait,
    ) -> Result<(Sent, Option<Message<T>>), SendTimeoutError<T>> {
        let now = self.now();
        msg.stamp(now);
        let id = msg.id();
        let key = self.dedup_key_of(&msg);
        let mut slow = self.slow().lock();
        loop {
            if self.is_closed() {
                return Err(SendTimeoutError::Closed(msg));
            }
            let Some(k) = &key else { break };
            // A fresh reading each time: this send may have waited on a pending key.
            match self.look_dedup(&mut slow, k, self.now()) {
                Seen::Duplicate(first) => return Ok((Sent::Duplicate(first), Some(msg))),
                Seen::New => break,
                Seen::Pending => msg = self.wait_room(&mut slow, msg, wait)?,
            }
        }
        if !self.config.fifo {
            let key = key.expect("a standard queue takes the lock only to de-duplicate");
            // Enqueue under the lock if there is room: no other sender of the key can come
            // between the record and the enqueueing.
            let msg = match self.try_send_main(msg) {
                Ok(sent) => {
                    Self::dedup(&mut slow).record(key, id, self.now(), false);
                    return Ok((sent, None));
                }
                Err(TrySendError::Closed(m)) => return Err(SendTimeoutError::Closed(m)),
                Err(TrySendError::Full(m)) if matches!(wait, Wait::Never) => {
                    return Err(SendTimeoutError::Timeout(m));
                }
                Err(TrySendError::Full(m)) => m,
            };
            // Full: wait for room outside the lock (receivers need it), the key pending.
            Self::dedup(&mut slow).record(key.clone(), id, now, true);
            drop(slow);
            let deadline = match wait {
                Wait::Until(d) => d,
                Wait::Never => unreachable!("a send that may not wait returned above"),
            };
            let result = self.send_main(msg, deadline);
            let mut slow = self.slow().lock();
            match &result {
                Ok(_) => Self::dedup(&mut slow).confirm(&key, id, self.now()),
                Err(_) => Self::dedup(&mut slow).forget(&key, id),
            }
            // Senders of the same key waiting for this one's end look again.
            self.waits().room.notify_all();
            return result.map(|sent| (sent, None));
        }
        // FIFO: wait for room among the waiting messages, then look at the window again (a
        // sender of the same key may have gone in meanwhile) and enqueue, all under the lock.
        let mut waited = false;
        loop {
            // Delayed messages that came due joined their groups then: they take room as if
            // the timers had run, before this send looks for it.
            let fresh = slow.new_ready;
            self.admit_due(&mut slow, self.now());
            if slow.new_ready != fresh {
                self.publish_next(&mut slow);
            }
            let len = slow.groups.as_deref().map_or(0, Groups::len);
            if self.config.capacity.is_none_or(|c| len < c) {
                if let Some(k) = &key {
                    if let Seen::Duplicate(first) = self.look_dedup(&mut slow, k, self.now()) {
                        if waited {
                            // Woken for room it does not take: the next sender in line may,
                            // or it sleeps beside a queue with room (found by review).
                            self.waits().room.notify_one();
                        }
                        return Ok((Sent::Duplicate(first), Some(msg)));
                    }
                }
                break;
            }
            msg = self.wait_room(&mut slow, msg, wait)?;
            waited = true;
        }
        // Sent now, after any wait for room: its enqueue time and its key's window start here.
        let now = self.now();
        msg.stamp(now);
        if let Some(k) = key {
            Self::dedup(&mut slow).record(k, id, now, false);
        }
        slow.c.sent_slow += 1;
        let entry = Entry::fresh(Fresh { msg });
        // Delayed messages that came due before this send joined their groups then: ahead of it.
        self.admit_due(&mut slow, now);
        slow.groups
            .as_mut()
            .expect("fifo")
            .push_back(entry, Entry::group);
        self.publish_next(&mut slow);
        Ok((Sent::Enqueued(id), None))
    }

    /// Makes an entry visible: the ready lane, or its group in a FIFO queue (at the head for a
    /// returned message, which also frees the group).
    fn make_ready(&self, slow: &mut Slow<T>, entry: Entry<T>, returned: bool) {
        slow.new_ready += 1;
        match slow.groups.as_mut() {
            None => slow.ready.push_back(entry),
            Some(g) => {
                if returned {
                    g.push_front_and_release(entry, Entry::group);
                } else {
                    g.push_back(entry, Entry::group);
                }
            }
        }
    }

    /// Frees the FIFO group of a settled message.
    fn release_group(&self, slow: &mut Slow<T>, msg: &Message<T>) {
        if let Some(g) = slow.groups.as_mut() {
            // The group's next message may go now.
            slow.new_ready += 1;
            g.release(group_of(msg));
        }
    }

    /// Frees the FIFO group of a settled lease.
    fn release_lease_group(&self, slow: &mut Slow<T>, lease: &Lease<T>) {
        if let Some(g) = slow.groups.as_mut() {
            slow.new_ready += 1;
            g.release_at(lease.group as usize, group_of(lease.held.message()));
        }
    }

    /// Puts an entry back (`returned`) or in for the first time, now or, with a due time, later.
    /// Never blocks.
    fn put_back(&self, slow: &mut Slow<T>, entry: Entry<T>, due: Option<Nanos>, returned: bool) {
        match due {
            Some(due) if due > self.now() => {
                slow.seq += 1;
                let seq = slow.seq;
                slow.delayed.push(Delayed {
                    due,
                    seq: if returned { seq | FRONT } else { seq },
                    entry,
                });
            }
            _ => self.make_ready(slow, entry, returned),
        }
    }

    pub(crate) fn send_at(&self, mut msg: Message<T>, due: Nanos) -> Result<Sent, TrySendError<T>> {
        if self.is_closed() {
            return Err(TrySendError::Closed(msg));
        }
        // The content key function is user code, which may use this queue: made before the lock.
        let key = self.dedup_key_of(&msg);
        let mut slow = self.slow().lock();
        // Checked again under the lock that `is_drained` takes, so a receiver that saw the queue
        // closed and drained cannot miss this message.
        if self.is_closed() {
            return Err(TrySendError::Closed(msg));
        }
        let now = self.now();
        msg.stamp(now);
        let id = msg.id();
        // The window first, as for other sends: a duplicate is told so even on a full queue.
        if let Some(k) = &key {
            match self.look_dedup(&mut slow, k, now) {
                Seen::Duplicate(first) => return Ok(Sent::Duplicate(first)),
                // Its original waits for room in the full main lane: full for this one too (a
                // delayed send never waits), until that send ends.
                Seen::Pending => return Err(TrySendError::Full(msg)),
                Seen::New => {}
            }
        }
        if let Some(cap) = self.config.capacity {
            // Delayed messages that came due wait in the ready lane (a FIFO queue's in its
            // groups) and count against this bound until received: else a producer faster than
            // its consumers would grow a bounded queue without end, a delay at a time (found by
            // review). Returned messages there count too, which only refuses sooner.
            let waiting = slow.ready.len() + slow.groups.as_deref().map_or(0, Groups::len);
            if slow.delayed.len() + waiting >= cap {
                return Err(TrySendError::Full(msg));
            }
        }
        if let Some(k) = key {
            Self::dedup(&mut slow).record(k, id, now, false);
        }
        slow.c.sent_slow += 1;
        let entry = Entry::fresh(Fresh { msg });
        if slow.groups.is_some() {
            // Delayed messages that came due before this one joined their groups then.
            self.admit_due(&mut slow, now);
        }
        self.put_back(&mut slow, entry, Some(due), false);
        self.publish_next(&mut slow);
        Ok(Sent::Enqueued(id))
    }

    /// Accepts entries from elsewhere (dead letters, redrives) into the ready lane, whatever the
    /// capacity and even when closed: they were accepted by the system already.
    pub(crate) fn accept_entries(&self, entries: Vec<Entry<T>>) {
        if entries.is_empty() {
            return;
        }
        let mut slow = self.slow().lock();
        self.take_in(&mut slow, entries);
    }

    /// Puts entries from elsewhere in the ready lane, counted as sent.
    fn take_in(&self, slow: &mut Slow<T>, entries: Vec<Entry<T>>) {
        slow.c.sent_slow += entries.len() as u64;
        if slow.groups.is_some() {
            // Delayed messages that came due before these arrived joined their groups then.
            self.admit_due(slow, self.now());
        }
        for mut e in entries {
            // Arrival times strictly increase (a nanosecond apart at most, on a coarse clock),
            // so that a redrive, oldest first, keeps the order the letters came in.
            let at = e.enqueued().max(slow.last_arrival + 1);
            e.set_enqueued(at);
            slow.last_arrival = at;
            self.make_ready(slow, e, false);
        }
        self.publish_next(slow);
    }

    // ----- closing ----------------------------------------------------------------------------

    pub(crate) fn close(&self) -> bool {
        let before = self.send.0.state.fetch_or(1, Ordering::AcqRel);
        if before & 1 != 0 {
            return false;
        }
        // SeqCst: pairs with the SeqCst load in `is_drained`, after a receiver announced its wait.
        self.closed.store(true, Ordering::SeqCst);
        if let Some(w) = &self.waits {
            drop(w.close_tx.lock().take());
        }
        // Taking the lock orders the close with `send_at` and the drain check.
        drop(self.slow().lock());
        if let Some(w) = &self.waits {
            w.room.notify_all();
        }
        self.wake_all_waiters();
        true
    }

    /// Closed, and nothing left that a receiver could ever get.
    fn is_drained(&self) -> bool {
        // The read-mostly flag first: an open queue's receivers, looking here whenever they find
        // the queue empty, then never read the line every send writes (a ping-pong would move it
        // between cores twice a round trip).
        if !self.closed.load(Ordering::SeqCst) {
            return false;
        }
        let s = self.send.0.state.load(Ordering::Acquire);
        if s & 1 == 0 {
            return false;
        }
        if (s >> 1) != self.recv.0.popped.load(Ordering::Acquire) {
            return false;
        }
        let slow = self.slow().lock();
        slow.ready.is_empty()
            && slow.delayed.is_empty()
            && slow.live == 0
            && slow.groups.as_deref().is_none_or(|g| g.len() == 0)
    }

    // ----- receiving --------------------------------------------------------------------------

    fn expiry(&self, msg: &Message<T>, enqueued: Nanos) -> Option<Nanos> {
        let by_ttl = msg.expiry_nanos();
        let by_retention = self.config.retention.map(|r| clock::add(enqueued, r));
        match (by_ttl, by_retention) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn is_expired(&self, msg: &Message<T>, enqueued: Nanos, now: &mut Option<Nanos>) -> bool {
        match self.expiry(msg, enqueued) {
            None => false,
            Some(at) => at <= *now.get_or_insert_with(|| self.now()),
        }
    }

    /// Counts an expired message and, if configured, dead-letters it.
    fn expire(&self, slow: &mut Slow<T>, entry: Entry<T>, out: &mut Outgoing<T>) {
        slow.c.expired += 1;
        if self.config.dead_letter_expired && self.config.dead_letter.is_some() {
            let attempts = entry.attempts();
            self.dead_letter(slow, entry, "expired".into(), attempts, out);
        } else {
            out.push(Leaving::Discarded(entry));
        }
    }

    /// Sends an entry to the dead-letter queue, or discards it (counted) when there is none.
    fn dead_letter(
        &self,
        slow: &mut Slow<T>,
        mut entry: Entry<T>,
        reason: String,
        attempts: u32,
        out: &mut Outgoing<T>,
    ) {
        if self.config.dead_letter.is_none() {
            slow.c.discarded += 1;
            out.push(Leaving::Discarded(entry));
            return;
        }
        slow.c.dead_lettered += 1;
        let info = DeadLetter {
            reason,
            attempts,
            source: self.config.name.clone(),
        };
        // Kept beside the message, and written into it as a receive hands it out (by value, or
        // on lease while nobody else reads it): a redrive clears both, and leaves here a letter
        // whose body a holder of an ended lease still reads (see `redrive`).
        let h = entry.history_mut();
        h.dead = Some(Box::new(info));
        h.attempts = 0;
        h.first_delivered = 0;
        out.push(Leaving::DeadLetter(entry));
    }

    /// Sends dead letters on to the dead-letter queue and drops what was discarded: called
    /// without the lock under which they left.
    fn forward(&self, out: Outgoing<T>, source: &Arc<Shared<T>>) {
        if out.is_empty() {
            return;
        }
        let mut discarded = Vec::new();
        self.forward_keeping(out, source, &mut discarded);
        // Dropped last: a payload whose drop panics loses no dead letter.
        drop(discarded);
    }

    /// `forward`, leaving what was discarded in `discarded` for the caller to drop when it has
    /// nothing more to settle.
    fn forward_keeping(
        &self,
        out: Outgoing<T>,
        source: &Arc<Shared<T>>,
        discarded: &mut Vec<Entry<T>>,
    ) {
        let mut letters = Vec::new();
        for leaving in out {
            match leaving {
                Leaving::DeadLetter(e) => letters.push(e),
                Leaving::Discarded(e) => discarded.push(e),
            }
        }
        if let Some(dlq) = self
            .config
            .dead_letter
            .as_ref()
            .filter(|_| !letters.is_empty())
        {
            let now = dlq.shared.now();
            for e in &mut letters {
                e.set_enqueued(now);
                e.history_mut().source = Some(Arc::downgrade(source));
            }
            dlq.shared.accept_entries(letters);
        }
    }

    /// Ends a lease that failed (nack, drop, expiry): back to the queue, or to the dead-letter
    /// queue once it has had `max_attempts` deliveries.
    fn fail(
        &self,
        slow: &mut Slow<T>,
        lease: Lease<T>,
        due: Option<Nanos>,
        why: &str,
        out: &mut Outgoing<T>,
    ) {
        let attempts = lease.attempts;
        let entry = lease.into_entry(&mut slow.spare);
        match self.config.max_attempts {
            Some(max) if attempts >= max => {
                let reason = format!("{why} after {attempts} deliveries (max {max})");
                self.release_group(slow, entry.body.message());
                self.dead_letter(slow, entry, reason, attempts, out);
            }
            _ => self.put_back(slow, entry, due, true),
        }
    }

    /// Moves the delayed messages due by `now` into the ready lane (their groups), as they came
    /// due: before a message that arrives now.
    fn admit_due(&self, slow: &mut Slow<T>, now: Nanos) {
        while slow.delayed.peek().is_some_and(|d| d.due <= now) {
            let d = slow.delayed.pop().expect("peeked");
            let front = d.front();
            self.make_ready(slow, d.entry, front);
        }
    }

    /// Moves due delayed messages to the ready lane and expires leases past their deadline.
    fn run_timers(&self, slow: &mut Slow<T>, now: Nanos, out: &mut Outgoing<T>) {
        self.admit_due(slow, now);
        loop {
            let from_fifo = slow.fifo.front().copied().filter(|t| t.0 <= now);
            let t = match from_fifo {
                Some(t) => {
                    slow.fifo.pop_front();
                    t
                }
                None => match slow.heap.peek() {
                    Some(&Reverse(t)) if t.0 <= now => {
                        slow.heap.pop();
                        t
                    }
                    _ => break,
                },
            };
            if !slow.timer_valid(t) {
                continue;
            }
            let lease = slow.take_lease(t.1, t.2).expect("valid timer has a lease");
            slow.c.lease_expired += 1;
            self.fail(slow, lease, None, "lease expired", out);
        }
    }

    /// Pops from the ready lane: the first entry a plain receive can own, or any for a lease.
    fn pop_ready(&self, slow: &mut Slow<T>, how: How) -> Option<Entry<T>> {
        if let Some(g) = slow.groups.as_mut() {
            let lease = matches!(how, How::Lease(_));
            // A plain receive passes over the groups whose head is shared with an expired
            // lease's holder (it waits for the holder to let go, see Delivery's Drop) to the
            // next group in the round; each group once, so none gives out a later message.
            // Passed groups are known by key: a pop(false) may compact the slab and renumber
            // the slots.
            let mut passed: Vec<Entry<T>> = Vec::new();
            let found = loop {
                let Some(e) = g.pop(lease) else { break None };
                let again = passed.iter().any(|p| p.group() == e.group());
                if lease || e.body.ownable() && !again {
                    break Some(e);
                }
                passed.push(e);
                if again {
                    break None; // round the whole round
                }
            };
            // Back at their heads, in reverse: a group's later message first, its head last.
            for e in passed.into_iter().rev() {
                g.push_front_and_release(e, Entry::group);
            }
            if found.is_some() {
                if let Some(w) = &self.waits {
                    w.room.notify_one();
                }
            }
            return found;
        }
        match how {
            How::Lease(_) => slow.ready.pop_front(),
            How::Plain => {
                let i = slow.ready.iter().position(|e| e.body.ownable())?;
                slow.ready.remove(i)
            }
        }
    }

    /// Registers a lease on an entry and makes its Delivery.
    fn lease(
        self: &Arc<Self>,
        slow: &mut Slow<T>,
        entry: Entry<T>,
        vis: Duration,
        now: Nanos,
        group: u32,
    ) -> Delivery<T> {
        let enqueued = entry.enqueued();
        let History {
            arrived: _,
            attempts,
            first_delivered,
            dead,
            source,
        } = entry
            .history
            .map_or_else(History::default, |h| h.into_history());
        let attempts = attempts + 1;
        if attempts > 1 {
            slow.c.redelivered += 1;
        }
        let first_delivered = if first_delivered == 0 {
            now
        } else {
            first_delivered
        };
        let deadline = clock::add(now, vis);
        let mut body = entry.body;
        if let Some(d) = &dead {
            // A dead letter's record goes into the message too, so that `message()` and a
            // consumer pool's handler see it (a plain receive writes it the same way), in place
            // of one it carries from an earlier death (found by review). Only while nobody else
            // reads the body: one shared with a holder whose lease ran out got it at its first
            // lease here already.
            let m = match &mut body {
                Body::Owned(m) => Some(m),
                Body::Shared(h) => Arc::get_mut(h).and_then(|h| h.0.as_mut()),
            };
            if let Some(m) = m.filter(|m| m.dead_letter() != Some(&**d)) {
                m.set_dead_letter(DeadLetter::clone(d));
            }
        }
        let held = body.into_shared(&mut slow.spare);
        let slot = match slow.free.pop() {
            Some(s) => s,
            None => {
                slow.slots.push(LeaseSlot {
                    gen: 0,
                    lease: None,
                });
                (slow.slots.len() - 1) as u32
            }
        };
        let gen = slow.next_gen;
        slow.next_gen = gen.wrapping_add(1);
        slow.slots[slot as usize].gen = gen;
        slow.slots[slot as usize].lease = Some(Lease {
            held: Arc::clone(&held),
            deadline,
            enqueued,
            attempts,
            first_delivered,
            dead: dead.clone(),
            group,
            source,
        });
        slow.live += 1;
        if vis == self.config.visibility && slow.fifo.back().is_none_or(|b| b.0 <= deadline) {
            slow.fifo.push_back((deadline, slot, gen));
        } else {
            slow.heap.push(Reverse((deadline, slot, gen)));
        }
        slow.compact_timers();
        let info = LeaseInfo {
            slot,
            gen,
            attempts,
            first_delivered,
            enqueued,
            deadline,
        };
        Delivery::new(Arc::clone(self), held, info, dead)
    }

    /// Turns an entry from the slow lanes into what the receive asked for.
    fn hand_out(
        self: &Arc<Self>,
        slow: &mut Slow<T>,
        entry: Entry<T>,
        how: How,
        now: Nanos,
    ) -> Out<T> {
        match how {
            How::Lease(vis) => {
                let group = slow.groups.as_deref().map_or(u32::MAX, |g| {
                    u32::try_from(g.last_popped()).unwrap_or(u32::MAX)
                });
                Out::Lease(self.lease(slow, entry, vis, now, group))
            }
            How::Plain => {
                if entry.attempts() > 0 {
                    // Delivered before (nacked, dropped or expired): a plain receive is a
                    // redelivery too.
                    slow.c.redelivered += 1;
                }
                let dead = entry.history.and_then(|h| h.into_history().dead);
                match entry.body.into_owned() {
                    Ok(mut m) => {
                        if let Some(d) = dead {
                            m.set_dead_letter(*d);
                        }
                        Out::Plain(m)
                    }
                    Err(_) => {
                        unreachable!("pop_ready only hands out ownable entries to plain receives")
                    }
                }
            }
        }
    }

    /// The slow path of a receive: timers, then the ready lane (alternating with the main lane).
    /// Returns `None` when the main lane should be tried.
    fn take_slow(self: &Arc<Self>, how: How, main_tried: bool) -> Option<Out<T>> {
        let mut out = Vec::new();
        let result = loop {
            let mut slow = self.slow().lock();
            let now = self.now();
            self.run_timers(&mut slow, now, &mut out);
            // Nothing is handed out while a discarded payload waits to drop (user code, after
            // the lock): one that panics must not take the message with it. Those drop first,
            // then the receive looks again.
            let mut discarded = out.iter().any(|l| matches!(l, Leaving::Discarded(_)));
            let mut result = None;
            while !discarded {
                let fifo = slow.groups.as_deref().map(Groups::has_available);
                if slow.ready.is_empty() && fifo != Some(true) {
                    break;
                }
                // Fresh and returned messages take turns (a FIFO queue's channel has no messages).
                // (Not again once this receive found the main lane empty: another receiver
                // may have handed the turn back meanwhile, and a rendezvous lane always looks
                // as if it may hold one.)
                if fifo.is_none() && slow.prefer_main && !main_tried && self.main_may_hold() {
                    slow.prefer_main = false;
                    break;
                }
                let Some(entry) = self.pop_ready(&mut slow, how) else {
                    break;
                };
                if self.ready_expired(&entry, now) {
                    self.release_group(&mut slow, entry.body.message());
                    self.expire(&mut slow, entry, &mut out);
                    discarded = matches!(out.last(), Some(Leaving::Discarded(_)));
                    continue;
                }
                slow.prefer_main = true;
                slow.c.received_ready += 1;
                result = Some(self.hand_out(&mut slow, entry, how, now));
                break;
            }
            self.publish_next(&mut slow);
            drop(slow);
            if !discarded {
                break result;
            }
            self.forward(std::mem::take(&mut out), self);
        };
        self.forward(out, self);
        if result.is_some() && self.is_closed() {
            // Perhaps the last message: receivers of a closed queue look again.
            self.wake_all_waiters();
        }
        result
    }

    /// Whether the main lane may hold a message for a receive: a rendezvous channel always
    /// reads empty (its message waits with a blocked sender, seen only by a receive), so it
    /// is tried rather than judged by its length.
    #[inline]
    fn main_may_hold(&self) -> bool {
        !self.rx.is_empty() || self.rx.capacity() == Some(0)
    }

    /// Counts `n` messages popped from the main lane, the last of them enqueued at `enqueued`.
    #[inline]
    fn count_popped(&self, n: u64, enqueued: Nanos) {
        self.recv.0.popped.fetch_add(n, Ordering::AcqRel);
        self.recv.0.last_popped.store(enqueued, Ordering::Relaxed);
    }

    /// Whether an entry of the ready lane has expired by `now`.
    fn ready_expired(&self, entry: &Entry<T>, now: Nanos) -> bool {
        // A dead letter's time-to-live did its work in the source queue (it may be why the
        // message is here): in a dead-letter queue only retention applies.
        let dead = entry.is_dead();
        if dead {
            let retention = self.config.retention;
            retention.is_some_and(|r| clock::add(entry.enqueued(), r) <= now)
        } else {
            self.is_expired(entry.body.message(), entry.enqueued(), &mut Some(now))
        }
    }

    /// Leases up to `max` more messages for a batch receive under one lock, one clock reading
    /// and one publication of the next deadline, where single receives take one of each per
    /// message. It takes from the ready lane and the main lane in turn, as single receives do,
    /// and never waits. FIFO queues, whose groups decide what may go, take the single path.
    pub(crate) fn lease_many(
        self: &Arc<Self>,
        vis: Duration,
        max: usize,
        into: &mut Vec<Delivery<T>>,
    ) {
        let how = How::Lease(vis);
        let target = into.len() + max;
        if self.config.fifo {
            while into.len() < target {
                // Each receive runs the timers first: once the batch's first lease is due, the
                // next would end it and might lease its message again. The batch stops there.
                if into
                    .first()
                    .is_some_and(|d| d.deadline_nanos() <= self.now())
                {
                    break;
                }
                match self.try_take(how) {
                    Ok(o) => into.push(o.into_delivery()),
                    Err(_) => break,
                }
            }
            // A lease that ran out meanwhile all the same (the clock moved between the look and
            // the receive) put its message back, perhaps leased again in the batch. Ended leases
            // stay ended, so one look at the end finds them all.
            let ended = self.slow().lock().take_ended(into);
            // A delivery whose lease ended drops as any does: a no-op for the queue.
            drop(ended);
            return;
        }
        let (mut out, mut tokens, mut popped, mut last_enqueued) = (Vec::new(), 0, 0, 0);
        {
            let mut slow = self.slow().lock();
            // Room for what is there now, at once: growing a batch one doubling at a time cost
            // more than a tenth of a batch receive.
            into.reserve(max.min(slow.ready.len() + self.rx.len()));
            let now = self.now();
            // A lease already in the batch that is due (a visibility timeout shorter than the
            // wait for the first message) ends the batch as it is, as in the FIFO path, and is
            // handed out as `receive` hands out a lease that ran out. Running the timers would
            // end it and put its message back for the batch to lease again: an attempt spent
            // (perhaps the last, dead-lettering the message) on a delivery nobody saw (found by
            // review). The timers run only when no lease in the batch is due, and not again
            // under this lock, so no lease of the batch ends: no `take_ended` walk here.
            let due = into.iter().any(|d| d.deadline_nanos() <= now);
            let target = if due { into.len() } else { target };
            if !due {
                self.run_timers(&mut slow, now, &mut out);
            }
            while into.len() < target {
                let from_ready =
                    !slow.ready.is_empty() && (!slow.prefer_main || !self.main_may_hold());
                let (entry, now) = if from_ready {
                    let entry = slow.ready.pop_front().expect("not empty");
                    slow.prefer_main = true;
                    if self.ready_expired(&entry, now) {
                        self.expire(&mut slow, entry, &mut out);
                        continue;
                    }
                    slow.c.received_ready += 1;
                    (entry, now)
                } else {
                    match self.rx.try_recv() {
                        Ok(Slot::Msg(f)) => {
                            popped += 1;
                            last_enqueued = f.enqueued();
                            slow.prefer_main = false;
                            // Sent after the clock reading, perhaps: not leased before its send.
                            let now = now.max(f.enqueued());
                            if self.is_expired(&f.msg, f.enqueued(), &mut Some(now)) {
                                slow.c.expired_main += 1;
                                self.expire(&mut slow, Entry::fresh(f), &mut out);
                                continue;
                            }
                            (Entry::fresh(f), now)
                        }
                        Ok(Slot::Wake) => {
                            tokens += 1;
                            continue;
                        }
                        Err(_) if !slow.ready.is_empty() => {
                            // The main lane emptied since it was preferred: the ready lane's turn.
                            slow.prefer_main = false;
                            continue;
                        }
                        Err(_) => break,
                    }
                };
                into.push(self.lease(&mut slow, entry, vis, now, u32::MAX));
            }
            // Under the lock, as `take_fresh` counts: a closing receiver finds each message in
            // the main lane or in the slow state, never in neither.
            if popped > 0 {
                self.count_popped(popped, last_enqueued);
            }
            self.publish_next(&mut slow);
        }
        // The tokens first: what follows drops payloads (user code, which may panic), and a
        // token lost with the unwind left a waiting receiver asleep past a due message.
        self.pass_on(tokens);
        self.forward(out, self);
        if self.is_closed() {
            self.wake_all_waiters();
        }
    }

    /// A message popped from the main lane: count it, drop it if expired, hand it out. `now` is a
    /// clock reading this receive already made (in `slow_pending`), if any: raised to the
    /// message's enqueue time, it is a time the clock passed during the receive and not before
    /// the send, and it saves a read.
    #[inline]
    fn take_fresh(self: &Arc<Self>, f: Fresh<T>, how: How, now: Option<Nanos>) -> Option<Out<T>> {
        // A message leaving the main lane for the slow state (a lease, an expiry) is counted as
        // popped only under the slow lock, once it is there. A receiver of a closed queue that
        // checks whether it is drained (popped against accepted, then the slow state under the
        // lock) so always finds it in one place or the other, and cannot give up while it is on
        // its way into a lease that could still be nacked back. `stats` (under the same lock)
        // finds it in one place too.
        let mut now = now.map(|t| t.max(f.enqueued()));
        if self.is_expired(&f.msg, f.enqueued(), &mut now) {
            let mut out = Vec::new();
            {
                let mut slow = self.slow().lock();
                slow.c.expired_main += 1;
                let enqueued = f.enqueued();
                self.expire(&mut slow, Entry::fresh(f), &mut out);
                self.count_popped(1, enqueued);
                self.publish_next(&mut slow);
            }
            self.forward(out, self);
            return None;
        }
        Some(match how {
            How::Plain => Out::Plain(self.pop_fresh(f)),
            How::Lease(vis) => {
                let now = now.unwrap_or_else(|| self.now());
                Out::Lease(self.lease_fresh(f, vis, now))
            }
        })
    }

    /// Hands a fresh message from the main lane to a plain receive (one that has not expired).
    #[inline]
    fn pop_fresh(&self, f: Fresh<T>) -> Message<T> {
        self.count_popped(1, f.enqueued());
        if self.is_closed() {
            // Receivers of a closed queue wait until every accepted message was popped.
            self.wake_all_waiters();
        }
        f.msg
    }

    /// The plain receive's fast path: a fresh message from the main lane when no timer, returned
    /// message or expiry rule is in play. `None` sends the caller down the general path.
    #[inline]
    pub(crate) fn try_recv_fast(self: &Arc<Self>) -> Option<Message<T>> {
        if self.recv.0.next_event.load(Ordering::Acquire) != NONE || self.config.retention.is_some()
        {
            return None;
        }
        match self.rx.try_recv() {
            Ok(Slot::Msg(f)) if f.msg.ttl().is_none() => Some(self.pop_fresh(f)),
            Ok(Slot::Msg(f)) => self.take_fresh_plain(f),
            // A token was sent for a blocked receiver: pass it on.
            Ok(Slot::Wake) => {
                self.wake(1);
                None
            }
            // Nothing: the general path looks again.
            Err(_) => None,
        }
    }

    /// Leases a fresh message from the main lane (one that has not expired).
    #[inline]
    fn lease_fresh(self: &Arc<Self>, f: Fresh<T>, vis: Duration, now: Nanos) -> Delivery<T> {
        let enqueued = f.enqueued();
        let now = now.max(enqueued);
        let mut slow = self.slow().lock();
        let d = self.lease(&mut slow, Entry::fresh(f), vis, now, u32::MAX);
        self.count_popped(1, enqueued);
        drop(slow);
        self.note_deadline(d.deadline_nanos());
        if self.is_closed() {
            self.wake_all_waiters();
        }
        d
    }

    /// The leased receive's fast path: a fresh message from the main lane, leased at once, when
    /// nothing in the slow state is ready or due and no retention rule is in play. `None` sends
    /// the caller down the general path. It hands out the delivery itself, never an `Out`, whose
    /// copies cost store-forwarding stalls on every receive (see `Queue::try_recv_slow`).
    #[inline]
    pub(crate) fn try_lease_fast(self: &Arc<Self>, vis: Duration) -> Option<Delivery<T>> {
        if self.config.retention.is_some() {
            return None;
        }
        let ne = self.recv.0.next_event.load(Ordering::Acquire);
        if ne == READY {
            return None;
        }
        let now = self.now();
        if ne != NONE && now >= ne {
            // Timers are due: the general path runs them first.
            return None;
        }
        match self.rx.try_recv() {
            Ok(Slot::Msg(f)) if f.msg.ttl().is_none() => Some(self.lease_fresh(f, vis, now)),
            Ok(Slot::Msg(f)) => self.take_fresh_lease(f, vis, now),
            // A token was sent for a blocked receiver: pass it on.
            Ok(Slot::Wake) => {
                self.wake(1);
                None
            }
            Err(_) => None,
        }
    }

    /// A fresh message with a time-to-live, for a leased receive: out of line (see
    /// `take_fresh_plain`).
    #[cold]
    #[inline(never)]
    fn take_fresh_lease(
        self: &Arc<Self>,
        f: Fresh<T>,
        vis: Duration,
        now: Nanos,
    ) -> Option<Delivery<T>> {
        match self.take_fresh(f, How::Lease(vis), Some(now)) {
            Some(Out::Lease(d)) => Some(d),
            _ => None,
        }
    }

    /// A fresh message with a time-to-live, for a plain receive: out of line, so that the fast
    /// path's code holds no `Out` (see `Queue::try_recv_slow`).
    #[cold]
    #[inline(never)]
    fn take_fresh_plain(self: &Arc<Self>, f: Fresh<T>) -> Option<Message<T>> {
        match self.take_fresh(f, How::Plain, None) {
            Some(Out::Plain(m)) => Some(m),
            _ => None,
        }
    }

    /// Whether the slow state has something for a receive now; a clock reading it makes is left
    /// in `now`.
    #[inline]
    fn slow_pending(&self, now: &mut Option<Nanos>) -> bool {
        let ne = self.recv.0.next_event.load(Ordering::Acquire);
        ne != NONE && (ne == READY || *now.get_or_insert_with(|| self.now()) >= ne)
    }

    #[inline]
    pub(crate) fn try_take(self: &Arc<Self>, how: How) -> Result<Out<T>, TryRecvError> {
        let mut tokens = PassOn {
            shared: self,
            taken: 0,
        };
        self.try_take_counting(how, &mut tokens.taken)
    }

    /// A receive leaving with wake tokens it took: each was sent for a blocked receiver (a new,
    /// earlier deadline, say), so it goes on to another, or that one could sleep past it.
    fn pass_on(&self, tokens: usize) {
        if tokens > 0 {
            self.wake(tokens);
        }
    }

    /// `try_take`, counting in `tokens` the wake tokens it takes from the main lane.
    #[inline]
    fn try_take_counting(
        self: &Arc<Self>,
        how: How,
        tokens: &mut usize,
    ) -> Result<Out<T>, TryRecvError> {
        let mut retried = false;
        loop {
            let mut now = None;
            let pending = self.slow_pending(&mut now);
            if pending {
                if let Some(o) = self.take_slow(how, retried) {
                    return Ok(o);
                }
            }
            match self.rx.try_recv() {
                Ok(Slot::Msg(f)) => {
                    if let Some(o) = self.take_fresh(f, how, now) {
                        return Ok(o);
                    }
                }
                Ok(Slot::Wake) => *tokens += 1,
                Err(_) => {
                    // The ready lane may have deferred to a main lane that another receiver
                    // emptied meanwhile: look at it once more.
                    if pending && !retried {
                        retried = true;
                        continue;
                    }
                    if self.is_drained() {
                        // The token that woke a blocked receiver may have been taken by one
                        // passing by (this one): pass the news on so no receiver sleeps forever.
                        self.wake_all_waiters();
                        return Err(TryRecvError::Closed);
                    }
                    return Err(TryRecvError::Empty);
                }
            }
        }
    }

    pub(crate) fn take(
        self: &Arc<Self>,
        how: How,
        deadline: Option<Instant>,
    ) -> Result<Out<T>, RecvTimeoutError> {
        self.take_until(how, deadline, None)
    }

    /// `take`, which also gives up (as a timeout) once `stop` is set and the waiters are woken
    /// (`wake_all_waiters`): how a consumer pool's idle workers learn of a shutdown without
    /// polling. The `SeqCst` load after announcing the wait pairs with the `SeqCst` store of
    /// the flag before the wake-up: either this receiver sees the flag, or the waker sees it
    /// waiting and sends it a token.
    pub(crate) fn take_until(
        self: &Arc<Self>,
        how: How,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
    ) -> Result<Out<T>, RecvTimeoutError> {
        // Tokens taken while this receive stays are news it acts on itself (it recomputes its
        // wait); when it leaves, however it leaves, they go on to the receivers still waiting.
        let mut tokens = PassOn {
            shared: self,
            taken: 0,
        };
        self.take_counting(how, deadline, stop, &mut tokens.taken)
    }

    fn take_counting(
        self: &Arc<Self>,
        how: How,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
        tokens: &mut usize,
    ) -> Result<Out<T>, RecvTimeoutError> {
        let stopped = || stop.is_some_and(|s| s.load(Ordering::SeqCst));
        loop {
            // A stopped pool takes nothing more, not even what is there when it wakes.
            if stopped() {
                return Err(RecvTimeoutError::Timeout);
            }
            match self.try_take_counting(how, tokens) {
                Ok(o) => return Ok(o),
                Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
                Err(TryRecvError::Empty) => {}
            }
            // One clock reading for both questions: is it time, and is there time to spin.
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if stopped() || left == Some(Duration::ZERO) {
                return Err(RecvTimeoutError::Timeout);
            }
            // Spin briefly, then yield, before announcing the wait (a receiver that caught up
            // with its senders usually finds a message within a spin). The spin looks at what
            // costs no lock: the main lane, the timers and ready lane's summary, the close.
            // A rendezvous queue's lane always looks empty (a sender waiting there shows only
            // to a receive): it goes straight to the tries (found by review).
            let ne = self.recv.0.next_event.load(Ordering::Relaxed);
            // A deadline too close for the spin goes straight to the tries.
            if self.rx.capacity() != Some(0) && spin::worth_it(left) {
                spin::poll(|| {
                    !self.rx.is_empty()
                        || self.recv.0.next_event.load(Ordering::Relaxed) != ne
                        || self.is_closed()
                });
            }
            for step in 0..=RECV_YIELDS {
                if step > 0 {
                    std::thread::yield_now();
                }
                if stopped() {
                    return Err(RecvTimeoutError::Timeout);
                }
                match self.try_take_counting(how, tokens) {
                    Ok(o) => return Ok(o),
                    Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
                    Err(TryRecvError::Empty) => {}
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(RecvTimeoutError::Timeout);
                }
            }
            // Announce the wait, then look once more: whoever changes the state after this point
            // sees us waiting and sends a token.
            let waiting = Waiting::announce(&self.recv.0.waiters);
            let got = match self.try_take_counting(how, tokens) {
                Ok(o) => Ok(Some(o)),
                Err(TryRecvError::Closed) => Err(RecvTimeoutError::Closed),
                Err(TryRecvError::Empty) if stopped() => Ok(None),
                Err(TryRecvError::Empty) => {
                    let ne = self.recv.0.next_event.load(Ordering::SeqCst);
                    let timer = if ne == READY && matches!(how, How::Plain) {
                        // What is ready is held by an expired lease's holder (a plain receive
                        // takes only what it can own). Its queue and that queue's dead-letter
                        // queue are woken when the holder lets go; a queue it was redriven to is
                        // not, so look again soon rather than sleep past it.
                        Some(Instant::now() + SHARED_POLL)
                    } else if ne != NONE && ne != READY {
                        self.config.clock.wake_instant(ne)
                    } else {
                        None
                    };
                    let wake_at = match (deadline, timer) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    let r = match self.waits.as_ref().and_then(|w| w.bell.as_ref()) {
                        None => match wake_at {
                            Some(at) => self.rx.recv_deadline(at).ok(),
                            None => self.rx.recv().ok(),
                        },
                        Some((_, bell)) => self.wait_bell(bell, wake_at),
                    };
                    match r {
                        Some(Slot::Msg(f)) => Ok(self.take_fresh(f, how, None)),
                        Some(Slot::Wake) => {
                            *tokens += 1;
                            Ok(None)
                        }
                        None => Ok(None),
                    }
                }
            };
            drop(waiting);
            if let Some(o) = got? {
                return Ok(o);
            }
        }
    }

    /// A bounded queue's blocked receiver: waits for a message or a wake token (from the bell).
    #[cold]
    fn wait_bell(&self, bell: &cb::Receiver<()>, wake_at: Option<Instant>) -> Option<Slot<T>> {
        let mut sel = cb::Select::new();
        let main_i = sel.recv(&self.rx);
        let _bell_i = sel.recv(bell);
        let op = match wake_at {
            Some(at) => sel.select_deadline(at).ok()?,
            None => sel.select(),
        };
        if op.index() == main_i {
            op.recv(&self.rx).ok()
        } else {
            op.recv(bell).ok().map(|()| Slot::Wake)
        }
    }

    // ----- verdicts ---------------------------------------------------------------------------

    /// Ends a lease with `f`. What it discards drops before it returns, or, given `later`,
    /// is left there.
    fn settle(
        self: &Arc<Self>,
        slot: u32,
        gen: u64,
        f: impl FnOnce(&Self, &mut Slow<T>, Lease<T>, &mut Outgoing<T>) -> bool,
        later: Option<&mut Leftovers<T>>,
    ) -> bool {
        let mut out = Vec::new();
        let ok = {
            let mut slow = self.slow().lock();
            // Expire what is due first: a verdict after the deadline finds its lease gone.
            // `next_event` is never later than a pending deadline, so nothing due is missed.
            let now = self.now();
            let mut changed = false;
            if self.recv.0.next_event.load(Ordering::Acquire) <= now {
                // Ran: `next_event` must be recomputed, or it would stay in the past.
                self.run_timers(&mut slow, now, &mut out);
                changed = true;
            }
            let ok = match slow.take_lease(slot, gen) {
                Some(lease) => {
                    changed |= f(self, &mut slow, lease, &mut out);
                    slow.trim_stale_timers();
                    true
                }
                None => false,
            };
            if changed {
                self.publish_next(&mut slow);
            } else {
                // An ack changes nothing a receiver can get, but may end the last lease of a
                // burst: its table is given back now, not at some later event.
                slow.shrink_idle();
            }
            if self.is_closed() {
                // Receivers of a closed queue wait for the last lease to settle.
                self.wake_all_waiters();
            }
            ok
        };
        if !out.is_empty() {
            match later {
                Some(l) => self.forward_keeping(out, self, &mut l.discarded),
                None => self.forward(out, self),
            }
        }
        ok
    }

    /// Acks a lease. `mine` is the acking `Delivery`'s handle on the message: taken (and let go
    /// of under the lock, so that the allocation can be kept as a spare) when the ack succeeds,
    /// left for the `Delivery` to drop when the lease had ended.
    pub(crate) fn ack(
        self: &Arc<Self>,
        slot: u32,
        gen: u64,
        id: MessageId,
        mine: &mut Option<Arc<Held<T>>>,
        later: Option<&mut Leftovers<T>>,
    ) -> Result<(), AckError> {
        self.ack_with(slot, gen, id, mine, later, false).map(drop)
    }

    /// `ack`, and with `keep`, what the ack let go of handed back instead of dropped: the
    /// message, or the handle on it that an expired lease's holder shares (for
    /// `Delivery::ack_into_message`). `Some` whenever the ack succeeds with `keep`.
    pub(crate) fn ack_with(
        self: &Arc<Self>,
        slot: u32,
        gen: u64,
        id: MessageId,
        mine: &mut Option<Arc<Held<T>>>,
        mut later: Option<&mut Leftovers<T>>,
        keep: bool,
    ) -> Result<Option<Recycled<T>>, AckError> {
        let mut done = None;
        let ok = self.settle(
            slot,
            gen,
            |this, slow, lease, _| {
                slow.c.acked += 1;
                this.release_lease_group(slow, &lease);
                drop(mine.take());
                match slow.recycle(lease.held) {
                    Ok(Some(m)) if !keep && m.drops_trivially() => drop(m),
                    r => done = Some(r),
                }
                // Only a FIFO group freed by the ack changes what receivers can get.
                this.config.fifo
            },
            later.as_deref_mut(),
        );
        let kept = match (done, later) {
            (Some(r), _) if keep => Some(r),
            (Some(r), Some(l)) => {
                l.acked.push(r);
                None
            }
            (done, _) => {
                drop(done);
                None
            }
        };
        ok.then_some(kept).ok_or(AckError::LeaseExpired(id))
    }

    /// Acks many leases under one lock, as `ack` does each: a delivery whose ack succeeds gives
    /// up its handle on the message; one whose lease had ended keeps it, to let go of as any
    /// dropped delivery does. Every delivery leaves settled. Adds the ids of the leases that
    /// had ended to `lost`, and leaves in `later` what the caller drops once every delivery of
    /// its batch is settled (dead letters are forwarded here already).
    pub(crate) fn ack_many(
        self: &Arc<Self>,
        held: &mut [Delivery<T>],
        lost: &mut Vec<MessageId>,
        later: &mut Leftovers<T>,
    ) {
        let mut out = Vec::new();
        // What is left to drop once the lock is released (user code). Messages that drop
        // without running any code (no metadata, a payload without drop glue) drop here: no
        // vector grows for them.
        let done = &mut later.acked;
        let n = held.len();
        {
            let mut slow = self.slow().lock();
            self.run_timers(&mut slow, self.now(), &mut out);
            for d in held.iter_mut() {
                let (slot, gen, id) = d.lease_key();
                let mine = d.settle_with();
                match slow.take_lease(slot, gen) {
                    Some(lease) => {
                        slow.c.acked += 1;
                        self.release_lease_group(&mut slow, &lease);
                        drop(mine.take());
                        match slow.recycle(lease.held) {
                            Ok(None) => {}
                            Ok(Some(m)) if m.drops_trivially() => drop(m),
                            r => {
                                if done.capacity() == 0 {
                                    done.reserve_exact(n);
                                }
                                done.push(r);
                            }
                        }
                    }
                    None => lost.push(id),
                }
            }
            self.publish_next(&mut slow);
            if self.is_closed() {
                // Receivers of a closed queue wait for the last lease to settle (as in `settle`).
                self.wake_all_waiters();
            }
        }
        // Dead letters on now; the payloads' drops are user code, and one that panics must not
        // lose them.
        self.forward_keeping(out, self, &mut later.discarded);
    }

    /// `mine` is the settling `Delivery`'s handle on the message, let go of under the lock when
    /// the lease is still held (the lease keeps another, so no payload drops there): the
    /// message then waits by value, not in the allocation it was leased in (see `Hist`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn nack(
        self: &Arc<Self>,
        slot: u32,
        gen: u64,
        id: MessageId,
        mine: &mut Option<Arc<Held<T>>>,
        after: Option<Duration>,
        abandoned: bool,
        later: Option<&mut Leftovers<T>>,
    ) -> Result<(), AckError> {
        let due = after.map(|d| clock::add(self.now(), d));
        let ok = self.settle(
            slot,
            gen,
            |this, slow, lease, out| {
                drop(mine.take());
                if abandoned {
                    slow.c.abandoned += 1;
                } else {
                    slow.c.nacked += 1;
                }
                this.fail(
                    slow,
                    lease,
                    due,
                    if abandoned { "dropped" } else { "nacked" },
                    out,
                );
                true
            },
            later,
        );
        ok.then_some(()).ok_or(AckError::LeaseExpired(id))
    }

    /// Undoes a lease that no handler saw (a consumer pool's worker that received after its
    /// shutdown deadline): the message goes back to the front, its attempt not counted.
    pub(crate) fn unlease(
        self: &Arc<Self>,
        slot: u32,
        gen: u64,
        mine: &mut Option<Arc<Held<T>>>,
    ) -> bool {
        self.settle(
            slot,
            gen,
            |this, slow, mut lease, _out| {
                drop(mine.take());
                slow.c.abandoned += 1;
                lease.attempts = lease.attempts.saturating_sub(1);
                if lease.attempts == 0 {
                    lease.first_delivered = 0;
                }
                let entry = lease.into_entry(&mut slow.spare);
                this.put_back(slow, entry, None, true);
                true
            },
            None,
        )
    }

    /// `mine`: as for `nack`.
    pub(crate) fn reject(
        self: &Arc<Self>,
        slot: u32,
        gen: u64,
        id: MessageId,
        mine: &mut Option<Arc<Held<T>>>,
        reason: String,
        later: Option<&mut Leftovers<T>>,
    ) -> Result<(), AckError> {
        let ok = self.settle(
            slot,
            gen,
            |this, slow, lease, out| {
                drop(mine.take());
                let attempts = lease.attempts;
                let entry = lease.into_entry(&mut slow.spare);
                this.release_group(slow, entry.body.message());
                this.dead_letter(slow, entry, reason, attempts, out);
                true
            },
            later,
        );
        ok.then_some(()).ok_or(AckError::LeaseExpired(id))
    }

    /// The deadline lease `(slot, gen)` has now, if it is still out.
    pub(crate) fn lease_deadline(&self, slot: u32, gen: u64) -> Option<Nanos> {
        let slow = self.slow().lock();
        slow.slots
            .get(slot as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.lease.as_ref())
            .map(|l| l.deadline)
    }

    pub(crate) fn extend(
        self: &Arc<Self>,
        slot: u32,
        gen: u64,
        id: MessageId,
        by: Duration,
        limit: Option<Nanos>,
    ) -> Result<Nanos, AckError> {
        let mut out = Vec::new();
        let mut slow = self.slow().lock();
        let now = self.now();
        self.run_timers(&mut slow, now, &mut out);
        if !out.is_empty() {
            // Dead letters from expired leases: forward them without holding our lock.
            drop(slow);
            self.forward(out, self);
            slow = self.slow().lock();
        }
        let deadline = clock::add(now, by).min(limit.unwrap_or(NONE));
        let Some(s) = slow
            .slots
            .get_mut(slot as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.lease.as_mut())
        else {
            // The timers may have moved messages: publish that before reporting.
            self.publish_next(&mut slow);
            return Err(AckError::LeaseExpired(id));
        };
        s.deadline = deadline;
        slow.heap.push(Reverse((deadline, slot, gen)));
        slow.compact_timers();
        self.publish_next(&mut slow);
        Ok(deadline)
    }

    // ----- dead-letter queue side -------------------------------------------------------------

    /// Moves the visible dead letters to `target` (or each to its source when `target` is None).
    pub(crate) fn redrive(self: &Arc<Self>, target: Option<&Arc<Shared<T>>>, max: usize) -> usize {
        let mut moved: Vec<(Arc<Shared<T>>, Entry<T>)> = Vec::new();
        let mut out = Vec::new();
        // Sources looked at and not used: let go of after the lock, as a handle taken here may
        // become a source's last (its holders dropping theirs meanwhile), and its drop drops
        // the queue with the messages it holds (user code, which may use this queue).
        let mut unused: Vec<Arc<Shared<T>>> = Vec::new();
        {
            let mut slow = self.slow().lock();
            // Leases of dead letters that ran out put them back first: they are waiting too.
            let now = self.now();
            self.run_timers(&mut slow, now, &mut out);
            let mut waiting: VecDeque<Entry<T>> = std::mem::take(&mut slow.ready);
            if let Some(g) = slow.groups.as_mut() {
                waiting.extend(g.drain());
                // The messages that stay are put back below; those that move make room for the
                // senders of a bounded FIFO queue, which wait for it under this lock.
                if let Some(w) = &self.waits {
                    w.room.notify_all();
                }
            }
            // Oldest first (as SQS redrives), whatever lane or group each waits in. A FIFO
            // group keeps its order: each entry sorts no earlier than the one before it in its
            // group (a delayed or directly sent message may carry an older or equal time), and
            // the sort is stable.
            let fifo = slow.groups.is_some();
            let mut group_last: std::collections::HashMap<String, Nanos> = Default::default();
            let mut keyed: Vec<(Nanos, Entry<T>)> = waiting
                .drain(..)
                .map(|e| {
                    let mut at = e.enqueued();
                    if fifo {
                        let last = group_last.entry(e.group().to_owned()).or_insert(0);
                        at = at.max(*last);
                        *last = at;
                    }
                    (at, e)
                })
                .collect();
            keyed.sort_by_key(|&(at, _)| at);
            waiting.extend(keyed.into_iter().map(|(_, e)| e));
            let mut keep = Vec::new();
            // A FIFO group whose dead letter stays (its destination closed, `max` reached, or its
            // record not clearable yet) keeps its later letters too: moved, they would overtake
            // it (found by review: a letter kept back for its record let the next one of its
            // group go first).
            let mut held_groups: std::collections::HashSet<String> = Default::default();
            while let Some(e) = waiting.pop_front() {
                // An expired message never reaches a consumer: a letter past this queue's
                // retention expires here rather than move back to where consumers get it.
                if e.is_dead() && self.ready_expired(&e, now) {
                    self.expire(&mut slow, e, &mut out);
                    continue;
                }
                // Only dead letters move: a message sent here directly, or one put back after a
                // lease of this queue's own, stays.
                let dead = e.is_dead();
                let dest = match target {
                    _ if !dead => None,
                    Some(t) => Some(Arc::clone(t)),
                    None => e
                        .full_history()
                        .and_then(|h| h.source.as_ref())
                        .and_then(std::sync::Weak::upgrade),
                };
                match dest {
                    // A closed queue takes no more messages (its receivers may have seen the
                    // end already): the letter stays here. (Looked at again under its lock as
                    // the letter moves: it may close meanwhile.)
                    // A letter whose body still carries its record, shared with a holder whose
                    // lease here ran out, stays too: the record could not be cleared until that
                    // holder lets go.
                    Some(d)
                        if moved.len() < max
                            && !d.is_closed()
                            && e.record_clearable()
                            && !(fifo && held_groups.contains(e.group())) =>
                    {
                        moved.push((d, e))
                    }
                    dest => {
                        // Only a letter that can move later holds its group: one that never
                        // moves (sent here directly, or its source gone) does not.
                        if fifo && dest.is_some() && !held_groups.contains(e.group()) {
                            held_groups.insert(e.group().to_owned());
                        }
                        keep.push(e);
                        if let Some(d) = dest {
                            // A handle of a source kept already is not the last: one is enough.
                            if !unused.iter().any(|u| Arc::ptr_eq(u, &d)) {
                                unused.push(d);
                            }
                        }
                    }
                }
            }
            for e in keep {
                self.make_ready(&mut slow, e, false);
            }
            self.publish_next(&mut slow);
        }
        // Each letter moves under its destination's lock, which `close` takes once its flag is
        // set: a destination that closed since the look above refuses it, and its receivers,
        // which may have seen the end already, never get a letter after it (found by review:
        // thousands of letters stranded in a queue closed during a redrive). Refused letters
        // stay here, as they were.
        let mut refused = Vec::new();
        let mut n = 0;
        for (dest, e) in moved {
            match dest.accept_redriven(e) {
                Ok(()) => n += 1,
                Err(e) => refused.push(e),
            }
            // Let go of after the moves (see `unused`).
            unused.push(dest);
        }
        {
            let mut slow = self.slow().lock();
            slow.c.redriven += n as u64;
            if !refused.is_empty() {
                for e in refused {
                    self.make_ready(&mut slow, e, false);
                }
                self.publish_next(&mut slow);
            }
        }
        // Last: what expired leases discarded drops here, and a source queue whose last handle
        // was one of `unused` drops with what it holds: user code that may panic, which must
        // not take the letters moving with it.
        self.forward(out, self);
        drop(unused);
        n
    }

    /// Takes a dead letter redriven here, unless this queue is closed (checked under its lock,
    /// which `close` takes after setting the flag, so that a receiver that saw the end misses
    /// nothing). The letter arrives as a fresh message: its dead-letter record goes, and with
    /// it one on the message itself (read by a plain receive once and sent again by hand),
    /// cleared in place unless a holder whose lease ran out still reads the body.
    fn accept_redriven(&self, mut e: Entry<T>) -> Result<(), Entry<T>> {
        let mut slow = self.slow().lock();
        if self.is_closed() {
            return Err(e);
        }
        e.history = None;
        let m = match &mut e.body {
            Body::Owned(m) => Some(m),
            Body::Shared(h) => Arc::get_mut(h).and_then(|h| h.0.as_mut()),
        };
        if let Some(m) = m {
            m.clear_dead_letter();
        }
        e.set_enqueued(self.now());
        self.take_in(&mut slow, vec![e]);
        Ok(())
    }

    // ----- introspection ----------------------------------------------------------------------

    /// Messages accepted into the main lane and not yet sent on by a blocked sender.
    fn accepted(&self) -> u64 {
        let accepted = self.send.0.state.load(Ordering::Acquire) >> 1;
        accepted.saturating_sub(self.send.0.blocked.load(Ordering::Acquire))
    }

    pub(crate) fn main_len(&self) -> usize {
        let accepted = self.accepted();
        self.lane_len(accepted.saturating_sub(self.recv.0.popped.load(Ordering::Acquire)))
    }

    /// What `len` and `stats` report for a main lane counted at `counted` (`accepted - popped`):
    /// at most the capacity. The count runs ahead of the lane by the sends racing in, which a
    /// full lane refuses and takes back (found by review: `len` read 10 on a queue bounded at 8
    /// under racing `try_send`s), while the lane itself never holds more.
    fn lane_len(&self, counted: u64) -> usize {
        let n = usize::try_from(counted).unwrap_or(usize::MAX);
        match self.config.capacity {
            Some(cap) if !self.config.fifo => n.min(cap),
            _ => n,
        }
    }

    /// Runs the timers that are due, so that `len` and `stats` count a lease that ran out or a
    /// delay that came due whether or not a receiver came by since the clock moved.
    fn run_due_timers(self: &Arc<Self>) {
        let now = self.now();
        if self.recv.0.next_event.load(Ordering::Acquire) > now {
            return;
        }
        let mut out = Vec::new();
        {
            let mut slow = self.slow().lock();
            self.run_timers(&mut slow, now, &mut out);
            self.publish_next(&mut slow);
        }
        if !out.is_empty() {
            self.forward(out, self);
        }
    }

    pub(crate) fn len(self: &Arc<Self>) -> usize {
        self.run_due_timers();
        if self.config.fifo {
            return self.fifo_len();
        }
        let ready = if self.recv.0.next_event.load(Ordering::Acquire) == READY {
            self.slow().lock().ready.len()
        } else {
            0
        };
        self.main_len() + ready
    }

    fn fifo_len(&self) -> usize {
        let slow = self.slow().lock();
        slow.ready.len() + slow.groups.as_deref().map_or(0, Groups::len)
    }

    pub(crate) fn is_full(&self) -> bool {
        let len = if self.config.fifo {
            self.fifo_len()
        } else {
            self.main_len()
        };
        self.config.capacity.is_some_and(|c| len >= c)
    }

    pub(crate) fn stats(self: &Arc<Self>) -> QueueStats {
        self.run_due_timers();
        let mut slow = self.slow().lock();
        self.age_dedup(&mut slow);
        let now = self.now();
        let accepted = self.accepted();
        let popped = self.recv.0.popped.load(Ordering::Acquire);
        let main_len = accepted.saturating_sub(popped);
        let grouped = slow.groups.as_deref();
        let mut oldest: Option<Nanos> = slow
            .ready
            .iter()
            .chain(grouped.into_iter().flat_map(Groups::iter))
            .map(Entry::enqueued)
            .min();
        if main_len > 0 {
            // The head of the main lane is message number `popped`. While the ring still holds
            // the sample of its block of 64 sends, that sample (taken at or before the head's
            // send) gives the age. Past the ring's reach: the first send's time, or that of the
            // last message popped, most often sent just before the head.
            let samples = &self.send.0.samples;
            let (head, last) = (popped >> SAMPLE_SHIFT, (accepted - 1) >> SAMPLE_SHIFT);
            let sample = if last < head + samples.len() as u64 {
                samples[head as usize % samples.len()].load(Ordering::Relaxed)
            } else {
                0
            };
            let t = match sample {
                0 if popped == 0 => self.send.0.first.load(Ordering::Relaxed),
                0 => self.recv.0.last_popped.load(Ordering::Relaxed),
                t => t,
            };
            let t = match t {
                0 => now,
                t => t,
            };
            oldest = Some(oldest.map_or(t, |o| o.min(t)));
        }
        let c = &slow.c;
        QueueStats {
            visible: self.lane_len(main_len) + slow.ready.len() + grouped.map_or(0, Groups::len),
            groups_waiting: grouped.map_or(0, Groups::groups_waiting),
            duplicates: slow.dedup.as_ref().map_or(0, |d| d.duplicates),
            in_flight: slow.live,
            delayed: slow.delayed.len(),
            // Clamped as `visible` is: `accepted` counts sends a full queue is about to refuse
            // (found by review: 11 on a queue full at 8).
            sent: popped + self.lane_len(main_len) as u64 + c.sent_slow,
            received: popped - c.expired_main + c.received_ready,
            acked: c.acked,
            nacked: c.nacked,
            abandoned: c.abandoned,
            lease_expired: c.lease_expired,
            redelivered: c.redelivered,
            expired: c.expired,
            dead_lettered: c.dead_lettered,
            discarded: c.discarded,
            redriven: c.redriven,
            oldest_age: oldest.map(|t| Duration::from_nanos(now.saturating_sub(t))),
        }
    }
}

impl<T> Drop for Shared<T> {
    /// Drops the messages still in the main lane here, one at a time, before the channel goes:
    /// a payload's drop is user code, and when one panics, the channel's own drop (run as the
    /// unwind drops the fields) drops the rest. Left to the channel alone, a panic inside its
    /// drop loop leaked every message after it, never dropped (found by an audit of payload
    /// drops).
    fn drop(&mut self) {
        while let Ok(slot) = self.rx.try_recv() {
            drop(slot);
        }
    }
}

impl<T: Send + Sync> Wake for Shared<T> {
    fn wake_all(&self) {
        self.wake_all_waiters();
    }
}

#[cfg(test)]
impl<T> Shared<T> {
    pub(crate) fn slow_len_for_tests(&self) -> usize {
        let s = self.slow().lock();
        s.fifo.len() + s.heap.len()
    }

    pub(crate) fn waiters_for_tests(&self) -> usize {
        self.recv.0.waiters.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::AtomicBool;

    /// A payload whose drop panics when armed (a payload's drop is user code, which may).
    struct Bomb(bool);

    impl Drop for Bomb {
        fn drop(&mut self) {
            if self.0 && !std::thread::panicking() {
                panic!("deliberate panic in a drop");
            }
        }
    }

    /// A wait for room that begins past its deadline (spent on the earlier targets of a
    /// fan-out) tries at once: no spin, no yield, not even a look for room (found by review:
    /// each full target after the deadline cost a whole backoff, seconds for a 10 ms publish to
    /// thousands of full subscriptions on a busy machine). Both a topic's blocked publish and a
    /// queue's blocked send take their steps here.
    #[test]
    fn a_wait_for_room_past_its_deadline_tries_at_once() {
        let looked = std::cell::Cell::new(false);
        let roomy = || {
            looked.set(true);
            false
        };
        assert!(room_step(0, roomy, || true), "tries at once");
        assert!(!looked.get(), "without waiting for room");
        assert!(!room_step(0, roomy, || false), "in time, it waits for room");
        assert!(looked.get());
    }

    /// A receive that unwinds (an expired message's payload panics in its drop) still passes on
    /// the wake tokens it took, or the receiver each was meant for sleeps past a due message
    /// (found by review: they went with the unwind). Both ways of receiving, taking and leasing.
    #[test]
    fn a_receive_that_unwinds_passes_its_wake_tokens_on() {
        use crate::{Message, Queue};
        use std::panic::{catch_unwind, AssertUnwindSafe};

        // A plain receive meets the expired message first; a batch, after a first message (the
        // rest of a batch is leased in one go, apart from single receives).
        type Receive = fn(&Queue<Bomb>);
        let receives: [(bool, Receive); 2] = [
            (false, |q| drop(q.try_recv())),
            (true, |q| drop(q.receive_many(4, Duration::ZERO))),
        ];
        for (first, receive) in receives {
            let q: Queue<Bomb> = Queue::unbounded();
            // A message due later keeps receives off the fast path, which passes a token on
            // at once.
            q.send_after(Bomb(false), Duration::from_secs(3600))
                .unwrap();
            if first {
                q.send(Bomb(false)).unwrap();
            }
            // Two receivers waiting, and a token sent for each (a new deadline, say).
            let waiting = &q.shared.recv.0.waiters;
            let _waiting = [Waiting::announce(waiting), Waiting::announce(waiting)];
            for _ in 0..2 {
                q.shared.tx.try_send(Slot::Wake).ok().unwrap();
            }
            q.send(Message::new(Bomb(true)).with_ttl(Duration::ZERO))
                .unwrap();
            // The send may have sent tokens of its own (its deadline).
            let taken = q.shared.rx.len() - 1 - usize::from(first);
            assert!(catch_unwind(AssertUnwindSafe(|| receive(&q))).is_err());
            let left = std::iter::from_fn(|| q.shared.rx.try_recv().ok())
                .filter(|s| matches!(s, Slot::Wake))
                .count();
            assert!(
                left >= taken.min(2),
                "the tokens went on to the receivers waiting: {taken} taken, {left} left"
            );
        }
    }

    /// An undone lease (a stopping pool's worker gives back what it took after the deadline)
    /// puts the message back at the front as if never received: its attempt unspent (so not
    /// dead-lettered on its last one), its first delivery time reset, counted as abandoned; a
    /// later attempt keeps its history; a FIFO group is released with its head back first.
    /// Found by review: no test reached this path.
    #[test]
    fn an_undone_lease_spends_no_attempt() {
        use crate::{ManualClock, Message, Queue};

        let clock = ManualClock::new();
        let dlq: Queue<u32> = Queue::unbounded();
        let q: Queue<u32> = Queue::builder()
            .clock(clock.clone())
            .dead_letter(&dlq, 2)
            .build();
        q.send(1).unwrap();
        let d = q.receive().unwrap();
        q.send(2).unwrap();
        clock.advance(Duration::from_secs(5));
        d.unlease();
        let d = q.receive().unwrap();
        assert_eq!((*d.payload(), d.attempt()), (1, 1), "at the front, unspent");
        assert_eq!(d.first_delivered_at(), clock.now());
        let first = d.first_delivered_at();
        d.nack().unwrap();
        let two = q.receive().unwrap();
        assert_eq!(*two.payload(), 2, "turns with the fresh");
        two.ack().unwrap();
        let d = q.receive().unwrap();
        assert_eq!((*d.payload(), d.attempt()), (1, 2));
        d.unlease();
        let d = q.receive().unwrap();
        assert_eq!((d.attempt(), d.first_delivered_at()), (2, first));
        drop(d); // the last attempt: to the dead-letter queue
        assert_eq!(dlq.len(), 1);
        let s = q.stats();
        assert_eq!(
            (s.received, s.acked, s.nacked, s.abandoned, s.redelivered),
            (5, 1, 1, 3, 2)
        );

        let fifo: Queue<u32> = Queue::builder().fifo().build();
        fifo.send(Message::new(1).with_group("g")).unwrap();
        fifo.send(Message::new(2).with_group("g")).unwrap();
        fifo.receive().unwrap().unlease();
        let d = fifo.receive().unwrap();
        assert_eq!((*d.payload(), d.attempt()), (1, 1));
        assert!(fifo.try_receive().is_err(), "the group is held again");
        d.ack().unwrap();
        assert_eq!(*fifo.receive().unwrap().payload(), 2);
    }

    /// A returned message's history is two words (its box, 16 bytes), and an entry is its
    /// message plus one word: with a 32-byte payload, 64 + 16 bytes, 48 over the payload.
    #[test]
    fn a_returned_entry_is_its_message_plus_three_words() {
        assert_eq!(std::mem::size_of::<Hist<[u64; 4]>>(), 16);
        assert_eq!(
            std::mem::size_of::<Entry<[u64; 4]>>(),
            std::mem::size_of::<Message<[u64; 4]>>() + 8
        );
    }

    /// An acked message that an expired lease's holder still shares is not let go of under the
    /// lock: its handle comes back to be dropped after, as the other holder may drop its own
    /// meanwhile and leave the payload's drop (user code) to this one.
    #[test]
    fn recycle_never_lets_go_of_a_shared_handle() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let mut slow = Slow::new(false);
        let held = Arc::new(Held(Some(Message::new(Flag(Arc::clone(&dropped))))));
        let stale = Arc::clone(&held);
        let back = slow.recycle(held);
        drop(stale); // the stale holder lets go, as if on its own thread
        assert!(!dropped.load(Ordering::SeqCst), "dropped inside recycle");
        assert!(slow.spare.is_empty());
        drop(back);
        assert!(dropped.load(Ordering::SeqCst));

        // Alone: the allocation is kept, the message handed out to be dropped.
        let dropped = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Held(Some(Message::new(Flag(Arc::clone(&dropped))))));
        let msg = slow.recycle(held);
        assert!(!dropped.load(Ordering::SeqCst));
        assert_eq!(slow.spare.len(), 1);
        drop(msg);
        assert!(dropped.load(Ordering::SeqCst));
    }

    /// An extension with a limit stops at the limit, however far the clock moved after the
    /// caller worked the extension out: the consumer pool's heartbeat keeps leases within
    /// `max_lease` this way (found by review: it read the clock, then the queue read it again).
    #[test]
    fn an_extension_never_passes_its_limit() {
        use crate::queue::Queue;
        use crate::ManualClock;

        let clock = ManualClock::new();
        let q: Queue<u8> = Queue::builder()
            .clock(clock.clone())
            .visibility_timeout(Duration::from_secs(10))
            .build();
        q.send(1).unwrap();
        let d = q.receive().unwrap();
        let key = d.key();
        let limit = key.now() + 10_000_000_000;
        // The caller wanted 10 s from its reading, which would have reached the limit exactly;
        // the clock then moved 3 s before the queue extended.
        clock.advance(Duration::from_secs(3));
        let deadline = key.extend_within(Duration::from_secs(10), limit).unwrap();
        assert_eq!(deadline, limit);
        // Unlimited (a delivery's own extend), the same extension runs from the queue's reading.
        let mut d = d;
        d.extend(Duration::from_secs(10)).unwrap();
        assert_eq!(d.deadline_nanos(), key.now() + 10_000_000_000);
        d.ack().unwrap();
    }

    /// A burst of leases while one lease stays out: the table comes back to a few slots in
    /// steady work afterwards, not only once no lease is out (found by review); the lease held
    /// through it all still acks. Held at the top of the table, it keeps the table that large,
    /// and every lease still works.
    #[test]
    fn a_burst_lease_table_shrinks_while_a_lease_is_out() {
        use crate::queue::Queue;

        fn table(q: &Queue<u32>) -> usize {
            q.shared.slow().lock().slots.len()
        }
        fn steady(q: &Queue<u32>, n: u32) {
            for i in 0..n {
                q.send(i).unwrap();
                q.receive().unwrap().ack().unwrap();
            }
        }
        for held_first in [true, false] {
            let q: Queue<u32> = Queue::unbounded();
            q.send_batch(0..10_001).unwrap();
            let mut burst = Vec::new();
            let held = if held_first {
                let held = q.receive().unwrap();
                burst.extend((0..10_000).map(|_| q.receive().unwrap()));
                held
            } else {
                burst.extend((0..10_000).map(|_| q.receive().unwrap()));
                q.receive().unwrap()
            };
            assert_eq!(table(&q), 10_001);
            assert!(q.ack_many(burst).is_empty());
            steady(&q, 20_000);
            if held_first {
                assert!(table(&q) <= KEEP_ENTRIES, "table of {}", table(&q));
            } else {
                assert_eq!(table(&q), 10_001, "held at the top");
            }
            assert_eq!(q.stats().in_flight, 1);
            held.ack().unwrap();
            steady(&q, 100);
            assert!(table(&q) <= KEEP_ENTRIES, "no lease out: {}", table(&q));
        }
    }

    /// A redrive whose expired leases discard a message (out of attempts, no dead-letter queue
    /// of its own) moves its dead letters before that payload drops: the drop is user code, and
    /// one that panics must not take the letters with it (found by review: they were counted
    /// redriven and lost). The lease's holder has let go already, as one on another thread can
    /// between the expiry and the drop, so the payload drops in the redrive.
    #[test]
    fn a_panicking_drop_in_a_redrive_loses_no_dead_letter() {
        use crate::queue::Queue;
        use crate::ManualClock;

        let clock = ManualClock::new();
        let dlq = Queue::builder()
            .clock(clock.clone())
            .max_attempts(1)
            .build();
        let q = Queue::builder()
            .clock(clock.clone())
            .dead_letter(&dlq, 1)
            .build();
        q.send(Bomb(true)).unwrap();
        q.send(Bomb(false)).unwrap();
        for _ in 0..2 {
            q.try_receive().unwrap().nack().unwrap();
        }
        let mut bomb = dlq.try_receive().unwrap();
        assert!(bomb.payload().0);
        // Its holder lets go (a delivery settled elsewhere): the lease alone holds it now.
        drop(bomb.settle_with().take());
        drop(bomb);
        clock.advance(dlq.visibility_timeout() + Duration::from_secs(1));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dlq.redrive()));
        assert!(r.is_err(), "the discarded payload's drop panicked");
        let back = q.try_recv().expect("the dead letter was redriven");
        assert!(!back.payload().0);
        assert_eq!((dlq.stats().redriven, dlq.stats().discarded), (1, 1));
    }
}
