//! The block device the file system sits on.

use crate::error::{Error, Result};
use alloc::vec::Vec;

/// A byte-addressed block device. Implementations for sector devices
/// (UEFI `EFI_BLOCK_IO_PROTOCOL`, the kernel's disk class driver) do the
/// read-modify-write of partial sectors themselves; the file system always
/// reads and writes whole sectors for metadata, but file data may be unaligned.
pub trait BlockDevice {
    /// Size of the device in bytes.
    fn size(&self) -> u64;
    /// Reads `buf.len()` bytes at byte `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// Writes `buf` at byte `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()>;
    /// Makes earlier writes durable.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        (**self).write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
}

/// A device held in memory (tests, image building).
#[derive(Clone, Debug, Default)]
pub struct MemDevice {
    /// The bytes of the device.
    pub data: Vec<u8>,
}

impl MemDevice {
    /// A zero-filled device of `size` bytes.
    pub fn new(size: usize) -> Self {
        MemDevice {
            data: alloc::vec![0; size],
        }
    }
    /// A device over existing bytes.
    pub fn from_vec(data: Vec<u8>) -> Self {
        MemDevice { data }
    }
    fn range(&self, offset: u64, len: usize) -> Result<core::ops::Range<usize>> {
        let start = usize::try_from(offset).map_err(|_| Error::OutOfRange)?;
        let end = start.checked_add(len).ok_or(Error::OutOfRange)?;
        if end > self.data.len() {
            return Err(Error::OutOfRange);
        }
        Ok(start..end)
    }
}

impl BlockDevice for MemDevice {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let r = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        let r = self.range(offset, buf.len())?;
        self.data[r].copy_from_slice(buf);
        Ok(())
    }
}

/// A window `[start, start + len)` of another device: a partition.
#[derive(Debug)]
pub struct OffsetDevice<D> {
    /// The whole disk.
    pub inner: D,
    /// First byte of the window.
    pub start: u64,
    /// Length of the window in bytes.
    pub len: u64,
}

impl<D: BlockDevice> OffsetDevice<D> {
    /// A window of `len` bytes at `start`; fails if it does not fit the device.
    pub fn new(inner: D, start: u64, len: u64) -> Result<Self> {
        let end = start.checked_add(len).ok_or(Error::OutOfRange)?;
        if end > inner.size() {
            return Err(Error::OutOfRange);
        }
        Ok(OffsetDevice { inner, start, len })
    }
    fn map(&self, offset: u64, n: usize) -> Result<u64> {
        let end = offset.checked_add(n as u64).ok_or(Error::OutOfRange)?;
        if end > self.len {
            return Err(Error::OutOfRange);
        }
        self.start.checked_add(offset).ok_or(Error::OutOfRange)
    }
}

impl<D: BlockDevice> BlockDevice for OffsetDevice<D> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let o = self.map(offset, buf.len())?;
        self.inner.read_at(o, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        let o = self.map(offset, buf.len())?;
        self.inner.write_at(o, buf)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}

/// A device that reads and writes whole sectors only (UEFI
/// `EFI_BLOCK_IO_PROTOCOL`, a disk class driver). Wrap it in [`Sectored`]
/// to get a byte-addressed [`BlockDevice`].
pub trait SectorIo {
    /// Bytes per sector (a power of two).
    fn sector_size(&self) -> u32;
    /// Number of sectors.
    fn sectors(&self) -> u64;
    /// Reads `buf.len() / sector_size` sectors starting at `lba`.
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<()>;
    /// Writes `buf.len() / sector_size` sectors starting at `lba`.
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<()>;
    /// Makes earlier writes durable.
    fn flush_sectors(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Byte-addressed access over a [`SectorIo`]: aligned middles go straight
/// through, partial head and tail sectors are read-modify-written.
#[derive(Debug)]
pub struct Sectored<S> {
    /// The sector device.
    pub inner: S,
    scratch: Vec<u8>,
}

impl<S: SectorIo> Sectored<S> {
    /// Wraps a sector device.
    pub fn new(inner: S) -> Self {
        let ss = inner.sector_size() as usize;
        Sectored {
            inner,
            scratch: alloc::vec![0; ss],
        }
    }

    fn check(&self, offset: u64, len: usize) -> Result<()> {
        let end = offset.checked_add(len as u64).ok_or(Error::OutOfRange)?;
        if end > self.size() {
            return Err(Error::OutOfRange);
        }
        Ok(())
    }
}

impl<S: SectorIo> BlockDevice for Sectored<S> {
    fn size(&self) -> u64 {
        self.inner
            .sectors()
            .saturating_mul(self.inner.sector_size() as u64)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        let ss = self.inner.sector_size() as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let lba = pos / ss;
            let in_s = (pos % ss) as usize;
            let left = buf.len() - done;
            if in_s == 0 && left as u64 >= ss {
                let n = (left as u64 / ss * ss) as usize;
                self.inner.read_sectors(lba, &mut buf[done..done + n])?;
                done += n;
            } else {
                let mut s = core::mem::take(&mut self.scratch);
                let r = self.inner.read_sectors(lba, &mut s);
                let n = core::cmp::min(ss as usize - in_s, left);
                if r.is_ok() {
                    buf[done..done + n].copy_from_slice(&s[in_s..in_s + n]);
                }
                self.scratch = s;
                r?;
                done += n;
            }
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        let ss = self.inner.sector_size() as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let lba = pos / ss;
            let in_s = (pos % ss) as usize;
            let left = buf.len() - done;
            if in_s == 0 && left as u64 >= ss {
                let n = (left as u64 / ss * ss) as usize;
                self.inner.write_sectors(lba, &buf[done..done + n])?;
                done += n;
            } else {
                let mut s = core::mem::take(&mut self.scratch);
                let n = core::cmp::min(ss as usize - in_s, left);
                let r = self.inner.read_sectors(lba, &mut s).and_then(|_| {
                    s[in_s..in_s + n].copy_from_slice(&buf[done..done + n]);
                    self.inner.write_sectors(lba, &s)
                });
                self.scratch = s;
                r?;
                done += n;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.flush_sectors()
    }
}
