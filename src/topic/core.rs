//! The topic's shared state: the subscriber set (copy-on-write, swapped atomically), the
//! per-subscription sinks and the counters, and the publish loop.
//!
//! Invariants:
//! - The subscriber set is immutable. Writers (subscribe, unsubscribe, close) build a new one under
//!   `writer` and swap it in; publishers only `load` it. A publisher never takes a lock, and never
//!   touches a reference count a subscriber or another publisher writes (arc-swap's `load` borrows
//!   through a per-thread debt slot).
//! - A channel subscription's `Sender` lives only in sets. When the topic closes (an empty, closed
//!   set is swapped in) or drops, the last set holding it goes once the publishes in progress
//!   finish, and the subscriber sees `Closed` after draining: nothing accepted is lost.
//! - Only `DropOldest` subscriptions keep a `Receiver` in the set (to pop the oldest message when
//!   full), so dropping a `Subscription` of any other policy disconnects its channel once the drop
//!   has emptied it, and a publisher blocked on it wakes and moves on. A copy that went in while
//!   the drop was emptying it goes with it, and counts nowhere: every delivery looks at the
//!   subscription's `gone` flag after the copy went in.
//! - Subscriptions are keyed by a `u64` handed out in subscription order, and a set keeps them in
//!   key order, the unfiltered and the filtered apart. Filtered subscriptions live in a
//!   `FilterIndex<SubKey, T>` that writers keep under their lock; each set carries an immutable
//!   snapshot of it, so a publish asks the index which keys match (never evaluating every filter)
//!   and delivers to those and to the unfiltered subscriptions, in key order, counting the rest
//!   as `filtered_out`.
//! - A set's subscriptions are `Chunked`: a writer's copy shares every chunk it does not change,
//!   so a subscribe or unsubscribe costs about the square root of a large set's size, not its
//!   size (20,000 subscribes took 27 s when each copied the whole set).

use std::any::Any;
use std::collections::HashMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use crossbeam_channel as cb;
use parking_lot::Mutex;

use crate::chunked::Chunked;
use crate::clock::Clock;
use crate::endpoint::{on_path, Endpoint, Partial, Visit, Wait, LOOP};
use crate::filter::{Filter, FilterIndex, FilterSnapshot};
use crate::message::Message;
use crate::queue::core::{room_step, Padded, ARRAY_MAX, COUNTED_POLL, ROOM_DIVISOR, SPIN_STEPS};
use crate::topic::{
    Overflow, PublishError, PublishReport, SubscribeOptions, SubscriptionId, SubscriptionStats,
    TopicStats,
};
use crate::DeliverError;

/// The key of a subscription in the set (and, later, in the filter index).
pub(crate) type SubKey = u64;

pub(crate) type Validator<T> = dyn Fn(&Message<T>) -> Result<(), String> + Send + Sync;

/// Counters of one subscription. `received` and a channel subscription's `expired` are written
/// by the subscriber only; `dropped`, and a chained endpoint's `expired`, by publishers, only
/// when they drop something.
#[derive(Default)]
pub(crate) struct SubCounters {
    pub received: Padded<AtomicU64>,
    pub dropped: AtomicU64,
    pub expired: AtomicU64,
    /// Set when the `Subscription` drops, before it empties its buffer. A publish still under
    /// way with an older set looks here after a copy went in, so as not to count a delivery to a
    /// subscription that is gone (found by review): its drop's emptying makes room, so a copy
    /// can go into a buffer nobody will read, and a `DropOldest` channel stays connected while
    /// a set holds its receiver.
    pub gone: std::sync::atomic::AtomicBool,
}

/// Where a subscription's messages go.
pub(crate) enum Sink<T> {
    /// The subscription's own buffer.
    Channel {
        tx: cb::Sender<Message<T>>,
        /// Kept for `DropOldest` only: the publisher pops the oldest message when full.
        rx: Option<cb::Receiver<Message<T>>>,
    },
    /// A queue, topic or closure.
    Endpoint(Endpoint<T>),
}

/// One subscription in the set.
pub(crate) struct Sub<T> {
    pub key: SubKey,
    pub overflow: Overflow,
    pub capacity: Option<usize>,
    pub sink: Sink<T>,
    pub counters: Arc<SubCounters>,
    /// Whether the subscription has a filter (in the index).
    pub filtered: bool,
}

impl<T> Clone for Sub<T> {
    fn clone(&self) -> Self {
        Sub {
            key: self.key,
            filtered: self.filtered,
            overflow: self.overflow,
            capacity: self.capacity,
            sink: match &self.sink {
                Sink::Channel { tx, rx } => Sink::Channel {
                    tx: tx.clone(),
                    rx: rx.clone(),
                },
                Sink::Endpoint(e) => Sink::Endpoint(e.clone()),
            },
            counters: Arc::clone(&self.counters),
        }
    }
}

impl<T> Sub<T> {
    /// 1 for a chained endpoint (which could lead back here), else 0: what it adds to a set's
    /// `chained` count.
    fn chained(&self) -> usize {
        usize::from(matches!(self.sink, Sink::Endpoint(_)))
    }

    fn stats(&self) -> SubscriptionStats {
        let lag = match &self.sink {
            Sink::Channel { tx, .. } => tx.len(),
            Sink::Endpoint(_) => 0,
        };
        SubscriptionStats {
            received: self.counters.received.0.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            expired: self.counters.expired.load(Ordering::Relaxed),
            lag,
        }
    }
}

/// An immutable subscriber set.
pub(crate) struct Set<T> {
    pub closed: bool,
    /// The subscriptions without a filter, in key (subscription) order.
    plain: Chunked<Sub<T>>,
    /// With filtered subscriptions: those, in key order, and the index's snapshot.
    filters: Option<Filters<T>>,
    /// How many subscriptions are chained endpoints (which could lead back here).
    chained: usize,
}

pub(crate) struct Filters<T> {
    index: FilterSnapshot<SubKey, T>,
    subs: Chunked<Sub<T>>,
}

/// The subscriptions of a set being built: its two lists, and its count of chained ones.
struct Parts<T> {
    plain: Chunked<Sub<T>>,
    filtered: Chunked<Sub<T>>,
    chained: usize,
}

/// A target of a filtered publish: a position in the set's unfiltered list, or with this bit
/// set, in its filtered list.
const FILTERED: usize = 1 << (usize::BITS - 1);

impl<T> Set<T> {
    fn empty(closed: bool) -> Set<T> {
        Set {
            closed,
            plain: Chunked::default(),
            filters: None,
            chained: 0,
        }
    }

    /// The set's lists, to change in a copy (sharing every chunk not changed).
    fn parts(&self) -> Parts<T> {
        Parts {
            plain: self.plain.clone(),
            filtered: self
                .filters
                .as_ref()
                .map_or_else(Chunked::default, |f| f.subs.clone()),
            chained: self.chained,
        }
    }

    /// A set of `parts`, with a snapshot of `index` if any subscription is filtered.
    fn new(closed: bool, parts: Parts<T>, index: &mut FilterIndex<SubKey, T>) -> Set<T> {
        let filters = (!parts.filtered.is_empty()).then(|| Filters {
            index: index.snapshot(),
            subs: parts.filtered,
        });
        Set {
            closed,
            plain: parts.plain,
            filters,
            chained: parts.chained,
        }
    }

    fn len(&self) -> usize {
        self.plain.len() + self.filters.as_ref().map_or(0, |f| f.subs.len())
    }

    /// The subscription `key`.
    fn find(&self, key: SubKey) -> Option<&Sub<T>> {
        let by_key = |s: &Sub<T>| s.key.cmp(&key);
        match self.plain.binary_search_by(by_key) {
            Ok(i) => self.plain.get(i),
            Err(_) => {
                let subs = &self.filters.as_ref()?.subs;
                subs.get(subs.binary_search_by(by_key).ok()?)
            }
        }
    }

    /// The subscription at a filtered publish's target `t`.
    #[inline]
    fn target(&self, t: usize) -> Option<&Sub<T>> {
        if t & FILTERED == 0 {
            self.plain.get(t)
        } else {
            self.filters.as_ref()?.subs.get(t & !FILTERED)
        }
    }
}

impl<T> Parts<T> {
    fn add(&mut self, sub: Sub<T>) {
        self.chained += sub.chained();
        // Keys grow: a new subscription goes last.
        if sub.filtered {
            self.filtered.push(sub);
        } else {
            self.plain.push(sub);
        }
    }

    /// Takes the subscription `key` out.
    fn take(&mut self, key: SubKey) -> Option<Sub<T>> {
        let by_key = |s: &Sub<T>| s.key.cmp(&key);
        let sub = match self.plain.binary_search_by(by_key) {
            Ok(i) => self.plain.remove(i),
            Err(_) => {
                let i = self.filtered.binary_search_by(by_key).ok()?;
                self.filtered.remove(i)
            }
        };
        self.chained -= sub.chained();
        Some(sub)
    }

    /// Puts `sub` back in key order (after `take`).
    fn put(&mut self, sub: Sub<T>) {
        self.chained += sub.chained();
        let list = if sub.filtered {
            &mut self.filtered
        } else {
            &mut self.plain
        };
        let (Ok(i) | Err(i)) = list.binary_search_by(|s| s.key.cmp(&sub.key));
        list.insert(i, sub);
    }
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    delivered: AtomicU64,
}

/// What writers serialize on: the next key and the filter index.
struct Writer<T> {
    next_key: SubKey,
    index: FilterIndex<SubKey, T>,
    /// The filters of subscriptions removed by `Topic::unsubscribe` whose `Subscription` still
    /// lives, for its `resubscribe` (found by review: the new subscription had no filter). Let
    /// go of when that `Subscription` drops (`forget`) or the topic closes.
    detached: HashMap<SubKey, Filter<T>>,
}

pub(crate) struct Shared<T> {
    set: ArcSwap<Set<T>>,
    writer: Mutex<Writer<T>>,
    hot: Padded<Counters>,
    dropped: AtomicU64,
    rejected: AtomicU64,
    filtered_out: AtomicU64,
    pub(crate) validator: Option<Arc<Validator<T>>>,
    pub(crate) clock: Clock,
    pub(crate) name: Option<String>,
}

/// What a fan-out leaves for after it: the copy to hand back to the publisher, and the copies
/// it could not deliver. Those drop only once the whole fan-out is over (the outermost, through
/// chained topics and lists): a payload's drop is user code, and one that panics midway must
/// not keep the message from the subscriptions after it (found by an audit of payload drops).
struct Leftovers<'a, T> {
    /// The topic's clock: a chained endpoint is not handed a message whose time ran out.
    clock: &'a Clock,
    back: Option<Message<T>>,
    later: &'a mut Vec<Message<T>>,
    /// Whether this publish is the whole fan-out (no chained one around it): then what it
    /// could not deliver drops before a wait for room (`let_go`) rather than after it.
    outermost: bool,
    /// A panic from such a drop, raised again once the fan-out is over.
    panic: Option<Box<dyn Any + Send>>,
}

impl<T> Leftovers<'_, T> {
    /// Keeps `m` to hand back to the publisher, unless a copy is kept already.
    fn hand_back(&mut self, m: Message<T>) {
        if self.back.is_none() {
            self.back = Some(m);
        } else {
            self.later.push(m);
        }
    }

    /// Before a wait for room (which may be long): drops what the fan-out could not deliver so
    /// far, rather than keep copies pushed out or refused alive for as long as the wait (found
    /// by review: a `Block` publish held the copy a `DropOldest` subscription pushed out until
    /// a slow subscriber made room). A panicking drop is kept for the end of the fan-out. Only
    /// the outermost publish does so: a chained one cannot hand a panic up.
    fn let_go(&mut self) {
        if !self.outermost {
            return;
        }
        for m in self.later.drain(..) {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| drop(m))) {
                self.panic.get_or_insert(p);
            }
        }
    }
}

impl<T> Shared<T> {
    pub(crate) fn new(
        validator: Option<Arc<Validator<T>>>,
        clock: Clock,
        name: Option<String>,
    ) -> Shared<T> {
        Shared {
            set: ArcSwap::from_pointee(Set::empty(false)),
            writer: Mutex::new(Writer {
                next_key: 1,
                index: FilterIndex::new(),
                detached: HashMap::new(),
            }),
            hot: Padded::default(),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            filtered_out: AtomicU64::new(0),
            validator,
            clock,
            name,
        }
    }

    // ----- writers ----------------------------------------------------------------------------

    /// Adds a subscription built by `make` from its key; returns the key. On a closed topic the
    /// subscription is built and dropped at once (a channel subscriber then sees `Closed`).
    pub(crate) fn add(
        &self,
        filter: Option<Filter<T>>,
        make: impl FnOnce(SubKey) -> Sub<T>,
    ) -> SubKey {
        let mut w = self.writer.lock();
        let key = w.next_key;
        w.next_key += 1;
        let mut sub = make(key);
        let cur = self.set.load_full();
        if cur.closed {
            drop(w);
            return key;
        }
        if let Some(f) = filter {
            w.index.insert(key, f);
            sub.filtered = true;
        }
        let mut parts = cur.parts();
        parts.add(sub);
        let old = self
            .set
            .swap(Arc::new(Set::new(false, parts, &mut w.index)));
        // Old sets (whose drop may run user code, an endpoint closure's captures) and a sink
        // refused by a closed topic go after the lock, so that code may unsubscribe.
        drop(w);
        drop((old, cur));
        key
    }

    /// Removes a subscription; returns whether it was there.
    pub(crate) fn remove(&self, key: SubKey) -> bool {
        self.remove_keeping(key, false)
    }

    /// Removes a subscription on the topic's word (`Topic::unsubscribe`): a channel
    /// subscription's filter is kept for its `Subscription`, which lives on (see `detached`).
    pub(crate) fn unsubscribe(&self, key: SubKey) -> bool {
        self.remove_keeping(key, true)
    }

    /// `remove`; with `keep`, a channel subscription's filter goes to `detached` (found by
    /// review: kept on every removal, the filters of dropped subscriptions piled up there).
    fn remove_keeping(&self, key: SubKey, keep: bool) -> bool {
        let mut w = self.writer.lock();
        let cur = self.set.load_full();
        let mut parts = cur.parts();
        let Some(removed) = parts.take(key) else {
            return false;
        };
        let mut removed_filter = w.index.remove(&key);
        if keep && matches!(removed.sink, Sink::Channel { .. }) {
            if let Some(f) = removed_filter.take() {
                w.detached.insert(key, f);
            }
        }
        let old = self
            .set
            .swap(Arc::new(Set::new(cur.closed, parts, &mut w.index)));
        drop(w);
        drop((removed, removed_filter));
        drop(old);
        // `cur` (and with it the removed sink) goes now, or when the last publisher lets go of
        // it, outside the lock.
        drop(cur);
        true
    }

    pub(crate) fn close(&self) -> bool {
        let mut w = self.writer.lock();
        if self.set.load().closed {
            return false;
        }
        let old = self.set.swap(Arc::new(Set::empty(true)));
        // The subscriptions are gone, so are their filters (whose predicates may own resources);
        // dropped after the lock, as their drop may run user code.
        let filters = std::mem::take(&mut w.index);
        let detached = std::mem::take(&mut w.detached);
        drop(w);
        drop((old, filters, detached));
        true
    }

    /// Lets go of the filter kept for a removed subscription (its `Subscription` dropped).
    pub(crate) fn forget(&self, key: SubKey) {
        let mut w = self.writer.lock();
        let filter = w.detached.remove(&key);
        drop(w);
        drop(filter);
    }

    /// Sets (or, with `None`, removes) a live subscription's filter; it applies from the next
    /// publish. Returns whether the subscription exists.
    pub(crate) fn set_filter(&self, key: SubKey, filter: Option<Filter<T>>) -> bool {
        let mut w = self.writer.lock();
        let cur = self.set.load_full();
        let mut parts = cur.parts();
        let Some(mut sub) = parts.take(key) else {
            return false;
        };
        let old_filter = match filter {
            Some(f) => w.index.insert(key, f),
            None => w.index.remove(&key),
        };
        sub.filtered = w.index.contains_key(&key);
        parts.put(sub);
        let old = self
            .set
            .swap(Arc::new(Set::new(cur.closed, parts, &mut w.index)));
        drop(w);
        drop((old, old_filter, cur));
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.set.load().closed
    }

    /// A live subscription's filter, if it has one.
    pub(crate) fn filter_of(&self, key: SubKey) -> Option<Filter<T>> {
        let w = self.writer.lock();
        w.index.get(&key).or_else(|| w.detached.get(&key)).cloned()
    }

    /// Whether the subscription `key` is in the current set (not yet removed, topic open).
    pub(crate) fn contains(&self, key: SubKey) -> bool {
        let set = self.set.load();
        !set.closed && set.find(key).is_some()
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        self.set.load().len()
    }

    pub(crate) fn stats(&self) -> TopicStats {
        TopicStats {
            published: self.hot.0.published.load(Ordering::Relaxed),
            delivered: self.hot.0.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            filtered_out: self.filtered_out.load(Ordering::Relaxed),
            subscribers: self.subscriber_count(),
        }
    }

    pub(crate) fn subscription_stats(&self, id: SubscriptionId) -> Option<SubscriptionStats> {
        let set = self.set.load();
        set.find(id.0).map(Sub::stats)
    }
}

impl<T: Clone> Shared<T> {
    // ----- the hot path -----------------------------------------------------------------------

    /// Delivers `msg` to every subscription of the current set, then drops the copies that
    /// could not be delivered.
    #[inline]
    pub(crate) fn publish(
        &self,
        msg: Message<T>,
        wait: Wait,
    ) -> Result<PublishReport, PublishError<T>> {
        let mut later = Vec::new();
        let result = self.publish_with(msg, wait, &mut later, true);
        drop(later);
        result
    }

    /// `publish`, leaving the copies that could not be delivered in `later` for the caller to
    /// drop once its own fan-out (of which this publish is part) is over.
    #[inline]
    pub(crate) fn publish_into(
        &self,
        msg: Message<T>,
        wait: Wait,
        later: &mut Vec<Message<T>>,
    ) -> Result<PublishReport, PublishError<T>> {
        self.publish_with(msg, wait, later, false)
    }

    /// `publish_into`; `outermost` when no fan-out is around this one (see `Leftovers`).
    #[inline]
    fn publish_with(
        &self,
        mut msg: Message<T>,
        wait: Wait,
        later: &mut Vec<Message<T>>,
        outermost: bool,
    ) -> Result<PublishReport, PublishError<T>> {
        let set = self.set.load();
        if set.closed {
            return Err(PublishError::Closed(msg));
        }
        if let Some(v) = &self.validator {
            if let Err(reason) = v(&msg) {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(PublishError::Rejected {
                    message: msg,
                    reason,
                });
            }
        }
        // A chain of endpoints that brought this message back here is a loop: refused, so that
        // it ends instead of recursing until the stack overflows (found by review).
        let at = self as *const Self as *const () as usize;
        if on_path(at, msg.id()) {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(PublishError::Rejected {
                message: msg,
                reason: LOOP.into(),
            });
        }
        let _visit = (set.chained > 0).then(|| Visit::enter(at, msg.id()));
        // A message handed back (`Full`) goes back as it came, as a queue's refusal does.
        let came = msg.timestamp_nanos();
        msg.stamp(self.clock.nanos());
        self.hot.0.published.fetch_add(1, Ordering::Relaxed);

        // Counted when the publish ends, however it ends: a clone, filter or endpoint (user
        // code) that panics midway leaves the deliveries made before it counted.
        let mut tally = Tally {
            topic: self,
            report: PublishReport::default(),
        };
        let report = &mut tally.report;
        let left = &mut Leftovers {
            clock: &self.clock,
            back: None,
            later,
            outermost,
            panic: None,
        };
        match &set.filters {
            None => {
                if let Some((last, before, rest)) = set.plain.split_last() {
                    for chunk in before {
                        for sub in chunk.iter() {
                            deliver(sub, msg.clone(), wait, report, left);
                        }
                    }
                    for sub in rest {
                        deliver(sub, msg.clone(), wait, report, left);
                    }
                    // The last subscription gets the original: one clone fewer.
                    deliver(last, msg, wait, report, left);
                }
            }
            Some(filters) => {
                let targets = filters.targets(&set.plain, &msg);
                report.filtered_out = filters.subs.len() - (targets.len() - set.plain.len());
                if let Some((&last, rest)) = targets.split_last() {
                    for &t in rest {
                        if let Some(sub) = set.target(t) {
                            deliver(sub, msg.clone(), wait, report, left);
                        }
                    }
                    if let Some(sub) = set.target(last) {
                        deliver(sub, msg, wait, report, left);
                    }
                }
                TARGETS.with(|t| t.set(crate::spin::scratch_kept(targets)));
            }
        }
        // Release the set before touching shared counters: a writer may be waiting to free it.
        drop(set);
        let report = tally.report;
        drop(tally);
        if let Some(p) = left.panic.take() {
            resume_unwind(p);
        }
        match left.back.take() {
            None => Ok(report),
            Some(mut message) => {
                message.stamp(came);
                Err(PublishError::Full { message, report })
            }
        }
    }
}

/// A publish's report, added to the topic's counters when the publish ends (see `publish`).
struct Tally<'a, T> {
    topic: &'a Shared<T>,
    report: PublishReport,
}

impl<T> Drop for Tally<'_, T> {
    fn drop(&mut self) {
        let (topic, report) = (self.topic, &self.report);
        if report.filtered_out != 0 {
            topic
                .filtered_out
                .fetch_add(report.filtered_out as u64, Ordering::Relaxed);
        }
        if report.delivered != 0 {
            topic
                .hot
                .0
                .delivered
                .fetch_add(report.delivered as u64, Ordering::Relaxed);
        }
        let lost = report.dropped();
        if lost != 0 {
            topic.dropped.fetch_add(lost as u64, Ordering::Relaxed);
        }
    }
}

thread_local! {
    /// A publishing thread's scratch buffers for the filtered path (taken out while in use, so a
    /// nested publish from an endpoint closure simply gets fresh ones).
    static TARGETS: std::cell::Cell<Vec<usize>> = const { std::cell::Cell::new(Vec::new()) };
    static KEYS: std::cell::Cell<Vec<SubKey>> = const { std::cell::Cell::new(Vec::new()) };
}

impl<T> Filters<T> {
    /// The subscriptions that get `msg`, as targets (see `FILTERED`): every unfiltered one in
    /// `plain` and the filtered ones whose filter the index says matches, in key order.
    fn targets(&self, plain: &Chunked<Sub<T>>, msg: &Message<T>) -> Vec<usize> {
        let mut keys = KEYS.with(|k| k.take());
        keys.clear();
        self.index.matching(msg, &mut keys);
        keys.sort_unstable();
        let mut targets = TARGETS.with(|t| t.take());
        targets.clear();
        targets.reserve(plain.len() + keys.len());
        // Merge the two key-ordered lists.
        let mut matched = keys
            .iter()
            .filter_map(|&k| {
                let i = self.subs.binary_search_by(|s| s.key.cmp(&k)).ok()?;
                Some((k, i | FILTERED))
            })
            .peekable();
        for (i, sub) in plain.iter().enumerate() {
            while let Some((_, t)) = matched.next_if(|&(k, _)| k < sub.key) {
                targets.push(t);
            }
            targets.push(i);
        }
        targets.extend(matched.map(|(_, t)| t));
        KEYS.with(|k| k.set(crate::spin::scratch_kept(keys)));
        targets
    }
}

/// A count of final receivers, for `PublishReport::reach_extra`.
fn reach(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

/// Delivers one copy to one subscription.
#[inline]
fn deliver<T: Clone>(
    sub: &Sub<T>,
    msg: Message<T>,
    wait: Wait,
    report: &mut PublishReport,
    left: &mut Leftovers<'_, T>,
) {
    match &sub.sink {
        Sink::Channel { tx, rx } => {
            if rx.is_some() && sub.counters.gone.load(Ordering::Acquire) {
                // Gone (see `SubCounters::gone`): as a disconnected channel.
                return left.later.push(msg);
            }
            if counted_full(sub, tx) {
                return overflow(sub, tx, rx.as_ref(), msg, wait, report, left);
            }
            match tx.try_send(msg) {
                // Gone meanwhile: its drop, emptying the buffer, takes this copy with it.
                Ok(()) if sub.counters.gone.load(Ordering::Acquire) => {}
                Ok(()) => report.delivered += 1,
                Err(cb::TrySendError::Full(msg)) => {
                    overflow(sub, tx, rx.as_ref(), msg, wait, report, left)
                }
                // The subscription was dropped; its removal from the set is under way.
                Err(cb::TrySendError::Disconnected(msg)) => left.later.push(msg),
            }
        }
        Sink::Endpoint(e) => deliver_endpoint(sub, e, msg, wait, report, left),
    }
}

/// Whether a subscription whose capacity is counted (above `ARRAY_MAX`, over an unbounded
/// channel) is full. Publishers racing past the check together may each add one beyond it.
#[inline]
fn counted_full<T>(sub: &Sub<T>, tx: &cb::Sender<Message<T>>) -> bool {
    sub.capacity.is_some_and(|c| c > ARRAY_MAX && tx.len() >= c)
}

/// Why a `Block` delivery did not go in.
enum NotSent<T> {
    /// Blocking was not allowed, or not for long enough: the publisher gets it back.
    Full(Message<T>),
    /// The subscription was dropped meanwhile.
    Gone(Message<T>),
}

/// A counted subscription's `Block`: waits (looking again at most every `COUNTED_POLL`) for
/// room, the deadline, or the subscription's end (its dropped receiver empties the channel).
#[cold]
fn block_counted<T>(
    sub: &Sub<T>,
    tx: &cb::Sender<Message<T>>,
    msg: Message<T>,
    deadline: Option<Instant>,
) -> Result<(), NotSent<T>> {
    while counted_full(sub, tx) {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(NotSent::Full(msg));
        }
        std::thread::sleep(deadline.map_or(COUNTED_POLL, |d| (d - now).min(COUNTED_POLL)));
    }
    tx.try_send(msg).map_err(|e| NotSent::Gone(e.into_inner()))
}

/// A full channel subscription's `Block`: waits for room, the deadline, or the subscription's
/// end. Spins, then yields, before crossbeam's blocking send, like that send itself, with one
/// difference: the retries wait until an eighth of the buffer is free (hysteresis), as a queue's
/// sender does (`queue::core::Shared::send_waiting`). A publisher that took each slot the moment
/// the subscriber freed it wrote the very cache line the subscriber was reading, message after
/// message: with one thread draining 4 subscriptions, that lockstep ran at a fifth of the speed
/// of a publisher that had not caught up.
#[cold]
fn block_channel<T>(
    tx: &cb::Sender<Message<T>>,
    mut msg: Message<T>,
    deadline: Option<Instant>,
) -> Result<(), NotSent<T>> {
    let capacity = tx.capacity().unwrap_or(usize::MAX);
    let room = (capacity / ROOM_DIVISOR).max(1);
    // A dropped subscription empties its channel, so the wait ends for it too.
    let roomy = || capacity.saturating_sub(tx.len()) >= room;
    let late = || deadline.is_some_and(|d| Instant::now() >= d);
    for step in 0..SPIN_STEPS {
        if !room_step(step, roomy, late) {
            continue;
        }
        msg = match tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(cb::TrySendError::Full(m)) => m,
            Err(cb::TrySendError::Disconnected(m)) => return Err(NotSent::Gone(m)),
        };
        if late() {
            return Err(NotSent::Full(msg));
        }
    }
    // `send` fails only on a disconnected channel.
    match deadline {
        None => tx.send(msg).map_err(|e| NotSent::Gone(e.into_inner())),
        Some(d) => tx.send_deadline(msg, d).map_err(|e| match e {
            cb::SendTimeoutError::Timeout(m) => NotSent::Full(m),
            cb::SendTimeoutError::Disconnected(m) => NotSent::Gone(m),
        }),
    }
}

/// A full channel subscription: apply its overflow policy.
#[cold]
#[inline(never)]
fn overflow<T>(
    sub: &Sub<T>,
    tx: &cb::Sender<Message<T>>,
    rx: Option<&cb::Receiver<Message<T>>>,
    mut msg: Message<T>,
    wait: Wait,
    report: &mut PublishReport,
    left: &mut Leftovers<'_, T>,
) {
    let lost = || {
        sub.counters.dropped.fetch_add(1, Ordering::Relaxed);
    };
    match (sub.overflow, rx) {
        (Overflow::DropOldest, Some(rx)) => {
            // Each message pushed out is counted first and dropped after the fan-out: its
            // drop is user code, and one that panics must lose nothing uncounted.
            loop {
                // Make room by dropping the oldest (the subscriber may have made room meanwhile).
                if let Ok(m) = rx.try_recv() {
                    lost();
                    report.dropped_oldest += 1;
                    left.later.push(m);
                }
                match tx.try_send(msg) {
                    // Gone meanwhile (see `SubCounters::gone`): the room was its drop's.
                    Ok(()) if sub.counters.gone.load(Ordering::Acquire) => break,
                    Ok(()) => {
                        report.delivered += 1;
                        break;
                    }
                    Err(cb::TrySendError::Full(m)) => msg = m,
                    Err(cb::TrySendError::Disconnected(m)) => {
                        left.later.push(m);
                        break;
                    }
                }
            }
        }
        (Overflow::DropNewest, _) => {
            lost();
            report.dropped_newest += 1;
            left.later.push(msg);
        }
        (Overflow::Block, _) => {
            let counted = sub.capacity.is_some_and(|c| c > ARRAY_MAX);
            if !matches!(wait, Wait::Never) {
                left.let_go();
            }
            let res = match wait {
                Wait::Forever if counted => block_counted(sub, tx, msg, None),
                Wait::Until(d) if counted => block_counted(sub, tx, msg, Some(d)),
                Wait::Forever => block_channel(tx, msg, None),
                Wait::Until(d) => block_channel(tx, msg, Some(d)),
                Wait::Never => Err(NotSent::Full(msg)),
            };
            match res {
                // The subscription was dropped while this publish waited: its drop, emptying
                // the buffer, made the room this copy went into, to go with it. Counted
                // nowhere, as the report promises (found by review: counted as delivered).
                Ok(()) if sub.counters.gone.load(Ordering::Acquire) => {}
                Ok(()) => report.delivered += 1,
                // A disconnected channel: the subscription was dropped while we waited.
                Err(NotSent::Gone(m)) => left.later.push(m),
                Err(NotSent::Full(m)) => {
                    lost();
                    report.full += 1;
                    left.hand_back(m);
                }
            }
        }
        (Overflow::Error, _) | (Overflow::DropOldest, None) => {
            lost();
            report.full += 1;
            left.hand_back(msg);
        }
    }
}

/// Delivers one copy to an endpoint subscription, per its overflow policy.
fn deliver_endpoint<T: Clone>(
    sub: &Sub<T>,
    e: &Endpoint<T>,
    mut msg: Message<T>,
    wait: Wait,
    report: &mut PublishReport,
    left: &mut Leftovers<'_, T>,
) {
    // A message whose time-to-live ran out before the publish reached this endpoint (while it
    // waited for room in an earlier subscription, say) never reaches a closure: it is counted as
    // expired here, as a channel subscription counts it when it comes up (found by review: a
    // closure endpoint was called with it). A queue, topic or list gets it with no time left,
    // so that it expires there by that endpoint's own rules: a queue counts it and, if it says
    // so, dead-letters it (a queue restarts a message's time-to-live, so handing it on as it
    // was would have given it a new life; skipping it lost the dead-letter route).
    let mut zeroed = None;
    if msg
        .expiry_nanos()
        .is_some_and(|at| at <= left.clock.nanos())
    {
        if e.is_fn() {
            sub.counters.expired.fetch_add(1, Ordering::Relaxed);
            report.expired += 1;
            left.later.push(msg);
            return;
        }
        zeroed = msg.ttl();
        msg.set_ttl(std::time::Duration::ZERO);
    }
    let how = match sub.overflow {
        Overflow::Block => wait,
        _ => Wait::Never,
    };
    if !matches!(how, Wait::Never) {
        left.let_go();
    }
    let (err, partly) = match e.deliver_reach_into(msg, how, left.later) {
        Ok(n) => {
            report.delivered += 1;
            report.reach_extra += reach(n) - 1;
            return;
        }
        // A chained topic that reached some of its own subscriptions took the message: it
        // counts the ones it could not reach itself, and handing the message back would have a
        // retrying publisher send the others a duplicate.
        Err(Partial { reached, .. }) if reached > 0 && e.as_recipient_list().is_none() => {
            report.delivered += 1;
            report.reach_extra += reach(reached) - 1;
            return;
        }
        // A chained list that reached some recipients and failed others keeps no counts of its
        // own: the loss is counted here, by its kind, but the message is not handed back (a
        // retry would give the recipients that got it a duplicate).
        Err(Partial { error, reached }) => {
            report.reach_extra += reach(reached);
            (error, reached > 0)
        }
    };
    sub.counters.dropped.fetch_add(1, Ordering::Relaxed);
    // Counted now, dropped after the fan-out (user code, which may panic).
    match err {
        DeliverError::Full(m) => match sub.overflow {
            Overflow::DropNewest | Overflow::DropOldest => {
                report.dropped_newest += 1;
                left.later.push(m);
            }
            Overflow::Block | Overflow::Error => {
                report.full += 1;
                if partly {
                    left.later.push(m);
                } else {
                    // Handed back as the publisher sent it, not with the time-to-live this
                    // delivery gave it (found by review).
                    let mut m = m;
                    if let Some(t) = zeroed {
                        m.set_ttl(t);
                    }
                    left.hand_back(m);
                }
            }
        },
        DeliverError::Closed(m) => {
            report.closed += 1;
            left.later.push(m);
        }
        DeliverError::Rejected { message, .. } => {
            report.rejected += 1;
            left.later.push(message);
        }
    }
}

/// Builds the sink of a channel subscription and the receiving end.
pub(crate) fn channel<T>(opts: &SubscribeOptions) -> (Sink<T>, cb::Receiver<Message<T>>) {
    // A capacity above `ARRAY_MAX` is counted over an unbounded channel rather than allocated
    // up front (see `deliver`), as a queue's is.
    let (tx, rx) = match opts.capacity {
        Some(n) if n <= ARRAY_MAX => cb::bounded(n),
        _ => cb::unbounded(),
    };
    let keep = matches!(opts.overflow, Overflow::DropOldest) && opts.capacity.is_some();
    let sink = Sink::Channel {
        tx,
        rx: keep.then(|| rx.clone()),
    };
    (sink, rx)
}
