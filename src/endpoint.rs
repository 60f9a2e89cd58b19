//! `Endpoint<T>`: anything a message can be delivered to (a queue, a topic, a recipient list, a
//! closure).
//!
//! Patterns take endpoints, so they compose: a [`Topic`] delivers into queues and other topics
//! through them (topic-queue chaining), a [`RecipientList`] routes to named endpoints of any kind,
//! and the conversation patterns ([`Requester`](crate::Requester),
//! [`ScatterGather`](crate::ScatterGather)) send their requests through one.
//! An `Endpoint` is one public type over a private enum: adding a kind of endpoint never changes
//! a public signature.
//!
//! Delivering comes in the usual family: [`try_deliver`](Endpoint::try_deliver) never waits,
//! [`deliver`](Endpoint::deliver) waits for room, [`deliver_timeout`](Endpoint::deliver_timeout)
//! and [`deliver_deadline`](Endpoint::deliver_deadline) wait at most so long. A failed delivery
//! always hands the message back in a [`DeliverError`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{SendError, SendTimeoutError, TrySendError};
use crate::message::{Message, MessageId};
use crate::queue::Queue;
use crate::recipient_list::{RecipientList, RecipientListError};
use crate::topic::{PublishError, Topic};

/// How long a delivery may wait for room.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Not at all.
    Never,
    /// Until this instant.
    Until(Instant),
    /// As long as it takes.
    Forever,
}

/// The reason a delivery that came back to a topic or list already delivering the same message
/// (on this thread) is refused with: a loop of chained endpoints.
pub(crate) const LOOP: &str = "delivery loop: the message came back to where it is being delivered";

thread_local! {
    /// The topics and lists (by address) this thread is delivering a message through, with the
    /// message's id: a chain that leads back to one of them with the same message is a loop.
    static PATH: std::cell::RefCell<Vec<(usize, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether this thread is delivering message `id` through the topic or list at `at` already.
pub(crate) fn on_path(at: usize, id: MessageId) -> bool {
    PATH.try_with(|p| {
        let p = p.borrow();
        !p.is_empty() && p.contains(&(at, id.get()))
    })
    .unwrap_or(false)
}

/// Marks a delivery of message `id` through the topic or list at `at`, for as long as it lives.
pub(crate) struct Visit(());

impl Visit {
    pub(crate) fn enter(at: usize, id: MessageId) -> Visit {
        let _ = PATH.try_with(|p| p.borrow_mut().push((at, id.get())));
        Visit(())
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        let _ = PATH.try_with(|p| p.borrow_mut().pop());
    }
}

/// `now + timeout`, saturating a century ahead.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 100))
}

type DeliverFn<T> = dyn Fn(Message<T>) -> Result<(), DeliverError<T>> + Send + Sync;

/// Anything a message can be delivered to: a [`Queue`], a [`Topic`], a [`RecipientList`] or a
/// closure.
///
/// `From<Queue<T>>`, `From<Topic<T>>` and `From<RecipientList<T>>` wrap the handles (a clone of a
/// handle is another handle to the same queue, topic or list); [`Endpoint::from_fn`] wraps a
/// closure. `Clone` gives another handle to the same endpoint.
///
/// ```
/// use switchboard::{Endpoint, Queue, Topic};
///
/// let queue = Queue::unbounded();
/// let topic = Topic::new();
/// let sub = topic.subscribe();
///
/// let endpoints: Vec<Endpoint<&str>> = vec![queue.clone().into(), topic.clone().into()];
/// for e in &endpoints {
///     e.try_deliver("hello").unwrap();
/// }
/// assert_eq!(queue.try_recv().unwrap().into_payload(), "hello");
/// assert_eq!(sub.try_recv().unwrap().into_payload(), "hello");
/// ```
pub struct Endpoint<T> {
    kind: Kind<T>,
}

enum Kind<T> {
    Queue(Queue<T>),
    Topic(Topic<T>),
    List(RecipientList<T>),
    Fn(Arc<DeliverFn<T>>),
}

impl<T> Endpoint<T> {
    /// An endpoint that hands each message to `f`; `f` may refuse it by returning a
    /// [`DeliverError`] that hands it back.
    ///
    /// The closure runs on the delivering thread (the publisher's, for a topic subscription), so it
    /// should be quick; it serves every delivery mode alike (it cannot wait for room).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use switchboard::{DeliverError, Endpoint};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = {
    ///     let seen = Arc::clone(&seen);
    ///     Endpoint::from_fn(move |m: switchboard::Message<i32>| {
    ///         if *m.payload() < 0 {
    ///             return Err(DeliverError::rejected(m, "negative"));
    ///         }
    ///         seen.lock().unwrap().push(m.into_payload());
    ///         Ok(())
    ///     })
    /// };
    /// log.deliver(1).unwrap();
    /// let err = log.deliver(-1).unwrap_err();
    /// assert_eq!(err.reason(), Some("negative"));
    /// assert_eq!(*seen.lock().unwrap(), [1]);
    /// ```
    pub fn from_fn<F>(f: F) -> Endpoint<T>
    where
        F: Fn(Message<T>) -> Result<(), DeliverError<T>> + Send + Sync + 'static,
    {
        Endpoint {
            kind: Kind::Fn(Arc::new(f)),
        }
    }

    /// Whether this endpoint is a queue.
    pub fn is_queue(&self) -> bool {
        matches!(self.kind, Kind::Queue(_))
    }

    /// Whether this endpoint is a topic.
    pub fn is_topic(&self) -> bool {
        matches!(self.kind, Kind::Topic(_))
    }

    /// Whether this endpoint is a recipient list.
    pub fn is_recipient_list(&self) -> bool {
        matches!(self.kind, Kind::List(_))
    }

    /// Whether this endpoint is a closure.
    pub fn is_fn(&self) -> bool {
        matches!(self.kind, Kind::Fn(_))
    }

    /// The recipient list, if this endpoint is one.
    pub(crate) fn as_recipient_list(&self) -> Option<&RecipientList<T>> {
        match &self.kind {
            Kind::List(l) => Some(l),
            _ => None,
        }
    }
}

impl<T: Clone> Endpoint<T> {
    /// Delivers a message without waiting.
    ///
    /// A queue gets it by [`try_send`](Queue::try_send), a topic by
    /// [`try_publish`](Topic::try_publish), a closure by a call.
    ///
    /// # Errors
    ///
    /// [`DeliverError::Full`] when a queue is at capacity (or, for a topic, a subscription could
    /// not take it: the others did), [`DeliverError::Closed`] when the queue or topic is closed,
    /// [`DeliverError::Rejected`] when a topic's validator or the closure refused it. Each hands
    /// the message back. A recipient list fails as its [`send`](RecipientList::send) does:
    /// with the error of a failing recipient (the first full one, else the first to fail)
    /// when no recipient took the message (or,
    /// under [`OnFailure::Stop`](crate::OnFailure::Stop), when one failed), and not at all
    /// when some took it and the others failed under `Continue` (the message is delivered; a
    /// retry would give those a duplicate). Its report is the list's `send`'s.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Endpoint, Queue};
    ///
    /// let q = Queue::bounded(1);
    /// let e = Endpoint::from(q.clone());
    /// e.try_deliver(1).unwrap();
    /// let err = e.try_deliver(2).unwrap_err();
    /// assert!(err.is_full());
    /// assert_eq!(err.into_inner().into_payload(), 2);
    /// ```
    pub fn try_deliver(&self, msg: impl Into<Message<T>>) -> Result<(), DeliverError<T>> {
        self.deliver_wait(msg.into(), Wait::Never)
    }

    /// Delivers a message, waiting for room as long as it takes.
    ///
    /// A queue gets it by [`send`](Queue::send), a topic by [`publish`](Topic::publish).
    ///
    /// # Errors
    ///
    /// As [`try_deliver`](Endpoint::try_deliver), except that a full queue is waited on; a topic
    /// can still report `Full` for subscriptions with [`Overflow::Error`](crate::Overflow::Error).
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Endpoint, Queue};
    ///
    /// let q = Queue::unbounded();
    /// Endpoint::from(q.clone()).deliver("job").unwrap();
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn deliver(&self, msg: impl Into<Message<T>>) -> Result<(), DeliverError<T>> {
        self.deliver_wait(msg.into(), Wait::Forever)
    }

    /// Delivers a message, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`try_deliver`](Endpoint::try_deliver); `Full` once the time is up.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Endpoint, Queue};
    ///
    /// let e = Endpoint::from(Queue::bounded(1));
    /// e.deliver(1).unwrap();
    /// assert!(e.deliver_timeout(2, Duration::from_millis(5)).unwrap_err().is_full());
    /// ```
    pub fn deliver_timeout(
        &self,
        msg: impl Into<Message<T>>,
        timeout: Duration,
    ) -> Result<(), DeliverError<T>> {
        self.deliver_wait(msg.into(), Wait::Until(deadline_after(timeout)))
    }

    /// Delivers a message, waiting until `deadline` at most for room.
    ///
    /// # Errors
    ///
    /// As [`deliver_timeout`](Endpoint::deliver_timeout).
    pub fn deliver_deadline(
        &self,
        msg: impl Into<Message<T>>,
        deadline: Instant,
    ) -> Result<(), DeliverError<T>> {
        self.deliver_wait(msg.into(), Wait::Until(deadline))
    }

    pub(crate) fn deliver_wait(&self, msg: Message<T>, wait: Wait) -> Result<(), DeliverError<T>> {
        if let Kind::List(l) = &self.kind {
            // As the list's own `send`: once some recipient took the message it is delivered,
            // not handed back, as a retry would give those a duplicate (found by review: an
            // endpoint over a list handed it back with one recipient closed, another served).
            return l.send_wait(msg, wait).map(drop).map_err(DeliverError::from);
        }
        self.deliver_reach(msg, wait).map(drop).map_err(|p| p.error)
    }

    /// Delivers a request: like [`deliver_reach`](Endpoint::deliver_reach), but a delivery that
    /// some final receivers got (a topic's subscriptions that had room) counts as reaching them,
    /// whose replies are then awaited; it fails only when it reached nobody.
    pub(crate) fn deliver_to_some(
        &self,
        msg: Message<T>,
        wait: Wait,
    ) -> Result<usize, DeliverError<T>> {
        // A queue or a closure reaches one receiver or none: straight to it, without the
        // partial-reach wrapping a fan-out needs (moving the message through those larger
        // results was a tenth of a request-reply round trip's instructions).
        match &self.kind {
            Kind::Queue(q) => {
                let mut later = Vec::new();
                let result = to_queue(q, msg, wait, &mut later);
                drop(later);
                return result;
            }
            Kind::Fn(f) => return f(msg).map(|()| 1),
            Kind::Topic(_) | Kind::List(_) => {}
        }
        match self.deliver_reach(msg, wait) {
            Err(p) if p.reached > 0 => Ok(p.reached),
            r => r.map_err(|p| p.error),
        }
    }

    /// Delivers a message and says how many final receivers got a copy: 1 for a queue or a
    /// closure, the subscriptions reached for a topic, the recipients reached for a list. A
    /// failure says how many got a copy all the same (a topic's subscriptions that had room).
    pub(crate) fn deliver_reach(&self, msg: Message<T>, wait: Wait) -> Result<usize, Partial<T>> {
        if let Kind::Topic(t) = &self.kind {
            // The whole fan-out, as `Topic::publish` is: what it cannot deliver drops before
            // it waits for room (found by review: a copy a `DropOldest` subscription pushed out
            // lived as long as a `Block` wait when the publish came through an endpoint).
            return topic_reach(t.publish_wait(msg, wait));
        }
        let mut later = Vec::new();
        let result = self.deliver_reach_into(msg, wait, &mut later);
        drop(later);
        result
    }

    /// `deliver_reach` within a fan-out already under way (a topic's or a list's): the copies a
    /// chained topic or list could not deliver go in `later`, to drop (user code, which may
    /// panic) once that fan-out is over.
    pub(crate) fn deliver_reach_into(
        &self,
        msg: Message<T>,
        wait: Wait,
        later: &mut Vec<Message<T>>,
    ) -> Result<usize, Partial<T>> {
        // The error mappings are `DeliverError`'s `From` impls; only a topic's partial reach
        // is worked out here.
        let none = |e: DeliverError<T>| Partial {
            error: e,
            reached: 0,
        };
        match &self.kind {
            Kind::Queue(q) => to_queue(q, msg, wait, later).map_err(none),
            Kind::Topic(t) => topic_reach(t.publish_into(msg, wait, later)),
            Kind::List(l) => match l.dispatch_reach(msg, wait, |_, _| {}, later) {
                Ok((_, None, reach, _)) => Ok(reach),
                Ok((_, Some(error), reached, _)) => Err(Partial { error, reached }),
                Err((
                    RecipientListError::Stopped { error, .. }
                    | RecipientListError::Undelivered { error, .. },
                    reached,
                )) => Err(Partial { error, reached }),
                Err((e @ RecipientListError::UnknownRecipient { .. }, _)) => Err(none(e.into())),
            },
            Kind::Fn(f) => f(msg).map(|()| 1).map_err(none),
        }
    }
}

/// A topic's publish as a delivery: how many final receivers it reached, also when some
/// subscriptions were full.
fn topic_reach<T>(
    published: Result<crate::PublishReport, PublishError<T>>,
) -> Result<usize, Partial<T>> {
    match published {
        Ok(report) => Ok(report.reach()),
        Err(PublishError::Full { message, report }) => Err(Partial {
            error: DeliverError::Full(message),
            reached: report.reach(),
        }),
        Err(e) => Err(Partial {
            error: e.into(),
            reached: 0,
        }),
    }
}

/// A delivery that failed, and how many final receivers got a copy all the same: the
/// subscriptions of a topic that had room when others were full, the recipients of a list
/// before or beside the one that failed.
pub(crate) struct Partial<T> {
    pub(crate) error: DeliverError<T>,
    pub(crate) reached: usize,
}

impl<T> From<Queue<T>> for Endpoint<T> {
    fn from(q: Queue<T>) -> Endpoint<T> {
        Endpoint {
            kind: Kind::Queue(q),
        }
    }
}

impl<T> From<&Queue<T>> for Endpoint<T> {
    fn from(q: &Queue<T>) -> Endpoint<T> {
        Endpoint::from(q.clone())
    }
}

impl<T> From<Topic<T>> for Endpoint<T> {
    fn from(t: Topic<T>) -> Endpoint<T> {
        Endpoint {
            kind: Kind::Topic(t),
        }
    }
}

impl<T> From<&Topic<T>> for Endpoint<T> {
    fn from(t: &Topic<T>) -> Endpoint<T> {
        Endpoint::from(t.clone())
    }
}

impl<T> From<RecipientList<T>> for Endpoint<T> {
    fn from(l: RecipientList<T>) -> Endpoint<T> {
        Endpoint {
            kind: Kind::List(l),
        }
    }
}

impl<T> From<&RecipientList<T>> for Endpoint<T> {
    fn from(l: &RecipientList<T>) -> Endpoint<T> {
        Endpoint::from(l.clone())
    }
}

impl<T> Clone for Endpoint<T> {
    /// Another handle to the same endpoint.
    fn clone(&self) -> Self {
        let kind = match &self.kind {
            Kind::Queue(q) => Kind::Queue(q.clone()),
            Kind::Topic(t) => Kind::Topic(t.clone()),
            Kind::List(l) => Kind::List(l.clone()),
            Kind::Fn(f) => Kind::Fn(Arc::clone(f)),
        };
        Endpoint { kind }
    }
}

impl<T> fmt::Debug for Endpoint<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Queue(q) => f.debug_tuple("Endpoint::Queue").field(q).finish(),
            Kind::Topic(t) => f.debug_tuple("Endpoint::Topic").field(t).finish(),
            Kind::List(l) => f.debug_tuple("Endpoint::RecipientList").field(l).finish(),
            Kind::Fn(_) => f.write_str("Endpoint::Fn(..)"),
        }
    }
}

/// A delivery to an [`Endpoint`] failed; the message is handed back.
///
/// ```
/// use switchboard::{Endpoint, Queue};
///
/// let q = Queue::unbounded();
/// q.close();
/// let err = Endpoint::from(q).try_deliver(7).unwrap_err();
/// assert!(err.is_closed());
/// assert_eq!(err.to_string(), "delivering to a closed endpoint");
/// assert_eq!(err.into_inner().into_payload(), 7);
/// ```
#[derive(Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError<T> {
    /// The endpoint had no room (in time).
    #[error("delivering to a full endpoint")]
    Full(Message<T>),
    /// The endpoint is closed.
    #[error("delivering to a closed endpoint")]
    Closed(Message<T>),
    /// The endpoint refused the message (a topic's validator, a closure).
    #[error("message rejected: {reason}")]
    Rejected {
        /// The message refused.
        message: Message<T>,
        /// Why.
        reason: String,
    },
}

impl<T> DeliverError<T> {
    /// A rejection of `message` for `reason` (for [`Endpoint::from_fn`] closures).
    pub fn rejected(message: Message<T>, reason: impl Into<String>) -> DeliverError<T> {
        DeliverError::Rejected {
            message,
            reason: reason.into(),
        }
    }

    /// The message that was not delivered.
    pub fn into_inner(self) -> Message<T> {
        match self {
            DeliverError::Full(m) | DeliverError::Closed(m) => m,
            DeliverError::Rejected { message, .. } => message,
        }
    }

    /// The message that was not delivered, in place.
    pub(crate) fn message_mut(&mut self) -> &mut Message<T> {
        match self {
            DeliverError::Full(m) | DeliverError::Closed(m) => m,
            DeliverError::Rejected { message, .. } => message,
        }
    }

    /// Whether the endpoint was full.
    pub fn is_full(&self) -> bool {
        matches!(self, DeliverError::Full(_))
    }

    /// Whether the endpoint was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, DeliverError::Closed(_))
    }

    /// Whether the endpoint refused the message.
    pub fn is_rejected(&self) -> bool {
        matches!(self, DeliverError::Rejected { .. })
    }

    /// Why the endpoint refused the message, for a rejection.
    pub fn reason(&self) -> Option<&str> {
        match self {
            DeliverError::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// The failure of a queue's send as the failure of a delivery, as [`Endpoint`] maps it: so an
/// [`Endpoint::from_fn`] closure that forwards to a queue (or a topic) can hand its error on
/// with `?` or `.map_err(Into::into)`.
///
/// ```
/// use switchboard::{DeliverError, Endpoint, Message, Queue};
///
/// let audit: Queue<u32> = Queue::bounded(1);
/// let forward = {
///     let audit = audit.clone();
///     Endpoint::from_fn(move |m: Message<u32>| {
///         audit.try_send(m)?;
///         Ok(())
///     })
/// };
/// forward.deliver(1).unwrap();
/// let err: DeliverError<u32> = forward.deliver(2).unwrap_err(); // the queue is full
/// assert!(err.is_full());
/// assert_eq!(err.into_inner().into_payload(), 2);
/// ```
/// A delivery to a queue: its one receiver reached, or none (a duplicate that
/// de-duplication turns away counts as reached, and is left in `later`).
fn to_queue<T>(
    q: &Queue<T>,
    msg: Message<T>,
    wait: Wait,
    later: &mut Vec<Message<T>>,
) -> Result<usize, DeliverError<T>> {
    q.send_keeping(msg, wait, later)
        .map(|_| 1)
        .map_err(DeliverError::from)
}

impl<T> From<TrySendError<T>> for DeliverError<T> {
    /// `Full` as `Full`, `Closed` as `Closed`.
    fn from(e: TrySendError<T>) -> Self {
        match e {
            TrySendError::Full(m) => DeliverError::Full(m),
            TrySendError::Closed(m) => DeliverError::Closed(m),
        }
    }
}

impl<T> From<SendError<T>> for DeliverError<T> {
    /// `Closed`, the only way a blocking send fails.
    fn from(e: SendError<T>) -> Self {
        DeliverError::Closed(e.0)
    }
}

impl<T> From<SendTimeoutError<T>> for DeliverError<T> {
    /// `Timeout` as `Full` (no room in time), `Closed` as `Closed`.
    fn from(e: SendTimeoutError<T>) -> Self {
        match e {
            SendTimeoutError::Timeout(m) => DeliverError::Full(m),
            SendTimeoutError::Closed(m) => DeliverError::Closed(m),
        }
    }
}

impl<T> From<PublishError<T>> for DeliverError<T> {
    /// `Full` as `Full` (the report is dropped), `Closed` as `Closed`, `Rejected` as
    /// `Rejected` with its reason.
    fn from(e: PublishError<T>) -> Self {
        match e {
            PublishError::Full { message, .. } => DeliverError::Full(message),
            PublishError::Closed(m) => DeliverError::Closed(m),
            PublishError::Rejected { message, reason } => {
                DeliverError::Rejected { message, reason }
            }
        }
    }
}

impl<T> From<RecipientListError<T>> for DeliverError<T> {
    /// The failing recipient's error that `Stopped` or `Undelivered` holds; an unknown recipient
    /// as `Rejected`, with the message and "unknown recipient NAME".
    fn from(e: RecipientListError<T>) -> Self {
        match e {
            RecipientListError::UnknownRecipient { name, message } => DeliverError::Rejected {
                message,
                reason: format!("unknown recipient {name}"),
            },
            RecipientListError::Stopped { error, .. }
            | RecipientListError::Undelivered { error, .. } => error,
        }
    }
}

impl<T> fmt::Debug for DeliverError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliverError::Full(_) => f.write_str("Full(..)"),
            DeliverError::Closed(_) => f.write_str("Closed(..)"),
            DeliverError::Rejected { reason, .. } => f
                .debug_struct("Rejected")
                .field("reason", reason)
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue's and topic's send errors convert to a delivery's, as an endpoint maps them,
    /// handing the message back (found by review: a closure endpoint forwarding to a queue had
    /// to match every variant by hand).
    #[test]
    fn send_errors_convert_to_deliver_errors() {
        let m = |n: u8| Message::new(n);
        let back = |e: DeliverError<u8>| e.into_inner().into_payload();
        let e = DeliverError::from(TrySendError::Full(m(1)));
        assert!(e.is_full());
        assert_eq!(back(e), 1);
        let e = DeliverError::from(TrySendError::Closed(m(2)));
        assert!(e.is_closed());
        assert_eq!(back(e), 2);
        let e = DeliverError::from(SendError(m(3)));
        assert!(e.is_closed());
        assert_eq!(back(e), 3);
        let e = DeliverError::from(SendTimeoutError::Timeout(m(4)));
        assert!(e.is_full());
        assert_eq!(back(e), 4);
        let e = DeliverError::from(SendTimeoutError::Closed(m(5)));
        assert!(e.is_closed());
        assert_eq!(back(e), 5);
        let e = DeliverError::from(PublishError::Rejected {
            message: m(6),
            reason: "no".into(),
        });
        assert_eq!(e.reason(), Some("no"));
        assert_eq!(back(e), 6);
        let e = DeliverError::from(PublishError::Closed(m(7)));
        assert!(e.is_closed());
        assert_eq!(back(e), 7);
    }
}
