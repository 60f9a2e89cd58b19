//! `Delivery<T>`: a message on lease, and the verdicts that end the lease.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{self, Nanos};
use crate::error::AckError;
use crate::message::{DeadLetter, Message};
use crate::queue::core::{Held, LeaseInfo, Leftovers, Shared};

/// A lease's slot, generation and message id (see `Delivery::lease_key`).
type Key = (u32, u64, crate::MessageId);

/// A message received on lease (at-least-once): it stays in flight until a verdict.
///
/// The verdicts: [`ack`](Delivery::ack) (done; [`ack_into_message`](Delivery::ack_into_message)
/// also hands over the message by value), [`nack`](Delivery::nack) (back now),
/// [`nack_after`](Delivery::nack_after) (back later), [`reject`](Delivery::reject) (to the
/// dead-letter queue), and [`extend`](Delivery::extend) to keep the lease longer. Without a verdict,
/// the lease ends when the visibility timeout passes, or when the `Delivery` is dropped (a consumer
/// that returned early or panicked): either way the message goes back to the queue for another
/// receiver. Each delivery has its own lease token, so a verdict that comes after the lease ended
/// returns [`AckError::LeaseExpired`] and never touches the lease of whoever holds the message now.
///
/// A `Delivery` derefs to its [`Message`]. The message is shared with the queue while leased (so
/// that an expired lease can hand it to someone else); it is never copied. So after a lease
/// expires, while its holder still has the `Delivery`, the message is visible again and a leased
/// receive gets it at once, but a plain receive, which takes the message by value, passes over it
/// until the holder drops the `Delivery` (or gives its verdict, which fails and lets go).
///
/// ```
/// use switchboard::Queue;
///
/// let queue = Queue::unbounded();
/// queue.send("job").unwrap();
/// let d = queue.receive().unwrap();
/// assert_eq!(*d.payload(), "job");
/// assert_eq!(d.attempt(), 1);
/// d.ack().unwrap();
/// assert_eq!(queue.stats().acked, 1);
/// ```
#[must_use = "a Delivery dropped without a verdict goes back to the queue"]
pub struct Delivery<T> {
    shared: Arc<Shared<T>>,
    /// `Some` until a successful ack takes it (see `Held`) or drop, which lets go of it before
    /// telling a waiting plain receiver.
    msg: Option<Arc<Held<T>>>,
    info: LeaseInfo,
    dead: Option<Box<DeadLetter>>,
    settled: bool,
}

impl<T> Delivery<T> {
    pub(crate) fn new(
        shared: Arc<Shared<T>>,
        msg: Arc<Held<T>>,
        info: LeaseInfo,
        dead: Option<Box<DeadLetter>>,
    ) -> Delivery<T> {
        Delivery {
            shared,
            msg: Some(msg),
            info,
            dead,
            settled: false,
        }
    }

    /// The message.
    pub fn message(&self) -> &Message<T> {
        self.msg
            .as_deref()
            .expect("present until settled")
            .message()
    }

    /// Which delivery of this message this is: 1 the first time, 2 after one redelivery, ...
    pub fn attempt(&self) -> u32 {
        self.info.attempts
    }

    /// When the message was first delivered (the queue clock's coarse reading at that receive;
    /// on the first attempt, this receive's).
    pub fn first_delivered_at(&self) -> Instant {
        clock::to_instant(self.info.first_delivered)
    }

    /// When the message entered this queue (the queue clock's coarse reading).
    pub fn enqueued_at(&self) -> Instant {
        clock::to_instant(self.info.enqueued)
    }

    /// When the lease ends unless extended: as it stands now, with any extension made since the
    /// receive (by [`extend`](Delivery::extend), or by a consumer pool's heartbeat through
    /// another handle on the lease). Once the lease has ended, the deadline it last had here.
    pub fn lease_deadline(&self) -> Instant {
        // Asked of the queue (a lock, off the hot path): a pool's heartbeat extends the lease
        // without this `Delivery`, whose copy then went stale (found by review).
        let now = self.shared.lease_deadline(self.info.slot, self.info.gen);
        clock::to_instant(now.unwrap_or(self.info.deadline))
    }

    /// Why and where the message was dead-lettered, for deliveries from a dead-letter queue.
    pub fn dead_letter(&self) -> Option<&DeadLetter> {
        self.dead
            .as_deref()
            .or_else(|| self.message().dead_letter())
    }

    /// Done: the message leaves the queue for good.
    ///
    /// # Errors
    ///
    /// [`AckError::LeaseExpired`] if the visibility timeout had passed: the message had gone back
    /// to the queue (or to the dead-letter queue), and this ack changed nothing.
    pub fn ack(mut self) -> Result<(), AckError> {
        self.settled = true;
        let (slot, gen, id) = self.lease_key();
        // A successful ack takes the handle; one too late leaves it for `drop`.
        self.shared.ack(slot, gen, id, &mut self.msg, None)
    }

    /// Done, and the message by value: acks as [`ack`](Delivery::ack) does, then hands over the
    /// message the lease held, to keep or pass on without a copy.
    ///
    /// The message is moved out, not copied, in all but one case: when this delivery's message
    /// had been leased before and the holder of that earlier, expired lease still has its
    /// `Delivery` (the two share one message, see above). Then the payload is cloned (and the
    /// metadata shared), which is why this method needs `T: Clone`; use
    /// [`ack`](Delivery::ack) and [`payload`](Message::payload) otherwise.
    ///
    /// # Errors
    ///
    /// [`AckError::LeaseExpired`] if the visibility timeout had passed, as for
    /// [`ack`](Delivery::ack): the message had gone back to the queue (or to the dead-letter
    /// queue) for another receiver, so this one gets nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let queue = Queue::unbounded();
    /// queue.send(vec![1, 2, 3]).unwrap();
    /// let d = queue.receive().unwrap();
    /// let batch: Vec<i32> = d.ack_into_message().unwrap().into_payload();
    /// assert_eq!(batch, [1, 2, 3]);
    /// assert_eq!(queue.stats().acked, 1);
    /// ```
    pub fn ack_into_message(mut self) -> Result<Message<T>, AckError>
    where
        T: Clone,
    {
        // Shared with an expired lease's holder (the queue's lease and this delivery hold the
        // other two references): the copy is made before the ack, so that a clone that panics
        // leaves the lease unsettled and the message goes back, rather than acked and gone
        // (found by review). The count only falls while this lease is held.
        let mut copy = self
            .msg
            .as_ref()
            .filter(|m| Arc::strong_count(m) > 2)
            .map(|m| m.message().clone());
        self.settled = true;
        let (slot, gen, id) = self.lease_key();
        // A spare copy is dropped quietly however the ack ends (see below).
        let quiet = |spare: Option<Message<T>>| {
            if let Some(spare) = spare {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(spare)));
            }
        };
        let kept = match self
            .shared
            .ack_with(slot, gen, id, &mut self.msg, None, true)
        {
            Ok(kept) => kept,
            Err(e) => {
                quiet(copy);
                return Err(e);
            }
        };
        let mut msg = match kept {
            Some(Ok(Some(m))) => m,
            // Shared with an expired lease's holder, who may still read it (unless that
            // holder let go since the ack).
            Some(Err(shared)) => match Arc::try_unwrap(shared) {
                Ok(held) => held.into_message(),
                Err(shared) => copy.take().unwrap_or_else(|| shared.message().clone()),
            },
            Some(Ok(None)) | None => {
                unreachable!("a successful ack that keeps its message hands it back")
            }
        };
        // A copy made for a holder who let go before the ack is not needed: its drop (user
        // code) must not take the acked message down with it (found by review), so a panic
        // there is caught and goes no further.
        quiet(copy);
        // A dead letter's record that could not be written into a shared message (see `lease`).
        if let Some(d) = self.dead.take() {
            if msg.dead_letter() != Some(&*d) {
                msg.set_dead_letter(*d);
            }
        }
        Ok(msg)
    }

    /// Not done: the message goes back to the queue at once (or to the dead-letter queue if it
    /// has had its maximum number of deliveries).
    ///
    /// # Errors
    ///
    /// [`AckError::LeaseExpired`] if the lease had already ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let q = Queue::unbounded();
    /// q.send("job").unwrap();
    /// q.receive().unwrap().nack().unwrap(); // back at once
    /// let again = q.try_receive().unwrap();
    /// assert_eq!(again.attempt(), 2);
    /// assert_eq!(q.stats().nacked, 1);
    /// again.ack().unwrap();
    /// ```
    pub fn nack(mut self) -> Result<(), AckError> {
        self.settled = true;
        let id = self.message().id();
        self.shared.nack(
            self.info.slot,
            self.info.gen,
            id,
            &mut self.msg,
            None,
            false,
            None,
        )
    }

    /// Not done: the message goes back to the queue after `delay` (a retry backoff), or to the
    /// dead-letter queue at once if it has had its maximum number of deliveries.
    ///
    /// # Errors
    ///
    /// [`AckError::LeaseExpired`] if the lease had already ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{ManualClock, Queue};
    ///
    /// let clock = ManualClock::new();
    /// let q = Queue::builder().clock(clock.clone()).build();
    /// q.send("job").unwrap();
    /// q.receive().unwrap().nack_after(Duration::from_secs(5)).unwrap();
    /// assert!(q.try_receive().is_err()); // backing off
    /// assert_eq!(q.stats().delayed, 1);
    /// clock.advance(Duration::from_secs(5));
    /// let again = q.try_receive().unwrap();
    /// assert_eq!(again.attempt(), 2);
    /// again.ack().unwrap();
    /// ```
    pub fn nack_after(mut self, delay: Duration) -> Result<(), AckError> {
        self.settled = true;
        let id = self.message().id();
        self.shared.nack(
            self.info.slot,
            self.info.gen,
            id,
            &mut self.msg,
            Some(delay),
            false,
            None,
        )
    }

    /// Never processable: the message goes straight to the dead-letter queue with `reason` (or
    /// is discarded and counted in [`QueueStats::discarded`](crate::QueueStats) when the queue has
    /// none).
    ///
    /// # Errors
    ///
    /// [`AckError::LeaseExpired`] if the lease had already ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::Queue;
    ///
    /// let dlq = Queue::unbounded();
    /// let q = Queue::builder().dead_letter(&dlq, 5).build();
    /// q.send("garbage").unwrap();
    /// q.receive().unwrap().reject("cannot parse").unwrap();
    /// let dead = dlq.try_recv().unwrap();
    /// let record = dead.dead_letter().unwrap();
    /// assert_eq!(record.reason(), "cannot parse");
    /// assert_eq!(record.attempts(), 1); // on its first attempt, whatever the maximum
    /// ```
    pub fn reject(mut self, reason: impl Into<String>) -> Result<(), AckError> {
        self.settled = true;
        let id = self.message().id();
        self.shared.reject(
            self.info.slot,
            self.info.gen,
            id,
            &mut self.msg,
            reason.into(),
            None,
        )
    }

    /// Keeps the lease for `by` from now (a heartbeat for long work), like SQS's
    /// `ChangeMessageVisibility`.
    ///
    /// # Errors
    ///
    /// [`AckError::LeaseExpired`] if the lease had already ended: too late to keep it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{ManualClock, Queue};
    ///
    /// let clock = ManualClock::new();
    /// let q = Queue::builder().clock(clock.clone()).visibility_timeout(Duration::from_secs(30)).build();
    /// q.send("long job").unwrap();
    /// let mut d = q.receive().unwrap();
    /// clock.advance(Duration::from_secs(20));
    /// d.extend(Duration::from_secs(30)).unwrap(); // 30 s from now, not from the receive
    /// assert_eq!(d.lease_deadline(), clock.now() + Duration::from_secs(30));
    /// clock.advance(Duration::from_secs(20)); // past the first deadline, within the new one
    /// assert!(q.try_receive().is_err());
    /// d.ack().unwrap();
    /// ```
    pub fn extend(&mut self, by: Duration) -> Result<(), AckError> {
        let deadline: Nanos =
            self.shared
                .extend(self.info.slot, self.info.gen, self.message().id(), by, None)?;
        self.info.deadline = deadline;
        Ok(())
    }

    pub(crate) fn lease_key(&self) -> Key {
        (self.info.slot, self.info.gen, self.message().id())
    }

    /// Marks the delivery settled (a batch ack acts for it) and lends its handle on the message,
    /// which a successful ack takes.
    pub(crate) fn settle_with(&mut self) -> &mut Option<Arc<Held<T>>> {
        self.settled = true;
        &mut self.msg
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<T>> {
        &self.shared
    }

    /// Gives this delivery its verdict through `settle`, leaving what the verdict lets go of
    /// (the message, and this delivery with it) in `later`, for the caller to drop once it has
    /// counted the verdict: a payload's drop is user code, which may panic.
    fn settle_keeping(
        mut self,
        later: &mut Leftovers<T>,
        settle: impl FnOnce(
            &Arc<Shared<T>>,
            Key,
            &mut Option<Arc<Held<T>>>,
            &mut Leftovers<T>,
        ) -> Result<(), AckError>,
    ) -> Result<(), AckError> {
        self.settled = true;
        let key = self.lease_key();
        let r = settle(&self.shared, key, &mut self.msg, later);
        later.deliveries.push(self);
        r
    }

    /// Gives the message back as if this delivery had not happened (see `Shared::unlease`).
    pub(crate) fn unlease(mut self) {
        let (slot, gen, _) = self.lease_key();
        let shared = Arc::clone(&self.shared);
        let mine = self.settle_with();
        shared.unlease(slot, gen, mine);
    }

    /// As [`ack`](Delivery::ack), leaving what it lets go of in `later` (see `settle_keeping`).
    pub(crate) fn ack_keeping(self, later: &mut Leftovers<T>) -> Result<(), AckError> {
        self.settle_keeping(later, |s, (slot, gen, id), msg, l| {
            s.ack(slot, gen, id, msg, Some(l))
        })
    }

    /// As [`nack_after`](Delivery::nack_after), leaving what it lets go of in `later`.
    pub(crate) fn nack_after_keeping(
        self,
        delay: Duration,
        later: &mut Leftovers<T>,
    ) -> Result<(), AckError> {
        self.settle_keeping(later, |s, (slot, gen, id), msg, l| {
            s.nack(slot, gen, id, msg, Some(delay), false, Some(l))
        })
    }

    /// As [`reject`](Delivery::reject), leaving what it lets go of in `later`.
    pub(crate) fn reject_keeping(
        self,
        reason: String,
        later: &mut Leftovers<T>,
    ) -> Result<(), AckError> {
        self.settle_keeping(later, |s, (slot, gen, id), msg, l| {
            s.reject(slot, gen, id, msg, reason, Some(l))
        })
    }
}

impl<T> Deref for Delivery<T> {
    type Target = Message<T>;

    fn deref(&self) -> &Message<T> {
        self.message()
    }
}

impl<T> Drop for Delivery<T> {
    /// Without a verdict, the message goes back to the queue at once. Never blocks.
    fn drop(&mut self) {
        if !self.settled {
            let (slot, gen, id) = self.lease_key();
            let _ = self
                .shared
                .nack(slot, gen, id, &mut self.msg, None, true, None);
        }
        // Two holders means us and a queue entry: our lease had expired and the message waits,
        // shared with us, for a plain receiver that can only take it by value once we let go.
        if let Some(msg) = self.msg.take() {
            let waiting = Arc::strong_count(&msg) == 2;
            drop(msg);
            if waiting {
                self.shared.nudge();
            }
        }
    }
}

impl<T> fmt::Debug for Delivery<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.message().id())
            .field("attempt", &self.info.attempts)
            .finish_non_exhaustive()
    }
}

/// A delivery's lease, detached from the `Delivery` so that another thread can act on it: keep it
/// alive ([`extend`](LeaseKey::extend), a heartbeat) or give the message back
/// ([`release`](LeaseKey::release)) while the holder is still busy. Like any verdict, both fail
/// with [`AckError::LeaseExpired`] once the lease has ended, and the holder's own later verdict
/// then fails the same way (the token has moved on).
pub(crate) struct LeaseKey<T> {
    shared: Arc<Shared<T>>,
    slot: u32,
    gen: u64,
    id: crate::MessageId,
}

impl<T> LeaseKey<T> {
    /// Keeps the lease for `by` from now, but never past `limit` (a time on the queue's clock);
    /// returns the new deadline. "Now" is read under the queue's lock, so a clock that moves
    /// between the caller's reading and the extension cannot carry the lease past `limit`.
    pub(crate) fn extend_within(&self, by: Duration, limit: Nanos) -> Result<Nanos, AckError> {
        self.shared
            .extend(self.slot, self.gen, self.id, by, Some(limit))
    }

    /// Ends the lease as a dropped `Delivery` would: the message goes back to the queue at once
    /// (or to the dead-letter queue if this was its last attempt).
    pub(crate) fn release(&self) -> Result<(), AckError> {
        self.shared
            .nack(self.slot, self.gen, self.id, &mut None, None, true, None)
    }

    /// The queue's clock now.
    pub(crate) fn now(&self) -> Nanos {
        self.shared.now()
    }

    /// The resolution of the queue's clock (see `Clock::resolution`).
    pub(crate) fn clock_resolution(&self) -> Duration {
        self.shared.config.clock.resolution()
    }

    /// Whether both keys are to the same lease.
    pub(crate) fn is(&self, other: &LeaseKey<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared) && (self.slot, self.gen) == (other.slot, other.gen)
    }
}

impl<T> Clone for LeaseKey<T> {
    fn clone(&self) -> Self {
        LeaseKey {
            shared: Arc::clone(&self.shared),
            slot: self.slot,
            gen: self.gen,
            id: self.id,
        }
    }
}

impl<T> Delivery<T> {
    /// A key to this delivery's lease for another thread (see [`LeaseKey`]).
    pub(crate) fn key(&self) -> LeaseKey<T> {
        let (slot, gen, id) = self.lease_key();
        LeaseKey {
            shared: Arc::clone(&self.shared),
            slot,
            gen,
            id,
        }
    }

    /// When the lease ends unless extended, on the queue's clock.
    pub(crate) fn deadline_nanos(&self) -> Nanos {
        self.info.deadline
    }
}
