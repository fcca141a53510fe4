//! The snapshot file: JSON, binary-safe, checked on load.
//!
//! ```json
//! {"format":"pocketkv-snapshot","version":1,"saved_at_unix_ms":1764250000000,"log_seq":3,
//!  "keys":3,"data":[["name","Alice"],[{"hex":"ff00"},"binary key"],["session","x",1764250060000]]}
//! ```
//! A third element is the key's expiry time in Unix milliseconds; a key without one never
//! expires. Keys whose time passed while the server was down are dropped at start-up.
//! `log_seq` is the first append-only log segment the snapshot does not contain: start-up replays
//! segments from that one on (0 or absent: every segment).
//! `repl_id` and `repl_offset` are the replication history and stream offset the data holds (""
//! and 0 when unknown): a restarted replica continues from there (PSYNC) instead of a full sync.
//! A full sync sends a replica this same format (without compression).
//! A key or value that is valid UTF-8 is a JSON string; any other bytes are `{"hex": "..."}`.
//! `keys` must equal the number of pairs, so a file cut short at a pair boundary is still caught.

use std::fmt;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::compress::{self, Compression, Packer, UnpackError};
use crate::store::{Entry, Image};

/// Keys and their entries read from a snapshot.
pub type Pairs = Vec<(Vec<u8>, Entry)>;

/// The `format` field every snapshot carries.
pub const FORMAT: &str = "pocketkv-snapshot";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// Why a snapshot file could not be loaded; `Display` names the file.
#[derive(Debug)]
pub enum LoadError {
    /// The file exists but could not be read.
    Unreadable(PathBuf, std::io::Error),
    /// The file is zero bytes long.
    Empty(PathBuf),
    /// The file is not JSON of the expected shape (cut short, edited, another program's file).
    Malformed(PathBuf, String),
    /// A snapshot from another format or version.
    Unsupported(PathBuf, String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Unreadable(path, e) => write!(f, "cannot read {}: {e}", path.display()),
            LoadError::Empty(path) => write!(
                f,
                "{} is empty: not a snapshot (move it away to start without data)",
                path.display()
            ),
            LoadError::Malformed(path, why) => write!(
                f,
                "{} is not a valid pocketkv snapshot: {why} (the file was left untouched)",
                path.display()
            ),
            LoadError::Unsupported(path, why) => write!(f, "{}: {why}", path.display()),
        }
    }
}

impl std::error::Error for LoadError {}

/// Bytes that serialize as a JSON string when they are UTF-8, and as `{"hex": ...}` otherwise.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("hex", &hex(self.0))?;
                map.end()
            }
        }
    }
}

struct ImagePairs<'a>(&'a Image);

impl Serialize for ImagePairs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for record in self.0.iter() {
            let (key, value) = (Bytes(record.key()), Bytes(record.value()));
            match record.expires_at() {
                Some(at) => seq.serialize_element(&(key, value, at))?,
                None => seq.serialize_element(&(key, value))?,
            }
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct FileOut<'a> {
    format: &'static str,
    version: u32,
    saved_at_unix_ms: u64,
    log_seq: u64,
    // Plain fields ("" and 0 when unknown): Options would add their own serializer code.
    repl_id: &'a str,
    repl_offset: u64,
    keys: usize,
    data: ImagePairs<'a>,
}

/// The replication history and offset a snapshot's data holds.
pub type Position<'a> = Option<(&'a str, u64)>;

/// Writes `image` as a snapshot to `out`, with no log segments behind it.
pub fn encode(image: &Image, out: impl Write) -> std::io::Result<()> {
    encode_snapshot(image, 0, out)
}

/// Writes `image` as a snapshot to `out`; `log_seq` is the first log segment it does not hold.
pub fn encode_snapshot(image: &Image, log_seq: u64, out: impl Write) -> std::io::Result<()> {
    encode_positioned(image, log_seq, None, out)
}

/// [`encode_snapshot`], also recording the replication position the data holds.
pub fn encode_positioned(
    image: &Image,
    log_seq: u64,
    position: Position<'_>,
    out: impl Write,
) -> std::io::Result<()> {
    let file = FileOut {
        format: FORMAT,
        version: VERSION,
        saved_at_unix_ms: crate::command::unix_ms(),
        log_seq,
        repl_id: position.map_or("", |p| p.0),
        repl_offset: position.map_or(0, |p| p.1),
        keys: image.len(),
        data: ImagePairs(image),
    };
    // Through `dyn Write`: one copy of the serializer serves every writer (file, compressor,
    // a replica's socket), for binary size; a call per piece costs little beside the rest.
    let mut out = out;
    let out: &mut dyn Write = &mut out;
    serde_json::to_writer(out, &file).map_err(std::io::Error::other)
}

/// Owned bytes read back from either JSON form.
struct OwnedBytes(Vec<u8>);

impl<'de> Deserialize<'de> for OwnedBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = OwnedBytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or {\"hex\": \"...\"}")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<OwnedBytes, E> {
        Ok(OwnedBytes(text.as_bytes().to_vec()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<OwnedBytes, E> {
        Ok(OwnedBytes(text.into_bytes()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OwnedBytes, A::Error> {
        let (Some(("hex", digits)), None) = (
            map.next_entry::<&str, &str>()?,
            map.next_key::<de::IgnoredAny>()?,
        ) else {
            return Err(de::Error::custom("expected exactly {\"hex\": \"...\"}"));
        };
        unhex(digits)
            .map(OwnedBytes)
            .ok_or_else(|| de::Error::custom("bad hex digits"))
    }
}

/// One element of `data`: `[key, value]` or `[key, value, expires_at_ms]`.
struct Record(Vec<u8>, Entry);

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[key, value] or [key, value, expires_at_ms]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
        let missing = || de::Error::invalid_length(0, &self);
        let key: OwnedBytes = seq.next_element()?.ok_or_else(missing)?;
        let value: OwnedBytes = seq.next_element()?.ok_or_else(missing)?;
        let expires_at: Option<u64> = seq.next_element()?;
        if expires_at == Some(0) {
            return Err(de::Error::custom("an expiry time must be above 0"));
        }
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(4, &self));
        }
        Ok(Record(key.0, Entry::new(value.0, expires_at)))
    }
}

/// Where decoded records go, one at a time: a list (start-up) or straight into a store (a
/// replica's full sync), so no second copy of the data is built. An error stops the decoding.
pub trait Records {
    /// The header announced about `keys` records (capped by the input's size, since the header
    /// is not to be trusted): room may be made for them.
    fn expect(&mut self, _keys: usize) {}

    /// One record.
    fn add(&mut self, key: Vec<u8>, entry: Entry) -> Result<(), String>;
}

/// A [`Records`] as the decoder takes it.
pub type Sink<'a> = &'a mut dyn Records;

/// The records of a snapshot, in a list.
struct Collect(Pairs);

impl Records for Collect {
    fn add(&mut self, key: Vec<u8>, entry: Entry) -> Result<(), String> {
        self.0.push((key, entry));
        Ok(())
    }
}

/// Fewest bytes a record takes in `data`: `["",""],`.
const MIN_RECORD: usize = 8;

/// What a snapshot says besides its records.
#[derive(Debug, Default)]
pub struct Header {
    /// The first log segment the snapshot does not contain.
    pub log_seq: u64,
    /// The replication history and offset the data holds, when recorded.
    pub repl: Option<(String, u64)>,
    /// Records handed to the sink.
    pub keys: usize,
}

/// The top-level object, read field by field so `data` goes to the sink as it is parsed; with
/// the most records the input can hold.
struct FileSeed<'a, 'b>(&'a mut Sink<'b>, usize);

/// The fields of the top-level object, as read.
#[derive(Default)]
struct Fields {
    format: Option<String>,
    version: Option<u32>,
    log_seq: u64,
    repl_id: String,
    repl_offset: u64,
    keys: Option<usize>,
    data: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_, '_> {
    type Value = Fields;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Fields, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_, '_> {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a pocketkv snapshot object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Fields::default();
        while let Some(name) = map.next_key::<&str>()? {
            match name {
                "format" => fields.format = Some(map.next_value()?),
                "version" => fields.version = Some(map.next_value()?),
                "log_seq" => fields.log_seq = map.next_value()?,
                "repl_id" => fields.repl_id = map.next_value()?,
                "repl_offset" => fields.repl_offset = map.next_value()?,
                "keys" => {
                    let keys = map.next_value()?;
                    fields.keys = Some(keys);
                    if fields.data.is_none() {
                        self.0.expect(keys.min(self.1));
                    }
                }
                "data" => fields.data = Some(map.next_value_seed(DataSeed(&mut *self.0))?),
                _ => drop(map.next_value::<de::IgnoredAny>()?),
            }
        }
        Ok(fields)
    }
}

/// The `data` array: each record to the sink; its value is how many there were.
struct DataSeed<'a, 'b>(&'a mut Sink<'b>);

impl<'de> DeserializeSeed<'de> for DataSeed<'_, '_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_, '_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut count = 0;
        while let Some(Record(key, entry)) = seq.next_element()? {
            self.0.add(key, entry).map_err(de::Error::custom)?;
            count += 1;
        }
        Ok(count)
    }
}

/// A loaded snapshot.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every key and value.
    pub pairs: Pairs,
    /// The first log segment the snapshot does not contain.
    pub log_seq: u64,
    /// The replication history and offset the data holds, when recorded.
    pub repl: Option<(String, u64)>,
}

/// Reads a snapshot's pairs from `bytes`; `path` is only used in messages.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Pairs, LoadError> {
    decode_snapshot(path, bytes).map(|snapshot| snapshot.pairs)
}

/// Reads a snapshot, plain or compressed (whatever `snapshot-compression` says), from `bytes`;
/// `path` is only used in messages.
pub fn decode_snapshot(path: &Path, bytes: &[u8]) -> Result<Snapshot, LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::Empty(path.to_path_buf()));
    }
    if !compress::is_packed(bytes) {
        return decode_json(path, bytes);
    }
    match compress::unpack(bytes) {
        Ok(json) => decode_json(path, &json),
        Err(UnpackError::Damaged(why)) => Err(LoadError::Malformed(path.to_path_buf(), why)),
        Err(UnpackError::UnknownMagic) => Err(LoadError::Unsupported(
            path.to_path_buf(),
            "starts with byte 0x89 like a compressed snapshot, but not with a header this build \
             reads (\\x89pkv-lz4)"
                .to_string(),
        )),
    }
}

/// Writes `image` as a snapshot to `out`, compressed as `compression` says.
pub fn write_snapshot<W: Write + Seek>(
    image: &Image,
    log_seq: u64,
    position: Position<'_>,
    compression: Compression,
    out: &mut W,
) -> std::io::Result<()> {
    match compression {
        Compression::No => encode_positioned(image, log_seq, position, out),
        Compression::Lz4 => {
            let mut packer = Packer::start(out)?;
            encode_positioned(image, log_seq, position, &mut packer)?;
            packer.finish()
        }
    }
}

fn decode_json(path: &Path, bytes: &[u8]) -> Result<Snapshot, LoadError> {
    let mut collect = Collect(Vec::new());
    let header = decode_json_each(path, bytes, &mut collect)?;
    let pairs = collect.0;
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    if let Some((key, _)) = pairs.iter().find(|(key, _)| !seen.insert(key)) {
        return Err(LoadError::Malformed(
            path.to_path_buf(),
            format!(
                "key {:?} appears more than once",
                String::from_utf8_lossy(key)
            ),
        ));
    }
    drop(seen);
    Ok(Snapshot {
        pairs,
        log_seq: header.log_seq,
        repl: header.repl,
    })
}

/// Reads an uncompressed snapshot from `bytes`, handing each record to `sink` as it is parsed
/// (a replica loads a full sync this way, into its fresh store); `path` is only used in
/// messages. What the sink took before an error is the caller's to throw away.
pub fn decode_json_each(
    path: &Path,
    bytes: &[u8],
    mut sink: Sink<'_>,
) -> Result<Header, LoadError> {
    let malformed = |why: String| LoadError::Malformed(path.to_path_buf(), why);
    if bytes.is_empty() {
        return Err(LoadError::Empty(path.to_path_buf()));
    }
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let fields = FileSeed(&mut sink, bytes.len() / MIN_RECORD)
        .deserialize(&mut json)
        .and_then(|fields| json.end().map(|()| fields))
        .map_err(|e| malformed(e.to_string()))?;
    let missing = |name: &str| malformed(format!("missing field `{name}`"));
    let format = fields.format.ok_or_else(|| missing("format"))?;
    let version = fields.version.ok_or_else(|| missing("version"))?;
    let keys = fields.keys.ok_or_else(|| missing("keys"))?;
    let held = fields.data.ok_or_else(|| missing("data"))?;
    if format != FORMAT {
        return Err(LoadError::Unsupported(
            path.to_path_buf(),
            format!("format is '{format}', expected '{FORMAT}'"),
        ));
    }
    if version != VERSION {
        return Err(LoadError::Unsupported(
            path.to_path_buf(),
            format!("snapshot version {version} is not supported by this build (reads {VERSION})"),
        ));
    }
    if keys != held {
        return Err(malformed(format!(
            "header says {keys} keys but the file holds {held}"
        )));
    }
    let repl = (fields.repl_id.len() == 40).then_some((fields.repl_id, fields.repl_offset));
    Ok(Header {
        log_seq: fields.log_seq,
        repl,
        keys: held,
    })
}

/// Loads the snapshot at `path`; `Ok(None)` when there is no file.
pub fn load_file(path: &Path) -> Result<Option<Snapshot>, LoadError> {
    match std::fs::read(path) {
        Ok(bytes) => decode_snapshot(path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LoadError::Unreadable(path.to_path_buf(), e)),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    text
}

fn unhex(digits: &str) -> Option<Vec<u8>> {
    let digits = digits.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(text, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn image_of(pairs: &[(&[u8], &[u8])]) -> Image {
        let mut store = Store::new();
        for (k, v) in pairs {
            store.set(k, v);
        }
        store.image()
    }

    fn roundtrip(pairs: &[(&[u8], &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        encode(&image_of(pairs), &mut out).unwrap();
        let mut back: Vec<_> = decode(Path::new("t.json"), &out)
            .unwrap()
            .into_iter()
            .map(|(key, entry)| (key, entry.value))
            .collect();
        back.sort();
        back
    }

    #[test]
    fn expiry_times_round_trip_and_a_key_without_one_has_two_elements() {
        let mut store = Store::new();
        store.set_expiring(b"session", b"x", Some(1764250060000));
        store.set(b"name", b"Alice");
        let mut out = Vec::new();
        encode(&store.image(), &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains(r#"["session","x",1764250060000]"#), "{text}");
        assert!(text.contains(r#"["name","Alice"]"#), "{text}");
        let mut back = decode(Path::new("t.json"), &out).unwrap();
        back.sort();
        assert_eq!(
            back,
            vec![
                (b"name".to_vec(), Entry::new(b"Alice".to_vec(), None)),
                (
                    b"session".to_vec(),
                    Entry::new(b"x".to_vec(), Some(1764250060000))
                ),
            ]
        );
    }

    #[test]
    fn binary_and_text_round_trip() {
        let pairs: &[(&[u8], &[u8])] = &[
            (b"name", b"Alice"),
            (b"\xff\x00bin", b"\x80\x81"),
            (b"empty", b""),
            (b"quote\"\n", "snow\u{2603}".as_bytes()),
        ];
        let mut expected: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        expected.sort();
        assert_eq!(roundtrip(pairs), expected);
    }

    #[test]
    fn the_documented_example_loads() {
        let text = br#"{"format":"pocketkv-snapshot","version":1,"saved_at_unix_ms":1764250000000,"keys":3,
            "data":[["name","Alice"],[{"hex":"ff00"},"binary key"],["session","x",1764250060000]]}"#;
        let pairs = decode(Path::new("x"), text).unwrap();
        let binary = Entry::new(b"binary key".to_vec(), None);
        assert_eq!(pairs[1], (vec![0xff, 0], binary));
        let session = Entry::new(b"x".to_vec(), Some(1764250060000));
        assert_eq!(pairs[2], (b"session".to_vec(), session));
    }

    #[test]
    fn damaged_files_are_refused_with_the_file_named() {
        let mut good = Vec::new();
        encode(&image_of(&[(b"a", b"1"), (b"b", b"2")]), &mut good).unwrap();
        let path = Path::new("/data/snap.json");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "/data/snap.json is empty"),
            (good[..good.len() - 3].to_vec(), "is not a valid pocketkv snapshot"),
            (b"{}".to_vec(), "missing field"),
            (b"\x00\x01garbage".to_vec(), "is not a valid pocketkv snapshot"),
            (
                br#"{"format":"other","version":1,"keys":0,"data":[]}"#.to_vec(),
                "format is 'other'",
            ),
            (
                br#"{"format":"pocketkv-snapshot","version":9,"keys":0,"data":[]}"#.to_vec(),
                "version 9 is not supported",
            ),
            (
                br#"{"format":"pocketkv-snapshot","version":1,"keys":3,"data":[["a","b"]]}"#.to_vec(),
                "header says 3 keys but the file holds 1",
            ),
            (
                br#"{"format":"pocketkv-snapshot","version":1,"keys":1,"data":[[{"hex":"f"},"b"]]}"#
                    .to_vec(),
                "bad hex digits",
            ),
            (
                br#"{"format":"pocketkv-snapshot","version":1,"keys":2,"data":[["a","1"],["a","2"]]}"#
                    .to_vec(),
                "key \"a\" appears more than once",
            ),
            (
                br#"{"format":"pocketkv-snapshot","version":1,"keys":1,"data":[["a","1",0]]}"#
                    .to_vec(),
                "an expiry time must be above 0",
            ),
            (
                br#"{"format":"pocketkv-snapshot","version":1,"keys":1,"data":[["a","1",5,6]]}"#
                    .to_vec(),
                "invalid length 4",
            ),
            (
                br#"{"format":"pocketkv-snapshot","version":1,"keys":1,"data":[["a"]]}"#.to_vec(),
                "invalid length",
            ),
            (
                br#"{"format":"pocketkv-snapshot","version":1,"keys":1,"data":[["a","1",-5]]}"#
                    .to_vec(),
                "invalid value",
            ),
        ];
        let packed = compress::pack(&good).unwrap();
        let mut cases = cases;
        cases.extend([
            (
                packed[..packed.len() - 1].to_vec(),
                "snap.json is not a valid pocketkv snapshot: compressed snapshot cut short",
            ),
            (
                b"\x89PNG\r\n\x1a\n".to_vec(),
                "snap.json: starts with byte 0x89 like a compressed snapshot",
            ),
            (
                compress::pack(&good[..good.len() - 1]).unwrap(),
                "is not a valid pocketkv snapshot",
            ),
        ]);
        assert_eq!(decode(path, &packed).unwrap(), decode(path, &good).unwrap());
        for (bytes, expected) in cases {
            let message = decode(path, &bytes).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("/data/snap.json"), "{message}");
        }
    }
}
