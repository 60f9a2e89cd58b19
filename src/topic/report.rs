//! What a publish did, the topic's counters, and the publish error.

use std::fmt;

use crate::message::Message;

/// Identifies a subscription within its topic: for
/// [`Topic::unsubscribe`](crate::Topic::unsubscribe) and
/// [`Topic::subscription_stats`](crate::Topic::subscription_stats).
///
/// Ids are handed out in subscription order and never reused by a topic.
///
/// ```
/// use switchboard::{Queue, Topic};
///
/// let topic: Topic<u8> = Topic::new();
/// let a = topic.subscribe();
/// let b = topic.subscribe_queue(&Queue::unbounded());
/// assert!(a.id() < b);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub(crate) u64);

impl SubscriptionId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What one publish did, subscription by subscription, counted by outcome.
///
/// Every subscription the publish met is counted once in `delivered`, `filtered_out`,
/// `dropped_newest`, `full`, `closed`, `rejected` or `expired`, except one dropped while the
/// publish was under way (it is gone, and counted nowhere); `dropped_oldest` counts older messages pushed
/// out to make room (their subscriptions are also counted in `delivered`).
///
/// ```
/// use switchboard::{Overflow, SubscribeOptions, Topic};
///
/// let topic = Topic::new();
/// assert_eq!(topic.publish(0).unwrap().delivered, 0); // nobody listens: not an error
///
/// let _a = topic.subscribe();
/// let _b = topic.subscribe_with(SubscribeOptions::new().capacity(1).overflow(Overflow::DropNewest));
/// topic.publish(1).unwrap();
/// let report = topic.publish(2).unwrap();
/// assert_eq!((report.delivered, report.dropped_newest, report.dropped()), (1, 1, 1));
/// ```
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub struct PublishReport {
    /// Subscriptions that got the message. A chained queue that turned it away as a duplicate
    /// (de-duplication) counts here too: it took the message, as an SQS queue takes a duplicate
    /// that SNS sends it, and its own [`QueueStats::duplicates`](crate::QueueStats::duplicates)
    /// tells.
    pub delivered: usize,
    /// The final receivers reached beyond one per subscription in `delivered`: a chained
    /// endpoint that reached n of them (a chained topic counts its subscriptions) adds n - 1, a
    /// chained list that failed some recipients and reached n others adds n. With `delivered`,
    /// how many replies a request published here can bring. One field, not two counts, to keep
    /// a `PublishError` that carries the report small.
    pub(crate) reach_extra: isize,
    /// Subscriptions whose filter did not match.
    pub filtered_out: usize,
    /// Older messages dropped to make room ([`Overflow::DropOldest`](crate::Overflow::DropOldest)).
    pub dropped_oldest: usize,
    /// Subscriptions that were full and dropped this message
    /// ([`Overflow::DropNewest`](crate::Overflow::DropNewest)).
    pub dropped_newest: usize,
    /// Subscriptions that were full and did not get the message, the publisher being told
    /// ([`Overflow::Error`](crate::Overflow::Error), or a [`Overflow::Block`](crate::Overflow::Block)
    /// subscription the publish could not wait for). A chained recipient list counts here (or
    /// in `closed`, `rejected`) when a recipient of its failed, even if others got the message;
    /// the message is then not handed back, as a retry would give those a duplicate.
    pub full: usize,
    /// Chained endpoints that were closed.
    pub closed: usize,
    /// Chained endpoints that refused the message.
    pub rejected: usize,
    /// Chained closures not handed the message because its time-to-live ran out before the
    /// publish reached them (one that waited for room in an earlier subscription): counted in
    /// their subscriptions' [`SubscriptionStats::expired`] too, and not a drop. A chained queue,
    /// topic or list gets such a message with no time left, counts as `delivered`, and expires
    /// it by its own rules (a queue counts it, and dead-letters it if it says so).
    pub expired: usize,
}

impl PublishReport {
    /// Final receivers reached: channel subscriptions, plus what chained endpoints reached.
    pub(crate) fn reach(&self) -> usize {
        self.delivered.saturating_add_signed(self.reach_extra)
    }

    /// The public counts, which equality, hashing and `Debug` go by: the crate-private reach
    /// bookkeeping stays out of what users see and compare.
    fn counts(&self) -> [usize; 8] {
        [
            self.delivered,
            self.filtered_out,
            self.dropped_oldest,
            self.dropped_newest,
            self.full,
            self.closed,
            self.rejected,
            self.expired,
        ]
    }

    /// Every message lost to a subscription by this publish: `dropped_oldest + dropped_newest +
    /// full + closed + rejected`. `dropped_oldest` counts earlier messages pushed out to make
    /// room for this one (which was delivered), the others count this message.
    pub fn dropped(&self) -> usize {
        self.dropped_oldest + self.dropped_newest + self.full + self.closed + self.rejected
    }

    /// Whether nothing was dropped: [`dropped`](PublishReport::dropped) is zero. Every
    /// subscription whose filter matched got the message, except those it reached with its
    /// time-to-live run out ([`expired`](PublishReport::expired), which the sender chose and
    /// which is not a drop).
    pub fn is_lossless(&self) -> bool {
        self.dropped() == 0
    }
}

impl PartialEq for PublishReport {
    fn eq(&self, other: &Self) -> bool {
        self.counts() == other.counts()
    }
}

impl Eq for PublishReport {}

impl std::hash::Hash for PublishReport {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.counts().hash(state);
    }
}

impl fmt::Debug for PublishReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishReport")
            .field("delivered", &self.delivered)
            .field("filtered_out", &self.filtered_out)
            .field("dropped_oldest", &self.dropped_oldest)
            .field("dropped_newest", &self.dropped_newest)
            .field("full", &self.full)
            .field("closed", &self.closed)
            .field("rejected", &self.rejected)
            .field("expired", &self.expired)
            .finish()
    }
}

/// Counters of a topic, from [`Topic::stats`](crate::Topic::stats).
///
/// ```
/// use switchboard::Topic;
///
/// let topic = Topic::new();
/// let a = topic.subscribe();
/// let _b = topic.subscribe();
/// topic.publish("x").unwrap();
/// a.recv().unwrap();
/// let s = topic.stats();
/// assert_eq!((s.published, s.delivered, s.dropped, s.subscribers), (1, 2, 0, 2));
/// assert_eq!((a.received(), a.lag()), (1, 0));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// Messages accepted for publishing (not rejected, not after close).
    pub published: u64,
    /// Deliveries made: one per subscription that got a message.
    pub delivered: u64,
    /// Messages lost to subscriptions, as [`PublishReport::dropped`] summed.
    pub dropped: u64,
    /// Publishes refused: by the validator, or as a delivery loop (a message that a chain of
    /// subscribed endpoints brought back to this topic while it was still delivering it).
    pub rejected: u64,
    /// Deliveries skipped because a filter did not match.
    pub filtered_out: u64,
    /// Current subscriptions.
    pub subscribers: usize,
}

/// Counters of one subscription, from [`Subscription::stats`](crate::Subscription::stats) or
/// [`Topic::subscription_stats`](crate::Topic::subscription_stats).
///
/// ```
/// use switchboard::{Overflow, SubscribeOptions, Topic};
///
/// let topic = Topic::new();
/// let sub = topic.subscribe_with(SubscribeOptions::new().capacity(2).overflow(Overflow::DropNewest));
/// for i in 0..3 {
///     topic.publish(i).unwrap();
/// }
/// sub.recv().unwrap();
/// let s = sub.stats();
/// assert_eq!((s.received, s.dropped, s.lag), (1, 1, 1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SubscriptionStats {
    /// Messages the subscriber received (0 for a chained endpoint: its queue counts them).
    pub received: u64,
    /// Messages lost to this subscription, by its overflow policy, or a closed or refusing
    /// endpoint.
    pub dropped: u64,
    /// Messages whose time-to-live ran out in this subscription's buffer: discarded when they
    /// came up, never received. For a chained closure: messages whose time ran out before a
    /// publish reached it (one that waited for room in an earlier subscription), never handed
    /// on. A chained queue counts its own (see [`PublishReport::expired`]).
    pub expired: u64,
    /// Messages buffered and not yet received (0 for a chained endpoint).
    pub lag: usize,
}

/// A publish failed; the message is handed back.
///
/// ```
/// use switchboard::{PublishError, Topic};
///
/// let topic: Topic<u32> = Topic::new();
/// topic.close();
/// let err = topic.publish(1).unwrap_err();
/// assert!(err.is_closed());
/// assert_eq!(err.to_string(), "publishing on a closed topic");
/// assert_eq!(err.into_inner().into_payload(), 1);
/// ```
#[derive(Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError<T> {
    /// The topic is closed; no subscriber got the message.
    #[error("publishing on a closed topic")]
    Closed(Message<T>),
    /// The topic's validator refused the message; no subscriber got it.
    #[error("message rejected by the topic's validator: {reason}")]
    Rejected {
        /// The message refused.
        message: Message<T>,
        /// The validator's reason.
        reason: String,
    },
    /// Some subscriptions were full and could not take the message (their policy is
    /// [`Overflow::Error`](crate::Overflow::Error), or they block and the publish could not wait);
    /// every other subscription got it, as the report says.
    #[error("publishing to {} full subscription(s)", report.full)]
    Full {
        /// A copy of the message, not delivered to the full subscriptions.
        message: Message<T>,
        /// What the publish did.
        report: PublishReport,
    },
}

impl<T> PublishError<T> {
    /// The message handed back.
    pub fn into_inner(self) -> Message<T> {
        match self {
            PublishError::Closed(m) => m,
            PublishError::Rejected { message, .. } | PublishError::Full { message, .. } => message,
        }
    }

    /// Whether the topic was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, PublishError::Closed(_))
    }

    /// Whether the validator refused the message.
    pub fn is_rejected(&self) -> bool {
        matches!(self, PublishError::Rejected { .. })
    }

    /// Whether some subscriptions were full.
    pub fn is_full(&self) -> bool {
        matches!(self, PublishError::Full { .. })
    }

    /// The validator's reason, for a rejection.
    pub fn reason(&self) -> Option<&str> {
        match self {
            PublishError::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// What the publish did, when it reached the subscribers (`Full`).
    pub fn report(&self) -> Option<&PublishReport> {
        match self {
            PublishError::Full { report, .. } => Some(report),
            _ => None,
        }
    }
}

impl<T> fmt::Debug for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Closed(_) => f.write_str("Closed(..)"),
            PublishError::Rejected { reason, .. } => f
                .debug_struct("Rejected")
                .field("reason", reason)
                .finish_non_exhaustive(),
            PublishError::Full { report, .. } => f
                .debug_struct("Full")
                .field("report", report)
                .finish_non_exhaustive(),
        }
    }
}
