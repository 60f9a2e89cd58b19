//! Matching a policy against attributes, and explaining why it did not match.

use std::fmt;

use crate::filter::policy::{quantize, Cond, Node, PolicyValue};
use crate::filter::Filter;
use crate::message::{AttrValue, Attributes, Message};

pub(crate) fn node_matches(node: &Node, attrs: &Attributes) -> bool {
    node.keys
        .iter()
        .all(|(k, conds)| key_matches(k, conds, attrs))
        && (node.ors.is_empty() || node.ors.iter().any(|b| node_matches(b, attrs)))
}

pub(crate) fn key_matches(key: &str, conds: &[Cond], attrs: &Attributes) -> bool {
    let v = attrs.get(key);
    conds.iter().any(|c| cond_matches(c, v, attrs))
}

/// One condition against the attribute under its key (`None`: absent).
pub(crate) fn cond_matches(c: &Cond, v: Option<&AttrValue>, attrs: &Attributes) -> bool {
    match (c, v) {
        (Cond::Exists(true), v) => v.is_some_and(present),
        // As SNS documents: exists:false needs at least one attribute on the message.
        (Cond::Exists(false), v) => !v.is_some_and(present) && !attrs.is_empty(),
        (_, None) => false,
        (c, Some(AttrValue::String(s))) => str_matches(c, s),
        (c, Some(AttrValue::StringList(l))) => l.iter().any(|s| str_matches(c, s)),
        (c, Some(AttrValue::Number(n))) => num_matches(c, *n),
        (c, Some(AttrValue::Bool(b))) => bool_matches(c, *b),
    }
}

/// Whether an attribute's value counts as present for `exists`: SNS requires "a non-null and
/// non-empty value", so an empty string or an empty list is as good as absent.
pub(crate) fn present(v: &AttrValue) -> bool {
    match v {
        AttrValue::String(s) => !s.is_empty(),
        AttrValue::StringList(l) => !l.is_empty(),
        AttrValue::Number(_) | AttrValue::Bool(_) => true,
    }
}

fn str_matches(c: &Cond, s: &str) -> bool {
    match c {
        Cond::Exact(PolicyValue::String(x)) => x == s,
        Cond::Prefix(p) => s.starts_with(p.as_str()),
        Cond::Suffix(p) => s.ends_with(p.as_str()),
        Cond::EqualsIgnoreCase(_, lower) => eq_ignore_case(s, lower),
        Cond::Wildcard(p) => wildcard(p, s),
        Cond::AnythingBut { values, .. } => !values
            .iter()
            .any(|v| matches!(v, PolicyValue::String(x) if x == s)),
        Cond::AnythingButPrefix(p) => !s.starts_with(p.as_str()),
        Cond::AnythingButSuffix(p) => !s.ends_with(p.as_str()),
        Cond::AnythingButWildcard(p) => !wildcard(p, s),
        Cond::Cidr(c) => c.contains(s),
        Cond::Exact(_) | Cond::Numeric(_) | Cond::Exists(_) => false,
    }
}

fn num_matches(c: &Cond, n: f64) -> bool {
    match c {
        Cond::Exact(PolicyValue::Number(x)) => quantize(*x) == quantize(n),
        Cond::Numeric(r) => r.contains(n),
        Cond::AnythingBut { values, .. } => {
            let q = quantize(n);
            !values
                .iter()
                .any(|v| matches!(v, PolicyValue::Number(x) if quantize(*x) == q))
        }
        _ => false,
    }
}

fn bool_matches(c: &Cond, b: bool) -> bool {
    match c {
        Cond::Exact(PolicyValue::Bool(x)) => *x == b,
        Cond::AnythingBut { values, .. } => !values
            .iter()
            .any(|v| matches!(v, PolicyValue::Bool(x) if *x == b)),
        _ => false,
    }
}

/// `lower` is already lowercased.
pub(crate) fn eq_ignore_case(s: &str, lower: &str) -> bool {
    if s.is_ascii() && lower.is_ascii() {
        s.eq_ignore_ascii_case(lower)
    } else {
        fold(s) == lower
    }
}

/// Case-folds each character on its own (lowercased, then uppercased, then lowercased), so that
/// two strings whose letters are each other's upper or lower case fold alike: `str::to_lowercase`
/// writes a word-final capital sigma as "ς", so "ΑΣ" would not equal "ασ" (nor "ας" equal "ΑΣ"
/// if characters were only lowercased one by one). The first pass makes the capital sharp s
/// "ẞ" fold as "ß" does, to "ss" (found by review: checked over every scalar value, it is the
/// one letter whose fold, its lower case's and its upper case's differed).
pub(crate) fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

/// Glob match where `*` is any run of characters (including none); no other metacharacters.
pub(crate) fn wildcard(pattern: &str, s: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Why a filter did or did not match a message: the conditions that failed.
///
/// Made by [`Filter::explain`]. Display gives one line per failed condition, each with the path of
/// `$or` branches it sits in, the condition as JSON, and what the message had instead.
///
/// ```
/// use switchboard::{Filter, Message};
///
/// let f = Filter::<()>::from_json(r#"{"store": ["example_corp"], "price": [{"numeric": [">", 100]}]}"#)?;
/// let e = f.explain(&Message::new(()).with_attr("store", "example_corp").with_attr("price", 20));
/// assert!(!e.is_match());
/// assert_eq!(e.to_string(), r#"no match: price: [{"numeric":[">",100]}] failed on 20"#);
/// # Ok::<(), switchboard::FilterError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    matched: bool,
    mismatches: Vec<Mismatch>,
}

/// One condition that failed: where it sits, the condition as JSON, and what the message had.
///
/// ```
/// use switchboard::{Filter, Message};
///
/// let f = Filter::<()>::from_json(r#"{"store": ["example_corp"]}"#)?;
/// let e = f.explain(&Message::new(()));
/// let m = &e.mismatches()[0];
/// assert_eq!(m.key(), Some("store"));
/// assert_eq!(m.condition(), r#"["example_corp"]"#);
/// assert_eq!(m.found(), "attribute missing");
/// # Ok::<(), switchboard::FilterError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    path: String,
    key: Option<String>,
    condition: String,
    found: String,
}

impl Mismatch {
    /// The `$or` branches this condition sits in, as `$or[1].$or[0]`; empty at the top level.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The attribute key, or `None` for the predicate.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    /// The condition, as SNS JSON (the key's whole list, which is an OR).
    pub fn condition(&self) -> &str {
        &self.condition
    }
    /// What the message had: the value, or `attribute missing`.
    pub fn found(&self) -> &str {
        &self.found
    }
}

impl Explanation {
    /// Whether the filter matched.
    pub fn is_match(&self) -> bool {
        self.matched
    }
    /// The conditions that failed (empty when it matched). When every `$or` branch fails, each
    /// branch's failures are listed.
    pub fn mismatches(&self) -> &[Mismatch] {
        &self.mismatches
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}.", self.path)?;
        }
        match &self.key {
            Some(k) => write!(
                f,
                "{}: {} failed on {}",
                k.escape_debug(),
                self.condition,
                self.found
            ),
            None => write!(f, "{}", self.condition),
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.matched {
            return f.write_str("match");
        }
        f.write_str("no match:")?;
        match self.mismatches.as_slice() {
            [one] => write!(f, " {one}"),
            many => many.iter().try_for_each(|m| write!(f, "\n  {m}")),
        }
    }
}

fn describe(v: Option<&AttrValue>) -> String {
    match v {
        None => "attribute missing".to_owned(),
        Some(AttrValue::String(s)) => format!("{s:?}"),
        Some(AttrValue::Number(n)) => format!("{n}"),
        Some(AttrValue::Bool(b)) => format!("{b}"),
        Some(AttrValue::StringList(l)) => format!("{l:?}"),
    }
}

fn explain_node(node: &Node, attrs: &Attributes, path: &str, out: &mut Vec<Mismatch>) -> bool {
    let mut ok = true;
    for (k, conds) in &node.keys {
        if !key_matches(k, conds, attrs) {
            ok = false;
            let v = attrs.get(k);
            let mut found = describe(v);
            if !v.is_some_and(present)
                && conds.iter().any(|c| matches!(c, Cond::Exists(false)))
                && attrs.is_empty()
            {
                found.push_str(" (exists:false needs at least one attribute on the message)");
            }
            out.push(Mismatch {
                path: path.to_owned(),
                key: Some(k.clone()),
                condition: crate::filter::json::conds_to_value(conds).to_string(),
                found,
            });
        }
    }
    if !node.ors.is_empty() {
        let mut branch_failures = Vec::new();
        let mut any = false;
        for (i, b) in node.ors.iter().enumerate() {
            let p = if path.is_empty() {
                format!("$or[{i}]")
            } else {
                format!("{path}.$or[{i}]")
            };
            if explain_node(b, attrs, &p, &mut branch_failures) {
                any = true;
                break;
            }
        }
        if !any {
            ok = false;
            out.append(&mut branch_failures);
        }
    }
    ok
}

impl<T> Filter<T> {
    /// Like [`matches`](Filter::matches), but says which conditions failed and on what: for
    /// debugging a subscription that receives nothing.
    ///
    /// ```
    /// use switchboard::{Filter, Message};
    ///
    /// let f = Filter::<()>::from_json(r#"{"a": ["x"], "$or": [{"b": ["y"]}, {"c": [{"exists": true}]}]}"#)?;
    /// let e = f.explain(&Message::new(()).with_attr("a", "x").with_attr("b", "z"));
    /// assert_eq!(e.mismatches().len(), 2);
    /// assert_eq!(
    ///     e.to_string(),
    ///     "no match:\n  $or[0].b: [\"y\"] failed on \"z\"\n  $or[1].c: [{\"exists\":true}] failed on attribute missing"
    /// );
    /// assert!(f.explain(&Message::new(()).with_attr("a", "x").with_attr("b", "y")).is_match());
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    pub fn explain(&self, msg: &Message<T>) -> Explanation {
        let mut mismatches = Vec::new();
        let mut matched = explain_node(&self.policy.root, msg.attributes(), "", &mut mismatches);
        if matched && !self.predicates.iter().all(|p| p(msg)) {
            matched = false;
            mismatches.push(Mismatch {
                path: String::new(),
                key: None,
                condition: "predicate returned false".to_owned(),
                found: String::new(),
            });
        }
        Explanation {
            matched,
            mismatches,
        }
    }
}
