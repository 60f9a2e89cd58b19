//! Publish-subscribe topics: every message published reaches every current subscription.
//!
//! A [`Topic`] is the in-process equivalent of an SNS topic. [`Topic::publish`] hands a copy of
//! the message to each subscription and returns a [`PublishReport`] saying what happened
//! (delivered, dropped by an overflow policy, filtered out). A subscription is either
//!
//! - a [`Subscription`] from [`subscribe`](Topic::subscribe): its own buffer, received from like a
//!   queue, or
//! - a chained [`Endpoint`](crate::Endpoint) from [`subscribe_queue`](Topic::subscribe_queue) or
//!   [`subscribe_endpoint`](Topic::subscribe_endpoint): the message goes into a [`Queue`]
//!   (which keeps its leases, dead letters and competing consumers), another topic or a closure.
//!
//! ```
//! use switchboard::{Queue, Topic};
//!
//! let orders = Topic::new();
//! let audit = orders.subscribe(); // a subscriber of its own
//! let billing = Queue::unbounded(); // a queue that competing workers drain
//! orders.subscribe_queue(&billing);
//!
//! let report = orders.publish("order-1").unwrap();
//! assert_eq!(report.delivered, 2);
//! assert_eq!(audit.recv().unwrap().into_payload(), "order-1");
//! assert_eq!(billing.recv().unwrap().into_payload(), "order-1");
//! ```
//!
//! # Ordering
//!
//! A subscription receives only messages published after [`subscribe`](Topic::subscribe)
//! returned, in publish order: the order of each publisher's calls, and across publishers the
//! order in which their deliveries reached it. Two subscriptions see concurrent publishes from
//! different threads possibly interleaved differently.
//!
//! # Fan-out cost
//!
//! Each subscription gets its own [`Message`](crate::Message): the metadata (id, attributes,
//! correlation id, ...) is shared between the copies, never deep-copied, and the payload is
//! cloned once per subscription (the last one gets the original). A large payload fans out for
//! the price of a reference count per subscriber when it is an `Arc<T>`:
//!
//! ```
//! use std::sync::Arc;
//! use switchboard::Topic;
//!
//! let topic = Topic::new();
//! let subs: Vec<_> = (0..3).map(|_| topic.subscribe()).collect();
//! let big = Arc::new(vec![0u8; 1 << 20]);
//! topic.publish(Arc::clone(&big)).unwrap();
//! let got: Vec<_> = subs.iter().map(|s| s.recv().unwrap().into_payload()).collect();
//! assert!(got.iter().all(|p| Arc::ptr_eq(p, &big))); // one megabyte, never copied
//! ```
//!
//! # Threads
//!
//! A `Topic<T>` is built for any `T: Clone`, but [`Topic`] and [`Subscription`] are `Send` and
//! `Sync` only when `T` is `Send + Sync`: a topic can hold chained queues, whose messages are
//! shared between a lease's old holder and the next receiver. (tokio's broadcast asks only
//! `T: Send`.) A payload that is `Send` but not `Sync` goes in a `Mutex`, or stays on one thread.
//!
//! # Overflow
//!
//! Each subscription has a capacity and an [`Overflow`] policy for when it is full: `Block` (the
//! default: lossless, the publisher waits), `DropOldest`, `DropNewest`, or `Error` (the
//! publisher is told and gets the message back). A slow subscriber can therefore lose messages
//! only if it asked to, and every message it loses is counted, in
//! [`Subscription::dropped`] and in the report: a subscriber can always tell that it missed
//! something and how much.
//!
//! ```
//! use switchboard::{Overflow, SubscribeOptions, Topic};
//!
//! let topic = Topic::new();
//! let lossless = topic.subscribe_with(SubscribeOptions::new().capacity(2));
//! let ticker = topic.subscribe_with(SubscribeOptions::new().capacity(2).overflow(Overflow::DropOldest));
//! let strict = topic.subscribe_with(SubscribeOptions::new().capacity(2).overflow(Overflow::Error));
//! topic.publish(1).unwrap();
//! topic.publish(2).unwrap();
//! lossless.recv().unwrap(); // room for one more in the blocking subscription
//! let err = topic.publish(3).unwrap_err(); // the strict subscription is full
//! let report = err.report().unwrap();
//! assert_eq!((report.delivered, report.dropped_oldest, report.full), (2, 1, 1));
//! assert_eq!((ticker.dropped(), strict.dropped(), lossless.dropped()), (1, 1, 0));
//! ```
//!
//! # Validation
//!
//! A topic built with [`validate`](TopicBuilder::validate) checks every message against its
//! contract before any subscriber sees it; a refused publish fails with
//! [`PublishError::Rejected`], handing the message back.
//!
//! # Closing
//!
//! [`close`](Topic::close) makes later publishes fail with [`PublishError::Closed`], handing the
//! message back. Publishes already under way finish. Subscriptions receive what they hold, then
//! get `Closed`; the same happens when the last `Topic` handle is dropped. Chained queues are not
//! closed: the topic only lets go of them.
//!
//! # The hot path
//!
//! Publishing takes no lock. The subscriber set is immutable and copy-on-write: subscribing and
//! unsubscribing (rare, and allowed to be slow) build a new set and swap it in atomically, while
//! a publish borrows the current one without writing to any shared cache line (no lock word, no
//! shared reference count), then makes one buffer push per subscription. A dropped
//! [`Subscription`] is out of the set before `drop` returns, so it costs publishers nothing.

mod core;
mod handle;
mod options;
mod report;
mod subscription;

pub use self::handle::{Topic, TopicBuilder};
pub use self::options::{Overflow, SubscribeOptions};
pub use self::report::{
    PublishError, PublishReport, SubscriptionId, SubscriptionStats, TopicStats,
};
pub use self::subscription::{IntoIter, Iter, Subscription, TryIter};

#[cfg(doc)]
use crate::Queue;
