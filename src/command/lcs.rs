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
            match option.to_ascii_uppercase().as_slice() {
                b"IDX" => options.idx = true,
                b"LEN" => options.len = true,
                b"WITHMATCHLEN" => options.with_match_len = true,
                b"MINMATCHLEN" if i + 1 < args.len() => {
                    i += 1;
                    options.min_match_len = int_arg(&args[i])?.max(0) as u64;
                }
                _ => return Err(SYNTAX),
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
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[j + width * i] = if a[i - 1] == b[j - 1] {
                table[j - 1 + width * (i - 1)] + 1
            } else {
                table[j + width * (i - 1)].max(table[j - 1 + width * i])
            };
        }
    }
}

/// Walks the table back from the end as Redis does (on a tie it steps back in `b`), building
/// the subsequence and the matching ranges, and replies as the options ask.
fn walk(table: &[u32], a: &[u8], b: &[u8], options: &Options) -> Reply<'static> {
    let width = b.len() + 1;
    let at = |i: usize, j: usize| table[j + width * i];
    let total = at(a.len(), b.len());
    if options.len {
        return Reply::Integer(i64::from(total));
    }
    let mut result = vec![0u8; total as usize];
    let mut left = total as usize;
    let mut matches = Vec::new();
    // The current range: (start in a, end in a, start in b, end in b).
    let mut range: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            left -= 1;
            result[left] = a[i - 1];
            range = Some(match range {
                None => (i - 1, i - 1, j - 1, j - 1),
                // Contiguous with the range so far: extend it backwards.
                Some((sa, ea, sb, eb)) if sa == i && sb == j => (sa - 1, ea, sb - 1, eb),
                Some(current) => {
                    emit = true;
                    current
                }
            });
            if range.is_some_and(|(sa, _, sb, _)| sa == 0 || sb == 0) {
                emit = true;
            }
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
        if let (true, Some((sa, ea, sb, eb))) = (emit, range) {
            let len = (ea - sa + 1) as u64;
            if options.idx && len >= options.min_match_len {
                let pair = |s: usize, e: usize| {
                    Reply::Array(vec![Reply::Integer(s as i64), Reply::Integer(e as i64)])
                };
                let mut entry = vec![pair(sa, ea), pair(sb, eb)];
                if options.with_match_len {
                    entry.push(Reply::Integer(len as i64));
                }
                matches.push(Reply::Array(entry));
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
    Reply::bulk_owned(result)
}
