//! `RecipientList<T>`: route each message to the named endpoints a routing function chooses.
//!
//! The Recipient List pattern: a list of named recipients (any [`Endpoint`]: queues, topics,
//! closures, other lists) and a [`Route`] that says, per message, which names get it. Each chosen
//! recipient gets the message once: the metadata is shared between the copies, the payload cloned
//! per recipient (the last one gets the original), so an `Arc` payload costs a reference count per
//! recipient.
//!
//! # Changing the recipients
//!
//! [`add`](RecipientList::add) and [`remove`](RecipientList::remove) work at run time, while other
//! threads send. The recipient set is copy-on-write: a change builds a new set and swaps it in; a
//! send borrows the set current when it starts and never waits for a change.
//!
//! # Reports and policies
//!
//! [`send`](RecipientList::send) returns a [`RecipientReport`]: one [`Outcome`] per chosen name, in
//! route order. Two policies, set on the [builder](RecipientListBuilder), say what goes wrong
//! loudly:
//!
//! - [`UnknownRecipients`]: a name the route chose but the list does not hold is `Skip`ped
//!   (reported as [`Outcome::Unknown`], the default) or an `Error`: the send fails before any
//!   recipient gets the message.
//! - [`OnFailure`]: a recipient that is full, closed or refuses the message either does not stop
//!   the others (`Continue`, the default; the report says who failed) or stops the send at once
//!   (`Stop`): the rest are reported [`Outcome::Skipped`] (chosen names the list does not hold
//!   stay [`Outcome::Unknown`]) and the error hands the message back.
//!
//! # Time-to-live
//!
//! A list routes; it does not stamp: a message's time-to-live runs from the queue or topic that
//! stamped it last. A closure recipient is never called with a message that has no time left:
//! one with a time-to-live of zero (what a topic hands on to its endpoints when the message
//! expired there, and what expires on arrival in any queue), or, on a list given the
//! [clock](RecipientListBuilder::clock) that stamped its messages, one whose time ran out before
//! the list reached the recipient (after a wait for room in an earlier one, say). Its outcome is
//! [`Outcome::Expired`]. A queue, topic or list recipient gets the message with no time left, so
//! that it expires there by that endpoint's own rules (a queue counts it and, if it says so,
//! dead-letters it), as a topic does for its endpoint subscriptions. A list without a clock
//! judges no other expiry: it cannot tell which clock stamped a message (a topic's manual one,
//! say), and judging it on the wrong one would lose live messages.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::chunked::Chunked;
use crate::clock::Clock;
use crate::endpoint::{
    deadline_after, on_path, DeliverError, Endpoint, Partial, Visit, Wait, LOOP,
};
use crate::message::{AttrValue, Message};
use crate::small_set::{SmallSet, LINEAR_MAX};

/// The attribute [`Route::by_attribute`] reads by default: `"recipients"`.
pub const RECIPIENTS_ATTR: &str = "recipients";

type RouteFn<T> = dyn Fn(&Message<T>, &mut dyn FnMut(&str)) + Send + Sync;

/// Which recipients get a message: a routing function over the message.
///
/// A route yields names; duplicates are ignored (each recipient gets a message once), names the
/// list does not hold are handled by its [`UnknownRecipients`] policy.
///
/// ```
/// use switchboard::{Message, Queue, RecipientList, Route};
///
/// let (eu, us) = (Queue::unbounded(), Queue::unbounded());
/// let by_region = Route::from_fn(|m: &Message<u32>| {
///     if *m.payload() >= 100 { vec!["eu", "us"] } else { vec!["eu"] }
/// });
/// let list = RecipientList::new(by_region);
/// list.add("eu", &eu);
/// list.add("us", &us);
/// list.send(5).unwrap();
/// list.send(500).unwrap();
/// assert_eq!((eu.len(), us.len()), (2, 1));
/// ```
pub struct Route<T> {
    kind: RouteKind<T>,
}

enum RouteKind<T> {
    All,
    To(Vec<String>),
    Attr(String),
    Fn(Arc<RouteFn<T>>),
}

impl<T> Route<T> {
    /// Every current recipient, in name order.
    pub fn all() -> Route<T> {
        Route {
            kind: RouteKind::All,
        }
    }

    /// A static list of names: every message goes to these.
    ///
    /// ```
    /// use switchboard::{Queue, RecipientList, Route};
    ///
    /// let (a, b, c) = (Queue::unbounded(), Queue::unbounded(), Queue::unbounded());
    /// let list = RecipientList::new(Route::to(["a", "c"]));
    /// list.add("a", &a);
    /// list.add("b", &b);
    /// list.add("c", &c);
    /// assert_eq!(list.send("x").unwrap().delivered(), 2);
    /// assert_eq!((a.len(), b.len(), c.len()), (1, 0, 1));
    /// ```
    pub fn to<I>(names: I) -> Route<T>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Route {
            kind: RouteKind::To(names.into_iter().map(Into::into).collect()),
        }
    }

    /// The names in the message attribute `key`: a string names one recipient, a string list
    /// several; a message without the attribute (or with another type) goes to nobody.
    ///
    /// ```
    /// use switchboard::{Message, Queue, RecipientList, Route, RECIPIENTS_ATTR};
    ///
    /// let (a, b) = (Queue::<u8>::unbounded(), Queue::unbounded());
    /// let list = RecipientList::new(Route::by_attribute(RECIPIENTS_ATTR));
    /// list.add("a", &a);
    /// list.add("b", &b);
    /// list.send(Message::new(1u8).with_attr("recipients", ["a", "b"])).unwrap();
    /// list.send(Message::new(2u8).with_attr("recipients", "b")).unwrap();
    /// assert_eq!((a.len(), b.len()), (1, 2));
    /// ```
    pub fn by_attribute(key: impl Into<String>) -> Route<T> {
        Route {
            kind: RouteKind::Attr(key.into()),
        }
    }

    /// A routing function: the names it returns (any iterable of strings) get the message.
    ///
    /// The function runs on the sending thread, once per send; it should be quick.
    pub fn from_fn<F, I>(f: F) -> Route<T>
    where
        F: Fn(&Message<T>) -> I + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Route {
            kind: RouteKind::Fn(Arc::new(
                move |m: &Message<T>, out: &mut dyn FnMut(&str)| {
                    for name in f(m) {
                        out(name.as_ref());
                    }
                },
            )),
        }
    }

    /// Calls `out` with each name chosen for `msg` (for `All`, the caller walks the set).
    fn names(&self, msg: &Message<T>, out: &mut dyn FnMut(&str)) {
        match &self.kind {
            RouteKind::All => {}
            RouteKind::To(names) => names.iter().for_each(|n| out(n)),
            RouteKind::Attr(key) => match msg.attr(key) {
                Some(AttrValue::String(s)) => out(s),
                Some(AttrValue::StringList(l)) => l.iter().for_each(|n| out(n)),
                _ => {}
            },
            RouteKind::Fn(f) => f(msg, out),
        }
    }
}

impl<T> Clone for Route<T> {
    fn clone(&self) -> Self {
        let kind = match &self.kind {
            RouteKind::All => RouteKind::All,
            RouteKind::To(n) => RouteKind::To(n.clone()),
            RouteKind::Attr(k) => RouteKind::Attr(k.clone()),
            RouteKind::Fn(f) => RouteKind::Fn(Arc::clone(f)),
        };
        Route { kind }
    }
}

impl<T> fmt::Debug for Route<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RouteKind::All => f.write_str("Route::All"),
            RouteKind::To(n) => f.debug_tuple("Route::To").field(n).finish(),
            RouteKind::Attr(k) => f.debug_tuple("Route::ByAttribute").field(k).finish(),
            RouteKind::Fn(_) => f.write_str("Route::Fn(..)"),
        }
    }
}

/// What to do with a name the route chose but the list does not hold.
///
/// ```
/// use switchboard::{Outcome, RecipientList, Route, UnknownRecipients};
///
/// let skip = RecipientList::<u8>::new(Route::to(["ghost"]));
/// assert_eq!(skip.send(1).unwrap().get("ghost"), Some(&Outcome::Unknown));
///
/// let strict = RecipientList::<u8>::builder()
///     .route(Route::to(["ghost"]))
///     .unknown(UnknownRecipients::Error)
///     .build();
/// assert_eq!(strict.send(1).unwrap_err().to_string(), "unknown recipient ghost");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UnknownRecipients {
    /// Report it as [`Outcome::Unknown`] and deliver to the others (the default).
    #[default]
    Skip,
    /// Fail the send before any recipient gets the message
    /// ([`RecipientListError::UnknownRecipient`]).
    Error,
}

/// What to do when a recipient cannot take the message (full, closed, refused).
///
/// ```
/// use switchboard::{OnFailure, Outcome, Queue, RecipientList, Route};
///
/// let (full, ok) = (Queue::bounded(0), Queue::unbounded());
/// let list = RecipientList::builder()
///     .route(Route::to(["full", "ok"]))
///     .on_failure(OnFailure::Stop)
///     .recipient("full", &full)
///     .recipient("ok", &ok)
///     .build();
/// let err = list.try_send(1).unwrap_err();
/// let report = err.report().unwrap();
/// assert_eq!(report.get("full"), Some(&Outcome::Full));
/// assert_eq!(report.get("ok"), Some(&Outcome::Skipped));
/// assert_eq!(err.into_inner().into_payload(), 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnFailure {
    /// Deliver to the other recipients; the report says who failed (the default).
    #[default]
    Continue,
    /// Stop at the first failure: later recipients are [`Outcome::Skipped`] (chosen names the
    /// list does not hold stay [`Outcome::Unknown`]) and the send fails with
    /// [`RecipientListError::Stopped`], handing the message back.
    Stop,
}

/// What happened to a message at one chosen recipient.
///
/// ```
/// use switchboard::{Outcome, Queue, RecipientList, Route};
///
/// let (q, log) = (Queue::bounded(1), Queue::unbounded());
/// let list = RecipientList::new(Route::to(["q", "log", "nobody"]));
/// list.add("q", &q);
/// list.add("log", &log);
/// list.try_send(1).unwrap();
/// let report = list.try_send(2).unwrap();
/// assert_eq!(report.get("q"), Some(&Outcome::Full));
/// assert_eq!(report.get("log"), Some(&Outcome::Delivered));
/// assert!(report.get("q").unwrap().is_failure());
/// assert_eq!(report.get("nobody").unwrap().to_string(), "unknown name");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The recipient took it.
    Delivered,
    /// The recipient was full (a queue at capacity, a topic subscription that could not take it).
    Full,
    /// The recipient was closed.
    Closed,
    /// The route chose a name the list does not hold.
    Unknown,
    /// The recipient refused the message (a validator, a closure), for this reason.
    Rejected(String),
    /// Not tried: an earlier recipient failed under [`OnFailure::Stop`].
    Skipped,
    /// Not called: the recipient is a closure, and the message had no time left to live when
    /// the list reached it (see [Time-to-live](crate::recipient_list#time-to-live)).
    Expired,
}

impl Outcome {
    /// Whether the recipient got the message.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered)
    }

    /// Whether a recipient failed to take the message (full, closed or rejected).
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Full | Outcome::Closed | Outcome::Rejected(_))
    }

    fn of<T>(err: &DeliverError<T>) -> Outcome {
        match err {
            DeliverError::Full(_) => Outcome::Full,
            DeliverError::Closed(_) => Outcome::Closed,
            DeliverError::Rejected { reason, .. } => Outcome::Rejected(reason.clone()),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Delivered => f.write_str("delivered"),
            Outcome::Full => f.write_str("full"),
            Outcome::Closed => f.write_str("closed"),
            Outcome::Unknown => f.write_str("unknown name"),
            Outcome::Rejected(r) => write!(f, "rejected: {r}"),
            Outcome::Skipped => f.write_str("skipped"),
            Outcome::Expired => f.write_str("expired"),
        }
    }
}

/// What one send did, recipient by recipient, in route order.
///
/// ```
/// use switchboard::{Outcome, Queue, RecipientList, Route};
///
/// let (a, closed) = (Queue::unbounded(), Queue::unbounded());
/// closed.close();
/// let list = RecipientList::new(Route::to(["a", "closed", "nobody"]));
/// list.add("a", &a);
/// list.add("closed", &closed);
/// let report = list.send("hi").unwrap();
/// let outcomes: Vec<_> = report.iter().map(|(n, o)| (n, o.clone())).collect();
/// assert_eq!(outcomes, [("a", Outcome::Delivered), ("closed", Outcome::Closed), ("nobody", Outcome::Unknown)]);
/// assert_eq!((report.delivered(), report.failed(), report.unknown()), (1, 1, 1));
/// assert!(!report.is_complete());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RecipientReport {
    entries: Vec<(Arc<str>, Outcome)>,
}

impl RecipientReport {
    /// Each chosen name and its outcome, in route order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Outcome)> {
        self.entries.iter().map(|(n, o)| (&**n, o))
    }

    /// The outcome for `name`, if the route chose it.
    pub fn get(&self, name: &str) -> Option<&Outcome> {
        self.iter().find(|(n, _)| *n == name).map(|(_, o)| o)
    }

    /// The names that got the message, in route order.
    pub fn delivered_to(&self) -> impl Iterator<Item = &str> {
        self.iter()
            .filter(|(_, o)| o.is_delivered())
            .map(|(n, _)| n)
    }

    /// How many recipients got the message.
    pub fn delivered(&self) -> usize {
        self.count(Outcome::is_delivered)
    }

    /// How many recipients failed to take it (full, closed or rejected).
    pub fn failed(&self) -> usize {
        self.count(Outcome::is_failure)
    }

    /// How many chosen names the list does not hold.
    pub fn unknown(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Unknown))
    }

    /// How many recipients were not tried (after a failure under [`OnFailure::Stop`]).
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped))
    }

    /// How many closure recipients were not called because the message had expired.
    pub fn expired(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Expired))
    }

    /// How many names the route chose (duplicates once).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the route chose nobody.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether every chosen name got the message.
    pub fn is_complete(&self) -> bool {
        self.entries.iter().all(|(_, o)| o.is_delivered())
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.entries.iter().filter(|(_, o)| f(o)).count()
    }
}

impl fmt::Debug for RecipientReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(n, o)| (&**n, o)))
            .finish()
    }
}

/// A recipient-list send failed under an explicit policy; the message is handed back.
///
/// ```
/// use switchboard::{RecipientList, RecipientListError, Route, UnknownRecipients};
///
/// let list = RecipientList::<&str>::builder()
///     .route(Route::to(["billing"]))
///     .unknown(UnknownRecipients::Error)
///     .build();
/// let err = list.send("invoice").unwrap_err();
/// assert!(matches!(&err, RecipientListError::UnknownRecipient { name, .. } if name == "billing"));
/// assert_eq!(format!("{err:?}"), "UnknownRecipient { name: \"billing\", .. }");
/// assert_eq!(err.into_inner().into_payload(), "invoice");
/// ```
#[derive(Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RecipientListError<T> {
    /// The route chose a name the list does not hold, under [`UnknownRecipients::Error`]; no
    /// recipient got the message.
    #[error("unknown recipient {name}")]
    UnknownRecipient {
        /// The first unknown name.
        name: String,
        /// The message, undelivered.
        message: Message<T>,
    },
    /// A recipient failed under [`OnFailure::Stop`]: the recipients before it got the message,
    /// the rest were skipped.
    #[error("send stopped at a failing recipient: {error}")]
    Stopped {
        /// Outcomes up to the failure, and the skipped recipients.
        report: RecipientReport,
        /// The failing recipient's error, holding the message.
        error: DeliverError<T>,
    },
    /// Under [`OnFailure::Continue`], no chosen recipient took the message and at least one
    /// failed (full, closed or refusing): it comes back rather than being dropped. (A topic
    /// without subscribers takes a message: publishing to nobody is not an error.)
    #[error("no recipient took the message: {error}")]
    Undelivered {
        /// Every chosen recipient's outcome.
        report: RecipientReport,
        /// A failing recipient's error, holding the message: the first full one's if any
        /// recipient was full (a retry may get through), else the first failure's.
        error: DeliverError<T>,
    },
}

impl<T> RecipientListError<T> {
    /// The message that was not delivered (to all).
    pub fn into_inner(self) -> Message<T> {
        match self {
            RecipientListError::UnknownRecipient { message, .. } => message,
            RecipientListError::Stopped { error, .. }
            | RecipientListError::Undelivered { error, .. } => error.into_inner(),
        }
    }

    /// The report, when recipients were tried.
    pub fn report(&self) -> Option<&RecipientReport> {
        match self {
            RecipientListError::UnknownRecipient { .. } => None,
            RecipientListError::Stopped { report, .. }
            | RecipientListError::Undelivered { report, .. } => Some(report),
        }
    }
}

impl<T> fmt::Debug for RecipientListError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientListError::UnknownRecipient { name, .. } => f
                .debug_struct("UnknownRecipient")
                .field("name", name)
                .finish_non_exhaustive(),
            RecipientListError::Stopped { report, error } => f
                .debug_struct("Stopped")
                .field("report", report)
                .field("error", error)
                .finish(),
            RecipientListError::Undelivered { report, error } => f
                .debug_struct("Undelivered")
                .field("report", report)
                .field("error", error)
                .finish(),
        }
    }
}

/// An immutable recipient set, sorted by name. A writer's copy shares every chunk it does not
/// change (see `Chunked`): adding 20,000 recipients one by one took 8 s when each add copied
/// the whole set.
struct Set<T> {
    recipients: Chunked<(Arc<str>, Endpoint<T>)>,
    /// A static route ([`Route::to`]) resolved against this set once, when the set is made:
    /// the chosen names in route order without repeats, each with its recipient's position
    /// (`None`: not in the set). A send on a static route then looks nothing up.
    fixed: Option<Box<[Chosen]>>,
}

/// What a send did: its report, a failure's error under `Continue` (with its copy; see `back`), how
/// many final receivers got a copy, and the recipients that reached at least one of them (which
/// leaves out a topic with no subscribers, and takes in a topic whose delivery failed on some
/// full subscriptions but reached the others).
pub(crate) type Dispatched<T> = (
    RecipientReport,
    Option<DeliverError<T>>,
    usize,
    Vec<Arc<str>>,
);

/// A name a static route chooses, and its recipient's position in the set (`None`: unknown).
type Chosen = (Arc<str>, Option<usize>);

impl<T> Set<T> {
    /// The set of `recipients`. A static route is resolved here, on every change: a cost in
    /// the route's length, which a route naming thousands of recipients (rather than
    /// [`Route::all`]) pays on each add and remove.
    fn new(recipients: Chunked<(Arc<str>, Endpoint<T>)>, route: &Route<T>) -> Set<T> {
        let mut set = Set {
            recipients,
            fixed: None,
        };
        if let RouteKind::To(names) = &route.kind {
            let mut fixed: Vec<Chosen> = Vec::with_capacity(names.len());
            let mut seen = SmallSet::new();
            for name in names {
                if !seen.insert(name.as_str()) {
                    continue;
                }
                fixed.push(match set.find(name) {
                    Ok(i) => (Arc::clone(&set.recipients[i].0), Some(i)),
                    Err(_) => (Arc::from(name.as_str()), None),
                });
            }
            set.fixed = Some(fixed.into_boxed_slice());
        }
        set
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.recipients.binary_search_by(|(n, _)| (**n).cmp(name))
    }
}

/// The recipients' positions in the set, beside a send's report entries (`usize::MAX` for an
/// unknown name): inline for up to 8, so that a send allocates only its report.
struct Positions {
    inline: [usize; 8],
    len: usize,
    spill: Vec<usize>,
}

impl Positions {
    fn new() -> Positions {
        Positions {
            inline: [0; 8],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, i: usize) {
        if self.len < self.inline.len() {
            self.inline[self.len] = i;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(i);
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[usize] {
        if self.len <= self.inline.len() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

struct Shared<T> {
    set: ArcSwap<Set<T>>,
    writer: Mutex<()>,
    route: Route<T>,
    unknown: UnknownRecipients,
    on_failure: OnFailure,
    clock: Option<Clock>,
}

/// Routes each message to the named endpoints its [`Route`] chooses (the Recipient List pattern).
///
/// See the [module docs](crate::recipient_list) for policies and run-time changes. `Clone` gives
/// another handle to the same list. A list is an [`Endpoint`] too (`Endpoint::from(list)`), so a
/// topic can feed it and it can feed topics and other lists.
///
/// ```
/// use switchboard::{Message, Queue, RecipientList, Route, Topic};
///
/// let warehouse: Queue<&str> = Queue::unbounded();
/// let audit = Topic::new();
/// let audit_log = audit.subscribe();
/// let list = RecipientList::new(Route::by_attribute("recipients"));
/// list.add("warehouse", &warehouse);
/// list.add("audit", &audit);
///
/// let order = Message::new("order-7").with_attr("recipients", ["warehouse", "audit"]);
/// let report = list.send(order).unwrap();
/// assert!(report.is_complete());
/// assert_eq!(warehouse.recv().unwrap().into_payload(), "order-7");
/// assert_eq!(audit_log.recv().unwrap().into_payload(), "order-7");
///
/// list.remove("audit"); // at run time, while others may be sending
/// let order = Message::new("order-8").with_attr("recipients", ["warehouse", "audit"]);
/// let report = list.send(order).unwrap();
/// assert_eq!(report.unknown(), 1);
/// ```
pub struct RecipientList<T> {
    shared: Arc<Shared<T>>,
}

impl<T> RecipientList<T> {
    /// The list's identity (the address of its shared state), for loop detection.
    pub(crate) fn address(&self) -> usize {
        Arc::as_ptr(&self.shared) as *const () as usize
    }

    /// An empty list with this route and the default policies ([`UnknownRecipients::Skip`],
    /// [`OnFailure::Continue`]).
    pub fn new(route: Route<T>) -> RecipientList<T> {
        RecipientList::builder().route(route).build()
    }

    /// A builder: route, policies, initial recipients.
    pub fn builder() -> RecipientListBuilder<T> {
        RecipientListBuilder {
            route: Route::all(),
            unknown: UnknownRecipients::Skip,
            on_failure: OnFailure::Continue,
            recipients: Vec::new(),
            clock: None,
        }
    }

    /// Adds a recipient under `name`, replacing (and returning) one of the same name.
    ///
    /// Sends already under way keep the set they started with.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Queue, RecipientList, Route};
    ///
    /// let list = RecipientList::new(Route::all());
    /// assert!(list.add("a", Queue::<u8>::unbounded()).is_none());
    /// assert!(list.add("a", Queue::unbounded()).is_some());
    /// assert_eq!(list.names(), ["a"]);
    /// ```
    pub fn add(
        &self,
        name: impl Into<String>,
        endpoint: impl Into<Endpoint<T>>,
    ) -> Option<Endpoint<T>> {
        let name: Arc<str> = Arc::from(name.into());
        let endpoint = endpoint.into();
        let w = self.shared.writer.lock();
        let cur = self.shared.set.load_full();
        let mut recipients = cur.recipients.clone();
        let old = match cur.find(&name) {
            Ok(i) => recipients
                .get_mut(i)
                .map(|r| std::mem::replace(&mut r.1, endpoint)),
            Err(i) => {
                recipients.insert(i, (name, endpoint));
                None
            }
        };
        let prev = self.install(recipients);
        // The old set (which may own user code) goes outside the lock.
        drop(w);
        drop((prev, cur));
        old
    }

    /// Swaps in a set of `recipients` (resolving the route against it); returns the old set,
    /// for the caller to drop outside the writer lock. Called under the writer lock.
    fn install(&self, recipients: Chunked<(Arc<str>, Endpoint<T>)>) -> Arc<Set<T>> {
        self.shared
            .set
            .swap(Arc::new(Set::new(recipients, &self.shared.route)))
    }

    /// Removes the recipient `name`, returning it if it was there.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Queue, RecipientList, Route};
    ///
    /// let list = RecipientList::new(Route::all());
    /// list.add("a", Queue::<u8>::unbounded());
    /// assert!(list.remove("a").is_some());
    /// assert!(list.remove("a").is_none());
    /// assert!(list.is_empty());
    /// ```
    pub fn remove(&self, name: &str) -> Option<Endpoint<T>> {
        let w = self.shared.writer.lock();
        let cur = self.shared.set.load_full();
        let i = cur.find(name).ok()?;
        let mut recipients = cur.recipients.clone();
        let (_, old) = recipients.remove(i);
        let prev = self.install(recipients);
        drop(w);
        drop((prev, cur));
        Some(old)
    }

    /// Whether a recipient named `name` is in the list.
    pub fn contains(&self, name: &str) -> bool {
        self.shared.set.load().find(name).is_ok()
    }

    /// The recipient named `name`.
    pub fn get(&self, name: &str) -> Option<Endpoint<T>> {
        let set = self.shared.set.load();
        let i = set.find(name).ok()?;
        Some(set.recipients[i].1.clone())
    }

    /// Whether both handles are to the same list (as [`Queue::same_queue`](crate::Queue::same_queue)).
    ///
    /// ```
    /// use switchboard::{RecipientList, Route};
    ///
    /// let list: RecipientList<u8> = RecipientList::new(Route::all());
    /// assert!(list.same_list(&list.clone()));
    /// assert!(!list.same_list(&RecipientList::new(Route::all())));
    /// ```
    pub fn same_list(&self, other: &RecipientList<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The recipients' names, in name order.
    pub fn names(&self) -> Vec<String> {
        let set = self.shared.set.load();
        set.recipients.iter().map(|(n, _)| n.to_string()).collect()
    }

    /// How many recipients the list holds.
    pub fn len(&self) -> usize {
        self.shared.set.load().recipients.len()
    }

    /// Whether the list holds no recipient.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The unknown-name policy.
    pub fn unknown_policy(&self) -> UnknownRecipients {
        self.shared.unknown
    }

    /// The failing-recipient policy.
    pub fn failure_policy(&self) -> OnFailure {
        self.shared.on_failure
    }
}

impl<T: Clone> RecipientList<T> {
    /// Sends a message to every recipient its route chooses, waiting for room in full ones.
    ///
    /// Each chosen recipient gets the message once, in route order. A recipient is delivered to
    /// as by [`Endpoint::deliver`].
    ///
    /// # Errors
    ///
    /// Under the explicit policies: [`RecipientListError::UnknownRecipient`] under
    /// [`UnknownRecipients::Error`], [`RecipientListError::Stopped`] under [`OnFailure::Stop`].
    /// Under [`OnFailure::Continue`], failures are in the report, unless no recipient took the
    /// message: then [`RecipientListError::Undelivered`] hands it back. (When some took it, it
    /// is not handed back: a retry would give those a duplicate.) A send that comes back to this
    /// list while it delivers the same message (a delivery loop, on this thread) is refused:
    /// [`RecipientListError::Undelivered`] with a rejection and an empty report.
    ///
    /// # Panics
    ///
    /// If dropping a copy that a recipient refused panics (a payload whose `Drop` panics).
    /// Those drop only after every chosen recipient had its copy, so what is lost with the
    /// unwind is the result: the report, and the message a
    /// [`RecipientListError::Undelivered`] would have handed back.
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Queue, RecipientList, Route};
    ///
    /// let (a, b) = (Queue::unbounded(), Queue::unbounded());
    /// let list = RecipientList::new(Route::all());
    /// list.add("a", &a);
    /// list.add("b", &b);
    /// let report = list.send("hello").unwrap();
    /// assert_eq!(report.delivered_to().collect::<Vec<_>>(), ["a", "b"]);
    /// assert_eq!(b.recv().unwrap().into_payload(), "hello");
    /// ```
    pub fn send(
        &self,
        msg: impl Into<Message<T>>,
    ) -> Result<RecipientReport, RecipientListError<T>> {
        self.send_wait(msg.into(), Wait::Forever)
    }

    /// Sends without waiting: a full recipient is [`Outcome::Full`].
    ///
    /// # Errors
    ///
    /// As [`send`](RecipientList::send).
    ///
    /// # Examples
    ///
    /// ```
    /// use switchboard::{Outcome, Queue, RecipientList, Route};
    ///
    /// let q = Queue::bounded(1);
    /// let list = RecipientList::new(Route::to(["q"]));
    /// list.add("q", &q);
    /// assert!(list.try_send(1).unwrap().is_complete());
    /// // Nobody took the second: it comes back, with the report.
    /// let err = list.try_send(2).unwrap_err();
    /// assert_eq!(err.report().unwrap().get("q"), Some(&Outcome::Full));
    /// assert_eq!(err.into_inner().into_payload(), 2);
    /// ```
    pub fn try_send(
        &self,
        msg: impl Into<Message<T>>,
    ) -> Result<RecipientReport, RecipientListError<T>> {
        self.send_wait(msg.into(), Wait::Never)
    }

    /// Sends, waiting at most `timeout` in all for room in full recipients.
    ///
    /// # Errors
    ///
    /// As [`send`](RecipientList::send).
    pub fn send_timeout(
        &self,
        msg: impl Into<Message<T>>,
        timeout: Duration,
    ) -> Result<RecipientReport, RecipientListError<T>> {
        self.send_wait(msg.into(), Wait::Until(deadline_after(timeout)))
    }

    /// Sends, waiting until `deadline` at most for room in full recipients.
    ///
    /// # Errors
    ///
    /// As [`send`](RecipientList::send).
    pub fn send_deadline(
        &self,
        msg: impl Into<Message<T>>,
        deadline: Instant,
    ) -> Result<RecipientReport, RecipientListError<T>> {
        self.send_wait(msg.into(), Wait::Until(deadline))
    }

    pub(crate) fn send_wait(
        &self,
        msg: Message<T>,
        wait: Wait,
    ) -> Result<RecipientReport, RecipientListError<T>> {
        let mut later = Vec::new();
        let result = self.dispatch_reach(msg, wait, |_, _| {}, &mut later);
        // Every recipient had its copy: only now do the refused ones drop (user code).
        drop(later);
        match result {
            // Nobody took it (a recipient that failed on some of its own receivers but reached
            // others did): the message comes back instead of being dropped.
            Ok((report, Some(error), _, reaching))
                if reaching.is_empty() && report.delivered() == 0 =>
            {
                Err(RecipientListError::Undelivered { report, error })
            }
            Ok((report, ..)) => Ok(report),
            Err((e, _)) => Err(e),
        }
    }

    /// The send: resolves the route against the current set, then delivers a copy to each chosen
    /// recipient after `prepare` saw it. Under `Continue`, a failure's error (with its copy)
    /// comes back beside the report: the first full recipient's, else the first failure's. It also says how many final receivers got a copy: 1 for a
    /// queue or a closure recipient, the subscriptions a topic recipient reached, and so on down
    /// a nested list (what a scatter-gather waits for). The copies it could not deliver, past
    /// the one handed back, go in `later`: they drop (user code, which may panic) only once
    /// the caller's fan-out is over, so that a panicking drop keeps no copy from a recipient
    /// after them (found by an audit of payload drops).
    pub(crate) fn dispatch_reach(
        &self,
        msg: Message<T>,
        wait: Wait,
        mut prepare: impl FnMut(&Arc<str>, &mut Message<T>),
        later: &mut Vec<Message<T>>,
    ) -> Result<Dispatched<T>, (RecipientListError<T>, usize)> {
        // A delivery that leads back here with this message (a recipient that is this list, or
        // leads to it, or a closure recipient that sends it through this list) is a loop: refused.
        if on_path(self.address(), msg.id()) {
            let error = DeliverError::Rejected {
                message: msg,
                reason: LOOP.into(),
            };
            let report = RecipientReport::default();
            return Err((RecipientListError::Undelivered { report, error }, 0));
        }
        let shared = &*self.shared;
        let set = shared.set.load();
        let _visit = Visit::enter(self.address(), msg.id());

        // Resolve, in one vector that becomes the report: a known name starts as `Skipped`
        // (pending) and stays so if a failure stops the send before it. `at` keeps each entry's
        // position in the set, so that delivering looks nothing up again.
        let mut entries: Vec<(Arc<str>, Outcome)> = Vec::new();
        let mut at = Positions::new();
        let mut first_unknown: Option<String> = None;
        let mut unknown =
            |name: &str, entries: &mut Vec<(Arc<str>, Outcome)>, at: &mut Positions| {
                if shared.unknown == UnknownRecipients::Error {
                    first_unknown.get_or_insert_with(|| name.to_owned());
                } else {
                    entries.push((Arc::from(name), Outcome::Unknown));
                    at.push(usize::MAX);
                }
            };
        match (&shared.route.kind, &set.fixed) {
            (RouteKind::All, _) => {
                entries.reserve_exact(set.recipients.len());
                for (i, (n, _)) in set.recipients.iter().enumerate() {
                    entries.push((Arc::clone(n), Outcome::Skipped));
                    at.push(i);
                }
            }
            (_, Some(fixed)) => {
                entries.reserve_exact(fixed.len());
                for (n, i) in fixed.iter() {
                    match *i {
                        Some(i) => {
                            entries.push((Arc::clone(n), Outcome::Skipped));
                            at.push(i);
                        }
                        None => unknown(n, &mut entries, &mut at),
                    }
                }
            }
            _ => {
                // Each name once, however often the route repeats it: the positions chosen so
                // far are scanned while they are few (no allocation on a send), and hashed
                // past that, so a route naming thousands of recipients costs thousands of
                // steps, not millions. Unknown names (rare) go in a set of their own.
                let mut known: Option<HashSet<usize>> = None;
                let mut unknowns = SmallSet::new();
                shared.route.names(&msg, &mut |name| match set.find(name) {
                    Ok(i) => {
                        let new = match &mut known {
                            Some(k) => k.insert(i),
                            None => !at.as_slice().contains(&i),
                        };
                        if new {
                            entries.push((Arc::clone(&set.recipients[i].0), Outcome::Skipped));
                            at.push(i);
                            if known.is_none() && at.as_slice().len() > LINEAR_MAX {
                                known = Some(at.as_slice().iter().copied().collect());
                            }
                        }
                    }
                    Err(_) => {
                        if !unknowns.contains(name) {
                            unknowns.insert(Arc::<str>::from(name));
                            unknown(name, &mut entries, &mut at);
                        }
                    }
                })
            }
        }
        if let Some(name) = first_unknown {
            return Err((
                RecipientListError::UnknownRecipient { name, message: msg },
                0,
            ));
        }

        // Deliver: a clone to each known recipient, the original to the last.
        let last = entries.iter().rposition(|(_, o)| *o == Outcome::Skipped);
        let mut msg = Some(msg);
        let mut back: Option<DeliverError<T>> = None;
        let mut stopped = false;
        let mut reach = 0;
        let mut reaching = Vec::new();
        for (k, ((name, outcome), &i)) in entries.iter_mut().zip(at.as_slice()).enumerate() {
            if *outcome != Outcome::Skipped {
                continue;
            }
            let endpoint = &set.recipients[i].1;
            // A closure is not called with an expired message, and another endpoint gets it
            // with no time left (see the module docs). The time is read only for a message that
            // has some left and a stamp to run it from, on a list that has the clock.
            let ttl = msg.as_ref().and_then(Message::ttl);
            let expired = ttl.is_some_and(|t| {
                t.is_zero()
                    || shared.clock.as_ref().is_some_and(|c| {
                        msg.as_ref().is_some_and(|m| {
                            m.timestamp_nanos() != 0
                                && m.expiry_nanos().is_some_and(|at| at <= c.nanos())
                        })
                    })
            });
            if expired && endpoint.is_fn() {
                *outcome = Outcome::Expired;
                if Some(k) == last {
                    later.extend(msg.take());
                }
                continue;
            }
            let mut copy = if Some(k) == last {
                msg.take().expect("the original goes to the last recipient")
            } else {
                msg.as_ref().expect("kept until the last recipient").clone()
            };
            if expired {
                copy.set_ttl(Duration::ZERO);
            }
            prepare(name, &mut copy);
            match endpoint.deliver_reach_into(copy, wait, later) {
                Ok(n) => {
                    *outcome = Outcome::Delivered;
                    reach += n;
                    if n > 0 {
                        reaching.push(Arc::clone(name));
                    }
                }
                Err(Partial {
                    error: err,
                    reached,
                }) => {
                    // A topic whose full subscriptions failed the delivery: the others got it.
                    reach += reached;
                    if reached > 0 {
                        reaching.push(Arc::clone(name));
                    }
                    *outcome = Outcome::of(&err);
                    // The error handed back is the first full recipient's, else the first
                    // failure's: a request that found no room is `Full`, whatever order the
                    // route named a closed recipient in (found by review: it read as no
                    // responder, or not, by the route's order).
                    let full = |e: &DeliverError<T>| matches!(e, DeliverError::Full(_));
                    if back.as_ref().is_none_or(|b| full(&err) && !full(b)) {
                        // Handed back as the caller sent it, not with the time-to-live this
                        // delivery gave it (found by review).
                        let mut err = err;
                        if let (true, Some(t)) = (expired, ttl) {
                            err.message_mut().set_ttl(t);
                        }
                        later.extend(back.replace(err).map(DeliverError::into_inner));
                    } else {
                        later.push(err.into_inner());
                    }
                    if shared.on_failure == OnFailure::Stop {
                        stopped = true;
                        break;
                    }
                }
            }
        }
        drop(msg);
        drop(set);
        let report = RecipientReport { entries };
        match back {
            Some(error) if stopped => Err((RecipientListError::Stopped { report, error }, reach)),
            back => Ok((report, back, reach, reaching)),
        }
    }
}

impl<T> Clone for RecipientList<T> {
    /// Another handle to the same list.
    fn clone(&self) -> Self {
        RecipientList {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for RecipientList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.shared.set.load();
        f.debug_struct("RecipientList")
            .field("route", &self.shared.route)
            .field(
                "recipients",
                &set.recipients.iter().map(|(n, _)| &**n).collect::<Vec<_>>(),
            )
            .field("unknown", &self.shared.unknown)
            .field("on_failure", &self.shared.on_failure)
            .finish()
    }
}

/// Builds a [`RecipientList`]: its route, policies and first recipients.
///
/// ```
/// use switchboard::{OnFailure, Queue, RecipientList, Route, UnknownRecipients};
///
/// let q = Queue::unbounded();
/// let list = RecipientList::builder()
///     .route(Route::by_attribute("recipients"))
///     .unknown(UnknownRecipients::Error)
///     .on_failure(OnFailure::Stop)
///     .recipient("q", &q)
///     .build();
/// assert_eq!(list.names(), ["q"]);
/// # let _ = list.send(1);
/// ```
///
/// It does nothing until it is finished, so the compiler warns about one left unfinished:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// switchboard::RecipientList::<u32>::builder().route(switchboard::Route::all()); // error: unused builder
/// ```
#[must_use = "a RecipientListBuilder makes no list until build()"]
pub struct RecipientListBuilder<T> {
    route: Route<T>,
    unknown: UnknownRecipients,
    on_failure: OnFailure,
    recipients: Vec<(Arc<str>, Endpoint<T>)>,
    clock: Option<Clock>,
}

impl<T> Clone for RecipientListBuilder<T> {
    /// Another builder with the same route, policies and recipients: each `build` makes its own
    /// list, and lists built from clones send to the same recipient endpoints.
    fn clone(&self) -> Self {
        RecipientListBuilder {
            route: self.route.clone(),
            unknown: self.unknown,
            on_failure: self.on_failure,
            recipients: self.recipients.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<T> RecipientListBuilder<T> {
    /// The routing function ([`Route::all`] by default).
    pub fn route(mut self, route: Route<T>) -> Self {
        self.route = route;
        self
    }

    /// The unknown-name policy ([`UnknownRecipients::Skip`] by default).
    pub fn unknown(mut self, policy: UnknownRecipients) -> Self {
        self.unknown = policy;
        self
    }

    /// The failing-recipient policy ([`OnFailure::Continue`] by default).
    pub fn on_failure(mut self, policy: OnFailure) -> Self {
        self.on_failure = policy;
        self
    }

    /// The clock that stamped the messages this list routes (a feeding topic's or queue's):
    /// with it, the list reads how much time a message has left before each closure recipient
    /// (see [Time-to-live](crate::recipient_list#time-to-live)). None by default: then only a
    /// message with a time-to-live of zero counts as expired.
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = Some(clock.into());
        self
    }

    /// Adds a recipient (a later one of the same name replaces it).
    pub fn recipient(mut self, name: impl Into<String>, endpoint: impl Into<Endpoint<T>>) -> Self {
        // Repeats are settled by `build`, so that adding n recipients costs n, not n².
        self.recipients
            .push((Arc::from(name.into()), endpoint.into()));
        self
    }

    /// The list.
    pub fn build(self) -> RecipientList<T> {
        let mut recipients = self.recipients;
        // Stable: of one name's recipients, the last added ends its run, and is kept.
        recipients.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(Arc<str>, Endpoint<T>)> = Vec::with_capacity(recipients.len());
        for r in recipients {
            match kept.last_mut() {
                Some(last) if last.0 == r.0 => *last = r,
                _ => kept.push(r),
            }
        }
        let recipients: Chunked<_> = kept.into_iter().collect();
        RecipientList {
            shared: Arc::new(Shared {
                set: ArcSwap::from_pointee(Set::new(recipients, &self.route)),
                writer: Mutex::new(()),
                route: self.route,
                unknown: self.unknown,
                on_failure: self.on_failure,
                clock: self.clock,
            }),
        }
    }
}

impl<T> Default for RecipientListBuilder<T> {
    /// As [`RecipientList::builder`].
    fn default() -> Self {
        RecipientList::builder()
    }
}

impl<T> fmt::Debug for RecipientListBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientListBuilder")
            .field("route", &self.route)
            .field("unknown", &self.unknown)
            .field("on_failure", &self.on_failure)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
