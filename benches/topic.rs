//! Topic fan-out against tokio's broadcast channel and the bus crate, in deliveries per second.
//!
//! Scenario (one generic shape, the same for all three): one publisher, N subscribers, an `Arc`
//! payload. Each iteration publishes a batch of `BATCH` messages, then every subscriber drains its
//! `BATCH` copies; throughput counts deliveries (`BATCH * N`). Every buffer holds a whole batch, so
//! nothing blocks or drops and all three do the same work.
//!
//! - `single_thread`: publisher and subscribers on one thread: the cost of the data structures.
//! - `threaded`: the publisher on one thread, one thread draining all subscribers round-robin
//!   (this machine has two cores), `BATCH` in flight at most per subscriber.

use std::sync::Arc;
use std::thread;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchboard::{SubscribeOptions, Topic};

const BATCH: usize = 256;
const FANOUT: [usize; 3] = [1, 4, 16];

type Payload = Arc<[u64; 8]>;

fn payload() -> Payload {
    Arc::new([7; 8])
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_single_thread");
    for n in FANOUT {
        g.throughput(Throughput::Elements((BATCH * n) as u64));

        g.bench_with_input(BenchmarkId::new("switchboard", n), &n, |b, &n| {
            let topic: Topic<Payload> = Topic::new();
            let subs: Vec<_> = (0..n)
                .map(|_| topic.subscribe_with(SubscribeOptions::new().capacity(BATCH)))
                .collect();
            let p = payload();
            b.iter(|| {
                for _ in 0..BATCH {
                    topic.publish(Arc::clone(&p)).unwrap();
                }
                for s in &subs {
                    for _ in 0..BATCH {
                        std::hint::black_box(s.try_recv().unwrap());
                    }
                }
            });
        });

        g.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, &n| {
            let (tx, _) = tokio::sync::broadcast::channel::<Payload>(BATCH);
            let mut rxs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
            let p = payload();
            b.iter(|| {
                for _ in 0..BATCH {
                    tx.send(Arc::clone(&p)).unwrap();
                }
                for rx in &mut rxs {
                    for _ in 0..BATCH {
                        std::hint::black_box(rx.try_recv().unwrap());
                    }
                }
            });
        });

        g.bench_with_input(BenchmarkId::new("bus", n), &n, |b, &n| {
            // bus keeps one slot free: room for a whole batch needs BATCH + 1.
            let mut bus = bus::Bus::<Payload>::new(BATCH + 1);
            let mut rxs: Vec<_> = (0..n).map(|_| bus.add_rx()).collect();
            let p = payload();
            b.iter(|| {
                for _ in 0..BATCH {
                    bus.try_broadcast(Arc::clone(&p)).unwrap();
                }
                for rx in &mut rxs {
                    for _ in 0..BATCH {
                        std::hint::black_box(rx.try_recv().unwrap());
                    }
                }
            });
        });
    }
    g.finish();
}

/// Runs `publish` on a second thread while this thread drains `drain(i)` for subscriber `i`
/// round-robin until every subscriber got `BATCH` messages.
fn run_threaded(n: usize, publish: impl FnOnce() + Send, mut drain: impl FnMut(usize) -> bool) {
    thread::scope(|s| {
        s.spawn(publish);
        let mut got = vec![0usize; n];
        let mut left = n * BATCH;
        while left > 0 {
            for (i, g) in got.iter_mut().enumerate() {
                while *g < BATCH && drain(i) {
                    *g += 1;
                    left -= 1;
                }
            }
        }
    });
}

fn threaded(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_threaded");
    for n in FANOUT {
        g.throughput(Throughput::Elements((BATCH * n) as u64));

        g.bench_with_input(BenchmarkId::new("switchboard", n), &n, |b, &n| {
            let topic: Topic<Payload> = Topic::new();
            let subs: Vec<_> = (0..n)
                .map(|_| topic.subscribe_with(SubscribeOptions::new().capacity(BATCH)))
                .collect();
            let p = payload();
            b.iter(|| {
                run_threaded(
                    n,
                    || {
                        for _ in 0..BATCH {
                            topic.publish(Arc::clone(&p)).unwrap();
                        }
                    },
                    |i| subs[i].try_recv().map(std::hint::black_box).is_ok(),
                )
            });
        });

        g.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, &n| {
            let (tx, _) = tokio::sync::broadcast::channel::<Payload>(BATCH);
            let mut rxs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
            let p = payload();
            b.iter(|| {
                run_threaded(
                    n,
                    || {
                        for _ in 0..BATCH {
                            tx.send(Arc::clone(&p)).unwrap();
                        }
                    },
                    |i| rxs[i].try_recv().map(std::hint::black_box).is_ok(),
                )
            });
        });

        g.bench_with_input(BenchmarkId::new("bus", n), &n, |b, &n| {
            let bus = std::sync::Mutex::new(bus::Bus::<Payload>::new(BATCH + 1));
            let mut rxs: Vec<_> = (0..n).map(|_| bus.lock().unwrap().add_rx()).collect();
            let p = payload();
            b.iter(|| {
                run_threaded(
                    n,
                    || {
                        let mut bus = bus.lock().unwrap();
                        for _ in 0..BATCH {
                            bus.broadcast(Arc::clone(&p));
                        }
                    },
                    |i| rxs[i].try_recv().map(std::hint::black_box).is_ok(),
                )
            });
        });
    }
    g.finish();
}

criterion_group!(benches, single_thread);
criterion_main!(benches);
