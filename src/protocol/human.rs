//! Replies for people at a terminal, in redis-cli's format, so a printed string can be pasted
//! back as an argument.

use super::Reply;

/// Appends the human form of `reply` to `out`, ending in a newline.
pub(super) fn encode(reply: &Reply<'_>, out: &mut Vec<u8>) {
    encode_at(reply, 0, out);
}

/// `indent` is the column nested array elements after the first start at.
fn encode_at(reply: &Reply<'_>, indent: usize, out: &mut Vec<u8>) {
    match reply {
        Reply::Status(s) => out.extend_from_slice(s.as_bytes()),
        Reply::Error(e) => {
            out.extend_from_slice(b"(error) ");
            out.extend_from_slice(e);
        }
        Reply::Integer(n) => {
            out.extend_from_slice(b"(integer) ");
            out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
        }
        Reply::Bulk(bytes) | Reply::Double(bytes) => quote(bytes, out),
        Reply::Nil | Reply::NilArray => out.extend_from_slice(b"(nil)"),
        Reply::Text(text) => {
            out.extend_from_slice(text.as_bytes());
            if text.ends_with('\n') {
                return;
            }
        }
        Reply::Map(pairs) => {
            // redis-cli shows a RESP2 map as the flat array it is on the wire.
            let flat = pairs
                .iter()
                .flat_map(|(field, value)| [field.clone(), value.clone()])
                .collect();
            return encode_at(&Reply::Array(flat), indent, out);
        }
        Reply::Many(replies) => {
            for reply in replies {
                encode_at(reply, indent, out);
            }
            return;
        }
        Reply::Array(items) | Reply::Push(items) | Reply::Set(items) if items.is_empty() => {
            out.extend_from_slice(b"(empty array)")
        }
        // A pub/sub message prints as any array does: `1) message`, `2) news`, `3) hello`.
        Reply::Array(items) | Reply::Push(items) | Reply::Set(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.resize(out.len() + indent, b' ');
                }
                numbered(item, i, items.len(), indent, out);
            }
            // Each element already ended its own line.
            return;
        }
    }
    out.push(b'\n');
}

/// Element `index` of an array of `count` at the top level, numbered as [`encode`] numbers it,
/// for a caller that produces an array's elements one at a time (EXEC). An empty array is
/// `(empty array)`, left to the caller.
pub(super) fn encode_item(reply: &Reply<'_>, index: usize, count: usize, out: &mut Vec<u8>) {
    numbered(reply, index, count, 0, out);
}

/// `N) ` right-aligned to the widest number of `count`, then the element.
fn numbered(item: &Reply<'_>, index: usize, count: usize, indent: usize, out: &mut Vec<u8>) {
    let width = count.to_string().len();
    let number = format!("{:>width$}) ", index + 1);
    out.extend_from_slice(number.as_bytes());
    encode_at(item, indent + number.len(), out);
}

/// Prints `bytes` bare when that is unambiguous, otherwise double-quoted with escapes.
pub fn quote(bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.is_empty() && bytes.iter().all(|&b| is_bare(b)) {
        out.extend_from_slice(bytes);
        return;
    }
    out.push(b'"');
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            b' '..=b'~' => out.push(b),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
        }
    }
    out.push(b'"');
}

fn is_bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.:/@+=,".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(reply: &Reply<'_>) -> String {
        let mut out = Vec::new();
        encode(reply, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scalars_look_like_redis_cli() {
        assert_eq!(human(&Reply::OK), "OK\n");
        assert_eq!(human(&Reply::Integer(3)), "(integer) 3\n");
        assert_eq!(human(&Reply::Nil), "(nil)\n");
        assert_eq!(
            human(&Reply::error("ERR syntax error")),
            "(error) ERR syntax error\n"
        );
        assert_eq!(human(&Reply::Array(vec![])), "(empty array)\n");
    }

    #[test]
    fn strings_are_bare_only_when_safe() {
        assert_eq!(human(&Reply::bulk(b"Alice")), "Alice\n");
        assert_eq!(
            human(&Reply::bulk(b"user:1/a@b.c+d=e,f_g-h")),
            "user:1/a@b.c+d=e,f_g-h\n"
        );
        assert_eq!(human(&Reply::bulk(b"hello world")), "\"hello world\"\n");
        assert_eq!(human(&Reply::bulk(b"a\nb")), "\"a\\nb\"\n");
        assert_eq!(human(&Reply::bulk(b"")), "\"\"\n");
        assert_eq!(human(&Reply::bulk(b"\xff")), "\"\\xff\"\n");
        assert_eq!(
            human(&Reply::bulk(b"say \"hi\" \\")),
            "\"say \\\"hi\\\" \\\\\"\n"
        );
    }

    #[test]
    fn quoted_output_parses_back_to_the_same_bytes() {
        let value: Vec<u8> = (0..=255).collect();
        let mut line = b"ECHO ".to_vec();
        quote(&value, &mut line);
        let args = super::super::text::split_args(&line).unwrap();
        assert_eq!(args[1].as_ref(), &value[..]);
    }

    #[test]
    fn arrays_are_numbered_and_nested_like_redis_cli() {
        let flat = Reply::Array(vec![Reply::bulk(b"alpha"), Reply::bulk(b"b c"), Reply::Nil]);
        assert_eq!(human(&flat), "1) alpha\n2) \"b c\"\n3) (nil)\n");
        let scan = Reply::Array(vec![
            Reply::bulk(b"0"),
            Reply::Array(vec![Reply::bulk(b"k1"), Reply::bulk(b"k2")]),
        ]);
        assert_eq!(human(&scan), "1) 0\n2) 1) k1\n   2) k2\n");
        let ten = Reply::Array((0..10).map(Reply::Integer).collect());
        assert!(human(&ten).starts_with(" 1) (integer) 0\n"));
        assert!(human(&ten).ends_with("10) (integer) 9\n"));
    }
}
