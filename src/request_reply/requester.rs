//! `Requester<Req, Rep>`: send a request through any endpoint and wait for its reply.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inbox::{self, Inbox, Next, Stats};
use super::request::{Reply, ReplyTo, Request};
use super::service::Gate;
use crate::endpoint::{deadline_after, DeliverError, Endpoint, Wait};
use crate::message::{Message, ReplyMeta};

/// Wraps a message as a request: a private inbox (fresh or reused), its correlation id (the
/// message's own if it has one) and return address on the metadata, the typed return address in
/// the body. The metadata handle comes back too, for `inbox::recycle` once the request is over.
pub(crate) fn stamp<Req, Rep: Send + 'static>(
    msg: Message<Req>,
    stats: &Arc<Stats>,
) -> (Arc<Inbox<Rep>>, ReplyMeta, Message<Request<Req, Rep>>) {
    Stats::bump(&stats.requests);
    let cid = msg.correlation_id().unwrap_or_default();
    let (inbox, meta) = Inbox::take(cid, stats);
    let reply_to = ReplyTo::new(Arc::clone(&inbox));
    let msg = msg.with_reply_kit(&meta);
    (inbox, meta, msg.map(|body| Request { body, reply_to }))
}

/// Counters of a [`Requester`] or a [`ScatterGather`](crate::ScatterGather), across all its
/// requests.
///
/// `late` counts replies that reached no one: sent after their request completed or gave up, or
/// still unread when it completed. They never reach a later request.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Endpoint, Message, Request, Requester};
///
/// let echo = Endpoint::from_fn(|m: Message<Request<u8, u8>>| {
///     let r = m.into_payload();
///     let x = *r.body();
///     let _ = r.reply(x);
///     Ok(())
/// });
/// let requester = Requester::new(echo);
/// requester.request(1, Duration::from_secs(1)).unwrap();
/// let s = requester.stats();
/// assert_eq!((s.requests, s.replies, s.late, s.timed_out), (1, 1, 0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ConversationStats {
    /// Requests sent (or attempted).
    pub requests: u64,
    /// Replies gathered.
    pub replies: u64,
    /// Replies that came too late (or went unread) and were dropped.
    pub late: u64,
    /// Requests that ended at their deadline: with fewer replies than they waited for, or
    /// still waiting for room to be sent ([`RequestError::Full`]).
    pub timed_out: u64,
    /// Requests every responder dropped without replying.
    pub unanswered: u64,
    /// Requests that reached no responder at all.
    pub no_responder: u64,
}

impl ConversationStats {
    pub(crate) fn of(s: &Stats) -> ConversationStats {
        ConversationStats {
            requests: s.requests.load(Ordering::Relaxed),
            replies: s.replies.load(Ordering::Relaxed),
            late: s.late.load(Ordering::Relaxed),
            timed_out: s.timed_out.load(Ordering::Relaxed),
            unanswered: s.unanswered.load(Ordering::Relaxed),
            no_responder: s.no_responder.load(Ordering::Relaxed),
        }
    }
}

/// A request got no reply.
///
/// Unlike a send error, it does not hand the request back. A request that reached a responder
/// (`Timeout`, `Unanswered`) is the responder's now, and one that reached nobody may have been
/// dropped inside the endpoint on the way (a topic with no subscriber takes a publish and keeps
/// nothing). Requests are `Clone`: keep a clone to send again.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Request, RequestError, Requester, Topic};
///
/// let nobody: Topic<Request<u8, u8>> = Topic::new();
/// let requester = Requester::new(&nobody);
/// let err = requester.request(1, Duration::from_secs(60)).unwrap_err(); // at once
/// assert_eq!(err, RequestError::NoResponder);
/// assert_eq!(err.to_string(), "no responder: the request reached nobody");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request reached nobody: the endpoint is closed, a topic has no subscriber (or none
    /// took it: each filtered it out or, full under
    /// [`Overflow::DropNewest`](crate::Overflow::DropNewest), dropped it), a recipient list
    /// chose nobody. Reported at once.
    #[error("no responder: the request reached nobody")]
    NoResponder,
    /// Every responder that got the request dropped it without replying. Reported at once.
    #[error("no reply: every responder dropped the request")]
    Unanswered,
    /// No reply came before the deadline.
    #[error("timed out waiting for a reply")]
    Timeout,
    /// The endpoint had no room for the request before the deadline (over a topic: no
    /// subscription took it and one was full under `Block` or `Error`; when some had room, the
    /// request waits for their reply).
    #[error("no room for the request before the deadline")]
    Full,
    /// The endpoint refused the request (a validator, a closure, an unknown recipient).
    #[error("request rejected: {0}")]
    Rejected(String),
}

/// Sends requests through an endpoint and waits for their replies (the Request-Reply pattern).
///
/// Each request gets its own private reply channel, reached through the typed return address
/// the request carries ([`Request::reply`]), and a correlation id: a fresh one, unless the
/// request message already has one (a trace id the caller set), which it keeps. Replies are
/// matched by the channel, not by the id, so two requests that share an id still get each
/// their own replies. Replies therefore cannot leak between requests: a reply to a request that timed out is counted as late
/// ([`ConversationStats::late`]) and dropped, never seen by a later request. Responders can be
/// competing consumers of one queue (the request goes to one of them), or subscribers of a topic
/// (the first reply wins; the others are late).
///
/// No responder at all is an error at once ([`RequestError::NoResponder`]), not a timeout: a
/// closed endpoint, a topic without subscribers, a recipient list that chose nobody. So is a
/// request that every responder dropped without replying ([`RequestError::Unanswered`]). A request
/// that sits in a queue nobody reads can only time out.
///
/// `Clone` gives another handle with the same endpoint and counters; requests from many threads
/// at once do not interfere.
///
/// Requests need `Req: Clone` (a topic or a list copies them, and every endpoint is one): wrap a
/// large or non-`Clone` body in an `Arc`.
///
/// ```
/// use std::thread;
/// use std::time::Duration;
/// use switchboard::{Queue, Request, Requester};
///
/// let service: Queue<Request<String, usize>> = Queue::unbounded();
/// // Three competing responders on one queue.
/// let workers: Vec<_> = (0..3)
///     .map(|_| {
///         let service = service.clone();
///         thread::spawn(move || {
///             for m in &service {
///                 let req = m.into_payload();
///                 let len = req.body().len();
///                 let _ = req.reply(len);
///             }
///         })
///     })
///     .collect();
/// let requester = Requester::new(&service);
/// for word in ["a", "bb", "ccc"] {
///     assert_eq!(requester.request(word.to_string(), Duration::from_secs(5)).unwrap(), word.len());
/// }
/// service.close();
/// workers.into_iter().for_each(|w| w.join().unwrap());
/// assert_eq!(requester.stats().replies, 3);
/// ```
pub struct Requester<Req, Rep> {
    endpoint: Endpoint<Request<Req, Rep>>,
    stats: Arc<Stats>,
    /// For a [`Service`](crate::Service)'s requester: its responders.
    gate: Option<Gate<Req, Rep>>,
}

impl<Req, Rep> Requester<Req, Rep> {
    /// A requester sending through `endpoint` (a queue, a topic, a recipient list, a closure).
    pub fn new(endpoint: impl Into<Endpoint<Request<Req, Rep>>>) -> Requester<Req, Rep> {
        Requester {
            endpoint: endpoint.into(),
            stats: Arc::default(),
            gate: None,
        }
    }

    pub(crate) fn gated(gate: Gate<Req, Rep>) -> Requester<Req, Rep> {
        Requester {
            endpoint: Endpoint::from(gate.queue.clone()),
            stats: Arc::default(),
            gate: Some(gate),
        }
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &Endpoint<Request<Req, Rep>> {
        &self.endpoint
    }

    /// Counters across all requests of this requester (and its clones).
    pub fn stats(&self) -> ConversationStats {
        ConversationStats::of(&self.stats)
    }
}

impl<Req, Rep> Requester<Req, Rep>
where
    Req: Clone,
    Rep: Send + 'static,
{
    /// Sends a request and waits at most `timeout` (in all) for its reply.
    ///
    /// # Errors
    ///
    /// See [`RequestError`]: `NoResponder` and `Unanswered` at once, `Timeout` and `Full` at the
    /// deadline, `Rejected` when the endpoint refused the request.
    ///
    /// # Panics
    ///
    /// If dropping a reply that came but was not read panics (a reply whose `Drop` panics; over
    /// a topic, the replies after the first): it is counted late and the request's reply
    /// channel closed first; the reply already taken goes with the unwind.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Endpoint, Message, Request, Requester};
    ///
    /// let doubler = Endpoint::from_fn(|m: Message<Request<i32, i32>>| {
    ///     let r = m.into_payload();
    ///     let twice = r.body() * 2;
    ///     let _ = r.reply(twice);
    ///     Ok(())
    /// });
    /// let requester = Requester::new(doubler);
    /// assert_eq!(requester.request(21, Duration::from_secs(1)), Ok(42));
    /// ```
    pub fn request(
        &self,
        req: impl Into<Message<Req>>,
        timeout: Duration,
    ) -> Result<Rep, RequestError> {
        self.request_deadline(req, deadline_after(timeout))
    }

    /// Sends a request and waits until `deadline` at most for its reply.
    ///
    /// # Errors
    ///
    /// As [`request`](Requester::request).
    pub fn request_deadline(
        &self,
        req: impl Into<Message<Req>>,
        deadline: Instant,
    ) -> Result<Rep, RequestError> {
        self.request_reply_deadline(req, deadline)
            .map(Reply::into_body)
    }

    /// Sends a request and waits at most `timeout` for its reply, with who sent it (the name
    /// the responder gave with [`Request::reply_as`]).
    ///
    /// # Errors
    ///
    /// As [`request`](Requester::request).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Endpoint, Message, Request, Requester};
    ///
    /// let echo = Endpoint::from_fn(|m: Message<Request<u8, u8>>| {
    ///     let r = m.into_payload();
    ///     let x = *r.body();
    ///     let _ = r.reply_as("echo-1", x);
    ///     Ok(())
    /// });
    /// let reply = Requester::new(echo).request_reply(5, Duration::from_secs(1)).unwrap();
    /// assert_eq!((reply.responder(), *reply.body()), (Some("echo-1"), 5));
    /// ```
    pub fn request_reply(
        &self,
        req: impl Into<Message<Req>>,
        timeout: Duration,
    ) -> Result<Reply<Rep>, RequestError> {
        self.request_reply_deadline(req, deadline_after(timeout))
    }

    /// Sends a request and waits until `deadline` at most for its reply, with who sent it.
    ///
    /// # Errors
    ///
    /// As [`request`](Requester::request).
    pub fn request_reply_deadline(
        &self,
        req: impl Into<Message<Req>>,
        deadline: Instant,
    ) -> Result<Reply<Rep>, RequestError> {
        let gate = self.gate.as_ref();
        let (inbox, meta, msg) = stamp(req.into(), &self.stats);
        let closing = inbox::Closing(&inbox);
        if gate.is_some_and(|g| !g.is_served()) {
            drop(msg);
            drop(closing);
            Stats::bump(&self.stats.no_responder);
            return Err(RequestError::NoResponder);
        }
        let out = match self.endpoint.deliver_to_some(msg, Wait::Until(deadline)) {
            Ok(0) => Err(RequestError::NoResponder),
            Ok(_) => {
                // The last responder may have left (and emptied the queue) while this request
                // went in: empty it again, so that the request is not left waiting for nobody.
                if let Some(g) = gate.filter(|g| !g.is_served()) {
                    g.drain();
                }
                match inbox.wait(deadline) {
                    Next::Reply(r) => {
                        Stats::bump(&self.stats.replies);
                        Ok(r)
                    }
                    Next::Exhausted if inbox.was_unserved() => Err(RequestError::NoResponder),
                    Next::Exhausted => {
                        Stats::bump(&self.stats.unanswered);
                        Err(RequestError::Unanswered)
                    }
                    Next::Timeout => {
                        Stats::bump(&self.stats.timed_out);
                        Err(RequestError::Timeout)
                    }
                }
            }
            Err(e) => {
                let e = undelivered(e);
                if e == RequestError::Full && Instant::now() >= deadline {
                    // It waited for room until the deadline (an `Overflow::Error` subscription
                    // refuses at once: not a time-out; found by review).
                    Stats::bump(&self.stats.timed_out);
                }
                Err(e)
            }
        };
        if matches!(out, Err(RequestError::NoResponder)) {
            Stats::bump(&self.stats.no_responder);
        }
        drop(closing);
        drop(inbox);
        inbox::recycle(meta);
        out
    }
}

/// Maps a failed delivery of a request.
pub(crate) fn undelivered<T>(e: DeliverError<T>) -> RequestError {
    match e {
        DeliverError::Closed(_) => RequestError::NoResponder,
        DeliverError::Full(_) => RequestError::Full,
        DeliverError::Rejected { reason, .. } => RequestError::Rejected(reason),
    }
}

impl<Req, Rep> Clone for Requester<Req, Rep> {
    /// Another handle: same endpoint, same counters.
    fn clone(&self) -> Self {
        Requester {
            endpoint: self.endpoint.clone(),
            stats: Arc::clone(&self.stats),
            gate: self.gate.clone(),
        }
    }
}

impl<Req, Rep> fmt::Debug for Requester<Req, Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Requester")
            .field("endpoint", &self.endpoint)
            .field("stats", &self.stats())
            .finish()
    }
}
