//! Errors: one small type per operation, in the crossbeam style. A failed send hands the message
//! back; Display is lowercase without a final period; Debug never prints a payload.

use std::fmt;

use crate::message::{Message, MessageId};

macro_rules! payload_free_debug {
    ($name:ident { $($variant:ident),* }) => {
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$variant(_) => f.write_str(concat!(stringify!($variant), "(..)")),)*
                }
            }
        }
    };
}

/// A blocking send failed because the queue is closed; the message is handed back.
///
/// ```
/// use switchboard::Queue;
///
/// let q = Queue::unbounded();
/// q.close();
/// let err = q.send(5).unwrap_err();
/// assert_eq!(err.to_string(), "sending on a closed queue");
/// assert_eq!(err.into_inner().into_payload(), 5);
/// ```
#[derive(Clone, thiserror::Error)]
#[error("sending on a closed queue")]
pub struct SendError<T>(pub Message<T>);

/// A send's error that holds the message it hands back.
pub(crate) trait Refused<T> {
    fn message_mut(&mut self) -> &mut Message<T>;
}

impl<T> Refused<T> for SendError<T> {
    fn message_mut(&mut self) -> &mut Message<T> {
        &mut self.0
    }
}

impl<T> Refused<T> for TrySendError<T> {
    fn message_mut(&mut self) -> &mut Message<T> {
        match self {
            TrySendError::Full(m) | TrySendError::Closed(m) => m,
        }
    }
}

impl<T> Refused<T> for SendTimeoutError<T> {
    fn message_mut(&mut self) -> &mut Message<T> {
        match self {
            SendTimeoutError::Timeout(m) | SendTimeoutError::Closed(m) => m,
        }
    }
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> Message<T> {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    /// A blocking send's only failure, a closed queue, as the non-blocking one's `Closed` (as
    /// crossbeam-channel converts), so one function can return either with `?`.
    ///
    /// ```
    /// use switchboard::{Queue, TrySendError};
    ///
    /// fn forward(q: &Queue<u32>, urgent: bool) -> Result<(), TrySendError<u32>> {
    ///     if urgent { q.send(1)?; } else { q.try_send(1)?; }
    ///     Ok(())
    /// }
    /// let q = Queue::unbounded();
    /// q.close();
    /// assert!(forward(&q, true).unwrap_err().is_closed());
    /// ```
    fn from(e: SendError<T>) -> Self {
        TrySendError::Closed(e.0)
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    /// A blocking send's only failure, a closed queue, as `SendTimeoutError::Closed`.
    fn from(e: SendError<T>) -> Self {
        SendTimeoutError::Closed(e.0)
    }
}

/// A non-blocking send failed; the message is handed back.
///
/// ```
/// use switchboard::{Queue, TrySendError};
///
/// let q = Queue::bounded(1);
/// q.try_send(1).unwrap();
/// let err = q.try_send(2).unwrap_err();
/// assert!(err.is_full());
/// assert_eq!(err.to_string(), "sending on a full queue");
/// assert_eq!(err.into_inner().into_payload(), 2);
/// q.close();
/// assert!(matches!(q.try_send(3), Err(TrySendError::Closed(_))));
/// ```
#[derive(Clone, thiserror::Error)]
pub enum TrySendError<T> {
    /// The queue is at capacity.
    #[error("sending on a full queue")]
    Full(Message<T>),
    /// The queue is closed.
    #[error("sending on a closed queue")]
    Closed(Message<T>),
}
payload_free_debug!(TrySendError { Full, Closed });

impl<T> TrySendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> Message<T> {
        match self {
            TrySendError::Full(m) | TrySendError::Closed(m) => m,
        }
    }

    /// Whether the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }
}

/// A send with a time limit failed; the message is handed back.
///
/// ```
/// use std::time::Duration;
/// use switchboard::Queue;
///
/// let q = Queue::bounded(1);
/// q.send("first").unwrap();
/// let err = q.send_timeout("second", Duration::ZERO).unwrap_err(); // full: no wait
/// assert!(err.is_timeout());
/// assert_eq!(err.to_string(), "timed out sending on a full queue");
/// assert_eq!(err.into_inner().into_payload(), "second");
/// q.close();
/// assert!(q.send_timeout("third", Duration::ZERO).unwrap_err().is_closed());
/// ```
#[derive(Clone, thiserror::Error)]
pub enum SendTimeoutError<T> {
    /// The queue stayed full until the deadline.
    #[error("timed out sending on a full queue")]
    Timeout(Message<T>),
    /// The queue is closed.
    #[error("sending on a closed queue")]
    Closed(Message<T>),
}
payload_free_debug!(SendTimeoutError { Timeout, Closed });

impl<T> SendTimeoutError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> Message<T> {
        match self {
            SendTimeoutError::Timeout(m) | SendTimeoutError::Closed(m) => m,
        }
    }

    /// Whether the send timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, SendTimeoutError::Closed(_))
    }
}

/// A batch send stopped because the queue closed; the messages not sent are handed back.
///
/// ```
/// use switchboard::Queue;
///
/// let q = Queue::unbounded();
/// let batch = (0..5).inspect(|&i| if i == 2 { q.close(); }); // closes part-way
/// let err = q.send_batch(batch).unwrap_err();
/// assert_eq!(err.sent, 2);
/// assert_eq!(err.to_string(), "sending on a closed queue (2 of the batch sent)");
/// let unsent: Vec<i32> = err.unsent.into_iter().map(|m| m.into_payload()).collect();
/// assert_eq!(unsent, [2, 3, 4]);
/// assert_eq!(q.len(), 2);
/// ```
#[derive(Clone, thiserror::Error)]
#[error("sending on a closed queue ({sent} of the batch sent)")]
pub struct SendBatchError<T> {
    /// How many messages of the batch went into the queue before it closed (a duplicate that
    /// de-duplication turned away is not counted).
    pub sent: usize,
    /// The messages that were not sent, in batch order.
    pub unsent: Vec<Message<T>>,
}

impl<T> fmt::Debug for SendBatchError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendBatchError")
            .field("sent", &self.sent)
            .field("unsent", &self.unsent.len())
            .finish()
    }
}

/// A blocking receive failed: the queue is closed and holds nothing more.
///
/// ```
/// use switchboard::{Queue, RecvError};
///
/// let q = Queue::unbounded();
/// q.send(1).unwrap();
/// q.close();
/// assert_eq!(q.recv().unwrap().into_payload(), 1); // what is left comes first
/// assert_eq!(q.recv().unwrap_err(), RecvError);
/// assert_eq!(RecvError.to_string(), "receiving on a closed and empty queue");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("receiving on a closed and empty queue")]
pub struct RecvError;

/// A non-blocking receive failed.
///
/// ```
/// use switchboard::{Queue, TryRecvError};
///
/// let q: Queue<u8> = Queue::unbounded();
/// let err = q.try_recv().unwrap_err();
/// assert!(err.is_empty());
/// assert_eq!(err.to_string(), "no message ready to receive");
/// q.close();
/// assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Closed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing is ready now (the queue may still hold messages that are delayed, in flight, or
    /// behind a busy FIFO group).
    #[error("no message ready to receive")]
    Empty,
    /// The queue is closed and holds nothing more.
    #[error("receiving on a closed and empty queue")]
    Closed,
}

impl TryRecvError {
    /// Whether nothing was ready.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Whether the queue is closed and drained.
    pub fn is_closed(&self) -> bool {
        matches!(self, TryRecvError::Closed)
    }
}

/// A receive with a time limit failed.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Queue, RecvTimeoutError};
///
/// let q: Queue<u8> = Queue::unbounded();
/// let err = q.recv_timeout(Duration::ZERO).unwrap_err(); // empty: no wait
/// assert!(err.is_timeout());
/// assert_eq!(err.to_string(), "timed out waiting for a message");
/// q.close();
/// assert_eq!(q.recv_timeout(Duration::ZERO).unwrap_err(), RecvTimeoutError::Closed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// Nothing became ready before the deadline.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The queue is closed and holds nothing more.
    #[error("receiving on a closed and empty queue")]
    Closed,
}

impl RecvTimeoutError {
    /// Whether the receive timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }

    /// Whether the queue is closed and drained.
    pub fn is_closed(&self) -> bool {
        matches!(self, RecvTimeoutError::Closed)
    }
}

impl From<RecvError> for TryRecvError {
    /// A blocking receive's only failure, closed and drained, as `TryRecvError::Closed` (as
    /// crossbeam-channel converts), so one function can return either with `?`.
    fn from(_: RecvError) -> Self {
        TryRecvError::Closed
    }
}

impl From<RecvError> for RecvTimeoutError {
    /// A blocking receive's only failure, closed and drained, as `RecvTimeoutError::Closed`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Queue, RecvTimeoutError};
    ///
    /// fn next(q: &Queue<u32>, wait: Option<Duration>) -> Result<u32, RecvTimeoutError> {
    ///     Ok(match wait {
    ///         Some(w) => q.recv_timeout(w)?,
    ///         None => q.recv()?,
    ///     }
    ///     .into_payload())
    /// }
    /// let q = Queue::unbounded();
    /// q.close();
    /// assert_eq!(next(&q, None), Err(RecvTimeoutError::Closed));
    /// ```
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Closed
    }
}

/// A verdict on a [`Delivery`](crate::Delivery) came too late: its lease had already ended.
///
/// The lease ended because its visibility timeout passed; the message went back to the queue (and
/// perhaps to another consumer) or to the dead-letter queue. The verdict had no effect.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{AckError, ManualClock, Queue};
///
/// let clock = ManualClock::new();
/// let q = Queue::builder().clock(clock.clone()).visibility_timeout(Duration::from_secs(30)).build();
/// q.send("job").unwrap();
/// let d = q.receive().unwrap();
/// let id = d.id();
/// clock.advance(Duration::from_secs(31)); // the lease expires
/// assert_eq!(d.ack().unwrap_err(), AckError::LeaseExpired(id));
/// assert_eq!(q.len(), 1); // the message went back to the queue
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The visibility timeout passed before the verdict.
    #[error("the lease on message {0} expired before the verdict")]
    LeaseExpired(MessageId),
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::{
        DeliverError, Filter, GatherError, PublishError, PublishReport, RecipientListError,
        RecipientReport, ReplyError, RequestError,
    };

    /// The Display texts of one value of each listed variant of `$ty`. Each pattern must match
    /// its value, and the patterns together must be exhaustive (no wildcard): a new variant does
    /// not compile until it is listed here.
    macro_rules! every_variant {
        ($ty:ty { $($pat:pat => $val:expr),+ $(,)? }) => {{
            fn exhaustive(e: &$ty) {
                match e {
                    $($pat => {})+
                }
            }
            let mut texts: Vec<String> = Vec::new();
            $(
                let v: $ty = $val;
                assert!(matches!(&v, $pat), "{} is not {}", stringify!($val), stringify!($pat));
                exhaustive(&v);
                texts.push(v.to_string());
            )+
            texts
        }};
    }

    #[test]
    fn display_is_lowercase_without_period() {
        let m = || Message::new(());
        let mut msgs = vec![
            SendError(m()).to_string(),
            SendBatchError::<()> {
                sent: 1,
                unsent: vec![m()],
            }
            .to_string(),
            RecvError.to_string(),
            // A struct whose text comes from the parser: tests/filter.rs (every_error_kind)
            // checks the text of every kind; two here.
            Filter::<()>::from_json("{invalidjson}")
                .unwrap_err()
                .to_string(),
            Filter::<()>::from_json(r#"{"k": [{"numeric": [">", 3, "<", 1]}]}"#)
                .unwrap_err()
                .to_string(),
        ];
        msgs.extend(every_variant!(TrySendError<()> {
            TrySendError::Full(_) => TrySendError::Full(m()),
            TrySendError::Closed(_) => TrySendError::Closed(m()),
        }));
        msgs.extend(every_variant!(SendTimeoutError<()> {
            SendTimeoutError::Timeout(_) => SendTimeoutError::Timeout(m()),
            SendTimeoutError::Closed(_) => SendTimeoutError::Closed(m()),
        }));
        msgs.extend(every_variant!(TryRecvError {
            TryRecvError::Empty => TryRecvError::Empty,
            TryRecvError::Closed => TryRecvError::Closed,
        }));
        msgs.extend(every_variant!(RecvTimeoutError {
            RecvTimeoutError::Timeout => RecvTimeoutError::Timeout,
            RecvTimeoutError::Closed => RecvTimeoutError::Closed,
        }));
        msgs.extend(every_variant!(AckError {
            AckError::LeaseExpired(_) => AckError::LeaseExpired(MessageId::next()),
        }));
        msgs.extend(every_variant!(DeliverError<()> {
            DeliverError::Full(_) => DeliverError::Full(m()),
            DeliverError::Closed(_) => DeliverError::Closed(m()),
            DeliverError::Rejected { .. } => DeliverError::rejected(m(), "not wanted"),
        }));
        msgs.extend(every_variant!(PublishError<()> {
            PublishError::Closed(_) => PublishError::Closed(m()),
            PublishError::Rejected { .. } => PublishError::Rejected {
                message: m(),
                reason: "not wanted".into(),
            },
            PublishError::Full { .. } => PublishError::Full {
                message: m(),
                report: PublishReport::default(),
            },
        }));
        msgs.extend(every_variant!(RecipientListError<()> {
            RecipientListError::UnknownRecipient { .. } => RecipientListError::UnknownRecipient {
                name: "billing".into(),
                message: m(),
            },
            RecipientListError::Stopped { .. } => RecipientListError::Stopped {
                report: RecipientReport::default(),
                error: DeliverError::Closed(m()),
            },
            RecipientListError::Undelivered { .. } => RecipientListError::Undelivered {
                report: RecipientReport::default(),
                error: DeliverError::Full(m()),
            },
        }));
        msgs.extend(every_variant!(RequestError {
            RequestError::NoResponder => RequestError::NoResponder,
            RequestError::Unanswered => RequestError::Unanswered,
            RequestError::Timeout => RequestError::Timeout,
            RequestError::Full => RequestError::Full,
            RequestError::Rejected(_) => RequestError::Rejected("not wanted".into()),
        }));
        msgs.extend(every_variant!(GatherError {
            GatherError::NoResponder => GatherError::NoResponder,
            GatherError::Full => GatherError::Full,
            GatherError::Rejected(_) => GatherError::Rejected("not wanted".into()),
            GatherError::UnknownRecipient(_) => GatherError::UnknownRecipient("billing".into()),
            GatherError::RecipientFailed { .. } => GatherError::RecipientFailed {
                name: "billing".into(),
                outcome: "closed".into(),
            },
        }));
        msgs.extend(every_variant!(ReplyError<()> {
            ReplyError::Late(_) => ReplyError::Late(()),
        }));
        assert_eq!(msgs.len(), 34);
        for m in msgs {
            assert!(
                m.starts_with(char::is_lowercase) && !m.ends_with('.'),
                "{m:?}"
            );
        }
    }

    #[test]
    fn debug_needs_no_debug_payload() {
        struct NoDebug;
        let e = TrySendError::Closed(Message::new(NoDebug));
        assert_eq!(format!("{e:?}"), "Closed(..)");
        assert!(e.is_closed() && !e.is_full());
    }

    /// The crossbeam-channel conversions from the blocking errors to the others: each is the
    /// `Closed` case, handing the message back (found by review: missing, so a function mixing
    /// `send` and `try_send` could not use `?`).
    #[test]
    fn blocking_errors_convert_to_closed() {
        let e: TrySendError<u8> = SendError(Message::new(7)).into();
        assert!(e.is_closed());
        assert_eq!(e.into_inner().into_payload(), 7);
        let e: SendTimeoutError<u8> = SendError(Message::new(8)).into();
        assert!(e.is_closed());
        assert_eq!(e.into_inner().into_payload(), 8);
        assert_eq!(TryRecvError::from(RecvError), TryRecvError::Closed);
        assert_eq!(RecvTimeoutError::from(RecvError), RecvTimeoutError::Closed);
    }
}
