//! ACL LOG: refused commands and failed logins, newest first, alike ones within a minute
//! counted in one entry, as Redis keeps them.

/// What was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The command or subcommand.
    Command,
    /// A key.
    Key,
    /// A channel.
    Channel,
    /// A failed AUTH or HELLO AUTH.
    Auth,
}

impl Reason {
    /// The name ACL LOG shows.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
            Reason::Auth => "auth",
        }
    }
}

/// Where the refused command was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// On its own.
    Toplevel,
    /// Inside MULTI/EXEC.
    Multi,
}

impl Context {
    /// The name ACL LOG shows.
    pub fn name(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
        }
    }
}

/// One ACL LOG entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Times it happened (alike refusals within a minute share an entry).
    pub count: u64,
    /// What was refused.
    pub reason: Reason,
    /// Where.
    pub context: Context,
    /// The command's full name, the key, the channel, or AUTH/HELLO as sent.
    pub object: Vec<u8>,
    /// The user (for a failed login, the name tried).
    pub username: Vec<u8>,
    /// Unix milliseconds of the latest occurrence.
    pub unix_ms: u64,
    /// The client, as CLIENT LIST describes it, at the latest occurrence.
    pub client_info: String,
}

/// Entries newer within this many milliseconds of each other may be counted together.
const GROUPING_MS: u64 = 60_000;
/// Entries compared with a new one before it is added as a new entry (Redis's bound).
const SCAN: usize = 10;

/// The log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AclLog {
    /// A Vec, not a VecDeque: at most `acllog-max-len` entries, and less code.
    entries: Vec<LogEntry>,
}

impl AclLog {
    /// Records `entry`, counting it with an alike recent one, and keeps at most `max_len`.
    pub fn add(&mut self, entry: LogEntry, max_len: usize) {
        let alike = self.entries.iter().take(SCAN).position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.unix_ms.abs_diff(entry.unix_ms) <= GROUPING_MS
                && e.object == entry.object
                && e.username == entry.username
        });
        if let Some(at) = alike {
            let mut found = self.entries.remove(at);
            found.count += 1;
            found.unix_ms = entry.unix_ms;
            found.client_info = entry.client_info;
            self.entries.insert(0, found);
            return;
        }
        self.entries.insert(0, entry);
        self.entries.truncate(max_len);
    }

    /// The newest `count` entries.
    pub fn newest(&self, count: usize) -> impl Iterator<Item = &LogEntry> {
        self.entries.iter().take(count)
    }

    /// Forgets every entry (ACL LOG RESET).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was refused since start or the last reset.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An entry's age as ACL LOG shows it: milliseconds over 1000 as a double, printed as C's
/// `%.17g` prints it (Redis 7.0's addReplyDouble): `0.109`, `0.41499999999999998`, `2`.
/// Worked out in integers (the double's exact value times a power of ten, rounded half to
/// even to 17 digits), so the binary carries no float formatting.
pub fn age_text(ms: u64) -> Vec<u8> {
    let age = ms as f64 / 1000.0;
    if ms == 0 {
        return b"0".to_vec();
    }
    let bits = age.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = u128::from((bits & ((1 << 52) - 1)) | (1 << 52));
    // age = mantissa * 2^shift; 0.001 <= age < 2^53 / 1000, so 10^-3 <= age < 10^13.
    let shift = exponent - 1075;
    // The decimal exponent X (10^X <= age < 10^(X+1)) and the 17 digits age * 10^(16 - X).
    for x in -3i32..=13 {
        let Some(digits) = scaled(mantissa, shift, 16 - x) else {
            break;
        };
        // 18 digits: X is larger (also when rounding carried into an 18th digit, as printf
        // then goes to the next power of ten).
        if let Ok(digits @ ..100_000_000_000_000_000) = u64::try_from(digits) {
            return fixed(digits, x);
        }
    }
    // Unreachable for any u64 of milliseconds; whole seconds as a fallback.
    itoa::Buffer::new().format(ms / 1000).as_bytes().to_vec()
}

/// `mantissa * 2^shift * 10^power` rounded half to even, when it fits.
fn scaled(mantissa: u128, shift: i32, power: i32) -> Option<u128> {
    let power = u32::try_from(power).ok().filter(|&p| p <= 20)?;
    let value = mantissa.checked_mul(5u128.pow(power))?;
    let shift = shift + power as i32;
    if shift >= 0 {
        return value
            .checked_shl(shift as u32)
            .filter(|v| v >> shift == value);
    }
    let right = shift.unsigned_abs();
    if right >= 127 {
        return Some(0);
    }
    let (whole, rest) = (value >> right, value & ((1 << right) - 1));
    let half = 1u128 << (right - 1);
    let up = rest > half || (rest == half && whole & 1 == 1);
    Some(whole + u128::from(up))
}

/// 17 significant `digits` of a number whose decimal exponent is `x` (-4 <= x < 17), in `%g`'s
/// fixed form without trailing zeros.
fn fixed(digits: u64, x: i32) -> Vec<u8> {
    let mut text = itoa::Buffer::new();
    let text = text.format(digits).as_bytes();
    let mut out = Vec::with_capacity(24);
    let (whole, fraction): (&[u8], &[u8]) = if x >= 0 {
        text.split_at((x as usize + 1).min(text.len()))
    } else {
        out.extend_from_slice(b"0");
        (&[], text)
    };
    out.extend_from_slice(whole);
    let zeros = if x < 0 {
        x.unsigned_abs() as usize - 1
    } else {
        0
    };
    let fraction = match fraction.iter().rposition(|&d| d != b'0') {
        Some(last) => &fraction[..=last],
        None => &[],
    };
    if !fraction.is_empty() {
        out.push(b'.');
        out.resize(out.len() + zeros, b'0');
        out.extend_from_slice(fraction);
    }
    out
}

#[cfg(test)]
mod age_tests {
    use super::age_text;

    /// C's own `%.17g`, to compare with.
    fn printf(ms: u64) -> String {
        let mut buf = [0u8; 64];
        let age = ms as f64 / 1000.0;
        // SAFETY: the buffer is 64 bytes and snprintf writes at most that many, NUL included.
        let n = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), 64, c"%.17g".as_ptr(), age) };
        String::from_utf8_lossy(&buf[..n as usize]).into_owned()
    }

    #[test]
    fn ages_print_as_printf_prints_them() {
        assert_eq!(age_text(415), b"0.41499999999999998");
        assert_eq!(age_text(109), b"0.109");
        assert_eq!(age_text(2000), b"2");
        let mut ms: u64 = 0;
        while ms < 3_000_000 {
            assert_eq!(
                String::from_utf8_lossy(&age_text(ms)),
                printf(ms),
                "{ms} ms"
            );
            ms += if ms < 200_000 { 1 } else { 997 };
        }
        for ms in [
            86_400_000,
            u64::from(u32::MAX),
            1 << 40,
            999_999_999_999_999,
            (1 << 53) - 1,
        ] {
            assert_eq!(
                String::from_utf8_lossy(&age_text(ms)),
                printf(ms),
                "{ms} ms"
            );
        }
    }
}
