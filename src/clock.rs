//! The clock seam: real time, or a manual clock that tests advance by hand.
//!
//! Every time a queue keeps (enqueue times, delays, visibility timeouts, time-to-live) is read from
//! its [`Clock`]. The real clock reads a coarse monotonic clock (a few milliseconds of resolution,
//! about five nanoseconds a read on Linux) because a send cannot afford a precise clock read. So
//! the times a queue keeps are as fine as that clock's tick (4 ms on a typical Linux): a delay,
//! a time-to-live or a visibility timeout can run out up to a tick early (taken at the end of
//! a tick, counted from its start) or late; keep them well above a tick. A
//! [`ManualClock`] stands still until [`ManualClock::advance`] moves it, and wakes every receiver
//! of every queue that uses it when it moves, so a test can show that a delayed message becomes due
//! or a lease expires without sleeping.
//!
//! The *waits* of blocking calls (`recv_timeout`, `send_timeout`, ...) are always real time, even on
//! a manual clock: a test that forgets to advance the clock times out instead of hanging.
//!
//! ```
//! use std::time::Duration;
//! use switchboard::{ManualClock, Queue};
//!
//! let clock = ManualClock::new();
//! let queue = Queue::builder().clock(clock.clone()).build();
//! queue.send_after(1, Duration::from_secs(60)).unwrap();
//! assert!(queue.try_recv().is_err()); // not due yet
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(queue.try_recv().unwrap().into_payload(), 1);
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Nanoseconds since the process-wide base instant. Zero means "not set".
pub(crate) type Nanos = u64;

/// The instant all internal times count from, and its reading on the coarse clock.
struct Base {
    instant: Instant,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    mono_ns: u64,
    /// How far the coarse clock may lag the precise one: its resolution (a scheduler tick).
    lag: Duration,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| Base {
        // Back-date the base by a second so that no real reading is ever 0 ("not set").
        instant: Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        mono_ns: {
            let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            (ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64).saturating_sub(1_000_000_000)
        },
        lag: coarse_resolution(),
    })
}

/// The coarse clock's resolution.
fn coarse_resolution() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let ts = rustix::time::clock_getres(rustix::time::ClockId::MonotonicCoarse);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Duration::ZERO
    }
}

/// Reads the coarse real clock, in nanoseconds since the base.
#[inline]
fn coarse_now() -> Nanos {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // CLOCK_MONOTONIC_COARSE shares CLOCK_MONOTONIC's origin (which `Instant` uses on Linux),
        // so readings convert to `Instant`s by the offset taken once in `base()`.
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
        let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        ns.saturating_sub(base().mono_ns).max(1)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        to_nanos(Instant::now())
    }
}

/// The latest time a clock reads (about 292 years after the base): a manual clock advanced
/// further stays here. Deadlines computed from it still lie ahead of it (up to [`FOREVER`]), so
/// a lease taken then is not born expired.
pub(crate) const END: Nanos = u64::MAX / 2;

/// Where deadlines saturate: after any time a clock reads (a delay of `Duration::MAX` never
/// comes due), and below `u64::MAX`, which the queues keep to mean "no event".
pub(crate) const FOREVER: Nanos = u64::MAX - 1;

/// Converts an `Instant` to nanoseconds since the base (instants before the base map to 1,
/// those past [`END`] to [`FOREVER`]: a time no clock reaches never comes due, as a delay of
/// `Duration::MAX` does not; found by review, a message sent for 200 years on came due when a
/// manual clock reached its end).
pub(crate) fn to_nanos(at: Instant) -> Nanos {
    let ns = at.saturating_duration_since(base().instant).as_nanos();
    match u64::try_from(ns) {
        Ok(ns) if ns <= END => ns.max(1),
        _ => FOREVER,
    }
}

/// Converts nanoseconds since the base back to an `Instant`.
pub(crate) fn to_instant(ns: Nanos) -> Instant {
    base().instant + Duration::from_nanos(ns)
}

/// Adds a duration to a time, saturating at [`FOREVER`].
pub(crate) fn add(at: Nanos, d: Duration) -> Nanos {
    at.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .min(FOREVER)
}

/// Something a manual clock wakes when it moves (a queue's blocked receivers).
pub(crate) trait Wake: Send + Sync {
    fn wake_all(&self);
}

struct ManualState {
    now: Mutex<Nanos>,
    listeners: Mutex<Vec<Weak<dyn Wake>>>,
}

/// A clock that only moves when told to: the seam that lets tests move time without sleeping.
///
/// Clones share one time. Hand it to a queue with
/// [`QueueBuilder::clock`](crate::QueueBuilder::clock). It starts at the real time of its creation.
///
/// ```
/// use std::time::Duration;
/// use switchboard::ManualClock;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now() - start, Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    state: Arc<ManualState>,
}

impl ManualClock {
    /// Creates a manual clock reading the current real time.
    pub fn new() -> ManualClock {
        ManualClock {
            state: Arc::new(ManualState {
                now: Mutex::new(to_nanos(Instant::now())),
                listeners: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The clock's current time.
    pub fn now(&self) -> Instant {
        to_instant(*self.state.now.lock())
    }

    /// Moves the clock forward by `by` and wakes every receiver blocked on a queue that uses it,
    /// so that delays, leases and time-to-live that became due take effect at once.
    ///
    /// The clock stops about 292 years after it started (`advance(Duration::MAX)` goes there);
    /// a deadline set from then on still lies ahead, and a delay or timeout of `Duration::MAX`
    /// never comes due.
    pub fn advance(&self, by: Duration) {
        {
            let mut now = self.state.now.lock();
            *now = add(*now, by).min(END);
        }
        let listeners: Vec<Arc<dyn Wake>> = {
            let mut list = self.state.listeners.lock();
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for l in listeners {
            l.wake_all();
        }
    }

    fn nanos(&self) -> Nanos {
        *self.state.now.lock()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

/// The time source of a queue or topic: the real (coarse) clock, or a [`ManualClock`].
///
/// ```
/// use switchboard::{Clock, ManualClock};
///
/// let real = Clock::real();
/// let manual: Clock = ManualClock::new().into();
/// assert!(!real.is_manual() && manual.is_manual());
/// ```
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<ManualClock>,
}

impl Clock {
    /// The real clock (the default).
    pub fn real() -> Clock {
        Clock { manual: None }
    }

    /// `at` on this clock. The real clock reads the coarse monotonic clock, which lags
    /// `Instant::now()` by up to a tick: a time already past by `Instant` is taken as the
    /// clock's now, not as a moment still a tick ahead (found by review: `send_at(m,
    /// Instant::now())` held the message back, and a FIFO send just after overtook it).
    pub(crate) fn nanos_at(&self, at: Instant) -> Nanos {
        let ns = to_nanos(at);
        if self.manual.is_none() && at <= Instant::now() {
            ns.min(coarse_now())
        } else {
            ns
        }
    }

    /// How far apart two different readings are at least: the coarse clock's tick on the real
    /// clock (a few milliseconds), zero on a manual clock (it moves by any amount).
    pub(crate) fn resolution(&self) -> Duration {
        match &self.manual {
            None => base().lag,
            Some(_) => Duration::ZERO,
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// The current time on this clock.
    pub fn now(&self) -> Instant {
        to_instant(self.nanos())
    }

    #[inline]
    pub(crate) fn nanos(&self) -> Nanos {
        match &self.manual {
            None => coarse_now(),
            Some(m) => m.nanos(),
        }
    }

    /// Registers something to wake when a manual clock advances (no-op on the real clock).
    pub(crate) fn register(&self, listener: Weak<dyn Wake>) {
        if let Some(m) = &self.manual {
            let mut list = m.state.listeners.lock();
            // Before the list grows, the queues gone since leave it: a clock that never
            // advances (which also prunes) must not keep every queue ever made on it.
            if list.len() == list.capacity() {
                list.retain(|w| w.strong_count() > 0);
            }
            list.push(listener);
        }
    }

    /// The real instant at which a waiter should wake for clock time `at`, or `None` when only
    /// an advance of a manual clock can bring it (a manual clock wakes its listeners itself).
    pub(crate) fn wake_instant(&self, at: Nanos) -> Option<Instant> {
        match &self.manual {
            // The coarse clock lags the precise one by a tick or more (3.5 to 6.4 ms measured
            // with 4 ms ticks), so a waiter woken at `to_instant(at)` found the time not yet come
            // and spun until it did (found by review). So the wait is the distance still to go
            // on the coarse clock, plus a tick: never a wake-up before the reading gets there,
            // and when one comes early all the same, the next wait is a tick, not a spin.
            None => {
                let now = coarse_now();
                let wait = if at > now {
                    Duration::from_nanos(at - now) + base().lag
                } else {
                    Duration::ZERO
                };
                Some(Instant::now() + wait)
            }
            Some(_) => None,
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(m: ManualClock) -> Clock {
        Clock { manual: Some(m) }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::Real"),
            Some(m) => write!(f, "Clock::Manual({:?})", m.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiter woken at `wake_instant(at)` finds the clock at `at` or past it: it has no tick
    /// left to spin through.
    #[test]
    fn the_real_clock_has_come_to_a_time_at_its_wake_instant() {
        let clock = Clock::default();
        for _ in 0..3 {
            let at = clock.nanos() + 1_000_000;
            let wake = clock.wake_instant(at).expect("a real clock");
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            assert!(clock.nanos() >= at, "woke {} ns early", at - clock.nanos());
        }
    }

    #[test]
    fn a_manual_clock_keeps_no_list_of_queues_long_gone() {
        struct Nobody;
        impl Wake for Nobody {
            fn wake_all(&self) {}
        }
        let manual = ManualClock::new();
        let clock = Clock::from(manual.clone());
        let live: Arc<dyn Wake> = Arc::new(Nobody);
        clock.register(Arc::downgrade(&live));
        for _ in 0..10_000 {
            let gone: Arc<dyn Wake> = Arc::new(Nobody);
            clock.register(Arc::downgrade(&gone));
        }
        let len = manual.state.listeners.lock().len();
        assert!(len <= 64, "{len} listeners kept");
    }

    /// An advance wakes every live listener (the queues' blocked receivers), once per advance
    /// (found by mutation testing: with the wake-up gone, receivers on a manual clock slept out
    /// their timeout and the queue tests still passed).
    #[test]
    fn an_advance_wakes_every_live_listener() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake_all(&self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let manual = ManualClock::new();
        let clock = Clock::from(manual.clone());
        let a = Arc::new(Count(AtomicUsize::new(0)));
        let b = Arc::new(Count(AtomicUsize::new(0)));
        let (wa, wb): (Arc<dyn Wake>, Arc<dyn Wake>) = (a.clone(), b.clone());
        clock.register(Arc::downgrade(&wa));
        clock.register(Arc::downgrade(&wb));
        manual.advance(Duration::from_millis(1));
        manual.advance(Duration::ZERO);
        assert_eq!(a.0.load(Ordering::SeqCst), 2);
        assert_eq!(b.0.load(Ordering::SeqCst), 2);
    }

    /// Deadlines saturate at `FOREVER`, never at `u64::MAX` (the queues' "no event"), however
    /// far the time or the duration (found by mutation testing: the bound could be dropped
    /// with no test noticing).
    #[test]
    fn deadlines_saturate_at_forever() {
        assert_eq!(add(1, Duration::MAX), FOREVER);
        assert_eq!(add(FOREVER, Duration::from_nanos(1)), FOREVER);
        assert_eq!(add(END, Duration::from_secs(u64::MAX)), FOREVER);
        assert_eq!(add(5, Duration::from_nanos(7)), 12);
    }

    #[test]
    fn coarse_clock_tracks_instant() {
        let a = to_nanos(Instant::now());
        let c = coarse_now();
        // The coarse clock lags by at most a tick (a few ms), never leads by much.
        assert!(c + 50_000_000 > a && c < a + 50_000_000, "{c} vs {a}");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let m = ManualClock::new();
        let c: Clock = m.clone().into();
        let t0 = c.nanos();
        assert_eq!(c.nanos(), t0);
        m.advance(Duration::from_millis(3));
        assert_eq!(c.nanos(), t0 + 3_000_000);
        assert_eq!(c.wake_instant(t0), None);
    }

    #[test]
    fn instant_round_trip() {
        let now = Instant::now();
        let back = to_instant(to_nanos(now));
        assert!(back <= now && now - back < Duration::from_micros(1));
    }
}
