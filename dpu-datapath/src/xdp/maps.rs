//! Maps: state shared by a program's runs on every replica, the service and
//! operators. Three kinds, as the C header declares them:
//! - **array**: `max_entries` values indexed by a `u32` key, zero at
//!   creation;
//! - **hash**: at most `max_entries` keys of `key_size` bytes;
//! - **per-replica array**: an array per replica, so counters updated by
//!   every packet never share a cache line between cores; operators see
//!   each replica's value.
//!
//! Values are stored as 64-bit atomic words, so an `add` from a program on
//! one core and a dump by an operator never race (a whole-value copy is not
//! atomic across words, as in the kernel's maps).

#![forbid(unsafe_code)]

use super::hash_table::HashTable;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest key, value and map the service creates.
pub const MAX_KEY_SIZE: u32 = 64;
pub const MAX_VALUE_SIZE: u32 = 1024;
pub const MAX_ENTRIES: u32 = 1 << 20;
/// Array bytes (all replicas) one map may take.
pub const MAX_ARRAY_BYTES: u64 = 256 << 20;

/// A map's kind, numbered as in `flextoe_xdp.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    Array,
    Hash,
    PerReplica,
}

impl MapKind {
    pub fn from_code(code: u32) -> Option<MapKind> {
        match code {
            1 => Some(MapKind::Array),
            2 => Some(MapKind::Hash),
            3 => Some(MapKind::PerReplica),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MapKind::Array => "array",
            MapKind::Hash => "hash",
            MapKind::PerReplica => "per-replica",
        }
    }
}

/// A map as a program declares it (`struct flextoe_map_def`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub kind: MapKind,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

impl MapDef {
    /// Checks the limits; the error says which field is wrong.
    pub fn validate(&self, name: &str, replicas: usize) -> Result<(), String> {
        let err = |what: String| Err(format!("map {name}: {what}"));
        if self.kind != MapKind::Hash && self.key_size != 4 {
            return err(format!(
                "an {} map's key is a u32 index (4 bytes), not {} bytes",
                self.kind.name(),
                self.key_size
            ));
        }
        if self.key_size == 0 || self.key_size > MAX_KEY_SIZE {
            return err(format!(
                "key size {} (allowed 1-{MAX_KEY_SIZE})",
                self.key_size
            ));
        }
        if self.value_size == 0 || self.value_size > MAX_VALUE_SIZE {
            return err(format!(
                "value size {} (allowed 1-{MAX_VALUE_SIZE})",
                self.value_size
            ));
        }
        if self.max_entries == 0 || self.max_entries > MAX_ENTRIES {
            return err(format!(
                "max_entries {} (allowed 1-{MAX_ENTRIES})",
                self.max_entries
            ));
        }
        let copies = if self.kind == MapKind::PerReplica {
            replicas as u64
        } else {
            1
        };
        let bytes = copies * u64::from(self.max_entries) * u64::from(self.words()) * 8;
        if self.kind != MapKind::Hash && bytes > MAX_ARRAY_BYTES {
            return err(format!(
                "{bytes} bytes of array (at most {MAX_ARRAY_BYTES})"
            ));
        }
        Ok(())
    }

    /// 64-bit words per value.
    pub fn words(&self) -> u32 {
        self.value_size.div_ceil(8)
    }
}

/// Why a map operation failed (a program sees -1 for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No such key (hash), or an index past the array.
    NotFound,
    /// The hash map holds `max_entries` keys already.
    Full,
    /// A key or value of the wrong size (operators only: a program's sizes
    /// are checked by the validator).
    BadSize,
    /// A word index past the value (`add`).
    BadWord,
    /// A replica that does not exist.
    BadReplica,
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MapError::NotFound => "no such key",
            MapError::Full => "the map is full",
            MapError::BadSize => "wrong key or value size",
            MapError::BadWord => "word index past the value",
            MapError::BadReplica => "no such replica",
        })
    }
}

enum Store {
    /// `copies` arrays (1, or one per replica) of `max_entries` values.
    Array {
        copies: usize,
        words: Box<[AtomicU64]>,
    },
    Hash(HashTable),
}

/// One map, named as in the program.
pub struct Map {
    pub name: String,
    pub def: MapDef,
    store: Store,
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("name", &self.name)
            .field("def", &self.def)
            .finish()
    }
}

fn zeroed(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn store_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (w, chunk) in words.iter().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}

fn load_bytes(words: &[AtomicU64], out: &mut [u8]) {
    for (w, chunk) in words.iter().zip(out.chunks_mut(8)) {
        let b = w.load(Ordering::Relaxed).to_ne_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

impl Map {
    /// A new, empty (zeroed) map; `def` must have passed
    /// [`MapDef::validate`].
    pub fn new(name: &str, def: MapDef, replicas: usize) -> Map {
        let words = def.words() as usize;
        let store = match def.kind {
            MapKind::Array | MapKind::PerReplica => {
                let copies = if def.kind == MapKind::PerReplica {
                    replicas.max(1)
                } else {
                    1
                };
                Store::Array {
                    copies,
                    words: zeroed(copies * def.max_entries as usize * words),
                }
            }
            MapKind::Hash => Store::Hash(HashTable::new(
                def.key_size as usize,
                words,
                def.max_entries as usize,
            )),
        };
        Map {
            name: name.to_owned(),
            def,
            store,
        }
    }

    /// The words of `key`'s value in copy `replica` (arrays).
    fn slot(&self, replica: usize, key: &[u8]) -> Result<&[AtomicU64], MapError> {
        let Store::Array { copies, words } = &self.store else {
            return Err(MapError::NotFound);
        };
        let index = u32::from_ne_bytes(key.try_into().map_err(|_| MapError::BadSize)?);
        if index >= self.def.max_entries {
            return Err(MapError::NotFound);
        }
        let copy = if *copies == 1 { 0 } else { replica };
        if copy >= *copies {
            return Err(MapError::BadReplica);
        }
        let w = self.def.words() as usize;
        let at = (copy * self.def.max_entries as usize + index as usize) * w;
        Ok(&words[at..at + w])
    }

    fn check(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), MapError> {
        let value_ok = value.is_none_or(|v| v.len() == self.def.value_size as usize);
        if key.len() != self.def.key_size as usize || !value_ok {
            return Err(MapError::BadSize);
        }
        Ok(())
    }

    /// Copies `key`'s value (of replica `replica` for a per-replica map)
    /// into `out`.
    pub fn lookup(&self, replica: usize, key: &[u8], out: &mut [u8]) -> Result<(), MapError> {
        self.check(key, Some(out))?;
        match &self.store {
            Store::Array { .. } => load_bytes(self.slot(replica, key)?, out),
            Store::Hash(t) => {
                if !t.lookup(key, out) {
                    return Err(MapError::NotFound);
                }
            }
        }
        Ok(())
    }

    /// Sets `key`'s value (in every replica's copy when `replica` is None).
    pub fn update(&self, replica: Option<usize>, key: &[u8], value: &[u8]) -> Result<(), MapError> {
        self.check(key, Some(value))?;
        match &self.store {
            Store::Array { copies, .. } => match replica {
                Some(r) => store_bytes(self.slot(r, key)?, value),
                None => {
                    for r in 0..*copies {
                        store_bytes(self.slot(r, key)?, value);
                    }
                }
            },
            Store::Hash(t) => {
                if !t.upsert(key, value) {
                    return Err(MapError::Full);
                }
            }
        }
        Ok(())
    }

    /// Removes `key` (an array's value goes back to zero, in every copy
    /// when `replica` is None).
    pub fn delete(&self, replica: Option<usize>, key: &[u8]) -> Result<(), MapError> {
        self.check(key, None)?;
        match &self.store {
            Store::Array { copies, .. } => {
                let all = 0..*copies;
                for r in replica.map_or(all, |r| r..r + 1) {
                    for w in self.slot(r, key)? {
                        w.store(0, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
            Store::Hash(t) => {
                if t.remove(key) {
                    Ok(())
                } else {
                    Err(MapError::NotFound)
                }
            }
        }
    }

    /// Adds `delta` to word `word` of `key`'s value, atomically; a hash map
    /// gets a zero value for a new key first.
    pub fn add(&self, replica: usize, key: &[u8], word: u64, delta: u64) -> Result<(), MapError> {
        self.check(key, None)?;
        if word >= u64::from(self.def.words()) {
            return Err(MapError::BadWord);
        }
        let word = word as usize;
        match &self.store {
            Store::Array { .. } => {
                self.slot(replica, key)?[word].fetch_add(delta, Ordering::Relaxed);
            }
            Store::Hash(t) => {
                if t.add_existing(key, word, delta) {
                    return Ok(());
                }
                // A new key, or one inserted by another core meanwhile.
                if !t.upsert_or_add(key, word, delta) {
                    return Err(MapError::Full);
                }
            }
        }
        Ok(())
    }

    /// Keys in use (hash), or `max_entries` (arrays).
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Array { .. } => self.def.max_entries as usize,
            Store::Hash(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry: key and one value per copy (one, or one per replica).
    /// Array entries whose every copy is zero are left out.
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
        let vs = self.def.value_size as usize;
        let mut out = Vec::new();
        match &self.store {
            Store::Array { copies, .. } => {
                for i in 0..self.def.max_entries {
                    let key = i.to_ne_bytes();
                    let mut values = Vec::with_capacity(*copies);
                    for r in 0..*copies {
                        let mut v = vec![0u8; vs];
                        if let Ok(words) = self.slot(r, &key) {
                            load_bytes(words, &mut v);
                        }
                        values.push(v);
                    }
                    if values.iter().any(|v| v.iter().any(|b| *b != 0)) {
                        out.push((key.to_vec(), values));
                    }
                }
            }
            Store::Hash(t) => {
                for (k, words) in t.entries(self.def.key_size as usize) {
                    let mut v = vec![0u8; vs];
                    for (chunk, w) in v.chunks_mut(8).zip(&words) {
                        chunk.copy_from_slice(&w.to_ne_bytes()[..chunk.len()]);
                    }
                    out.push((k, vec![v]));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: MapKind, key: u32, value: u32, n: u32) -> MapDef {
        MapDef {
            kind,
            key_size: key,
            value_size: value,
            max_entries: n,
        }
    }

    #[test]
    fn limits_name_the_field() {
        let e = def(MapKind::Array, 8, 8, 4).validate("a", 1).unwrap_err();
        assert_eq!(
            e,
            "map a: an array map's key is a u32 index (4 bytes), not 8 bytes"
        );
        let e = def(MapKind::Hash, 4, 0, 4).validate("h", 1).unwrap_err();
        assert_eq!(e, "map h: value size 0 (allowed 1-1024)");
        let e = def(MapKind::Hash, 4, 8, 0).validate("h", 1).unwrap_err();
        assert_eq!(e, "map h: max_entries 0 (allowed 1-1048576)");
        assert!(def(MapKind::Hash, 13, 12, 10).validate("h", 1).is_ok());
    }

    #[test]
    fn array_index_bounds_and_zero_default() {
        let m = Map::new("a", def(MapKind::Array, 4, 12, 3), 2);
        let mut v = [9u8; 12];
        m.lookup(0, &2u32.to_ne_bytes(), &mut v).unwrap();
        assert_eq!(v, [0; 12]);
        assert_eq!(
            m.lookup(0, &3u32.to_ne_bytes(), &mut v),
            Err(MapError::NotFound)
        );
        m.update(None, &1u32.to_ne_bytes(), &[7; 12]).unwrap();
        m.add(0, &1u32.to_ne_bytes(), 1, 3).unwrap();
        m.lookup(0, &1u32.to_ne_bytes(), &mut v).unwrap();
        assert_eq!(&v[..8], &[7; 8]);
        assert_eq!(v[8], 10, "word 1 holds bytes 8..12");
        assert_eq!(m.add(0, &1u32.to_ne_bytes(), 2, 1), Err(MapError::BadWord));
        assert_eq!(m.entries().len(), 1);
    }

    #[test]
    fn per_replica_copies_are_separate() {
        let m = Map::new("p", def(MapKind::PerReplica, 4, 8, 2), 3);
        let k = 0u32.to_ne_bytes();
        m.add(0, &k, 0, 5).unwrap();
        m.add(2, &k, 0, 7).unwrap();
        assert_eq!(m.add(3, &k, 0, 1), Err(MapError::BadReplica));
        let e = m.entries();
        let words: Vec<u64> = e[0]
            .1
            .iter()
            .map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap()))
            .collect();
        assert_eq!(words, vec![5, 0, 7]);
    }

    #[test]
    fn hash_full_delete_and_add_creates() {
        let m = Map::new("h", def(MapKind::Hash, 2, 8, 2), 1);
        m.update(None, b"ab", &[1; 8]).unwrap();
        m.add(0, b"cd", 0, 4).unwrap();
        assert_eq!(m.update(None, b"ef", &[1; 8]), Err(MapError::Full));
        assert_eq!(m.add(0, b"ef", 0, 1), Err(MapError::Full));
        assert_eq!(m.len(), 2);
        let mut v = [0u8; 8];
        m.lookup(0, b"cd", &mut v).unwrap();
        assert_eq!(u64::from_ne_bytes(v), 4);
        m.delete(None, b"ab").unwrap();
        assert_eq!(m.delete(None, b"ab"), Err(MapError::NotFound));
        m.update(None, b"ef", &[2; 8]).unwrap();
        assert_eq!(m.update(None, b"abc", &[2; 8]), Err(MapError::BadSize));
        assert_eq!(m.entries().len(), 2);
    }
}
