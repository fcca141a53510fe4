//! A value with its expiry time, owned: what a snapshot file holds for each key.

/// A value and when it expires.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The value's bytes.
    pub value: Vec<u8>,
    expires_at: Option<u64>,
}

impl Entry {
    /// A value that expires at `expires_at` (Unix milliseconds), or never.
    pub fn new(value: Vec<u8>, expires_at: Option<u64>) -> Self {
        Entry { value, expires_at }
    }

    /// When the key expires, in Unix milliseconds; `None` for never.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }
}
