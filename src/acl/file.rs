//! The aclfile (Redis's users.acl format): `user <name> <rules...>` a line. Loading is all or
//! nothing; saving writes a temporary file, syncs it and renames it over the old one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::rules::{has_spaces, merge_selectors, User};
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

/// An I/O error as C's strerror words it (without Rust's "(os error N)").
fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Reads and checks every user in `path`; the users only if the whole file is valid.
pub fn load_file(path: &str) -> Result<Vec<User>, FileError> {
    let text = fs::read(path).map_err(|e| {
        FileError::Open(format!(
            "Error loading ACLs, opening file '{path}': {}",
            strerror(&e)
        ))
    })?;
    parse(path, &text)
}

/// Parses an aclfile's text as Redis's ACLLoadFromFile: lines split on single spaces (no
/// quoting), every error collected into one line.
fn parse(path: &str, text: &[u8]) -> Result<Vec<User>, FileError> {
    let mut errors = String::new();
    let mut users: Vec<User> = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let (Some(b"user"), Some(name)) = (words.first().map(|w| &w[..]), words.get(1)) else {
            errors.push_str(&format!(
                "{path}:{number} should start with user keyword followed by the username. "
            ));
            continue;
        };
        let name_text = String::from_utf8_lossy(name);
        if has_spaces(name) {
            errors.push_str(&format!(
                "'{path}:{number}: username '{name_text}' contains invalid characters. "
            ));
            continue;
        }
        if users.iter().any(|u| u.name == *name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{name_text}' found on line {number}. "
            ));
            continue;
        }
        let mut user = User::new(name);
        let Ok(rules) = merge_selectors(words.get(2..).unwrap_or_default()) else {
            errors.push_str(&format!(
                "{path}:{number}: Unmatched parenthesis in selector definition."
            ));
            continue;
        };
        let mut syntax_error = false;
        for rule in rules {
            let rule = rule.trim_ascii();
            if let Err(e) = user.apply(rule) {
                if e == super::RuleError::UnknownName {
                    errors.push_str(&format!(
                        "{path}:{number}: Error in applying operation '{}': {}. ",
                        String::from_utf8_lossy(rule),
                        e.message()
                    ));
                } else if !syntax_error {
                    // Only the first: a later error may follow from it, and may quote a password.
                    errors.push_str(&format!("{path}:{number}: {}. ", e.message()));
                    syntax_error = true;
                }
            }
        }
        users.push(user);
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        errors.push_str(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was \
             performed",
        );
        Err(FileError::Invalid(errors))
    }
}

/// Writes every user to `path` in the aclfile format: a temporary file beside it, fsynced, then
/// renamed over it, so a crash leaves the old file or the new one, never a mix.
pub fn save_file(path: &str, acl: &Acl) -> io::Result<()> {
    let mut text = String::new();
    for user in acl.users() {
        text.push_str("user ");
        text.push_str(&String::from_utf8_lossy(&user.name));
        text.push(' ');
        text.push_str(&user.describe());
        text.push('\n');
    }
    let target = Path::new(path);
    let temp = target.with_file_name(format!(
        "{}.tmp-{}",
        target
            .file_name()
            .map_or_else(|| "users.acl".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let written = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, target)?;
        // The rename is durable once the directory is.
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
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
        let error = parse("users.acl", text).unwrap_err().to_string();
        assert_eq!(
            error,
            "users.acl:3: Error in applying operation '+nosuch': Unknown command or category \
             name in ACL. WARNING: ACL errors detected, no change to the previously active ACL \
             rules was performed"
        );
        let users = parse(
            "users.acl",
            b"user alice on >pw ~a* +get\r\nuser default off\n",
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert!(
            parse("f", b"# comment\n").is_err(),
            "comments are errors, as in Redis"
        );
    }
}
