//! Storage: hive bins and cells of the stable and the volatile space, the cell map, the
//! free-cell index, cell allocation (best fit, split, coalesce), dirty-page tracking and
//! bounds-checked cell access.
//!
//! As in NT (*Windows Internals*, "Cell maps"), a space is not one contiguous buffer: each hive
//! bin is its own allocation and a per-page map turns a cell offset into (bin, offset in bin).
//! Growing a hive therefore allocates only the new bin (fallibly: `STATUS_INSUFFICIENT_RESOURCES`
//! when memory or the space's size limit runs out) and never moves existing cells.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::*;

/// Largest size of a storage space: cell offsets keep the top bit for the storage type.
pub const MAX_SPACE: u32 = 0x8000_0000 - PAGE as u32;

/// One hive bin of a space.
#[derive(Clone, Debug)]
pub(crate) struct Bin {
    /// Offset of the bin in its space.
    pub(crate) start: u32,
    /// The bin: 32-byte header followed by cells.
    pub(crate) data: Vec<u8>,
}

/// One storage space (stable or volatile): hive bins, the cell map, a free-cell index and the
/// pages changed since the last flush.
#[derive(Clone, Debug)]
pub(crate) struct Space {
    pub(crate) bins: Vec<Bin>,
    /// Bin index of every 4 KiB page of the space (the cell map).
    pub(crate) pages: Vec<u32>,
    /// Free cells as (size, offset).
    pub(crate) free: BTreeSet<(u32, u32)>,
    /// One bit per page: changed since the last [`Space::clear_dirty`] (`HvMarkCellDirty`).
    dirty: Vec<u64>,
    /// Growth beyond this many bytes fails with `STATUS_INSUFFICIENT_RESOURCES`.
    pub(crate) limit: u32,
}

impl Default for Space {
    fn default() -> Self {
        Space {
            bins: Vec::new(),
            pages: Vec::new(),
            free: BTreeSet::new(),
            dirty: Vec::new(),
            limit: MAX_SPACE,
        }
    }
}

fn no_memory<T>(_: T) -> Error {
    Error::Status(STATUS_INSUFFICIENT_RESOURCES)
}

impl Space {
    /// Size of the space in bytes (the sum of its bins).
    pub(crate) fn len(&self) -> usize {
        self.pages.len() * PAGE
    }

    fn bin_index(&self, off: u32) -> Option<usize> {
        Some(*self.pages.get(off as usize / PAGE)? as usize)
    }

    /// (start, size) of the bin holding `off`.
    pub(crate) fn bin_of(&self, off: u32) -> Option<(u32, u32)> {
        let b = self.bins.get(self.bin_index(off)?)?;
        Some((b.start, b.data.len() as u32))
    }

    /// The bytes from `off` to the end of its bin.
    pub(crate) fn bytes(&self, off: u32) -> Option<&[u8]> {
        let b = self.bins.get(self.bin_index(off)?)?;
        b.data.get((off - b.start) as usize..)
    }

    /// The bytes from `off` to the end of its bin, marking nothing dirty.
    fn bytes_mut_clean(&mut self, off: u32) -> Option<&mut [u8]> {
        let i = self.bin_index(off)?;
        let b = self.bins.get_mut(i)?;
        b.data.get_mut((off - b.start) as usize..)
    }

    /// The bytes from `off` to the end of its bin; the pages of `off..off + len` become dirty.
    pub(crate) fn bytes_mut(&mut self, off: u32, len: usize) -> Option<&mut [u8]> {
        self.mark_dirty(off, len);
        self.bytes_mut_clean(off)
    }

    pub(crate) fn size_at(&self, off: u32) -> Option<i32> {
        rd32(self.bytes(off)?, 0).map(|v| v as i32)
    }

    fn write_size(&mut self, off: u32, v: u32) {
        if let Some(b) = self.bytes_mut(off, 4) {
            wr32(b, 0, v);
        }
    }

    /// Marks the pages of `off..off + len` dirty.
    pub(crate) fn mark_dirty(&mut self, off: u32, len: usize) {
        let first = off as usize / PAGE;
        let last = (off as usize + len.max(1) - 1) / PAGE;
        for p in first..=last.min(self.pages.len().saturating_sub(1)) {
            if let Some(w) = self.dirty.get_mut(p / 64) {
                *w |= 1 << (p % 64);
            }
        }
    }

    /// Every page dirty (a recovered hive's primary is stale).
    pub(crate) fn mark_all_dirty(&mut self) {
        let n = self.pages.len();
        self.mark_dirty(0, n * PAGE);
    }

    /// Forgets the dirty pages (after a completed flush).
    pub(crate) fn clear_dirty(&mut self) {
        self.dirty.fill(0);
    }

    /// Offsets of the dirty pages, ascending.
    pub(crate) fn dirty_pages(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.pages.len())
            .filter(|p| self.dirty[p / 64] & (1 << (p % 64)) != 0)
            .map(|p| (p * PAGE) as u32)
    }

    /// The 4 KiB page at `off` (a multiple of 4096 below [`Space::len`]).
    pub(crate) fn page(&self, off: u32) -> Option<&[u8]> {
        self.bytes(off)?.get(..PAGE)
    }

    /// Appends a bin of `size` bytes (a multiple of 4096) holding `contents` (or a fresh header and
    /// one free cell when `None`); fails without changing anything when memory or the limit runs
    /// out.
    fn push_bin(&mut self, size: usize, contents: Option<&[u8]>, time: u64) -> Result<u32> {
        let start = self.len();
        let end = start.checked_add(size).ok_or(no_memory(()))?;
        if end > self.limit as usize || end > MAX_SPACE as usize {
            return Err(Error::Status(STATUS_INSUFFICIENT_RESOURCES));
        }
        let npages = size / PAGE;
        let mut data = Vec::new();
        data.try_reserve_exact(size).map_err(no_memory)?;
        self.bins.try_reserve(1).map_err(no_memory)?;
        self.pages.try_reserve(npages).map_err(no_memory)?;
        let words = (self.pages.len() + npages).div_ceil(64);
        self.dirty
            .try_reserve(words.saturating_sub(self.dirty.len()))
            .map_err(no_memory)?;
        match contents {
            Some(c) => data.extend_from_slice(c),
            None => {
                data.resize(size, 0);
                data[0..4].copy_from_slice(b"hbin");
                wr32(&mut data, 4, start as u32);
                wr32(&mut data, 8, size as u32);
                wr64(&mut data, 20, time);
                wr32(&mut data, 32, size as u32 - 32);
            }
        }
        let index = self.bins.len() as u32;
        self.bins.push(Bin {
            start: start as u32,
            data,
        });
        self.pages.resize(self.pages.len() + npages, index);
        self.dirty.resize(words, 0);
        self.mark_dirty(start as u32, size);
        Ok(start as u32)
    }

    fn add_bin(&mut self, need: u32, time: u64) -> Result<u32> {
        let size = (need as usize + 32).div_ceil(PAGE) * PAGE;
        let start = self.push_bin(size, None, time)?;
        let cell = start + 32;
        self.free.insert((size as u32 - 32, cell));
        Ok(cell)
    }

    /// Allocates a cell with room for `len` data bytes; returns its offset (zero-filled data).
    /// On failure (`STATUS_INSUFFICIENT_RESOURCES`) the space is unchanged.
    pub(crate) fn alloc(&mut self, len: usize, time: u64) -> Result<u32> {
        let total = len
            .checked_add(4)
            .map(|t| t.div_ceil(8) * 8)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|&t| t < MAX_SPACE)
            .ok_or(Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
        let found = self.free.range((total, 0)..).next().copied();
        let (size, off) = match found {
            Some(f) => f,
            None => {
                let c = self.add_bin(total, time)?;
                let size = self.size_at(c).unwrap_or(0) as u32;
                (size, c)
            }
        };
        self.free.remove(&(size, off));
        let rest = size - total;
        let used = if rest >= 8 {
            let r = off + total;
            self.write_size(r, rest);
            self.free.insert((rest, r));
            total
        } else {
            size
        };
        if let Some(b) = self.bytes_mut(off, used as usize) {
            wr32(b, 0, (used as i32).wrapping_neg() as u32);
            if let Some(s) = b.get_mut(4..used as usize) {
                s.fill(0);
            }
        }
        Ok(off)
    }

    /// Frees a cell, coalescing it with free neighbours in the same bin.
    pub(crate) fn free_cell(&mut self, off: u32) -> Result<()> {
        let size = match self.size_at(off) {
            Some(s) if s < 0 => s.unsigned_abs(),
            _ => return corrupt(off, "freeing a cell that is not allocated"),
        };
        let (bs, bz) = match self.bin_of(off) {
            Some(b) => b,
            None => return corrupt(off, "freeing a cell outside every hive bin"),
        };
        let mut start = off;
        let mut len = size;
        // Next neighbour.
        let next = off.saturating_add(size);
        if next < bs + bz {
            if let Some(ns) = self.size_at(next) {
                if ns > 0 && self.free.remove(&(ns as u32, next)) {
                    len += ns as u32;
                }
            }
        }
        // Previous neighbour: walk the bin.
        let mut p = bs + 32;
        while p < off {
            let s = match self.size_at(p) {
                Some(s) if s != 0 => s,
                _ => break,
            };
            let z = s.unsigned_abs();
            if p.checked_add(z) == Some(off) {
                if s > 0 && self.free.remove(&(z, p)) {
                    start = p;
                    len += z;
                }
                break;
            }
            p = match p.checked_add(z) {
                Some(n) => n,
                None => break,
            };
        }
        self.write_size(start, len);
        self.free.insert((len, start));
        Ok(())
    }

    /// Parses the hive bins of `data` (stable storage) into bins and indexes its free cells.
    pub(crate) fn parse(data: &[u8]) -> Result<Space> {
        let mut sp = Space::default();
        let mut pos = 0usize;
        while pos < data.len() {
            let p32 = pos as u32;
            if data.get(pos..pos + 4) != Some(b"hbin") {
                return corrupt(p32, "hive bin signature is not \"hbin\"");
            }
            let off = rd32(data, pos + 4).unwrap_or(NIL);
            if off as usize != pos {
                return corrupt(p32, alloc::format!("hive bin offset field is 0x{:x}", off));
            }
            let size = rd32(data, pos + 8).unwrap_or(0) as usize;
            if size < PAGE || !size.is_multiple_of(PAGE) || pos + size > data.len() {
                return corrupt(p32, alloc::format!("bad hive bin size 0x{:x}", size));
            }
            let mut c = pos + 32;
            while c < pos + size {
                let s = rd32(data, c).unwrap_or(0) as i32;
                let z = s.unsigned_abs() as usize;
                if z < 8 || !z.is_multiple_of(8) || c + z > pos + size {
                    return corrupt(c as u32, alloc::format!("bad cell size {}", s));
                }
                if s > 0 {
                    sp.free.insert((z as u32, c as u32));
                }
                c += z;
            }
            sp.push_bin(size, Some(&data[pos..pos + size]), 0)?;
            pos += size;
        }
        sp.clear_dirty();
        Ok(sp)
    }

    /// The whole space as one buffer (the hive bins as written to a file).
    pub(crate) fn image(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.try_reserve_exact(self.len()).map_err(no_memory)?;
        for b in &self.bins {
            out.extend_from_slice(&b.data);
        }
        Ok(out)
    }
}

impl Hive {
    pub(crate) fn space(&self, off: u32) -> (&Space, u32) {
        if off & VOLATILE_BIT != 0 {
            (&self.volatile, off & !VOLATILE_BIT)
        } else {
            (&self.stable, off)
        }
    }

    /// The data of the allocated cell at `off` (after the size field, including padding).
    pub fn cell(&self, off: u32) -> Result<&[u8]> {
        match self.cell_fast(off) {
            Some(d) => Ok(d),
            None => self.cell_error(off),
        }
    }

    /// The cell map walk of [`Hive::cell`] (hot: every hive access goes through it).
    #[inline]
    fn cell_fast(&self, off: u32) -> Option<&[u8]> {
        let (sp, o) = self.space(off);
        let bin = sp.bins.get(*sp.pages.get(o as usize / PAGE)? as usize)?;
        let local = o.checked_sub(bin.start)? as usize;
        let b = bin.data.get(local..)?;
        let s = i32::from_le_bytes(b.get(..4)?.try_into().ok()?);
        if s >= 0 {
            return None;
        }
        let z = s.unsigned_abs() as usize;
        if z < 8 {
            return None;
        }
        b.get(4..z)
    }

    #[cold]
    fn cell_error(&self, off: u32) -> Result<&[u8]> {
        let (sp, o) = self.space(off);
        let Some(b) = sp.bytes(o) else {
            return corrupt(off, "cell offset beyond the hive bins");
        };
        let s = match rd32(b, 0) {
            Some(s) => s as i32,
            None => return corrupt(off, "cell offset beyond the hive bins"),
        };
        if s >= 0 {
            return corrupt(off, "cell is not allocated");
        }
        corrupt(
            off,
            alloc::format!("cell size {} runs past the hive bins", s),
        )
    }

    /// The data of the allocated cell at `off`, for writing; its pages become dirty.
    pub(crate) fn cell_mut(&mut self, off: u32) -> Result<&mut [u8]> {
        let len = self.cell(off)?.len();
        let sp = if off & VOLATILE_BIT != 0 {
            &mut self.volatile
        } else {
            &mut self.stable
        };
        let o = off & !VOLATILE_BIT;
        match sp.bytes_mut(o, len + 4) {
            Some(b) => Ok(&mut b[4..4 + len]),
            None => corrupt(off, "cell offset beyond the hive bins"),
        }
    }

    pub(crate) fn alloc(&mut self, volatile: bool, len: usize) -> Result<u32> {
        if volatile {
            Ok(self.volatile.alloc(len, self.now)? | VOLATILE_BIT)
        } else {
            self.stable.alloc(len, self.now)
        }
    }

    pub(crate) fn free(&mut self, off: u32) -> Result<()> {
        if off & VOLATILE_BIT != 0 {
            self.volatile.free_cell(off & !VOLATILE_BIT)
        } else {
            self.stable.free_cell(off)
        }
    }

    pub(crate) fn alloc_bytes(&mut self, volatile: bool, bytes: &[u8]) -> Result<u32> {
        let c = self.alloc(volatile, bytes.len())?;
        self.cell_mut(c)?[..bytes.len()].copy_from_slice(bytes);
        Ok(c)
    }

    /// The address in memory of the data of cell `off` (what `!reg` prints as a key node
    /// address).
    pub fn cell_address(&self, off: u32) -> Option<usize> {
        self.cell(off).ok().map(|d| d.as_ptr() as usize)
    }

    /// The cell whose data starts at memory address `addr` (the inverse of
    /// [`Hive::cell_address`]).
    pub fn cell_at_address(&self, addr: usize) -> Option<u32> {
        for (space, bit) in [(&self.stable, 0), (&self.volatile, VOLATILE_BIT)] {
            for b in &space.bins {
                let base = b.data.as_ptr() as usize;
                if addr >= base + 4 && addr < base + b.data.len() {
                    let off = (b.start + (addr - base) as u32 - 4) | bit;
                    return self.cell_address(off).filter(|&a| a == addr).map(|_| off);
                }
            }
        }
        None
    }

    /// Bytes of volatile storage.
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Limits the growth of each storage space to `bytes` (rounded down to whole pages):
    /// allocations that would need more fail with `STATUS_INSUFFICIENT_RESOURCES` and change
    /// nothing (the quota a configuration manager puts on a hive; also how tests provoke a
    /// failed growth).
    pub fn set_size_limit(&mut self, bytes: u32) {
        let l = (bytes / PAGE as u32 * PAGE as u32).min(MAX_SPACE);
        self.stable.limit = l;
        self.volatile.limit = l;
    }

    /// Offsets (in the hive bins) of the stable pages changed since the last
    /// [`Hive::clear_dirty`], ascending.
    pub fn dirty_pages(&self) -> Vec<u32> {
        self.stable.dirty_pages().collect()
    }

    /// Whether any stable page changed since the last [`Hive::clear_dirty`].
    pub fn is_dirty(&self) -> bool {
        self.stable.dirty_pages().next().is_some()
    }

    /// The stable 4 KiB page at `off` (a page offset from [`Hive::dirty_pages`]).
    pub fn stable_page(&self, off: u32) -> Option<&[u8]> {
        self.stable.page(off)
    }

    /// Forgets the dirty pages (the files now hold the stable storage).
    pub fn clear_dirty(&mut self) {
        self.stable.clear_dirty();
    }

    /// Marks every stable page dirty.
    pub fn mark_all_dirty(&mut self) {
        self.stable.mark_all_dirty();
    }
}
