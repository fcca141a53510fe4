//! The keyspace: plain `HashMap`s owned by the event loop, no locks.
//!
//! Keys are spread over a fixed number of shards held copy-on-write ([`Shards`]). Two things
//! follow: taking a point-in-time copy for a snapshot clones 256 pointers whatever the size (a
//! write then copies the one shard it touches, and only while a snapshot still holds it), and SCAN
//! has a cursor that stays valid however the maps grow or shrink: a shard index.
//!
//! Every change to data goes through a method here that bumps [`Store::dirty`], which is what the
//! snapshot timer and, later, the write log and replicas follow.

mod glob;
mod shards;

use std::hash::BuildHasher;

pub use glob::glob_match;
pub use shards::{Shard, Shards, SHARDS};

/// Rough per-key bookkeeping cost (map slot, two vector headers) used for the memory estimate.
const ENTRY_OVERHEAD: usize = 56;

/// A frozen, point-in-time copy of the keyspace, cheap to take and safe to send to another thread.
#[derive(Debug, Clone)]
pub struct Image {
    shards: Shards,
    len: usize,
}

impl Image {
    /// Number of keys in the image.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the image holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every key and value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }
}

/// The live keyspace.
#[derive(Debug)]
pub struct Store {
    shards: Shards,
    picker: std::collections::hash_map::RandomState,
    len: usize,
    bytes: usize,
    dirty: u64,
    hits: u64,
    misses: u64,
    copied: CopyOnWrite,
}

/// Shards copied because a snapshot still held them when a write came.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyOnWrite {
    /// Shards copied since the last image was taken.
    pub shards: u64,
    /// Estimated bytes those copies hold: the extra memory a snapshot in flight costs, at most
    /// one copy of the data.
    pub bytes: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            shards: Shards::empty(),
            picker: Default::default(),
            len: 0,
            bytes: 0,
            dirty: 0,
            hits: 0,
            misses: 0,
            copied: CopyOnWrite::default(),
        }
    }
}

/// What one SCAN call found.
#[derive(Debug, PartialEq, Eq)]
pub struct ScanPage {
    /// Cursor for the next call; 0 when the scan is complete.
    pub cursor: u64,
    /// Keys found in this step (each key of a visited shard that matched).
    pub keys: Vec<Vec<u8>>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Count of changes since start; grows by one per key written or removed.
    pub fn dirty(&self) -> u64 {
        self.dirty
    }

    /// Estimated bytes held by keys, values and their bookkeeping.
    pub fn used_bytes(&self) -> usize {
        self.bytes
    }

    /// Lookups that found a key, and lookups that did not (INFO's keyspace_hits/misses).
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Copies made since the last image because it still held the shards being written.
    pub fn copied(&self) -> CopyOnWrite {
        self.copied
    }

    /// A point-in-time copy for a snapshot. Cost: one `Arc` clone per shard, whatever the size.
    pub fn image(&mut self) -> Image {
        self.copied = CopyOnWrite::default();
        Image {
            shards: self.shards.clone(),
            len: self.len,
        }
    }

    /// Replaces the whole contents, as loading a snapshot does. Not counted as a change.
    pub fn load(&mut self, pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) {
        self.clear_silently();
        for (key, value) in pairs {
            self.insert(key, value);
        }
    }

    /// The value of `key`, counted as a hit or a miss.
    pub fn get(&mut self, key: &[u8]) -> Option<&[u8]> {
        let i = self.shard_of(key);
        let found = self.shards.get(i).get(key);
        match found {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        found.map(Vec::as_slice)
    }

    /// The value of `key`, not counted in hits or misses.
    pub fn peek(&self, key: &[u8]) -> Option<&[u8]> {
        self.shards
            .get(self.shard_of(key))
            .get(key)
            .map(Vec::as_slice)
    }

    /// True when `key` exists; not counted in hits or misses.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.shards.get(self.shard_of(key)).contains_key(key)
    }

    /// Stores `value` under `key`; returns the previous value.
    pub fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> Option<Vec<u8>> {
        self.dirty += 1;
        self.insert(key, value)
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let i = self.shard_of(key);
        if !self.shards.get(i).contains_key(key) {
            return None;
        }
        let (key, value) = self.shard_mut(i).remove_entry(key)?;
        self.dirty += 1;
        self.len -= 1;
        self.bytes -= cost(&key, &value);
        Some(value)
    }

    /// Appends `tail` to the value of `key` (creating it); returns the new length.
    pub fn append(&mut self, key: &[u8], tail: &[u8]) -> usize {
        self.update(key, |value| value.extend_from_slice(tail))
    }

    /// Overwrites the value of `key` from `offset` with `bytes`, padding with zero bytes;
    /// returns the new length.
    pub fn set_range(&mut self, key: &[u8], offset: usize, bytes: &[u8]) -> usize {
        self.update(key, |value| {
            let end = offset + bytes.len();
            if value.len() < end {
                value.resize(end, 0);
            }
            value[offset..end].copy_from_slice(bytes);
        })
    }

    /// Removes every key; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let removed = self.len;
        self.clear_silently();
        self.dirty += removed as u64;
        removed
    }

    /// A uniformly chosen shard's random key, or `None` when empty. `seed` is any random number.
    pub fn random_key(&self, seed: u64) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let start = (seed as usize) % SHARDS;
        let shard = (0..SHARDS)
            .map(|step| self.shards.get((start + step) % SHARDS))
            .find(|shard| !shard.is_empty())?;
        let skip = ((seed >> 20) as usize) % shard.len();
        shard.keys().nth(skip).map(Vec::as_slice)
    }

    /// Every key matching the glob `pattern`.
    pub fn keys(&self, pattern: &[u8]) -> Vec<&[u8]> {
        let all = pattern == b"*";
        self.shards
            .iter()
            .flat_map(|shard| shard.keys())
            .filter(|key| all || glob_match(pattern, key))
            .map(Vec::as_slice)
            .collect()
    }

    /// One step of a SCAN from `cursor`: whole shards are visited until `count` keys were seen,
    /// so a key present for the whole scan is returned at least once whatever is added or
    /// removed meanwhile. Empty shards cost a length check, so a small keyspace is one step.
    pub fn scan(&self, cursor: u64, count: usize, pattern: Option<&[u8]>) -> ScanPage {
        let mut keys = Vec::new();
        let mut seen = 0;
        let mut shard = usize::try_from(cursor).unwrap_or(SHARDS);
        while shard < SHARDS && seen < count {
            for key in self.shards.get(shard).keys() {
                seen += 1;
                if pattern.is_none_or(|p| glob_match(p, key)) {
                    keys.push(key.clone());
                }
            }
            shard += 1;
        }
        let cursor = if shard >= SHARDS { 0 } else { shard as u64 };
        ScanPage { cursor, keys }
    }

    fn update(&mut self, key: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> usize {
        let i = self.shard_of(key);
        self.note_copy(i);
        let shard = self.shards.get_mut(i);
        self.dirty += 1;
        let value = match shard.get_mut(key) {
            Some(value) => value,
            None => {
                self.len += 1;
                self.bytes += cost(key, &[]);
                shard.entry(key.to_vec()).or_default()
            }
        };
        let before = value.len();
        change(value);
        self.bytes = self.bytes + value.len() - before;
        value.len()
    }

    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) -> Option<Vec<u8>> {
        let i = self.shard_of(&key);
        self.bytes += cost(&key, &value);
        let key_len = key.len();
        let old = self.shard_mut(i).insert(key, value);
        match &old {
            Some(old) => self.bytes -= key_len + old.len() + ENTRY_OVERHEAD,
            None => self.len += 1,
        }
        old
    }

    /// The shard at `i`, copied first if an image shares it.
    fn shard_mut(&mut self, i: usize) -> &mut Shard {
        self.note_copy(i);
        self.shards.get_mut(i)
    }

    /// Counts the copy writing shard `i` is about to make because an image shares it.
    fn note_copy(&mut self, i: usize) {
        if self.shards.write_copies(i) {
            let per_key = self.bytes.checked_div(self.len).unwrap_or(0);
            self.copied.shards += 1;
            self.copied.bytes += (self.shards.get(i).len() * per_key) as u64;
        }
    }

    fn clear_silently(&mut self) {
        // Shards a snapshot still holds are let go rather than copied; all point to one empty map.
        self.shards = Shards::empty();
        self.len = 0;
        self.bytes = 0;
    }

    fn shard_of(&self, key: &[u8]) -> usize {
        (self.picker.hash_one(key) as usize) & (SHARDS - 1)
    }
}

fn cost(key: &[u8], value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn filled(n: usize) -> Store {
        let mut store = Store::new();
        for i in 0..n {
            store.set(format!("key:{i}").into_bytes(), b"v".to_vec());
        }
        store
    }

    #[test]
    fn set_get_remove_track_len_dirty_and_bytes() {
        let mut store = Store::new();
        assert_eq!(store.set(b"a".to_vec(), b"1".to_vec()), None);
        assert_eq!(
            store.set(b"a".to_vec(), b"22".to_vec()),
            Some(b"1".to_vec())
        );
        assert_eq!(store.get(b"a"), Some(&b"22"[..]));
        assert_eq!(store.get(b"b"), None);
        assert_eq!(store.hits_and_misses(), (1, 1));
        assert_eq!(store.len(), 1);
        assert_eq!(store.used_bytes(), 3 + ENTRY_OVERHEAD);
        assert_eq!(store.remove(b"a"), Some(b"22".to_vec()));
        assert_eq!(store.remove(b"a"), None);
        assert_eq!((store.len(), store.used_bytes(), store.dirty()), (0, 0, 3));
    }

    #[test]
    fn append_and_set_range_edit_in_place() {
        let mut store = Store::new();
        assert_eq!(store.append(b"k", b"Hello"), 5);
        assert_eq!(store.append(b"k", b" World"), 11);
        assert_eq!(store.set_range(b"k", 6, b"Redis"), 11);
        assert_eq!(store.set_range(b"n", 2, b"x"), 3);
        assert_eq!(store.get(b"k"), Some(&b"Hello Redis"[..]));
        assert_eq!(store.get(b"n"), Some(&b"\0\0x"[..]));
        assert_eq!(store.used_bytes(), 1 + 11 + 1 + 3 + 2 * ENTRY_OVERHEAD);
    }

    #[test]
    fn an_image_is_unchanged_by_later_writes() {
        let mut store = filled(100);
        let image = store.image();
        assert_eq!(store.copied(), CopyOnWrite::default());
        store.set(b"key:1".to_vec(), b"changed".to_vec());
        assert_eq!(
            store.copied().shards,
            1,
            "the first write to a shared shard copies it"
        );
        store.set(b"key:1".to_vec(), b"again".to_vec());
        assert_eq!(
            store.copied().shards,
            1,
            "a copied shard is not copied again"
        );
        store.set(b"new".to_vec(), b"x".to_vec());
        store.remove(b"key:2");
        assert_eq!(image.len(), 100);
        let frozen: BTreeSet<_> = image.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(frozen.contains(&(b"key:1".to_vec(), b"v".to_vec())));
        assert!(frozen.contains(&(b"key:2".to_vec(), b"v".to_vec())));
        assert_eq!(frozen.len(), 100);
        store.clear();
        assert_eq!(image.iter().count(), 100);
    }

    #[test]
    fn scan_returns_every_stable_key_despite_churn() {
        let mut store = filled(5000);
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            let page = store.scan(cursor, 10, None);
            seen.extend(page.keys);
            // Churn: remove some keys that are not part of the stable set, add new ones.
            store.set(format!("churn:{round}").into_bytes(), b"x".to_vec());
            store.remove(format!("churn:{}", round / 2).as_bytes());
            round += 1;
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..5000 {
            assert!(
                seen.contains(format!("key:{i}").as_bytes()),
                "key:{i} missed"
            );
        }
    }

    #[test]
    fn scan_filters_and_finishes_small_keyspaces_in_one_step() {
        let store = filled(3);
        let page = store.scan(0, 10, None);
        assert_eq!((page.cursor, page.keys.len()), (0, 3));
        let page = store.scan(0, 1, Some(b"nomatch*"));
        assert!(page.keys.is_empty());
        let mut cursor = 0;
        let mut found = 0;
        loop {
            let page = store.scan(cursor, 1000, Some(b"key:[12]"));
            found += page.keys.len();
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(found, 2);
        assert_eq!(store.scan(u64::MAX, 10, None).cursor, 0);
    }

    #[test]
    fn keys_random_key_and_clear() {
        let mut store = filled(10);
        assert_eq!(store.keys(b"*").len(), 10);
        assert_eq!(store.keys(b"key:1*").len(), 1);
        assert!(store.random_key(12345).is_some());
        assert_eq!(store.clear(), 10);
        assert!(store.is_empty());
        assert_eq!(store.random_key(1), None);
    }
}
