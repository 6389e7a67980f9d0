//! Paging file space (*Windows Internals* 7th ed., Part 1, ch. 5, "Page
//! files"): a bitmap of page-sized slots (`MMPAGING_FILE.Bitmap`). The
//! modified page writer takes a slot for each dirty page it writes
//! (`MiGatherPagefilePages`), the slot is recorded in the page's transition
//! PTE and, once the page is repurposed, in a paging-file PTE
//! ([`Frame::PagedOut`](crate::vm::Frame)); a later access is a hard fault
//! that reads the slot back.

use alloc::string::String;
use alloc::vec::Vec;

/// One entry of `HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\
/// Memory Management\PagingFiles` (`REG_MULTI_SZ`, one string per paging
/// file: `"<path> [<initial MB> <maximum MB>]"`, as `smss.exe` reads it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagingFileSpec {
    /// The file's DOS path (`C:\pagefile.sys`; `?:` = any drive, which
    /// Windows resolves to the system drive or the drive with most space).
    pub path: String,
    /// Initial and maximum size in pages; `None`: system-managed (no sizes,
    /// or `0 0`).
    pub size_pages: Option<(u64, u64)>,
}

/// Parses one `PagingFiles` string (`SmpParsePagingFile`'s format): the
/// path, then optionally the initial and maximum sizes in MiB separated by
/// blanks. A maximum below the initial size is raised to it (as smss does).
/// None for an empty string, a path that is not `X:\...`, or sizes that are
/// not decimal numbers (smss ignores such an entry).
pub fn parse_paging_file_spec(text: &str) -> Option<PagingFileSpec> {
    let mut parts = text.split_whitespace();
    let path = parts.next()?;
    let b = path.as_bytes();
    if b.len() < 4 || b[1] != b':' || b[2] != b'\\' || !(b[0].is_ascii_alphabetic() || b[0] == b'?')
    {
        return None;
    }
    let sizes: Vec<&str> = parts.collect();
    let mb = |s: &str| s.parse::<u64>().ok();
    let size_pages = match sizes.as_slice() {
        [] => None,
        [init] => Some((mb(init)?, mb(init)?)),
        [init, max] => Some((mb(init)?, mb(max)?)),
        _ => return None,
    };
    let size_pages = match size_pages {
        None | Some((0, 0)) => None,
        Some((i, m)) => {
            let pages = |m: u64| m.saturating_mul(256); // 1 MiB = 256 pages
            Some((pages(i), pages(m.max(i))))
        }
    };
    Some(PagingFileSpec {
        path: String::from(path),
        size_pages,
    })
}

/// One paging file's slot allocator.
#[derive(Clone, Debug, Default)]
pub struct PagingFile {
    bits: Vec<u64>,
    size: u64,
    used: u64,
    hint: u64,
}

impl PagingFile {
    /// A paging file of `pages` slots (0: no paging file).
    pub fn new(pages: u64) -> Self {
        let words = usize::try_from(pages.div_ceil(64)).unwrap_or(0);
        PagingFile {
            bits: alloc::vec![0; words],
            size: if words == 0 { 0 } else { pages },
            used: 0,
            hint: 0,
        }
    }

    /// Slots in the file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Slots in use.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Allocates a free slot (`RtlFindClearBitsAndSet`), `None` when full.
    pub fn allocate_slot(&mut self) -> Option<u64> {
        for k in 0..self.size {
            let s = (self.hint + k) % self.size;
            let (w, b) = ((s / 64) as usize, s % 64);
            if self.bits[w] & (1 << b) == 0 {
                self.bits[w] |= 1 << b;
                self.used += 1;
                self.hint = (s + 1) % self.size;
                return Some(s);
            }
        }
        None
    }

    /// Frees a slot (`MiReleasePageFileSpace`). Returns false if it was not in use.
    pub fn free_slot(&mut self, slot: u64) -> bool {
        if slot >= self.size {
            return false;
        }
        let (w, b) = ((slot / 64) as usize, slot % 64);
        if self.bits[w] & (1 << b) == 0 {
            return false;
        }
        self.bits[w] &= !(1 << b);
        self.used -= 1;
        true
    }

    /// Whether `slot` is in use.
    pub fn is_used(&self, slot: u64) -> bool {
        slot < self.size && self.bits[(slot / 64) as usize] & (1 << (slot % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_files_value() {
        let p = parse_paging_file_spec("C:\\pagefile.sys 16 64").unwrap();
        assert_eq!(p.path, "C:\\pagefile.sys");
        assert_eq!(p.size_pages, Some((16 * 256, 64 * 256)));
        let p = parse_paging_file_spec("  ?:\\pagefile.sys  ").unwrap();
        assert_eq!((p.path.as_str(), p.size_pages), ("?:\\pagefile.sys", None));
        assert_eq!(
            parse_paging_file_spec("C:\\pagefile.sys 0 0")
                .unwrap()
                .size_pages,
            None
        );
        assert_eq!(
            parse_paging_file_spec("D:\\p.sys 32 8").unwrap().size_pages,
            Some((32 * 256, 32 * 256))
        );
        assert_eq!(
            parse_paging_file_spec("C:\\p.sys 4").unwrap().size_pages,
            Some((1024, 1024))
        );
        for bad in [
            "",
            "pagefile.sys 1 2",
            "C:pagefile.sys",
            "C:\\p.sys x 2",
            "C:\\p.sys 1 2 3",
        ] {
            assert_eq!(parse_paging_file_spec(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn slots() {
        let mut p = PagingFile::new(70);
        let all: Vec<u64> = (0..70).map(|_| p.allocate_slot().unwrap()).collect();
        assert_eq!(all.len(), 70);
        assert_eq!(p.allocate_slot(), None);
        assert!(p.free_slot(65));
        assert!(!p.free_slot(65));
        assert!(!p.free_slot(70));
        assert_eq!(p.allocate_slot(), Some(65));
        assert_eq!(p.used(), 70);
        assert!(PagingFile::new(0).allocate_slot().is_none());
    }
}
