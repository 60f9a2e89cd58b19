//! Filter index against a linear scan over the same filters: per-tenant, broad and adversarial
//! workloads at 10 to 100,000 filters. Run with `cargo bench --bench filter`.
//!
//! Each index is built the way a topic builds it: one `insert` per filter, then a snapshot (no
//! `compact`). The scan is `FilterSnapshot::matching_linear` over the same snapshot.
//!
//! One run on the 2-core development VM (shared with other builds, so +-20% noise), time per
//! message, index / linear scan (speed-up), matches per message:
//!
//! | filters | per-tenant                        | broad                           | adversarial                      |
//! |--------:|-----------------------------------|---------------------------------|----------------------------------|
//! | 10      | 1.14 us / 1.21 us (1.1x), 9.6     | 372 ns / 367 ns (1.0x), 0.1     | 295 ns / 412 ns (1.4x), 4.5      |
//! | 100     | 1.37 us / 5.82 us (4.2x), 8.2     | 639 ns / 2.33 us (3.6x), 1.7    | 0.66 us / 4.22 us (6.4x), 43     |
//! | 1,000   | 1.50 us / 57.2 us (38x), 7.8      | 6.6 us / 26.7 us (4.0x), 17     | 8.6 us / 43.4 us (5.1x), 434     |
//! | 10,000  | 2.35 us / 850 us (362x), 7.7      | 97 us / 417 us (4.3x), 169      | 52 us / 583 us (11x), 4,336      |
//! | 100,000 | 1.90 us / 36.1 ms (19,000x), 7.8  | 3.0 ms / 17.9 ms (5.9x), 1,688  | 564 us / 30.3 ms (54x), 43,359   |
//!
//! Per-tenant throughput at 100,000 is 0.79 of that at 1,000. Subscribing one at a time with a
//! snapshot after each: 10,000 in 0.17 s, 100,000 in 1.6 s; then removing and re-adding each
//! (with a snapshot after every change): 6.9 us and 9.0 us a change.
//!
//! The table was taken with an unkeyed hash in the index's maps. Since they use std's keyed
//! SipHash (so that crafted policies cannot flood one bucket), per-tenant matching costs about 15%
//! more instructions (callgrind, 10,000 filters); a later run on a quiet machine gave 1.78 us /
//! 56.4 us (32x) at 1,000, 2.82 us / 2.4 ms (860x) at 10,000 and 2.37 us / 32.0 ms (13,000x) at
//! 100,000.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use switchboard::{Filter, FilterIndex, FilterSnapshot, Message, Numeric};

const SIZES: [usize; 5] = [10, 100, 1_000, 10_000, 100_000];
const MESSAGES: usize = 256;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

type Workload = (FilterSnapshot<u32, ()>, Vec<Message<()>>);

fn snapshot(filters: Vec<Filter<()>>) -> FilterSnapshot<u32, ()> {
    let mut index = FilterIndex::new();
    for (i, f) in filters.into_iter().enumerate() {
        index.insert(i as u32, f);
    }
    index.snapshot()
}

/// Each tenant has about 8 subscriptions with mixed operators; a message is for one tenant and
/// matches most of that tenant's subscriptions.
fn per_tenant(n: usize) -> Workload {
    let tenants = (n / 8).max(1);
    let filters = (0..n)
        .map(|i| {
            let b = Filter::builder().eq("tenant", format!("t{}", i % tenants));
            let b = match i % 6 {
                0 => b.any_of("event", ["order_placed", "order_shipped"]),
                1 => b.prefix("sku", "ab-"),
                2 => b.numeric("price", Numeric::ge(0).and_lt(1000)),
                3 => b.anything_but("region", ["ap"]),
                4 => b
                    .exists("priority", true)
                    .equals_ignore_case("channel", "WEB"),
                _ => b.or([
                    Filter::builder().eq("event", "order_placed"),
                    Filter::builder().suffix("sku", "-9"),
                ]),
            };
            b.build().expect("valid")
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let msgs = (0..MESSAGES)
        .map(|_| {
            Message::new(())
                .with_attr("tenant", format!("t{}", rng.below(tenants)))
                .with_attr("event", "order_placed")
                .with_attr("sku", format!("ab-{}", rng.below(100)))
                .with_attr("price", rng.below(1200) as f64)
                .with_attr("region", "eu")
                .with_attr("priority", 1)
                .with_attr("channel", "web")
        })
        .collect();
    (snapshot(filters), msgs)
}

/// Filters on 10 event types and numeric price bands: matches grow with the number of filters.
fn broad(n: usize) -> Workload {
    let filters = (0..n)
        .map(|i| {
            let lo = (i % 100) as f64;
            Filter::builder()
                .eq("event", format!("e{}", i % 10))
                .numeric("price", Numeric::ge(lo).and_lt(lo + 20.0))
                .build()
                .expect("valid")
        })
        .collect();
    let mut rng = Rng(42);
    let msgs = (0..MESSAGES)
        .map(|_| {
            Message::new(())
                .with_attr("event", format!("e{}", rng.below(10)))
                .with_attr("price", rng.below(120) as f64)
        })
        .collect();
    (snapshot(filters), msgs)
}

/// Every filter on one key with four values; half are anything-but (nothing to index them by).
fn adversarial(n: usize) -> Workload {
    let filters = (0..n)
        .map(|i| {
            let v = format!("s{}", i % 4);
            let b = Filter::builder();
            match i % 4 {
                0 | 2 => b.anything_but("status", [v]),
                1 => b.eq("status", v),
                _ => b.exists("status", false),
            }
            .build()
            .expect("valid")
        })
        .collect();
    let mut rng = Rng(7);
    let msgs = (0..MESSAGES)
        .map(|_| {
            Message::new(())
                .with_attr("status", format!("s{}", rng.below(4)))
                .with_attr("other", 1)
        })
        .collect();
    (snapshot(filters), msgs)
}

fn matches_per_message(w: &Workload) -> f64 {
    let mut out = Vec::new();
    for m in &w.1 {
        w.0.matching(m, &mut out);
    }
    out.len() as f64 / w.1.len() as f64
}

fn run(c: &mut Criterion, name: &str, make: fn(usize) -> Workload) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for &n in &SIZES {
        let w = make(n);
        // The index must give what the scan gives.
        for m in &w.1 {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            w.0.matching(m, &mut a);
            w.0.matching_linear(m, &mut b);
            assert_eq!(a, b);
        }
        eprintln!("{name}/{n}: {:.2} matches/message", matches_per_message(&w));
        let mut out = Vec::with_capacity(n);
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("index", n), &w, |b, w| {
            b.iter(|| {
                out.clear();
                w.0.matching(&w.1[i % MESSAGES], &mut out);
                i += 1;
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("linear", n), &w, |b, w| {
            b.iter(|| {
                out.clear();
                w.0.matching_linear(&w.1[i % MESSAGES], &mut out);
                i += 1;
                black_box(out.len())
            })
        });
    }
    group.finish();
}

/// Subscribing filters one at a time with a snapshot after each (what a topic does).
fn subscribe_one_at_a_time() {
    for n in [10_000usize, 100_000] {
        let tenants = n / 8;
        let start = Instant::now();
        let mut index = FilterIndex::new();
        for i in 0..n {
            let f = Filter::builder()
                .eq("tenant", format!("t{}", i % tenants))
                .build::<()>()
                .expect("valid");
            index.insert(i as u32, f);
            black_box(index.snapshot());
        }
        let t = start.elapsed();
        eprintln!(
            "subscribe {n} one at a time, snapshot after each: {t:?} ({:?} per subscribe)",
            t / n as u32
        );
        let start = Instant::now();
        for i in 0..n {
            let f = Filter::builder()
                .eq("tenant", format!("u{i}"))
                .build::<()>()
                .expect("valid");
            index.remove(&(i as u32));
            index.insert(i as u32, f);
            black_box(index.snapshot());
        }
        let t = start.elapsed();
        eprintln!(
            "then remove and re-add each, snapshot after each: {t:?} ({:?} per change)",
            t / (2 * n as u32)
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .configure_from_args();
    subscribe_one_at_a_time();
    run(&mut c, "per_tenant", per_tenant);
    run(&mut c, "broad", broad);
    run(&mut c, "adversarial", adversarial);
    c.final_summary();
}
