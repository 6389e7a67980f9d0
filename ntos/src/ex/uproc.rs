//! User processes from the kernel's side (issue 15, items 1 and 6): the
//! user image winload handed over (`boot_image`), starting a user process
//! from the kernel (`create_user_process`, `run_to_exit` for the boot tests
//! and benchmarks), what user processes displayed (`NtDisplayString`, for
//! the tests), and the executive's user exception handler.
//!
//! The processes are the process manager's: each has its own `EPROCESS`,
//! `KPROCESS`, address space and handle table (`ps::create`).

use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use crate::ps::{EProcess, EThread};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use nt::status::*;
use nt::NtStatus;

/// What processes started by `run_to_exit` (and their children) displayed,
/// by process id.
static OUTPUT: SpinLocked<BTreeMap<u32, String>, DISPATCH_LEVEL> = SpinLocked::new(BTreeMap::new());

/// The bytes of a user image winload handed over (`System32\<name>`).
pub fn boot_image(name: &str) -> Option<&'static [u8]> {
    // SAFETY: the boot file array and the files live in loader pages the
    // kernel never frees.
    let files = unsafe { crate::rtl::loader_block().boot_driver_files() };
    files.iter().find_map(|f| {
        // SAFETY: as above.
        let path = unsafe { f.file_path.as_str() };
        let file = path.rsplit('\\').next().unwrap_or(path);
        // SAFETY: as above.
        file.eq_ignore_ascii_case(name)
            .then(|| unsafe { f.bytes() })
    })
}

/// Creates a process (a child of the current one, normally System) from
/// the PE file `image` and starts its initial thread at the image's entry
/// point with the PEB as its argument (a native image's
/// `NtProcessStartup(PPEB)`). Returns the process and thread, each object
/// referenced once for the caller.
pub fn create_user_process(
    image: &[u8],
    image_path: &str,
    command_line: &str,
) -> Result<(Arc<EProcess>, Arc<EThread>), NtStatus> {
    let params = crate::ps::create::ProcessParameters::new(image_path, command_line);
    let (p, t) = crate::ps::create::ps_create_user_process(None, false, image, &params, 0)?;
    crate::ps::resume_thread(&t);
    Ok((p, t))
}

/// `NtTerminateProcess(NtCurrentProcess(), status)`.
pub fn terminate_current_process(status: NtStatus) -> ! {
    if let Some(p) = crate::ps::current_process() {
        let _ = crate::ps::terminate_process_others(&p, status);
    }
    crate::ps::ps_terminate_current_thread(status)
}

/// The executive's user exception handler (`KiDispatchException` for
/// PreviousMode UserMode): without a user-mode dispatcher (ntdll) the
/// exception is unhandled, which ends the process with its code (as an
/// unhandled exception does on NT).
fn user_exception(frame: &mut crate::ke::trap::KTrapFrame, status: u32, address: u64) {
    crate::dbg_println!(
        "user: unhandled exception {status:#010x} at {:#x} (address {address:#x}); ending process {:#x}",
        frame.rip,
        crate::ps::ps_get_current_process_id()
    );
    crate::hal::restore_interrupts(0x200);
    terminate_current_process(NtStatus(status as i32))
}

/// Registers the executive's part of user mode (phase 1): the user
/// exception handler and the service table.
pub fn initialize() {
    crate::ke::user::register_user_exception_handler(user_exception);
    super::services::initialize();
}

/// Appends displayed text to the record of the current process (or of
/// its parent, for children of a process `run_to_exit` started).
pub fn record_output(text: &str) {
    let (pid, parent) =
        crate::ps::with_current_process(|p| p.map_or((0, 0), |p| (p.pid(), p.inherited_from)));
    OUTPUT.with(|m| {
        let o = match m.get_mut(&pid) {
            Some(o) => o,
            None => match m.get_mut(&parent) {
                Some(o) => o,
                None => return,
            },
        };
        if o.len() < 64 * 1024 {
            o.push_str(text);
            o.push('\n');
        }
    });
}

/// Runs the boot image `name` (`System32\<name>`) with `arguments` to its
/// end, waiting at most `timeout_ms` for its process object; returns its
/// exit status and what it displayed. STATUS_OBJECT_NAME_NOT_FOUND when
/// winload did not hand the image over, STATUS_TIMEOUT when it did not end
/// (it is terminated then).
pub fn run_to_exit(
    name: &str,
    arguments: &str,
    timeout_ms: u64,
) -> Result<(NtStatus, String), NtStatus> {
    use crate::ob::object::Mode;
    let image = boot_image(name).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
    let params = crate::ps::create::ProcessParameters::new(
        &alloc::format!("\\SystemRoot\\System32\\{name}"),
        &alloc::format!("{name} {arguments}"),
    );
    let (p, t) = crate::ps::create::ps_create_user_process(None, false, image, &params, 0)?;
    let pid = p.pid();
    // The record exists before the process runs.
    let _tag = crate::ex::pool::PoolTag::enter(*b"Uout");
    OUTPUT.with(|m| m.insert(pid, String::new()));
    let h = crate::ob::handle::ob_insert_object_handle(
        p.object(),
        crate::ps::PROCESS_ALL_ACCESS,
        crate::ob::object::OBJ_KERNEL_HANDLE,
        Mode::KernelMode,
    );
    crate::ps::resume_thread(&t);
    crate::ob::object::ob_dereference_object(t.object());
    drop(t);
    let r = match h {
        Ok(h) => {
            let s = super::event::nt_wait_for_single_object(
                h,
                false,
                Some(timeout_ms * 10_000),
                Mode::KernelMode,
            );
            if s != STATUS_SUCCESS {
                let _ = crate::ps::terminate_process(&p, STATUS_TIMEOUT);
                let _ = super::event::nt_wait_for_single_object(
                    h,
                    false,
                    Some(1000 * 10_000),
                    Mode::KernelMode,
                );
            }
            let _ = crate::ob::handle::nt_close(h);
            if s == STATUS_SUCCESS {
                Ok(p.exit_status())
            } else {
                Err(STATUS_TIMEOUT)
            }
        }
        Err(e) => {
            let _ = crate::ps::terminate_process(&p, e);
            Err(e)
        }
    };
    let out = OUTPUT.with(|m| m.remove(&pid)).unwrap_or_default();
    r.map(|s| (s, out))
}
