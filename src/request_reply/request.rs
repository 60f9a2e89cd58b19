//! `Request<Req, Rep>`: what a responder receives; `ReplyTo<Rep>`: its typed return address;
//! `Reply<Rep>`: what the requester gathers.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use super::inbox::{Inbox, UNKNOWN_COPY};
use crate::message::{Address, CorrelationId};

/// A request as a responder receives it: the body and a typed way back to whoever asked.
///
/// The responder replies through the request ([`reply`](Request::reply)) without knowing who
/// sent it, and only with a `Rep`: a reply of another type does not compile. Replying consumes the
/// request, so a copy is answered at most once. A request dropped without a reply tells the
/// requester at once, when it was the last copy, that no reply will come.
///
/// ```
/// use std::thread;
/// use std::time::Duration;
/// use switchboard::{Queue, Request, Requester};
///
/// let service: Queue<Request<u32, u64>> = Queue::unbounded();
/// let requester = Requester::new(&service);
/// let worker = thread::spawn(move || {
///     let request = service.recv().unwrap().into_payload();
///     let square = u64::from(*request.body()).pow(2);
///     request.reply(square).unwrap(); // `request.reply("text")` would not compile
/// });
/// assert_eq!(requester.request(12, Duration::from_secs(5)).unwrap(), 144);
/// worker.join().unwrap();
/// ```
pub struct Request<Req, Rep> {
    pub(crate) body: Req,
    pub(crate) reply_to: ReplyTo<Rep>,
}

impl<Req, Rep> Request<Req, Rep> {
    /// The request body.
    pub fn body(&self) -> &Req {
        &self.body
    }

    /// The request body, mutably.
    pub fn body_mut(&mut self) -> &mut Req {
        &mut self.body
    }

    /// The correlation id tying replies to this request (also on the message's metadata).
    pub fn correlation_id(&self) -> CorrelationId {
        self.reply_to.correlation_id()
    }

    /// The name under which a [`RecipientList`](crate::RecipientList) delivered this copy, when
    /// a [`ScatterGather`](crate::ScatterGather) distributed it through one.
    pub fn recipient(&self) -> Option<&str> {
        self.reply_to.recipient()
    }

    /// Whether the requester still waits for a reply (false once it completed or gave up): a
    /// responder may skip work nobody waits for.
    pub fn is_awaited(&self) -> bool {
        self.reply_to.is_awaited()
    }

    /// Replies to whoever sent the request.
    ///
    /// # Errors
    ///
    /// [`ReplyError::Late`] when the requester no longer waits (it completed, timed out or gave
    /// up); the reply is handed back and counted as late on the requester's stats.
    #[inline]
    pub fn reply(self, reply: Rep) -> Result<(), ReplyError<Rep>> {
        self.reply_to.send(reply)
    }

    /// Replies under a responder name (shown in the gathered result), for responders that are not
    /// reached by name.
    ///
    /// # Errors
    ///
    /// As [`reply`](Request::reply).
    pub fn reply_as(self, responder: impl Into<String>, reply: Rep) -> Result<(), ReplyError<Rep>> {
        self.reply_to.send_as(responder, reply)
    }

    /// A copy of the return address, to reply without owning the request: from a leased
    /// [`Delivery`](crate::Delivery) (reply, then ack), say. A redelivered request may be
    /// answered twice; the requester takes the first reply and counts the other as late.
    ///
    /// ```
    /// use std::thread;
    /// use std::time::Duration;
    /// use switchboard::{Queue, Request, Requester};
    ///
    /// let service: Queue<Request<u32, u32>> = Queue::unbounded();
    /// let responder = {
    ///     let service = service.clone();
    ///     thread::spawn(move || {
    ///         let d = service.receive().unwrap(); // on lease: at-least-once
    ///         let req = d.payload();
    ///         req.reply_to().send(req.body() * 2).unwrap();
    ///         d.ack().unwrap();
    ///     })
    /// };
    /// let requester = Requester::new(&service);
    /// assert_eq!(requester.request(21, Duration::from_secs(10)).unwrap(), 42);
    /// responder.join().unwrap();
    /// ```
    pub fn reply_to(&self) -> ReplyTo<Rep> {
        self.reply_to.clone()
    }

    /// The body and the return address, to reply later or from elsewhere.
    pub fn into_parts(self) -> (Req, ReplyTo<Rep>) {
        (self.body, self.reply_to)
    }
}

impl<Req: Clone, Rep> Clone for Request<Req, Rep> {
    /// A copy that can be answered separately (fan-out gives each subscriber one). A gather
    /// counts it as a responder of its own (see [`Completion`](crate::Completion)): to reply
    /// more than once as the same responder, clone [`reply_to`](Request::reply_to) instead.
    fn clone(&self) -> Self {
        Request {
            body: self.body.clone(),
            reply_to: self.reply_to.clone_for_copy(),
        }
    }
}

impl<Req, Rep> fmt::Debug for Request<Req, Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("correlation_id", &self.correlation_id())
            .field("recipient", &self.recipient())
            .finish_non_exhaustive()
    }
}

/// A typed return address: the way back to one request's private reply channel.
///
/// Every [`Request`] holds one; the request's message also carries it, type-erased, as its
/// [`ReturnAddress`](crate::ReturnAddress), so code that sees only the message can recover it.
/// The requester waits while a copy that may reply exists: the request's own, every clone of a
/// `ReplyTo`, and every clone of the message's `ReturnAddress` (forwarded with another message,
/// say). The address on the request's own metadata does not count by itself (a requester reuses
/// that metadata for its next request once no message holds it), so take a clone of it before
/// dropping the request. Every copy of a fanned-out request shares that metadata, so a reply
/// through it does not say which copy answered: a [`ScatterGather`](crate::ScatterGather)
/// takes it but credits no responder with it (see [`Completion`](crate::Completion)). A
/// responder that has the [`Request`] replies through it ([`Request::reply`],
/// [`Request::reply_to`]) instead.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Endpoint, Message, ReplyTo, Request, Requester};
///
/// // A responder that works on the message: metadata first, then the typed return address.
/// let echo = Endpoint::from_fn(|m: Message<Request<String, String>>| {
///     let to = m.reply_to().unwrap().get::<ReplyTo<String>>().unwrap().clone();
///     assert_eq!(Some(to.correlation_id()), m.correlation_id());
///     to.send(m.into_payload().body().to_uppercase()).unwrap();
///     Ok(())
/// });
/// let requester = Requester::new(echo);
/// assert_eq!(requester.request("hi".to_string(), Duration::from_secs(1)).unwrap(), "HI");
/// ```
pub struct ReplyTo<Rep> {
    inbox: Arc<Inbox<Rep>>,
    recipient: Option<Arc<str>>,
    /// Which copy of the request this answers: a copy's clones (its `reply_to()`, say) share
    /// the number, so that a gather counts a responder that replies twice once.
    copy: u32,
    /// Whether this handle's count in the inbox was already released (by its reply).
    released: bool,
}

impl<Rep> ReplyTo<Rep> {
    pub(crate) fn new(inbox: Arc<Inbox<Rep>>) -> ReplyTo<Rep> {
        inbox.acquire();
        ReplyTo {
            // The request itself: its copies count from 1 (see `Inbox::next_copy`).
            copy: 0,
            inbox,
            recipient: None,
            released: false,
        }
    }

    /// A clone for a new copy of the request (fan-out), with a number of its own.
    fn clone_for_copy(&self) -> ReplyTo<Rep> {
        let mut to = self.clone();
        to.copy = self.inbox.next_copy();
        to
    }

    /// The address a request's metadata carries: it does not count as a copy that may still
    /// reply (a clone of it, or of the `ReturnAddress` around it, does), so it never keeps the
    /// requester waiting on its own, and the metadata can outlive the request to be reused for
    /// the next one.
    pub(crate) fn uncounted(inbox: Arc<Inbox<Rep>>) -> ReplyTo<Rep> {
        ReplyTo {
            inbox,
            recipient: None,
            copy: UNKNOWN_COPY,
            released: true,
        }
    }

    pub(crate) fn inbox(&self) -> &Inbox<Rep> {
        &self.inbox
    }

    pub(crate) fn inbox_mut(&mut self) -> &mut Arc<Inbox<Rep>> {
        &mut self.inbox
    }

    pub(crate) fn set_recipient(&mut self, name: Arc<str>) {
        self.recipient = Some(name);
    }

    /// The correlation id of the request this address answers.
    pub fn correlation_id(&self) -> CorrelationId {
        self.inbox.correlation_id
    }

    /// The recipient name this copy was delivered under, if any.
    pub fn recipient(&self) -> Option<&str> {
        self.recipient.as_deref()
    }

    /// Whether the requester still waits for replies.
    pub fn is_awaited(&self) -> bool {
        self.inbox.is_open()
    }

    /// Sends the reply.
    ///
    /// # Errors
    ///
    /// [`ReplyError::Late`] when the requester no longer waits; counted as late.
    #[inline]
    pub fn send(self, reply: Rep) -> Result<(), ReplyError<Rep>> {
        self.offer(None, reply)
    }

    /// Sends the reply under a responder name.
    ///
    /// # Errors
    ///
    /// As [`send`](ReplyTo::send).
    pub fn send_as(self, responder: impl Into<String>, reply: Rep) -> Result<(), ReplyError<Rep>> {
        self.offer(Some(Arc::from(responder.into())), reply)
    }

    fn offer(mut self, responder: Option<Arc<str>>, body: Rep) -> Result<(), ReplyError<Rep>> {
        let reply = Reply {
            responder,
            recipient: self.recipient.take(),
            copy: self.copy,
            body,
        };
        // The offer releases this handle's count itself (one signal to the waiter, not two).
        self.released = true;
        self.inbox
            .offer_and_release(reply)
            .map_err(|r| ReplyError::Late(r.body))
    }
}

/// A request's return address on its metadata: copies of it may reply, so they count.
impl<Rep: Send + 'static> Address for ReplyTo<Rep> {
    fn endpoint(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn endpoint_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }

    fn copied(&self) {
        self.inbox.acquire();
    }

    fn dropped(&self) {
        self.inbox.release();
    }
}

impl<Rep> Clone for ReplyTo<Rep> {
    fn clone(&self) -> Self {
        self.inbox.acquire();
        ReplyTo {
            inbox: Arc::clone(&self.inbox),
            recipient: self.recipient.clone(),
            copy: self.copy,
            released: false,
        }
    }
}

impl<Rep> Drop for ReplyTo<Rep> {
    fn drop(&mut self) {
        if !self.released {
            self.inbox.release();
        }
    }
}

impl<Rep> fmt::Debug for ReplyTo<Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo")
            .field("correlation_id", &self.correlation_id())
            .field("recipient", &self.recipient())
            .finish()
    }
}

/// One reply as the requester gathered it: the body and who sent it.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Completion, Queue, Request, ScatterGather, Topic};
///
/// let bids: Topic<Request<&str, u32>> = Topic::new();
/// let seller = bids.subscribe();
/// let auction = ScatterGather::new(&bids);
/// std::thread::spawn(move || {
///     let r = seller.recv().unwrap().into_payload();
///     r.reply_as("acme", 42).unwrap();
/// });
/// let gathered = auction.scatter("lamp", Completion::within(Duration::from_secs(5))).unwrap();
/// let reply = &gathered.replies()[0];
/// assert_eq!((reply.responder(), *reply.body()), (Some("acme"), 42));
/// ```
#[derive(Clone)]
pub struct Reply<Rep> {
    pub(crate) responder: Option<Arc<str>>,
    pub(crate) recipient: Option<Arc<str>>,
    /// The request copy it answers (see `ReplyTo::copy`).
    pub(crate) copy: u32,
    pub(crate) body: Rep,
}

impl<Rep> Reply<Rep> {
    /// Who replied: the name the responder gave, else the recipient name it was reached under.
    pub fn responder(&self) -> Option<&str> {
        self.responder.as_deref().or(self.recipient.as_deref())
    }

    /// The recipient name the request copy was delivered under (a recipient-list scatter).
    pub fn recipient(&self) -> Option<&str> {
        self.recipient.as_deref()
    }

    /// The reply.
    pub fn body(&self) -> &Rep {
        &self.body
    }

    /// The reply, by value.
    pub fn into_body(self) -> Rep {
        self.body
    }
}

/// Never prints the body (payloads stay out of logs, as `Message`'s Debug keeps them).
impl<Rep> fmt::Debug for Reply<Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("responder", &self.responder())
            .finish_non_exhaustive()
    }
}

/// A reply could not be delivered; the reply is handed back.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Queue, Request, Requester, RequestError};
///
/// let service: Queue<Request<(), u8>> = Queue::unbounded();
/// let requester = Requester::new(&service);
/// // Nobody answers in time: the request times out...
/// assert_eq!(requester.request((), Duration::from_millis(1)), Err(RequestError::Timeout));
/// // ...and the reply that comes afterwards is late.
/// let late = service.try_recv().unwrap().into_payload();
/// let err = late.reply(7).unwrap_err();
/// assert_eq!(err.to_string(), "late reply: the requester no longer waits");
/// assert_eq!(err.into_inner(), 7);
/// assert_eq!(requester.stats().late, 1);
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError<Rep> {
    /// The requester no longer waits (it completed, timed out or gave up).
    #[error("late reply: the requester no longer waits")]
    Late(Rep),
}

impl<Rep> ReplyError<Rep> {
    /// The reply that was not delivered.
    pub fn into_inner(self) -> Rep {
        match self {
            ReplyError::Late(r) => r,
        }
    }

    /// Whether the reply came too late.
    pub fn is_late(&self) -> bool {
        matches!(self, ReplyError::Late(_))
    }
}

impl<Rep> fmt::Debug for ReplyError<Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Late(_) => f.write_str("Late(..)"),
        }
    }
}
