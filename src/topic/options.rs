//! Subscription options: capacity and the overflow policy.

/// What a publish does when a subscription's buffer is full.
///
/// Every message a policy drops is counted, on the subscription
/// ([`Subscription::dropped`](crate::Subscription::dropped)) and in the
/// [`PublishReport`](crate::PublishReport): nothing is lost silently.
///
/// ```
/// use switchboard::{Overflow, SubscribeOptions, Topic};
///
/// let topic = Topic::new();
/// let latest = topic.subscribe_with(SubscribeOptions::new().capacity(2).overflow(Overflow::DropOldest));
/// for i in 0..5 {
///     topic.publish(i).unwrap();
/// }
/// assert_eq!(latest.dropped(), 3);
/// let kept: Vec<i32> = latest.try_iter().map(|m| m.into_payload()).collect();
/// assert_eq!(kept, [3, 4]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// The publisher waits for room (lossless back-pressure; the default). A publish that may
    /// not wait ([`try_publish`](crate::Topic::try_publish)) or whose time runs out fails for this
    /// subscription, which counts it as dropped, and hands the message back in
    /// [`PublishError::Full`](crate::PublishError::Full).
    #[default]
    Block,
    /// The oldest buffered message is dropped to make room (a "latest values" subscriber).
    DropOldest,
    /// The new message is dropped for this subscription.
    DropNewest,
    /// The new message is not delivered to this subscription and the publisher is told: the
    /// publish still reaches every other subscriber, then fails with
    /// [`PublishError::Full`](crate::PublishError::Full), handing the message back.
    Error,
}

/// Options of a subscription: buffer capacity and [`Overflow`] policy.
///
/// The default is a buffer of [`SubscribeOptions::DEFAULT_CAPACITY`] messages with
/// [`Overflow::Block`]: lossless, and a subscriber that stops reading holds publishers up once
/// its buffer is full. Pick [`Overflow::DropOldest`] for a best-effort subscriber, or
/// [`unbounded`](SubscribeOptions::unbounded) to never hold publishers up (at the price of
/// memory).
///
/// ```
/// use switchboard::{Overflow, SubscribeOptions};
///
/// let opts = SubscribeOptions::new().capacity(64).overflow(Overflow::DropNewest);
/// assert_eq!(opts.get_capacity(), Some(64));
/// assert_eq!(opts.get_overflow(), Overflow::DropNewest);
/// assert_eq!(SubscribeOptions::default().get_overflow(), Overflow::Block);
/// assert_eq!(SubscribeOptions::new().unbounded().get_capacity(), None);
/// ```
///
/// The options are `Copy`: a setter returns the changed options and leaves the original as it
/// was, so a setter written as a statement is an error under `deny(unused_must_use)`:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let opts = switchboard::SubscribeOptions::new();
/// opts.capacity(4); // error: unused `SubscribeOptions`
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "options are `Copy`: a setter returns the changed options and leaves these as they were"]
pub struct SubscribeOptions {
    pub(crate) capacity: Option<usize>,
    pub(crate) overflow: Overflow,
}

impl SubscribeOptions {
    /// The buffer capacity of a subscription made with default options.
    ///
    /// Its slots are allocated when the subscription is made (see
    /// [`capacity`](Self::capacity)): a slot is a [`Message<T>`](crate::Message) and a word,
    /// 40 bytes for a payload of 8, so about 40 KiB a subscription. A topic with thousands of
    /// subscriptions (filtered ones, say, each wanting a trickle) does better with a smaller
    /// capacity each: 10,000 subscriptions of capacity 16 hold about 6 MiB of slots, of 1,024
    /// about 400 MiB.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// The defaults: [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) messages, [`Overflow::Block`].
    pub const fn new() -> SubscribeOptions {
        SubscribeOptions {
            capacity: Some(Self::DEFAULT_CAPACITY),
            overflow: Overflow::Block,
        }
    }

    /// Buffers at most `capacity` messages.
    ///
    /// Up to 65,536 the buffer's slots are allocated when the subscription is made, as a bounded
    /// crossbeam channel's are. A larger capacity, up to `usize::MAX`, is counted instead: the
    /// buffer grows as it fills, publishers racing at the bound may each put one message past
    /// it, and a `Block` publisher waiting for room looks again every millisecond.
    ///
    /// A capacity of 0 is taken as 1, as a FIFO queue's is: a subscription buffers at least one
    /// message.
    ///
    /// ```
    /// use switchboard::{Overflow, SubscribeOptions, Topic};
    ///
    /// let topic = Topic::new();
    /// let options = SubscribeOptions::new().capacity(0).overflow(Overflow::DropNewest);
    /// let sub = topic.subscribe_with(options);
    /// topic.publish(1).unwrap();
    /// assert_eq!(topic.publish(2).unwrap().dropped(), 1);
    /// assert_eq!(sub.recv().unwrap().into_payload(), 1);
    /// ```
    pub fn capacity(mut self, capacity: usize) -> SubscribeOptions {
        // Was a panic; bad input is never one (a panic in a builder is a crash at run time for
        // a capacity read from configuration).
        self.capacity = Some(capacity.max(1));
        self
    }

    /// No bound on the buffer: publishers never wait for this subscription and it never drops.
    pub fn unbounded(mut self) -> SubscribeOptions {
        self.capacity = None;
        self
    }

    /// What a publish does when the buffer is full.
    pub fn overflow(mut self, overflow: Overflow) -> SubscribeOptions {
        self.overflow = overflow;
        self
    }

    /// The capacity (`None`: unbounded).
    pub fn get_capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// The overflow policy.
    pub fn get_overflow(&self) -> Overflow {
        self.overflow
    }
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions::new()
    }
}
