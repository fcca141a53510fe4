//! The shards, held in two levels so that a snapshot's copy is short and a write after it is too.
//!
//! 10,240 shards sit in 160 groups of 64, every group behind an `Arc`. Cloning the whole (what a
//! snapshot's point-in-time image does) clones 160 pointers: one short walk, not 10,240
//! scattered reference counts. A write through a store whose groups an image still holds copies
//! that group's 64 pointers, then the table of the one shard it changes: handles to the records,
//! not the records, so the copy of a 60-key shard is one allocation and a memcpy, and the copy
//! and the image's shard share the record blocks. Empty shards and untouched groups all share one
//! allocation, so an idle server pays a few kilobytes for the lot.
//!
//! The tables an image held are not given back to malloc but kept ([`Spares`]) and copied into
//! by the next snapshot's writes. Freeing ten thousand kilobyte-sized tables at once and then
//! allocating as many again made glibc's malloc sort its bins for up to 15 ms inside a single
//! allocation on the loop; a kept table costs a copy into memory already there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::record::{Record, Slot};
use super::table::{self, Table};

/// Shards per group.
pub(super) const GROUP: usize = 64;

/// Number of groups. At a million keys, 10,240 shards hold about 98 keys each, which fill
/// 18-bucket tables (126 places) to about 0.78 (docs/performance.md, "Memory").
const GROUPS: usize = 160;

/// Number of shards.
pub const SHARDS: usize = GROUP * GROUPS;

/// One shard of the keyspace: a set of records found by key.
#[derive(Debug)]
pub struct Shard {
    table: Table,
    /// Whether dropping this shard frees its records. A copy takes the records over from the
    /// shard it was made from, which an image still holds and drops later, on its own thread.
    owns: AtomicBool,
    /// The lending period (see `Store`) in which this shard was copied from one an image held:
    /// while that period lasts, an image may still read the records it had then.
    lent_in: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            table: Table::default(),
            owns: AtomicBool::new(true),
            lent_in: 0,
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        // Acquire pairs with the Release in `Shards::get_mut`: a copy made on the loop thread is
        // seen here even when an image drops this shard on another thread.
        if self.owns.load(Ordering::Acquire) {
            for slot in self.table.drain() {
                // SAFETY: an owning shard's handles are the only live ones to their blocks.
                drop(unsafe { slot.into_record() });
            }
        }
    }
}

impl Shard {
    /// The record of `key`, whose hash is `hash`.
    pub fn get(&self, hash: u64, key: &[u8]) -> Option<&Record> {
        self.table.get(hash, key).map(Slot::record)
    }

    /// Every record, in no order.
    pub fn iter(&self) -> table::Iter<'_> {
        self.table.iter()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Where the bucket `hash` starts from is, for a prefetch.
    pub(super) fn home_of(&self, hash: u64) -> Option<*const u8> {
        self.table.home_of(hash)
    }

    /// Where the record `hash` most likely belongs to is, for a prefetch.
    pub(super) fn candidate_of(&self, hash: u64) -> Option<*const u8> {
        self.table.candidate_of(hash)
    }

    /// The lending period this shard was copied in.
    pub(super) fn lent_in(&self) -> u64 {
        self.lent_in
    }

    /// Stores `record`, whose key hashes to `hash`, returning the handle it replaced; `rehash`
    /// hashes stored keys when the table grows.
    pub(super) fn replace(
        &mut self,
        hash: u64,
        record: Record,
        rehash: &impl Fn(&[u8]) -> u64,
    ) -> Option<Slot> {
        self.table.replace(hash, Slot::new(record), rehash)
    }

    /// Removes the record of `key`, whose hash is `hash`, returning its handle.
    pub(super) fn reserve(&mut self, n: usize) {
        self.table.reserve(n);
    }

    pub(super) fn take(&mut self, hash: u64, key: &[u8]) -> Option<Slot> {
        self.table.take(hash, key)
    }

    /// Bytes a copy of the table takes.
    fn table_bytes(&self) -> usize {
        self.table.bytes()
    }
}

/// Tables of shards that images held, kept for later copies, sorted by size: a table is only
/// reused for a shard of the same size, where a copy into it allocates nothing. At most one per
/// shard, so they never take more than the live tables do.
#[derive(Debug, Default)]
pub struct Spares {
    /// Indexed by the size class of the table (see [`size_class`]).
    by_size: Vec<Vec<Table>>,
    count: usize,
    bytes: usize,
}

impl Spares {
    /// Bytes the kept tables take.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps the tables of a group of shards an image held, where no one else holds them;
    /// shards still shared are let go, and one that owns its records frees them.
    pub fn harvest(&mut self, group: Arc<Vec<Arc<Shard>>>) {
        let Ok(group) = Arc::try_unwrap(group) else {
            return;
        };
        for shard in group {
            let Ok(mut shard) = Arc::try_unwrap(shard) else {
                continue;
            };
            // A table whose records another shard owns is only stale handles: its memory is
            // all that is worth keeping.
            if !*shard.owns.get_mut() && shard.table.buckets() > 0 && self.count < SHARDS {
                let table = std::mem::take(&mut shard.table);
                self.bytes += table.bytes();
                self.count += 1;
                let size = size_class(&table);
                if self.by_size.len() <= size {
                    self.by_size.resize_with(size + 1, Vec::new);
                }
                self.by_size[size].push(table);
            }
        }
    }

    /// A copy of `table`, into a kept table of the same size when there is one.
    fn copy(&mut self, table: &Table) -> Table {
        let kept = self.by_size.get_mut(size_class(table)).and_then(Vec::pop);
        let Some(mut copy) = kept else {
            return table.clone();
        };
        self.bytes -= copy.bytes();
        self.count -= 1;
        copy.copy_from(table);
        copy
    }
}

/// How many times a table grew to reach its size: tables only ever take the sizes growth gives
/// them, so this tells apart every size a table can have.
fn size_class(table: &Table) -> usize {
    let mut buckets = 0;
    let mut class = 0;
    while buckets < table.buckets() {
        buckets = table::larger(buckets);
        class += 1;
    }
    class
}

impl<'a> IntoIterator for &'a Shard {
    type Item = &'a Record;
    type IntoIter = table::Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.table.iter()
    }
}

/// Every shard, copy-on-write at two levels.
#[derive(Debug, Clone)]
pub struct Shards {
    groups: Vec<Arc<Vec<Arc<Shard>>>>,
}

impl Shards {
    /// All shards empty, sharing one empty map and one group.
    pub fn empty() -> Self {
        let shard = Arc::new(Shard::default());
        let group = Arc::new((0..GROUP).map(|_| Arc::clone(&shard)).collect());
        Shards {
            groups: (0..GROUPS).map(|_| Arc::clone(&group)).collect(),
        }
    }

    /// Shard `i` (below `SHARDS`).
    pub fn get(&self, i: usize) -> &Shard {
        &self.groups[i / GROUP][i % GROUP]
    }

    /// The bytes writing shard `i` will copy because an image still holds it, if it will.
    pub fn write_copies(&self, i: usize) -> Option<usize> {
        let shard = self.get(i);
        (!shard.is_empty() && self.is_shared(i)).then(|| shard.table_bytes())
    }

    /// True when an image (or the shared empty map) holds shard `i` too.
    pub fn is_shared(&self, i: usize) -> bool {
        let group = &self.groups[i / GROUP];
        Arc::strong_count(group) > 1 || Arc::strong_count(&group[i % GROUP]) > 1
    }

    /// Shard `i` for writing. Where an image shares them, the group is copied first, then the
    /// shard's table (into a spare one when there is one), marked as copied in lending period
    /// `period`; the records stay where they are, now freed by the copy.
    pub(super) fn get_mut(&mut self, i: usize, period: u64, spares: &mut Spares) -> &mut Shard {
        let group = Arc::make_mut(&mut self.groups[i / GROUP]);
        let shard = &mut group[i % GROUP];
        if Arc::get_mut(shard).is_none() {
            let copy = Shard {
                table: spares.copy(&shard.table),
                owns: AtomicBool::new(true),
                lent_in: period,
            };
            // Release before this thread lets go of the original (below): whoever drops it last
            // then sees that its records belong to the copy. The shared empty shard hands over
            // nothing, and must still free what it may hold once it is some slot's own.
            if !shard.is_empty() {
                shard.owns.store(false, Ordering::Release);
            }
            *shard = Arc::new(copy);
        }
        match Arc::get_mut(shard) {
            Some(shard) => shard,
            // Unreachable: the Arc was either unique or just replaced by a fresh one.
            None => unreachable!("a fresh shard is not shared"),
        }
    }

    /// The groups, for [`Spares::harvest`] to take apart.
    pub fn into_groups(self) -> Vec<Arc<Vec<Arc<Shard>>>> {
        self.groups
    }

    /// Every shard, in index order.
    pub fn iter(&self) -> impl Iterator<Item = &Shard> {
        self.groups
            .iter()
            .flat_map(|group| group.iter().map(|shard| &**shard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Record;

    fn record(key: &[u8], value: &[u8]) -> Record {
        Record::new(key, value, None, 0)
    }

    /// Any hash will do for a test: the shard is chosen by hand.
    fn hash(key: &[u8]) -> u64 {
        key.iter()
            .map(|&b| u64::from(b))
            .sum::<u64>()
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    #[test]
    fn a_clone_is_a_frozen_copy_and_writes_copy_only_the_table_they_touch() {
        let mut live = Shards::empty();
        let mut spares = Spares::default();
        live.get_mut(5, 0, &mut spares)
            .replace(hash(b"a"), record(b"a", b"1"), &hash);
        live.get_mut(700, 0, &mut spares)
            .replace(hash(b"b"), record(b"b", b"2"), &hash);
        let image = live.clone();
        assert!(live.write_copies(5).is_some());
        assert_eq!(
            live.write_copies(6),
            None,
            "an empty shard costs nothing to copy"
        );
        let copy = live.get_mut(5, 1, &mut spares);
        assert_eq!(copy.lent_in(), 1);
        let shared = copy.get(hash(b"a"), b"a").map(|r| r.value().as_ptr());
        assert_eq!(
            shared,
            image
                .get(5)
                .get(hash(b"a"), b"a")
                .map(|r| r.value().as_ptr()),
            "the copy shares the record's block"
        );
        // The store keeps a replaced block an image may read; here the test does.
        let kept = copy.replace(hash(b"a"), record(b"a", b"changed"), &hash);
        assert!(live.write_copies(5).is_none(), "copied once, then owned");
        assert!(
            live.write_copies(700).is_some(),
            "other groups are still shared"
        );
        assert_eq!(
            image.get(5).get(hash(b"a"), b"a").map(Record::value),
            Some(&b"1"[..])
        );
        assert_eq!(
            live.get(5).get(hash(b"a"), b"a").map(Record::value),
            Some(&b"changed"[..])
        );
        assert_eq!(image.iter().map(Shard::len).sum::<usize>(), 2);
        assert_eq!(live.iter().count(), SHARDS);
        // The image's shard 5 no longer owns its block: dropping the image leaves it alone.
        drop(image);
        // SAFETY: the image is gone and the live shard no longer holds this handle.
        let kept = kept.map(|slot| unsafe { slot.into_record() });
        assert_eq!(kept.as_ref().map(Record::value), Some(&b"1"[..]));
    }
}
