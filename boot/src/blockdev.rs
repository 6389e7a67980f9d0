//! Partitions read through the firmware's Block I/O protocol, byte-addressed:
//! the device the NTFS reader sits on (OVMF has no NTFS driver, so the boot
//! applications read NTFS volumes themselves).

use alloc::vec;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use uefi::boot::{self, ScopedProtocol};
use uefi::proto::media::block::BlockIO;

/// One logical partition.
pub struct PartitionDevice {
    io: ScopedProtocol<BlockIO>,
    media_id: u32,
    block_size: u64,
    size: u64,
    /// One-block bounce buffer for unaligned reads.
    bounce: Vec<u8>,
}

impl PartitionDevice {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads `buf.len()` bytes at byte `offset` (any alignment).
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), NtStatus> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or(STATUS_END_OF_FILE)?;
        let bs = self.block_size;
        let mut pos = offset;
        let mut done = 0usize;
        while pos < end {
            let lba = pos / bs;
            let within = (pos % bs) as usize;
            let whole_blocks = (end - pos) / bs;
            if within == 0 && whole_blocks > 0 {
                // Read as many whole blocks as possible straight into the buffer.
                let n = (whole_blocks * bs) as usize;
                self.io
                    .read_blocks(self.media_id, lba, &mut buf[done..done + n])
                    .map_err(|_| STATUS_DEVICE_DATA_ERROR)?;
                done += n;
                pos += n as u64;
            } else {
                self.io
                    .read_blocks(self.media_id, lba, &mut self.bounce)
                    .map_err(|_| STATUS_DEVICE_DATA_ERROR)?;
                let n = ((bs as usize) - within).min((end - pos) as usize);
                buf[done..done + n].copy_from_slice(&self.bounce[within..within + n]);
                done += n;
                pos += n as u64;
            }
        }
        Ok(())
    }
}

/// Every logical partition with media present whose first sector starts
/// with `signature` at byte 3 (the OEM id: `b"NTFS    "` for NTFS).
pub fn partitions_with_oem_id(signature: &[u8; 8]) -> Vec<PartitionDevice> {
    let Ok(handles) = boot::find_handles::<BlockIO>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for h in handles {
        // Non-exclusive: an exclusive open would disconnect the firmware's
        // partition and FAT drivers (and with them the ESP's file system).
        // SAFETY: block reads through the protocol do not conflict with the
        // firmware's own (read) use; the handle outlives the boot application's use.
        let opened = unsafe {
            boot::open_protocol::<BlockIO>(
                boot::OpenProtocolParams {
                    handle: h,
                    agent: boot::image_handle(),
                    controller: None,
                },
                boot::OpenProtocolAttributes::GetProtocol,
            )
        };
        let Ok(io) = opened else {
            continue;
        };
        let m = io.media();
        if !m.is_logical_partition() || !m.is_media_present() || m.block_size() == 0 {
            continue;
        }
        let mut dev = PartitionDevice {
            media_id: m.media_id(),
            block_size: m.block_size() as u64,
            size: (m.last_block() + 1) * m.block_size() as u64,
            bounce: vec![0; m.block_size() as usize],
            io,
        };
        let mut head = [0u8; 16];
        if dev.read_at(0, &mut head).is_ok() && &head[3..11] == signature {
            out.push(dev);
        }
    }
    out
}

impl ntfs::device::BlockDevice for PartitionDevice {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> ntfs::error::Result<()> {
        PartitionDevice::read_at(self, offset, buf).map_err(|_| ntfs::error::Error::Io)
    }
    /// The boot applications never write the system volume.
    fn write_at(&mut self, _offset: u64, _buf: &[u8]) -> ntfs::error::Result<()> {
        Err(ntfs::error::Error::Unsupported(
            "the boot volume is opened read-only",
        ))
    }
}
