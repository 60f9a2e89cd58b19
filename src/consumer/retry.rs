//! `RetryPolicy`: how long a failed message waits before its next attempt.

use std::fmt;
use std::time::Duration;

/// How long a message whose handler failed waits before it is delivered again.
///
/// A consumer nacks a failed message with [`Delivery::nack_after`](crate::Delivery::nack_after)
/// and the policy's delay for the attempt that failed, so the delay runs on the queue's clock (a
/// [`ManualClock`](crate::ManualClock) test can check it exactly). The policy never decides
/// *whether* to retry: the queue's [`max_attempts`](crate::Queue::max_attempts) does.
///
/// - [`immediate`](RetryPolicy::immediate): back at once.
/// - [`fixed`](RetryPolicy::fixed): the same delay every time.
/// - [`exponential`](RetryPolicy::exponential): `initial`, then multiplied by a
///   [`factor`](RetryPolicy::factor) (default 2) per failed attempt, up to a cap, with optional
///   [`Jitter`].
/// - [`schedule`](RetryPolicy::schedule): an explicit list of delays, the last one repeating.
///
/// ```
/// use std::time::Duration;
/// use switchboard::RetryPolicy;
///
/// let ms = Duration::from_millis;
/// let p = RetryPolicy::exponential(ms(100), ms(1000));
/// let delays: Vec<_> = (1..=6).map(|attempt| p.delay(attempt)).collect();
/// assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
///
/// let s = RetryPolicy::schedule([ms(10), ms(50)]);
/// assert_eq!((s.delay(1), s.delay(2), s.delay(9)), (ms(10), ms(50), ms(50)));
/// ```
#[derive(Clone, PartialEq)]
pub struct RetryPolicy {
    kind: Kind,
    jitter: Jitter,
}

#[derive(Clone, PartialEq)]
enum Kind {
    Fixed(Duration),
    Exponential {
        initial: Duration,
        cap: Duration,
        factor: f64,
    },
    Schedule(Vec<Duration>),
}

/// Randomness added to a retry delay, so that messages that failed together do not all come back
/// together (the names of the AWS Architecture Blog's "Exponential Backoff And Jitter").
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Jitter, RetryPolicy};
///
/// let p = RetryPolicy::fixed(Duration::from_secs(1)).jitter(Jitter::Full);
/// assert_eq!(p.delay(1), Duration::from_secs(1)); // `delay` is the delay before jitter
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Jitter {
    /// The delay as computed (the default).
    #[default]
    None,
    /// A uniformly random delay between zero and the computed delay.
    Full,
    /// Half the computed delay, plus a uniformly random part of the other half.
    Equal,
}

impl RetryPolicy {
    /// Failed messages go back to the queue at once.
    pub fn immediate() -> RetryPolicy {
        RetryPolicy::fixed(Duration::ZERO)
    }

    /// Failed messages wait `delay` before their next attempt.
    pub fn fixed(delay: Duration) -> RetryPolicy {
        RetryPolicy {
            kind: Kind::Fixed(delay),
            jitter: Jitter::None,
        }
    }

    /// The first retry waits `initial`; each later one waits [`factor`](RetryPolicy::factor)
    /// times longer (2 by default), never more than `cap`.
    pub fn exponential(initial: Duration, cap: Duration) -> RetryPolicy {
        RetryPolicy {
            kind: Kind::Exponential {
                initial,
                cap,
                factor: 2.0,
            },
            jitter: Jitter::None,
        }
    }

    /// An explicit schedule: the retry after the `n`-th failed attempt waits `delays[n - 1]`; once
    /// the schedule runs out, its last delay repeats. An empty schedule retries at once.
    pub fn schedule(delays: impl IntoIterator<Item = Duration>) -> RetryPolicy {
        RetryPolicy {
            kind: Kind::Schedule(delays.into_iter().collect()),
            jitter: Jitter::None,
        }
    }

    /// The growth factor of an exponential policy (default 2; values below 1 are taken as 1). No
    /// effect on other policies.
    pub fn factor(mut self, factor: f64) -> RetryPolicy {
        if let Kind::Exponential { factor: f, .. } = &mut self.kind {
            *f = if factor.is_nan() {
                1.0
            } else {
                factor.max(1.0)
            };
        }
        self
    }

    /// Adds randomness to every delay (default [`Jitter::None`]).
    pub fn jitter(mut self, jitter: Jitter) -> RetryPolicy {
        self.jitter = jitter;
        self
    }

    /// The delay before the retry that follows failed attempt number `attempt` (1 for the first
    /// delivery), before any jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let n = attempt.max(1);
        match &self.kind {
            Kind::Fixed(d) => *d,
            Kind::Exponential {
                initial,
                cap,
                factor,
            } => {
                // Nothing times any factor is nothing (and zero times an overflowing factor is
                // NaN, not the cap).
                if initial.is_zero() {
                    return Duration::ZERO;
                }
                let scale = factor.powi(i32::try_from(n - 1).unwrap_or(i32::MAX));
                let secs = initial.as_secs_f64() * scale;
                if !secs.is_finite() || secs >= cap.as_secs_f64() {
                    *cap
                } else {
                    Duration::from_secs_f64(secs).min(*cap)
                }
            }
            Kind::Schedule(delays) => {
                let i = (n as usize - 1).min(delays.len().saturating_sub(1));
                delays.get(i).copied().unwrap_or(Duration::ZERO)
            }
        }
    }

    /// The delay with jitter applied, drawing from `rng`.
    pub(crate) fn delay_with(&self, attempt: u32, rng: &mut XorShift) -> Duration {
        let d = self.delay(attempt);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        match self.jitter {
            Jitter::None => d,
            Jitter::Full => Duration::from_nanos(rng.below(nanos.saturating_add(1))),
            Jitter::Equal => {
                let half = nanos / 2;
                Duration::from_nanos(half + rng.below(nanos - half + 1))
            }
        }
    }
}

impl Default for RetryPolicy {
    /// Exponential from 100 ms, doubling, capped at 60 s, without jitter.
    fn default() -> RetryPolicy {
        RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(60))
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Fixed(d) => write!(f, "RetryPolicy::Fixed({d:?}")?,
            Kind::Exponential {
                initial,
                cap,
                factor,
            } => write!(
                f,
                "RetryPolicy::Exponential({initial:?} x{factor} up to {cap:?}"
            )?,
            Kind::Schedule(d) => write!(f, "RetryPolicy::Schedule({d:?}")?,
        }
        write!(f, ", jitter: {:?})", self.jitter)
    }
}

/// A small xorshift64* generator: enough to spread retry delays, no dependency needed.
#[derive(Clone, Debug)]
pub(crate) struct XorShift(u64);

impl XorShift {
    /// A generator seeded from `seed` mixed with the process's random hasher keys.
    pub(crate) fn seeded(seed: u64) -> XorShift {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(seed);
        XorShift(h.finish() | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: bias at most n / 2^64, irrelevant for delays.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        let mut rng = XorShift::seeded(7);
        let d = Duration::from_millis(100);
        let full = RetryPolicy::fixed(d).jitter(Jitter::Full);
        let equal = RetryPolicy::fixed(d).jitter(Jitter::Equal);
        let mut seen_low = false;
        for _ in 0..1000 {
            let f = full.delay_with(1, &mut rng);
            assert!(f <= d);
            seen_low |= f < d / 2;
            let e = equal.delay_with(1, &mut rng);
            assert!(e >= d / 2 && e <= d);
        }
        assert!(seen_low);
    }

    #[test]
    fn exponential_saturates_at_cap() {
        let p = RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(90));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(90));
        assert_eq!(p.clone().factor(3.0).delay(3), Duration::from_secs(9));
        assert_eq!(RetryPolicy::schedule([]).delay(4), Duration::ZERO);
    }
}
