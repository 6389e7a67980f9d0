//! ntrsfail.sys: the boot tests' driver whose `DriverEntry` fails. It
//! creates `\Device\NtrsFail`, then returns `STATUS_UNSUCCESSFUL`: the
//! I/O manager must delete the device and the driver object, and the
//! image must be unloaded.
#![no_std]
#![warn(clippy::undocumented_unsafe_blocks)]
#![no_main]

use rt::wdk::*;

static NAME: [u16; 17] = rt::utf16("\\Device\\NtrsFail\0");

/// `DriverEntry`: creates a device, then fails.
///
/// # Safety
/// Called by the I/O manager with a valid driver object.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
) -> nt::NtStatus {
    let mut name = rt::unicode_string(&NAME);
    let mut device: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: valid driver object, name and out pointer.
    let status =
        unsafe { IoCreateDevice(driver, 0, &mut name, FILE_DEVICE_UNKNOWN, 0, 0, &mut device) };
    rt::kprintln!(
        "ntrsfail: IoCreateDevice returned {:#x}; failing DriverEntry",
        status.as_u32()
    );
    nt::status::STATUS_UNSUCCESSFUL
}
