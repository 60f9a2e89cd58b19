//! Queue throughput against raw crossbeam-channel, side by side in each group.
//!
//! Each iteration moves a batch of messages through the channel with real threads, so the
//! figures are messages per second including cross-core hand-off. Compare the ratio of
//! `switchboard` to `crossbeam` within one group: the machine is shared and noisy.

use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchboard::{Message, Queue};

const BATCH: u64 = 100_000;
const CAP: usize = 1024;

/// The payload: a small struct, as a typical event id plus a couple of fields.
type Payload = [u64; 2];

trait Lane: Clone + Send + 'static {
    fn send(&self, v: Payload);
    fn recv(&self) -> Payload;
    /// Receives `n` messages: one at a time unless the lane takes batches.
    fn consume(&self, n: u64) {
        for _ in 0..n {
            criterion::black_box(self.recv());
        }
    }
}

#[derive(Clone)]
struct Raw(
    crossbeam_channel::Sender<Payload>,
    crossbeam_channel::Receiver<Payload>,
);

impl Lane for Raw {
    fn send(&self, v: Payload) {
        self.0.send(v).unwrap();
    }
    fn recv(&self) -> Payload {
        self.1.recv().unwrap()
    }
}

/// flume, the other channel crate users weigh a queue against, carrying the bare payload.
#[derive(Clone)]
struct Flume(flume::Sender<Payload>, flume::Receiver<Payload>);

impl Lane for Flume {
    fn send(&self, v: Payload) {
        self.0.send(v).unwrap();
    }
    fn recv(&self) -> Payload {
        self.1.recv().unwrap()
    }
}

/// Raw crossbeam carrying what a queue's lane carries: the payload plus the message metadata
/// (id, timestamp, metadata pointer). Separates the cost of the metadata's bytes from the cost
/// of the queue's logic.
#[derive(Clone)]
struct RawMessage(
    crossbeam_channel::Sender<Message<Payload>>,
    crossbeam_channel::Receiver<Message<Payload>>,
);

impl Lane for RawMessage {
    fn send(&self, v: Payload) {
        self.0.send(Message::new(v)).unwrap();
    }
    fn recv(&self) -> Payload {
        self.1.recv().unwrap().into_payload()
    }
}

#[derive(Clone)]
struct Plain(Queue<Payload>);

impl Lane for Plain {
    fn send(&self, v: Payload) {
        self.0.send(v).unwrap();
    }
    fn recv(&self) -> Payload {
        self.0.recv().unwrap().into_payload()
    }
}

#[derive(Clone)]
struct Leased(Queue<Payload>);

impl Lane for Leased {
    fn send(&self, v: Payload) {
        self.0.send(v).unwrap();
    }
    fn recv(&self) -> Payload {
        let d = self.0.receive().unwrap();
        let v = *d.payload();
        d.ack().unwrap();
        v
    }
}

/// Leased receives in batches of up to [`LEASE_BATCH`] (`receive_many`), acked in one call
/// (`ack_many`): how a consumer amortizes the lease bookkeeping, as with SQS's batch calls.
#[derive(Clone)]
struct LeasedBatch(Leased);

const LEASE_BATCH: u64 = 32;

impl Lane for LeasedBatch {
    fn send(&self, v: Payload) {
        self.0.send(v);
    }
    fn recv(&self) -> Payload {
        self.0.recv()
    }
    fn consume(&self, n: u64) {
        let q = &self.0 .0;
        let mut left = n;
        while left > 0 {
            let want = left.min(LEASE_BATCH) as usize;
            let batch = q.receive_many(want, Duration::from_secs(10)).unwrap();
            for d in &batch {
                criterion::black_box(d.payload());
            }
            left -= batch.len() as u64;
            assert!(q.ack_many(batch).is_empty(), "a lease expired");
        }
    }
}

/// Moves `n` messages from `producers` threads to `consumers` threads; returns the elapsed time.
fn run<L: Lane>(lane: &L, n: u64, producers: u64, consumers: u64) -> Duration {
    let start = Instant::now();
    thread::scope(|s| {
        for p in 0..producers {
            let lane = lane.clone();
            s.spawn(move || {
                for i in 0..n / producers {
                    lane.send([p, i]);
                }
            });
        }
        for _ in 0..consumers {
            let lane = lane.clone();
            s.spawn(move || lane.consume(n / consumers));
        }
    });
    start.elapsed()
}

fn raw(cap: Option<usize>) -> Raw {
    let (tx, rx) = match cap {
        Some(c) => crossbeam_channel::bounded(c),
        None => crossbeam_channel::unbounded(),
    };
    Raw(tx, rx)
}

fn ours(cap: Option<usize>) -> Queue<Payload> {
    match cap {
        Some(c) => Queue::bounded(c),
        None => Queue::unbounded(),
    }
}

fn group(c: &mut Criterion, name: &str, producers: u64, consumers: u64, cap: Option<usize>) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);
    g.bench_function(BenchmarkId::new("crossbeam", "plain"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| run(&raw(cap), BATCH, producers, consumers))
                .sum()
        })
    });
    g.bench_function(BenchmarkId::new("crossbeam", "message"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (tx, rx) = match cap {
                        Some(c) => crossbeam_channel::bounded(c),
                        None => crossbeam_channel::unbounded(),
                    };
                    run(&RawMessage(tx, rx), BATCH, producers, consumers)
                })
                .sum()
        })
    });
    g.bench_function(BenchmarkId::new("flume", "plain"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (tx, rx) = match cap {
                        Some(c) => flume::bounded(c),
                        None => flume::unbounded(),
                    };
                    run(&Flume(tx, rx), BATCH, producers, consumers)
                })
                .sum()
        })
    });
    g.bench_function(BenchmarkId::new("switchboard", "plain"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| run(&Plain(ours(cap)), BATCH, producers, consumers))
                .sum()
        })
    });
    g.bench_function(BenchmarkId::new("switchboard", "leased"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| run(&Leased(ours(cap)), BATCH, producers, consumers))
                .sum()
        })
    });
    g.bench_function(BenchmarkId::new("switchboard", "leased_batch"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| run(&LeasedBatch(Leased(ours(cap))), BATCH, producers, consumers))
                .sum()
        })
    });
    g.finish();
}

fn spsc(c: &mut Criterion) {
    group(c, "spsc_bounded", 1, 1, Some(CAP));
    group(c, "spsc_unbounded", 1, 1, None);
}

/// How the plain path's ratio depends on the payload's size: the message's metadata (id,
/// timestamp, metadata pointer: 24 bytes) weighs less beside a larger payload. SPSC bounded,
/// plain send and recv, raw crossbeam carrying the same payload beside ours.
fn payload_sizes(c: &mut Criterion) {
    fn one<P: Copy + Send + Sync + 'static>(c: &mut Criterion, name: &str, make: fn(u64) -> P) {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(BATCH));
        g.sample_size(20);
        let run = |send: &(dyn Fn(P) + Sync), recv: &(dyn Fn() -> P + Sync)| {
            let start = Instant::now();
            thread::scope(|s| {
                s.spawn(|| (0..BATCH).for_each(|i| send(make(i))));
                s.spawn(|| {
                    for _ in 0..BATCH {
                        criterion::black_box(recv());
                    }
                });
            });
            start.elapsed()
        };
        g.bench_function("crossbeam", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (tx, rx) = crossbeam_channel::bounded::<P>(CAP);
                        run(&|v| tx.send(v).unwrap(), &|| rx.recv().unwrap())
                    })
                    .sum()
            })
        });
        g.bench_function("switchboard", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let q = Queue::<P>::bounded(CAP);
                        run(
                            &|v| {
                                q.send(v).unwrap();
                            },
                            &|| q.recv().unwrap().into_payload(),
                        )
                    })
                    .sum()
            })
        });
        g.finish();
    }
    one(c, "payload_16B", |i| [i; 2]);
    one(c, "payload_64B", |i| [i; 8]);
    one(c, "payload_256B", |i| [i; 32]);
}

fn mpmc(c: &mut Criterion) {
    group(c, "mpmc_bounded", 2, 2, Some(CAP));
}

/// FIFO mode: 64 message groups, one producer, two leased consumers (receive + ack), beside the
/// standard queue doing the same work. FIFO sends and receives go through the lock that keeps
/// the groups, so this shows what ordering costs.
fn fifo(c: &mut Criterion) {
    const GROUPS: u64 = 64;
    let mut g = c.benchmark_group("fifo_64_groups_2_consumers");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    let scenario = |fifo: bool| {
        let q: Queue<Payload> = if fifo {
            Queue::builder().fifo().capacity(CAP).build()
        } else {
            Queue::bounded(CAP)
        };
        let start = Instant::now();
        thread::scope(|s| {
            s.spawn(|| {
                for i in 0..BATCH {
                    let m = Message::new([i, 0])
                        .with_group(GROUP_NAMES[(i % GROUPS) as usize].as_str());
                    q.send(m).unwrap();
                }
            });
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..BATCH / 2 {
                        let d = q.receive().unwrap();
                        criterion::black_box(d.payload());
                        d.ack().unwrap();
                    }
                });
            }
        });
        start.elapsed()
    };
    g.bench_function("standard", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| scenario(false)).sum())
    });
    g.bench_function("fifo", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| scenario(true)).sum())
    });
    g.finish();
}

/// Group names, made once so that the bench does not time their formatting.
static GROUP_NAMES: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (0..64).map(|g| format!("group-{g}")).collect());

/// Single-threaded send then receive: the per-message cost without cross-core traffic.
fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("single_thread");
    g.throughput(Throughput::Elements(1));
    let (tx, rx) = crossbeam_channel::bounded::<Payload>(CAP);
    g.bench_function("crossbeam", |b| {
        b.iter(|| {
            tx.send([1, 2]).unwrap();
            rx.recv().unwrap()
        })
    });
    let q = Queue::<Payload>::bounded(CAP);
    g.bench_function("switchboard_plain", |b| {
        b.iter(|| {
            q.send([1, 2]).unwrap();
            q.recv().unwrap().into_payload()
        })
    });
    g.bench_function("switchboard_leased", |b| {
        b.iter(|| {
            q.send(Message::new([1, 2])).unwrap();
            let d = q.receive().unwrap();
            let v = *d.payload();
            d.ack().unwrap();
            v
        })
    });
    g.finish();
}

criterion_group!(benches, single_thread, spsc, mpmc, payload_sizes, fifo);
criterion_main!(benches);
