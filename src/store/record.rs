//! One stored key: key, value, expiry time and access clock in a single heap block behind a thin
//! pointer.
//!
//! The map slot is 8 bytes and each key costs one allocation: a 16-byte key with a 16-byte value
//! fits a 48-byte malloc chunk, where a `Vec` key plus a `Vec` value plus their fields took a
//! 64-byte slot and two 32-byte chunks. Layout, all integers little-endian and unaligned:
//!
//! ```text
//! [flags: u8][touched: u32][key_len: varint][value_len: varint][expires_at: u64, if flagged][key][value]
//! ```
//!
//! Lengths are LEB128 varints (one byte below 128), so small keys pay 7 bytes of header and a
//! value may be as long as the protocol allows.

use std::alloc::{self, Layout};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;

/// `flags` bit: an expiry time follows the lengths.
const HAS_EXPIRY: u8 = 1;

/// Bytes before the first length: flags and the access clock.
const FIXED: usize = 5;

/// A key with its value, expiry time and last access, owning one heap block.
#[repr(transparent)]
pub struct Record {
    ptr: NonNull<u8>,
}

// SAFETY: a Record owns its block like a Box<[u8]>. The only write through a shared reference is
// `touch`, made by the loop thread to the clock bytes (1..5). Another thread may be reading the
// same block through an image at that moment, but only its other bytes (flags, lengths, expiry
// time, key, value: `parts`), so no byte is ever written by one thread while another reads it.
unsafe impl Send for Record {}
// SAFETY: as above.
unsafe impl Sync for Record {}

/// A handle to a record's block that does not own it: what the shard tables hold. Copying a
/// shard for copy-on-write then copies its table of handles, not its keys, and the copy shares
/// the blocks with the shard an image holds. Which of the two frees them is decided by the shard
/// (`Shard::owns`) and the store (blocks removed while an image may read them wait until it is
/// gone).
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct Slot {
    ptr: NonNull<u8>,
}

// SAFETY: as for Record: a handle only reads the block, except `touch` (see above).
unsafe impl Send for Slot {}
// SAFETY: as above.
unsafe impl Sync for Slot {}

impl Slot {
    /// The handle of `record`, whose block is now freed only through `into_record`.
    pub(super) fn new(record: Record) -> Slot {
        let slot = Slot { ptr: record.ptr };
        std::mem::forget(record);
        slot
    }

    /// Ownership of the block again, to free it or hand it out.
    ///
    /// # Safety
    /// No other handle to the block may be used afterwards.
    pub(super) unsafe fn into_record(self) -> Record {
        Record { ptr: self.ptr }
    }

    /// Where the block starts, for a prefetch.
    pub(super) fn address(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The record, for reading; valid while the block is.
    pub(super) fn record(&self) -> &Record {
        // SAFETY: Slot and Record are both a transparent NonNull<u8> to the same kind of block.
        unsafe { &*(self as *const Slot).cast::<Record>() }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.record().fmt(f)
    }
}

/// Where the parts of a block are.
#[derive(Clone, Copy)]
struct Parts {
    flags: u8,
    key: usize,
    key_len: usize,
    value_len: usize,
    expires_at: usize,
}

impl Parts {
    fn size(self) -> usize {
        self.key + self.key_len + self.value_len
    }
}

impl Record {
    /// A record of `key` and `value`, expiring at `expires_at` (Unix ms) if given, last touched
    /// at `touched`.
    pub fn new(key: &[u8], value: &[u8], expires_at: Option<u64>, touched: u32) -> Record {
        let mut head = [0u8; FIXED + 2 * 10 + 8];
        head[0] = if expires_at.is_some() { HAS_EXPIRY } else { 0 };
        head[1..FIXED].copy_from_slice(&touched.to_le_bytes());
        let mut at = FIXED;
        at += put_varint(&mut head[at..], key.len() as u64);
        at += put_varint(&mut head[at..], value.len() as u64);
        if let Some(time) = expires_at {
            head[at..at + 8].copy_from_slice(&time.to_le_bytes());
            at += 8;
        }
        let size = at + key.len() + value.len();
        let layout = layout(size);
        // SAFETY: the layout has a non-zero size (the header alone is at least 7 bytes).
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout);
        };
        // SAFETY: the block is `size` bytes long and the three copies fill it exactly, in order.
        unsafe {
            std::ptr::copy_nonoverlapping(head.as_ptr(), raw, at);
            std::ptr::copy_nonoverlapping(key.as_ptr(), raw.add(at), key.len());
            std::ptr::copy_nonoverlapping(value.as_ptr(), raw.add(at + key.len()), value.len());
        }
        Record { ptr }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        let parts = self.parts();
        // SAFETY: `parts` describes this block, written by `new`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(parts.key), parts.key_len) }
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        let parts = self.parts();
        let start = parts.key + parts.key_len;
        // SAFETY: as in `key`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), parts.value_len) }
    }

    /// When the key expires, in Unix milliseconds; `None` for never.
    pub fn expires_at(&self) -> Option<u64> {
        let parts = self.parts();
        (parts.flags & HAS_EXPIRY != 0).then(|| {
            let mut bytes = [0u8; 8];
            // SAFETY: a flagged block holds 8 bytes of expiry time at `parts.expires_at`.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.ptr.as_ptr().add(parts.expires_at),
                    bytes.as_mut_ptr(),
                    8,
                );
            }
            u64::from_le_bytes(bytes)
        })
    }

    /// True when the key is gone at `now` (Unix ms). As in Redis, a key is still there at its
    /// expiry millisecond and gone after it.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at().is_some_and(|at| now > at)
    }

    /// Milliseconds since the last access, by the wrapping clock `clock`.
    pub fn idle(&self, clock: u32) -> u32 {
        clock.wrapping_sub(self.touched())
    }

    /// Notes an access at `clock`. Only ever called from the loop thread (see the `Sync` note
    /// above).
    pub fn touch(&self, clock: u32) {
        // SAFETY: bytes 1..5 are the clock; no reference to them is ever handed out, and only
        // the loop thread reads or writes them.
        unsafe {
            std::ptr::copy_nonoverlapping(
                clock.to_le_bytes().as_ptr(),
                self.ptr.as_ptr().add(1),
                4,
            );
        }
    }

    /// Writes `value` over the value, which is as long.
    ///
    /// # Safety
    /// `value.len()` must be the value's length, and no other thread may read the block, nor
    /// this one hold a reference into its value.
    pub(super) unsafe fn rewrite_value(&self, value: &[u8]) {
        let parts = self.parts();
        debug_assert_eq!(parts.value_len, value.len());
        let len = parts.value_len.min(value.len());
        // SAFETY: the value's bytes are inside the block; the caller rules out readers.
        unsafe {
            std::ptr::copy_nonoverlapping(
                value.as_ptr(),
                self.ptr.as_ptr().add(parts.key + parts.key_len),
                len,
            );
        }
    }

    /// Bytes of the block, for the memory estimate.
    pub fn size(&self) -> usize {
        self.parts().size()
    }

    /// The access clock, as stored.
    fn touched(&self) -> u32 {
        let mut bytes = [0u8; 4];
        // SAFETY: bytes 1..5 of every block are the access clock.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(1), bytes.as_mut_ptr(), 4) };
        u32::from_le_bytes(bytes)
    }

    fn parts(&self) -> Parts {
        let base = self.ptr.as_ptr();
        // SAFETY: every block starts with the fixed bytes and two well-formed varints, written
        // by `new`; reading stops at the end of each varint.
        unsafe {
            let flags = *base;
            let (key_len, a) = get_varint(base.add(FIXED));
            let (value_len, b) = get_varint(base.add(FIXED + a));
            let expires_at = FIXED + a + b;
            let key = expires_at + if flags & HAS_EXPIRY != 0 { 8 } else { 0 };
            Parts {
                flags,
                key,
                key_len: key_len as usize,
                value_len: value_len as usize,
                expires_at,
            }
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let size = self.size();
        // SAFETY: the block was allocated by `new` with this same layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout(size)) }
    }
}

impl Clone for Record {
    fn clone(&self) -> Record {
        Record::new(self.key(), self.value(), self.expires_at(), self.touched())
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value_len", &self.value().len())
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

// A record is found in its shard by its key alone: it hashes and compares as its key bytes.
impl Borrow<[u8]> for Record {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl Hash for Record {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Record {}

fn layout(size: usize) -> Layout {
    match Layout::from_size_align(size, 1) {
        Ok(layout) => layout,
        // Only a size beyond isize::MAX fails, which no request can reach.
        Err(_) => alloc::handle_alloc_error(Layout::new::<u8>()),
    }
}

/// Writes `n` as LEB128 into `out`; returns the bytes used (at most 10).
fn put_varint(out: &mut [u8], mut n: u64) -> usize {
    let mut i = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out[i] = byte;
            return i + 1;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
}

/// Reads a LEB128 number written by `put_varint`; returns it and its length.
///
/// # Safety
/// `at` must point at a varint written by `put_varint` inside one block.
unsafe fn get_varint(at: *const u8) -> (u64, usize) {
    let mut n = 0u64;
    let mut i = 0;
    loop {
        // SAFETY: the caller guarantees a complete varint at `at`.
        let byte = unsafe { *at.add(i) };
        n |= u64::from(byte & 0x7f) << (7 * i);
        i += 1;
        if byte & 0x80 == 0 {
            return (n, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn parts_round_trip_at_every_length_boundary() {
        for key_len in [0, 1, 127, 128, 16_383, 16_384, 70_000] {
            for value_len in [0, 16, 127, 128, 300_000] {
                for expires_at in [None, Some(1), Some(u64::MAX)] {
                    let key = vec![b'k'; key_len];
                    let value = vec![b'v'; value_len];
                    let record = Record::new(&key, &value, expires_at, 7);
                    assert_eq!(record.key(), &key[..]);
                    assert_eq!(record.value(), &value[..]);
                    assert_eq!(record.expires_at(), expires_at);
                    assert_eq!(record.idle(10), 3);
                    let copy = record.clone();
                    assert_eq!((copy.key(), copy.value()), (&key[..], &value[..]));
                    assert_eq!(copy.expires_at(), expires_at);
                    assert_eq!(copy.idle(10), 3);
                }
            }
        }
    }

    #[test]
    fn small_records_fit_a_48_byte_malloc_chunk() {
        let record = Record::new(&[b'k'; 16], &[b'v'; 16], None, 0);
        assert_eq!(record.size(), 39, "7 bytes of header");
        let with_expiry = Record::new(&[b'k'; 16], &[b'v'; 16], Some(1), 0);
        assert_eq!(with_expiry.size(), 47);
    }

    #[test]
    fn a_set_finds_records_by_key_bytes_and_touch_changes_only_the_clock() {
        let mut set = HashSet::new();
        set.insert(Record::new(b"a", b"1", None, 0));
        set.insert(Record::new(b"b", b"2", Some(5), 0));
        assert!(
            !set.insert(Record::new(b"a", b"other", None, 0)),
            "same key"
        );
        let found = set.get(&b"b"[..]).unwrap();
        found.touch(99);
        assert_eq!((found.value(), found.expires_at()), (&b"2"[..], Some(5)));
        assert_eq!(found.idle(100), 1);
        assert!(found.is_expired(6) && !found.is_expired(5));
        assert_eq!(set.take(&b"a"[..]).unwrap().value(), b"1");
    }
}
