//! `Subscription<T>`: one subscriber's buffer and its receive family.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel as cb;

use crate::clock::Clock;
use crate::endpoint::deadline_after;
use crate::error::{RecvError, RecvTimeoutError, TryRecvError};
use crate::message::Message;
use crate::spin;
use crate::topic::core::{Shared, SubCounters, SubKey};
use crate::topic::{Overflow, SubscribeOptions, SubscriptionId, SubscriptionStats};

/// One subscriber's stream of a [`Topic`](crate::Topic)'s messages, from
/// [`Topic::subscribe`](crate::Topic::subscribe).
///
/// It holds its own buffer and receives like a queue (`try_recv`, `recv`, `recv_timeout`,
/// `recv_deadline`, `iter`, `try_iter`, `IntoIterator`): the messages published after it
/// subscribed, in publish order. It is not `Clone`: a second subscriber subscribes. Dropping it
/// unsubscribes at once; publishers then pay nothing for it. After the topic closes (or its last
/// handle is dropped) it receives what it holds, then `Closed`.
///
/// A message with a time-to-live ([`Message::with_ttl`], counted from its publish) that runs out
/// while it waits in the buffer never reaches the subscriber: a receive discards it when it comes
/// up and counts it in [`expired`](Subscription::expired). Until then it is buffered, so it
/// counts in [`len`](Subscription::len) and takes room.
///
/// ```
/// use switchboard::{Topic, TryRecvError};
///
/// let topic = Topic::new();
/// let sub = topic.subscribe();
/// topic.publish(1).unwrap();
/// topic.publish(2).unwrap();
/// assert_eq!(sub.len(), 2);
/// let got: Vec<i32> = sub.try_iter().map(|m| m.into_payload()).collect();
/// assert_eq!(got, [1, 2]);
/// assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
/// drop(sub); // unsubscribes
/// assert_eq!(topic.subscriber_count(), 0);
/// ```
///
/// A subscription dropped at once (a call to `subscribe` used as a statement) receives nothing;
/// the compiler warns about that:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let topic: switchboard::Topic<u32> = switchboard::Topic::new();
/// topic.subscribe(); // error: unused `Subscription`
/// ```
#[must_use = "dropping a Subscription unsubscribes it: keep it to receive"]
pub struct Subscription<T> {
    rx: cb::Receiver<Message<T>>,
    key: SubKey,
    options: SubscribeOptions,
    counters: Arc<SubCounters>,
    clock: Clock,
    topic: Weak<Shared<T>>,
}

impl<T> Subscription<T> {
    pub(crate) fn new(
        rx: cb::Receiver<Message<T>>,
        key: SubKey,
        options: SubscribeOptions,
        counters: Arc<SubCounters>,
        clock: Clock,
        topic: Weak<Shared<T>>,
    ) -> Subscription<T> {
        Subscription {
            rx,
            key,
            options,
            counters,
            clock,
            topic,
        }
    }

    /// Counts a message handed to the subscriber.
    #[inline]
    fn hand_out(&self, m: Message<T>) -> Message<T> {
        self.counters.received.0.fetch_add(1, Ordering::Relaxed);
        m
    }

    /// The receive family's way past a message with a time-to-live: hands out the first of
    /// `m` and the messages `next` takes that has not expired, discarding and counting the rest.
    /// Out of the hot path (inlined, the check slowed every receive by a quarter: `cargo bench
    /// --bench topic`), and a loop, so a long run of expired messages costs no stack.
    #[cold]
    #[inline(never)]
    fn past_expired<E>(
        &self,
        mut m: Message<T>,
        mut next: impl FnMut() -> Result<Message<T>, E>,
    ) -> Result<Message<T>, E> {
        loop {
            match m.expiry_nanos() {
                Some(at) if at <= self.clock.nanos() => {
                    self.counters.expired.fetch_add(1, Ordering::Relaxed);
                }
                _ => return Ok(self.hand_out(m)),
            }
            // Dropped before the next is taken: its drop is user code, and one that panics
            // must not take a message the subscriber never saw with it.
            drop(m);
            m = next()?;
        }
    }

    /// Receives a message if one is buffered, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is buffered, [`TryRecvError::Closed`] when the topic
    /// is closed (or gone, or this subscription was unsubscribed) and nothing is left.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Topic, TryRecvError};
    ///
    /// let topic = Topic::new();
    /// let sub = topic.subscribe();
    /// assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    /// topic.publish("x").unwrap();
    /// assert_eq!(sub.try_recv().unwrap().into_payload(), "x");
    /// drop(topic);
    /// assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Closed);
    /// ```
    #[inline]
    pub fn try_recv(&self) -> Result<Message<T>, TryRecvError> {
        match self.rx.try_recv() {
            Ok(m) if m.ttl().is_none() => Ok(self.hand_out(m)),
            Ok(m) => self.past_expired(m, || self.rx.try_recv().map_err(try_recv_error)),
            Err(e) => Err(try_recv_error(e)),
        }
    }

    /// Receives a message, waiting for one.
    ///
    /// # Errors
    ///
    /// [`RecvError`] when the topic is closed and nothing is left.
    #[inline]
    pub fn recv(&self) -> Result<Message<T>, RecvError> {
        match self.wait(None) {
            Ok(m) if m.ttl().is_none() => Ok(self.hand_out(m)),
            Ok(m) => self.past_expired(m, || self.wait(None).map_err(|_| RecvError)),
            Err(_) => Err(RecvError),
        }
    }

    /// The channel's blocking receive (until `deadline`, if any), after a spin that looks every
    /// spin-loop hint (see `spin`): a publisher that answers quickly is seen at once, not after
    /// a backoff's gap. A deadline too close for the spin (a zero timeout, as `recv_many` with
    /// no wait uses) looks once and waits without it.
    #[inline]
    fn wait(&self, deadline: Option<Instant>) -> Result<Message<T>, cb::RecvTimeoutError> {
        match self.rx.try_recv() {
            Ok(m) => Ok(m),
            Err(cb::TryRecvError::Disconnected) => Err(cb::RecvTimeoutError::Disconnected),
            Err(cb::TryRecvError::Empty) => {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if spin::worth_it(left) {
                    spin::poll(|| !self.rx.is_empty());
                }
                match deadline {
                    Some(d) => self.rx.recv_deadline(d),
                    None => self
                        .rx
                        .recv()
                        .map_err(|_| cb::RecvTimeoutError::Disconnected),
                }
            }
        }
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
    /// use switchboard::{RecvTimeoutError, Topic};
    ///
    /// let topic: Topic<u8> = Topic::new();
    /// let sub = topic.subscribe();
    /// assert_eq!(sub.recv_timeout(Duration::from_millis(5)).unwrap_err(), RecvTimeoutError::Timeout);
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message<T>, RecvTimeoutError> {
        self.recv_deadline(deadline_after(timeout))
    }

    /// Receives a message, waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Subscription::recv_timeout).
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Message<T>, RecvTimeoutError> {
        let next = || self.wait(Some(deadline)).map_err(recv_timeout_error);
        match next() {
            Ok(m) if m.ttl().is_none() => Ok(self.hand_out(m)),
            Ok(m) => self.past_expired(m, next),
            Err(e) => Err(e),
        }
    }

    /// Waits up to `wait` for a first message, then takes up to `max` in all without waiting
    /// more (as [`Queue::recv_many`](crate::Queue::recv_many)). Empty when nothing came in time.
    ///
    /// # Errors
    ///
    /// [`RecvError`] when the topic is closed and nothing is left.
    ///
    /// # Panics
    ///
    /// If dropping an expired message it steps over panics (a payload whose `Drop` panics), as
    /// [`Queue::recv_many`](crate::Queue::recv_many) does: the messages this call had already
    /// taken are then lost with the unwind, though counted as received.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::Topic;
    ///
    /// let topic = Topic::new();
    /// let sub = topic.subscribe();
    /// for i in 0..5 {
    ///     topic.publish(i).unwrap();
    /// }
    /// let got = sub.recv_many(3, Duration::ZERO).unwrap();
    /// assert_eq!(got.iter().map(|m| *m.payload()).collect::<Vec<_>>(), [0, 1, 2]);
    /// drop(topic);
    /// assert_eq!(sub.recv_many(10, Duration::ZERO).unwrap().len(), 2);
    /// assert!(sub.recv_many(10, Duration::ZERO).is_err());
    /// ```
    pub fn recv_many(&self, max: usize, wait: Duration) -> Result<Vec<Message<T>>, RecvError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        match self.recv_timeout(wait) {
            Ok(m) => out.push(m),
            Err(RecvTimeoutError::Timeout) => return Ok(out),
            Err(RecvTimeoutError::Closed) => return Err(RecvError),
        }
        out.extend(self.try_iter().take(max - 1));
        Ok(out)
    }

    /// A blocking iterator over received messages; it ends when the topic is closed and this
    /// subscription drained.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { sub: self }
    }

    /// An iterator over the messages buffered now; it never waits.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { sub: self }
    }

    /// A new subscription to the same topic, with this one's options and filter, that receives
    /// the messages published from now on (as tokio's `broadcast::Receiver::resubscribe`); this
    /// one is left as it is. On a topic that is closed, or gone, the new one is closed from the
    /// start (and, the topic being gone, has this one's [`id`](Subscription::id): nothing is left
    /// to hand out another).
    ///
    /// ```
    /// use switchboard::{Filter, Message, Topic};
    ///
    /// let topic: Topic<i32> = Topic::new();
    /// let eu = topic.subscribe_filtered(Filter::from_json(r#"{"region": ["eu"]}"#).unwrap());
    /// topic.publish(Message::new(1).with_attr("region", "eu")).unwrap();
    /// let late = eu.resubscribe();
    /// topic.publish(Message::new(2).with_attr("region", "eu")).unwrap();
    /// topic.publish(Message::new(3).with_attr("region", "us")).unwrap();
    /// assert_eq!(late.try_iter().map(|m| m.into_payload()).collect::<Vec<_>>(), [2]);
    /// assert_eq!(eu.try_iter().count(), 2);
    /// ```
    pub fn resubscribe(&self) -> Subscription<T> {
        match self.topic.upgrade() {
            Some(shared) => {
                let filter = shared.filter_of(self.key);
                crate::Topic { shared }.subscribe_inner(filter, self.options)
            }
            None => {
                // Its sender dropped at once: receives report `Closed`.
                let (_, rx) = cb::bounded(0);
                Subscription::new(
                    rx,
                    self.key,
                    self.options,
                    Arc::new(SubCounters::default()),
                    self.clock.clone(),
                    Weak::new(),
                )
            }
        }
    }

    /// Changes this subscription's filter (`None`: receive everything again), from the next
    /// publish on. Returns false if the topic is gone or closed, or no longer has this
    /// subscription ([`Topic::unsubscribe`](crate::Topic::unsubscribe) removed it).
    pub fn set_filter(&self, filter: Option<crate::Filter<T>>) -> bool {
        match self.topic.upgrade() {
            Some(topic) => topic.set_filter(self.key, filter),
            None => false,
        }
    }

    /// Whether no later publish will come: the topic is closed or gone, or this subscription
    /// was removed with [`Topic::unsubscribe`](crate::Topic::unsubscribe). What is buffered can
    /// still be received, and so can the message of a publish that was already under way on
    /// another thread when the topic closed (as [`Topic::close`](crate::Topic::close) says);
    /// once that is drained, and every publish that was under way has ended, receives fail
    /// with `Closed`. A publish under way holds the subscriber set it started with, so one
    /// waiting on another, stalled `Block` subscription holds off `Closed` here too, until that
    /// subscriber reads or drops its subscription: a receive with a timeout, or `is_closed`
    /// after draining, does not wait for it. The same question as
    /// [`Queue::is_closed`](crate::Queue::is_closed), for a subscriber.
    ///
    /// ```
    /// use switchboard::Topic;
    ///
    /// let topic = Topic::new();
    /// let (a, b) = (topic.subscribe(), topic.subscribe());
    /// topic.publish(1).unwrap();
    /// assert!(!a.is_closed());
    /// topic.unsubscribe(b.id());
    /// assert!(b.is_closed() && !a.is_closed());
    /// topic.close();
    /// assert!(a.is_closed());
    /// assert_eq!(a.recv().unwrap().into_payload(), 1); // still buffered
    /// ```
    pub fn is_closed(&self) -> bool {
        self.topic.upgrade().is_none_or(|t| !t.contains(self.key))
    }

    /// This subscription's id in its topic.
    pub fn id(&self) -> SubscriptionId {
        SubscriptionId(self.key)
    }

    /// Messages buffered and not yet received (the lag behind the publishers).
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// The lag behind the publishers: the same as [`len`](Subscription::len).
    pub fn lag(&self) -> usize {
        self.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Whether the buffer is full (the next publish triggers the overflow policy).
    pub fn is_full(&self) -> bool {
        // A large capacity is counted over an unbounded channel, which is never full itself.
        self.options.capacity.is_some_and(|c| self.rx.len() >= c)
    }

    /// The buffer's capacity, `None` if unbounded.
    pub fn capacity(&self) -> Option<usize> {
        self.options.capacity
    }

    /// The overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.options.overflow
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.counters.received.0.load(Ordering::Relaxed)
    }

    /// Messages this subscription lost to its overflow policy (or, chained, to a closed or
    /// refusing endpoint): how much it missed.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Messages whose time-to-live ran out in the buffer, discarded instead of received.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{ManualClock, Message, Topic};
    ///
    /// let clock = ManualClock::new();
    /// let topic = Topic::builder().clock(clock.clone()).build();
    /// let sub = topic.subscribe();
    /// topic.publish(Message::new("stale soon").with_ttl(Duration::from_secs(1))).unwrap();
    /// topic.publish("lasting").unwrap();
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(sub.try_recv().unwrap().into_payload(), "lasting");
    /// assert_eq!((sub.expired(), sub.received()), (1, 1));
    /// ```
    pub fn expired(&self) -> u64 {
        self.counters.expired.load(Ordering::Relaxed)
    }

    /// Received, dropped and lag together.
    pub fn stats(&self) -> SubscriptionStats {
        SubscriptionStats {
            received: self.received(),
            dropped: self.dropped(),
            expired: self.expired(),
            lag: self.len(),
        }
    }
}

fn try_recv_error(e: cb::TryRecvError) -> TryRecvError {
    match e {
        cb::TryRecvError::Empty => TryRecvError::Empty,
        cb::TryRecvError::Disconnected => TryRecvError::Closed,
    }
}

fn recv_timeout_error(e: cb::RecvTimeoutError) -> RecvTimeoutError {
    match e {
        cb::RecvTimeoutError::Timeout => RecvTimeoutError::Timeout,
        cb::RecvTimeoutError::Disconnected => RecvTimeoutError::Closed,
    }
}

impl<T> Drop for Subscription<T> {
    /// Unsubscribes: the next publish no longer sees this subscription.
    fn drop(&mut self) {
        self.counters.gone.store(true, Ordering::Release);
        if let Some(topic) = self.topic.upgrade() {
            if !topic.remove(self.key) {
                // Removed before (`Topic::unsubscribe`): its filter was kept for `resubscribe`.
                topic.forget(self.key);
            }
        }
        // The messages left in the buffer drop here, one at a time, before the channel goes: a
        // payload's drop is user code, and when one panics, the channel's own drop (run as the
        // unwind drops the fields) drops the rest. Left to the channel alone, a panic inside its
        // drop loop leaked every message after it (found by an audit of payload drops).
        while let Ok(m) = self.rx.try_recv() {
            drop(m);
        }
    }
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.key)
            .field("len", &self.len())
            .field("capacity", &self.options.capacity)
            .field("overflow", &self.options.overflow)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

/// A blocking iterator over a subscription's messages: see [`Subscription::iter`].
///
/// ```
/// use switchboard::Topic;
///
/// let topic = Topic::new();
/// let sub = topic.subscribe();
/// topic.publish("a").unwrap();
/// topic.publish("b").unwrap();
/// topic.close(); // the iterator ends once the topic is closed and `sub` drained
/// let got: Vec<&str> = sub.iter().map(|m| m.into_payload()).collect();
/// assert_eq!(got, ["a", "b"]);
/// ```
pub struct Iter<'a, T> {
    sub: &'a Subscription<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = Message<T>;

    fn next(&mut self) -> Option<Message<T>> {
        self.sub.recv().ok()
    }
}

/// Fused: a subscription that reported its topic closed and itself drained gets nothing more.
impl<T> std::iter::FusedIterator for Iter<'_, T> {}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Iter { .. }")
    }
}

/// A non-blocking iterator over the messages buffered now: see [`Subscription::try_iter`].
///
/// ```
/// use switchboard::Topic;
///
/// let topic = Topic::new();
/// let sub = topic.subscribe();
/// topic.publish(1).unwrap();
/// topic.publish(2).unwrap();
/// let got: Vec<i32> = sub.try_iter().map(|m| m.into_payload()).collect(); // the topic is open
/// assert_eq!(got, [1, 2]);
/// assert!(sub.is_empty() && !topic.is_closed());
/// ```
pub struct TryIter<'a, T> {
    sub: &'a Subscription<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = Message<T>;

    fn next(&mut self) -> Option<Message<T>> {
        self.sub.try_recv().ok()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TryIter { .. }")
    }
}

/// An owning blocking iterator over a subscription's messages, from `Subscription::into_iter`
/// (the subscription's [`IntoIterator`]); it ends when the topic is closed and the buffer drained.
///
/// ```
/// use std::thread;
/// use switchboard::Topic;
///
/// let topic = Topic::new();
/// let sub = topic.subscribe();
/// let reader = thread::spawn(move || sub.into_iter().map(|m| m.into_payload()).sum::<i32>());
/// for n in 1..=4 {
///     topic.publish(n).unwrap();
/// }
/// topic.close();
/// assert_eq!(reader.join().unwrap(), 10);
/// ```
pub struct IntoIter<T> {
    sub: Subscription<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = Message<T>;

    fn next(&mut self) -> Option<Message<T>> {
        self.sub.recv().ok()
    }
}

/// Fused: a subscription that reported its topic closed and itself drained gets nothing more.
impl<T> std::iter::FusedIterator for IntoIter<T> {}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IntoIter { .. }")
    }
}

impl<'a, T> IntoIterator for &'a Subscription<T> {
    type Item = Message<T>;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Subscription<T> {
    type Item = Message<T>;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter { sub: self }
    }
}
