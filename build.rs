//! Compresses the web console's files (`console/`) with gzip at build time and writes the table
//! of them (path, type, ETag, bytes) that `src/server/console.rs` includes. The compressor is a
//! build dependency only: the binary holds the compressed bytes and no compression code.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// (URL path, file under `console/`, Content-Type). `/` is the page; the rest are what it loads.
const FILES: [(&str, &str, &str); 4] = [
    ("/", "index.html", "text/html; charset=utf-8"),
    (
        "/console.js",
        "console.js",
        "text/javascript; charset=utf-8",
    ),
    ("/console.css", "console.css", "text/css; charset=utf-8"),
    ("/favicon.svg", "favicon.svg", "image/svg+xml"),
];

fn main() {
    let out_dir = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut table = String::from(
        "/// The console's files, built by build.rs.\npub static ASSETS: [Asset; 4] = [\n",
    );
    for (path, file, content_type) in FILES {
        let source = Path::new("console").join(file);
        println!("cargo:rerun-if-changed={}", source.display());
        let text = fs::read_to_string(&source).expect("console file readable");
        let gzip = gzip(minify(&text, file).as_bytes());
        let target = Path::new(&out_dir).join(format!("{file}.gz"));
        fs::write(&target, &gzip).expect("OUT_DIR writable");
        let _ = writeln!(
            table,
            "    Asset {{ path: {path:?}, content_type: {content_type:?}, etag: \"\\\"{:016x}\\\"\", \
             gzip: include_bytes!({:?}) }},",
            fnv1a(&gzip),
            target.display().to_string()
        );
    }
    table.push_str("];\n");
    fs::write(Path::new(&out_dir).join("console_assets.rs"), table).expect("OUT_DIR writable");
}

/// Drops what only the reader of the source needs: indentation, blank lines, and in the script
/// and the style sheet whole-line comments. Lines are otherwise kept as written (no line of the
/// source is joined to another), so nothing that depends on a newline can break.
fn minify(text: &str, file: &str) -> String {
    let script = file.ends_with(".js");
    let mut out = String::with_capacity(text.len());
    let mut in_css_comment = false;
    for line in text.lines() {
        let line = line.trim();
        if file.ends_with(".css") && (in_css_comment || line.starts_with("/*")) {
            in_css_comment = !line.ends_with("*/");
            continue;
        }
        if line.is_empty() || (script && line.starts_with("//")) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// RFC 1952: a gzip member holding `data` deflated at the highest level, with no name and no
/// time, so the same source always gives the same bytes (and the same ETag).
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 10));
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                crc >> 1 ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The ETag: FNV-1a of the compressed bytes (a change of the page is a change of the tag).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
