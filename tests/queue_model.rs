//! Model tests: random operation sequences against the real queue and a naive oracle.
//!
//! (a) The plain path against a `VecDeque`. (b) The lease state machine on a `ManualClock`: the
//! oracle tracks each message's state (visible, delayed, leased, acked, dead-lettered,
//! discarded), checks every delivery, verdict and count, and at the end that every message
//! settled exactly once. (c) Time-to-live and retention on the plain path. (d) The whole
//! standard queue: both lanes, delays, expiry, dead letters and redrive, capacity,
//! de-duplication, plain and batch receives among leases, with each delivery predicted exactly.
//! (e) FIFO groups: one in flight per group, order per group, de-duplication.

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use switchboard::{
    AckError, Delivery, ManualClock, MessageId, Queue, QueueStats, Sent, TryRecvError, TrySendError,
};

// ----- (a) the plain path against a VecDeque ----------------------------------------------------

#[derive(Clone, Debug)]
enum PlainOp {
    TrySend(u16),
    TryRecv,
    RecvMany(u8),
    SendBatch(u8),
    Len,
    Close,
}

fn plain_op() -> impl Strategy<Value = PlainOp> {
    prop_oneof![
        6 => any::<u16>().prop_map(PlainOp::TrySend),
        5 => Just(PlainOp::TryRecv),
        1 => (0u8..5).prop_map(PlainOp::RecvMany),
        1 => (0u8..4).prop_map(PlainOp::SendBatch),
        2 => Just(PlainOp::Len),
        1 => Just(PlainOp::Close),
    ]
}

fn check_plain(capacity: Option<usize>, ops: &[PlainOp]) -> Result<(), TestCaseError> {
    let q: Queue<u16> = match capacity {
        Some(c) => Queue::bounded(c),
        None => Queue::unbounded(),
    };
    let mut model: VecDeque<u16> = VecDeque::new();
    let mut closed = false;
    let (mut sent, mut received) = (0u64, 0u64);
    let full = |m: &VecDeque<u16>| capacity.is_some_and(|c| m.len() >= c);
    for op in ops {
        match *op {
            PlainOp::TrySend(v) => match q.try_send(v) {
                Ok(_) => {
                    prop_assert!(!closed && !full(&model));
                    model.push_back(v);
                    sent += 1;
                }
                Err(TrySendError::Full(m)) => {
                    prop_assert!(!closed && full(&model));
                    prop_assert_eq!(m.into_payload(), v);
                }
                Err(TrySendError::Closed(m)) => {
                    prop_assert!(closed);
                    prop_assert_eq!(m.into_payload(), v);
                }
            },
            PlainOp::SendBatch(n) => {
                // Only where it cannot block: unbounded, or room for all.
                let room = capacity.map_or(usize::MAX, |c| c.saturating_sub(model.len()));
                if usize::from(n) <= room {
                    let batch: Vec<u16> = (0..u16::from(n)).map(|i| 1000 + i).collect();
                    match q.send_batch(batch.clone()) {
                        Ok(k) => {
                            prop_assert!(!closed || batch.is_empty());
                            prop_assert_eq!(k, batch.len());
                            sent += k as u64;
                            model.extend(batch);
                        }
                        Err(e) => {
                            prop_assert!(closed);
                            prop_assert_eq!(e.sent, 0);
                            let back: Vec<u16> =
                                e.unsent.into_iter().map(|m| m.into_payload()).collect();
                            prop_assert_eq!(back, batch);
                        }
                    }
                }
            }
            PlainOp::TryRecv => match q.try_recv() {
                Ok(m) => {
                    prop_assert_eq!(Some(m.into_payload()), model.pop_front());
                    received += 1;
                }
                Err(TryRecvError::Empty) => prop_assert!(model.is_empty() && !closed),
                Err(TryRecvError::Closed) => prop_assert!(model.is_empty() && closed),
            },
            PlainOp::RecvMany(max) => match q.recv_many(usize::from(max), Duration::ZERO) {
                Ok(got) => {
                    let want: Vec<u16> = model.drain(..model.len().min(usize::from(max))).collect();
                    let got: Vec<u16> = got.into_iter().map(|m| m.into_payload()).collect();
                    received += got.len() as u64;
                    prop_assert_eq!(got, want);
                }
                Err(_) => prop_assert!(closed && model.is_empty() && max > 0),
            },
            PlainOp::Len => {}
            PlainOp::Close => {
                prop_assert_eq!(q.close(), !closed);
                closed = true;
            }
        }
        prop_assert_eq!(q.len(), model.len());
        prop_assert_eq!(q.is_empty(), model.is_empty());
        prop_assert_eq!(q.is_full(), full(&model));
        prop_assert_eq!(q.is_closed(), closed);
        let s = q.stats();
        prop_assert_eq!(
            (s.sent, s.received, s.visible),
            (sent, received, model.len())
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(128), ..ProptestConfig::default() })]

    #[test]
    fn plain_bounded_matches_vecdeque(
        cap in 0usize..6,
        ops in prop::collection::vec(plain_op(), 0..80),
    ) {
        check_plain(Some(cap), &ops)?;
    }

    #[test]
    fn plain_unbounded_matches_vecdeque(ops in prop::collection::vec(plain_op(), 0..80)) {
        check_plain(None, &ops)?;
    }
}

// ----- (b) the lease state machine --------------------------------------------------------------

const VIS: u64 = 10;

#[derive(Clone, Debug)]
enum LeaseOp {
    Send,
    /// try_receive, with the default visibility or this one (seconds).
    Receive(Option<u8>),
    /// receive_many of up to this many, without waiting.
    ReceiveMany(u8),
    Ack(usize),
    Nack(usize),
    NackAfter(usize, u8),
    Reject(usize),
    Drop(usize),
    Extend(usize, u8),
    Advance(u8),
    Stats,
    /// close(): later sends fail and hand their message back; receives drain, then `Closed`.
    Close,
}

fn lease_op() -> impl Strategy<Value = LeaseOp> {
    prop_oneof![
        4 => Just(LeaseOp::Send),
        6 => Just(LeaseOp::Receive(None)),
        1 => (0u8..15).prop_map(|v| LeaseOp::Receive(Some(v))),
        2 => (0u8..6).prop_map(LeaseOp::ReceiveMany),
        3 => any::<usize>().prop_map(LeaseOp::Ack),
        2 => any::<usize>().prop_map(LeaseOp::Nack),
        1 => (any::<usize>(), 0u8..8).prop_map(|(i, d)| LeaseOp::NackAfter(i, d)),
        1 => any::<usize>().prop_map(LeaseOp::Reject),
        2 => any::<usize>().prop_map(LeaseOp::Drop),
        1 => (any::<usize>(), 0u8..15).prop_map(|(i, d)| LeaseOp::Extend(i, d)),
        3 => (0u8..12).prop_map(LeaseOp::Advance),
        1 => Just(LeaseOp::Stats),
        1 => Just(LeaseOp::Close),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Visible,
    Delayed { due: u64 },
    Leased { gen: u64, deadline: u64 },
    Acked,
    Dead { attempts: u32 },
    Discarded,
}

#[derive(Debug)]
struct Msg {
    st: St,
    attempts: u32,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts {
    sent: u64,
    received: u64,
    acked: u64,
    nacked: u64,
    abandoned: u64,
    lease_expired: u64,
    redelivered: u64,
    dead_lettered: u64,
    discarded: u64,
}

struct Model {
    msgs: Vec<Msg>,
    c: Counts,
    now: u64,
    gen: u64,
    dlq: bool,
    max: Option<u32>,
}

impl Model {
    fn count(&self, f: impl Fn(&St) -> bool) -> usize {
        self.msgs.iter().filter(|m| f(&m.st)).count()
    }

    /// What the queue does with a failed lease (nack, drop, expiry).
    fn fail(&mut self, i: usize, due: Option<u64>) {
        let attempts = self.msgs[i].attempts;
        self.msgs[i].st = if self.max.is_some_and(|m| attempts >= m) {
            self.dead(attempts)
        } else {
            match due {
                Some(due) if due > self.now => St::Delayed { due },
                _ => St::Visible,
            }
        };
    }

    fn dead(&mut self, attempts: u32) -> St {
        if self.dlq {
            self.c.dead_lettered += 1;
            St::Dead { attempts }
        } else {
            self.c.discarded += 1;
            St::Discarded
        }
    }

    /// Due delays become visible, leases past their deadline fail.
    fn resolve(&mut self) {
        for i in 0..self.msgs.len() {
            match self.msgs[i].st {
                St::Delayed { due } if due <= self.now => self.msgs[i].st = St::Visible,
                St::Leased { deadline, .. } if deadline <= self.now => {
                    self.c.lease_expired += 1;
                    self.fail(i, None);
                }
                _ => {}
            }
        }
    }

    fn holds(&self, i: usize, gen: u64) -> bool {
        matches!(self.msgs[i].st, St::Leased { gen: g, .. } if g == gen)
    }

    fn check_stats(&self, s: &QueueStats) -> Result<(), TestCaseError> {
        let c = &self.c;
        prop_assert_eq!(
            (s.sent, s.received, s.acked, s.nacked, s.abandoned),
            (c.sent, c.received, c.acked, c.nacked, c.abandoned)
        );
        prop_assert_eq!(
            (
                s.lease_expired,
                s.redelivered,
                s.dead_lettered,
                s.discarded,
                s.expired
            ),
            (
                c.lease_expired,
                c.redelivered,
                c.dead_lettered,
                c.discarded,
                0
            )
        );
        prop_assert_eq!(s.visible, self.count(|s| *s == St::Visible), "visible");
        prop_assert_eq!(
            s.in_flight,
            self.count(|s| matches!(s, St::Leased { .. })),
            "in flight"
        );
        prop_assert_eq!(
            s.delayed,
            self.count(|s| matches!(s, St::Delayed { .. })),
            "delayed"
        );
        Ok(())
    }
}

enum Recv {
    Got,
    Empty,
    Closed,
}

struct Held {
    d: Delivery<u32>,
    idx: usize,
    gen: u64,
}

/// Receives on lease and checks the delivery against the model.
fn receive(
    q: &Queue<u32>,
    m: &mut Model,
    held: &mut Vec<Held>,
    vis: Option<u64>,
    start: Instant,
) -> Result<Recv, TestCaseError> {
    m.resolve();
    let r = match vis {
        None => q.try_receive(),
        Some(v) => q.with_visibility(Duration::from_secs(v)).try_receive(),
    };
    match r {
        Ok(d) => {
            check_delivery(d, m, held, vis, start)?;
            Ok(Recv::Got)
        }
        Err(TryRecvError::Empty) => {
            prop_assert_eq!(
                m.count(|s| *s == St::Visible),
                0,
                "Empty with visible messages"
            );
            Ok(Recv::Empty)
        }
        Err(TryRecvError::Closed) => check_closed(q, m).map(|()| Recv::Closed),
    }
}

/// A batch of leases: each as a single receive's, and fewer than asked only when nothing more
/// is visible.
fn receive_many(
    q: &Queue<u32>,
    m: &mut Model,
    held: &mut Vec<Held>,
    max: usize,
    start: Instant,
) -> Result<(), TestCaseError> {
    m.resolve();
    match q.receive_many(max, Duration::ZERO) {
        Ok(batch) => {
            let got = batch.len();
            prop_assert!(got <= max, "{} leased of {} asked", got, max);
            for d in batch {
                check_delivery(d, m, held, None, start)?;
            }
            if got < max {
                prop_assert_eq!(
                    m.count(|s| *s == St::Visible),
                    0,
                    "a short batch with visible messages"
                );
            }
            Ok(())
        }
        Err(_) => check_closed(q, m),
    }
}

/// A receive reported the queue closed: nothing is left that could still be delivered.
fn check_closed(q: &Queue<u32>, m: &Model) -> Result<(), TestCaseError> {
    prop_assert!(q.is_closed());
    prop_assert_eq!(
        m.count(|s| matches!(s, St::Visible | St::Delayed { .. } | St::Leased { .. })),
        0
    );
    Ok(())
}

/// Checks a delivery against the model (visible, its attempt, fresh ones in send order, its
/// deadline) and records its lease.
fn check_delivery(
    d: Delivery<u32>,
    m: &mut Model,
    held: &mut Vec<Held>,
    vis: Option<u64>,
    start: Instant,
) -> Result<(), TestCaseError> {
    {
        {
            let i = *d.payload() as usize;
            prop_assert_eq!(
                m.msgs[i].st,
                St::Visible,
                "delivered message {} not visible",
                i
            );
            prop_assert_eq!(d.attempt(), m.msgs[i].attempts + 1, "attempt of {}", i);
            if d.attempt() == 1 {
                // Fresh messages come in the order they were sent.
                let first_fresh = m
                    .msgs
                    .iter()
                    .position(|x| x.st == St::Visible && x.attempts == 0);
                prop_assert_eq!(first_fresh, Some(i));
            }
            let vis = vis.unwrap_or(VIS);
            prop_assert_eq!(d.lease_deadline(), start + Duration::from_secs(m.now + vis));
            m.msgs[i].attempts += 1;
            m.c.received += 1;
            if m.msgs[i].attempts > 1 {
                m.c.redelivered += 1;
            }
            m.gen += 1;
            m.msgs[i].st = St::Leased {
                gen: m.gen,
                deadline: m.now + vis,
            };
            held.push(Held {
                d,
                idx: i,
                gen: m.gen,
            });
            Ok(())
        }
    }
}

fn check_leases(dlq: bool, max: Option<u32>, ops: &[LeaseOp]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let start = clock.now();
    let dead: Queue<u32> = Queue::builder().clock(clock.clone()).build();
    let mut b = Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(Duration::from_secs(VIS));
    if dlq {
        b = b.dead_letter(&dead, max.unwrap_or(3));
    } else if let Some(max) = max {
        b = b.max_attempts(max);
    }
    let q = b.build();
    let max = if dlq { Some(max.unwrap_or(3)) } else { max };
    let mut m = Model {
        msgs: Vec::new(),
        c: Counts::default(),
        now: 0,
        gen: 0,
        dlq,
        max,
    };
    let mut held: Vec<Held> = Vec::new();

    for op in ops {
        match *op {
            LeaseOp::Send if q.is_closed() => {
                let back = q.send(u32::MAX).unwrap_err().into_inner().into_payload();
                prop_assert_eq!(back, u32::MAX, "a send after close hands its message back");
            }
            LeaseOp::Close => {
                let was = q.is_closed();
                prop_assert_eq!(q.close(), !was, "close() is true the first time only");
            }
            LeaseOp::Send => {
                let i = m.msgs.len() as u32;
                q.send(i).unwrap();
                m.msgs.push(Msg {
                    st: St::Visible,
                    attempts: 0,
                });
                m.c.sent += 1;
            }
            LeaseOp::Receive(vis) => {
                receive(&q, &mut m, &mut held, vis.map(u64::from), start)?;
            }
            LeaseOp::ReceiveMany(n) => {
                receive_many(&q, &mut m, &mut held, usize::from(n), start)?;
            }
            LeaseOp::Advance(s) => {
                clock.advance(Duration::from_secs(u64::from(s)));
                m.now += u64::from(s);
            }
            LeaseOp::Extend(k, s) => {
                if held.is_empty() {
                    continue;
                }
                let k = k % held.len();
                m.resolve();
                let h = &mut held[k];
                let valid = m.holds(h.idx, h.gen);
                let r = h.d.extend(Duration::from_secs(u64::from(s)));
                prop_assert_eq!(
                    r.is_ok(),
                    valid,
                    "extend of {} (lease held: {})",
                    h.idx,
                    valid
                );
                if valid {
                    let deadline = m.now + u64::from(s);
                    m.msgs[h.idx].st = St::Leased {
                        gen: h.gen,
                        deadline,
                    };
                    prop_assert_eq!(h.d.lease_deadline(), start + Duration::from_secs(deadline));
                }
            }
            LeaseOp::Stats => {}
            LeaseOp::Ack(k)
            | LeaseOp::Nack(k)
            | LeaseOp::NackAfter(k, _)
            | LeaseOp::Reject(k)
            | LeaseOp::Drop(k) => {
                if held.is_empty() {
                    continue;
                }
                let Held { d, idx, gen } = held.swap_remove(k % held.len());
                let id = d.id();
                m.resolve();
                let valid = m.holds(idx, gen);
                let attempts = m.msgs[idx].attempts;
                let r = match *op {
                    LeaseOp::Ack(_) => {
                        if valid {
                            m.c.acked += 1;
                            m.msgs[idx].st = St::Acked;
                        }
                        d.ack()
                    }
                    LeaseOp::Nack(_) => {
                        if valid {
                            m.c.nacked += 1;
                            m.fail(idx, None);
                        }
                        d.nack()
                    }
                    LeaseOp::NackAfter(_, s) => {
                        if valid {
                            m.c.nacked += 1;
                            m.fail(idx, Some(m.now + u64::from(s)));
                        }
                        d.nack_after(Duration::from_secs(u64::from(s)))
                    }
                    LeaseOp::Reject(_) => {
                        if valid {
                            m.msgs[idx].st = m.dead(attempts);
                        }
                        d.reject(format!("reject {idx}"))
                    }
                    LeaseOp::Drop(_) => {
                        if valid {
                            m.c.abandoned += 1;
                            m.fail(idx, None);
                        }
                        // A drop reports nothing: check its effect through the counts below.
                        drop(d);
                        valid.then_some(()).ok_or(AckError::LeaseExpired(id))
                    }
                    _ => unreachable!(),
                };
                prop_assert_eq!(r.is_ok(), valid, "verdict {:?} on {}", op, idx);
            }
        }
        // Every observation (receives, verdicts, `stats`, `len`) runs the timers that are due.
        m.resolve();
        m.check_stats(&q.stats())?;
        prop_assert_eq!(q.len(), m.count(|s| *s == St::Visible));
    }

    // Wind down: settle what is held, close, and drain (letting delays come due).
    for Held { d, idx, gen } in held.drain(..) {
        m.resolve();
        let valid = m.holds(idx, gen);
        if valid {
            m.c.acked += 1;
            m.msgs[idx].st = St::Acked;
        }
        prop_assert_eq!(d.ack().is_ok(), valid);
    }
    let was = q.is_closed();
    prop_assert_eq!(q.close(), !was);
    let mut rounds = 0;
    loop {
        rounds += 1;
        prop_assert!(rounds < 10_000, "drain did not finish");
        match receive(&q, &mut m, &mut held, None, start)? {
            Recv::Got => {
                let Held { d, idx, .. } = held.pop().unwrap();
                m.c.acked += 1;
                m.msgs[idx].st = St::Acked;
                d.ack().unwrap();
            }
            Recv::Closed => break,
            Recv::Empty => {
                clock.advance(Duration::from_secs(100));
                m.now += 100;
            }
        }
    }
    m.resolve();
    m.check_stats(&q.stats())?;

    // Every message settled exactly once: acked, dead-lettered or discarded.
    let mut in_dlq = BTreeSet::new();
    for msg in dead.try_iter() {
        let i = *msg.payload() as usize;
        prop_assert!(in_dlq.insert(i), "message {} twice in the DLQ", i);
        let info = msg.dead_letter().expect("a dead letter carries its record");
        prop_assert_eq!(
            m.msgs[i].st,
            St::Dead {
                attempts: info.attempts()
            }
        );
    }
    let mut acked = 0;
    for (i, msg) in m.msgs.iter().enumerate() {
        match msg.st {
            St::Acked => acked += 1,
            St::Dead { .. } => prop_assert!(in_dlq.contains(&i), "message {} not in the DLQ", i),
            St::Discarded => {}
            st => prop_assert!(false, "message {} left in state {:?}", i, st),
        }
    }
    prop_assert_eq!(acked, m.c.acked);
    prop_assert_eq!(
        m.c.acked + m.c.dead_lettered + m.c.discarded,
        m.msgs.len() as u64
    );
    prop_assert_eq!(in_dlq.len() as u64, m.c.dead_lettered);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(96), ..ProptestConfig::default() })]

    #[test]
    fn leases_with_dead_letter_queue(
        max in 1u32..4,
        ops in prop::collection::vec(lease_op(), 0..70),
    ) {
        check_leases(true, Some(max), &ops)?;
    }

    #[test]
    fn leases_with_max_attempts_and_no_dlq(
        max in 1u32..4,
        ops in prop::collection::vec(lease_op(), 0..70),
    ) {
        check_leases(false, Some(max), &ops)?;
    }

    #[test]
    fn leases_retried_without_limit(ops in prop::collection::vec(lease_op(), 0..70)) {
        check_leases(false, None, &ops)?;
    }
}

// ----- (c) time-to-live and retention on the plain path -----------------------------------------

#[derive(Clone, Debug)]
enum TtlOp {
    /// Send with this time-to-live in seconds (none if `None`).
    Send(Option<u8>),
    TryRecv,
    Advance(u8),
}

fn ttl_op() -> impl Strategy<Value = TtlOp> {
    prop_oneof![
        4 => prop::option::of(0u8..10).prop_map(TtlOp::Send),
        3 => Just(TtlOp::TryRecv),
        2 => (0u8..6).prop_map(TtlOp::Advance),
    ]
}

/// Fresh messages in order, each with the time it expires (TTL from the send, or retention
/// from entering the queue, whichever comes first). A receive drops the expired ones at the head,
/// counting them, and returns the first live one.
fn check_ttl(retention: Option<u64>, ops: &[TtlOp]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let mut b = Queue::builder().clock(clock.clone());
    if let Some(r) = retention {
        b = b.retention(Duration::from_secs(r));
    }
    let q: Queue<u32> = b.build();
    let mut model: VecDeque<(u32, Option<u64>)> = VecDeque::new();
    let (mut now, mut next, mut expired, mut received) = (0u64, 0u32, 0u64, 0u64);
    for op in ops {
        match *op {
            TtlOp::Send(ttl) => {
                let mut msg = switchboard::Message::new(next);
                if let Some(t) = ttl {
                    msg = msg.with_ttl(Duration::from_secs(u64::from(t)));
                }
                q.send(msg).unwrap();
                let by_ttl = ttl.map(|t| now + u64::from(t));
                let by_retention = retention.map(|r| now + r);
                let at = match (by_ttl, by_retention) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                model.push_back((next, at));
                next += 1;
            }
            TtlOp::TryRecv => {
                let want = loop {
                    match model.pop_front() {
                        Some((_, Some(at))) if at <= now => expired += 1,
                        Some((v, _)) => break Some(v),
                        None => break None,
                    }
                };
                match q.try_recv() {
                    Ok(m) => {
                        received += 1;
                        prop_assert_eq!(Some(*m.payload()), want);
                    }
                    Err(e) => {
                        prop_assert!(e.is_empty());
                        prop_assert_eq!(None, want);
                    }
                }
            }
            TtlOp::Advance(s) => {
                clock.advance(Duration::from_secs(u64::from(s)));
                now += u64::from(s);
            }
        }
        let s = q.stats();
        prop_assert_eq!((s.expired, s.received), (expired, received));
        prop_assert_eq!((s.sent, s.visible), (u64::from(next), model.len()));
        prop_assert_eq!(q.len(), model.len());
    }
    // Every message was received or expired, exactly once.
    while let Some((_, at)) = model.pop_front() {
        if at.is_some_and(|at| at <= now) {
            expired += 1;
        } else {
            received += 1;
            prop_assert!(q.try_recv().is_ok());
        }
    }
    prop_assert!(q.try_recv().is_err());
    let s = q.stats();
    prop_assert_eq!((s.expired, s.received), (expired, received));
    prop_assert_eq!(expired + received, u64::from(next));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(128), ..ProptestConfig::default() })]

    #[test]
    fn ttl_expires_exactly_the_messages_past_their_time(
        ops in prop::collection::vec(ttl_op(), 0..60),
    ) {
        check_ttl(None, &ops)?;
    }

    #[test]
    fn retention_and_ttl_together(
        retention in 1u64..8,
        ops in prop::collection::vec(ttl_op(), 0..60),
    ) {
        check_ttl(Some(retention), &ops)?;
    }
}

// ----- (d) the lanes: delays, expiry, dead letters, redrive, plain and batch receives ----------
//
// The whole standard queue on a `ManualClock`: fresh messages in the main lane, returned, due and
// redriven ones in the ready lane (served in turn with the main lane), delayed ones, leases,
// time-to-live and retention, a dead-letter queue (or `max_attempts`) with `redrive` and
// `redrive_to` (dead letters also leased, put back and settled in the dead-letter queue),
// plain receives among leased ones, `receive_many` and `ack_many`, `close`, a
// capacity (fresh messages bounded in the main lane, delayed ones together with those waiting in
// the ready lane), and de-duplication ids. The oracle predicts each delivery exactly and every
// field of `stats()` on both queues.
//
// Time: every operation first moves the clock 1 ms, and durations are whole seconds, so no two
// deadlines of different operations coincide and no receive lands on an expiry instant; an
// `Advance` steps the clock through the due times it crosses, observing at each, so the order in
// which messages come back is the order of their due times (leases of one `receive_many` in
// the order leased). What comes back together in one observation is ordered by the
// implementation only, which the docs leave open: this model does not generate it.
//
// Turns between the lanes: the docs say only that receivers serve them alternately while both
// hold messages. The model follows the queue's rule exactly (a single receive that took from the
// ready lane defers once to the main lane; an expired message it drops does not use up the
// ready lane's turn, while in the rest of a `receive_many` it does), so a change there shows up
// here as a difference to judge, not necessarily a defect.

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const DEDUP_WINDOW: u64 = 30;

#[derive(Clone, Debug)]
enum LaneOp {
    /// try_send with this time-to-live (seconds) and de-duplication id.
    Send(Option<u8>, Option<u8>),
    /// send_after this many seconds, with this time-to-live; or (`true`) send_at that many
    /// seconds after 2 s ago (so perhaps in the past).
    SendAfter(u8, Option<u8>, bool),
    Receive(Option<u8>),
    ReceiveMany(u8),
    /// A plain (at-most-once) receive among the leased ones.
    TryRecv,
    /// recv_many of up to this many, without waiting.
    RecvMany(u8),
    Ack(usize),
    /// ack_many of up to this many held deliveries.
    AckMany(u8),
    Nack(usize),
    NackAfter(usize, u8),
    Reject(usize),
    Drop(usize),
    Extend(usize, u8),
    Advance(u8),
    Redrive,
    RedriveTo(u8),
    /// A leased receive from the dead-letter queue.
    DlqReceive,
    Close,
}

fn lane_op() -> impl Strategy<Value = LaneOp> {
    let ttl = prop::option::weighted(0.4, 0u8..12);
    prop_oneof![
        5 => (ttl.clone(), prop::option::weighted(0.2, 0u8..4))
            .prop_map(|(t, k)| LaneOp::Send(t, k)),
        2 => (0u8..8, ttl, any::<bool>()).prop_map(|(d, t, at)| LaneOp::SendAfter(d, t, at)),
        5 => prop::option::weighted(0.2, 0u8..15).prop_map(LaneOp::Receive),
        2 => (0u8..5).prop_map(LaneOp::ReceiveMany),
        2 => Just(LaneOp::TryRecv),
        1 => (0u8..4).prop_map(LaneOp::RecvMany),
        2 => any::<usize>().prop_map(LaneOp::Ack),
        1 => (1u8..4).prop_map(LaneOp::AckMany),
        2 => any::<usize>().prop_map(LaneOp::Nack),
        1 => (any::<usize>(), 0u8..8).prop_map(|(i, d)| LaneOp::NackAfter(i, d)),
        1 => any::<usize>().prop_map(LaneOp::Reject),
        2 => any::<usize>().prop_map(LaneOp::Drop),
        1 => (any::<usize>(), 0u8..15).prop_map(|(i, d)| LaneOp::Extend(i, d)),
        4 => (0u8..12).prop_map(LaneOp::Advance),
        1 => Just(LaneOp::Redrive),
        1 => (0u8..3).prop_map(LaneOp::RedriveTo),
        1 => Just(LaneOp::DlqReceive),
        1 => Just(LaneOp::Close),
    ]
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ls {
    Main,
    Ready,
    Delayed {
        due: u64,
        seq: u64,
    },
    Leased {
        gen: u64,
        deadline: u64,
        seq: u64,
    },
    Acked,
    /// Taken by a plain receive.
    Taken,
    /// Waiting in the dead-letter queue.
    Dead,
    /// Leased from the dead-letter queue, or backing off there after a `nack_after`.
    DeadLeased {
        gen: u64,
        deadline: u64,
        seq: u64,
    },
    DeadDelayed {
        due: u64,
        seq: u64,
    },
    DeadAcked,
    Discarded,
    Expired,
}

#[derive(Debug)]
struct LaneMsg {
    st: Ls,
    attempts: u32,
    /// When it entered the source queue (its send, or its arrival by redrive), in nanoseconds.
    enqueued: u64,
    first_delivered: Option<u64>,
    /// When its time-to-live runs out (from its send).
    ttl_at: Option<u64>,
    /// Its dead-letter record (reason, attempts) and arrival time in the dead-letter queue.
    letter: Option<(String, u32)>,
    arrival: u64,
    /// Whether the record is written in the message body: by a lease from the dead-letter
    /// queue that nobody else shared the body with, until a redrive clears it. While a holder
    /// of an ended lease still reads such a body, a redrive leaves the letter where it is.
    record_in_body: bool,
}

#[derive(Debug, Default)]
struct LaneCounts {
    sent: u64,
    received: u64,
    acked: u64,
    nacked: u64,
    abandoned: u64,
    lease_expired: u64,
    redelivered: u64,
    expired: u64,
    dead_lettered: u64,
    discarded: u64,
}

#[derive(Debug)]
struct Lanes {
    msgs: Vec<LaneMsg>,
    main: VecDeque<usize>,
    ready: VecDeque<usize>,
    /// The dead-letter queue, in arrival order.
    dlq: VecDeque<usize>,
    c: LaneCounts,
    /// The dead-letter queue's counts.
    dc: LaneCounts,
    redriven: u64,
    /// Take from the main lane next while both lanes hold messages.
    prefer_main: bool,
    now: u64,
    seq: u64,
    gen: u64,
    last_arrival: u64,
    closed: bool,
    has_dlq: bool,
    max: Option<u32>,
    retention: Option<u64>,
    dead_letter_expired: bool,
    capacity: Option<usize>,
    /// The dead-letter queue's retention, which is all that expires a dead letter there.
    dlq_retention: Option<u64>,
    dlq_last_arrival: u64,
    /// De-duplication ids and when their window started.
    seen: Vec<(u8, u64, MessageId)>,
    duplicates: u64,
}

struct LaneHeld {
    d: Delivery<u32>,
    idx: usize,
    gen: u64,
    /// Leased from the dead-letter queue.
    dead: bool,
}

impl Lanes {
    fn expired(&self, i: usize) -> bool {
        let m = &self.msgs[i];
        let by_retention = self.retention.map(|r| m.enqueued + r);
        [m.ttl_at, by_retention]
            .into_iter()
            .flatten()
            .any(|at| at <= self.now)
    }

    fn count(&self, f: impl Fn(&Ls) -> bool) -> usize {
        self.msgs.iter().filter(|m| f(&m.st)).count()
    }

    fn leased(&self) -> usize {
        self.count(|s| matches!(s, Ls::Leased { .. }))
    }

    fn delayed(&self) -> usize {
        self.count(|s| matches!(s, Ls::Delayed { .. }))
    }

    fn holds(&self, i: usize, gen: u64) -> bool {
        matches!(
            self.msgs[i].st,
            Ls::Leased { gen: g, .. } | Ls::DeadLeased { gen: g, .. } if g == gen
        )
    }

    fn dlq_expired(&self, i: usize) -> bool {
        self.dlq_retention
            .is_some_and(|r| self.msgs[i].arrival + r <= self.now)
    }

    fn dlq_count(&self) -> (usize, usize) {
        (
            self.count(|s| matches!(s, Ls::DeadLeased { .. })),
            self.count(|s| matches!(s, Ls::DeadDelayed { .. })),
        )
    }

    /// A dead letter back in the dead-letter queue (now, or after `due`).
    fn dead_back(&mut self, i: usize, due: Option<u64>) {
        match due {
            Some(due) if due > self.now => {
                self.seq += 1;
                self.msgs[i].st = Ls::DeadDelayed { due, seq: self.seq };
            }
            _ => {
                self.msgs[i].st = Ls::Dead;
                self.dlq.push_back(i);
            }
        }
    }

    fn drained(&self) -> bool {
        self.closed
            && self.main.is_empty()
            && self.ready.is_empty()
            && self.delayed() == 0
            && self.leased() == 0
    }

    fn dead_letter(&mut self, i: usize, reason: String, attempts: u32) {
        if self.has_dlq {
            self.c.dead_lettered += 1;
            self.dc.sent += 1;
            self.dlq.push_back(i);
            // Arrival times in a queue strictly increase (a nanosecond apart at most).
            self.dlq_last_arrival = self.now.max(self.dlq_last_arrival + 1);
            let m = &mut self.msgs[i];
            m.st = Ls::Dead;
            m.letter = Some((reason, attempts));
            m.arrival = self.dlq_last_arrival;
            m.attempts = 0;
            m.first_delivered = None;
        } else {
            self.c.discarded += 1;
            self.msgs[i].st = Ls::Discarded;
        }
    }

    fn expire(&mut self, i: usize) {
        self.c.expired += 1;
        if self.dead_letter_expired && self.has_dlq {
            let attempts = self.msgs[i].attempts;
            self.dead_letter(i, "expired".into(), attempts);
        } else {
            self.msgs[i].st = Ls::Expired;
        }
    }

    fn put_back(&mut self, i: usize, due: Option<u64>) {
        match due {
            Some(due) if due > self.now => {
                self.seq += 1;
                self.msgs[i].st = Ls::Delayed { due, seq: self.seq };
            }
            _ => {
                self.msgs[i].st = Ls::Ready;
                self.ready.push_back(i);
            }
        }
    }

    fn fail(&mut self, i: usize, due: Option<u64>, why: &str) {
        let attempts = self.msgs[i].attempts;
        match self.max {
            Some(max) if attempts >= max => {
                let reason = format!("{why} after {attempts} deliveries (max {max})");
                self.dead_letter(i, reason, attempts);
            }
            _ => self.put_back(i, due),
        }
    }

    /// The earliest due time of a delay or a lease.
    fn next_event(&self) -> Option<u64> {
        self.msgs
            .iter()
            .filter_map(|m| match m.st {
                Ls::Delayed { due, .. } | Ls::DeadDelayed { due, .. } => Some(due),
                Ls::Leased { deadline, .. } | Ls::DeadLeased { deadline, .. } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// Due delays join the ready lane, then leases past their deadline fail, each in order.
    fn resolve(&mut self) {
        let mut due: Vec<(u64, u64, usize)> = Vec::new();
        let mut ended: Vec<(u64, u64, usize)> = Vec::new();
        for (i, m) in self.msgs.iter().enumerate() {
            match m.st {
                Ls::Delayed { due: t, seq } | Ls::DeadDelayed { due: t, seq } if t <= self.now => {
                    due.push((t, seq, i))
                }
                Ls::Leased { deadline, seq, .. } | Ls::DeadLeased { deadline, seq, .. }
                    if deadline <= self.now =>
                {
                    ended.push((deadline, seq, i))
                }
                _ => {}
            }
        }
        due.sort_unstable();
        ended.sort_unstable();
        for (_, _, i) in due {
            if matches!(self.msgs[i].st, Ls::DeadDelayed { .. }) {
                self.dead_back(i, None);
            } else {
                self.msgs[i].st = Ls::Ready;
                self.ready.push_back(i);
            }
        }
        for (_, _, i) in ended {
            if matches!(self.msgs[i].st, Ls::DeadLeased { .. }) {
                self.dc.lease_expired += 1;
                self.dead_back(i, None);
            } else {
                self.c.lease_expired += 1;
                self.fail(i, None, "lease expired");
            }
        }
    }

    /// What a single receive gets: the ready lane and the main lane in turn, expired messages
    /// dropped (and counted) on the way. A plain receive passes over ready messages still held
    /// by an expired lease's holder.
    fn take(&mut self, plain: bool, held: &[LaneHeld]) -> Option<usize> {
        loop {
            if !self.ready.is_empty() {
                if self.prefer_main && !self.main.is_empty() {
                    self.prefer_main = false;
                } else {
                    let pos = if plain {
                        self.ready
                            .iter()
                            .position(|&i| held.iter().all(|h| h.idx != i))
                    } else {
                        Some(0)
                    };
                    if let Some(p) = pos {
                        let i = self.ready.remove(p).expect("in the lane");
                        if self.expired(i) {
                            self.expire(i);
                            continue;
                        }
                        self.prefer_main = true;
                        self.c.received += 1;
                        return Some(i);
                    }
                }
            }
            let i = self.main.pop_front()?;
            if self.expired(i) {
                self.expire(i);
                continue;
            }
            self.c.received += 1;
            return Some(i);
        }
    }

    /// What the rest of a `receive_many` gets, after its first.
    fn take_more(&mut self) -> Option<usize> {
        loop {
            if !self.ready.is_empty() && (!self.prefer_main || self.main.is_empty()) {
                let i = self.ready.pop_front().expect("not empty");
                self.prefer_main = true;
                if self.expired(i) {
                    self.expire(i);
                    continue;
                }
                self.c.received += 1;
                return Some(i);
            }
            let i = self.main.pop_front()?;
            self.prefer_main = false;
            if self.expired(i) {
                self.expire(i);
                continue;
            }
            self.c.received += 1;
            return Some(i);
        }
    }

    fn check_stats(&self, q: &Queue<u32>, dlq: &Queue<u32>) -> Result<(), TestCaseError> {
        let s = q.stats();
        let c = &self.c;
        prop_assert_eq!(
            (s.sent, s.received, s.acked, s.nacked, s.abandoned),
            (c.sent, c.received, c.acked, c.nacked, c.abandoned),
            "sent, received, acked, nacked, abandoned"
        );
        prop_assert_eq!(
            (s.lease_expired, s.redelivered, s.expired),
            (c.lease_expired, c.redelivered, c.expired),
            "lease_expired, redelivered, expired"
        );
        prop_assert_eq!(
            (s.dead_lettered, s.discarded, s.redriven, s.duplicates),
            (c.dead_lettered, c.discarded, 0, self.duplicates),
            "dead_lettered, discarded, redriven, duplicates"
        );
        let visible = self.main.len() + self.ready.len();
        prop_assert_eq!(
            (s.visible, s.in_flight, s.delayed, s.groups_waiting),
            (visible, self.leased(), self.delayed(), 0),
            "visible, in_flight, delayed, groups_waiting"
        );
        prop_assert_eq!(q.len(), visible);
        prop_assert_eq!(
            q.is_full(),
            self.capacity.is_some_and(|c| self.main.len() >= c)
        );
        // The age of the oldest visible message: exact for the ready lane; for the main lane
        // the docs allow the age of a message up to 64 sends older.
        let age = |i: &usize| Duration::from_nanos(self.now.saturating_sub(self.msgs[*i].enqueued));
        let oldest = self.main.iter().chain(&self.ready).map(age).max();
        match (s.oldest_age, oldest) {
            (Some(got), Some(want)) if self.main.is_empty() => prop_assert_eq!(got, want),
            (Some(got), Some(want)) => prop_assert!(got >= want, "oldest {:?} < {:?}", got, want),
            (got, want) => prop_assert_eq!(got, want),
        }
        let d = dlq.stats();
        let dc = &self.dc;
        let (leased, delayed) = self.dlq_count();
        prop_assert_eq!(
            (
                d.sent,
                d.received,
                d.acked,
                d.nacked,
                d.abandoned,
                d.lease_expired
            ),
            (
                dc.sent,
                dc.received,
                dc.acked,
                dc.nacked,
                dc.abandoned,
                dc.lease_expired
            ),
            "dead-letter queue: sent, received, acked, nacked, abandoned, lease_expired"
        );
        prop_assert_eq!(
            (
                d.redelivered,
                d.discarded,
                d.redriven,
                d.expired,
                d.dead_lettered
            ),
            (dc.redelivered, dc.discarded, self.redriven, dc.expired, 0),
            "dead-letter queue: redelivered, discarded, redriven, expired, dead_lettered"
        );
        prop_assert_eq!(
            (d.visible, d.in_flight, d.delayed),
            (self.dlq.len(), leased, delayed),
            "dead-letter queue: visible, in_flight, delayed"
        );
        Ok(())
    }

    /// Moves up to `max` dead letters back, oldest first (none to a closed queue).
    /// `stale(i)`: whether a holder of an ended lease still reads letter `i`'s body.
    fn redrive(&mut self, max: usize, stale: impl Fn(usize) -> bool) -> usize {
        // Oldest first: the letters put back after a lease in the dead-letter queue take their
        // place by arrival again, whether they move or stay.
        let mut lane: Vec<usize> = self.dlq.drain(..).collect();
        // A letter past the dead-letter queue's retention expires there: it never moves.
        lane.retain(|&i| {
            if self.dlq_expired(i) {
                self.dc.expired += 1;
                self.msgs[i].st = Ls::Expired;
                false
            } else {
                true
            }
        });
        lane.sort_by_key(|&i| self.msgs[i].arrival);
        if self.closed {
            self.dlq.extend(lane);
            return 0;
        }
        // A letter whose record is in a body an ended lease's holder still reads stays (the
        // record cannot be cleared under the holder), and the letters after it move past it.
        let mut moving = Vec::new();
        for i in lane {
            if moving.len() < max && !(self.msgs[i].record_in_body && stale(i)) {
                moving.push(i);
            } else {
                self.dlq.push_back(i);
            }
        }
        let n = moving.len();
        for i in moving {
            self.last_arrival = self.now.max(self.last_arrival + 1);
            let m = &mut self.msgs[i];
            m.st = Ls::Ready;
            m.enqueued = self.last_arrival;
            m.attempts = 0;
            m.first_delivered = None;
            m.letter = None;
            m.record_in_body = false;
            self.ready.push_back(i);
            self.c.sent += 1;
        }
        self.redriven += n as u64;
        n
    }
}

/// Checks a leased delivery against the model's prediction and records its lease.
fn lane_lease(
    d: Delivery<u32>,
    want: usize,
    m: &mut Lanes,
    held: &mut Vec<LaneHeld>,
    vis: u64,
    start: Instant,
) -> Result<(), TestCaseError> {
    let i = *d.payload() as usize;
    prop_assert_eq!(i, want, "delivered {} where the model expects {}", i, want);
    let at = |ns: u64| start + Duration::from_nanos(ns);
    let msg = &mut m.msgs[i];
    msg.attempts += 1;
    if msg.attempts > 1 {
        m.c.redelivered += 1;
    }
    let first = *msg.first_delivered.get_or_insert(m.now);
    prop_assert_eq!(d.attempt(), msg.attempts, "attempt of {}", i);
    prop_assert_eq!(d.enqueued_at(), at(msg.enqueued), "enqueued_at of {}", i);
    prop_assert_eq!(
        d.first_delivered_at(),
        at(first),
        "first_delivered_at of {}",
        i
    );
    prop_assert_eq!(
        d.lease_deadline(),
        at(m.now + vis),
        "lease deadline of {}",
        i
    );
    prop_assert!(d.dead_letter().is_none());
    m.gen += 1;
    m.seq += 1;
    msg.st = Ls::Leased {
        gen: m.gen,
        deadline: m.now + vis,
        seq: m.seq,
    };
    held.push(LaneHeld {
        d,
        idx: i,
        gen: m.gen,
        dead: false,
    });
    Ok(())
}

/// A leased receive from the dead-letter queue: the oldest letter waiting there, with its record.
fn dlq_receive(
    dlq: &Queue<u32>,
    m: &mut Lanes,
    held: &mut Vec<LaneHeld>,
    start: Instant,
) -> Result<(), TestCaseError> {
    let got = dlq.try_receive();
    let want = loop {
        match m.dlq.pop_front() {
            Some(i) if m.dlq_expired(i) => {
                m.dc.expired += 1;
                m.msgs[i].st = Ls::Expired;
            }
            want => break want,
        }
    };
    match (got, want) {
        (Ok(d), Some(want)) => {
            let i = *d.payload() as usize;
            prop_assert_eq!(i, want, "dead-letter queue delivery");
            // The lease writes the record into the body unless an ended lease's holder (any
            // holder of `i` now) still reads it.
            let shared = held.iter().any(|h| h.idx == i);
            let msg = &mut m.msgs[i];
            msg.record_in_body |= !shared;
            msg.attempts += 1;
            m.dc.received += 1;
            if msg.attempts > 1 {
                m.dc.redelivered += 1;
            }
            prop_assert_eq!(d.attempt(), msg.attempts);
            let record = d
                .dead_letter()
                .map(|l| (l.reason().to_owned(), l.attempts()));
            prop_assert_eq!(&record, &msg.letter, "the record of {}", i);
            let deadline = m.now + VIS * SEC;
            prop_assert_eq!(d.lease_deadline(), start + Duration::from_nanos(deadline));
            m.gen += 1;
            m.seq += 1;
            msg.st = Ls::DeadLeased {
                gen: m.gen,
                deadline,
                seq: m.seq,
            };
            held.push(LaneHeld {
                d,
                idx: i,
                gen: m.gen,
                dead: true,
            });
        }
        (Err(e), None) => prop_assert!(e.is_empty()),
        (r, want) => prop_assert!(
            false,
            "dead-letter queue receive got {:?}, model {:?}",
            r.map(|d| *d.payload()),
            want
        ),
    }
    Ok(())
}

/// A receive found nothing: `Closed` exactly when the queue is closed and drained.
fn lane_none(closed_reported: bool, m: &Lanes) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        closed_reported,
        m.drained(),
        "Closed iff closed and drained"
    );
    Ok(())
}

fn lane_receive(
    q: &Queue<u32>,
    m: &mut Lanes,
    held: &mut Vec<LaneHeld>,
    vis: Option<u64>,
    start: Instant,
) -> Result<bool, TestCaseError> {
    let r = match vis {
        None => q.try_receive(),
        Some(v) => q.with_visibility(Duration::from_secs(v)).try_receive(),
    };
    let want = m.take(false, held);
    match (r, want) {
        (Ok(d), Some(want)) => {
            lane_lease(d, want, m, held, vis.map_or(VIS * SEC, |v| v * SEC), start)?;
            Ok(true)
        }
        (Err(e), None) => lane_none(e.is_closed(), m).map(|()| false),
        (Ok(d), None) => Err(TestCaseError::fail(format!(
            "received {} where the model has nothing",
            d.payload()
        ))),
        (Err(e), Some(want)) => Err(TestCaseError::fail(format!(
            "{e:?} where the model delivers {want}"
        ))),
    }
}

fn check_lanes(
    capacity: Option<usize>,
    has_dlq: bool,
    dlq_retention: Option<u64>,
    max: Option<u32>,
    retention: Option<u64>,
    dead_letter_expired: bool,
    ops: &[LaneOp],
) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let start = clock.now();
    let mut b = Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(Duration::from_secs(VIS));
    if let Some(r) = dlq_retention {
        b = b.retention(Duration::from_secs(r));
    }
    let dead: Queue<u32> = b.build();
    let mut b = Queue::builder()
        .name("src")
        .clock(clock.clone())
        .visibility_timeout(Duration::from_secs(VIS))
        .dedup_window(Duration::from_secs(DEDUP_WINDOW));
    if let Some(c) = capacity {
        b = b.capacity(c);
    }
    if let Some(r) = retention {
        b = b.retention(Duration::from_secs(r));
    }
    if has_dlq {
        b = b
            .dead_letter(&dead, max.unwrap_or(3))
            .dead_letter_expired(dead_letter_expired);
    } else if let Some(max) = max {
        b = b.max_attempts(max);
    }
    let q = b.build();
    let mut m = Lanes {
        msgs: Vec::new(),
        main: VecDeque::new(),
        ready: VecDeque::new(),
        dlq: VecDeque::new(),
        c: LaneCounts::default(),
        dc: LaneCounts::default(),
        redriven: 0,
        prefer_main: false,
        now: 0,
        seq: 0,
        gen: 0,
        last_arrival: 0,
        closed: false,
        has_dlq,
        max: if has_dlq { Some(max.unwrap_or(3)) } else { max },
        retention: retention.map(|r| r * SEC),
        dead_letter_expired,
        capacity,
        dlq_retention: dlq_retention.map(|r| r * SEC),
        dlq_last_arrival: 0,
        seen: Vec::new(),
        duplicates: 0,
    };
    let mut held: Vec<LaneHeld> = Vec::new();
    let tick = |m: &mut Lanes, ns: u64| {
        clock.advance(Duration::from_nanos(ns));
        m.now += ns;
    };
    let message = |i: usize, ttl: Option<u8>| {
        let msg = switchboard::Message::new(i as u32);
        match ttl {
            Some(t) => msg.with_ttl(Duration::from_secs(u64::from(t))),
            None => msg,
        }
    };

    for op in ops {
        tick(&mut m, MS);
        match *op {
            LaneOp::Send(ttl, key) => {
                let i = m.msgs.len();
                let mut msg = message(i, ttl);
                if let Some(k) = key {
                    msg = msg.with_dedup_id(format!("k{k}"));
                }
                let now = m.now;
                m.seen.retain(|&(_, at, _)| now - at < DEDUP_WINDOW * SEC);
                let first = key.and_then(|k| m.seen.iter().find(|s| s.0 == k).map(|s| s.2));
                let dup = first.is_some();
                let full = m.capacity.is_some_and(|c| m.main.len() >= c);
                match q.try_send(msg) {
                    Ok(sent) => {
                        prop_assert!(!m.closed && (dup || !full));
                        prop_assert_eq!(sent.is_duplicate(), dup, "duplicate of key {:?}", key);
                        // A duplicate is told the original's id.
                        prop_assert!(first.is_none_or(|id| sent == Sent::Duplicate(id)));
                        if dup {
                            m.duplicates += 1;
                        } else {
                            if let Some(k) = key {
                                m.seen.push((k, now, sent.id()));
                            }
                            m.msgs.push(LaneMsg {
                                st: Ls::Main,
                                attempts: 0,
                                enqueued: m.now,
                                first_delivered: None,
                                letter: None,
                                arrival: 0,
                                record_in_body: false,
                                ttl_at: ttl.map(|t| m.now + u64::from(t) * SEC),
                            });
                            m.main.push_back(i);
                            m.c.sent += 1;
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(
                            (e.is_closed(), e.is_full()),
                            (m.closed, !m.closed && !dup && full)
                        );
                        prop_assert_eq!(e.into_inner().into_payload(), i as u32);
                    }
                }
            }
            LaneOp::SendAfter(delay, ttl, at) => {
                let i = m.msgs.len();
                // Delayed messages and those waiting in the ready lane share the bound.
                let full = m.capacity.is_some_and(|c| m.delayed() + m.ready.len() >= c);
                let due = if at {
                    (m.now + u64::from(delay) * SEC).saturating_sub(2 * SEC)
                } else {
                    m.now + u64::from(delay) * SEC
                };
                let r = if at {
                    q.send_at(message(i, ttl), start + Duration::from_nanos(due))
                } else {
                    q.send_after(message(i, ttl), Duration::from_secs(u64::from(delay)))
                };
                match r {
                    Ok(_) => {
                        prop_assert!(!m.closed && !full);
                        m.msgs.push(LaneMsg {
                            st: Ls::Main,
                            attempts: 0,
                            enqueued: m.now,
                            first_delivered: None,
                            letter: None,
                            arrival: 0,
                            record_in_body: false,
                            ttl_at: ttl.map(|t| m.now + u64::from(t) * SEC),
                        });
                        m.c.sent += 1;
                        m.put_back(i, Some(due));
                    }
                    Err(e) => {
                        prop_assert_eq!(
                            (e.is_closed(), e.is_full()),
                            (m.closed, !m.closed && full)
                        );
                        prop_assert_eq!(e.into_inner().into_payload(), i as u32);
                    }
                }
            }
            LaneOp::Receive(vis) => {
                lane_receive(&q, &mut m, &mut held, vis.map(u64::from), start)?;
            }
            LaneOp::RecvMany(n) => {
                let r = q.recv_many(usize::from(n), Duration::ZERO);
                let mut want = Vec::new();
                while want.len() < usize::from(n) {
                    match m.take(true, &held) {
                        Some(i) => want.push(i),
                        None => break,
                    }
                }
                match r {
                    Ok(got) => {
                        prop_assert!(n == 0 || !got.is_empty() || !m.drained());
                        let got: Vec<usize> = got.iter().map(|m| *m.payload() as usize).collect();
                        prop_assert_eq!(&got, &want, "recv_many({})", n);
                        for i in want {
                            if m.msgs[i].attempts > 0 {
                                m.c.redelivered += 1;
                            }
                            m.msgs[i].st = Ls::Taken;
                        }
                    }
                    Err(_) => {
                        prop_assert!(n > 0 && want.is_empty());
                        lane_none(true, &m)?;
                    }
                }
            }
            LaneOp::ReceiveMany(n) => {
                let r = q.receive_many(usize::from(n), Duration::ZERO);
                let mut want = Vec::new();
                if n > 0 {
                    want.extend(m.take(false, &held));
                    if !want.is_empty() {
                        while want.len() < usize::from(n) {
                            match m.take_more() {
                                Some(i) => want.push(i),
                                None => break,
                            }
                        }
                    }
                }
                match r {
                    Ok(batch) => {
                        prop_assert!(n == 0 || !batch.is_empty() || !m.drained());
                        let got: Vec<u32> = batch.iter().map(|d| *d.payload()).collect();
                        let expect: Vec<u32> = want.iter().map(|&i| i as u32).collect();
                        prop_assert_eq!(got, expect, "receive_many({})", n);
                        for (d, i) in batch.into_iter().zip(want) {
                            lane_lease(d, i, &mut m, &mut held, VIS * SEC, start)?;
                        }
                    }
                    Err(_) => {
                        prop_assert!(n > 0 && want.is_empty());
                        lane_none(true, &m)?;
                    }
                }
            }
            LaneOp::TryRecv => {
                let want = m.take(true, &held);
                match (q.try_recv(), want) {
                    (Ok(msg), Some(want)) => {
                        prop_assert_eq!(*msg.payload() as usize, want, "plain receive");
                        prop_assert!(msg.dead_letter().is_none());
                        if m.msgs[want].attempts > 0 {
                            m.c.redelivered += 1;
                        }
                        m.msgs[want].st = Ls::Taken;
                    }
                    (Err(e), None) => lane_none(e.is_closed(), &m)?,
                    (r, want) => prop_assert!(
                        false,
                        "plain receive got {:?}, model {:?}",
                        r.map(|m| *m.payload()),
                        want
                    ),
                }
            }
            LaneOp::Advance(s) => {
                let target = m.now + u64::from(s) * SEC;
                while let Some(at) = m.next_event().filter(|&at| at <= target) {
                    let step = at.saturating_sub(m.now);
                    tick(&mut m, step);
                    m.resolve();
                    m.check_stats(&q, &dead)?;
                }
                let step = target - m.now;
                tick(&mut m, step);
            }
            LaneOp::Extend(k, s) => {
                if held.is_empty() {
                    continue;
                }
                let k = k % held.len();
                let h = &mut held[k];
                let valid = m.holds(h.idx, h.gen);
                let r = h.d.extend(Duration::from_secs(u64::from(s)));
                prop_assert_eq!(r.is_ok(), valid, "extend of {}", h.idx);
                if valid {
                    let deadline = m.now + u64::from(s) * SEC;
                    if let Ls::Leased { deadline: d, .. } | Ls::DeadLeased { deadline: d, .. } =
                        &mut m.msgs[h.idx].st
                    {
                        *d = deadline;
                    }
                    prop_assert_eq!(h.d.lease_deadline(), start + Duration::from_nanos(deadline));
                }
            }
            LaneOp::AckMany(n) => {
                let n = usize::from(n).min(held.len());
                let batch: Vec<LaneHeld> = held.drain(held.len() - n..).collect();
                let mut lost = BTreeSet::new();
                let mut ds = Vec::new();
                for h in batch {
                    // A delivery of the dead-letter queue is acked there.
                    if m.holds(h.idx, h.gen) && h.dead {
                        m.dc.acked += 1;
                        m.msgs[h.idx].st = Ls::DeadAcked;
                    } else if m.holds(h.idx, h.gen) {
                        m.c.acked += 1;
                        m.msgs[h.idx].st = Ls::Acked;
                    } else {
                        lost.insert(h.d.id());
                    }
                    ds.push(h.d);
                }
                let got: BTreeSet<_> = q.ack_many(ds).into_iter().collect();
                prop_assert_eq!(got, lost, "ack_many's expired leases");
            }
            LaneOp::Ack(k)
            | LaneOp::Nack(k)
            | LaneOp::NackAfter(k, _)
            | LaneOp::Reject(k)
            | LaneOp::Drop(k) => {
                if held.is_empty() {
                    continue;
                }
                let LaneHeld {
                    d,
                    idx,
                    gen,
                    dead: from_dlq,
                } = held.swap_remove(k % held.len());
                let id = d.id();
                let valid = m.holds(idx, gen);
                let attempts = m.msgs[idx].attempts;
                let r = if from_dlq {
                    // In the dead-letter queue, which has none of its own and no limit: a
                    // failed lease puts the letter back, a reject discards it.
                    match *op {
                        LaneOp::Ack(_) => {
                            if valid {
                                m.dc.acked += 1;
                                m.msgs[idx].st = Ls::DeadAcked;
                            }
                            d.ack()
                        }
                        LaneOp::Nack(_) => {
                            if valid {
                                m.dc.nacked += 1;
                                m.dead_back(idx, None);
                            }
                            d.nack()
                        }
                        LaneOp::NackAfter(_, s) => {
                            if valid {
                                m.dc.nacked += 1;
                                m.dead_back(idx, Some(m.now + u64::from(s) * SEC));
                            }
                            d.nack_after(Duration::from_secs(u64::from(s)))
                        }
                        LaneOp::Reject(_) => {
                            if valid {
                                m.dc.discarded += 1;
                                m.msgs[idx].st = Ls::Discarded;
                            }
                            d.reject("rejected again")
                        }
                        LaneOp::Drop(_) => {
                            if valid {
                                m.dc.abandoned += 1;
                                m.dead_back(idx, None);
                            }
                            drop(d);
                            valid.then_some(()).ok_or(AckError::LeaseExpired(id))
                        }
                        _ => unreachable!(),
                    }
                } else {
                    match *op {
                        LaneOp::Ack(_) => {
                            if valid {
                                m.c.acked += 1;
                                m.msgs[idx].st = Ls::Acked;
                            }
                            d.ack()
                        }
                        LaneOp::Nack(_) => {
                            if valid {
                                m.c.nacked += 1;
                                m.fail(idx, None, "nacked");
                            }
                            d.nack()
                        }
                        LaneOp::NackAfter(_, s) => {
                            if valid {
                                m.c.nacked += 1;
                                m.fail(idx, Some(m.now + u64::from(s) * SEC), "nacked");
                            }
                            d.nack_after(Duration::from_secs(u64::from(s)))
                        }
                        LaneOp::Reject(_) => {
                            if valid {
                                m.dead_letter(idx, format!("reject {idx}"), attempts);
                            }
                            d.reject(format!("reject {idx}"))
                        }
                        LaneOp::Drop(_) => {
                            if valid {
                                m.c.abandoned += 1;
                                m.fail(idx, None, "dropped");
                            }
                            drop(d);
                            valid.then_some(()).ok_or(AckError::LeaseExpired(id))
                        }
                        _ => unreachable!(),
                    }
                };
                prop_assert_eq!(r.is_ok(), valid, "verdict {:?} on {}", op, idx);
            }
            LaneOp::Redrive => {
                let want = m.redrive(usize::MAX, |i| held.iter().any(|h| h.idx == i));
                prop_assert_eq!(dead.redrive(), want, "redrive");
            }
            LaneOp::RedriveTo(n) => {
                let want = m.redrive(usize::from(n), |i| held.iter().any(|h| h.idx == i));
                prop_assert_eq!(dead.redrive_to(&q, usize::from(n)), want, "redrive_to");
            }
            LaneOp::DlqReceive => {
                dlq_receive(&dead, &mut m, &mut held, start)?;
            }
            LaneOp::Close => {
                prop_assert_eq!(q.close(), !m.closed, "close() is true the first time only");
                m.closed = true;
            }
        }
        // Timers of zero duration set by this operation are due now.
        m.resolve();
        m.check_stats(&q, &dead)?;
    }

    // Wind down: ack what is held (the stale verdicts fail), close, and drain on lease,
    // stepping through the delays and leases left.
    held.sort_by_key(|h| h.idx);
    while let Some(LaneHeld { d, idx, gen, dead }) = held.pop() {
        if m.holds(idx, gen) && dead {
            m.dc.acked += 1;
            m.msgs[idx].st = Ls::DeadAcked;
        } else if m.holds(idx, gen) {
            m.c.acked += 1;
            m.msgs[idx].st = Ls::Acked;
        }
        let _ = d.ack();
    }
    m.check_stats(&q, &dead)?;
    m.closed |= q.close();
    let mut rounds = 0;
    loop {
        rounds += 1;
        prop_assert!(rounds < 10_000, "drain did not finish");
        if lane_receive(&q, &mut m, &mut held, None, start)? {
            let LaneHeld { d, idx, .. } = held.pop().expect("just leased");
            m.c.acked += 1;
            m.msgs[idx].st = Ls::Acked;
            d.ack().unwrap();
        } else if m.drained() && m.dlq_count() == (0, 0) {
            break;
        } else {
            let at = m.next_event().expect("something left to wait for");
            let step = at.saturating_sub(m.now);
            tick(&mut m, step);
            m.resolve();
        }
        m.check_stats(&q, &dead)?;
    }

    // The dead-letter queue holds exactly the dead letters, in order, with their records.
    let letters: Vec<(usize, String, u32, Option<String>)> = dead
        .try_iter()
        .map(|msg| {
            let info = msg.dead_letter().expect("a dead letter carries its record");
            let record = (
                info.reason().to_owned(),
                info.attempts(),
                info.source().map(str::to_owned),
            );
            (*msg.payload() as usize, record.0, record.1, record.2)
        })
        .collect();
    let lane: Vec<usize> = m.dlq.drain(..).collect();
    for i in lane {
        if m.dlq_expired(i) {
            m.dc.expired += 1;
            m.msgs[i].st = Ls::Expired;
        } else {
            m.dlq.push_back(i);
        }
    }
    let want: Vec<(usize, String, u32, Option<String>)> = m
        .dlq
        .iter()
        .map(|&i| {
            let (reason, attempts) = m.msgs[i].letter.clone().expect("a dead letter's record");
            (i, reason, attempts, Some("src".into()))
        })
        .collect();
    prop_assert_eq!(letters, want, "the dead letters");
    prop_assert_eq!(dead.stats().expired, m.dc.expired);

    // Every message ended exactly once.
    let mut ends = [0u64; 6];
    for (i, msg) in m.msgs.iter().enumerate() {
        let k = match msg.st {
            Ls::Acked => 0,
            Ls::Taken => 1,
            Ls::Dead => 2,
            Ls::Discarded => 3,
            Ls::Expired => 4,
            Ls::DeadAcked => 5,
            ref st => {
                prop_assert!(false, "message {} left as {:?}", i, st);
                unreachable!()
            }
        };
        ends[k] += 1;
    }
    prop_assert_eq!(ends[0], m.c.acked);
    prop_assert_eq!(ends[2], m.dlq.len() as u64);
    prop_assert_eq!(ends[3], m.c.discarded + m.dc.discarded);
    prop_assert_eq!(ends[5], m.dc.acked);
    prop_assert_eq!(ends.iter().sum::<u64>(), m.msgs.len() as u64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(128), ..ProptestConfig::default() })]

    #[test]
    fn lanes_with_dead_letters_and_redrive(
        capacity in prop::option::weighted(0.3, 0usize..4),
        max in 1u32..4,
        retention in prop::option::of(2u64..20),
        dead_letter_expired in any::<bool>(),
        dlq_retention in prop::option::weighted(0.3, 2u64..30),
        ops in prop::collection::vec(lane_op(), 0..70),
    ) {
        check_lanes(capacity, true, dlq_retention, Some(max), retention, dead_letter_expired, &ops)?;
    }

    #[test]
    fn lanes_without_dead_letter_queue(
        capacity in prop::option::weighted(0.3, 0usize..4),
        max in prop::option::of(1u32..4),
        retention in prop::option::of(2u64..20),
        ops in prop::collection::vec(lane_op(), 0..70),
    ) {
        check_lanes(capacity, false, None, max, retention, false, &ops)?;
    }
}

// ----- (e) FIFO groups: one in flight per group, order per group, de-duplication --------------
//
// A FIFO queue on a `ManualClock` against per-group `VecDeque`s: each delivery must be the head
// of a group with nothing in flight (a returned message first in its group, a `nack_after`
// holding its group until due), `Empty` only when no group can give, de-duplication within the
// window, and every field of `stats()` exact. Which free group goes next (round-robin) is left
// to the queue. Messages with a time-to-live go to group "a" only, so that the expired heads a
// receive drops on its way (counted in `stats().expired`) can only be that group's. Time as in
// (d).

const GROUPS: [Option<&str>; 3] = [Some("a"), Some("b"), None];

#[derive(Clone, Debug)]
enum FifoOp {
    /// Send to group `g` (an index in `GROUPS`), with this de-duplication id and (group "a"
    /// only) this time-to-live.
    Send(usize, Option<u8>, Option<u8>),
    SendAfter(usize, u8),
    Receive,
    ReceiveMany(u8),
    TryRecv,
    Ack(usize),
    Nack(usize),
    NackAfter(usize, u8),
    Reject(usize),
    Drop(usize),
    Extend(usize, u8),
    Advance(u8),
    Redrive,
    Close,
}

fn fifo_op() -> impl Strategy<Value = FifoOp> {
    prop_oneof![
        6 => (
            0..GROUPS.len(),
            prop::option::weighted(0.3, 0u8..4),
            prop::option::weighted(0.4, 0u8..12),
        )
            .prop_map(|(g, k, t)| FifoOp::Send(g, k, t.filter(|_| g == 0))),
        1 => (0..GROUPS.len(), 0u8..6).prop_map(|(g, d)| FifoOp::SendAfter(g, d)),
        5 => Just(FifoOp::Receive),
        1 => (0u8..4).prop_map(FifoOp::ReceiveMany),
        2 => Just(FifoOp::TryRecv),
        3 => any::<usize>().prop_map(FifoOp::Ack),
        2 => any::<usize>().prop_map(FifoOp::Nack),
        1 => (any::<usize>(), 0u8..6).prop_map(|(i, d)| FifoOp::NackAfter(i, d)),
        1 => any::<usize>().prop_map(FifoOp::Reject),
        1 => any::<usize>().prop_map(FifoOp::Drop),
        1 => (any::<usize>(), 0u8..15).prop_map(|(i, d)| FifoOp::Extend(i, d)),
        3 => (0u8..15).prop_map(FifoOp::Advance),
        1 => Just(FifoOp::Redrive),
        1 => Just(FifoOp::Close),
    ]
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Fs {
    Waiting,
    /// `front`: a `nack_after` return, which holds its group and goes back to its head.
    Delayed {
        due: u64,
        seq: u64,
        front: bool,
    },
    Leased {
        gen: u64,
        deadline: u64,
        seq: u64,
    },
    Acked,
    Taken,
    Dead,
    Expired,
}

#[derive(Debug)]
struct FifoModel {
    st: Vec<Fs>,
    group: Vec<usize>,
    attempts: Vec<u32>,
    ttl_at: Vec<Option<u64>>,
    queues: Vec<VecDeque<usize>>,
    busy: Vec<bool>,
    /// De-duplication keys and when their window started.
    seen: Vec<(u8, u64, MessageId)>,
    c: LaneCounts,
    duplicates: u64,
    dlq: Vec<usize>,
    now: u64,
    seq: u64,
    gen: u64,
    closed: bool,
    max: u32,
    /// The bound on waiting messages (`usize::MAX` for none).
    capacity: usize,
}

impl FifoModel {
    fn waiting(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    fn count(&self, f: impl Fn(&Fs) -> bool) -> usize {
        self.st.iter().filter(|s| f(s)).count()
    }

    fn holds(&self, i: usize, gen: u64) -> bool {
        matches!(self.st[i], Fs::Leased { gen: g, .. } if g == gen)
    }

    fn drained(&self) -> bool {
        self.closed
            && self.count(|s| matches!(s, Fs::Waiting | Fs::Delayed { .. } | Fs::Leased { .. }))
                == 0
    }

    fn dead_letter(&mut self, i: usize) {
        self.busy[self.group[i]] = false;
        self.c.dead_lettered += 1;
        self.st[i] = Fs::Dead;
        self.dlq.push(i);
    }

    /// Back at the head of its group, which it frees (or, delayed, holds until due).
    fn fail(&mut self, i: usize, due: Option<u64>) {
        if self.attempts[i] >= self.max {
            return self.dead_letter(i);
        }
        match due {
            Some(due) if due > self.now => {
                self.seq += 1;
                self.st[i] = Fs::Delayed {
                    due,
                    seq: self.seq,
                    front: true,
                };
            }
            _ => self.back_to_head(i),
        }
    }

    fn back_to_head(&mut self, i: usize) {
        let g = self.group[i];
        self.queues[g].push_front(i);
        self.busy[g] = false;
        self.st[i] = Fs::Waiting;
    }

    fn next_event(&self) -> Option<u64> {
        self.st
            .iter()
            .filter_map(|s| match *s {
                Fs::Delayed { due, .. } => Some(due),
                Fs::Leased { deadline, .. } => Some(deadline),
                _ => None,
            })
            .min()
    }

    fn resolve(&mut self) {
        let mut due = Vec::new();
        let mut ended = Vec::new();
        for (i, s) in self.st.iter().enumerate() {
            match *s {
                Fs::Delayed { due: t, seq, front } if t <= self.now => due.push((t, seq, i, front)),
                Fs::Leased { deadline, seq, .. } if deadline <= self.now => {
                    ended.push((deadline, seq, i))
                }
                _ => {}
            }
        }
        due.sort_unstable();
        ended.sort_unstable();
        for (_, _, i, front) in due {
            if front {
                self.back_to_head(i);
            } else {
                self.queues[self.group[i]].push_back(i);
                self.st[i] = Fs::Waiting;
            }
        }
        for (_, _, i) in ended {
            self.c.lease_expired += 1;
            self.fail(i, None);
        }
    }

    fn check_stats(&self, q: &Queue<u32>) -> Result<(), TestCaseError> {
        let s = q.stats();
        let c = &self.c;
        prop_assert_eq!(
            (s.sent, s.received, s.acked, s.nacked, s.abandoned),
            (c.sent, c.received, c.acked, c.nacked, c.abandoned),
            "sent, received, acked, nacked, abandoned"
        );
        prop_assert_eq!(
            (s.lease_expired, s.redelivered, s.expired),
            (c.lease_expired, c.redelivered, c.expired),
            "lease_expired, redelivered, expired"
        );
        prop_assert_eq!(
            (s.dead_lettered, s.discarded, s.redriven, s.duplicates),
            (c.dead_lettered, 0, 0, self.duplicates),
            "dead_lettered, discarded, redriven, duplicates"
        );
        let visible: usize = self.queues.iter().map(VecDeque::len).sum();
        let waiting = self.queues.iter().filter(|q| !q.is_empty()).count();
        prop_assert_eq!(
            (s.visible, s.in_flight, s.delayed, s.groups_waiting),
            (
                visible,
                self.count(|s| matches!(s, Fs::Leased { .. })),
                self.count(|s| matches!(s, Fs::Delayed { .. })),
                waiting
            ),
            "visible, in_flight, delayed, groups_waiting"
        );
        prop_assert_eq!(q.len(), visible);
        Ok(())
    }
}

struct FifoHeld {
    d: Delivery<u32>,
    idx: usize,
    gen: u64,
}

impl FifoModel {
    fn can_give(&self, held: &[FifoHeld], plain: bool, g: usize) -> bool {
        !self.busy[g]
            && self.queues[g]
                .front()
                .is_some_and(|&i| !plain || held.iter().all(|h| h.idx != i))
    }

    /// Drops an expired head of group "a" that a receive counted on its way.
    fn drop_expired_head(&mut self) -> Result<(), TestCaseError> {
        let i = self.queues[0].pop_front();
        prop_assert!(
            i.is_some_and(|i| self.ttl_at[i].is_some_and(|at| at <= self.now)),
            "counted expired: {:?}",
            i
        );
        self.st[i.expect("checked")] = Fs::Expired;
        self.c.expired += 1;
        Ok(())
    }

    /// Checks a message handed out (the head of a free group, once the expired heads before it
    /// are dropped) and records it.
    fn handed_out(
        &mut self,
        i: usize,
        d: Option<Delivery<u32>>,
        held: &mut Vec<FifoHeld>,
        plain: bool,
        expired: &mut u64,
    ) -> Result<(), TestCaseError> {
        let g = self.group[i];
        while g == 0 && *expired > 0 && self.queues[0].front() != Some(&i) {
            self.drop_expired_head()?;
            *expired -= 1;
        }
        prop_assert!(
            self.can_give(held, plain, g) && self.queues[g].front() == Some(&i),
            "{} handed out: not the head of a free group ({:?}, busy {:?})",
            i,
            self.queues,
            self.busy
        );
        self.queues[g].pop_front();
        self.c.received += 1;
        self.attempts[i] += 1;
        if self.attempts[i] > 1 {
            self.c.redelivered += 1;
        }
        match d {
            None => self.st[i] = Fs::Taken,
            Some(d) => {
                prop_assert_eq!(d.attempt(), self.attempts[i]);
                self.busy[g] = true;
                self.gen += 1;
                self.seq += 1;
                self.st[i] = Fs::Leased {
                    gen: self.gen,
                    deadline: self.now + VIS * SEC,
                    seq: self.seq,
                };
                held.push(FifoHeld {
                    d,
                    idx: i,
                    gen: self.gen,
                });
            }
        }
        Ok(())
    }

    /// After a receive: the rest of what it counted expired, and if it came back short, that no
    /// group could give.
    fn after_receive(
        &mut self,
        held: &[FifoHeld],
        plain: bool,
        mut expired: u64,
        short: Option<bool>,
    ) -> Result<(), TestCaseError> {
        while expired > 0 {
            self.drop_expired_head()?;
            expired -= 1;
        }
        if let Some(closed) = short {
            for g in 0..GROUPS.len() {
                let live = |i: &usize| self.ttl_at[*i].is_none_or(|at| at > self.now);
                prop_assert!(
                    !self.can_give(held, plain, g)
                        || g == 0 && !self.queues[0].front().is_some_and(live),
                    "short with group {} free ({:?}, busy {:?})",
                    g,
                    self.queues,
                    self.busy
                );
            }
            prop_assert!(
                !self.can_give(held, plain, 0),
                "short with an expired head left in group a"
            );
            prop_assert_eq!(closed, self.drained());
        }
        Ok(())
    }
}

/// A single receive, plain or on lease.
fn fifo_receive(
    q: &Queue<u32>,
    m: &mut FifoModel,
    held: &mut Vec<FifoHeld>,
    plain: bool,
) -> Result<bool, TestCaseError> {
    let got = if plain {
        q.try_recv().map(|msg| (*msg.payload() as usize, None))
    } else {
        q.try_receive().map(|d| (*d.payload() as usize, Some(d)))
    };
    let mut expired = q.stats().expired - m.c.expired;
    match got {
        Ok((i, d)) => {
            m.handed_out(i, d, held, plain, &mut expired)?;
            m.after_receive(held, plain, expired, None)?;
            Ok(true)
        }
        Err(e) => {
            m.after_receive(held, plain, expired, Some(e.is_closed()))?;
            Ok(false)
        }
    }
}

fn check_fifo(capacity: Option<usize>, max: u32, ops: &[FifoOp]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let dead: Queue<u32> = Queue::builder().clock(clock.clone()).build();
    let mut b = Queue::builder()
        .fifo()
        .clock(clock.clone())
        .visibility_timeout(Duration::from_secs(VIS))
        .dedup_window(Duration::from_secs(DEDUP_WINDOW))
        .dead_letter(&dead, max);
    if let Some(c) = capacity {
        b = b.capacity(c);
    }
    let q: Queue<u32> = b.build();
    let mut m = FifoModel {
        st: Vec::new(),
        group: Vec::new(),
        attempts: Vec::new(),
        ttl_at: Vec::new(),
        queues: vec![VecDeque::new(); GROUPS.len()],
        busy: vec![false; GROUPS.len()],
        seen: Vec::new(),
        c: LaneCounts::default(),
        duplicates: 0,
        dlq: Vec::new(),
        now: 0,
        seq: 0,
        gen: 0,
        closed: false,
        max,
        // A FIFO queue takes a capacity of 0 as 1.
        capacity: capacity.map_or(usize::MAX, |c| c.max(1)),
    };
    let mut held: Vec<FifoHeld> = Vec::new();
    let tick = |m: &mut FifoModel, ns: u64| {
        clock.advance(Duration::from_nanos(ns));
        m.now += ns;
    };

    for op in ops {
        tick(&mut m, MS);
        match *op {
            FifoOp::Send(g, key, ttl) => {
                let i = m.st.len();
                let mut msg = switchboard::Message::new(i as u32);
                if let Some(t) = ttl {
                    msg = msg.with_ttl(Duration::from_secs(u64::from(t)));
                }
                if let Some(group) = GROUPS[g] {
                    msg = msg.with_group(group);
                }
                if let Some(k) = key {
                    msg = msg.with_dedup_id(format!("k{k}"));
                }
                let now = m.now;
                m.seen.retain(|&(_, at, _)| now - at < DEDUP_WINDOW * SEC);
                let first = key.and_then(|k| m.seen.iter().find(|s| s.0 == k).map(|s| s.2));
                let dup = first.is_some();
                // The window first: a duplicate is told so even on a full queue.
                let full = m.waiting() >= m.capacity;
                match q.try_send(msg) {
                    Ok(sent) => {
                        prop_assert!(!m.closed && (dup || !full));
                        prop_assert_eq!(sent.is_duplicate(), dup, "duplicate of key {:?}", key);
                        // A duplicate is told the original's id.
                        prop_assert!(first.is_none_or(|id| sent == Sent::Duplicate(id)));
                        if dup {
                            m.duplicates += 1;
                        } else {
                            if let Some(k) = key {
                                m.seen.push((k, now, sent.id()));
                            }
                            m.st.push(Fs::Waiting);
                            m.group.push(g);
                            m.attempts.push(0);
                            m.ttl_at.push(ttl.map(|t| now + u64::from(t) * SEC));
                            m.queues[g].push_back(i);
                            m.c.sent += 1;
                        }
                    }
                    Err(e) => prop_assert_eq!(
                        (e.is_closed(), e.is_full()),
                        (m.closed, !m.closed && !dup && full)
                    ),
                }
            }
            FifoOp::SendAfter(g, d) => {
                let i = m.st.len();
                let mut msg = switchboard::Message::new(i as u32);
                if let Some(group) = GROUPS[g] {
                    msg = msg.with_group(group);
                }
                // Delayed messages and the grouped ones waiting share the bound.
                let full = m.count(|s| matches!(s, Fs::Delayed { .. })) + m.waiting() >= m.capacity;
                match q.send_after(msg, Duration::from_secs(u64::from(d))) {
                    Ok(_) => {
                        prop_assert!(!m.closed && !full);
                        m.st.push(Fs::Waiting);
                        m.group.push(g);
                        m.attempts.push(0);
                        m.ttl_at.push(None);
                        m.c.sent += 1;
                        if d == 0 {
                            m.queues[g].push_back(i);
                        } else {
                            m.seq += 1;
                            m.st[i] = Fs::Delayed {
                                due: m.now + u64::from(d) * SEC,
                                seq: m.seq,
                                front: false,
                            };
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!((e.is_closed(), e.is_full()), (m.closed, !m.closed && full))
                    }
                }
            }
            FifoOp::Redrive => {
                // Oldest first, each to the back of its group, its attempts reset.
                let n = if m.closed { 0 } else { m.dlq.len() };
                for i in m.dlq.drain(..n) {
                    m.queues[m.group[i]].push_back(i);
                    m.st[i] = Fs::Waiting;
                    m.attempts[i] = 0;
                    m.c.sent += 1;
                }
                prop_assert_eq!(dead.redrive(), n, "redrive");
            }
            FifoOp::Receive => {
                fifo_receive(&q, &mut m, &mut held, false)?;
            }
            FifoOp::TryRecv => {
                fifo_receive(&q, &mut m, &mut held, true)?;
            }
            FifoOp::ReceiveMany(n) => {
                let r = q.receive_many(usize::from(n), Duration::ZERO);
                let mut expired = q.stats().expired - m.c.expired;
                match r {
                    Ok(batch) => {
                        let got = batch.len();
                        prop_assert!(got <= usize::from(n));
                        for d in batch {
                            let i = *d.payload() as usize;
                            m.handed_out(i, Some(d), &mut held, false, &mut expired)?;
                        }
                        let short = (got < usize::from(n)).then_some(false);
                        m.after_receive(&held, false, expired, short)?;
                    }
                    Err(_) => m.after_receive(&held, false, expired, Some(true))?,
                }
            }
            FifoOp::Extend(k, s) => {
                if held.is_empty() {
                    continue;
                }
                let k = k % held.len();
                let h = &mut held[k];
                let valid = m.holds(h.idx, h.gen);
                let r = h.d.extend(Duration::from_secs(u64::from(s)));
                prop_assert_eq!(r.is_ok(), valid, "extend of {}", h.idx);
                if let (true, Fs::Leased { deadline, .. }) = (valid, &mut m.st[h.idx]) {
                    *deadline = m.now + u64::from(s) * SEC;
                }
            }
            FifoOp::Advance(s) => {
                let target = m.now + u64::from(s) * SEC;
                while let Some(at) = m.next_event().filter(|&at| at <= target) {
                    let step = at.saturating_sub(m.now);
                    tick(&mut m, step);
                    m.resolve();
                    m.check_stats(&q)?;
                }
                let step = target - m.now;
                tick(&mut m, step);
            }
            FifoOp::Close => {
                prop_assert_eq!(q.close(), !m.closed);
                m.closed = true;
            }
            FifoOp::Ack(k)
            | FifoOp::Nack(k)
            | FifoOp::NackAfter(k, _)
            | FifoOp::Reject(k)
            | FifoOp::Drop(k) => {
                if held.is_empty() {
                    continue;
                }
                let FifoHeld { d, idx, gen } = held.swap_remove(k % held.len());
                let valid = m.holds(idx, gen);
                let id = d.id();
                let r = match *op {
                    FifoOp::Ack(_) => {
                        if valid {
                            m.c.acked += 1;
                            m.st[idx] = Fs::Acked;
                            m.busy[m.group[idx]] = false;
                        }
                        d.ack()
                    }
                    FifoOp::Nack(_) => {
                        if valid {
                            m.c.nacked += 1;
                            m.fail(idx, None);
                        }
                        d.nack()
                    }
                    FifoOp::NackAfter(_, s) => {
                        if valid {
                            m.c.nacked += 1;
                            m.fail(idx, Some(m.now + u64::from(s) * SEC));
                        }
                        d.nack_after(Duration::from_secs(u64::from(s)))
                    }
                    FifoOp::Reject(_) => {
                        if valid {
                            m.dead_letter(idx);
                        }
                        d.reject("rejected")
                    }
                    FifoOp::Drop(_) => {
                        if valid {
                            m.c.abandoned += 1;
                            m.fail(idx, None);
                        }
                        drop(d);
                        valid.then_some(()).ok_or(AckError::LeaseExpired(id))
                    }
                    _ => unreachable!(),
                };
                prop_assert_eq!(r.is_ok(), valid, "verdict {:?} on {}", op, idx);
            }
        }
        m.resolve();
        m.check_stats(&q)?;
    }

    // Wind down: ack what is held, close, and drain on lease; each group must come out in order.
    for FifoHeld { d, idx, gen } in held.drain(..) {
        if m.holds(idx, gen) {
            m.c.acked += 1;
            m.st[idx] = Fs::Acked;
            m.busy[m.group[idx]] = false;
        }
        let _ = d.ack();
    }
    m.closed |= q.close();
    let mut rounds = 0;
    loop {
        rounds += 1;
        prop_assert!(rounds < 10_000, "drain did not finish");
        if fifo_receive(&q, &mut m, &mut held, false)? {
            let FifoHeld { d, idx, .. } = held.pop().expect("just leased");
            m.c.acked += 1;
            m.st[idx] = Fs::Acked;
            m.busy[m.group[idx]] = false;
            d.ack().unwrap();
        } else if m.drained() {
            break;
        } else {
            let at = m.next_event().expect("something left to wait for");
            let step = at.saturating_sub(m.now);
            tick(&mut m, step);
            m.resolve();
        }
        m.check_stats(&q)?;
    }
    let letters: Vec<usize> = dead.try_iter().map(|l| *l.payload() as usize).collect();
    prop_assert_eq!(letters, m.dlq.clone(), "the dead letters, in order");
    for (i, s) in m.st.iter().enumerate() {
        prop_assert!(
            matches!(s, Fs::Acked | Fs::Taken | Fs::Dead | Fs::Expired),
            "message {} left as {:?}",
            i,
            s
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(128), ..ProptestConfig::default() })]

    #[test]
    fn fifo_groups_in_order_one_in_flight(
        capacity in prop::option::weighted(0.3, 0usize..4),
        max in 1u32..4,
        ops in prop::collection::vec(fifo_op(), 0..70),
    ) {
        check_fifo(capacity, max, &ops)?;
    }
}

/// Bounds this binary in time: a hanging test fails the run (see `common::start_watchdog`).
#[test]
fn _watchdog() {
    common::start_watchdog();
}
