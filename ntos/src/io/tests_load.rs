//! Boot tests of driver loading: the boot's load results (null.sys
//! loaded, the broken images logged and skipped), NtLoadDriver /
//! NtUnloadDriver / reload of ntrstest.sys with no leaked pool, a failing
//! DriverEntry that leaves nothing behind, and null.sys's semantics.

use super::load::*;
use crate::ex::xpool::nonpaged_usage;
use crate::ktest::{check, Test, TestResult};
use crate::mm::ldr::loaded_modules;
use crate::mm::map::system_ptes_in_use;
use crate::ob::object::Mode;
use alloc::vec::Vec;
use nt::status::*;
use wdk::*;

const TEST_KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntrstest";
const FAIL_KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntrsfail";
const NULL_KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\Null";

fn exists(path: &str) -> bool {
    matches!(
        crate::ob::with_namespace(|ns| ns.lookup(path, ::ob::OBJ_CASE_INSENSITIVE, None)),
        Ok(::ob::namespace::Lookup::Found(_))
    )
}

fn module_loaded(name: &str) -> bool {
    loaded_modules()
        .iter()
        .any(|m| m.base_dll_name.eq_ignore_ascii_case(name))
}

/// Outstanding nonpaged allocations of the tags a driver load touches
/// (the driver's own 'Ntst', the I/O manager's driver, device and name
/// tags), and the system PTEs in use (the image).
fn footprint() -> (Vec<u64>, u64) {
    let tags = [*b"Ntst", *b"Driv", *b"Devi", *b"IoNm"];
    (
        tags.iter()
            .map(|t| nonpaged_usage(u32::from_le_bytes(*t)).1)
            .collect(),
        system_ptes_in_use(),
    )
}

fn t_boot_results() -> TestResult {
    check(
        boot_result("Null") == Some(STATUS_SUCCESS) && loaded_driver("Null").is_some(),
        "null.sys (system start) was not loaded at boot",
    )?;
    check(exists("\\Driver\\Null"), "no \\Driver\\Null")?;
    check(
        module_loaded("null.sys"),
        "null.sys not in PsLoadedModuleList",
    )?;
    check(
        boot_result("ntrsbadhdr") == Some(STATUS_INVALID_IMAGE_FORMAT),
        "the corrupt image's failure was not STATUS_INVALID_IMAGE_FORMAT",
    )?;
    check(
        boot_result("ntrsnoimp") == Some(STATUS_DRIVER_ENTRYPOINT_NOT_FOUND),
        "the missing import's failure was not STATUS_DRIVER_ENTRYPOINT_NOT_FOUND",
    )?;
    check(
        boot_result("Beep") == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "Beep (no image file) was not STATUS_OBJECT_NAME_NOT_FOUND",
    )?;
    check(
        !exists("\\Driver\\ntrsbadhdr") && !exists("\\Driver\\ntrsnoimp"),
        "a failed driver left its driver object",
    )?;
    check(
        boot_result("ntrstest").is_none(),
        "a demand-start driver was loaded at boot",
    )
}

fn t_load_unload_reload_no_leak() -> TestResult {
    let before = footprint();
    let ntst = u32::from_le_bytes(*b"Ntst");
    for round in 0..2 {
        check(
            nt_load_driver(TEST_KEY, Mode::KernelMode) == STATUS_SUCCESS,
            "NtLoadDriver(ntrstest) failed",
        )?;
        check(exists("\\Driver\\ntrstest"), "no \\Driver\\ntrstest")?;
        check(module_loaded("ntrstest.sys"), "ntrstest.sys not in lm")?;
        check(
            nonpaged_usage(ntst).1 == before.0[0] + 1,
            "DriverEntry's 'Ntst' block is not outstanding",
        )?;
        check(
            nt_load_driver(TEST_KEY, Mode::KernelMode) == STATUS_IMAGE_ALREADY_LOADED,
            "a second NtLoadDriver was not STATUS_IMAGE_ALREADY_LOADED",
        )?;
        check(
            nt_unload_driver(TEST_KEY, Mode::KernelMode) == STATUS_SUCCESS,
            "NtUnloadDriver(ntrstest) failed",
        )?;
        check(!exists("\\Driver\\ntrstest"), "\\Driver\\ntrstest left")?;
        check(!module_loaded("ntrstest.sys"), "ntrstest.sys still in lm")?;
        // The last reference to the driver object (whose delete procedure
        // unmaps the image) may go on another processor a little after
        // NtUnloadDriver returns, and other threads map and unmap system
        // PTEs meanwhile: wait up to 1 s for the footprint to come back.
        check(
            crate::ktest::wait_until(1000, || footprint() == before),
            if round == 0 {
                "pool or system PTEs leaked by load+unload"
            } else {
                "pool or system PTEs leaked by reload+unload"
            },
        )?;
    }
    check(
        nt_unload_driver(TEST_KEY, Mode::KernelMode) == STATUS_OBJECT_NAME_NOT_FOUND,
        "unloading a driver not loaded was not STATUS_OBJECT_NAME_NOT_FOUND",
    )?;
    check(
        nt_load_driver(
            "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\NoSuchDriver",
            Mode::KernelMode,
        ) == STATUS_OBJECT_NAME_NOT_FOUND,
        "a missing service key was not STATUS_OBJECT_NAME_NOT_FOUND",
    )
}

fn t_failing_driver_entry_leaves_nothing() -> TestResult {
    let before = footprint();
    check(
        nt_load_driver(FAIL_KEY, Mode::KernelMode) == STATUS_UNSUCCESSFUL,
        "NtLoadDriver(ntrsfail) did not return DriverEntry's status",
    )?;
    check(
        !exists("\\Device\\NtrsFail"),
        "the failed driver's device is left",
    )?;
    check(
        !exists("\\Driver\\ntrsfail"),
        "the failed driver's object is left",
    )?;
    check(
        !module_loaded("ntrsfail.sys"),
        "the failed driver's image is left",
    )?;
    check(footprint() == before, "the failed load leaked pool or PTEs")
}

fn t_null_device() -> TestResult {
    use super::file::{nt_open_file, nt_read_file, nt_write_file, RequestArgs};
    let h = nt_open_file(
        "\\Device\\Null",
        FILE_GENERIC_READ | FILE_GENERIC_WRITE,
        ::ob::OBJ_CASE_INSENSITIVE,
        0,
        FILE_SYNCHRONOUS_IO_NONALERT,
        Mode::KernelMode,
    )
    .map_err(|_| "cannot open \\Device\\Null")?;
    let mut iosb = IO_STATUS_BLOCK {
        Status: STATUS_PENDING,
        Information: 99,
    };
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: Mode::KernelMode,
    };
    let mut buf = [0xA5u8; 64];
    let r = nt_read_file(h, &args, buf.as_mut_ptr().cast(), 64, None, 0);
    let read_status = r.unwrap_or_else(|e| e);
    // An error completed at once is the service's result; NT leaves the
    // status block alone then. Nothing was transferred.
    let read_ok = read_status == STATUS_END_OF_FILE
        && iosb.Status == STATUS_PENDING
        && iosb.Information == 99
        && buf == [0xA5; 64];
    iosb.Information = 0;
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: Mode::KernelMode,
    };
    let w = nt_write_file(h, &args, buf.as_mut_ptr().cast(), 40, None, 0);
    let write_ok =
        w == Ok(STATUS_SUCCESS) && iosb.Status == STATUS_SUCCESS && iosb.Information == 40;
    let _ = crate::ob::handle::nt_close(h);
    check(
        read_ok,
        "a read of \\Device\\Null was not STATUS_END_OF_FILE with 0 bytes",
    )?;
    check(
        write_ok,
        "a write to \\Device\\Null did not take every byte",
    )?;
    check(
        nt_unload_driver(NULL_KEY, Mode::KernelMode) == STATUS_INVALID_DEVICE_REQUEST,
        "unloading null.sys (no DriverUnload) was not STATUS_INVALID_DEVICE_REQUEST",
    )?;
    check(
        loaded_driver("Null").is_some() && exists("\\Device\\Null"),
        "null.sys went away after a refused unload",
    )
}

/// What the debug print callback saw (the test's capture of the debug
/// output path).
static CAPTURE: crate::ke::irql::SpinLocked<([u8; 2048], usize), { crate::ke::HIGH_LEVEL }> =
    crate::ke::irql::SpinLocked::new(([0; 2048], 0));

unsafe extern "system" fn capture(s: *const crate::kd::print::AnsiString, _c: u32, _l: u32) {
    // SAFETY: the print path passes a STRING over its message buffer, valid
    // for the call.
    let msg = unsafe { core::slice::from_raw_parts((*s).buffer, (*s).length as usize) };
    CAPTURE.with(|(buf, len)| {
        let n = msg.len().min(buf.len() - *len);
        buf[*len..*len + n].copy_from_slice(&msg[..n]);
        *len += n;
    });
}

fn captured() -> alloc::string::String {
    CAPTURE.with(|(buf, len)| alloc::string::String::from_utf8_lossy(&buf[..*len]).into_owned())
}

fn clear_capture() {
    CAPTURE.with(|(_, len)| *len = 0);
}

extern "C" {
    fn DbgPrint(format: *const u8, ...) -> u32;
    fn DbgPrintEx(component: u32, level: u32, format: *const u8, ...) -> u32;
}

fn t_dbgprint_driver_arguments() -> TestResult {
    use crate::kd::print::*;
    use nt::dpfltr::*;
    check(
        DbgSetDebugPrintCallback(Some(capture), 1) == 0,
        "DbgSetDebugPrintCallback(Enable) failed",
    )?;
    let r = dbgprint_checks();
    let _ = DbgSetDebugPrintCallback(Some(capture), 0);
    set_component_mask(DPFLTR_IHVDRIVER_ID, 0);
    r?;
    check(
        DbgSetDebugPrintCallback(Some(capture), 0) == STATUS_INVALID_PARAMETER.as_u32(),
        "removing a callback twice was not STATUS_INVALID_PARAMETER",
    )
}

fn dbgprint_checks() -> TestResult {
    use crate::kd::print::*;
    use nt::dpfltr::*;
    let saved = component_mask(DPFLTR_IHVDRIVER_ID);
    set_component_mask(DPFLTR_IHVDRIVER_ID, 0);
    // The driver's DriverEntry prints with arguments (ntrstest.sys).
    clear_capture();
    check(
        nt_load_driver(TEST_KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "NtLoadDriver(ntrstest) failed",
    )?;
    let _ = nt_unload_driver(TEST_KEY, Mode::KernelMode);
    let out = captured();
    check(
        out.contains(
            "ntrstest: args -42 42 0xff 00007 k  | FFFFF80012345678 -9223372036854775808 abc wide \\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntrstest %\n",
        ),
        "the driver's DbgPrintEx line was not formatted as Windows formats it",
    )?;
    check(
        out.contains("ntrstest: DbgPrint default 7\n"),
        "the driver's DbgPrint line (DEFAULT component, INFO level) is missing",
    )?;
    check(
        !out.contains("trace level"),
        "a TRACE-level DbgPrintEx went out with Kd_IHVDRIVER_Mask 0",
    )?;
    // DbgSetDebugFilterState turns the driver's trace level on.
    check(
        DbgSetDebugFilterState(DPFLTR_IHVDRIVER_ID, DPFLTR_TRACE_LEVEL, 1) == 0
            && DbgQueryDebugFilterState(DPFLTR_IHVDRIVER_ID, DPFLTR_TRACE_LEVEL) == 1
            && DbgQueryDebugFilterState(DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL) == 0
            && DbgQueryDebugFilterState(DPFLTR_ENDOFTABLE_ID, 0)
                == STATUS_INVALID_PARAMETER_1.as_u32(),
        "DbgSetDebugFilterState/DbgQueryDebugFilterState",
    )?;
    clear_capture();
    check(
        nt_load_driver(TEST_KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "NtLoadDriver(ntrstest) failed the second time",
    )?;
    let _ = nt_unload_driver(TEST_KEY, Mode::KernelMode);
    check(
        captured().contains("ntrstest: trace level 2\n"),
        "the TRACE-level line did not go out once its bit was set",
    )?;
    set_component_mask(DPFLTR_IHVDRIVER_ID, saved);
    // Bad and NULL pointers never fault; a mask level; the 512-byte cut.
    clear_capture();
    let bad_kernel = 0xFFFF_F900_0000_0000u64;
    // SAFETY: the arguments match the conversions; the bad pointers are
    // only ever checked by the print path, never dereferenced.
    unsafe {
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID,
            DPFLTR_ERROR_LEVEL,
            c"k:%s|%s|%wZ|%S|%s|%-6x|%c\n".as_ptr().cast(),
            0usize,
            bad_kernel,
            bad_kernel,
            0x1000usize,
            c"ok".as_ptr(),
            0xabu32,
            b'!' as i32,
        );
        DbgPrintEx(DPFLTR_SYSTEM_ID, 0x30, c"k:mask %d\n".as_ptr().cast(), 1i32);
        DbgPrintEx(DPFLTR_SYSTEM_ID, 0x31, c"k:mask %d\n".as_ptr().cast(), 2i32);
        DbgPrint(c"k:%0600d\n".as_ptr().cast(), 5i32);
        // The cut message has no line end of its own.
        DbgPrint(c"\n".as_ptr().cast());
    }
    let out = captured();
    check(
        out.contains("k:(null)|(invalid)|(invalid)|(invalid)|ok|ab    |!\n"),
        "NULL/unmapped/user pointers were not printed as (null)/(invalid)",
    )?;
    check(
        !out.contains("k:mask 1") && out.contains("k:mask 2"),
        "a mask level (> 31) was not filtered against Kd_WIN2000_Mask",
    )?;
    let long = out
        .find("k:0000")
        .map(|i| out[i..].trim_end_matches('\n'))
        .unwrap_or("");
    check(
        long.len() == MAX_MESSAGE && long.bytes().all(|b| b == b':' || b == b'k' || b == b'0'),
        "a long message was not cut at 512 bytes",
    )
}

/// What ntrstest.sys's `IOCTL_NTRSTEST_TIMERS` reports (drivers/ntrstest/
/// src/timertest.rs declares the same layout).
#[repr(C)]
#[derive(Default, Debug)]
struct TimerReport {
    state_initial: u32,
    set_was_set: u32,
    periodic_wait: u32,
    periodic_runs: u32,
    dpc_irqls: u32,
    state_after: u32,
    cancel_periodic: u32,
    runs_at_cancel: u32,
    runs_later: u32,
    cancel_again: u32,
    oneshot_wait: u32,
    oneshot_runs: u32,
    oneshot_cancel: u32,
    oneshot_state: u32,
    early_cancel: u32,
    early_state: u32,
    early_runs: u32,
    reset_was_set: u32,
}

fn timer_report() -> Result<TimerReport, &'static str> {
    use super::file::{nt_device_io_control_file, nt_open_file, RequestArgs};
    let h = nt_open_file(
        "\\Device\\NtrsTestFile",
        FILE_GENERIC_READ,
        ::ob::OBJ_CASE_INSENSITIVE,
        0,
        FILE_SYNCHRONOUS_IO_NONALERT,
        Mode::KernelMode,
    )
    .map_err(|_| "cannot open \\Device\\NtrsTestFile")?;
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: Mode::KernelMode,
    };
    let mut r = TimerReport::default();
    let n = core::mem::size_of::<TimerReport>() as u32;
    let s = nt_device_io_control_file(
        h,
        &args,
        0x0022_2000,
        core::ptr::null_mut(),
        0,
        (&mut r as *mut TimerReport).cast(),
        n,
    );
    let _ = crate::ob::handle::nt_close(h);
    check(
        s == Ok(STATUS_SUCCESS) && iosb.Status == STATUS_SUCCESS && iosb.Information == n as usize,
        "IOCTL_NTRSTEST_TIMERS failed",
    )?;
    Ok(r)
}

/// A driver's KTIMERs through the ntoskrnl exports: a periodic timer whose
/// DPC runs at DISPATCH_LEVEL every period until KeCancelTimer, a one-shot
/// timer reset while set and firing once, one cancelled before it is due.
fn t_driver_ktimer() -> TestResult {
    check(
        nt_load_driver(TEST_KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "NtLoadDriver(ntrstest) failed",
    )?;
    let r = timer_report();
    check(
        nt_unload_driver(TEST_KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "NtUnloadDriver(ntrstest) failed",
    )?;
    let r = r?;
    crate::dbg_println!("io.driver.ktimer: {r:?}");
    check(r.state_initial == 0, "a new timer reads signaled")?;
    check(
        r.set_was_set == 0,
        "KeSetTimerEx of a new timer said it was set",
    )?;
    check(
        r.periodic_wait == STATUS_SUCCESS.0 as u32 && r.periodic_runs >= 3,
        "the periodic timer's DPC did not run 3 times within 5 s",
    )?;
    check(
        r.dpc_irqls == 1 << 2,
        "a timer DPC ran below or above DISPATCH_LEVEL",
    )?;
    check(
        r.state_after == 1,
        "an expired timer does not read signaled",
    )?;
    check(
        r.cancel_periodic == 1,
        "KeCancelTimer of a periodic timer said it was not set",
    )?;
    check(
        r.runs_later == r.runs_at_cancel,
        "the periodic DPC ran after KeCancelTimer",
    )?;
    check(
        r.cancel_again == 0,
        "a second KeCancelTimer said the timer was set",
    )?;
    check(
        r.reset_was_set == 1,
        "KeSetTimer of a set timer did not say so",
    )?;
    check(
        r.oneshot_wait == STATUS_SUCCESS.0 as u32 && r.oneshot_runs == 1,
        "the one-shot timer's DPC did not run exactly once",
    )?;
    check(
        r.oneshot_cancel == 0 && r.oneshot_state == 1,
        "an expired one-shot timer was still set or not signaled",
    )?;
    check(
        r.early_cancel == 1 && r.early_state == 0 && r.early_runs == 0,
        "a timer cancelled before its due time fired or was not set",
    )
}

/// The image goes with the driver object's last reference, not earlier: a
/// file open on the driver's device keeps the (deleted) device, the driver
/// object and the image after NtUnloadDriver; closing it unmaps the image,
/// leaving no pool, system PTEs or pages behind; a reload then works.
fn t_image_unloaded_with_last_reference() -> TestResult {
    use super::file::nt_open_file;
    let active = || crate::mm::pfn::counts().map_or(0, |c| c.active);
    let pages_before = active();
    let before = footprint();
    check(
        nt_load_driver(TEST_KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "NtLoadDriver(ntrstest) failed",
    )?;
    let h = nt_open_file(
        "\\Device\\NtrsTestFile",
        FILE_GENERIC_READ,
        ::ob::OBJ_CASE_INSENSITIVE,
        0,
        FILE_SYNCHRONOUS_IO_NONALERT,
        Mode::KernelMode,
    );
    let unloaded = nt_unload_driver(TEST_KEY, Mode::KernelMode);
    let kept = module_loaded("ntrstest.sys");
    let name_gone = !exists("\\Driver\\ntrstest");
    let reload = nt_load_driver(TEST_KEY, Mode::KernelMode);
    if let Ok(h) = h {
        let _ = crate::ob::handle::nt_close(h);
    }
    h.map_err(|_| "cannot open \\Device\\NtrsTestFile")?;
    check(
        unloaded == STATUS_SUCCESS,
        "NtUnloadDriver(ntrstest) failed",
    )?;
    check(name_gone, "\\Driver\\ntrstest still named after unload")?;
    check(
        kept,
        "the image was unmapped while a file on its device was open",
    )?;
    check(
        reload == STATUS_IMAGE_ALREADY_LOADED,
        "a reload while the old image was mapped was not STATUS_IMAGE_ALREADY_LOADED",
    )?;
    check(
        crate::ktest::wait_until(2000, || !module_loaded("ntrstest.sys")),
        "the image stayed after the last file closed",
    )?;
    check(
        crate::ktest::wait_until(2000, || footprint() == before),
        "pool or system PTEs leaked by the deferred unload",
    )?;
    check(
        nt_load_driver(TEST_KEY, Mode::KernelMode) == STATUS_SUCCESS
            && nt_unload_driver(TEST_KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "reload+unload after the deferred unload failed",
    )?;
    check(
        footprint() == before,
        "pool or system PTEs leaked by reload+unload",
    )?;
    // The image is more than 4 pages; the pool may keep a page or two.
    check(
        active() <= pages_before + 4,
        "physical pages leaked by load+unload",
    )
}

/// Boot tests of driver loading.
pub const TESTS: &[Test] = &[
    ("io.load.boot_results", t_boot_results),
    (
        "io.load.load_unload_reload_no_leak",
        t_load_unload_reload_no_leak,
    ),
    (
        "io.load.failing_driver_entry_leaves_nothing",
        t_failing_driver_entry_leaves_nothing,
    ),
    ("io.load.null_device", t_null_device),
    ("io.dbgprint.driver_arguments", t_dbgprint_driver_arguments),
    ("io.driver.ktimer", t_driver_ktimer),
    (
        "io.load.image_unloaded_with_last_reference",
        t_image_unloaded_with_last_reference,
    ),
];
