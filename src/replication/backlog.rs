//! The backlog: a ring of the newest `repl-backlog-size` bytes of the stream, so a replica that
//! lost its link briefly gets only what it missed (`+CONTINUE`).
//!
//! Offsets count stream bytes from 1, as Redis's do: the backlog holds bytes
//! `first ..= first + len - 1`, the last being the server's `master_repl_offset`.

/// A fixed-size ring of stream bytes.
#[derive(Debug, Clone)]
pub struct Backlog {
    ring: Vec<u8>,
    /// Where the next byte goes in `ring`.
    head: usize,
    /// Bytes held (at most `ring.len()`).
    len: usize,
    /// Offset of the oldest byte held.
    first: u64,
}

impl Backlog {
    /// An empty backlog of `size` bytes whose next byte will have offset `next`. The memory is
    /// taken as bytes arrive, not at once.
    pub fn new(size: usize, next: u64) -> Backlog {
        Backlog {
            ring: Vec::with_capacity(size.max(1)),
            head: 0,
            len: 0,
            first: next,
        }
    }

    /// The backlog's size.
    pub fn size(&self) -> usize {
        self.ring.capacity()
    }

    /// Offset of the oldest byte held (Redis's `repl_backlog_first_byte_offset`).
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Bytes held (Redis's `repl_backlog_histlen`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends stream bytes, dropping the oldest when full.
    pub fn push(&mut self, mut bytes: &[u8]) {
        let size = self.ring.capacity();
        if bytes.len() > size {
            // Only the newest `size` bytes can stay.
            let skip = bytes.len() - size;
            self.first += (self.len + skip) as u64;
            self.len = 0;
            bytes = &bytes[skip..];
        }
        while !bytes.is_empty() {
            if self.ring.len() < size {
                // Still growing: append up to the capacity.
                let n = bytes.len().min(size - self.ring.len());
                self.ring.extend_from_slice(&bytes[..n]);
                self.head = self.ring.len() % size;
                self.len += n;
                bytes = &bytes[n..];
                continue;
            }
            let n = bytes.len().min(size - self.head);
            self.ring[self.head..self.head + n].copy_from_slice(&bytes[..n]);
            self.head = (self.head + n) % size;
            let dropped = (self.len + n).saturating_sub(size);
            self.len = (self.len + n).min(size);
            self.first += dropped as u64;
            bytes = &bytes[n..];
        }
    }

    /// The bytes from offset `from` to the newest, in at most two slices; None when `from` is
    /// not held (older than the oldest, or more than one past the newest).
    pub fn since(&self, from: u64) -> Option<(&[u8], &[u8])> {
        let end = self.first + self.len as u64;
        if from < self.first || from > end {
            return None;
        }
        let skip = (from - self.first) as usize;
        let want = self.len - skip;
        let size = self.ring.capacity().max(1);
        let oldest = (self.head + size - self.len) % size;
        let start = (oldest + skip) % size;
        let first_part = want.min(self.ring.len().saturating_sub(start));
        let a = self.ring.get(start..start + first_part)?;
        let b = self.ring.get(..want - first_part)?;
        Some((a, b))
    }

    /// A backlog of `size` bytes holding the newest bytes of this one that fit.
    pub fn resized(&self, size: usize) -> Backlog {
        let end = self.first + self.len as u64;
        let from = end - self.len.min(size) as u64;
        let mut new = Backlog::new(size, from);
        if let Some((a, b)) = self.since(from) {
            new.push(a);
            new.push(b);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(b: &Backlog, from: u64) -> Option<Vec<u8>> {
        b.since(from).map(|(x, y)| [x, y].concat())
    }

    #[test]
    fn keeps_the_newest_bytes_by_offset() {
        let mut b = Backlog::new(8, 1);
        assert_eq!(held(&b, 1), Some(vec![]));
        assert_eq!(held(&b, 2), None);
        b.push(b"abcde");
        assert_eq!((b.first(), b.len()), (1, 5));
        assert_eq!(held(&b, 3), Some(b"cde".to_vec()));
        b.push(b"fghij");
        assert_eq!((b.first(), b.len()), (3, 8));
        assert_eq!(held(&b, 3), Some(b"cdefghij".to_vec()));
        assert_eq!(held(&b, 2), None, "overwritten");
        assert_eq!(held(&b, 11), Some(vec![]), "nothing missed");
        assert_eq!(held(&b, 12), None, "from the future");
        b.push(b"0123456789XY");
        assert_eq!((b.first(), b.len()), (15, 8));
        assert_eq!(held(&b, 15), Some(b"456789XY".to_vec()));
        let small = b.resized(3);
        assert_eq!((small.first(), small.len()), (20, 3));
        assert_eq!(held(&small, 20), Some(b"9XY".to_vec()));
        let big = b.resized(100);
        assert_eq!(held(&big, 15), Some(b"456789XY".to_vec()));
    }
}
