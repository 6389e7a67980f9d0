//! Storage: hive bins and cells of the stable and the volatile space, the free-cell index,
//! cell allocation (best fit, split, coalesce) and bounds-checked cell access.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::*;

/// One storage space (stable or volatile): hive bins and a free-cell index.
#[derive(Clone, Debug, Default)]
pub(crate) struct Space {
    pub(crate) data: Vec<u8>,
    /// (start, size) of each hive bin, ascending.
    pub(crate) bins: Vec<(u32, u32)>,
    /// Free cells as (size, offset).
    pub(crate) free: BTreeSet<(u32, u32)>,
}

impl Space {
    pub(crate) fn bin_of(&self, off: u32) -> Option<(u32, u32)> {
        let i = self.bins.partition_point(|&(s, _)| s <= off);
        let (s, z) = *self.bins.get(i.checked_sub(1)?)?;
        if off < s.checked_add(z)? {
            Some((s, z))
        } else {
            None
        }
    }

    pub(crate) fn size_at(&self, off: u32) -> Option<i32> {
        rd32(&self.data, off as usize).map(|v| v as i32)
    }

    pub(crate) fn add_bin(&mut self, need: u32, time: u64) -> Result<u32> {
        let start = self.data.len() as u32;
        let size = (need as usize + 32).div_ceil(PAGE) * PAGE;
        let size32 =
            u32::try_from(size).map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
        start
            .checked_add(size32)
            .ok_or(Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
        let mut hdr = [0u8; 32];
        hdr[0..4].copy_from_slice(b"hbin");
        wr32(&mut hdr, 4, start);
        wr32(&mut hdr, 8, size32);
        wr64(&mut hdr, 20, time);
        self.data.extend_from_slice(&hdr);
        self.data.resize(start as usize + size, 0);
        self.bins.push((start, size32));
        let cell = start + 32;
        wr32(&mut self.data, cell as usize, size32 - 32);
        self.free.insert((size32 - 32, cell));
        Ok(cell)
    }

    /// Allocates a cell with room for `len` data bytes; returns its offset (zero-filled data).
    pub(crate) fn alloc(&mut self, len: usize, time: u64) -> Result<u32> {
        let total = (len + 4).div_ceil(8) * 8;
        let total =
            u32::try_from(total).map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
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
            wr32(&mut self.data, r as usize, rest);
            self.free.insert((rest, r));
            total
        } else {
            size
        };
        wr32(
            &mut self.data,
            off as usize,
            (used as i32).wrapping_neg() as u32,
        );
        if let Some(s) = self.data.get_mut(off as usize + 4..(off + used) as usize) {
            s.fill(0);
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
        wr32(&mut self.data, start as usize, len);
        self.free.insert((len, start));
        Ok(())
    }

    /// Parses the hive bins of `data` (stable storage) and indexes its free cells.
    pub(crate) fn parse(data: Vec<u8>) -> Result<Space> {
        let mut sp = Space {
            data,
            bins: Vec::new(),
            free: BTreeSet::new(),
        };
        let mut pos = 0usize;
        while pos < sp.data.len() {
            let p32 = pos as u32;
            if sp.data.get(pos..pos + 4) != Some(b"hbin") {
                return corrupt(p32, "hive bin signature is not \"hbin\"");
            }
            let off = rd32(&sp.data, pos + 4).unwrap_or(NIL);
            if off as usize != pos {
                return corrupt(p32, alloc::format!("hive bin offset field is 0x{:x}", off));
            }
            let size = rd32(&sp.data, pos + 8).unwrap_or(0) as usize;
            if size < PAGE || !size.is_multiple_of(PAGE) || pos + size > sp.data.len() {
                return corrupt(p32, alloc::format!("bad hive bin size 0x{:x}", size));
            }
            let mut c = pos + 32;
            while c < pos + size {
                let s = rd32(&sp.data, c).unwrap_or(0) as i32;
                let z = s.unsigned_abs() as usize;
                if z < 8 || !z.is_multiple_of(8) || c + z > pos + size {
                    return corrupt(c as u32, alloc::format!("bad cell size {}", s));
                }
                if s > 0 {
                    sp.free.insert((z as u32, c as u32));
                }
                c += z;
            }
            sp.bins.push((pos as u32, size as u32));
            pos += size;
        }
        Ok(sp)
    }
}

impl Hive {
    // ---- cell access ----

    pub(crate) fn space(&self, off: u32) -> (&Space, usize) {
        if off & VOLATILE_BIT != 0 {
            (&self.volatile, (off & !VOLATILE_BIT) as usize)
        } else {
            (&self.stable, off as usize)
        }
    }

    /// The data of the allocated cell at `off` (after the size field, including padding).
    pub fn cell(&self, off: u32) -> Result<&[u8]> {
        let (sp, o) = self.space(off);
        let s = match rd32(&sp.data, o) {
            Some(s) => s as i32,
            None => return corrupt(off, "cell offset beyond the hive bins"),
        };
        if s >= 0 {
            return corrupt(off, "cell is not allocated");
        }
        let z = s.unsigned_abs() as usize;
        match sp.data.get(o + 4..o.saturating_add(z)) {
            Some(d) if z >= 8 => Ok(d),
            _ => corrupt(
                off,
                alloc::format!("cell size {} runs past the hive bins", s),
            ),
        }
    }

    pub(crate) fn cell_mut(&mut self, off: u32) -> Result<&mut [u8]> {
        let len = self.cell(off)?.len();
        let (sp, o) = if off & VOLATILE_BIT != 0 {
            (&mut self.volatile, (off & !VOLATILE_BIT) as usize)
        } else {
            (&mut self.stable, off as usize)
        };
        Ok(&mut sp.data[o + 4..o + 4 + len])
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
}
