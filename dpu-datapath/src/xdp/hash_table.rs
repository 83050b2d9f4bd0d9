//! The store of a hash map: open addressing over fixed arrays of atomic
//! words, so a program's lookup or add on every frame takes no lock and no
//! read-modify-write beyond the add itself (a reader-writer lock cost
//! two atomic read-modify-writes per lookup: a third of the firewall's
//! time, docs/benchmarks.md). Writers (an insert or delete, from a
//! program or an operator) take one mutex.
//!
//! Each slot has a state word: empty, busy (being written), a tombstone,
//! or full, the last two with a generation. A reader takes a slot's state,
//! compares the key, reads the value, and takes the state again: if it
//! changed, a writer reused the slot meanwhile and the reader starts over
//! (a seqlock per slot). An add that finds its slot reused takes its delta
//! back. A tombstone followed by an empty slot becomes empty, so lookups of
//! absent keys stay short after deletions.

#![forbid(unsafe_code)]

use parking_lot::Mutex;
use std::hash::BuildHasher;
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

const EMPTY: u64 = 0;
const BUSY: u64 = 1;
const TOMB: u64 = 2;
const FULL: u64 = 3;
const KIND: u64 = 3;
/// Attempts of a reader whose slot keeps changing under it.
const RETRIES: usize = 8;

#[derive(Debug)]
pub struct HashTable {
    mask: usize,
    key_words: usize,
    val_words: usize,
    max_entries: usize,
    states: Box<[AtomicU64]>,
    keys: Box<[AtomicU64]>,
    values: Box<[AtomicU64]>,
    count: AtomicUsize,
    writer: Mutex<()>,
    hasher: foldhash::fast::FixedState,
}

fn zeroed(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// `bytes` as native-endian words in `w`, zero-padded (keys are at most 64
/// bytes); how many. Written in place: returning the array by value made
/// the caller's wide loads wait on these narrow stores (a store-forwarding
/// stall that was half of a lookup).
#[inline(always)]
fn words_of(bytes: &[u8], w: &mut [u64; 8]) -> usize {
    let n = bytes.len().div_ceil(8).min(8);
    for (i, chunk) in bytes.chunks(8).take(8).enumerate() {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        w[i] = u64::from_ne_bytes(b);
    }
    n
}

/// Stores `bytes` (native order) into `words`, zero past them.
fn store_value(words: &[AtomicU64], bytes: &[u8]) {
    for (i, w) in words.iter().enumerate() {
        let mut b = [0u8; 8];
        if let Some(chunk) = bytes.get(i * 8..) {
            let n = chunk.len().min(8);
            b[..n].copy_from_slice(&chunk[..n]);
        }
        w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}

impl HashTable {
    /// Room for `max_entries` keys of `key_size` bytes with values of
    /// `val_words` words; twice as many slots, so probes stay short.
    pub fn new(key_size: usize, val_words: usize, max_entries: usize) -> HashTable {
        let slots = (max_entries * 2).next_power_of_two().max(16);
        let key_words = key_size.div_ceil(8);
        HashTable {
            mask: slots - 1,
            key_words,
            val_words,
            max_entries,
            states: zeroed(slots),
            keys: zeroed(slots * key_words),
            values: zeroed(slots * val_words),
            count: AtomicUsize::new(0),
            writer: Mutex::new(()),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed),
        }
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn home(&self, key: &[u64]) -> usize {
        self.hasher.hash_one(key) as usize & self.mask
    }

    fn key_at(&self, slot: usize) -> &[AtomicU64] {
        &self.keys[slot * self.key_words..(slot + 1) * self.key_words]
    }

    /// The words of slot `slot`'s value.
    pub fn value_at(&self, slot: usize) -> &[AtomicU64] {
        &self.values[slot * self.val_words..(slot + 1) * self.val_words]
    }

    fn same_key(&self, slot: usize, key: &[u64]) -> bool {
        self.key_at(slot)
            .iter()
            .zip(key)
            .all(|(a, b)| a.load(Ordering::Relaxed) == *b)
    }

    /// The slot holding `key` and its state, as a reader sees it.
    fn find(&self, key: &[u64]) -> Option<(usize, u64)> {
        let home = self.home(key);
        for probe in 0..=self.mask {
            let slot = (home + probe) & self.mask;
            let s1 = self.states[slot].load(Ordering::Acquire);
            if s1 == EMPTY {
                return None;
            }
            if s1 & KIND != FULL || !self.same_key(slot, key) {
                continue;
            }
            fence(Ordering::Acquire);
            if self.states[slot].load(Ordering::Relaxed) == s1 {
                return Some((slot, s1));
            }
            // Rewritten while we compared: look again from the start.
            return self.find_under_writer(key);
        }
        None
    }

    /// `find` once more, writers held off (a slot changed under the first
    /// attempt: rare, so the lock costs nothing in the common case).
    fn find_under_writer(&self, key: &[u64]) -> Option<(usize, u64)> {
        let _w = self.writer.lock();
        self.find_held(key)
    }

    /// Still the slot `find` returned?
    fn unchanged(&self, slot: usize, state: u64) -> bool {
        fence(Ordering::Acquire);
        self.states[slot].load(Ordering::Relaxed) == state
    }

    /// Copies `key`'s value into `out` (bytes, native order); false if
    /// absent.
    pub fn lookup(&self, key: &[u8], out: &mut [u8]) -> bool {
        let mut k = [0u64; 8];
        let n = words_of(key, &mut k);
        for _ in 0..RETRIES {
            let Some((slot, state)) = self.find(&k[..n]) else {
                return false;
            };
            for (chunk, w) in out.chunks_mut(8).zip(self.value_at(slot)) {
                let b = w.load(Ordering::Relaxed).to_ne_bytes();
                chunk.copy_from_slice(&b[..chunk.len()]);
            }
            if self.unchanged(slot, state) {
                return true;
            }
        }
        false
    }

    /// Adds `delta` to word `word` of `key`'s value; false if absent.
    pub fn add_existing(&self, key: &[u8], word: usize, delta: u64) -> bool {
        let mut k = [0u64; 8];
        let n = words_of(key, &mut k);
        for _ in 0..RETRIES {
            let Some((slot, state)) = self.find(&k[..n]) else {
                return false;
            };
            let w = &self.value_at(slot)[word];
            w.fetch_add(delta, Ordering::Relaxed);
            if self.unchanged(slot, state) {
                return true;
            }
            // The slot went to another key meanwhile: take it back.
            w.fetch_sub(delta, Ordering::Relaxed);
        }
        false
    }

    /// Sets `key`'s value to `value` (words), inserting it; false when the
    /// table holds `max_entries` keys already.
    pub fn upsert(&self, key: &[u8], value: &[u8]) -> bool {
        let mut k = [0u64; 8];
        let n = words_of(key, &mut k);
        let _w = self.writer.lock();
        if let Some((slot, _)) = self.find_held(&k[..n]) {
            store_value(self.value_at(slot), value);
            return true;
        }
        self.insert_held(&k[..n], value).is_some()
    }

    /// `find` by a writer (holding the writer lock: nothing changes).
    fn find_held(&self, key: &[u64]) -> Option<(usize, u64)> {
        let home = self.home(key);
        for probe in 0..=self.mask {
            let slot = (home + probe) & self.mask;
            let s = self.states[slot].load(Ordering::Relaxed);
            if s == EMPTY {
                return None;
            }
            if s & KIND == FULL && self.same_key(slot, key) {
                return Some((slot, s));
            }
        }
        None
    }

    /// Puts an absent `key` in the first free slot of its probe sequence
    /// (writer lock held), with `value` (bytes; zero past them); its slot,
    /// or None when full.
    fn insert_held(&self, key: &[u64], value: &[u8]) -> Option<usize> {
        if self.count.load(Ordering::Relaxed) >= self.max_entries {
            return None;
        }
        let home = self.home(key);
        let mut free = None;
        for probe in 0..=self.mask {
            let slot = (home + probe) & self.mask;
            let s = self.states[slot].load(Ordering::Relaxed);
            if s == EMPTY || s & KIND == TOMB {
                free = Some((slot, s));
                break;
            }
        }
        let (slot, old) = free?;
        let generation = (old >> 2) + 1;
        self.states[slot].store(BUSY, Ordering::Relaxed);
        fence(Ordering::Release);
        for (w, v) in self.key_at(slot).iter().zip(key) {
            w.store(*v, Ordering::Relaxed);
        }
        store_value(self.value_at(slot), value);
        self.states[slot].store((generation << 2) | FULL, Ordering::Release);
        self.count.fetch_add(1, Ordering::Relaxed);
        Some(slot)
    }

    /// Adds `delta` to word `word` of `key`'s value, inserting a zero
    /// value first when the key is absent; false when the table is full.
    pub fn upsert_or_add(&self, key: &[u8], word: usize, delta: u64) -> bool {
        let _w = self.writer.lock();
        let mut k = [0u64; 8];
        let n = words_of(key, &mut k);
        let slot = match self.find_held(&k[..n]) {
            Some((slot, _)) => slot,
            None => match self.insert_held(&k[..n], &[]) {
                Some(slot) => slot,
                None => return false,
            },
        };
        self.value_at(slot)[word].fetch_add(delta, Ordering::Relaxed);
        true
    }

    /// Removes `key`; false if absent.
    pub fn remove(&self, key: &[u8]) -> bool {
        let mut k = [0u64; 8];
        let n = words_of(key, &mut k);
        let _w = self.writer.lock();
        let home = self.home(&k[..n]);
        for probe in 0..=self.mask {
            let slot = (home + probe) & self.mask;
            let s = self.states[slot].load(Ordering::Relaxed);
            if s == EMPTY {
                return false;
            }
            if s & KIND == FULL && self.same_key(slot, &k[..n]) {
                let generation = (s >> 2) + 1;
                self.states[slot].store((generation << 2) | TOMB, Ordering::Release);
                self.count.fetch_sub(1, Ordering::Relaxed);
                self.clear_tombs_before(slot);
                return true;
            }
        }
        false
    }

    /// Tombstones ending at `slot` become empty when the slot after them
    /// is empty: no probe sequence passes through them to a later key.
    fn clear_tombs_before(&self, mut slot: usize) {
        let next = (slot + 1) & self.mask;
        if self.states[next].load(Ordering::Relaxed) != EMPTY {
            return;
        }
        for _ in 0..=self.mask {
            let s = self.states[slot].load(Ordering::Relaxed);
            if s & KIND != TOMB {
                return;
            }
            self.states[slot].store(EMPTY, Ordering::Release);
            slot = slot.wrapping_sub(1) & self.mask;
        }
    }

    /// Every key (bytes, `key_size` long) with its value words.
    pub fn entries(&self, key_size: usize) -> Vec<(Vec<u8>, Vec<u64>)> {
        let _w = self.writer.lock();
        let mut out = Vec::with_capacity(self.len());
        for slot in 0..=self.mask {
            if self.states[slot].load(Ordering::Relaxed) & KIND != FULL {
                continue;
            }
            let mut key: Vec<u8> = self
                .key_at(slot)
                .iter()
                .flat_map(|w| w.load(Ordering::Relaxed).to_ne_bytes())
                .collect();
            key.truncate(key_size);
            let value = self
                .value_at(slot)
                .iter()
                .map(|w| w.load(Ordering::Relaxed))
                .collect();
            out.push((key, value));
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Value words as the bytes `upsert` takes.
    fn bytes(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    #[test]
    fn insert_find_delete_reuse() {
        let t = HashTable::new(12, 2, 8);
        let key = |i: u8| [i; 12];
        for i in 0..8 {
            assert!(t.upsert(&key(i), &bytes(&[u64::from(i), 1])));
        }
        assert!(!t.upsert(&key(9), &bytes(&[0, 0])), "full at max_entries");
        let mut v = [0u8; 16];
        let words = |v: &[u8; 16]| {
            [
                u64::from_ne_bytes(v[..8].try_into().unwrap()),
                u64::from_ne_bytes(v[8..].try_into().unwrap()),
            ]
        };
        assert!(t.lookup(&key(5), &mut v) && words(&v) == [5, 1]);
        assert!(t.add_existing(&key(5), 1, 41));
        assert!(t.lookup(&key(5), &mut v) && words(&v) == [5, 42]);
        assert!(t.remove(&key(5)));
        assert!(!t.remove(&key(5)));
        assert!(!t.lookup(&key(5), &mut v));
        assert!(t.upsert(&key(9), &bytes(&[9, 9])), "a slot is free again");
        assert_eq!(t.len(), 8);
        assert_eq!(t.entries(12).len(), 8);
    }

    #[test]
    fn churn_keeps_absent_lookups_short() {
        // Insert and delete many distinct keys through a small table: the
        // tombstones are cleared, so the table never fills with them.
        let t = HashTable::new(8, 1, 4);
        for i in 0u64..10_000 {
            assert!(t.upsert(&i.to_ne_bytes(), &bytes(&[i])), "insert {i}");
            assert!(t.remove(&i.to_ne_bytes()));
        }
        assert_eq!(t.len(), 0);
        let empty = t
            .states
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) == EMPTY)
            .count();
        assert!(empty >= 15, "{empty} of 16 slots empty after churn");
    }

    #[test]
    fn readers_and_a_writer_on_two_threads() {
        let t = std::sync::Arc::new(HashTable::new(8, 1, 64));
        for i in 0u64..32 {
            t.upsert(&i.to_ne_bytes(), &bytes(&[i * 1000]));
        }
        let reader = {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut b = [0u8; 8];
                for round in 0..200_000u64 {
                    let i = round % 32;
                    // Keys 0..16 are never touched by the writer: always
                    // found, always with their own value.
                    if i < 16 {
                        assert!(t.lookup(&i.to_ne_bytes(), &mut b));
                        assert_eq!(u64::from_ne_bytes(b), i * 1000);
                    } else if t.lookup(&i.to_ne_bytes(), &mut b) {
                        assert_eq!(u64::from_ne_bytes(b) % 1000, 0, "a torn or foreign value");
                    }
                }
            })
        };
        for round in 0..20_000u64 {
            let i = 16 + round % 16;
            t.remove(&i.to_ne_bytes());
            t.upsert(&i.to_ne_bytes(), &bytes(&[i * 1000]));
        }
        reader.join().unwrap();
    }
}
