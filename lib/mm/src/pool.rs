//! Executive pool logic (*Windows Internals* 7th ed., Part 1, ch. 5,
//! "Kernel-mode heaps (system memory pools)"): `ExAllocatePool2`,
//! `ExFreePoolWithTag`, the x64 `POOL_HEADER`, per-size free lists inside
//! 4 KiB pages, big-page allocations tracked in a big-page table
//! (`PoolBigPageTable`), per-size lookaside lists, per-tag usage for
//! `!poolused`, and the corruption checks that end in `BAD_POOL_HEADER`
//! (0x19) or `BAD_POOL_CALLER` (0xC2).
//!
//! This is the segment-free pre-Windows 10 19H1 design (NT 6.x "buddy" pool),
//! which is what *Windows Internals* still describes as the pool's logical
//! model; the segment heap backing of modern pools is not modelled.
//!
//! The pool never dereferences pointers itself: it reads and writes pool
//! memory through a [`PoolMemory`] provider (a byte arena on the host, real
//! kernel virtual memory in ntrs).
//!
//! Header layout (16 bytes, x64 `POOL_HEADER`): byte 0 `PreviousSize`,
//! byte 1 `PoolIndex`, byte 2 `BlockSize` (both sizes in 16-byte units,
//! header included), byte 3 `PoolType` (0 = free, otherwise pool type + 1),
//! bytes 4..8 `PoolTag`, bytes 8..16 `ProcessBilled` (0).
//!
//! Bug check parameters produced (Microsoft's bug check reference):
//! - `BAD_POOL_HEADER` 0x03 (free list or lookaside links corrupt, e.g. a
//!   write after free): P2 the entry, P3 and P4 the read-back links (equal to
//!   P2 in a healthy list).
//! - `BAD_POOL_CALLER` 0x07 (block already free): P2 0, P3 the 8 header
//!   bytes, P4 the address being freed.
//! - `BAD_POOL_CALLER` 0x0A (wrong tag): P2 the address, P3 the allocator's
//!   tag, P4 the tag used in the free.
//! - `BAD_POOL_CALLER` 0x01 (header's pool type is not this pool's): P2 the
//!   header address, P3 the first 8 header bytes, P4 0.
//! - `BAD_POOL_CALLER` 0x42 (address never in this pool): P2 the address.
//! - `BAD_POOL_CALLER` 0x46 (address inside the pool but not a block start,
//!   e.g. misaligned or inside a big allocation): P2 the address.
//! - `BAD_POOL_CALLER` 0x9B (allocation with tag 0): P2 pool type, P3 bytes, P4 0.
//! - `BAD_POOL_HEADER` 0x08 (`BlockSize` 0): P2 0, P4 the header address.
//! - `BAD_POOL_HEADER` 0x09 (block runs past its page): P2 and P4 the header address.
//! - `BAD_POOL_HEADER` 0x05 (neighbours disagree: the next header's
//!   `PreviousSize` is not our `BlockSize`, or the previous block's
//!   `BlockSize` is not our `PreviousSize`): P2 one header, P4 the other.
//! - `BAD_POOL_HEADER` 0x06 (`PreviousSize` reaches before the page start):
//!   P2 the header address, P4 the header address.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;

use nt::bugcheck::{BAD_POOL_CALLER, BAD_POOL_HEADER};

use crate::PAGE_SIZE;

/// Pool block granularity (`POOL_BLOCK_SIZE` / `sizeof(POOL_HEADER)`).
pub const POOL_BLOCK_SIZE: u64 = 16;
/// Units in a page.
const UNITS_PER_PAGE: u64 = PAGE_SIZE / POOL_BLOCK_SIZE;
/// Largest block that fits in the 8-bit `BlockSize` (255 units = 4080 bytes).
const MAX_BLOCK_UNITS: u64 = 255;
/// Largest small allocation (254 units, header included): a fresh page must
/// leave at least a 2-unit free block, the smallest that holds list links.
const MAX_SMALL_UNITS: u64 = 254;
/// Smallest block that can sit on a free list (header + `LIST_ENTRY`).
const MIN_FREE_UNITS: u64 = 2;
/// Small sizes served by lookaside lists (`POOL_SMALL_LISTS`: up to 32 units, 512 bytes).
pub const POOL_SMALL_LISTS: u64 = 32;
/// Maximum depth of each lookaside list.
pub const LOOKASIDE_DEPTH: usize = 64;
/// `PoolIndex` value ntrs uses to mark a free block parked on a lookaside list.
const LOOKASIDE_INDEX: u8 = 1;

/// `POOL_FLAG_USE_QUOTA`.
pub const POOL_FLAG_USE_QUOTA: u64 = 0x1;
/// `POOL_FLAG_UNINITIALIZED`.
pub const POOL_FLAG_UNINITIALIZED: u64 = 0x2;
/// `POOL_FLAG_SESSION`.
pub const POOL_FLAG_SESSION: u64 = 0x4;
/// `POOL_FLAG_CACHE_ALIGNED`.
pub const POOL_FLAG_CACHE_ALIGNED: u64 = 0x8;
/// `POOL_FLAG_RAISE_ON_FAILURE`.
pub const POOL_FLAG_RAISE_ON_FAILURE: u64 = 0x20;
/// `POOL_FLAG_NON_PAGED`.
pub const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// `POOL_FLAG_NON_PAGED_EXECUTE`.
pub const POOL_FLAG_NON_PAGED_EXECUTE: u64 = 0x80;
/// `POOL_FLAG_PAGED`.
pub const POOL_FLAG_PAGED: u64 = 0x100;
/// Last required flag bit (`POOL_FLAG_REQUIRED_END`).
pub const POOL_FLAG_REQUIRED_END: u64 = 0x8000_0000;
/// `POOL_FLAG_SPECIAL_POOL` (optional flag).
pub const POOL_FLAG_SPECIAL_POOL: u64 = 0x1_0000_0000;

/// `POOL_TYPE` values ntrs pools use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PoolType {
    /// `NonPagedPool` (0), also used for `NonPagedPoolNx`.
    NonPaged = 0,
    /// `PagedPool` (1).
    Paged = 1,
}

/// Access to the memory the pool manages (the kernel implements it over
/// kernel virtual memory; tests over a byte arena).
pub trait PoolMemory {
    /// Maps `pages` contiguous fresh pages of pool and returns the virtual
    /// address of the first (page aligned), or `None` when out of memory.
    fn allocate_pages(&mut self, pages: u64) -> Option<u64>;
    /// Returns pages obtained from `allocate_pages`.
    fn free_pages(&mut self, va: u64, pages: u64);
    /// Reads `buf.len()` bytes at `va`.
    fn read(&self, va: u64, buf: &mut [u8]);
    /// Writes `data` at `va`.
    fn write(&mut self, va: u64, data: &[u8]);
    /// Sets `len` bytes at `va` to `byte`.
    fn fill(&mut self, va: u64, len: u64, byte: u8);
}

/// A bug check the caller must raise (`KeBugCheckEx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BugCheck {
    pub code: u32,
    pub parameters: [u64; 4],
}

impl fmt::Display for BugCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.parameters;
        write!(
            f,
            "*** STOP: {:#010x} ({:#x}, {:#x}, {:#x}, {:#x})",
            self.code, p[0], p[1], p[2], p[3]
        )
    }
}

/// Pool errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// Fatal misuse or corruption: bug check.
    BugCheck(BugCheck),
    /// Out of memory (`ExAllocatePool2` returns NULL, or raises
    /// `STATUS_INSUFFICIENT_RESOURCES` with `POOL_FLAG_RAISE_ON_FAILURE`).
    InsufficientResources { raise: bool },
    /// Invalid `ExAllocatePool2` flags (none or several pool types, unknown
    /// required flags): `ExAllocatePool2` fails.
    InvalidFlags,
    /// The flags ask for something ntrs does not implement
    /// (`POOL_FLAG_SESSION`, `POOL_FLAG_USE_QUOTA`, special pool).
    NotImplemented,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::BugCheck(b) => write!(f, "{b}"),
            PoolError::InsufficientResources { .. } => write!(f, "pool exhausted"),
            PoolError::InvalidFlags => write!(f, "invalid pool flags"),
            PoolError::NotImplemented => write!(f, "pool flag not implemented"),
        }
    }
}

fn bad_header(p1: u64, p2: u64, p3: u64, p4: u64) -> PoolError {
    PoolError::BugCheck(BugCheck {
        code: BAD_POOL_HEADER,
        parameters: [p1, p2, p3, p4],
    })
}

fn bad_caller(p1: u64, p2: u64, p3: u64, p4: u64) -> PoolError {
    PoolError::BugCheck(BugCheck {
        code: BAD_POOL_CALLER,
        parameters: [p1, p2, p3, p4],
    })
}

/// Per-tag usage (`POOL_TRACKER_TABLE` entry), as `!poolused` prints it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagUsage {
    pub allocs: u64,
    pub frees: u64,
    /// Bytes currently allocated (requested sizes).
    pub bytes: u64,
}

/// Pool statistics for `!vm` / `!poolused`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pages obtained from the provider (small-block pages + big pages).
    pub pages: u64,
    pub big_allocations: u64,
    pub lookaside_blocks: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    previous_size: u8,
    pool_index: u8,
    block_size: u8,
    pool_type: u8,
    tag: u32,
}

impl Header {
    fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.previous_size;
        b[1] = self.pool_index;
        b[2] = self.block_size;
        b[3] = self.pool_type;
        b[4..8].copy_from_slice(&self.tag.to_le_bytes());
        b
    }
    fn decode(b: &[u8; 16]) -> Self {
        Header {
            previous_size: b[0],
            pool_index: b[1],
            block_size: b[2],
            pool_type: b[3],
            tag: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
    fn raw(&self) -> u64 {
        let e = self.encode();
        u64::from_le_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BigPage {
    pages: u64,
    tag: u32,
    bytes: u64,
}

/// A free list head (`ListHeads[n]` of `POOL_DESCRIPTOR`): first and last
/// block header addresses, 0 when empty. The links themselves live in the
/// free blocks (see [`Pool`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ListHead {
    first: u64,
    last: u64,
}

/// A lookaside list head (`GENERAL_LOOKASIDE`: an S-list head and its depth).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Lookaside {
    head: u64,
    depth: usize,
}

/// One pool (`POOL_DESCRIPTOR`): nonpaged or paged.
///
/// As in NT, free blocks carry their list links in their body: a block on a
/// free list has `Flink` at body offset 0 and `Blink` at offset 8 (header
/// addresses of the neighbours on the list, 0 for the list head); a block
/// on a lookaside list has the next block's header address at offset 0.
/// Links are checked before every unlink (`BAD_POOL_HEADER` 0x3), so a write
/// after free that clobbers them is caught.
#[derive(Clone, Debug)]
pub struct Pool {
    pool_type: PoolType,
    /// `ListHeads[n]`: free blocks of n units.
    free_lists: Vec<ListHead>,
    /// Per-size lookaside lists.
    lookaside: Vec<Lookaside>,
    /// Pages carved into small blocks.
    small_pages: BTreeSet<u64>,
    /// `PoolBigPageTable`: big allocations by address.
    big_pages: BTreeMap<u64, BigPage>,
    /// `PoolTrackTable`.
    tags: BTreeMap<u32, TagUsage>,
}

/// Prints a tag as four characters the way `!poolused` does.
pub fn tag_string(tag: u32) -> [char; 4] {
    let b = (tag & 0x7FFF_FFFF).to_le_bytes();
    b.map(|c| {
        if c.is_ascii_graphic() || c == b' ' {
            c as char
        } else {
            '?'
        }
    })
}

impl Pool {
    /// An empty pool of `pool_type` (`ExInitializePoolDescriptor`).
    pub fn new(pool_type: PoolType) -> Self {
        Pool {
            pool_type,
            free_lists: alloc::vec![ListHead::default(); MAX_BLOCK_UNITS as usize + 1],
            lookaside: alloc::vec![Lookaside::default(); POOL_SMALL_LISTS as usize + 1],
            small_pages: BTreeSet::new(),
            big_pages: BTreeMap::new(),
            tags: BTreeMap::new(),
        }
    }

    /// This pool's type.
    pub fn pool_type(&self) -> PoolType {
        self.pool_type
    }

    fn type_byte(&self) -> u8 {
        self.pool_type as u8 + 1
    }

    fn read_header(&self, mem: &dyn PoolMemory, at: u64) -> Header {
        let mut b = [0u8; 16];
        mem.read(at, &mut b);
        Header::decode(&b)
    }

    fn write_header(mem: &mut dyn PoolMemory, at: u64, h: Header) {
        mem.write(at, &h.encode());
    }

    fn read_u64(mem: &dyn PoolMemory, at: u64) -> u64 {
        let mut b = [0u8; 8];
        mem.read(at, &mut b);
        u64::from_le_bytes(b)
    }

    fn write_u64(mem: &mut dyn PoolMemory, at: u64, v: u64) {
        mem.write(at, &v.to_le_bytes());
    }

    /// Whether `h` can be a block header of this pool (so reading it is safe).
    fn is_block_address(&self, h: u64) -> bool {
        h.is_multiple_of(POOL_BLOCK_SIZE)
            && self.small_pages.contains(&(h & !(PAGE_SIZE - 1)))
            && h % PAGE_SIZE <= PAGE_SIZE - 2 * POOL_BLOCK_SIZE
    }

    fn links(mem: &dyn PoolMemory, h: u64) -> (u64, u64) {
        (
            Self::read_u64(mem, h + POOL_BLOCK_SIZE),
            Self::read_u64(mem, h + POOL_BLOCK_SIZE + 8),
        )
    }

    fn set_links(mem: &mut dyn PoolMemory, h: u64, flink: u64, blink: u64) {
        Self::write_u64(mem, h + POOL_BLOCK_SIZE, flink);
        Self::write_u64(mem, h + POOL_BLOCK_SIZE + 8, blink);
    }

    /// `ExpCheckListEntry`-style safe-unlink check of block `h` on list `n`:
    /// its neighbours must point back at it. `BAD_POOL_HEADER` 0x3 with the
    /// entry and the two read-back values otherwise.
    fn check_entry(&self, mem: &dyn PoolMemory, n: usize, h: u64) -> Result<(), PoolError> {
        let (flink, blink) = Self::links(mem, h);
        let head = self.free_lists[n];
        let back = match flink {
            0 => head.last,
            f if self.is_block_address(f) => Self::links(mem, f).1,
            f => f,
        };
        let fwd = match blink {
            0 => head.first,
            b if self.is_block_address(b) => Self::links(mem, b).0,
            b => b,
        };
        if back != h || fwd != h {
            return Err(bad_header(0x3, h, back, fwd));
        }
        Ok(())
    }

    /// Unlinks a checked entry.
    fn unlink(&mut self, mem: &mut dyn PoolMemory, n: usize, h: u64) {
        let (flink, blink) = Self::links(mem, h);
        if blink == 0 {
            self.free_lists[n].first = flink;
        } else {
            Self::write_u64(mem, blink + POOL_BLOCK_SIZE, flink);
        }
        if flink == 0 {
            self.free_lists[n].last = blink;
        } else {
            Self::write_u64(mem, flink + POOL_BLOCK_SIZE + 8, blink);
        }
    }

    /// `InsertHeadList` on list `n`.
    fn link_head(&mut self, mem: &mut dyn PoolMemory, n: usize, h: u64) {
        let first = self.free_lists[n].first;
        Self::set_links(mem, h, first, 0);
        if first == 0 {
            self.free_lists[n].last = h;
        } else {
            Self::write_u64(mem, first + POOL_BLOCK_SIZE + 8, h);
        }
        self.free_lists[n].first = h;
    }

    /// Per-tag usage, sorted by tag (`!poolused`).
    pub fn tag_usage(&self) -> Vec<(u32, TagUsage)> {
        self.tags.iter().map(|(&t, &u)| (t, u)).collect()
    }

    /// Usage of one tag.
    pub fn usage(&self, tag: u32) -> TagUsage {
        self.tags
            .get(&(tag & 0x7FFF_FFFF))
            .copied()
            .unwrap_or_default()
    }

    /// `!poolused`: one line per tag (allocations outstanding, frees, bytes
    /// in use: block sizes for small blocks, requested sizes for big pages).
    pub fn format_pool_used(&self) -> alloc::string::String {
        use core::fmt::Write as _;
        let name = match self.pool_type {
            PoolType::NonPaged => "NonPaged",
            PoolType::Paged => "Paged",
        };
        let mut s =
            alloc::format!(" Sorting by Tag ({name})\n Tag      Allocs      Frees       Used\n");
        for (tag, u) in &self.tags {
            let t: alloc::string::String = tag_string(*tag).iter().collect();
            let _ = writeln!(
                s,
                " {t}  {:>9}  {:>9}  {:>9}",
                u.allocs - u.frees.min(u.allocs),
                u.frees,
                u.bytes
            );
        }
        s
    }

    /// Page and big-page counts.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            pages: self.small_pages.len() as u64
                + self.big_pages.values().map(|b| b.pages).sum::<u64>(),
            big_allocations: self.big_pages.len() as u64,
            lookaside_blocks: self.lookaside.iter().map(|l| l.depth as u64).sum(),
        }
    }

    /// `ExAllocatePoolWithTag` on this pool: `bytes` bytes tagged `tag`,
    /// zeroed when `zero` is set. Returns the block address (16-byte
    /// aligned; page aligned for big allocations). A tag of 0 bug checks
    /// with `BAD_POOL_CALLER` 0x9B; a corrupted free list with
    /// `BAD_POOL_HEADER` 0x3. Size 0 gets a minimal block.
    pub fn allocate(
        &mut self,
        mem: &mut dyn PoolMemory,
        bytes: u64,
        tag: u32,
        zero: bool,
    ) -> Result<u64, PoolError> {
        let tag = tag & 0x7FFF_FFFF; // PROTECTED_POOL bit is not part of the tag
        if tag == 0 {
            return Err(bad_caller(0x9B, self.pool_type as u64, bytes, 0));
        }
        let units = bytes
            .checked_add(2 * POOL_BLOCK_SIZE - 1)
            .map(|b| b / POOL_BLOCK_SIZE)
            .ok_or(PoolError::InsufficientResources { raise: false })?
            .max(2);
        let (va, used) = if units > MAX_SMALL_UNITS {
            // Big page allocation (MiAllocatePoolPages + ExpAddTagForBigPages).
            let pages = bytes.div_ceil(PAGE_SIZE);
            let va = mem
                .allocate_pages(pages)
                .ok_or(PoolError::InsufficientResources { raise: false })?;
            self.big_pages.insert(va, BigPage { pages, tag, bytes });
            if zero {
                mem.fill(va, pages * PAGE_SIZE, 0);
            }
            (va, bytes)
        } else {
            let header = self.allocate_small(mem, units)?;
            let h = self.read_header(mem, header);
            let units = h.block_size as u64;
            Self::write_header(
                mem,
                header,
                Header {
                    pool_index: 0,
                    pool_type: self.type_byte(),
                    tag,
                    ..h
                },
            );
            let va = header + POOL_BLOCK_SIZE;
            if zero {
                mem.fill(va, (units - 1) * POOL_BLOCK_SIZE, 0);
            }
            (va, units * POOL_BLOCK_SIZE)
        };
        let u = self.tags.entry(tag).or_default();
        u.allocs += 1;
        u.bytes += used;
        Ok(va)
    }

    /// Takes a block of exactly `units` units (header address); its header
    /// has the right `BlockSize`/`PreviousSize`, type and tag not yet set.
    fn allocate_small(&mut self, mem: &mut dyn PoolMemory, units: u64) -> Result<u64, PoolError> {
        if units <= POOL_SMALL_LISTS {
            let l = self.lookaside[units as usize];
            if l.head != 0 {
                // Pop, validating the next pointer like a checked S-list pop.
                let next = Self::read_u64(mem, l.head + POOL_BLOCK_SIZE);
                let next_ok = next == 0
                    || (self.is_block_address(next) && {
                        let n = self.read_header(mem, next);
                        n.pool_type == 0
                            && n.pool_index == LOOKASIDE_INDEX
                            && n.block_size as u64 == units
                    });
                if !next_ok || l.depth == 0 {
                    return Err(bad_header(0x3, l.head, next, 0));
                }
                self.lookaside[units as usize] = Lookaside {
                    head: next,
                    depth: l.depth - 1,
                };
                return Ok(l.head);
            }
        }
        let found =
            (units as usize..=MAX_BLOCK_UNITS as usize).find(|&n| self.free_lists[n].first != 0);
        let (header, have) = match found {
            Some(n) => {
                let h = self.free_lists[n].first;
                self.check_entry(mem, n, h)?;
                self.unlink(mem, n, h);
                (h, n as u64)
            }
            None => {
                // ExpAllocateNewPage: the whole page, head block = request.
                let page = mem
                    .allocate_pages(1)
                    .ok_or(PoolError::InsufficientResources { raise: false })?;
                self.small_pages.insert(page);
                Self::write_header(
                    mem,
                    page,
                    Header {
                        previous_size: 0,
                        pool_index: 0,
                        block_size: units as u8,
                        pool_type: 0,
                        tag: 0,
                    },
                );
                let rest = UNITS_PER_PAGE - units;
                let at = page + units * POOL_BLOCK_SIZE;
                Self::write_header(
                    mem,
                    at,
                    Header {
                        previous_size: units as u8,
                        pool_index: 0,
                        block_size: rest as u8,
                        pool_type: 0,
                        tag: 0,
                    },
                );
                self.link_head(mem, rest as usize, at);
                return Ok(page);
            }
        };
        let mut h = self.read_header(mem, header);
        // A remainder too small to hold list links stays part of the block.
        if have >= units + MIN_FREE_UNITS {
            // Split: the front is ours, the remainder stays free.
            let rest = have - units;
            let at = header + units * POOL_BLOCK_SIZE;
            Self::write_header(
                mem,
                at,
                Header {
                    previous_size: units as u8,
                    pool_index: 0,
                    block_size: rest as u8,
                    pool_type: 0,
                    tag: 0,
                },
            );
            self.fix_next_previous(mem, at, rest);
            self.link_head(mem, rest as usize, at);
            h.block_size = units as u8;
        }
        Self::write_header(mem, header, h);
        Ok(header)
    }

    /// Sets the `PreviousSize` of the block after `at` (size `units`), if any in the page.
    fn fix_next_previous(&self, mem: &mut dyn PoolMemory, at: u64, units: u64) {
        let next = at + units * POOL_BLOCK_SIZE;
        if !next.is_multiple_of(PAGE_SIZE) {
            let mut n = self.read_header(mem, next);
            n.previous_size = units as u8;
            Self::write_header(mem, next, n);
        }
    }

    /// `ExFreePoolWithTag`: frees `va`. `tag` 0 skips the tag check (as
    /// `ExFreePool`). All checks listed in the module documentation happen
    /// before anything is modified.
    pub fn free(&mut self, mem: &mut dyn PoolMemory, va: u64, tag: u32) -> Result<(), PoolError> {
        let tag = tag & 0x7FFF_FFFF;
        if va.is_multiple_of(PAGE_SIZE) {
            if let Some(b) = self.big_pages.get(&va).copied() {
                if tag != 0 && b.tag != tag {
                    return Err(bad_caller(0x0A, va, b.tag as u64, tag as u64));
                }
                self.big_pages.remove(&va);
                mem.free_pages(va, b.pages);
                self.account_free(b.tag, b.bytes);
                return Ok(());
            }
        }
        let page = va & !(PAGE_SIZE - 1);
        if !self.small_pages.contains(&page) {
            let in_big = self
                .big_pages
                .range(..=va)
                .next_back()
                .is_some_and(|(&s, b)| va < s + b.pages * PAGE_SIZE);
            return Err(if in_big {
                bad_caller(0x46, va, 0, 0)
            } else {
                bad_caller(0x42, va, 0, 0)
            });
        }
        if !va.is_multiple_of(POOL_BLOCK_SIZE) || va == page {
            return Err(bad_caller(0x46, va, 0, 0));
        }
        let header = va - POOL_BLOCK_SIZE;
        let h = self.read_header(mem, header);
        if h.pool_type == 0 {
            return Err(bad_caller(0x07, 0, h.raw(), va));
        }
        if h.pool_type != self.type_byte() {
            return Err(bad_caller(0x01, header, h.raw(), 0));
        }
        self.check_neighbours(mem, header, &h)?;
        if tag != 0 && h.tag != tag {
            return Err(bad_caller(0x0A, va, h.tag as u64, tag as u64));
        }
        let units = h.block_size as u64;
        if units <= POOL_SMALL_LISTS && self.lookaside[units as usize].depth < LOOKASIDE_DEPTH {
            // Park on the lookaside list: marked free so a second free is caught.
            Self::write_header(
                mem,
                header,
                Header {
                    pool_type: 0,
                    pool_index: LOOKASIDE_INDEX,
                    ..h
                },
            );
            let l = self.lookaside[units as usize];
            Self::write_u64(mem, header + POOL_BLOCK_SIZE, l.head);
            self.lookaside[units as usize] = Lookaside {
                head: header,
                depth: l.depth + 1,
            };
        } else {
            self.insert_free(mem, header, h)?;
        }
        self.account_free(h.tag, units * POOL_BLOCK_SIZE);
        Ok(())
    }

    fn account_free(&mut self, tag: u32, bytes: u64) {
        let u = self.tags.entry(tag).or_default();
        u.frees += 1;
        u.bytes = u.bytes.saturating_sub(bytes);
    }

    /// The `BAD_POOL_HEADER` checks of `ExFreePoolWithTag`.
    fn check_neighbours(
        &self,
        mem: &dyn PoolMemory,
        header: u64,
        h: &Header,
    ) -> Result<(), PoolError> {
        let page = header & !(PAGE_SIZE - 1);
        let units = h.block_size as u64;
        if units == 0 {
            return Err(bad_header(0x8, 0, 0, header));
        }
        let next = header + units * POOL_BLOCK_SIZE;
        if next > page + PAGE_SIZE {
            return Err(bad_header(0x9, header, 0, header));
        }
        if next < page + PAGE_SIZE {
            let n = self.read_header(mem, next);
            if n.previous_size != h.block_size {
                return Err(bad_header(0x5, header, 0, next));
            }
        }
        let prev_units = h.previous_size as u64;
        if header == page {
            if prev_units != 0 {
                return Err(bad_header(0x6, header, 0, header));
            }
        } else {
            if prev_units == 0 || prev_units * POOL_BLOCK_SIZE > header - page {
                return Err(bad_header(0x6, header, 0, header));
            }
            let prev = header - prev_units * POOL_BLOCK_SIZE;
            let p = self.read_header(mem, prev);
            if p.block_size != h.previous_size {
                return Err(bad_header(0x5, prev, 0, header));
            }
        }
        Ok(())
    }

    /// Puts a block on its free list, coalescing with free (non-lookaside)
    /// neighbours; a page that becomes entirely free goes back to the
    /// provider. The neighbours' list links are checked before anything is
    /// written.
    fn insert_free(
        &mut self,
        mem: &mut dyn PoolMemory,
        header: u64,
        h: Header,
    ) -> Result<(), PoolError> {
        let page = header & !(PAGE_SIZE - 1);
        let next = header + h.block_size as u64 * POOL_BLOCK_SIZE;
        let merge_next = if next < page + PAGE_SIZE {
            let n = self.read_header(mem, next);
            (n.pool_type == 0 && n.pool_index == 0 && n.block_size != 0).then_some(n)
        } else {
            None
        };
        let prev = header - h.previous_size as u64 * POOL_BLOCK_SIZE;
        let merge_prev = if header != page && h.previous_size != 0 {
            let p = self.read_header(mem, prev);
            (p.pool_type == 0 && p.pool_index == 0 && p.block_size != 0).then_some(p)
        } else {
            None
        };
        if let Some(n) = merge_next {
            self.check_entry(mem, n.block_size as usize, next)?;
        }
        if let Some(p) = merge_prev {
            self.check_entry(mem, p.block_size as usize, prev)?;
        }
        // Mark the block free first, so that if it is merged into its
        // predecessor a second free still finds a free header.
        Self::write_header(
            mem,
            header,
            Header {
                pool_type: 0,
                pool_index: 0,
                tag: 0,
                ..h
            },
        );
        let mut start = header;
        let mut units = h.block_size as u64;
        let mut previous = h.previous_size;
        if let Some(n) = merge_next {
            self.unlink(mem, n.block_size as usize, next);
            units += n.block_size as u64;
        }
        if let Some(p) = merge_prev {
            self.unlink(mem, p.block_size as usize, prev);
            units += p.block_size as u64;
            start = prev;
            previous = p.previous_size;
        }
        if units >= UNITS_PER_PAGE {
            self.small_pages.remove(&page);
            mem.free_pages(page, 1);
            return Ok(());
        }
        Self::write_header(
            mem,
            start,
            Header {
                previous_size: if start == page { 0 } else { previous },
                pool_index: 0,
                block_size: units as u8,
                pool_type: 0,
                tag: 0,
            },
        );
        self.fix_next_previous(mem, start, units);
        self.link_head(mem, units as usize, start);
        Ok(())
    }

    /// Empties the lookaside lists into the free lists (what NT's balance
    /// set manager does when it shrinks lookaside depths); pages that become
    /// free go back to the provider.
    pub fn flush_lookaside(&mut self, mem: &mut dyn PoolMemory) -> Result<(), PoolError> {
        for n in 1..self.lookaside.len() {
            while self.lookaside[n].head != 0 {
                let header = self.allocate_small(mem, n as u64)?;
                let h = self.read_header(mem, header);
                self.insert_free(mem, header, Header { pool_index: 0, ..h })?;
            }
        }
        Ok(())
    }

    /// The tag and size in use of a live allocation (`!pool <address>`):
    /// the requested size for big pages, the block size for small blocks.
    pub fn query(&self, mem: &dyn PoolMemory, va: u64) -> Option<(u32, u64)> {
        if let Some(b) = self.big_pages.get(&va) {
            return Some((b.tag, b.bytes));
        }
        if va < POOL_BLOCK_SIZE || !self.is_block_address(va - POOL_BLOCK_SIZE) {
            return None;
        }
        let h = self.read_header(mem, va - POOL_BLOCK_SIZE);
        (h.pool_type == self.type_byte()).then_some((h.tag, h.block_size as u64 * POOL_BLOCK_SIZE))
    }

    /// Walks every small-block page and checks that the blocks tile it with
    /// consistent `PreviousSize` links, and every free list and lookaside
    /// list: links consistent both ways, entries free blocks of the right
    /// size, and every free block on exactly one list (`!poolval`).
    pub fn verify(&self, mem: &dyn PoolMemory) -> Result<(), alloc::string::String> {
        let mut free_found = BTreeSet::new();
        let mut lookaside_found = BTreeSet::new();
        for &page in &self.small_pages {
            let mut at = page;
            let mut prev = 0u8;
            while at < page + PAGE_SIZE {
                let h = self.read_header(mem, at);
                if h.block_size == 0 || h.previous_size != prev {
                    return Err(alloc::format!("bad header at {at:#x}: {h:?}"));
                }
                if h.pool_type == 0 && h.pool_index == 0 {
                    free_found.insert(at);
                } else if h.pool_type == 0 {
                    lookaside_found.insert(at);
                } else if h.pool_type != self.type_byte() {
                    return Err(alloc::format!("foreign pool type at {at:#x}"));
                }
                prev = h.block_size;
                at += h.block_size as u64 * POOL_BLOCK_SIZE;
            }
            if at != page + PAGE_SIZE {
                return Err(alloc::format!("blocks overrun page {page:#x}"));
            }
        }
        let mut listed = BTreeSet::new();
        for (n, head) in self.free_lists.iter().enumerate() {
            let mut prev = 0u64;
            let mut cur = head.first;
            while cur != 0 {
                if !free_found.contains(&cur) || !listed.insert(cur) {
                    return Err(alloc::format!("list {n}: bad or repeated entry {cur:#x}"));
                }
                if self.read_header(mem, cur).block_size as usize != n {
                    return Err(alloc::format!("list {n}: entry {cur:#x} has another size"));
                }
                let (f, b) = Self::links(mem, cur);
                if b != prev {
                    return Err(alloc::format!("list {n}: blink of {cur:#x} is {b:#x}"));
                }
                prev = cur;
                cur = f;
            }
            if head.last != prev {
                return Err(alloc::format!("list {n}: tail mismatch"));
            }
        }
        if listed != free_found {
            return Err(alloc::format!(
                "{} listed free blocks, {} found",
                listed.len(),
                free_found.len()
            ));
        }
        let mut parked = BTreeSet::new();
        for (n, l) in self.lookaside.iter().enumerate() {
            let mut cur = l.head;
            let mut depth = 0;
            while cur != 0 {
                if !lookaside_found.contains(&cur) || !parked.insert(cur) {
                    return Err(alloc::format!("lookaside {n}: bad entry {cur:#x}"));
                }
                if self.read_header(mem, cur).block_size as usize != n {
                    return Err(alloc::format!(
                        "lookaside {n}: entry {cur:#x} has another size"
                    ));
                }
                depth += 1;
                cur = Self::read_u64(mem, cur + POOL_BLOCK_SIZE);
            }
            if depth != l.depth {
                return Err(alloc::format!(
                    "lookaside {n}: depth {} but {depth} linked",
                    l.depth
                ));
            }
        }
        if parked != lookaside_found {
            return Err(alloc::format!(
                "{} parked blocks, {} found",
                parked.len(),
                lookaside_found.len()
            ));
        }
        Ok(())
    }
}

/// `ExAllocatePool2(Flags, NumberOfBytes, Tag)` over a nonpaged and a
/// paged pool: exactly one of `POOL_FLAG_NON_PAGED`,
/// `POOL_FLAG_NON_PAGED_EXECUTE`, `POOL_FLAG_PAGED` selects the pool; the
/// memory is zeroed unless `POOL_FLAG_UNINITIALIZED`. Unknown required flags
/// fail with [`PoolError::InvalidFlags`]; `POOL_FLAG_USE_QUOTA`,
/// `POOL_FLAG_SESSION` and `POOL_FLAG_SPECIAL_POOL` are not implemented.
/// On exhaustion the error says whether `POOL_FLAG_RAISE_ON_FAILURE` asked
/// for an exception.
pub fn ex_allocate_pool2(
    nonpaged: &mut Pool,
    nonpaged_mem: &mut dyn PoolMemory,
    paged: &mut Pool,
    paged_mem: &mut dyn PoolMemory,
    flags: u64,
    bytes: u64,
    tag: u32,
) -> Result<u64, PoolError> {
    let known_required = POOL_FLAG_USE_QUOTA
        | POOL_FLAG_UNINITIALIZED
        | POOL_FLAG_SESSION
        | POOL_FLAG_CACHE_ALIGNED
        | POOL_FLAG_RAISE_ON_FAILURE
        | POOL_FLAG_NON_PAGED
        | POOL_FLAG_NON_PAGED_EXECUTE
        | POOL_FLAG_PAGED;
    let required = flags & 0xFFFF_FFFF;
    if required & !known_required != 0 {
        return Err(PoolError::InvalidFlags);
    }
    let types = flags & (POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE | POOL_FLAG_PAGED);
    if types.count_ones() != 1 {
        return Err(PoolError::InvalidFlags);
    }
    if flags & (POOL_FLAG_USE_QUOTA | POOL_FLAG_SESSION | POOL_FLAG_SPECIAL_POOL) != 0 {
        return Err(PoolError::NotImplemented);
    }
    let raise = flags & POOL_FLAG_RAISE_ON_FAILURE != 0;
    let zero = flags & POOL_FLAG_UNINITIALIZED == 0;
    let r = if types == POOL_FLAG_PAGED {
        paged.allocate(paged_mem, bytes, tag, zero)
    } else {
        nonpaged.allocate(nonpaged_mem, bytes, tag, zero)
    };
    r.map_err(|e| match e {
        PoolError::InsufficientResources { .. } => PoolError::InsufficientResources { raise },
        e => e,
    })
}

#[cfg(test)]
mod tests;
