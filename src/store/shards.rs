//! The shards, held in two levels so that a snapshot's copy is short and a write after it is too.
//!
//! 16,384 shards sit in 256 groups of 64, every group behind an `Arc`. Cloning the whole (what a
//! snapshot's point-in-time image does) clones 256 pointers: one cache line walk, not 16,384
//! scattered reference counts. A write through a store whose groups an image still holds copies
//! that group's 64 pointers, then the one shard it changes. Empty shards and untouched groups all
//! share one allocation, so an idle server pays a few kilobytes for the lot.

use std::collections::HashSet;
use std::sync::Arc;

/// One shard of the keyspace.
pub type Shard = HashSet<super::Record>;

/// Shards per group.
const GROUP: usize = 64;

/// Number of groups.
const GROUPS: usize = 256;

/// Number of shards; a power of two so a hash picks one with a mask.
pub const SHARDS: usize = GROUP * GROUPS;

/// Every shard, copy-on-write at two levels.
#[derive(Debug, Clone)]
pub struct Shards {
    groups: Vec<Arc<Vec<Arc<Shard>>>>,
}

impl Shards {
    /// All shards empty, sharing one empty map and one group.
    pub fn empty() -> Self {
        let shard = Arc::new(Shard::new());
        let group = Arc::new((0..GROUP).map(|_| Arc::clone(&shard)).collect());
        Shards {
            groups: (0..GROUPS).map(|_| Arc::clone(&group)).collect(),
        }
    }

    /// Shard `i` (below `SHARDS`).
    pub fn get(&self, i: usize) -> &Shard {
        &self.groups[i / GROUP][i % GROUP]
    }

    /// True when writing shard `i` will copy its contents because an image still holds them.
    pub fn write_copies(&self, i: usize) -> bool {
        !self.get(i).is_empty() && self.is_shared(i)
    }

    /// True when an image (or the shared empty map) holds shard `i` too.
    pub fn is_shared(&self, i: usize) -> bool {
        let group = &self.groups[i / GROUP];
        Arc::strong_count(group) > 1 || Arc::strong_count(&group[i % GROUP]) > 1
    }

    /// Shard `i` for writing, copied first (group, then shard) where an image shares them.
    pub fn get_mut(&mut self, i: usize) -> &mut Shard {
        let group = Arc::make_mut(&mut self.groups[i / GROUP]);
        Arc::make_mut(&mut group[i % GROUP])
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

    #[test]
    fn a_clone_is_a_frozen_copy_and_writes_copy_only_what_they_touch() {
        let mut live = Shards::empty();
        live.get_mut(5).replace(record(b"a", b"1"));
        live.get_mut(700).replace(record(b"b", b"2"));
        let image = live.clone();
        assert!(live.write_copies(5));
        assert!(
            !live.write_copies(6),
            "an empty shard costs nothing to copy"
        );
        live.get_mut(5).replace(record(b"a", b"changed"));
        assert!(!live.write_copies(5), "copied once, then owned");
        assert!(live.write_copies(700), "other groups are still shared");
        assert_eq!(
            image.get(5).get(&b"a"[..]).map(Record::value),
            Some(&b"1"[..])
        );
        assert_eq!(
            live.get(5).get(&b"a"[..]).map(Record::value),
            Some(&b"changed"[..])
        );
        assert_eq!(image.iter().map(Shard::len).sum::<usize>(), 2);
        assert_eq!(live.iter().count(), SHARDS);
    }
}
