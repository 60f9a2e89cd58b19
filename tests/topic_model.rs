//! Model test: random subscribe / unsubscribe / publish / receive / close sequences against an
//! oracle of one `VecDeque` per subscriber.

use std::collections::VecDeque;

use proptest::prelude::*;
use switchboard::{Overflow, PublishError, SubscribeOptions, Subscription, Topic, TryRecvError};

#[derive(Clone, Debug)]
enum Op {
    Subscribe(Option<usize>, Overflow),
    Unsubscribe(usize),
    Publish(u32),
    Recv(usize),
    Close,
}

fn overflow() -> impl Strategy<Value = Overflow> {
    prop_oneof![
        Just(Overflow::Block),
        Just(Overflow::DropOldest),
        Just(Overflow::DropNewest),
        Just(Overflow::Error),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (proptest::option::weighted(0.8, 1usize..5), overflow())
            .prop_map(|(c, o)| Op::Subscribe(c, o)),
        1 => any::<usize>().prop_map(Op::Unsubscribe),
        8 => any::<u32>().prop_map(Op::Publish),
        6 => any::<usize>().prop_map(Op::Recv),
        1 => Just(Op::Close),
    ]
}

/// What one subscriber should hold.
struct Oracle {
    buf: VecDeque<u32>,
    capacity: Option<usize>,
    overflow: Overflow,
    dropped: u64,
    received: u64,
    closed: bool,
}

impl Oracle {
    fn full(&self) -> bool {
        self.capacity.is_some_and(|c| self.buf.len() >= c)
    }
}

#[derive(Default)]
struct Expected {
    delivered: usize,
    dropped_oldest: usize,
    dropped_newest: usize,
    full: usize,
}

fn run(ops: Vec<Op>) {
    let topic: Topic<u32> = Topic::new();
    let mut subs: Vec<(Subscription<u32>, Oracle)> = Vec::new();
    let mut closed = false;
    let (mut published, mut delivered, mut dropped) = (0u64, 0u64, 0u64);

    for op in ops {
        match op {
            Op::Subscribe(capacity, overflow) => {
                let mut o = SubscribeOptions::new().unbounded().overflow(overflow);
                if let Some(c) = capacity {
                    o = o.capacity(c);
                }
                let sub = topic.subscribe_with(o);
                let oracle = Oracle {
                    buf: VecDeque::new(),
                    capacity,
                    overflow,
                    dropped: 0,
                    received: 0,
                    closed,
                };
                subs.push((sub, oracle));
            }
            Op::Unsubscribe(i) => {
                if !subs.is_empty() {
                    let i = i % subs.len();
                    subs.remove(i);
                }
            }
            Op::Publish(v) => {
                let mut exp = Expected::default();
                if !closed {
                    for (_, o) in subs.iter_mut() {
                        if !o.full() {
                            o.buf.push_back(v);
                            exp.delivered += 1;
                            continue;
                        }
                        o.dropped += 1;
                        match o.overflow {
                            Overflow::DropOldest => {
                                o.buf.pop_front();
                                o.buf.push_back(v);
                                exp.delivered += 1;
                                exp.dropped_oldest += 1;
                            }
                            Overflow::DropNewest => exp.dropped_newest += 1,
                            Overflow::Block | Overflow::Error => exp.full += 1,
                        }
                    }
                }
                // A full blocking subscription would block `publish`: the model cannot wait, so
                // it uses `try_publish`, which the oracle treats as `Error` for those.
                let any_block_full = subs
                    .iter()
                    .any(|(s, _)| s.overflow() == Overflow::Block && s.is_full());
                let res = if any_block_full {
                    topic.try_publish(v)
                } else {
                    topic.publish(v)
                };
                let report = match res {
                    Ok(r) => {
                        assert!(!closed && exp.full == 0);
                        r
                    }
                    Err(PublishError::Closed(m)) => {
                        assert!(closed);
                        assert_eq!(m.into_payload(), v);
                        continue;
                    }
                    Err(PublishError::Full { message, report }) => {
                        assert!(exp.full > 0);
                        assert_eq!(message.into_payload(), v);
                        report
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                };
                assert_eq!(
                    (
                        report.delivered,
                        report.dropped_oldest,
                        report.dropped_newest,
                        report.full
                    ),
                    (
                        exp.delivered,
                        exp.dropped_oldest,
                        exp.dropped_newest,
                        exp.full
                    )
                );
                published += 1;
                delivered += exp.delivered as u64;
                dropped += (exp.dropped_oldest + exp.dropped_newest + exp.full) as u64;
            }
            Op::Recv(i) => {
                if subs.is_empty() {
                    continue;
                }
                let i = i % subs.len();
                let (sub, o) = &mut subs[i];
                match (sub.try_recv(), o.buf.pop_front()) {
                    (Ok(m), Some(v)) => {
                        assert_eq!(m.into_payload(), v);
                        o.received += 1;
                    }
                    (Err(TryRecvError::Empty), None) => assert!(!o.closed),
                    (Err(TryRecvError::Closed), None) => assert!(o.closed),
                    (got, want) => panic!("subscriber {i}: got {got:?}, oracle {want:?}"),
                }
            }
            Op::Close => {
                assert_eq!(topic.close(), !closed);
                closed = true;
                for (_, o) in subs.iter_mut() {
                    o.closed = true;
                }
            }
        }

        for (i, (sub, o)) in subs.iter().enumerate() {
            assert_eq!(sub.len(), o.buf.len(), "subscriber {i} length");
            assert_eq!(sub.dropped(), o.dropped, "subscriber {i} drops");
            assert_eq!(sub.received(), o.received, "subscriber {i} receives");
        }
        let s = topic.stats();
        assert_eq!(
            (s.published, s.delivered, s.dropped),
            (published, delivered, dropped)
        );
        let live = if closed { 0 } else { subs.len() };
        assert_eq!(s.subscribers, live);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn topic_matches_the_vecdeque_oracle(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops);
    }
}
