//! LCS: the longest common subsequence of two values, as Redis 7.0 computes and reports it.

use super::{int_arg, wrong_arity, Arg, Ctx, Spec, SYNTAX};
use crate::protocol::Reply;

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("lcs", -3, lcs).flags(&["readonly"]).keys(1, 2, 1).doc("string", "key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]", "longest common subsequence of two values"),
];

/// What the request asks for besides the subsequence itself.
#[derive(Debug, Default)]
struct Options {
    len: bool,
    idx: bool,
    with_match_len: bool,
    min_match_len: u64,
}

impl Options {
    fn parse(args: &[Arg<'_>]) -> Result<Options, Reply<'static>> {
        let mut options = Options::default();
        let mut i = 0;
        while let Some(option) = args.get(i) {
            let is = |name: &str| option.eq_ignore_ascii_case(name.as_bytes());
            if is("IDX") {
                options.idx = true;
            } else if is("LEN") {
                options.len = true;
            } else if is("WITHMATCHLEN") {
                options.with_match_len = true;
            } else if let (true, Some(n)) = (is("MINMATCHLEN"), args.get(i + 1)) {
                options.min_match_len = int_arg(n)?.max(0) as u64;
                i += 1;
            } else {
                return Err(SYNTAX);
            }
            i += 1;
        }
        if options.idx && options.len {
            return Err(Reply::error(
                "ERR If you want both the length and indexes, please just use IDX.",
            ));
        }
        Ok(options)
    }
}

fn lcs<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, a, b, rest @ ..] = args else {
        return wrong_arity("lcs");
    };
    let a = ctx.db.get(a).unwrap_or_default().to_vec();
    let b = ctx.db.get(b).unwrap_or_default().to_vec();
    let options = match Options::parse(rest) {
        Ok(options) => options,
        Err(e) => return e,
    };
    // Redis's bound on the (n+1)(m+1) table of 4-byte lengths: at most proto-max-bulk-len
    // bytes, so two long values cannot make one command take gigabytes.
    let cells = (a.len() as u64 + 1).saturating_mul(b.len() as u64 + 1);
    if cells.saturating_mul(4) > ctx.server.config.limits.max_bulk_len as u64 {
        return Reply::error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    let mut table: Vec<u32> = Vec::new();
    if table.try_reserve_exact(cells as usize).is_err() {
        return Reply::error("ERR Insufficient memory, failed allocating transient memory for LCS");
    }
    fill(&mut table, &a, &b);
    walk(&table, &a, &b, &options)
}

/// Fills `table` so that cell `j + (b.len()+1) i` holds the LCS length of `a[..i]` and `b[..j]`.
fn fill(table: &mut Vec<u32>, a: &[u8], b: &[u8]) {
    let width = b.len() + 1;
    table.resize(width * (a.len() + 1), 0);
    for (i, &x) in a.iter().enumerate() {
        // Row i+1 from row i: both are whole rows of the table, so the zips never run short.
        let (done, rest) = table.split_at_mut(width * (i + 1));
        let above = done.get(width * i..).unwrap_or_default();
        let row = rest.get_mut(..width).unwrap_or_default();
        let mut left = 0;
        for ((cell, &y), pair) in row.iter_mut().skip(1).zip(b).zip(above.windows(2)) {
            left = if x == y {
                pair[0] + 1
            } else {
                pair[1].max(left)
            };
            *cell = left;
        }
    }
}

/// Walks the table back from the end as Redis does (on a tie it steps back in `b`), building
/// the subsequence and the matching ranges, and replies as the options ask.
fn walk(table: &[u32], a: &[u8], b: &[u8], options: &Options) -> Reply<'static> {
    let width = b.len() + 1;
    let at = |i: usize, j: usize| table.get(j + width * i).copied().unwrap_or(0);
    let total = at(a.len(), b.len());
    if options.len {
        return Reply::Integer(i64::from(total));
    }
    let mut result = Vec::with_capacity(total as usize);
    let mut matches = Vec::new();
    // The current range: (start in a, end in a, start in b, end in b).
    let mut range: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j) = (a.len(), b.len());
    while let (Some(&x), Some(&y)) = (a.get(i.wrapping_sub(1)), b.get(j.wrapping_sub(1))) {
        let mut emit = false;
        if x == y {
            result.push(x);
            range = Some(match range {
                None => (i - 1, i - 1, j - 1, j - 1),
                // Contiguous with the range so far: extend it backwards.
                Some((sa, ea, sb, eb)) if sa == i && sb == j => (sa - 1, ea, sb - 1, eb),
                Some(current) => {
                    emit = true;
                    current
                }
            });
            emit |= range.is_some_and(|(sa, _, sb, _)| sa == 0 || sb == 0);
            i -= 1;
            j -= 1;
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = range.is_some();
        }
        if let Some(found) = range.filter(|_| emit) {
            if options.idx && (found.1 - found.0 + 1) as u64 >= options.min_match_len {
                matches.push(match_reply(found, options.with_match_len));
            }
            range = None;
        }
    }
    if options.idx {
        return Reply::Map(vec![
            (Reply::bulk(b"matches"), Reply::Array(matches)),
            (Reply::bulk(b"len"), Reply::Integer(i64::from(total))),
        ]);
    }
    result.reverse();
    Reply::bulk_owned(result)
}

/// One IDX entry: the range in the first value, the range in the second, and its length when
/// WITHMATCHLEN asks.
fn match_reply((sa, ea, sb, eb): (usize, usize, usize, usize), with_len: bool) -> Reply<'static> {
    let pair =
        |s: usize, e: usize| Reply::Array(vec![Reply::Integer(s as i64), Reply::Integer(e as i64)]);
    let mut entry = vec![pair(sa, ea), pair(sb, eb)];
    if with_len {
        entry.push(Reply::Integer((ea - sa + 1) as i64));
    }
    Reply::Array(entry)
}
