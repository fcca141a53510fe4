//! The body of `POST /v1/tx`: a JSON array of commands, each an array of arguments that are
//! strings (or numbers, taken as written), or `{"base64": "..."}` for bytes that are not UTF-8
//! (the form the replies use for them). A parser for exactly that shape, a pure function of
//! the bytes: serde_json's generic `Value` would add several kilobytes to the static binary for
//! two levels of arrays of strings.

/// The commands in `input`, each a list of arguments; `None` when `input` is not a JSON array
/// of arrays of strings and numbers.
pub fn parse_commands(input: &[u8]) -> Option<Vec<Vec<Vec<u8>>>> {
    // JSON text is UTF-8; checking it once lets strings be copied byte by byte.
    std::str::from_utf8(input).ok()?;
    let mut cursor = Cursor { input, pos: 0 };
    let commands = cursor.array(|cursor| cursor.array(Cursor::argument))?;
    cursor.skip_space();
    (cursor.pos == input.len()).then_some(commands)
}

struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// `[ item, ... ]`.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.skip_space();
        if self.next()? != b'[' {
            return None;
        }
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Some(items);
        }
        loop {
            items.push(item(self)?);
            self.skip_space();
            match self.next()? {
                b',' => {}
                b']' => return Some(items),
                _ => return None,
            }
        }
    }

    fn argument(&mut self) -> Option<Vec<u8>> {
        self.skip_space();
        match self.peek()? {
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(),
            b'{' => self.base64_object(),
            _ => None,
        }
    }

    /// `{"base64": "..."}`: the bytes of standard base64 with padding.
    fn base64_object(&mut self) -> Option<Vec<u8>> {
        self.pos += 1;
        self.skip_space();
        if self.peek() != Some(b'"') || self.string()? != b"base64" {
            return None;
        }
        self.skip_space();
        if self.next()? != b':' {
            return None;
        }
        self.skip_space();
        if self.peek() != Some(b'"') {
            return None;
        }
        let bytes = base64_decode(&self.string()?)?;
        self.skip_space();
        (self.next()? == b'}').then_some(bytes)
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => return Some(out),
                b'\\' => {
                    let escaped = match self.next()? {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 8,
                        b'f' => 12,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let c = self.unicode_escape()?;
                            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                            continue;
                        }
                        _ => return None,
                    };
                    out.push(escaped);
                }
                0..=0x1f => return None,
                byte => out.push(byte),
            }
        }
    }

    /// The character of a `\u` escape (its `XXXX` next), joining a surrogate pair.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if !(0xd800..0xdc00).contains(&first) {
            return char::from_u32(first);
        }
        if self.next()? != b'\\' || self.next()? != b'u' {
            return None;
        }
        let second = self.hex4()?;
        if !(0xdc00..0xe000).contains(&second) {
            return None;
        }
        char::from_u32(0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00))
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut value = 0;
        for _ in 0..4 {
            value = value * 16 + char::from(self.next()?).to_digit(16)?;
        }
        Some(value)
    }

    /// A number as JSON writes it, kept as its text.
    fn number(&mut self) -> Option<Vec<u8>> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        self.input.get(start..self.pos).map(<[u8]>::to_vec)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }
}

/// Standard base64 with padding (RFC 4648); `None` if malformed.
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    if text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (i, quad) in text.chunks_exact(4).enumerate() {
        let last = i == text.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut bits = 0u32;
        for &c in &quad[..4 - pad] {
            bits = bits << 6 | value(c)?;
        }
        bits <<= 6 * pad as u32;
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(commands: &[&[&str]]) -> Vec<Vec<Vec<u8>>> {
        commands
            .iter()
            .map(|c| c.iter().map(|a| a.as_bytes().to_vec()).collect())
            .collect()
    }

    #[test]
    fn arrays_of_strings_and_numbers() {
        assert_eq!(parse_commands(b" [ ] "), Some(vec![]));
        assert_eq!(
            parse_commands(br#"[["SET","a","1"], ["INCRBY", "a", -12.5e+3], [] ]"#),
            Some(args(&[
                &["SET", "a", "1"],
                &["INCRBY", "a", "-12.5e+3"],
                &[]
            ]))
        );
        assert_eq!(
            parse_commands(br#"[["\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"]]"#),
            Some(args(&[&["\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1f600}"]]))
        );
        assert_eq!(
            parse_commands("[[\"é\"]]".as_bytes()),
            Some(args(&[&["é"]]))
        );
    }

    #[test]
    fn base64_arguments() {
        assert_eq!(
            parse_commands(br#"[["GET", { "base64" : "/wA=" }, {"base64":""}]]"#),
            Some(vec![vec![b"GET".to_vec(), vec![0xff, 0], vec![]]])
        );
        for bad in [
            &br#"[[{"base64":"/wA"}]]"#[..],
            br#"[[{"base64":"/wA="]]"#,
            br#"[[{"hex":"ff"}]]"#,
            br#"[[{"base64":1}]]"#,
            br#"[[{}]]"#,
        ] {
            assert_eq!(
                parse_commands(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            &b""[..],
            b"{}",
            b"[1]",
            b"[[true]]",
            b"[[null]]",
            b"[[\"a\"]",
            b"[[\"a\"]]x",
            b"[[\"a\",]]",
            b"[[\"a\"],]",
            b"[[01]]",
            b"[[1.]]",
            b"[[-]]",
            b"[[\"\\x\"]]",
            b"[[\"\\ud83d\"]]",
            b"[[\"\\udc00\"]]",
            b"[[\"a\nb\"]]",
            b"[[\"\xff\"]]",
            b"[[[\"a\"]]]",
        ] {
            assert_eq!(parse_commands(bad), None, "{}", bad.escape_ascii());
        }
    }
}
