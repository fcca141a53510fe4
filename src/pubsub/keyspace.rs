//! Keyspace notifications: `notify-keyspace-events` as Redis spells it, and the channels events
//! are published on (`__keyspace@0__:<key>`, `__keyevent@0__:<event>`).

use super::Registry;

/// The classes and channel kinds `notify-keyspace-events` selects, as Redis's bit flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Events(pub u32);

impl Events {
    /// `K`: publish on `__keyspace@0__:<key>`.
    pub const KEYSPACE: u32 = 1 << 0;
    /// `E`: publish on `__keyevent@0__:<event>`.
    pub const KEYEVENT: u32 = 1 << 1;
    /// `g`: DEL, EXPIRE, RENAME, PERSIST, ...
    pub const GENERIC: u32 = 1 << 2;
    /// `$`: string commands.
    pub const STRING: u32 = 1 << 3;
    /// `x`: a key removed because its time passed.
    pub const EXPIRED: u32 = 1 << 8;
    /// `e`: a key evicted for `maxmemory`.
    pub const EVICTED: u32 = 1 << 9;
    /// `m`: a read of a missing key (not part of `A`, as in Redis).
    pub const KEY_MISS: u32 = 1 << 11;
    /// `n`: a key created (not part of `A`, as in Redis).
    pub const NEW: u32 = 1 << 14;
    /// `A`: every class but `m` and `n`.
    const ALL: u32 = 0b10_0111_1111_1100;

    /// Parses Redis's letters; `None` for a letter Redis does not know. Letters of types
    /// pocketkv does not have (`l s h z t d`) are kept, as Redis keeps them, and select nothing.
    pub fn parse(text: &str) -> Option<Events> {
        let mut flags = 0;
        for c in text.bytes() {
            flags |= match c {
                b'A' => Self::ALL,
                b'm' => Self::KEY_MISS,
                b'n' => Self::NEW,
                b'K' => Self::KEYSPACE,
                b'E' => Self::KEYEVENT,
                _ => {
                    let at = EVENT_CLASSES.bytes().position(|l| l == c)?;
                    CLASS_BITS[at]
                }
            };
        }
        Some(Events(flags))
    }

    /// True when events of `class` are published anywhere.
    pub fn wants(self, class: u32) -> bool {
        self.0 & class != 0 && self.0 & (Self::KEYSPACE | Self::KEYEVENT) != 0
    }
}

/// The one-letter classes `A` stands for, in the order Redis prints them.
pub const EVENT_CLASSES: &str = "g$lshzxetd";
/// Their bits, in the same order.
const CLASS_BITS: [u32; 10] = [
    Events::GENERIC,
    Events::STRING,
    1 << 4,
    1 << 5,
    1 << 6,
    1 << 7,
    Events::EXPIRED,
    Events::EVICTED,
    1 << 10,
    1 << 13,
];

impl std::fmt::Display for Events {
    /// The letters as CONFIG GET shows them, normalized as Redis does (`KEA` reads back `AKE`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flags = self.0;
        let mut text = String::new();
        if flags & Self::ALL == Self::ALL {
            text.push('A');
        } else {
            for (letter, bit) in EVENT_CLASSES.chars().zip(CLASS_BITS) {
                if flags & bit != 0 {
                    text.push(letter);
                }
            }
            if flags & Self::NEW != 0 {
                text.push('n');
            }
        }
        for (letter, bit) in [
            ('K', Self::KEYSPACE),
            ('E', Self::KEYEVENT),
            ('m', Self::KEY_MISS),
        ] {
            if flags & bit != 0 {
                text.push(letter);
            }
        }
        f.write_str(&text)
    }
}

impl Registry {
    /// Publishes `event` on `key` as `events` asks: the event name on the key's keyspace
    /// channel, the key on the event's keyevent channel. Nothing at all while nobody listens.
    pub fn notify(&mut self, events: Events, event: &str, key: &[u8]) {
        if self.is_empty() {
            return;
        }
        let mut channel = Vec::with_capacity(16 + key.len().max(event.len()));
        if events.0 & Events::KEYSPACE != 0 {
            channel.extend_from_slice(b"__keyspace@0__:");
            channel.extend_from_slice(key);
            self.publish(&channel, event.as_bytes(), false);
        }
        if events.0 & Events::KEYEVENT != 0 {
            channel.clear();
            channel.extend_from_slice(b"__keyevent@0__:");
            channel.extend_from_slice(event.as_bytes());
            self.publish(&channel, key, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_read_back_as_redis_normalizes_them() {
        for (given, shown) in [
            ("", ""),
            ("An", "A"),
            ("KEA", "AKE"),
            ("Kn", "nK"),
            ("Ex", "xE"),
            ("g$lshzxetd", "A"),
            ("g$lshzxetdn", "A"),
            ("m", "m"),
            ("AKEm", "AKEm"),
            ("E$gx", "g$xE"),
        ] {
            let events = Events::parse(given).expect(given);
            assert_eq!(events.to_string(), shown, "{given}");
        }
        assert_eq!(Events::parse("Kq"), None);
        assert!(Events::parse("KA").unwrap().wants(Events::EXPIRED));
        assert!(
            !Events::parse("A").unwrap().wants(Events::EXPIRED),
            "no K or E"
        );
        assert!(!Events::parse("KA").unwrap().wants(Events::NEW));
    }
}
