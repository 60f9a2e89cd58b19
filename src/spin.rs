//! How a waiter spins before it yields and parks: it looks every spin-loop hint.
//!
//! Crossbeam's `Backoff` doubles the spin between looks (1, 2, 4 … 64 hints), and so did these
//! waits. That suits a waiter that mostly loses: in a conversation, where the other thread
//! answers within a few hundred nanoseconds, it is the wrong shape. A hint takes about 27 ns on
//! the development machine (an AMD EPYC), so a reply that lands just after the fifth look waits
//! out a gap of 16 hints, some 430 ns, longer than a whole crossbeam ping-pong: the round trip
//! snapped to the backoff's steps, and from run to run it sat on one step or the next (about 350
//! or 600 ns). Looking every hint for a bounded stretch keeps the latency of a quick answer at
//! the cost of the line transfer alone; the bound keeps the burn of a waiter that loses the
//! same order as before (a few microseconds), after which the callers yield, then park.
//!
//! Measured (criterion, `cargo bench --bench patterns -- request_reply`, three alternating runs
//! of the code before and after): request-reply through a queue 635, 622, 589 → 468, 449, 517
//! ns, 1.56x → 1.12x crossbeam's ping-pong at the median; a ping-pong over two queues 438, 477
//! → 402 ns. Throughput is unchanged (`--bench queue -- spsc_bounded`, three alternating runs).

/// Looks before a waiter falls back to yielding: about 7 µs of spinning on the development
/// machine.
pub(crate) const POLLS: u32 = 256;

/// A wait with less time left than this does not spin: [`POLLS`] looks take about 7 µs here,
/// and a short timeout (a polling loop's `recv_timeout` of a few hundred nanoseconds) must not
/// last that long (found by review: 12 µs a call instead of 6).
pub(crate) const SPAN: std::time::Duration = std::time::Duration::from_micros(20);

/// Whether a wait with `left` to go (none: for ever) has time for the spin.
#[inline]
pub(crate) fn worth_it(left: Option<std::time::Duration>) -> bool {
    left.is_none_or(|l| l > SPAN)
}

/// Spins until `ready` holds, looking once every spin-loop hint, [`POLLS`] times at most. The
/// callers look again themselves, under their own rules, whether it held or not.
#[inline]
pub(crate) fn poll(mut ready: impl FnMut() -> bool) {
    for _ in 0..POLLS {
        if ready() {
            return;
        }
        std::hint::spin_loop();
    }
}

/// The largest thread-local scratch buffer (in elements) kept between uses: a thread that once
/// published to a huge topic does not keep buffers of that size for its life.
const SCRATCH_KEPT: usize = 4096;

/// `v`, to keep as a thread's scratch; a new, empty one if `v` grew past [`SCRATCH_KEPT`].
pub(crate) fn scratch_kept<V>(v: Vec<V>) -> Vec<V> {
    if v.capacity() > SCRATCH_KEPT {
        Vec::new()
    } else {
        v
    }
}
