//! FIFO message groups and the de-duplication window: plain data structures, kept under the
//! queue's slow-state lock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::clock::Nanos;
use crate::message::{Message, MessageId};

/// The group of a message in a FIFO queue: its group key, or the default group (the empty key)
/// for messages sent without one.
pub(crate) fn group_of<T>(msg: &Message<T>) -> &str {
    msg.group().unwrap_or("")
}

struct Group<E> {
    queue: VecDeque<E>,
    /// A message of this group is in flight (or waiting out a `nack_after`): hand out no other.
    busy: bool,
    /// The group is in the round-robin list of groups with a message to hand out.
    listed: bool,
}

/// Per-group queues served round-robin, one message in flight per group.
pub(crate) struct Groups<E> {
    groups: HashMap<Arc<str>, Group<E>>,
    available: VecDeque<Arc<str>>,
    len: usize,
}

impl<E> Groups<E> {
    pub(crate) fn new() -> Self {
        Groups {
            groups: HashMap::new(),
            available: VecDeque::new(),
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

    /// Groups with messages waiting.
    pub(crate) fn groups_waiting(&self) -> usize {
        self.groups.values().filter(|g| !g.queue.is_empty()).count()
    }

    fn group(&mut self, key: &str) -> &mut Group<E> {
        if !self.groups.contains_key(key) {
            self.groups.insert(
                Arc::from(key),
                Group {
                    queue: VecDeque::new(),
                    busy: false,
                    listed: false,
                },
            );
        }
        self.groups.get_mut(key).expect("just inserted")
    }

    fn list_if_ready(&mut self, key: &str) {
        let Some((k, g)) = self.groups.get_key_value(key) else {
            return;
        };
        if !g.busy && !g.listed && !g.queue.is_empty() {
            let k = Arc::clone(k);
            self.groups.get_mut(key).expect("present").listed = true;
            self.available.push_back(k);
        }
    }

    fn forget_if_idle(&mut self, key: &str) {
        if self
            .groups
            .get(key)
            .is_some_and(|g| !g.busy && !g.listed && g.queue.is_empty())
        {
            self.groups.remove(key);
        }
    }

    /// Appends a message to its group (a send, a due delayed message, a dead letter arriving).
    pub(crate) fn push_back(&mut self, key: &str, e: E) {
        self.group(key).queue.push_back(e);
        self.len += 1;
        self.list_if_ready(key);
    }

    /// Puts a returned message back at the head of its group and frees the group.
    pub(crate) fn push_front_and_release(&mut self, key: &str, e: E) {
        let g = self.group(key);
        g.queue.push_front(e);
        g.busy = false;
        self.len += 1;
        self.list_if_ready(key);
    }

    /// The group's message in flight was settled: the next one may go.
    pub(crate) fn release(&mut self, key: &str) {
        if let Some(g) = self.groups.get_mut(key) {
            g.busy = false;
        }
        self.list_if_ready(key);
        self.forget_if_idle(key);
    }

    /// Takes the head of the next group in round-robin order. With `lease`, the group stays busy
    /// until [`release`](Groups::release); otherwise it goes to the back of the round.
    pub(crate) fn pop(&mut self, lease: bool) -> Option<E> {
        let key = self.available.pop_front()?;
        let g = self.groups.get_mut(&key).expect("listed groups exist");
        g.listed = false;
        let e = g.queue.pop_front().expect("listed groups have messages");
        self.len -= 1;
        if lease {
            g.busy = true;
        } else {
            self.list_if_ready(&key);
            self.forget_if_idle(&key);
        }
        Some(e)
    }

    /// Every waiting message, group by group.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &E> {
        self.groups.values().flat_map(|g| g.queue.iter())
    }

    /// Drains every waiting message (for redrive), leaving busy groups busy.
    pub(crate) fn drain(&mut self) -> Vec<E> {
        let mut out = Vec::with_capacity(self.len);
        for g in self.groups.values_mut() {
            out.extend(g.queue.drain(..));
            g.listed = false;
        }
        self.available.clear();
        self.groups.retain(|_, g| g.busy);
        self.len = 0;
        out
    }
}

/// The de-duplication window: keys seen recently, and when, aged out by the clock.
pub(crate) struct Dedup {
    seen: HashMap<String, (MessageId, Nanos)>,
    order: VecDeque<(Nanos, String)>,
    pub(crate) duplicates: u64,
}

/// What the window says about a key.
pub(crate) enum Seen {
    /// New: recorded now.
    New,
    /// Seen within the window, under this id.
    Duplicate(MessageId),
}

impl Dedup {
    pub(crate) fn new() -> Self {
        Dedup {
            seen: HashMap::new(),
            order: VecDeque::new(),
            duplicates: 0,
        }
    }

    /// Forgets keys older than `window`, and the oldest beyond `max` keys.
    fn prune(&mut self, now: Nanos, window: Nanos, max: usize) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_sub(*at) < window && self.order.len() <= max {
                break;
            }
            let (at, key) = self.order.pop_front().expect("peeked");
            // Only forget the key if this is its current record (it may have been re-recorded).
            if self.seen.get(&key).is_some_and(|&(_, t)| t == at) {
                self.seen.remove(&key);
            }
        }
    }

    /// Checks `key` and records it as sent under `id` if it is new.
    pub(crate) fn check(
        &mut self,
        key: String,
        id: MessageId,
        now: Nanos,
        window: Nanos,
        max: usize,
    ) -> Seen {
        self.prune(now, window, max);
        if let Some(&(first, _)) = self.seen.get(&key) {
            self.duplicates += 1;
            return Seen::Duplicate(first);
        }
        self.seen.insert(key.clone(), (id, now));
        self.order.push_back((now, key));
        Seen::New
    }

    /// Takes back a record whose send then failed (full or closed), so a retry is not a duplicate.
    pub(crate) fn forget(&mut self, key: &str, id: MessageId) {
        if self.seen.get(key).is_some_and(|&(i, _)| i == id) {
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
mod tests {
    use super::*;

    #[test]
    fn groups_round_robin_and_one_in_flight() {
        let mut g = Groups::new();
        for i in 0..3 {
            g.push_back("hot", ("hot", i));
        }
        g.push_back("cold", ("cold", 0));
        assert_eq!(g.pop(true), Some(("hot", 0)));
        assert_eq!(g.pop(true), Some(("cold", 0)));
        assert_eq!(g.pop(true), None, "both groups busy");
        g.release("hot");
        assert_eq!(g.pop(true), Some(("hot", 1)));
        g.push_front_and_release("hot", ("hot", 1));
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
    fn dedup_window_ages_out_and_is_bounded() {
        let mut d = Dedup::new();
        let (a, b) = (MessageId::next(), MessageId::next());
        assert!(matches!(d.check("k".into(), a, 0, 10, 100), Seen::New));
        assert!(matches!(d.check("k".into(), b, 5, 10, 100), Seen::Duplicate(x) if x == a));
        assert!(matches!(d.check("k".into(), b, 10, 10, 100), Seen::New));
        for i in 0..10 {
            d.check(format!("x{i}"), MessageId::next(), 11, 10, 4);
        }
        assert!(d.len() <= 5, "bounded: {}", d.len());
        d.forget("x9", MessageId::next());
        assert_eq!(d.duplicates, 1);
    }
}
