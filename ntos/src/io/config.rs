//! `IoGetConfigurationInformation`: the system's device counts
//! (`CONFIGURATION_INFORMATION`, ntddk.h). Class drivers number their
//! devices from it and update it as they find devices, as on Windows
//! (disk.sys: `DiskCount` → `\Device\Harddisk<n>`). One record for the
//! system, in nonpaged kernel memory; updates are the drivers' (Windows
//! serializes them by the PnP manager calling AddDevice one at a time,
//! as ntrs does).

use core::cell::UnsafeCell;
use wdk::scsi::CONFIGURATION_INFORMATION;

struct Config(UnsafeCell<CONFIGURATION_INFORMATION>);

// SAFETY: the record is shared with drivers as on Windows: it is written by
// class drivers during AddDevice (serialized by the PnP manager) and
// otherwise only read.
unsafe impl Sync for Config {}

static CONFIG: Config = Config(UnsafeCell::new(CONFIGURATION_INFORMATION {
    DiskCount: 0,
    FloppyCount: 0,
    CdRomCount: 0,
    TapeCount: 0,
    ScsiPortCount: 0,
    SerialCount: 0,
    ParallelCount: 0,
    AtDiskPrimaryAddressClaimed: 0,
    AtDiskSecondaryAddressClaimed: 0,
    Version: core::mem::size_of::<CONFIGURATION_INFORMATION>() as u32,
    MediumChangerCount: 0,
}));

/// `IoGetConfigurationInformation`: the system's record.
pub fn io_get_configuration_information() -> *mut CONFIGURATION_INFORMATION {
    CONFIG.0.get()
}

/// The disk count now (for tests and kd).
pub fn disk_count() -> u32 {
    // SAFETY: a plain read of an aligned u32 in the static record; writers
    // are the serialized AddDevice routines.
    unsafe { core::ptr::read_volatile(&raw const (*CONFIG.0.get()).DiskCount) }
}

/// `IoGetConfigurationInformation` export.
#[no_mangle]
#[allow(non_snake_case)]
pub extern "system" fn IoGetConfigurationInformation() -> *mut CONFIGURATION_INFORMATION {
    io_get_configuration_information()
}
