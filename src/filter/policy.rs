//! The policy tree, its builder, limits, and `Filter<T>` itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::filter::error::{FilterError, FilterErrorKind};
use crate::filter::plan::{self, Plan};
use crate::message::Message;

/// A value in a filter policy: what an exact or anything-but condition compares with.
///
/// Converts from strings, numbers and booleans, so builder calls stay short:
///
/// ```
/// use switchboard::PolicyValue;
///
/// assert_eq!(PolicyValue::from("eu"), PolicyValue::String("eu".into()));
/// assert_eq!(PolicyValue::from(100), PolicyValue::Number(100.0));
/// assert_eq!(PolicyValue::from(true), PolicyValue::Bool(true));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyValue {
    /// Matches a `String` attribute (or a `StringList` element) with exactly this text.
    String(String),
    /// Matches a `Number` attribute equal to this number (6 decimal digits, `-0 == 0`).
    Number(f64),
    /// Matches a `Bool` attribute.
    Bool(bool),
    /// JSON `null`: accepted as SNS does, but no message attribute is null, so it never matches.
    Null,
}

impl From<&str> for PolicyValue {
    fn from(v: &str) -> Self {
        PolicyValue::String(v.to_owned())
    }
}
impl From<String> for PolicyValue {
    fn from(v: String) -> Self {
        PolicyValue::String(v)
    }
}
impl From<&String> for PolicyValue {
    fn from(v: &String) -> Self {
        PolicyValue::String(v.clone())
    }
}
impl From<bool> for PolicyValue {
    fn from(v: bool) -> Self {
        PolicyValue::Bool(v)
    }
}
impl From<f64> for PolicyValue {
    fn from(v: f64) -> Self {
        PolicyValue::Number(v)
    }
}
macro_rules! policy_number_from {
    ($($t:ty),*) => {$(
        impl From<$t> for PolicyValue {
            fn from(v: $t) -> Self {
                PolicyValue::Number(v as f64)
            }
        }
    )*};
}
policy_number_from!(f32, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// The numeric comparison operators, as SNS spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumOp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl NumOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NumOp::Eq => "=",
            NumOp::Lt => "<",
            NumOp::Le => "<=",
            NumOp::Gt => ">",
            NumOp::Ge => ">=",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<NumOp> {
        Some(match s {
            "=" => NumOp::Eq,
            "<" => NumOp::Lt,
            "<=" => NumOp::Le,
            ">" => NumOp::Gt,
            ">=" => NumOp::Ge,
            _ => return None,
        })
    }
}

/// Numbers compare at 6 decimal digits, with `-0 == 0`: this is the key two numbers share when
/// they are equal. It is non-decreasing in `x`, so ranges compare on it too.
///
/// Past `EXACT_FROM` an `f64` holds fewer than 6 decimals, and `x * 1e6` no longer fits the
/// 53-bit mantissa: rounding it merged numbers up to 1.2e-4 apart near 10^12 (found by review,
/// when the bound was 10^12). So those compare as they are. `EXACT_FROM * 1e6` is a whole number
/// below 2^53, so nothing below the bound rounds above it: the key stays non-decreasing.
pub(crate) fn quantize(x: f64) -> f64 {
    const EXACT_FROM: f64 = 9e9;
    let q = if x.abs() < EXACT_FROM {
        (x * 1e6).round() / 1e6
    } else {
        x
    };
    q + 0.0
}

/// A numeric condition: `=`, `<`, `<=`, `>`, `>=`, or a two-sided range.
///
/// Built with [`Numeric::eq`], [`Numeric::lt`], [`Numeric::le`], [`Numeric::gt`], [`Numeric::ge`];
/// a lower bound followed by [`and_lt`](Numeric::and_lt) or [`and_le`](Numeric::and_le) makes a range, as in SNS's
/// `["numeric", [">", 0, "<=", 100]]`. Mistakes (NaN, an upper bound after an upper bound, bottom
/// not below top) are reported by [`FilterBuilder::build`].
///
/// ```
/// use switchboard::{Filter, Message, Numeric};
///
/// let f = Filter::builder().numeric("price", Numeric::gt(0).and_le(100)).build().unwrap();
/// assert!(f.matches(&Message::new(()).with_attr("price", 100)));
/// assert!(!f.matches(&Message::new(()).with_attr("price", 0)));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Numeric {
    pub(crate) terms: Vec<(NumOp, f64)>,
}

impl Numeric {
    fn one(op: NumOp, v: impl Into<f64>) -> Numeric {
        Numeric {
            terms: vec![(op, v.into())],
        }
    }
    /// Equal to `v`.
    pub fn eq(v: impl Into<f64>) -> Numeric {
        Numeric::one(NumOp::Eq, v)
    }
    /// Less than `v`.
    pub fn lt(v: impl Into<f64>) -> Numeric {
        Numeric::one(NumOp::Lt, v)
    }
    /// Less than or equal to `v`.
    pub fn le(v: impl Into<f64>) -> Numeric {
        Numeric::one(NumOp::Le, v)
    }
    /// Greater than `v`.
    pub fn gt(v: impl Into<f64>) -> Numeric {
        Numeric::one(NumOp::Gt, v)
    }
    /// Greater than or equal to `v`.
    pub fn ge(v: impl Into<f64>) -> Numeric {
        Numeric::one(NumOp::Ge, v)
    }
    /// Adds an upper bound `< v` (after `gt` or `ge`, this makes a range).
    pub fn and_lt(mut self, v: impl Into<f64>) -> Numeric {
        self.terms.push((NumOp::Lt, v.into()));
        self
    }
    /// Adds an upper bound `<= v` (after `gt` or `ge`, this makes a range).
    pub fn and_le(mut self, v: impl Into<f64>) -> Numeric {
        self.terms.push((NumOp::Le, v.into()));
        self
    }
}

/// A checked numeric condition, with quantized bounds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NumRange {
    pub(crate) terms: Vec<(NumOp, f64)>,
    /// Lower bound (quantized) and whether it is inclusive; `-inf`, inclusive, when there is
    /// none.
    pub(crate) lo: (f64, bool),
    /// Upper bound (quantized) and whether it is inclusive; `+inf`, inclusive, when there is
    /// none.
    pub(crate) hi: (f64, bool),
}

impl NumRange {
    pub(crate) fn contains(&self, x: f64) -> bool {
        let q = quantize(x);
        let lo_ok = if self.lo.1 {
            q >= self.lo.0
        } else {
            q > self.lo.0
        };
        let hi_ok = if self.hi.1 {
            q <= self.hi.0
        } else {
            q < self.hi.0
        };
        lo_ok && hi_ok
    }

    pub(crate) fn is_eq(&self) -> Option<f64> {
        match self.terms.as_slice() {
            [(NumOp::Eq, v)] => Some(quantize(*v)),
            _ => None,
        }
    }

    /// Checks the shape SNS allows: one comparison, or `>`/`>=` then `<`/`<=` with bottom < top.
    pub(crate) fn new(terms: Vec<(NumOp, f64)>) -> Result<NumRange, FilterError> {
        let malformed = |r: String| FilterError::new(FilterErrorKind::MalformedRange, r);
        for (op, v) in &terms {
            if !v.is_finite() {
                return Err(FilterError::new(
                    FilterErrorKind::InvalidNumber,
                    format!("value of {} must be a finite number, not {v}", op.as_str()),
                ));
            }
        }
        let inf = f64::INFINITY;
        let (lo, hi) = match terms.as_slice() {
            [] => {
                return Err(malformed(
                    "a numeric condition needs an operator and a value".into(),
                ))
            }
            [(NumOp::Eq, v)] => ((quantize(*v), true), (quantize(*v), true)),
            // A side without a bound takes in everything that way, infinity included: an
            // attribute of -inf is `< 0` (an exclusive infinite bound left it out; found by
            // review).
            [(NumOp::Lt, v)] => ((-inf, true), (quantize(*v), false)),
            [(NumOp::Le, v)] => ((-inf, true), (quantize(*v), true)),
            [(NumOp::Gt, v)] => ((quantize(*v), false), (inf, true)),
            [(NumOp::Ge, v)] => ((quantize(*v), true), (inf, true)),
            [(lop @ (NumOp::Gt | NumOp::Ge), a), (hop @ (NumOp::Lt | NumOp::Le), b)] => {
                // Both are finite (checked above), so `>=` is the negation of `<`.
                let (qa, qb) = (quantize(*a), quantize(*b));
                if qa >= qb {
                    // Numbers compare at 6 decimal digits: say so when only the rounding
                    // makes the range empty (the plain message stated a falsehood then).
                    return Err(malformed(if a < b {
                        format!(
                            "bottom must be less than top at 6 decimal digits \
                             ({a} and {b} round to {qa} and {qb})"
                        )
                    } else {
                        format!("bottom must be less than top ({a} >= {b})")
                    }));
                }
                (
                    (quantize(*a), *lop == NumOp::Ge),
                    (quantize(*b), *hop == NumOp::Le),
                )
            }
            [(NumOp::Gt | NumOp::Ge, _), (op, _)] => {
                return Err(malformed(format!(
                    "bad numeric range operator: {}",
                    op.as_str()
                )))
            }
            [(op, _), _] => {
                return Err(malformed(format!(
                "too many elements in numeric expression: only > or >= can start a range, not {}",
                op.as_str()
            )))
            }
            _ => {
                return Err(malformed(
                    "too many terms in numeric range expression".into(),
                ))
            }
        };
        Ok(NumRange { terms, lo, hi })
    }
}

/// A parsed CIDR block, host bits cleared.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cidr {
    V4 { net: u32, len: u8, text: String },
    V6 { net: u128, len: u8, text: String },
}

pub(crate) fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

pub(crate) fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Result<Cidr, FilterError> {
        let bad = |r: String| FilterError::new(FilterErrorKind::BadCidr, r);
        let Some((addr, bits)) = text.split_once('/') else {
            return Err(bad(format!("malformed CIDR, one '/' required in {text:?}")));
        };
        // Digits only: `u8::from_str` alone would also take a sign (`/+8`), which no CIDR
        // notation allows (found by fuzzing).
        let len: u8 = bits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| bits.parse().ok())
            .flatten()
            .ok_or_else(|| {
                bad(format!(
                    "malformed CIDR, mask bits must be an integer in {text:?}"
                ))
            })?;
        if let Ok(a) = addr.parse::<Ipv4Addr>() {
            if len > 32 {
                return Err(bad(format!("mask bits must be at most 32 in {text:?}")));
            }
            Ok(Cidr::V4 {
                net: u32::from(a) & mask4(len),
                len,
                text: text.to_owned(),
            })
        } else if let Ok(a) = addr.parse::<Ipv6Addr>() {
            if len > 128 {
                return Err(bad(format!("mask bits must be at most 128 in {text:?}")));
            }
            Ok(Cidr::V6 {
                net: u128::from(a) & mask6(len),
                len,
                text: text.to_owned(),
            })
        } else {
            Err(bad(format!("nonstandard IP address: {addr:?}")))
        }
    }

    pub(crate) fn text(&self) -> &str {
        match self {
            Cidr::V4 { text, .. } | Cidr::V6 { text, .. } => text,
        }
    }

    pub(crate) fn contains(&self, value: &str) -> bool {
        match (self, value.parse::<IpAddr>()) {
            (Cidr::V4 { net, len, .. }, Ok(IpAddr::V4(a))) => u32::from(a) & mask4(*len) == *net,
            (Cidr::V6 { net, len, .. }, Ok(IpAddr::V6(a))) => u128::from(a) & mask6(*len) == *net,
            _ => false,
        }
    }
}

/// One condition in a key's list (the list is an OR).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cond {
    Exact(PolicyValue),
    Prefix(String),
    Suffix(String),
    /// The pattern as written, and lowercased.
    EqualsIgnoreCase(String, String),
    Wildcard(String),
    /// The listed values; `single` when written as one value rather than a list.
    AnythingBut {
        values: Vec<PolicyValue>,
        single: bool,
    },
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    AnythingButWildcard(String),
    Numeric(NumRange),
    Exists(bool),
    Cidr(Cidr),
}

/// An AND of keys (each an OR of conditions), and at most one `$or` group of alternatives.
#[derive(Clone, Debug, PartialEq, Default)]
pub(crate) struct Node {
    pub(crate) keys: Vec<(String, Vec<Cond>)>,
    pub(crate) ors: Vec<Node>,
}

impl Node {
    /// Whether the node holds no condition at all (it matches every message).
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.ors.is_empty()
    }

    fn push(&mut self, key: String, cond: Cond) {
        match self.keys.iter_mut().find(|(k, _)| *k == key) {
            Some((_, conds)) => conds.push(cond),
            None => self.keys.push((key, vec![cond])),
        }
    }

    /// ANDs an `$or` group into this node, distributing over an existing group so a node keeps
    /// one (the JSON form has room for one `$or` key per object).
    fn and_or(&mut self, branches: Vec<Node>) {
        if self.ors.is_empty() {
            self.ors = branches;
        } else {
            for b in &mut self.ors {
                b.and_or(branches.clone());
            }
        }
    }

    fn depth(&self) -> usize {
        self.ors.iter().map(|b| 1 + b.depth()).max().unwrap_or(0)
    }

    /// Sum over the expanded combinations of the product of the value-list lengths (saturating).
    fn complexity(&self) -> usize {
        let own = self
            .keys
            .iter()
            .fold(1usize, |acc, (_, c)| acc.saturating_mul(c.len().max(1)));
        if self.ors.is_empty() {
            own
        } else {
            let sub = self
                .ors
                .iter()
                .fold(0usize, |acc, b| acc.saturating_add(b.complexity()));
            own.saturating_mul(sub)
        }
    }

    /// The largest number of distinct keys in one expanded combination. Only called once the
    /// complexity is within limits, which bounds the expansion.
    fn max_keys<'a>(&'a self, inherited: &mut Vec<&'a str>) -> usize {
        let mark = inherited.len();
        for (k, _) in &self.keys {
            if !inherited.contains(&k.as_str()) {
                inherited.push(k);
            }
        }
        let n = if self.ors.is_empty() {
            inherited.len()
        } else {
            self.ors
                .iter()
                .map(|b| b.max_keys(inherited))
                .max()
                .unwrap_or(0)
        };
        inherited.truncate(mark);
        n
    }

    /// Finds the first key with an empty list, or a key empty node, for the builder's checks.
    fn check_lists(&self) -> Result<(), FilterError> {
        for (k, conds) in &self.keys {
            if conds.is_empty() {
                return Err(FilterError::new(
                    FilterErrorKind::EmptyList,
                    "empty arrays are not allowed",
                )
                .at_key(k));
            }
            for c in conds {
                if let Cond::AnythingBut { values, .. } = c {
                    if values.is_empty() {
                        return Err(FilterError::new(
                            FilterErrorKind::EmptyList,
                            "anything-but needs at least one value",
                        )
                        .at_key(k)
                        .at_op("anything-but"));
                    }
                }
                let number = match c {
                    Cond::Exact(PolicyValue::Number(n)) => Some(*n),
                    Cond::AnythingBut { values, .. } => values.iter().find_map(|v| match v {
                        PolicyValue::Number(n) if !n.is_finite() => Some(*n),
                        _ => None,
                    }),
                    _ => None,
                };
                if let Some(n) = number.filter(|n| !n.is_finite()) {
                    return Err(FilterError::new(
                        FilterErrorKind::InvalidNumber,
                        format!("numbers must be finite, not {n}"),
                    )
                    .at_key(k));
                }
            }
        }
        if !self.ors.is_empty() && self.keys.iter().any(|(k, _)| k == "$or") {
            // One JSON object cannot hold both: the filter could not be written as SNS JSON.
            return Err(FilterError::new(
                FilterErrorKind::WrongValueType,
                "an attribute named $or cannot sit beside a $or group",
            )
            .at_key("$or"));
        }
        if !self.ors.is_empty() && self.ors.len() < 2 {
            return Err(FilterError::new(
                FilterErrorKind::WrongValueType,
                "$or needs at least two branches",
            )
            .at_op("$or"));
        }
        for (i, b) in self.ors.iter().enumerate() {
            // SNS reads a `$or` one of whose objects has an operator's name as a field as an
            // attribute named `$or`: such a branch has no JSON form.
            if let Some((k, _)) = b
                .keys
                .iter()
                .find(|(k, _)| crate::filter::json::OPERATORS.contains(&k.as_str()))
            {
                return Err(FilterError::new(
                    FilterErrorKind::WrongValueType,
                    format!(
                        "inside a $or branch an attribute cannot be named {k}, an operator's name"
                    ),
                )
                .at_key(k)
                .in_branch(i));
            }
            b.check_lists().map_err(|e| e.in_branch(i))?;
        }
        Ok(())
    }
}

/// Limits on a policy's size and complexity. The defaults are SNS's.
///
/// * `max_keys` (5): distinct attribute keys in one combination.
/// * `max_combinations` (150): the sum, over the combinations that `$or` expands into, of the
///   product of the value-list lengths (SNS's "filter policy is too complex").
/// * `max_nesting` (5): how deep `$or` may nest; at most [`FilterLimits::NESTING_CEILING`].
/// * `max_bytes` (256 KiB): the length of the JSON text, and of the policy written back as
///   compact JSON ([`Filter::to_json`]), so that a filter's JSON always reads back (a builder
///   has only the latter).
///
/// ```
/// use switchboard::{Filter, FilterErrorKind, FilterLimits};
///
/// let six = r#"{"a":["1"],"b":["1"],"c":["1"],"d":["1"],"e":["1"],"f":["1"]}"#;
/// let err = Filter::<()>::from_json(six).unwrap_err();
/// assert_eq!(err.kind(), FilterErrorKind::TooManyKeys);
/// let roomy = FilterLimits::default().with_max_keys(10);
/// assert!(Filter::<()>::from_json_with_limits(six, &roomy).is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterLimits {
    max_keys: usize,
    max_combinations: usize,
    max_nesting: usize,
    max_bytes: usize,
}

impl Default for FilterLimits {
    fn default() -> Self {
        FilterLimits {
            max_keys: 5,
            max_combinations: 150,
            max_nesting: 5,
            max_bytes: 256 * 1024,
        }
    }
}

impl FilterLimits {
    /// The deepest `$or` nesting any limits allow (32). The walks that check, compile and
    /// match a policy go down one call per level, so a much deeper tree could overflow the
    /// stack (found by review: a builder nested 1,000 deep under a raised limit aborted the
    /// process). And the JSON parser's own recursion limit stops `$or` at 62 levels: within
    /// the ceiling, a filter's [`to_json`](crate::Filter::to_json) always reads back.
    pub const NESTING_CEILING: usize = 32;

    /// SNS's limits (the same as `default()`).
    pub fn sns() -> FilterLimits {
        FilterLimits::default()
    }
    /// Sets the largest number of distinct keys in one combination.
    pub fn with_max_keys(mut self, n: usize) -> FilterLimits {
        self.max_keys = n;
        self
    }
    /// Sets the largest complexity (combinations after expanding `$or` and value lists).
    pub fn with_max_combinations(mut self, n: usize) -> FilterLimits {
        self.max_combinations = n;
        self
    }
    /// Sets how deep `$or` may nest; more than [`NESTING_CEILING`](Self::NESTING_CEILING) is
    /// taken as the ceiling.
    ///
    /// ```
    /// use switchboard::FilterLimits;
    ///
    /// assert_eq!(FilterLimits::default().with_max_nesting(8).max_nesting(), 8);
    /// let most = FilterLimits::default().with_max_nesting(usize::MAX);
    /// assert_eq!(most.max_nesting(), FilterLimits::NESTING_CEILING);
    /// ```
    pub fn with_max_nesting(mut self, n: usize) -> FilterLimits {
        self.max_nesting = n.min(Self::NESTING_CEILING);
        self
    }
    /// Sets the longest policy text `from_json` accepts, in bytes.
    pub fn with_max_bytes(mut self, n: usize) -> FilterLimits {
        self.max_bytes = n;
        self
    }
    /// The largest number of distinct keys in one combination.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }
    /// The largest complexity.
    pub fn max_combinations(&self) -> usize {
        self.max_combinations
    }
    /// How deep `$or` may nest.
    pub fn max_nesting(&self) -> usize {
        self.max_nesting
    }
    /// The longest policy text, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub(crate) fn check(&self, root: &Node) -> Result<(), FilterError> {
        let depth = root.depth();
        if depth > self.max_nesting {
            return Err(FilterError::new(
                FilterErrorKind::TooDeep,
                format!(
                    "$or nests {depth} deep, more than the limit of {}",
                    self.max_nesting
                ),
            )
            .at_op("$or"));
        }
        let c = root.complexity();
        if c > self.max_combinations {
            return Err(FilterError::new(
                FilterErrorKind::TooComplex,
                format!(
                    "filter policy is too complex: {c} combinations, more than the limit of {}",
                    self.max_combinations
                ),
            ));
        }
        let keys = root.max_keys(&mut Vec::new());
        if keys > self.max_keys {
            return Err(FilterError::new(
                FilterErrorKind::TooManyKeys,
                format!(
                    "filter policy can not have more than {} keys (it has {keys})",
                    self.max_keys
                ),
            ));
        }
        Ok(())
    }
}

/// The compiled policy a filter shares between its clones.
pub(crate) struct Policy {
    pub(crate) root: Node,
    pub(crate) plan: Plan,
}

type Predicate<T> = dyn Fn(&Message<T>) -> bool + Send + Sync;

/// A message filter: an SNS-style policy on attributes, a predicate over the whole message, or both.
///
/// Build one with [`Filter::builder`], [`Filter::from_json`] (the Amazon SNS filter-policy JSON),
/// or [`Filter::predicate`]. Clones share the policy.
///
/// The matching rules follow SNS (each is shown with a doctest in `src/filter/mod.rs`):
///
/// * keys are ANDed, the conditions under one key are ORed, `$or` holds alternatives;
/// * exact string matching is case-sensitive (`equals-ignore-case` is not);
/// * values are typed: numeric conditions match only `Number` attributes, string operators only
///   `String` attributes and `StringList` elements, `true`/`false` only `Bool`;
/// * numbers compare at 6 decimal digits, and `-0` equals `0`; NaN is rejected in policies;
/// * a missing key fails every condition except `exists: false`, which in turn needs the
///   message to have at least one attribute (as the SNS documentation says);
/// * a `StringList` matches a condition if any element does, `anything-but` included (so
///   `["rugby", "baseball"]` matches `anything-but ["rugby", "tennis"]`, the SNS guide's example);
/// * the empty policy `{}` matches every message.
///
/// ```
/// use switchboard::{Filter, Message};
///
/// let f = Filter::<&str>::from_json(r#"{"store": ["example_corp"], "price": [{"numeric": [">=", 100]}]}"#)?;
/// let big = Message::new("order").with_attr("store", "example_corp").with_attr("price", 210.75);
/// let small = Message::new("order").with_attr("store", "example_corp").with_attr("price", 20);
/// assert!(f.matches(&big));
/// assert!(!f.matches(&small));
/// # Ok::<(), switchboard::FilterError>(())
/// ```
pub struct Filter<T> {
    pub(crate) policy: Arc<Policy>,
    pub(crate) predicates: Vec<Arc<Predicate<T>>>,
}

impl<T> Clone for Filter<T> {
    fn clone(&self) -> Self {
        Filter {
            policy: Arc::clone(&self.policy),
            predicates: self.predicates.clone(),
        }
    }
}

impl<T> fmt::Debug for Filter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Filter");
        d.field(
            "policy",
            &format_args!("{}", crate::filter::json::to_value(&self.policy.root)),
        );
        if !self.predicates.is_empty() {
            d.field("predicate", &format_args!(".."));
        }
        d.finish()
    }
}

impl Filter<()> {
    /// Starts a policy built in Rust; see [`FilterBuilder`]. (It is defined on `Filter<()>` only
    /// so that `Filter::builder()` needs no type annotation; [`FilterBuilder::build`] picks the
    /// message type.)
    ///
    /// ```
    /// use switchboard::{Filter, Message};
    ///
    /// let f = Filter::builder().eq("store", "example_corp").prefix("sku", "ab-").build::<()>()?;
    /// assert!(f.matches(&Message::new(()).with_attr("store", "example_corp").with_attr("sku", "ab-1")));
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    pub fn builder() -> FilterBuilder {
        FilterBuilder::default()
    }
}

impl<T> Filter<T> {
    pub(crate) fn from_node(root: Node, limits: &FilterLimits) -> Result<Filter<T>, FilterError> {
        root.check_lists()?;
        limits.check(&root)?;
        // The size limit holds for the policy's own compact JSON too, whichever way it was made,
        // so that `to_json` (and a serde round trip) always reads back: a parsed policy can be
        // longer written back than it was written (`1e15` is written `1000000000000000`).
        let len = crate::filter::json::compact_len(&root);
        if len > limits.max_bytes {
            return Err(FilterError::new(
                FilterErrorKind::TooLarge,
                format!(
                    "policy is {len} bytes as compact JSON, more than the limit of {}",
                    limits.max_bytes
                ),
            ));
        }
        let plan = plan::plan(&root);
        Ok(Filter {
            policy: Arc::new(Policy { root, plan }),
            predicates: Vec::new(),
        })
    }

    /// A filter that matches every message (the empty policy `{}`).
    ///
    /// ```
    /// use switchboard::{Filter, Message};
    ///
    /// assert!(Filter::<()>::all().matches(&Message::new(())));
    /// ```
    pub fn all() -> Filter<T> {
        let root = Node::default();
        let plan = plan::plan(&root);
        Filter {
            policy: Arc::new(Policy { root, plan }),
            predicates: Vec::new(),
        }
    }

    /// A filter that is a predicate over the whole message: the escape hatch for what a policy
    /// cannot say. An index checks predicate-only filters one by one.
    ///
    /// The predicate (and what it captured) lives as long as the filter's copies: a topic's
    /// index keeps the copy of a subscription that went away, or whose filter changed, until it
    /// next compacts (after at most a quarter of its entries, or 32, have gone that way).
    ///
    /// ```
    /// use switchboard::{Filter, Message};
    ///
    /// let f = Filter::predicate(|m: &Message<u32>| *m.payload() > 10);
    /// assert!(f.matches(&Message::new(11)));
    /// assert!(!f.matches(&Message::new(9)));
    /// ```
    pub fn predicate(f: impl Fn(&Message<T>) -> bool + Send + Sync + 'static) -> Filter<T> {
        Filter::all().and_predicate(f)
    }

    /// ANDs a predicate into this filter: a message must match the policy and the predicate.
    /// A filter holds one predicate; a second call ANDs the two.
    ///
    /// ```
    /// use switchboard::{Filter, Message};
    ///
    /// let f = Filter::builder().eq("kind", "order").build::<u32>()?.and_predicate(|m| *m.payload() > 10);
    /// assert!(f.matches(&Message::new(11).with_attr("kind", "order")));
    /// assert!(!f.matches(&Message::new(11).with_attr("kind", "refund")));
    /// assert!(!f.matches(&Message::new(9).with_attr("kind", "order")));
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    pub fn and_predicate(
        mut self,
        f: impl Fn(&Message<T>) -> bool + Send + Sync + 'static,
    ) -> Filter<T> {
        self.predicates.push(Arc::new(f));
        self
    }

    /// Whether the filter has a predicate (a predicate filter cannot be written as JSON).
    pub fn has_predicate(&self) -> bool {
        !self.predicates.is_empty()
    }

    /// Whether the message matches: the policy holds for its attributes, and the predicate (if
    /// any) returns true.
    ///
    /// ```
    /// use switchboard::{Filter, Message};
    ///
    /// let f = Filter::<()>::from_json(r#"{"event": ["order_placed", "order_cancelled"]}"#)?;
    /// assert!(f.matches(&Message::new(()).with_attr("event", "order_cancelled")));
    /// assert!(!f.matches(&Message::new(()).with_attr("event", "order_shipped")));
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    pub fn matches(&self, msg: &Message<T>) -> bool {
        crate::filter::eval::node_matches(&self.policy.root, msg.attributes())
            && self.predicates.iter().all(|p| p(msg))
    }
}

/// Builds a [`Filter`] in Rust; each call means what the same SNS JSON means.
///
/// Calls on different keys are ANDed. Calls on the same key add alternatives to that key's list,
/// which is an OR, exactly as in the JSON (`{"k": ["a", {"prefix": "b"}]}` is
/// `.eq("k", "a").prefix("k", "b")`). [`or`](FilterBuilder::or) adds a `$or` group. Mistakes are
/// reported by [`build`](FilterBuilder::build).
///
/// ```
/// use switchboard::{Filter, Message, Numeric};
///
/// let built = Filter::builder()
///     .eq("store", "example_corp")
///     .anything_but("event", ["order_cancelled"])
///     .any_of("customer_interests", ["rugby", "football", "baseball"])
///     .numeric("price_usd", Numeric::ge(100))
///     .build()?;
/// let json = Filter::<()>::from_json(r#"{
///     "store": ["example_corp"],
///     "event": [{"anything-but": ["order_cancelled"]}],
///     "customer_interests": ["rugby", "football", "baseball"],
///     "price_usd": [{"numeric": [">=", 100]}]
/// }"#)?;
/// assert_eq!(built.to_json(), json.to_json());
/// let m = Message::new(())
///     .with_attr("store", "example_corp")
///     .with_attr("event", "order_placed")
///     .with_attr("customer_interests", ["soccer", "rugby", "hockey"])
///     .with_attr("price_usd", 210.75);
/// assert!(built.matches(&m) && json.matches(&m));
/// # Ok::<(), switchboard::FilterError>(())
/// ```
///
/// It does nothing until it is finished, so the compiler warns about one left unfinished:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// switchboard::Filter::builder().eq("region", "eu"); // error: unused `FilterBuilder`
/// ```
#[must_use = "a FilterBuilder makes no filter until build()"]
#[derive(Clone, Debug, Default)]
pub struct FilterBuilder {
    node: Node,
    pending: Option<FilterError>,
    limits: Option<FilterLimits>,
}

impl FilterBuilder {
    /// An empty builder (the same as [`Filter::builder`]).
    ///
    /// ```
    /// use switchboard::{Filter, FilterBuilder, Message};
    ///
    /// let f: Filter<()> = FilterBuilder::new().exists("k", true).build()?;
    /// assert!(f.matches(&Message::new(()).with_attr("k", 1)));
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    pub fn new() -> FilterBuilder {
        FilterBuilder::default()
    }

    fn cond(mut self, key: impl Into<String>, cond: Result<Cond, FilterError>) -> Self {
        let key = key.into();
        match cond {
            Ok(c) => self.node.push(key, c),
            Err(e) => {
                if self.pending.is_none() {
                    self.pending = Some(e.at_key(&key));
                }
            }
        }
        self
    }

    /// The attribute equals `value` (SNS `"key": [value]`). Strings compare case-sensitively.
    pub fn eq(self, key: impl Into<String>, value: impl Into<PolicyValue>) -> Self {
        self.cond(key, Ok(Cond::Exact(value.into())))
    }

    /// The attribute equals one of `values` (SNS `"key": [v1, v2, ...]`). An empty list is an error.
    pub fn any_of<V: Into<PolicyValue>>(
        self,
        key: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let key = key.into();
        let values: Vec<PolicyValue> = values.into_iter().map(Into::into).collect();
        if values.is_empty() {
            return self.cond(
                key,
                Err(FilterError::new(
                    FilterErrorKind::EmptyList,
                    "empty arrays are not allowed",
                )),
            );
        }
        values
            .into_iter()
            .fold(self, |b, v| b.cond(key.clone(), Ok(Cond::Exact(v))))
    }

    /// The string attribute starts with `prefix` (SNS `{"prefix": ..}`).
    pub fn prefix(self, key: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.cond(key, Ok(Cond::Prefix(prefix.into())))
    }

    /// The string attribute ends with `suffix` (SNS `{"suffix": ..}`).
    pub fn suffix(self, key: impl Into<String>, suffix: impl Into<String>) -> Self {
        self.cond(key, Ok(Cond::Suffix(suffix.into())))
    }

    /// The string attribute equals `value` ignoring case (SNS `{"equals-ignore-case": ..}`),
    /// letter by letter: "ΑΣ", "ασ" and "ας" are all alike.
    pub fn equals_ignore_case(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let v = value.into();
        let lower = crate::filter::eval::fold(&v);
        self.cond(key, Ok(Cond::EqualsIgnoreCase(v, lower)))
    }

    /// The string attribute matches `pattern`, where `*` stands for any run of characters
    /// (SNS `{"wildcard": ..}`).
    pub fn wildcard(self, key: impl Into<String>, pattern: impl Into<String>) -> Self {
        self.cond(key, Ok(Cond::Wildcard(pattern.into())))
    }

    /// The attribute is present and is none of `values` (SNS `{"anything-but": [..]}`). The
    /// values are strings or numbers, as in SNS: a `Bool` or `Null` value is an error of
    /// [`build`](FilterBuilder::build).
    pub fn anything_but<V: Into<PolicyValue>>(
        self,
        key: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let values: Vec<PolicyValue> = values.into_iter().map(Into::into).collect();
        // As SNS's JSON: the values to exclude are strings or numbers, so that the filter's
        // `to_json` always reads back.
        let cond = if values
            .iter()
            .any(|v| matches!(v, PolicyValue::Bool(_) | PolicyValue::Null))
        {
            Err(FilterError::new(
                FilterErrorKind::WrongValueType,
                "anything-but values must be strings or numbers",
            )
            .at_op("anything-but"))
        } else {
            Ok(Cond::AnythingBut {
                values,
                single: false,
            })
        };
        self.cond(key, cond)
    }

    /// The string attribute is present and does not start with `prefix`
    /// (SNS `{"anything-but": {"prefix": ..}}`).
    pub fn anything_but_prefix(self, key: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.cond(key, Ok(Cond::AnythingButPrefix(prefix.into())))
    }

    /// The string attribute is present and does not end with `suffix`
    /// (SNS `{"anything-but": {"suffix": ..}}`).
    pub fn anything_but_suffix(self, key: impl Into<String>, suffix: impl Into<String>) -> Self {
        self.cond(key, Ok(Cond::AnythingButSuffix(suffix.into())))
    }

    /// The string attribute is present and does not match the wildcard `pattern`
    /// (SNS `{"anything-but": {"wildcard": ..}}`).
    pub fn anything_but_wildcard(self, key: impl Into<String>, pattern: impl Into<String>) -> Self {
        self.cond(key, Ok(Cond::AnythingButWildcard(pattern.into())))
    }

    /// The number attribute satisfies `numeric` (SNS `{"numeric": [..]}`).
    pub fn numeric(self, key: impl Into<String>, numeric: Numeric) -> Self {
        let c = NumRange::new(numeric.terms)
            .map(Cond::Numeric)
            .map_err(|e| e.at_op("numeric"));
        self.cond(key, c)
    }

    /// The string attribute is an IP address (v4 or v6) inside `block` (SNS `{"cidr": ..}`).
    pub fn cidr(self, key: impl Into<String>, block: &str) -> Self {
        let c = Cidr::parse(block)
            .map(Cond::Cidr)
            .map_err(|e| e.at_op("cidr"));
        self.cond(key, c)
    }

    /// The attribute is present with a non-empty value (`true`), or not (`false`) (SNS
    /// `{"exists": ..}`; an empty string or list counts as absent).
    pub fn exists(self, key: impl Into<String>, exists: bool) -> Self {
        self.cond(key, Ok(Cond::Exists(exists)))
    }

    /// ANDs a `$or` group: the message must match at least one of `branches` (each a builder of
    /// its own). A group needs two branches or more.
    ///
    /// ```
    /// use switchboard::{Filter, Message};
    ///
    /// let f = Filter::builder()
    ///     .eq("source", "aws.cloudwatch")
    ///     .or([
    ///         Filter::builder().eq("metricName", "CPUUtilization"),
    ///         Filter::builder().eq("namespace", "AWS/EC2"),
    ///     ])
    ///     .build()?;
    /// let m = Message::new(()).with_attr("source", "aws.cloudwatch").with_attr("namespace", "AWS/EC2");
    /// assert!(f.matches(&m));
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    pub fn or(mut self, branches: impl IntoIterator<Item = FilterBuilder>) -> Self {
        let mut nodes = Vec::new();
        for (i, b) in branches.into_iter().enumerate() {
            if let (None, Some(e)) = (&self.pending, b.pending) {
                self.pending = Some(e.in_branch(i));
            }
            if self.pending.is_none() && b.node.is_empty() {
                self.pending = Some(crate::filter::json::empty_branch().in_branch(i));
            }
            nodes.push(b.node);
        }
        if nodes.len() < 2 {
            if self.pending.is_none() {
                self.pending = Some(
                    FilterError::new(
                        FilterErrorKind::WrongValueType,
                        "$or needs at least two branches",
                    )
                    .at_op("$or"),
                );
            }
            return self;
        }
        let limits = self.limits.clone().unwrap_or_default();
        // Refuse to nest past the limit as we go, as the JSON parser does: a builder nested in a
        // loop would otherwise grow a tree deep enough to overflow the stack in `build`. A
        // second group goes under every branch of the first, so their depths add up.
        let depth = self.node.depth() + 1 + nodes.iter().map(Node::depth).max().unwrap_or(0);
        if depth > limits.max_nesting {
            if self.pending.is_none() {
                self.pending = Some(
                    FilterError::new(
                        FilterErrorKind::TooDeep,
                        format!(
                            "$or nests {depth} deep, more than the limit of {}",
                            limits.max_nesting
                        ),
                    )
                    .at_op("$or"),
                );
            }
            return self;
        }
        // A second group is distributed over the first; refuse before that multiplies the tree
        // past the limit (the check in `build` would refuse it anyway).
        if !self.node.ors.is_empty() {
            let limit = limits.max_combinations;
            let group = nodes
                .iter()
                .fold(0usize, |acc, b| acc.saturating_add(b.complexity()));
            if self.node.complexity().saturating_mul(group) > limit {
                if self.pending.is_none() {
                    self.pending = Some(FilterError::new(
                        FilterErrorKind::TooComplex,
                        format!("filter policy is too complex: more than {limit} combinations"),
                    ));
                }
                return self;
            }
        }
        self.node.and_or(nodes);
        self
    }

    /// Uses `limits` instead of SNS's when building. Call it before [`or`](FilterBuilder::or),
    /// which checks as it goes how deep `$or` nests and how far several groups expand.
    pub fn limits(mut self, limits: FilterLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Checks the policy and makes the filter.
    ///
    /// # Errors
    ///
    /// The first mistake made while building (bad CIDR, malformed range, NaN, empty list), or a
    /// limit exceeded, the size limit included: it applies to the policy written as compact
    /// JSON ([`Filter::to_json`]), so that what the builder makes `from_json` reads back.
    pub fn build<T>(self) -> Result<Filter<T>, FilterError> {
        if let Some(e) = self.pending {
            return Err(e);
        }
        Filter::from_node(self.node, &self.limits.unwrap_or_default())
    }
}
