//! Choosing where an index files each filter: its most selective positive condition.

use crate::filter::policy::{quantize, Cidr, Cond, Node, PolicyValue};

/// A value an index can look up directly; a message value that hits it makes the filter a
/// candidate (which is then checked in full).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Probe {
    Str(String),
    /// The bits of a quantized number.
    Num(u64),
    Bool(bool),
    /// Lowercased.
    IgnoreCase(String),
    Prefix(String),
    Suffix(String),
    /// Quantized bounds, each with whether it is inclusive.
    Range {
        lo: (f64, bool),
        hi: (f64, bool),
    },
    Cidr4 {
        net: u32,
        len: u8,
    },
    Cidr6 {
        net: u128,
        len: u8,
    },
    /// The attribute is present (`exists: true`).
    Present,
    /// Matches no attribute value (`null`): nothing to file.
    Never,
}

pub(crate) fn num_key(x: f64) -> u64 {
    quantize(x).to_bits()
}

/// An attribute key and the probes of its conditions (an OR: any hit makes a candidate).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Anchor {
    pub(crate) key: String,
    pub(crate) probes: Vec<Probe>,
}

/// Where a filter goes in an index.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Plan {
    /// Filed under these anchors: the filter can only match a message that hits one of them.
    /// `exact`: a hit is a match (the policy is that one key and nothing else).
    Anchored { anchors: Vec<Anchor>, exact: bool },
    /// The whole policy is `{key: [{"anything-but": [strings]}]}`: it matches a string value
    /// that is not listed, and any number or boolean.
    AnythingBut { key: String, values: Vec<String> },
    /// The whole policy is `{key: [{"exists": false}]}`.
    Absent { key: String },
    /// No positive condition to file it under (anything-but, exists:false, the empty policy):
    /// checked against every message.
    Residual,
}

fn probe(c: &Cond) -> Option<(u32, Probe)> {
    Some(match c {
        Cond::Exact(PolicyValue::String(s)) => (1, Probe::Str(s.clone())),
        Cond::Exact(PolicyValue::Number(n)) => (1, Probe::Num(num_key(*n))),
        Cond::Exact(PolicyValue::Bool(b)) => (4, Probe::Bool(*b)),
        Cond::Exact(PolicyValue::Null) => (0, Probe::Never),
        Cond::EqualsIgnoreCase(_, lower) => (2, Probe::IgnoreCase(lower.clone())),
        Cond::Prefix(p) => (if p.len() >= 3 { 3 } else { 6 }, Probe::Prefix(p.clone())),
        Cond::Suffix(p) => (if p.len() >= 3 { 3 } else { 6 }, Probe::Suffix(p.clone())),
        Cond::Wildcard(p) => {
            let (head, tail) = match p.split_once('*') {
                Some((h, _)) => (h, p.rsplit_once('*').map_or("", |(_, t)| t)),
                None => return Some((1, Probe::Str(p.clone()))),
            };
            if head.len() >= tail.len() && !head.is_empty() {
                (
                    if head.len() >= 3 { 3 } else { 6 },
                    Probe::Prefix(head.to_owned()),
                )
            } else if !tail.is_empty() {
                (
                    if tail.len() >= 3 { 3 } else { 6 },
                    Probe::Suffix(tail.to_owned()),
                )
            } else {
                return None;
            }
        }
        Cond::Numeric(r) => match r.is_eq() {
            Some(q) => (1, Probe::Num(q.to_bits())),
            None => (5, Probe::Range { lo: r.lo, hi: r.hi }),
        },
        Cond::Cidr(Cidr::V4 { net, len, .. }) => (
            3,
            Probe::Cidr4 {
                net: *net,
                len: *len,
            },
        ),
        Cond::Cidr(Cidr::V6 { net, len, .. }) => (
            3,
            Probe::Cidr6 {
                net: *net,
                len: *len,
            },
        ),
        Cond::Exists(true) => (8, Probe::Present),
        Cond::Exists(false)
        | Cond::AnythingBut { .. }
        | Cond::AnythingButPrefix(_)
        | Cond::AnythingButSuffix(_)
        | Cond::AnythingButWildcard(_) => return None,
    })
}

/// A key is usable only if every alternative in its list can be probed. Lower scores are more
/// selective.
fn key_anchor(key: &str, conds: &[Cond]) -> Option<(u32, Anchor)> {
    let mut worst = 0;
    let mut probes = Vec::with_capacity(conds.len());
    for c in conds {
        let (s, p) = probe(c)?;
        worst = worst.max(s);
        if p != Probe::Never {
            probes.push(p);
        }
    }
    let score = worst * 8 + (conds.len() as u32).min(7);
    Some((
        score,
        Anchor {
            key: key.to_owned(),
            probes,
        },
    ))
}

fn plan_node(node: &Node) -> Option<(u32, Vec<Anchor>)> {
    let own = node
        .keys
        .iter()
        .filter_map(|(k, c)| key_anchor(k, c))
        .min_by_key(|(s, _)| *s)
        .map(|(s, a)| (s, vec![a]));
    let sub = if node.ors.is_empty() {
        None
    } else {
        let mut score = 0;
        let mut anchors = Vec::new();
        let mut ok = true;
        for b in &node.ors {
            match plan_node(b) {
                Some((s, mut a)) => {
                    score = score.max(s);
                    anchors.append(&mut a);
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        ok.then_some((score + 1, anchors))
    };
    match (own, sub) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Whether a hit on this condition's probe is a match of the condition.
fn probe_is_exact(c: &Cond) -> bool {
    !matches!(c, Cond::Wildcard(p) if p.contains('*'))
}

pub(crate) fn plan(root: &Node) -> Plan {
    if let ([(key, conds)], true) = (root.keys.as_slice(), root.ors.is_empty()) {
        match conds.as_slice() {
            [Cond::AnythingBut { values, .. }] => {
                let strings: Option<Vec<String>> = values
                    .iter()
                    .map(|v| match v {
                        PolicyValue::String(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                if let Some(values) = strings {
                    return Plan::AnythingBut {
                        key: key.clone(),
                        values,
                    };
                }
            }
            [Cond::Exists(false)] => return Plan::Absent { key: key.clone() },
            _ => {}
        }
    }
    match plan_node(root) {
        Some((_, anchors)) => {
            let exact = root.ors.is_empty()
                && root.keys.len() == 1
                && root
                    .keys
                    .iter()
                    .all(|(_, conds)| conds.iter().all(probe_is_exact));
            Plan::Anchored { anchors, exact }
        }
        None => Plan::Residual,
    }
}
