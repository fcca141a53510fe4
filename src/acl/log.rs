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
