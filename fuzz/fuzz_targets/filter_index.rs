//! The subscription index against the linear reference.
//!
//! A structured input (from `arbitrary`) is a list of operations on a `FilterIndex` keyed by
//! `u8` and, in step, on a `Topic` with one subscription per key: insert, insert many (to cross
//! the sizes where the index compiles, merges and rebuilds its levels), remove, replace, clear a
//! subscription's filter, compact, hold a snapshot, and check a message. The filters are built
//! with `FilterBuilder` from small policies (every operator, `$or` nested up to three deep), and
//! half of them go through their own JSON first (`to_json` then `from_json`, which must read it).
//!
//! Checked, for every message:
//! * `FilterSnapshot::matching` gives exactly the keys whose `Filter::matches` is true, in
//!   insertion order (the model is a plain list), and so does `matching_linear`;
//! * a snapshot held earlier still answers for the filters it was taken with;
//! * publishing on the topic reaches exactly the subscriptions whose filter matches (or that have
//!   none), and the report counts them;
//! * a filter read back from its JSON matches what the built one matches.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use switchboard::{
    AttrValue, Filter, FilterBuilder, FilterIndex, FilterLimits, FilterSnapshot, Message, Numeric,
    PolicyValue, SubscribeOptions, Subscription, Topic,
};

const KEYS: [&str; 4] = ["a", "b", "c", "$or"];

/// Strings that meet the operators' edges: empty, case pairs (ASCII and not, including ones whose
/// lowercase changes length), IP addresses of both families, wildcard patterns.
const WORDS: [&str; 32] = [
    "",
    "x",
    "y",
    "xy",
    "yx",
    "X",
    "xyz",
    "xyzzy",
    "10.0.0.1",
    "10.0.0.0/8",
    "10.0.0.1/32",
    "0.0.0.0/0",
    "::1",
    "::/0",
    "2001:db8::1",
    "2001:DB8:0:0:0:0:0:2",
    "2001:db8::/32",
    "x*",
    "*y",
    "x*y",
    "*",
    "**",
    "*x*",
    "x**y",
    "é",
    "É",
    "ß",
    "SS",
    "İ",
    "i\u{307}",
    "\u{212a}",
    "k",
];

const NUMBERS: [f64; 20] = [
    -3.0,
    -1.0,
    0.0,
    -0.0,
    0.5,
    1.0,
    2.0,
    2.5,
    1.000_000_4,
    1.000_000_6,
    4e-7,
    6e-7,
    1e12,
    1e12 + 0.5,
    999_999_999_999.999_9,
    1e15,
    -1e300,
    f64::MAX,
    f64::MIN_POSITIVE,
    100.0,
];

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Key(u8);

impl Key {
    fn name(self) -> &'static str {
        KEYS[usize::from(self.0) % KEYS.len()]
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Word {
    Table(u8),
    Free(String),
}

impl Word {
    fn get(&self) -> String {
        match self {
            Word::Table(i) => WORDS[usize::from(*i) % WORDS.len()].to_owned(),
            Word::Free(s) => s.chars().take(8).collect(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Num {
    Table(u8),
    Raw(f64),
}

impl Num {
    fn get(self) -> f64 {
        match self {
            Num::Table(i) => NUMBERS[usize::from(i) % NUMBERS.len()],
            Num::Raw(x) => x,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Scalar {
    Word(Word),
    Num(Num),
    Bool(bool),
    Null,
}

impl Scalar {
    fn get(&self) -> PolicyValue {
        match self {
            Scalar::Word(w) => PolicyValue::String(w.get()),
            Scalar::Num(n) => PolicyValue::Number(n.get()),
            Scalar::Bool(b) => PolicyValue::Bool(*b),
            Scalar::Null => PolicyValue::Null,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op1 {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Arbitrary, Debug, Clone)]
enum Cond {
    Eq(Key, Scalar),
    AnyOf(Key, Vec<Scalar>),
    Prefix(Key, Word),
    Suffix(Key, Word),
    IgnoreCase(Key, Word),
    Wildcard(Key, Word),
    AnythingBut(Key, Vec<Scalar>),
    AnythingButPrefix(Key, Word),
    AnythingButSuffix(Key, Word),
    AnythingButWildcard(Key, Word),
    Numeric(Key, Op1, Num, Option<(bool, Num)>),
    Exists(Key, bool),
    Cidr(Key, Word),
}

fn add(b: FilterBuilder, c: &Cond) -> FilterBuilder {
    match c {
        Cond::Eq(k, v) => b.eq(k.name(), v.get()),
        Cond::AnyOf(k, vs) => b.any_of(k.name(), vs.iter().take(4).map(Scalar::get)),
        Cond::Prefix(k, w) => b.prefix(k.name(), w.get()),
        Cond::Suffix(k, w) => b.suffix(k.name(), w.get()),
        Cond::IgnoreCase(k, w) => b.equals_ignore_case(k.name(), w.get()),
        Cond::Wildcard(k, w) => b.wildcard(k.name(), w.get()),
        Cond::AnythingBut(k, vs) => b.anything_but(k.name(), vs.iter().take(4).map(Scalar::get)),
        Cond::AnythingButPrefix(k, w) => b.anything_but_prefix(k.name(), w.get()),
        Cond::AnythingButSuffix(k, w) => b.anything_but_suffix(k.name(), w.get()),
        Cond::AnythingButWildcard(k, w) => b.anything_but_wildcard(k.name(), w.get()),
        Cond::Numeric(k, op, v, upper) => {
            let v = v.get();
            let mut n = match op {
                Op1::Eq => Numeric::eq(v),
                Op1::Lt => Numeric::lt(v),
                Op1::Le => Numeric::le(v),
                Op1::Gt => Numeric::gt(v),
                Op1::Ge => Numeric::ge(v),
            };
            if let Some((inclusive, hi)) = upper {
                n = if *inclusive {
                    n.and_le(hi.get())
                } else {
                    n.and_lt(hi.get())
                };
            }
            b.numeric(k.name(), n)
        }
        Cond::Exists(k, v) => b.exists(k.name(), *v),
        Cond::Cidr(k, w) => b.cidr(k.name(), &w.get()),
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct Spec {
    conds: Vec<Cond>,
    ors: Vec<Spec>,
    /// Use the filter read back from its own JSON.
    via_json: bool,
    /// SNS's limits rather than roomy ones.
    sns_limits: bool,
}

fn roomy() -> FilterLimits {
    FilterLimits::default()
        .with_max_keys(10)
        .with_max_combinations(10_000)
}

fn builder(s: &Spec, depth: usize, limits: &FilterLimits) -> FilterBuilder {
    let b = s
        .conds
        .iter()
        .take(4)
        .fold(Filter::builder().limits(limits.clone()), add);
    if s.ors.is_empty() || depth >= 3 {
        return b;
    }
    b.or(s
        .ors
        .iter()
        .take(3)
        .map(|branch| builder(branch, depth + 1, limits)))
}

/// The filter the spec describes, if it is a valid one. Checks that it reads back from its JSON,
/// meaning the same on `msgs`.
fn build(s: &Spec, msgs: &[Message<()>]) -> Option<Filter<()>> {
    let limits = if s.sns_limits {
        FilterLimits::default()
    } else {
        roomy()
    };
    let f = builder(s, 0, &limits).build::<()>().ok()?;
    let json = f.to_json();
    let g = Filter::<()>::from_json_with_limits(&json, &limits)
        .unwrap_or_else(|e| panic!("built filter's JSON {json} does not read back: {e}"));
    assert_eq!(g.to_json(), json, "JSON not stable");
    for m in msgs {
        assert_eq!(
            f.matches(m),
            g.matches(m),
            "{json}: built and read back disagree on {:?}",
            m.attributes()
        );
    }
    Some(if s.via_json { g } else { f })
}

#[derive(Arbitrary, Debug, Clone)]
enum Attr {
    Str(Word),
    Num(Num),
    Bool(bool),
    List(Vec<Word>),
}

#[derive(Arbitrary, Debug, Clone)]
struct Msg(Vec<(Key, Attr)>);

impl Msg {
    fn get(&self) -> Message<()> {
        self.0.iter().take(5).fold(Message::new(()), |m, (k, v)| {
            let v = match v {
                Attr::Str(w) => AttrValue::String(w.get()),
                Attr::Num(n) => AttrValue::Number(n.get()),
                Attr::Bool(b) => AttrValue::Bool(*b),
                Attr::List(l) => AttrValue::StringList(l.iter().take(3).map(Word::get).collect()),
            };
            m.with_attr(k.name(), v)
        })
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Insert(u8, Spec),
    InsertMany(u8, u8, Spec),
    Remove(u8),
    Replace(u8, Spec),
    ClearFilter(u8),
    Compact,
    Hold,
    Check(Msg),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Messages every built filter is checked against its JSON with, and every state at the end.
    msgs: Vec<Msg>,
    ops: Vec<Op>,
}

type Model = Vec<(u8, Filter<()>)>;

struct World {
    index: FilterIndex<u8, ()>,
    /// The index's filters, in its insertion order (a key changed keeps its place).
    model: Model,
    topic: Topic<()>,
    /// Each key's subscription and its filter (`None`: it gets everything).
    subs: BTreeMap<u8, (Subscription<()>, Option<Filter<()>>)>,
    held: Vec<(FilterSnapshot<u8, ()>, Model)>,
}

impl World {
    fn insert(&mut self, k: u8, f: Filter<()>) {
        let old = self.index.insert(k, f.clone());
        match self.model.iter_mut().find(|(mk, _)| *mk == k) {
            Some(slot) => {
                assert!(old.is_some(), "insert over {k} returned no old filter");
                slot.1 = f.clone();
            }
            None => {
                assert!(old.is_none(), "insert of new {k} returned an old filter");
                self.model.push((k, f.clone()));
            }
        }
        match self.subs.get_mut(&k) {
            Some((sub, slot)) => {
                assert!(self.topic.set_filter(sub.id(), Some(f.clone())));
                *slot = Some(f);
            }
            None => {
                let sub = self
                    .topic
                    .subscribe_filtered_with(f.clone(), SubscribeOptions::new().unbounded());
                self.subs.insert(k, (sub, Some(f)));
            }
        }
    }

    fn check_snapshot(snap: &FilterSnapshot<u8, ()>, model: &Model, m: &Message<()>) {
        assert_eq!(snap.len(), model.len());
        let want: Vec<u8> = model
            .iter()
            .filter(|(_, f)| f.matches(m))
            .map(|(k, _)| *k)
            .collect();
        let (mut got, mut lin) = (Vec::new(), Vec::new());
        snap.matching(m, &mut got);
        snap.matching_linear(m, &mut lin);
        assert_eq!(lin, want, "linear scan on {:?}", m.attributes());
        assert_eq!(
            got,
            want,
            "index on {:?}; filters {:?}",
            m.attributes(),
            model
                .iter()
                .map(|(k, f)| (k, f.to_json()))
                .collect::<Vec<_>>()
        );
    }

    fn check(&mut self, m: &Message<()>) {
        let snap = self.index.snapshot();
        World::check_snapshot(&snap, &self.model, m);

        let want: Vec<u8> = self
            .subs
            .iter()
            .filter(|(_, (_, f))| f.as_ref().is_none_or(|f| f.matches(m)))
            .map(|(k, _)| *k)
            .collect();
        let report = self.topic.publish(m.clone()).expect("topic is open");
        let mut got = Vec::new();
        for (k, (sub, _)) in &self.subs {
            if sub.try_recv().is_ok() {
                got.push(*k);
            }
            assert!(sub.try_recv().is_err(), "subscription {k} got two copies");
        }
        assert_eq!(got, want, "topic delivery on {:?}", m.attributes());
        assert_eq!(report.delivered, want.len());
        assert_eq!(report.filtered_out, self.subs.len() - want.len());
    }
}

fuzz_target!(|input: Input| {
    let msgs: Vec<Message<()>> = input.msgs.iter().take(8).map(Msg::get).collect();
    let mut w = World {
        index: FilterIndex::new(),
        model: Vec::new(),
        topic: Topic::new(),
        subs: BTreeMap::new(),
        held: Vec::new(),
    };
    for op in input.ops.iter().take(200) {
        match op {
            Op::Insert(k, s) => {
                if let Some(f) = build(s, &msgs) {
                    w.insert(*k, f);
                }
            }
            Op::InsertMany(start, count, s) => {
                if let Some(f) = build(s, &msgs) {
                    for i in 0..count % 48 {
                        w.insert(start.wrapping_add(i), f.clone());
                    }
                }
            }
            Op::Remove(k) => {
                let old = w.index.remove(k);
                let pos = w.model.iter().position(|(mk, _)| mk == k);
                assert_eq!(old.is_some(), pos.is_some());
                if let Some(p) = pos {
                    w.model.remove(p);
                }
                if let Some((sub, _)) = w.subs.remove(k) {
                    assert!(w.topic.unsubscribe(sub.id()));
                }
            }
            Op::Replace(k, s) => {
                if let Some(f) = build(s, &msgs) {
                    let r = w.index.replace(k, f.clone());
                    match w.model.iter_mut().find(|(mk, _)| mk == k) {
                        Some(slot) => {
                            assert!(r.is_ok());
                            slot.1 = f.clone();
                        }
                        None => assert!(r.is_err()),
                    }
                    if let Some((sub, slot)) = w.subs.get_mut(k) {
                        assert!(w.topic.set_filter(sub.id(), Some(f.clone())));
                        *slot = Some(f);
                    }
                }
            }
            Op::ClearFilter(k) => {
                // The subscription stays, unfiltered; its filter leaves the index.
                if w.index.remove(k).is_some() {
                    w.model.retain(|(mk, _)| mk != k);
                }
                if let Some((sub, slot)) = w.subs.get_mut(k) {
                    assert!(w.topic.set_filter(sub.id(), None));
                    *slot = None;
                }
            }
            Op::Compact => w.index.compact(),
            Op::Hold => {
                if w.held.len() < 4 {
                    w.held.push((w.index.snapshot(), w.model.clone()));
                }
            }
            Op::Check(m) => w.check(&m.get()),
        }
    }
    for m in &msgs {
        w.check(m);
    }
    w.index.compact();
    for m in &msgs {
        w.check(m);
        for (snap, model) in &w.held {
            World::check_snapshot(snap, model, m);
        }
    }
});
