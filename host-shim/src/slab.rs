//! A table of small non-negative integer handles (the C API's listener and
//! connection handles). Freed handles are reused, lowest first, like file
//! descriptors.

use std::collections::BTreeSet;

#[derive(Debug)]
pub(crate) struct Slab<T> {
    entries: Vec<Option<T>>,
    free: BTreeSet<usize>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: BTreeSet::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value`; `None` when every non-negative `i32` is in use.
    pub(crate) fn insert(&mut self, value: T) -> Option<i32> {
        let idx = match self.free.pop_first() {
            Some(i) => {
                self.entries[i] = Some(value);
                i
            }
            None => {
                let i = self.entries.len();
                i32::try_from(i).ok()?;
                self.entries.push(Some(value));
                i
            }
        };
        i32::try_from(idx).ok()
    }

    pub(crate) fn get(&self, handle: i32) -> Option<&T> {
        let i = usize::try_from(handle).ok()?;
        self.entries.get(i)?.as_ref()
    }

    pub(crate) fn remove(&mut self, handle: i32) -> Option<T> {
        let i = usize::try_from(handle).ok()?;
        let v = self.entries.get_mut(i)?.take()?;
        if i + 1 == self.entries.len() {
            // Shrink the tail so the table does not keep the high-water mark.
            self.entries.pop();
            while let Some(None) = self.entries.last() {
                let last = self.entries.len() - 1;
                self.free.remove(&last);
                self.entries.pop();
            }
        } else {
            self.free.insert(i);
        }
        Some(v)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Removes every entry.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.free.clear();
        self.entries.drain(..).flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_small_and_reused_lowest_first() {
        let mut s = Slab::default();
        assert_eq!(s.insert("a"), Some(0));
        assert_eq!(s.insert("b"), Some(1));
        assert_eq!(s.insert("c"), Some(2));
        assert_eq!(s.insert("d"), Some(3));
        assert_eq!(s.remove(1), Some("b"));
        assert_eq!(s.remove(1), None);
        assert_eq!(s.remove(0), Some("a"));
        assert_eq!(s.get(1), None);
        assert_eq!(s.get(2), Some(&"c"));
        assert_eq!(s.insert("e"), Some(0));
        assert_eq!(s.insert("f"), Some(1));
        assert_eq!(s.insert("g"), Some(4));
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn bad_handles_are_rejected() {
        let mut s = Slab::default();
        s.insert(1u8);
        assert_eq!(s.get(-1), None);
        assert_eq!(s.get(7), None);
        assert_eq!(s.remove(-5), None);
        assert_eq!(s.remove(i32::MAX), None);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn removing_the_tail_shrinks_the_table() {
        let mut s = Slab::default();
        for i in 0..4 {
            s.insert(i);
        }
        s.remove(1);
        s.remove(2);
        s.remove(3);
        assert_eq!(s.entries.len(), 1);
        assert!(s.free.is_empty());
        assert_eq!(s.insert(9), Some(1));
        assert_eq!(s.drain(), vec![0, 9]);
        assert_eq!(s.len(), 0);
        assert_eq!(s.insert(5), Some(0));
    }
}
