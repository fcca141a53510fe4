//! Users and selectors: Redis 7's ACL rules applied one at a time (`ACLSetUser`), checked, and
//! described back in the form ACL LIST shows.

use super::{
    category, find, hash_password, hex, in_category, name_of, subcommands, table, Command, Denied,
    COUNT, READ, WORDS, WRITE,
};
use crate::store::glob_match;

/// Why a rule was refused, one variant per Redis errno, with Redis's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    /// ENOENT: `+nosuchcommand`, `+@nosuchcategory`.
    UnknownName,
    /// EINVAL: a rule that means nothing, or a pattern with spaces.
    Syntax,
    /// EEXIST: `~pattern` after `allkeys`.
    KeysAfterAll,
    /// EISDIR: `&pattern` after `allchannels`.
    ChannelsAfterAll,
    /// ENODEV: `<password` or `!hash` the user does not have.
    NoSuchPassword,
    /// EBADMSG: `#hash` that is not 64 lower-case hex digits.
    BadHash,
    /// ECHILD: `+config|get|x`.
    FirstArgOfSubcommand,
    /// EALREADY: a user defined twice in a config file.
    Duplicate,
}

impl RuleError {
    /// Redis's text (ACLSetUserStringError).
    pub fn message(self) -> &'static str {
        match self {
            RuleError::UnknownName => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::KeysAfterAll => {
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and \
                 does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
            }
            RuleError::ChannelsAfterAll => {
                "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid \
                 and does not have any effect. Try 'resetchannels' to start with an empty list of \
                 channels"
            }
            RuleError::NoSuchPassword => {
                "The password you are trying to remove from the user does not exist"
            }
            RuleError::BadHash => {
                "The password hash must be exactly 64 characters and contain only lowercase \
                 hexadecimal characters"
            }
            RuleError::FirstArgOfSubcommand => {
                "Allowing first-arg of a subcommand is not supported"
            }
            RuleError::Duplicate => {
                "Duplicate user found. A user can only be defined once in config files"
            }
        }
    }
}

/// A key pattern and what it permits ([`READ`], [`WRITE`] or both).
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyPattern {
    access: u8,
    pattern: Vec<u8>,
    /// How it is matched, found when the rule is applied rather than on every command.
    kind: PatternKind,
}

/// The kinds of key pattern, each matched its cheapest way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternKind {
    /// No `*?[\\` at all: only the key spelled the same.
    Exact,
    /// A plain prefix of up to 8 bytes and one trailing `*` (`app:*`, the usual kind): the
    /// prefix as a little-endian word and a mask of its bytes, compared with a key's first 8
    /// bytes in one step.
    Word(u64, u64),
    /// A longer plain prefix and one trailing `*`: a prefix comparison.
    Prefix,
    /// Anything else: the glob matcher.
    Glob,
}

impl PatternKind {
    fn of(pattern: &[u8]) -> PatternKind {
        let special = |b: &u8| b"*?[\\".contains(b);
        match pattern.split_last() {
            _ if !pattern.iter().any(special) => PatternKind::Exact,
            Some((b'*', head)) if !head.iter().any(special) => match head.len() {
                // `*` alone: any key but the empty one, which goes to the glob matcher.
                1..=8 => {
                    let mut word = [0u8; 8];
                    word[..head.len()].copy_from_slice(head);
                    let mask = u64::MAX >> (64 - 8 * head.len());
                    PatternKind::Word(u64::from_le_bytes(word), mask)
                }
                _ => PatternKind::Prefix,
            },
            _ => PatternKind::Glob,
        }
    }
}

/// A key's first 8 bytes as a little-endian word (None when it is shorter).
#[inline(always)]
fn first_word(key: &[u8]) -> Option<u64> {
    key.first_chunk::<8>()
        .map(|chunk| u64::from_le_bytes(*chunk))
}

/// One set of permissions: commands, keys, channels. A user's first selector is its root (the
/// rules outside parentheses); a command runs if any selector allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Every command, also those added later (Redis's ALLCOMMANDS flag); any `-` rule clears it.
    all_commands: bool,
    /// Set by `+@all` and cleared only by `-@all`: rules are shown starting from `+@all`
    /// (Redis's reserved bit for future commands).
    future: bool,
    all_keys: bool,
    all_channels: bool,
    commands: [u64; WORDS],
    /// `+select|0` style first arguments of commands otherwise denied.
    first_args: Vec<(u16, Vec<Vec<u8>>)>,
    keys: Vec<KeyPattern>,
    channels: Vec<Vec<u8>>,
}

impl Selector {
    /// A selector allowing nothing (channels as `acl-pubsub-default resetchannels`).
    fn empty() -> Selector {
        Selector::new(false)
    }

    /// A selector allowing no command and no key, and every channel or none as
    /// `acl-pubsub-default` says (`all_channels`).
    fn new(all_channels: bool) -> Selector {
        Selector {
            all_commands: false,
            future: false,
            all_keys: false,
            all_channels,
            commands: [0; WORDS],
            first_args: Vec::new(),
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    fn bit(&self, id: u16) -> bool {
        let id = usize::from(id);
        self.commands
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: u16, allow: bool) {
        let id = usize::from(id);
        if let Some(word) = self.commands.get_mut(id / 64) {
            if allow {
                *word |= 1 << (id % 64);
            } else {
                *word &= !(1 << (id % 64));
                self.all_commands = false;
            }
        }
    }

    /// Allows or denies a command, and with a container all its subcommands.
    fn change(&mut self, id: u16, allow: bool) {
        self.set_bit(id, allow);
        self.first_args.retain(|(c, _)| *c != id);
        for sub in subcommands(id) {
            self.set_bit(sub, allow);
        }
    }

    fn change_category(&mut self, bit: u32, allow: bool) {
        for id in 0..COUNT as u16 {
            if in_category(id, bit) {
                self.change(id, allow);
            }
        }
    }

    fn set_all(&mut self, allow: bool) {
        self.commands = [if allow { u64::MAX } else { 0 }; WORDS];
        self.all_commands = allow;
        self.future = allow;
        self.first_args.clear();
    }

    /// Applies one selector rule (Redis's ACLSetSelector).
    #[inline(never)]
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let is = |word: &str| op.eq_ignore_ascii_case(word.as_bytes());
        if is("allkeys") || is("~*") {
            self.all_keys = true;
            self.keys.clear();
        } else if is("resetkeys") {
            self.all_keys = false;
            self.keys.clear();
        } else if is("allchannels") || is("&*") {
            self.all_channels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.set_all(true);
        } else if is("nocommands") || is("-@all") {
            self.set_all(false);
        } else if let Some(rest) = op.strip_prefix(b"~") {
            self.add_keys(READ | WRITE, rest)?;
        } else if let Some(rest) = op.strip_prefix(b"%") {
            // Redis reads flags up to the `~`; with no `~` at all the pattern is empty.
            let tilde = rest.iter().position(|&b| b == b'~');
            let mut access = 0;
            for &flag in &rest[..tilde.unwrap_or(rest.len())] {
                let bit = match flag.to_ascii_uppercase() {
                    b'R' => READ,
                    b'W' => WRITE,
                    _ => return Err(RuleError::Syntax),
                };
                if access & bit != 0 {
                    return Err(RuleError::Syntax);
                }
                access |= bit;
            }
            if access == 0 {
                return Err(RuleError::Syntax);
            }
            self.add_keys(access, tilde.map_or(&[][..], |t| &rest[t + 1..]))?;
        } else if let Some(rest) = op.strip_prefix(b"&") {
            if self.all_channels {
                return Err(RuleError::ChannelsAfterAll);
            }
            if has_spaces(rest) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == rest) {
                self.channels.push(rest.to_vec());
            }
        } else if let Some(rest) = op.strip_prefix(b"+@").or_else(|| op.strip_prefix(b"-@")) {
            let bit = category(rest).ok_or(RuleError::UnknownName)?;
            self.change_category(bit, op.first() == Some(&b'+'));
        } else if let Some(rest) = op.strip_prefix(b"+") {
            self.allow_command(rest)?;
        } else if let Some(rest) = op.strip_prefix(b"-") {
            let id = find(rest).ok_or(RuleError::UnknownName)?;
            self.change(id, false);
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    fn add_keys(&mut self, access: u8, pattern: &[u8]) -> Result<(), RuleError> {
        if self.all_keys {
            return Err(RuleError::KeysAfterAll);
        }
        if has_spaces(pattern) {
            return Err(RuleError::Syntax);
        }
        match self.keys.iter_mut().find(|k| k.pattern == pattern) {
            Some(existing) => existing.access |= access,
            None => self.keys.push(KeyPattern {
                access,
                pattern: pattern.to_vec(),
                kind: PatternKind::of(pattern),
            }),
        }
        Ok(())
    }

    /// `+command`, `+command|subcommand`, or `+command|first-arg` of a command without
    /// subcommands (allowed only with that first argument).
    fn allow_command(&mut self, name: &[u8]) -> Result<(), RuleError> {
        let Some(bar) = name.iter().rposition(|&b| b == b'|') else {
            let id = find(name).ok_or(RuleError::UnknownName)?;
            self.change(id, true);
            return Ok(());
        };
        let (parent, sub) = (&name[..bar], &name[bar + 1..]);
        let id = find(parent).ok_or(RuleError::UnknownName)?;
        if name_of(id).contains('|') {
            return Err(RuleError::FirstArgOfSubcommand);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if !subcommands(id).is_empty() {
            let sub_id = find(name).ok_or(RuleError::UnknownName)?;
            self.change(sub_id, true);
            return Ok(());
        }
        match self.first_args.iter_mut().find(|(c, _)| *c == id) {
            Some((_, args)) => {
                if !args.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                    args.push(sub.to_vec());
                }
            }
            None => self.first_args.push((id, vec![sub.to_vec()])),
        }
        Ok(())
    }

    /// Whether this selector allows `command` with `args` (Redis's ACLSelectorCheckCmd). On
    /// every command of a restricted user: field reads and the patterns, nothing looked up.
    #[inline(always)]
    pub(super) fn check(&self, command: &Command, args: &[impl AsRef<[u8]>]) -> Result<(), Denied> {
        // Cheapest first: the flag, the command's bit, then the rarer ways in.
        let allowed = self.all_commands
            || self.bit(command.id)
            || command.no_auth()
            || self.first_arg_allowed(command.id, args);
        if !allowed {
            return Err(Denied::Command);
        }
        let (first, last, _) = command.keys();
        if first > 0 && !self.all_keys {
            // One key (GET, SET, INCR...): no loop to set up.
            // A key position past the arguments names no key, as in the loop below.
            if first == last {
                let at = first as usize;
                let key = args.get(at).map(|a| a.as_ref());
                if key.is_some_and(|key| !self.allows_key(key, command.access(0, args))) {
                    return Err(Denied::Key(at));
                }
            } else {
                self.check_keys(command, args)?;
            }
        }
        if command.channels() != 0 && !self.all_channels {
            self.check_channels(command, args)?;
        }
        Ok(())
    }

    /// The same, out of line: for the selectors after the root.
    #[inline(never)]
    pub(super) fn check_cold(
        &self,
        command: &Command,
        args: &[impl AsRef<[u8]>],
    ) -> Result<(), Denied> {
        self.check(command, args)
    }

    /// Every key of a command with several (DEL, MSET, RENAME...).
    #[inline(never)]
    fn check_keys(&self, command: &Command, args: &[impl AsRef<[u8]>]) -> Result<(), Denied> {
        let (first, last, step) = command.keys();
        let argc = args.len();
        let last = if last < 0 {
            argc.saturating_sub(last.unsigned_abs())
        } else {
            (last as usize).min(argc.saturating_sub(1))
        };
        let (mut at, mut index) = (first.max(1) as usize, 0);
        while at <= last {
            let key = args.get(at).map_or(&b""[..], |a| a.as_ref());
            if !self.allows_key(key, command.access(index, args)) {
                return Err(Denied::Key(at));
            }
            at += step.max(1) as usize;
            index += 1;
        }
        Ok(())
    }

    /// The channel arguments of PUBLISH, SUBSCRIBE and the like; kept out of the key path.
    #[inline(never)]
    fn check_channels(&self, command: &Command, args: &[impl AsRef<[u8]>]) -> Result<(), Denied> {
        let (positions, is_pattern) = command.channel_positions(args.len());
        for at in positions {
            let channel = args.get(at).map_or(&b""[..], |a| a.as_ref());
            if !self.allows_channel(channel, is_pattern) {
                return Err(Denied::Channel(at));
            }
        }
        Ok(())
    }

    /// `+select|0` rules, and commands anyone may run: off the common path.
    #[inline(never)]
    fn first_arg_allowed(&self, id: u16, args: &[impl AsRef<[u8]>]) -> bool {
        let Some((_, allowed)) = self.first_args.iter().find(|(c, _)| *c == id) else {
            return false;
        };
        let at = if name_of(id).contains('|') { 2 } else { 1 };
        args.get(at)
            .is_some_and(|arg| allowed.iter().any(|a| a.eq_ignore_ascii_case(arg.as_ref())))
    }

    #[inline(always)]
    fn allows_key(&self, key: &[u8], access: u8) -> bool {
        // A plain loop: `any` with a closure is not always inlined, and this runs per key.
        for k in &self.keys {
            if k.access & access != access {
                continue;
            }
            let matched = match k.kind {
                PatternKind::Word(word, mask) => match first_word(key) {
                    Some(first) => (first ^ word) & mask == 0,
                    None => matches_slowly(k, key),
                },
                PatternKind::Exact => key == k.pattern.as_slice(),
                _ => matches_slowly(k, key),
            };
            if matched {
                return true;
            }
        }
        false
    }

    /// Whether this selector allows `channel` (a PSUBSCRIBE pattern only by an equal pattern).
    pub(super) fn allows_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|c| {
                if is_pattern {
                    c == channel
                } else {
                    glob_match(c, channel)
                }
            })
    }

    /// The command rules, as Redis 7.0 describes them: `+@all` or `-@all`, then the categories
    /// that best fit the allowed commands, then single commands to make the difference up.
    fn describe_commands(&self, out: &mut Vec<u8>) {
        let additive = !self.future;
        let mut fake = Selector::empty();
        fake.set_all(!additive);
        let (plus, minus): (&[u8], &[u8]) = if additive { (b"+", b"-") } else { (b"-", b"+") };
        put(out, &[minus, b"@all "]);
        let mut temp = Selector::empty();
        temp.commands = self.commands;
        let mut applied = [false; table::CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut min_diff, mut max_same) = (usize::MAX, 0);
            for (i, done) in applied.iter().enumerate() {
                if *done {
                    continue;
                }
                let (mut on, mut off) = (0, 0);
                for id in 0..COUNT as u16 {
                    if in_category(id, 1 << i) {
                        if temp.bit(id) {
                            on += 1;
                        } else {
                            off += 1;
                        }
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < min_diff || (diff == min_diff && same > max_same)) {
                    best = Some(i);
                    min_diff = diff;
                    max_same = same;
                }
            }
            let Some(best) = best else { break };
            fake.change_category(1 << best, additive);
            temp.change_category(1 << best, !additive);
            let name = table::CATEGORIES.get(best).copied().unwrap_or("");
            put(out, &[plus, b"@", name.as_bytes(), b" "]);
            if let Some(done) = applied.get_mut(best) {
                *done = true;
            }
        }
        for id in 0..COUNT as u16 {
            let mine = self.bit(id);
            let name = name_of(id).as_bytes();
            if mine != fake.bit(id) {
                put(out, &[if mine { b"+" } else { b"-" }, name, b" "]);
                fake.change(id, mine);
            }
            if mine {
                continue;
            }
            if let Some((_, args)) = self.first_args.iter().find(|(c, _)| *c == id) {
                for arg in args {
                    put(out, &[b"+", name, b"|", arg, b" "]);
                }
            }
        }
        out.pop();
    }

    /// GETUSER's `commands` field.
    pub fn commands_text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.describe_commands(&mut out);
        out
    }

    /// GETUSER's `keys` field.
    pub fn keys_text(&self) -> Vec<u8> {
        if self.all_keys {
            return b"~*".to_vec();
        }
        let mut out = Vec::new();
        for k in &self.keys {
            push_pattern(k, &mut out);
        }
        out.pop();
        out
    }

    /// GETUSER's `channels` field.
    pub fn channels_text(&self) -> Vec<u8> {
        if self.all_channels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for c in &self.channels {
            put(&mut out, &[b"&", c, b" "]);
        }
        out.pop();
        out
    }

    /// The selector as ACL LIST shows it.
    fn describe(&self, out: &mut Vec<u8>) {
        if self.all_keys {
            out.extend_from_slice(b"~* ");
        } else {
            for k in &self.keys {
                push_pattern(k, out);
            }
        }
        if self.all_channels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                put(out, &[b"&", c, b" "]);
            }
        }
        self.describe_commands(out);
    }

    /// True when this selector allows every command, key and channel.
    fn allows_everything(&self) -> bool {
        self.all_commands && self.all_keys && self.all_channels
    }
}

/// A key against a prefix pattern when the key is short, or against any other pattern.
#[inline(never)]
fn matches_slowly(k: &KeyPattern, key: &[u8]) -> bool {
    match k.kind {
        // Redis's matcher: an empty key matches only "" and "*".
        PatternKind::Word(..) | PatternKind::Prefix if !key.is_empty() => {
            let head = k.pattern.len().saturating_sub(1);
            key.get(..head) == k.pattern.get(..head)
        }
        _ => glob_match(&k.pattern, key),
    }
}

/// A key pattern and a space.
fn push_pattern(k: &KeyPattern, out: &mut Vec<u8>) {
    let prefix: &[u8] = match k.access {
        READ => b"%R~",
        WRITE => b"%W~",
        _ => b"~",
    };
    put(out, &[prefix, &k.pattern, b" "]);
}

/// Appends every part to `out`: one copy of the appending code for every description and
/// message (the binary has a size limit, and format! or inlined copies add up).
#[inline(never)]
pub fn put(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// Whether a subscription to `name` (a pattern when `is_pattern`) is allowed by one of
/// `patterns`, as [`Selector::allows_channel`] checks.
pub fn channel_allowed(patterns: &[&[u8]], name: &[u8], is_pattern: bool) -> bool {
    patterns.iter().any(|&p| {
        if is_pattern {
            p == name
        } else {
            glob_match(p, name)
        }
    })
}

/// Redis refuses spaces and NULs in user names and patterns.
pub fn has_spaces(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .any(|&b| b.is_ascii_whitespace() || b == 0 || b == 0x0b)
}

/// A user: name, on/off, passwords (SHA-256), and selectors, the first being the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name AUTH gives.
    pub name: Vec<u8>,
    /// `on`: may log in.
    pub enabled: bool,
    /// `nopass`: any password will do.
    pub nopass: bool,
    /// `sanitize-payload` (Some(true)) or `skip-sanitize-payload` (Some(false)); kept to show.
    sanitize: Option<bool>,
    passwords: Vec<[u8; 32]>,
    /// The root selector first, then those given in parentheses.
    pub(super) selectors: Vec<Selector>,
    /// Cached: the root allows every command, key and channel (the fast path's one flag).
    pub(super) unrestricted: bool,
    /// `acl-pubsub-default allchannels` when the rules are applied: a new selector and `reset`
    /// allow every channel. Not a rule of the user: set before rules are applied.
    pubsub_default_all: bool,
}

impl User {
    /// A new user as ACL SETUSER creates it: off, no password, no rights (no channel either,
    /// as `acl-pubsub-default resetchannels` has it).
    pub fn new(name: &[u8]) -> User {
        User::with_pubsub_default(name, false)
    }

    /// A new user, allowed every channel when `all_channels` (`acl-pubsub-default
    /// allchannels`), which also goes for the selectors and `reset` rules applied to it.
    #[inline(never)]
    pub fn with_pubsub_default(name: &[u8], all_channels: bool) -> User {
        User {
            name: name.to_vec(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            selectors: vec![Selector::new(all_channels)],
            unrestricted: false,
            pubsub_default_all: all_channels,
        }
    }

    /// Sets what `acl-pubsub-default` is for the rules applied next (to an existing user).
    pub fn set_pubsub_default(&mut self, all_channels: bool) {
        self.pubsub_default_all = all_channels;
    }

    /// The default user: `on nopass ~* &* +@all`.
    pub fn default_user() -> User {
        let mut user = User::new(b"default");
        for rule in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = user.apply(rule.as_bytes());
        }
        user
    }

    /// Applies one rule (Redis's ACLSetUser); a selector's rules come in parentheses as one.
    #[inline(never)]
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let result = self.apply_rule(op);
        self.unrestricted = self
            .selectors
            .first()
            .is_some_and(|s| s.allows_everything());
        result
    }

    fn apply_rule(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let is = |word: &str| op.eq_ignore_ascii_case(word.as_bytes());
        if op.is_empty() {
            return Ok(());
        }
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("skip-sanitize-payload") {
            self.sanitize = Some(false);
        } else if is("sanitize-payload") {
            self.sanitize = Some(true);
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if let Some(rest) = op.strip_prefix(b">") {
            self.add_password(hash_password(rest));
        } else if let Some(rest) = op.strip_prefix(b"#") {
            self.add_password(parse_hash(rest)?);
        } else if let Some(rest) = op.strip_prefix(b"<") {
            self.remove_password(hash_password(rest))?;
        } else if let Some(rest) = op.strip_prefix(b"!") {
            self.remove_password(parse_hash(rest)?)?;
        } else if op.first() == Some(&b'(') && op.last() == Some(&b')') {
            let inner = &op[1..op.len() - 1];
            let mut selector = Selector::new(self.pubsub_default_all);
            for rule in crate::protocol::split_args(inner).ok_or(RuleError::Syntax)? {
                selector.apply(&rule)?;
            }
            self.selectors.push(selector);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            self.nopass = false;
            self.passwords.clear();
            self.enabled = false;
            self.sanitize = Some(true);
            self.selectors = vec![Selector::new(self.pubsub_default_all)];
        } else {
            match self.selectors.first_mut() {
                Some(root) => root.apply(op)?,
                None => return Err(RuleError::Syntax),
            }
        }
        Ok(())
    }

    fn add_password(&mut self, hash: [u8; 32]) {
        if !self.passwords.contains(&hash) {
            self.passwords.push(hash);
        }
        self.nopass = false;
    }

    fn remove_password(&mut self, hash: [u8; 32]) -> Result<(), RuleError> {
        let at = self
            .passwords
            .iter()
            .position(|p| *p == hash)
            .ok_or(RuleError::NoSuchPassword)?;
        self.passwords.remove(at);
        Ok(())
    }

    /// `requirepass`: resetpass, then the password, or nopass when it is empty.
    pub fn set_requirepass(&mut self, password: &[u8]) {
        self.nopass = false;
        self.passwords.clear();
        if password.is_empty() {
            self.nopass = true;
        } else {
            self.add_password(hash_password(password));
        }
    }

    /// Whether `password` logs this user in. Every stored hash is compared, in constant time,
    /// whatever matched, so the time taken says nothing of which one did.
    pub fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let given = hash_password(password);
        let mut ok = false;
        for stored in &self.passwords {
            ok |= crate::command::constant_time_eq(stored, &given);
        }
        ok
    }

    /// GETUSER's `flags`.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        match self.sanitize {
            Some(false) => flags.push("skip-sanitize-payload"),
            Some(true) => flags.push("sanitize-payload"),
            None => {}
        }
        flags
    }

    /// The password hashes, in hex.
    pub fn password_hashes(&self) -> Vec<String> {
        self.passwords.iter().map(|p| hex(p)).collect()
    }

    /// The channel patterns of every selector of `self`, when some subscriber of `old` (this
    /// user before a change) may have lost a channel: `None` when a selector allows every
    /// channel, or every pattern of `old` is still there (Redis's ACLKillPubsubClientsIfNeeded).
    pub fn narrowed_channels(&self, old: &User) -> Option<Vec<&[u8]>> {
        if self.selectors.iter().any(|s| s.all_channels) {
            return None;
        }
        let upcoming: Vec<&[u8]> = self
            .selectors
            .iter()
            .flat_map(|s| s.channels.iter().map(Vec::as_slice))
            .collect();
        let kept = old.selectors.iter().all(|s| {
            !s.all_channels && s.channels.iter().all(|c| upcoming.contains(&c.as_slice()))
        });
        (!kept).then_some(upcoming)
    }

    /// The root selector, then the others.
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// The user's rules as ACL LIST shows them (without `user <name>`).
    #[inline(never)]
    pub fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for flag in self.flags() {
            put(&mut out, &[flag.as_bytes(), b" "]);
        }
        for hash in self.password_hashes() {
            put(&mut out, &[b"#", hash.as_bytes(), b" "]);
        }
        for (i, selector) in self.selectors.iter().enumerate() {
            if i == 0 {
                selector.describe(&mut out);
            } else {
                out.extend_from_slice(b" (");
                selector.describe(&mut out);
                out.push(b')');
            }
        }
        out
    }
}

/// A `#`/`!` hash: exactly 64 lower-case hex digits.
fn parse_hash(text: &[u8]) -> Result<[u8; 32], RuleError> {
    if text.len() != 64 {
        return Err(RuleError::BadHash);
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        _ => Err(RuleError::BadHash),
    };
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        if let [high, low] = pair {
            *byte = digit(*high)? << 4 | digit(*low)?;
        }
    }
    Ok(out)
}

/// Joins selector rules spread over several arguments (`(~a*` `+get)`) into one, as Redis's
/// ACLMergeSelectorArguments; `Err(i)` names the argument whose parenthesis is never closed.
#[inline(never)]
pub fn merge_selectors(args: &[&[u8]]) -> Result<Vec<Vec<u8>>, usize> {
    let mut merged = Vec::with_capacity(args.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, &op) in args.iter().enumerate() {
        if let Some((_, selector)) = open.as_mut() {
            selector.push(b' ');
            selector.extend_from_slice(op);
            if op.last() == Some(&b')') {
                if let Some((_, done)) = open.take() {
                    merged.push(done);
                }
            }
            continue;
        }
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((i, op.to_vec()));
            continue;
        }
        merged.push(op.to_vec());
    }
    match open {
        Some((i, _)) => Err(i),
        None => Ok(merged),
    }
}
