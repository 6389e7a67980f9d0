//! System PTE ranges (*Windows Internals* 7th ed., Part 1, ch. 5, "System
//! PTEs"): a region of kernel virtual address space handed out in page runs
//! for kernel stacks, MDL mappings (`MmMapLockedPagesSpecifyCache`), I/O
//! space (`MmMapIoSpace`) and big pool allocations. NT keeps a bitmap per
//! system PTE type (`MiReserveSystemPtes` / `MiReleaseSystemPtes`); ntrs does
//! the same with one bitmap per region. The kernel writes the PTEs.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::PAGE_SIZE;

/// Errors of [`SystemPtes::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemPteError {
    /// The address is not the start of a reserved run (NT bug checks with
    /// `SYSTEM_PTE_MISUSE`, 0xDA).
    NotReserved { va: u64 },
    /// The page count differs from the reservation.
    WrongSize {
        va: u64,
        reserved: u64,
        released: u64,
    },
}

impl core::fmt::Display for SystemPteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SystemPteError::NotReserved { va } => {
                write!(f, "{va:#x} is not a reserved system PTE run")
            }
            SystemPteError::WrongSize {
                va,
                reserved,
                released,
            } => {
                write!(f, "{va:#x}: {released} pages released, {reserved} reserved")
            }
        }
    }
}

/// One system PTE region.
#[derive(Clone, Debug)]
pub struct SystemPtes {
    base: u64,
    pages: u64,
    bits: Vec<u64>,
    runs: BTreeMap<u64, u64>,
    used: u64,
}

impl SystemPtes {
    /// A region of `pages` pages starting at the page-aligned `base`.
    pub fn new(base: u64, pages: u64) -> Self {
        let words = usize::try_from(pages.div_ceil(64)).unwrap_or(0);
        SystemPtes {
            base: base & !(PAGE_SIZE - 1),
            pages: if words == 0 { 0 } else { pages },
            bits: alloc::vec![0; words],
            runs: BTreeMap::new(),
            used: 0,
        }
    }

    fn get(&self, i: u64) -> bool {
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: u64, v: bool) {
        let w = &mut self.bits[(i / 64) as usize];
        if v {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }

    /// Pages in use.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Pages in the region.
    pub fn size(&self) -> u64 {
        self.pages
    }

    /// `MiReserveSystemPtes`: `count` contiguous pages whose first page index
    /// is a multiple of `align` pages (1 = any). Returns the virtual address.
    pub fn reserve(&mut self, count: u64, align: u64) -> Option<u64> {
        if count == 0 || align == 0 || count > self.pages {
            return None;
        }
        let mut start = 0u64;
        while start + count <= self.pages {
            match (start..start + count).rev().find(|&i| self.get(i)) {
                None => {
                    for i in start..start + count {
                        self.set(i, true);
                    }
                    self.used += count;
                    let va = self.base + start * PAGE_SIZE;
                    self.runs.insert(va, count);
                    return Some(va);
                }
                Some(busy) => start = (busy + 1).div_ceil(align) * align,
            }
        }
        None
    }

    /// `MiReleaseSystemPtes`: gives back a run from [`Self::reserve`].
    pub fn release(&mut self, va: u64, count: u64) -> Result<(), SystemPteError> {
        let reserved = *self
            .runs
            .get(&va)
            .ok_or(SystemPteError::NotReserved { va })?;
        if reserved != count {
            return Err(SystemPteError::WrongSize {
                va,
                reserved,
                released: count,
            });
        }
        self.runs.remove(&va);
        let start = (va - self.base) / PAGE_SIZE;
        for i in start..start + count {
            self.set(i, false);
        }
        self.used -= count;
        Ok(())
    }

    /// The run containing `va`, as (start address, pages).
    pub fn lookup(&self, va: u64) -> Option<(u64, u64)> {
        let (&s, &n) = self.runs.range(..=va).next_back()?;
        (va < s + n * PAGE_SIZE).then_some((s, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASE: u64 = 0xFFFF_F600_0000_0000;

    #[test]
    fn reserve_release() {
        let mut s = SystemPtes::new(BASE, 32);
        let a = s.reserve(3, 1).unwrap();
        assert_eq!(a, BASE);
        let b = s.reserve(4, 4).unwrap();
        assert_eq!(b, BASE + 4 * PAGE_SIZE);
        assert_eq!(s.lookup(b + 0x3fff), Some((b, 4)));
        assert_eq!(s.lookup(b + 0x4000), None);
        assert_eq!(
            s.release(b, 3),
            Err(SystemPteError::WrongSize {
                va: b,
                reserved: 4,
                released: 3
            })
        );
        assert_eq!(
            s.release(b + PAGE_SIZE, 4),
            Err(SystemPteError::NotReserved { va: b + PAGE_SIZE })
        );
        s.release(b, 4).unwrap();
        assert_eq!(s.release(b, 4), Err(SystemPteError::NotReserved { va: b }));
        assert_eq!(s.reserve(33, 1), None);
        assert_eq!(s.reserve(29, 1), Some(BASE + 3 * PAGE_SIZE));
        assert_eq!(s.reserve(1, 1), None);
        assert_eq!(s.used(), 32);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn runs_never_overlap(ops in proptest::collection::vec((any::<bool>(), 1u64..9, 1u64..5, any::<usize>()), 1..100)) {
            let mut s = SystemPtes::new(BASE, 64);
            let mut live: Vec<(u64, u64)> = Vec::new();
            for (reserve, n, align, pick) in ops {
                if reserve || live.is_empty() {
                    if let Some(va) = s.reserve(n, align) {
                        prop_assert_eq!(((va - BASE) / PAGE_SIZE) % align, 0);
                        for &(o, m) in &live {
                            prop_assert!(va + n * PAGE_SIZE <= o || o + m * PAGE_SIZE <= va);
                        }
                        live.push((va, n));
                    }
                } else {
                    let (va, n) = live.swap_remove(pick % live.len());
                    s.release(va, n).unwrap();
                }
                prop_assert_eq!(s.used(), live.iter().map(|x| x.1).sum::<u64>());
            }
        }
    }
}
