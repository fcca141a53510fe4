//! The compressed snapshot container (`--snapshot-compression lz4`): the JSON snapshot cut into
//! chunks of at most 1 MiB, each compressed on its own with the LZ4 block format, so writing
//! needs two chunk buffers (about 2.2 MiB) whatever the size of the data.
//!
//! ```text
//! magic     8 bytes   \x89 p k v - l z 4   (0x89 can never start a JSON snapshot)
//! raw_len   u64 LE    bytes of JSON the chunks hold
//! chunks    each: [uncompressed len: u32 LE][compressed len: u32 LE][crc32 of the compressed
//!           bytes: u32 LE][compressed bytes]; up to the end of the file
//! ```
//! The loader recognises the magic whatever `snapshot-compression` says.

use std::io::{self, Seek, SeekFrom, Write};

use lz4_flex::block::{compress_into, decompress_into, get_maximum_output_size};

use super::log::crc32;

/// How a snapshot is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain JSON.
    No,
    /// The LZ4 container above.
    Lz4,
}

impl Compression {
    /// The setting's value.
    pub fn name(self) -> &'static str {
        match self {
            Compression::No => "no",
            Compression::Lz4 => "lz4",
        }
    }
}

/// First bytes of a compressed snapshot.
pub const MAGIC: [u8; 8] = *b"\x89pkv-lz4";
/// The byte that marks a file as some compressed container rather than JSON.
pub const MARK: u8 = 0x89;
/// Bytes of JSON in one chunk, at most.
pub const CHUNK: usize = 1 << 20;
/// Magic plus the total length.
const HEADER: usize = 16;
/// A chunk's lengths and checksum.
const CHUNK_HEADER: usize = 12;
/// LZ4 turns one byte into at most 255 (a match's length grows by 255 per extra byte), so a
/// header claiming more than this many times the compressed bytes lies.
const MAX_RATIO: u64 = 255;

/// A `Write` that compresses what it is given into the container; [`Packer::finish`] completes
/// the file (it writes the total length back into the header).
#[derive(Debug)]
pub struct Packer<'a, W: Write + Seek> {
    out: &'a mut W,
    start: u64,
    raw: Vec<u8>,
    packed: Vec<u8>,
    total: u64,
}

impl<'a, W: Write + Seek> Packer<'a, W> {
    /// Writes the header (length still unknown) at the current position of `out`.
    pub fn start(out: &'a mut W) -> io::Result<Self> {
        let start = out.stream_position()?;
        out.write_all(&MAGIC)?;
        out.write_all(&0u64.to_le_bytes())?;
        Ok(Packer {
            out,
            start,
            raw: Vec::with_capacity(CHUNK),
            packed: vec![0; get_maximum_output_size(CHUNK)],
            total: 0,
        })
    }

    fn pack(&mut self) -> io::Result<()> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let n = compress_into(&self.raw, &mut self.packed).map_err(io::Error::other)?;
        let packed = self
            .packed
            .get(..n)
            .ok_or_else(|| io::Error::other("lz4 overran"))?;
        let lengths = (u32::try_from(self.raw.len()), u32::try_from(n));
        let (Ok(raw_len), Ok(packed_len)) = lengths else {
            return Err(io::Error::other("chunk too large"));
        };
        self.out.write_all(&raw_len.to_le_bytes())?;
        self.out.write_all(&packed_len.to_le_bytes())?;
        self.out.write_all(&crc32(packed).to_le_bytes())?;
        self.out.write_all(packed)?;
        self.total += u64::from(raw_len);
        self.raw.clear();
        Ok(())
    }

    /// Writes the last chunk and the total length; leaves `out` positioned at the end.
    pub fn finish(mut self) -> io::Result<()> {
        self.pack()?;
        let end = self.out.stream_position()?;
        self.out
            .seek(SeekFrom::Start(self.start + MAGIC.len() as u64))?;
        self.out.write_all(&self.total.to_le_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        Ok(())
    }
}

impl<W: Write + Seek> Write for Packer<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.raw.len();
        let take = buf.len().min(room);
        self.raw
            .extend_from_slice(buf.get(..take).unwrap_or_default());
        if self.raw.len() == CHUNK {
            self.pack()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compresses `json` into a complete container in memory (tests, fuzzing).
pub fn pack(json: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = io::Cursor::new(Vec::new());
    let mut packer = Packer::start(&mut out)?;
    packer.write_all(json)?;
    packer.finish()?;
    Ok(out.into_inner())
}

/// Whether `bytes` claim to be a compressed container (of any kind) rather than JSON.
pub fn is_packed(bytes: &[u8]) -> bool {
    bytes.first() == Some(&MARK)
}

/// Why a container could not be unpacked; the caller names the file.
#[derive(Debug, PartialEq, Eq)]
pub enum UnpackError {
    /// The magic is not one this build reads.
    UnknownMagic,
    /// The rest is damaged, cut short or lying; the text says how.
    Damaged(String),
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The JSON inside a container. The framing and every checksum are checked before anything is
/// decompressed, and the memory taken is what the chunks' own lengths add up to, never more than
/// LZ4 can make of the file's bytes.
pub fn unpack(bytes: &[u8]) -> Result<Vec<u8>, UnpackError> {
    let damaged = |why: String| Err(UnpackError::Damaged(why));
    let cut_short = || {
        damaged(format!(
            "compressed snapshot cut short at byte {}",
            bytes.len()
        ))
    };
    if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
            cut_short()
        } else {
            Err(UnpackError::UnknownMagic)
        };
    }
    let Some(claimed) = bytes
        .get(MAGIC.len()..HEADER)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
    else {
        return cut_short();
    };
    let mut chunks = Vec::new();
    let mut sum = 0u64;
    let mut at = HEADER;
    while at < bytes.len() {
        let header = (
            read_u32(bytes, at),
            read_u32(bytes, at + 4),
            read_u32(bytes, at + 8),
        );
        let (Some(raw_len), Some(packed_len), Some(crc)) = header else {
            return cut_short();
        };
        let (raw_len, packed_len) = (raw_len as usize, packed_len as usize);
        if raw_len == 0 || raw_len > CHUNK || packed_len > get_maximum_output_size(CHUNK) {
            return damaged(format!("chunk at byte {at} has impossible lengths"));
        }
        let body = at + CHUNK_HEADER;
        let Some(packed) = bytes.get(body..body + packed_len) else {
            return cut_short();
        };
        if crc32(packed) != crc {
            return damaged(format!("chunk at byte {at} is damaged (checksum mismatch)"));
        }
        chunks.push((at, raw_len, packed));
        sum += raw_len as u64;
        at = body + packed_len;
    }
    if claimed != sum {
        return damaged(format!(
            "header says {claimed} uncompressed bytes but the chunks hold {sum} (cut short?)"
        ));
    }
    if claimed == 0 {
        return damaged("the compressed snapshot holds no data".to_string());
    }
    let payload = (bytes.len() - HEADER) as u64;
    if claimed > payload.saturating_mul(MAX_RATIO) {
        return damaged(format!(
            "it claims {claimed} uncompressed bytes, more than LZ4 can make of its {payload} \
             (at most {MAX_RATIO} times as many)"
        ));
    }
    let mut json: Vec<u8> = Vec::new();
    if json.try_reserve_exact(claimed as usize).is_err() {
        return damaged(format!("cannot allocate {claimed} bytes to decompress it"));
    }
    for (at, raw_len, packed) in chunks {
        let old = json.len();
        json.resize(old + raw_len, 0);
        match decompress_into(packed, json.get_mut(old..).unwrap_or_default()) {
            Ok(n) if n == raw_len => {}
            Ok(n) => {
                return damaged(format!(
                    "chunk at byte {at} decompresses to {n} bytes, not the {raw_len} it says"
                ))
            }
            Err(e) => return damaged(format!("chunk at byte {at} does not decompress: {e}")),
        }
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        let mut json = b"{\"data\":[".to_vec();
        for i in 0..n {
            json.extend_from_slice(format!("[\"key:{i:012}\",\"val:{:012}\"],", i * 7).as_bytes());
        }
        json.extend_from_slice(b"[]]}");
        json
    }

    #[test]
    fn round_trips_across_chunk_boundaries() {
        for json in [b"{}".to_vec(), sample(10), sample(60_000)] {
            let packed = pack(&json).unwrap();
            assert_eq!(packed[..8], MAGIC);
            assert_eq!(packed[8..16], (json.len() as u64).to_le_bytes());
            assert_eq!(unpack(&packed).unwrap(), json);
        }
        // Exactly one full chunk, and one byte more.
        for len in [CHUNK, CHUNK + 1] {
            let json = vec![b' '; len];
            assert_eq!(unpack(&pack(&json).unwrap()).unwrap(), json);
        }
        assert!(sample(60_000).len() > 2 * CHUNK);
        assert!(pack(&sample(60_000)).unwrap().len() < sample(60_000).len() / 2);
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let packed = pack(b"{}").unwrap();
        assert_eq!(&packed[..16], b"\x89pkv-lz4\x02\0\0\0\0\0\0\0");
        assert_eq!(packed[16..20], 2u32.to_le_bytes());
        let packed_len = u32::from_le_bytes(packed[20..24].try_into().unwrap()) as usize;
        assert_eq!(packed.len(), 28 + packed_len);
        assert_eq!(packed[24..28], crc32(&packed[28..]).to_le_bytes());
    }

    fn damage(bytes: &[u8]) -> String {
        match unpack(bytes) {
            Err(UnpackError::Damaged(why)) => why,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damage_is_named_and_never_trusted() {
        let json = sample(60_000);
        let good = pack(&json).unwrap();
        // Every cut is refused, whether inside a chunk, its header, or at a chunk boundary.
        for cut in [1, 5, 12, 20, 40, good.len() / 2, good.len() - 1] {
            let why = damage(&good[..cut]);
            assert!(why.contains("cut short"), "cut at {cut}: {why}");
        }
        let first_chunk_end =
            16 + 12 + u32::from_le_bytes(good[20..24].try_into().unwrap()) as usize;
        assert_eq!(
            damage(&good[..first_chunk_end]),
            format!(
                "header says {} uncompressed bytes but the chunks hold {CHUNK} (cut short?)",
                json.len()
            )
        );
        let mut flipped = good.clone();
        flipped[100] ^= 0x40;
        assert_eq!(
            damage(&flipped),
            "chunk at byte 16 is damaged (checksum mismatch)"
        );
        let mut lying = good.clone();
        lying[8..16].copy_from_slice(&(json.len() as u64 - 1).to_le_bytes());
        let expected = format!(
            "header says {} uncompressed bytes but the chunks hold {} (cut short?)",
            json.len() - 1,
            json.len()
        );
        assert_eq!(damage(&lying), expected);
        let mut huge = good.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(damage(&huge).starts_with("header says 18446744073709551615 "));
        // Header and chunk agreeing on more than the compressed bytes can hold.
        let mut inflated = pack(b"{}").unwrap();
        inflated[8..16].copy_from_slice(&(CHUNK as u64).to_le_bytes());
        inflated[16..20].copy_from_slice(&(CHUNK as u32).to_le_bytes());
        assert_eq!(
            damage(&inflated),
            format!(
                "it claims {CHUNK} uncompressed bytes, more than LZ4 can make of its {} \
                 (at most 255 times as many)",
                inflated.len() - 16
            )
        );
        let mut nothing = MAGIC.to_vec();
        nothing.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(damage(&nothing), "the compressed snapshot holds no data");
        let mut big_chunk = good.clone();
        big_chunk[16..20].copy_from_slice(&(CHUNK as u32 + 1).to_le_bytes());
        assert_eq!(
            damage(&big_chunk),
            "chunk at byte 16 has impossible lengths"
        );
        // A chunk whose data is valid LZ4 of another length, or not LZ4 at all, with a good crc.
        let other = pack(b"{\"a\":1}").unwrap();
        let mut wrong_len = other.clone();
        wrong_len[16..20].copy_from_slice(&3u32.to_le_bytes());
        wrong_len[8..16].copy_from_slice(&3u64.to_le_bytes());
        assert!(damage(&wrong_len).starts_with("chunk at byte 16 does not decompress: "));
        let mut short = other.clone();
        short[16..20].copy_from_slice(&100u32.to_le_bytes());
        short[8..16].copy_from_slice(&100u64.to_le_bytes());
        assert_eq!(
            damage(&short),
            "chunk at byte 16 decompresses to 7 bytes, not the 100 it says"
        );
        let mut not_lz4 = other[..28].to_vec();
        not_lz4.extend_from_slice(&[0xf0, 0xff, 0xff]);
        not_lz4[20..24].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32(&not_lz4[28..]);
        not_lz4[24..28].copy_from_slice(&crc.to_le_bytes());
        assert!(
            damage(&not_lz4).contains("does not decompress"),
            "{}",
            damage(&not_lz4)
        );
    }

    #[test]
    fn other_magics_are_not_ours() {
        for bytes in [
            &b"\x89PNG\r\n\x1a\n...."[..],
            b"\x89pkv-zst\0\0\0\0\0\0\0\x01",
        ] {
            assert_eq!(unpack(bytes), Err(UnpackError::UnknownMagic));
        }
        assert!(is_packed(b"\x89"));
        assert!(!is_packed(b"{\"format\""));
        assert!(!is_packed(b" {"));
    }
}
