//! The append-only log's file format: a header line, then self-delimiting records.
//!
//! ```text
//! POCKETKV-LOG 1\n
//! [len: u32 LE][crc32: u32 LE][len bytes: one unit as RESP multi-bulk requests]
//! ...
//! ```
//! The checksum covers the payload. A record cut short by the end of the file, or whose checksum
//! fails when nothing follows it, is a torn tail (a crash in the middle of an append): it is cut
//! off with a warning. A bad record with more data after it is damage in the middle, which stops
//! start-up unless repair was asked for.

use std::fmt;
use std::path::{Path, PathBuf};

/// First bytes of every log segment.
pub const LOG_HEADER: &[u8] = b"POCKETKV-LOG 1\n";

/// Bytes before each record's payload.
pub const RECORD_HEADER: usize = 8;

/// Appends one record holding `payload` to `out`.
pub fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What reading a segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Payloads of the good records, in order.
    pub records: Vec<Vec<u8>>,
    /// Length of the good prefix: header plus good records.
    pub good_len: u64,
    /// What was cut off after the good prefix, if anything.
    pub dropped: Option<Dropped>,
}

/// A part of a segment that could not be used.
#[derive(Debug, PartialEq, Eq)]
pub struct Dropped {
    /// Where the bad part starts.
    pub offset: u64,
    /// How many bytes it spans, to the end of the file.
    pub bytes: u64,
    /// True when it was a torn last record; false when good-looking data followed the damage.
    pub torn_tail: bool,
}

/// Why a log segment could not be read.
#[derive(Debug)]
pub enum LogError {
    /// The file could not be read.
    Unreadable(PathBuf, std::io::Error),
    /// The file does not start with the log header.
    WrongFormat(PathBuf),
    /// A bad record with data after it; start-up stops unless repair is asked for.
    Damaged {
        /// The segment.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong there.
        why: &'static str,
    },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Unreadable(path, e) => write!(f, "cannot read {}: {e}", path.display()),
            LogError::WrongFormat(path) => write!(
                f,
                "{} is not a pocketkv log (it does not start with {:?}); the file was left untouched",
                path.display(),
                String::from_utf8_lossy(LOG_HEADER).trim_end()
            ),
            LogError::Damaged { path, offset, why } => write!(
                f,
                "{} is damaged at byte {offset} ({why}) with more records after it; \
                 start with --aof-repair yes to cut the log there (what follows is dropped and \
                 logged), or restore the file",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LogError {}

/// Reads a segment from `bytes`. `max_record` bounds a believable record length.
///
/// With `repair`, damage in the middle is cut off like a torn tail instead of being an error.
pub fn decode_segment(
    path: &Path,
    bytes: &[u8],
    max_record: usize,
    repair: bool,
) -> Result<Segment, LogError> {
    // A crash right after creating the file can leave it empty or with a partial header.
    if bytes.len() < LOG_HEADER.len() && LOG_HEADER.starts_with(bytes) {
        return Ok(Segment {
            records: Vec::new(),
            good_len: 0,
            dropped: (!bytes.is_empty()).then_some(Dropped {
                offset: 0,
                bytes: bytes.len() as u64,
                torn_tail: true,
            }),
        });
    }
    if !bytes.starts_with(LOG_HEADER) {
        return Err(LogError::WrongFormat(path.to_path_buf()));
    }
    let mut segment = Segment::default();
    let mut pos = LOG_HEADER.len();
    while pos < bytes.len() {
        match read_record(&bytes[pos..], max_record) {
            Ok((payload, used)) => {
                segment.records.push(payload.to_vec());
                pos += used;
            }
            Err((why, ends_file)) => {
                if !ends_file && !repair {
                    return Err(LogError::Damaged {
                        path: path.to_path_buf(),
                        offset: pos as u64,
                        why,
                    });
                }
                segment.dropped = Some(Dropped {
                    offset: pos as u64,
                    bytes: (bytes.len() - pos) as u64,
                    torn_tail: ends_file,
                });
                break;
            }
        }
    }
    segment.good_len = pos as u64;
    Ok(segment)
}

/// One record from the start of `bytes`: its payload and length, or what is wrong and whether
/// the bad record reaches the end of the file (a torn tail).
fn read_record(bytes: &[u8], max_record: usize) -> Result<(&[u8], usize), (&'static str, bool)> {
    let Some((header, rest)) = bytes.split_first_chunk::<RECORD_HEADER>() else {
        return Err(("record header cut short", true));
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if len > max_record {
        // A length no writer would produce: torn garbage at the end, or damage.
        return Err(("impossible record length", rest.len() <= max_record));
    }
    let Some(payload) = rest.get(..len) else {
        return Err(("record cut short", true));
    };
    if crc32(payload) != crc {
        return Err(("checksum mismatch", rest.len() == len));
    }
    Ok((payload, RECORD_HEADER + len))
}

/// CRC-32 (IEEE 802.3, as zlib computes it).
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// File name of segment `seq` for the base name `base` (`appendonly` → `appendonly.7.aof`).
pub fn segment_name(base: &str, seq: u64) -> String {
    format!("{base}.{seq}.aof")
}

/// Every segment of `base` in `dir`, in sequence order (an unreadable directory lists none).
pub fn list_segments(dir: &Path, base: &str) -> Vec<(u64, PathBuf)> {
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let seq = segment_seq(base, name.to_str()?)?;
            Some((seq, entry.path()))
        })
        .collect();
    segments.sort();
    segments
}

/// The sequence number in a segment's file name, if `name` is one of `base`'s segments.
pub fn segment_seq(base: &str, name: &str) -> Option<u64> {
    name.strip_prefix(base)?
        .strip_prefix('.')?
        .strip_suffix(".aof")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = LOG_HEADER.to_vec();
        for p in payloads {
            encode_record(p, &mut out);
        }
        out
    }

    fn read(bytes: &[u8], repair: bool) -> Result<Segment, LogError> {
        decode_segment(Path::new("/d/appendonly.1.aof"), bytes, 1 << 20, repair)
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn records_round_trip() {
        let bytes = log_of(&[b"one", b"", b"three\r\n"]);
        let segment = read(&bytes, false).unwrap();
        assert_eq!(
            segment.records,
            vec![b"one".to_vec(), vec![], b"three\r\n".to_vec()]
        );
        assert_eq!(segment.good_len, bytes.len() as u64);
        assert_eq!(segment.dropped, None);
    }

    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail() {
        let full = log_of(&[b"first", b"second record"]);
        let first_end = LOG_HEADER.len() + RECORD_HEADER + 5;
        for cut in first_end + 1..full.len() {
            let segment = read(&full[..cut], false).unwrap();
            assert_eq!(segment.records, vec![b"first".to_vec()], "cut at {cut}");
            assert_eq!(segment.good_len, first_end as u64);
            let dropped = segment.dropped.unwrap();
            assert!(dropped.torn_tail);
            assert_eq!(
                (dropped.offset, dropped.bytes),
                (first_end as u64, (cut - first_end) as u64)
            );
        }
    }

    #[test]
    fn a_garbled_last_record_is_torn_but_damage_before_more_records_is_refused() {
        let mut bytes = log_of(&[b"first", b"second"]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let segment = read(&bytes, false).unwrap();
        assert!(segment.dropped.unwrap().torn_tail);

        let mut bytes = log_of(&[b"first", b"second", b"third"]);
        let second_payload = LOG_HEADER.len() + RECORD_HEADER + 5 + RECORD_HEADER;
        bytes[second_payload] ^= 0xff;
        let err = read(&bytes, false).unwrap_err().to_string();
        assert!(
            err.contains("/d/appendonly.1.aof is damaged at byte 28 (checksum mismatch)"),
            "{err}"
        );
        let repaired = read(&bytes, true).unwrap();
        assert_eq!(repaired.records, vec![b"first".to_vec()]);
        let dropped = repaired.dropped.unwrap();
        assert!(!dropped.torn_tail);
        assert_eq!(dropped.offset, 28);
    }

    #[test]
    fn headers_empty_files_and_other_formats() {
        assert_eq!(read(b"", false).unwrap(), Segment::default());
        assert!(
            read(b"POCKETKV-", false)
                .unwrap()
                .dropped
                .unwrap()
                .torn_tail
        );
        let err = read(b"{\"format\":\"pocketkv-snapshot\"}", false).unwrap_err();
        assert!(err.to_string().contains("is not a pocketkv log"), "{err}");
    }

    #[test]
    fn absurd_lengths_are_not_trusted() {
        let mut bytes = log_of(&[b"ok"]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        let segment = read(&bytes, false).unwrap();
        assert_eq!(segment.records.len(), 1);
        assert!(segment.dropped.unwrap().torn_tail);
    }

    #[test]
    fn segment_names_parse_back() {
        assert_eq!(segment_name("appendonly", 7), "appendonly.7.aof");
        assert_eq!(segment_seq("appendonly", "appendonly.7.aof"), Some(7));
        assert_eq!(segment_seq("appendonly", "appendonly.x.aof"), None);
        assert_eq!(segment_seq("appendonly", "other.7.aof"), None);
        assert_eq!(segment_seq("appendonly", "appendonly.7.aof.tmp"), None);
    }
}
