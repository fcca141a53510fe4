//! What start-up leaves in the page tables. Loading the program, glibc's own initialisation,
//! reading flags and the snapshot run code once, and the kernel maps the pages around each page
//! of code it faults in (64 KB at a time, "fault-around"), so after start-up nearly all of the
//! binary's code and a megabyte of libc's stay mapped, and count in RSS, though an idle server
//! never runs most of it again. [`StartupPages`] unmaps the code and constants of the
//! program and its libraries; what the loop runs next comes back from the page cache on first
//! use, a minor fault, without reading the disk.

use std::io::Read;
use std::ops::Range;

/// The start-up pages to release: every loaded object's never-writable segments (code,
/// constants) that hold nothing of their own.
#[derive(Debug)]
pub struct StartupPages(Vec<Range<usize>>);

impl StartupPages {
    /// Finds them. Reading smaps takes a file descriptor and a buffer for a moment, so this runs
    /// before the server says it is ready, and only `release` after. Errors find nothing.
    pub fn find() -> StartupPages {
        // Above malloc's mmap threshold, so the buffer is unmapped when freed instead of staying
        // in the heap as idle RSS; a few dozen mappings take a few dozen kB.
        let mut smaps = Vec::with_capacity(256 * 1024);
        let read =
            std::fs::File::open("/proc/self/smaps").and_then(|mut f| f.read_to_end(&mut smaps));
        if read.is_err() {
            return StartupPages(Vec::new());
        }
        let unwritten = droppable(&smaps);
        // Both views must agree: the ELF headers say the loader never made a segment writable
        // (no relocation is in it), and smaps that no page of it was written since. An
        // emulator's smaps (qemu-user's reports every count as 0) cannot pass on its own.
        let mut segments = read_only_segments();
        segments.retain(|s| {
            unwritten
                .iter()
                .any(|m| m.start <= s.start && s.end <= m.end)
        });
        StartupPages(segments)
    }

    /// Unmaps them; returns the bytes of address space advised. A failed call leaves its pages
    /// mapped.
    pub fn release(self) -> usize {
        let mut advised = 0;
        for segment in self.0 {
            let len = segment.end - segment.start;
            // SAFETY: the range is part of a private, read-only mapping of a file that no one
            // wrote to (`find`): after MADV_DONTNEED the next access maps the same bytes from the
            // file, as after the kernel reclaimed them under memory pressure. No Rust object
            // lives there.
            let done = unsafe {
                libc::madvise(segment.start as *mut libc::c_void, len, libc::MADV_DONTNEED)
            };
            if done == 0 {
                advised += len;
            }
        }
        advised
    }
}

/// The page-aligned address ranges of the load segments without write permission of every
/// object loaded (the program, libc, ld.so, ...): code and constants, which the loader maps
/// read-only from the start, unlike relocated data (RELRO), which it writes and then protects.
fn read_only_segments() -> Vec<Range<usize>> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        found: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info, and `found` is the vector below, borrowed
        // for the call.
        let (info, found) = unsafe { (&*info, &mut *found.cast::<Vec<Range<usize>>>()) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        let page = page_size();
        for header in headers {
            if header.p_type != libc::PT_LOAD || header.p_flags & libc::PF_W != 0 {
                continue;
            }
            let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
            let end = start.wrapping_add(header.p_memsz as usize);
            let (start, end) = (
                start & !(page - 1),
                end.wrapping_add(page - 1) & !(page - 1),
            );
            if start < end {
                found.push(start..end);
            }
        }
        0
    }
    let mut found: Vec<Range<usize>> = Vec::new();
    // SAFETY: the callback only reads what it is given and pushes to `found`, which outlives the
    // call.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut found).cast()) };
    found
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it returns -1 on error, handled below.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(4096)
}

/// The mappings in `smaps` (the format of `/proc/self/smaps`) that MADV_DONTNEED can drop
/// without losing a byte: backed by a file, private, not writable, and with no anonymous page,
/// resident or swapped. A private file page becomes anonymous once written (relocations, a
/// debugger's breakpoint, a uprobe), and dropping it would lose the write, so any mapping with
/// one is left alone, as is one whose fields are missing.
pub fn droppable(smaps: &[u8]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    // The current mapping while it is a candidate, and how many of its two fields read 0 kB.
    let mut current: Option<(Range<usize>, u8)> = None;
    for line in smaps.split(|&b| b == b'\n') {
        if let Some(candidate) = header(line) {
            if let Some((range, 2)) = current.take() {
                found.push(range);
            }
            current = candidate.map(|range| (range, 0));
        } else if let Some((_, zeros)) = current.as_mut() {
            let field = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
            let Some([name, value, b"kB"]) = first3(field) else {
                continue;
            };
            if matches!(name, b"Anonymous:" | b"Swap:") {
                if value == b"0" {
                    *zeros += 1;
                } else {
                    current = None;
                }
            }
        }
    }
    if let Some((range, 2)) = current {
        found.push(range);
    }
    found
}

/// For a mapping's header line, `Some` with its range when it is a candidate (a private,
/// non-writable mapping of a file) or `Some(None)` when not; `None` for any other line.
fn header(line: &[u8]) -> Option<Option<Range<usize>>> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let start = hex(&range[..dash])?;
    let end = hex(&range[dash + 1..])?;
    let [perms, _offset, _device] = first3(fields.by_ref())?;
    let inode = fields.next()?;
    let path = fields.next().unwrap_or_default();
    let candidate = matches!(perms, [_, b'-', _, b'p'])
        && inode != b"0"
        && path.first() == Some(&b'/')
        && start < end;
    Some(candidate.then_some(start..end))
}

/// The first three items of `items`, when there are three.
fn first3<'a>(mut items: impl Iterator<Item = &'a [u8]>) -> Option<[&'a [u8]; 3]> {
    Some([items.next()?, items.next()?, items.next()?])
}

/// A hexadecimal number of up to 16 digits.
fn hex(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        let digit = (d as char).to_digit(16)?;
        Some(n << 4 | digit as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields of one mapping, as smaps prints them (some left out).
    fn mapping(header: &str, anonymous: u64, swap: u64) -> String {
        format!(
            "{header}\nSize:                628 kB\nRss:                 564 kB\n\
             Anonymous:      {anonymous:>8} kB\nAnonHugePages:         0 kB\n\
             Swap:           {swap:>8} kB\nSwapPss:               0 kB\nVmFlags: rd ex mr mw me\n"
        )
    }

    #[test]
    fn only_unwritten_private_read_only_file_mappings_are_dropped() {
        let smaps = [
            // The binary: headers and constants, code, relocated constants, data.
            mapping(
                "55e1f60d000-55e1f641000 r--p 00000000 fe:01 1234  /usr/bin/pocketkv",
                0,
                0,
            ),
            mapping(
                "55e1f641000-55e1f6de000 r-xp 00034000 fe:01 1234  /usr/bin/pocketkv",
                0,
                0,
            ),
            mapping(
                "55e1f6de000-55e1f6e6000 r--p 000cd000 fe:01 1234  /usr/bin/pocketkv",
                32,
                0,
            ),
            mapping(
                "55e1f6e6000-55e1f6e8000 rw-p 000d5000 fe:01 1234  /usr/bin/pocketkv",
                8,
                0,
            ),
            mapping(
                "55e591eb000-55e5920c000 rw-p 00000000 00:00 0     [heap]",
                28,
                0,
            ),
            // libc's code, with a breakpoint page swapped out: kept.
            mapping(
                "7fbf4e694000-7fbf4e7ea000 r-xp 00026000 fe:01 99 /usr/lib/libc.so.6",
                0,
                4,
            ),
            // A shared read-only mapping, an anonymous one, the vdso.
            mapping(
                "7fbf4e800000-7fbf4e801000 r--s 00000000 fe:01 77 /dev/shm/x",
                0,
                0,
            ),
            mapping("7fbf4e801000-7fbf4e802000 r--p 00000000 00:00 0 ", 0, 0),
            mapping(
                "7fbf4e881000-7fbf4e883000 r-xp 00000000 00:00 0     [vdso]",
                0,
                0,
            ),
            // ld.so's code, last in the file.
            mapping(
                "7fbf4e884000-7fbf4e8aa000 r-xp 00001000 fe:01 42 /usr/lib/ld.so.2",
                0,
                0,
            ),
        ]
        .concat();
        assert_eq!(
            droppable(smaps.as_bytes()),
            [
                0x55e1f60d000..0x55e1f641000,
                0x55e1f641000..0x55e1f6de000,
                0x7fbf4e884000..0x7fbf4e8aa000,
            ]
        );
    }

    #[test]
    fn a_mapping_whose_fields_are_missing_is_kept() {
        let smaps = "55e1f641000-55e1f6de000 r-xp 00034000 fe:01 1234 /usr/bin/pocketkv\n\
                     Rss: 564 kB\nAnonymous: 0 kB\n";
        assert!(droppable(smaps.as_bytes()).is_empty());
        assert!(droppable(b"garbage\n\xff\xfe\nffffffffffffffffff-0 r-xp 0 0 1 /x\n").is_empty());
    }

    #[test]
    fn the_running_process_has_its_code_among_the_droppable() {
        let smaps = std::fs::read("/proc/self/smaps").unwrap();
        let code = droppable(&smaps[..]);
        let here = (the_running_process_has_its_code_among_the_droppable as fn()) as usize;
        assert!(code.iter().any(|range| range.contains(&here)), "{code:x?}");
        let segments = read_only_segments();
        assert!(segments.iter().any(|s| s.contains(&here)), "{segments:x?}");
        // Writable data (a static's address) is in no read-only segment.
        static WRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let data = &raw const WRITTEN as usize;
        assert!(!segments.iter().any(|s| s.contains(&data)), "{segments:x?}");
    }
}
