//! `QueueBuilder`: the options of a queue.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use crate::clock::Clock;
use crate::queue::core::{Config, Shared};
use crate::queue::Queue;

/// Builds a [`Queue`] with options beyond a capacity.
///
/// ```
/// use std::time::Duration;
/// use switchboard::Queue;
///
/// let dlq = Queue::unbounded();
/// let q: Queue<String> = Queue::builder()
///     .name("orders")
///     .capacity(1024)
///     .visibility_timeout(Duration::from_secs(60))
///     .dead_letter(&dlq, 5)
///     .retention(Duration::from_secs(4 * 24 * 3600))
///     .build();
/// assert_eq!(q.capacity(), Some(1024));
/// assert_eq!(q.name(), Some("orders"));
/// ```
pub struct QueueBuilder<T> {
    capacity: Option<usize>,
    visibility: Duration,
    dead_letter: Option<Queue<T>>,
    max_attempts: Option<u32>,
    retention: Option<Duration>,
    dead_letter_expired: bool,
    name: Option<String>,
    clock: Clock,
    _t: PhantomData<fn() -> T>,
}

impl<T: Send + Sync + 'static> QueueBuilder<T> {
    /// The defaults: unbounded, 30-second visibility timeout (SQS's default), no dead-letter queue,
    /// no retention limit, the real clock.
    pub fn new() -> Self {
        QueueBuilder {
            capacity: None,
            visibility: Duration::from_secs(30),
            dead_letter: None,
            max_attempts: None,
            retention: None,
            dead_letter_expired: false,
            name: None,
            clock: Clock::real(),
            _t: PhantomData,
        }
    }

    /// Bounds the queue to `capacity` fresh messages (see "Capacity" in the module docs).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// No bound (the default).
    pub fn unbounded(mut self) -> Self {
        self.capacity = None;
        self
    }

    /// How long a lease lasts unless extended (default 30 s).
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility = timeout;
        self
    }

    /// Sends messages that fail their `max_attempts`-th delivery, and rejected messages, to `dlq`.
    /// A `max_attempts` of 0 is taken as 1.
    pub fn dead_letter(mut self, dlq: &Queue<T>, max_attempts: u32) -> Self {
        self.dead_letter = Some(dlq.clone());
        self.max_attempts = Some(max_attempts.max(1));
        self
    }

    /// Limits deliveries without a dead-letter queue: a message whose `max_attempts`-th delivery
    /// fails is discarded and counted in [`QueueStats::discarded`](crate::QueueStats).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts.max(1));
        self
    }

    /// Messages older than `retention` (since they entered the queue) expire.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Dead-letters expired messages (reason "expired") instead of only counting them. Needs a
    /// dead-letter queue.
    pub fn dead_letter_expired(mut self, yes: bool) -> Self {
        self.dead_letter_expired = yes;
        self
    }

    /// A name, shown in Debug output and in dead-letter records.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The clock (default: real). A [`ManualClock`](crate::ManualClock) lets tests move time.
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Builds the queue.
    pub fn build(self) -> Queue<T> {
        Queue {
            shared: Shared::new(Config {
                capacity: self.capacity,
                visibility: self.visibility,
                dead_letter: self.dead_letter,
                max_attempts: self.max_attempts,
                retention: self.retention,
                dead_letter_expired: self.dead_letter_expired,
                name: self.name,
                clock: self.clock,
            }),
        }
    }
}

impl<T: Send + Sync + 'static> Default for QueueBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for QueueBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("capacity", &self.capacity)
            .field("visibility", &self.visibility)
            .field("max_attempts", &self.max_attempts)
            .field("retention", &self.retention)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
