//! `FilterError`: why a filter policy was rejected.

use std::fmt;

/// What kind of mistake a rejected policy made. See [`FilterError::kind`].
///
/// ```
/// use switchboard::{Filter, FilterErrorKind};
///
/// let err = Filter::<()>::from_json(r#"{"price": [{"numeric": [">", 3, "<", 1]}]}"#).unwrap_err();
/// assert_eq!(err.kind(), FilterErrorKind::MalformedRange);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilterErrorKind {
    /// The text is not JSON.
    NotJson,
    /// The policy (or a `$or` branch) is not a JSON object.
    NotAnObject,
    /// A key appears twice in one JSON object (the reason names it, with its line and column).
    DuplicateKey,
    /// A key holds an object: nested policies apply to message bodies, not attributes.
    NestedPolicy,
    /// An operator SNS does not know, or one not allowed where it is used.
    UnknownOperator,
    /// An operator object with more than one operator in it.
    MultipleOperators,
    /// A value of the wrong type (a bare value where an array belongs, a number where a string belongs).
    WrongValueType,
    /// A numeric condition that is not a valid comparison or range.
    MalformedRange,
    /// A number that is not finite (NaN or infinite).
    InvalidNumber,
    /// A CIDR block that does not parse.
    BadCidr,
    /// An empty array of values.
    EmptyList,
    /// More combinations (after expanding `$or` and value lists) than the limit.
    TooComplex,
    /// More keys in one combination than the limit.
    TooManyKeys,
    /// `$or` nested deeper than the limit.
    TooDeep,
    /// A `$or` branch with no condition in it, which would match every message and so make
    /// the whole group match everything (a policy's top level may be empty: it matches all).
    EmptyBranch,
    /// The policy text is longer than the limit.
    TooLarge,
}

/// A rejected filter policy: which key, which operator, and why.
///
/// Display is one lowercase line: the key and operator when there are some, then the reason.
///
/// ```
/// use switchboard::{Filter, FilterErrorKind};
///
/// let err = Filter::<()>::from_json(r#"{"ip": [{"cidr": "10.0.0.0/33"}]}"#).unwrap_err();
/// assert_eq!(err.kind(), FilterErrorKind::BadCidr);
/// assert_eq!(err.key(), Some("ip"));
/// assert_eq!(err.operator(), Some("cidr"));
/// assert_eq!(err.to_string(), "key \"ip\", operator \"cidr\": mask bits must be at most 32 in \"10.0.0.0/33\"");
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", Context(.path.as_str(), .key.as_deref(), .operator.as_deref()), .reason)]
pub struct FilterError {
    kind: FilterErrorKind,
    path: String,
    key: Option<String>,
    operator: Option<String>,
    reason: String,
}

struct Context<'a>(&'a str, Option<&'a str>, Option<&'a str>);

impl fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.is_empty() {
            write!(f, "in {}, ", self.0)?;
        }
        match (self.1, self.2) {
            (Some(k), Some(op)) => write!(f, "key {k:?}, operator {op:?}: "),
            (Some(k), None) => write!(f, "key {k:?}: "),
            (None, Some(op)) => write!(f, "operator {op:?}: "),
            (None, None) => Ok(()),
        }
    }
}

impl fmt::Debug for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterError")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("key", &self.key)
            .field("operator", &self.operator)
            .field("reason", &self.reason)
            .finish()
    }
}

impl FilterError {
    pub(crate) fn new(kind: FilterErrorKind, reason: impl Into<String>) -> FilterError {
        FilterError {
            kind,
            path: String::new(),
            key: None,
            operator: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn at_key(mut self, key: &str) -> FilterError {
        if self.key.is_none() {
            self.key = Some(key.to_owned());
        }
        self
    }

    /// Notes that the mistake is inside branch `i` of a `$or`.
    pub(crate) fn in_branch(mut self, i: usize) -> FilterError {
        self.path = if self.path.is_empty() {
            format!("$or[{i}]")
        } else {
            format!("$or[{i}].{}", self.path)
        };
        self
    }

    pub(crate) fn at_op(mut self, op: &str) -> FilterError {
        if self.operator.is_none() {
            self.operator = Some(op.to_owned());
        }
        self
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> FilterErrorKind {
        self.kind
    }

    /// The `$or` branches the mistake is inside, as `$or[1].$or[0]`; empty at the top level.
    ///
    /// ```
    /// use switchboard::Filter;
    ///
    /// let err = Filter::<()>::from_json(r#"{"$or": [{"a": ["x"]}, {"b": []}]}"#).unwrap_err();
    /// assert_eq!(err.path(), "$or[1]");
    /// assert_eq!(err.to_string(), r#"in $or[1], key "b": empty arrays are not allowed"#);
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The attribute key the mistake is under, if it is under one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The operator (`numeric`, `cidr`, `$or`, ...) the mistake is in, if it is in one.
    pub fn operator(&self) -> Option<&str> {
        self.operator.as_deref()
    }

    /// Why the policy was rejected, without the key and operator.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
