//! Model test: random sequences of subscribe (channel subscriptions, chained queues and closure
//! endpoints; filtered or not, small capacities, every overflow policy), unsubscribe (by drop and
//! by id), set_filter (one at a time and many, past the filter index's linear and tail sizes),
//! publish (with attributes and time-to-live; `publish`, `try_publish`, `publish_timeout`; on a
//! validated topic or not), receive (`try_recv`, `recv_many`), queue close, topic close and
//! manual clock steps, against an oracle of one `VecDeque` per subscriber that evaluates the
//! filters itself. After every step each subscriber's contents, its counters and the topic's
//! counters must match the oracle exactly.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use switchboard::{
    DeliverError, Endpoint, Filter, ManualClock, Message, Numeric, Overflow, PublishError,
    PublishReport, Queue, SubscribeOptions, Subscription, SubscriptionId, SubscriptionStats, Topic,
    TopicStats, TryRecvError,
};

// ----- attributes and filters ----------------------------------------------------------------

/// A message's attributes, as the oracle sees them.
#[derive(Clone, Debug, Default)]
struct Attrs {
    region: Option<&'static str>,
    amount: Option<u32>,
    tags: Option<Vec<&'static str>>,
    bad: Option<bool>,
}

impl Attrs {
    fn is_empty(&self) -> bool {
        self.region.is_none() && self.amount.is_none() && self.tags.is_none() && self.bad.is_none()
    }

    fn message(&self, payload: u32) -> Message<u32> {
        let mut m = Message::new(payload);
        if let Some(r) = self.region {
            m = m.with_attr("region", r);
        }
        if let Some(a) = self.amount {
            m = m.with_attr("amount", a);
        }
        if let Some(t) = &self.tags {
            m = m.with_attr("tags", t.clone());
        }
        if let Some(b) = self.bad {
            m = m.with_attr("bad", b);
        }
        m
    }
}

fn attrs() -> impl Strategy<Value = Attrs> {
    let region = proptest::option::of(prop_oneof![Just("eu"), Just("us"), Just("apac")]);
    let amount = proptest::option::of(prop_oneof![Just(5u32), Just(50), Just(500)]);
    let tags = proptest::option::weighted(
        0.3,
        prop_oneof![
            Just(vec![]),
            Just(vec!["a"]),
            Just(vec!["b"]),
            Just(vec!["b", "a"]),
        ],
    );
    let bad = proptest::option::weighted(0.15, any::<bool>());
    (region, amount, tags, bad).prop_map(|(region, amount, tags, bad)| Attrs {
        region,
        amount,
        tags,
        bad,
    })
}

/// How many filters `filter` and `oracle_matches` know.
const FILTERS: usize = 23;

/// Filter number `i`, from the Rust builder (or a predicate).
fn filter(i: usize) -> Filter<u32> {
    let b = Filter::builder();
    let b = match i {
        0 => b.eq("region", "eu"),
        1 => b.any_of("region", ["us", "apac"]),
        2 => b.numeric("amount", Numeric::ge(50)),
        3 => b.numeric("amount", Numeric::gt(5).and_le(50)),
        4 => b.exists("region", false),
        5 => b.anything_but("region", ["eu"]),
        6 => b.prefix("region", "a"),
        7 => b.or([
            Filter::builder().eq("region", "us"),
            Filter::builder().numeric("amount", Numeric::lt(10)),
        ]),
        8 => b.eq("tags", "a"),
        9 => b.exists("tags", true),
        10 => b.eq("region", "eu").numeric("amount", Numeric::ge(50)),
        11 => return Filter::all(),
        12 => return Filter::predicate(|m: &Message<u32>| m.payload() % 2 == 0),
        13 => b.equals_ignore_case("region", "EU"),
        14 => b.suffix("region", "s"),
        15 => b.eq("amount", 500),
        16 => b.eq("bad", true),
        17 => b.anything_but("amount", [50]),
        18 => b.wildcard("region", "*u*"),
        19 => b.exists("amount", true),
        20 => b.anything_but("tags", ["a"]),
        21 => b.or([
            Filter::builder().exists("region", false),
            Filter::builder().eq("tags", "b"),
        ]),
        22 => {
            let f = b.eq("region", "us").build().unwrap();
            return f.and_predicate(|m: &Message<u32>| m.payload() % 3 == 0);
        }
        _ => unreachable!(),
    };
    b.build().unwrap()
}

/// What filter number `i` says of a message, by the documented rules.
fn oracle_matches(i: usize, a: &Attrs, payload: u32) -> bool {
    let region = |f: &dyn Fn(&str) -> bool| a.region.is_some_and(f);
    let amount = |f: &dyn Fn(u32) -> bool| a.amount.is_some_and(f);
    match i {
        0 => region(&|r| r == "eu"),
        1 => region(&|r| r == "us" || r == "apac"),
        2 => amount(&|n| n >= 50),
        3 => amount(&|n| n > 5 && n <= 50),
        // `exists: false` needs at least one attribute.
        4 => !a.is_empty() && a.region.is_none(),
        // `anything-but` needs the attribute.
        5 => region(&|r| r != "eu"),
        6 => region(&|r| r.starts_with('a')),
        7 => region(&|r| r == "us") || amount(&|n| n < 10),
        // A list matches if any element does; an empty list counts as absent for `exists`.
        8 => a.tags.as_ref().is_some_and(|t| t.contains(&"a")),
        9 => a.tags.as_ref().is_some_and(|t| !t.is_empty()),
        10 => region(&|r| r == "eu") && amount(&|n| n >= 50),
        11 => true,
        12 => payload % 2 == 0,
        13 => region(&|r| r == "eu"),
        14 => region(&|r| r.ends_with('s')),
        15 => amount(&|n| n == 500),
        16 => a.bad == Some(true),
        17 => amount(&|n| n != 50),
        18 => region(&|r| r.contains('u')),
        19 => a.amount.is_some(),
        // Any element not listed.
        20 => a.tags.as_ref().is_some_and(|t| t.iter().any(|&e| e != "a")),
        21 => {
            (!a.is_empty() && a.region.is_none())
                || a.tags.as_ref().is_some_and(|t| t.contains(&"b"))
        }
        22 => region(&|r| r == "us") && payload % 3 == 0,
        _ => unreachable!(),
    }
}

// ----- operations ----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Mode {
    Publish,
    Try,
    TimeoutZero,
}

#[derive(Clone, Debug)]
enum Op {
    Subscribe {
        capacity: Option<usize>,
        overflow: Overflow,
        filter: Option<usize>,
    },
    SubscribeQueue {
        capacity: Option<usize>,
        overflow: Overflow,
        filter: Option<usize>,
    },
    /// `subscribe_endpoint` of a closure.
    SubscribeFn {
        overflow: Overflow,
        filter: Option<usize>,
    },
    /// Many unbounded channel subscriptions at once, each with its filter (enough to take the
    /// filter index past its linear and tail sizes).
    SubscribeMany(Vec<Option<usize>>),
    /// `Topic::unsubscribe` by id; a `Subscription` stays, to be drained.
    Unsubscribe(usize),
    /// Lets go of a subscriber (a `Subscription` drop unsubscribes; a queue stays chained).
    Forget(usize),
    SetFilter {
        sub: usize,
        filter: Option<usize>,
        via_subscription: bool,
    },
    /// Several filter changes (enough to make the index rebuild).
    SetFilterMany(Vec<(usize, Option<usize>)>),
    Publish {
        attrs: Attrs,
        ttl: Option<u64>,
        mode: Mode,
    },
    Recv(usize),
    RecvMany(usize, usize),
    CloseQueue(usize),
    Close,
    Advance(u64),
}

fn overflow() -> impl Strategy<Value = Overflow> {
    prop_oneof![
        Just(Overflow::Block),
        Just(Overflow::DropOldest),
        Just(Overflow::DropNewest),
        Just(Overflow::Error),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        3 => Just(Mode::Publish),
        1 => Just(Mode::Try),
        1 => Just(Mode::TimeoutZero),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let capacity = proptest::option::weighted(0.8, 1usize..4);
    let filter = proptest::option::weighted(0.5, 0..FILTERS);
    prop_oneof![
        3 => (capacity.clone(), overflow(), filter.clone()).prop_map(|(capacity, overflow, filter)| {
            Op::Subscribe { capacity, overflow, filter }
        }),
        2 => (capacity, overflow(), filter.clone()).prop_map(|(capacity, overflow, filter)| {
            Op::SubscribeQueue { capacity, overflow, filter }
        }),
        1 => (overflow(), filter.clone())
            .prop_map(|(overflow, filter)| Op::SubscribeFn { overflow, filter }),
        1 => proptest::collection::vec(proptest::option::weighted(0.9, 0..FILTERS), 8..40)
            .prop_map(Op::SubscribeMany),
        2 => any::<usize>().prop_map(Op::Unsubscribe),
        1 => any::<usize>().prop_map(Op::Forget),
        2 => (any::<usize>(), filter.clone(), any::<bool>()).prop_map(|(sub, filter, via_subscription)| {
            Op::SetFilter { sub, filter, via_subscription }
        }),
        1 => proptest::collection::vec((any::<usize>(), filter), 4..40)
            .prop_map(Op::SetFilterMany),
        10 => (attrs(), proptest::option::weighted(0.3, 1u64..4), mode())
            .prop_map(|(attrs, ttl, mode)| Op::Publish { attrs, ttl, mode }),
        6 => any::<usize>().prop_map(Op::Recv),
        2 => (any::<usize>(), 1usize..5).prop_map(|(i, max)| Op::RecvMany(i, max)),
        1 => any::<usize>().prop_map(Op::CloseQueue),
        1 => Just(Op::Close),
        2 => (1u64..3).prop_map(Op::Advance),
    ]
}

// ----- the oracle ----------------------------------------------------------------------------

/// A buffered message: its payload and when (seconds on the model's clock) it expires.
#[derive(Clone, Copy, Debug)]
struct Item {
    payload: u32,
    expires: Option<u64>,
}

enum Handle {
    Channel(Subscription<u32>),
    Queue(Queue<u32>),
    /// A closure endpoint: what it took, in order.
    Closure(Arc<Mutex<Vec<u32>>>),
}

/// What the model's closure endpoints do with a payload: refuse it, say they are full or closed,
/// or take it.
fn closure_verdict(payload: u32) -> Option<fn(Message<u32>) -> DeliverError<u32>> {
    match payload % 7 {
        0 => Some(|m| DeliverError::rejected(m, "multiple of 7")),
        3 => Some(DeliverError::Full),
        5 => Some(DeliverError::Closed),
        _ => None,
    }
}

/// One subscriber and what it should hold.
struct Sub {
    handle: Handle,
    id: SubscriptionId,
    /// In the topic's subscriber set (not unsubscribed, topic not closed).
    attached: bool,
    filter: Option<usize>,
    capacity: Option<usize>,
    overflow: Overflow,
    buf: VecDeque<Item>,
    /// Payloads received, to check order and uniqueness.
    seen: Vec<u32>,
    dropped: u64,
    received: u64,
    expired: u64,
    /// Channel: the subscription sees `Closed` once drained. Queue: the queue is closed.
    closed: bool,
    /// Queue: messages sent into it.
    sent: u64,
}

impl Sub {
    fn full(&self) -> bool {
        self.capacity.is_some_and(|c| self.buf.len() >= c)
    }

    /// Takes the next message a receive hands out: expired ones are discarded and counted when
    /// they come up, never received.
    fn next_live(&mut self, now: u64) -> Option<Item> {
        loop {
            match self.buf.pop_front() {
                Some(it) if it.expires.is_some_and(|e| e <= now) => self.expired += 1,
                other => return other,
            }
        }
    }

    /// A message received: the oracle's next, in publish order, never twice.
    fn receive(&mut self, i: usize, payload: u32, want: Item) {
        assert_eq!(payload, want.payload, "subscriber {i}");
        assert!(
            self.seen.last().is_none_or(|&l| l < payload),
            "subscriber {i}: {payload} after {:?}",
            self.seen
        );
        self.seen.push(payload);
        self.received += 1;
    }

    fn is_queue(&self) -> bool {
        matches!(self.handle, Handle::Queue(_))
    }

    fn is_channel(&self) -> bool {
        matches!(self.handle, Handle::Channel(_))
    }
}

#[derive(Default, Debug, PartialEq)]
struct Counts {
    delivered: usize,
    filtered_out: usize,
    dropped_oldest: usize,
    dropped_newest: usize,
    full: usize,
    closed: usize,
    rejected: usize,
}

fn counts(r: &PublishReport) -> Counts {
    Counts {
        delivered: r.delivered,
        filtered_out: r.filtered_out,
        dropped_oldest: r.dropped_oldest,
        dropped_newest: r.dropped_newest,
        full: r.full,
        closed: r.closed,
        rejected: r.rejected,
    }
}

struct Model {
    topic: Topic<u32>,
    clock: ManualClock,
    validated: bool,
    subs: Vec<Sub>,
    closed: bool,
    /// Seconds since the start, on the manual clock.
    now: u64,
    next_payload: u32,
    stats: TopicStats,
}

impl Model {
    fn new(validated: bool) -> Model {
        let clock = ManualClock::new();
        let mut b = Topic::builder().clock(clock.clone());
        if validated {
            b = b.validate(
                |m: &Message<u32>| match m.attr("bad").and_then(|v| v.as_bool()) {
                    Some(true) => Err("bad message"),
                    _ => Ok(()),
                },
            );
        }
        Model {
            topic: b.build(),
            clock,
            validated,
            subs: Vec::new(),
            closed: false,
            now: 0,
            next_payload: 0,
            stats: TopicStats::default(),
        }
    }

    fn pick(&self, i: usize) -> Option<usize> {
        (!self.subs.is_empty()).then(|| i % self.subs.len())
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Subscribe {
                capacity,
                overflow,
                filter: f,
            } => {
                let mut o = SubscribeOptions::new().unbounded().overflow(overflow);
                if let Some(c) = capacity {
                    o = o.capacity(c);
                }
                let sub = match f {
                    Some(f) => self.topic.subscribe_filtered_with(filter(f), o),
                    None => self.topic.subscribe_with(o),
                };
                let id = sub.id();
                self.push(Handle::Channel(sub), id, capacity, overflow, f);
            }
            Op::SubscribeQueue {
                capacity,
                overflow,
                filter: f,
            } => {
                let mut b = Queue::builder().clock(self.clock.clone());
                if let Some(c) = capacity {
                    b = b.capacity(c);
                }
                let q = b.build();
                let id = match (f, overflow) {
                    (None, Overflow::Block) => self.topic.subscribe_queue(&q),
                    (None, o) => self.topic.subscribe_queue_with(&q, o),
                    (Some(f), Overflow::Block) => {
                        self.topic.subscribe_queue_filtered(&q, filter(f))
                    }
                    (Some(f), o) => self
                        .topic
                        .subscribe_endpoint_filtered(q.clone(), filter(f), o),
                };
                self.push(Handle::Queue(q), id, capacity, overflow, f);
            }
            Op::SubscribeFn {
                overflow,
                filter: f,
            } => {
                let log = Arc::new(Mutex::new(Vec::new()));
                let took = Arc::clone(&log);
                let e = Endpoint::from_fn(move |m: Message<u32>| {
                    if let Some(refuse) = closure_verdict(*m.payload()) {
                        return Err(refuse(m));
                    }
                    took.lock().unwrap().push(m.into_payload());
                    Ok(())
                });
                let id = match (f, overflow) {
                    (None, Overflow::Block) => self.topic.subscribe_endpoint(e),
                    (None, o) => self.topic.subscribe_endpoint_with(e, o),
                    (Some(f), o) => self.topic.subscribe_endpoint_filtered(e, filter(f), o),
                };
                self.push(Handle::Closure(log), id, None, overflow, f);
            }
            Op::SubscribeMany(filters) => {
                for f in filters {
                    let o = SubscribeOptions::new().unbounded();
                    let sub = match f {
                        Some(f) => self.topic.subscribe_filtered_with(filter(f), o),
                        None => self.topic.subscribe_with(o),
                    };
                    let id = sub.id();
                    self.push(Handle::Channel(sub), id, None, Overflow::Block, f);
                }
            }
            Op::Unsubscribe(i) => {
                let Some(i) = self.pick(i) else { return };
                let s = &mut self.subs[i];
                assert_eq!(self.topic.unsubscribe(s.id), s.attached, "unsubscribe {i}");
                s.attached = false;
                if s.is_channel() {
                    s.closed = true;
                }
            }
            Op::Forget(i) => {
                let Some(i) = self.pick(i) else { return };
                let s = self.subs.remove(i);
                if !s.is_channel() && s.attached {
                    // The topic keeps a chained endpoint: keep following it.
                    self.subs.insert(i, s);
                }
            }
            Op::SetFilter {
                sub,
                filter: f,
                via_subscription,
            } => {
                let Some(i) = self.pick(sub) else { return };
                let s = &mut self.subs[i];
                let changed = match &s.handle {
                    Handle::Channel(sub) if via_subscription => sub.set_filter(f.map(filter)),
                    _ => self.topic.set_filter(s.id, f.map(filter)),
                };
                assert_eq!(changed, s.attached, "set_filter {i}");
                if changed {
                    s.filter = f;
                }
            }
            Op::SetFilterMany(changes) => {
                for (i, f) in changes {
                    let Some(i) = self.pick(i) else { break };
                    let s = &mut self.subs[i];
                    assert_eq!(self.topic.set_filter(s.id, f.map(filter)), s.attached);
                    if s.attached {
                        s.filter = f;
                    }
                }
            }
            Op::Publish { attrs, ttl, mode } => self.publish(attrs, ttl, mode),
            Op::Recv(i) => {
                let Some(i) = self.pick(i) else { return };
                self.recv(i);
            }
            Op::RecvMany(i, max) => {
                let Some(i) = self.pick(i) else { return };
                self.recv_many(i, max);
            }
            Op::CloseQueue(i) => {
                let Some(i) = self.pick(i) else { return };
                let s = &mut self.subs[i];
                if let Handle::Queue(q) = &s.handle {
                    assert_eq!(q.close(), !s.closed);
                    s.closed = true;
                }
            }
            Op::Close => {
                assert_eq!(self.topic.close(), !self.closed);
                self.closed = true;
                for s in &mut self.subs {
                    s.attached = false;
                    if s.is_channel() {
                        s.closed = true;
                    }
                }
            }
            Op::Advance(secs) => {
                self.clock.advance(Duration::from_secs(secs));
                self.now += secs;
            }
        }
        self.check();
    }

    fn push(
        &mut self,
        handle: Handle,
        id: SubscriptionId,
        capacity: Option<usize>,
        overflow: Overflow,
        filter: Option<usize>,
    ) {
        let channel = matches!(handle, Handle::Channel(_));
        self.subs.push(Sub {
            handle,
            id,
            attached: !self.closed,
            filter,
            capacity,
            overflow,
            buf: VecDeque::new(),
            seen: Vec::new(),
            dropped: 0,
            received: 0,
            expired: 0,
            // A subscription made on a closed topic is closed from the start.
            closed: channel && self.closed,
            sent: 0,
        });
    }

    fn publish(&mut self, attrs: Attrs, ttl: Option<u64>, mode: Mode) {
        let payload = self.next_payload;
        self.next_payload += 1;
        let mut msg = attrs.message(payload);
        if let Some(t) = ttl {
            msg = msg.with_ttl(Duration::from_secs(t));
        }
        let item = Item {
            payload,
            expires: ttl.map(|t| self.now + t),
        };

        // The oracle's publish, in subscription order.
        let mut exp = Counts::default();
        let mut would_block = false;
        let outcome = if self.closed {
            Err("closed")
        } else if self.validated && attrs.bad == Some(true) {
            self.stats.rejected += 1;
            Err("rejected")
        } else {
            self.stats.published += 1;
            for s in self.subs.iter_mut().filter(|s| s.attached) {
                if s.filter
                    .is_some_and(|f| !oracle_matches(f, &attrs, payload))
                {
                    exp.filtered_out += 1;
                    continue;
                }
                if let Handle::Closure(_) = s.handle {
                    match closure_verdict(payload).map(|v| v(Message::new(payload))) {
                        None => {
                            s.buf.push_back(item);
                            exp.delivered += 1;
                        }
                        Some(DeliverError::Rejected { .. }) => exp.rejected += 1,
                        Some(DeliverError::Closed(_)) => exp.closed += 1,
                        Some(DeliverError::Full(_)) => match s.overflow {
                            Overflow::DropNewest | Overflow::DropOldest => exp.dropped_newest += 1,
                            Overflow::Block | Overflow::Error => exp.full += 1,
                        },
                        Some(_) => unreachable!("the model's closures give only these verdicts"),
                    }
                    if closure_verdict(payload).is_some() {
                        s.dropped += 1;
                    }
                    continue;
                }
                if s.is_queue() && s.closed {
                    s.dropped += 1;
                    exp.closed += 1;
                    continue;
                }
                if !s.full() {
                    s.buf.push_back(item);
                    s.sent += 1;
                    exp.delivered += 1;
                    continue;
                }
                s.dropped += 1;
                match (s.overflow, s.is_queue()) {
                    (Overflow::DropOldest, false) => {
                        s.buf.pop_front();
                        s.buf.push_back(item);
                        exp.delivered += 1;
                        exp.dropped_oldest += 1;
                    }
                    // A queue cannot give an older message back: the new one is dropped.
                    (Overflow::DropOldest, true) | (Overflow::DropNewest, _) => {
                        exp.dropped_newest += 1
                    }
                    (Overflow::Block, _) => {
                        would_block = true;
                        exp.full += 1;
                    }
                    (Overflow::Error, _) => exp.full += 1,
                }
            }
            self.stats.delivered += exp.delivered as u64;
            self.stats.filtered_out += exp.filtered_out as u64;
            self.stats.dropped +=
                (exp.dropped_oldest + exp.dropped_newest + exp.full + exp.closed + exp.rejected)
                    as u64;
            Ok(())
        };

        // A full blocking subscriber would hold `publish` up: the model cannot wait, so then it
        // publishes without waiting, as the oracle assumed.
        let mode = match mode {
            Mode::Publish if would_block => Mode::Try,
            m => m,
        };
        let res = match mode {
            Mode::Publish => self.topic.publish(msg),
            Mode::Try => self.topic.try_publish(msg),
            Mode::TimeoutZero => self.topic.publish_timeout(msg, Duration::ZERO),
        };
        match (res, outcome) {
            (Err(PublishError::Closed(m)), Err("closed")) => assert_eq!(m.into_payload(), payload),
            (Err(PublishError::Rejected { message, reason }), Err("rejected")) => {
                assert_eq!(message.into_payload(), payload);
                assert_eq!(reason, "bad message");
            }
            (Ok(report), Ok(())) => {
                assert_eq!(exp.full, 0, "publish {payload}: Ok, oracle full");
                assert_eq!(counts(&report), exp, "publish {payload} ({mode:?})");
            }
            (Err(PublishError::Full { message, report }), Ok(())) => {
                assert!(exp.full > 0, "publish {payload}: Full, oracle {exp:?}");
                assert_eq!(message.into_payload(), payload);
                assert_eq!(counts(&report), exp, "publish {payload} ({mode:?})");
            }
            (res, want) => panic!("publish {payload}: got {res:?}, oracle {want:?} {exp:?}"),
        }
    }

    fn recv(&mut self, i: usize) {
        let s = &mut self.subs[i];
        if let Handle::Closure(_) = s.handle {
            return;
        }
        let want = s.next_live(self.now);
        let got = match &s.handle {
            Handle::Channel(sub) => sub.try_recv(),
            Handle::Queue(q) => q.try_recv(),
            Handle::Closure(_) => unreachable!(),
        };
        match (got, want) {
            (Ok(m), Some(it)) => s.receive(i, m.into_payload(), it),
            (Err(TryRecvError::Empty), None) => assert!(!s.closed, "subscriber {i}: Empty"),
            (Err(TryRecvError::Closed), None) => assert!(s.closed, "subscriber {i}: Closed"),
            (got, want) => panic!("subscriber {i}: got {got:?}, oracle {want:?}"),
        }
    }

    /// `recv_many(max, Duration::ZERO)`: the first message if one is there, then what else is.
    fn recv_many(&mut self, i: usize, max: usize) {
        let s = &mut self.subs[i];
        if let Handle::Closure(_) = s.handle {
            return;
        }
        let mut want = Vec::new();
        while want.len() < max {
            match s.next_live(self.now) {
                Some(it) => want.push(it),
                None => break,
            }
        }
        let got = match &s.handle {
            Handle::Channel(sub) => sub.recv_many(max, Duration::ZERO),
            Handle::Queue(q) => q.recv_many(max, Duration::ZERO),
            Handle::Closure(_) => unreachable!(),
        };
        match got {
            Ok(got) => {
                assert!(
                    !want.is_empty() || !s.closed,
                    "subscriber {i}: Ok([]) when closed"
                );
                assert_eq!(got.len(), want.len(), "subscriber {i}: recv_many({max})");
                for (m, it) in got.into_iter().zip(want) {
                    s.receive(i, m.into_payload(), it);
                }
            }
            Err(_) => assert!(want.is_empty() && s.closed, "subscriber {i}: RecvError"),
        }
    }

    fn check(&self) {
        for (i, s) in self.subs.iter().enumerate() {
            let from_topic = self.topic.subscription_stats(s.id);
            match &s.handle {
                Handle::Channel(sub) => {
                    assert_eq!(sub.len(), s.buf.len(), "subscriber {i} length");
                    assert_eq!(sub.is_full(), s.full(), "subscriber {i} full");
                    let mine = sub.stats();
                    assert_eq!(
                        (mine.received, mine.dropped, mine.expired, mine.lag),
                        (s.received, s.dropped, s.expired, s.buf.len()),
                        "subscriber {i} stats"
                    );
                    assert_eq!(
                        (sub.received(), sub.dropped(), sub.expired()),
                        (s.received, s.dropped, s.expired)
                    );
                    assert_eq!(from_topic, s.attached.then_some(mine), "subscriber {i}");
                }
                Handle::Queue(q) => {
                    assert_eq!(q.len(), s.buf.len(), "queue {i} length");
                    assert_eq!(q.is_closed(), s.closed, "queue {i} closed");
                    let qs = q.stats();
                    assert_eq!(
                        (qs.visible, qs.sent, qs.received, qs.expired),
                        (s.buf.len(), s.sent, s.received, s.expired),
                        "queue {i} stats"
                    );
                    let want = SubscriptionStats::default();
                    let got = from_topic.map(|t| (t.received, t.dropped, t.expired, t.lag));
                    let want =
                        s.attached
                            .then_some((want.received, s.dropped, want.expired, want.lag));
                    assert_eq!(got, want, "queue {i} subscription stats");
                }
                Handle::Closure(log) => {
                    let want: Vec<u32> = s.buf.iter().map(|it| it.payload).collect();
                    assert_eq!(*log.lock().unwrap(), want, "closure {i}");
                    let got = from_topic.map(|t| (t.received, t.dropped, t.expired, t.lag));
                    assert_eq!(
                        got,
                        s.attached.then_some((0, s.dropped, 0, 0)),
                        "closure {i}"
                    );
                }
            }
        }
        let attached = self.subs.iter().filter(|s| s.attached).count();
        let s = self.topic.stats();
        assert_eq!(
            (
                s.published,
                s.delivered,
                s.dropped,
                s.rejected,
                s.filtered_out
            ),
            (
                self.stats.published,
                self.stats.delivered,
                self.stats.dropped,
                self.stats.rejected,
                self.stats.filtered_out
            ),
            "topic stats"
        );
        // Subscribers the model let go of are gone too, except chained queues (kept above).
        assert_eq!(s.subscribers, attached, "subscribers");
        assert_eq!(self.topic.subscriber_count(), attached);
        assert_eq!(self.topic.is_closed(), self.closed);
    }
}

fn run(validated: bool, ops: Vec<Op>) {
    let mut model = Model::new(validated);
    for op in ops {
        model.step(op);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(256)))]

    #[test]
    fn topic_matches_the_vecdeque_oracle(
        validated in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run(validated, ops);
    }
}

/// Bounds this binary in time: a hanging test fails the run (see `common::start_watchdog`).
#[test]
fn _watchdog() {
    common::start_watchdog();
}
