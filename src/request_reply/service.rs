//! `Service<Req, Rep>`: a request queue that knows its responders, so that a request to a service
//! nobody serves fails at once.

use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::request::Request;
use super::requester::Requester;
use crate::error::{RecvError, RecvTimeoutError, TryRecvError};
use crate::message::Message;
use crate::queue::Queue;

/// What a [`Requester`] of a service checks: the live responders, and the queue to empty when
/// none is left.
pub(crate) struct Gate<Req, Rep> {
    pub(crate) responders: Arc<AtomicUsize>,
    pub(crate) queue: Queue<Request<Req, Rep>>,
}

impl<Req, Rep> Gate<Req, Rep> {
    pub(crate) fn is_served(&self) -> bool {
        self.responders.load(Ordering::SeqCst) > 0
    }

    /// Drops every queued request (each requester then learns at once that no reply will come),
    /// while no responder is registered: one that registers meanwhile gets the rest.
    ///
    /// A request whose drop panics stops nothing: the rest are dropped all the same, then the
    /// first panic goes on (found by review: the requesters queued behind it waited out their
    /// deadlines).
    pub(crate) fn drain(&self) {
        let mut panic = None;
        while !self.is_served() {
            match self.queue.try_recv() {
                Ok(m) => {
                    // Before the drop that may release the last `ReplyTo`: its requester then
                    // reports no responder, not a responder that dropped it (found by review).
                    m.payload().reply_to.inbox().mark_unserved();
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| drop(m))) {
                        panic.get_or_insert(p);
                    }
                }
                Err(_) => break,
            }
        }
        if let Some(p) = panic {
            resume_unwind(p);
        }
    }
}

impl<Req, Rep> Clone for Gate<Req, Rep> {
    fn clone(&self) -> Self {
        Gate {
            responders: Arc::clone(&self.responders),
            queue: self.queue.clone(),
        }
    }
}

/// A request queue that counts its responders: competing consumers that each take a request,
/// and requesters that fail at once when there is no responder.
///
/// A plain `Queue<Request<..>>` cannot tell whether anybody reads it, so a request to a queue
/// nobody serves can only time out. A service can: its [`Responder`]s are registered handles.
/// With none, [`Requester::request`] fails with [`RequestError::NoResponder`](crate::RequestError)
/// at once; when the last responder goes, the requests still queued are dropped and their
/// requesters told at once too.
///
/// ```
/// use std::thread;
/// use std::time::Duration;
/// use switchboard::{RequestError, Service};
///
/// let service: Service<u32, u32> = Service::unbounded();
/// let requester = service.requester();
/// assert_eq!(requester.request(1, Duration::from_secs(60)), Err(RequestError::NoResponder));
///
/// let workers: Vec<_> = (0..3)
///     .map(|_| {
///         let responder = service.responder(); // registered before the thread starts
///         thread::spawn(move || responder.serve(|x| x + 1))
///     })
///     .collect();
/// assert_eq!(requester.request(1, Duration::from_secs(5)), Ok(2));
/// service.close();
/// let served: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
/// assert_eq!(served, 1);
/// ```
pub struct Service<Req, Rep> {
    gate: Gate<Req, Rep>,
}

impl<Req: Send + Sync + 'static, Rep: Send + 'static> Service<Req, Rep> {
    /// A service over an unbounded queue.
    pub fn unbounded() -> Service<Req, Rep> {
        Service::from_queue(Queue::unbounded())
    }

    /// A service over a queue holding at most `capacity` waiting requests.
    pub fn bounded(capacity: usize) -> Service<Req, Rep> {
        Service::from_queue(Queue::bounded(capacity))
    }
}

impl<Req: Send + Sync + 'static, Rep: Send + 'static> Default for Service<Req, Rep> {
    /// A service over an unbounded queue, as [`Service::unbounded`].
    ///
    /// ```
    /// use switchboard::Service;
    ///
    /// let service: Service<u8, u8> = Service::default();
    /// assert_eq!((service.responder_count(), service.queue().capacity()), (0, None));
    /// ```
    fn default() -> Self {
        Service::unbounded()
    }
}

impl<Req, Rep> Service<Req, Rep> {
    /// A service over `queue` (built with any options). Requests should reach the queue only
    /// through the service's requesters, and leave it only through its responders.
    pub fn from_queue(queue: Queue<Request<Req, Rep>>) -> Service<Req, Rep> {
        Service {
            gate: Gate {
                responders: Arc::new(AtomicUsize::new(0)),
                queue,
            },
        }
    }

    /// Registers a responder: a competing consumer of the service's requests.
    pub fn responder(&self) -> Responder<Req, Rep> {
        self.gate.responders.fetch_add(1, Ordering::SeqCst);
        Responder {
            gate: self.gate.clone(),
        }
    }

    /// A requester for this service (fails at once while no responder is registered).
    pub fn requester(&self) -> Requester<Req, Rep> {
        Requester::gated(self.gate.clone())
    }

    /// How many responders are registered.
    pub fn responder_count(&self) -> usize {
        self.gate.responders.load(Ordering::SeqCst)
    }

    /// The queue requests wait in.
    pub fn queue(&self) -> &Queue<Request<Req, Rep>> {
        &self.gate.queue
    }

    /// Closes the queue: later requests fail at once; responders drain what is queued, then
    /// their receives fail. Returns whether this call closed it.
    pub fn close(&self) -> bool {
        self.gate.queue.close()
    }

    /// Whether the service was closed.
    pub fn is_closed(&self) -> bool {
        self.gate.queue.is_closed()
    }
}

impl<Req, Rep> Clone for Service<Req, Rep> {
    /// Another handle to the same service.
    fn clone(&self) -> Self {
        Service {
            gate: self.gate.clone(),
        }
    }
}

impl<Req, Rep> fmt::Debug for Service<Req, Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("responders", &self.responder_count())
            .field("queue", &self.gate.queue)
            .finish()
    }
}

/// A registered responder of a [`Service`]: receives requests in competition with the other
/// responders. Dropping the last one drops the requests still queued, whose requesters learn at
/// once that no reply will come. `Clone` registers another responder.
///
/// ```
/// use std::time::Duration;
/// use switchboard::Service;
///
/// let service: Service<&str, usize> = Service::unbounded();
/// let responder = service.responder();
/// let requester = service.requester();
/// let asking = std::thread::spawn(move || requester.request("four", Duration::from_secs(5)));
/// let request = responder.recv().unwrap();
/// let len = request.body().len();
/// request.reply(len).unwrap();
/// assert_eq!(asking.join().unwrap(), Ok(4));
/// ```
///
/// A responder dropped at once (a call to `responder` used as a statement) was registered for
/// nothing, and if it was the last one the requests queued are dropped; the compiler warns:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let service: switchboard::Service<u32, u32> = switchboard::Service::unbounded();
/// service.responder(); // error: unused `Responder`
/// ```
#[must_use = "dropping a Responder unregisters it (the last one drops the queued requests)"]
pub struct Responder<Req, Rep> {
    gate: Gate<Req, Rep>,
}

impl<Req, Rep> Responder<Req, Rep> {
    /// Requests waiting to be received (as [`Queue::len`](crate::Queue::len)).
    ///
    /// ```
    /// use switchboard::Service;
    ///
    /// let service: Service<u8, u8> = Service::unbounded();
    /// let responder = service.responder();
    /// assert!(responder.is_empty() && !responder.is_closed());
    /// service.close();
    /// assert!(responder.is_closed() && service.is_closed());
    /// ```
    pub fn len(&self) -> usize {
        self.gate.queue.len()
    }

    /// Whether no request is waiting.
    pub fn is_empty(&self) -> bool {
        self.gate.queue.is_empty()
    }

    /// Whether the service was closed (responders drain what is queued, then their receives
    /// fail).
    pub fn is_closed(&self) -> bool {
        self.gate.queue.is_closed()
    }

    /// Receives the next request, waiting for one.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the service is closed and drained.
    pub fn recv(&self) -> Result<Request<Req, Rep>, RecvError> {
        self.gate.queue.recv().map(|m| m.into_payload())
    }

    /// Receives a request if one is waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or [`TryRecvError::Closed`].
    pub fn try_recv(&self) -> Result<Request<Req, Rep>, TryRecvError> {
        self.gate.queue.try_recv().map(|m| m.into_payload())
    }

    /// Receives a request, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Closed`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Request<Req, Rep>, RecvTimeoutError> {
        self.gate
            .queue
            .recv_timeout(timeout)
            .map(|m| m.into_payload())
    }

    /// Receives a request, waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Closed`].
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Request<Req, Rep>, RecvTimeoutError> {
        self.gate
            .queue
            .recv_deadline(deadline)
            .map(|m| m.into_payload())
    }

    /// Waits up to `wait` for a first request, then takes up to `max` in all without waiting
    /// more, as [`Queue::recv_many`](crate::Queue::recv_many): a responder that answers in
    /// batches. An empty vector means nothing came within `wait`; with `max == 0` it comes at
    /// once, taking nothing and telling nothing.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the service is closed and drained.
    ///
    /// ```
    /// use std::thread;
    /// use std::time::Duration;
    /// use switchboard::Service;
    ///
    /// let service: Service<u32, u32> = Service::unbounded();
    /// let responder = service.responder();
    /// let requester = service.requester();
    /// let asking: Vec<_> = (0..3)
    ///     .map(|x| {
    ///         let requester = requester.clone();
    ///         thread::spawn(move || requester.request(x, Duration::from_secs(10)))
    ///     })
    ///     .collect();
    /// let mut answered = 0;
    /// while answered < 3 {
    ///     for request in responder.recv_many(8, Duration::from_secs(10)).unwrap() {
    ///         let doubled = request.body() * 2;
    ///         request.reply(doubled).unwrap();
    ///         answered += 1;
    ///     }
    /// }
    /// let mut replies: Vec<u32> = asking.into_iter().map(|a| a.join().unwrap().unwrap()).collect();
    /// replies.sort();
    /// assert_eq!(replies, [0, 2, 4]);
    /// ```
    pub fn recv_many(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Request<Req, Rep>>, RecvError> {
        self.gate
            .queue
            .recv_many(max, wait)
            .map(|batch| batch.into_iter().map(Message::into_payload).collect())
    }

    /// A blocking iterator over the requests; it ends once the service is closed and drained.
    ///
    /// ```
    /// use std::thread;
    /// use switchboard::Service;
    ///
    /// let service: Service<u32, u32> = Service::unbounded();
    /// let responder = service.responder();
    /// let requester = service.requester();
    /// let worker = thread::spawn(move || {
    ///     for request in responder.iter() {
    ///         let doubled = request.body() * 2;
    ///         request.reply(doubled).unwrap();
    ///     }
    /// });
    /// assert_eq!(requester.request(21, std::time::Duration::from_secs(10)), Ok(42));
    /// service.close();
    /// worker.join().unwrap();
    /// ```
    pub fn iter(&self) -> Iter<'_, Req, Rep> {
        Iter {
            inner: self.gate.queue.iter(),
        }
    }

    /// An iterator over the requests waiting now; it never waits (as
    /// [`Queue::try_iter`](crate::Queue::try_iter)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{RequestError, Service};
    ///
    /// let service: Service<u32, u32> = Service::unbounded();
    /// let responder = service.responder();
    /// let requester = service.requester();
    /// // Nobody answers within a millisecond: the request times out but waits in the queue.
    /// assert_eq!(requester.request(1, Duration::from_millis(1)), Err(RequestError::Timeout));
    /// let waiting: Vec<u32> = responder.try_iter().map(|r| *r.body()).collect();
    /// assert_eq!(waiting, [1]);
    /// assert_eq!(responder.try_iter().count(), 0); // and returns at once when none wait
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, Req, Rep> {
        TryIter {
            inner: self.gate.queue.try_iter(),
        }
    }

    /// Answers requests with `f` until the service is closed and drained; returns how many it
    /// answered (late replies included).
    pub fn serve(&self, mut f: impl FnMut(&Req) -> Rep) -> usize {
        let mut served = 0;
        for request in self.iter() {
            let reply = f(request.body());
            let _ = request.reply(reply);
            served += 1;
        }
        served
    }
}

impl<'a, Req, Rep> IntoIterator for &'a Responder<Req, Rep> {
    type Item = Request<Req, Rep>;
    type IntoIter = Iter<'a, Req, Rep>;

    /// As [`Responder::iter`].
    fn into_iter(self) -> Iter<'a, Req, Rep> {
        self.iter()
    }
}

/// A blocking iterator over a service's requests: see [`Responder::iter`]. It ends once the
/// service is closed and drained, and stays ended.
pub struct Iter<'a, Req, Rep> {
    inner: crate::queue::Iter<'a, Request<Req, Rep>>,
}

impl<Req, Rep> Iterator for Iter<'_, Req, Rep> {
    type Item = Request<Req, Rep>;

    fn next(&mut self) -> Option<Request<Req, Rep>> {
        self.inner.next().map(Message::into_payload)
    }
}

impl<Req, Rep> std::iter::FusedIterator for Iter<'_, Req, Rep> {}

impl<Req, Rep> fmt::Debug for Iter<'_, Req, Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Iter { .. }")
    }
}

/// An iterator over the requests waiting now: see [`Responder::try_iter`]. It never waits.
pub struct TryIter<'a, Req, Rep> {
    inner: crate::queue::TryIter<'a, Request<Req, Rep>>,
}

impl<Req, Rep> Iterator for TryIter<'_, Req, Rep> {
    type Item = Request<Req, Rep>;

    fn next(&mut self) -> Option<Request<Req, Rep>> {
        self.inner.next().map(Message::into_payload)
    }
}

impl<Req, Rep> fmt::Debug for TryIter<'_, Req, Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TryIter { .. }")
    }
}

impl<Req, Rep> Clone for Responder<Req, Rep> {
    /// Registers another responder.
    fn clone(&self) -> Self {
        self.gate.responders.fetch_add(1, Ordering::SeqCst);
        Responder {
            gate: self.gate.clone(),
        }
    }
}

impl<Req, Rep> Drop for Responder<Req, Rep> {
    fn drop(&mut self) {
        if self.gate.responders.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.gate.drain();
        }
    }
}

impl<Req, Rep> fmt::Debug for Responder<Req, Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("responders", &self.gate.responders.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}
