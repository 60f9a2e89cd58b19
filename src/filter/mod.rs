//! The message filter pattern: SNS-style filter policies, and an index that matches many at once.
//!
//! A [`Filter`] states which messages a subscriber wants by their attributes. Write it with the
//! Rust [`FilterBuilder`] or as an Amazon SNS filter policy ([`Filter::from_json`]); the two mean
//! the same thing, and [`Filter::to_json`] writes either back as SNS JSON. A predicate over the
//! whole message ([`Filter::predicate`]) is the escape hatch, ANDed with any policy.
//!
//! A [`FilterIndex`] holds a topic's filters by subscription key; its immutable
//! [`FilterSnapshot`] answers "which subscriptions want this message" without checking each
//! filter, with exactly the answer a linear scan gives.
//!
//! # Policies
//!
//! A policy is a JSON object. Each key names a message attribute and holds an array of
//! conditions, any of which may match (OR); all keys must match (AND). `$or` holds an array of
//! two or more such objects, one of which must match. Conditions are exact values, or objects
//! with one operator: `prefix`, `suffix`, `equals-ignore-case`, `wildcard`, `anything-but` (a
//! value, a list, or `{"prefix"|"suffix"|"wildcard": ..}`), `numeric`, `exists`, `cidr`.
//!
//! ```
//! use switchboard::{Filter, Message};
//!
//! let f = Filter::<()>::from_json(r#"{
//!     "store": ["example_corp"],
//!     "$or": [{"price": [{"numeric": [">", 100]}]}, {"vip": [true]}]
//! }"#)?;
//! let m = Message::new(()).with_attr("store", "example_corp").with_attr("vip", true);
//! assert!(f.matches(&m));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! # Matching rules
//!
//! These follow SNS (the crate's `tests/filter_conformance.rs` checks them against recorded SNS
//! cases).
//!
//! ## Exact matching is case-sensitive
//!
//! ```
//! # use switchboard::{Filter, Message};
//! let f = Filter::<()>::from_json(r#"{"sport": ["rugby"]}"#)?;
//! assert!(f.matches(&Message::new(()).with_attr("sport", "rugby")));
//! assert!(!f.matches(&Message::new(()).with_attr("sport", "Rugby")));
//! let g = Filter::<()>::from_json(r#"{"sport": [{"equals-ignore-case": "RUGBY"}]}"#)?;
//! assert!(g.matches(&Message::new(()).with_attr("sport", "Rugby")));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! ## Values are typed
//!
//! Numeric conditions (`numeric`, and exact numbers) match only `Number` attributes; string
//! operators (`prefix`, `suffix`, `equals-ignore-case`, `wildcard`, `cidr`) match only `String`
//! attributes and `StringList` elements; `true`/`false` match only `Bool`. So `[100]` does not
//! match the string `"100"`, and `anything-but ["100"]` does not exclude the number 100.
//!
//! ```
//! # use switchboard::{Filter, Message};
//! let f = Filter::<()>::from_json(r#"{"price": [100]}"#)?;
//! assert!(f.matches(&Message::new(()).with_attr("price", 100)));
//! assert!(!f.matches(&Message::new(()).with_attr("price", "100")));
//! let g = Filter::<()>::from_json(r#"{"price": [{"anything-but": ["100"]}]}"#)?;
//! assert!(g.matches(&Message::new(()).with_attr("price", 100)));
//! let h = Filter::<()>::from_json(r#"{"price": [{"numeric": [">", 10]}]}"#)?;
//! assert!(!h.matches(&Message::new(()).with_attr("price", "20")));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! ## Numbers compare at 6 decimal digits, and -0 equals 0
//!
//! SNS documents a limited precision; numbers are rounded to 6 decimal digits before comparing
//! (magnitudes of 9 * 10^9 and more, where an `f64` holds fewer than 6 decimals, compare as they
//! are). NaN and infinities are rejected in policies;
//! a NaN attribute matches no numeric condition, and an infinite one is beyond every bound: `-inf`
//! matches `<` and `<=` any number, `+inf` matches `>` and `>=`, and neither is in a range with
//! two bounds.
//!
//! Two deliberate differences from the SNS guide, which gives numbers from -10^9 to 10^9 with
//! 5 digits after the point: any finite number is accepted (SNS's answer past 10^9 is
//! contested: an emulator reports a server error, another finds AWS accepting it), and the
//! 6th digit counts, so `1.000001` and `1.000002` differ (moto's matcher and AWS's open-source
//! Event Ruler keep 6; the guide says 5).
//!
//! ```
//! # use switchboard::{Filter, Message, FilterErrorKind, Numeric};
//! let f = Filter::<()>::from_json(r#"{"price_usd": [{"numeric": ["=", 301.5]}]}"#)?;
//! assert!(f.matches(&Message::new(()).with_attr("price_usd", 3.015e2)));
//! let zero = Filter::<()>::from_json(r#"{"t": [0]}"#)?;
//! assert!(zero.matches(&Message::new(()).with_attr("t", -0.0)));
//! let p = Filter::<()>::from_json(r#"{"p": [100.123456789]}"#)?;
//! assert!(p.matches(&Message::new(()).with_attr("p", 100.1234567)));
//! assert!(!Filter::<()>::from_json(r#"{"p": [1.000001]}"#)?
//!     .matches(&Message::new(()).with_attr("p", 1.000002)));
//! assert!(Filter::<()>::from_json(r#"{"p": [{"numeric": [">", 1e9]}]}"#)?
//!     .matches(&Message::new(()).with_attr("p", 5e9)));
//! let nan = Filter::builder().numeric("p", Numeric::gt(f64::NAN)).build::<()>();
//! assert_eq!(nan.unwrap_err().kind(), FilterErrorKind::InvalidNumber);
//! assert!(!Filter::builder().numeric("p", Numeric::ge(0)).build()?
//!     .matches(&Message::new(()).with_attr("p", f64::NAN)));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! ## A missing key fails every condition except `exists: false`
//!
//! Even `anything-but` and `null` need the attribute to be there.
//!
//! ```
//! # use switchboard::{Filter, Message};
//! let m = Message::new(()).with_attr("other", "x");
//! assert!(!Filter::<()>::from_json(r#"{"a": [{"anything-but": "whatever"}]}"#)?.matches(&m));
//! assert!(!Filter::<()>::from_json(r#"{"a": [null]}"#)?.matches(&m));
//! assert!(Filter::<()>::from_json(r#"{"a": [{"exists": false}]}"#)?.matches(&m));
//! assert!(!Filter::<()>::from_json(r#"{"a": [{"exists": true}]}"#)?.matches(&m));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! ## `exists: false` needs at least one attribute
//!
//! As the SNS documentation says: a message with no attributes at all matches no condition, not
//! even `exists: false`. (The LocalStack and moto emulators disagree; we follow AWS.)
//!
//! ```
//! # use switchboard::{Filter, Message};
//! let f = Filter::<()>::from_json(r#"{"store": [{"exists": false}]}"#)?;
//! assert!(!f.matches(&Message::new(())));
//! assert!(f.matches(&Message::new(()).with_attr("other", 1)));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! ## `exists` needs a non-empty value
//!
//! SNS: "The key must have a non-null and non-empty value." An attribute holding an empty
//! string or an empty list counts as absent for `exists` (both `true` and `false`).
//!
//! ```
//! # use switchboard::{Filter, Message};
//! let present = Filter::<()>::from_json(r#"{"k": [{"exists": true}]}"#)?;
//! let absent = Filter::<()>::from_json(r#"{"k": [{"exists": false}]}"#)?;
//! let empty = Message::new(()).with_attr("k", "");
//! assert!(!present.matches(&empty) && absent.matches(&empty));
//! assert!(present.matches(&Message::new(()).with_attr("k", "v")));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! ## A string list matches if any element matches, for every operator
//!
//! A `StringList` (SNS `String.Array`) attribute is checked element by element, and matches a
//! condition if any element does. That includes `anything-but`: `["rugby", "baseball"]` matches
//! `anything-but ["rugby", "tennis"]`, because it holds a value that is not listed, while
//! `["rugby"]` does not. This is the SNS Developer Guide's worked example (in its 2022 and current
//! editions); the current guide's prose says instead "none of the elements are listed", which
//! contradicts its own example, so we follow the example and keep one rule for all operators.
//! To exclude lists holding a value anywhere, use a predicate.
//!
//! ```
//! # use switchboard::{Filter, Message};
//! let f = Filter::<()>::from_json(r#"{"sports": [{"anything-but": ["rugby", "tennis"]}]}"#)?;
//! assert!(f.matches(&Message::new(()).with_attr("sports", ["rugby", "baseball"])));
//! assert!(!f.matches(&Message::new(()).with_attr("sports", ["rugby"])));
//! let g = Filter::<()>::from_json(r#"{"sports": [{"prefix": "bas"}]}"#)?;
//! assert!(g.matches(&Message::new(()).with_attr("sports", ["rugby", "baseball"])));
//! assert!(!g.matches(&Message::new(()).with_attr("sports", Vec::<String>::new())));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! ## Anything-but: a value, a list, or a pattern
//!
//! ```
//! # use switchboard::{Filter, Message};
//! let f = Filter::<()>::from_json(r#"{"event": [{"anything-but": {"prefix": "order-"}}]}"#)?;
//! assert!(f.matches(&Message::new(()).with_attr("event", "data-entry")));
//! assert!(!f.matches(&Message::new(()).with_attr("event", "order-cancelled")));
//! let g = Filter::<()>::from_json(r#"{"price": [{"anything-but": [100, 500]}]}"#)?;
//! assert!(g.matches(&Message::new(()).with_attr("price", 100.1)));
//! assert!(!g.matches(&Message::new(()).with_attr("price", 100)));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! ## Wildcards and CIDR blocks
//!
//! `*` in a `wildcard` stands for any run of characters. `cidr` takes IPv4 and IPv6 blocks; an
//! attribute that is not an IP address does not match.
//!
//! ```
//! # use switchboard::{Filter, Message};
//! let w = Filter::<()>::from_json(r#"{"sku": [{"wildcard": "ab-*-x*"}]}"#)?;
//! assert!(w.matches(&Message::new(()).with_attr("sku", "ab-12-x9")));
//! assert!(!w.matches(&Message::new(()).with_attr("sku", "ab-12-y9")));
//! let c = Filter::<()>::from_json(r#"{"ip": [{"cidr": "2001:db8::/32"}, {"cidr": "10.0.0.0/8"}]}"#)?;
//! assert!(c.matches(&Message::new(()).with_attr("ip", "2001:db8::1")));
//! assert!(c.matches(&Message::new(()).with_attr("ip", "10.1.2.3")));
//! assert!(!c.matches(&Message::new(()).with_attr("ip", "not an ip")));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! ## The empty policy matches everything
//!
//! ```
//! # use switchboard::{Filter, Message};
//! assert!(Filter::<()>::from_json("{}")?.matches(&Message::new(())));
//! # Ok::<(), switchboard::FilterError>(())
//! ```
//!
//! # Errors and limits
//!
//! A bad policy is a [`FilterError`] naming the key, the operator and the reason; no input
//! panics. [`FilterLimits`] bounds keys (5), combinations after expanding `$or` and value lists
//! (150), `$or` nesting (5) and text size (256 KiB), SNS's values by default.
//!
//! ```
//! # use switchboard::{Filter, FilterErrorKind};
//! let err = Filter::<()>::from_json(r#"{"key": [{"wrong-operator": true}]}"#).unwrap_err();
//! assert_eq!(err.kind(), FilterErrorKind::UnknownOperator);
//! assert_eq!(err.to_string(), r#"key "key", operator "wrong-operator": unrecognized match type wrong-operator"#);
//! ```
//!
//! A key written twice in one object is refused rather than read as the last one (which would
//! drop a whole `$or` group without a word); SNS does not document what it means.
//!
//! ```
//! # use switchboard::{Filter, FilterErrorKind};
//! let err = Filter::<()>::from_json(r#"{"a": ["x"], "a": ["y"]}"#).unwrap_err();
//! assert_eq!(err.kind(), FilterErrorKind::DuplicateKey);
//! assert_eq!(err.to_string(), r#"duplicate key "a" at line 1 column 16"#);
//! ```
//!
//! So is a `$or` branch with no condition (`{}`), which would make its whole group match every
//! message; AWS's own matcher refuses empty objects too. An empty policy still matches all.
//!
//! ```
//! # use switchboard::{Filter, FilterErrorKind};
//! let err = Filter::<()>::from_json(r#"{"$or": [{}, {"a": ["x"]}]}"#).unwrap_err();
//! assert_eq!(err.kind(), FilterErrorKind::EmptyBranch);
//! ```
//!
//! # The index
//!
//! A [`FilterSnapshot`] files each filter (each `$or` branch) under its most selective positive
//! condition: hash maps for exact values (strings, numbers, booleans, lowercased strings), maps by
//! length for prefixes and suffixes, maps by mask length for CIDR blocks, an interval tree for
//! numeric ranges, a list for `exists: true`. A message looks up its attributes' values, and the
//! filters it hits are checked in full, unless the policy is that one condition (then a hit is a
//! match). A policy that is one `anything-but` list of strings is filed by complement (all of
//! them, minus those listing the message's value), and one that is one `exists: false` by key.
//! What is left (other negative-only policies, the empty policy, predicate-only filters) sits in
//! a residual list checked for every message. Below 16 filters a level checks each filter.
//!
//! [`FilterIndex`] keeps the compiled levels immutable and shared: a change goes to a small tail
//! (checked one by one), full tails are compiled into levels, and levels of similar size are
//! merged, so a snapshot after every change stays cheap at 100,000 filters.
//!
//! # Note
//!
//! Policies on message bodies (SNS `FilterPolicyScope: MessageBody`) are not supported: a
//! nested object under a key is an error.

mod error;
mod eval;
mod index;
mod json;
mod plan;
mod policy;

pub use self::error::{FilterError, FilterErrorKind};
pub use self::eval::{Explanation, Mismatch};
pub use self::index::{FilterIndex, FilterSnapshot};
pub use self::policy::{Filter, FilterBuilder, FilterLimits, Numeric, PolicyValue};
