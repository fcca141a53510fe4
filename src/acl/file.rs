//! The aclfile (Redis's users.acl format): `user <name> <rules...>` a line. Loading is all or
//! nothing; saving writes a temporary file, syncs it and renames it over the old one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::rules::{has_spaces, merge_selectors, put, User};
use super::Acl;

/// Why the aclfile could not be loaded or saved; the text is Redis's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// The file cannot be read.
    Open(String),
    /// Lines with errors; nothing was loaded.
    Invalid(String),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Open(text) | FileError::Invalid(text) => f.write_str(text),
        }
    }
}

/// An I/O error as C's strerror words it (without Rust's "(os error N)"), in glibc's words, which
/// redis-server's errors carry: the static builds' musl words a few errors differently.
pub fn strerror(e: &io::Error) -> String {
    let glibc = match e.raw_os_error() {
        Some(libc::EIO) => Some("Input/output error"),
        Some(libc::ENAMETOOLONG) => Some("File name too long"),
        Some(libc::EDQUOT) => Some("Disk quota exceeded"),
        _ => None,
    };
    if let Some(text) = glibc {
        return text.to_string();
    }
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Reads and checks every user in `path`; the users only if the whole file is valid.
/// `all_channels`: `acl-pubsub-default allchannels`.
pub fn load_file(path: &str, all_channels: bool) -> Result<Vec<User>, FileError> {
    let text = fs::read(path).map_err(|e| {
        FileError::Open(format!(
            "Error loading ACLs, opening file '{path}': {}",
            strerror(&e)
        ))
    })?;
    parse(path, &text, all_channels)
}

/// Parses an aclfile's text as Redis's ACLLoadFromFile: lines split on single spaces (no
/// quoting), every error collected into one line.
fn parse(path: &str, text: &[u8], all_channels: bool) -> Result<Vec<User>, FileError> {
    let mut errors = Vec::new();
    // Pieces pushed by one shared function rather than format!: this runs rarely, and each
    // format! call costs code in a binary with a size limit.
    let path = path.as_bytes();
    let mut note = |parts: &[&[u8]]| put(&mut errors, parts);
    let mut users: Vec<User> = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let mut number = itoa::Buffer::new();
        let number = number.format(index + 1).as_bytes();
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let (Some(b"user"), Some(name)) = (words.first().map(|w| &w[..]), words.get(1)) else {
            let what = b" should start with user keyword followed by the username. ";
            note(&[path, b":", number, what]);
            continue;
        };
        if has_spaces(name) {
            let what = b"' contains invalid characters. ";
            note(&[b"'", path, b":", number, b": username '", name, what]);
            continue;
        }
        if users.iter().any(|u| u.name == *name) {
            note(&[
                b"WARNING: Duplicate user '",
                name,
                b"' found on line ",
                number,
                b". ",
            ]);
            continue;
        }
        let mut user = User::with_pubsub_default(name, all_channels);
        let Ok(rules) = merge_selectors(words.get(2..).unwrap_or_default()) else {
            let what = b": Unmatched parenthesis in selector definition.";
            note(&[path, b":", number, what]);
            continue;
        };
        let mut syntax_error = false;
        for rule in rules {
            let rule = rule.trim_ascii();
            if let Err(e) = user.apply(rule) {
                let message = e.message().as_bytes();
                if e == super::RuleError::UnknownName {
                    let what = b": Error in applying operation '";
                    note(&[path, b":", number, what, rule, b"': ", message, b". "]);
                } else if !syntax_error {
                    // Only the first: a later error may follow from it, and may quote a password.
                    note(&[path, b":", number, b": ", message, b". "]);
                    syntax_error = true;
                }
            }
        }
        users.push(user);
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        errors.extend_from_slice(
            b"WARNING: ACL errors detected, no change to the previously active ACL rules was \
              performed",
        );
        Err(FileError::Invalid(
            String::from_utf8_lossy(&errors).into_owned(),
        ))
    }
}

/// Writes every user to `path` in the aclfile format: a temporary file beside it, fsynced, then
/// renamed over it, so a crash leaves the old file or the new one, never a mix.
pub fn save_file(path: &str, acl: &Acl) -> io::Result<()> {
    let mut text = Vec::new();
    for user in acl.users() {
        put(
            &mut text,
            &[b"user ", &user.name, b" ", &user.describe(), b"\n"],
        );
    }
    let mut temp = path.to_string();
    temp.push_str(".tmp-");
    temp.push_str(itoa::Buffer::new().format(std::process::id()));
    let written = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        // The rename is durable once the directory is.
        match Path::new(path).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
            _ => Ok(()),
        }
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_bad_line_loads_nothing_and_names_the_line() {
        let text = b"user alice on >pw ~a* +get\n\nuser bob on +nosuch\nuser carol on ~x ~*\n";
        let error = parse("users.acl", text, false).unwrap_err().to_string();
        assert_eq!(
            error,
            "users.acl:3: Error in applying operation '+nosuch': Unknown command or category \
             name in ACL. WARNING: ACL errors detected, no change to the previously active ACL \
             rules was performed"
        );
        let users = parse(
            "users.acl",
            b"user alice on >pw ~a* +get\r\nuser default off\n",
            false,
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert!(
            parse("f", b"# comment\n", false).is_err(),
            "comments are errors, as in Redis"
        );
    }
}
