//! Topic fan-out against tokio's broadcast channel and the bus crate, in deliveries per second.
//!
//! Scenario (one generic shape, the same for all three): one publisher, N subscribers, an `Arc`
//! payload. Each iteration publishes a batch of `BATCH` messages, then every subscriber drains its
//! `BATCH` copies; throughput counts deliveries (`BATCH * N`). Every buffer holds a whole batch, so
//! nothing blocks or drops and all three do the same work.
//!
//! - `single_thread`: publisher and subscribers on one thread: the cost of the data structures.
//!   `crossbeam_per_sub` is the floor of a channel per subscriber (the payload alone in raw
//!   crossbeam channels), `safe_log` the floor of the other design, one log that every
//!   subscriber reads (as tokio's and bus's rings are), written in safe Rust (see `safe_log`).
//! - `threaded`: the publisher on one thread, one thread draining all subscribers round-robin
//!   (this machine has two cores), each buffer holding `BATCH`; the publisher waits for room.
//!   Throughput is per `BATCH` publishes, as in `single_thread`.
//! - `subscribe_churn`: one subscribe and its unsubscribe, beside 100 and 10,000 subscriptions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

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

        // The floor of a design with a channel per subscriber, as ours: the payload alone into
        // one crossbeam channel per subscriber (no message, no counters). Beside bus's shared
        // ring it says how much of the gap is the design and how much is ours.
        g.bench_with_input(BenchmarkId::new("crossbeam_per_sub", n), &n, |b, &n| {
            let chans: Vec<_> = (0..n)
                .map(|_| crossbeam_channel::bounded::<Payload>(BATCH))
                .collect();
            let p = payload();
            b.iter(|| {
                for _ in 0..BATCH {
                    for (tx, _) in &chans {
                        tx.try_send(Arc::clone(&p)).unwrap();
                    }
                }
                for (_, rx) in &chans {
                    for _ in 0..BATCH {
                        std::hint::black_box(rx.try_recv().unwrap());
                    }
                }
            });
        });

        g.bench_with_input(BenchmarkId::new("safe_log", n), &n, |b, &n| {
            let log = safe_log::Log::<Payload>::default();
            let readers: Vec<_> = (0..n).map(|_| log.reader(BATCH as u64)).collect();
            let p = payload();
            b.iter(|| {
                for _ in 0..BATCH {
                    log.publish(Arc::clone(&p)).unwrap();
                }
                for r in &readers {
                    for _ in 0..BATCH {
                        std::hint::black_box(r.try_recv().unwrap());
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

/// The floor of a shared-log topic in safe Rust, to weigh a redesign against: one log that every
/// subscriber reads at its own cursor, as tokio's broadcast and bus do, where our topic pushes a
/// copy into each subscription's channel. The log is a list of segments of write-once slots
/// (`OnceLock`), which safe code can share without a lock per slot; a subscriber's cursor sits
/// behind a mutex, since a `Subscription` receives through `&self` and is `Sync`. It carries the
/// bare payload and keeps none of a topic's semantics (no `Message`, counters, filters, overflow
/// policies or wake-ups): only the lossless `Block` room check a subscriber's capacity needs.
mod safe_log {
    use super::*;
    use parking_lot::Mutex;

    const SEGMENT: usize = 64;

    struct Segment<T> {
        start: u64,
        slots: Box<[OnceLock<T>]>,
        next: OnceLock<Arc<Segment<T>>>,
    }

    fn segment<T>(start: u64) -> Arc<Segment<T>> {
        Arc::new(Segment {
            start,
            slots: (0..SEGMENT).map(|_| OnceLock::new()).collect(),
            next: OnceLock::new(),
        })
    }

    /// A reader's progress, as the publisher sees it.
    struct Cursor {
        read: AtomicU64,
        capacity: u64,
    }

    struct Tail<T> {
        segment: Arc<Segment<T>>,
        seq: u64,
        /// No reader is full before `seq` reaches this (a cached minimum of their room).
        limit: u64,
        readers: Vec<Arc<Cursor>>,
    }

    pub struct Log<T> {
        tail: Mutex<Tail<T>>,
    }

    impl<T> Default for Log<T> {
        fn default() -> Self {
            Log {
                tail: Mutex::new(Tail {
                    segment: segment(0),
                    seq: 0,
                    limit: 0,
                    readers: Vec::new(),
                }),
            }
        }
    }

    pub struct Reader<T> {
        at: Mutex<(Arc<Segment<T>>, u64)>,
        cursor: Arc<Cursor>,
    }

    impl<T: Clone> Log<T> {
        pub fn reader(&self, capacity: u64) -> Reader<T> {
            let mut tail = self.tail.lock();
            let cursor = Arc::new(Cursor {
                read: AtomicU64::new(tail.seq),
                capacity,
            });
            tail.readers.push(Arc::clone(&cursor));
            tail.limit = tail.seq;
            Reader {
                at: Mutex::new((Arc::clone(&tail.segment), tail.seq)),
                cursor,
            }
        }

        /// Appends `v`, or hands it back when a reader is full.
        pub fn publish(&self, v: T) -> Result<(), T> {
            let mut tail = self.tail.lock();
            if tail.seq >= tail.limit {
                let limit = tail
                    .readers
                    .iter()
                    .map(|c| c.read.load(Ordering::Acquire) + c.capacity);
                tail.limit = limit.min().unwrap_or(u64::MAX);
                if tail.seq >= tail.limit {
                    return Err(v);
                }
            }
            if tail.seq - tail.segment.start == SEGMENT as u64 {
                let next = segment(tail.seq);
                let _ = tail.segment.next.set(Arc::clone(&next));
                tail.segment = next;
            }
            let i = (tail.seq - tail.segment.start) as usize;
            let _ = tail.segment.slots[i].set(v);
            tail.seq += 1;
            Ok(())
        }
    }

    impl<T: Clone> Reader<T> {
        pub fn try_recv(&self) -> Option<T> {
            let mut at = self.at.lock();
            let (segment, seq) = &mut *at;
            if *seq - segment.start == SEGMENT as u64 {
                let next = Arc::clone(segment.next.get()?);
                *segment = next;
            }
            let v = segment.slots[(*seq - segment.start) as usize]
                .get()?
                .clone();
            *seq += 1;
            self.cursor.read.store(*seq, Ordering::Release);
            Some(v)
        }
    }
}

/// Publishes `iters * BATCH` messages on this thread while a second thread drains every
/// subscriber round-robin (`drain(i)` takes one message of subscriber `i` if there is one);
/// returns the elapsed time. Every buffer holds `BATCH` messages; publishers wait for room.
fn run_threaded<D>(
    n: usize,
    iters: u64,
    mut publish: impl FnMut(),
    make_drain: impl FnOnce() -> D + Send,
) -> Duration
where
    D: FnMut(usize) -> bool,
{
    let total = iters as usize * BATCH;
    thread::scope(|s| {
        let start = Instant::now();
        s.spawn(move || {
            let mut drain = make_drain();
            let mut got = vec![0usize; n];
            let mut left = n * total;
            while left > 0 {
                let mut progress = false;
                for (i, g) in got.iter_mut().enumerate() {
                    while *g < total && drain(i) {
                        *g += 1;
                        left -= 1;
                        progress = true;
                    }
                }
                if !progress {
                    std::hint::spin_loop();
                }
            }
        });
        for _ in 0..total {
            publish();
        }
        // The scope joins the drainer: the time includes the last delivery.
        start
    })
    .elapsed()
}

fn threaded(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_threaded");
    for n in FANOUT {
        g.throughput(Throughput::Elements((BATCH * n) as u64));

        g.bench_with_input(BenchmarkId::new("switchboard", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let topic: Topic<Payload> = Topic::new();
                let subs: Vec<_> = (0..n)
                    .map(|_| topic.subscribe_with(SubscribeOptions::new().capacity(BATCH)))
                    .collect();
                let p = payload();
                run_threaded(
                    n,
                    iters,
                    || {
                        topic.publish(Arc::clone(&p)).unwrap();
                    },
                    move || move |i: usize| subs[i].try_recv().map(std::hint::black_box).is_ok(),
                )
            });
        });

        g.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let (tx, _) = tokio::sync::broadcast::channel::<Payload>(BATCH);
                let mut rxs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
                let p = payload();
                run_threaded(
                    n,
                    iters,
                    || {
                        // tokio's sender never waits: hold back instead of lapping receivers.
                        while tx.len() >= BATCH {
                            std::hint::spin_loop();
                        }
                        tx.send(Arc::clone(&p)).unwrap();
                    },
                    move || move |i: usize| rxs[i].try_recv().map(std::hint::black_box).is_ok(),
                )
            });
        });

        g.bench_with_input(BenchmarkId::new("bus", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut bus = bus::Bus::<Payload>::new(BATCH);
                let mut rxs: Vec<_> = (0..n).map(|_| bus.add_rx()).collect();
                let p = payload();
                run_threaded(
                    n,
                    iters,
                    || bus.broadcast(Arc::clone(&p)),
                    move || move |i: usize| rxs[i].try_recv().map(std::hint::black_box).is_ok(),
                )
            });
        });
    }
    g.finish();
}

/// What a subscriber set's size costs a subscribe and an unsubscribe (one of each per
/// iteration, small buffers), at 100 and 10,000 subscriptions already there: copy-on-write sets
/// share their unchanged chunks, so the two should differ by far less than the 100x in size.
fn churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("subscribe_churn");
    let small = SubscribeOptions::new().capacity(4);
    for n in [100usize, 10_000] {
        let topic: Topic<Payload> = Topic::new();
        let _held: Vec<_> = (0..n).map(|_| topic.subscribe_with(small)).collect();
        g.bench_function(BenchmarkId::new("switchboard", n), |b| {
            b.iter(|| drop(topic.subscribe_with(small)))
        });
    }
    g.finish();
}

criterion_group!(benches, single_thread, threaded, churn);
criterion_main!(benches);
