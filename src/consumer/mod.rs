//! Consumers: handler-driven worker pools on a queue, the in-process "function triggered by a
//! queue".
//!
//! [`Queue::consume`](crate::Queue::consume) (or the [`Consumer`] builder) starts worker threads
//! that lease messages and run a handler on each with the queue's at-least-once semantics. These
//! are the only threads the library starts, and only because the caller asked for them: `workers`
//! threads, plus one supervisor per pool that keeps leases alive and enforces the shutdown
//! deadline.
//!
//! ```
//! use switchboard::Queue;
//!
//! let queue: Queue<&str> = Queue::unbounded();
//! let pool = queue.consume(4, |msg| {
//!     if msg.payload().is_empty() {
//!         return Err("empty job");
//!     }
//!     Ok(())
//! });
//! queue.send_batch(["resize a.png", "resize b.png"]).unwrap();
//! queue.close();
//! let stats = pool.join(); // the workers end once the queue is closed and drained
//! assert_eq!(stats.processed, 2);
//! ```
//!
//! # Outcomes
//!
//! - `Ok(())`: the message is acked.
//! - `Err(e)`: a failed attempt. The message is nacked with the [`RetryPolicy`]'s delay for that
//!   attempt ([`Delivery::nack_after`](crate::Delivery::nack_after), so the delay runs on the
//!   queue's clock). On the queue's last attempt ([`max_attempts`](crate::Queue::max_attempts)) it
//!   is rejected instead: it goes to the dead-letter queue with `e.to_string()` as the reason, or,
//!   without one, is discarded and counted by the queue. Without a maximum, it is retried forever.
//! - `Err(Failure::reject(reason))`: a poison message no retry will fix, rejected at once
//!   whatever attempts it has left (see [`Failure`]; any other error converts into a retried one).
//! - A panic: caught, and a failed attempt like `Err`, with reason `"panicked: <message>"`. The
//!   worker carries on with the next message. (The panic hook still runs: it prints the panic
//!   unless the program replaced it.)
//!
//! ```
//! use std::time::Duration;
//! use switchboard::{ManualClock, Queue, RetryPolicy};
//!
//! let clock = ManualClock::new();
//! let dlq = Queue::unbounded();
//! let queue = Queue::builder().clock(clock.clone()).dead_letter(&dlq, 2).build();
//! let pool = switchboard::Consumer::new(&queue)
//!     .retry(RetryPolicy::fixed(Duration::from_secs(10)))
//!     .start(|_msg| Err("the disk is full"));
//! queue.send("job").unwrap();
//! while pool.stats().retried == 0 {
//!     std::thread::yield_now(); // first attempt failed: retry in 10 s on the queue's clock
//! }
//! clock.advance(Duration::from_secs(10));
//! let dead = dlq.recv_timeout(Duration::from_secs(10)).unwrap(); // second and last attempt
//! assert_eq!(dead.dead_letter().unwrap().reason(), "the disk is full");
//! assert_eq!(dead.dead_letter().unwrap().attempts(), 2);
//! ```
//!
//! # Flow
//!
//! A handler gets the message; one started with
//! [`start_with_delivery`](Consumer::start_with_delivery) gets the whole delivery (the attempt
//! number, for one). Each worker holds one message (or one batch, with
//! [`consume_batch`](crate::Queue::consume_batch)) at a time;
//! [`max_in_flight`](Consumer::max_in_flight) caps the messages the whole pool holds at once.
//! Idle workers wait in a leased receive that wakes within a few milliseconds of a shutdown
//! (within 100 ms when another receiver of the same queue, another pool say, took the wake-up).
//!
//! # Heartbeat
//!
//! A handler slower than the visibility timeout keeps its lease: the supervisor extends every
//! lease with less than half the visibility timeout left (plus one tick of the queue's clock,
//! which moves in ticks of a few milliseconds), by the visibility timeout, up to
//! [`max_lease`](Consumer::max_lease) after the message was received. Past that, the lease
//! expires, the message goes to another receiver, and the slow handler's verdict changes nothing
//! (counted in [`ConsumerStats::lease_lost`]). A visibility timeout of one clock tick or less
//! (4 ms on a typical Linux) is too short to keep: such a lease can end at the next tick. Up to
//! a few ticks, a heartbeat held up for a tick (a busy machine) can still miss its chance: give
//! handlers that may be slow a visibility timeout of tens of milliseconds at least.
//!
//! # Shutdown
//!
//! [`shutdown`](ConsumerHandle::shutdown) stops the intake and waits for the running handlers,
//! up to a deadline. At the deadline, the messages of handlers still running go back to the queue
//! unacked (their leases are released) and those handlers' verdicts later change nothing.
//! A released lease spends its attempt, as an expired one does: a message on its last attempt
//! goes to the dead-letter queue, or, on a queue that limits attempts without one, is discarded
//! (counted in the queue's [`discarded`](crate::QueueStats::discarded)), as the queue's own rules
//! say. Nothing is lost otherwise: every message the pool took was acked, is back in the queue,
//! or is in the dead-letter queue. Dropping the handle starts the same shutdown without waiting
//! for it.
//!
//! ```
//! use switchboard::Queue;
//!
//! let queue = Queue::unbounded();
//! queue.send_batch(0..1000).unwrap();
//! let pool = queue.consume(2, |_| Ok::<(), String>(()));
//! pool.shutdown(); // while the pool works: some messages done, the rest still queued
//! let s = queue.stats();
//! assert_eq!(s.in_flight, 0);
//! assert_eq!(s.acked as usize + queue.len(), 1000);
//! ```
//!
//! # Topic subscriptions
//!
//! A pool consumes a queue, not a [`Subscription`](crate::Subscription): a subscription's receive
//! is at-most-once, so a handler that failed or panicked there would lose its message, with
//! nothing to retry or dead-letter. To run handlers on a topic's messages, chain a queue to the
//! topic and consume the queue (SNS to SQS to a function): the queue brings leases, retries and
//! the dead-letter queue.
//!
//! ```
//! use switchboard::{Queue, Topic};
//!
//! let orders: Topic<u32> = Topic::new();
//! let billing: Queue<u32> = Queue::unbounded();
//! orders.subscribe_queue(&billing);
//! let pool = billing.consume(2, |m| if *m.payload() > 0 { Ok(()) } else { Err("empty order") });
//! for n in 1..=10 {
//!     orders.publish(n).unwrap();
//! }
//! billing.close();
//! assert_eq!(pool.join().processed, 10);
//! ```

mod builder;
mod failure;
mod handle;
mod pool;
mod retry;

pub use self::builder::Consumer;
pub use self::failure::Failure;
pub use self::handle::{ConsumerHandle, ConsumerStats, ShutdownReport};
pub use self::retry::{Jitter, RetryPolicy};
