//! The replica's side of the link, as pure functions of the bytes the primary sent: the
//! handshake's replies, the PSYNC answer, and the framing of a full sync's payload.
//!
//! The handshake, as Redis 7 does it: `PING`, then in one write `AUTH` (when `masterauth` is
//! set), `REPLCONF listening-port <port>` and `REPLCONF capa eof capa psync2`, and once those
//! are answered `PSYNC <replid> <offset>`.

use std::fmt;

/// Longest reply line accepted from a primary during the handshake: a real one is under 100
/// bytes, so anything longer is not a pocketkv (or Redis) primary.
pub const MAX_LINE: usize = 512;

/// Length of the end-of-payload marker of a `$EOF:` framed full sync.
pub const EOF_MARK: usize = 40;

/// A reply the handshake waits for, in the order they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `+PONG` (or `-NOAUTH`, fine before AUTH).
    Pong,
    /// `+OK` to AUTH.
    Auth,
    /// `+OK` to REPLCONF listening-port (an error is logged and ignored, as Redis does).
    Port,
    /// `+OK` to REPLCONF capa (likewise).
    Capa,
    /// `+FULLRESYNC` or `+CONTINUE`.
    Psync,
}

impl Step {
    /// What was being asked, for log lines.
    pub fn name(self) -> &'static str {
        match self {
            Step::Pong => "PING",
            Step::Auth => "AUTH",
            Step::Port => "REPLCONF listening-port",
            Step::Capa => "REPLCONF capa",
            Step::Psync => "PSYNC",
        }
    }
}

/// The primary's answer to PSYNC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsyncReply {
    /// A full image follows; the stream then continues from `offset` in history `replid`.
    Full {
        /// The primary's replication id.
        replid: String,
        /// The offset the image holds.
        offset: u64,
    },
    /// Only what was missed follows; the primary's id, which may be new (a promotion).
    Continue(Option<String>),
}

/// How a full sync's payload is framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// `$<len>`: exactly this many bytes.
    Length(u64),
    /// `$EOF:<40 bytes>`: bytes until these 40 come.
    Eof([u8; EOF_MARK]),
}

/// Why a link was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// A reply line over `MAX_LINE` bytes, or binary where a line was due.
    NotAPrimary(String),
    /// The primary refused a step; its error text.
    Refused(&'static str, String),
    /// A reply of a shape the step does not expect.
    Unexpected(&'static str, String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NotAPrimary(what) => write!(
                f,
                "the peer is not a pocketkv primary (it sent {what}); is the port right?"
            ),
            LinkError::Refused(step, error) => write!(f, "the primary refused {step}: {error}"),
            LinkError::Unexpected(step, reply) => {
                write!(f, "unexpected reply to {step}: {reply}")
            }
        }
    }
}

impl std::error::Error for LinkError {}

/// One reply line at the start of `input` without its CRLF (or LF), and the bytes it used;
/// None until it is complete.
pub fn line(input: &[u8]) -> Result<Option<(&[u8], usize)>, LinkError> {
    match memchr::memchr(b'\n', input) {
        Some(end) if end <= MAX_LINE => {
            let text = &input[..end];
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            Ok(Some((text, end + 1)))
        }
        Some(_) => Err(LinkError::NotAPrimary(shown(input))),
        None if input.len() > MAX_LINE => Err(LinkError::NotAPrimary(shown(input))),
        None => Ok(None),
    }
}

/// Checks the reply to `step`; `Ok(Some(..))` only for the PSYNC answer.
pub fn check(step: Step, reply: &[u8]) -> Result<Option<PsyncReply>, LinkError> {
    let text = String::from_utf8_lossy(reply).into_owned();
    let first = reply.first().copied();
    if !matches!(first, Some(b'+' | b'-')) {
        return Err(LinkError::NotAPrimary(shown(reply)));
    }
    let error = first == Some(b'-');
    let body = &text[1..];
    match step {
        Step::Pong if !error && body == "PONG" => Ok(None),
        // A primary with a password answers PING so; the AUTH that follows settles it.
        Step::Pong if body.starts_with("NOAUTH") => Ok(None),
        Step::Pong | Step::Auth if error => Err(LinkError::Refused(step.name(), body.into())),
        Step::Auth if body == "OK" => Ok(None),
        // Old primaries may not know these options; Redis goes on without them too.
        Step::Port | Step::Capa => Ok(None),
        Step::Psync if error => Err(LinkError::Refused(step.name(), body.into())),
        Step::Psync => psync_reply(body)
            .map(Some)
            .ok_or_else(|| LinkError::Unexpected(step.name(), body.into())),
        _ => Err(LinkError::Unexpected(step.name(), body.into())),
    }
}

fn psync_reply(body: &str) -> Option<PsyncReply> {
    let mut words = body.split(' ');
    match words.next()? {
        "FULLRESYNC" => {
            let replid = words.next().filter(|id| id.len() == 40)?.to_string();
            let offset = words.next()?.parse().ok()?;
            Some(PsyncReply::Full { replid, offset })
        }
        "CONTINUE" => {
            let replid = words.next().filter(|id| id.len() == 40).map(String::from);
            Some(PsyncReply::Continue(replid))
        }
        _ => None,
    }
}

/// The payload header after `+FULLRESYNC`: `$EOF:<mark>` or `$<len>`.
pub fn framing(header: &[u8]) -> Result<Framing, LinkError> {
    let bad = || LinkError::Unexpected("the full sync's header", shown(header));
    let rest = header.strip_prefix(b"$").ok_or_else(bad)?;
    if let Some(mark) = rest.strip_prefix(b"EOF:") {
        return mark.try_into().map(Framing::Eof).map_err(|_| bad());
    }
    std::str::from_utf8(rest)
        .ok()
        .and_then(|n| n.parse().ok())
        .map(Framing::Length)
        .ok_or_else(bad)
}

/// `bytes` as a log line may show them: the first 60, escaped.
fn shown(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(60)];
    format!("{:?}", String::from_utf8_lossy(cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked_step_by_step() {
        assert_eq!(line(b"+PONG\r\n+OK"), Ok(Some((&b"+PONG"[..], 7))));
        assert_eq!(line(b"+PO"), Ok(None));
        assert!(line(&[b'x'; 600]).is_err());
        assert_eq!(check(Step::Pong, b"+PONG"), Ok(None));
        assert_eq!(
            check(Step::Pong, b"-NOAUTH Authentication required."),
            Ok(None)
        );
        assert!(matches!(
            check(Step::Pong, b"HTTP/1.1 400 Bad Request"),
            Err(LinkError::NotAPrimary(_))
        ));
        assert!(matches!(
            check(Step::Auth, b"-WRONGPASS no"),
            Err(LinkError::Refused("AUTH", _))
        ));
        assert_eq!(check(Step::Capa, b"-ERR what"), Ok(None));
        let id = "a".repeat(40);
        assert_eq!(
            check(Step::Psync, format!("+FULLRESYNC {id} 42").as_bytes()),
            Ok(Some(PsyncReply::Full {
                replid: id.clone(),
                offset: 42
            }))
        );
        assert_eq!(
            check(Step::Psync, format!("+CONTINUE {id}").as_bytes()),
            Ok(Some(PsyncReply::Continue(Some(id))))
        );
        assert!(check(Step::Psync, b"+FULLRESYNC x 1").is_err());
        assert_eq!(framing(b"$12"), Ok(Framing::Length(12)));
        assert_eq!(
            framing(&[&b"$EOF:"[..], &[b'z'; 40]].concat()),
            Ok(Framing::Eof([b'z'; 40]))
        );
        assert!(framing(b"$EOF:short").is_err());
        assert!(framing(b"*1").is_err());
    }
}
