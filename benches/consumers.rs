//! Consume throughput: a switchboard worker pool (leased receive, handler, ack) beside a
//! hand-written crossbeam-channel worker pool (receive, handler), with the same trivial handler,
//! the same producer on the bench thread, and the same completion counter. A third line,
//! `leased_loop`, is a hand-written pool of threads looping on the queue's own leased receive and
//! ack: the gap between it and `switchboard` is the pool's own overhead (tracking leases for the
//! heartbeat, catching panics, timing the handler), the rest is the queue's.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchboard::{Consumer, Queue, RetryPolicy};

const MESSAGES: u64 = 10_000;

/// The handler both pools run: look at the payload, count it.
#[inline]
fn handle(payload: u64, done: &AtomicU64) {
    black_box(payload);
    done.fetch_add(1, Ordering::Release);
}

/// Sends `MESSAGES` with `send` and waits until the pool has handled them all.
fn run(iters: u64, done: &AtomicU64, mut send: impl FnMut(u64)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let target = done.load(Ordering::Acquire) + MESSAGES;
        let start = Instant::now();
        for i in 0..MESSAGES {
            send(i);
        }
        while done.load(Ordering::Acquire) < target {
            // Yield rather than spin: on a small machine the workers need this core.
            thread::yield_now();
        }
        total += start.elapsed();
    }
    total
}

fn consume(c: &mut Criterion) {
    let mut group = c.benchmark_group("consume");
    group.throughput(Throughput::Elements(MESSAGES));
    for workers in [1usize, 4] {
        group.bench_with_input(
            BenchmarkId::new("switchboard", workers),
            &workers,
            |b, &workers| {
                let queue: Queue<u64> = Queue::unbounded();
                let done = Arc::new(AtomicU64::new(0));
                let pool = {
                    let done = Arc::clone(&done);
                    Consumer::new(&queue)
                        .workers(workers)
                        .retry(RetryPolicy::immediate())
                        .start(move |m| {
                            handle(*m.payload(), &done);
                            Ok::<(), String>(())
                        })
                };
                b.iter_custom(|iters| {
                    run(iters, &done, |i| {
                        queue.send(i).unwrap();
                    })
                });
                assert!(pool.shutdown().is_clean());
            },
        );
        group.bench_with_input(
            BenchmarkId::new("leased_loop", workers),
            &workers,
            |b, &workers| {
                let queue: Queue<u64> = Queue::unbounded();
                let done = Arc::new(AtomicU64::new(0));
                let threads: Vec<_> = (0..workers)
                    .map(|_| {
                        let (queue, done) = (queue.clone(), Arc::clone(&done));
                        thread::spawn(move || {
                            while let Ok(d) = queue.receive() {
                                handle(*d.payload(), &done);
                                d.ack().unwrap();
                            }
                        })
                    })
                    .collect();
                b.iter_custom(|iters| {
                    run(iters, &done, |i| {
                        queue.send(i).unwrap();
                    })
                });
                queue.close();
                for t in threads {
                    t.join().unwrap();
                }
            },
        );
        group.bench_with_input(
            BenchmarkId::new("crossbeam", workers),
            &workers,
            |b, &workers| {
                let (tx, rx) = crossbeam_channel::unbounded::<u64>();
                let done = Arc::new(AtomicU64::new(0));
                let threads: Vec<_> = (0..workers)
                    .map(|_| {
                        let (rx, done) = (rx.clone(), Arc::clone(&done));
                        thread::spawn(move || {
                            for v in rx {
                                handle(v, &done);
                            }
                        })
                    })
                    .collect();
                b.iter_custom(|iters| run(iters, &done, |i| tx.send(i).unwrap()));
                drop(tx);
                for t in threads {
                    t.join().unwrap();
                }
            },
        );
    }
    group.finish();
}

criterion_group!(benches, consume);
criterion_main!(benches);
