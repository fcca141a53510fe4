//! The text-line dialect: one request per line, split like redis-cli splits what you type.

use std::borrow::Cow;

use super::{Dialect, Limits, ParseError, ProtocolError, Request};

/// Parses one line (ended by LF, optionally preceded by CR) from the start of `input`.
///
/// Arguments are separated by blanks; `"..."` takes the escapes redis-cli prints (`\n`, `\r`,
/// `\t`, `\b`, `\a`, `\xHH`, `\"`, `\\`), and `'...'` is literal but for `\'`. A line with bad
/// quoting is `Invalid` (its end is known, so the connection goes on); a line longer than the limit
/// is `Fatal`, since where the next request starts is unknown.
pub(super) fn parse<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Result<(Request<'a>, usize), ParseError> {
    let Some(newline) = memchr::memchr(b'\n', input) else {
        // The CR of a CRLF still on its way is not part of the line.
        let line = input.strip_suffix(b"\r").unwrap_or(input);
        return if line.len() > limits.max_inline_len {
            Err(ParseError::Fatal(ProtocolError::InlineTooBig))
        } else {
            Err(ParseError::Incomplete)
        };
    };
    let consumed = newline + 1;
    let line = &input[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > limits.max_inline_len {
        return Err(ParseError::Fatal(ProtocolError::InlineTooBig));
    }
    match split_args(line) {
        Some(args) => Ok((
            Request {
                dialect: Dialect::Text,
                args,
            },
            consumed,
        )),
        None => Err(ParseError::Invalid {
            consumed,
            error: ProtocolError::UnbalancedQuotes,
        }),
    }
}

/// Splits a line into arguments as Redis's `sdssplitargs` does; `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Cow<'_, [u8]>>> {
    let mut args = Vec::new();
    let mut pos = 0;
    loop {
        while line.get(pos).is_some_and(|b| is_blank(*b)) {
            pos += 1;
        }
        if pos >= line.len() {
            return Some(args);
        }
        let (arg, next) = split_one(line, pos)?;
        args.push(arg);
        pos = next;
    }
}

/// Reads the argument starting at `start`; returns it and the position after it.
fn split_one(line: &[u8], start: usize) -> Option<(Cow<'_, [u8]>, usize)> {
    let plain_end = line[start..]
        .iter()
        .position(|&b| is_blank(b) || b == b'"' || b == b'\'')
        .map_or(line.len(), |n| start + n);
    if line.get(plain_end).is_none_or(|&b| is_blank(b)) {
        // The common case: no quotes, so the argument is a slice of the line.
        return Some((Cow::Borrowed(&line[start..plain_end]), plain_end));
    }
    let mut arg = line[start..plain_end].to_vec();
    let mut pos = plain_end;
    loop {
        match line.get(pos) {
            None => return Some((Cow::Owned(arg), pos)),
            Some(&b) if is_blank(b) => return Some((Cow::Owned(arg), pos)),
            Some(b'"') => pos = read_double_quoted(line, pos + 1, &mut arg)?,
            Some(b'\'') => pos = read_single_quoted(line, pos + 1, &mut arg)?,
            Some(&b) => {
                arg.push(b);
                pos += 1;
            }
        }
    }
}

/// Reads a `"..."` body from `pos` (after the opening quote); returns the position after the
/// closing quote, which must be followed by a blank or the end of the line.
fn read_double_quoted(line: &[u8], mut pos: usize, arg: &mut Vec<u8>) -> Option<usize> {
    loop {
        match *line.get(pos)? {
            b'"' => return closed_at(line, pos),
            b'\\' => {
                let escaped = *line.get(pos + 1)?;
                if escaped == b'x' {
                    if let Some(byte) = hex_byte(line.get(pos + 2..pos + 4)) {
                        arg.push(byte);
                        pos += 4;
                        continue;
                    }
                }
                arg.push(match escaped {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                pos += 2;
            }
            b => {
                arg.push(b);
                pos += 1;
            }
        }
    }
}

/// Reads a `'...'` body; only `\'` is an escape.
fn read_single_quoted(line: &[u8], mut pos: usize, arg: &mut Vec<u8>) -> Option<usize> {
    loop {
        match (*line.get(pos)?, line.get(pos + 1)) {
            (b'\\', Some(b'\'')) => {
                arg.push(b'\'');
                pos += 2;
            }
            (b'\'', _) => return closed_at(line, pos),
            (b, _) => {
                arg.push(b);
                pos += 1;
            }
        }
    }
}

/// A closing quote at `pos` must end the argument.
fn closed_at(line: &[u8], pos: usize) -> Option<usize> {
    match line.get(pos + 1) {
        None => Some(pos + 1),
        Some(&b) if is_blank(b) => Some(pos + 1),
        Some(_) => None,
    }
}

fn hex_byte(digits: Option<&[u8]>) -> Option<u8> {
    let [hi, lo] = digits? else { return None };
    let value = |d: u8| char::from(d).to_digit(16);
    Some((value(*hi)? * 16 + value(*lo)?) as u8)
}

/// Blanks as C's `isspace`, plus NUL as `sdssplitargs` treats it.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Option<Vec<String>> {
        split_args(line.as_bytes()).map(|args| {
            args.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
    }

    #[test]
    fn splits_on_blanks_and_unquotes() {
        assert_eq!(
            split("  PUT   name Alice ").unwrap(),
            vec!["PUT", "name", "Alice"]
        );
        assert_eq!(
            split(r#"PUT greeting "hello world""#).unwrap(),
            vec!["PUT", "greeting", "hello world"]
        );
        assert_eq!(
            split(r#"SET k "a\nb\t\"q\"\\""#).unwrap(),
            vec!["SET", "k", "a\nb\t\"q\"\\"]
        );
        assert_eq!(split(r"ECHO 'it\'s'").unwrap(), vec!["ECHO", "it's"]);
        assert_eq!(split(r#"ECHO """#).unwrap(), vec!["ECHO", ""]);
        assert_eq!(split(r#"ECHO ab"c d"e"#), None);
        assert_eq!(split(r#"ECHO ab"c d""#).unwrap(), vec!["ECHO", "abc d"]);
        assert_eq!(split("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn hex_escapes_give_raw_bytes() {
        let args = split_args(br#"SET "\xff\x00\xZZ""#).unwrap();
        assert_eq!(args[1].as_ref(), b"\xff\x00xZZ");
    }

    #[test]
    fn unbalanced_quotes_are_detected() {
        for line in [
            r#"SET k "abc"#,
            "SET k 'abc",
            r#"SET k "abc"d"#,
            r#"SET k "a\"#,
        ] {
            assert_eq!(split(line), None, "{line}");
        }
    }

    #[test]
    fn every_split_point_is_incomplete_until_the_newline() {
        let limits = Limits::default();
        let line = b"PUT greeting \"hello world\"\r\n";
        for cut in 0..line.len() {
            assert_eq!(
                parse(&line[..cut], &limits),
                Err(ParseError::Incomplete),
                "cut at {cut}"
            );
        }
        let (req, used) = parse(line, &limits).unwrap();
        assert_eq!(used, line.len());
        assert_eq!(req.args[2].as_ref(), b"hello world");
    }

    #[test]
    fn bad_quotes_skip_the_line_and_long_lines_are_fatal() {
        let limits = Limits {
            max_inline_len: 16,
            ..Limits::default()
        };
        assert_eq!(
            parse(b"SET \"x\nPING\n", &limits),
            Err(ParseError::Invalid {
                consumed: 7,
                error: ProtocolError::UnbalancedQuotes
            })
        );
        assert_eq!(
            parse(&[b'a'; 17], &limits),
            Err(ParseError::Fatal(ProtocolError::InlineTooBig))
        );
        let mut at_limit = vec![b'a'; 16];
        at_limit.push(b'\r');
        assert_eq!(parse(&at_limit, &limits), Err(ParseError::Incomplete));
        at_limit.push(b'\n');
        assert!(parse(&at_limit, &limits).is_ok());
        assert_eq!(
            parse(b"GET aaaaaaaaaaaaaaaaaaaaa\n", &limits),
            Err(ParseError::Fatal(ProtocolError::InlineTooBig))
        );
    }
}
