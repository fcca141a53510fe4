//! Access control as Redis 7 has it: users with passwords, and selectors saying which commands,
//! keys and channels each may use. Rules are parsed, shown and checked as Redis 7.0.15 does,
//! over Redis's own command table ([`table`]), so rules written for Redis load unchanged even
//! where they name commands pocketkv lacks.
//!
//! The command layer asks [`Acl::unrestricted`] first: one flag for a user allowed everything
//! (the default user, usually), so the common case costs a load and a branch per command.

mod file;
mod log;
mod rules;
mod sha256;
pub mod table;

pub use file::{load_file, save_file, strerror, FileError};
pub use log::{age_text, AclLog, Context, LogEntry, Reason};
pub use rules::{channel_allowed, has_spaces, merge_selectors, put, RuleError, Selector, User};

/// Commands and subcommands in the table.
pub const COUNT: usize = table::INFO.len();
/// 64-bit words of a selector's command bitmap.
pub const WORDS: usize = COUNT.div_ceil(64);
/// The id of a command Redis does not have (pocketkv's HELP).
pub const NO_ID: u16 = u16::MAX;

/// Category bit: `@pubsub` and friends, by [`table::CATEGORIES`] position.
const NO_AUTH_BIT: u32 = 1 << 21;
const VARIABLE_KEYS_BIT: u32 = 1 << 26;

/// The table id of `name` (lower case, `parent|sub` for a subcommand), or [`NO_ID`]. A `const
/// fn`, so each command table entry finds its id when the program is compiled.
pub const fn command_id(name: &str) -> u16 {
    // Commands Redis 7.0 lacks take the rights of the one they resemble: pocketkv's PUT is SET;
    // Redis 8's DELEX and DELIFEQ read (to compare) and delete, as GETDEL; DIGEST reads, as GET.
    let bytes = name.as_bytes();
    let name = if eq(bytes, b"put") {
        b"set".as_slice()
    } else if eq(bytes, b"delex") || eq(bytes, b"delifeq") {
        b"getdel".as_slice()
    } else if eq(bytes, b"digest") {
        b"get".as_slice()
    } else {
        bytes
    };
    let (mut low, mut high) = (0, COUNT);
    while low < high {
        let mid = (low + high) / 2;
        match compare(entry(mid), name) {
            std::cmp::Ordering::Less => low = mid + 1,
            std::cmp::Ordering::Greater => high = mid,
            std::cmp::Ordering::Equal => return mid as u16,
        }
    }
    NO_ID
}

/// The name of table entry `i` (lower case, `parent|sub`).
const fn entry(i: usize) -> &'static [u8] {
    let (start, end) = (
        table::OFFSETS[i] as usize,
        table::OFFSETS[i + 1] as usize - 1,
    );
    let (_, tail) = table::NAMES.as_bytes().split_at(start);
    let (name, _) = tail.split_at(end - start);
    name
}

const fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return if a[i] < b[i] {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            };
        }
        i += 1;
    }
    if a.len() < b.len() {
        std::cmp::Ordering::Less
    } else if a.len() > b.len() {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

const fn eq(a: &[u8], b: &[u8]) -> bool {
    matches!(compare(a, b), std::cmp::Ordering::Equal)
}

/// The full name of command `id` (`config|get`).
pub fn name_of(id: u16) -> &'static str {
    let i = usize::from(id);
    match (table::OFFSETS.get(i), table::OFFSETS.get(i + 1)) {
        (Some(&start), Some(&end)) => table::NAMES
            .get(usize::from(start)..usize::from(end) - 1)
            .unwrap_or(""),
        _ => "",
    }
}

/// Finds a command by name, case-insensitively (`CONFIG|GET` too).
pub fn find(name: &[u8]) -> Option<u16> {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    Some(command_id(&lower)).filter(|&id| id != NO_ID)
}

fn info(id: u16) -> u32 {
    table::INFO.get(usize::from(id)).copied().unwrap_or(0)
}

/// The category bit of `name` (`read`, case-insensitive).
pub fn category(name: &[u8]) -> Option<u32> {
    table::CATEGORIES
        .iter()
        .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

/// True for a command in category `bit`.
pub fn in_category(id: u16, bit: u32) -> bool {
    info(id) & bit != 0
}

/// The ids of `id`'s subcommands (they follow their parent in the sorted table).
pub fn subcommands(id: u16) -> std::ops::Range<u16> {
    let parent = name_of(id);
    let first = id.saturating_add(1);
    let mut end = first;
    while usize::from(end) < COUNT {
        let name = name_of(end);
        if !(name.len() > parent.len()
            && name.starts_with(parent)
            && name.as_bytes().get(parent.len()) == Some(&b'|'))
        {
            break;
        }
        end += 1;
    }
    first..end
}

/// A permission to read keys (`%R~`).
pub const READ: u8 = 1;
/// A permission to write keys (`%W~`).
pub const WRITE: u8 = 2;

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denied {
    /// The command or subcommand.
    Command,
    /// The key at this argument position.
    Key(usize),
    /// The channel at this argument position.
    Channel(usize),
}

impl Denied {
    /// Redis's `-NOPERM` text for this refusal of `command` (its full name).
    pub fn message(self, command: &str) -> Vec<u8> {
        let mut out = b"NOPERM this user has no permissions to ".to_vec();
        match self {
            Denied::Command => put(&mut out, &[b"run the '", command.as_bytes(), b"' command"]),
            Denied::Key(_) => out.extend_from_slice(b"access one of the keys used as arguments"),
            Denied::Channel(_) => {
                out.extend_from_slice(b"access one of the channels used as arguments")
            }
        }
        out
    }

    /// Rank for choosing among selectors' refusals, as Redis's ACL_DENIED_* values order them.
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(at) => (2, at),
            Denied::Channel(at) => (4, at),
        }
    }
}

/// What the checks need to know of a command, worked out when the program is compiled (each
/// command table entry holds one), so a check reads fields instead of looking in tables. Packed
/// into 8 bytes: there is one in every command table entry.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// [`command_id`] of its name.
    pub id: u16,
    /// First key, last key (-1: the last argument), step; zeros for none.
    keys: (i8, i8, i8),
    /// Bits 0-1: how its first key is used ([`READ`], [`WRITE`], both; 0 for neither, any
    /// pattern will do), as Redis's key specs say; bits 2-3: how the keys after the first are
    /// used (RENAME writes its second; 0: as the first); [`GET_READS`]: SET, which reads its key
    /// only with a GET argument (Redis's setGetKeys).
    access: u8,
    /// Bits 0-1: which arguments are channels ([`NO_CHANNELS`], [`FIRST_CHANNEL`],
    /// [`ALL_CHANNELS`], [`ALL_PATTERNS`]); [`NO_AUTH`]: runs before AUTH (AUTH, HELLO, QUIT,
    /// RESET), never refused.
    kind: u8,
}

/// A command with no channel arguments.
const NO_CHANNELS: u8 = 0;
/// PUBLISH, SPUBLISH: the first argument is a channel.
const FIRST_CHANNEL: u8 = 1;
/// SUBSCRIBE, SSUBSCRIBE: every argument is a channel.
const ALL_CHANNELS: u8 = 2;
/// PSUBSCRIBE: every argument is a pattern.
const ALL_PATTERNS: u8 = 3;
/// [`Command::kind`]'s bit for a command anyone may run.
const NO_AUTH: u8 = 4;
/// [`Command::access`]'s bit for SET.
const GET_READS: u8 = 16;

impl Command {
    /// The command called `name` (lower case, `parent|sub`), without keys.
    pub const fn named(name: &str) -> Command {
        Command::from_id(command_id(name))
    }

    /// The command with table id `id` ([`NO_ID`]: one Redis lacks, whose keys are read and
    /// written), without keys.
    pub const fn from_id(id: u16) -> Command {
        let word = if (id as usize) < COUNT {
            table::INFO[id as usize]
        } else {
            0
        };
        let access = if id == NO_ID {
            (READ | WRITE) * 5
        } else if word & VARIABLE_KEYS_BIT != 0 {
            ((word >> 22) & 15) as u8 | GET_READS
        } else {
            ((word >> 22) & 15) as u8
        };
        let channels = if id == command_id("publish") || id == command_id("spublish") {
            FIRST_CHANNEL
        } else if id == command_id("subscribe") || id == command_id("ssubscribe") {
            ALL_CHANNELS
        } else if id == command_id("psubscribe") {
            ALL_PATTERNS
        } else {
            NO_CHANNELS
        };
        let no_auth = if word & NO_AUTH_BIT != 0 { NO_AUTH } else { 0 };
        Command {
            id,
            keys: (0, 0, 0),
            access,
            kind: channels | no_auth,
        }
    }

    /// The same, with its keys at (first, last, step) (each within -128..=127, as every
    /// command table entry's are).
    pub const fn with_keys(mut self, (first, last, step): (i32, i32, i32)) -> Command {
        self.keys = (first as i8, last as i8, step as i8);
        self
    }

    /// The same, also runnable before AUTH when `no_auth`.
    pub const fn or_no_auth(mut self, no_auth: bool) -> Command {
        if no_auth {
            self.kind |= NO_AUTH;
        }
        self
    }

    /// Runs before AUTH: never refused.
    #[inline(always)]
    fn no_auth(&self) -> bool {
        self.kind & NO_AUTH != 0
    }

    /// Which arguments are channels.
    #[inline(always)]
    fn channels(&self) -> u8 {
        self.kind & 3
    }

    /// First key, last key (-1: the last argument), step; zeros for none.
    #[inline(always)]
    fn keys(&self) -> (isize, isize, isize) {
        let (first, last, step) = self.keys;
        (first as isize, last as isize, step as isize)
    }

    /// How the key at `index` among the command's keys is used.
    #[inline(always)]
    fn access(&self, index: usize, args: &[impl AsRef<[u8]>]) -> u8 {
        let rest = (self.access >> 2) & 3;
        let access = if index > 0 && rest != 0 {
            rest
        } else {
            self.access & 3
        };
        if self.access & GET_READS != 0
            && !args
                .iter()
                .skip(3)
                .any(|a| a.as_ref().eq_ignore_ascii_case(b"GET"))
        {
            return access & WRITE;
        }
        access
    }

    /// Argument positions of its channels in a request of `argc` arguments, and whether they
    /// are patterns.
    fn channel_positions(&self, argc: usize) -> (std::ops::Range<usize>, bool) {
        match self.channels() {
            FIRST_CHANNEL => (1..2.min(argc), false),
            ALL_CHANNELS => (1..argc, false),
            ALL_PATTERNS => (1..argc, true),
            _ => (1..1, false),
        }
    }
}

/// Where a user is kept: its slot among the users and that slot's generation, so a handle to a
/// deleted user never reaches whoever takes its slot later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserRef {
    slot: u32,
    generation: u32,
}

/// The default user's handle: it is created first and can never be deleted.
pub const DEFAULT_USER: UserRef = UserRef {
    slot: 0,
    generation: 0,
};

#[derive(Debug, Clone)]
struct Slot {
    generation: u32,
    user: Option<User>,
}

/// Every user, and the log of refusals.
#[derive(Debug, Clone)]
pub struct Acl {
    slots: Vec<Slot>,
    /// Refusals and failed logins, newest first (ACL LOG).
    pub log: AclLog,
    default_open: bool,
    default_unrestricted: bool,
}

impl Default for Acl {
    fn default() -> Self {
        Acl {
            slots: vec![Slot {
                generation: 0,
                user: Some(User::default_user()),
            }],
            log: AclLog::default(),
            default_open: true,
            default_unrestricted: true,
        }
    }
}

impl Acl {
    /// The user behind `user`, if it still exists.
    pub fn get(&self, user: UserRef) -> Option<&User> {
        let slot = self.slots.get(user.slot as usize)?;
        if slot.generation != user.generation {
            return None;
        }
        slot.user.as_ref()
    }

    /// The default user.
    pub fn default_user(&self) -> &User {
        match self.get(DEFAULT_USER) {
            Some(user) => user,
            None => unreachable!("the default user is never removed"),
        }
    }

    /// True when `user` may run anything: the check the command path makes first. The default
    /// user's answer is cached, so most connections pay one comparison and one load.
    #[inline]
    pub fn unrestricted(&self, user: UserRef) -> bool {
        if user == DEFAULT_USER {
            return self.default_unrestricted;
        }
        self.get(user).is_some_and(|u| u.unrestricted)
    }

    /// True when the default user needs no password (`nopass`): protected mode applies.
    pub fn default_nopass(&self) -> bool {
        self.default_user().nopass
    }

    /// True when a new connection is logged in as `default` without AUTH (no password needed).
    /// Cached: the loop asks before every request.
    #[inline]
    pub fn default_open(&self) -> bool {
        self.default_open
    }

    /// Recomputes what is cached about the default user; every change to users ends here.
    fn refresh(&mut self) {
        let user = self.default_user();
        let (open, unrestricted) = (user.nopass && user.enabled, user.unrestricted);
        self.default_open = open;
        self.default_unrestricted = unrestricted;
    }

    /// The handle and user called `name`.
    #[inline(never)]
    pub fn find(&self, name: &[u8]) -> Option<(UserRef, &User)> {
        self.slots.iter().enumerate().find_map(|(i, slot)| {
            let user = slot.user.as_ref().filter(|u| u.name == name)?;
            let handle = UserRef {
                slot: i as u32,
                generation: slot.generation,
            };
            Some((handle, user))
        })
    }

    /// Every user, sorted by name as Redis lists them.
    pub fn users(&self) -> Vec<&User> {
        // An insertion by binary search: a handful of users, and no sort's code in the binary.
        let mut users: Vec<&User> = Vec::with_capacity(self.slots.len());
        for user in self.slots.iter().filter_map(|s| s.user.as_ref()) {
            let at = users.partition_point(|u| u.name < user.name);
            users.insert(at, user);
        }
        users
    }

    /// Adds or replaces the user called `user.name`.
    #[inline(never)]
    pub fn put(&mut self, user: User) -> UserRef {
        if let Some((handle, _)) = self.find(&user.name) {
            if let Some(slot) = self.slots.get_mut(handle.slot as usize) {
                slot.user = Some(user);
            }
            self.refresh();
            return handle;
        }
        let free = self.slots.iter().position(|s| s.user.is_none());
        let slot = match free {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    user: None,
                });
                self.slots.len() - 1
            }
        };
        let entry = &mut self.slots[slot];
        entry.user = Some(user);
        let handle = UserRef {
            slot: slot as u32,
            generation: entry.generation,
        };
        self.refresh();
        handle
    }

    /// Removes the user called `name`; its handle goes stale. Never removes `default`.
    pub fn remove(&mut self, name: &[u8]) -> Option<UserRef> {
        let (handle, _) = self.find(name)?;
        if handle == DEFAULT_USER {
            return None;
        }
        let slot = self.slots.get_mut(handle.slot as usize)?;
        slot.user = None;
        slot.generation = slot.generation.wrapping_add(1);
        Some(handle)
    }

    /// Replaces every user with `users` (ACL LOAD); the default user keeps its handle, every
    /// other handle goes stale. Returns the stale handles.
    pub fn replace_all(&mut self, users: Vec<User>) -> Vec<UserRef> {
        let mut stale = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate().skip(1) {
            if slot.user.take().is_some() {
                stale.push(UserRef {
                    slot: i as u32,
                    generation: slot.generation,
                });
                slot.generation = slot.generation.wrapping_add(1);
            }
        }
        let mut default = User::default_user();
        for user in users {
            if user.name == b"default" {
                default = user;
            } else {
                self.put(user);
            }
        }
        if let Some(slot) = self.slots.get_mut(0) {
            slot.user = Some(default);
        }
        self.refresh();
        stale
    }

    /// Sets the default user's password as `requirepass` does: `resetpass`, then `>password`,
    /// or `nopass` for an empty one.
    pub fn set_requirepass(&mut self, password: &[u8]) {
        if let Some(Some(user)) = self.slots.get_mut(0).map(|s| s.user.as_mut()) {
            user.set_requirepass(password);
        }
        self.refresh();
    }

    /// Checks `user`'s credentials: enabled, and `password` among its passwords (or nopass).
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<UserRef> {
        let (handle, user) = self.find(name)?;
        user.accepts(password).then_some(handle)
    }

    /// Whether `user` may run `command` with `args`: allowed if any of its selectors allows it.
    /// The root selector inline (most users have no other), the others out of line.
    #[inline(never)]
    pub fn check(
        &self,
        user: UserRef,
        command: &Command,
        args: &[impl AsRef<[u8]>],
    ) -> Result<(), Denied> {
        let Some(user) = self.get(user) else {
            return Err(Denied::Command);
        };
        let Some((root, others)) = user.selectors.split_first() else {
            return Err(Denied::Command);
        };
        match root.check(command, args) {
            Ok(()) => Ok(()),
            Err(denied) if others.is_empty() => Err(denied),
            Err(denied) => check_others(others, denied, command, args),
        }
    }
}

/// The selectors after the root: allowed if any allows, else the refusal Redis would report
/// (the highest-ranked among all of them, `root` being the root's).
#[inline(never)]
fn check_others(
    others: &[Selector],
    root: Denied,
    command: &Command,
    args: &[impl AsRef<[u8]>],
) -> Result<(), Denied> {
    let mut worst = root;
    for selector in others {
        match selector.check_cold(command, args) {
            Ok(()) => return Ok(()),
            Err(denied) if denied.rank() > worst.rank() => worst = denied,
            Err(_) => {}
        }
    }
    Err(worst)
}

/// A user from a `user` directive's words (name, then rules); the rule and its error if one
/// is bad. `all_channels`: `acl-pubsub-default allchannels`.
#[inline(never)]
pub fn parse_user(words: &[&[u8]], all_channels: bool) -> Result<User, (String, RuleError)> {
    let Some((&name, rules)) = words.split_first() else {
        return Err((String::new(), RuleError::Syntax));
    };
    if has_spaces(name) {
        return Err((
            String::from_utf8_lossy(name).into_owned(),
            RuleError::Syntax,
        ));
    }
    let rules = merge_selectors(rules).map_err(|at| {
        let rule = rules.get(at).copied().unwrap_or_default();
        (
            String::from_utf8_lossy(rule).into_owned(),
            RuleError::Syntax,
        )
    })?;
    let mut user = User::with_pubsub_default(name, all_channels);
    if name == b"default" {
        // Redis resets the default user before a directive's rules.
        let _ = user.apply(b"reset");
    }
    for rule in rules {
        user.apply(&rule)
            .map_err(|e| (String::from_utf8_lossy(&rule).into_owned(), e))?;
    }
    Ok(user)
}

impl Acl {
    /// Loads the users a config names at start: `user` directives or the aclfile, not both.
    pub fn configure(&mut self, config: &crate::config::Config) -> Result<(), String> {
        if !config.aclfile.is_empty() && !config.users.is_empty() {
            return Err(
                "Configuring pocketkv with users defined in the config and at the same \
                        time an ACL file path is invalid. This setup is very likely to lead to \
                        configuration errors and security holes, please define either an ACL \
                        file or declare users directly in your config, but not both."
                    .to_string(),
            );
        }
        for words in &config.users {
            let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
            let user = parse_user(&words, config.acl_pubsub_default_all)
                .map_err(|(rule, e)| format!("Error loading ACL rule '{rule}': {}", e.message()))?;
            self.put(user);
        }
        if !config.aclfile.is_empty() {
            let users = load_file(&config.aclfile, config.acl_pubsub_default_all)
                .map_err(|e| format!("Aborting startup because of ACL errors: {e}"))?;
            self.replace_all(users);
        }
        Ok(())
    }
}

/// Hashes a cleartext password as ACL rules store it.
pub fn hash_password(password: &[u8]) -> [u8; 32] {
    sha256::digest(password)
}

/// Lower-case hex, as password hashes are shown.
pub fn hex(bytes: &[u8]) -> String {
    sha256::hex(bytes)
}

#[cfg(test)]
mod tests;
