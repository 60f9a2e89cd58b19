//! In-process messaging patterns: the semantics of SQS, SNS and the enterprise integration
//! patterns, inside one program, with crossbeam-channel on the hot path.
//!
//! No server, no network, no background threads (a [consumer pool](consumer) starts threads only
//! because you asked for one). Every handle to a queue, topic, recipient list or service is cheap
//! to clone and shares one underlying object (a [`Subscription`] is one subscriber's own stream,
//! and a [`Delivery`] one lease: neither is `Clone`); every failed send hands the message back;
//! every time-based behaviour runs on a [`Clock`] that tests replace with a [`ManualClock`].
//!
//! # Queue: point-to-point
//!
//! Many senders, many competing receivers, each message consumed by one. Plain receive is
//! at-most-once:
//!
//! ```
//! use switchboard::Queue;
//!
//! let q = Queue::bounded(128); // send waits while 128 sent messages wait
//! q.send("hello").unwrap();
//! assert_eq!(q.recv().unwrap().into_payload(), "hello");
//! ```
//!
//! # Leases: at-least-once
//!
//! A leased receive returns a [`Delivery`]; the message stays in flight until `ack`. A `nack`, an
//! expired visibility timeout, or a `Delivery` dropped without a verdict (a consumer that returned
//! early or panicked) puts it back; after `max_attempts` failed deliveries it goes to the
//! dead-letter queue. See [`queue`] for the whole story.
//!
//! ```
//! use switchboard::Queue;
//!
//! let dlq = Queue::unbounded();
//! let q = Queue::builder().dead_letter(&dlq, 2).build();
//! q.send("poison").unwrap();
//! q.receive().unwrap().nack().unwrap(); // attempt 1 fails
//! let again = q.receive().unwrap();
//! assert_eq!(again.attempt(), 2);
//! drop(again); // attempt 2 "crashes": dead-lettered
//! assert_eq!(dlq.try_recv().unwrap().dead_letter().unwrap().attempts(), 2);
//! ```
//!
//! # FIFO groups and de-duplication
//!
//! ```
//! use switchboard::{Message, Queue};
//!
//! let q: Queue<i32> = Queue::builder().fifo().build();
//! q.send(Message::new(1).with_group("customer-7").with_dedup_id("order-1")).unwrap();
//! assert!(q.send(Message::new(1).with_group("customer-7").with_dedup_id("order-1")).unwrap().is_duplicate());
//! q.send(Message::new(2).with_group("customer-7")).unwrap();
//! let first = q.receive().unwrap();
//! assert!(q.try_receive().is_err()); // one in flight per group
//! first.ack().unwrap();
//! assert_eq!(*q.receive().unwrap().payload(), 2);
//! ```
//!
//! # Topic: publish-subscribe
//!
//! Every subscriber gets every message published after it subscribed; a queue can subscribe,
//! so fan-out and load-balanced consumers combine (SNS to SQS). See [`topic`].
//!
//! ```
//! use switchboard::{Queue, Topic};
//!
//! let orders = Topic::new();
//! let audit = orders.subscribe();
//! let billing = Queue::unbounded();
//! orders.subscribe_queue(&billing);
//! assert_eq!(orders.publish("order-1").unwrap().delivered, 2);
//! assert_eq!(audit.recv().unwrap().into_payload(), "order-1");
//! assert_eq!(billing.recv().unwrap().into_payload(), "order-1");
//! ```
//!
//! # Filter: subscribers declare what they want
//!
//! A [`Filter`] is an Amazon SNS filter policy (JSON, or the Rust builder) on message attributes.
//! A topic keeps its filtered subscriptions in an index, so a publish does not evaluate every
//! filter. See [`filter`] for the matching rules.
//!
//! ```
//! use switchboard::{Filter, Message, Topic};
//!
//! let orders: Topic<&str> = Topic::new();
//! let policy = r#"{"region": ["eu", "uk"], "amount": [{"numeric": [">=", 100]}]}"#;
//! let big_eu = orders.subscribe_filtered(Filter::from_json(policy).unwrap());
//! orders.publish(Message::new("small").with_attr("region", "eu").with_attr("amount", 5)).unwrap();
//! orders.publish(Message::new("large").with_attr("region", "uk").with_attr("amount", 500)).unwrap();
//! assert_eq!(big_eu.recv().unwrap().into_payload(), "large");
//! assert!(big_eu.try_recv().is_err());
//! ```
//!
//! # RecipientList: code decides who gets each message
//!
//! ```
//! use switchboard::{Message, Queue, RecipientList, Route};
//!
//! let (eu, us) = (Queue::<&str>::unbounded(), Queue::unbounded());
//! let list = RecipientList::new(Route::by_attribute("recipients"));
//! list.add("eu", &eu);
//! list.add("us", &us);
//! let report = list.send(Message::new("order").with_attr("recipients", ["eu", "us"])).unwrap();
//! assert_eq!(report.delivered(), 2);
//! assert_eq!((eu.len(), us.len()), (1, 1));
//! ```
//!
//! # Request-reply and scatter-gather
//!
//! A request carries a typed return address and a correlation id; responders answer through it
//! without knowing who asked, and a reply of the wrong type does not compile. See
//! [`request_reply`].
//!
//! ```
//! use std::time::Duration;
//! use switchboard::{Completion, Endpoint, Message, Request, ScatterGather, Topic};
//!
//! // An auction: every supplier subscribed to the topic quotes; the best quote wins.
//! let suppliers: Topic<Request<&str, u32>> = Topic::new();
//! for price in [120, 95, 130] {
//!     suppliers.subscribe_endpoint(Endpoint::from_fn(move |m: Message<Request<&str, u32>>| {
//!         let _ = m.into_payload().reply(price);
//!         Ok(())
//!     }));
//! }
//! let quotes = ScatterGather::new(&suppliers)
//!     .scatter("10 widgets", Completion::within(Duration::from_secs(1)))
//!     .unwrap();
//! let best = quotes.replies().iter().map(|r| *r.body()).min();
//! assert_eq!(best, Some(95));
//! ```
//!
//! # Consumers: a handler on a pool of workers
//!
//! ```
//! use switchboard::Queue;
//!
//! let jobs: Queue<u32> = Queue::unbounded();
//! let pool = jobs.consume(2, |m| if *m.payload() % 2 == 0 { Ok(()) } else { Err("odd") });
//! jobs.send(2).unwrap();
//! jobs.close();
//! assert_eq!(pool.join().processed, 1);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod chunked;
mod clock;
pub mod consumer;
mod endpoint;
mod error;
pub mod filter;
mod message;
pub mod queue;
pub mod recipient_list;
pub mod request_reply;
mod small_set;
mod spin;
pub mod topic;

pub use crate::clock::{Clock, ManualClock};
pub use crate::consumer::{
    Consumer, ConsumerHandle, ConsumerStats, Failure, Jitter, RetryPolicy, ShutdownReport,
};
pub use crate::endpoint::{DeliverError, Endpoint};
pub use crate::error::{
    AckError, RecvError, RecvTimeoutError, SendBatchError, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
pub use crate::filter::{
    Explanation, Filter, FilterBuilder, FilterError, FilterErrorKind, FilterIndex, FilterLimits,
    FilterSnapshot, Mismatch, Numeric, PolicyValue,
};
pub use crate::message::{
    AttrValue, Attributes, AttributesIter, CorrelationId, DeadLetter, Message, MessageId,
    ReturnAddress,
};
pub use crate::queue::{Delivery, Queue, QueueBuilder, QueueStats, Sent};
pub use crate::recipient_list::{
    OnFailure, Outcome, RecipientList, RecipientListBuilder, RecipientListError, RecipientReport,
    Route, UnknownRecipients, RECIPIENTS_ATTR,
};
pub use crate::request_reply::{
    Completed, Completion, ConversationStats, GatherError, Gathered, Reply, ReplyError, ReplyTo,
    Request, RequestError, Requester, Responder, ScatterGather, Service,
};
pub use crate::topic::{
    Overflow, PublishError, PublishReport, SubscribeOptions, Subscription, SubscriptionId,
    SubscriptionStats, Topic, TopicBuilder, TopicStats,
};

// Unwind safety, as crossbeam's channels have it: a handle can be used inside `catch_unwind`
// without `AssertUnwindSafe`. The auto traits miss these only because of the locks and cells
// inside. No operation leaves a queue, topic, list or conversation half-changed when user code it
// runs panics (a payload's drop, a filter predicate, a closure endpoint, a key function): that
// code runs outside the locks, which do not poison, and the tests with panicking payloads
// (`Bomb`) check the state after each such panic. What these impls vouch for is the library's
// state: the state a user's closure captures is that closure's owner's, as a payload's is.
// The handles above hand out messages by value; a message, and a delivery (which lends out
// `&Message<T>`, as an `Arc` does), are as unwind-safe as their payload.
macro_rules! unwind_safe {
    ($($ty:ident<$($p:ident),+>),+ $(,)?) => {$(
        impl<$($p),+> std::panic::UnwindSafe for $ty<$($p),+> {}
        impl<$($p),+> std::panic::RefUnwindSafe for $ty<$($p),+> {}
    )+};
}

unwind_safe!(
    Queue<T>,
    Topic<T>,
    Subscription<T>,
    RecipientList<T>,
    Endpoint<T>,
    Requester<Req, Rep>,
    ScatterGather<Req, Rep>,
    Service<Req, Rep>,
    Responder<Req, Rep>,
);

impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for Message<T> {}
impl<T: std::panic::RefUnwindSafe> std::panic::RefUnwindSafe for Message<T> {}
impl<T: std::panic::RefUnwindSafe> std::panic::UnwindSafe for Delivery<T> {}
impl<T: std::panic::RefUnwindSafe> std::panic::RefUnwindSafe for Delivery<T> {}

/// The README's examples, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
