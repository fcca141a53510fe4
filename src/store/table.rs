//! A shard's table: handles to records, found by key in cache-line buckets whose address a
//! lookup can compute, and so prefetch, long before it reads them.
//!
//! std's `HashSet` (hashbrown) keeps its control bytes and its slots in two places and does not
//! say where either is, so a lookup waits for the control bytes, then the slot, then the record,
//! one miss after the other. Here a bucket is one 64-byte line: seven one-byte tags, an overflow
//! count and seven handles. The home bucket of a key is a function of its hash alone, so the loop
//! can fetch it for the requests a read brought in while it runs the ones before, then fetch the
//! records their tags point at (see `Store::prefetch`).
//!
//! Open addressing with linear probing over buckets, as in folly's F14: a bucket counts the
//! entries that passed it full on their way to a later one, so a lookup stops at the first
//! bucket nothing overflowed from and a removal leaves no tombstone. The caller supplies every
//! hash (one keyed SipHash per request, shared with the choice of shard); the table only needs
//! the hasher again when it grows. Bucket counts grow by a quarter, not double: a shard holds
//! about a hundred keys at a million, and finer steps keep the tables about as full as
//! hashbrown's 128 slots were (docs/performance.md, "Memory").

use super::record::{Record, Slot};

/// Entries per bucket: seven 8-byte handles and their tags fill 64 bytes.
const WIDTH: usize = 7;

/// One cache line of the table.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    /// A byte of each entry's hash, never 0; 0 marks an empty place.
    tags: [u8; WIDTH],
    /// How many entries passed this bucket full on their way to a later one. Stuck at
    /// `u8::MAX` once it gets there (lookups then always go on), until the table is rebuilt.
    overflow: u8,
    slots: [Option<Slot>; WIDTH],
}

const EMPTY: Bucket = Bucket {
    tags: [0; WIDTH],
    overflow: 0,
    slots: [None; WIDTH],
};

/// Handles to records, found by key given the key's hash.
#[derive(Clone, Default)]
pub(super) struct Table {
    buckets: Box<[Bucket]>,
    len: usize,
}

/// Where an entry is: bucket and place in it.
#[derive(Clone, Copy)]
struct Found {
    bucket: usize,
    place: usize,
}

impl Table {
    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the buckets take.
    pub(super) fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// Number of buckets, the table's size class.
    pub(super) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The handle of `key`, whose hash is `hash`.
    pub(super) fn get(&self, hash: u64, key: &[u8]) -> Option<&Slot> {
        let found = self.find(hash, key)?;
        self.buckets.get(found.bucket)?.slots[found.place].as_ref()
    }

    /// Stores `slot`, whose record's key hashes to `hash`, in place of the handle of the same key,
    /// which it returns. `rehash` gives the hash of a stored key when the table grows.
    pub(super) fn replace(
        &mut self,
        hash: u64,
        slot: Slot,
        rehash: &impl Fn(&[u8]) -> u64,
    ) -> Option<Slot> {
        if let Some(found) = self.find(hash, slot.record().key()) {
            return self.buckets[found.bucket].slots[found.place].replace(slot);
        }
        if self.len >= capacity(self.buckets.len()) {
            self.grow(rehash);
        }
        self.put(hash, slot);
        self.len += 1;
        None
    }

    /// Sizes an empty table for `n` entries, at a size growth would give it (see `larger`), so
    /// filling it rehashes nothing. A table holding entries is left as it is.
    pub(super) fn reserve(&mut self, n: usize) {
        if self.len > 0 {
            return;
        }
        let mut buckets = self.buckets.len();
        while capacity(buckets) < n {
            buckets = larger(buckets);
        }
        if buckets > self.buckets.len() {
            self.buckets = vec![EMPTY; buckets].into_boxed_slice();
        }
    }

    /// Removes the handle of `key`, whose hash is `hash`, and returns it.
    pub(super) fn take(&mut self, hash: u64, key: &[u8]) -> Option<Slot> {
        let found = self.find(hash, key)?;
        let n = self.buckets.len();
        let bucket = &mut self.buckets[found.bucket];
        bucket.tags[found.place] = 0;
        let slot = bucket.slots[found.place].take();
        // The buckets this entry passed on its way no longer have it beyond them.
        let mut i = home(hash, n);
        while i != found.bucket {
            let passed = &mut self.buckets[i];
            if passed.overflow != u8::MAX {
                passed.overflow -= 1;
            }
            i = next(i, n);
        }
        self.len -= 1;
        slot
    }

    /// Every handle, in no order.
    pub(super) fn iter(&self) -> Iter<'_> {
        Iter {
            buckets: self.buckets.iter(),
            slots: [].iter(),
        }
    }

    /// Takes every handle out, leaving the table empty.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Slot> {
        self.len = 0;
        std::mem::take(&mut self.buckets)
            .into_vec()
            .into_iter()
            .flat_map(|bucket| bucket.slots.into_iter().flatten())
    }

    /// Makes this table a copy of `other`, in place when both have as many buckets.
    pub(super) fn copy_from(&mut self, other: &Table) {
        if self.buckets.len() == other.buckets.len() {
            self.buckets.copy_from_slice(&other.buckets);
            self.len = other.len;
        } else {
            *self = other.clone();
        }
    }

    /// The address of the home bucket of `hash`, for a prefetch; `None` when there are no buckets.
    pub(super) fn home_of(&self, hash: u64) -> Option<*const u8> {
        let n = self.buckets.len();
        let bucket: *const Bucket = self.buckets.get(home(hash, n))?;
        Some(bucket.cast())
    }

    /// The address of the first record in the home bucket of `hash` whose tag matches, for a
    /// prefetch: usually the key's own, when it is there.
    pub(super) fn candidate_of(&self, hash: u64) -> Option<*const u8> {
        let bucket = self.buckets.get(home(hash, self.buckets.len()))?;
        let wanted = tag(hash);
        let place = bucket.tags.iter().position(|&t| t == wanted)?;
        bucket.slots[place].as_ref().map(Slot::address)
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<Found> {
        let n = self.buckets.len();
        let wanted = tag(hash);
        let mut i = home(hash, n);
        for _ in 0..n {
            let bucket = &self.buckets[i];
            for (place, &t) in bucket.tags.iter().enumerate() {
                if t == wanted {
                    if let Some(slot) = &bucket.slots[place] {
                        if slot.record().key() == key {
                            return Some(Found { bucket: i, place });
                        }
                    }
                }
            }
            if bucket.overflow == 0 {
                return None;
            }
            i = next(i, n);
        }
        None
    }

    /// Puts `slot` in the first free place from its home bucket on. There is one: the table is
    /// kept below its capacity.
    fn put(&mut self, hash: u64, slot: Slot) {
        let n = self.buckets.len();
        let mut i = home(hash, n);
        for _ in 0..n {
            let bucket = &mut self.buckets[i];
            if let Some(place) = bucket.tags.iter().position(|&t| t == 0) {
                bucket.tags[place] = tag(hash);
                bucket.slots[place] = Some(slot);
                return;
            }
            bucket.overflow = bucket.overflow.saturating_add(1);
            i = next(i, n);
        }
        unreachable!("a table below its capacity has a free place");
    }

    /// Moves every entry into a table a size larger.
    fn grow(&mut self, rehash: &impl Fn(&[u8]) -> u64) {
        let buckets = vec![EMPTY; larger(self.buckets.len())].into_boxed_slice();
        let old = std::mem::replace(&mut self.buckets, buckets);
        for bucket in old.iter() {
            for slot in bucket.slots.iter().flatten() {
                self.put(rehash(slot.record().key()), *slot);
            }
        }
    }
}

/// Entries a table of `buckets` holds before it grows: seven eighths of its places, so probes
/// stay short, or all seven of a single bucket.
fn capacity(buckets: usize) -> usize {
    let places = buckets * WIDTH;
    places - places / 8
}

/// The bucket count after `buckets`: a quarter more, at least one more.
pub(super) fn larger(buckets: usize) -> usize {
    buckets + buckets / 4 + 1
}

/// The home bucket of `hash` among `n`: multiply-shift of the hash's low half (the shard is
/// chosen by the high half), which needs no power-of-two count and no division.
fn home(hash: u64, n: usize) -> usize {
    ((u64::from(hash as u32) * n as u64) >> 32) as usize
}

/// The tag of `hash`: a byte the home bucket's choice barely depends on, never 0.
fn tag(hash: u64) -> u8 {
    (hash as u8).max(1)
}

fn next(i: usize, n: usize) -> usize {
    if i + 1 == n {
        0
    } else {
        i + 1
    }
}

/// The records of a table.
#[derive(Debug)]
pub struct Iter<'a> {
    buckets: std::slice::Iter<'a, Bucket>,
    slots: std::slice::Iter<'a, Option<Slot>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Record;

    fn next(&mut self) -> Option<&'a Record> {
        loop {
            if let Some(slot) = self.slots.by_ref().flatten().next() {
                return Some(slot.record());
            }
            self.slots = self.buckets.next()?.slots.iter();
        }
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.len)
            .field("buckets", &self.buckets.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn slot(key: &[u8], value: &[u8]) -> Slot {
        Slot::new(Record::new(key, value, None, 0))
    }

    fn free(table: &mut Table) {
        for slot in table.drain() {
            // SAFETY: the test's tables are the only holders of their handles.
            drop(unsafe { slot.into_record() });
        }
    }

    #[test]
    fn a_reserved_table_takes_its_entries_without_growing_at_the_size_growth_gives() {
        let hash = |key: &[u8]| {
            key.iter()
                .fold(7u64, |h, &b| h.wrapping_mul(131) ^ u64::from(b))
        };
        let mut grown = Table::default();
        let mut reserved = Table::default();
        reserved.reserve(100);
        let buckets = reserved.buckets();
        assert!(capacity(buckets) >= 100);
        for i in 0..100 {
            let key = format!("key{i}").into_bytes();
            grown.replace(hash(&key), slot(&key, b"v"), &hash);
            reserved.replace(hash(&key), slot(&key, b"v"), &hash);
        }
        assert_eq!(reserved.buckets(), buckets, "no growth");
        assert_eq!(
            reserved.buckets(),
            grown.buckets(),
            "the size growth reaches"
        );
        reserved.reserve(1000);
        assert_eq!(
            reserved.buckets(),
            buckets,
            "a table with entries is left alone"
        );
        free(&mut grown);
        free(&mut reserved);
    }

    /// Random inserts, replacements and removals against a `HashMap`, under a hash that puts
    /// keys in only `spread` different places, so probes run long and overflow counts saturate.
    fn against_a_model(spread: u64, steps: usize) {
        let hash = |key: &[u8]| {
            let n = key
                .iter()
                .fold(0u64, |h, &b| h.wrapping_mul(31) ^ u64::from(b));
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15) % spread
        };
        let mut table = Table::default();
        let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        // Fewer under Miri, which runs this a thousand times slower.
        let steps = if cfg!(miri) { steps / 20 } else { steps };
        for step in 0..steps {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = format!("k{}", rng % 700).into_bytes();
            let h = hash(&key);
            if rng >> 60 < 11 {
                let value = step.to_string();
                let old = table.replace(h, slot(&key, value.as_bytes()), &hash);
                let expected = model.insert(key.clone(), step as u64);
                assert_eq!(old.is_some(), expected.is_some(), "step {step}");
                if let Some(old) = old {
                    // SAFETY: taken out of the table, which held the only handle.
                    let old = unsafe { old.into_record() };
                    assert_eq!(
                        old.value(),
                        expected.map(|v| v.to_string()).unwrap().as_bytes()
                    );
                }
            } else {
                let taken = table.take(h, &key);
                assert_eq!(taken.is_some(), model.remove(&key).is_some(), "step {step}");
                // SAFETY: as above.
                drop(taken.map(|slot| unsafe { slot.into_record() }));
            }
            assert_eq!(table.len(), model.len());
            if step % 97 == 0 {
                for (key, value) in &model {
                    let found = table.get(hash(key), key).map(|s| s.record().value());
                    assert_eq!(found, Some(value.to_string().as_bytes()), "step {step}");
                }
                assert_eq!(table.iter().count(), model.len());
                assert!(table.get(hash(b"absent"), b"absent").is_none());
            }
        }
        free(&mut table);
    }

    #[test]
    fn a_table_agrees_with_a_hash_map_under_a_good_hash() {
        against_a_model(u64::MAX, 20_000);
    }

    #[test]
    fn a_table_agrees_with_a_hash_map_when_every_key_collides() {
        // Two places for up to 700 keys: chains hundreds of buckets long, counts stuck at 255.
        against_a_model(2, 6_000);
    }

    #[test]
    fn a_table_grows_by_a_quarter_and_stays_seven_eighths_full_at_most() {
        let hash = |key: &[u8]| u64::from(key[0]) << 40 | u64::from(key[1]) << 8 | 0x1234_5678;
        let mut table = Table::default();
        assert_eq!(table.buckets(), 0);
        for i in 0..98u32 {
            let key = [(i * 37 % 256) as u8, i as u8];
            assert!(table.replace(hash(&key), slot(&key, b"v"), &hash).is_none());
            assert!(table.len() <= capacity(table.buckets()));
        }
        assert_eq!(table.buckets(), 18, "1, 2, 3, 4, 6, 8, 11, 14, 18");
        assert_eq!(table.bytes(), 18 * 64);
        let mut copy = Table::default();
        copy.copy_from(&table);
        assert_eq!(copy.iter().count(), 98);
        assert_eq!(
            copy.get(hash(&[0, 0]), &[0, 0]).map(Slot::address),
            table.get(hash(&[0, 0]), &[0, 0]).map(Slot::address),
            "a copy holds the same handles"
        );
        assert_eq!(
            table.candidate_of(hash(&[0, 0])),
            table.get(hash(&[0, 0]), &[0, 0]).map(Slot::address)
        );
        free(&mut table);
    }

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }
}
