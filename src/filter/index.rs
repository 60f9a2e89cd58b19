//! `FilterIndex` and `FilterSnapshot`: matching one message against many filters without
//! checking each.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use crate::filter::plan::{num_key, Plan, Probe};
use crate::filter::policy::quantize;
use crate::filter::Filter;
use crate::message::{AttrValue, Message};

/// Below this many filters a level does not build per-attribute indexes: checking each filter is
/// as fast. Measured on the per-tenant workload: at 16 filters the index takes 0.8 us a message
/// against 1.1 us for the scan; at 8 they are within noise of each other.
const LINEAR_BELOW: usize = 16;

/// Masked (removed or changed) entries past `max(MIN_DELTA, n / 4)` make the index rebuild.
const MIN_DELTA: usize = 32;

/// The index's maps hash with std's keyed SipHash (a random key per map), not a fast unkeyed
/// hash: their keys come from filter policies, which may come from untrusted parties, and with an
/// unkeyed multiplicative hash (rustc's Fx, used here before) anyone can compute keys that all
/// land in one bucket. 15,000 such values in 100 policies took the index from 0.16 s to build to
/// more than 3 s, quadratic in their number, paid again at each compile, and made matching a
/// message that carries one of them 32 times slower (found by review). The keyed hash costs
/// matching about 15% (callgrind, the per-tenant workload at 10,000 filters: 13,800 to 15,900
/// instructions a message), well inside the design's goals against a linear scan.
type Map<K, V> = HashMap<K, V, RandomState>;

/// Maps from a length (prefix length, mask length) to the ids filed under each value of it.
type ByLen<L, K> = Vec<(L, Map<K, Vec<u32>>)>;

fn admits_lo(lo: (f64, bool), q: f64) -> bool {
    if lo.1 {
        q >= lo.0
    } else {
        q > lo.0
    }
}

fn admits_hi(hi: (f64, bool), q: f64) -> bool {
    if hi.1 {
        q <= hi.0
    } else {
        q < hi.0
    }
}

#[derive(Clone, Copy, Debug)]
struct Interval {
    lo: (f64, bool),
    hi: (f64, bool),
    id: u32,
}

impl Interval {
    fn admits(&self, q: f64) -> bool {
        admits_lo(self.lo, q) && admits_hi(self.hi, q)
    }

    /// A point inside the interval (ranges have bottom < top, so there is one).
    fn inner_point(&self) -> f64 {
        match (self.lo.0.is_finite(), self.hi.0.is_finite()) {
            (true, true) => self.lo.0 / 2.0 + self.hi.0 / 2.0,
            (true, false) => self.lo.0 + 1.0,
            (false, true) => self.hi.0 - 1.0,
            (false, false) => 0.0,
        }
    }
}

/// The deepest an interval tree's node lies (the root at 0): 2^48 intervals halved at every
/// level would still end in leaves above it.
const MAX_DEPTH: u32 = 48;

/// A centered interval tree over numeric ranges: a stabbing query visits one path and reports
/// the ranges that hold the number.
#[derive(Default)]
struct IntervalTree {
    nodes: Vec<INode>,
}

struct INode {
    center: f64,
    /// Intervals holding `center`, sorted by lower bound (ascending); or, in a leaf, all of them.
    by_lo: Vec<Interval>,
    /// The same intervals sorted by upper bound (descending).
    by_hi: Vec<Interval>,
    left: Option<usize>,
    right: Option<usize>,
    leaf: bool,
}

impl IntervalTree {
    fn build(ivs: Vec<Interval>) -> IntervalTree {
        IntervalTree::build_capped(ivs, MAX_DEPTH)
    }

    fn build_capped(ivs: Vec<Interval>, cap: u32) -> IntervalTree {
        let mut t = IntervalTree::default();
        if !ivs.is_empty() {
            t.add(ivs, cap);
        }
        t
    }

    /// Adds a node for `ivs`, and its subtrees at most `levels` deeper. Each child holds at most
    /// about half of its parent's intervals (those wholly on one side of the median's inner
    /// point), but degenerate ranges between adjacent floats can skew that; a node with no
    /// levels left is a leaf whatever it holds, so that no set of policies can make the build
    /// recurse deeply (slower stabbing for such a set, never a stack overflow).
    fn add(&mut self, mut ivs: Vec<Interval>, levels: u32) -> usize {
        let at = self.nodes.len();
        let leaf = |ivs: Vec<Interval>| INode {
            center: 0.0,
            by_lo: ivs,
            by_hi: Vec::new(),
            left: None,
            right: None,
            leaf: true,
        };
        if ivs.len() <= 16 || levels == 0 {
            self.nodes.push(leaf(ivs));
            return at;
        }
        ivs.sort_by(|a, b| a.inner_point().total_cmp(&b.inner_point()));
        let center = ivs[ivs.len() / 2].inner_point();
        let (mut here, mut left, mut right) = (Vec::new(), Vec::new(), Vec::new());
        for iv in ivs {
            if iv.admits(center) {
                here.push(iv);
            } else if !admits_hi(iv.hi, center) {
                left.push(iv);
            } else {
                right.push(iv);
            }
        }
        if here.is_empty() {
            // Only for degenerate ranges between adjacent floats; keep them in a flat list.
            left.append(&mut right);
            self.nodes.push(leaf(left));
            return at;
        }
        here.sort_by(|a, b| a.lo.0.total_cmp(&b.lo.0));
        let mut by_hi = here.clone();
        by_hi.sort_by(|a, b| b.hi.0.total_cmp(&a.hi.0));
        self.nodes.push(INode {
            center,
            by_lo: here,
            by_hi,
            left: None,
            right: None,
            leaf: false,
        });
        if !left.is_empty() {
            let l = self.add(left, levels - 1);
            self.nodes[at].left = Some(l);
        }
        if !right.is_empty() {
            let r = self.add(right, levels - 1);
            self.nodes[at].right = Some(r);
        }
        at
    }

    fn stab(&self, x: f64, out: &mut Vec<u32>) {
        if self.nodes.is_empty() {
            return;
        }
        let q = quantize(x);
        if q.is_nan() {
            return;
        }
        let mut at = Some(0);
        while let Some(i) = at {
            let n = &self.nodes[i];
            if n.leaf {
                out.extend(n.by_lo.iter().filter(|iv| iv.admits(q)).map(|iv| iv.id));
                return;
            }
            if q < n.center {
                for iv in &n.by_lo {
                    if iv.lo.0 > q {
                        break;
                    }
                    if admits_lo(iv.lo, q) {
                        out.push(iv.id);
                    }
                }
                at = n.left;
            } else if q > n.center {
                for iv in &n.by_hi {
                    if iv.hi.0 < q {
                        break;
                    }
                    if admits_hi(iv.hi, q) {
                        out.push(iv.id);
                    }
                }
                at = n.right;
            } else {
                out.extend(n.by_lo.iter().map(|iv| iv.id));
                return;
            }
        }
    }
}

/// Everything filed under one attribute key.
#[derive(Default)]
struct AttrIndex {
    strs: Map<Box<str>, Vec<u32>>,
    nums: Map<u64, Vec<u32>>,
    bools: [Vec<u32>; 2],
    ignore_case: Map<Box<str>, Vec<u32>>,
    /// Prefix maps by prefix length (in bytes), shortest first.
    prefixes: ByLen<usize, Box<str>>,
    suffixes: ByLen<usize, Box<str>>,
    ranges: IntervalTree,
    pending_ranges: Vec<Interval>,
    /// CIDR maps by mask length: a tiny trie, one level per length in use.
    cidr4: ByLen<u8, u32>,
    cidr6: ByLen<u8, u128>,
    present: Vec<u32>,
    /// Filters that are one anything-but on this key (known matches, unless excluded).
    but_all: Vec<u32>,
    /// For each string, the filters in `but_all` that exclude it.
    but_excl: Map<Box<str>, Vec<u32>>,
}

fn by_len<K: Eq + Hash, L: Copy + Ord>(
    levels: &mut Vec<(L, Map<K, Vec<u32>>)>,
    len: L,
) -> &mut Map<K, Vec<u32>> {
    let i = match levels.binary_search_by(|(l, _)| l.cmp(&len)) {
        Ok(i) => i,
        Err(i) => {
            levels.insert(i, (len, Map::default()));
            i
        }
    };
    &mut levels[i].1
}

/// Files `id` under `key`, allocating the key only when it is new.
fn file_str(map: &mut Map<Box<str>, Vec<u32>>, key: &str, id: u32) {
    match map.get_mut(key) {
        Some(ids) => push_unique(ids, id),
        None => {
            map.insert(key.into(), vec![id]);
        }
    }
}

fn push_unique(v: &mut Vec<u32>, id: u32) {
    if v.last() != Some(&id) {
        v.push(id);
    }
}

impl AttrIndex {
    fn file(&mut self, probe: &Probe, id: u32) {
        match probe {
            Probe::Str(s) => file_str(&mut self.strs, s, id),
            Probe::Num(k) => push_unique(self.nums.entry(*k).or_default(), id),
            Probe::Bool(b) => push_unique(&mut self.bools[usize::from(*b)], id),
            Probe::IgnoreCase(s) => {
                push_unique(self.ignore_case.entry(s.as_str().into()).or_default(), id)
            }
            Probe::Prefix(p) => push_unique(
                by_len(&mut self.prefixes, p.len())
                    .entry(p.as_str().into())
                    .or_default(),
                id,
            ),
            Probe::Suffix(p) => push_unique(
                by_len(&mut self.suffixes, p.len())
                    .entry(p.as_str().into())
                    .or_default(),
                id,
            ),
            Probe::Range { lo, hi } => self.pending_ranges.push(Interval {
                lo: *lo,
                hi: *hi,
                id,
            }),
            Probe::Cidr4 { net, len } => {
                push_unique(by_len(&mut self.cidr4, *len).entry(*net).or_default(), id)
            }
            Probe::Cidr6 { net, len } => {
                push_unique(by_len(&mut self.cidr6, *len).entry(*net).or_default(), id)
            }
            Probe::Present => push_unique(&mut self.present, id),
            Probe::Never => {}
        }
    }

    fn file_but(&mut self, values: &[String], id: u32) {
        push_unique(&mut self.but_all, id);
        for v in values {
            file_str(&mut self.but_excl, v, id);
        }
    }

    fn finish(&mut self) {
        self.ranges = IntervalTree::build(std::mem::take(&mut self.pending_ranges));
    }

    fn probe(&self, v: &AttrValue, out: &mut Vec<u32>) {
        if crate::filter::eval::present(v) {
            out.extend_from_slice(&self.present);
        }
        if !self.but_all.is_empty() {
            match v {
                AttrValue::String(s) => {
                    let excl = self.but_excl.get(s.as_str()).map_or(&[][..], Vec::as_slice);
                    let mut j = 0;
                    for &id in &self.but_all {
                        while j < excl.len() && excl[j] < id {
                            j += 1;
                        }
                        if excl.get(j) != Some(&id) {
                            out.push(id);
                        }
                    }
                }
                // Any element not listed makes a match: check each filter.
                AttrValue::StringList(_) => out.extend(self.but_all.iter().map(|id| id | VERIFY)),
                // A number or boolean is never one of the listed strings.
                AttrValue::Number(_) | AttrValue::Bool(_) => out.extend_from_slice(&self.but_all),
            }
        }
        match v {
            AttrValue::String(s) => self.probe_str(s, out),
            AttrValue::StringList(l) => l.iter().for_each(|s| self.probe_str(s, out)),
            AttrValue::Number(n) => {
                if let Some(ids) = self.nums.get(&num_key(*n)) {
                    out.extend_from_slice(ids);
                }
                self.ranges.stab(*n, out);
            }
            AttrValue::Bool(b) => out.extend_from_slice(&self.bools[usize::from(*b)]),
        }
    }

    fn probe_str(&self, s: &str, out: &mut Vec<u32>) {
        if let Some(ids) = self.strs.get(s) {
            out.extend_from_slice(ids);
        }
        if !self.ignore_case.is_empty() {
            let lower = if s.is_ascii() {
                s.to_ascii_lowercase()
            } else {
                crate::filter::eval::fold(s)
            };
            if let Some(ids) = self.ignore_case.get(lower.as_str()) {
                out.extend_from_slice(ids);
            }
        }
        for (len, map) in &self.prefixes {
            if *len > s.len() {
                break;
            }
            if let Some(ids) = s.get(..*len).and_then(|p| map.get(p)) {
                out.extend_from_slice(ids);
            }
        }
        for (len, map) in &self.suffixes {
            if *len > s.len() {
                break;
            }
            if let Some(ids) = s.get(s.len() - len..).and_then(|p| map.get(p)) {
                out.extend_from_slice(ids);
            }
        }
        if !self.cidr4.is_empty() || !self.cidr6.is_empty() {
            match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => {
                    let a = u32::from(a);
                    for (len, map) in &self.cidr4 {
                        if let Some(ids) = map.get(&(a & crate::filter::policy::mask4(*len))) {
                            out.extend_from_slice(ids);
                        }
                    }
                }
                Ok(IpAddr::V6(a)) => {
                    let a = u128::from(a);
                    for (len, map) in &self.cidr6 {
                        if let Some(ids) = map.get(&(a & crate::filter::policy::mask6(*len))) {
                            out.extend_from_slice(ids);
                        }
                    }
                }
                Err(_) => {}
            }
        }
    }
}

/// A filed filter: its place in the insertion order (`seq`, kept when the filter changes) and
/// the change that made it (`gen`, new for every insert).
struct Entry<K, T> {
    seq: u64,
    gen: u64,
    key: K,
    filter: Filter<T>,
}

impl<K: Clone, T> Clone for Entry<K, T> {
    fn clone(&self) -> Self {
        Entry {
            seq: self.seq,
            gen: self.gen,
            key: self.key.clone(),
            filter: self.filter.clone(),
        }
    }
}

/// An immutable compiled index over a set of filters, in insertion order.
struct Base<K, T> {
    entries: Vec<Entry<K, T>>,
    /// `None`: too few filters to be worth indexing; check each.
    attrs: Option<Map<Box<str>, AttrIndex>>,
    /// Filters with no positive condition to file them under, ascending (tagged ids).
    residual: Vec<u32>,
    /// Filters that are one `exists: false` on a key, by key (tagged ids).
    absent: Vec<(Box<str>, Vec<u32>)>,
}

/// Ids in an index are `position << 1`, with this bit set when a hit must still be checked
/// against the whole filter (clear: the hit is a match).
const VERIFY: u32 = 1;

thread_local! {
    static SCRATCH: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
    /// Matches from several levels, as (sequence, level, position), to be put in order.
    static HITS: Cell<Vec<(u64, u32, u32)>> = const { Cell::new(Vec::new()) };
}

/// The level number that stands for the tail in `HITS`.
const TAIL_LEVEL: u32 = u32::MAX;

impl<K: Copy + Eq + Hash, T> Base<K, T> {
    fn build(entries: Vec<Entry<K, T>>) -> Self {
        if entries.len() < LINEAR_BELOW || entries.len() >= (u32::MAX >> 1) as usize {
            return Base {
                entries,
                attrs: None,
                residual: Vec::new(),
                absent: Vec::new(),
            };
        }
        let mut attrs: Map<Box<str>, AttrIndex> = Map::default();
        let mut absent: Map<Box<str>, Vec<u32>> = Map::default();
        let mut residual = Vec::new();
        fn attr<'a>(attrs: &'a mut Map<Box<str>, AttrIndex>, key: &str) -> &'a mut AttrIndex {
            if !attrs.contains_key(key) {
                attrs.insert(key.into(), AttrIndex::default());
            }
            attrs.get_mut(key).expect("inserted above")
        }
        for (i, e) in entries.iter().enumerate() {
            let id = (i as u32) << 1;
            let plain = e.filter.predicates.is_empty();
            match &e.filter.policy.plan {
                Plan::Anchored { anchors, exact } => {
                    let id = if *exact && plain { id } else { id | VERIFY };
                    for a in anchors {
                        let ai = attr(&mut attrs, &a.key);
                        for p in &a.probes {
                            ai.file(p, id);
                        }
                    }
                }
                Plan::AnythingBut { key, values } if plain => {
                    attr(&mut attrs, key).file_but(values, id)
                }
                Plan::Absent { key } if plain => file_str(&mut absent, key, id),
                _ => residual.push(id | VERIFY),
            }
        }
        attrs.values_mut().for_each(AttrIndex::finish);
        let mut absent: Vec<(Box<str>, Vec<u32>)> = absent.into_iter().collect();
        absent.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Base {
            entries,
            attrs: Some(attrs),
            residual,
            absent,
        }
    }

    /// Calls `emit` with the position of each live matching entry, in insertion order.
    fn matching(&self, msg: &Message<T>, mask: &Mask, mut emit: impl FnMut(usize)) {
        let Some(attrs) = &self.attrs else {
            for (pos, e) in self.entries.iter().enumerate() {
                if !mask.is_set(pos) && e.filter.matches(msg) {
                    emit(pos);
                }
            }
            return;
        };
        let mut cands = SCRATCH.with(Cell::take);
        cands.clear();
        let msg_attrs = msg.attributes();
        for (name, value) in msg_attrs.iter() {
            if let Some(ai) = attrs.get(name) {
                ai.probe(value, &mut cands);
            }
        }
        if !msg_attrs.is_empty() {
            for (key, ids) in &self.absent {
                if !msg_attrs.get(key).is_some_and(crate::filter::eval::present) {
                    cands.extend_from_slice(ids);
                }
            }
        }
        cands.extend_from_slice(&self.residual);
        if cands.windows(2).any(|w| w[0] >= w[1]) {
            // A stable sort merges the already sorted runs in linear time.
            cands.sort();
            cands.dedup();
        }
        for &c in &cands {
            let pos = (c >> 1) as usize;
            let e = &self.entries[pos];
            if !mask.is_set(pos) && (c & VERIFY == 0 || e.filter.matches(msg)) {
                emit(pos);
            }
        }
        SCRATCH.with(|s| s.set(crate::spin::scratch_kept(cands)));
    }
}

/// Bits per mask chunk.
const CHUNK: usize = 4096;

/// The positions of a level's entries that were removed or changed since it was compiled: a
/// persistent bitmap in chunks, so a snapshot shares it and a change copies one chunk.
#[derive(Clone, Default)]
struct Mask {
    chunks: Vec<Arc<[u64; CHUNK / 64]>>,
}

impl Mask {
    #[inline]
    fn is_set(&self, pos: usize) -> bool {
        !self.chunks.is_empty()
            && self
                .chunks
                .get(pos / CHUNK)
                .is_some_and(|c| c[(pos % CHUNK) / 64] >> (pos % 64) & 1 == 1)
    }

    fn set(&mut self, pos: usize) {
        let i = pos / CHUNK;
        if self.chunks.len() <= i {
            self.chunks.resize_with(i + 1, || Arc::new([0; CHUNK / 64]));
        }
        Arc::make_mut(&mut self.chunks[i])[(pos % CHUNK) / 64] |= 1 << (pos % 64);
    }
}

/// A compiled level and its mask.
struct Level<K, T> {
    base: Arc<Base<K, T>>,
    mask: Mask,
}

impl<K, T> Clone for Level<K, T> {
    fn clone(&self) -> Self {
        Level {
            base: Arc::clone(&self.base),
            mask: self.mask.clone(),
        }
    }
}

struct SnapshotInner<K, T> {
    /// Compiled levels, oldest (largest) first.
    levels: Vec<Level<K, T>>,
    /// The latest changes, not compiled yet: checked one by one.
    tail: Vec<Entry<K, T>>,
    len: usize,
}

/// An immutable view of a [`FilterIndex`] at one moment: what a publisher matches messages with.
///
/// `Send + Sync`, and cheap to clone (one reference count), so a topic can swap a fresh one in
/// behind an `Arc` after each subscription change while publishers keep using the one they hold:
/// publishing never waits for a change.
///
/// ```
/// use switchboard::{Filter, FilterIndex, Message};
///
/// let mut index = FilterIndex::new();
/// index.insert(1u32, Filter::<()>::from_json(r#"{"tenant": ["a"]}"#)?);
/// index.insert(2u32, Filter::<()>::from_json(r#"{"tenant": ["b"]}"#)?);
/// let before = index.snapshot();
/// index.remove(&1);
/// let after = index.snapshot();
///
/// let m = Message::new(()).with_attr("tenant", "a");
/// let (mut x, mut y) = (Vec::new(), Vec::new());
/// before.matching(&m, &mut x);
/// after.matching(&m, &mut y);
/// assert_eq!((x, y), (vec![1], vec![]));
/// # Ok::<(), switchboard::FilterError>(())
/// ```
pub struct FilterSnapshot<K, T> {
    inner: Arc<SnapshotInner<K, T>>,
}

impl<K, T> Clone for FilterSnapshot<K, T> {
    fn clone(&self) -> Self {
        FilterSnapshot {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, T> fmt::Debug for FilterSnapshot<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let levels: Vec<usize> = self
            .inner
            .levels
            .iter()
            .map(|l| l.base.entries.len())
            .collect();
        f.debug_struct("FilterSnapshot")
            .field("len", &self.inner.len)
            .field("levels", &levels)
            .field("tail", &self.inner.tail.len())
            .finish()
    }
}

impl<K: Copy + Eq + Hash, T> FilterSnapshot<K, T> {
    /// The number of filters.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Whether there are no filters.
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// Appends to `out` the keys whose filters match `msg`, in insertion order.
    ///
    /// Exactly what [`matching_linear`](FilterSnapshot::matching_linear) gives, but the indexed
    /// filters are only looked at when the message hits one of their conditions.
    ///
    /// ```
    /// use switchboard::{Filter, FilterIndex, Message};
    ///
    /// let mut index = FilterIndex::new();
    /// for tenant in 0..100u32 {
    ///     let f = Filter::builder().eq("tenant", format!("t{tenant}")).build()?;
    ///     index.insert(tenant, f);
    /// }
    /// index.insert(1000, Filter::from_json(r#"{"tenant": [{"anything-but": "t7"}]}"#)?);
    /// let snap = index.snapshot();
    /// let mut out = Vec::new();
    /// snap.matching(&Message::new(()).with_attr("tenant", "t7"), &mut out);
    /// assert_eq!(out, [7]);
    /// out.clear();
    /// snap.matching(&Message::new(()).with_attr("tenant", "t8"), &mut out);
    /// assert_eq!(out, [8, 1000]);
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    pub fn matching(&self, msg: &Message<T>, out: &mut Vec<K>) {
        let s = &*self.inner;
        if s.levels.len() <= 1 && s.tail.is_empty() {
            if let Some(l) = s.levels.first() {
                let entries = &l.base.entries;
                l.base
                    .matching(msg, &l.mask, |pos| out.push(entries[pos].key));
            }
            return;
        }
        let mut hits = HITS.with(Cell::take);
        hits.clear();
        for (i, l) in s.levels.iter().enumerate() {
            let entries = &l.base.entries;
            l.base.matching(msg, &l.mask, |pos| {
                hits.push((entries[pos].seq, i as u32, pos as u32))
            });
        }
        for (pos, e) in s.tail.iter().enumerate() {
            if e.filter.matches(msg) {
                hits.push((e.seq, TAIL_LEVEL, pos as u32));
            }
        }
        s.put_in_order(&mut hits, out);
        HITS.with(|h| h.set(crate::spin::scratch_kept(hits)));
    }

    /// Appends to `out` the keys whose filters match `msg`, in insertion order, checking every
    /// filter: the reference [`matching`](FilterSnapshot::matching) is tested against.
    ///
    /// ```
    /// use switchboard::{Filter, FilterIndex, Message};
    ///
    /// let mut index = FilterIndex::new();
    /// index.insert("eu", Filter::builder().prefix("region", "eu-").build()?);
    /// index.insert("all", Filter::all());
    /// let snap = index.snapshot();
    /// let m = Message::new(()).with_attr("region", "eu-west-1");
    /// let (mut a, mut b) = (Vec::new(), Vec::new());
    /// snap.matching(&m, &mut a);
    /// snap.matching_linear(&m, &mut b);
    /// assert_eq!(a, ["eu", "all"]);
    /// assert_eq!(a, b);
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    pub fn matching_linear(&self, msg: &Message<T>, out: &mut Vec<K>) {
        let s = &*self.inner;
        let mut hits = Vec::new();
        for (i, l) in s.levels.iter().enumerate() {
            for (pos, e) in l.base.entries.iter().enumerate() {
                if !l.mask.is_set(pos) && e.filter.matches(msg) {
                    hits.push((e.seq, i as u32, pos as u32));
                }
            }
        }
        for (pos, e) in s.tail.iter().enumerate() {
            if e.filter.matches(msg) {
                hits.push((e.seq, TAIL_LEVEL, pos as u32));
            }
        }
        s.put_in_order(&mut hits, out);
    }
}

impl<K: Copy, T> SnapshotInner<K, T> {
    /// Sorts matches from several levels by insertion sequence and appends their keys.
    fn put_in_order(&self, hits: &mut [(u64, u32, u32)], out: &mut Vec<K>) {
        // Each level's matches are a sorted run: the stable sort merges them in linear time.
        hits.sort_by_key(|h| h.0);
        out.extend(hits.iter().map(|&(_, level, pos)| match level {
            TAIL_LEVEL => self.tail[pos as usize].key,
            l => self.levels[l as usize].base.entries[pos as usize].key,
        }));
    }
}

#[derive(Clone, Copy)]
struct Live {
    seq: u64,
    gen: u64,
    /// The level and position of its compiled entry; `None` while it is in the tail.
    at: Option<(usize, usize)>,
}

/// Changes collect in a tail of this many before they are compiled into a level.
const TAIL: usize = 32;
/// A level is merged into the one before it while that one is at most this many times larger.
const RATIO: usize = 8;
/// More levels than this and everything is compiled into one.
const MAX_LEVELS: usize = 4;

/// The filters of a topic's subscriptions, keyed by subscription: the mutable side. Take a
/// [`FilterSnapshot`] to match messages.
///
/// Changes are cheap, and so is a snapshot after each one. The index is log-structured: the
/// latest changes (up to 32) sit in a tail that is checked one by one; a full tail is compiled
/// into a level, and a level is merged with the one before it when they are within a factor of 8
/// in size, so there are at most 4 levels, and each filter is compiled a few times over its life
/// rather than once per snapshot. Removed or changed filters are masked (a persistent bitmap per
/// level, so a change copies one 512-byte chunk) until a merge drops them, or a full rebuild once
/// a quarter of the entries are masked. Subscribing 100,000 filters one at a time, with a
/// snapshot after each, costs about 20 compilations per filter (about 1.4 s in all, measured by
/// `cargo bench --bench filter`).
///
/// ```
/// use switchboard::{Filter, FilterIndex, Message};
///
/// let mut index = FilterIndex::new();
/// index.insert(1u32, Filter::<()>::from_json(r#"{"event": ["order_placed"]}"#)?);
/// index.insert(2u32, Filter::<()>::from_json(r#"{"event": [{"prefix": "order_"}]}"#)?);
/// assert_eq!(index.len(), 2);
/// let mut out = Vec::new();
/// index.snapshot().matching(&Message::new(()).with_attr("event", "order_placed"), &mut out);
/// assert_eq!(out, [1, 2]);
/// # Ok::<(), switchboard::FilterError>(())
/// ```
pub struct FilterIndex<K, T> {
    live: HashMap<K, Live>,
    /// The current filter of every key, by insertion sequence.
    slots: BTreeMap<u64, Entry<K, T>>,
    levels: Vec<Level<K, T>>,
    tail: Vec<Entry<K, T>>,
    /// How many level entries are masked.
    dead: usize,
    next_seq: u64,
    next_gen: u64,
    cached: Option<FilterSnapshot<K, T>>,
}

impl<K, T> fmt::Debug for FilterIndex<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let levels: Vec<usize> = self.levels.iter().map(|l| l.base.entries.len()).collect();
        f.debug_struct("FilterIndex")
            .field("len", &self.live.len())
            .field("levels", &levels)
            .field("tail", &self.tail.len())
            .field("masked", &self.dead)
            .finish()
    }
}

impl<K: Copy + Eq + Hash, T> Default for FilterIndex<K, T> {
    fn default() -> Self {
        FilterIndex::new()
    }
}

impl<K: Copy + Eq + Hash, T> FilterIndex<K, T> {
    /// An empty index.
    pub fn new() -> Self {
        FilterIndex {
            live: HashMap::new(),
            slots: BTreeMap::new(),
            levels: Vec::new(),
            tail: Vec::new(),
            dead: 0,
            next_seq: 0,
            next_gen: 0,
            cached: None,
        }
    }

    /// The number of filters.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether there are no filters.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The filter under `key`.
    pub fn get(&self, key: &K) -> Option<&Filter<T>> {
        let l = self.live.get(key)?;
        self.slots.get(&l.seq).map(|e| &e.filter)
    }

    /// Whether there is a filter under `key`.
    pub fn contains_key(&self, key: &K) -> bool {
        self.live.contains_key(key)
    }

    /// The keys and their filters, in insertion order.
    ///
    /// ```
    /// use switchboard::{Filter, FilterIndex};
    ///
    /// let mut index = FilterIndex::<&str, ()>::new();
    /// index.insert("b", Filter::all());
    /// index.insert("a", Filter::all());
    /// index.insert("b", Filter::from_json(r#"{"k": ["v"]}"#)?);
    /// let keys: Vec<&str> = index.iter().map(|(k, _)| *k).collect();
    /// assert_eq!(keys, ["b", "a"]);
    /// # Ok::<(), switchboard::FilterError>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&K, &Filter<T>)> + '_ {
        self.slots.values().map(|e| (&e.key, &e.filter))
    }

    /// Forgets the entry `old` of a key that is being changed or removed.
    fn retire(&mut self, old: Live) {
        match old.at {
            Some((level, pos)) => {
                self.levels[level].mask.set(pos);
                self.dead += 1;
            }
            None => self.tail.retain(|e| e.gen != old.gen),
        }
    }

    /// Files `filter` under `key`. A new key goes last in the insertion order; an existing key
    /// keeps its place, and its old filter is returned.
    ///
    /// ```
    /// use switchboard::{Filter, FilterIndex};
    ///
    /// let mut index = FilterIndex::<u8, ()>::new();
    /// assert!(index.insert(1, Filter::all()).is_none());
    /// assert!(index.insert(1, Filter::all()).is_some());
    /// assert_eq!(index.len(), 1);
    /// ```
    pub fn insert(&mut self, key: K, filter: Filter<T>) -> Option<Filter<T>> {
        self.cached = None;
        let gen = self.next_gen;
        self.next_gen += 1;
        let old = match self.live.get(&key).copied() {
            Some(l) => {
                self.retire(l);
                self.live.insert(
                    key,
                    Live {
                        seq: l.seq,
                        gen,
                        at: None,
                    },
                );
                self.tail.push(Entry {
                    seq: l.seq,
                    gen,
                    key,
                    filter: filter.clone(),
                });
                self.slots.get_mut(&l.seq).map(|e| {
                    e.gen = gen;
                    std::mem::replace(&mut e.filter, filter)
                })
            }
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.live.insert(key, Live { seq, gen, at: None });
                self.tail.push(Entry {
                    seq,
                    gen,
                    key,
                    filter: filter.clone(),
                });
                self.slots.insert(
                    seq,
                    Entry {
                        seq,
                        gen,
                        key,
                        filter,
                    },
                );
                None
            }
        };
        self.settle();
        old
    }

    /// Changes the filter under an existing `key` (keeping its place in the insertion order) and
    /// returns the old one; hands `filter` back if there is no such key.
    ///
    /// # Errors
    ///
    /// `Err(filter)` when `key` is not in the index.
    ///
    /// ```
    /// use switchboard::{Filter, FilterIndex};
    ///
    /// let mut index = FilterIndex::<u8, ()>::new();
    /// assert!(index.replace(&1, Filter::all()).is_err());
    /// index.insert(1, Filter::all());
    /// assert!(index.replace(&1, Filter::all()).is_ok());
    /// ```
    pub fn replace(&mut self, key: &K, filter: Filter<T>) -> Result<Filter<T>, Filter<T>> {
        if !self.live.contains_key(key) {
            return Err(filter);
        }
        match self.insert(*key, filter.clone()) {
            Some(old) => Ok(old),
            None => Err(filter),
        }
    }

    /// Removes the filter under `key`.
    ///
    /// ```
    /// use switchboard::{Filter, FilterIndex};
    ///
    /// let mut index = FilterIndex::<u8, ()>::new();
    /// index.insert(1, Filter::all());
    /// assert!(index.remove(&1).is_some());
    /// assert!(index.remove(&1).is_none());
    /// ```
    pub fn remove(&mut self, key: &K) -> Option<Filter<T>> {
        let l = self.live.remove(key)?;
        self.cached = None;
        self.retire(l);
        let old = self.slots.remove(&l.seq).map(|e| e.filter);
        // A burst of filters removed gives its key map back (amortized, as a queue's tables).
        if self.live.capacity() > 4 * self.live.len() + 64 {
            self.live.shrink_to(2 * self.live.len());
        }
        self.settle();
        old
    }

    /// Compiles a full tail into a level, merges levels of similar size, and rebuilds everything
    /// when there are too many levels or too many masked entries.
    fn settle(&mut self) {
        if self.dead > MIN_DELTA.max(self.live.len() / 4) {
            self.compact();
            return;
        }
        if self.tail.len() < TAIL {
            return;
        }
        let mut entries = std::mem::take(&mut self.tail);
        entries.sort_by_key(|e| e.seq);
        self.push_level(entries);
        while let [.., a, b] = self.levels.as_slice() {
            if a.base.entries.len() > RATIO * b.base.entries.len() {
                break;
            }
            let (a, b) = (a.clone(), b.clone());
            self.levels.truncate(self.levels.len() - 2);
            let mut entries: Vec<Entry<K, T>> =
                Vec::with_capacity(a.base.entries.len() + b.base.entries.len());
            for l in [&a, &b] {
                for (pos, e) in l.base.entries.iter().enumerate() {
                    if l.mask.is_set(pos) {
                        self.dead -= 1;
                    } else {
                        entries.push(e.clone());
                    }
                }
            }
            // Two sorted runs: the stable sort merges them in linear time.
            entries.sort_by_key(|e| e.seq);
            self.push_level(entries);
        }
        if self.levels.len() > MAX_LEVELS {
            self.compact();
        }
    }

    /// Compiles `entries` (live, sorted by sequence) into a new last level.
    fn push_level(&mut self, entries: Vec<Entry<K, T>>) {
        let level = self.levels.len();
        for (pos, e) in entries.iter().enumerate() {
            if let Some(l) = self.live.get_mut(&e.key) {
                l.at = Some((level, pos));
            }
        }
        self.levels.push(Level {
            base: Arc::new(Base::build(entries)),
            mask: Mask::default(),
        });
    }

    /// Compiles every filter into one level now, so the next snapshots match with one lookup per
    /// attribute. Useful after a bulk load.
    pub fn compact(&mut self) {
        self.cached = None;
        let entries: Vec<Entry<K, T>> = self.slots.values().cloned().collect();
        self.levels.clear();
        self.tail.clear();
        self.dead = 0;
        if !entries.is_empty() {
            self.push_level(entries);
        }
    }

    /// An immutable view of the filters as they are now.
    ///
    /// Cheap: when nothing changed it is a clone of the last one; otherwise it shares the
    /// compiled levels and copies the tail of recent changes (at most 32 filters).
    pub fn snapshot(&mut self) -> FilterSnapshot<K, T> {
        if let Some(s) = &self.cached {
            return s.clone();
        }
        let snap = FilterSnapshot {
            inner: Arc::new(SnapshotInner {
                levels: self.levels.clone(),
                tail: self.tail.clone(),
                len: self.live.len(),
            }),
        };
        self.cached = Some(snap.clone());
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(lo: (f64, bool), hi: (f64, bool), id: u32) -> Interval {
        Interval { lo, hi, id }
    }

    fn depth(t: &IntervalTree, at: usize) -> u32 {
        let n = &t.nodes[at];
        let below = [n.left, n.right]
            .into_iter()
            .flatten()
            .map(|c| depth(t, c))
            .max();
        below.map_or(0, |d| d + 1)
    }

    /// Keys a policy author can compute to share one bucket of an unkeyed multiplicative hash
    /// (rustc's Fx, which the index used before): 8 printable bytes each whose Fx hash has the
    /// same low 32 and top 7 bits. Fx is a bijection on one word, so it runs backwards.
    fn fx_colliding(n: usize) -> Vec<String> {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut inv = K; // K's inverse mod 2^64, by Newton's iteration
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(K.wrapping_mul(inv)));
        }
        let (mut out, mut mid) = (Vec::new(), 0u64);
        while out.len() < n {
            let h = mid << 32;
            mid += 1;
            let w =
                ((h.rotate_right(26).wrapping_mul(inv) ^ 0xff).rotate_right(5)).wrapping_mul(inv);
            let b = w.to_le_bytes();
            if b.iter().all(|c| (0x20..0x7f).contains(c)) {
                out.push(String::from_utf8(b.to_vec()).unwrap());
            }
        }
        out
    }

    #[test]
    fn keys_chosen_to_collide_spread_over_the_buckets() {
        use std::hash::BuildHasher;
        let keys = fx_colliding(1000);
        let map: Map<Box<str>, Vec<u32>> = Map::default();
        let buckets = |bits: fn(u64) -> u64| {
            let mut seen: Vec<u64> = keys
                .iter()
                .map(|k| bits(map.hasher().hash_one(&**k)))
                .collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        };
        // With a keyed hash, 1,000 keys over 65,536 buckets land in about 992 (fewer than 900
        // has a chance far below 1e-100); with Fx, every one of them in the same bucket.
        assert!(buckets(|h| h & 0xffff) > 900);
        assert!(buckets(|h| h >> 48) > 900);
    }

    fn stabbed(t: &IntervalTree, x: f64) -> Vec<u32> {
        let mut out = Vec::new();
        t.stab(x, &mut out);
        out.sort_unstable();
        out
    }

    fn brute(ivs: &[Interval], x: f64) -> Vec<u32> {
        let q = quantize(x);
        let mut out: Vec<u32> = ivs.iter().filter(|i| i.admits(q)).map(|i| i.id).collect();
        out.sort_unstable();
        out
    }

    /// Many disjoint ranges: the tree is balanced (depth about log2 of the leaves) and every
    /// stab agrees with checking each range.
    #[test]
    fn disjoint_ranges_build_a_balanced_tree() {
        let ivs: Vec<Interval> = (0..4096)
            .map(|i| {
                iv(
                    (f64::from(i) * 10.0, true),
                    (f64::from(i) * 10.0 + 5.0, false),
                    i as u32,
                )
            })
            .collect();
        let t = IntervalTree::build(ivs.clone());
        let d = depth(&t, 0);
        assert!(d <= 12, "depth {d} for 4096 disjoint ranges");
        for x in [
            -1.0, 0.0, 4.0, 5.0, 7.5, 10.0, 20_000.0, 40_955.0, 40_956.0, 1e9,
        ] {
            assert_eq!(stabbed(&t, x), brute(&ivs, x), "at {x}");
        }
    }

    /// A bound on a small grid (so that many intervals share end points), or unbounded.
    fn bound(inf: f64) -> impl proptest::strategy::Strategy<Value = (f64, bool)> {
        use proptest::prelude::*;
        prop_oneof![
            12 => ((-40i32..40).prop_map(|v| f64::from(v) / 2.0), any::<bool>()),
            1 => Just((inf, true)),
            1 => Just((inf, false)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 64,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Random non-empty intervals (shared and open or closed end points, unbounded sides),
        /// up to a few hundred so that the tree has inner nodes, and capped trees: every stab,
        /// on and between the end points, reports what checking each interval reports.
        #[test]
        fn stabs_agree_with_checking_each_interval(
            raw in proptest::collection::vec((bound(f64::NEG_INFINITY), bound(f64::INFINITY)), 0..300),
            cap in 0u32..6,
        ) {
            let ivs: Vec<Interval> = raw
                .into_iter()
                .filter(|(lo, hi)| lo.0 < hi.0)
                .enumerate()
                .map(|(i, (lo, hi))| iv(lo, hi, i as u32))
                .collect();
            let full = IntervalTree::build(ivs.clone());
            let capped = IntervalTree::build_capped(ivs.clone(), cap);
            let extremes = [f64::MIN, f64::MAX, -0.0, f64::NEG_INFINITY, f64::INFINITY];
            for x in (-90..=90).map(|v| f64::from(v) / 4.0).chain(extremes) {
                let want = brute(&ivs, x);
                proptest::prop_assert_eq!(&stabbed(&full, x), &want, "at {}", x);
                proptest::prop_assert_eq!(&stabbed(&capped, x), &want, "capped at {}, at {}", cap, x);
            }
        }
    }

    /// Nested ranges around one point, with ranges on either side: all agree with the check of
    /// each range, and the depth stays under the cap.
    #[test]
    fn nested_and_skewed_ranges_stab_right() {
        let mut ivs = Vec::new();
        for i in 0..2000u32 {
            let w = f64::from(i) + 1.0;
            ivs.push(iv((-w, i % 2 == 0), (w, i % 3 == 0), i));
            ivs.push(iv((w * 1000.0, true), (w * 1000.0 + 1.0, true), 10_000 + i));
        }
        ivs.push(iv((f64::NEG_INFINITY, false), (0.5, false), 99_999));
        let full = IntervalTree::build(ivs.clone());
        // A cap cuts the tree off in leaves that hold the rest: still the same answers.
        let capped = IntervalTree::build_capped(ivs.clone(), 2);
        assert!(depth(&full, 0) > 2);
        assert_eq!(depth(&capped, 0), 2);
        for x in [
            -2001.0,
            -1000.0,
            -1.0,
            0.0,
            0.5,
            1.0,
            999.0,
            1000.0,
            1000.5,
            1_999_000.5,
            3e6,
        ] {
            assert_eq!(stabbed(&full, x), brute(&ivs, x), "at {x}");
            assert_eq!(stabbed(&capped, x), brute(&ivs, x), "capped, at {x}");
        }
    }
}
