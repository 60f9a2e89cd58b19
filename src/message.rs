//! `Message<T>`: a payload and the metadata that routing, filtering and leases need.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

use crate::clock::{self, Nanos};

/// A message's identifier: unique within the process, cheap to make.
///
/// Ids come from per-thread blocks of a global counter, so making one touches no shared cache line
/// (one thread in 1024 calls takes a new block). Clones of a message (a topic's fan-out) share the
/// id, as SNS gives every subscriber the same message id.
///
/// ```
/// use switchboard::Message;
///
/// let a = Message::new("a");
/// let b = Message::new("b");
/// assert_ne!(a.id(), b.id());
/// assert_eq!(a.clone().id(), a.id());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(NonZeroU64);

impl MessageId {
    /// A new id, never handed out before in this process.
    pub fn next() -> MessageId {
        const BLOCK: u64 = 1024;
        static NEXT: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let id = RANGE.with(|r| {
            let (next, end) = r.get();
            if next < end {
                r.set((next + 1, end));
                next
            } else {
                let start = NEXT.fetch_add(BLOCK, Ordering::Relaxed);
                r.set((start + 1, start + BLOCK));
                start
            }
        });
        // The counter starts at 1 and would need 2^64 ids to wrap.
        MessageId(NonZeroU64::new(id).unwrap_or(NonZeroU64::MIN))
    }

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.0)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Ties a reply to its request (the Correlation Identifier pattern).
///
/// ```
/// use switchboard::{CorrelationId, Message};
///
/// let id = CorrelationId::new();
/// let m = Message::new(()).with_correlation_id(id);
/// assert_eq!(m.correlation_id(), Some(id));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CorrelationId(u64);

impl CorrelationId {
    /// A correlation id never handed out before in this process.
    pub fn new() -> CorrelationId {
        CorrelationId(MessageId::next().get())
    }

    /// A correlation id with a given value (to carry an id from elsewhere).
    pub fn from_u64(value: u64) -> CorrelationId {
        CorrelationId(value)
    }

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl Default for CorrelationId {
    fn default() -> Self {
        CorrelationId::new()
    }
}

/// As [`CorrelationId::from_u64`].
impl From<u64> for CorrelationId {
    fn from(value: u64) -> CorrelationId {
        CorrelationId::from_u64(value)
    }
}

/// As [`CorrelationId::get`].
impl From<CorrelationId> for u64 {
    fn from(id: CorrelationId) -> u64 {
        id.get()
    }
}

/// As [`MessageId::get`].
impl From<MessageId> for u64 {
    fn from(id: MessageId) -> u64 {
        id.get()
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorrelationId({})", self.0)
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A return address: a live handle a responder sends its reply to (the Return Address pattern).
///
/// It is type-erased so that a `Message<Request>` can carry the address of a reply endpoint of
/// another type; the request-reply layer recovers the typed endpoint with [`ReturnAddress::get`].
/// It is never serialized. A request's return address counts its clones as copies that may still
/// reply, so a responder can forward it with another message and the requester waits for that
/// reply (see [`ReplyTo`](crate::ReplyTo)).
///
/// ```
/// use switchboard::{Message, Queue, ReturnAddress};
///
/// let replies: Queue<u32> = Queue::unbounded();
/// let request = Message::new("ping").with_reply_to(ReturnAddress::new(replies.clone()));
/// let to = request.reply_to().unwrap().get::<Queue<u32>>().unwrap();
/// to.send(7).unwrap();
/// assert_eq!(replies.try_recv().unwrap().into_payload(), 7);
/// ```
pub struct ReturnAddress {
    inner: Arc<dyn Address>,
    /// Whether this handle is a copy that told the address it exists (see [`Address`]).
    counted: bool,
}

/// What a return address holds. A request's own address counts the copies made of it, so that
/// its requester keeps waiting while one exists (each could still reply); other addresses
/// ignore copies.
pub(crate) trait Address: Send + Sync + 'static {
    fn endpoint(&self) -> &(dyn Any + Send + Sync);
    fn endpoint_mut(&mut self) -> &mut (dyn Any + Send + Sync);
    /// A copy of the address was made.
    fn copied(&self) {}
    /// A copy of the address went away.
    fn dropped(&self) {}
}

/// Any endpoint, as a return address that does not count its copies.
struct Plain<E>(E);

impl<E: Any + Send + Sync> Address for Plain<E> {
    fn endpoint(&self) -> &(dyn Any + Send + Sync) {
        &self.0
    }

    fn endpoint_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        &mut self.0
    }
}

impl ReturnAddress {
    /// Wraps a handle (a `Queue<R>`, or any endpoint) as a return address.
    pub fn new<E: Any + Send + Sync>(endpoint: E) -> ReturnAddress {
        ReturnAddress::counting(Plain(endpoint))
    }

    /// An address whose copies (not this original) are announced to it.
    pub(crate) fn counting(address: impl Address) -> ReturnAddress {
        ReturnAddress {
            inner: Arc::new(address),
            counted: false,
        }
    }

    /// The handle, if it is an `E`.
    pub fn get<E: Any>(&self) -> Option<&E> {
        self.inner.endpoint().downcast_ref::<E>()
    }

    /// Another handle to the same address that is not announced as a copy (as the original
    /// is not): for a request's own metadata, copied into a message's metadata block.
    pub(crate) fn share_uncounted(&self) -> ReturnAddress {
        ReturnAddress {
            inner: Arc::clone(&self.inner),
            counted: false,
        }
    }

    /// The endpoint, mutably, if no other copy of this address exists.
    pub(crate) fn unique_mut<E: Any>(&mut self) -> Option<&mut E> {
        Arc::get_mut(&mut self.inner)?
            .endpoint_mut()
            .downcast_mut::<E>()
    }
}

impl Clone for ReturnAddress {
    /// Another handle to the same endpoint (for a request's address, a copy that may reply: its
    /// requester waits while it exists).
    fn clone(&self) -> Self {
        self.inner.copied();
        ReturnAddress {
            inner: Arc::clone(&self.inner),
            counted: true,
        }
    }
}

impl Drop for ReturnAddress {
    fn drop(&mut self) {
        if self.counted {
            self.inner.dropped();
        }
    }
}

impl fmt::Debug for ReturnAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReturnAddress(..)")
    }
}

/// One typed attribute value: what filters match on.
///
/// The SNS attribute types: `String`, `Number` (held as `f64`; `-0` equals `0`) and
/// `String.Array` (a list of strings), plus booleans. Conversions make building them short:
///
/// ```
/// use switchboard::AttrValue;
///
/// assert_eq!(AttrValue::from("eu"), AttrValue::String("eu".into()));
/// assert_eq!(AttrValue::from(3), AttrValue::Number(3.0));
/// assert_eq!(AttrValue::from(["a", "b"]), AttrValue::StringList(vec!["a".into(), "b".into()]));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// A string.
    String(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings (SNS `String.Array`): a condition matches if any element matches.
    StringList(Vec<String>),
}

impl AttrValue {
    /// The string, if this is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is a `Number`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The list, if this is a `StringList`.
    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            AttrValue::StringList(l) => Some(l),
            _ => None,
        }
    }
}

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue::String(v.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue::String(v)
    }
}
impl From<&String> for AttrValue {
    /// As `&str` (so `with_attr("region", &region)` works, as it does for a [`PolicyValue`](crate::PolicyValue)).
    fn from(v: &String) -> Self {
        AttrValue::String(v.clone())
    }
}
impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}
impl From<f64> for AttrValue {
    fn from(v: f64) -> Self {
        // -0 and 0 are one number to SNS.
        AttrValue::Number(if v == 0.0 { 0.0 } else { v })
    }
}
impl From<f32> for AttrValue {
    fn from(v: f32) -> Self {
        AttrValue::from(f64::from(v))
    }
}
macro_rules! number_from {
    ($($t:ty),*) => {$(
        impl From<$t> for AttrValue {
            fn from(v: $t) -> Self {
                AttrValue::Number(v as f64)
            }
        }
    )*};
}
number_from!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);
impl From<Vec<String>> for AttrValue {
    fn from(v: Vec<String>) -> Self {
        AttrValue::StringList(v)
    }
}
impl From<Vec<&str>> for AttrValue {
    fn from(v: Vec<&str>) -> Self {
        AttrValue::StringList(v.into_iter().map(str::to_owned).collect())
    }
}
impl<const N: usize> From<[&str; N]> for AttrValue {
    fn from(v: [&str; N]) -> Self {
        AttrValue::StringList(v.iter().map(|s| (*s).to_owned()).collect())
    }
}

/// A message's attributes: string keys to typed values, kept sorted by key.
///
/// Small by design (a handful of keys is the norm; SNS allows ten): a sorted vector is faster than
/// a hash map at that size and iterates in a stable order.
///
/// ```
/// use switchboard::{Attributes, AttrValue};
///
/// let mut attrs = Attributes::new();
/// attrs.insert("region", "eu");
/// attrs.insert("amount", 120);
/// assert_eq!(attrs.get("region"), Some(&AttrValue::from("eu")));
/// assert_eq!(attrs.len(), 2);
/// assert_eq!(attrs.keys().collect::<Vec<_>>(), ["amount", "region"]);
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "std::collections::BTreeMap<String, AttrValue>")]
#[serde(into = "std::collections::BTreeMap<String, AttrValue>")]
pub struct Attributes {
    entries: Vec<(String, AttrValue)>,
}

impl Attributes {
    /// No attributes.
    pub fn new() -> Attributes {
        Attributes::default()
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        self.entries
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`, returning the value it replaced.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<AttrValue>,
    ) -> Option<AttrValue> {
        let key = key.into();
        let value = value.into();
        match self.entries.binary_search_by(|(k, _)| k.as_str().cmp(&key)) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<AttrValue> {
        match self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(i) => Some(self.entries.remove(i).1),
            Err(_) => None,
        }
    }

    /// The number of attributes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no attributes.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The key-value pairs, in key order.
    pub fn iter(&self) -> AttributesIter<'_> {
        AttributesIter(self.entries.iter())
    }
}

/// The key-value pairs of [`Attributes`], in key order: from [`Attributes::iter`], or a `for`
/// loop over `&Attributes`.
///
/// ```
/// use switchboard::Attributes;
///
/// let attrs: Attributes = [("tier", "gold"), ("region", "eu")].into_iter().collect();
/// let mut keys = Vec::new();
/// for (key, _value) in &attrs {
///     keys.push(key);
/// }
/// assert_eq!(keys, ["region", "tier"]);
/// ```
#[derive(Clone, Debug)]
pub struct AttributesIter<'a>(std::slice::Iter<'a, (String, AttrValue)>);

impl<'a> Iterator for AttributesIter<'a> {
    type Item = (&'a str, &'a AttrValue);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for AttributesIter<'_> {}

impl std::iter::FusedIterator for AttributesIter<'_> {}

impl<'a> IntoIterator for &'a Attributes {
    type Item = (&'a str, &'a AttrValue);
    type IntoIter = AttributesIter<'a>;

    fn into_iter(self) -> AttributesIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<AttrValue>> FromIterator<(K, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut attrs = Attributes::new();
        for (k, v) in iter {
            attrs.insert(k, v);
        }
        attrs
    }
}

impl From<std::collections::BTreeMap<String, AttrValue>> for Attributes {
    fn from(map: std::collections::BTreeMap<String, AttrValue>) -> Self {
        // A BTreeMap iterates in key order: already sorted.
        Attributes {
            entries: map.into_iter().collect(),
        }
    }
}

impl From<Attributes> for std::collections::BTreeMap<String, AttrValue> {
    fn from(attrs: Attributes) -> Self {
        attrs.entries.into_iter().collect()
    }
}

/// Why and where a message was dead-lettered; carried by messages in a dead-letter queue.
///
/// ```
/// use std::time::Duration;
/// use switchboard::Queue;
///
/// let dlq = Queue::unbounded();
/// let queue = Queue::builder().name("orders").dead_letter(&dlq, 3).build();
/// queue.send("poison").unwrap();
/// queue.receive().unwrap().reject("cannot parse");
/// let dead = dlq.try_recv().unwrap();
/// let info = dead.dead_letter().unwrap();
/// assert_eq!(info.reason(), "cannot parse");
/// assert_eq!(info.attempts(), 1);
/// assert_eq!(info.source(), Some("orders"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub(crate) reason: String,
    pub(crate) attempts: u32,
    pub(crate) source: Option<String>,
}

impl DeadLetter {
    /// Why the message was dead-lettered: the `reject` reason, or what failed on its last
    /// allowed delivery ("nacked after 3 deliveries (max 3)", "lease expired after ...",
    /// "dropped after ..."), or "expired" (a time-to-live or retention that ran out).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// How many times the message had been delivered.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The name of the queue it came from, if that queue has a name.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
}

/// The rarely used metadata, kept out of line behind one pointer so that the common message (no
/// attributes, no routing metadata) is its payload plus three words. Shared, never deep-copied,
/// when a message is cloned for fan-out; copied on write.
#[derive(Default)]
struct Ext {
    attributes: Attributes,
    correlation_id: Option<CorrelationId>,
    reply_to: Option<ReturnAddress>,
    // Boxed strings and a boxed record: a word or two less each, in a block every message
    // with any metadata carries (136 bytes with its `Arc` header, down from 200).
    group: Option<Box<str>>,
    dedup_id: Option<Box<str>>,
    ttl: Option<Duration>,
    dead_letter: Option<Box<DeadLetter>>,
}

impl Clone for Ext {
    /// A copy on write keeps the return address as it was: a request's own address in its
    /// metadata is uncounted, and its copy must be too (a counted copy kept the requester
    /// waiting while the copied metadata lived).
    fn clone(&self) -> Self {
        Ext {
            attributes: self.attributes.clone(),
            correlation_id: self.correlation_id,
            reply_to: self.reply_to.as_ref().map(|a| {
                if a.counted {
                    a.clone()
                } else {
                    a.share_uncounted()
                }
            }),
            group: self.group.clone(),
            dedup_id: self.dedup_id.clone(),
            ttl: self.ttl,
            dead_letter: self.dead_letter.clone(),
        }
    }
}

/// A request's reply metadata (a correlation id and a return address), made once and shared by
/// the messages of many requests in turn: a requester reuses it for its next request once no
/// message holds it any more, so that a request allocates nothing for its metadata and the
/// responder frees nothing of it.
pub(crate) struct ReplyMeta(Arc<Ext>);

impl ReplyMeta {
    pub(crate) fn new(id: CorrelationId, to: ReturnAddress) -> ReplyMeta {
        ReplyMeta(Arc::new(Ext {
            correlation_id: Some(id),
            reply_to: Some(to),
            ..Ext::default()
        }))
    }

    /// The correlation id and the return address, if nothing else holds the metadata (no
    /// message, no other handle): free to be changed for another request.
    pub(crate) fn unique_mut(&mut self) -> Option<(&mut CorrelationId, &mut ReturnAddress)> {
        let ext = Arc::get_mut(&mut self.0)?;
        Some((ext.correlation_id.as_mut()?, ext.reply_to.as_mut()?))
    }
}

/// A payload and its metadata.
///
/// A message without attributes or routing metadata is its payload plus 24 bytes (an id, a
/// timestamp and one pointer) and allocates nothing; the rare fields live behind that pointer and
/// are shared, not copied, when a message is cloned for fan-out. Any of them (an attribute, a
/// time-to-live, a correlation id, a group) brings that block, 136 bytes, plus what its strings
/// and attributes hold. Payloads are cloned per
/// subscriber, so a large payload fans out for the price of a reference count when it is an
/// `Arc<Big>`.
///
/// `From<T>` makes `queue.send(value)` work; the builder methods add metadata:
///
/// ```
/// use std::time::Duration;
/// use switchboard::Message;
///
/// let m = Message::new("order-1")
///     .with_attr("region", "eu")
///     .with_attr("amount", 120)
///     .with_group("customer-7")
///     .with_ttl(Duration::from_secs(60));
/// assert_eq!(m.attr("region").and_then(|v| v.as_str()), Some("eu"));
/// assert_eq!(m.group(), Some("customer-7"));
/// assert_eq!(*m.payload(), "order-1");
/// assert_eq!(m.into_payload(), "order-1");
/// ```
///
/// Because a send takes anything that converts into a `Message<T>`, a `Message<i32>` could
/// itself be the payload of a `Message<Message<i32>>`: a queue or topic whose payload type
/// nothing else fixes needs it written out when its first send is a built message.
///
/// ```
/// use switchboard::{Message, Queue};
///
/// let q: Queue<i32> = Queue::unbounded(); // without `<i32>`: "type annotations needed"
/// q.send(Message::new(1).with_attr("k", "v")).unwrap();
/// ```
///
/// The timestamp is the time the message was sent to the queue it is in (SQS's `SentTimestamp`),
/// or the time it was published to a topic, on that queue's or topic's clock; it is `None` before
/// the first send. A time-to-live counts from it, so a message forwarded to another queue or
/// topic starts a fresh TTL there. A dead letter keeps the timestamp of its send to the source
/// queue (as SQS keeps `SentTimestamp`), in the dead-letter queue and when redriven; in a
/// dead-letter queue only that queue's retention applies, not the message's time-to-live (which
/// may be why it is there).
pub struct Message<T> {
    payload: T,
    id: MessageId,
    timestamp: Nanos,
    ext: Option<Arc<Ext>>,
}

impl<T> Message<T> {
    /// A message with a fresh id and no metadata.
    #[inline]
    pub fn new(payload: T) -> Message<T> {
        Message {
            payload,
            id: MessageId::next(),
            timestamp: 0,
            ext: None,
        }
    }

    /// The payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut T {
        &mut self.payload
    }

    /// Takes the payload, dropping the metadata.
    pub fn into_payload(self) -> T {
        self.payload
    }

    /// Replaces the payload with `f(payload)`, keeping the id and metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Message<U> {
        Message {
            payload: f(self.payload),
            id: self.id,
            timestamp: self.timestamp,
            ext: self.ext,
        }
    }

    /// The id.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// When the message was sent to the queue it is in (or published), on that clock; a dead
    /// letter keeps the time of its send to the source queue (see the type's docs).
    pub fn timestamp(&self) -> Option<Instant> {
        (self.timestamp != 0).then(|| clock::to_instant(self.timestamp))
    }

    /// The attributes (empty if none were set).
    pub fn attributes(&self) -> &Attributes {
        static EMPTY: Attributes = Attributes {
            entries: Vec::new(),
        };
        self.ext.as_ref().map_or(&EMPTY, |e| &e.attributes)
    }

    /// The attribute under `key`.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.ext.as_ref()?.attributes.get(key)
    }

    /// The correlation id.
    pub fn correlation_id(&self) -> Option<CorrelationId> {
        self.ext.as_ref()?.correlation_id
    }

    /// The return address.
    pub fn reply_to(&self) -> Option<&ReturnAddress> {
        self.ext.as_ref()?.reply_to.as_ref()
    }

    /// The FIFO group key.
    pub fn group(&self) -> Option<&str> {
        self.ext.as_ref()?.group.as_deref()
    }

    /// The de-duplication id.
    pub fn dedup_id(&self) -> Option<&str> {
        self.ext.as_ref()?.dedup_id.as_deref()
    }

    /// The time-to-live, counted from the send to the queue the message is in (or its publish
    /// to the topic whose subscription holds it).
    pub fn ttl(&self) -> Option<Duration> {
        self.ext.as_ref()?.ttl
    }

    /// When the message expires, if it has a time-to-live and has been sent.
    pub fn expires_at(&self) -> Option<Instant> {
        let ttl = self.ttl()?;
        (self.timestamp != 0).then(|| clock::to_instant(clock::add(self.timestamp, ttl)))
    }

    /// Why and where the message was dead-lettered, for messages read from a dead-letter queue
    /// (by a plain receive, or on lease: [`Delivery::message`](crate::Delivery::message) and a
    /// consumer pool's handler see it). A redrive clears it.
    pub fn dead_letter(&self) -> Option<&DeadLetter> {
        self.ext.as_ref()?.dead_letter.as_deref()
    }

    /// Replaces all attributes. Empty attributes on a message without metadata allocate
    /// nothing (found by review: every deserialized message took a metadata block this way).
    pub fn with_attributes(mut self, attributes: Attributes) -> Self {
        if attributes.is_empty() && self.ext.is_none() {
            return self;
        }
        self.ext_mut().attributes = attributes;
        self
    }

    /// Sets one attribute.
    pub fn with_attr(mut self, key: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        self.ext_mut().attributes.insert(key, value);
        self
    }

    /// The attributes, mutably (copied first if shared with a clone).
    pub fn attributes_mut(&mut self) -> &mut Attributes {
        &mut self.ext_mut().attributes
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: CorrelationId) -> Self {
        self.ext_mut().correlation_id = Some(id);
        self
    }

    /// Sets the return address.
    pub fn with_reply_to(mut self, to: ReturnAddress) -> Self {
        self.ext_mut().reply_to = Some(to);
        self
    }

    /// Sets the FIFO group key.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.ext_mut().group = Some(group.into().into_boxed_str());
        self
    }

    /// Sets the de-duplication id.
    pub fn with_dedup_id(mut self, id: impl Into<String>) -> Self {
        self.ext_mut().dedup_id = Some(id.into().into_boxed_str());
        self
    }

    /// Sets the time-to-live: the message expires `ttl` after it is sent to a queue (or published
    /// to a topic), and an expired message never reaches a consumer: a queue counts it in
    /// `expired` (and dead-letters it if configured), a topic subscription in its own
    /// [`expired`](crate::Subscription::expired) count. A topic's chained closure is never
    /// handed it (its subscription counts it in
    /// [`SubscriptionStats::expired`](crate::SubscriptionStats::expired)); a chained queue, topic
    /// or recipient list is handed it and expires it by its own rules (see
    /// [`PublishReport::expired`](crate::PublishReport::expired)).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ext_mut().ttl = Some(ttl);
        self
    }

    /// Sets the time-to-live in place (see [`with_ttl`](Message::with_ttl)).
    pub(crate) fn set_ttl(&mut self, ttl: Duration) {
        self.ext_mut().ttl = Some(ttl);
    }

    /// Gives the message a request's reply metadata: shares `meta` when the message has no
    /// metadata of its own (no allocation, and `meta` stays reusable once the message is gone),
    /// else copies its correlation id and return address in.
    pub(crate) fn with_reply_kit(mut self, meta: &ReplyMeta) -> Self {
        match &self.ext {
            None => self.ext = Some(Arc::clone(&meta.0)),
            Some(_) => {
                // The same address the shared metadata holds, not a counted copy of it: the
                // address on a request's own metadata never counts by itself (see `ReplyTo`),
                // whether the message shares the metadata block or got its own.
                let to = meta.0.reply_to.as_ref().map(ReturnAddress::share_uncounted);
                let cid = meta.0.correlation_id;
                let ext = self.ext_mut();
                ext.correlation_id = cid;
                ext.reply_to = to;
            }
        }
        self
    }

    fn ext_mut(&mut self) -> &mut Ext {
        Arc::make_mut(self.ext.get_or_insert_with(Default::default))
    }

    /// Stamps the send time: a queue's send sets it to its enqueue time, a topic's publish to
    /// the publish time.
    #[inline]
    pub(crate) fn stamp(&mut self, now: Nanos) {
        self.timestamp = now;
    }

    /// Whether dropping the message runs no code at all: no metadata to let go of, and a
    /// payload without drop glue. Such a message may be dropped under a lock.
    #[inline]
    pub(crate) fn drops_trivially(&self) -> bool {
        !std::mem::needs_drop::<T>() && self.ext.is_none()
    }

    #[inline]
    pub(crate) fn timestamp_nanos(&self) -> Nanos {
        self.timestamp
    }

    /// The expiry time in clock nanos, if the message has a TTL and a timestamp.
    #[inline]
    pub(crate) fn expiry_nanos(&self) -> Option<Nanos> {
        let ttl = self.ext.as_ref()?.ttl?;
        Some(clock::add(self.timestamp, ttl))
    }

    pub(crate) fn set_dead_letter(&mut self, info: DeadLetter) {
        self.ext_mut().dead_letter = Some(Box::new(info));
    }

    pub(crate) fn clear_dead_letter(&mut self) {
        if self.dead_letter().is_some() {
            self.ext_mut().dead_letter = None;
        }
    }
}

impl<T> From<T> for Message<T> {
    #[inline]
    fn from(payload: T) -> Self {
        Message::new(payload)
    }
}

impl<T: Clone> Clone for Message<T> {
    /// Clones the payload and shares the metadata (same id).
    fn clone(&self) -> Self {
        Message {
            payload: self.payload.clone(),
            id: self.id,
            timestamp: self.timestamp,
            ext: self.ext.clone(),
        }
    }
}

impl<T> fmt::Debug for Message<T> {
    /// Never prints the payload (so `T` need not be `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("id", &self.id);
        if let Some(e) = &self.ext {
            if !e.attributes.is_empty() {
                d.field("attributes", &e.attributes);
            }
            if let Some(c) = e.correlation_id {
                d.field("correlation_id", &c);
            }
            if let Some(g) = &e.group {
                d.field("group", g);
            }
            if let Some(x) = &e.dedup_id {
                d.field("dedup_id", x);
            }
        }
        d.finish_non_exhaustive()
    }
}

impl<T: Serialize> Serialize for Message<T> {
    /// Serializes the id, timestamp (nanoseconds since the Unix epoch, when set), attributes,
    /// routing metadata, the dead-letter record and payload. The return address, a live
    /// handle, is skipped. The time-to-live is written in whole milliseconds, rounded up (a
    /// short TTL never reads back as none). Fails, in a text format, on a NaN or infinite
    /// number attribute (see [`AttrValue`]).
    ///
    /// Self-describing formats (JSON, CBOR, MessagePack, RON) read back every field, whether
    /// they write a struct's field names or only its fields in order. Formats that are not
    /// self-describing (bincode, postcard) cannot read attribute values back: an attribute's
    /// type is told by its value, which such a format does not record.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Message", 9)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("timestamp", &self.timestamp().map(unix_nanos))?;
        st.serialize_field("attributes", self.attributes())?;
        st.serialize_field("correlation_id", &self.correlation_id())?;
        st.serialize_field("group", &self.group())?;
        st.serialize_field("dedup_id", &self.dedup_id())?;
        // Rounded up, and saturating: a TTL past u64::MAX milliseconds reads back as that.
        let ttl_ms = self.ttl().map(|d| {
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            u64::try_from(ms).unwrap_or(u64::MAX)
        });
        st.serialize_field("ttl_ms", &ttl_ms)?;
        st.serialize_field("dead_letter", &self.dead_letter())?;
        st.serialize_field("payload", &self.payload)?;
        st.end()
    }
}

/// Writes the bare value (a string, number, boolean or list of strings), as SNS's JSON does. A
/// number that is NaN or infinite fails in a text format such as JSON, which has no form for it
/// (serde_json would write `null`, which reads back as no attribute value at all).
impl Serialize for AttrValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AttrValue::String(v) => s.serialize_str(v),
            AttrValue::Number(n) if !n.is_finite() && s.is_human_readable() => Err(
                serde::ser::Error::custom(format!("a number attribute of {n} has no text form")),
            ),
            AttrValue::Number(n) => s.serialize_f64(*n),
            AttrValue::Bool(b) => s.serialize_bool(*b),
            AttrValue::StringList(l) => l.serialize(s),
        }
    }
}

/// Reads the bare value [`Serialize`] writes. A number may also come as serde_json's
/// `arbitrary_precision` map (a feature any crate in the build can turn on).
impl<'de> Deserialize<'de> for AttrValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AttrValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or list of strings")
            }
            fn visit_str<E>(self, v: &str) -> Result<AttrValue, E> {
                Ok(AttrValue::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<AttrValue, E> {
                Ok(AttrValue::String(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<AttrValue, E> {
                Ok(AttrValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<AttrValue, E> {
                Ok(AttrValue::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<AttrValue, E> {
                Ok(AttrValue::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<AttrValue, E> {
                Ok(AttrValue::Number(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AttrValue, A::Error> {
                let mut l = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    l.push(s);
                }
                Ok(AttrValue::StringList(l))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AttrValue, A::Error> {
                use serde::de::Error;
                match map.next_key::<String>()? {
                    Some(k) if k == "$serde_json::private::Number" => {
                        let text: String = map.next_value()?;
                        text.parse::<f64>()
                            .map(AttrValue::Number)
                            .map_err(A::Error::custom)
                    }
                    _ => Err(A::Error::invalid_type(serde::de::Unexpected::Map, &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Converts a monotonic instant to wall-clock nanoseconds since the Unix epoch (best effort).
fn unix_nanos(at: Instant) -> u128 {
    let now_sys = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let age = Instant::now().saturating_duration_since(at);
    now_sys.saturating_sub(age).as_nanos()
}

/// What [`Serialize`] writes, field for field in the same order, so that formats that write a
/// struct as the list of its fields (compact MessagePack, bincode) read it back in line (found
/// by review: without the id and timestamp here, MessagePack read the id as the attributes).
#[derive(Deserialize)]
struct WireMessage<T> {
    /// Read and dropped: the message gets a fresh id. Of any type (another producer's id may
    /// be a string), and never parsed as a number: a timestamp read as a `u128` failed inside
    /// an untagged enum or a flattened struct, which serde buffers without `u128` support
    /// (found by review).
    #[serde(default, rename = "id")]
    _id: Option<serde::de::IgnoredAny>,
    /// Read and dropped: the message is new here.
    #[serde(default, rename = "timestamp")]
    _timestamp: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    attributes: Attributes,
    #[serde(default)]
    correlation_id: Option<CorrelationId>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    dedup_id: Option<String>,
    #[serde(default)]
    ttl_ms: Option<u64>,
    #[serde(default)]
    dead_letter: Option<DeadLetter>,
    payload: T,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Message<T> {
    /// Reads what [`Serialize`] writes. The message gets a fresh id (ids are unique per process)
    /// and no timestamp: it is a new message here.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireMessage::<T>::deserialize(d)?;
        let mut m = Message::new(w.payload).with_attributes(w.attributes);
        if let Some(c) = w.correlation_id {
            m = m.with_correlation_id(c);
        }
        if let Some(g) = w.group {
            m = m.with_group(g);
        }
        if let Some(x) = w.dedup_id {
            m = m.with_dedup_id(x);
        }
        if let Some(t) = w.ttl_ms {
            m = m.with_ttl(Duration::from_millis(t));
        }
        if let Some(info) = w.dead_letter {
            m.set_dead_letter(info);
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metadata block a message with any metadata carries: 136 bytes with its `Arc`'s
    /// two counts (see the `Message` docs).
    #[test]
    fn the_metadata_block_is_136_bytes() {
        assert_eq!(std::mem::size_of::<Ext>() + 16, 136);
    }

    #[test]
    fn small_message_is_payload_plus_three_words() {
        assert_eq!(std::mem::size_of::<Message<()>>(), 24);
        assert_eq!(std::mem::size_of::<Message<u64>>(), 32);
        // The id's niche leaves room for an enum tag for free.
        assert_eq!(std::mem::size_of::<Option<Message<u64>>>(), 32);
    }

    #[test]
    fn ids_convert_to_and_from_numbers() {
        let c = CorrelationId::from(42u64);
        assert_eq!((c, u64::from(c)), (CorrelationId::from_u64(42), 42));
        let id = Message::new(()).id();
        assert_eq!(u64::from(id), id.get());
    }

    #[test]
    fn attributes_iterate_by_reference_in_key_order() {
        let attrs: Attributes = [("b", 2), ("a", 1)].into_iter().collect();
        let it = (&attrs).into_iter();
        assert_eq!(it.len(), 2);
        let pairs: Vec<(&str, &AttrValue)> = it.collect();
        assert_eq!(pairs, attrs.iter().collect::<Vec<_>>());
        assert_eq!(pairs.iter().map(|p| p.0).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn ids_are_unique_across_threads() {
        let ids: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..3000)
                            .map(|_| MessageId::next().get())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }

    #[test]
    fn an_attribute_reads_back_from_each_form_json_gives_it() {
        let read = |j: &str| serde_json::from_str::<AttrValue>(j);
        assert_eq!(read(r#""eu""#).unwrap(), AttrValue::from("eu"));
        assert_eq!(read("true").unwrap(), AttrValue::Bool(true));
        assert_eq!(read("-3").unwrap(), AttrValue::Number(-3.0));
        assert_eq!(
            read("18446744073709551615").unwrap(),
            AttrValue::Number(u64::MAX as f64)
        );
        assert_eq!(read("2.5").unwrap(), AttrValue::Number(2.5));
        assert_eq!(read(r#"["a","b"]"#).unwrap(), AttrValue::from(["a", "b"]));
        // A number as serde_json writes it when a crate in the build turns on its
        // `arbitrary_precision` feature (found by review: a message with any number attribute
        // failed to read back then).
        let text = r#"{"$serde_json::private::Number":"100"}"#;
        assert_eq!(read(text).unwrap(), AttrValue::Number(100.0));
        for bad in [
            "null",
            "{}",
            r#"{"k":"v"}"#,
            r#"[1]"#,
            r#"{"$serde_json::private::Number":"x"}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clone_shares_metadata() {
        let m = Message::new(1).with_attr("k", "v");
        let c = m.clone();
        assert!(Arc::ptr_eq(
            m.ext.as_ref().unwrap(),
            c.ext.as_ref().unwrap()
        ));
        let c = c.with_attr("k2", 2);
        assert!(!Arc::ptr_eq(
            m.ext.as_ref().unwrap(),
            c.ext.as_ref().unwrap()
        ));
        assert_eq!(m.attributes().len(), 1);
        assert_eq!(c.attributes().len(), 2);
    }

    #[test]
    fn attributes_stay_sorted_and_replace() {
        let mut a = Attributes::new();
        assert_eq!(a.insert("b", 1), None);
        a.insert("a", "x");
        assert_eq!(a.insert("b", 2), Some(AttrValue::Number(1.0)));
        assert_eq!(a.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(a.remove("a"), Some(AttrValue::from("x")));
        assert!(!a.contains_key("a"));
    }

    #[test]
    fn negative_zero_is_zero() {
        assert_eq!(
            AttrValue::from(-0.0_f64).as_f64().unwrap().to_bits(),
            0.0_f64.to_bits()
        );
    }

    /// -0 and 0 are one number whatever float type they come from: `From<f32>` goes through
    /// `From<f64>`, which clears the sign (found by mutation testing: only `f64` was checked).
    #[test]
    fn negative_zero_from_f32_is_zero() {
        assert_eq!(
            AttrValue::from(-0.0_f32).as_f64().unwrap().to_bits(),
            0.0_f64.to_bits()
        );
    }

    /// Only a text format refuses NaN and infinite number attributes: a binary one has a form
    /// for them, and they read back (found by mutation testing: refusing them in every format
    /// passed).
    #[test]
    fn a_number_json_cannot_hold_round_trips_in_messagepack() {
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let m = Message::new(1u8).with_attr("x", x);
            let bytes = rmp_serde::to_vec(&m).unwrap();
            let back: Message<u8> = rmp_serde::from_slice(&bytes).unwrap();
            let y = back.attr("x").and_then(AttrValue::as_f64).unwrap();
            assert!(y == x || (y.is_nan() && x.is_nan()), "{x} read back as {y}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let m = Message::new(5u32)
            .with_attr("region", "eu")
            .with_attr("tags", ["a", "b"])
            .with_attr("n", 1.5)
            .with_group("g")
            .with_correlation_id(CorrelationId::from_u64(9));
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"region\":\"eu\""), "{json}");
        let back: Message<u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.payload(), &5);
        assert_eq!(back.attributes(), m.attributes());
        assert_eq!(back.group(), Some("g"));
        assert_eq!(back.correlation_id(), Some(CorrelationId::from_u64(9)));
        assert_ne!(back.id(), m.id());
    }

    /// Found by review: compact MessagePack writes a struct as the list of its fields, and the
    /// reading side lacked the id and timestamp, so every message failed to read back.
    #[test]
    fn serde_round_trip_in_a_format_that_writes_fields_in_order() {
        let mut m = Message::new(5u32)
            .with_attr("region", "eu")
            .with_attr("tags", ["a", "b"])
            .with_attr("n", 1.5)
            .with_group("g")
            .with_dedup_id("d")
            .with_ttl(Duration::from_millis(1500))
            .with_correlation_id(CorrelationId::from_u64(9));
        m.stamp(1);
        let info = DeadLetter {
            reason: "poison".into(),
            attempts: 2,
            source: None,
        };
        m.set_dead_letter(info.clone());
        let bytes = rmp_serde::to_vec(&m).unwrap();
        let back: Message<u32> = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.payload(), &5);
        assert_eq!(back.attributes(), m.attributes());
        assert_eq!((back.group(), back.dedup_id()), (Some("g"), Some("d")));
        assert_eq!(back.correlation_id(), Some(CorrelationId::from_u64(9)));
        assert_eq!(back.ttl(), Some(Duration::from_millis(1500)));
        assert_eq!(back.dead_letter(), Some(&info));
        assert_ne!(back.id(), m.id());
        assert_eq!(back.timestamp(), None);
        // And by name, as named MessagePack writes it.
        let named = rmp_serde::to_vec_named(&m).unwrap();
        let back: Message<u32> = rmp_serde::from_slice(&named).unwrap();
        assert_eq!(back.attributes(), m.attributes());
    }

    /// Found by review of the fix above: a stamped message inside an untagged enum or a
    /// flattened struct failed to read back ("u128 is not supported").
    #[test]
    fn serde_round_trip_inside_untagged_and_flattened_envelopes() {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            M(Message<u32>),
        }
        #[derive(Deserialize)]
        struct Outer {
            #[serde(flatten)]
            m: Message<u32>,
        }
        let mut m = Message::new(7u32).with_attr("k", "v");
        m.stamp(1);
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"timestamp\":"), "{json}");
        let Either::M(back) = serde_json::from_str(&json).unwrap();
        assert_eq!((back.payload(), back.attributes()), (&7, m.attributes()));
        let back: Outer = serde_json::from_str(&json).unwrap();
        assert_eq!(back.m.payload(), &7);
        // Another producer's id and time, of other types, are read and dropped too.
        let other = r#"{"id":"abc","timestamp":"2024-01-01T00:00:00Z","payload":3}"#;
        let back: Message<u32> = serde_json::from_str(other).unwrap();
        assert_eq!(back.payload(), &3);
    }

    #[test]
    fn a_ttl_past_what_milliseconds_hold_saturates_when_written() {
        let ttl = Duration::from_secs(18_446_744_073_709_552); // 2^64 ms and 384 ms more
        let m = Message::new(1u8).with_ttl(ttl);
        let back: Message<u8> = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back.ttl(), Some(Duration::from_millis(u64::MAX)));
    }

    #[test]
    fn a_ttl_reads_back_rounded_up_to_the_millisecond() {
        for (us, ms) in [(900, 1), (1_900, 2), (2_000, 2)] {
            let m = Message::new(1u8).with_ttl(Duration::from_micros(us));
            let json = serde_json::to_string(&m).unwrap();
            let back: Message<u8> = serde_json::from_str(&json).unwrap();
            assert_eq!(back.ttl(), Some(Duration::from_millis(ms)), "{us} µs");
        }
    }

    #[test]
    fn a_dead_letter_record_survives_serde() {
        let mut m = Message::new(1u8);
        let info = DeadLetter {
            reason: "cannot parse".into(),
            attempts: 3,
            source: Some("orders".into()),
        };
        m.set_dead_letter(info.clone());
        let back: Message<u8> = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back.dead_letter(), Some(&info));
    }

    #[test]
    fn a_number_json_cannot_hold_fails_to_serialize_instead_of_reading_back_wrong() {
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let m = Message::new(1u8).with_attr("x", x);
            let err = serde_json::to_string(&m).unwrap_err();
            assert!(err.to_string().contains("no text form"), "{err}");
        }
        let fine = Message::new(1u8).with_attr("x", 1.5);
        let back: Message<u8> =
            serde_json::from_str(&serde_json::to_string(&fine).unwrap()).unwrap();
        assert_eq!(back.attributes(), fine.attributes());
    }

    #[test]
    fn debug_hides_payload() {
        struct Secret;
        let s = format!("{:?}", Message::new(Secret).with_attr("k", 1));
        assert!(s.starts_with("Message { id: MessageId("), "{s}");
    }

    /// An attribute from a `&String`, as a policy value already could be (found by review:
    /// `with_attr("region", &region)` did not compile).
    #[test]
    fn an_attribute_from_a_borrowed_string() {
        let region = String::from("eu");
        let m = Message::new(()).with_attr("region", &region);
        assert_eq!(m.attr("region").and_then(AttrValue::as_str), Some("eu"));
    }
}
