//! Property tests: the index against a naive list of filters, and arbitrary JSON into `from_json`.

mod common;

use proptest::prelude::*;
use serde_json::Value;
use switchboard::{AttrValue, Filter, FilterBuilder, FilterIndex, Message, Numeric, PolicyValue};

const KEYS: [&str; 3] = ["a", "b", "c"];
// IP addresses of both families (one IPv6 in a non-canonical spelling), so that `cidr` conditions
// on IPv4 and IPv6 blocks match and miss; as words they also meet the string conditions.
// The empty string is present as a value but absent for `exists`.
const WORDS: [&str; 10] = [
    "",
    "x",
    "y",
    "xy",
    "yx",
    "X",
    "10.0.0.1",
    "::1",
    "2001:db8::1",
    "2001:DB8:0:0:0:0:0:2",
];

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&KEYS[..])
}

fn word() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&WORDS[..])
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-3i32..4).prop_map(f64::from),
        Just(-0.0),
        Just(0.5),
        Just(2.5),
        // Equal to 1 at 6 decimal digits, and past the magnitude where numbers compare exactly.
        Just(1.000_000_4),
        Just(1e12 + 0.5),
    ]
}

/// One condition, added to a builder.
#[derive(Clone, Debug)]
enum Cond {
    Eq(&'static str, &'static str),
    EqNum(&'static str, f64),
    EqBool(&'static str, bool),
    AnyOf(&'static str, Vec<&'static str>),
    Prefix(&'static str, &'static str),
    Suffix(&'static str, &'static str),
    IgnoreCase(&'static str, &'static str),
    Wildcard(&'static str, &'static str),
    AnythingBut(&'static str, Vec<&'static str>),
    AnythingButNum(&'static str, f64),
    AnythingButPrefix(&'static str, &'static str),
    AnythingButSuffix(&'static str, &'static str),
    AnythingButWildcard(&'static str, &'static str),
    AnythingButMixed(&'static str, &'static str, f64),
    EqNull(&'static str),
    Range(&'static str, f64, f64),
    RangeGeLt(&'static str, f64, f64),
    Gt(&'static str, f64),
    NumEq(&'static str, f64),
    Lt(&'static str, f64),
    Le(&'static str, f64),
    Ge(&'static str, f64),
    Exists(&'static str, bool),
    Cidr(&'static str, &'static str),
}

fn cond() -> impl Strategy<Value = Cond> {
    prop_oneof![
        4 => (key(), word()).prop_map(|(k, w)| Cond::Eq(k, w)),
        1 => (key(), number()).prop_map(|(k, n)| Cond::EqNum(k, n)),
        1 => (key(), any::<bool>()).prop_map(|(k, b)| Cond::EqBool(k, b)),
        1 => (key(), prop::collection::vec(word(), 1..3)).prop_map(|(k, w)| Cond::AnyOf(k, w)),
        2 => (key(), prop::sample::select(vec!["x", "y", "", "xy"])).prop_map(|(k, w)| Cond::Prefix(k, w)),
        1 => (key(), prop::sample::select(vec!["x", "y", "yx"])).prop_map(|(k, w)| Cond::Suffix(k, w)),
        1 => (key(), word()).prop_map(|(k, w)| Cond::IgnoreCase(k, w)),
        1 => (key(), prop::sample::select(vec!["x*", "*y", "x*y", "*", "*x*"])).prop_map(|(k, w)| Cond::Wildcard(k, w)),
        2 => (key(), prop::collection::vec(word(), 1..3)).prop_map(|(k, w)| Cond::AnythingBut(k, w)),
        1 => (key(), number()).prop_map(|(k, n)| Cond::AnythingButNum(k, n)),
        1 => (key(), prop::sample::select(vec!["x", "y"])).prop_map(|(k, w)| Cond::AnythingButPrefix(k, w)),
        1 => (key(), prop::sample::select(vec!["x", "yx", "1"])).prop_map(|(k, w)| Cond::AnythingButSuffix(k, w)),
        1 => (key(), prop::sample::select(vec!["x*", "*y", "*", "2001:*"])).prop_map(|(k, w)| Cond::AnythingButWildcard(k, w)),
        1 => (key(), word(), number()).prop_map(|(k, w, n)| Cond::AnythingButMixed(k, w, n)),
        1 => key().prop_map(Cond::EqNull),
        1 => (key(), number(), 1i32..4).prop_map(|(k, lo, w)| Cond::Range(k, lo, lo + f64::from(w))),
        1 => (key(), number(), 1i32..4).prop_map(|(k, lo, w)| Cond::RangeGeLt(k, lo, lo + f64::from(w))),
        1 => (key(), number()).prop_map(|(k, n)| Cond::Gt(k, n)),
        1 => (key(), number()).prop_map(|(k, n)| Cond::NumEq(k, n)),
        1 => (key(), number()).prop_map(|(k, n)| Cond::Lt(k, n)),
        1 => (key(), number()).prop_map(|(k, n)| Cond::Le(k, n)),
        1 => (key(), number()).prop_map(|(k, n)| Cond::Ge(k, n)),
        1 => (key(), any::<bool>()).prop_map(|(k, b)| Cond::Exists(k, b)),
        1 => (key(), prop::sample::select(vec!["10.0.0.0/8", "10.0.0.1/32", "0.0.0.0/0", "::/0", "2001:db8::/32", "::1/128", "2001:db8::2/127"])).prop_map(|(k, c)| Cond::Cidr(k, c)),
    ]
}

fn add(b: FilterBuilder, c: &Cond) -> FilterBuilder {
    match c.clone() {
        Cond::Eq(k, w) => b.eq(k, w),
        Cond::EqNum(k, n) => b.eq(k, n),
        Cond::EqBool(k, v) => b.eq(k, v),
        Cond::AnyOf(k, w) => b.any_of(k, w),
        Cond::Prefix(k, w) => b.prefix(k, w),
        Cond::Suffix(k, w) => b.suffix(k, w),
        Cond::IgnoreCase(k, w) => b.equals_ignore_case(k, w),
        Cond::Wildcard(k, w) => b.wildcard(k, w),
        Cond::AnythingBut(k, w) => b.anything_but(k, w),
        Cond::AnythingButNum(k, n) => b.anything_but(k, [n]),
        Cond::AnythingButPrefix(k, w) => b.anything_but_prefix(k, w),
        Cond::AnythingButSuffix(k, w) => b.anything_but_suffix(k, w),
        Cond::AnythingButWildcard(k, w) => b.anything_but_wildcard(k, w),
        Cond::AnythingButMixed(k, w, n) => {
            b.anything_but(k, [PolicyValue::from(w), PolicyValue::from(n)])
        }
        Cond::EqNull(k) => b.eq(k, PolicyValue::Null),
        Cond::Range(k, lo, hi) => b.numeric(k, Numeric::gt(lo).and_le(hi)),
        Cond::RangeGeLt(k, lo, hi) => b.numeric(k, Numeric::ge(lo).and_lt(hi)),
        Cond::Gt(k, n) => b.numeric(k, Numeric::gt(n)),
        Cond::NumEq(k, n) => b.numeric(k, Numeric::eq(n)),
        Cond::Lt(k, n) => b.numeric(k, Numeric::lt(n)),
        Cond::Le(k, n) => b.numeric(k, Numeric::le(n)),
        Cond::Ge(k, n) => b.numeric(k, Numeric::ge(n)),
        Cond::Exists(k, v) => b.exists(k, v),
        Cond::Cidr(k, c) => b.cidr(k, c),
    }
}

#[derive(Clone, Debug)]
struct Spec {
    conds: Vec<Cond>,
    ors: Vec<Vec<Cond>>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(cond(), 0..3),
        prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(prop::collection::vec(cond(), 1..3), 2..4)],
    )
        .prop_map(|(conds, ors)| Spec { conds, ors })
}

fn build(s: &Spec) -> Filter<()> {
    let b = s.conds.iter().fold(Filter::builder(), add);
    let b = if s.ors.is_empty() {
        b
    } else {
        b.or(s
            .ors
            .iter()
            .map(|branch| branch.iter().fold(Filter::builder(), add)))
    };
    let limits = switchboard::FilterLimits::default()
        .with_max_keys(10)
        .with_max_combinations(10_000);
    b.limits(limits)
        .build()
        .expect("generated policies are valid")
}

fn attr_value() -> impl Strategy<Value = AttrValue> {
    prop_oneof![
        3 => word().prop_map(AttrValue::from),
        2 => number().prop_map(AttrValue::Number),
        1 => any::<bool>().prop_map(AttrValue::Bool),
        1 => prop::collection::vec(word(), 0..3).prop_map(AttrValue::from),
    ]
}

fn message() -> impl Strategy<Value = Message<()>> {
    prop::collection::vec((key(), attr_value()), 0..4).prop_map(|attrs| {
        attrs
            .into_iter()
            .fold(Message::new(()), |m, (k, v)| m.with_attr(k, v))
    })
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, Spec),
    Remove(u8),
    Replace(u8, Spec),
    Check,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..200, spec()).prop_map(|(k, s)| Op::Insert(k, s)),
        2 => (0u8..200).prop_map(Op::Remove),
        1 => (0u8..200, spec()).prop_map(|(k, s)| Op::Replace(k, s)),
        1 => Just(Op::Check),
    ]
}

fn check(
    index: &mut FilterIndex<u8, ()>,
    model: &[(u8, Filter<()>)],
    msgs: &[Message<()>],
) -> Result<(), TestCaseError> {
    let snap = index.snapshot();
    prop_assert_eq!(snap.len(), model.len());
    for m in msgs {
        let want: Vec<u8> = model
            .iter()
            .filter(|(_, f)| f.matches(m))
            .map(|(k, _)| *k)
            .collect();
        let (mut got, mut lin) = (Vec::new(), Vec::new());
        snap.matching(m, &mut got);
        snap.matching_linear(m, &mut lin);
        prop_assert_eq!(&lin, &want, "linear scan on {:?}", m.attributes());
        prop_assert_eq!(&got, &want, "index on {:?}", m.attributes());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(48), ..ProptestConfig::default() })]

    /// The index gives what a naive list of filters gives, through inserts, removals and
    /// replacements in any order, with snapshots taken (and rebuilt) along the way.
    #[test]
    fn index_equals_linear_scan(ops in prop::collection::vec(op(), 1..400), msgs in prop::collection::vec(message(), 8)) {
        let mut index = FilterIndex::new();
        let mut model: Vec<(u8, Filter<()>)> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(k, s) => {
                    let f = build(&s);
                    let old = index.insert(k, f.clone());
                    match model.iter_mut().find(|(mk, _)| *mk == k) {
                        Some(slot) => { prop_assert!(old.is_some()); slot.1 = f; }
                        None => { prop_assert!(old.is_none()); model.push((k, f)); }
                    }
                }
                Op::Remove(k) => {
                    let old = index.remove(&k);
                    let pos = model.iter().position(|(mk, _)| *mk == k);
                    prop_assert_eq!(old.is_some(), pos.is_some());
                    if let Some(p) = pos { model.remove(p); }
                }
                Op::Replace(k, s) => {
                    let f = build(&s);
                    let r = index.replace(&k, f.clone());
                    match model.iter_mut().find(|(mk, _)| *mk == k) {
                        Some(slot) => { prop_assert!(r.is_ok()); slot.1 = f; }
                        None => prop_assert!(r.is_err()),
                    }
                }
                Op::Check => check(&mut index, &model, &msgs)?,
            }
        }
        check(&mut index, &model, &msgs)?;
        index.compact();
        check(&mut index, &model, &msgs)?;
    }

    /// Many filters on one key, mixing anything-but, prefix and exact, in any insertion order.
    #[test]
    fn one_key_mixed_operators(kinds in prop::collection::vec((0u8..4, word()), 20..120), msgs in prop::collection::vec(message(), 8)) {
        let mut index = FilterIndex::new();
        let mut model = Vec::new();
        for (i, (kind, w)) in kinds.into_iter().enumerate() {
            let b = Filter::builder();
            let f = match kind {
                0 => b.anything_but("a", [w]),
                1 => b.prefix("a", w.get(..1).unwrap_or("")),
                2 => b.eq("a", w),
                _ => b.exists("a", false),
            }.build().expect("valid");
            index.insert(i as u8, f.clone());
            model.push((i as u8, f));
        }
        check(&mut index, &model, &msgs)?;
    }

    /// Many numeric conditions on one key (more than a leaf of the index's interval tree
    /// holds, so that stabs walk inner nodes), on a grid where many end points coincide, with
    /// messages whose values lie on, between and beyond them.
    #[test]
    fn one_key_many_numeric_ranges(
        conds in prop::collection::vec((0u8..8, -12i32..12, 1i32..12), 17..150),
        values in prop::collection::vec(prop_oneof![
            4 => (-30i32..30).prop_map(|v| f64::from(v) / 2.0),
            1 => Just(1e12),
            1 => Just(-1e12),
        ], 8),
    ) {
        let mut index = FilterIndex::new();
        let mut model = Vec::new();
        for (i, (kind, lo, width)) in conds.into_iter().enumerate() {
            let (lo, hi) = (f64::from(lo) / 2.0, f64::from(lo + width) / 2.0);
            let n = match kind {
                0 => Numeric::gt(lo).and_le(hi),
                1 => Numeric::ge(lo).and_lt(hi),
                2 => Numeric::ge(lo).and_le(hi),
                3 => Numeric::gt(lo).and_lt(hi),
                4 => Numeric::gt(lo),
                5 => Numeric::le(hi),
                6 => Numeric::eq(lo),
                _ => Numeric::lt(lo),
            };
            let f = Filter::builder().numeric("a", n).build().expect("valid");
            index.insert(i as u8, f.clone());
            model.push((i as u8, f));
        }
        let msgs: Vec<Message<()>> = values
            .into_iter()
            .map(|v| Message::new(()).with_attr("a", v))
            .chain([Message::new(()), Message::new(()).with_attr("a", "1")])
            .collect();
        check(&mut index, &model, &msgs)?;
    }

    /// A filter's JSON means what the filter means.
    #[test]
    fn json_round_trip(s in spec(), msgs in prop::collection::vec(message(), 8)) {
        let f = build(&s);
        let limits = switchboard::FilterLimits::default().with_max_keys(10).with_max_combinations(10_000);
        let g = Filter::<()>::from_json_with_limits(&f.to_json(), &limits).expect("own JSON parses");
        prop_assert_eq!(f.to_json(), g.to_json());
        for m in &msgs {
            prop_assert_eq!(f.matches(m), g.matches(m));
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let names = prop::sample::select(vec![
        "a",
        "$or",
        "prefix",
        "suffix",
        "anything-but",
        "numeric",
        "exists",
        "cidr",
        "wildcard",
        "equals-ignore-case",
        "x",
    ]);
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i32>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|n| serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)),
        1 => prop::sample::select(vec!["=", "<", "<=", ">", ">=", "10.0.0.0/8", "::/200", "x", "", "1.2.3/8"])
                .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            1 => prop::collection::vec((names.clone(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(512), ..ProptestConfig::default() })]

    /// Arbitrary JSON is accepted or rejected, never a panic; what is accepted round-trips.
    #[test]
    fn from_json_never_panics(v in json_value()) {
        if let Ok(f) = Filter::<()>::from_json(&v.to_string()) {
            let again = Filter::<()>::from_json(&f.to_json()).expect("own JSON parses");
            prop_assert_eq!(again.to_json(), f.to_json());
            let _ = f.matches(&Message::new(()).with_attr("a", "x"));
        }
    }

    /// Arbitrary text, too.
    #[test]
    fn from_json_text_never_panics(s in "\\PC{0,64}") {
        let _ = Filter::<()>::from_json(&s);
    }
}

/// Bounds this binary in time: a hanging test fails the run (see `common::start_watchdog`).
#[test]
fn _watchdog() {
    common::start_watchdog();
}
