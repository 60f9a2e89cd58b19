//! Helpers shared by the integration tests (each test file that needs them says `mod common;`).
//! Each test file uses only some of them.
#![allow(dead_code)]

use std::thread;
use std::time::{Duration, Instant};

/// How long a whole test binary may run before [`start_watchdog`] ends it: far beyond what a
/// healthy run takes (seconds), well inside CI's limit.
const WATCHDOG: Duration = Duration::from_secs(600);

/// Starts, once per test binary, a thread that ends the process with a failure if it is still
/// running after [`WATCHDOG`]. A test that hangs (a blocking receive waiting for a message that
/// a bug lost) then fails the run instead of hanging it: found by mutation testing, where an
/// off-by-one in dead-lettering hung `tests/queue.rs` rather than failing it. Each binary calls
/// it from a test named `_watchdog`, which sorts before every other test name, so the harness
/// starts it first.
pub fn start_watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let spawned = thread::Builder::new().name("watchdog".into()).spawn(|| {
            thread::sleep(WATCHDOG);
            use std::io::Write;
            // Straight to stderr: the harness captures the test's own output.
            let _ = writeln!(
                std::io::stderr(),
                "watchdog: this test binary ran past {WATCHDOG:?}; a test hangs"
            );
            std::process::exit(124);
        });
        assert!(spawned.is_ok(), "cannot start the watchdog thread");
    });
}

/// A property's case count: `PROPTEST_CASES` when set (to run the models harder than CI does),
/// else the file's own count, sized for `cargo test`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic xorshift generator for the threaded tests: each thread its own, seeded
/// differently, so that a failure replays the same choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs `scenario` on a thread of its own and fails the test if it has not finished within
/// `limit`, a deadlock (`what` says which), or hands its panic on if it failed. A deadlocked
/// scenario's thread is left behind; the test process ends with the test run.
pub fn finishes_within(limit: Duration, what: &str, scenario: impl FnOnce() + Send + 'static) {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let handle = thread::spawn(move || {
        scenario();
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(limit) {
        Ok(()) => handle.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("deadlock: {what}"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// Runs `f` on a scoped thread named `name` (for [`wait_blocked`]); a name is at most 15 bytes.
pub fn spawn_named<'scope, T: Send + 'scope>(
    s: &'scope thread::Scope<'scope, '_>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, T> {
    assert!(
        name.len() <= 15,
        "thread name {name} is longer than /proc shows"
    );
    thread::Builder::new()
        .name(name.into())
        .spawn_scoped(s, f)
        .unwrap()
}

/// Waits until the thread named `name` sleeps in the kernel (blocked in a wait), or fails the
/// test after ten seconds. Threads are named with [`spawn_named`].
pub fn wait_blocked(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if is_sleeping(name) {
            return;
        }
        assert!(Instant::now() < deadline, "thread {name} never blocked");
        thread::yield_now();
    }
}

/// The kernel states of the threads named `name` ('S': sleeping in a wait), read from /proc.
#[cfg(target_os = "linux")]
fn states(name: &str) -> Option<Vec<char>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut states = Vec::new();
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (comm) S ...": the comm may hold spaces or parentheses, the state follows the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] == name {
            states.extend(stat[close + 1..].trim_start().chars().next());
        }
    }
    Some(states)
}

/// Whether the thread named `name` sleeps in the kernel (Linux: read from /proc).
#[cfg(target_os = "linux")]
pub fn is_sleeping(name: &str) -> bool {
    states(name).is_none_or(|s| s.first() == Some(&'S'))
}

/// Whether every thread named `name` (there is at least one) sleeps in the kernel: for threads
/// that share a name, such as the workers of two consumer pools on one queue.
#[cfg(target_os = "linux")]
pub fn all_sleeping(name: &str) -> bool {
    states(name).is_none_or(|s| !s.is_empty() && s.iter().all(|&c| c == 'S'))
}

#[cfg(not(target_os = "linux"))]
pub fn all_sleeping(name: &str) -> bool {
    is_sleeping(name)
}

#[cfg(not(target_os = "linux"))]
pub fn is_sleeping(_name: &str) -> bool {
    // No portable way to tell: every interleaving is correct, this one only runs less often.
    for _ in 0..1000 {
        thread::yield_now();
    }
    true
}

/// Payloads that count their drops per id, one id of which panics in its drop (a payload's drop
/// is user code, which may): for the tests that show such a panic loses nothing else. A clone
/// counts as another copy of its id.
pub struct Bombs {
    drops: std::sync::Arc<Vec<std::sync::atomic::AtomicUsize>>,
    armed: usize,
}

impl Bombs {
    /// Room for ids below `n`; the payload of id `armed` panics when dropped (unless the
    /// thread is already unwinding, which would abort).
    pub fn new(n: usize, armed: usize) -> Bombs {
        Bombs {
            drops: std::sync::Arc::new((0..n).map(|_| Default::default()).collect()),
            armed,
        }
    }

    pub fn make(&self, id: usize) -> Bomb {
        Bomb {
            id,
            armed: id == self.armed,
            drops: std::sync::Arc::clone(&self.drops),
        }
    }

    /// How many copies of `id` were dropped.
    pub fn dropped(&self, id: usize) -> usize {
        self.drops[id].load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub struct Bomb {
    pub id: usize,
    armed: bool,
    drops: std::sync::Arc<Vec<std::sync::atomic::AtomicUsize>>,
}

impl Clone for Bomb {
    fn clone(&self) -> Bomb {
        Bomb {
            id: self.id,
            armed: self.armed,
            drops: std::sync::Arc::clone(&self.drops),
        }
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.armed && !thread::panicking() {
            panic!("deliberate panic in the drop of payload {}", self.id);
        }
    }
}

/// Whether `f` panicked (caught here, so the test goes on to look at the state it left).
pub fn panics<R>(f: impl FnOnce() -> R) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
}
