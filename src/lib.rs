//! switchboard: in-process messaging patterns.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod clock;
mod filter;
mod message;

pub use crate::clock::{Clock, ManualClock};
pub use crate::filter::{
    Explanation, Filter, FilterBuilder, FilterError, FilterErrorKind, FilterIndex, FilterLimits,
    FilterSnapshot, Mismatch, Numeric, PolicyValue,
};
pub use crate::message::{
    AttrValue, Attributes, CorrelationId, DeadLetter, Message, MessageId, ReturnAddress,
};
