//! Model tests: random operation sequences against the real queue and a naive oracle.
//!
//! (a) The plain path against a `VecDeque`. (b) The lease state machine on a `ManualClock`: the
//! oracle tracks each message's state (visible, delayed, leased, acked, dead-lettered,
//! discarded), checks every delivery, verdict and count, and at the end that every message
//! settled exactly once.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use switchboard::{AckError, Delivery, ManualClock, Queue, QueueStats, TryRecvError, TrySendError};

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
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

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
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

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
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

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
