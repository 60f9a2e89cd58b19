//! Compile-time checks: handles, deliveries, messages and errors cross threads where they should.
//!
//! A queue moves its payload between threads and shares it (an expired lease's holder and the
//! next receiver can both see a message), so `Queue<T>` needs `T: Send + Sync`. A payload that
//! is not `Sync` (a `Cell`) or not `Send` (an `Rc`) must not make a sendable queue: the
//! `compile_fail` doctests of the crate cannot live here, so those cases are checked through
//! autoref-based specialisation below.

#![allow(dead_code)]

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use switchboard::{
    AckError, AttrValue, Attributes, Clock, CorrelationId, DeadLetter, Delivery, ManualClock,
    Message, MessageId, Queue, QueueBuilder, QueueStats, RecvError, RecvTimeoutError,
    ReturnAddress, SendBatchError, SendError, SendTimeoutError, Sent, TryRecvError, TrySendError,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn static_error<E: std::error::Error + Send + Sync + 'static>() {}

/// A payload that is `Send + Sync`.
struct Job(Vec<u8>);

#[test]
fn handles_are_send_sync() {
    send_sync::<Queue<Job>>();
    send_sync::<QueueBuilder<Job>>();
    send_sync::<Delivery<Job>>();
    send_sync::<Message<Job>>();
    send_sync::<Sent>();
    send_sync::<QueueStats>();
    send_sync::<ManualClock>();
    send_sync::<Clock>();
    send_sync::<MessageId>();
    send_sync::<CorrelationId>();
    send_sync::<ReturnAddress>();
    send_sync::<Attributes>();
    send_sync::<AttrValue>();
    send_sync::<DeadLetter>();
    // Iterators over a shared queue can move to another thread.
    send::<switchboard::queue::Iter<'static, Job>>();
    send::<switchboard::queue::TryIter<'static, Job>>();
    send::<switchboard::queue::IntoIter<Job>>();
    // So can a responder's, and a gather's completion condition (built on one thread, used on
    // the one that scatters).
    send::<switchboard::request_reply::Iter<'static, u8, u8>>();
    send::<switchboard::request_reply::TryIter<'static, u8, u8>>();
    send::<switchboard::Completion<u8>>();
}

fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}

/// Handles work inside `catch_unwind` without `AssertUnwindSafe`, as crossbeam's do; a message
/// (and an error handing one back) as far as its payload does.
#[test]
fn handles_are_unwind_safe() {
    use switchboard::{
        Endpoint, RecipientList, Request, Requester, Responder, ScatterGather, Service,
        Subscription, Topic,
    };
    type Req = Request<u8, u8>;
    unwind_safe::<Queue<Job>>();
    unwind_safe::<Delivery<Job>>();
    unwind_safe::<Message<Job>>();
    unwind_safe::<SendError<Job>>();
    unwind_safe::<Topic<Job>>();
    unwind_safe::<Subscription<Job>>();
    unwind_safe::<RecipientList<Job>>();
    unwind_safe::<Endpoint<Job>>();
    unwind_safe::<Requester<u8, u8>>();
    unwind_safe::<ScatterGather<u8, u8>>();
    unwind_safe::<Service<u8, u8>>();
    unwind_safe::<Responder<u8, u8>>();
    unwind_safe::<Queue<Req>>();
    let q: Queue<u8> = Queue::unbounded();
    assert!(std::panic::catch_unwind(|| q.send(1).map(drop)).is_ok());
    assert_eq!(q.len(), 1);
}

#[test]
fn errors_are_send_sync_and_static() {
    send_sync::<SendError<Job>>();
    send_sync::<TrySendError<Job>>();
    send_sync::<SendTimeoutError<Job>>();
    send_sync::<SendBatchError<Job>>();
    static_error::<SendError<Job>>();
    static_error::<TrySendError<Job>>();
    static_error::<SendTimeoutError<Job>>();
    static_error::<SendBatchError<Job>>();
    static_error::<RecvError>();
    static_error::<TryRecvError>();
    static_error::<RecvTimeoutError>();
    static_error::<AckError>();
    // They convert into boxed errors, which `?` in an application needs.
    let _: Box<dyn std::error::Error + Send + Sync> = Box::new(RecvError);
    let e: Box<dyn std::error::Error + Send + Sync> =
        Box::new(SendError(Message::new(Job(vec![]))));
    assert_eq!(e.to_string(), "sending on a closed queue");
}

#[test]
fn messages_follow_their_payload() {
    // A Message is Send when its payload is, and Sync when its payload is.
    send::<Message<Cell<u8>>>();
    assert!(!IsSync::<Message<Cell<u8>>>::new().is_sync());
    assert!(!IsSend::<Message<Rc<u8>>>::new().is_send());
    assert!(IsSync::<Message<Arc<u8>>>::new().is_sync());
}

#[test]
fn queues_of_unshareable_payloads_do_not_cross_threads() {
    // Queue<T> requires T: Send + Sync to be built at all; the handle type itself must not be
    // Send/Sync for payloads that are not, so that no unsound queue can exist.
    assert!(!IsSend::<Queue<Rc<u8>>>::new().is_send());
    assert!(!IsSync::<Queue<Cell<u8>>>::new().is_sync());
    assert!(!IsSend::<Delivery<Rc<u8>>>::new().is_send());
    assert!(IsSend::<Queue<u8>>::new().is_send());
}

// Autoref specialisation: `is_send` resolves to the inherent method when `T: Send`, else to the
// trait method. Evaluated at compile time in effect (no runtime state involved).
struct IsSend<T>(std::marker::PhantomData<T>);
struct IsSync<T>(std::marker::PhantomData<T>);

impl<T> IsSend<T> {
    fn new() -> Self {
        IsSend(std::marker::PhantomData)
    }
}
impl<T> IsSync<T> {
    fn new() -> Self {
        IsSync(std::marker::PhantomData)
    }
}

trait NotSend {
    fn is_send(&self) -> bool {
        false
    }
}
impl<T> NotSend for IsSend<T> {}
trait NotSync {
    fn is_sync(&self) -> bool {
        false
    }
}
impl<T> NotSync for IsSync<T> {}

impl<T: Send> IsSend<T> {
    fn is_send(&self) -> bool {
        true
    }
}
impl<T: Sync> IsSync<T> {
    fn is_sync(&self) -> bool {
        true
    }
}

#[test]
fn pattern_handles_are_send_sync() {
    use switchboard::{
        ConversationStats, Endpoint, GatherError, Gathered, RecipientList, RecipientListBuilder,
        RecipientListError, RecipientReport, Reply, ReplyError, ReplyTo, Request, RequestError,
        Requester, Responder, Route, ScatterGather, Service,
    };
    #[derive(Clone)]
    struct Req(Vec<u8>);
    send_sync::<Endpoint<Req>>();
    send_sync::<RecipientList<Req>>();
    send_sync::<RecipientListBuilder<Req>>();
    send_sync::<Route<Req>>();
    send_sync::<RecipientReport>();
    send_sync::<Request<Req, Job>>();
    send_sync::<ReplyTo<Job>>();
    send_sync::<Reply<Job>>();
    send_sync::<Requester<Req, Job>>();
    send_sync::<ScatterGather<Req, Job>>();
    send_sync::<Service<Req, Job>>();
    send_sync::<Responder<Req, Job>>();
    send_sync::<Gathered<Job>>();
    send_sync::<ConversationStats>();
    static_error::<RecipientListError<Req>>();
    static_error::<ReplyError<Job>>();
    static_error::<RequestError>();
    static_error::<GatherError>();
    // A gather's results are values: kept, compared and passed on as the replies are.
    fn clone_of<T: Clone>() {}
    clone_of::<Reply<u32>>();
    clone_of::<Gathered<u32>>();
}

/// The topic, filter and consumer handles and their errors cross threads too (found by review:
/// this file checked only the queue's and the conversation patterns' types).
#[test]
fn topic_filter_and_consumer_handles_are_send_sync() {
    use switchboard::{
        Consumer, ConsumerHandle, ConsumerStats, DeliverError, Filter, FilterBuilder, FilterError,
        FilterIndex, FilterSnapshot, PublishError, PublishReport, RetryPolicy, ShutdownReport,
        SubscribeOptions, Subscription, SubscriptionStats, Topic, TopicBuilder, TopicStats,
    };
    #[derive(Clone)]
    struct Ev(Vec<u8>);
    send_sync::<Topic<Ev>>();
    send_sync::<TopicBuilder<Ev>>();
    send_sync::<Subscription<Ev>>();
    send_sync::<SubscribeOptions>();
    send_sync::<PublishReport>();
    send_sync::<TopicStats>();
    send_sync::<SubscriptionStats>();
    send_sync::<switchboard::topic::Iter<'static, Ev>>();
    send_sync::<switchboard::topic::IntoIter<Ev>>();
    send_sync::<Filter<Ev>>();
    send_sync::<FilterBuilder>();
    send_sync::<FilterIndex<u64, Ev>>();
    send_sync::<FilterSnapshot<u64, Ev>>();
    send_sync::<Consumer<Job>>();
    send_sync::<ConsumerHandle<Job>>();
    send_sync::<ConsumerStats>();
    send_sync::<ShutdownReport>();
    send_sync::<RetryPolicy>();
    send_sync::<switchboard::queue::Leasing<'static, Job>>();
    static_error::<PublishError<Ev>>();
    static_error::<DeliverError<Ev>>();
    static_error::<FilterError>();
}

fn clone<T: Clone>() {}

/// Errors that hand a message back clone when it does, as crossbeam's and flume's errors do (a
/// `Message` has no `PartialEq`, its return address being any endpoint, so they have none).
#[test]
fn errors_with_a_message_clone_when_it_does() {
    clone::<SendError<u8>>();
    clone::<TrySendError<u8>>();
    clone::<SendTimeoutError<u8>>();
    clone::<SendBatchError<u8>>();
    clone::<switchboard::PublishError<u8>>();
    clone::<switchboard::DeliverError<u8>>();
    clone::<switchboard::RecipientListError<u8>>();
    let e = Queue::bounded(0).try_send(7u8).unwrap_err();
    assert_eq!(e.clone().into_inner().into_payload(), 7);
    assert!(e.is_full());
}
