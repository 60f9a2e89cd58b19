//! Worker pools: outcomes, retries on the queue's clock, panics, heartbeat, shutdown, batches,
//! flow control, and a stress test that counts every message's final state.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use switchboard::{
    Consumer, ConsumerHandle, ConsumerStats, Failure, ManualClock, Queue, RetryPolicy,
    ShutdownReport,
};

/// Every bounded wait in these tests: long enough never to fire on a healthy run, short enough
/// that a broken one fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(20);

/// Panics raised on purpose carry this marker; the hook stays quiet for them only.
const DELIBERATE: &str = "deliberate panic";

fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !msg.contains(DELIBERATE) {
                default(info);
            }
        }));
    });
}

/// Waits (yielding, bounded by `LIMIT`) until `cond` holds; fails the test otherwise.
#[track_caller]
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "timed out waiting until {what}");
        thread::sleep(Duration::from_micros(200));
    }
}

/// A gate handlers block on until the test opens it; it counts the handlers that reached it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar, AtomicUsize)>);

impl Gate {
    fn wait(&self) {
        let (open, cv, entered) = &*self.0;
        entered.fetch_add(1, Ordering::SeqCst);
        let mut open = open.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
    }

    /// How many handlers reached the gate so far.
    fn entered(&self) -> usize {
        self.0 .2.load(Ordering::SeqCst)
    }

    fn open(&self) {
        let (open, cv, _) = &*self.0;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
}

/// Joins a pool on another thread, failing the test if that takes longer than `LIMIT`.
fn join_bounded<T: Send + Sync + 'static>(pool: ConsumerHandle<T>) -> ConsumerStats {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(pool.join());
    });
    rx.recv_timeout(LIMIT)
        .expect("the pool did not finish in time")
}

/// Worker threads are named after the queue; a queue name may hold a NUL, which a thread name
/// may not (std panics on one), and the pool still starts (found by review).
#[test]
fn a_queue_named_with_a_nul_still_gets_its_pool() {
    let queue: Queue<u32> = Queue::builder().name("orders\0eu").build();
    let names = Arc::new(Mutex::new(Vec::new()));
    let pool = {
        let names = Arc::clone(&names);
        queue.consume(1, move |_| {
            let name = thread::current().name().map(str::to_owned);
            names.lock().unwrap().push(name);
            Ok::<(), String>(())
        })
    };
    queue.send(1).unwrap();
    queue.close();
    assert_eq!(join_bounded(pool).processed, 1);
    assert_eq!(
        *names.lock().unwrap(),
        [Some("orderseu-worker-0".to_owned())]
    );
}

#[test]
fn a_worker_count_beyond_memory_is_the_documented_panic() {
    // Found by review: the pool's per-worker table was allocated up front, so a huge count
    // panicked with "capacity overflow" (or, at 2^40, aborted the process) before any thread.
    let q: Queue<u32> = Queue::unbounded();
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Consumer::new(&q)
            .workers(usize::MAX)
            .start(|_| Ok::<(), String>(()))
    }));
    let p = started.expect_err("usize::MAX workers cannot start");
    let msg = p
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| p.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(
        msg.starts_with("failed to start a consumer worker thread"),
        "{msg}"
    );
    // The queue is untouched and still usable.
    q.send(1).unwrap();
    assert_eq!(q.recv().unwrap().into_payload(), 1);
}

#[test]
fn smoke() {
    let queue = Queue::unbounded();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pool = {
        let seen = Arc::clone(&seen);
        queue.consume(2, move |m| {
            seen.lock().unwrap().push(*m.payload());
            Ok::<(), String>(())
        })
    };
    assert_eq!(pool.workers(), 2);
    queue.send_batch(0..100).unwrap();
    queue.close();
    let stats = join_bounded(pool);
    assert_eq!((stats.processed, stats.failed, stats.retried), (100, 0, 0));
    assert_eq!(
        (stats.in_flight, stats.workers, stats.lease_lost),
        (0, 0, 0)
    );
    let q = queue.stats();
    assert_eq!(
        (q.acked, q.in_flight, q.visible, q.redelivered),
        (100, 0, 0, 0)
    );
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
}

/// Runs a handler that always fails under `policy` on a manual clock and returns the clock times
/// of its attempts, checking that no attempt comes before its delay has passed.
fn attempt_times(policy: RetryPolicy, max_attempts: u32) -> (Vec<Instant>, Queue<&'static str>) {
    let clock = ManualClock::new();
    let dlq = Queue::unbounded();
    let queue = Queue::builder()
        .clock(clock.clone())
        .dead_letter(&dlq, max_attempts)
        .build();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let pool = {
        let clock = clock.clone();
        Consumer::new(&queue)
            .workers(2)
            .retry(policy.clone())
            .start(move |_m| {
                tx.lock().unwrap().send(clock.now()).unwrap();
                Err("boom")
            })
    };
    queue.send("job").unwrap();
    let mut times = vec![rx.recv_timeout(LIMIT).unwrap()];
    for attempt in 1..max_attempts {
        // The nack happened: the retry is scheduled from the time of this attempt.
        wait_until("the failed attempt was nacked", || {
            pool.stats().retried >= u64::from(attempt)
        });
        let delay = policy.delay(attempt);
        if delay > Duration::ZERO {
            clock.advance(delay - Duration::from_millis(1));
            // Not yet: a redelivery now would also show in the exact times below.
            assert!(rx.recv_timeout(Duration::from_millis(30)).is_err());
            clock.advance(Duration::from_millis(1));
        }
        times.push(rx.recv_timeout(LIMIT).unwrap());
    }
    wait_until("the last attempt was dead-lettered", || {
        pool.stats().dead_lettered == 1
    });
    let stats = pool.stats();
    assert_eq!(stats.failed, u64::from(max_attempts));
    assert_eq!(stats.retried, u64::from(max_attempts - 1));
    assert!(pool.shutdown().is_clean());
    (times, dlq)
}

#[test]
fn retry_waits_the_schedules_delays_on_the_queue_clock() {
    let s = Duration::from_secs;
    let (times, dlq) = attempt_times(RetryPolicy::schedule([s(10), s(20)]), 4);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [s(10), s(20), s(20)]);
    let dead = dlq.try_recv().unwrap();
    let info = dead.dead_letter().unwrap();
    assert_eq!((info.reason(), info.attempts()), ("boom", 4));
}

#[test]
fn retry_backs_off_exponentially_to_the_cap() {
    let s = Duration::from_secs;
    let (times, _dlq) = attempt_times(RetryPolicy::exponential(s(1), s(5)), 6);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [s(1), s(2), s(4), s(5), s(5)]);
}

#[test]
fn retry_fixed_and_immediate() {
    let s = Duration::from_secs;
    let (times, _dlq) = attempt_times(RetryPolicy::fixed(s(3)), 3);
    assert_eq!(times[2] - times[0], s(6));
    let (times, _dlq) = attempt_times(RetryPolicy::immediate(), 3);
    assert_eq!(times[2], times[0]);
}

#[test]
fn panics_are_isolated_and_dead_lettered_after_max_attempts() {
    quiet_deliberate_panics();
    let dlq = Queue::unbounded();
    let queue = Queue::builder().dead_letter(&dlq, 3).build();
    let pool = Consumer::new(&queue)
        .workers(2)
        .retry(RetryPolicy::immediate())
        .start(|m| {
            if *m.payload() == 13 {
                panic!("{DELIBERATE}: bad payload {}", m.payload());
            }
            Ok::<(), String>(())
        });
    queue.send_batch(0..50).unwrap();
    queue.close();
    let stats = join_bounded(pool);
    assert_eq!(stats.processed, 49);
    assert_eq!((stats.panicked, stats.failed, stats.retried), (3, 3, 2));
    assert_eq!(stats.dead_lettered, 1);
    assert_eq!(queue.stats().acked, 49);
    let dead = dlq.try_recv().unwrap();
    assert_eq!(*dead.payload(), 13);
    let info = dead.dead_letter().unwrap();
    assert_eq!(
        info.reason(),
        format!("panicked: {DELIBERATE}: bad payload 13")
    );
    assert_eq!(info.attempts(), 3);
}

/// Found by a newcomer's review: a handler that knew a message was poison could only fail it,
/// and the pool retried it with backoff until its last attempt.
#[test]
fn a_rejected_failure_is_dead_lettered_at_once() {
    let dlq = Queue::unbounded();
    let queue = Queue::builder().dead_letter(&dlq, 5).build();
    let pool = Consumer::new(&queue)
        .retry(RetryPolicy::immediate())
        .start_with_delivery(|d| match *d.payload() {
            13 => Err(Failure::reject("unlucky")),
            // A retried failure on the first attempt, then fine.
            7 if d.attempt() == 1 => Err("flaky".into()),
            _ => Ok(()),
        });
    queue.send_batch(0..20).unwrap();
    queue.close();
    let stats = join_bounded(pool);
    assert_eq!(stats.processed, 19);
    assert_eq!((stats.failed, stats.retried), (2, 1));
    assert_eq!((stats.dead_lettered, stats.rejected), (1, 1));
    let dead = dlq.try_recv().unwrap();
    assert_eq!(*dead.payload(), 13);
    let info = dead.dead_letter().unwrap();
    assert_eq!((info.reason(), info.attempts()), ("unlucky", 1));
    assert!(dlq.is_empty());
}

#[test]
fn a_rejected_failure_in_a_batch_is_dead_lettered_at_once_and_without_a_dlq_discarded() {
    let queue = Queue::builder().max_attempts(5).build();
    let pool = Consumer::new(&queue)
        .retry(RetryPolicy::immediate())
        .start_batch(4, |batch| {
            batch
                .iter()
                .map(|m| match *m.payload() % 3 {
                    0 => Err(Failure::reject("poison")),
                    _ => Ok(()),
                })
                .collect()
        });
    queue.send_batch(0..12).unwrap();
    queue.close();
    let stats = join_bounded(pool);
    assert_eq!(stats.processed, 8);
    assert_eq!((stats.failed, stats.retried), (4, 0));
    assert_eq!((stats.dead_lettered, stats.rejected), (4, 4));
    let q = queue.stats();
    assert_eq!((q.discarded, q.redelivered), (4, 0));
}

#[test]
fn errors_without_a_dead_letter_queue_are_discarded_and_counted() {
    let queue = Queue::builder().max_attempts(2).build();
    let pool = Consumer::new(&queue)
        .retry(RetryPolicy::immediate())
        .start(|_m| Err(std::io::Error::other("disk full")));
    queue.send_batch(0..5).unwrap();
    queue.close();
    let stats = join_bounded(pool);
    assert_eq!(
        (stats.failed, stats.retried, stats.dead_lettered),
        (10, 5, 5)
    );
    assert_eq!(queue.stats().discarded, 5);
}

/// A pool on a manual clock whose handler blocks until the gate opens.
struct Slow {
    clock: ManualClock,
    queue: Queue<u32>,
    pool: ConsumerHandle<u32>,
    gate: Gate,
}

/// With a heartbeat every 2 ms up to `max_lease`, or with none.
fn slow_handler(max_lease: Option<Duration>) -> Slow {
    let clock = ManualClock::new();
    let queue = Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(Duration::from_secs(10))
        .build();
    let gate = Gate::default();
    let pool = {
        let gate = gate.clone();
        let consumer = Consumer::new(&queue);
        let consumer = match max_lease {
            Some(max) => consumer.heartbeat(Duration::from_millis(2)).max_lease(max),
            None => consumer.without_heartbeat(),
        };
        consumer.start(move |_m| {
            gate.wait();
            Ok::<(), String>(())
        })
    };
    queue.send(1).unwrap();
    wait_until("the handler started", || gate.entered() == 1);
    Slow {
        clock,
        queue,
        pool,
        gate,
    }
}

#[test]
fn heartbeat_keeps_a_slow_handlers_lease() {
    let Slow {
        clock,
        queue,
        pool,
        gate,
    } = slow_handler(Some(Duration::from_secs(3600)));
    for beat in 1..=3 {
        // 6 s on: 4 s of the 10 s lease left, under half: the heartbeat renews it.
        clock.advance(Duration::from_secs(6));
        wait_until("the heartbeat extended the lease", || {
            pool.stats().heartbeats == beat
        });
    }
    // 18 s after the receive, well past the first 10 s lease: still held.
    assert!(queue.try_receive().is_err());
    let q = queue.stats();
    assert_eq!((q.lease_expired, q.in_flight), (0, 1));
    assert_eq!(pool.stats().in_flight, 1);
    gate.open();
    wait_until("the message was acked", || pool.stats().processed == 1);
    let q = queue.stats();
    assert_eq!((q.acked, q.redelivered, q.lease_expired), (1, 0, 0));
    assert!(pool.shutdown().is_clean());
}

#[test]
fn max_lease_bounds_the_heartbeat() {
    let Slow {
        clock,
        queue,
        pool,
        gate,
    } = slow_handler(Some(Duration::from_secs(15)));
    clock.advance(Duration::from_secs(6));
    wait_until("the heartbeat extended the lease to the maximum", || {
        pool.stats().heartbeats == 1
    });
    // 15.5 s after the receipt: past the 15 s maximum counted from the receipt, and short of
    // a maximum counted from the lease's deadline when the heartbeat ran (found by mutation
    // testing: at 16 s the check passed either way).
    clock.advance(Duration::from_millis(9_500));
    let again = queue
        .try_receive()
        .expect("the lease expired at the maximum");
    assert_eq!(again.attempt(), 2);
    again.ack().unwrap();
    gate.open();
    wait_until("the slow handler's verdict came", || {
        pool.stats().lease_lost == 1
    });
    let stats = pool.stats();
    assert_eq!((stats.processed, stats.heartbeats), (0, 1));
    assert_eq!((queue.stats().acked, queue.stats().lease_expired), (1, 1));
    assert!(pool.shutdown().is_clean());
}

#[test]
fn without_heartbeat_a_slow_handler_loses_its_lease() {
    let Slow {
        clock,
        queue,
        pool,
        gate,
    } = slow_handler(None);
    clock.advance(Duration::from_secs(11));
    let again = queue.try_receive().expect("the lease expired");
    again.ack().unwrap();
    gate.open();
    wait_until("the late verdict", || pool.stats().lease_lost == 1);
    assert_eq!(pool.stats().heartbeats, 0);
}

#[test]
fn shutdown_waits_for_running_handlers() {
    let queue = Queue::unbounded();
    let gate = Gate::default();
    let pool = {
        let gate = gate.clone();
        queue.consume(1, move |_m| {
            gate.wait();
            Ok::<(), String>(())
        })
    };
    queue.send(1).unwrap();
    wait_until("the handler started", || gate.entered() == 1);
    let report: ShutdownReport = thread::scope(|s| {
        let h = s.spawn(|| pool.shutdown_timeout(LIMIT));
        gate.open();
        h.join().unwrap()
    });
    assert!(report.is_clean(), "{report:?}");
    assert!(pool.is_finished());
    assert_eq!(queue.stats().acked, 1);
    assert_eq!(pool.join().processed, 1);
}

#[test]
fn shutdown_with_in_flight_work_loses_nothing() {
    const N: u32 = 200;
    let queue = Queue::unbounded();
    let gate = Gate::default();
    let blocked = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let pool = {
        let (gate, blocked, acked) = (gate.clone(), Arc::clone(&blocked), Arc::clone(&acked));
        Consumer::new(&queue)
            .workers(4)
            .shutdown_timeout(Duration::from_millis(50))
            .start(move |m| {
                let p = *m.payload();
                if p % 50 == 7 {
                    // Four stragglers: every worker ends up stuck on one of them.
                    blocked.fetch_add(1, Ordering::SeqCst);
                    gate.wait();
                } else {
                    acked.lock().unwrap().push(p);
                }
                Ok::<(), String>(())
            })
    };
    queue.send_batch(0..N).unwrap();
    wait_until("every worker is stuck", || {
        blocked.load(Ordering::SeqCst) == 4
    });
    let before = Instant::now();
    let report = pool.shutdown();
    assert!(before.elapsed() < LIMIT);
    assert_eq!((report.still_running, report.released), (4, 4));
    assert!(!report.is_clean());

    // Every message is acked or back in the queue; none in flight.
    let q = queue.stats();
    assert_eq!(q.in_flight, 0);
    let acked: HashSet<u32> = acked.lock().unwrap().iter().copied().collect();
    assert_eq!(q.acked as usize, acked.len());
    assert_eq!(q.visible + acked.len(), N as usize);
    // Leased receives: a plain receive cannot take a given-back message by value while its
    // straggler still holds it.
    let held: Vec<_> = std::iter::from_fn(|| queue.try_receive().ok()).collect();
    let waiting: Vec<u32> = held.iter().map(|d| *d.payload()).collect();
    drop(held); // back to the queue
    assert_eq!(acked.len() + waiting.len(), N as usize);
    let all: HashSet<u32> = acked
        .union(&waiting.iter().copied().collect())
        .copied()
        .collect();
    assert_eq!(all, (0..N).collect());
    for p in [7, 57, 107, 157] {
        assert!(waiting.contains(&p), "{p} was given back");
    }

    // The stragglers finish: their acks change nothing.
    gate.open();
    let stats = join_bounded(pool);
    assert_eq!((stats.lease_lost, stats.released), (4, 4));
    assert_eq!(stats.processed as usize, acked.len());
    assert_eq!(queue.stats().acked as usize, acked.len());
}

/// Sends `()` when dropped: shows that a pool let go of its handler.
struct DropProbe(Mutex<mpsc::Sender<()>>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        let _ = self.0.lock().unwrap().send(());
    }
}

#[test]
fn drop_of_the_handle_finishes_running_work_in_the_background() {
    let queue = Queue::unbounded();
    let gate = Gate::default();
    let (probe_tx, probe_rx) = mpsc::channel();
    let pool = {
        let gate = gate.clone();
        let probe = DropProbe(Mutex::new(probe_tx));
        queue.consume(1, move |_m| {
            let _ = &probe;
            gate.wait();
            Ok::<(), String>(())
        })
    };
    queue.send_batch(0..10).unwrap();
    wait_until("the handler started", || gate.entered() == 1);
    drop(pool); // returns at once, the handler still blocked
    assert!(probe_rx.try_recv().is_err());
    gate.open();
    probe_rx
        .recv_timeout(LIMIT)
        .expect("the workers ended and let go of the handler");
    let q = queue.stats();
    assert_eq!((q.acked, q.in_flight, q.visible), (1, 0, 9));
    assert_eq!(gate.entered(), 1);
}

#[test]
fn drop_of_the_handle_releases_stuck_messages_at_the_deadline() {
    let queue = Queue::unbounded();
    let gate = Gate::default();
    let pool = {
        let gate = gate.clone();
        Consumer::new(&queue)
            .workers(2)
            .shutdown_timeout(Duration::from_millis(20))
            .start(move |_m| {
                gate.wait();
                Ok::<(), String>(())
            })
    };
    queue.send_batch(0..10).unwrap();
    wait_until("both handlers started", || gate.entered() == 2);
    drop(pool);
    wait_until("the stuck messages are back", || {
        let q = queue.stats();
        q.in_flight == 0 && q.visible == 10
    });
    assert_eq!(queue.stats().abandoned, 2);
    gate.open();
}

#[test]
fn batch_handler_with_mixed_outcomes() {
    let dlq = Queue::unbounded();
    let queue = Queue::builder().dead_letter(&dlq, 2).build();
    queue.send_batch(0..30u32).unwrap();
    queue.close();
    let attempts: Arc<Vec<AtomicU32>> = Arc::new((0..30).map(|_| AtomicU32::new(0)).collect());
    let largest = Arc::new(AtomicUsize::new(0));
    let pool = {
        let (attempts, largest) = (Arc::clone(&attempts), Arc::clone(&largest));
        Consumer::new(&queue)
            .retry(RetryPolicy::immediate())
            .start_batch(10, move |batch| {
                largest.fetch_max(batch.len(), Ordering::SeqCst);
                batch
                    .iter()
                    .map(|m| {
                        let p = *m.payload();
                        let n = attempts[p as usize].fetch_add(1, Ordering::SeqCst) + 1;
                        match p % 3 {
                            0 => Ok(()),
                            1 => Err(format!("cannot process {p}")),
                            _ if n == 1 => Err("flaky".to_string()),
                            _ => Ok(()),
                        }
                    })
                    .collect()
            })
    };
    let stats = join_bounded(pool);
    assert_eq!(largest.load(Ordering::SeqCst), 10);
    assert_eq!(stats.processed, 20); // 10 at once, 10 on their second attempt
    assert_eq!(
        (stats.failed, stats.retried, stats.dead_lettered),
        (30, 20, 10)
    );
    assert_eq!(queue.stats().acked, 20);
    let mut dead: Vec<(u32, String)> = dlq
        .try_iter()
        .map(|m| {
            let reason = m.dead_letter().unwrap().reason().to_string();
            (m.into_payload(), reason)
        })
        .collect();
    dead.sort();
    let expected: Vec<(u32, String)> = (0..30)
        .filter(|p| p % 3 == 1)
        .map(|p| (p, format!("cannot process {p}")))
        .collect();
    assert_eq!(dead, expected);
}

#[test]
fn batch_handler_without_outcomes_or_panicking_fails_its_messages() {
    quiet_deliberate_panics();
    let dlq = Queue::unbounded();
    let queue = Queue::builder().dead_letter(&dlq, 1).build();
    queue.send_batch(0..6u32).unwrap();
    queue.close();
    let pool = queue.consume_batch(1, 3, |batch| {
        if *batch[0].payload() == 0 {
            Vec::<Result<(), String>>::new() // no outcome for anyone
        } else {
            panic!("{DELIBERATE} in a batch");
        }
    });
    let stats = join_bounded(pool);
    assert_eq!((stats.failed, stats.dead_lettered), (6, 6));
    assert_eq!(stats.panicked, 3);
    let reasons: HashSet<String> = dlq
        .try_iter()
        .map(|m| m.dead_letter().unwrap().reason().to_string())
        .collect();
    assert_eq!(
        reasons,
        HashSet::from([
            "the batch handler returned no outcome for this message".to_string(),
            format!("panicked: {DELIBERATE} in a batch"),
        ])
    );
}

#[test]
fn max_in_flight_caps_the_pool() {
    let queue = Queue::unbounded();
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let pool = {
        let (now, most) = (Arc::clone(&now), Arc::clone(&most));
        Consumer::new(&queue)
            .workers(4)
            .max_in_flight(2)
            .start(move |_m| {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                for _ in 0..50 {
                    thread::yield_now();
                }
                now.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), String>(())
            })
    };
    queue.send_batch(0..300).unwrap();
    queue.close();
    let stats = join_bounded(pool);
    assert_eq!(stats.processed, 300);
    assert!(most.load(Ordering::SeqCst) <= 2);
}

#[test]
fn stats_count_handler_time() {
    let queue = Queue::unbounded();
    let pool = queue.consume(1, |_m| {
        thread::sleep(Duration::from_millis(2)); // the work whose time is measured
        Ok::<(), String>(())
    });
    queue.send_batch(0..5).unwrap();
    queue.close();
    let stats = join_bounded(pool);
    assert!(stats.handler_time >= Duration::from_millis(10));
}

#[test]
fn stress_every_message_acked_once_or_dead_lettered() {
    quiet_deliberate_panics();
    const N: usize = 20_000;
    let dlq = Queue::unbounded();
    let queue = Queue::builder().dead_letter(&dlq, 3).build();
    let attempts: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
    let oks: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
    let pool = {
        let (attempts, oks) = (Arc::clone(&attempts), Arc::clone(&oks));
        Consumer::new(&queue)
            .workers(4)
            .retry(
                RetryPolicy::exponential(Duration::from_micros(100), Duration::from_millis(1))
                    .jitter(switchboard::Jitter::Full),
            )
            .start(move |m| {
                let p: usize = *m.payload();
                let n = attempts[p].fetch_add(1, Ordering::SeqCst);
                // A fixed pseudo-random draw per (message, attempt): 1% panics, 10% errors.
                let roll =
                    (p as u64 * 31 + u64::from(n) * 7919).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
                match roll % 100 {
                    0 => panic!("{DELIBERATE} on {p}"),
                    1..=10 => Err(format!("error on {p}")),
                    _ => {
                        oks[p].fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    }
                }
            })
    };
    queue.send_batch(0..N).unwrap();
    queue.close();
    let stats = join_bounded(pool);

    let dead: Vec<usize> = dlq.try_iter().map(|m| m.into_payload()).collect();
    let dead_set: HashSet<usize> = dead.iter().copied().collect();
    assert_eq!(dead.len(), dead_set.len(), "a message dead-lettered twice");
    for p in 0..N {
        let ok = oks[p].load(Ordering::SeqCst);
        if dead_set.contains(&p) {
            assert_eq!(ok, 0, "message {p} both acked and dead-lettered");
            assert_eq!(attempts[p].load(Ordering::SeqCst), 3);
        } else {
            assert_eq!(ok, 1, "message {p} acked {ok} times");
        }
    }
    let q = queue.stats();
    assert_eq!(q.acked as usize + dead.len(), N);
    assert_eq!((q.in_flight, q.visible, q.delayed), (0, 0, 0));
    assert_eq!(stats.processed, q.acked);
    assert_eq!(stats.dead_lettered as usize, dead.len());
    assert_eq!(stats.failed, stats.retried + stats.dead_lettered);
    assert_eq!(stats.lease_lost, 0);
    assert!(stats.panicked > 0 && stats.failed > 1000, "{stats:?}");
}

/// A payload that counts its drops.
struct Counted(u32, Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn drops() {
    quiet_deliberate_panics();
    const N: u32 = 500;
    let dropped = Arc::new(AtomicUsize::new(0));
    {
        let dlq = Queue::unbounded();
        let queue = Queue::builder().dead_letter(&dlq, 2).build();
        let pool = Consumer::new(&queue)
            .workers(4)
            .retry(RetryPolicy::immediate())
            .start(
                |m: &switchboard::Message<Counted>| match m.payload().0 % 10 {
                    0 => Err("error"),
                    1 => panic!("{DELIBERATE}"),
                    _ => Ok(()),
                },
            );
        queue
            .send_batch((0..N).map(|i| Counted(i, Arc::clone(&dropped))))
            .unwrap();
        wait_until("some work done", || pool.stats().processed > 50);
        pool.shutdown_timeout(LIMIT); // part-way: the rest stays queued
        let stats = join_bounded(pool);
        let q = queue.stats();
        assert_eq!(q.in_flight, 0);
        assert_eq!(
            q.acked as usize + queue.len() + dlq.len(),
            N as usize,
            "{stats:?}"
        );
        // Acked and discarded messages are dropped already; queued and dead letters are not.
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            q.acked as usize,
            "acked messages are dropped exactly once"
        );
    }
    assert_eq!(dropped.load(Ordering::SeqCst), N as usize);
}

/// A shutdown wakes the idle workers blocked in their receive; only a lost wake-up would leave
/// them to the end of their receive slice (`POLL`, 100 ms). The workers are first seen asleep
/// in the kernel (still spinning, they would see the stop flag by themselves), and the bound,
/// 75 ms, is under the slice (found by mutation testing: with the wake-up removed the test
/// passed, its bound being 900 ms from when the slice was a second). Single and batch workers,
/// on an unbounded queue (wake-ups travel its lane) and a bounded one (they ring a bell beside
/// it).
#[test]
fn shutdown_of_an_idle_pool_is_prompt() {
    for bounded in [false, true] {
        for batch in [false, true] {
            // Three tries, any under the bound: a machine loaded by the other tests may hold a
            // worker's wake-up up once; a lost wake-up holds every try up to the slice's end.
            let mut took = Vec::new();
            for _ in 0..3 {
                let builder = Queue::builder().name("idle");
                let queue: Queue<u32> = if bounded {
                    builder.capacity(16)
                } else {
                    builder
                }
                .build();
                let pool = if batch {
                    queue.consume_batch(4, 8, |ms| vec![Ok::<(), String>(()); ms.len()])
                } else {
                    queue.consume(4, |_m| Ok::<(), String>(()))
                };
                let names: Vec<String> = (0..4).map(|w| format!("idle-worker-{w}")).collect();
                wait_until("the workers block in their receive", || {
                    names.iter().all(|n| common::is_sleeping(n))
                });
                let start = Instant::now();
                assert!(pool.shutdown().is_clean());
                took.push(start.elapsed());
                assert!(pool.is_finished());
                assert_eq!(pool.join().workers, 0);
                if took.last() < Some(&Duration::from_millis(75)) {
                    break;
                }
            }
            assert!(
                took.last() < Some(&Duration::from_millis(75)),
                "bounded {bounded}, batch {batch}: {took:?}"
            );
        }
    }
}

#[test]
fn handles_and_reports_are_send_and_sync() {
    fn check<X: Send + Sync>() {}
    check::<ConsumerHandle<String>>();
    check::<Consumer<String>>();
    check::<ConsumerStats>();
    check::<ShutdownReport>();
    check::<RetryPolicy>();
}

/// A queue fix this branch carries (src/queue/core.rs, `try_take`): a receiver that returned
/// `Closed` could have swallowed the wake tokens `close` sent to the others, leaving them blocked
/// forever in a receive without a deadline. A pool's workers poll, so they never hung; plain
/// leased receive loops did (about one round in two before the fix).
#[test]
fn close_wakes_every_blocked_leased_receiver() {
    for round in 0..50 {
        let q: Queue<u64> = Queue::unbounded();
        // Named (unique per round) so that /proc tells when each is blocked.
        let names: Vec<String> = (0..4).map(|i| format!("recv-{round}-{i}")).collect();
        let receivers: Vec<_> = names
            .iter()
            .map(|name| {
                let q = q.clone();
                thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || {
                        while let Ok(d) = q.receive() {
                            d.ack().unwrap();
                        }
                    })
                    .unwrap()
            })
            .collect();
        q.send_batch(0..1000).unwrap();
        wait_until("all acked", || q.stats().acked == 1000);
        // Nothing is left to receive: each receiver ends up blocked in `receive`.
        wait_until("all receivers block again", || {
            names.iter().all(|name| common::is_sleeping(name))
        });
        q.close();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for r in receivers {
                r.join().unwrap();
            }
            let _ = tx.send(());
        });
        rx.recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("round {round}: receivers still blocked after close"));
    }
}

/// A heartbeat interval too long to express as an instant (`Duration::MAX`) never ticks; the
/// supervisor stays up and still enforces the shutdown deadline.
#[test]
fn a_heartbeat_of_duration_max_never_ticks_and_the_deadline_holds() {
    let queue: Queue<u8> = Queue::unbounded();
    let gate = Gate::default();
    let pool = {
        let gate = gate.clone();
        Consumer::new(&queue)
            .heartbeat(Duration::MAX)
            .shutdown_timeout(Duration::from_millis(50))
            .start(move |_| {
                gate.wait();
                Ok::<(), String>(())
            })
    };
    queue.send(1).unwrap();
    wait_until("the handler runs", || gate.entered() == 1);
    // Shut down on another thread, bounded: a dead supervisor would wait for the handler, which
    // waits for the gate, for ever.
    let (tx, rx) = mpsc::channel();
    let shutting = thread::spawn(move || {
        let _ = tx.send(pool.shutdown());
    });
    let report = rx.recv_timeout(LIMIT);
    gate.open();
    shutting.join().unwrap();
    let report = report.expect("the shutdown deadline was not enforced");
    assert_eq!((report.still_running, report.released), (1, 1));
    assert_eq!(queue.stats().in_flight, 0);
}

/// Dropping the handle starts the same shutdown as `shutdown`, with the same deadline: a
/// shutdown timeout too long to add to now means "no deadline", not one second.
#[test]
fn dropping_the_handle_with_an_endless_shutdown_timeout_never_releases_a_running_handler() {
    let clock_free_wait = Duration::from_millis(1500);
    let queue = Queue::unbounded();
    let gate = Gate::default();
    let pool = {
        let gate = gate.clone();
        Consumer::new(&queue)
            .shutdown_timeout(Duration::MAX)
            .start(move |_| {
                gate.wait();
                Ok::<(), String>(())
            })
    };
    queue.send(1u32).unwrap();
    wait_until("the handler runs", || gate.entered() == 1);
    drop(pool);
    // The old fallback released the message after one second; watch for half as long again.
    let start = Instant::now();
    while start.elapsed() < clock_free_wait {
        assert_eq!(
            queue.stats().in_flight,
            1,
            "released while its handler runs"
        );
        thread::sleep(Duration::from_millis(5));
    }
    gate.open();
    wait_until("the handler's verdict lands", || queue.stats().acked == 1);
}

#[test]
fn exponential_backoff_from_zero_stays_zero() {
    let p = RetryPolicy::exponential(Duration::ZERO, Duration::from_secs(60));
    for attempt in [1, 2, 1024, 1100, u32::MAX] {
        assert_eq!(p.delay(attempt), Duration::ZERO, "attempt {attempt}");
    }
    let steep =
        RetryPolicy::exponential(Duration::ZERO, Duration::from_secs(60)).factor(f64::INFINITY);
    assert_eq!(steep.delay(2), Duration::ZERO);
}

/// An error whose `Display` panics is a panicking handler: counted, retried, and the worker
/// carries on (it used to kill the worker and leak its in-flight permit).
#[test]
fn an_error_whose_display_panics_counts_as_a_panic_and_the_worker_carries_on() {
    quiet_deliberate_panics();
    struct Bad;
    impl std::fmt::Display for Bad {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("{DELIBERATE} in Display");
        }
    }
    let dlq = Queue::unbounded();
    let queue = Queue::builder().dead_letter(&dlq, 1).build();
    queue.send_batch(["bad", "good"]).unwrap();
    let pool = Consumer::new(&queue)
        .workers(1)
        .max_in_flight(1)
        .start(|m| {
            if *m.payload() == "bad" {
                Err(Bad)
            } else {
                Ok(())
            }
        });
    wait_until("both were handled", || {
        let s = pool.stats();
        s.processed == 1 && s.dead_lettered == 1
    });
    let s = pool.stats();
    assert_eq!((s.workers, s.failed, s.panicked), (1, 1, 1));
    assert!(dlq
        .try_recv()
        .unwrap()
        .dead_letter()
        .unwrap()
        .reason()
        .starts_with("panicked"));

    // The same in a batch handler.
    assert!(pool.shutdown().is_clean());
    queue.send_batch(["bad", "good"]).unwrap();
    queue.close();
    let batch = queue.consume_batch(1, 2, |ms| {
        ms.iter()
            .map(|m| {
                if *m.payload() == "bad" {
                    Err(Bad)
                } else {
                    Ok(())
                }
            })
            .collect()
    });
    let s = join_bounded(batch);
    // A panic fails the whole batch: both are retried (here, dead-lettered at once).
    assert_eq!(
        (s.processed, s.failed, s.panicked, s.dead_lettered),
        (0, 2, 2, 2)
    );
    assert_eq!(dlq.len(), 2);
}

/// `shutdown` from inside one of the pool's own handlers starts the shutdown and returns at
/// once; the handler's verdict still counts.
#[test]
fn shutdown_from_inside_a_handler_returns_at_once_and_keeps_the_verdict() {
    let queue = Queue::unbounded();
    let handle: Arc<std::sync::OnceLock<ConsumerHandle<u32>>> = Arc::default();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let pool = {
        let handle = Arc::clone(&handle);
        Consumer::new(&queue)
            .shutdown_timeout(LIMIT)
            .start(move |_| {
                let h = handle.get().expect("set before the first send");
                let t = Instant::now();
                let report = h.shutdown();
                let _ = tx.lock().unwrap().send((t.elapsed(), report));
                Ok::<(), String>(())
            })
    };
    let _ = handle.set(pool);
    queue.send(1).unwrap();
    let (took, report) = rx.recv_timeout(LIMIT).expect("shutdown returned");
    assert!(took < LIMIT / 2, "waited {took:?} for its own worker");
    assert_eq!(report.released, 0);
    wait_until("the lease is settled", || queue.stats().in_flight == 0);
    assert_eq!((queue.stats().acked, queue.len()), (1, 0));
    wait_until("the pool ends", || handle.get().unwrap().is_finished());
}

/// An idle pool shuts down promptly even when other receivers of the same queue take the
/// wake-up meant for its workers (before, its workers slept until a 1 s backstop).
#[test]
fn an_idle_pool_shuts_down_promptly_beside_other_receivers_of_its_queue() {
    let queue: Queue<u32> = Queue::builder().name("idle").build();
    let other = queue.consume(4, |_| Ok::<(), String>(()));
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let pool = queue.consume(1, |_| Ok::<(), String>(()));
        // Every worker named "idle-worker-0" (one per pool) blocked in its receive.
        wait_until("the workers block", || {
            common::all_sleeping("idle-worker-0")
        });
        let t = Instant::now();
        assert!(pool.shutdown().is_clean());
        worst = worst.max(t.elapsed());
    }
    assert!(other.shutdown().is_clean());
    assert!(
        worst < Duration::from_millis(600),
        "an idle shutdown took {worst:?}"
    );
}

/// A handler started with `start_with_delivery` sees each attempt's delivery: its number, the
/// same first-delivery time on every attempt, and the pool still settles it by the result.
#[test]
fn a_delivery_handler_sees_the_attempts_and_is_settled_by_its_result() {
    let dlq = Queue::unbounded();
    let queue = Queue::builder().dead_letter(&dlq, 2).build();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pool = {
        let seen = Arc::clone(&seen);
        Consumer::new(&queue)
            .retry(RetryPolicy::fixed(Duration::ZERO))
            .start_with_delivery(move |d| {
                seen.lock().unwrap().push((
                    *d.message().payload(),
                    d.attempt(),
                    d.first_delivered_at(),
                ));
                if *d.message().payload() == "poison" {
                    Err("no")
                } else {
                    Ok(())
                }
            })
    };
    queue.send_batch(["poison", "fine"]).unwrap();
    queue.close();
    let stats = join_bounded(pool);
    assert_eq!(
        (stats.processed, stats.dead_lettered, stats.retried),
        (1, 1, 1)
    );
    let seen = seen.lock().unwrap();
    let poison: Vec<_> = seen.iter().filter(|s| s.0 == "poison").collect();
    assert_eq!(poison.iter().map(|s| s.1).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        poison[0].2, poison[1].2,
        "first delivery time kept across attempts"
    );
    assert_eq!(dlq.try_recv().unwrap().into_payload(), "poison");
}

/// A payload whose drop panics (user code, run at the ack, outside the handler's guard) ends
/// its worker, and `join` hands the panic on; the worker gives back its share of
/// `max_in_flight` as it goes, so the workers left carry on and the pool drains (found by
/// review: the dead worker kept its permit, and the others waited for it for ever).
#[test]
fn a_worker_ended_by_a_panicking_drop_gives_back_its_in_flight_permit() {
    quiet_deliberate_panics();
    struct Bomb(bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            if self.0 && !thread::panicking() {
                panic!("{DELIBERATE} in a payload's drop");
            }
        }
    }
    let queue: Queue<Bomb> = Queue::unbounded();
    queue.send(Bomb(true)).unwrap();
    queue.send(Bomb(false)).unwrap();
    queue.close();
    let pool = Consumer::new(&queue)
        .workers(2)
        .max_in_flight(1)
        .start(|_| Ok::<(), String>(()));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.join()));
        tx.send(joined.is_err()).unwrap();
    });
    let panicked = rx
        .recv_timeout(LIMIT)
        .expect("the pool never drained: a worker waited for a permit the dead one kept");
    assert!(panicked, "join hands on the worker's panic");
    assert_eq!(queue.stats().acked, 2);
}

/// A batch worker under `max_in_flight` keeps only the permits of the messages it received: one
/// that took every permit and got a single message leaves the rest to the other workers (it
/// used to keep them until its batch was done, so a second message waited beside an idle worker
/// while the pool held one message of its two).
#[test]
fn a_batch_worker_gives_back_the_permits_its_batch_did_not_use() {
    let queue: Queue<u32> = Queue::unbounded();
    let gate = Gate::default();
    let pool = {
        let gate = gate.clone();
        Consumer::new(&queue)
            .workers(2)
            .max_in_flight(2)
            .start_batch(2, move |batch| {
                if *batch[0].payload() == 0 {
                    gate.wait();
                }
                vec![Ok::<(), String>(()); batch.len()]
            })
    };
    queue.send(0).unwrap();
    wait_until("the first batch runs", || gate.entered() == 1);
    queue.send(1).unwrap();
    let start = Instant::now();
    while pool.stats().processed == 0 && start.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(1));
    }
    let processed = pool.stats().processed;
    gate.open();
    assert_eq!(
        processed, 1,
        "the second message waited for the first batch"
    );
    queue.close();
    assert_eq!(join_bounded(pool).processed, 2);
}

/// A shutdown whose deadline has already passed counts, as still running, only the handlers
/// that were running: an idle worker that had not yet ended is not one.
#[test]
fn an_immediate_shutdown_of_an_idle_pool_reports_no_running_handler() {
    for round in 0..20 {
        let queue: Queue<u32> = Queue::unbounded();
        let pool = queue.consume(4, |_m| Ok::<(), String>(()));
        wait_until("the workers wait", || pool.stats().workers == 4);
        let report = pool.shutdown_timeout(Duration::ZERO);
        assert_eq!(report.still_running, 0, "round {round}: {report:?}");
        assert!(report.is_clean(), "round {round}: {report:?}");
        assert_eq!(join_bounded(pool).workers, 0);
    }
}

/// `shutdown` from inside a handler counts that handler as still running, and not the idle
/// workers beside it.
#[test]
fn shutdown_from_inside_a_handler_counts_only_the_running_handlers() {
    let queue = Queue::unbounded();
    let handle: Arc<std::sync::OnceLock<ConsumerHandle<u32>>> = Arc::default();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let pool = {
        let handle = Arc::clone(&handle);
        Consumer::new(&queue).workers(4).start(move |_| {
            let _ = tx.lock().unwrap().send(handle.get().unwrap().shutdown());
            Ok::<(), String>(())
        })
    };
    let _ = handle.set(pool);
    wait_until("the workers wait", || {
        handle.get().unwrap().stats().workers == 4
    });
    queue.send(1).unwrap();
    let report = rx.recv_timeout(LIMIT).expect("shutdown returned");
    assert_eq!(report.still_running, 1, "{report:?}");
    wait_until("the pool ends", || handle.get().unwrap().is_finished());
}

/// Runs a one-worker pool over `queue` (closed, so it drains and ends) until the worker ends,
/// which a payload's panicking drop does; returns the pool's stats then. `join` hands that
/// panic on.
fn run_until_a_drop_panics(
    queue: &Queue<common::Bomb>,
    start: impl FnOnce(Consumer<common::Bomb>) -> ConsumerHandle<common::Bomb>,
) -> ConsumerStats {
    quiet_deliberate_panics();
    queue.close();
    let pool = start(Consumer::new(queue).workers(1));
    wait_until("the worker ended", || pool.is_finished());
    let stats = pool.stats();
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.join()));
    assert!(joined.is_err(), "the payload's drop panicked");
    stats
}

/// A worker whose verdict drops a payload that panics counts the verdict first: the message
/// was acked (or discarded on its last attempt), and the stats say so (found by an audit of
/// payload drops: the count came after the drop, so the panic left it out, and every finished
/// attempt was no longer counted once).
#[test]
fn a_panicking_drop_at_a_verdict_is_counted() {
    // Acked.
    let bombs = common::Bombs::new(1, 0);
    let queue = Queue::unbounded();
    queue.send(bombs.make(0)).unwrap();
    let stats = run_until_a_drop_panics(&queue, |c| c.start(|_| Ok::<(), String>(())));
    assert_eq!((stats.processed, stats.lease_lost), (1, 0), "{stats:?}");
    assert_eq!(queue.stats().acked, 1);

    // Failed on its last attempt, with no dead-letter queue: discarded.
    let bombs = common::Bombs::new(1, 0);
    let queue = Queue::builder().max_attempts(1).build();
    queue.send(bombs.make(0)).unwrap();
    let stats = run_until_a_drop_panics(&queue, |c| c.start(|_| Err("no")));
    assert_eq!((stats.failed, stats.dead_lettered), (1, 1), "{stats:?}");
    assert_eq!(queue.stats().discarded, 1);
    assert_eq!(bombs.dropped(0), 1);
}

/// A batch worker whose verdict on one message drops a payload that panics (a failed message
/// discarded on its last attempt) still gives every other message of the batch its verdict:
/// those the handler processed are acked, not put back as abandoned (found by an audit of
/// payload drops: the panic dropped the rest of the batch unsettled, and with `max_attempts(1)`
/// the queue then discarded messages the handler had processed).
#[test]
fn a_panicking_drop_in_a_batch_verdict_settles_the_rest_of_the_batch() {
    let bombs = common::Bombs::new(3, 1);
    let queue = Queue::builder().max_attempts(1).build();
    queue.send_batch((0..3).map(|i| bombs.make(i))).unwrap();
    let stats = run_until_a_drop_panics(&queue, |c| {
        c.start_batch(3, |batch| {
            batch
                .iter()
                .map(|m| {
                    if m.payload().id == 1 {
                        Err("no")
                    } else {
                        Ok(())
                    }
                })
                .collect()
        })
    });
    assert_eq!(
        (stats.processed, stats.failed, stats.dead_lettered),
        (2, 1, 1),
        "{stats:?}"
    );
    let s = queue.stats();
    assert_eq!(
        (s.acked, s.discarded, s.abandoned, s.in_flight, s.visible),
        (2, 1, 0, 0, 0),
        "{s:?}"
    );
    for id in 0..3 {
        assert_eq!(bombs.dropped(id), 1, "payload {id}");
    }
}

/// A payload that takes a while to drop, and counts the handled payloads not yet dropped.
struct SlowDrop(Arc<AtomicUsize>);

impl Drop for SlowDrop {
    fn drop(&mut self) {
        thread::sleep(Duration::from_millis(15));
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `max_in_flight` caps the messages the whole pool holds at once: an acked message is let go
/// of before its permit goes back, or another worker leases a new one while the pool still
/// holds it (the payload-drop audit had the permit go back first; found by review).
#[test]
fn max_in_flight_counts_a_message_until_it_is_dropped() {
    for batch in [false, true] {
        let queue = Queue::unbounded();
        let held = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let enter = {
            let (held, most) = (Arc::clone(&held), Arc::clone(&most));
            move || {
                let n = held.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
            }
        };
        let builder = Consumer::new(&queue).workers(2).max_in_flight(1);
        let pool = if batch {
            builder.start_batch(4, move |ms| {
                ms.iter()
                    .map(|_| {
                        enter();
                        Ok::<(), String>(())
                    })
                    .collect()
            })
        } else {
            builder.start(move |_m| {
                enter();
                Ok::<(), String>(())
            })
        };
        queue
            .send_batch((0..8).map(|_| SlowDrop(Arc::clone(&held))))
            .unwrap();
        queue.close();
        let stats = join_bounded(pool);
        assert_eq!(stats.processed, 8);
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "batch {batch}: the pool held more than max_in_flight messages"
        );
    }
}

/// A message sent after a shutdown whose deadline has passed stays in the queue, its attempt
/// unspent, though workers still in their receive may take it: they give it back as if they had
/// not. Found by review: such a worker dropped the delivery, which spent an attempt, so on its
/// last one the message was dead-lettered with no handler ever seeing it.
#[test]
fn a_message_sent_after_an_expired_shutdown_keeps_its_attempt() {
    let mut burnt = Vec::new();
    for i in 0..200u32 {
        let dlq: Queue<u32> = Queue::unbounded();
        let queue: Queue<u32> = Queue::builder().dead_letter(&dlq, 1).build();
        let handled = Arc::new(AtomicUsize::new(0));
        let pool = {
            let handled = Arc::clone(&handled);
            Consumer::new(&queue).workers(16).start(move |_| {
                handled.fetch_add(1, Ordering::SeqCst);
                Ok::<(), String>(())
            })
        };
        let _ = pool.shutdown_timeout(Duration::ZERO);
        queue.send(i).unwrap();
        join_bounded(pool);
        match queue.try_receive() {
            Ok(d) if dlq.is_empty() => {
                assert_eq!(d.attempt(), 1, "run {i}: an attempt was spent unseen");
            }
            _ => burnt.push((i, handled.load(Ordering::SeqCst), dlq.len())),
        }
    }
    // (run, handler calls, dead letters)
    assert_eq!(
        burnt,
        [],
        "messages sent after the shutdown were dead-lettered unhandled"
    );
}

/// Bounds this binary in time: a hanging test fails the run (see `common::start_watchdog`).
#[test]
fn _watchdog() {
    common::start_watchdog();
}

/// A cloned pool builder starts a pool alike on the same queue: the two compete for its
/// messages, and each message is handled once.
#[test]
fn a_cloned_consumer_starts_a_competing_pool_alike() {
    let queue: Queue<u32> = Queue::unbounded();
    let builder = Consumer::new(&queue).workers(2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = |seen: Arc<Mutex<Vec<u32>>>| {
        move |m: &switchboard::Message<u32>| {
            seen.lock().unwrap().push(*m.payload());
            Ok::<(), Failure>(())
        }
    };
    let one = builder.clone().start(handler(Arc::clone(&seen)));
    let two = builder.start(handler(Arc::clone(&seen)));
    assert_eq!((one.workers(), two.workers()), (2, 2));
    for i in 0..100 {
        queue.send(i).unwrap();
    }
    queue.close(); // the pools end once it is drained
    let (a, b) = (one.join(), two.join());
    let mut got = seen.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(a.processed + b.processed, 100);
}

/// A shutdown deadline spends the attempt of a lease it ends, as an expired lease does: on a
/// queue that limits attempts without a dead-letter queue, a message on its last attempt is
/// discarded by the queue's rule, and counted there (the pool's docs say so).
#[test]
fn a_shutdown_deadline_on_a_last_attempt_follows_the_queues_limit() {
    let queue: Queue<u32> = Queue::builder().max_attempts(1).build();
    let (go, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let started = Arc::new(AtomicUsize::new(0));
    let pool = {
        let started = Arc::clone(&started);
        Consumer::new(&queue)
            .shutdown_timeout(Duration::from_millis(10))
            .start(move |_| {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = wait.lock().unwrap().recv_timeout(LIMIT); // still at work at the deadline
                Ok::<(), String>(())
            })
    };
    queue.send(1).unwrap();
    wait_until("the handler started", || {
        started.load(Ordering::SeqCst) == 1
    });
    let report = pool.shutdown();
    assert_eq!((report.still_running, report.released), (1, 1));
    go.send(()).unwrap();
    let stats = join_bounded(pool);
    assert_eq!((stats.processed, stats.lease_lost), (0, 1));
    let q = queue.stats();
    assert_eq!((queue.len(), q.discarded, q.acked), (0, 1, 0), "{q:?}");
}

/// A handler sees its lease's deadline as the pool's heartbeat extended it, not as it was at
/// the receive (found by review: it saw a deadline in the past while it held the lease).
#[test]
fn a_handler_sees_the_lease_deadline_the_heartbeat_extended() {
    let clock = ManualClock::new();
    let queue: Queue<u32> = Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(Duration::from_secs(10))
        .build();
    let (go, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let (seen_tx, seen) = mpsc::channel::<(Instant, Instant)>();
    let seen_tx = Mutex::new(seen_tx);
    let started = Arc::new(AtomicUsize::new(0));
    let pool = {
        let (clock, started) = (clock.clone(), Arc::clone(&started));
        Consumer::new(&queue)
            .heartbeat(Duration::from_millis(1))
            .start_with_delivery(move |d| {
                let received = d.lease_deadline();
                started.fetch_add(1, Ordering::SeqCst);
                wait.lock().unwrap().recv_timeout(LIMIT).unwrap();
                assert!(d.lease_deadline() > received, "the heartbeat moved it on");
                seen_tx
                    .lock()
                    .unwrap()
                    .send((d.lease_deadline(), clock.now()))
                    .unwrap();
                Ok::<(), String>(())
            })
    };
    queue.send(1).unwrap();
    wait_until("the handler started", || {
        started.load(Ordering::SeqCst) == 1
    });
    clock.advance(Duration::from_secs(6)); // 4 s left: the heartbeat extends it
    wait_until("a heartbeat", || pool.stats().heartbeats >= 1);
    clock.advance(Duration::from_secs(5)); // past the first deadline, within the new one
    go.send(()).unwrap();
    let (deadline, now) = seen.recv_timeout(LIMIT).unwrap();
    assert!(
        deadline > now,
        "the lease runs on, yet it ended {:?} ago",
        now - deadline
    );
    queue.close();
    let stats = join_bounded(pool);
    assert_eq!(
        (stats.processed, stats.failed),
        (1, 0),
        "the lease was held all along"
    );
}

/// `join` from one of the pool's own handlers would wait for its own worker for ever: it
/// panics instead (found by review: it hung).
#[test]
fn join_from_a_handler_panics_instead_of_hanging() {
    let queue: Queue<u32> = Queue::unbounded();
    let slot: Arc<Mutex<Option<ConsumerHandle<u32>>>> = Arc::default();
    let (joined_tx, joined) = mpsc::channel::<bool>();
    let (go, wait) = mpsc::channel::<()>();
    let (joined_tx, wait) = (Mutex::new(joined_tx), Mutex::new(wait));
    let pool = {
        let (slot, queue) = (Arc::clone(&slot), queue.clone());
        Consumer::new(&queue).workers(2).start(move |_| {
            if thread::current().name().is_some_and(|n| n.ends_with("-0")) {
                // The worker `join` waits for first stays at work until the test is over.
                let _ = wait.lock().unwrap().recv_timeout(LIMIT);
                return Ok(());
            }
            let handle = slot.lock().unwrap().take().unwrap();
            queue.close();
            let ended =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.join())).is_ok();
            joined_tx.lock().unwrap().send(ended).unwrap();
            Ok::<(), String>(())
        })
    };
    *slot.lock().unwrap() = Some(pool);
    queue.send_batch([1, 2]).unwrap();
    let result = joined.recv_timeout(Duration::from_secs(5));
    go.send(()).unwrap();
    assert_eq!(result, Ok(false), "join panicked at once");
}

// ----- mutation-testing additions -------------------------------------------------------------

/// `rejected` counts only the failures the handler rejected: a retried failure that used up the
/// queue's attempts is dead-lettered, not rejected.
#[test]
fn an_exhausted_retry_is_dead_lettered_but_not_counted_as_rejected() {
    let dlq = Queue::unbounded();
    let queue = Queue::builder().dead_letter(&dlq, 1).build();
    let pool = Consumer::new(&queue).start(|_m| Err::<(), _>("transient"));
    queue.send(1u32).unwrap();
    queue.close();
    let stats = join_bounded(pool);
    assert_eq!(
        (stats.failed, stats.dead_lettered, stats.rejected),
        (1, 1, 0)
    );
    assert_eq!(dlq.len(), 1);
}

/// "Calling it again is harmless; an earlier deadline wins": a second shutdown with a later
/// deadline returns at the first one's.
#[test]
fn a_later_shutdown_deadline_does_not_replace_an_earlier_one() {
    let queue = Queue::unbounded();
    let gate = Gate::default();
    let pool = {
        let gate = gate.clone();
        queue.consume(1, move |_m| {
            gate.wait();
            Ok::<(), String>(())
        })
    };
    queue.send(1u32).unwrap();
    wait_until("the handler started", || gate.entered() == 1);
    thread::scope(|s| {
        let early = common::spawn_named(s, "early-shutdown", || {
            pool.shutdown_timeout(Duration::from_millis(200))
        });
        common::wait_blocked("early-shutdown"); // its deadline is registered
        let t0 = Instant::now();
        let late = pool.shutdown_timeout(LIMIT);
        assert!(t0.elapsed() < LIMIT / 2, "waited for the later deadline");
        assert_eq!((late.still_running, late.released), (1, 1));
        assert_eq!(early.join().unwrap().still_running, 1);
    });
    gate.open();
    assert_eq!(join_bounded(pool).lease_lost, 1);
}

/// A payload whose drop (user code) blocks until the test opens it, and tells when it started.
struct GatedDrop(Option<Arc<(std::sync::atomic::AtomicBool, std::sync::atomic::AtomicBool)>>);

impl Drop for GatedDrop {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.0.store(true, Ordering::SeqCst);
            let t0 = Instant::now();
            while !g.1.load(Ordering::SeqCst) && t0.elapsed() < LIMIT {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// A worker whose receive is still under way at the shutdown deadline (here: held up dropping
/// an expired message it stepped over) gives the message it then takes back "as if never
/// received, its attempt unspent": on a queue of one attempt, it is not discarded.
#[test]
fn a_message_taken_after_the_shutdown_deadline_goes_back_with_its_attempt_unspent() {
    use std::sync::atomic::AtomicBool;
    let clock = ManualClock::new();
    let queue: Queue<GatedDrop> = Queue::builder()
        .clock(clock.clone())
        .max_attempts(1)
        .build();
    let gate = Arc::new((AtomicBool::new(false), AtomicBool::new(false)));
    let expiring = switchboard::Message::new(GatedDrop(Some(Arc::clone(&gate))));
    queue
        .send(expiring.with_ttl(Duration::from_secs(1)))
        .unwrap();
    queue.send(GatedDrop(None)).unwrap();
    clock.advance(Duration::from_secs(2)); // the first expired: a receive drops it, takes the next
    let pool = queue.consume(1, |_m| Ok::<(), String>(()));
    wait_until("the receive drops the expired message", || {
        gate.0.load(Ordering::SeqCst)
    });
    let report = pool.shutdown_timeout(Duration::from_millis(10));
    assert_eq!(report.still_running, 0);
    gate.1.store(true, Ordering::SeqCst);
    let stats = join_bounded(pool);
    assert_eq!((stats.processed, stats.released), (0, 1));
    let s = queue.stats();
    assert_eq!((s.expired, s.discarded, s.abandoned), (1, 0, 1));
    let d = queue
        .try_receive()
        .expect("the message is back in the queue");
    assert_eq!(d.attempt(), 1);
    d.ack().unwrap();
}

#[test]
fn a_shutdown_report_is_clean_only_with_nothing_running_and_nothing_released() {
    let mut r = ShutdownReport::default();
    assert!(r.is_clean());
    r.still_running = 1;
    assert!(!r.is_clean());
    r.still_running = 0;
    r.released = 1;
    assert!(!r.is_clean());
}
