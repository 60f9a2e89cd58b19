//! `Topic<T>` and its builder.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::endpoint::{deadline_after, Endpoint, Wait};
use crate::filter::Filter;
use crate::message::Message;
use crate::queue::Queue;
use crate::topic::core::{self, Shared, Sink, Sub, SubCounters, Validator};
use crate::topic::{
    Overflow, PublishError, PublishReport, SubscribeOptions, Subscription, SubscriptionId,
    SubscriptionStats, TopicStats,
};

/// A publish-subscribe topic: every message published goes to every current subscription.
///
/// `Clone` gives another handle to the same topic, never a new stream of messages: a stream
/// comes only from [`subscribe`](Topic::subscribe). See the [module docs](crate::topic) for
/// ordering, overflow, chaining and closing.
///
/// ```
/// use std::thread;
/// use switchboard::Topic;
///
/// let topic = Topic::new();
/// let a = topic.subscribe();
/// let b = topic.subscribe();
///
/// let publisher = {
///     let topic = topic.clone(); // another handle to the same topic
///     thread::spawn(move || {
///         for i in 0..10 {
///             topic.publish(i).unwrap();
///         }
///         topic.close();
///     })
/// };
/// let seen_a: Vec<i32> = a.iter().map(|m| m.into_payload()).collect();
/// let seen_b: Vec<i32> = b.iter().map(|m| m.into_payload()).collect();
/// publisher.join().unwrap();
/// assert_eq!(seen_a, (0..10).collect::<Vec<_>>());
/// assert_eq!(seen_a, seen_b);
/// ```
pub struct Topic<T> {
    pub(crate) shared: Arc<Shared<T>>,
}

impl<T> Topic<T> {
    /// A topic with no validator, on the real clock.
    pub fn new() -> Topic<T> {
        Topic::builder().build()
    }

    /// A builder for the other options: a validator, a name, a clock.
    pub fn builder() -> TopicBuilder<T> {
        TopicBuilder::new()
    }
}

impl<T: Clone> Topic<T> {
    // ----- publishing -------------------------------------------------------------------------

    /// Publishes a message to every current subscription, waiting for room in
    /// [`Overflow::Block`] subscriptions.
    ///
    /// Each subscription gets its own copy: the metadata is shared, the payload cloned (so an
    /// `Arc<T>` payload costs one reference count per subscriber). With no subscription the
    /// publish succeeds and reports zeros. The message is stamped here, so its time-to-live
    /// counts from this publish (as it counts from a queue's send): a message handed on from
    /// one topic or queue to the next starts its time-to-live again at each.
    ///
    /// # Errors
    ///
    /// [`PublishError::Closed`] after [`close`](Topic::close) and [`PublishError::Rejected`] when
    /// the validator refuses; no subscriber got the message. [`PublishError::Full`] when
    /// [`Overflow::Error`] subscriptions were full; the others got the message. All hand it back.
    ///
    /// # Panics
    ///
    /// If dropping a copy that an overflow policy pushed out or refused panics (a payload whose
    /// `Drop` panics). Those drop only after every subscription had its copy, so what is lost
    /// with the unwind is the result: the report, and the message a [`PublishError::Full`]
    /// would have handed back.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::Topic;
    ///
    /// let topic = Topic::new();
    /// let subs = [topic.subscribe(), topic.subscribe(), topic.subscribe()];
    /// let report = topic.publish("hello").unwrap();
    /// assert_eq!(report.delivered, 3);
    /// for s in &subs {
    ///     assert_eq!(s.try_recv().unwrap().into_payload(), "hello");
    /// }
    /// ```
    #[inline]
    pub fn publish(&self, msg: impl Into<Message<T>>) -> Result<PublishReport, PublishError<T>> {
        self.shared.publish(msg.into(), Wait::Forever)
    }

    /// Publishes a message without ever waiting: a full [`Overflow::Block`] subscription is
    /// treated as [`Overflow::Error`] (counted as dropped on it, the message handed back).
    ///
    /// # Errors
    ///
    /// As [`publish`](Topic::publish), with `Full` also for full blocking subscriptions.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{SubscribeOptions, Topic};
    ///
    /// let topic = Topic::new();
    /// let sub = topic.subscribe_with(SubscribeOptions::new().capacity(1));
    /// topic.try_publish(1).unwrap();
    /// let err = topic.try_publish(2).unwrap_err();
    /// assert!(err.is_full());
    /// assert_eq!(err.into_inner().into_payload(), 2);
    /// assert_eq!(sub.dropped(), 1);
    /// ```
    pub fn try_publish(
        &self,
        msg: impl Into<Message<T>>,
    ) -> Result<PublishReport, PublishError<T>> {
        self.shared.publish(msg.into(), Wait::Never)
    }

    /// Publishes a message, waiting at most `timeout` (in all) for room in blocking
    /// subscriptions; those still full then are treated as [`Overflow::Error`].
    ///
    /// # Errors
    ///
    /// As [`try_publish`](Topic::try_publish).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{SubscribeOptions, Topic};
    ///
    /// let topic = Topic::new();
    /// let _slow = topic.subscribe_with(SubscribeOptions::new().capacity(1));
    /// topic.publish(1).unwrap();
    /// let err = topic.publish_timeout(2, Duration::from_millis(5)).unwrap_err();
    /// assert_eq!(err.report().unwrap().full, 1);
    /// ```
    pub fn publish_timeout(
        &self,
        msg: impl Into<Message<T>>,
        timeout: Duration,
    ) -> Result<PublishReport, PublishError<T>> {
        self.publish_deadline(msg, deadline_after(timeout))
    }

    /// Publishes a message, waiting until `deadline` at most for room in blocking subscriptions.
    ///
    /// # Errors
    ///
    /// As [`try_publish`](Topic::try_publish).
    pub fn publish_deadline(
        &self,
        msg: impl Into<Message<T>>,
        deadline: Instant,
    ) -> Result<PublishReport, PublishError<T>> {
        self.shared.publish(msg.into(), Wait::Until(deadline))
    }

    /// A publish within a fan-out already under way (a chained topic's), leaving the copies it
    /// could not deliver in `later`, to drop when that fan-out is over.
    pub(crate) fn publish_into(
        &self,
        msg: Message<T>,
        wait: Wait,
        later: &mut Vec<Message<T>>,
    ) -> Result<PublishReport, PublishError<T>> {
        self.shared.publish_into(msg, wait, later)
    }

    /// A publish that is the whole fan-out (an endpoint's own delivery), with any wait.
    pub(crate) fn publish_wait(
        &self,
        msg: Message<T>,
        wait: Wait,
    ) -> Result<PublishReport, PublishError<T>> {
        self.shared.publish(msg, wait)
    }
}

impl<T> Topic<T> {
    // ----- subscribing ------------------------------------------------------------------------

    /// Subscribes with the default options (a buffer of
    /// [`DEFAULT_CAPACITY`](SubscribeOptions::DEFAULT_CAPACITY), [`Overflow::Block`]).
    ///
    /// The subscription receives the messages published after this call returns, in publish
    /// order. Dropping it unsubscribes. On a closed topic it is closed from the start.
    ///
    /// The default is lossless: once the buffer is full, [`publish`](Topic::publish) waits for
    /// this subscriber (unlike tokio's broadcast, which overwrites and reports a lag). A
    /// subscription kept but never read therefore stalls every publisher; read it, drop it, or
    /// choose [`Overflow::DropOldest`] or [`Overflow::DropNewest`] with
    /// [`subscribe_with`](Topic::subscribe_with), or publish with
    /// [`publish_timeout`](Topic::publish_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::Topic;
    ///
    /// let topic = Topic::new();
    /// topic.publish("before").unwrap();
    /// let sub = topic.subscribe();
    /// topic.publish("after").unwrap();
    /// assert_eq!(sub.try_recv().unwrap().into_payload(), "after");
    /// assert!(sub.try_recv().is_err());
    /// ```
    pub fn subscribe(&self) -> Subscription<T> {
        self.subscribe_with(SubscribeOptions::new())
    }

    /// Subscribes with a capacity and overflow policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Overflow, SubscribeOptions, Topic};
    ///
    /// let topic = Topic::new();
    /// let sub = topic.subscribe_with(SubscribeOptions::new().capacity(1).overflow(Overflow::DropNewest));
    /// topic.publish(1).unwrap();
    /// topic.publish(2).unwrap();
    /// assert_eq!(sub.recv().unwrap().into_payload(), 1);
    /// assert_eq!(sub.dropped(), 1);
    /// ```
    pub fn subscribe_with(&self, options: SubscribeOptions) -> Subscription<T> {
        self.subscribe_inner(None, options)
    }

    /// Subscribes to the messages that `filter` matches (the Message Filter pattern): the topic
    /// looks up matching subscriptions in an index, so thousands of filtered subscriptions do not
    /// cost thousands of checks per publish. Messages filtered out are counted in the
    /// [`PublishReport`] and [`TopicStats`], not delivered.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Filter, Message, Topic};
    ///
    /// let orders: Topic<i32> = Topic::new();
    /// let eu = orders.subscribe_filtered(Filter::from_json(r#"{"region": ["eu"]}"#).unwrap());
    /// let report = orders.publish(Message::new(1).with_attr("region", "us")).unwrap();
    /// assert_eq!((report.delivered, report.filtered_out), (0, 1));
    /// orders.publish(Message::new(2).with_attr("region", "eu")).unwrap();
    /// assert_eq!(eu.recv().unwrap().into_payload(), 2);
    /// ```
    pub fn subscribe_filtered(&self, filter: Filter<T>) -> Subscription<T> {
        self.subscribe_inner(Some(filter), SubscribeOptions::new())
    }

    /// Subscribes with a filter, a capacity and an overflow policy.
    pub fn subscribe_filtered_with(
        &self,
        filter: Filter<T>,
        options: SubscribeOptions,
    ) -> Subscription<T> {
        self.subscribe_inner(Some(filter), options)
    }

    pub(crate) fn subscribe_inner(
        &self,
        filter: Option<Filter<T>>,
        options: SubscribeOptions,
    ) -> Subscription<T> {
        let (sink, rx) = core::channel(&options);
        let counters = Arc::new(SubCounters::default());
        let key = self.shared.add(filter, |key| Sub {
            key,
            overflow: options.overflow,
            capacity: options.capacity,
            sink,
            counters: Arc::clone(&counters),
            filtered: false,
        });
        Subscription::new(
            rx,
            key,
            options,
            counters,
            self.shared.clock.clone(),
            Arc::downgrade(&self.shared),
        )
    }

    /// Chains a queue to the topic (topic-queue chaining, SNS to SQS): every message published
    /// from now on is sent into `queue`, which keeps all its semantics (leases, dead letters,
    /// competing consumers). The publisher waits for room in a full bounded queue
    /// ([`Overflow::Block`]).
    ///
    /// The chain lasts until [`unsubscribe`](Topic::unsubscribe) or [`close`](Topic::close); the
    /// topic holds a handle to the queue meanwhile. Closing the topic does not close the queue.
    /// Closing the queue does not end the chain, and does not make publishes fail (the other
    /// subscribers took the message): each later publish counts the queue's copy in
    /// [`PublishReport::closed`](crate::PublishReport::closed) and in the subscription's
    /// [`dropped`](crate::SubscriptionStats::dropped), whatever the overflow policy (which is
    /// about a full queue). Unsubscribe a queue that is closed for good.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Queue, Topic};
    ///
    /// let topic = Topic::new();
    /// let billing = Queue::unbounded();
    /// let id = topic.subscribe_queue(&billing);
    /// topic.publish("order-1").unwrap();
    /// let d = billing.receive().unwrap(); // a leased receive, as from any queue
    /// assert_eq!(*d.payload(), "order-1");
    /// d.ack().unwrap();
    /// assert!(topic.unsubscribe(id));
    /// ```
    pub fn subscribe_queue(&self, queue: &Queue<T>) -> SubscriptionId {
        self.subscribe_endpoint_with(queue.clone(), Overflow::Block)
    }

    /// Chains a queue with an overflow policy for when it is full: `Block` waits, `DropNewest`
    /// (and `DropOldest`, since a topic cannot take messages back out of a queue) drops the new
    /// message, `Error` hands it back to the publisher. Every drop is counted.
    pub fn subscribe_queue_with(&self, queue: &Queue<T>, overflow: Overflow) -> SubscriptionId {
        self.subscribe_endpoint_with(queue.clone(), overflow)
    }

    /// Chains any [`Endpoint`] (a queue, another topic, a closure), with [`Overflow::Block`].
    ///
    /// Chains may form a loop (a topic into itself, two topics into each other, a list that
    /// leads back): a message that comes back to a topic or list still delivering it is refused
    /// there, counted as rejected on the subscription that led back, and every other subscriber
    /// gets it once. The chain holds its endpoint as a handle, so topics chained in a loop keep
    /// each other alive until one unsubscribes or closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use switchboard::{Endpoint, Topic};
    ///
    /// let audit = Arc::new(Mutex::new(Vec::new()));
    /// let topic = Topic::new();
    /// let log = Arc::clone(&audit);
    /// topic.subscribe_endpoint(Endpoint::from_fn(move |m: switchboard::Message<u32>| {
    ///     log.lock().unwrap().push(*m.payload());
    ///     Ok(())
    /// }));
    /// topic.publish(42).unwrap();
    /// assert_eq!(*audit.lock().unwrap(), [42]);
    /// ```
    pub fn subscribe_endpoint(&self, endpoint: impl Into<Endpoint<T>>) -> SubscriptionId {
        self.subscribe_endpoint_with(endpoint, Overflow::Block)
    }

    /// Chains any [`Endpoint`] with an overflow policy, as
    /// [`subscribe_queue_with`](Topic::subscribe_queue_with).
    pub fn subscribe_endpoint_with(
        &self,
        endpoint: impl Into<Endpoint<T>>,
        overflow: Overflow,
    ) -> SubscriptionId {
        self.subscribe_endpoint_inner(None, endpoint.into(), overflow)
    }

    /// Chains a queue that gets only the messages `filter` matches (SNS's subscription filter
    /// policy on an SQS subscription).
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Filter, Message, Numeric, Queue, Topic};
    ///
    /// let orders: Topic<&str> = Topic::new();
    /// let big = Queue::unbounded();
    /// let large = Filter::builder().numeric("amount", Numeric::ge(1000.0)).build().unwrap();
    /// orders.subscribe_queue_filtered(&big, large);
    /// orders.publish(Message::new("small").with_attr("amount", 5)).unwrap();
    /// orders.publish(Message::new("large").with_attr("amount", 5000)).unwrap();
    /// assert_eq!(big.try_recv().unwrap().into_payload(), "large");
    /// assert!(big.try_recv().is_err());
    /// ```
    pub fn subscribe_queue_filtered(&self, queue: &Queue<T>, filter: Filter<T>) -> SubscriptionId {
        self.subscribe_endpoint_inner(Some(filter), queue.clone().into(), Overflow::Block)
    }

    /// Chains any [`Endpoint`] with a filter and an overflow policy.
    pub fn subscribe_endpoint_filtered(
        &self,
        endpoint: impl Into<Endpoint<T>>,
        filter: Filter<T>,
        overflow: Overflow,
    ) -> SubscriptionId {
        self.subscribe_endpoint_inner(Some(filter), endpoint.into(), overflow)
    }

    fn subscribe_endpoint_inner(
        &self,
        filter: Option<Filter<T>>,
        endpoint: Endpoint<T>,
        overflow: Overflow,
    ) -> SubscriptionId {
        let key = self.shared.add(filter, |key| Sub {
            key,
            overflow,
            capacity: None,
            sink: Sink::Endpoint(endpoint),
            counters: Arc::new(SubCounters::default()),
            filtered: false,
        });
        SubscriptionId(key)
    }

    /// Changes a live subscription's filter (`None` removes it: the subscription gets every
    /// message again). It applies from the next publish; publishes under way finish with the old
    /// one. Returns whether the subscription exists.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Filter, Message, Topic};
    ///
    /// let topic: Topic<i32> = Topic::new();
    /// let sub = topic.subscribe_filtered(Filter::builder().eq("k", "a").build().unwrap());
    /// topic.publish(Message::new(1).with_attr("k", "b")).unwrap();
    /// assert!(topic.set_filter(sub.id(), Some(Filter::builder().eq("k", "b").build().unwrap())));
    /// topic.publish(Message::new(2).with_attr("k", "b")).unwrap();
    /// assert_eq!(sub.try_recv().unwrap().into_payload(), 2);
    /// ```
    pub fn set_filter(&self, id: SubscriptionId, filter: Option<Filter<T>>) -> bool {
        self.shared.set_filter(id.0, filter)
    }

    /// Removes a subscription (a chained endpoint, or a [`Subscription`], which then sees
    /// `Closed` once drained and the publishes under way have ended: see
    /// [`Subscription::is_closed`]). Returns whether it was subscribed.
    ///
    /// Publishes that start after it returns never reach the subscription. A publish already
    /// under way on another thread may still deliver its message to it (a chained queue can
    /// get that one message after `unsubscribe` returned): publishers take no lock, so this
    /// does not wait for them. Nor does it release them: a publish waiting for room in this
    /// subscription (an [`Overflow::Block`](crate::Overflow::Block) one that is full) goes on
    /// waiting until the subscriber reads or drops its [`Subscription`] (a chained queue: until
    /// it has room or closes), as a publish under way is never cut short.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Queue, Topic};
    ///
    /// let topic = Topic::new();
    /// let q = Queue::unbounded();
    /// let id = topic.subscribe_queue(&q);
    /// assert!(topic.unsubscribe(id));
    /// assert!(!topic.unsubscribe(id));
    /// topic.publish(1).unwrap();
    /// assert!(q.is_empty());
    /// ```
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.shared.unsubscribe(id.0)
    }

    // ----- lifecycle and introspection --------------------------------------------------------

    /// Closes the topic: later publishes fail and hand their message back; subscriptions receive
    /// what they hold (including the messages of publishes under way), then get `Closed`.
    /// Chained endpoints are let go of, not closed. Returns whether this call closed it.
    ///
    /// Unlike [`Queue::close`](crate::Queue::close), it does not wake a publish waiting for
    /// room in a full [`Overflow::Block`](crate::Overflow::Block) subscription: that publish
    /// was under way, and its message still goes in once the subscriber reads (so a subscriber
    /// reads until `recv` says `Closed`, not until `is_closed`), or is counted nowhere if the
    /// subscriber drops its [`Subscription`]. Until it ends, the other subscriptions too see
    /// `Closed` only once it has (see [`Subscription::is_closed`]). A publisher that must not
    /// wait for a stalled subscriber bounds its wait ([`publish_timeout`](Topic::publish_timeout)).
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::Topic;
    ///
    /// let topic = Topic::new();
    /// let sub = topic.subscribe();
    /// topic.publish(1).unwrap();
    /// assert!(topic.close());
    /// assert!(!topic.close());
    /// assert!(topic.publish(2).unwrap_err().is_closed());
    /// assert_eq!(sub.recv().unwrap().into_payload(), 1); // drained after close
    /// assert!(sub.recv().is_err());
    /// ```
    pub fn close(&self) -> bool {
        self.shared.close()
    }

    /// Whether the topic is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Whether `self` and `other` are handles to the same topic.
    ///
    /// ```
    /// use switchboard::Topic;
    ///
    /// let topic: Topic<u32> = Topic::new();
    /// assert!(topic.same_topic(&topic.clone()));
    /// assert!(!topic.same_topic(&Topic::new()));
    /// ```
    pub fn same_topic(&self, other: &Topic<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The number of current subscriptions (channel and chained).
    pub fn subscriber_count(&self) -> usize {
        self.shared.subscriber_count()
    }

    /// The topic's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// Counters: see [`TopicStats`].
    pub fn stats(&self) -> TopicStats {
        self.shared.stats()
    }

    /// Counters of one current subscription (`None` once it is gone).
    ///
    /// ```
    /// use switchboard::{Overflow, Queue, Topic};
    ///
    /// let topic = Topic::new();
    /// let q = Queue::bounded(1);
    /// let id = topic.subscribe_queue_with(&q, Overflow::DropNewest);
    /// topic.publish(1).unwrap();
    /// topic.publish(2).unwrap();
    /// assert_eq!(topic.subscription_stats(id).unwrap().dropped, 1);
    /// ```
    pub fn subscription_stats(&self, id: SubscriptionId) -> Option<SubscriptionStats> {
        self.shared.subscription_stats(id)
    }
}

impl<T> Default for Topic<T> {
    fn default() -> Self {
        Topic::new()
    }
}

impl<T> Clone for Topic<T> {
    /// Another handle to the same topic.
    fn clone(&self) -> Self {
        Topic {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for Topic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.name())
            .field("subscribers", &self.subscriber_count())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Topic`] with a validator, a name or a clock.
///
/// The validator is the topic's contract (the idea of the Hedwig framework): it runs on every
/// publish before any subscriber sees the message, and a refusal fails the publish with
/// [`PublishError::Rejected`], handing the message back with the reason.
///
/// ```
/// use switchboard::{Message, Topic};
///
/// let topic: Topic<&str> = Topic::builder()
///     .name("orders")
///     .validate(|m: &Message<&str>| match m.attr("region") {
///         Some(_) => Ok(()),
///         None => Err("missing attribute: region"),
///     })
///     .build();
/// let sub = topic.subscribe();
/// let err = topic.publish("no region").unwrap_err();
/// assert_eq!(err.reason(), Some("missing attribute: region"));
/// assert_eq!(err.into_inner().into_payload(), "no region");
/// topic.publish(Message::new("ok").with_attr("region", "eu")).unwrap();
/// assert_eq!(sub.try_recv().unwrap().into_payload(), "ok"); // only the valid one
/// assert!(sub.try_recv().is_err());
/// ```
///
/// It does nothing until it is finished, so the compiler warns about one left unfinished:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// switchboard::Topic::<u32>::builder().name("orders"); // error: unused `TopicBuilder`
/// ```
#[must_use = "a TopicBuilder makes no topic until build()"]
pub struct TopicBuilder<T> {
    validator: Option<Arc<Validator<T>>>,
    name: Option<String>,
    clock: Clock,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for TopicBuilder<T> {
    /// Another builder with the same settings (sharing the validator): each `build` makes its
    /// own topic.
    fn clone(&self) -> Self {
        TopicBuilder {
            validator: self.validator.clone(),
            name: self.name.clone(),
            clock: self.clock.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> TopicBuilder<T> {
    /// The defaults: no validator, no name, the real clock.
    pub fn new() -> TopicBuilder<T> {
        TopicBuilder {
            validator: None,
            name: None,
            clock: Clock::real(),
            _t: PhantomData,
        }
    }

    /// Checks every published message with `check` before any subscriber sees it; an `Err`
    /// refuses the message, with the error as the reason. A later call replaces the validator.
    pub fn validate<F, E>(mut self, check: F) -> Self
    where
        F: Fn(&Message<T>) -> Result<(), E> + Send + Sync + 'static,
        E: Into<String>,
    {
        self.validator = Some(Arc::new(move |m| check(m).map_err(Into::into)));
        self
    }

    /// Names the topic.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The clock that stamps published messages (see [`Clock`]).
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Builds the topic.
    pub fn build(self) -> Topic<T> {
        Topic {
            shared: Arc::new(Shared::new(self.validator, self.clock, self.name)),
        }
    }
}

impl<T> Default for TopicBuilder<T> {
    fn default() -> Self {
        TopicBuilder::new()
    }
}

impl<T> fmt::Debug for TopicBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicBuilder")
            .field("name", &self.name)
            .field("validator", &self.validator.is_some())
            .field("clock", &self.clock)
            .finish()
    }
}
