//! Orderly shutdown (*Windows Internals* 7th ed., Part 2 ch. 12,
//! "Shutdown": `NtShutdownSystem` → `PopGracefulShutdown`): the
//! configuration manager flushes the hives a last time and stops writing
//! them (`CmShutdownSystem`), the cache manager writes every dirty cached
//! stream (NT: the lazy writer's final pass and
//! `CcWaitForCurrentLazyWriterActivity`), the file systems flush and
//! dismount their volumes (NT: `IoShutdownSystem` sends `IRP_MJ_SHUTDOWN` to
//! the file systems, which flush and mark their volumes clean), then the
//! HAL powers off or resets.
//!
//! ntrs differs: the only volume handled is the system volume (`C:`), which
//! is flushed (`NtFlushBuffersFile` on its root directory) and then sent
//! `FSCTL_DISMOUNT_VOLUME`; a file system that does not implement the
//! dismount yet answers STATUS_INVALID_DEVICE_REQUEST, which is reported and
//! leaves a flushed volume. No `IRP_MJ_SHUTDOWN`, no shutdown notification
//! list (`IoRegisterShutdownNotification`).

use crate::io::file::RequestArgs;
use crate::io::file::{nt_create_file, nt_flush_buffers_file, nt_fs_control_file, OpenPacket};
use crate::ob::object::{Mode, OBJ_KERNEL_HANDLE};
use core::sync::atomic::{AtomicBool, Ordering};
use nt::status::*;
use wdk::IO_STATUS_BLOCK;

/// `SHUTDOWN_ACTION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownAction {
    /// `ShutdownNoReboot`: stop (ntrs: halts after the shutdown).
    NoReboot,
    /// `ShutdownReboot`.
    Reboot,
    /// `ShutdownPowerOff`.
    PowerOff,
}

/// The orderly part ran (once per boot).
static DONE: AtomicBool = AtomicBool::new(false);

/// `PopGracefulShutdown`'s work before the power goes: hives, cache,
/// volumes. Runs once; a second call (or a call after a bugcheck, or above
/// PASSIVE_LEVEL, where no file I/O can be done) does nothing. Every step
/// reports a failure on the debug port and the next step still runs.
/// Returns whether everything succeeded.
pub fn ex_prepare_shutdown() -> bool {
    if crate::ke::bugcheck::ke_has_bugchecked() {
        crate::dbg_println!("shutdown: after a bugcheck nothing is flushed");
        return false;
    }
    if crate::ke::irql() != 0 {
        crate::dbg_println!("shutdown: not at PASSIVE_LEVEL; nothing is flushed");
        return false;
    }
    if DONE.swap(true, Ordering::AcqRel) {
        return true;
    }
    let mut ok = true;
    let s = crate::cm::cm_shutdown_system();
    if s != STATUS_SUCCESS {
        crate::dbg_println!("shutdown: the registry hives were not all flushed ({s})");
        ok = false;
    }
    if let Err(s) = crate::cc::cc_flush_all() {
        crate::dbg_println!("shutdown: the cache manager could not write everything ({s})");
        ok = false;
    }
    ok &= dismount_system_volume();
    ok
}

/// `NtShutdownSystem`: the orderly shutdown, then the action.
pub fn nt_shutdown_system(action: ShutdownAction) -> ! {
    ex_prepare_shutdown();
    // The processors stop taking ticks from here: not a hang.
    crate::ke::clock::set_watchdogs_enabled(false);
    match action {
        ShutdownAction::Reboot => crate::hal::reboot(crate::hal::acpi()),
        ShutdownAction::PowerOff => crate::hal::power_off(crate::hal::acpi()),
        ShutdownAction::NoReboot => crate::hal::halt_forever(),
    }
}

/// Flushes the system volume and asks its file system to dismount it.
/// False if the volume could not be flushed (a missing volume or a
/// dismount the file system does not implement is not a failure).
fn dismount_system_volume() -> bool {
    let h = match nt_create_file(
        "\\??\\C:\\",
        &OpenPacket {
            desired: wdk::FILE_READ_DATA | wdk::FILE_WRITE_DATA | wdk::SYNCHRONIZE,
            share: wdk::FILE_SHARE_READ | wdk::FILE_SHARE_WRITE | wdk::FILE_SHARE_DELETE,
            disposition: wdk::FILE_OPEN,
            options: wdk::FILE_SYNCHRONOUS_IO_NONALERT | wdk::FILE_DIRECTORY_FILE,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            mode: Mode::KernelMode,
        },
    ) {
        Ok((h, _)) => h,
        Err(s) => {
            crate::dbg_println!("shutdown: no system volume to dismount ({s})");
            return true;
        }
    };
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let flushed = nt_flush_buffers_file(h, &mut iosb, Mode::KernelMode).unwrap_or_else(|e| e);
    let mut ok = flushed.is_success();
    if !ok {
        crate::dbg_println!("shutdown: the system volume could not be flushed ({flushed})");
    }
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: Mode::KernelMode,
    };
    let s = nt_fs_control_file(
        h,
        &args,
        wdk::fs::FSCTL_DISMOUNT_VOLUME,
        core::ptr::null_mut(),
        0,
        core::ptr::null_mut(),
        0,
    )
    .unwrap_or_else(|e| e);
    match s {
        s if s.is_success() => crate::dbg_println!("shutdown: the system volume is dismounted"),
        STATUS_INVALID_DEVICE_REQUEST | STATUS_NOT_IMPLEMENTED => {}
        s => {
            crate::dbg_println!("shutdown: the system volume was not dismounted ({s})");
            ok = false;
        }
    }
    crate::ob::handle::nt_close(h);
    ok
}
