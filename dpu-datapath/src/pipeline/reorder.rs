//! Reorder window for one sequencer: items arrive in any order with their
//! sequence number and leave strictly in sequence. Every sequence number
//! must be inserted exactly once (an item or a "drop" marker), so a dropped
//! packet never stalls the window.

/// In-order release of stamped items.
#[derive(Debug)]
pub struct Reorder<T> {
    slots: Vec<Option<T>>,
    mask: u64,
    next: u64,
    held: usize,
    /// Insertions that had to wait behind a gap.
    pub hold_events: u64,
}

/// The item's sequence number is outside the window (or already released).
#[derive(Debug, PartialEq, Eq)]
pub struct OutOfWindow<T>(pub u64, pub T);

impl<T> Reorder<T> {
    /// A window of `size` (rounded up to a power of two) sequence numbers.
    pub fn new(size: usize) -> Self {
        let size = size.max(2).next_power_of_two();
        Self {
            slots: (0..size).map(|_| None).collect(),
            mask: size as u64 - 1,
            next: 0,
            held: 0,
            hold_events: 0,
        }
    }

    /// Accepts item `seq`.
    pub fn insert(&mut self, seq: u64, item: T) -> Result<(), OutOfWindow<T>> {
        if seq < self.next || seq - self.next > self.mask {
            return Err(OutOfWindow(seq, item));
        }
        let slot = &mut self.slots[(seq & self.mask) as usize];
        if slot.is_some() {
            return Err(OutOfWindow(seq, item));
        }
        if seq != self.next {
            self.hold_events += 1;
        }
        *slot = Some(item);
        self.held += 1;
        Ok(())
    }

    /// Lets item `seq` through without storing it when it is the next in
    /// sequence and nothing is held, the common case (in order), saving a
    /// store and a take of the item. False: `insert` it instead.
    pub fn pass(&mut self, seq: u64) -> bool {
        if seq == self.next && self.held == 0 {
            self.next += 1;
            true
        } else {
            false
        }
    }

    /// The next item in sequence, if it has arrived.
    pub fn pop_ready(&mut self) -> Option<T> {
        let item = self.slots[(self.next & self.mask) as usize].take()?;
        self.next += 1;
        self.held -= 1;
        Some(item)
    }

    /// Items waiting (behind a gap or not yet popped).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Sequence numbers the window spans.
    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// The next sequence number to be released.
    pub fn next_seq(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_in_order_across_gaps() {
        let mut r = Reorder::new(8);
        r.insert(2, 'c').unwrap();
        r.insert(1, 'b').unwrap();
        assert_eq!(r.pop_ready(), None);
        r.insert(0, 'a').unwrap();
        assert_eq!(r.pop_ready(), Some('a'));
        assert_eq!(r.pop_ready(), Some('b'));
        assert_eq!(r.pop_ready(), Some('c'));
        assert_eq!(r.pop_ready(), None);
        assert_eq!(r.held(), 0);
        assert_eq!(r.hold_events, 2);
    }

    #[test]
    fn passes_only_the_next_item_with_nothing_held() {
        let mut r = Reorder::new(8);
        assert!(r.pass(0));
        assert!(!r.pass(0), "already released");
        assert!(!r.pass(2), "a gap");
        r.insert(2, 'c').unwrap();
        assert!(
            !r.pass(1),
            "something is held: it must go through the window"
        );
        r.insert(1, 'b').unwrap();
        assert_eq!(r.pop_ready(), Some('b'));
        assert_eq!(r.pop_ready(), Some('c'));
        assert!(r.pass(3));
        assert_eq!(r.insert(3, 'd'), Err(OutOfWindow(3, 'd')));
    }

    #[test]
    fn refuses_outside_window_and_duplicates() {
        let mut r = Reorder::new(4);
        assert_eq!(r.insert(4, 'x'), Err(OutOfWindow(4, 'x')));
        r.insert(0, 'a').unwrap();
        assert_eq!(r.insert(0, 'b'), Err(OutOfWindow(0, 'b')));
        assert_eq!(r.pop_ready(), Some('a'));
        assert_eq!(r.insert(0, 'c'), Err(OutOfWindow(0, 'c')));
    }
}
