//! Redis's glob patterns (`*`, `?`, `[abc]`, `[^a-z]`, `\x`), matched in O(pattern × text).

/// True when `text` matches the Redis glob `pattern`.
///
/// Uses the classic one-backtrack-point algorithm rather than Redis's recursion, so patterns like
/// `a*a*a*a*b` cannot take exponential time.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    if text.is_empty() {
        // Redis's matcher never enters its loop for an empty key: only "" (and the lone "*"
        // that KEYS and SCAN treat as "everything") match it; "**" does not.
        return pattern.is_empty() || pattern == b"*";
    }
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index it absorbed to).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if pattern.get(p) == Some(&b'*') {
            p += 1;
            star = Some((p, t));
            continue;
        }
        if let Some(next) = match_one(pattern, p, text[t]) {
            p = next;
            t += 1;
            continue;
        }
        match star {
            Some((after, absorbed)) => {
                p = after;
                t = absorbed + 1;
                star = Some((after, absorbed + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&b| b == b'*')
}

/// If the single-character element of `pattern` at `p` matches `c`, the index after it.
fn match_one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match *pattern.get(p)? {
        b'?' => Some(p + 1),
        b'[' => match_class(pattern, p + 1, c),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        literal => (literal == c).then_some(p + 1),
    }
}

/// Matches `c` against the class whose body starts at `p` (after `[`); returns the index after
/// the closing `]`, or the pattern's end when the class is unterminated, as Redis does.
fn match_class(pattern: &[u8], mut p: usize, c: u8) -> Option<usize> {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(p) {
            None => break,
            Some(b']') => {
                p += 1;
                break;
            }
            Some(b'\\') if p + 1 < pattern.len() => {
                matched |= pattern[p + 1] == c;
                p += 2;
            }
            Some(&lo) if pattern.get(p + 1) == Some(&b'-') && p + 2 < pattern.len() => {
                let hi = pattern[p + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                matched |= (lo..=hi).contains(&c);
                p += 3;
            }
            Some(&b) => {
                matched |= b == c;
                p += 1;
            }
        }
    }
    (matched != negate).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(pattern: &str, text: &str) -> bool {
        glob_match(pattern.as_bytes(), text.as_bytes())
    }

    #[test]
    fn redis_documented_examples() {
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && m("h?llo", "hxllo"));
        assert!(m("h*llo", "hllo") && m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hello") && m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && m("h[^e]llo", "hbllo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hallo") && m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m(r"h\*llo", "h*llo") && !m(r"h\*llo", "hello"));
    }

    #[test]
    fn stars_anchor_and_backtrack() {
        assert!(m("*", "") && m("*", "anything") && m("**", "x"));
        assert!(m("user:*", "user:1") && !m("user:*", "xuser:1"));
        assert!(m("*:1", "user:1") && !m("*:1", "user:12"));
        assert!(m("a*b*c", "aXbYc") && !m("a*b*c", "aXbY"));
        assert!(!m("", "a") && m("", ""));
        assert!(m("*", "") && !m("**", "") && !m("?", "") && !m("a*", ""));
        assert!(m("[z-a]", "m"), "reversed ranges are swapped");
        assert!(
            m("[abc", "b"),
            "an unterminated class ends at the pattern's end"
        );
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "a*".repeat(50));
        assert!(!m(&pattern, &text));
    }
}
