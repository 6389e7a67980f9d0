//! The NT heap manager (*Windows Internals* 7th ed., Part 1, ch. 5 "Heap
//! manager"): the logic behind ntdll's `RtlCreateHeap`, `RtlAllocateHeap`,
//! `RtlFreeHeap`, `RtlReAllocateHeap`, `RtlSizeHeap`, `RtlDestroyHeap`,
//! `RtlWalkHeap` and `RtlLockHeap`/`RtlUnlockHeap`.
//!
//! `no_std`, allocation-free, over an abstract [`VirtualMemory`] (ntdll
//! implements it with `NtAllocateVirtualMemory`/`NtFreeVirtualMemory`; the
//! tests with host memory). Layout, as in the book's "NT heap":
//!
//! - The heap structure ([`Heap`]) sits at the start of its first segment;
//!   the heap handle is its address. A segment is one reservation, committed
//!   from its start as blocks need it; a growable heap adds segments (up to
//!   [`MAX_SEGMENTS`]), a fixed one fails with STATUS_NO_MEMORY.
//! - Back end: blocks in 16-byte units, each with a 16-byte header (size,
//!   previous block's size, flags, unused bytes, and a check value that
//!   mixes the fields, the header's address and the heap's random cookie,
//!   like Windows' encoded headers). Free blocks sit on 128 free lists
//!   (exact sizes below 127 units, one list for the rest) and coalesce with
//!   free neighbours on free; a free tail of a segment over 64 KiB is
//!   decommitted.
//! - Front end (LFH-like): after [`LFH_ACTIVATION`] allocations of one size
//!   bucket (16-byte steps up to [`LFH_MAX_BLOCK`]), that bucket's requests
//!   come from subsegments: back-end blocks cut into equal slots. A
//!   subsegment whose slots are all free goes back to the back end. Heaps
//!   created with HEAP_NO_SERIALIZE have no front end (as on Windows).
//! - Blocks of [`VIRTUAL_MEMORY_THRESHOLD`] bytes or more get their own
//!   reservation (growable heaps only; fixed heaps fail them).
//!
//! Every pointer passed in is checked before its header is read: it must be
//! 16-aligned inside a segment's committed part or be a known large block;
//! its header's check value must match and the block must be busy.
//! Anything else (a double free, an overwritten header, a wrong pointer)
//! is STATUS_HEAP_CORRUPTION, as is a free-list link that does not point
//! back ("safe unlinking").
#![no_std]

#[cfg(test)]
extern crate std;

#[cfg(any(test, feature = "host"))]
pub mod fuzz;
#[cfg(any(test, feature = "host"))]
pub mod host;
#[cfg(test)]
mod tests;

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};
use nt::status::{
    NtStatus, STATUS_HEAP_CORRUPTION, STATUS_INVALID_PARAMETER, STATUS_NOT_IMPLEMENTED,
    STATUS_NO_MEMORY, STATUS_NO_MORE_ENTRIES, STATUS_RESOURCE_NOT_OWNED,
};

/// `HEAP_NO_SERIALIZE`
pub const HEAP_NO_SERIALIZE: u32 = 0x1;
/// `HEAP_GROWABLE`
pub const HEAP_GROWABLE: u32 = 0x2;
/// `HEAP_GENERATE_EXCEPTIONS`
pub const HEAP_GENERATE_EXCEPTIONS: u32 = 0x4;
/// `HEAP_ZERO_MEMORY`
pub const HEAP_ZERO_MEMORY: u32 = 0x8;
/// `HEAP_REALLOC_IN_PLACE_ONLY`
pub const HEAP_REALLOC_IN_PLACE_ONLY: u32 = 0x10;

/// Page size of the virtual memory below.
pub const PAGE: usize = 0x1000;
/// Allocation unit and header size.
const UNIT: usize = 16;
/// Segments per heap.
pub const MAX_SEGMENTS: usize = 16;
/// Requests of this many bytes or more get their own reservation (the
/// 64-bit `VirtualMemoryThreshold`, 0xFE00 units).
pub const VIRTUAL_MEMORY_THRESHOLD: usize = 0xFE00 * UNIT;
/// Largest request the front end serves.
pub const LFH_MAX_BLOCK: usize = 512 - UNIT;
/// Allocations of one bucket after which the front end serves it.
pub const LFH_ACTIVATION: u32 = 17;
/// `HEAP.Signature` of Windows' heap structure.
pub const HEAP_SIGNATURE: u32 = 0xEEFF_EEFF;

const FREE_LISTS: usize = 128;
const LFH_BUCKETS: usize = LFH_MAX_BLOCK / UNIT + 2;
const DECOMMIT_THRESHOLD: usize = 0x10000;
const SUBSEGMENT_SLOTS: usize = 32;
/// Bytes before the user data of a large block (links, reserve, header).
const LARGE_PREFIX: usize = 48;

const F_BUSY: u8 = 0x01;
const F_LAST: u8 = 0x02;
const F_LFH: u8 = 0x04;
const F_SUBSEGMENT: u8 = 0x08;
const F_LARGE: u8 = 0x10;

/// The virtual memory a heap lives in (`NtAllocateVirtualMemory` and
/// `NtFreeVirtualMemory` on the current process).
///
/// # Safety
/// An implementation returns reservations that no one else uses; after a
/// successful `commit`, the range is readable and writable memory until it
/// is decommitted or released.
pub unsafe trait VirtualMemory {
    /// Reserves `size` bytes (a multiple of 64 KiB): `MEM_RESERVE`.
    fn reserve(&self, size: usize) -> Result<usize, NtStatus>;
    /// Commits whole pages inside a reservation: `MEM_COMMIT`.
    fn commit(&self, address: usize, size: usize) -> Result<(), NtStatus>;
    /// Decommits whole pages: `MEM_DECOMMIT`.
    fn decommit(&self, address: usize, size: usize) -> Result<(), NtStatus>;
    /// Releases a reservation from its base: `MEM_RELEASE`.
    fn release(&self, address: usize) -> Result<(), NtStatus>;
    /// An id of the calling thread (never 0), for the heap lock.
    fn current_thread(&self) -> usize;
    /// Gives up the processor while another thread holds the heap lock.
    fn yield_processor(&self);
}

/// A block header (16 bytes, right before the user data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Header {
    /// Block size in units, header included.
    size: u32,
    /// Back end: the previous block's size in units (0 for the first).
    /// Front end: units from the subsegment's block to this slot.
    prev: u32,
    flags: u8,
    /// Bytes of the block not requested by the caller.
    unused: u8,
    /// Segment index (back end) or bucket (front end).
    index: u8,
    spare: u8,
    check: u32,
}

#[derive(Clone, Copy, Default)]
struct Segment {
    base: usize,
    reserved: usize,
    /// Committed bytes from `base`.
    committed: usize,
    /// The first block's header.
    first: usize,
}

#[derive(Clone, Copy, Default)]
struct Bucket {
    allocations: u32,
    /// Subsegments (the data of back-end blocks) with free slots.
    partial: usize,
}

/// The header at the start of a subsegment's back-end block data.
#[repr(C)]
struct Subsegment {
    next: usize,
    prev: usize,
    free: usize,
    slots: u32,
    used: u32,
}

/// What `walk` returns: one entry of `RTL_HEAP_WALK_ENTRY`'s sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkEntry {
    /// A segment: its base, committed and uncommitted bytes, first block
    /// and end.
    Segment {
        index: u8,
        base: usize,
        committed: usize,
        uncommitted: usize,
        first: usize,
        last: usize,
    },
    /// A block (back end, front-end slot, or large block).
    Block {
        data: usize,
        size: usize,
        overhead: u8,
        index: u8,
        busy: bool,
        large: bool,
        /// A front-end slot.
        lfh: bool,
    },
    /// The uncommitted end of a segment.
    Uncommitted {
        address: usize,
        size: usize,
        index: u8,
    },
}

impl WalkEntry {
    /// `RTL_HEAP_WALK_ENTRY.DataAddress` of this entry.
    pub fn data_address(&self) -> usize {
        match *self {
            WalkEntry::Segment { base, .. } => base,
            WalkEntry::Block { data, .. } => data,
            WalkEntry::Uncommitted { address, .. } => address,
        }
    }
}

struct Inner<V> {
    /// The heap's `vm` (outside the cell: the lock uses it).
    vm: *const V,
    flags: u32,
    cookie: u32,
    lock_count: u32,
    segments: [Segment; MAX_SEGMENTS],
    nsegments: usize,
    free_map: u128,
    free: [usize; FREE_LISTS],
    /// Large blocks (their reservation bases), doubly linked.
    large: usize,
    buckets: [Bucket; LFH_BUCKETS],
}

/// A heap. Lives at the start of its first segment; see the module docs.
#[repr(C)]
pub struct Heap<V> {
    signature: u32,
    flags: u32,
    owner: AtomicUsize,
    vm: V,
    inner: UnsafeCell<Inner<V>>,
}

fn align_up(v: usize, a: usize) -> Option<usize> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

/// Units of a back-end block holding `size` requested bytes.
fn units_for(size: usize) -> Option<usize> {
    let total = align_up(size.checked_add(UNIT)?, UNIT)?;
    Some((total / UNIT).max(2))
}

fn mix(mut v: u32) -> u32 {
    v ^= v >> 16;
    v = v.wrapping_mul(0x7FEB_352D);
    v ^= v >> 15;
    v = v.wrapping_mul(0x846C_A68B);
    v ^ (v >> 16)
}

impl<V: VirtualMemory> Heap<V> {
    /// `RtlCreateHeap` (with `HeapBase`, `Lock` and `Parameters` NULL):
    /// reserves and commits per MS docs' table (both 0: 64 pages reserved,
    /// one committed; only commit: reserve = commit rounded to 16 pages;
    /// only reserve: one page committed; commit above reserve: cut), and
    /// puts the heap structure at the start. `cookie` seeds the header
    /// check values.
    pub fn create(
        vm: V,
        flags: u32,
        reserve: usize,
        commit: usize,
        cookie: u32,
    ) -> Result<*mut Heap<V>, NtStatus> {
        let (mut reserve, mut commit) = match (reserve, commit) {
            (0, 0) => (64 * PAGE, PAGE),
            (0, c) => (align_up(c, 16 * PAGE).ok_or(STATUS_NO_MEMORY)?, c),
            (r, 0) => (r, PAGE),
            (r, c) => (r, c.min(r)),
        };
        let header = align_up(core::mem::size_of::<Heap<V>>(), UNIT).ok_or(STATUS_NO_MEMORY)?;
        let minimum = align_up(header + 2 * UNIT, PAGE).ok_or(STATUS_NO_MEMORY)?;
        reserve = align_up(reserve.max(minimum), 0x10000).ok_or(STATUS_NO_MEMORY)?;
        commit = align_up(commit.max(minimum), PAGE)
            .ok_or(STATUS_NO_MEMORY)?
            .min(reserve);
        let base = vm.reserve(reserve)?;
        if let Err(e) = vm.commit(base, commit) {
            let _ = vm.release(base);
            return Err(e);
        }
        let heap = base as *mut Heap<V>;
        let flags = flags & (HEAP_NO_SERIALIZE | HEAP_GROWABLE | HEAP_GENERATE_EXCEPTIONS);
        let inner = Inner {
            // SAFETY: `heap` is the final address of the structure.
            vm: unsafe { ptr::addr_of!((*heap).vm) },
            flags,
            cookie: mix(cookie ^ base as u32 ^ (base >> 32) as u32) | 1,
            lock_count: 0,
            segments: [Segment::default(); MAX_SEGMENTS],
            nsegments: 1,
            free_map: 0,
            free: [0; FREE_LISTS],
            large: 0,
            buckets: [Bucket::default(); LFH_BUCKETS],
        };
        // SAFETY: `base` starts a fresh committed range of at least
        // `minimum` bytes, enough for the heap structure; nothing else
        // refers to it yet.
        unsafe {
            ptr::write(
                heap,
                Heap {
                    signature: HEAP_SIGNATURE,
                    flags,
                    owner: AtomicUsize::new(0),
                    vm,
                    inner: UnsafeCell::new(inner),
                },
            )
        };
        // SAFETY: just written; no other reference exists.
        let inner = unsafe { &mut *(*heap).inner.get() };
        inner.segments[0] = Segment {
            base,
            reserved: reserve,
            committed: commit,
            first: base + header,
        };
        let units = (commit - header) / UNIT;
        inner.put_block(base + header, units, 0, F_LAST, 0);
        inner.insert_free(base + header, units);
        Ok(heap)
    }

    /// The heap at `address` if it carries the heap signature.
    ///
    /// # Safety
    /// `address` is null or points to at least 4 readable bytes.
    pub unsafe fn from_handle<'a>(address: usize) -> Option<&'a Heap<V>> {
        if address == 0 || !address.is_multiple_of(UNIT) {
            return None;
        }
        // SAFETY: the caller passes readable memory.
        if unsafe { ptr::read(address as *const u32) } != HEAP_SIGNATURE {
            return None;
        }
        // SAFETY: a heap created by `create` starts with the signature and
        // lives until `destroy`.
        Some(unsafe { &*(address as *const Heap<V>) })
    }

    /// The heap's creation flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// `RtlLockHeap`: takes the heap lock (recursively for its owner).
    pub fn lock(&self) {
        let vm = &self.vm;
        let me = vm.current_thread();
        if self.owner.load(Ordering::Acquire) != me {
            while self
                .owner
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                vm.yield_processor();
            }
        }
        // SAFETY: this thread owns the lock.
        unsafe { (*self.inner.get()).lock_count += 1 };
    }

    /// `RtlUnlockHeap`: STATUS_RESOURCE_NOT_OWNED if the caller does not
    /// hold the lock.
    pub fn unlock(&self) -> Result<(), NtStatus> {
        let me = self.vm.current_thread();
        if self.owner.load(Ordering::Acquire) != me {
            return Err(STATUS_RESOURCE_NOT_OWNED);
        }
        // SAFETY: this thread owns the lock.
        let inner = unsafe { &mut *self.inner.get() };
        inner.lock_count -= 1;
        if inner.lock_count == 0 {
            self.owner.store(0, Ordering::Release);
        }
        Ok(())
    }

    /// Runs `f` on the heap state, under the lock unless HEAP_NO_SERIALIZE
    /// is in the heap's or the call's flags.
    ///
    /// # Safety
    /// Under HEAP_NO_SERIALIZE the caller guarantees no other thread uses
    /// the heap during the call.
    unsafe fn with<R>(&self, flags: u32, f: impl FnOnce(&mut Inner<V>) -> R) -> R {
        let serialize = (flags | self.flags()) & HEAP_NO_SERIALIZE == 0;
        if serialize {
            self.lock();
        }
        // SAFETY: the lock (or the caller's promise) makes this the only
        // reference to the state; the lock's recursion cannot reenter here
        // because `f` does not call out.
        let r = f(unsafe { &mut *self.inner.get() });
        if serialize {
            let _ = self.unlock();
        }
        r
    }

    /// `RtlAllocateHeap`: `size` bytes, 16-aligned, zeroed with
    /// HEAP_ZERO_MEMORY. STATUS_NO_MEMORY when it does not fit.
    ///
    /// # Safety
    /// See [`Heap::with`] (HEAP_NO_SERIALIZE).
    pub unsafe fn allocate(&self, flags: u32, size: usize) -> Result<usize, NtStatus> {
        // SAFETY: forwarded from the caller.
        unsafe { self.with(flags, |h| h.allocate(flags, size)) }
    }

    /// `RtlFreeHeap`: STATUS_HEAP_CORRUPTION for anything that is not a
    /// busy block of this heap with an intact header.
    ///
    /// # Safety
    /// See [`Heap::with`] (HEAP_NO_SERIALIZE).
    pub unsafe fn free(&self, flags: u32, data: usize) -> Result<(), NtStatus> {
        // SAFETY: forwarded from the caller.
        unsafe { self.with(flags, |h| h.free(data)) }
    }

    /// `RtlSizeHeap`: the requested size of a busy block.
    ///
    /// # Safety
    /// See [`Heap::with`] (HEAP_NO_SERIALIZE).
    pub unsafe fn size(&self, flags: u32, data: usize) -> Result<usize, NtStatus> {
        // SAFETY: forwarded from the caller.
        unsafe {
            self.with(flags, |h| {
                let (a, hd) = h.busy_block(data)?;
                Ok(h.requested(a, &hd))
            })
        }
    }

    /// `RtlReAllocateHeap`: in place when it can, otherwise (unless
    /// HEAP_REALLOC_IN_PLACE_ONLY) a new block with the old contents.
    ///
    /// # Safety
    /// See [`Heap::with`] (HEAP_NO_SERIALIZE).
    pub unsafe fn reallocate(
        &self,
        flags: u32,
        data: usize,
        size: usize,
    ) -> Result<usize, NtStatus> {
        // SAFETY: forwarded from the caller.
        unsafe { self.with(flags, |h| h.reallocate(flags, data, size)) }
    }

    /// `RtlWalkHeap`: the entry after the one whose `DataAddress` is
    /// `previous` (0: the first). Linear in the heap's size.
    ///
    /// # Safety
    /// See [`Heap::with`] (HEAP_NO_SERIALIZE).
    pub unsafe fn walk(&self, previous: usize) -> Result<WalkEntry, NtStatus> {
        // SAFETY: forwarded from the caller.
        unsafe { self.with(0, |h| h.walk(previous)) }
    }

    /// `RtlDestroyHeap`: releases every segment and large block.
    ///
    /// # Safety
    /// `heap` came from [`Heap::create`], is not used afterwards, and no
    /// other thread uses it during the call.
    pub unsafe fn destroy(heap: *mut Heap<V>) -> Result<(), NtStatus> {
        // SAFETY: the caller passes a live heap it no longer uses.
        let inner = unsafe { &mut *(*heap).inner.get() };
        // SAFETY: as above.
        let vm = unsafe { &(*heap).vm };
        let mut large = inner.large;
        while large != 0 {
            // SAFETY: large-block links point at live reservations.
            let next = unsafe { ptr::read(large as *const usize) };
            vm.release(large)?;
            large = next;
        }
        let segments = inner.segments;
        let n = inner.nsegments;
        // SAFETY: move the VM out before its memory goes away.
        let vm = unsafe { ptr::read(vm) };
        for s in segments[1..n].iter() {
            vm.release(s.base)?;
        }
        vm.release(segments[0].base)
    }
}

impl<V: VirtualMemory> Inner<V> {
    fn vm(&self) -> &V {
        // SAFETY: `vm` points into the heap structure, which outlives
        // every use of its state.
        unsafe { &*self.vm }
    }

    fn seal(&self, at: usize, h: &Header) -> u32 {
        let v = h.size
            ^ h.prev.rotate_left(11)
            ^ (h.flags as u32) << 24
            ^ (h.unused as u32) << 16
            ^ (h.index as u32) << 8
            ^ h.spare as u32
            ^ (at >> 4) as u32
            ^ (at >> 36) as u32;
        mix(v ^ self.cookie)
    }

    fn write_header(&self, at: usize, mut h: Header) {
        h.check = self.seal(at, &h);
        // SAFETY: every caller writes a header inside committed heap memory
        // (a segment's committed part, a subsegment, or a large block).
        unsafe { ptr::write(at as *mut Header, h) };
    }

    fn put_block(&self, at: usize, units: usize, prev: usize, flags: u8, index: u8) {
        self.write_header(
            at,
            Header {
                size: units as u32,
                prev: prev as u32,
                flags,
                unused: 0,
                index,
                spare: 0,
                check: 0,
            },
        );
    }

    /// Reads and checks the header at `at`, which the caller has placed in
    /// committed heap memory.
    fn header(&self, at: usize) -> Result<Header, NtStatus> {
        // SAFETY: `at` is a 16-aligned address inside committed heap memory
        // (checked by every caller).
        let h = unsafe { ptr::read(at as *const Header) };
        if h.check != self.seal(at, &h) || h.size < 2 {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        Ok(h)
    }

    fn segment_of(&self, at: usize) -> Option<usize> {
        self.segments[..self.nsegments]
            .iter()
            .position(|s| at >= s.first && at + 2 * UNIT <= s.base + s.committed)
    }

    /// The caller's size of a busy block (large blocks keep it in their
    /// prefix `[next, prev, committed bytes, size]`).
    fn requested(&self, at: usize, h: &Header) -> usize {
        if h.flags & F_LARGE != 0 {
            // SAFETY: a large block's prefix starts its reservation.
            unsafe { (*((at + UNIT - LARGE_PREFIX) as *const [usize; 4]))[3] }
        } else {
            h.size as usize * UNIT - UNIT - h.unused as usize
        }
    }

    /// The header of the busy block whose data is at `data`.
    fn busy_block(&self, data: usize) -> Result<(usize, Header), NtStatus> {
        if !data.is_multiple_of(UNIT) || data < UNIT {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        let at = data - UNIT;
        let known = self.segment_of(at).is_some() || self.is_large(at);
        if !known {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        let h = self.header(at)?;
        if h.flags & F_BUSY == 0 || h.flags & F_SUBSEGMENT != 0 {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        Ok((at, h))
    }

    fn is_large(&self, at: usize) -> bool {
        let mut l = self.large;
        while l != 0 {
            if l + LARGE_PREFIX - UNIT == at {
                return true;
            }
            // SAFETY: large-block links point at live reservations.
            l = unsafe { ptr::read(l as *const usize) };
        }
        false
    }

    // ---- free lists ----

    fn list_of(units: usize) -> usize {
        units.min(FREE_LISTS - 1)
    }

    fn links(at: usize) -> *mut [usize; 2] {
        (at + UNIT) as *mut [usize; 2]
    }

    fn insert_free(&mut self, at: usize, units: usize) {
        let l = Self::list_of(units);
        let head = self.free[l];
        // SAFETY: a free block has at least 32 bytes, its data holds the
        // two links; `head` is a free block of this heap.
        unsafe {
            ptr::write(Self::links(at), [head, 0]);
            if head != 0 {
                (*Self::links(head))[1] = at;
            }
        }
        self.free[l] = at;
        self.free_map |= 1 << l;
    }

    fn unlink_free(&mut self, at: usize, units: usize) -> Result<(), NtStatus> {
        let l = Self::list_of(units);
        // SAFETY: `at` is a checked free block of this heap.
        let [next, prev] = unsafe { ptr::read(Self::links(at)) };
        // Safe unlinking: the neighbours must point back at this block.
        for (n, back) in [(next, 1), (prev, 0)] {
            if n != 0 {
                if self.segment_of(n).is_none() || !n.is_multiple_of(UNIT) {
                    return Err(STATUS_HEAP_CORRUPTION);
                }
                // SAFETY: `n` is inside a segment's committed part.
                if unsafe { (*Self::links(n))[back] } != at {
                    return Err(STATUS_HEAP_CORRUPTION);
                }
            }
        }
        if prev == 0 {
            if self.free[l] != at {
                return Err(STATUS_HEAP_CORRUPTION);
            }
            self.free[l] = next;
            if next == 0 {
                self.free_map &= !(1 << l);
            }
        } else {
            // SAFETY: checked above.
            unsafe { (*Self::links(prev))[0] = next };
        }
        if next != 0 {
            // SAFETY: checked above.
            unsafe { (*Self::links(next))[1] = prev };
        }
        Ok(())
    }

    /// A free block of at least `units`, taken off its list.
    fn take_free(&mut self, units: usize) -> Result<Option<(usize, Header)>, NtStatus> {
        let l = Self::list_of(units);
        let exact = self.free_map & (!0u128 << l) & !(1u128 << (FREE_LISTS - 1));
        let mut candidates = [0usize; 2];
        if exact != 0 {
            candidates[0] = self.free[exact.trailing_zeros() as usize];
        }
        // The big list: first fit.
        let mut at = self.free[FREE_LISTS - 1];
        let mut steps = 0usize;
        while candidates[0] == 0 && at != 0 {
            if self.segment_of(at).is_none() {
                return Err(STATUS_HEAP_CORRUPTION);
            }
            let h = self.header(at)?;
            if h.size as usize >= units {
                candidates[1] = at;
                break;
            }
            // SAFETY: `at` is a checked free block.
            at = unsafe { (*Self::links(at))[0] };
            steps += 1;
            if steps > 1 << 28 {
                return Err(STATUS_HEAP_CORRUPTION);
            }
        }
        let at = if candidates[0] != 0 {
            candidates[0]
        } else {
            candidates[1]
        };
        if at == 0 {
            return Ok(None);
        }
        if self.segment_of(at).is_none() {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        let h = self.header(at)?;
        if h.flags & F_BUSY != 0 || (h.size as usize) < units {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        self.unlink_free(at, h.size as usize)?;
        Ok(Some((at, h)))
    }

    /// The block after `at` in its segment, if any.
    fn next_block(&self, at: usize, h: &Header) -> Result<Option<(usize, Header)>, NtStatus> {
        if h.flags & F_LAST != 0 {
            return Ok(None);
        }
        let n = at + h.size as usize * UNIT;
        if self.segment_of(n).is_none() {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        let nh = self.header(n)?;
        if nh.prev != h.size || nh.index != h.index {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        Ok(Some((n, nh)))
    }

    fn set_prev_of_next(&self, at: usize, h: &Header) -> Result<(), NtStatus> {
        if let Some((n, mut nh)) = self.next_block_raw(at, h)? {
            nh.prev = h.size;
            self.write_header(n, nh);
        }
        Ok(())
    }

    /// Like `next_block` without the back-link check (for fixing it).
    fn next_block_raw(&self, at: usize, h: &Header) -> Result<Option<(usize, Header)>, NtStatus> {
        if h.flags & F_LAST != 0 {
            return Ok(None);
        }
        let n = at + h.size as usize * UNIT;
        if self.segment_of(n).is_none() {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        Ok(Some((n, self.header(n)?)))
    }

    /// Marks `units` of free block `at` busy, returning the rest (if it can
    /// be a block) to the free lists.
    fn carve(
        &mut self,
        at: usize,
        h: Header,
        units: usize,
        size: usize,
        flags: u8,
    ) -> Result<usize, NtStatus> {
        let mut used = h.size as usize;
        let mut bh = h;
        if used - units >= 2 {
            let rest = used - units;
            let rest_at = at + units * UNIT;
            let rh = Header {
                size: rest as u32,
                prev: units as u32,
                flags: h.flags & F_LAST,
                unused: 0,
                index: h.index,
                spare: 0,
                check: 0,
            };
            self.write_header(rest_at, rh);
            self.set_prev_of_next(rest_at, &rh)?;
            self.insert_free(rest_at, rest);
            used = units;
            bh.flags &= !F_LAST;
        }
        bh.size = used as u32;
        bh.flags |= F_BUSY | flags;
        bh.unused = (used * UNIT - UNIT - size) as u8;
        self.write_header(at, bh);
        Ok(at + UNIT)
    }

    /// Commits more of a segment (or adds a segment) so that a free block
    /// of `units` exists; returns it off the lists.
    fn grow(&mut self, units: usize) -> Result<(usize, Header), NtStatus> {
        let need = units * UNIT;
        for i in 0..self.nsegments {
            let s = self.segments[i];
            let end = s.base + s.committed;
            let room = s.reserved - s.committed;
            // The segment's last block, if free, grows in place.
            let (last, lh) = self.last_block(i)?;
            let tail = if lh.flags & F_BUSY == 0 {
                lh.size as usize * UNIT
            } else {
                0
            };
            if need > tail + room {
                continue;
            }
            let more = align_up(need - tail.min(need), PAGE)
                .unwrap_or(usize::MAX)
                .max(PAGE)
                .min(room);
            if more == 0 {
                continue;
            }
            self.vm().commit(end, more)?;
            self.segments[i].committed += more;
            let new_units = more / UNIT;
            if lh.flags & F_BUSY == 0 {
                self.unlink_free(last, lh.size as usize)?;
                let total = lh.size as usize + new_units;
                let h = Header {
                    size: total as u32,
                    ..lh
                };
                self.write_header(last, h);
                if total >= units {
                    return Ok((last, self.header(last)?));
                }
                self.insert_free(last, total);
            } else {
                let mut b = lh;
                b.flags &= !F_LAST;
                self.write_header(last, b);
                let h = Header {
                    size: new_units as u32,
                    prev: lh.size,
                    flags: F_LAST,
                    unused: 0,
                    index: i as u8,
                    spare: 0,
                    check: 0,
                };
                self.write_header(end, h);
                if new_units >= units {
                    return Ok((end, self.header(end)?));
                }
                self.insert_free(end, new_units);
            }
        }
        if self.flags & HEAP_GROWABLE == 0 || self.nsegments == MAX_SEGMENTS {
            return Err(STATUS_NO_MEMORY);
        }
        let last = self.segments[self.nsegments - 1].reserved;
        // Each new segment doubles the last (up to 16 MiB), or fits the
        // request.
        let reserve = align_up(
            (need + UNIT).max(last.saturating_mul(2).min(16 << 20)),
            0x10000,
        )
        .ok_or(STATUS_NO_MEMORY)?;
        let base = self.vm().reserve(reserve)?;
        let commit = align_up(need + UNIT, PAGE).ok_or(STATUS_NO_MEMORY)?;
        if let Err(e) = self.vm().commit(base, commit) {
            let _ = self.vm().release(base);
            return Err(e);
        }
        let i = self.nsegments;
        self.segments[i] = Segment {
            base,
            reserved: reserve,
            committed: commit,
            first: base + UNIT,
        };
        self.nsegments += 1;
        let u = (commit - UNIT) / UNIT;
        self.put_block(base + UNIT, u, 0, F_LAST, i as u8);
        Ok((base + UNIT, self.header(base + UNIT)?))
    }

    fn last_block(&self, i: usize) -> Result<(usize, Header), NtStatus> {
        let s = self.segments[i];
        let mut at = s.first;
        let mut steps = 0usize;
        loop {
            let h = self.header(at)?;
            match self.next_block(at, &h)? {
                Some((n, _)) => at = n,
                None => return Ok((at, h)),
            }
            steps += 1;
            if steps > s.committed / UNIT {
                return Err(STATUS_HEAP_CORRUPTION);
            }
        }
    }

    fn allocate_back(&mut self, size: usize, flags: u8) -> Result<usize, NtStatus> {
        let units = units_for(size).ok_or(STATUS_NO_MEMORY)?;
        let (at, h) = match self.take_free(units)? {
            Some(b) => b,
            None => self.grow(units)?,
        };
        self.carve(at, h, units, size, flags)
    }

    fn allocate_large(&mut self, size: usize) -> Result<usize, NtStatus> {
        if self.flags & HEAP_GROWABLE == 0 {
            return Err(STATUS_NO_MEMORY);
        }
        let bytes = align_up(
            size.checked_add(LARGE_PREFIX).ok_or(STATUS_NO_MEMORY)?,
            PAGE,
        )
        .ok_or(STATUS_NO_MEMORY)?;
        let reserve = align_up(bytes, 0x10000).ok_or(STATUS_NO_MEMORY)?;
        let base = self.vm().reserve(reserve)?;
        if let Err(e) = self.vm().commit(base, bytes) {
            let _ = self.vm().release(base);
            return Err(e);
        }
        // SAFETY: the first page of the fresh reservation is committed.
        unsafe {
            ptr::write(base as *mut [usize; 4], [self.large, 0, bytes, size]);
            if self.large != 0 {
                (*(self.large as *mut [usize; 4]))[1] = base;
            }
        }
        self.large = base;
        let at = base + LARGE_PREFIX - UNIT;
        self.write_header(
            at,
            Header {
                size: 0xFFFF_FFFF,
                prev: 0,
                flags: F_BUSY | F_LARGE,
                unused: 0,
                index: 0xFF,
                spare: 0,
                check: 0,
            },
        );
        Ok(base + LARGE_PREFIX)
    }

    fn free_large(&mut self, at: usize) -> Result<(), NtStatus> {
        let base = at + UNIT - LARGE_PREFIX;
        // SAFETY: `at` is a known large block (checked by the caller).
        let [next, prev, _, _] = unsafe { ptr::read(base as *const [usize; 4]) };
        // SAFETY: the links point at live large blocks.
        unsafe {
            if prev == 0 {
                self.large = next;
            } else {
                (*(prev as *mut [usize; 4]))[0] = next;
            }
            if next != 0 {
                (*(next as *mut [usize; 4]))[1] = prev;
            }
        }
        self.vm().release(base)
    }

    fn allocate(&mut self, flags: u32, size: usize) -> Result<usize, NtStatus> {
        let data = if size >= VIRTUAL_MEMORY_THRESHOLD {
            self.allocate_large(size)?
        } else if size <= LFH_MAX_BLOCK && self.flags & HEAP_NO_SERIALIZE == 0 {
            let b = units_for(size).ok_or(STATUS_NO_MEMORY)?;
            self.buckets[b].allocations = self.buckets[b].allocations.saturating_add(1);
            if self.buckets[b].allocations > LFH_ACTIVATION {
                self.allocate_lfh(b, size)?
            } else {
                self.allocate_back(size, 0)?
            }
        } else {
            self.allocate_back(size, 0)?
        };
        if flags & HEAP_ZERO_MEMORY != 0 {
            // SAFETY: `data` starts `size` bytes of a block just allocated.
            unsafe { ptr::write_bytes(data as *mut u8, 0, size) };
        }
        Ok(data)
    }

    // ---- front end ----

    fn allocate_lfh(&mut self, bucket: usize, size: usize) -> Result<usize, NtStatus> {
        if self.buckets[bucket].partial == 0 {
            self.new_subsegment(bucket)?;
        }
        let sub = self.buckets[bucket].partial;
        // SAFETY: `sub` is a live subsegment of this bucket.
        let s = unsafe { &mut *(sub as *mut Subsegment) };
        let slot = s.free;
        if slot == 0 || self.segment_of(slot).is_none() {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        let mut h = self.header(slot)?;
        if h.flags != F_LFH || h.index as usize != bucket {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        // SAFETY: a free slot's data holds the next free slot.
        s.free = unsafe { ptr::read((slot + UNIT) as *const usize) };
        s.used += 1;
        if s.free == 0 {
            let (next, prev) = (s.next, s.prev);
            self.unlink_sub(bucket, sub, next, prev);
        }
        h.flags = F_LFH | F_BUSY;
        h.unused = (h.size as usize * UNIT - UNIT - size) as u8;
        self.write_header(slot, h);
        Ok(slot + UNIT)
    }

    fn unlink_sub(&mut self, bucket: usize, sub: usize, next: usize, prev: usize) {
        // SAFETY: the partial list links live subsegments.
        unsafe {
            if prev == 0 {
                self.buckets[bucket].partial = next;
            } else {
                (*(prev as *mut Subsegment)).next = next;
            }
            if next != 0 {
                (*(next as *mut Subsegment)).prev = prev;
            }
            (*(sub as *mut Subsegment)).next = 0;
            (*(sub as *mut Subsegment)).prev = 0;
        }
    }

    fn push_sub(&mut self, bucket: usize, sub: usize) {
        let head = self.buckets[bucket].partial;
        // SAFETY: `sub` and `head` are live subsegments.
        unsafe {
            (*(sub as *mut Subsegment)).next = head;
            (*(sub as *mut Subsegment)).prev = 0;
            if head != 0 {
                (*(head as *mut Subsegment)).prev = sub;
            }
        }
        self.buckets[bucket].partial = sub;
    }

    fn new_subsegment(&mut self, bucket: usize) -> Result<(), NtStatus> {
        let slot_bytes = bucket * UNIT;
        let bytes = UNIT * 3 + slot_bytes * SUBSEGMENT_SLOTS;
        let data = self.allocate_back(bytes, F_SUBSEGMENT)?;
        let block = data - UNIT;
        // The subsegment structure takes the block's first 48 data bytes.
        let first = data + 3 * UNIT;
        let mut next_free = 0;
        for i in (0..SUBSEGMENT_SLOTS).rev() {
            let at = first + i * slot_bytes;
            self.write_header(
                at,
                Header {
                    size: bucket as u32,
                    prev: ((at - block) / UNIT) as u32,
                    flags: F_LFH,
                    unused: 0,
                    index: bucket as u8,
                    spare: 0,
                    check: 0,
                },
            );
            // SAFETY: the slot's data is inside the block just allocated.
            unsafe { ptr::write((at + UNIT) as *mut usize, next_free) };
            next_free = at;
        }
        // SAFETY: the subsegment structure fits in the block's data.
        unsafe {
            ptr::write(
                data as *mut Subsegment,
                Subsegment {
                    next: 0,
                    prev: 0,
                    free: next_free,
                    slots: SUBSEGMENT_SLOTS as u32,
                    used: 0,
                },
            )
        };
        self.push_sub(bucket, data);
        Ok(())
    }

    fn free_lfh(&mut self, at: usize, mut h: Header) -> Result<(), NtStatus> {
        let bucket = h.index as usize;
        let block = at - h.prev as usize * UNIT;
        if bucket >= LFH_BUCKETS || self.segment_of(block).is_none() {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        let bh = self.header(block)?;
        if bh.flags & (F_SUBSEGMENT | F_BUSY) != F_SUBSEGMENT | F_BUSY {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        let sub = block + UNIT;
        // SAFETY: `sub` is a live subsegment (its block's header checked).
        let s = unsafe { &mut *(sub as *mut Subsegment) };
        if s.used == 0 || s.slots != SUBSEGMENT_SLOTS as u32 {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        h.flags = F_LFH;
        h.unused = 0;
        self.write_header(at, h);
        // SAFETY: the slot's data holds the free link.
        unsafe { ptr::write((at + UNIT) as *mut usize, s.free) };
        let was_full = s.free == 0;
        s.free = at;
        s.used -= 1;
        let used = s.used;
        if was_full {
            self.push_sub(bucket, sub);
        }
        if used == 0 {
            // SAFETY: `sub` is live until freed below.
            let (next, prev) = unsafe {
                (
                    (*(sub as *const Subsegment)).next,
                    (*(sub as *const Subsegment)).prev,
                )
            };
            self.unlink_sub(bucket, sub, next, prev);
            self.free_back(block, bh)?;
        }
        Ok(())
    }

    // ---- free and reallocate ----

    fn free(&mut self, data: usize) -> Result<(), NtStatus> {
        let (at, h) = self.busy_block(data)?;
        if h.flags & F_LARGE != 0 {
            self.free_large(at)
        } else if h.flags & F_LFH != 0 {
            self.free_lfh(at, h)
        } else {
            self.free_back(at, h)
        }
    }

    fn free_back(&mut self, at: usize, h: Header) -> Result<(), NtStatus> {
        let seg = h.index as usize;
        if seg >= self.nsegments {
            return Err(STATUS_HEAP_CORRUPTION);
        }
        let mut at = at;
        let mut h = h;
        h.flags &= F_LAST;
        h.unused = 0;
        // The old header stays behind (free) if this block merges into its
        // predecessor: a second free of it is then seen.
        self.write_header(at, h);
        if let Some((n, nh)) = self.next_block(at, &h)? {
            if nh.flags & F_BUSY == 0 {
                self.unlink_free(n, nh.size as usize)?;
                h.size += nh.size;
                h.flags |= nh.flags & F_LAST;
            }
        }
        if h.prev != 0 {
            let p = at - h.prev as usize * UNIT;
            if p < self.segments[seg].first {
                return Err(STATUS_HEAP_CORRUPTION);
            }
            let ph = self.header(p)?;
            if ph.size != h.prev {
                return Err(STATUS_HEAP_CORRUPTION);
            }
            if ph.flags & F_BUSY == 0 {
                self.unlink_free(p, ph.size as usize)?;
                h.size += ph.size;
                h.prev = ph.prev;
                at = p;
            }
        }
        // A large free tail goes back to the system.
        let s = self.segments[seg];
        if h.flags & F_LAST != 0 {
            let keep = align_up(at + 2 * UNIT, PAGE).unwrap_or(usize::MAX);
            let end = s.base + s.committed;
            if end > keep && end - keep >= DECOMMIT_THRESHOLD {
                self.vm().decommit(keep, end - keep)?;
                self.segments[seg].committed = keep - s.base;
                h.size = ((keep - at) / UNIT) as u32;
            }
        }
        self.write_header(at, h);
        self.set_prev_of_next(at, &h)?;
        self.insert_free(at, h.size as usize);
        Ok(())
    }

    fn reallocate(&mut self, flags: u32, data: usize, size: usize) -> Result<usize, NtStatus> {
        let (at, h) = self.busy_block(data)?;
        let old = self.requested(at, &h);
        if let Some(d) = self.resize_in_place(at, h, size)? {
            if flags & HEAP_ZERO_MEMORY != 0 && size > old {
                // SAFETY: the block now holds `size` bytes.
                unsafe { ptr::write_bytes((data + old) as *mut u8, 0, size - old) };
            }
            return Ok(d);
        }
        if flags & HEAP_REALLOC_IN_PLACE_ONLY != 0 {
            return Err(STATUS_NO_MEMORY);
        }
        let new = self.allocate(flags & HEAP_ZERO_MEMORY, size)?;
        // SAFETY: both blocks are busy and distinct; the old one holds `old`
        // bytes, the new one at least `size`.
        unsafe { ptr::copy_nonoverlapping(data as *const u8, new as *mut u8, old.min(size)) };
        self.free(data)?;
        Ok(new)
    }

    fn resize_in_place(
        &mut self,
        at: usize,
        mut h: Header,
        size: usize,
    ) -> Result<Option<usize>, NtStatus> {
        if h.flags & F_LARGE != 0 {
            let base = at + UNIT - LARGE_PREFIX;
            // SAFETY: a large block's prefix holds [next, prev, bytes, size].
            let bytes = unsafe { (*(base as *const [usize; 4]))[2] };
            if size <= bytes - LARGE_PREFIX && size >= VIRTUAL_MEMORY_THRESHOLD / 2 {
                // SAFETY: as above.
                unsafe { (*(base as *mut [usize; 4]))[3] = size };
                h.unused = 0;
                self.write_header(at, h);
                return Ok(Some(at + UNIT));
            }
            return Ok(None);
        }
        if size >= VIRTUAL_MEMORY_THRESHOLD {
            return Ok(None);
        }
        let units = units_for(size).ok_or(STATUS_NO_MEMORY)?;
        if h.flags & F_LFH != 0 {
            if units == h.size as usize {
                h.unused = (h.size as usize * UNIT - UNIT - size) as u8;
                self.write_header(at, h);
                return Ok(Some(at + UNIT));
            }
            return Ok(None);
        }
        let mut have = h.size as usize;
        if units > have {
            match self.next_block(at, &h)? {
                Some((n, nh)) if nh.flags & F_BUSY == 0 && have + nh.size as usize >= units => {
                    self.unlink_free(n, nh.size as usize)?;
                    have += nh.size as usize;
                    h.flags = (h.flags & !F_LAST) | (nh.flags & F_LAST);
                }
                _ => return Ok(None),
            }
        }
        // Give back what is beyond `units` (merging with a free next block).
        h.size = have as u32;
        if have - units >= 2 {
            let rest_at = at + units * UNIT;
            let mut rest = Header {
                size: (have - units) as u32,
                prev: units as u32,
                flags: h.flags & F_LAST,
                unused: 0,
                index: h.index,
                spare: 0,
                check: 0,
            };
            h.size = units as u32;
            h.flags &= !F_LAST;
            if let Some((n, nh)) = self.next_block_raw(rest_at, &rest)? {
                if nh.flags & F_BUSY == 0 {
                    self.unlink_free(n, nh.size as usize)?;
                    rest.size += nh.size;
                    rest.flags |= nh.flags & F_LAST;
                }
            }
            self.write_header(rest_at, rest);
            self.set_prev_of_next(rest_at, &rest)?;
            self.insert_free(rest_at, rest.size as usize);
        } else {
            self.set_prev_of_next(at, &h)?;
        }
        h.unused = (h.size as usize * UNIT - UNIT - size) as u8;
        self.write_header(at, h);
        self.set_prev_of_next(at, &h)?;
        Ok(Some(at + UNIT))
    }

    // ---- walk ----

    /// Every entry in order; `f` returns true to stop.
    fn for_each(&self, mut f: impl FnMut(WalkEntry) -> bool) -> Result<bool, NtStatus> {
        for i in 0..self.nsegments {
            let s = self.segments[i];
            if f(WalkEntry::Segment {
                index: i as u8,
                base: s.base,
                committed: s.committed,
                uncommitted: s.reserved - s.committed,
                first: s.first,
                last: s.base + s.reserved,
            }) {
                return Ok(true);
            }
            let mut at = s.first;
            loop {
                let h = self.header(at)?;
                if h.flags & F_SUBSEGMENT != 0 {
                    let first = at + 4 * UNIT;
                    // SAFETY: a subsegment block starts with its structure.
                    let slots = unsafe { (*((at + UNIT) as *const Subsegment)).slots } as usize;
                    let bucket = self.header(first)?.index as usize;
                    for k in 0..slots {
                        let sa = first + k * bucket * UNIT;
                        let sh = self.header(sa)?;
                        let busy = sh.flags & F_BUSY != 0;
                        if f(WalkEntry::Block {
                            data: sa + UNIT,
                            size: if busy {
                                bucket * UNIT - UNIT - sh.unused as usize
                            } else {
                                bucket * UNIT - UNIT
                            },
                            overhead: UNIT as u8 + if busy { sh.unused } else { 0 },
                            index: i as u8,
                            busy,
                            large: false,
                            lfh: true,
                        }) {
                            return Ok(true);
                        }
                    }
                } else {
                    let busy = h.flags & F_BUSY != 0;
                    let bytes = h.size as usize * UNIT;
                    if f(WalkEntry::Block {
                        data: at + UNIT,
                        size: bytes - UNIT - if busy { h.unused as usize } else { 0 },
                        overhead: UNIT as u8 + if busy { h.unused } else { 0 },
                        index: i as u8,
                        busy,
                        large: false,
                        lfh: false,
                    }) {
                        return Ok(true);
                    }
                }
                match self.next_block(at, &h)? {
                    Some((n, _)) => at = n,
                    None => break,
                }
            }
            if s.reserved > s.committed
                && f(WalkEntry::Uncommitted {
                    address: s.base + s.committed,
                    size: s.reserved - s.committed,
                    index: i as u8,
                })
            {
                return Ok(true);
            }
        }
        let mut l = self.large;
        while l != 0 {
            // SAFETY: large-block links point at live reservations.
            let [next, _, _, size] = unsafe { ptr::read(l as *const [usize; 4]) };
            if f(WalkEntry::Block {
                data: l + LARGE_PREFIX,
                size,
                overhead: LARGE_PREFIX as u8,
                index: 0xFF,
                busy: true,
                large: true,
                lfh: false,
            }) {
                return Ok(true);
            }
            l = next;
        }
        Ok(false)
    }

    fn walk(&self, previous: usize) -> Result<WalkEntry, NtStatus> {
        let mut found = previous == 0;
        let mut out = None;
        self.for_each(|e| {
            if found {
                out = Some(e);
                return true;
            }
            found = e.data_address() == previous;
            false
        })?;
        match out {
            Some(e) => Ok(e),
            None if found => Err(STATUS_NO_MORE_ENTRIES),
            None => Err(STATUS_INVALID_PARAMETER),
        }
    }
}

/// `RtlCreateHeap` arguments ntrs does not support: a caller-provided
/// `HeapBase`, a caller's `Lock`, or `Parameters` with commit routines.
pub const UNSUPPORTED_CREATE: NtStatus = STATUS_NOT_IMPLEMENTED;
