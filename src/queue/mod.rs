//! Point-to-point queues: many senders, many competing receivers, each message consumed once.
//!
//! A [`Queue`] is the in-process equivalent of an SQS queue. Sending is crossbeam-channel's send
//! plus a counter and a clock read; receiving comes two ways:
//!
//! - **Plain** ([`recv`](Queue::recv) and family): at-most-once. The message leaves the queue
//!   when it is received, at the cost of a raw channel receive.
//! - **Leased** ([`receive`](Queue::receive) and family): at-least-once. The message stays in
//!   flight, invisible to other receivers, until the [`Delivery`] gets a verdict.
//!
//! # Leases and redelivery
//!
//! A lease ends with `ack` (gone), `nack` / `nack_after` (back now / later), `reject` (to the
//! dead-letter queue), when its visibility timeout passes, or when the `Delivery` is dropped
//! without a verdict (a consumer that returned early or panicked), which puts the message back at
//! once. A verdict after the lease ended returns [`AckError::LeaseExpired`](crate::AckError) and
//! changes nothing: each delivery has its own token.
//!
//! ```
//! use std::time::Duration;
//! use switchboard::{ManualClock, Queue};
//!
//! let clock = ManualClock::new();
//! let q = Queue::builder().clock(clock.clone()).visibility_timeout(Duration::from_secs(30)).build();
//! q.send("job").unwrap();
//!
//! let first = q.receive().unwrap();
//! clock.advance(Duration::from_secs(31)); // the consumer stalled: its lease expires
//! let second = q.try_receive().unwrap(); // and someone else gets the message
//! assert_eq!(second.attempt(), 2);
//! assert!(first.ack().is_err()); // too late: the stale ack does not touch the new lease
//! second.ack().unwrap();
//! ```
//!
//! A leased message is shared with its holder, never copied (`T` need not be `Clone`). So while
//! the holder of an expired lease still has its `Delivery`, a *leased* receive gets the message
//! at once, but a *plain* receive, which takes the message by value, passes over it until the
//! holder drops the `Delivery` or gives its (failing) verdict. A queue whose handlers may hang
//! past their visibility timeout is best consumed on lease only.
//!
//! # Ordering and fairness
//!
//! Fresh messages are delivered in the order they were sent (per sender; across senders in the
//! order the channel accepted them). A message that comes back (nack, drop, lease expiry, a delay
//! that became due) joins the *ready lane*, which receivers serve alternately with the fresh
//! messages while both hold messages: a returned message never waits behind a deep backlog, and a
//! message that keeps failing cannot starve the rest.
//!
//! # Capacity
//!
//! A bounded queue holds at most `capacity` fresh messages waiting to be received: `send` waits
//! for room, `try_send` fails with `Full`. Messages coming *back* (a returned lease, a dead letter
//! arriving, a redrive) never wait for room, since a `Drop` can neither block nor lose a message.
//! Delayed messages are bounded separately, by the same capacity: a delayed send is refused while
//! the delayed messages plus those waiting outside the main lane (due ones, returned ones, and a
//! FIFO queue's grouped ones) reach it. Once due, they wait beside the fresh ones without taking
//! their room. So [`len`](Queue::len) (and what waits) can reach twice the capacity, plus the
//! messages returned, and [`is_full`](Queue::is_full) speaks of the fresh messages' room only.
//! In-flight messages are outside the bound.
//!
//! Up to 65,536 the main lane is a bounded crossbeam channel, whose slots (a message and a stamp
//! each) are allocated when the queue is made. A larger capacity, up to `usize::MAX`, is counted
//! instead, exactly, over a channel that allocates as it fills; a sender waiting for room in such
//! a queue (full, so more than 65,536 messages behind) looks again every millisecond rather than
//! being woken.
//!
//! Memory follows what is in the queue: a new queue takes under 1 KiB; the lease table, the lane
//! of returned messages, the delay heap, a FIFO group's messages and the de-duplication window
//! grow with a burst and are given back as it ends (each down to about twice what it still
//! holds once it holds under a quarter of its room; the lease table down to the highest slot
//! still leased; aged-out de-duplication keys at the queue's next operation past the plain
//! fast path, or `stats`), keeping only small ones. A queue that has leased keeps up to about
//! 4 KiB of acked messages' allocations for later leases.
//!
//! # Dead letters
//!
//! With [`dead_letter(dlq, max)`](QueueBuilder::dead_letter), a message whose lease fails (nack,
//! drop, expiry) on its `max`-th delivery, or that is rejected, goes to `dlq` with a
//! [`DeadLetter`](crate::DeadLetter) record (reason, attempts, source). [`redrive`](Queue::redrive)
//! moves dead letters back to their source. Without a dead-letter queue, a failing message is
//! retried without limit, unless [`max_attempts`](QueueBuilder::max_attempts) is set: then it is
//! discarded when its last delivery fails. A rejected message is discarded at once, limit or not.
//! Both are counted in [`QueueStats::discarded`].
//!
//! # Delay and time-to-live
//!
//! [`send_after`](Queue::send_after) and [`send_at`](Queue::send_at) hold a message back until it
//! is due. A message's [`with_ttl`](crate::Message::with_ttl), or the queue's
//! [`retention`](QueueBuilder::retention), makes it expire: an expired message never reaches a
//! consumer; it is counted in [`QueueStats::expired`] when a receiver comes to it, and
//! dead-lettered if [`dead_letter_expired`](QueueBuilder::dead_letter_expired) is set.
//!
//! # Closing
//!
//! [`close`](Queue::close) makes every later send fail and hand its message back, and wakes
//! senders blocked on a full queue. Receivers go on receiving what is left, including delayed
//! messages when due and messages whose leases fail, and get `Closed` only when nothing is left:
//! nothing visible, delayed or in flight. Deliveries can be acked, nacked or rejected after close.
//! Dropping the last handle (and the last `Delivery`) drops the messages still in the queue.
//!
//! Unlike a crossbeam-channel, flume or `std::sync::mpsc` channel, a queue has no separate
//! sender and receiver handles: every handle can do both, so a queue does not close when its
//! producers drop their handles. A receiver (a `for m in &queue` loop, a consumer pool's `join`)
//! ends only after someone calls `close`: do so when the last producer is done.
//!
//! ```
//! use std::thread;
//! use std::time::Duration;
//! use switchboard::{Queue, RecvTimeoutError};
//!
//! let q = Queue::unbounded();
//! let producer = q.clone();
//! thread::spawn(move || producer.send(1).unwrap()).join().unwrap(); // its handle is gone
//! assert_eq!(q.recv().unwrap().into_payload(), 1);
//! let err = q.recv_timeout(Duration::from_millis(5)).unwrap_err();
//! assert_eq!(err, RecvTimeoutError::Timeout); // not Closed: nobody closed it
//! q.close();
//! assert!(q.recv().is_err());
//! ```
//!
//! # Time
//!
//! No thread runs behind the queue. Visibility timeouts, delays and expiry are deadlines that
//! receivers honour in their own waits: a blocked receiver wakes when a lease expires or a delayed
//! message becomes due, even one that appeared after it began to wait. Time comes from the
//! queue's [`Clock`](crate::Clock), which tests can replace with a [`ManualClock`](crate::ManualClock).

mod builder;
pub(crate) mod core;
mod delivery;
mod fifo;

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use self::builder::QueueBuilder;
pub use self::delivery::Delivery;
pub(crate) use self::delivery::LeaseKey;

pub(crate) use self::core::Leftovers;
use self::core::{How, Out, Shared, Wait};
use crate::clock;
use crate::endpoint::deadline_after;
use crate::error::{
    RecvError, RecvTimeoutError, Refused, SendBatchError, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
use crate::message::{Message, MessageId};

/// What a successful send did.
///
/// ```
/// use switchboard::{Queue, Sent};
///
/// let q = Queue::unbounded();
/// let sent = q.send("hello").unwrap();
/// assert!(matches!(sent, Sent::Enqueued(_)));
/// assert!(!sent.is_duplicate());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sent {
    /// The message is in the queue, under this id.
    Enqueued(MessageId),
    /// The message duplicated one accepted within the de-duplication window and was not enqueued
    /// again; the id is the original message's.
    Duplicate(MessageId),
}

impl Sent {
    /// The id of the message sent.
    pub fn id(&self) -> MessageId {
        match *self {
            Sent::Enqueued(id) | Sent::Duplicate(id) => id,
        }
    }

    /// Whether the message was dropped as a duplicate.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Sent::Duplicate(_))
    }
}

/// Counts and gauges of a queue, from [`Queue::stats`].
///
/// Counters are counted where each transition happens, so they stay exact under concurrency (a
/// snapshot taken while other threads work can be a few operations apart between fields).
///
/// ```
/// use switchboard::Queue;
///
/// let q = Queue::unbounded();
/// q.send(1).unwrap();
/// q.send(2).unwrap();
/// let d = q.receive().unwrap();
/// let s = q.stats();
/// assert_eq!((s.sent, s.received, s.visible, s.in_flight), (2, 1, 1, 1));
/// d.ack().unwrap();
/// assert_eq!(q.stats().acked, 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Messages waiting to be received (not delayed, not in flight). A message whose
    /// time-to-live ran out counts here until a receiver comes to it, discards it and counts it
    /// in `expired`. In a FIFO queue this includes the messages of groups whose head is in
    /// flight, which no receiver can take until that head is settled.
    pub visible: usize,
    /// Messages leased and not yet settled.
    pub in_flight: usize,
    /// Messages waiting for their delay to pass.
    pub delayed: usize,
    /// Messages enqueued: sends, delayed sends, dead letters and redrives arriving. A duplicate
    /// (de-duplication) is counted in `duplicates` only.
    pub sent: u64,
    /// Receives: plain and leased, redeliveries included.
    pub received: u64,
    /// Leases acked.
    pub acked: u64,
    /// Leases nacked (`nack`, `nack_after`).
    pub nacked: u64,
    /// Leases whose Delivery was dropped without a verdict.
    pub abandoned: u64,
    /// Leases whose visibility timeout passed.
    pub lease_expired: u64,
    /// Deliveries after the first of a message.
    pub redelivered: u64,
    /// Messages that expired (time-to-live or retention) before a consumer got them.
    pub expired: u64,
    /// Messages sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Messages dropped because they failed or were rejected with no dead-letter queue.
    pub discarded: u64,
    /// Dead letters moved out of this queue by [`redrive`](Queue::redrive) or
    /// [`redrive_to`](Queue::redrive_to).
    pub redriven: u64,
    /// Age of the oldest visible message. For the fresh messages, it is that of a message at
    /// most 64 sends older than the oldest while fewer than 320 wait; past that, that of the
    /// last one received before it (with senders racing, that one may be a little younger).
    pub oldest_age: Option<Duration>,
    /// FIFO queues: groups with messages waiting.
    pub groups_waiting: usize,
    /// Messages accepted but not enqueued because they duplicated one within the window.
    pub duplicates: u64,
}

/// A point-to-point queue: many senders, many competing receivers, each message consumed by one.
///
/// `Clone` gives another handle to the same queue, never a new queue. See the [module
/// docs](crate::queue) for leases, ordering, capacity, dead letters, delays and closing.
///
/// ```
/// use std::thread;
/// use switchboard::Queue;
///
/// let q = Queue::bounded(16);
/// let producer = {
///     let q = q.clone(); // another handle to the same queue
///     thread::spawn(move || {
///         for i in 0..100 {
///             q.send(i).unwrap();
///         }
///         q.close();
///     })
/// };
/// let sum: i32 = q.iter().map(|m| m.into_payload()).sum();
/// producer.join().unwrap();
/// assert_eq!(sum, 4950);
/// ```
pub struct Queue<T> {
    pub(crate) shared: Arc<Shared<T>>,
}

impl<T: Send + Sync + 'static> Queue<T> {
    /// A queue holding at most `capacity` fresh messages; `send` waits for room.
    ///
    /// A capacity of 0 makes a rendezvous queue: a send waits for a receiver to take the message.
    /// Any capacity up to `usize::MAX` works; see "Capacity" in the [module docs](crate::queue)
    /// for what a large one costs.
    pub fn bounded(capacity: usize) -> Queue<T> {
        Queue::builder().capacity(capacity).build()
    }

    /// A queue without a bound; `send` never waits.
    pub fn unbounded() -> Queue<T> {
        Queue::builder().build()
    }

    /// A builder for the other options: visibility timeout, dead letters, retention, clock, name.
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder::new()
    }
}

impl<T> Queue<T> {
    // ----- sending ----------------------------------------------------------------------------

    /// Sends a message, without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] when a bounded queue is at capacity, [`TrySendError::Closed`] after
    /// [`close`](Queue::close); both hand the message back.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Queue, TrySendError};
    ///
    /// let q = Queue::bounded(1);
    /// q.try_send(1).unwrap();
    /// let err = q.try_send(2).unwrap_err();
    /// assert!(err.is_full());
    /// assert_eq!(err.into_inner().into_payload(), 2);
    /// ```
    #[inline]
    pub fn try_send(&self, msg: impl Into<Message<T>>) -> Result<Sent, TrySendError<T>> {
        let msg = msg.into();
        let came = msg.timestamp_nanos();
        self.shared.try_send(msg).map_err(as_it_came(came))
    }

    /// Sends a message, waiting for room in a full bounded queue.
    ///
    /// # Errors
    ///
    /// [`SendError`] once the queue is closed (also when it closes during the wait), handing the
    /// message back.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let q = Queue::unbounded();
    /// let id = q.send("hello").unwrap().id();
    /// assert_eq!(q.recv().unwrap().id(), id);
    /// ```
    #[inline]
    pub fn send(&self, msg: impl Into<Message<T>>) -> Result<Sent, SendError<T>> {
        let msg = msg.into();
        let came = msg.timestamp_nanos();
        self.shared.send_forever(msg).map_err(as_it_came(came))
    }

    /// Sends a message, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Closed`], handing the message back.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::Queue;
    ///
    /// let q = Queue::bounded(1);
    /// q.send(1).unwrap();
    /// let err = q.send_timeout(2, Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    pub fn send_timeout(
        &self,
        msg: impl Into<Message<T>>,
        timeout: Duration,
    ) -> Result<Sent, SendTimeoutError<T>> {
        self.send_deadline(msg, deadline_after(timeout))
    }

    /// Sends a message, waiting until `deadline` at most for room.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Queue::send_timeout).
    pub fn send_deadline(
        &self,
        msg: impl Into<Message<T>>,
        deadline: Instant,
    ) -> Result<Sent, SendTimeoutError<T>> {
        let msg = msg.into();
        let came = msg.timestamp_nanos();
        self.shared
            .send(msg, Some(deadline))
            .map_err(as_it_came(came))
    }

    /// Sends a message that becomes visible after `delay` (SQS's `DelaySeconds`), without waiting.
    ///
    /// On a FIFO queue a delayed message joins its group when it comes due, behind whatever the
    /// group holds then: it does not hold back the messages of its group sent after it. (SQS
    /// refuses per-message delays on FIFO queues; here the delay wins over the send order.)
    ///
    /// # Errors
    ///
    /// [`TrySendError::Closed`] after close; [`TrySendError::Full`] when a bounded queue already
    /// holds `capacity` delayed messages, counting those that came due and wait (see "Capacity"
    /// in the [module docs](crate::queue); so always on a rendezvous queue, of capacity 0), or
    /// when a send of the same de-duplication key is still waiting for room.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{ManualClock, Queue};
    ///
    /// let clock = ManualClock::new();
    /// let q = Queue::builder().clock(clock.clone()).build();
    /// q.send_after("later", Duration::from_secs(10)).unwrap();
    /// assert!(q.try_recv().is_err());
    /// assert_eq!(q.stats().delayed, 1);
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(q.try_recv().unwrap().into_payload(), "later");
    /// ```
    pub fn send_after(
        &self,
        msg: impl Into<Message<T>>,
        delay: Duration,
    ) -> Result<Sent, TrySendError<T>> {
        let due = clock::add(self.shared.now(), delay);
        let msg = msg.into();
        let came = msg.timestamp_nanos();
        self.shared.send_at(msg, due).map_err(as_it_came(came))
    }

    /// Sends a message that becomes visible at `at` on the queue's clock, without waiting. A
    /// time already past makes it visible at once, as [`send_after`](Queue::send_after) with no
    /// delay does; on the real clock, `Instant::now()` counts as past. A
    /// [`ManualClock`](crate::ManualClock) reads only what it was advanced to, so there a real
    /// `Instant::now()` usually lies ahead: use [`ManualClock::now`](crate::ManualClock::now)
    /// for "now" on a queue that runs on one.
    ///
    /// # Errors
    ///
    /// As [`send_after`](Queue::send_after).
    pub fn send_at(
        &self,
        msg: impl Into<Message<T>>,
        at: Instant,
    ) -> Result<Sent, TrySendError<T>> {
        let msg = msg.into();
        let came = msg.timestamp_nanos();
        self.shared
            .send_at(msg, self.shared.config.clock.nanos_at(at))
            .map_err(as_it_came(came))
    }

    /// Sends every message of `batch` in order, waiting for room as [`send`](Queue::send) does.
    /// Returns how many went into the queue: a duplicate that de-duplication turned away is not
    /// counted (as in [`QueueStats::sent`], it counts in `duplicates` only).
    ///
    /// # Errors
    ///
    /// If the queue closes part-way, [`SendBatchError`] says how many went in and hands back the
    /// rest: every message `batch` still had, which it reads to its end (so a batch must end:
    /// pump an endless or blocking source through [`send`](Queue::send) one message at a time,
    /// or in chunks).
    ///
    /// # Panics
    ///
    /// If the drop of a duplicate (de-duplication drops it) panics: the messages before it are
    /// sent, the rest drop unsent with the batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Message, Queue};
    ///
    /// let q = Queue::unbounded();
    /// assert_eq!(q.send_batch(0..10).unwrap(), 10);
    /// assert_eq!(q.len(), 10);
    ///
    /// let deduped = Queue::builder().dedup_by(|m: &Message<&str>| m.payload().to_string()).build();
    /// assert_eq!(deduped.send_batch(["a", "a", "b"]).unwrap(), 2);
    /// assert_eq!((deduped.len(), deduped.stats().duplicates), (2, 1));
    /// ```
    pub fn send_batch<I>(&self, batch: I) -> Result<usize, SendBatchError<T>>
    where
        I: IntoIterator,
        I::Item: Into<Message<T>>,
    {
        let mut iter = batch.into_iter();
        let mut sent = 0;
        while let Some(m) = iter.next() {
            match self.send(m) {
                Ok(s) => sent += usize::from(!s.is_duplicate()),
                Err(e) => {
                    let mut unsent = vec![e.into_inner()];
                    unsent.extend(iter.map(Into::into));
                    return Err(SendBatchError { sent, unsent });
                }
            }
        }
        Ok(sent)
    }

    /// A send within a fan-out already under way (a chained queue's, see
    /// `Endpoint::deliver_reach_into`): a duplicate is left in `later` rather than dropped.
    pub(crate) fn send_keeping(
        &self,
        msg: Message<T>,
        wait: crate::endpoint::Wait,
        later: &mut Vec<Message<T>>,
    ) -> Result<Sent, SendTimeoutError<T>> {
        let wait = match wait {
            crate::endpoint::Wait::Never => Wait::Never,
            crate::endpoint::Wait::Until(d) => Wait::Until(Some(d)),
            crate::endpoint::Wait::Forever => Wait::Until(None),
        };
        let came = msg.timestamp_nanos();
        self.shared
            .send_keeping(msg, wait, later)
            .map_err(as_it_came(came))
    }

    // ----- plain receiving --------------------------------------------------------------------

    /// Receives a message if one is ready, without waiting (at-most-once).
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is ready, [`TryRecvError::Closed`] when the queue is
    /// closed and nothing is left.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Queue, TryRecvError};
    ///
    /// let q = Queue::unbounded();
    /// assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Empty);
    /// q.send(1).unwrap();
    /// assert_eq!(q.try_recv().unwrap().into_payload(), 1);
    /// q.close();
    /// assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Closed);
    /// ```
    #[inline]
    pub fn try_recv(&self) -> Result<Message<T>, TryRecvError> {
        match self.shared.try_recv_fast() {
            Some(m) => Ok(m),
            None => self.try_recv_slow(),
        }
    }

    /// `try_recv` past its fast path. Out of line: the general path's values (`Out`, with a
    /// `Delivery` in it) would otherwise share the inlined fast path's code, whose copies of
    /// them cost store-forwarding stalls on every receive (measured with perf).
    #[cold]
    #[inline(never)]
    fn try_recv_slow(&self) -> Result<Message<T>, TryRecvError> {
        self.shared.try_take(How::Plain).map(Out::into_message)
    }

    /// Receives a message, waiting for one (at-most-once).
    ///
    /// A message whose expired lease's holder still has its `Delivery` is not taken until the
    /// holder lets go (see [Leases and redelivery](crate::queue#leases-and-redelivery)).
    ///
    /// # Errors
    ///
    /// [`RecvError`] when the queue is closed and nothing is left.
    #[inline]
    pub fn recv(&self) -> Result<Message<T>, RecvError> {
        match self.shared.try_recv_fast() {
            Some(m) => Ok(m),
            None => self.recv_slow(),
        }
    }

    /// `recv` past its fast path, out of line (see `try_recv_slow`).
    #[cold]
    #[inline(never)]
    fn recv_slow(&self) -> Result<Message<T>, RecvError> {
        self.shared
            .take(How::Plain, None)
            .map(Out::into_message)
            .map_err(|_| RecvError)
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Queue, RecvTimeoutError};
    ///
    /// let q: Queue<u8> = Queue::unbounded();
    /// assert_eq!(q.recv_timeout(Duration::from_millis(5)).unwrap_err(), RecvTimeoutError::Timeout);
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message<T>, RecvTimeoutError> {
        self.recv_deadline(deadline_after(timeout))
    }

    /// Receives a message, waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Queue::recv_timeout).
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Message<T>, RecvTimeoutError> {
        self.shared
            .take(How::Plain, Some(deadline))
            .map(Out::into_message)
    }

    /// Waits up to `wait` for a first message, then takes up to `max` in all without waiting
    /// more (SQS's `ReceiveMessage` with `MaxNumberOfMessages` and `WaitTimeSeconds`). An empty
    /// vector means nothing came within `wait`; with `max == 0` it comes at once, taking
    /// nothing and telling nothing (not even `RecvError` on a closed queue).
    ///
    /// # Errors
    ///
    /// [`RecvError`] when the queue is closed and nothing is left.
    ///
    /// # Panics
    ///
    /// If dropping an expired message it steps over panics (a payload whose `Drop` panics).
    /// The messages this call had already taken are then lost with the unwind, though counted
    /// as received.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::Queue;
    ///
    /// let q = Queue::unbounded();
    /// q.send_batch(0..5).unwrap();
    /// let got = q.recv_many(3, Duration::ZERO).unwrap();
    /// assert_eq!(got.iter().map(|m| *m.payload()).collect::<Vec<_>>(), [0, 1, 2]);
    /// ```
    pub fn recv_many(&self, max: usize, wait: Duration) -> Result<Vec<Message<T>>, RecvError> {
        self.recv_many_until(max, deadline_after(wait))
    }

    /// A blocking iterator over received messages; it ends when the queue is closed and drained.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            queue: self,
            done: false,
        }
    }

    /// An iterator over the messages ready now; it never waits.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { queue: self }
    }

    /// A blocking iterator over deliveries on lease (at-least-once), on the queue's visibility
    /// timeout: [`receive`](Queue::receive) in a loop. It ends when the queue is closed and
    /// drained. Each delivery wants its verdict; one dropped without it comes back, to this
    /// iterator or another receiver.
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let q = Queue::unbounded();
    /// q.send_batch(1..=3).unwrap();
    /// q.close(); // the iterator ends once the queue is closed and every lease is settled
    /// let mut sum = 0;
    /// for d in q.deliveries() {
    ///     sum += *d.payload();
    ///     d.ack().unwrap();
    /// }
    /// assert_eq!(sum, 6);
    /// ```
    pub fn deliveries(&self) -> Deliveries<'_, T> {
        self.with_visibility(self.shared.config.visibility)
            .deliveries()
    }

    // ----- leased receiving -------------------------------------------------------------------

    /// Receives a message on lease if one is ready, without waiting (at-least-once).
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Queue::try_recv).
    pub fn try_receive(&self) -> Result<Delivery<T>, TryRecvError> {
        self.with_visibility(self.shared.config.visibility)
            .try_receive()
    }

    /// Receives a message on lease, waiting for one.
    ///
    /// # Errors
    ///
    /// [`RecvError`] when the queue is closed and nothing is left (nothing visible, delayed or in
    /// flight).
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let q = Queue::unbounded();
    /// q.send("job").unwrap();
    /// let d = q.receive().unwrap();
    /// assert_eq!(*d.payload(), "job");
    /// assert_eq!(q.stats().in_flight, 1); // leased, not gone
    /// d.ack().unwrap();
    /// q.close();
    /// assert!(q.receive().is_err()); // closed, and nothing visible, delayed or in flight
    /// ```
    pub fn receive(&self) -> Result<Delivery<T>, RecvError> {
        self.with_visibility(self.shared.config.visibility)
            .receive()
    }

    /// Receives a message on lease, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Queue, RecvTimeoutError};
    ///
    /// let q = Queue::unbounded();
    /// q.send("job").unwrap();
    /// let d = q.receive_timeout(Duration::from_secs(1)).unwrap(); // ready: no wait
    /// let err = q.receive_timeout(Duration::ZERO).unwrap_err(); // the only message is leased
    /// assert_eq!(err, RecvTimeoutError::Timeout);
    /// d.ack().unwrap();
    /// ```
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Delivery<T>, RecvTimeoutError> {
        self.with_visibility(self.shared.config.visibility)
            .receive_timeout(timeout)
    }

    /// Receives a message on lease, waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// As [`receive_timeout`](Queue::receive_timeout).
    pub fn receive_deadline(&self, deadline: Instant) -> Result<Delivery<T>, RecvTimeoutError> {
        self.with_visibility(self.shared.config.visibility)
            .receive_deadline(deadline)
    }

    /// Waits up to `wait` for a first message, then leases up to `max` in all. With `max == 0`
    /// it returns an empty vector at once, as [`recv_many`](Queue::recv_many) does.
    ///
    /// The rest of the batch is leased under one lock and one clock reading, so a consumer that
    /// takes batches and settles them with [`ack_many`](Queue::ack_many) pays the lease
    /// bookkeeping once per batch rather than once per message (`cargo bench --bench queue`,
    /// the `leased_batch` lane). Each delivery still has a lease of its own.
    ///
    /// A batch holds each message once. With a visibility timeout shorter than the wait, the
    /// first lease may run out before the rest are taken: the batch stops there and comes back
    /// with that delivery alone, as [`receive`](Queue::receive) hands out a lease that ran out
    /// (its ack fails with `LeaseExpired`), so that no attempt is spent on a delivery nobody saw.
    ///
    /// On a FIFO queue a batch holds at most one message per group, as any lease does: the next
    /// message of a group goes out only once the one before is settled. (SQS can return several
    /// messages of one group in a batch.)
    ///
    /// # Errors
    ///
    /// [`RecvError`] when the queue is closed and nothing is left.
    ///
    /// # Panics
    ///
    /// If dropping an expired message it steps over panics (a payload whose `Drop` panics).
    /// The deliveries this call had already made are then dropped with the unwind, so their
    /// messages go back to the queue as abandoned, each with an attempt counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::Queue;
    ///
    /// let q = Queue::unbounded();
    /// q.send_batch(0..5).unwrap();
    /// let batch = q.receive_many(3, Duration::ZERO).unwrap();
    /// assert_eq!(batch.iter().map(|d| *d.payload()).collect::<Vec<_>>(), [0, 1, 2]);
    /// assert_eq!((q.stats().in_flight, q.len()), (3, 2));
    /// assert!(q.ack_many(batch).is_empty());
    /// ```
    pub fn receive_many(&self, max: usize, wait: Duration) -> Result<Vec<Delivery<T>>, RecvError> {
        self.with_visibility(self.shared.config.visibility)
            .receive_many(max, wait)
    }

    /// Leased receives with another visibility timeout than the queue's default (what a timeout
    /// too short for the handling does: see
    /// [`QueueBuilder::visibility_timeout`](crate::QueueBuilder::visibility_timeout)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::Queue;
    ///
    /// let q = Queue::unbounded();
    /// q.send("slow job").unwrap();
    /// let d = q.with_visibility(Duration::from_secs(600)).receive().unwrap();
    /// assert!(d.lease_deadline() > std::time::Instant::now() + Duration::from_secs(500));
    /// d.ack().unwrap();
    /// ```
    pub fn with_visibility(&self, timeout: Duration) -> Leasing<'_, T> {
        Leasing {
            queue: self,
            visibility: timeout,
        }
    }

    /// Acks many deliveries at once (one lock for all). Returns the ids of those whose lease had
    /// expired; the rest are acked. A delivery from another queue is acked on its own queue, as
    /// [`Delivery::ack`] would (its id is returned too if its lease had expired).
    ///
    /// # Panics
    ///
    /// If dropping an acked message panics (a payload whose `Drop` panics). Every delivery of
    /// the batch is settled before any payload drops, so the acks stand; only the list of
    /// expired leases is lost with the unwind.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::Queue;
    ///
    /// let q = Queue::unbounded();
    /// q.send_batch(0..4).unwrap();
    /// let batch = q.receive_many(10, Duration::ZERO).unwrap();
    /// assert!(q.ack_many(batch).is_empty());
    /// assert_eq!(q.stats().acked, 4);
    /// ```
    pub fn ack_many(&self, deliveries: impl IntoIterator<Item = Delivery<T>>) -> Vec<MessageId> {
        let mut later = Leftovers::default();
        let lost = self.ack_many_keeping(deliveries, &mut later);
        // Only now, with every delivery of the batch settled, do payloads drop: a drop is user
        // code, and one that panics must not leave a delivery unacked, to come back although
        // the caller acked it (found by an audit of payload drops).
        drop(later);
        lost
    }

    /// As [`ack_many`](Queue::ack_many), but what the acks let go of (messages, deliveries) is
    /// left in `later`, for the caller to drop once it has nothing more to settle.
    pub(crate) fn ack_many_keeping(
        &self,
        deliveries: impl IntoIterator<Item = Delivery<T>>,
        later: &mut Leftovers<T>,
    ) -> Vec<MessageId> {
        let mut held: Vec<Delivery<T>> = deliveries.into_iter().collect();
        let ours = |d: &Delivery<T>| Arc::ptr_eq(d.shared(), &self.shared);
        let mut lost = Vec::new();
        // Split only when needed: a partition grows two vectors a push at a time (8% of a batch
        // receive and ack of 32, measured).
        let mut foreign = Vec::new();
        if !held.iter().all(ours) {
            let (mine, theirs) = held.into_iter().partition(ours);
            held = mine;
            foreign = theirs;
        }
        self.shared.ack_many(&mut held, &mut lost, later);
        // Not a reason to panic: each on its own queue, a run of one queue's under one lock.
        for run in foreign.chunk_by_mut(|x, y| Arc::ptr_eq(x.shared(), y.shared())) {
            let shared = Arc::clone(run[0].shared());
            shared.ack_many(run, &mut lost, later);
        }
        // The settled deliveries go too (one whose lease had ended still holds its message),
        // in the batch's own vector when nothing is there yet.
        if later.deliveries.is_empty() {
            later.deliveries = held;
        } else {
            later.deliveries.append(&mut held);
        }
        later.deliveries.append(&mut foreign);
        lost
    }

    // ----- dead letters -----------------------------------------------------------------------

    /// Moves the dead letters waiting in this queue (used as a dead-letter queue) back to the
    /// queues they came from, with their attempt counts and dead-letter records cleared. Returns
    /// how many moved. Dead letters whose source queue is gone or closed, or that were sent here
    /// directly, stay. In a FIFO dead-letter queue, so do the letters of a group whose head is on
    /// lease (or backing off after a `nack_after`), or that come after a letter of their group
    /// that stays for another reason: moved, they would overtake it. So does a
    /// letter leased here whose lease ran out while its holder still has the [`Delivery`]: the
    /// record in the message they share cannot be cleared until that holder lets go. Letters
    /// past this queue's [retention](crate::QueueBuilder::retention) expire here instead.
    ///
    /// A letter's time-to-live keeps running (a dead-letter queue does not apply it, but a
    /// redrive does not restart it either): one whose time ran out moves, and counts as moved,
    /// then expires at its source's next receive (back here if the source dead-letters expired
    /// messages). Retention restarts with the move.
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let dlq = Queue::unbounded();
    /// let q = Queue::builder().dead_letter(&dlq, 1).build();
    /// q.send("poison").unwrap();
    /// q.receive().unwrap().nack().unwrap(); // first and last attempt
    /// assert_eq!(dlq.len(), 1);
    /// assert_eq!(dlq.redrive(), 1);
    /// assert_eq!(q.try_receive().unwrap().attempt(), 1);
    /// ```
    pub fn redrive(&self) -> usize {
        self.shared.redrive(None, usize::MAX)
    }

    /// Moves up to `max` dead letters waiting in this queue to `target`, whatever their source,
    /// oldest first. Returns how many moved. Only dead letters move: a message sent to this
    /// queue directly stays, as does one put back after a lease of this queue's own. Nothing
    /// moves to a closed `target`, not even one that closes while the redrive runs (the letters
    /// it refuses stay here, and its receivers never get one after they saw it closed), and a
    /// FIFO group with its head on lease here keeps its letters, and letters past this queue's
    /// retention expire here (see [`redrive`](Queue::redrive)).
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let dlq = Queue::unbounded();
    /// let q = Queue::builder().dead_letter(&dlq, 1).build();
    /// q.send_batch(["a", "b"]).unwrap();
    /// q.receive().unwrap().reject("bad input").unwrap();
    /// q.receive().unwrap().reject("bad input").unwrap();
    /// let fixed = Queue::unbounded();
    /// assert_eq!(dlq.redrive_to(&fixed, 1), 1); // oldest first, at most `max`
    /// let m = fixed.try_recv().unwrap();
    /// assert_eq!((*m.payload(), m.dead_letter().is_none()), ("a", true));
    /// assert_eq!((dlq.len(), dlq.stats().redriven), (1, 1));
    /// ```
    pub fn redrive_to(&self, target: &Queue<T>, max: usize) -> usize {
        self.shared.redrive(Some(&target.shared), max)
    }

    // ----- lifecycle and introspection --------------------------------------------------------

    /// Closes the queue: later sends fail and hand their message back; receivers drain what is
    /// left, then get `Closed`. Returns whether this call closed it (false if already closed).
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let q = Queue::unbounded();
    /// q.send(1).unwrap();
    /// assert!(q.close());
    /// assert!(!q.close());
    /// assert!(q.send(2).is_err());
    /// assert_eq!(q.recv().unwrap().into_payload(), 1); // drained after close
    /// assert!(q.recv().is_err());
    /// ```
    pub fn close(&self) -> bool {
        self.shared.close()
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Whether `self` and `other` are handles to the same queue (as crossbeam-channel's
    /// `same_channel`).
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let q: Queue<u32> = Queue::unbounded();
    /// assert!(q.same_queue(&q.clone()));
    /// assert!(!q.same_queue(&Queue::unbounded()));
    /// ```
    pub fn same_queue(&self, other: &Queue<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Messages waiting to be received (fresh and returned; not delayed or in flight). A
    /// message whose time-to-live ran out counts until a receiver comes to it and discards it.
    /// In a FIFO queue this includes the messages behind a group's head in flight, which wait
    /// for it to be settled.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether no message is waiting to be received now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a bounded queue is at capacity (a send would wait).
    pub fn is_full(&self) -> bool {
        self.shared.is_full()
    }

    /// The bound on fresh messages, `None` for an unbounded queue.
    pub fn capacity(&self) -> Option<usize> {
        self.shared.config.capacity
    }

    /// The default visibility timeout of leases.
    pub fn visibility_timeout(&self) -> Duration {
        self.shared.config.visibility
    }

    /// How many deliveries a message gets before it is dead-lettered or discarded (`None`: no
    /// limit).
    pub fn max_attempts(&self) -> Option<u32> {
        self.shared.config.max_attempts
    }

    /// The queue's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.shared.config.name.as_deref()
    }

    /// Counts and gauges: see [`QueueStats`].
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let dlq = Queue::unbounded();
    /// let q = Queue::builder().dead_letter(&dlq, 1).build();
    /// q.send_batch(["ok", "bad"]).unwrap();
    /// q.receive().unwrap().ack().unwrap();
    /// q.receive().unwrap().nack().unwrap(); // its first and last attempt
    /// let s = q.stats();
    /// assert_eq!((s.sent, s.received, s.acked, s.nacked), (2, 2, 1, 1));
    /// assert_eq!((s.visible, s.in_flight, s.dead_lettered), (0, 0, 1));
    /// assert_eq!(dlq.stats().sent, 1);
    /// ```
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }

    /// A plain batch receive: waits until `deadline` for a first message, then takes what else
    /// is there, up to `max`.
    fn recv_many_until(&self, max: usize, deadline: Instant) -> Result<Vec<Message<T>>, RecvError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        match self.shared.take(How::Plain, Some(deadline)) {
            Ok(o) => {
                out.reserve(max.min(1 + self.shared.main_len()));
                out.push(o.into_message());
            }
            Err(RecvTimeoutError::Timeout) => return Ok(out),
            Err(RecvTimeoutError::Closed) => return Err(RecvError),
        }
        while out.len() < max {
            match self.shared.try_take(How::Plain) {
                Ok(o) => out.push(o.into_message()),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// A leased batch receive: waits until `deadline` for a first message, then leases what else
    /// is there, up to `max`, under one lock. Gives up early (with nothing) once `stop` is set and
    /// the waiters woken (see `Shared::take_until`).
    fn receive_many_inner(
        &self,
        max: usize,
        deadline: Instant,
        vis: Duration,
        stop: Option<&AtomicBool>,
    ) -> Result<Vec<Delivery<T>>, RecvError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        loop {
            match self
                .shared
                .take_until(How::Lease(vis), Some(deadline), stop)
            {
                Ok(o) => out.push(o.into_delivery()),
                Err(RecvTimeoutError::Timeout) => return Ok(out),
                Err(RecvTimeoutError::Closed) => return Err(RecvError),
            }
            self.shared.lease_many(vis, max - 1, &mut out);
            // The batch keeps its first delivery (see `lease_many` and `take_ended`), so it is
            // not empty; were it ever, waiting on beats an empty batch before the wait is up,
            // which reads as a timeout (found by review when batches dropped an ended lease).
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }
}

impl<T> Queue<T> {
    /// A leased receive (default visibility) that also gives up, as a timeout, once `stop` is
    /// set and the queue's waiters are woken: a consumer pool's idle worker learns of a
    /// shutdown at once instead of polling the flag.
    pub(crate) fn receive_until(
        &self,
        deadline: Instant,
        stop: &AtomicBool,
    ) -> Result<Delivery<T>, RecvTimeoutError> {
        let how = How::Lease(self.shared.config.visibility);
        self.shared
            .take_until(how, Some(deadline), Some(stop))
            .map(Out::into_delivery)
    }

    /// `receive_many` until `deadline`, giving up (with nothing) as `receive_until` does.
    pub(crate) fn receive_many_until(
        &self,
        max: usize,
        deadline: Instant,
        stop: &AtomicBool,
    ) -> Result<Vec<Delivery<T>>, RecvError> {
        let vis = self.shared.config.visibility;
        self.receive_many_inner(max, deadline, vis, Some(stop))
    }

    /// Wakes every blocked receiver, to look again at what it waits for.
    pub(crate) fn wake_receivers(&self) {
        self.shared.wake_all_waiters();
    }
}

impl<T: Send + Sync + 'static> Default for Queue<T> {
    /// An unbounded queue with the default options, as [`Queue::unbounded`] (and as
    /// [`Topic::default`](crate::Topic) is a new topic).
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// #[derive(Default)]
    /// struct Jobs {
    ///     pending: Queue<String>,
    /// }
    /// let jobs = Jobs::default();
    /// assert_eq!(jobs.pending.capacity(), None);
    /// ```
    fn default() -> Self {
        Queue::unbounded()
    }
}

impl<T> Clone for Queue<T> {
    /// Another handle to the same queue.
    fn clone(&self) -> Self {
        Queue {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Leased receives with a visibility timeout other than the queue's default: see
/// [`Queue::with_visibility`].
///
/// ```
/// use std::time::Duration;
/// use switchboard::{ManualClock, Queue};
///
/// let clock = ManualClock::new();
/// let q = Queue::builder().clock(clock.clone()).build(); // default visibility: 30 s
/// q.send("slow job").unwrap();
/// let d = q.with_visibility(Duration::from_secs(600)).receive().unwrap();
/// clock.advance(Duration::from_secs(60)); // past the default, within this lease
/// assert!(q.try_receive().is_err());
/// assert_eq!(q.stats().lease_expired, 0);
/// d.ack().unwrap();
/// ```
#[must_use = "a visibility timeout applies to the receives made through it"]
pub struct Leasing<'a, T> {
    queue: &'a Queue<T>,
    visibility: Duration,
}

impl<'a, T> Leasing<'a, T> {
    /// As [`Queue::deliveries`], on this visibility timeout.
    pub fn deliveries(&self) -> Deliveries<'a, T> {
        Deliveries {
            queue: self.queue,
            visibility: self.visibility,
            done: false,
        }
    }

    /// As [`Queue::try_receive`].
    ///
    /// # Errors
    ///
    /// As [`Queue::try_recv`].
    #[inline]
    pub fn try_receive(&self) -> Result<Delivery<T>, TryRecvError> {
        match self.queue.shared.try_lease_fast(self.visibility) {
            Some(d) => Ok(d),
            None => self.try_receive_slow(),
        }
    }

    /// `try_receive` past its fast path, out of line (see `Queue::try_recv_slow`).
    #[cold]
    #[inline(never)]
    fn try_receive_slow(&self) -> Result<Delivery<T>, TryRecvError> {
        self.queue
            .shared
            .try_take(How::Lease(self.visibility))
            .map(Out::into_delivery)
    }

    /// As [`Queue::receive`].
    ///
    /// # Errors
    ///
    /// As [`Queue::receive`].
    #[inline]
    pub fn receive(&self) -> Result<Delivery<T>, RecvError> {
        match self.queue.shared.try_lease_fast(self.visibility) {
            Some(d) => Ok(d),
            None => self.receive_slow(),
        }
    }

    /// `receive` past its fast path, out of line (see `Queue::try_recv_slow`).
    #[cold]
    #[inline(never)]
    fn receive_slow(&self) -> Result<Delivery<T>, RecvError> {
        self.queue
            .shared
            .take(How::Lease(self.visibility), None)
            .map(Out::into_delivery)
            .map_err(|_| RecvError)
    }

    /// As [`Queue::receive_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Queue::receive_timeout`].
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Delivery<T>, RecvTimeoutError> {
        self.receive_deadline(deadline_after(timeout))
    }

    /// As [`Queue::receive_deadline`].
    ///
    /// # Errors
    ///
    /// As [`Queue::receive_timeout`].
    pub fn receive_deadline(&self, deadline: Instant) -> Result<Delivery<T>, RecvTimeoutError> {
        self.queue
            .shared
            .take(How::Lease(self.visibility), Some(deadline))
            .map(Out::into_delivery)
    }

    /// As [`Queue::receive_many`].
    ///
    /// # Errors
    ///
    /// As [`Queue::receive_many`].
    pub fn receive_many(&self, max: usize, wait: Duration) -> Result<Vec<Delivery<T>>, RecvError> {
        self.queue
            .receive_many_inner(max, deadline_after(wait), self.visibility, None)
    }
}

impl<T> fmt::Debug for Leasing<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leasing")
            .field("visibility", &self.visibility)
            .finish_non_exhaustive()
    }
}

/// A blocking iterator over a queue's messages: see [`Queue::iter`].
///
/// ```
/// use switchboard::Queue;
///
/// let q = Queue::unbounded();
/// q.send_batch(1..=3).unwrap();
/// q.close(); // the iterator ends once the queue is closed and drained
/// let got: Vec<i32> = q.iter().map(|m| m.into_payload()).collect();
/// assert_eq!(got, [1, 2, 3]);
/// ```
pub struct Iter<'a, T> {
    queue: &'a Queue<T>,
    /// Ended: it stays ended (a closed dead-letter queue still takes letters, which a receive
    /// would find later; an iterator that ended does not start again).
    done: bool,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = Message<T>;

    fn next(&mut self) -> Option<Message<T>> {
        fused(&mut self.done, || self.queue.recv().ok())
    }
}

impl<T> std::iter::FusedIterator for Iter<'_, T> {}

/// One step of a fused iterator: `None` for good once `next` gave `None`.
fn fused<I>(done: &mut bool, next: impl FnOnce() -> Option<I>) -> Option<I> {
    if *done {
        return None;
    }
    let item = next();
    *done = item.is_none();
    item
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Iter { .. }")
    }
}

/// A blocking iterator over deliveries on lease: see [`Queue::deliveries`].
///
/// ```
/// use std::time::Duration;
/// use switchboard::Queue;
///
/// let q = Queue::unbounded();
/// q.send("job").unwrap();
/// q.close();
/// let mut long = q.with_visibility(Duration::from_secs(600)).deliveries();
/// let d = long.next().unwrap();
/// assert!(d.lease_deadline() > std::time::Instant::now() + Duration::from_secs(500));
/// d.ack().unwrap();
/// assert!(long.next().is_none());
/// ```
pub struct Deliveries<'a, T> {
    queue: &'a Queue<T>,
    visibility: Duration,
    /// Ended: fused as [`Iter`] is (a closed dead-letter queue still takes letters, and an
    /// iterator that ended does not start again; found by review).
    done: bool,
}

impl<T> Iterator for Deliveries<'_, T> {
    type Item = Delivery<T>;

    fn next(&mut self) -> Option<Delivery<T>> {
        let (queue, visibility) = (self.queue, self.visibility);
        fused(&mut self.done, || {
            queue.with_visibility(visibility).receive().ok()
        })
    }
}

impl<T> std::iter::FusedIterator for Deliveries<'_, T> {}

impl<T> fmt::Debug for Deliveries<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliveries")
            .field("visibility", &self.visibility)
            .finish_non_exhaustive()
    }
}

/// A non-blocking iterator over the messages ready now: see [`Queue::try_iter`].
///
/// ```
/// use switchboard::Queue;
///
/// let q = Queue::unbounded();
/// q.send_batch(1..=3).unwrap();
/// let got: Vec<i32> = q.try_iter().map(|m| m.into_payload()).collect(); // the queue is open
/// assert_eq!(got, [1, 2, 3]);
/// assert!(q.is_empty() && !q.is_closed());
/// ```
pub struct TryIter<'a, T> {
    queue: &'a Queue<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = Message<T>;

    fn next(&mut self) -> Option<Message<T>> {
        self.queue.try_recv().ok()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TryIter { .. }")
    }
}

/// An owning blocking iterator over a queue's messages, from `Queue::into_iter` (the queue's
/// [`IntoIterator`]); it ends when the queue is closed and drained.
///
/// Unlike a channel's receiver, it does not end when the other handles go: a queue has no
/// sender half whose drop could tell it (any handle sends and receives). Iterating over the
/// last handle therefore waits forever once the queue is empty, as nothing is left to close it.
/// To drain what is there, use [`try_iter`](Queue::try_iter).
///
/// ```
/// use std::thread;
/// use switchboard::Queue;
///
/// let q = Queue::unbounded();
/// let rx = q.clone(); // another handle, moved into the consumer
/// let consumer = thread::spawn(move || rx.into_iter().map(|m| m.into_payload()).sum::<i32>());
/// q.send_batch(1..=4).unwrap();
/// q.close();
/// assert_eq!(consumer.join().unwrap(), 10);
/// ```
pub struct IntoIter<T> {
    queue: Queue<T>,
    /// Ended for good (see `Iter::done`).
    done: bool,
}

impl<T> Iterator for IntoIter<T> {
    type Item = Message<T>;

    fn next(&mut self) -> Option<Message<T>> {
        fused(&mut self.done, || self.queue.recv().ok())
    }
}

impl<T> std::iter::FusedIterator for IntoIter<T> {}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IntoIter { .. }")
    }
}

impl<'a, T> IntoIterator for &'a Queue<T> {
    type Item = Message<T>;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Queue<T> {
    type Item = Message<T>;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter {
            queue: self,
            done: false,
        }
    }
}

/// Hands a refused message back as it came, with the timestamp it had before the send (none,
/// for one never sent): a queue stamps a message before it knows whether it will take it, and
/// a refused one came back looking sent to it (found by review: a list with a clock then judged
/// it expired by a time-to-live that had never started).
#[inline]
fn as_it_came<T, E: Refused<T>>(timestamp: clock::Nanos) -> impl FnOnce(E) -> E {
    move |mut e| {
        e.message_mut().stamp(timestamp);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn fresh_slot_costs_nothing_over_the_message() {
        use self::core::Slot;
        assert_eq!(
            std::mem::size_of::<Slot<u64>>(),
            std::mem::size_of::<Message<u64>>()
        );
        assert_eq!(std::mem::size_of::<Slot<[u64; 2]>>(), 16 + 24);
    }

    #[test]
    fn an_idle_queue_is_small() {
        // The shared state: three cache-line groups (what senders write, what receivers write,
        // the slow state's lock) and the read-mostly handles and configuration.
        let shared = std::mem::size_of::<self::core::Shared<u64>>();
        assert!(shared <= 768, "Shared is {shared} bytes");
    }

    #[test]
    fn timers_compact_when_acks_leave_stale_entries() {
        let q = Queue::unbounded();
        for i in 0..10_000 {
            q.send(i).unwrap();
            let keep = q.receive().unwrap();
            keep.ack().unwrap();
        }
        let slow = q.shared.slow_len_for_tests();
        assert!(slow < 200, "timer queue grew to {slow}");
    }

    #[test]
    fn blocked_receiver_wakes_for_a_deadline_that_appears_later() {
        let clock = ManualClock::new();
        let q: Queue<u32> = Queue::builder().clock(clock.clone()).build();
        std::thread::scope(|s| {
            let h = s.spawn(|| q.recv_timeout(Duration::from_secs(20)));
            // Wait until the receiver is blocked, then schedule and advance.
            let t0 = Instant::now();
            while q.shared.waiters_for_tests() == 0 && t0.elapsed() < Duration::from_secs(10) {
                std::thread::yield_now();
            }
            q.send_after(7, Duration::from_secs(5)).unwrap();
            clock.advance(Duration::from_secs(5));
            assert_eq!(h.join().unwrap().unwrap().into_payload(), 7);
        });
    }

    /// A blocked receive that user code unwinds (the drop of an expired message it discards)
    /// stops counting itself as waiting (found by review: the count stayed up for good, so
    /// later wake-ups sent tokens for a receiver that was not there, which woke later waits
    /// for nothing).
    #[test]
    fn a_blocked_receive_that_unwinds_is_no_longer_counted_waiting() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                if !std::thread::panicking() {
                    panic!("deliberate panic in drop");
                }
            }
        }
        for q in [Queue::<Bomb>::unbounded(), Queue::bounded(4)] {
            std::thread::scope(|s| {
                let h = s.spawn(|| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        q.recv_timeout(Duration::from_secs(20))
                    }))
                });
                let t0 = Instant::now();
                while q.shared.waiters_for_tests() == 0 {
                    assert!(t0.elapsed() < Duration::from_secs(10), "never blocked");
                    std::thread::yield_now();
                }
                // Expired on arrival: the receiver discards it, and its drop panics.
                q.send(Message::new(Bomb).with_ttl(Duration::ZERO)).unwrap();
                assert!(h.join().unwrap().is_err(), "the drop panicked");
            });
            assert_eq!(q.shared.waiters_for_tests(), 0);
            assert_eq!(q.stats().expired, 1);
        }
    }
}
