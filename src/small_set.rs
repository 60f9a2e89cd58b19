//! A set that stays a vector while it is small.
//!
//! A send to a recipient list or a gather sees a handful of names or copies, where a linear scan
//! beats hashing and allocates nothing beyond the vector; past [`LINEAR_MAX`] entries the set
//! moves into a hash set, so that thousands of recipients cost thousands of steps rather than
//! millions (found by review: a gather to 20,000 responders spent most of its time in
//! `contains`).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;

/// The size up to which a linear scan is used.
pub(crate) const LINEAR_MAX: usize = 32;

pub(crate) enum SmallSet<K> {
    Few(Vec<K>),
    Many(HashSet<K>),
}

impl<K: Eq + Hash> SmallSet<K> {
    pub(crate) fn new() -> SmallSet<K> {
        SmallSet::Few(Vec::new())
    }

    /// Adds `k`; `false` if it was there already.
    pub(crate) fn insert(&mut self, k: K) -> bool {
        match self {
            SmallSet::Few(v) => {
                if v.contains(&k) {
                    return false;
                }
                if v.len() < LINEAR_MAX {
                    v.push(k);
                } else {
                    let mut set: HashSet<K> = v.drain(..).collect();
                    set.insert(k);
                    *self = SmallSet::Many(set);
                }
                true
            }
            SmallSet::Many(s) => s.insert(k),
        }
    }

    pub(crate) fn contains<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self {
            SmallSet::Few(v) => v.iter().any(|x| x.borrow() == k),
            SmallSet::Many(s) => s.contains(k),
        }
    }
}

/// Takes `v` as it is while it is short (no allocation), hashes it past that.
impl<K: Eq + Hash> From<Vec<K>> for SmallSet<K> {
    fn from(v: Vec<K>) -> SmallSet<K> {
        if v.len() <= LINEAR_MAX {
            SmallSet::Few(v)
        } else {
            SmallSet::Many(v.into_iter().collect())
        }
    }
}

impl<K: Eq + Hash> FromIterator<K> for SmallSet<K> {
    fn from_iter<I: IntoIterator<Item = K>>(iter: I) -> SmallSet<K> {
        let mut set = SmallSet::new();
        for k in iter {
            set.insert(k);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_a_set_across_the_switch() {
        let mut s = SmallSet::new();
        for i in 0..100u32 {
            assert!(s.insert(i), "{i} is new");
            assert!(!s.insert(i), "{i} is there");
            if i == LINEAR_MAX as u32 - 1 {
                assert!(matches!(s, SmallSet::Few(_)));
            }
        }
        assert!(matches!(s, SmallSet::Many(_)));
        assert!((0..100).all(|i| s.contains(&i)));
        assert!(!s.contains(&100));
    }

    #[test]
    fn looks_up_strings_by_str() {
        let few: SmallSet<std::sync::Arc<str>> = ["a", "b"].into_iter().map(Into::into).collect();
        let many: SmallSet<String> = (0..50).map(|i| i.to_string()).collect();
        assert!(few.contains("a") && !few.contains("c"));
        assert!(many.contains("49") && !many.contains("50"));
    }

    #[test]
    fn a_vector_is_taken_as_it_is_while_short() {
        let short = SmallSet::from(vec![1u32, 2, 3]);
        assert!(matches!(short, SmallSet::Few(_)) && short.contains(&2) && !short.contains(&4));
        let long = SmallSet::from((0..100u32).collect::<Vec<_>>());
        assert!(matches!(long, SmallSet::Many(_)) && long.contains(&99));
    }
}
