//! switchboard: in-process messaging patterns.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod clock;
pub mod consumer;
mod endpoint;
mod error;
mod message;
pub mod queue;
pub mod recipient_list;
pub mod request_reply;
pub mod topic;

pub use crate::clock::{Clock, ManualClock};
pub use crate::consumer::{
    Consumer, ConsumerHandle, ConsumerStats, Jitter, RetryPolicy, ShutdownReport,
};
pub use crate::endpoint::{DeliverError, Endpoint};
pub use crate::error::{
    AckError, RecvError, RecvTimeoutError, SendBatchError, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
pub use crate::message::{
    AttrValue, Attributes, CorrelationId, DeadLetter, Message, MessageId, ReturnAddress,
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

/// The README's examples, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
