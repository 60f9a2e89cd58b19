//! SNS filter-policy JSON: parsing into the policy tree, and writing it back.

use serde_json::{Map, Number, Value};

use crate::filter::error::{FilterError, FilterErrorKind};
use crate::filter::policy::{Cidr, Cond, Node, NumOp, NumRange, PolicyValue};
use crate::filter::{Filter, FilterLimits};

fn err(kind: FilterErrorKind, reason: impl Into<String>) -> FilterError {
    FilterError::new(kind, reason)
}

pub(crate) fn parse_str<T>(text: &str, limits: &FilterLimits) -> Result<Filter<T>, FilterError> {
    if text.len() > limits.max_bytes() {
        return Err(err(
            FilterErrorKind::TooLarge,
            format!(
                "policy is {} bytes, more than the limit of {}",
                text.len(),
                limits.max_bytes()
            ),
        ));
    }
    let value = match serde_json::from_str::<Strict>(text) {
        Ok(Strict(v)) => v,
        // Our visitor's errors are a repeated key and nesting past `MAX_DEPTH` (the parser's
        // own limit comes first); the parser's own are syntax errors.
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            let kind = if e.to_string().starts_with("nested more than") {
                FilterErrorKind::TooDeep
            } else {
                FilterErrorKind::DuplicateKey
            };
            return Err(err(kind, e.to_string()));
        }
        // Valid JSON nested deeper than serde_json's own limit (a `$or` some 63 levels deep) is
        // too deep, not "not JSON".
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => {
            return Err(err(
                FilterErrorKind::TooDeep,
                format!("policy nests more than {MAX_DEPTH} levels deep: {e}"),
            ))
        }
        Err(e) => {
            return Err(err(
                FilterErrorKind::NotJson,
                format!("policy is not JSON: {e}"),
            ))
        }
    };
    parse_value(&value, limits)
}

/// A JSON value read with a check that no object repeats a key. Parsed into a plain `Value`,
/// a repeated key keeps only its last value: a second `$or` group would silently replace the
/// first. SNS does not document what a repeated key means, so it is refused.
///
/// It also stops at `MAX_DEPTH` levels of nesting: serde_json's parser does too, but through
/// `Deserialize` another format's deserializer (MessagePack, say) recurses as deep as its input
/// goes, and a hostile blob nested thousands deep overflowed the stack (found by review).
struct Strict(Value);

/// The deepest nesting of arrays and objects read, as serde_json's own limit: a valid policy
/// nests far less (`FilterLimits::NESTING_CEILING` levels of `$or`, two each).
const MAX_DEPTH: usize = 128;

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::DeserializeSeed::deserialize(StrictSeed(0), d).map(Strict)
    }
}

/// Reads a value `.0` levels deep.
struct StrictSeed(usize);

impl<'de> serde::de::DeserializeSeed<'de> for StrictSeed {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0 > MAX_DEPTH {
            return Err(serde::de::Error::custom(format_args!(
                "nested more than {MAX_DEPTH} levels deep"
            )));
        }
        d.deserialize_any(StrictVisitor(self.0))
    }
}

struct StrictVisitor(usize);

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, but another format read through `Deserialize` does:
        // refuse them as the builder does, rather than reading them as `null`.
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format_args!("numbers must be finite, not {v}")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        // A level too: a format with explicit options could nest them without end.
        serde::de::DeserializeSeed::deserialize(StrictSeed(self.0 + 1), d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictSeed(self.0 + 1))? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key {k:?}"
                )));
            }
            let v = map.next_value_seed(StrictSeed(self.0 + 1))?;
            m.insert(k, v);
        }
        // With serde_json's `arbitrary_precision` feature (which another crate in the build
        // can turn on), a number arrives as a map under this token; serde_json's own `Value`
        // turns it back into a number.
        if m.len() == 1 && m.contains_key("$serde_json::private::Number") {
            return serde_json::from_value(Value::Object(m)).map_err(serde::de::Error::custom);
        }
        Ok(Value::Object(m))
    }
}

pub(crate) fn parse_value<T>(
    value: &Value,
    limits: &FilterLimits,
) -> Result<Filter<T>, FilterError> {
    let Value::Object(map) = value else {
        return Err(err(
            FilterErrorKind::NotAnObject,
            "policy must be a JSON object",
        ));
    };
    let root = parse_object(map, 0, limits)?;
    Filter::from_node(root, limits)
}

/// The match operators: SNS's reserved keywords.
pub(crate) const OPERATORS: [&str; 8] = [
    "prefix",
    "suffix",
    "wildcard",
    "equals-ignore-case",
    "cidr",
    "exists",
    "numeric",
    "anything-but",
];

/// `$or` is an operator only when it holds an array of two or more objects none of which has a
/// reserved keyword (an operator) as a field name; otherwise it is an attribute name like any
/// other, as SNS documents: `{"$or": [{"prefix": "a"}, {"suffix": "z"}]}` filters an attribute
/// named `$or`.
fn or_branches<'a>(key: &str, v: &'a Value) -> Option<Vec<&'a Map<String, Value>>> {
    match v {
        Value::Array(a) if key == "$or" && a.len() >= 2 => {
            let branches: Vec<_> = a.iter().map(Value::as_object).collect::<Option<_>>()?;
            let reserved = |m: &&Map<String, Value>| m.keys().any(|k| OPERATORS.contains(&&**k));
            (!branches.iter().any(reserved)).then_some(branches)
        }
        _ => None,
    }
}

/// The error for a `$or` branch with no condition: it would make the group match every
/// message, which a typo should not silently do (AWS's own matcher refuses empty objects too).
pub(crate) fn empty_branch() -> FilterError {
    err(
        FilterErrorKind::EmptyBranch,
        "a $or branch must hold at least one condition",
    )
    .at_op("$or")
}

fn parse_object(
    map: &Map<String, Value>,
    depth: usize,
    limits: &FilterLimits,
) -> Result<Node, FilterError> {
    let mut node = Node::default();
    for (k, v) in map {
        if let Some(branches) = or_branches(k, v) {
            if depth + 1 > limits.max_nesting() {
                return Err(err(
                    FilterErrorKind::TooDeep,
                    format!(
                        "$or nests deeper than the limit of {}",
                        limits.max_nesting()
                    ),
                )
                .at_op("$or"));
            }
            for (i, m) in branches.into_iter().enumerate() {
                let branch = parse_object(m, depth + 1, limits).map_err(|e| e.in_branch(i))?;
                if branch.is_empty() {
                    return Err(empty_branch().in_branch(i));
                }
                node.ors.push(branch);
            }
            continue;
        }
        let conds = parse_key(v).map_err(|e| e.at_key(k))?;
        node.keys.push((k.clone(), conds));
    }
    Ok(node)
}

fn parse_key(v: &Value) -> Result<Vec<Cond>, FilterError> {
    let items = match v {
        Value::Array(a) => a,
        Value::Object(_) => {
            return Err(err(
                FilterErrorKind::NestedPolicy,
                "nested filter policies apply to message bodies, not to message attributes",
            ))
        }
        _ => {
            return Err(err(
                FilterErrorKind::WrongValueType,
                "a key's value must be an array",
            ))
        }
    };
    if items.is_empty() {
        return Err(err(
            FilterErrorKind::EmptyList,
            "empty arrays are not allowed",
        ));
    }
    items.iter().map(parse_item).collect()
}

fn scalar(v: &Value) -> Option<PolicyValue> {
    Some(match v {
        Value::String(s) => PolicyValue::String(s.clone()),
        Value::Number(n) => PolicyValue::Number(n.as_f64()?),
        Value::Bool(b) => PolicyValue::Bool(*b),
        Value::Null => PolicyValue::Null,
        _ => return None,
    })
}

fn string_arg(op: &str, v: &Value) -> Result<String, FilterError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(err(
            FilterErrorKind::WrongValueType,
            format!("{op} match pattern must be a string"),
        )
        .at_op(op)),
    }
}

fn parse_item(v: &Value) -> Result<Cond, FilterError> {
    let Value::Object(m) = v else {
        if matches!(v, Value::Number(n) if n.as_f64().is_none()) {
            // Past f64's range (read as text under serde_json's `arbitrary_precision`).
            return Err(err(FilterErrorKind::InvalidNumber, "number out of range"));
        }
        return scalar(v).map(Cond::Exact).ok_or_else(|| {
            err(
                FilterErrorKind::WrongValueType,
                "match value must be a string, number, true, false, or null",
            )
        });
    };
    let mut it = m.iter();
    let (op, arg) = match (it.next(), it.next()) {
        (Some(pair), None) => pair,
        (None, _) => {
            return Err(err(
                FilterErrorKind::UnknownOperator,
                "empty match expression",
            ))
        }
        (Some(_), Some(_)) => {
            let ops: Vec<&str> = m.keys().map(String::as_str).collect();
            return Err(err(
                FilterErrorKind::MultipleOperators,
                format!("only one operator allowed in a match expression, found {ops:?}"),
            ));
        }
    };
    let op = op.as_str();
    let c = match op {
        "prefix" => Cond::Prefix(string_arg(op, arg)?),
        "suffix" => Cond::Suffix(string_arg(op, arg)?),
        "wildcard" => Cond::Wildcard(string_arg(op, arg)?),
        "equals-ignore-case" => {
            let s = string_arg(op, arg)?;
            let lower = crate::filter::eval::fold(&s);
            Cond::EqualsIgnoreCase(s, lower)
        }
        "cidr" => {
            let s = string_arg(op, arg)?;
            Cond::Cidr(Cidr::parse(&s).map_err(|e| e.at_op(op))?)
        }
        "exists" => match arg {
            Value::Bool(b) => Cond::Exists(*b),
            _ => {
                return Err(err(
                    FilterErrorKind::WrongValueType,
                    "exists match pattern must be either true or false",
                )
                .at_op(op))
            }
        },
        "numeric" => Cond::Numeric(parse_numeric(arg).map_err(|e| e.at_op(op))?),
        "anything-but" => parse_anything_but(arg).map_err(|e| e.at_op(op))?,
        other => {
            return Err(err(
                FilterErrorKind::UnknownOperator,
                format!("unrecognized match type {}", other.escape_debug()),
            )
            .at_op(other))
        }
    };
    Ok(c)
}

fn parse_anything_but(arg: &Value) -> Result<Cond, FilterError> {
    let list_item = |v: &Value| match v {
        Value::String(s) => Ok(PolicyValue::String(s.clone())),
        Value::Number(n) => n
            .as_f64()
            .map(PolicyValue::Number)
            .ok_or_else(|| err(FilterErrorKind::InvalidNumber, "number out of range")),
        _ => Err(err(
            FilterErrorKind::WrongValueType,
            "anything-but values must be strings or numbers",
        )),
    };
    match arg {
        Value::Array(a) => {
            if a.is_empty() {
                return Err(err(
                    FilterErrorKind::EmptyList,
                    "empty arrays are not allowed",
                ));
            }
            let values = a.iter().map(list_item).collect::<Result<_, _>>()?;
            Ok(Cond::AnythingBut {
                values,
                single: false,
            })
        }
        Value::String(_) | Value::Number(_) => Ok(Cond::AnythingBut {
            values: vec![list_item(arg)?],
            single: true,
        }),
        Value::Object(m) => {
            let mut it = m.iter();
            let (op, v) = match (it.next(), it.next()) {
                (Some(pair), None) => pair,
                _ => {
                    return Err(err(
                        FilterErrorKind::MultipleOperators,
                        "anything-but takes exactly one nested operator",
                    ))
                }
            };
            match op.as_str() {
                "prefix" => Ok(Cond::AnythingButPrefix(string_arg("prefix", v)?)),
                "suffix" => Ok(Cond::AnythingButSuffix(string_arg("suffix", v)?)),
                "wildcard" => Ok(Cond::AnythingButWildcard(string_arg("wildcard", v)?)),
                other => Err(err(
                    FilterErrorKind::UnknownOperator,
                    format!("unsupported anything-but pattern: {}", other.escape_debug()),
                )),
            }
        }
        _ => Err(err(
            FilterErrorKind::WrongValueType,
            "anything-but takes a string, a number, an array of them, or an operator object",
        )),
    }
}

fn parse_numeric(arg: &Value) -> Result<NumRange, FilterError> {
    let Value::Array(a) = arg else {
        return Err(err(
            FilterErrorKind::MalformedRange,
            "numeric takes an array like [\">\", 0, \"<=\", 100]",
        ));
    };
    let op_at = |i: usize, first: bool| -> Result<NumOp, FilterError> {
        match a.get(i) {
            None => Err(err(
                FilterErrorKind::MalformedRange,
                "invalid member in numeric match: ]",
            )),
            Some(Value::String(s)) => NumOp::parse(s).ok_or_else(|| {
                let what = if first {
                    "unrecognized numeric range operator"
                } else {
                    "bad numeric range operator"
                };
                err(
                    FilterErrorKind::MalformedRange,
                    format!("{what}: {}", s.escape_debug()),
                )
            }),
            Some(other) => {
                let what = if first {
                    "invalid member in numeric match"
                } else {
                    "bad value in numeric range"
                };
                Err(err(
                    FilterErrorKind::MalformedRange,
                    format!("{what}: {other}"),
                ))
            }
        }
    };
    let value_at = |i: usize, op: NumOp| -> Result<f64, FilterError> {
        let name = if op == NumOp::Eq {
            "equals"
        } else {
            op.as_str()
        };
        match a.get(i) {
            Some(Value::Number(n)) => n.as_f64().ok_or_else(|| {
                err(
                    FilterErrorKind::InvalidNumber,
                    format!("value of {name} is out of range"),
                )
            }),
            _ => Err(err(
                FilterErrorKind::WrongValueType,
                format!("value of {name} must be numeric"),
            )),
        }
    };
    let first = op_at(0, true)?;
    let v1 = value_at(1, first)?;
    let mut terms = vec![(first, v1)];
    if a.len() > 2 {
        if !matches!(first, NumOp::Gt | NumOp::Ge) {
            return Err(err(
                FilterErrorKind::MalformedRange,
                "too many elements in numeric expression",
            ));
        }
        let second = op_at(2, false)?;
        if !matches!(second, NumOp::Lt | NumOp::Le) {
            return Err(err(
                FilterErrorKind::MalformedRange,
                format!("bad numeric range operator: {}", second.as_str()),
            ));
        }
        let v2 = value_at(3, second)?;
        if a.len() > 4 {
            return Err(err(
                FilterErrorKind::MalformedRange,
                "too many terms in numeric range expression",
            ));
        }
        terms.push((second, v2));
    }
    NumRange::new(terms)
}

fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::Number(Number::from(x as i64))
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

fn scalar_to_value(v: &PolicyValue) -> Value {
    match v {
        PolicyValue::String(s) => Value::String(s.clone()),
        PolicyValue::Number(n) => num(*n),
        PolicyValue::Bool(b) => Value::Bool(*b),
        PolicyValue::Null => Value::Null,
    }
}

fn op1(op: &str, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(op.to_owned(), v);
    Value::Object(m)
}

fn cond_to_value(c: &Cond) -> Value {
    match c {
        Cond::Exact(v) => scalar_to_value(v),
        Cond::Prefix(s) => op1("prefix", Value::String(s.clone())),
        Cond::Suffix(s) => op1("suffix", Value::String(s.clone())),
        Cond::Wildcard(s) => op1("wildcard", Value::String(s.clone())),
        Cond::EqualsIgnoreCase(s, _) => op1("equals-ignore-case", Value::String(s.clone())),
        Cond::AnythingBut { values, single } => {
            let v = match (single, values.as_slice()) {
                (true, [one]) => scalar_to_value(one),
                _ => Value::Array(values.iter().map(scalar_to_value).collect()),
            };
            op1("anything-but", v)
        }
        Cond::AnythingButPrefix(s) => op1("anything-but", op1("prefix", Value::String(s.clone()))),
        Cond::AnythingButSuffix(s) => op1("anything-but", op1("suffix", Value::String(s.clone()))),
        Cond::AnythingButWildcard(s) => {
            op1("anything-but", op1("wildcard", Value::String(s.clone())))
        }
        Cond::Numeric(r) => {
            let mut a = Vec::new();
            for (op, v) in &r.terms {
                a.push(Value::String(op.as_str().to_owned()));
                a.push(num(*v));
            }
            op1("numeric", Value::Array(a))
        }
        Cond::Exists(b) => op1("exists", Value::Bool(*b)),
        Cond::Cidr(c) => op1("cidr", Value::String(c.text().to_owned())),
    }
}

pub(crate) fn conds_to_value(conds: &[Cond]) -> Value {
    Value::Array(conds.iter().map(cond_to_value).collect())
}

pub(crate) fn to_value(node: &Node) -> Value {
    let mut m = Map::new();
    for (k, conds) in &node.keys {
        m.insert(k.clone(), conds_to_value(conds));
    }
    if !node.ors.is_empty() {
        m.insert(
            "$or".to_owned(),
            Value::Array(node.ors.iter().map(to_value).collect()),
        );
    }
    Value::Object(m)
}

/// The length of the policy's compact JSON (what [`Filter::to_json`] writes), counted without
/// keeping the text.
pub(crate) fn compact_len(node: &Node) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // A `Value` (string keys only) into a writer that never fails: this cannot fail.
    match serde_json::to_writer(&mut count, &to_value(node)) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

impl<T> Filter<T> {
    /// Parses an Amazon SNS filter policy (message-attributes scope) with SNS's limits.
    ///
    /// Values are arrays (an OR within a key); keys are ANDed; `$or` holds alternatives (an array
    /// of two or more policies; as in SNS, when one of them has an operator as a field name,
    /// `$or` is an attribute name instead); the
    /// operators are `prefix`, `suffix`, `equals-ignore-case`, `wildcard`, `anything-but` (a value,
    /// a list, or `{"prefix"|"suffix"|"wildcard": ..}`), `numeric`, `exists` and `cidr`.
    ///
    /// ```
    /// use switchboard::{Filter, Message};
    ///
    /// let f = Filter::<()>::from_json(r#"{"source_ip": [{"cidr": "10.0.0.0/24"}]}"#)?;
    /// assert!(f.matches(&Message::new(()).with_attr("source_ip", "10.0.0.255")));
    /// assert!(!f.matches(&Message::new(()).with_attr("source_ip", "10.0.1.0")));
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`FilterError`] naming the key, the operator and the reason: not JSON, unknown operator,
    /// a key repeated in one object, wrong value type, malformed range, bad CIDR, empty list,
    /// too complex, too many keys, too large (the text, or the policy as [`to_json`] writes it
    /// back: numbers written `1e15` come back as `1000000000000000`), ...
    ///
    /// [`to_json`]: Filter::to_json
    pub fn from_json(text: &str) -> Result<Filter<T>, FilterError> {
        parse_str(text, &FilterLimits::default())
    }

    /// Like [`from_json`](Filter::from_json), with other limits.
    ///
    /// ```
    /// use switchboard::{Filter, FilterErrorKind, FilterLimits};
    ///
    /// let tight = FilterLimits::default().with_max_combinations(2);
    /// let err = Filter::<()>::from_json_with_limits(r#"{"a": ["1", "2", "3"]}"#, &tight).unwrap_err();
    /// assert_eq!(err.kind(), FilterErrorKind::TooComplex);
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`from_json`](Filter::from_json).
    pub fn from_json_with_limits(
        text: &str,
        limits: &FilterLimits,
    ) -> Result<Filter<T>, FilterError> {
        parse_str(text, limits)
    }

    /// The policy as SNS JSON (compact; keys in sorted order). A predicate is not part of it.
    ///
    /// ```
    /// use switchboard::{Filter, Numeric};
    ///
    /// let f = Filter::builder().numeric("price", Numeric::gt(0).and_le(100)).build::<()>()?;
    /// assert_eq!(f.to_json(), r#"{"price":[{"numeric":[">",0,"<=",100]}]}"#);
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    pub fn to_json(&self) -> String {
        to_value(&self.policy.root).to_string()
    }
}

/// Writes the policy as compact SNS JSON, as [`Filter::to_json`] does (a predicate, which has no
/// JSON form, is left out). [`FromStr`](std::str::FromStr) reads it back under the default
/// (SNS) limits; a filter made under raised ones reads back with
/// [`from_json_with_limits`](Filter::from_json_with_limits) and those limits.
///
/// ```
/// use switchboard::Filter;
///
/// let f: Filter<()> = r#"{"tier": ["gold"]}"#.parse()?;
/// assert_eq!(f.to_string(), r#"{"tier":["gold"]}"#);
/// # Ok::<(), switchboard::FilterError>(())
/// ```
impl<T> std::fmt::Display for Filter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_json())
    }
}

/// Serializes the policy as SNS JSON. A filter with a predicate cannot be serialized: that is an
/// error, not a silent loss of the predicate.
impl<T> serde::Serialize for Filter<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.has_predicate() {
            return Err(serde::ser::Error::custom(
                "a filter with a predicate cannot be serialized",
            ));
        }
        serde::Serialize::serialize(&to_value(&self.policy.root), serializer)
    }
}

/// Deserializes SNS filter-policy JSON with SNS's limits, as [`Filter::from_json`] does
/// (a key repeated in one object is an error here too). The size limit applies to the policy
/// as compact JSON ([`Filter::to_json`]): a deserializer does not see the length of its text.
impl<'de, T> serde::Deserialize<'de> for Filter<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Strict(v) = <Strict as serde::Deserialize>::deserialize(deserializer)?;
        parse_value(&v, &FilterLimits::default()).map_err(serde::de::Error::custom)
    }
}

/// Parses SNS filter-policy JSON with the default limits, as [`Filter::from_json`] does, so a
/// policy read from configuration can be `parse`d.
///
/// ```
/// use switchboard::{Filter, Message};
///
/// let f: Filter<()> = r#"{"region": ["eu"]}"#.parse()?;
/// assert!(f.matches(&Message::new(()).with_attr("region", "eu")));
/// assert!("{not json".parse::<Filter<()>>().is_err());
/// # Ok::<(), switchboard::FilterError>(())
/// ```
impl<T> std::str::FromStr for Filter<T> {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Filter<T>, FilterError> {
        Filter::from_json(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `str::parse` reads a policy as `from_json` does, errors included (found by review: a
    /// policy from configuration could not be `parse`d).
    #[test]
    fn a_filter_parses_from_a_str() {
        let text = r#"{"amount": [{"numeric": [">=", 100]}]}"#;
        let parsed: Filter<()> = text.parse().unwrap();
        assert_eq!(
            parsed.to_json(),
            Filter::<()>::from_json(text).unwrap().to_json()
        );
        let bad = r#"{"amount": [{"numeric": [">", 3, "<", 1]}]}"#;
        assert_eq!(
            bad.parse::<Filter<()>>().unwrap_err().to_string(),
            Filter::<()>::from_json(bad).unwrap_err().to_string()
        );
    }
}
