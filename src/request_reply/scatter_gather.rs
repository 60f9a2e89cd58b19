//! `ScatterGather<Req, Rep>`: one request to many responders, their replies gathered.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inbox::{self, Next, Stats, UNKNOWN_COPY};
use super::request::{Reply, Request};
use super::requester::{stamp, undelivered, ConversationStats, RequestError};
use crate::endpoint::{deadline_after, Endpoint, Wait};
use crate::message::{CorrelationId, Message};
use crate::recipient_list::{Outcome, RecipientListError};
use crate::small_set::{SmallSet, LINEAR_MAX};

type Predicate<Rep> = dyn Fn(&[Reply<Rep>]) -> bool + Send;

/// When a gather is complete: every expected reply, or sooner.
///
/// A gather always ends at its deadline, and when every responder the request reached has
/// replied (or dropped the request). Optionally sooner: after the first `n` replies
/// ([`first`](Completion::first)), or as soon as a predicate over the replies so far holds
/// ([`when`](Completion::when): a quorum, a first success). Whichever comes first ends it; the
/// result says which ([`Completed`]).
///
/// A responder, for this count, is a copy of the request: each copy the scatter delivered (one
/// per subscriber or recipient reached) is one, however often it replies, through the request
/// or through clones of its [`reply_to`](crate::Request::reply_to). A clone of the [`Request`]
/// itself is a copy of its own, as the fan-out's copies are: a responder that clones its
/// request and answers through both counts as two, and can make the gather end as complete
/// while another responder it reached has not replied. To answer more than once as one
/// responder, clone the `reply_to`, not the request.
///
/// A reply sent through the request message's metadata instead ([`Message::reply_to`], the
/// type-erased address every copy shares) cannot be told apart from the other copies' replies:
/// the gather takes it (it is in [`Gathered::replies`] and counts for `first` and `when`), but
/// it answers for no responder, so it never completes a gather as [`Completed::All`] and its
/// sender stays in [`Gathered::missing`]. Responders that should count reply through their
/// [`Request`] ([`Request::reply`], [`Request::reply_to`]).
///
/// [`Message::reply_to`]: crate::Message::reply_to
/// [`Request`]: crate::Request
/// [`Request::reply`]: crate::Request::reply
/// [`Request::reply_to`]: crate::Request::reply_to
///
/// ```
/// use std::time::Duration;
/// use switchboard::Completion;
///
/// // Two replies, or any reply above 100, or half a second: whichever comes first.
/// let until = Completion::<u32>::within(Duration::from_millis(500))
///     .first(2)
///     .when(|replies| replies.iter().any(|r| *r.body() > 100));
/// # let _ = until;
/// ```
pub struct Completion<Rep> {
    deadline: Instant,
    first: Option<usize>,
    when: Option<Box<Predicate<Rep>>>,
}

impl<Rep> Completion<Rep> {
    /// Complete once every responder reached replied (each counted once, however often it
    /// replies), or after `timeout`.
    pub fn within(timeout: Duration) -> Completion<Rep> {
        Completion::until(deadline_after(timeout))
    }

    /// Complete once every responder reached replied, or at `deadline`.
    pub fn until(deadline: Instant) -> Completion<Rep> {
        Completion {
            deadline,
            first: None,
            when: None,
        }
    }

    /// Also complete after the first `n` replies (replies, not responders: one that answers
    /// twice counts twice here). With `n` 0 the gather completes at once, as `First(0)`, once
    /// the request is out.
    pub fn first(mut self, n: usize) -> Completion<Rep> {
        self.first = Some(n);
        self
    }

    /// Also complete as soon as `done` holds over the replies gathered so far (checked before
    /// the first reply and after each one). The predicate is `Send`, as is the `Completion`: one
    /// can be built on one thread and used on another.
    pub fn when(
        mut self,
        done: impl Fn(&[Reply<Rep>]) -> bool + Send + 'static,
    ) -> Completion<Rep> {
        self.when = Some(Box::new(done));
        self
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl<Rep> fmt::Debug for Completion<Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("deadline", &self.deadline)
            .field("first", &self.first)
            .field("when", &self.when.as_ref().map(|_| ".."))
            .finish()
    }
}

/// What completed a gather. When several conditions hold at once, the first in this order is
/// reported: `All`, `First`, `Predicate`.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Completed, Completion, Endpoint, Message, Request, ScatterGather, Topic};
///
/// let topic: Topic<Request<(), u8>> = Topic::new();
/// for i in 0..3 {
///     topic.subscribe_endpoint(Endpoint::from_fn(move |m: Message<Request<(), u8>>| {
///         let _ = m.into_payload().reply(i);
///         Ok(())
///     }));
/// }
/// let sg = ScatterGather::new(&topic);
/// let all = sg.scatter((), Completion::within(Duration::from_secs(1))).unwrap();
/// assert_eq!(all.completed(), Completed::All);
/// let two = sg.scatter((), Completion::within(Duration::from_secs(1)).first(2)).unwrap();
/// assert_eq!(two.completed(), Completed::First(2));
/// assert_eq!(two.completed().to_string(), "first 2 replies");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Completed {
    /// Every responder the request reached replied (as many copies of the request replied as
    /// it reached, through their own return addresses: see [`Completion`] on counting; over a
    /// recipient list, every recipient it reached among them).
    All,
    /// The first `n` replies came ([`Completion::first`]).
    First(usize),
    /// The predicate held ([`Completion::when`]).
    Predicate,
    /// The deadline passed.
    Deadline,
    /// No more replies could come: every responder that did not reply dropped the request.
    NoMoreReplies,
}

/// Says what completed a gather in a few words (`"all replied"`, `"first 3 replies"`).
impl fmt::Display for Completed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Completed::All => f.write_str("all replied"),
            Completed::First(1) => f.write_str("first reply"),
            Completed::First(n) => write!(f, "first {n} replies"),
            Completed::Predicate => f.write_str("condition met"),
            Completed::Deadline => f.write_str("deadline passed"),
            Completed::NoMoreReplies => f.write_str("no more replies could come"),
        }
    }
}

/// The result of a scatter-gather: what completed it, each reply with its responder, and who did
/// not reply.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Completed, Completion, Endpoint, Message, RecipientList, Request, Route, ScatterGather};
///
/// type Quote = Request<&'static str, u32>;
/// let supplier = |price: u32| {
///     Endpoint::from_fn(move |m: Message<Quote>| {
///         let _ = m.into_payload().reply(price);
///         Ok(())
///     })
/// };
/// let suppliers = RecipientList::new(Route::all());
/// suppliers.add("acme", supplier(120));
/// suppliers.add("globex", supplier(95));
/// suppliers.add("silent", Endpoint::from_fn(|_m: Message<Quote>| Ok(()))); // drops the request
///
/// let sg = ScatterGather::new(&suppliers);
/// let got = sg.scatter("widget", Completion::within(Duration::from_secs(5))).unwrap();
/// assert_eq!(got.completed(), Completed::NoMoreReplies); // "silent" will never answer
/// assert_eq!(got.expected(), 3);
/// assert_eq!(got.missing(), ["silent"]);
/// let best = got.fold(None, |best: Option<(&str, u32)>, r| match best {
///     Some((_, p)) if p <= *r.body() => best,
///     _ => Some((r.responder().unwrap(), *r.body())),
/// });
/// assert_eq!(best, Some(("globex", 95)));
/// ```
#[derive(Clone)]
pub struct Gathered<Rep> {
    correlation_id: CorrelationId,
    completed: Completed,
    expected: usize,
    /// Responders (request copies) that replied, each once however often it replied.
    answered: usize,
    replies: Vec<Reply<Rep>>,
    missing: Vec<String>,
    unreached: Vec<String>,
    elapsed: Duration,
}

impl<Rep> Gathered<Rep> {
    /// What completed the gather.
    pub fn completed(&self) -> Completed {
        self.completed
    }

    /// The correlation id of the request.
    pub fn correlation_id(&self) -> CorrelationId {
        self.correlation_id
    }

    /// How many responders the request reached: the subscriptions of a topic, one for a queue,
    /// and for a list what its recipients reached (a topic recipient counts its subscriptions).
    pub fn expected(&self) -> usize {
        self.expected
    }

    /// The replies, in arrival order, each with its responder.
    pub fn replies(&self) -> &[Reply<Rep>] {
        &self.replies
    }

    /// The replies, by value.
    pub fn into_replies(self) -> Vec<Reply<Rep>> {
        self.replies
    }

    /// The names of the responders that replied (those that have one), in arrival order.
    pub fn responders(&self) -> Vec<&str> {
        self.replies.iter().filter_map(Reply::responder).collect()
    }

    /// The recipients the request reached that did not reply (recipient-list scatters; empty
    /// for a topic, whose subscribers have no names: see [`missing_count`](Gathered::missing_count)).
    /// A recipient whose only replies came through the message's shared metadata address is
    /// among them: such a reply names no recipient (see [`Completion`]).
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// How many responders the request reached did not reply. A responder that replied more
    /// than once counts once (so does a request redelivered by a queue and answered by two
    /// consumers: it is one copy of the request). A consumer that took such a request by value
    /// ([`Delivery::ack_into_message`](crate::Delivery::ack_into_message) while the earlier
    /// holder still had it) holds a clone, which replies as a copy of its own: over a recipient
    /// list, each recipient that did not reply still counts here, and keeps the gather from
    /// completing as [`Completed::All`]; over a topic, whose subscribers have no names, it can
    /// stand in for a responder that did not reply.
    pub fn missing_count(&self) -> usize {
        self.expected.saturating_sub(self.answered)
    }

    /// The recipients the route chose that the request did not reach (full, closed, refused,
    /// unknown, or a topic without subscribers), for recipient-list scatters.
    pub fn unreached(&self) -> &[String] {
        &self.unreached
    }

    /// Whether every responder reached replied.
    pub fn is_complete(&self) -> bool {
        self.missing_count() == 0
    }

    /// How long the gather took, from scatter to completion.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Folds the replies into one value (the Aggregator): the best quote, a sum, a merge.
    pub fn fold<'a, A>(&'a self, init: A, f: impl FnMut(A, &'a Reply<Rep>) -> A) -> A {
        self.replies.iter().fold(init, f)
    }
}

/// Lists the replies by responder, never their bodies.
impl<Rep> fmt::Debug for Gathered<Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gathered")
            .field("correlation_id", &self.correlation_id)
            .field("completed", &self.completed)
            .field("expected", &self.expected)
            .field("replies", &self.replies)
            .field("missing", &self.missing)
            .field("unreached", &self.unreached)
            .finish()
    }
}

/// A scatter could not start: the request reached nobody or was refused.
///
/// A gather that ends with fewer replies than expected is not an error: the [`Gathered`] result
/// says what completed it and who did not reply.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Completion, GatherError, Request, ScatterGather, Topic};
///
/// let empty: Topic<Request<(), ()>> = Topic::new();
/// let err = ScatterGather::new(&empty).scatter((), Completion::within(Duration::from_secs(60))).unwrap_err();
/// assert_eq!(err, GatherError::NoResponder); // at once
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum GatherError {
    /// The request reached nobody (a closed endpoint, a topic without subscribers or none of
    /// whose subscriptions took it, a route that chose nobody). A subscription that filters the
    /// request out, or is full under [`Overflow::DropNewest`](crate::Overflow::DropNewest) and
    /// drops it, took nothing: that is its policy, not a failure of the publish.
    #[error("no responder: the request reached nobody")]
    NoResponder,
    /// The endpoint had no room for the request before the deadline. Over a topic, only when no
    /// subscription took it and one was full under [`Overflow::Block`](crate::Overflow::Block)
    /// or [`Overflow::Error`](crate::Overflow::Error): subscriptions that had room are gathered
    /// from, the full ones are left out of [`Gathered::expected`].
    #[error("no room for the request before the deadline")]
    Full,
    /// The endpoint refused the request.
    #[error("request rejected: {0}")]
    Rejected(String),
    /// The route chose a name the recipient list does not hold, under
    /// [`UnknownRecipients::Error`](crate::UnknownRecipients::Error).
    #[error("unknown recipient {0}")]
    UnknownRecipient(String),
    /// A recipient failed under [`OnFailure::Stop`](crate::OnFailure::Stop).
    #[error("recipient {name} failed: {outcome}")]
    RecipientFailed {
        /// The recipient.
        name: String,
        /// What happened to it.
        outcome: String,
    },
}

/// Sends one request to several responders and gathers their replies (the Scatter-Gather pattern).
///
/// The request goes through a [`Topic`](crate::Topic) (an auction: whoever subscribes answers)
/// or a [`RecipientList`](crate::RecipientList) (a distribution: the responders its route
/// chooses; each reply then carries the recipient name). Replies come back on a private reply
/// channel of this one request, matched by correlation id: a reply to an earlier request that
/// timed out is counted as late ([`ConversationStats::late`]) and never seen by a later one.
/// [`Completion`] says when to stop; [`Gathered::fold`] aggregates. Responders may reply with an
/// error value (make `Rep` a `Result`): the gather sees it like any reply.
///
/// `Clone` gives another handle (same endpoint, same counters); gathers from many threads at
/// once are independent.
///
/// ```
/// use std::thread;
/// use std::time::Duration;
/// use switchboard::{Completed, Completion, Request, ScatterGather, Topic};
///
/// let auction: Topic<Request<&str, Result<u32, String>>> = Topic::new();
/// let bidders: Vec<_> = [Ok(30), Err("out of stock".to_string()), Ok(25)]
///     .into_iter()
///     .enumerate()
///     .map(|(i, bid)| {
///         let sub = auction.subscribe();
///         thread::spawn(move || {
///             let req = sub.recv().unwrap().into_payload();
///             let _ = req.reply_as(format!("bidder-{i}"), bid);
///         })
///     })
///     .collect();
/// let sg = ScatterGather::new(&auction);
/// let got = sg.scatter("lamp", Completion::within(Duration::from_secs(5))).unwrap();
/// assert_eq!(got.completed(), Completed::All);
/// let best = got.fold(None, |best: Option<u32>, r| match (r.body(), best) {
///     (Ok(p), Some(b)) if *p >= b => best,
///     (Ok(p), _) => Some(*p),
///     (Err(_), _) => best,
/// });
/// assert_eq!(best, Some(25));
/// assert_eq!(got.replies().iter().filter(|r| r.body().is_err()).count(), 1);
/// bidders.into_iter().for_each(|b| b.join().unwrap());
/// ```
pub struct ScatterGather<Req, Rep> {
    endpoint: Endpoint<Request<Req, Rep>>,
    stats: Arc<Stats>,
}

impl<Req, Rep> ScatterGather<Req, Rep> {
    /// Scatters through `endpoint`: a topic (auction) or a recipient list (distribution); a queue
    /// or a closure reaches one responder.
    pub fn new(endpoint: impl Into<Endpoint<Request<Req, Rep>>>) -> ScatterGather<Req, Rep> {
        ScatterGather {
            endpoint: endpoint.into(),
            stats: Arc::default(),
        }
    }

    /// The endpoint requests are scattered through.
    pub fn endpoint(&self) -> &Endpoint<Request<Req, Rep>> {
        &self.endpoint
    }

    /// Counters across all gathers of this handle (and its clones).
    pub fn stats(&self) -> ConversationStats {
        ConversationStats::of(&self.stats)
    }
}

impl<Req, Rep> ScatterGather<Req, Rep>
where
    Req: Clone,
    Rep: Send + 'static,
{
    /// Scatters a request and gathers replies until `completion`.
    ///
    /// Delivering the request may wait for room until the completion's deadline. Through a
    /// topic, subscriptions that stay full (their overflow policy refuses, or the deadline
    /// passes) do not get it; the gather waits for the subscriptions that did.
    ///
    /// # Errors
    ///
    /// [`GatherError`] when the request reached nobody or was refused; reported at once.
    ///
    /// # Panics
    ///
    /// If dropping a reply that came but was not read panics (a reply whose `Drop` panics):
    /// it is counted late and the gather closed first; the replies gathered go with the unwind.
    pub fn scatter(
        &self,
        req: impl Into<Message<Req>>,
        completion: Completion<Rep>,
    ) -> Result<Gathered<Rep>, GatherError> {
        let start = Instant::now();
        let deadline = completion.deadline;
        let (inbox, meta, msg) = stamp(req.into(), &self.stats);
        let closing = inbox::Closing(&inbox);
        let correlation_id = inbox.correlation_id;
        // Whether the scatter failed for want of room (and so, at the deadline, timed out).
        let mut no_room = false;
        let reached = match self.endpoint.as_recipient_list() {
            Some(list) => {
                let mut later = Vec::new();
                let named = list.dispatch_reach(
                    msg,
                    Wait::Until(deadline),
                    |name, m| m.payload_mut().reply_to.set_recipient(Arc::clone(name)),
                    &mut later,
                );
                drop(later);
                match named {
                    Ok((_, Some(back), 0, _)) => Err(not_scattered(back)),
                    Ok((report, _, reach, reaching)) => {
                        // A recipient that fans out (a topic) reached several responders, and
                        // one with no subscribers none: wait for the responders reached, not
                        // for one reply per name. A topic with some subscriptions full reached
                        // the others: its replies are awaited, so it counts as reached; one
                        // with no subscribers reached nobody, so it is unreached.
                        let reaching = SmallSet::from(reaching);
                        let reached = |n: &str| reaching.contains(n);
                        let names: Vec<String> = report
                            .iter()
                            .filter(|(n, _)| reached(n))
                            .map(|(n, _)| n.to_owned())
                            .collect();
                        let unreached = report
                            .iter()
                            .filter(|(n, _)| !reached(n))
                            .map(|(n, _)| n.to_owned())
                            .collect();
                        Ok((reach, names, unreached))
                    }
                    Err((RecipientListError::UnknownRecipient { name, .. }, _)) => {
                        Err(GatherError::UnknownRecipient(name))
                    }
                    Err((
                        RecipientListError::Stopped { report, error }
                        | RecipientListError::Undelivered { report, error },
                        _,
                    )) => match report.iter().find(|(_, o)| o.is_failure()) {
                        Some((name, outcome)) => {
                            no_room = *outcome == Outcome::Full;
                            Err(GatherError::RecipientFailed {
                                name: name.to_owned(),
                                outcome: outcome.to_string(),
                            })
                        }
                        // No recipient failed: the list refused the request itself (a
                        // delivery loop), with an empty report. Found by review: this named
                        // an empty recipient with an empty outcome.
                        None => Err(not_scattered(error)),
                    },
                }
            }
            None => match self.endpoint.deliver_to_some(msg, Wait::Until(deadline)) {
                Ok(n) => Ok((n, Vec::new(), Vec::new())),
                Err(e) => Err(not_scattered(e)),
            },
        };
        let (expected, names, unreached) = match reached {
            Ok((0, ..)) | Err(GatherError::NoResponder) => {
                drop(closing);
                Stats::bump(&self.stats.no_responder);
                return Err(GatherError::NoResponder);
            }
            Ok(r) => r,
            Err(e) => {
                drop(closing);
                if (no_room || e == GatherError::Full) && Instant::now() >= deadline {
                    // It waited for room until the deadline (an `Overflow::Error` subscription
                    // refuses at once: not a time-out); a list stopped at a full recipient
                    // too (found by review: not counted).
                    Stats::bump(&self.stats.timed_out);
                }
                return Err(e);
            }
        };

        let mut replies: Vec<Reply<Rep>> = Vec::with_capacity(expected);
        // The request copies that replied: a copy answered twice (a responder replying more
        // than once, or a request redelivered and answered by two consumers) counts once, so
        // that `All` waits for every responder (found by review: two replies from one
        // responder completed a gather of two). Replies through the message's own return
        // address cannot tell copies apart: they count as replies, not as responders (found by
        // review: one responder answering twice that way completed a gather as `All` while
        // another had not replied).
        let (mut answered, mut copies) = (0usize, SmallSet::<u32>::new());
        // For a list scatter, the reached recipients that replied: `All` also waits for each of
        // them, so that a copy made of a copy (a queue's `ack_into_message` of a redelivered
        // request, which clones it) cannot stand in for a recipient that did not reply.
        let reached: SmallSet<&str> = names.iter().map(String::as_str).collect();
        let (mut named, mut named_replied) = (SmallSet::<Arc<str>>::new(), 0usize);
        // Replies that came while the request was delivered (responders that answer inline, or
        // while the delivery waited for room until the deadline) came in time: they are read
        // whatever the clock says by then. If every responder had let go by then (read before
        // the queue: a reply is queued before its release), no reply can come after them, and
        // a gather whose responders all let go unanswered ends as `NoMoreReplies`, not at the
        // deadline. Read once, not at each look: a reply that comes after the deadline
        // releases its responder too, and must not count as in time (all found by review).
        let gone_in_time = !inbox.has_live();
        let mut in_time = inbox.queued();
        let completed = loop {
            if answered >= expected && named_replied >= names.len() {
                break Completed::All;
            }
            if let Some(n) = completion.first.filter(|n| replies.len() >= *n) {
                break Completed::First(n);
            }
            if completion.when.as_ref().is_some_and(|done| done(&replies)) {
                break Completed::Predicate;
            }
            // `wait` hands over a reply already there without a look at the clock: replies that
            // kept coming held a gather past its deadline for as long as they came (found by
            // review). The gather ends at its deadline; replies still unread are late.
            if in_time == 0 && !gone_in_time && Instant::now() >= deadline {
                Stats::bump(&self.stats.timed_out);
                break Completed::Deadline;
            }
            in_time = in_time.saturating_sub(1);
            match inbox.wait(deadline) {
                Next::Reply(r) => {
                    Stats::bump(&self.stats.replies);
                    if r.copy != UNKNOWN_COPY && copies.insert(r.copy) {
                        answered += 1;
                    }
                    if let Some(n) = r.recipient.as_ref() {
                        if reached.contains(&**n) && named.insert(Arc::clone(n)) {
                            named_replied += 1;
                        }
                    }
                    replies.push(r);
                }
                Next::Exhausted => {
                    if replies.is_empty() {
                        Stats::bump(&self.stats.unanswered);
                    }
                    break Completed::NoMoreReplies;
                }
                Next::Timeout => {
                    Stats::bump(&self.stats.timed_out);
                    break Completed::Deadline;
                }
            }
        };
        drop(closing);
        drop(inbox);
        inbox::recycle(meta);
        drop(reached);
        // Each reached recipient that did not reply reached at least one responder that did not.
        let answered = answered.min(expected.saturating_sub(names.len() - named_replied));
        // A scan of the replies while they are few (no allocation), a hash set past that.
        let replied = (replies.len() > LINEAR_MAX).then(|| {
            replies
                .iter()
                .filter_map(Reply::recipient)
                .collect::<HashSet<&str>>()
        });
        let missing = names
            .into_iter()
            .filter(|n| match &replied {
                Some(set) => !set.contains(n.as_str()),
                None => !replies.iter().any(|r| r.recipient() == Some(n)),
            })
            .collect();
        Ok(Gathered {
            correlation_id,
            completed,
            expected,
            answered,
            replies,
            missing,
            unreached,
            elapsed: start.elapsed(),
        })
    }
}

impl<Req, Rep> Clone for ScatterGather<Req, Rep> {
    /// Another handle: same endpoint, same counters.
    fn clone(&self) -> Self {
        ScatterGather {
            endpoint: self.endpoint.clone(),
            stats: Arc::clone(&self.stats),
        }
    }
}

impl<Req, Rep> fmt::Debug for ScatterGather<Req, Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScatterGather")
            .field("endpoint", &self.endpoint)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Why a request that reached nobody was not scattered, as a request-reply says it
/// ([`undelivered`]) in a gather's terms.
fn not_scattered<T>(e: crate::DeliverError<T>) -> GatherError {
    match undelivered(e) {
        RequestError::Full => GatherError::Full,
        RequestError::Rejected(r) => GatherError::Rejected(r),
        _ => GatherError::NoResponder,
    }
}
