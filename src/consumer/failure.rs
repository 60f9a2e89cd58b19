//! What a handler's failure asks of the pool: a retry, or none.

use std::fmt::Display;

/// A failed attempt, as a pool handler returns it: retried after the
/// [`RetryPolicy`](crate::RetryPolicy)'s delay (what any error means), or, made with
/// [`Failure::reject`], rejected at once: a poison message that no retry will fix goes straight
/// to the dead-letter queue (or, without one, is discarded and counted by the queue), as
/// [`Delivery::reject`](crate::Delivery::reject) sends it.
///
/// Any `Display` error converts into a retried `Failure`, so a handler returns its own errors as
/// before and `Failure::reject` only where it knows better:
///
/// ```
/// use switchboard::{Failure, Queue};
///
/// let dlq: Queue<&str> = Queue::unbounded();
/// let queue = Queue::builder().dead_letter(&dlq, 5).build();
/// let pool = queue.consume(1, |m| match m.payload().parse::<u32>() {
///     Ok(_) => Ok(()),
///     Err(e) => Err(Failure::reject(format!("not a number: {e}"))),
/// });
/// queue.send("12").unwrap();
/// queue.send("twelve").unwrap();
/// queue.close();
/// let stats = pool.join();
/// assert_eq!((stats.processed, stats.rejected, stats.retried), (1, 1, 0));
/// let dead = dlq.try_recv().unwrap();
/// assert_eq!(dead.dead_letter().unwrap().attempts(), 1); // one attempt, not five
/// assert!(dead.dead_letter().unwrap().reason().starts_with("not a number"));
/// ```
///
/// `Failure` is deliberately not `Display` itself (its [`reason`](Failure::reason) is), so that
/// every `Display` type can convert into it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Failure {
    pub(crate) reason: String,
    retry: bool,
}

impl Failure {
    /// A failed attempt to retry after the policy's delay (on the queue's last attempt, the
    /// message is dead-lettered with `reason`). The same as converting `reason` with `into()`.
    pub fn retry(reason: impl Display) -> Failure {
        Failure {
            reason: reason.to_string(),
            retry: true,
        }
    }

    /// A failed attempt not to retry: the message is rejected at once, with `reason`, whatever
    /// attempts it has left.
    pub fn reject(reason: impl Display) -> Failure {
        Failure {
            reason: reason.to_string(),
            retry: false,
        }
    }

    /// The reason, as the dead-letter record will carry it.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Whether the pool retries the message (false for [`Failure::reject`]).
    pub fn is_retry(&self) -> bool {
        self.retry
    }
}

impl<E: Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::retry(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_display_error_is_a_retry() {
        let f: Failure = "disk full".into();
        assert_eq!((f.reason(), f.is_retry()), ("disk full", true));
        let f: Failure = std::fmt::Error.into();
        assert!(f.is_retry());
        let f = Failure::reject(42);
        assert_eq!((f.reason(), f.is_retry()), ("42", false));
    }
}
