//! `QueueBuilder`: the options of a queue.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use std::sync::Arc;

use crate::clock::Clock;
use crate::message::Message;
use crate::queue::core::{Config, DedupKey, Shared};
use crate::queue::Queue;

/// Builds a [`Queue`] with options beyond a capacity.
///
/// ```
/// use std::time::Duration;
/// use switchboard::Queue;
///
/// let dlq = Queue::unbounded();
/// let q: Queue<String> = Queue::builder()
///     .name("orders")
///     .capacity(1024)
///     .visibility_timeout(Duration::from_secs(60))
///     .dead_letter(&dlq, 5)
///     .retention(Duration::from_secs(4 * 24 * 3600))
///     .build();
/// assert_eq!(q.capacity(), Some(1024));
/// assert_eq!(q.name(), Some("orders"));
/// ```
///
/// It does nothing until it is finished, so the compiler warns about one left unfinished:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// switchboard::Queue::<u32>::builder().capacity(8); // error: unused `QueueBuilder`
/// ```
#[must_use = "a QueueBuilder makes no queue until build()"]
pub struct QueueBuilder<T> {
    capacity: Option<usize>,
    visibility: Duration,
    dead_letter: Option<Queue<T>>,
    max_attempts: Option<u32>,
    retention: Option<Duration>,
    dead_letter_expired: bool,
    name: Option<String>,
    clock: Clock,
    fifo: bool,
    dedup_window: Duration,
    dedup_max: usize,
    dedup_key: Option<DedupKey<T>>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for QueueBuilder<T> {
    /// Another builder with the same settings: each `build` makes its own queue (queues built
    /// from clones share the dead-letter queue, if one was set).
    fn clone(&self) -> Self {
        QueueBuilder {
            capacity: self.capacity,
            visibility: self.visibility,
            dead_letter: self.dead_letter.clone(),
            max_attempts: self.max_attempts,
            retention: self.retention,
            dead_letter_expired: self.dead_letter_expired,
            name: self.name.clone(),
            clock: self.clock.clone(),
            fifo: self.fifo,
            dedup_window: self.dedup_window,
            dedup_max: self.dedup_max,
            dedup_key: self.dedup_key.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Send + Sync + 'static> QueueBuilder<T> {
    /// The defaults: unbounded, 30-second visibility timeout (SQS's default), no dead-letter queue,
    /// no retention limit, the real clock.
    pub fn new() -> Self {
        QueueBuilder {
            capacity: None,
            visibility: Duration::from_secs(30),
            dead_letter: None,
            max_attempts: None,
            retention: None,
            dead_letter_expired: false,
            name: None,
            clock: Clock::real(),
            fifo: false,
            dedup_window: Duration::from_secs(300),
            dedup_max: 1 << 20,
            dedup_key: None,
            _t: PhantomData,
        }
    }

    /// Bounds the queue to `capacity` fresh messages (see "Capacity" in the module docs).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// No bound (the default).
    pub fn unbounded(mut self) -> Self {
        self.capacity = None;
        self
    }

    /// How long a lease lasts unless extended (default 30 s). On the real clock it is kept to
    /// the clock's tick, a few milliseconds (see [`Clock`]).
    ///
    /// A lease that runs out before its verdict gives the message back: the late
    /// [`ack`](crate::Delivery::ack) fails with [`AckError::LeaseExpired`](crate::AckError::LeaseExpired) and
    /// the message is delivered again, its attempt counted toward `max_attempts`. So a timeout
    /// shorter than the handling, or zero (unlike SQS, where a zero timeout still lets a delete
    /// through), makes no ack succeed; a leased consumer that cannot bound its handling time
    /// extends its lease (or runs in a consumer pool, whose heartbeat does).
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility = timeout;
        self
    }

    /// Sends messages that fail their `max_attempts`-th delivery, and rejected messages, to `dlq`.
    /// A `max_attempts` of 0 is taken as 1.
    ///
    /// A verdict (nack, reject, a dropped `Delivery`) moves the message at once. A last lease that
    /// runs out moves it when this queue next notices the time: at its next receive, verdict,
    /// `len` or `stats`, or when one of its blocked receivers wakes for that deadline (there are
    /// no background threads). SQS likewise moves such a message on the next receive attempt. A
    /// receiver that waits only on the dead-letter queue is not woken by the lease running out.
    ///
    /// The dead-letter queue takes every letter, whatever its capacity and even after it was
    /// closed: a letter is never dropped. So a closed dead-letter queue whose receivers already
    /// got `Closed` can hold letters again; they are counted in its `len` and `stats`.
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let dlq = Queue::unbounded();
    /// let q = Queue::builder().name("orders").dead_letter(&dlq, 2).build();
    /// q.send("poison").unwrap();
    /// q.receive().unwrap().nack().unwrap(); // attempt 1: back to the queue
    /// q.receive().unwrap().nack().unwrap(); // attempt 2 of 2: dead-lettered
    /// let dead = dlq.try_recv().unwrap();
    /// let record = dead.dead_letter().unwrap();
    /// assert_eq!((record.attempts(), record.source()), (2, Some("orders")));
    /// assert_eq!(record.reason(), "nacked after 2 deliveries (max 2)");
    /// ```
    pub fn dead_letter(mut self, dlq: &Queue<T>, max_attempts: u32) -> Self {
        self.dead_letter = Some(dlq.clone());
        self.max_attempts = Some(max_attempts.max(1));
        self
    }

    /// Limits deliveries without a dead-letter queue: a message whose `max_attempts`-th delivery
    /// fails is discarded and counted in [`QueueStats::discarded`](crate::QueueStats).
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let q = Queue::builder().max_attempts(2).build();
    /// q.send("poison").unwrap();
    /// q.receive().unwrap().nack().unwrap(); // attempt 1: back to the queue
    /// q.receive().unwrap().nack().unwrap(); // attempt 2 of 2: discarded
    /// assert!(q.try_receive().is_err());
    /// assert_eq!(q.stats().discarded, 1);
    /// ```
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts.max(1));
        self
    }

    /// Messages older than `retention` (since they entered the queue) expire.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{ManualClock, Queue};
    ///
    /// let clock = ManualClock::new();
    /// let q = Queue::builder().clock(clock.clone()).retention(Duration::from_secs(60)).build();
    /// q.send("old").unwrap();
    /// clock.advance(Duration::from_secs(40));
    /// q.send("new").unwrap();
    /// clock.advance(Duration::from_secs(40)); // "old" is 80 s old, "new" 40 s
    /// assert_eq!(q.try_recv().unwrap().into_payload(), "new");
    /// assert_eq!(q.stats().expired, 1);
    /// ```
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Dead-letters expired messages (reason "expired") instead of only counting them. Needs a
    /// dead-letter queue.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{ManualClock, Queue};
    ///
    /// let clock = ManualClock::new();
    /// let dlq = Queue::unbounded();
    /// let q = Queue::builder()
    ///     .clock(clock.clone())
    ///     .retention(Duration::from_secs(60))
    ///     .dead_letter(&dlq, 3)
    ///     .dead_letter_expired(true)
    ///     .build();
    /// q.send("stale").unwrap();
    /// clock.advance(Duration::from_secs(61));
    /// assert!(q.try_recv().is_err()); // expired when the receiver came to it
    /// let dead = dlq.try_recv().unwrap();
    /// assert_eq!(dead.dead_letter().unwrap().reason(), "expired");
    /// ```
    pub fn dead_letter_expired(mut self, yes: bool) -> Self {
        self.dead_letter_expired = yes;
        self
    }

    /// A name, shown in Debug output and in dead-letter records.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The clock (default: real). A [`ManualClock`](crate::ManualClock) lets tests move time.
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// FIFO mode (SQS FIFO queues, Pub/Sub ordering keys): messages of one group (see
    /// [`Message::with_group`](crate::Message::with_group)) are delivered in the order they were
    /// sent and one at a time: while a message of a group is in flight, no later message of that
    /// group is handed out. Different groups flow in parallel, served round-robin so that a deep
    /// group cannot starve the others. Messages without a group key form one default group.
    /// A returned message (nack, drop, lease expiry) comes back first in its group; a
    /// `nack_after` holds its group until the delay passes. The capacity bounds waiting messages;
    /// a FIFO queue keeps its messages in their groups and has no rendezvous, so a capacity of 0
    /// is taken as 1 (a send would otherwise never find room).
    ///
    /// ```
    /// use switchboard::{Message, Queue};
    ///
    /// let q = Queue::builder().fifo().build();
    /// for (group, n) in [("a", 1), ("a", 2), ("b", 1)] {
    ///     q.send(Message::new((group, n)).with_group(group)).unwrap();
    /// }
    /// let a1 = q.receive().unwrap();
    /// let b1 = q.receive().unwrap(); // "a" is busy until a1 is settled
    /// assert_eq!((*a1.payload(), *b1.payload()), (("a", 1), ("b", 1)));
    /// assert!(q.try_receive().is_err());
    /// a1.ack().unwrap();
    /// assert_eq!(*q.receive().unwrap().payload(), ("a", 2));
    /// ```
    pub fn fifo(mut self) -> Self {
        self.fifo = true;
        self
    }

    /// How long a de-duplication key is remembered (default 5 minutes, as SQS). A message whose
    /// [`dedup_id`](crate::Message::with_dedup_id) (or content key) was accepted within the window is
    /// accepted again but not enqueued, and the send returns [`Sent::Duplicate`](crate::Sent).
    /// Works on any queue, FIFO or not. Keys are forgotten as they age out, on the queue's clock.
    ///
    /// On a bounded queue, a send that waits for room starts its key's window when it gets in.
    /// Until then its key is neither new nor a duplicate: a send of the same key that may wait
    /// waits for the first to end, then returns `Duplicate` if the first went in, or is sent
    /// itself if the first failed (its timeout passed); one that may not wait
    /// ([`try_send`](Queue::try_send), [`send_after`](Queue::send_after)) fails with `Full`, as
    /// the first did. So a `Duplicate` always names a message that went in.
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// The most keys the window remembers (default 2^20; 0 is taken as 1); beyond it the oldest
    /// are forgotten early, so the window's memory stays bounded whatever the send rate.
    pub fn dedup_max_keys(mut self, max: usize) -> Self {
        self.dedup_max = max.max(1);
        self
    }

    /// Content-based de-duplication: messages without a dedup id are de-duplicated by
    /// `key(message)` (say, a hash of the payload).
    ///
    /// ```
    /// use switchboard::{Message, Queue};
    ///
    /// let q = Queue::builder()
    ///     .dedup_by(|m: &Message<&str>| m.payload().to_string())
    ///     .build();
    /// assert!(!q.send("order-1").unwrap().is_duplicate());
    /// assert!(q.send("order-1").unwrap().is_duplicate());
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn dedup_by(mut self, key: impl Fn(&Message<T>) -> String + Send + Sync + 'static) -> Self {
        self.dedup_key = Some(Arc::new(key));
        self
    }

    /// Builds the queue.
    pub fn build(self) -> Queue<T> {
        Queue {
            shared: Shared::new(Config {
                capacity: match self.capacity {
                    Some(0) if self.fifo => Some(1),
                    c => c,
                },
                visibility: self.visibility,
                dead_letter: self.dead_letter,
                max_attempts: self.max_attempts,
                retention: self.retention,
                dead_letter_expired: self.dead_letter_expired,
                name: self.name,
                clock: self.clock,
                fifo: self.fifo,
                dedup_window: self.dedup_window,
                dedup_max: self.dedup_max,
                dedup_key: self.dedup_key,
            }),
        }
    }
}

impl<T: Send + Sync + 'static> Default for QueueBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for QueueBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("capacity", &self.capacity)
            .field("visibility", &self.visibility)
            .field("max_attempts", &self.max_attempts)
            .field("retention", &self.retention)
            .field("name", &self.name)
            .field("fifo", &self.fifo)
            .field("dedup_window", &self.dedup_window)
            .finish_non_exhaustive()
    }
}
