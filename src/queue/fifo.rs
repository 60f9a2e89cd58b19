//! FIFO message groups and the de-duplication window: plain data structures, kept under the
//! queue's slow-state lock.

use std::collections::{HashMap, VecDeque};

use crate::clock::Nanos;
use crate::message::{Message, MessageId};

/// The group of a message in a FIFO queue: its group key, or the default group (the empty key)
/// for messages sent without one.
pub(crate) fn group_of<T>(msg: &Message<T>) -> &str {
    msg.group().unwrap_or("")
}

struct Group<E> {
    key: Box<str>,
    queue: VecDeque<E>,
    /// A message of this group is in flight (or waiting out a `nack_after`): hand out no other.
    busy: bool,
    /// The group is in the round-robin list of groups with a message to hand out.
    listed: bool,
    /// The group is in the list of idle groups (it may have come back to use since).
    parked: bool,
}

impl<E> Group<E> {
    fn idle(&self) -> bool {
        !self.busy && !self.listed && self.queue.is_empty()
    }
}

/// Idle groups kept (with their key and queue buffer) for reuse, so that a group whose consumer
/// keeps up does not cost an allocation and a map insert and removal per message.
const IDLE_KEPT: usize = 64;

/// Capacity a structure may keep beyond what it holds before it gives memory back: memory
/// follows what is in the queue, and a burst's is given back once it is over (found by review:
/// a burst over 10,000 groups kept 1.6 MB, one of 10,000 dedup keys 1.3 MB, for the queue's
/// life).
const SPARE_KEPT: usize = 64;

/// Per-group queues served round-robin, one message in flight per group.
///
/// Groups live in a slab, found by key through `index`; the round-robin list holds slab slots,
/// so handing out a message hashes nothing.
pub(crate) struct Groups<E> {
    index: HashMap<Box<str>, usize>,
    slots: Vec<Option<Group<E>>>,
    free: Vec<usize>,
    available: VecDeque<usize>,
    /// Slots that went idle, oldest first, each once (some may have come back to use since):
    /// past [`IDLE_KEPT`] of them, the oldest leaves the list and is forgotten if still idle.
    idle: VecDeque<usize>,
    /// The slot of the group [`pop`](Groups::pop) last took from.
    last_popped: usize,
    len: usize,
}

impl<E> Groups<E> {
    pub(crate) fn new() -> Self {
        Groups {
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            available: VecDeque::new(),
            idle: VecDeque::new(),
            last_popped: usize::MAX,
            len: 0,
        }
    }

    /// Messages waiting (not in flight).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether some group can hand out a message now.
    pub(crate) fn has_available(&self) -> bool {
        !self.available.is_empty()
    }

    fn groups(&self) -> impl Iterator<Item = &Group<E>> {
        self.slots.iter().flatten()
    }

    /// Groups with messages waiting.
    pub(crate) fn groups_waiting(&self) -> usize {
        self.groups().filter(|g| !g.queue.is_empty()).count()
    }

    fn slot_of(&mut self, key: &str) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let group = Group {
            key: Box::from(key),
            queue: VecDeque::new(),
            busy: false,
            listed: false,
            parked: false,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(group);
                i
            }
            None => {
                self.slots.push(Some(group));
                self.slots.len() - 1
            }
        };
        self.index.insert(Box::from(key), i);
        i
    }

    fn at(&mut self, i: usize) -> &mut Group<E> {
        self.slots[i].as_mut().expect("live slot")
    }

    fn list_if_ready(&mut self, i: usize) {
        let g = self.at(i);
        if !g.busy && !g.listed && !g.queue.is_empty() {
            g.listed = true;
            self.available.push_back(i);
        }
    }

    fn note_if_idle(&mut self, i: usize) {
        let g = self.at(i);
        if g.parked || !g.idle() {
            return;
        }
        g.parked = true;
        self.idle.push_back(i);
        while self.idle.len() > IDLE_KEPT {
            let j = self.idle.pop_front().expect("non-empty");
            let g = self.at(j);
            g.parked = false;
            if g.idle() {
                let g = self.slots[j].take().expect("live slot");
                self.index.remove(&g.key);
                self.free.push(j);
            }
        }
        if self.free.len() > 3 * self.index.len() + SPARE_KEPT {
            self.compact();
        }
    }

    /// Renumbers the live groups into the bottom of the slab and gives back the rest, with the
    /// capacity of the lists of slots: the slab of a burst over many groups, mostly forgotten
    /// since. Amortized: it runs once the free slots outnumber the live groups three to one,
    /// and each free slot came from a group forgotten since the last compaction. A lease's
    /// slot hint (`release_at`) may then name another group or none: it checks the key, and
    /// falls back to the index.
    fn compact(&mut self) {
        let mut renumbered = vec![usize::MAX; self.slots.len()];
        let mut slots = Vec::with_capacity(self.index.len());
        for (old, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if let Some(g) = slot {
                renumbered[old] = slots.len();
                slots.push(Some(g));
            }
        }
        self.slots = slots;
        for i in self.index.values_mut() {
            *i = renumbered[*i];
        }
        self.index.shrink_to_fit();
        for i in self.available.iter_mut().chain(self.idle.iter_mut()) {
            *i = renumbered[*i];
        }
        self.available.shrink_to_fit();
        self.idle.shrink_to_fit();
        self.free = Vec::new();
        self.last_popped = renumbered
            .get(self.last_popped)
            .copied()
            .unwrap_or(usize::MAX);
    }

    /// Gives back a group buffer that a burst left large, once it is empty.
    fn shrink_queue(g: &mut Group<E>) {
        if g.queue.is_empty() && g.queue.capacity() > SPARE_KEPT {
            g.queue = VecDeque::new();
        } else if g.queue.capacity() > 4 * g.queue.len() + SPARE_KEPT {
            // Amortized: a burst's buffer is given back while the group still holds a few.
            g.queue.shrink_to(2 * g.queue.len());
        }
    }

    /// Appends a message to its group (a send, a due delayed message, a dead letter arriving).
    /// `key_of` gives the entry's group key.
    pub(crate) fn push_back(&mut self, e: E, key_of: impl FnOnce(&E) -> &str) {
        let i = self.slot_of(key_of(&e));
        self.at(i).queue.push_back(e);
        self.len += 1;
        self.list_if_ready(i);
    }

    /// Puts a returned message back at the head of its group and frees the group.
    pub(crate) fn push_front_and_release(&mut self, e: E, key_of: impl FnOnce(&E) -> &str) {
        let i = self.slot_of(key_of(&e));
        let g = self.at(i);
        g.queue.push_front(e);
        g.busy = false;
        self.len += 1;
        self.list_if_ready(i);
    }

    /// The group's message in flight was settled: the next one may go.
    pub(crate) fn release(&mut self, key: &str) {
        let Some(&i) = self.index.get(key) else {
            return;
        };
        self.release_slot(i);
    }

    /// [`release`](Groups::release) with the group's slot as [`last_popped`](Groups::last_popped)
    /// gave it when its message went out: no hashing when the slot still holds the group (a busy
    /// group is never forgotten, so it does).
    pub(crate) fn release_at(&mut self, hint: usize, key: &str) {
        match self.slots.get(hint) {
            Some(Some(g)) if *g.key == *key => self.release_slot(hint),
            _ => self.release(key),
        }
    }

    /// The slot of the group the last [`pop`](Groups::pop) took from, for
    /// [`release_at`](Groups::release_at).
    pub(crate) fn last_popped(&self) -> usize {
        self.last_popped
    }

    fn release_slot(&mut self, i: usize) {
        self.at(i).busy = false;
        self.list_if_ready(i);
        self.note_if_idle(i);
    }

    /// Takes the head of the next group in round-robin order. With `lease`, the group stays busy
    /// until [`release`](Groups::release); otherwise it goes to the back of the round.
    pub(crate) fn pop(&mut self, lease: bool) -> Option<E> {
        let i = self.available.pop_front()?;
        self.last_popped = i;
        let g = self.at(i);
        g.listed = false;
        let e = g.queue.pop_front().expect("listed groups have messages");
        Self::shrink_queue(g);
        g.busy = lease;
        self.len -= 1;
        if !lease {
            self.list_if_ready(i);
            self.note_if_idle(i);
        }
        Some(e)
    }

    /// Every waiting message, group by group.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &E> {
        self.groups().flat_map(|g| g.queue.iter())
    }

    /// Drains the waiting messages of the groups with none in flight (for redrive). A busy
    /// group keeps its messages: moved, they would go out while its head is still in flight.
    pub(crate) fn drain(&mut self) -> Vec<E> {
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(g) = slot else { continue };
            if g.busy {
                continue;
            }
            self.len -= g.queue.len();
            out.extend(g.queue.drain(..));
            self.index.remove(&g.key);
            *slot = None;
            self.free.push(i);
        }
        // Only groups with none in flight are listed or parked, and those are gone.
        self.available.clear();
        self.idle.clear();
        for g in self.slots.iter_mut().flatten() {
            g.parked = false;
        }
        if self.free.len() > 3 * self.index.len() + SPARE_KEPT {
            self.compact();
        }
        out
    }
}

/// The de-duplication window: keys seen recently, and when, aged out by the clock.
///
/// A key is recorded only together with its message's enqueueing (both under the queue's
/// lock), or, for a send that must wait for room outside the lock, as *pending* until that
/// send ends: then it is confirmed or forgotten. So a sender told "duplicate" can rely on the
/// original being in the queue.
pub(crate) struct Dedup {
    seen: HashMap<String, Record>,
    order: VecDeque<(Nanos, String)>,
    pub(crate) duplicates: u64,
}

/// A remembered key: the original's id, when it was recorded, and whether its send is still
/// waiting for room.
#[derive(Clone, Copy)]
struct Record {
    id: MessageId,
    at: Nanos,
    pending: bool,
}

/// What the window says about a key.
pub(crate) enum Seen {
    /// Not within the window (not recorded by looking).
    New,
    /// Sent within the window, under this id (counted as a duplicate).
    Duplicate(MessageId),
    /// Its original's send is still waiting for room: wait for it to end, then look again.
    Pending,
}

impl Dedup {
    pub(crate) fn new() -> Self {
        Dedup {
            seen: HashMap::new(),
            order: VecDeque::new(),
            duplicates: 0,
        }
    }

    /// `prune`, when the oldest entry has aged out: what a queue does outside de-duplicated
    /// sends, so that a burst of keys followed by other traffic is forgotten all the same
    /// (found by review: the keys were kept until the next de-duplicated send). One look at the
    /// front while nothing is due.
    pub(crate) fn age(&mut self, now: Nanos, window: Nanos, max: usize) {
        if self
            .order
            .front()
            .is_some_and(|(at, _)| now.saturating_sub(*at) >= window || self.seen.len() > max)
        {
            self.prune(now, window, max);
        }
    }

    /// Forgets keys older than `window`, and the oldest beyond `max` keys. A pending key stays
    /// (its confirmation records it again).
    ///
    /// `order` also holds stale entries: the first record of a key confirmed since (recorded
    /// again) or forgotten. They are stepped over and do not count against `max`: counted, they
    /// made live keys be forgotten early, and later duplicates got through (found by review).
    fn prune(&mut self, now: Nanos, window: Nanos, max: usize) {
        while let Some((at, key)) = self.order.front() {
            let current = self.seen.get(key).filter(|r| r.at == *at);
            if current.is_some() && now.saturating_sub(*at) < window && self.seen.len() <= max {
                break;
            }
            let forget = current.is_some_and(|r| !r.pending);
            let (_, key) = self.order.pop_front().expect("peeked");
            if forget {
                self.seen.remove(&key);
            }
        }
        // Stale entries behind a live one wait for it to go; once they outnumber the keys, they
        // go at once, so that `order` stays within twice the keys remembered.
        if self.order.len() > 2 * self.seen.len() + 64 {
            let seen = &self.seen;
            self.order
                .retain(|(at, key)| seen.get(key).is_some_and(|r| r.at == *at));
        }
        // A burst of keys aged out gives its memory back (amortized: only once the tables are
        // four times larger than what they hold, and shrunk to twice it).
        if self.seen.capacity() > 4 * self.seen.len() + SPARE_KEPT {
            self.seen.shrink_to(2 * self.seen.len());
        }
        if self.order.capacity() > 4 * self.order.len() + SPARE_KEPT {
            self.order.shrink_to(2 * self.order.len());
        }
    }

    /// What the window holds for `key` now.
    pub(crate) fn look(&mut self, key: &str, now: Nanos, window: Nanos, max: usize) -> Seen {
        self.prune(now, window, max);
        match self.seen.get(key) {
            None => Seen::New,
            Some(r) if r.pending => Seen::Pending,
            Some(r) => {
                self.duplicates += 1;
                Seen::Duplicate(r.id)
            }
        }
    }

    /// Records `key` as sent under `id` (or, `pending`, on its way in).
    pub(crate) fn record(&mut self, key: String, id: MessageId, now: Nanos, pending: bool) {
        let at = now;
        self.seen.insert(key.clone(), Record { id, at, pending });
        self.order.push_back((at, key));
    }

    /// A pending send of `key` went in at `now`: its window starts.
    pub(crate) fn confirm(&mut self, key: &str, id: MessageId, now: Nanos) {
        if self.seen.get(key).is_some_and(|r| r.id == id) {
            self.record(key.to_owned(), id, now, false);
        }
    }

    /// Takes back a pending record whose send failed (full or closed), so a retry is not a
    /// duplicate.
    pub(crate) fn forget(&mut self, key: &str, id: MessageId) {
        if self.seen.get(key).is_some_and(|r| r.id == id) {
            self.seen.remove(key);
        }
    }

    /// Keys currently remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod dedup_tests {
    use super::*;

    /// Distinct ids, in the order made.
    fn ids(n: usize) -> Vec<MessageId> {
        (0..n).map(|_| MessageId::next()).collect()
    }

    #[test]
    fn stale_records_do_not_count_against_max_keys() {
        let (window, max) = (1_000, 2);
        let i = ids(5);
        let id = |n: usize| i[n];
        let mut d = Dedup::new();
        d.record("k1".into(), id(1), 0, false);
        // A send that waited for room: recorded pending, then confirmed (a second entry).
        d.record("k2".into(), id(2), 1, true);
        d.confirm("k2", id(2), 2);
        // A send that failed: recorded pending, then forgotten (a stale entry).
        assert!(matches!(d.look("k3", 3, window, max), Seen::New));
        d.record("k3".into(), id(3), 3, true);
        d.forget("k3", id(3));
        // Two keys remembered, within `max`: both are still duplicates.
        assert!(matches!(d.look("k1", 4, window, max), Seen::Duplicate(i) if i == id(1)));
        assert!(matches!(d.look("k2", 4, window, max), Seen::Duplicate(i) if i == id(2)));
        assert!(matches!(d.look("k3", 4, window, max), Seen::New));
        // A third key pushes out the oldest.
        d.record("k4".into(), id(4), 5, false);
        assert!(matches!(d.look("k1", 6, window, max), Seen::New));
        assert_eq!(d.len(), 2);
        // And the window still ends a key.
        assert!(matches!(d.look("k2", 2_000, window, max), Seen::New));
    }

    #[test]
    fn stale_records_are_let_go_once_they_outnumber_the_keys() {
        let mut d = Dedup::new();
        let live = MessageId::next();
        d.record("live".into(), live, 0, false);
        for n in 0..1_000u64 {
            let key = format!("k{n}");
            let id = MessageId::next();
            d.record(key.clone(), id, 1, true);
            d.forget(&key, id);
            let _ = d.look("live", 1, u64::MAX, 10);
        }
        assert_eq!(d.len(), 1);
        assert!(
            d.order.len() <= 2 + 64,
            "order kept {} entries",
            d.order.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_robin_and_one_in_flight() {
        let mut g = Groups::new();
        fn k<'a>(e: &'a (&'static str, i32)) -> &'a str {
            e.0
        }
        for i in 0..3 {
            g.push_back(("hot", i), k);
        }
        g.push_back(("cold", 0), k);
        assert_eq!(g.pop(true), Some(("hot", 0)));
        assert_eq!(g.pop(true), Some(("cold", 0)));
        assert_eq!(g.pop(true), None, "both groups busy");
        g.release("hot");
        assert_eq!(g.pop(true), Some(("hot", 1)));
        g.push_front_and_release(("hot", 1), k);
        assert_eq!(
            g.pop(false),
            Some(("hot", 1)),
            "returned message comes back first"
        );
        assert_eq!(g.len(), 1);
        g.release("cold");
        assert_eq!(g.groups_waiting(), 1);
        assert_eq!(g.drain(), vec![("hot", 2)]);
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn idle_groups_are_kept_bounded_and_reused() {
        fn k(e: &String) -> &str {
            e
        }
        let mut g = Groups::new();
        for round in 0..3 {
            for i in 0..200 {
                g.push_back(format!("g{i}"), k);
            }
            let mut hints = Vec::new();
            for i in 0..200 {
                assert_eq!(g.pop(true), Some(format!("g{i}")), "round {round}");
                hints.push(g.last_popped());
            }
            assert_eq!(g.pop(true), None);
            for (i, &hint) in hints.iter().enumerate() {
                let key = format!("g{i}");
                match round {
                    0 => g.release(&key),
                    1 => g.release_at(hint, &key),
                    // A wrong hint: found by key.
                    _ => g.release_at(hints[(i + 1) % 200], &key),
                }
            }
            assert_eq!(g.len(), 0);
            assert_eq!(g.groups_waiting(), 0);
            assert!(g.index.len() <= IDLE_KEPT, "bounded: {}", g.index.len());
            assert_eq!(g.index.len(), g.groups().count());
        }
        // A kept idle group serves again, in order, one in flight.
        g.push_back("g199".to_owned(), k);
        g.push_back("g199".to_owned(), k);
        assert_eq!(g.pop(true).as_deref(), Some("g199"));
        assert_eq!(g.pop(true), None);
        g.release("g199");
        assert_eq!(g.pop(false).as_deref(), Some("g199"));
        assert!(g.drain().is_empty());
        assert_eq!(g.index.len(), 0);
    }

    /// The slab of a burst over many groups is compacted as they are forgotten, while other
    /// groups are busy, listed or idle: every group still hands out its messages in order, one
    /// in flight, released by hints taken before the renumbering (checked by key).
    #[test]
    fn a_compacted_slab_keeps_every_groups_order_and_state() {
        fn k(e: &(String, u32)) -> &str {
            &e.0
        }
        const N: usize = 2_000;
        let mut g = Groups::new();
        for i in 0..N {
            g.push_back((format!("g{i}"), 0), k);
            g.push_back((format!("g{i}"), 1), k);
        }
        let mut hints = std::collections::HashMap::new();
        while let Some((key, n)) = g.pop(true) {
            assert_eq!(n, 0, "{key}: its first message first");
            hints.insert(key, g.last_popped());
        }
        assert_eq!(hints.len(), N, "one in flight per group");
        let mut seconds = 0;
        for round in 0..2 {
            for i in (0..N).filter(|i| i % 2 == round) {
                let key = format!("g{i}");
                g.release_at(hints[&key], &key);
            }
            // The released groups hand out their second message, and go idle once it is
            // released in turn: most are forgotten, and the slab compacts meanwhile.
            while let Some((key, n)) = g.pop(true) {
                assert_eq!(n, 1, "{key}: its second message second");
                seconds += 1;
                g.release_at(hints[&key], &key);
            }
        }
        assert_eq!((seconds, g.len()), (N, 0));
        assert!(g.index.len() <= IDLE_KEPT, "bounded: {}", g.index.len());
        assert!(
            g.slots.len() <= 4 * g.index.len() + SPARE_KEPT,
            "{}",
            g.slots.len()
        );
        for (key, &i) in &g.index {
            assert_eq!(g.slots[i].as_ref().map(|g| &*g.key), Some(&**key));
        }
    }

    /// A lease's slot hint that names another busy group releases the group the key names,
    /// not the one in the hinted slot (found by mutation testing: a hint trusted without its
    /// key check freed the wrong group, which then handed out a second message while its
    /// first was still in flight, and left the right one stuck).
    #[test]
    fn a_hint_naming_another_group_releases_the_keyed_group() {
        fn k<'a>(e: &'a (&'static str, i32)) -> &'a str {
            e.0
        }
        let mut g = Groups::new();
        for i in 0..2 {
            g.push_back(("a", i), k);
            g.push_back(("b", i), k);
        }
        assert_eq!(g.pop(true), Some(("a", 0)));
        assert_eq!(g.pop(true), Some(("b", 0)));
        let b_slot = g.last_popped();
        g.release_at(b_slot, "a");
        assert_eq!(g.pop(true), Some(("a", 1)), "a released, by key");
        assert_eq!(g.pop(true), None, "b still has its first message in flight");
    }

    /// Aging (what a queue does outside de-duplicated sends) forgets a key once exactly the
    /// window has passed, and the oldest keys beyond the bound, without a `look` (found by
    /// mutation testing: both could be dropped from `age` with no test noticing; the keys then
    /// stayed until the next de-duplicated send).
    #[test]
    fn aging_forgets_keys_at_the_window_and_beyond_the_bound() {
        let mut d = Dedup::new();
        d.record("k".into(), MessageId::next(), 0, false);
        d.age(9, 10, 100);
        assert_eq!(d.len(), 1, "within the window");
        d.age(10, 10, 100);
        assert_eq!(d.len(), 0, "the window has passed");
        for i in 0..3 {
            d.record(format!("x{i}"), MessageId::next(), 20, false);
        }
        d.age(20, 10, 2);
        assert_eq!(d.len(), 2, "the oldest key beyond the bound goes");
    }

    #[test]
    fn dedup_window_ages_out_and_is_bounded() {
        let mut d = Dedup::new();
        let a = MessageId::next();
        assert!(matches!(d.look("k", 0, 10, 100), Seen::New));
        d.record("k".into(), a, 0, false);
        assert!(matches!(d.look("k", 5, 10, 100), Seen::Duplicate(x) if x == a));
        assert!(matches!(d.look("k", 10, 10, 100), Seen::New));
        for i in 0..10 {
            d.record(format!("x{i}"), MessageId::next(), 11, false);
            d.look("x", 11, 10, 4);
        }
        assert!(d.len() <= 5, "bounded: {}", d.len());
        d.forget("x9", MessageId::next());
        assert_eq!(d.duplicates, 1);
    }

    #[test]
    fn a_pending_key_is_neither_new_nor_a_duplicate_until_its_send_ends() {
        let mut d = Dedup::new();
        let (a, b) = (MessageId::next(), MessageId::next());
        d.record("k".into(), a, 0, true);
        assert!(matches!(d.look("k", 1, 10, 100), Seen::Pending));
        // Not aged out while pending, even past the window or the bound.
        for i in 0..10 {
            d.record(format!("x{i}"), MessageId::next(), 20, false);
        }
        assert!(matches!(d.look("k", 50, 10, 4), Seen::Pending));
        // Another id's confirmation or forgetting leaves it alone.
        d.confirm("k", b, 50);
        d.forget("k", b);
        assert!(matches!(d.look("k", 50, 10, 100), Seen::Pending));
        // Confirmed: a duplicate, its window counted from the confirmation.
        d.confirm("k", a, 50);
        assert!(matches!(d.look("k", 59, 10, 100), Seen::Duplicate(x) if x == a));
        assert!(matches!(d.look("k", 60, 10, 100), Seen::New));
        // Forgotten: new again.
        d.record("k".into(), b, 60, true);
        d.forget("k", b);
        assert!(matches!(d.look("k", 60, 10, 100), Seen::New));
        assert_eq!(d.duplicates, 1);
    }
}
