//! Paging file space (*Windows Internals* 7th ed., Part 1, ch. 5, "Page
//! files"): a bitmap of page-sized slots (`MMPAGING_FILE.Bitmap`). The
//! modified page writer takes a slot for each dirty page it writes
//! (`MiGatherPagefilePages`), the slot is recorded in the page's transition
//! PTE and, once the page is repurposed, in a paging-file PTE
//! ([`Frame::PagedOut`](crate::vm::Frame)); a later access is a hard fault
//! that reads the slot back.

use alloc::vec::Vec;

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
