//! The boot file-system interface. The boot manager and the OS loader find
//! every file through `BootFileSystem`: NTFS volumes are read with the `ntfs`
//! crate over Block I/O (OVMF has no NTFS driver), FAT volumes through the
//! firmware's Simple File System protocol.

use alloc::boxed::Box;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use uefi::boot::{self, ScopedProtocol};
use uefi::proto::media::fs::SimpleFileSystem;
use uefi::CString16;

/// A volume the boot applications can read files from.
pub trait BootFileSystem {
    /// Reads a whole file; `path` is absolute with backslashes (`\Windows\System32\ntoskrnl.exe`).
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, NtStatus>;
}

/// A FAT volume read through the firmware's Simple File System protocol.
pub struct UefiVolume {
    fs: uefi::fs::FileSystem,
    pub handle: uefi::Handle,
}

impl BootFileSystem for UefiVolume {
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, NtStatus> {
        let p = CString16::try_from(path).map_err(|_| STATUS_OBJECT_NAME_INVALID)?;
        self.fs
            .read(p.as_ref())
            .map_err(|_| STATUS_OBJECT_NAME_NOT_FOUND)
    }
}

/// An NTFS volume on a partition.
pub struct NtfsVolume {
    vol: ntfs::Volume<crate::blockdev::PartitionDevice>,
}

impl BootFileSystem for NtfsVolume {
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, NtStatus> {
        self.vol.read_file(path).map_err(|e| e.status())
    }
}

const SYSTEM_FILE: &str = "\\Windows\\System32\\ntoskrnl.exe";

/// The system volume: the first NTFS partition holding
/// `\Windows\System32\ntoskrnl.exe`, else the first such FAT volume.
pub fn find_system_volume() -> Result<Box<dyn BootFileSystem>, NtStatus> {
    for dev in crate::blockdev::partitions_with_oem_id(b"NTFS    ") {
        if let Ok(mut vol) = ntfs::Volume::open(dev) {
            if vol.lookup(SYSTEM_FILE).is_ok() {
                return Ok(Box::new(NtfsVolume { vol }));
            }
        }
    }
    find_fat_system_volume().map(|v| Box::new(v) as Box<dyn BootFileSystem>)
}

/// The first FAT volume (through the firmware) holding the kernel.
pub fn find_fat_system_volume() -> Result<UefiVolume, NtStatus> {
    let handles = boot::find_handles::<SimpleFileSystem>().map_err(|_| STATUS_NO_SUCH_DEVICE)?;
    for h in handles {
        let Ok(proto): Result<ScopedProtocol<SimpleFileSystem>, _> =
            boot::open_protocol_exclusive(h)
        else {
            continue;
        };
        let mut fs = uefi::fs::FileSystem::new(proto);
        let probe = CString16::try_from(SYSTEM_FILE).unwrap();
        if fs.try_exists(probe.as_ref()).unwrap_or(false) {
            return Ok(UefiVolume { fs, handle: h });
        }
    }
    Err(STATUS_OBJECT_NAME_NOT_FOUND)
}
