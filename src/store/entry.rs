//! One stored value with its expiry time.

/// A value and when it expires.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The value's bytes.
    pub value: Vec<u8>,
    /// Unix milliseconds after which the key is gone; 0 for never (a plain `u64` rather than an
    /// `Option` keeps the entry 8 bytes smaller, and no real expiry time is 0).
    expires_at: u64,
    /// When the key was last read or written, in milliseconds of the store's clock (wrapping),
    /// for the LRU eviction policies.
    touched: u32,
}

impl Entry {
    /// A value that expires at `expires_at` (Unix milliseconds), or never.
    pub fn new(value: Vec<u8>, expires_at: Option<u64>) -> Self {
        let mut entry = Entry {
            value,
            expires_at: 0,
            touched: 0,
        };
        entry.set_expires_at(expires_at);
        entry
    }

    /// When the key expires, in Unix milliseconds; `None` for never.
    pub fn expires_at(&self) -> Option<u64> {
        (self.expires_at != 0).then_some(self.expires_at)
    }

    /// Sets or clears the expiry time. Time 0 is taken as 1 ms after the epoch: long past.
    pub fn set_expires_at(&mut self, expires_at: Option<u64>) {
        self.expires_at = expires_at.map_or(0, |at| at.max(1));
    }

    /// Notes an access at `clock` (milliseconds, wrapping).
    pub(super) fn touch(&mut self, clock: u32) {
        self.touched = clock;
    }

    /// Milliseconds since the last access at `clock` (wrapping, like Redis's LRU clock).
    pub(super) fn idle(&self, clock: u32) -> u32 {
        clock.wrapping_sub(self.touched)
    }

    /// True when the key is gone at `now`. As in Redis, a key is still there at its expiry
    /// millisecond and gone after it.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at != 0 && now > self.expires_at
    }
}
