//! Conversations: request-reply and scatter-gather, with typed return addresses.
//!
//! A [`Requester`] sends a request through any [`Endpoint`](crate::Endpoint) and waits for the
//! reply; a [`ScatterGather`] sends one request to many responders and gathers their replies.
//! Responders receive a [`Request<Req, Rep>`](Request) (from a queue, a subscription, a closure)
//! and answer through it with [`reply`](Request::reply).
//!
//! # The reply type is enforced
//!
//! The request's type names its reply type: a `Request<Req, Rep>` can only be answered with a
//! `Rep`, so a responder that replies with anything else does not compile, and a requester reads
//! `Rep` without a cast.
//!
//! ```compile_fail
//! use switchboard::Request;
//!
//! fn respond(req: Request<String, u64>) {
//!     let _ = req.reply("not a number"); // error: expected `u64`, found `&str`
//! }
//! ```
//!
//! # Correlation and late replies
//!
//! Every request gets a correlation id (stamped on its message, with the type-erased
//! [`ReturnAddress`](crate::ReturnAddress): a fresh one, unless the caller set one on the
//! message, which it keeps) and a private reply channel of its own: the typed
//! return address ([`ReplyTo`]) every copy of the request holds leads there and nowhere else. Once
//! the request completes (a reply, a timeout, a gather condition), its channel closes: later
//! replies fail with [`ReplyError::Late`] and are counted in [`ConversationStats::late`]. A reply
//! to a request that timed out can therefore never be taken for the reply to a later request.
//!
//! # No responder
//!
//! A request that reaches nobody fails at once with [`RequestError::NoResponder`] (or
//! [`GatherError::NoResponder`]): a closed queue or topic, a topic without subscribers, a
//! recipient list whose route chose nobody. A request every responder dropped without replying
//! fails at once too ([`RequestError::Unanswered`]; a gather completes with
//! [`Completed::NoMoreReplies`]): the requester counts the live copies of its request. A plain
//! queue cannot tell whether anybody reads it, so a request sitting unread in one waits for its
//! deadline; a [`Service`] (a request queue with registered [`Responder`]s) can, and fails at
//! once when no responder is registered or the last one leaves.
//!
//! ```
//! use std::time::Duration;
//! use switchboard::{Queue, Request, RequestError, Requester};
//!
//! let service: Queue<Request<u8, u8>> = Queue::unbounded();
//! service.close(); // the service is gone
//! let requester = Requester::new(&service);
//! assert_eq!(requester.request(1, Duration::from_secs(60)), Err(RequestError::NoResponder));
//! ```
//!
//! # Cost
//!
//! A request needs an inbox, the message metadata holding the correlation id and a type-erased
//! return address: three small allocations, made once per thread and reused for the next request
//! once nothing else holds them (a requester in a loop usually allocates nothing). With a few
//! uncontended atomic operations and lock acquisitions, a round trip costs about 130 ns on one
//! thread, against about 35 ns for the two channel sends and receives of a hand-written
//! ping-pong (`cargo bench --bench patterns -- request_reply`, the `inline_` lines). Across
//! threads the hand-offs dominate: a waiting requester (and a queue's or subscription's waiting
//! responder) looks again every spin-loop hint for a few microseconds, then yields, then parks,
//! so a reply that comes within microseconds is seen at once and costs no system call.

mod inbox;
mod request;
mod requester;
mod scatter_gather;
mod service;

pub use self::request::{Reply, ReplyError, ReplyTo, Request};
pub use self::requester::{ConversationStats, RequestError, Requester};
pub use self::scatter_gather::{Completed, Completion, GatherError, Gathered, ScatterGather};
pub use self::service::{Iter, Responder, Service, TryIter};
