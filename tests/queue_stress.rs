//! Concurrency stress: several senders and receivers, bounded in count and time.
//!
//! Every wait has a deadline that fails the test instead of hanging it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use switchboard::{Queue, RecvTimeoutError};

use common::Rng;

/// How long any one test may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(30);

fn counters(n: usize) -> Vec<AtomicU32> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

#[test]
fn leased_consumers_with_random_verdicts_ack_each_message_once() {
    const SENDERS: u32 = 3;
    const PER: u32 = 5_000;
    const N: usize = (SENDERS * PER) as usize;
    let start = Instant::now();
    let deadline = start + LIMIT;
    let q: Queue<u32> = Queue::builder()
        .capacity(64)
        .visibility_timeout(Duration::from_secs(60))
        .build();
    let acked = counters(N);
    let receipts = counters(N);
    let stale_acks = AtomicU64::new(0);

    thread::scope(|s| {
        let senders: Vec<_> = (0..SENDERS)
            .map(|t| {
                let q = q.clone();
                s.spawn(move || {
                    for i in 0..PER {
                        let r = q.send_deadline(t * PER + i, deadline);
                        assert!(r.is_ok(), "sender {t} stuck at {i}");
                    }
                })
            })
            .collect();
        let receivers: Vec<_> = (0..3u64)
            .map(|r| {
                let q = q.clone();
                let (acked, receipts, stale_acks) = (&acked, &receipts, &stale_acks);
                s.spawn(move || {
                    let mut rng = Rng::new(r + 1);
                    loop {
                        let short = rng.below(200) == 0;
                        let got = if short {
                            q.with_visibility(Duration::from_millis(1))
                                .receive_deadline(deadline)
                        } else {
                            q.receive_deadline(deadline)
                        };
                        let d = match got {
                            Ok(d) => d,
                            Err(RecvTimeoutError::Closed) => return,
                            Err(RecvTimeoutError::Timeout) => panic!("receiver {r} timed out"),
                        };
                        let id = *d.payload() as usize;
                        receipts[id].fetch_add(1, Ordering::Relaxed);
                        if short {
                            // Hold the lease well past its deadline (the queue's clock is coarse:
                            // a few ms a tick), then ack: the lease has ended, so the ack fails.
                            let until = d.lease_deadline() + Duration::from_millis(25);
                            while Instant::now() < until {
                                assert!(Instant::now() < deadline);
                                thread::yield_now();
                            }
                            match d.ack() {
                                Ok(()) => {
                                    acked[id].fetch_add(1, Ordering::Relaxed);
                                }
                                Err(_) => {
                                    stale_acks.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            continue;
                        }
                        match rng.below(10) {
                            0 => d.nack().unwrap(),
                            1 => drop(d),
                            _ => {
                                d.ack().unwrap();
                                acked[id].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for h in senders {
            h.join().unwrap();
        }
        q.close();
        for h in receivers {
            h.join().unwrap();
        }
    });
    assert!(start.elapsed() < LIMIT);

    for id in 0..N {
        let a = acked[id].load(Ordering::Relaxed);
        assert_eq!(a, 1, "message {id} acked {a} times");
        assert!(receipts[id].load(Ordering::Relaxed) >= 1);
    }
    let s = q.stats();
    let receipts: u64 = receipts
        .iter()
        .map(|c| u64::from(c.load(Ordering::Relaxed)))
        .sum();
    assert_eq!((s.sent, s.acked), (N as u64, N as u64));
    assert_eq!((s.visible, s.in_flight, s.delayed), (0, 0, 0));
    assert_eq!(s.received, receipts);
    assert_eq!(s.redelivered, receipts - N as u64);
    // Every delivery ended exactly one way.
    assert_eq!(
        s.received,
        s.acked + s.nacked + s.abandoned + s.lease_expired
    );
    let stale = stale_acks.load(Ordering::Relaxed);
    assert!(
        stale > 0,
        "no lease ran out: the expiry path was not exercised"
    );
    assert_eq!(s.lease_expired, stale);
    assert_eq!((s.expired, s.dead_lettered, s.discarded), (0, 0, 0));
    assert!(q.try_receive().unwrap_err().is_closed());
}

#[test]
fn plain_mpmc_loses_and_duplicates_nothing() {
    const SENDERS: u32 = 4;
    const PER: u32 = 10_000;
    const N: usize = (SENDERS * PER) as usize;
    let deadline = Instant::now() + LIMIT;
    for q in [Queue::bounded(32), Queue::unbounded(), Queue::bounded(1)] {
        let seen = counters(N);
        thread::scope(|s| {
            let senders: Vec<_> = (0..SENDERS)
                .map(|t| {
                    let q = q.clone();
                    s.spawn(move || {
                        // Half the senders send one by one, half in batches.
                        if t % 2 == 0 {
                            for i in 0..PER {
                                assert!(q.send_deadline(t * PER + i, deadline).is_ok());
                            }
                        } else {
                            for chunk in (0..PER).collect::<Vec<_>>().chunks(100) {
                                let batch = chunk.iter().map(|i| t * PER + i);
                                assert_eq!(q.send_batch(batch).unwrap(), chunk.len());
                            }
                        }
                    })
                })
                .collect();
            let receivers: Vec<_> = (0..4)
                .map(|r| {
                    let q = q.clone();
                    let seen = &seen;
                    s.spawn(move || loop {
                        let got = if r == 3 {
                            match q.recv_many(16, Duration::from_millis(1)) {
                                Ok(v) => v,
                                Err(_) => return,
                            }
                        } else {
                            match q.recv_deadline(deadline) {
                                Ok(m) => vec![m],
                                Err(RecvTimeoutError::Closed) => return,
                                Err(RecvTimeoutError::Timeout) => panic!("receiver {r} timed out"),
                            }
                        };
                        assert!(Instant::now() < deadline, "receiver {r} ran too long");
                        for m in got {
                            seen[m.into_payload() as usize].fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for h in senders {
                h.join().unwrap();
            }
            q.close();
            for h in receivers {
                h.join().unwrap();
            }
        });
        for (id, c) in seen.iter().enumerate() {
            assert_eq!(c.load(Ordering::Relaxed), 1, "message {id}");
        }
        let st = q.stats();
        assert_eq!((st.sent, st.received, st.visible), (N as u64, N as u64, 0));
    }
}

#[test]
fn plain_and_leased_receivers_share_returned_messages() {
    // Leased receivers nack and drop; plain receivers take returned messages by value.
    const N: usize = 8_000;
    let deadline = Instant::now() + LIMIT;
    let q: Queue<u32> = Queue::bounded(16);
    let done = counters(N);
    thread::scope(|s| {
        let sender = {
            let q = q.clone();
            s.spawn(move || {
                for i in 0..N as u32 {
                    assert!(q.send_deadline(i, deadline).is_ok());
                }
                q.close();
            })
        };
        let mut rxs = Vec::new();
        for r in 0..4u64 {
            let q = q.clone();
            let done = &done;
            rxs.push(s.spawn(move || {
                let mut rng = Rng::new(r + 7);
                loop {
                    if r < 2 {
                        match q.recv_deadline(deadline) {
                            Ok(m) => {
                                done[m.into_payload() as usize].fetch_add(1, Ordering::Relaxed);
                            }
                            Err(RecvTimeoutError::Closed) => return,
                            Err(e) => panic!("plain receiver {r}: {e}"),
                        }
                    } else {
                        let d = match q.receive_deadline(deadline) {
                            Ok(d) => d,
                            Err(RecvTimeoutError::Closed) => return,
                            Err(e) => panic!("leased receiver {r}: {e}"),
                        };
                        match rng.below(3) {
                            0 => d.nack().unwrap(),
                            1 => drop(d),
                            _ => {
                                done[*d.payload() as usize].fetch_add(1, Ordering::Relaxed);
                                d.ack().unwrap();
                            }
                        }
                    }
                }
            }));
        }
        sender.join().unwrap();
        for h in rxs {
            h.join().unwrap();
        }
    });
    for (id, c) in done.iter().enumerate() {
        assert_eq!(c.load(Ordering::Relaxed), 1, "message {id}");
    }
    let s = q.stats();
    assert_eq!((s.visible, s.in_flight), (0, 0));
    assert_eq!(
        s.received,
        s.acked + s.nacked + s.abandoned + (N as u64 - s.acked)
    );
}

#[test]
fn close_while_receivers_block_wakes_every_one() {
    // Receivers blocked in every kind of wait, a close racing with the last sends: everything
    // accepted is received exactly once and every receiver returns.
    let deadline = Instant::now() + LIMIT;
    for round in 0..200u32 {
        let q: Queue<u32> = if round % 2 == 0 {
            Queue::unbounded()
        } else {
            Queue::bounded(2)
        };
        let taken = AtomicU32::new(0);
        let sent = AtomicU32::new(0);
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let mut rxs = Vec::new();
            for r in 0..3 {
                let (q, taken) = (&q, &taken);
                rxs.push(s.spawn(move || loop {
                    let got = match r {
                        0 => q.recv_deadline(deadline).map(|_| ()),
                        1 => q.receive_deadline(deadline).map(|d| d.ack().unwrap()),
                        _ => q
                            .recv_many(4, Duration::from_secs(30))
                            .map(|v| taken.fetch_add(v.len() as u32, Ordering::Relaxed))
                            .map(|_| ())
                            .map_err(|_| RecvTimeoutError::Closed),
                    };
                    match got {
                        Ok(()) if r < 2 => {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(()) => {}
                        Err(RecvTimeoutError::Closed) => return,
                        Err(RecvTimeoutError::Timeout) => panic!("round {round}: receiver hung"),
                    }
                }));
            }
            let sender = s.spawn(|| {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && i < 50 {
                    if q.send_deadline(i, deadline).is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            });
            for _ in 0..round % 7 {
                thread::yield_now();
            }
            q.close();
            stop.store(true, Ordering::Relaxed);
            sender.join().unwrap();
            for h in rxs {
                h.join().unwrap();
            }
        });
        assert!(Instant::now() < deadline, "round {round} ran out of time");
        assert_eq!(
            taken.load(Ordering::Relaxed),
            sent.load(Ordering::Relaxed),
            "round {round}"
        );
    }
}

#[test]
fn rendezvous_queue_hands_over_every_message() {
    const N: u32 = 2_000;
    let deadline = Instant::now() + LIMIT;
    let q: Queue<u32> = Queue::bounded(0);
    let seen = counters(N as usize);
    thread::scope(|s| {
        let senders: Vec<_> = (0..2)
            .map(|t| {
                let q = q.clone();
                s.spawn(move || {
                    for i in (t..N).step_by(2) {
                        assert!(q.send_deadline(i, deadline).is_ok(), "send {i} timed out");
                    }
                })
            })
            .collect();
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let (q, seen) = (q.clone(), &seen);
                s.spawn(move || loop {
                    match q.recv_deadline(deadline) {
                        Ok(m) => {
                            seen[m.into_payload() as usize].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(RecvTimeoutError::Closed) => return,
                        Err(RecvTimeoutError::Timeout) => panic!("receiver hung"),
                    }
                })
            })
            .collect();
        for h in senders {
            h.join().unwrap();
        }
        q.close();
        for h in receivers {
            h.join().unwrap();
        }
    });
    assert!(seen.iter().all(|c| c.load(Ordering::Relaxed) == 1));
}

/// After close, every competing leased receiver learns at once that the queue is drained: none
/// sits in its wait until the timeout (a token taken by a passing receiver must not strand a
/// sleeper). 20 rounds of 2 receivers on a small bounded queue.
#[test]
fn close_wakes_every_competing_leased_receiver() {
    for round in 0..20 {
        let q: Queue<u32> = Queue::bounded(16);
        thread::scope(|s| {
            let receivers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut got = 0;
                        loop {
                            match q.receive_timeout(Duration::from_secs(20)) {
                                Ok(d) => {
                                    d.ack().unwrap();
                                    got += 1;
                                }
                                Err(e) => return (got, e),
                            }
                        }
                    })
                })
                .collect();
            for i in 0..500 {
                q.send(i).unwrap();
            }
            q.close();
            let mut total = 0;
            for r in receivers {
                let (got, err) = r.join().unwrap();
                assert!(
                    err.is_closed(),
                    "round {round}: a receiver timed out instead of seeing Closed"
                );
                total += got;
            }
            assert_eq!(total, 500);
        });
    }
}

/// Receivers of a closed queue get `Closed` only when nothing is left: not while a message is on
/// its way from the main lane into another receiver's lease (which could still be nacked back).
#[test]
fn a_closed_queue_is_not_drained_while_a_message_enters_a_lease() {
    // Before the fix this failed within the first rounds; each round takes about a millisecond.
    const ROUNDS: u32 = 500;
    let deadline = Instant::now() + LIMIT;
    for round in 0..ROUNDS {
        let q: Queue<u32> = Queue::bounded(4);
        q.send(round).unwrap();
        q.close();
        let acked = AtomicBool::new(false);
        let done = AtomicU32::new(0);
        thread::scope(|s| {
            // Takes the queue's lock over and over (stats are exact, so they take it): a
            // receiver on its way into a lease then often waits for it, which widens the window.
            s.spawn(|| {
                while done.load(Ordering::SeqCst) < 2 {
                    std::hint::black_box(q.stats());
                }
            });
            for _ in 0..2 {
                s.spawn(|| {
                    // Nack the message once, then ack it: until the ack, a `Closed` is early.
                    let mut nacks = 0;
                    loop {
                        match q.receive_deadline(deadline) {
                            Ok(d) if nacks == 0 => {
                                nacks += 1;
                                drop(d);
                            }
                            Ok(d) => {
                                acked.store(true, Ordering::SeqCst);
                                d.ack().unwrap();
                            }
                            Err(RecvTimeoutError::Closed) => {
                                done.fetch_add(1, Ordering::SeqCst);
                                assert!(
                                    acked.load(Ordering::SeqCst),
                                    "round {round}: Closed while the message was still in play"
                                );
                                return;
                            }
                            Err(RecvTimeoutError::Timeout) => {
                                done.fetch_add(1, Ordering::SeqCst);
                                panic!("round {round}: hung")
                            }
                        }
                    }
                });
            }
        });
    }
}

#[test]
fn a_redrive_never_moves_a_letter_into_a_queue_closed_meanwhile() {
    // The target closes while a redrive moves letters into it: each letter either arrived
    // before the close (and its receiver gets it before `Closed`) or stays in the dead-letter
    // queue. Found by review: letters kept landing in the closed target after its receiver had
    // seen the end, stranded there (every run of 40 rounds hit it before the fix).
    const LETTERS: u64 = 2_000;
    let deadline = Instant::now() + LIMIT;
    for round in 0..40u64 {
        let dlq: Queue<u64> = Queue::unbounded();
        let source: Queue<u64> = Queue::builder().dead_letter(&dlq, 1).build();
        source.send_batch(0..LETTERS).unwrap();
        while let Ok(d) = source.try_receive() {
            d.reject("poison").unwrap();
        }
        assert_eq!(dlq.len() as u64, LETTERS);
        let target: Queue<u64> = Queue::unbounded();
        let start = std::sync::Barrier::new(2);
        let (moved, received) = thread::scope(|s| {
            let receiver = s.spawn(|| {
                let mut n = 0u64;
                loop {
                    match target.recv_deadline(deadline) {
                        Ok(_) => n += 1,
                        Err(RecvTimeoutError::Closed) => return n,
                        Err(RecvTimeoutError::Timeout) => panic!("round {round}: hung"),
                    }
                }
            });
            let mover = s.spawn(|| {
                start.wait();
                dlq.redrive_to(&target, usize::MAX)
            });
            start.wait();
            for _ in 0..round * 50 {
                std::hint::spin_loop();
            }
            target.close();
            (mover.join().unwrap() as u64, receiver.join().unwrap())
        });
        assert_eq!(target.len(), 0, "round {round}: letters after the end");
        assert_eq!(moved, received, "round {round}");
        assert_eq!(dlq.len() as u64 + moved, LETTERS, "round {round}");
        assert_eq!(dlq.stats().redriven, moved, "round {round}");
    }
}

/// Senders racing `try_send` into a full bounded queue: `len`, `stats().visible` and
/// `stats().sent` never read above the capacity (they did: a send counts itself before it finds
/// the queue full and takes the count back; found by review), and exactly `capacity` sends get
/// in. Both kinds of bound:
/// a fixed channel (8), and one counted over a growing channel (past 65,536).
#[test]
fn len_never_reads_above_the_capacity_under_racing_sends() {
    for (cap, per) in [(8usize, 20_000u32), (70_000, 20_000)] {
        let q: Queue<u32> = Queue::bounded(cap);
        let sent = AtomicU64::new(0);
        let over = AtomicU64::new(0);
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..per {
                        if q.try_send(i).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        let stats = q.stats();
                        if q.len() > cap || stats.visible > cap || stats.sent > cap as u64 {
                            over.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(over.load(Ordering::Relaxed), 0, "capacity {cap}");
        assert_eq!(sent.load(Ordering::Relaxed), cap as u64);
        assert_eq!((q.len(), q.try_iter().count()), (cap, cap));
    }
}

/// Bounds this binary in time: a hanging test fails the run (see `common::start_watchdog`).
#[test]
fn _watchdog() {
    common::start_watchdog();
}
