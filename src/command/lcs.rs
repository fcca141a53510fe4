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
    ctx.read_lookup(a);
    let a = ctx.db.get(a).unwrap_or_default().to_vec();
    ctx.read_lookup(b);
    let b = ctx.db.get(b).unwrap_or_default().to_vec();
    let options = match Options::parse(rest) {
        Ok(options) => options,
        Err(e) => return e,
    };
    // Redis's bound on its (n+1)(m+1) table of 4-byte lengths, kept so the same requests are
    // refused with the same error; pocketkv's own table is 32 times smaller (below).
    let cells = (a.len() as u64 + 1).saturating_mul(b.len() as u64 + 1);
    if cells.saturating_mul(4) > ctx.server.config.limits.max_bulk_len as u64 {
        return Reply::error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    // LEN needs no table at all.
    let words = if options.len { 0 } else { cells.div_ceil(64) };
    let mut steps: Vec<u64> = Vec::new();
    if steps.try_reserve_exact(words as usize).is_err() {
        return Reply::error("ERR Insufficient memory, failed allocating transient memory for LCS");
    }
    steps.resize(words as usize, 0);
    let total = fill(&mut steps, &a, &b);
    if options.len {
        return Reply::Integer(i64::from(total));
    }
    walk(&steps, total, &a, &b, &options)
}

/// Where Redis's walk back from cell (i, j) goes when `a[i-1]` and `b[j-1]` differ: up (to
/// i-1) when LCS(i-1, j) > LCS(i, j-1), else left. That one bit per cell is all the walk reads of
/// Redis's table of lengths, so it is all pocketkv keeps, with two rows of lengths to compute it.
/// Returns the LCS length; `steps` (empty for LEN) gets bit `j + (b.len()+1) i`.
fn fill(steps: &mut [u64], a: &[u8], b: &[u8]) -> u32 {
    if a.is_empty() {
        // No rows either: with one value empty they could be larger than Redis's whole table.
        return 0;
    }
    let width = b.len() + 1;
    let (mut above, mut row) = (vec![0u32; width], vec![0u32; width]);
    for (i, &x) in a.iter().enumerate() {
        let mut left = 0;
        let cells = row.iter_mut().skip(1).zip(b).zip(above.windows(2));
        for (j, ((cell, &y), pair)) in cells.enumerate() {
            left = if x == y {
                pair[0] + 1
            } else {
                if pair[1] > left {
                    let bit = j + 1 + width * (i + 1);
                    if let Some(word) = steps.get_mut(bit / 64) {
                        *word |= 1 << (bit % 64);
                    }
                }
                pair[1].max(left)
            };
            *cell = left;
        }
        std::mem::swap(&mut above, &mut row);
    }
    above.last().copied().unwrap_or(0)
}

/// Walks back from the end as Redis does, building the subsequence and the matching ranges,
/// and replies as the options ask.
fn walk(steps: &[u64], total: u32, a: &[u8], b: &[u8], options: &Options) -> Reply<'static> {
    let width = b.len() + 1;
    let up = |i: usize, j: usize| {
        let bit = j + width * i;
        steps
            .get(bit / 64)
            .is_some_and(|word| word >> (bit % 64) & 1 == 1)
    };
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
            if up(i, j) {
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
