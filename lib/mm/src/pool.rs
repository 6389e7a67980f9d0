//! Executive pool logic (*Windows Internals* 7th ed., Part 1, ch. 5,
//! "Kernel-mode heaps (system memory pools)"): `ExAllocatePool2`,
//! `ExFreePoolWithTag`, the x64 `POOL_HEADER`, per-size free lists inside
//! 4 KiB pages, big-page allocations tracked in a big-page table
//! (`PoolBigPageTable`), per-processor lookaside lists (`PPNPagedLookasideList`
//! and `PPPagedLookasideList`), per-tag usage in a pool tracker table
//! (`PoolTrackTable`) for `!poolused`, and the corruption checks that end in
//! `BAD_POOL_HEADER` (0x19) or `BAD_POOL_CALLER` (0xC2).
//!
//! This is the segment-free pre-Windows 10 19H1 design (NT 6.x "buddy" pool),
//! which is what *Windows Internals* still describes as the pool's logical
//! model; the segment heap backing of modern pools is not modelled.
//!
//! # No heap inside the pool
//!
//! The pool is the kernel's heap, so it never allocates from a heap itself:
//! every table it keeps lives in pool pages, as in NT.
//! - Which pages are carved into small blocks: a bitmap over the pool's
//!   virtual range, one page of bitmap per 128 MiB, added as pages appear.
//! - `PoolTrackTable` (per-tag usage): open-addressed tables of 32-byte
//!   entries (tag, allocations, frees, bytes). It grows by adding a segment
//!   twice the size of the last one; entries never move, so the per-tag
//!   counters are updated with atomic adds and the table is read and
//!   extended without the pool lock (a new tag claims a slot with a
//!   compare-exchange).
//! - `PoolBigPageTable` (big allocations by address): an open-addressed hash
//!   table of 32-byte entries (address, pages, bytes, tag) with tombstones,
//!   rehashed into a table twice the size when three quarters full (under
//!   the pool lock).
//!
//! The pool does not obtain pages either: an operation that needs pages it
//! does not hold returns [`PoolError::NeedPages`]; the caller gets a run of
//! that many pages from the memory manager without holding the pool lock
//! (the memory manager may itself allocate), hands it over with
//! [`PoolDescriptor::add_pages`] and retries. Pages the pool no longer needs
//! wait in a small cache and [`PoolDescriptor::take_surplus`] gives back
//! what exceeds [`RETAINED_PAGES`] (and every multi-page run at once), again
//! for the caller to return outside the lock. Runs are never split or
//! merged, so each run goes back to the memory manager exactly as it came.
//!
//! # Locking
//!
//! [`PoolDescriptor`] (free lists, page cache, big-page table) is guarded by
//! the pool lock. [`PoolShared`] (bitmap, tracker table) is read and updated
//! without it. The per-processor lookaside lists ([`PpLookaside`]) belong to
//! one processor each and are used without the pool lock, with that
//! processor unable to be interrupted by another user of the same list: the
//! fast path of an allocation or free of up to [`POOL_SMALL_LISTS`] units
//! takes no lock. Pool headers are read and written as one 8-byte word;
//! the fast path changes a header with a compare-exchange and the locked
//! path changes the `PreviousSize` of a neighbour it does not own the same
//! way, so neither loses the other's update.
//!
//! The pool never dereferences pointers itself: it reads and writes pool
//! memory through a [`PoolMemory`] provider (an arena on the host, real
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
//!
//! The lock-free fast path of a free hands every block that fails any of
//! these checks to the locked path, which makes the same checks again on a
//! stable heap and raises the bug check; so both paths report the same way.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

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
/// Maximum depth of each per-processor lookaside list.
pub const LOOKASIDE_DEPTH: u16 = 64;
/// `PoolIndex` value ntrs uses to mark a free block parked on a lookaside list.
const LOOKASIDE_INDEX: u8 = 1;
/// Single free pages the pool keeps for reuse instead of returning them.
pub const RETAINED_PAGES: u64 = 16;
/// Pages one page of the small-page bitmap covers (128 MiB of pool).
const BITMAP_PAGES_PER_CHUNK: u64 = PAGE_SIZE * 8;
/// Bitmap pages at most (a pool range of up to 8 GiB).
const MAX_BITMAP_CHUNKS: usize = 64;
/// Segments of the tracker table; segment k has 128 << k entries.
pub const TRACKER_SEGMENTS: usize = 12;
/// Bytes of a `POOL_TRACKER_TABLE` entry: tag, allocations, frees, bytes.
const TRACKER_ENTRY: u64 = 32;
const TRACKERS_PER_PAGE: u64 = PAGE_SIZE / TRACKER_ENTRY;
/// Bytes of a `POOL_TRACKER_BIG_PAGES` entry: address, pages, bytes, tag.
const BIG_ENTRY: u64 = 32;
const BIG_ENTRIES_PER_PAGE: u64 = PAGE_SIZE / BIG_ENTRY;
/// A deleted big-page table entry (NT marks free entries with the low bit of `Va`).
const BIG_FREE: u64 = 1;
/// The tag bits (the high bit is `PROTECTED_POOL`, not part of the tag).
const TAG_MASK: u32 = 0x7FFF_FFFF;

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
/// kernel virtual memory; tests over an arena). Every address is inside a
/// page the pool obtained and still holds; word accesses are 8-byte aligned.
pub trait PoolMemory {
    /// Reads the word at `va` as one access.
    fn read_u64(&self, va: u64) -> u64;
    /// Writes the word at `va` as one access.
    fn write_u64(&self, va: u64, value: u64);
    /// Atomically replaces the word at `va` with `new` if it holds
    /// `current`: `Ok(current)` if replaced, `Err(actual)` otherwise.
    fn compare_exchange_u64(&self, va: u64, current: u64, new: u64) -> Result<u64, u64>;
    /// Atomically adds `delta` (wrapping) to the word at `va`.
    fn fetch_add_u64(&self, va: u64, delta: u64) -> u64;
    /// Sets `len` bytes at `va` to `byte`.
    fn fill(&self, va: u64, len: u64, byte: u8);
    /// Zeroes `len` bytes at `va`, both multiples of 8 (block bodies: the
    /// fast path's zeroing, which implementations can do without checks).
    fn zero_words(&self, va: u64, len: u64) {
        self.fill(va, len, 0);
    }
}

/// Where pages come from when the caller grows the pool directly (host
/// tests, [`Pool`]); the kernel obtains them itself outside the pool lock.
pub trait PageSupply {
    /// Maps `pages` contiguous fresh pages of pool and returns the virtual
    /// address of the first (page aligned), or `None` when out of memory.
    fn allocate_pages(&mut self, pages: u64) -> Option<u64>;
    /// Returns a run obtained from `allocate_pages`, whole.
    fn free_pages(&mut self, va: u64, pages: u64);
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
    /// The operation needs a run of `pages` fresh pages: obtain it (outside
    /// the pool lock), hand it over with [`PoolDescriptor::add_pages`] and
    /// retry. Nothing was changed. Only [`PoolDescriptor::try_allocate`]
    /// returns it, and only while the pool stays within its maximum.
    NeedPages { pages: u64 },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::BugCheck(b) => write!(f, "{b}"),
            PoolError::InsufficientResources { .. } => write!(f, "pool exhausted"),
            PoolError::InvalidFlags => write!(f, "invalid pool flags"),
            PoolError::NotImplemented => write!(f, "pool flag not implemented"),
            PoolError::NeedPages { pages } => write!(f, "pool needs {pages} more pages"),
        }
    }
}

const EXHAUSTED: PoolError = PoolError::InsufficientResources { raise: false };

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
    /// Bytes currently allocated: block sizes for small blocks, requested
    /// sizes for big allocations.
    pub bytes: u64,
}

impl TagUsage {
    /// Allocations outstanding.
    pub fn outstanding(&self) -> u64 {
        self.allocs.wrapping_sub(self.frees)
    }

    fn add(&mut self, o: TagUsage) {
        self.allocs = self.allocs.wrapping_add(o.allocs);
        self.frees = self.frees.wrapping_add(o.frees);
        self.bytes = self.bytes.wrapping_add(o.bytes);
    }
}

/// Pool statistics for `!vm` / `!poolused`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pages the pool holds: small-block pages, big allocations, its own
    /// tables and free pages it keeps.
    pub pages: u64,
    /// Pages carved into small blocks.
    pub small_pages: u64,
    /// Big allocations and their pages.
    pub big_allocations: u64,
    pub big_pages: u64,
    /// Pages of the small-page bitmap, tracker table and big-page table.
    pub table_pages: u64,
    /// Free pages kept for reuse or waiting to be returned.
    pub cached_pages: u64,
    /// The most pages the pool may hold (`MmMaximumNonPagedPoolInPages` /
    /// `MmSizeOfPagedPoolInPages`); `u64::MAX` when unlimited.
    pub maximum_pages: u64,
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
    fn from_raw(v: u64) -> Self {
        Header {
            previous_size: v as u8,
            pool_index: (v >> 8) as u8,
            block_size: (v >> 16) as u8,
            pool_type: (v >> 24) as u8,
            tag: (v >> 32) as u32,
        }
    }

    /// The first 8 header bytes as one little-endian word.
    fn raw(&self) -> u64 {
        self.previous_size as u64
            | (self.pool_index as u64) << 8
            | (self.block_size as u64) << 16
            | (self.pool_type as u64) << 24
            | (self.tag as u64) << 32
    }

    /// Free and on a free list (not parked on a lookaside list).
    fn is_listed_free(&self) -> bool {
        self.pool_type == 0 && self.pool_index == 0 && self.block_size != 0
    }

    fn is_parked(&self, units: u64) -> bool {
        self.pool_type == 0 && self.pool_index == LOOKASIDE_INDEX && self.block_size as u64 == units
    }
}

fn read_header<M: PoolMemory + ?Sized>(mem: &M, at: u64) -> Header {
    Header::from_raw(mem.read_u64(at))
}

fn write_header<M: PoolMemory + ?Sized>(mem: &M, at: u64, h: Header) {
    mem.write_u64(at, h.raw());
}

/// Writes the header of a block that did not exist before (both words).
fn write_new_header<M: PoolMemory + ?Sized>(mem: &M, at: u64, h: Header) {
    mem.write_u64(at, h.raw());
    mem.write_u64(at + 8, 0);
}

/// Changes `PreviousSize` of a header another processor may be changing at
/// the same time (the fast path flips type and index with a compare-exchange).
fn set_previous_size<M: PoolMemory + ?Sized>(mem: &M, at: u64, units: u8) {
    let mut cur = mem.read_u64(at);
    loop {
        let new = Header {
            previous_size: units,
            ..Header::from_raw(cur)
        };
        match mem.compare_exchange_u64(at, cur, new.raw()) {
            Ok(_) => return,
            Err(v) => cur = v,
        }
    }
}

/// Units (header included) of a small request, at least 2; `None` on overflow.
fn units_for(bytes: u64) -> Option<u64> {
    bytes
        .checked_add(2 * POOL_BLOCK_SIZE - 1)
        .map(|b| (b / POOL_BLOCK_SIZE).max(MIN_FREE_UNITS))
}

/// Whether a request of `bytes` is a big allocation (whole pages, page
/// aligned) rather than a small block (16-byte aligned).
pub fn is_big_allocation(bytes: u64) -> bool {
    units_for(bytes).is_none_or(|u| u > MAX_SMALL_UNITS)
}

/// Prints a tag as four characters the way `!poolused` does.
pub fn tag_string(tag: u32) -> [char; 4] {
    let b = (tag & TAG_MASK).to_le_bytes();
    b.map(|c| {
        if c.is_ascii_graphic() || c == b' ' {
            c as char
        } else {
            '?'
        }
    })
}

/// The order `!poolused` sorts tags in: by their characters.
pub fn tag_order(tag: u32) -> u32 {
    tag.swap_bytes()
}

/// `!poolused` in WinDbg's default layout: per tag, the allocations
/// outstanding and bytes used in the nonpaged and the paged pool. Both
/// lists are sorted by [`tag_order`].
pub fn format_pool_used(
    nonpaged: &[(u32, TagUsage)],
    paged: &[(u32, TagUsage)],
) -> alloc::string::String {
    use core::fmt::Write as _;
    let mut s = alloc::string::String::from(
        "   Sorting by Tag\n\n  Pool Used:\n            NonPaged            Paged\n Tag    Allocs     Used    Allocs     Used\n",
    );
    let (mut i, mut j) = (0, 0);
    while i < nonpaged.len() || j < paged.len() {
        let tn = nonpaged.get(i).map(|e| e.0);
        let tp = paged.get(j).map(|e| e.0);
        let tag = match (tn, tp) {
            (Some(a), Some(b)) => {
                if tag_order(a) <= tag_order(b) {
                    a
                } else {
                    b
                }
            }
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
        let mut n = TagUsage::default();
        let mut p = TagUsage::default();
        if tn == Some(tag) {
            n = nonpaged[i].1;
            i += 1;
        }
        if tp == Some(tag) {
            p = paged[j].1;
            j += 1;
        }
        let t: alloc::string::String = tag_string(tag).iter().collect();
        let _ = writeln!(
            s,
            " {t}{:>9}{:>9}{:>10}{:>9}",
            n.outstanding(),
            n.bytes,
            p.outstanding(),
            p.bytes
        );
    }
    s
}

/// The part of a pool used without its lock: the small-page bitmap and the
/// tracker table (both in pool pages), and the fast paths over the
/// per-processor lookaside lists.
pub struct PoolShared {
    pool_type: PoolType,
    /// The virtual range the pool's pages come from.
    base: u64,
    pages: u64,
    /// Address of each bitmap page (0: none yet).
    bitmap: [AtomicU64; MAX_BITMAP_CHUNKS],
    /// Address of each tracker-table segment (0: none yet).
    trackers: [AtomicU64; TRACKER_SEGMENTS],
    /// Slots claimed in each segment (at most three quarters of it).
    claimed: [AtomicU64; TRACKER_SEGMENTS],
    /// Lookaside links are stored XORed with this value (NT encodes its
    /// pool links with a per-boot cookie too), so a stray write into a
    /// parked block rarely decodes to a plausible address.
    cookie: AtomicU64,
}

impl PoolShared {
    /// The shared part of a pool whose pages lie in `pages` pages from `base`.
    pub const fn new(pool_type: PoolType, base: u64, pages: u64) -> Self {
        assert!(base.is_multiple_of(PAGE_SIZE));
        assert!(pages <= MAX_BITMAP_CHUNKS as u64 * BITMAP_PAGES_PER_CHUNK);
        PoolShared {
            pool_type,
            base,
            pages,
            bitmap: [const { AtomicU64::new(0) }; MAX_BITMAP_CHUNKS],
            trackers: [const { AtomicU64::new(0) }; TRACKER_SEGMENTS],
            claimed: [const { AtomicU64::new(0) }; TRACKER_SEGMENTS],
            cookie: AtomicU64::new(0),
        }
    }

    /// Sets the lookaside link cookie; only before any block was freed.
    pub fn set_cookie(&self, cookie: u64) {
        self.cookie.store(cookie, Ordering::Relaxed);
    }

    /// This pool's type.
    pub fn pool_type(&self) -> PoolType {
        self.pool_type
    }

    #[inline]
    fn type_byte(&self) -> u8 {
        self.pool_type as u8 + 1
    }

    #[inline]
    fn page_index(&self, page: u64) -> Option<u64> {
        page.checked_sub(self.base)
            .map(|o| o / PAGE_SIZE)
            .filter(|&i| i < self.pages)
    }

    /// Whether `page` is carved into small blocks of this pool.
    #[inline]
    pub fn is_small_page<M: PoolMemory + ?Sized>(&self, mem: &M, page: u64) -> bool {
        let Some(i) = self.page_index(page) else {
            return false;
        };
        // `i` < `pages` <= MAX_BITMAP_CHUNKS * BITMAP_PAGES_PER_CHUNK (checked
        // in `new`), so the mask only spares the bounds check.
        let k = (i / BITMAP_PAGES_PER_CHUNK) as usize % MAX_BITMAP_CHUNKS;
        let chunk = self.bitmap[k].load(Ordering::Acquire);
        if chunk == 0 {
            return false;
        }
        let bit = i % BITMAP_PAGES_PER_CHUNK;
        mem.read_u64(chunk + bit / 64 * 8) >> (bit % 64) & 1 != 0
    }

    /// Whether `h` can be a block header of this pool (so reading it is safe).
    #[inline]
    fn is_block_address<M: PoolMemory + ?Sized>(&self, mem: &M, h: u64) -> bool {
        h.is_multiple_of(POOL_BLOCK_SIZE)
            && h % PAGE_SIZE <= PAGE_SIZE - 2 * POOL_BLOCK_SIZE
            && self.is_small_page(mem, h & !(PAGE_SIZE - 1))
    }

    /// Sets or clears the bitmap bit of `page` (pool lock held; its bitmap page exists).
    fn mark_small_page<M: PoolMemory + ?Sized>(&self, mem: &M, page: u64, small: bool) {
        let Some(i) = self.page_index(page) else {
            return;
        };
        let chunk = self.bitmap[(i / BITMAP_PAGES_PER_CHUNK) as usize].load(Ordering::Acquire);
        let bit = i % BITMAP_PAGES_PER_CHUNK;
        let at = chunk + bit / 64 * 8;
        let w = mem.read_u64(at);
        let m = 1u64 << (bit % 64);
        mem.write_u64(at, if small { w | m } else { w & !m });
    }

    #[inline]
    fn tracker_slot(tag: u32, entries: u64) -> u64 {
        ((tag as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) & (entries - 1)
    }

    /// The tracker entry of `tag`, claiming a free slot for a new tag; `None`
    /// when every existing segment is full (the locked path adds one).
    ///
    /// Two processors adding the same new tag while a segment fills up may
    /// each end up with an entry, in consecutive segments; every reader
    /// sums the entries of a tag, so the counts stay right.
    #[inline(never)]
    fn tracker<M: PoolMemory + ?Sized>(&self, mem: &M, tag: u32) -> Option<u64> {
        for k in 0..TRACKER_SEGMENTS {
            let seg = self.trackers[k].load(Ordering::Acquire);
            if seg == 0 {
                return None;
            }
            let entries = TRACKERS_PER_PAGE << k;
            let mut i = Self::tracker_slot(tag, entries);
            loop {
                let e = seg + i * TRACKER_ENTRY;
                let key = mem.read_u64(e) as u32;
                if key == tag {
                    return Some(e);
                }
                if key == 0 {
                    // Claim room first so the segment never fills up and
                    // every probe ends at an empty slot.
                    if self.claimed[k].fetch_add(1, Ordering::AcqRel) >= entries * 3 / 4 {
                        self.claimed[k].fetch_sub(1, Ordering::AcqRel);
                        break;
                    }
                    match mem.compare_exchange_u64(e, 0, tag as u64) {
                        Ok(_) => return Some(e),
                        Err(v) => {
                            self.claimed[k].fetch_sub(1, Ordering::AcqRel);
                            if v as u32 == tag {
                                return Some(e);
                            }
                        }
                    }
                }
                i = (i + 1) & (entries - 1);
            }
        }
        None
    }

    #[inline]
    fn account<M: PoolMemory + ?Sized>(mem: &M, entry: u64, bytes: u64, allocated: bool) {
        if allocated {
            mem.fetch_add_u64(entry + 8, 1);
            mem.fetch_add_u64(entry + 24, bytes);
        } else {
            mem.fetch_add_u64(entry + 16, 1);
            mem.fetch_add_u64(entry + 24, bytes.wrapping_neg());
        }
    }

    /// Calls `f` for every tracker entry (a tag can appear twice, see
    /// [`PoolShared::tracker`]). Reads without the pool lock.
    pub fn for_each_tag<M: PoolMemory + ?Sized>(&self, mem: &M, mut f: impl FnMut(u32, TagUsage)) {
        for k in 0..TRACKER_SEGMENTS {
            let seg = self.trackers[k].load(Ordering::Acquire);
            if seg == 0 {
                return;
            }
            for i in 0..TRACKERS_PER_PAGE << k {
                let e = seg + i * TRACKER_ENTRY;
                let tag = mem.read_u64(e) as u32;
                if tag != 0 {
                    f(
                        tag,
                        TagUsage {
                            allocs: mem.read_u64(e + 8),
                            frees: mem.read_u64(e + 16),
                            bytes: mem.read_u64(e + 24),
                        },
                    );
                }
            }
        }
    }

    /// Usage of one tag.
    pub fn usage<M: PoolMemory + ?Sized>(&self, mem: &M, tag: u32) -> TagUsage {
        let tag = tag & TAG_MASK;
        let mut u = TagUsage::default();
        self.for_each_tag(mem, |t, v| {
            if t == tag {
                u.add(v);
            }
        });
        u
    }

    /// Bytes allocated now, all tags together.
    pub fn bytes_in_use<M: PoolMemory + ?Sized>(&self, mem: &M) -> u64 {
        let mut n = 0u64;
        self.for_each_tag(mem, |_, v| n = n.wrapping_add(v.bytes));
        n
    }

    /// Per-tag usage, sorted by tag characters (`!poolused`).
    pub fn tag_usage<M: PoolMemory + ?Sized>(&self, mem: &M) -> alloc::vec::Vec<(u32, TagUsage)> {
        let mut v = alloc::vec::Vec::new();
        self.for_each_tag(mem, |t, u| v.push((t, u)));
        v.sort_unstable_by_key(|e| tag_order(e.0));
        v.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1.add(b.1);
                true
            } else {
                false
            }
        });
        v
    }

    /// Fills `la`'s one-entry tracker cache with `tag`'s entry; false when
    /// every tracker segment is full (the locked path adds one). Out of line,
    /// so the fast paths that call it on a miss keep no values across it but
    /// their arguments.
    #[cold]
    #[inline(never)]
    fn prime_tracker_cache<M: PoolMemory + ?Sized>(
        &self,
        la: &mut PpLookaside,
        mem: &M,
        tag: u32,
    ) -> bool {
        match self.tracker(mem, tag) {
            Some(e) => {
                la.cached_tag = tag;
                la.cached_entry = e;
                true
            }
            None => false,
        }
    }

    /// Pops a block of `units` from `la` (header address), checking the
    /// next link like a checked S-list pop: it must decode to 0 or a block
    /// address inside the pool's range (`BAD_POOL_HEADER` 0x3 with the raw
    /// link otherwise). The block it names is checked when it is popped in
    /// turn: it must still be parked, with the same size.
    #[inline(always)]
    fn lookaside_pop<M: PoolMemory + ?Sized>(
        &self,
        la: &mut PpLookaside,
        mem: &M,
        units: u64,
    ) -> Result<u64, PoolError> {
        let n = units as usize;
        let head = la.heads[n];
        if head == 0 {
            return Ok(0);
        }
        let raw = mem.read_u64(head + POOL_BLOCK_SIZE);
        let next = raw ^ self.cookie.load(Ordering::Relaxed);
        // 0, or a 16-byte aligned header with room for a block in its page,
        // inside the pool's range. Rotating the page offset right by 4 moves
        // a misaligned low nibble into the top bits, so one compare checks
        // both the alignment and the offset limit.
        let offset_ok = (next % PAGE_SIZE).rotate_right(4)
            <= (PAGE_SIZE - 2 * POOL_BLOCK_SIZE) / POOL_BLOCK_SIZE;
        let next_ok =
            next == 0 || (next.wrapping_sub(self.base) < self.pages * PAGE_SIZE && offset_ok);
        if !next_ok {
            return Err(bad_header(0x3, head, raw, 0));
        }
        la.heads[n] = next;
        la.depth[n] -= 1;
        Ok(head)
    }

    /// The fast path of `ExAllocatePoolWithTag` (popping
    /// `Prcb->PPNPagedLookasideList`): a block of up to [`POOL_SMALL_LISTS`]
    /// units from this processor's lookaside list, without the pool lock.
    /// 0: not served (nothing parked for this size, a tag of 0, or a new
    /// tag that needs a tracker segment): take the locked path. A corrupted
    /// list also returns 0, with the bug check in [`PpLookaside::take_error`].
    #[inline(always)]
    pub fn allocate_from_lookaside<M: PoolMemory + ?Sized>(
        &self,
        la: &mut PpLookaside,
        mem: &M,
        bytes: u64,
        tag: u32,
        zero: bool,
    ) -> u64 {
        let tag = tag & TAG_MASK;
        let Some(units) = units_for(bytes).filter(|&u| u <= POOL_SMALL_LISTS) else {
            return 0;
        };
        if tag == 0 || la.heads[units as usize] == 0 {
            return 0;
        }
        // `cached_tag` starts as a value no (masked) tag has.
        if la.cached_tag != tag {
            return self.allocate_from_lookaside_uncached(la, mem, bytes, tag, zero);
        }
        let entry = la.cached_entry;
        let header = match self.lookaside_pop(la, mem, units) {
            Ok(h) => h,
            Err(e) => return la.fail(e),
        };
        // Parked: PoolIndex 1, BlockSize `units`, PoolType 0 (bytes 1..4).
        let parked = LOOKASIDE_INDEX as u64 | units << 8;
        let allocated = units << 16 | (self.type_byte() as u64) << 24 | (tag as u64) << 32;
        let mut cur = mem.read_u64(header);
        loop {
            if (cur >> 8) & 0xFF_FFFF != parked {
                return la.fail(bad_header(0x3, header, cur, 0));
            }
            // Only `PreviousSize` (byte 0) may change meanwhile.
            match mem.compare_exchange_u64(header, cur, cur & 0xFF | allocated) {
                Ok(_) => break,
                Err(v) => cur = v,
            }
        }
        Self::account(mem, entry, units * POOL_BLOCK_SIZE, true);
        if zero {
            mem.zero_words(header + POOL_BLOCK_SIZE, (units - 1) * POOL_BLOCK_SIZE);
        }
        header + POOL_BLOCK_SIZE
    }

    /// [`PoolShared::allocate_from_lookaside`] when the tracker cache holds
    /// another tag: fills it, then allocates (out of line, see
    /// [`PoolShared::prime_tracker_cache`]).
    #[cold]
    #[inline(never)]
    fn allocate_from_lookaside_uncached<M: PoolMemory + ?Sized>(
        &self,
        la: &mut PpLookaside,
        mem: &M,
        bytes: u64,
        tag: u32,
        zero: bool,
    ) -> u64 {
        if !self.prime_tracker_cache(la, mem, tag) {
            return 0;
        }
        self.allocate_from_lookaside(la, mem, bytes, tag, zero)
    }

    /// Whether the next block's `PreviousSize` agrees with this block's
    /// `BlockSize`, read without the pool lock (NT's check on free, which
    /// catches an overrun into the next header; a mismatch may also be a
    /// concurrent change, so the locked path decides).
    #[inline]
    fn next_agrees<M: PoolMemory + ?Sized>(mem: &M, header: u64, h: Header) -> bool {
        let end = (header & !(PAGE_SIZE - 1)) + PAGE_SIZE;
        let next = header + h.block_size as u64 * POOL_BLOCK_SIZE;
        next == end || (next < end && read_header(mem, next).previous_size == h.block_size)
    }

    /// The fast path of `ExFreePoolWithTag`: parks a small block on this
    /// processor's lookaside list without the pool lock. `false`: the
    /// block is not a healthy small block of this pool with room on its
    /// list, has the wrong tag, or its next neighbour's `PreviousSize`
    /// disagrees; the locked path ([`PoolDescriptor::free`]) must take it
    /// (it makes every check of the module documentation and raises the
    /// bug check if the block is bad). The previous neighbour is checked
    /// when the block reaches the locked path.
    #[inline]
    pub fn free_to_lookaside<M: PoolMemory + ?Sized>(
        &self,
        la: &mut PpLookaside,
        mem: &M,
        va: u64,
        tag: u32,
    ) -> bool {
        let page = va & !(PAGE_SIZE - 1);
        va != page
            && self.is_small_page(mem, page)
            && self.free_small_to_lookaside(la, mem, va, tag)
    }

    /// [`PoolShared::free_to_lookaside`] for an address the caller found in
    /// a small-block page of this pool ([`PoolShared::is_small_page`]).
    #[inline(always)]
    pub fn free_small_to_lookaside<M: PoolMemory + ?Sized>(
        &self,
        la: &mut PpLookaside,
        mem: &M,
        va: u64,
        tag: u32,
    ) -> bool {
        self.free_small_to_lookaside_with::<M, true>(la, mem, va, tag)
    }

    /// The body of [`PoolShared::free_small_to_lookaside`]; on a tracker
    /// cache miss it fills the cache and retries once when `PRIME`, and
    /// leaves the block to the locked path otherwise.
    #[inline(always)]
    fn free_small_to_lookaside_with<M: PoolMemory + ?Sized, const PRIME: bool>(
        &self,
        la: &mut PpLookaside,
        mem: &M,
        va: u64,
        tag: u32,
    ) -> bool {
        let tag = tag & TAG_MASK;
        // A block address: 16-byte aligned and not at a page start (the
        // rotation turns a misaligned low nibble into a huge value, and a
        // page start into 0 - 1).
        if (va % PAGE_SIZE).rotate_right(4).wrapping_sub(1) >= UNITS_PER_PAGE - 1 {
            return false;
        }
        let header = va - POOL_BLOCK_SIZE;
        let h = read_header(mem, header);
        let units = h.block_size as u64;
        if h.pool_type != self.type_byte()
            || units == 0
            || units > POOL_SMALL_LISTS
            || la.depth[units as usize] >= LOOKASIDE_DEPTH
            || (tag != 0 && h.tag != tag)
            || !Self::next_agrees(mem, header, h)
        {
            return false;
        }
        if la.cached_tag != h.tag {
            return PRIME && self.free_small_to_lookaside_uncached(la, mem, va, tag, h.tag);
        }
        let entry = la.cached_entry;
        // Allocated -> parked: PoolIndex 0 -> 1, PoolType -> 0. Only
        // `PreviousSize` (byte 0) may change meanwhile; anything else means
        // another free won the race, and the locked path tells which.
        let mut cur = h.raw();
        loop {
            let parked = (cur & !0xFF00_FF00) | (LOOKASIDE_INDEX as u64) << 8;
            match mem.compare_exchange_u64(header, cur, parked) {
                Ok(_) => break,
                Err(v) if v & !0xFF == h.raw() & !0xFF => cur = v,
                Err(_) => return false,
            }
        }
        mem.write_u64(
            header + POOL_BLOCK_SIZE,
            la.heads[units as usize] ^ self.cookie.load(Ordering::Relaxed),
        );
        la.heads[units as usize] = header;
        la.depth[units as usize] += 1;
        Self::account(mem, entry, units * POOL_BLOCK_SIZE, false);
        true
    }
}

impl PoolShared {
    /// [`PoolShared::free_small_to_lookaside`] when the tracker cache holds
    /// another tag than the block's `block_tag`: fills it, then frees (out
    /// of line, see [`PoolShared::prime_tracker_cache`]).
    #[cold]
    #[inline(never)]
    fn free_small_to_lookaside_uncached<M: PoolMemory + ?Sized>(
        &self,
        la: &mut PpLookaside,
        mem: &M,
        va: u64,
        tag: u32,
        block_tag: u32,
    ) -> bool {
        self.prime_tracker_cache(la, mem, block_tag)
            && self.free_small_to_lookaside_with::<M, false>(la, mem, va, tag)
    }
}

/// One processor's lookaside lists for one pool (`GENERAL_LOOKASIDE` per
/// block size: an S-list head and its depth). A parked block keeps its
/// header with `PoolType` 0 and `PoolIndex` 1 (so a second free is caught)
/// and the next block's header address at body offset 0.
#[derive(Clone, Debug)]
pub struct PpLookaside {
    heads: [u64; POOL_SMALL_LISTS as usize + 1],
    depth: [u16; POOL_SMALL_LISTS as usize + 1],
    /// The tracker entry last used here, and its tag.
    cached_tag: u32,
    cached_entry: u64,
    /// Corruption the fast path found (a bug check to raise).
    error: Option<PoolError>,
}

impl Default for PpLookaside {
    fn default() -> Self {
        Self::new()
    }
}

impl PpLookaside {
    pub const fn new() -> Self {
        PpLookaside {
            heads: [0; POOL_SMALL_LISTS as usize + 1],
            depth: [0; POOL_SMALL_LISTS as usize + 1],
            cached_tag: u32::MAX,
            cached_entry: 0,
            error: None,
        }
    }

    #[cold]
    fn fail(&mut self, e: PoolError) -> u64 {
        self.error = Some(e);
        0
    }

    /// The bug check the fast path found, if any (the caller raises it).
    pub fn take_error(&mut self) -> Option<PoolError> {
        self.error.take()
    }

    /// Blocks parked on these lists.
    pub fn blocks(&self) -> u64 {
        self.depth.iter().map(|&d| d as u64).sum()
    }
}

/// A free list head (`ListHeads[n]` of `POOL_DESCRIPTOR`): first and last
/// block header addresses, 0 when empty. The links themselves live in the
/// free blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ListHead {
    first: u64,
    last: u64,
}

/// One pool (`POOL_DESCRIPTOR`) as the pool lock guards it: free lists,
/// free pages, the big-page table, counts.
///
/// As in NT, free blocks carry their list links in their body: a block on a
/// free list has `Flink` at body offset 0 and `Blink` at offset 8 (header
/// addresses of the neighbours on the list, 0 for the list head). Links are
/// checked before every unlink (`BAD_POOL_HEADER` 0x3), so a write after
/// free that clobbers them is caught.
///
/// A cached page run keeps the next run's address at offset 0 and its page
/// count at offset 8.
#[derive(Clone, Debug)]
pub struct PoolDescriptor {
    /// `ListHeads[n]`: free blocks of n units.
    free_lists: [ListHead; MAX_BLOCK_UNITS as usize + 1],
    /// Free runs kept for reuse (first run, 0: none).
    cache: u64,
    cached_pages: u64,
    /// `PoolBigPageTable`, its size in entries, live entries and tombstones.
    big_table: u64,
    big_entries: u64,
    big_used: u64,
    big_tombstones: u64,
    small_pages: u64,
    big_allocations: u64,
    big_pages: u64,
    table_pages: u64,
    maximum_pages: u64,
}

impl Default for PoolDescriptor {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolDescriptor {
    /// An empty pool (`ExInitializePoolDescriptor`), without a maximum.
    pub const fn new() -> Self {
        PoolDescriptor {
            free_lists: [ListHead { first: 0, last: 0 }; MAX_BLOCK_UNITS as usize + 1],
            cache: 0,
            cached_pages: 0,
            big_table: 0,
            big_entries: 0,
            big_used: 0,
            big_tombstones: 0,
            small_pages: 0,
            big_allocations: 0,
            big_pages: 0,
            table_pages: 0,
            maximum_pages: u64::MAX,
        }
    }

    /// Sets the most pages the pool may hold; past it, allocations fail
    /// with `InsufficientResources` instead of asking for pages.
    pub fn set_maximum_pages(&mut self, pages: u64) {
        self.maximum_pages = pages;
    }

    fn held_pages(&self) -> u64 {
        self.small_pages + self.big_pages + self.table_pages + self.cached_pages
    }

    /// Page and block counts.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            pages: self.held_pages(),
            small_pages: self.small_pages,
            big_allocations: self.big_allocations,
            big_pages: self.big_pages,
            table_pages: self.table_pages,
            cached_pages: self.cached_pages,
            maximum_pages: self.maximum_pages,
        }
    }

    /// The error for "a run of `pages` is missing": ask for it, unless the
    /// pool would grow past its maximum.
    fn need(&self, pages: u64) -> PoolError {
        if self.held_pages().saturating_add(pages) > self.maximum_pages {
            EXHAUSTED
        } else {
            PoolError::NeedPages { pages }
        }
    }

    /// Hands the pool a run of `pages` fresh pages (after [`PoolError::NeedPages`]).
    pub fn add_pages<M: PoolMemory + ?Sized>(&mut self, mem: &M, va: u64, pages: u64) {
        self.cache_push(mem, va, pages);
    }

    fn cache_push<M: PoolMemory + ?Sized>(&mut self, mem: &M, va: u64, pages: u64) {
        mem.write_u64(va, self.cache);
        mem.write_u64(va + 8, pages);
        self.cache = va;
        self.cached_pages += pages;
    }

    /// Takes a cached run of exactly `pages`.
    fn cache_take<M: PoolMemory + ?Sized>(&mut self, mem: &M, pages: u64) -> Option<u64> {
        self.cache_unlink(mem, |n| n == pages).map(|(va, _)| va)
    }

    fn cache_unlink<M: PoolMemory + ?Sized>(
        &mut self,
        mem: &M,
        want: impl Fn(u64) -> bool,
    ) -> Option<(u64, u64)> {
        let mut prev = 0u64;
        let mut cur = self.cache;
        while cur != 0 {
            let next = mem.read_u64(cur);
            let n = mem.read_u64(cur + 8);
            if want(n) {
                if prev == 0 {
                    self.cache = next;
                } else {
                    mem.write_u64(prev, next);
                }
                self.cached_pages -= n;
                return Some((cur, n));
            }
            prev = cur;
            cur = next;
        }
        None
    }

    /// A free run the pool does not keep (every multi-page run, and single
    /// pages beyond [`RETAINED_PAGES`]), for the caller to return to the
    /// memory manager outside the pool lock.
    pub fn take_surplus<M: PoolMemory + ?Sized>(&mut self, mem: &M) -> Option<(u64, u64)> {
        if self.cached_pages > RETAINED_PAGES {
            return self.cache_unlink(mem, |_| true);
        }
        self.cache_unlink(mem, |n| n > 1)
    }

    /// Any free run (trimming the pool completely).
    pub fn take_cached<M: PoolMemory + ?Sized>(&mut self, mem: &M) -> Option<(u64, u64)> {
        self.cache_unlink(mem, |_| true)
    }

    /// The tracker entry for `tag`, adding a tracker segment if all are full.
    fn tracker<M: PoolMemory + ?Sized>(
        &mut self,
        shared: &PoolShared,
        mem: &M,
        tag: u32,
    ) -> Result<u64, PoolError> {
        loop {
            if let Some(e) = shared.tracker(mem, tag) {
                return Ok(e);
            }
            let k = (0..TRACKER_SEGMENTS)
                .find(|&k| shared.trackers[k].load(Ordering::Acquire) == 0)
                .ok_or(EXHAUSTED)?;
            let pages = 1u64 << k;
            let va = self
                .cache_take(mem, pages)
                .ok_or_else(|| self.need(pages))?;
            self.table_pages += pages;
            mem.fill(va, pages * PAGE_SIZE, 0);
            shared.trackers[k].store(va, Ordering::Release);
        }
    }

    /// Makes sure the bitmap page covering `page` exists, taking a cached
    /// page for it; false if none is cached. A page outside the pool's
    /// range (the page supplier's bug) cannot be tracked: it stays unused.
    fn bitmap_for<M: PoolMemory + ?Sized>(
        &mut self,
        shared: &PoolShared,
        mem: &M,
        page: u64,
    ) -> bool {
        let Some(i) = shared.page_index(page) else {
            return false;
        };
        let slot = &shared.bitmap[(i / BITMAP_PAGES_PER_CHUNK) as usize];
        if slot.load(Ordering::Acquire) != 0 {
            return true;
        }
        let Some(va) = self.cache_take(mem, 1) else {
            return false;
        };
        self.table_pages += 1;
        mem.fill(va, PAGE_SIZE, 0);
        slot.store(va, Ordering::Release);
        true
    }

    fn big_slot_of(&self, va: u64) -> u64 {
        ((va >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) & (self.big_entries - 1)
    }

    /// The big-page table entry of the allocation at `va`.
    fn big_find<M: PoolMemory + ?Sized>(&self, mem: &M, va: u64) -> Option<u64> {
        if self.big_table == 0 || va <= BIG_FREE {
            return None;
        }
        let mut i = self.big_slot_of(va);
        for _ in 0..self.big_entries {
            let e = self.big_table + i * BIG_ENTRY;
            match mem.read_u64(e) {
                0 => return None,
                k if k == va => return Some(e),
                _ => i = (i + 1) & (self.big_entries - 1),
            }
        }
        None
    }

    /// Whether `va` lies inside a big allocation.
    fn big_containing<M: PoolMemory + ?Sized>(&self, mem: &M, va: u64) -> bool {
        (0..self.big_entries).any(|i| {
            let e = self.big_table + i * BIG_ENTRY;
            let start = mem.read_u64(e);
            start > BIG_FREE && va >= start && va < start + mem.read_u64(e + 8) * PAGE_SIZE
        })
    }

    fn big_insert<M: PoolMemory + ?Sized>(&mut self, mem: &M, va: u64, entry: [u64; 3]) {
        let mut i = self.big_slot_of(va);
        loop {
            let e = self.big_table + i * BIG_ENTRY;
            let k = mem.read_u64(e);
            if k <= BIG_FREE {
                if k == BIG_FREE {
                    self.big_tombstones -= 1;
                }
                mem.write_u64(e + 8, entry[0]);
                mem.write_u64(e + 16, entry[1]);
                mem.write_u64(e + 24, entry[2]);
                mem.write_u64(e, va);
                self.big_used += 1;
                return;
            }
            i = (i + 1) & (self.big_entries - 1);
        }
    }

    /// Room for one more big allocation: a first table, or a rehash into a
    /// table twice the size (or the same size, to drop tombstones) when
    /// three quarters would be taken (`ExpExpandBigPageTable`).
    fn big_reserve<M: PoolMemory + ?Sized>(&mut self, mem: &M) -> Result<(), PoolError> {
        if self.big_table != 0
            && (self.big_used + self.big_tombstones + 1) * 4 <= self.big_entries * 3
        {
            return Ok(());
        }
        let entries = if self.big_table == 0 {
            BIG_ENTRIES_PER_PAGE
        } else if (self.big_used + 1) * 2 > self.big_entries {
            self.big_entries * 2
        } else {
            self.big_entries
        };
        let pages = entries / BIG_ENTRIES_PER_PAGE;
        let va = self
            .cache_take(mem, pages)
            .ok_or_else(|| self.need(pages))?;
        mem.fill(va, pages * PAGE_SIZE, 0);
        let (old, old_entries) = (self.big_table, self.big_entries);
        self.big_table = va;
        self.big_entries = entries;
        self.big_used = 0;
        self.big_tombstones = 0;
        self.table_pages += pages;
        for i in 0..old_entries {
            let e = old + i * BIG_ENTRY;
            let k = mem.read_u64(e);
            if k > BIG_FREE {
                let entry = [
                    mem.read_u64(e + 8),
                    mem.read_u64(e + 16),
                    mem.read_u64(e + 24),
                ];
                self.big_insert(mem, k, entry);
            }
        }
        if old != 0 {
            let old_pages = old_entries / BIG_ENTRIES_PER_PAGE;
            self.table_pages -= old_pages;
            self.cache_push(mem, old, old_pages);
        }
        Ok(())
    }

    fn links<M: PoolMemory + ?Sized>(mem: &M, h: u64) -> (u64, u64) {
        (
            mem.read_u64(h + POOL_BLOCK_SIZE),
            mem.read_u64(h + POOL_BLOCK_SIZE + 8),
        )
    }

    fn set_links<M: PoolMemory + ?Sized>(mem: &M, h: u64, flink: u64, blink: u64) {
        mem.write_u64(h + POOL_BLOCK_SIZE, flink);
        mem.write_u64(h + POOL_BLOCK_SIZE + 8, blink);
    }

    /// `ExpCheckListEntry`-style safe-unlink check of block `h` on list `n`:
    /// its neighbours must point back at it. `BAD_POOL_HEADER` 0x3 with the
    /// entry and the two read-back values otherwise.
    fn check_entry<M: PoolMemory + ?Sized>(
        &self,
        shared: &PoolShared,
        mem: &M,
        n: usize,
        h: u64,
    ) -> Result<(), PoolError> {
        let (flink, blink) = Self::links(mem, h);
        let head = self.free_lists[n];
        let back = match flink {
            0 => head.last,
            f if shared.is_block_address(mem, f) => Self::links(mem, f).1,
            f => f,
        };
        let fwd = match blink {
            0 => head.first,
            b if shared.is_block_address(mem, b) => Self::links(mem, b).0,
            b => b,
        };
        if back != h || fwd != h {
            return Err(bad_header(0x3, h, back, fwd));
        }
        Ok(())
    }

    /// Unlinks a checked entry.
    fn unlink<M: PoolMemory + ?Sized>(&mut self, mem: &M, n: usize, h: u64) {
        let (flink, blink) = Self::links(mem, h);
        if blink == 0 {
            self.free_lists[n].first = flink;
        } else {
            mem.write_u64(blink + POOL_BLOCK_SIZE, flink);
        }
        if flink == 0 {
            self.free_lists[n].last = blink;
        } else {
            mem.write_u64(flink + POOL_BLOCK_SIZE + 8, blink);
        }
    }

    /// `InsertHeadList` on list `n`.
    fn link_head<M: PoolMemory + ?Sized>(&mut self, mem: &M, n: usize, h: u64) {
        let first = self.free_lists[n].first;
        Self::set_links(mem, h, first, 0);
        if first == 0 {
            self.free_lists[n].last = h;
        } else {
            mem.write_u64(first + POOL_BLOCK_SIZE + 8, h);
        }
        self.free_lists[n].first = h;
    }

    /// `ExAllocatePoolWithTag` on this pool, locked path: `bytes` bytes
    /// tagged `tag`, zeroed when `zero` is set. Returns the block address
    /// (16-byte aligned; page aligned for big allocations), or
    /// [`PoolError::NeedPages`] with nothing changed. A tag of 0 bug checks
    /// with `BAD_POOL_CALLER` 0x9B; a corrupted free list with
    /// `BAD_POOL_HEADER` 0x3. Size 0 gets a minimal block.
    pub fn try_allocate<M: PoolMemory + ?Sized>(
        &mut self,
        shared: &PoolShared,
        mem: &M,
        bytes: u64,
        tag: u32,
        zero: bool,
    ) -> Result<u64, PoolError> {
        let tag = tag & TAG_MASK;
        if tag == 0 {
            return Err(bad_caller(0x9B, shared.pool_type as u64, bytes, 0));
        }
        let units = units_for(bytes).ok_or(EXHAUSTED)?;
        let entry = self.tracker(shared, mem, tag)?;
        if units > MAX_SMALL_UNITS {
            // Big page allocation (MiAllocatePoolPages + ExpAddTagForBigPages).
            let pages = bytes.div_ceil(PAGE_SIZE);
            self.big_reserve(mem)?;
            let va = self
                .cache_take(mem, pages)
                .ok_or_else(|| self.need(pages))?;
            self.big_insert(mem, va, [pages, bytes, tag as u64]);
            self.big_pages += pages;
            self.big_allocations += 1;
            if zero {
                mem.fill(va, pages * PAGE_SIZE, 0);
            }
            PoolShared::account(mem, entry, bytes, true);
            return Ok(va);
        }
        let header = self.allocate_small(shared, mem, units)?;
        let h = read_header(mem, header);
        write_header(
            mem,
            header,
            Header {
                pool_index: 0,
                pool_type: shared.type_byte(),
                tag,
                ..h
            },
        );
        let units = h.block_size as u64;
        if zero {
            mem.fill(header + POOL_BLOCK_SIZE, (units - 1) * POOL_BLOCK_SIZE, 0);
        }
        PoolShared::account(mem, entry, units * POOL_BLOCK_SIZE, true);
        Ok(header + POOL_BLOCK_SIZE)
    }

    /// Takes a free block of at least `units` units (header address) off the
    /// free lists or a fresh page; its header has the right
    /// `BlockSize`/`PreviousSize`, type and tag not yet set.
    fn allocate_small<M: PoolMemory + ?Sized>(
        &mut self,
        shared: &PoolShared,
        mem: &M,
        units: u64,
    ) -> Result<u64, PoolError> {
        let found =
            (units as usize..=MAX_BLOCK_UNITS as usize).find(|&n| self.free_lists[n].first != 0);
        let (header, have) = match found {
            Some(n) => {
                let h = self.free_lists[n].first;
                self.check_entry(shared, mem, n, h)?;
                self.unlink(mem, n, h);
                (h, n as u64)
            }
            None => {
                // ExpAllocateNewPage: the whole page, head block = request.
                let page = self.cache_take(mem, 1).ok_or_else(|| self.need(1))?;
                if !self.bitmap_for(shared, mem, page) {
                    self.cache_push(mem, page, 1);
                    return Err(self.need(1));
                }
                shared.mark_small_page(mem, page, true);
                self.small_pages += 1;
                write_new_header(
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
                write_new_header(
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
        let mut h = read_header(mem, header);
        // A remainder too small to hold list links stays part of the block.
        if have >= units + MIN_FREE_UNITS {
            // Split: the front is ours, the remainder stays free.
            let rest = have - units;
            let at = header + units * POOL_BLOCK_SIZE;
            write_new_header(
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
            Self::fix_next_previous(mem, at, rest);
            self.link_head(mem, rest as usize, at);
            h.block_size = units as u8;
        }
        write_header(mem, header, h);
        Ok(header)
    }

    /// Sets the `PreviousSize` of the block after `at` (size `units`), if any in the page.
    fn fix_next_previous<M: PoolMemory + ?Sized>(mem: &M, at: u64, units: u64) {
        let next = at + units * POOL_BLOCK_SIZE;
        if !next.is_multiple_of(PAGE_SIZE) {
            set_previous_size(mem, next, units as u8);
        }
    }

    /// `ExFreePoolWithTag`, locked path: frees `va`. `tag` 0 skips the tag
    /// check (as `ExFreePool`). All checks listed in the module
    /// documentation happen before anything is modified. Pages that become
    /// free are kept; see [`PoolDescriptor::take_surplus`].
    pub fn free<M: PoolMemory + ?Sized>(
        &mut self,
        shared: &PoolShared,
        mem: &M,
        va: u64,
        tag: u32,
    ) -> Result<(), PoolError> {
        let tag = tag & TAG_MASK;
        if va.is_multiple_of(PAGE_SIZE) {
            if let Some(e) = self.big_find(mem, va) {
                let (pages, bytes, btag) = (
                    mem.read_u64(e + 8),
                    mem.read_u64(e + 16),
                    mem.read_u64(e + 24) as u32,
                );
                if tag != 0 && btag != tag {
                    return Err(bad_caller(0x0A, va, btag as u64, tag as u64));
                }
                let entry = self.tracker(shared, mem, btag).ok();
                mem.write_u64(e, BIG_FREE);
                self.big_used -= 1;
                self.big_tombstones += 1;
                self.big_pages -= pages;
                self.big_allocations -= 1;
                self.cache_push(mem, va, pages);
                if let Some(entry) = entry {
                    PoolShared::account(mem, entry, bytes, false);
                }
                return Ok(());
            }
        }
        let page = va & !(PAGE_SIZE - 1);
        if !shared.is_small_page(mem, page) {
            return Err(if self.big_containing(mem, va) {
                bad_caller(0x46, va, 0, 0)
            } else {
                bad_caller(0x42, va, 0, 0)
            });
        }
        if !va.is_multiple_of(POOL_BLOCK_SIZE) || va == page {
            return Err(bad_caller(0x46, va, 0, 0));
        }
        let header = va - POOL_BLOCK_SIZE;
        let h = read_header(mem, header);
        if h.pool_type == 0 {
            return Err(bad_caller(0x07, 0, h.raw(), va));
        }
        if h.pool_type != shared.type_byte() {
            return Err(bad_caller(0x01, header, h.raw(), 0));
        }
        self.check_neighbours(mem, header, &h)?;
        if tag != 0 && h.tag != tag {
            return Err(bad_caller(0x0A, va, h.tag as u64, tag as u64));
        }
        let entry = self.tracker(shared, mem, h.tag).ok();
        self.insert_free(shared, mem, header, h)?;
        if let Some(entry) = entry {
            PoolShared::account(mem, entry, h.block_size as u64 * POOL_BLOCK_SIZE, false);
        }
        Ok(())
    }

    /// The `BAD_POOL_HEADER` checks of `ExFreePoolWithTag`.
    fn check_neighbours<M: PoolMemory + ?Sized>(
        &self,
        mem: &M,
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
            let n = read_header(mem, next);
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
            let p = read_header(mem, prev);
            if p.block_size != h.previous_size {
                return Err(bad_header(0x5, prev, 0, header));
            }
        }
        Ok(())
    }

    /// Puts a block (allocated, or parked on a lookaside list: `h` is its
    /// header as checked) on its free list, coalescing with free
    /// (non-lookaside) neighbours; a page that becomes entirely free goes to
    /// the page cache. The neighbours' list links are checked before
    /// anything is written.
    fn insert_free<M: PoolMemory + ?Sized>(
        &mut self,
        shared: &PoolShared,
        mem: &M,
        header: u64,
        h: Header,
    ) -> Result<(), PoolError> {
        let page = header & !(PAGE_SIZE - 1);
        let next = header + h.block_size as u64 * POOL_BLOCK_SIZE;
        let merge_next = if next < page + PAGE_SIZE {
            let n = read_header(mem, next);
            n.is_listed_free().then_some(n)
        } else {
            None
        };
        let prev = header - h.previous_size as u64 * POOL_BLOCK_SIZE;
        let merge_prev = if header != page && h.previous_size != 0 {
            let p = read_header(mem, prev);
            p.is_listed_free().then_some(p)
        } else {
            None
        };
        if let Some(n) = merge_next {
            self.check_entry(shared, mem, n.block_size as usize, next)?;
        }
        if let Some(p) = merge_prev {
            self.check_entry(shared, mem, p.block_size as usize, prev)?;
        }
        // Mark the block free first, so that if it is merged into its
        // predecessor a second free still finds a free header. A fast-path
        // free of the same block on another processor may have won the race.
        let mut cur = h.raw();
        loop {
            let c = Header::from_raw(cur);
            if c.pool_type != h.pool_type || c.pool_index != h.pool_index {
                return Err(bad_caller(0x07, 0, cur, header + POOL_BLOCK_SIZE));
            }
            let free = Header {
                pool_type: 0,
                pool_index: 0,
                tag: 0,
                ..c
            };
            match mem.compare_exchange_u64(header, cur, free.raw()) {
                Ok(_) => break,
                Err(v) => cur = v,
            }
        }
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
            shared.mark_small_page(mem, page, false);
            self.small_pages -= 1;
            self.cache_push(mem, page, 1);
            return Ok(());
        }
        write_header(
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
        Self::fix_next_previous(mem, start, units);
        self.link_head(mem, units as usize, start);
        Ok(())
    }

    /// Empties a lookaside list into the free lists (what NT's balance set
    /// manager does when it shrinks lookaside depths); pages that become
    /// free go to the page cache. `la` must be the caller's own (or its
    /// processor must not be using it).
    pub fn flush_lookaside<M: PoolMemory + ?Sized>(
        &mut self,
        shared: &PoolShared,
        mem: &M,
        la: &mut PpLookaside,
    ) -> Result<(), PoolError> {
        for n in 1..=POOL_SMALL_LISTS {
            loop {
                let header = shared.lookaside_pop(la, mem, n)?;
                if header == 0 {
                    break;
                }
                let h = read_header(mem, header);
                if !h.is_parked(n) {
                    return Err(bad_header(0x3, header, h.raw(), 0));
                }
                self.insert_free(shared, mem, header, h)?;
            }
        }
        Ok(())
    }

    /// The tag and size in use of a live allocation (`!pool <address>`):
    /// the requested size for big pages, the block size for small blocks.
    pub fn query<M: PoolMemory + ?Sized>(
        &self,
        shared: &PoolShared,
        mem: &M,
        va: u64,
    ) -> Option<(u32, u64)> {
        if let Some(e) = self.big_find(mem, va) {
            return Some((mem.read_u64(e + 24) as u32, mem.read_u64(e + 16)));
        }
        if va < POOL_BLOCK_SIZE || !shared.is_block_address(mem, va - POOL_BLOCK_SIZE) {
            return None;
        }
        let h = read_header(mem, va - POOL_BLOCK_SIZE);
        (h.pool_type == shared.type_byte())
            .then_some((h.tag, h.block_size as u64 * POOL_BLOCK_SIZE))
    }
}

/// A whole pool under one owner: the shared part, the locked part and one
/// lookaside list, growing from and shrinking into a [`PageSupply`] (host
/// tests and single-threaded users; the kernel drives the parts itself).
pub struct Pool {
    pub shared: PoolShared,
    pub descriptor: PoolDescriptor,
    pub lookaside: PpLookaside,
}

impl Pool {
    /// An empty pool whose pages come from `pages` pages at `base`.
    pub fn new(pool_type: PoolType, base: u64, pages: u64) -> Self {
        Pool {
            shared: PoolShared::new(pool_type, base, pages),
            descriptor: PoolDescriptor::new(),
            lookaside: PpLookaside::new(),
        }
    }

    /// This pool's type.
    pub fn pool_type(&self) -> PoolType {
        self.shared.pool_type
    }

    /// `ExAllocatePoolWithTag`: the lookaside list first, then the locked
    /// path, growing from `mem` when it asks for pages.
    pub fn allocate<M: PoolMemory + PageSupply>(
        &mut self,
        mem: &mut M,
        bytes: u64,
        tag: u32,
        zero: bool,
    ) -> Result<u64, PoolError> {
        let va = self
            .shared
            .allocate_from_lookaside(&mut self.lookaside, &*mem, bytes, tag, zero);
        if va != 0 {
            return Ok(va);
        }
        if let Some(e) = self.lookaside.take_error() {
            return Err(e);
        }
        loop {
            match self
                .descriptor
                .try_allocate(&self.shared, &*mem, bytes, tag, zero)
            {
                Err(PoolError::NeedPages { pages }) => {
                    let va = mem.allocate_pages(pages).ok_or(EXHAUSTED)?;
                    self.descriptor.add_pages(&*mem, va, pages);
                }
                r => return r,
            }
        }
    }

    /// `ExFreePoolWithTag`: the lookaside list if it takes the block, the
    /// locked path otherwise; surplus pages go back to `mem`.
    pub fn free<M: PoolMemory + PageSupply>(
        &mut self,
        mem: &mut M,
        va: u64,
        tag: u32,
    ) -> Result<(), PoolError> {
        if !self
            .shared
            .free_to_lookaside(&mut self.lookaside, &*mem, va, tag)
        {
            self.descriptor.free(&self.shared, &*mem, va, tag)?;
        }
        while let Some((va, pages)) = self.descriptor.take_surplus(&*mem) {
            mem.free_pages(va, pages);
        }
        Ok(())
    }

    /// Empties the lookaside list into the free lists and returns surplus pages.
    pub fn flush_lookaside<M: PoolMemory + PageSupply>(
        &mut self,
        mem: &mut M,
    ) -> Result<(), PoolError> {
        self.descriptor
            .flush_lookaside(&self.shared, &*mem, &mut self.lookaside)?;
        while let Some((va, pages)) = self.descriptor.take_surplus(&*mem) {
            mem.free_pages(va, pages);
        }
        Ok(())
    }

    /// Returns every cached free page to `mem`.
    pub fn trim<M: PoolMemory + PageSupply>(&mut self, mem: &mut M) {
        while let Some((va, pages)) = self.descriptor.take_cached(&*mem) {
            mem.free_pages(va, pages);
        }
    }

    /// Usage of one tag.
    pub fn usage<M: PoolMemory + ?Sized>(&self, mem: &M, tag: u32) -> TagUsage {
        self.shared.usage(mem, tag)
    }

    /// Per-tag usage, sorted by tag.
    pub fn tag_usage<M: PoolMemory + ?Sized>(&self, mem: &M) -> alloc::vec::Vec<(u32, TagUsage)> {
        self.shared.tag_usage(mem)
    }

    /// Page and block counts.
    pub fn stats(&self) -> PoolStats {
        self.descriptor.stats()
    }

    /// `!pool <address>`.
    pub fn query<M: PoolMemory + ?Sized>(&self, mem: &M, va: u64) -> Option<(u32, u64)> {
        self.descriptor.query(&self.shared, mem, va)
    }
}

/// What `ExAllocatePool2`'s flags ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2Request {
    pub pool_type: PoolType,
    /// Zero the memory (no `POOL_FLAG_UNINITIALIZED`).
    pub zero: bool,
    /// `POOL_FLAG_RAISE_ON_FAILURE`.
    pub raise: bool,
}

/// Checks `ExAllocatePool2` flags: exactly one of `POOL_FLAG_NON_PAGED`,
/// `POOL_FLAG_NON_PAGED_EXECUTE`, `POOL_FLAG_PAGED` selects the pool; the
/// memory is zeroed unless `POOL_FLAG_UNINITIALIZED`. Unknown required flags
/// fail with [`PoolError::InvalidFlags`]; `POOL_FLAG_USE_QUOTA`,
/// `POOL_FLAG_SESSION` and `POOL_FLAG_SPECIAL_POOL` are not implemented.
/// Unknown optional flags (above bit 31) are ignored.
pub fn pool2_request(flags: u64) -> Result<Pool2Request, PoolError> {
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
    Ok(Pool2Request {
        pool_type: if types == POOL_FLAG_PAGED {
            PoolType::Paged
        } else {
            PoolType::NonPaged
        },
        zero: flags & POOL_FLAG_UNINITIALIZED == 0,
        raise: flags & POOL_FLAG_RAISE_ON_FAILURE != 0,
    })
}

/// `ExAllocatePool2(Flags, NumberOfBytes, Tag)` over a nonpaged and a paged
/// pool (see [`pool2_request`]). On exhaustion the error says whether
/// `POOL_FLAG_RAISE_ON_FAILURE` asked for an exception.
pub fn ex_allocate_pool2<M: PoolMemory + PageSupply>(
    nonpaged: &mut Pool,
    nonpaged_mem: &mut M,
    paged: &mut Pool,
    paged_mem: &mut M,
    flags: u64,
    bytes: u64,
    tag: u32,
) -> Result<u64, PoolError> {
    let req = pool2_request(flags)?;
    let r = match req.pool_type {
        PoolType::Paged => paged.allocate(paged_mem, bytes, tag, req.zero),
        PoolType::NonPaged => nonpaged.allocate(nonpaged_mem, bytes, tag, req.zero),
    };
    r.map_err(|e| match e {
        PoolError::InsufficientResources { .. } => {
            PoolError::InsufficientResources { raise: req.raise }
        }
        e => e,
    })
}

#[cfg(test)]
mod tests;
