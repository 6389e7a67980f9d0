//! User processes until the process manager's objects exist (issue 15,
//! items 1 and 6): a process record with its address space, first thread,
//! exit status and what it printed (`NtDisplayString`), the start of its
//! first thread in user mode (`PspUserThreadStartup`'s part), the end of a
//! process (`NtTerminateProcess` on itself, or an unhandled user
//! exception), and the executive's user exception handler.
//!
//! ntrs deviation (temporary): there is no `EPROCESS`/`ETHREAD` yet; a
//! user thread is a thread of the System `KPROCESS` attached to the user
//! address space for its whole life, its client id is (address space id,
//! thread id), and handles it opens live in the System process's table.
//! The process manager replaces this record with its Process object.

use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use crate::mm::user::UserProcessLayout;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use nt::status::*;
use nt::NtStatus;

/// One user process.
pub struct UserProcess {
    /// Its address space (`mm::process` id), also its `UniqueProcess`.
    pub pid: u32,
    /// Its first thread.
    pub thread: AtomicU32,
    layout: SpinLocked<Option<UserProcessLayout>, DISPATCH_LEVEL>,
    exit_status: AtomicI32,
    exited: AtomicBool,
    /// What it displayed (`NtDisplayString`), for the tests.
    output: SpinLocked<String, DISPATCH_LEVEL>,
}

impl UserProcess {
    /// The exit status once the process ended.
    pub fn exit_status(&self) -> Option<NtStatus> {
        self.exited
            .load(Ordering::Acquire)
            .then(|| NtStatus(self.exit_status.load(Ordering::Relaxed)))
    }

    /// Everything it displayed so far.
    pub fn output(&self) -> String {
        self.output.with(|o| o.clone())
    }
}

/// Live and ended-but-unreaped user processes.
static PROCESSES: SpinLocked<Vec<Arc<UserProcess>>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());

/// The user process the current thread belongs to.
pub fn current() -> Option<Arc<UserProcess>> {
    let pid = crate::mm::process::current_process();
    if pid == 0 || crate::ke::sched::current_thread().teb() == 0 {
        return None;
    }
    PROCESSES.with(|l| l.iter().find(|p| p.pid == pid).cloned())
}

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

/// Creates a process from the PE file `image` and starts its first thread
/// at the image's entry point with the PEB as its argument (a native
/// image's `NtProcessStartup(PPEB)`).
pub fn create_user_process(
    image: &[u8],
    image_path: &str,
    command_line: &str,
) -> Result<Arc<UserProcess>, NtStatus> {
    let tid = crate::ke::thread::create_system_thread("user", 8, u64::MAX, user_thread_start, 0)?;
    // Until it is readied, the thread only waits in the Initialized state:
    // on failure it is readied with no process and ends at once.
    let layout =
        crate::mm::user::create_user_address_space(image, image_path, command_line, |pid| {
            (pid as u64, tid as u64)
        });
    let layout = match layout {
        Ok(l) => l,
        Err(e) => {
            let _ = crate::ke::sched::ready_thread(tid);
            return Err(e);
        }
    };
    let p = Arc::new(UserProcess {
        pid: layout.pid,
        thread: AtomicU32::new(tid),
        layout: SpinLocked::new(Some(layout)),
        exit_status: AtomicI32::new(STATUS_PENDING.0),
        exited: AtomicBool::new(false),
        output: SpinLocked::new(String::new()),
    });
    PROCESSES.with(|l| l.push(p.clone()));
    crate::ke::sched::ready_thread(tid)?;
    Ok(p)
}

/// Forgets an ended process (the last reference to its object went away).
pub fn reap(p: &Arc<UserProcess>) {
    PROCESSES.with(|l| l.retain(|x| !Arc::ptr_eq(x, p)));
}

/// A user thread's first code (kernel mode): finds its process, attaches
/// to the address space for good and enters user mode.
fn user_thread_start(_: usize) {
    let me = crate::ke::sched::current_thread_id();
    let p = PROCESSES.with(|l| {
        l.iter()
            .find(|p| p.thread.load(Ordering::Relaxed) == me)
            .cloned()
    });
    let Some(layout) = p.and_then(|p| p.layout.with(|l| *l)) else {
        return;
    };
    if crate::mm::process::ke_stack_attach_process(layout.pid).is_err() {
        return;
    }
    // The entry point is entered as if called: 8 mod 16 with the return
    // address slot and the 32-byte home area above the stack pointer.
    // SAFETY: this is the thread's start routine on its own stack at
    // PASSIVE_LEVEL, attached to the address space the layout describes.
    unsafe {
        crate::ke::user::enter_user_mode(
            layout.entry,
            layout.stack_base - 0x28,
            layout.peb,
            layout.teb,
        )
    }
}

/// `NtTerminateProcess(NtCurrentProcess(), status)` for a process with
/// one thread: records the status, leaves and deletes the address space
/// and ends the thread.
pub fn terminate_current_process(status: NtStatus) -> ! {
    let pid = crate::mm::process::current_process();
    if let Some(p) = current() {
        p.exit_status.store(status.0, Ordering::Relaxed);
        p.exited.store(true, Ordering::Release);
    }
    crate::ke::sched::current_thread().set_teb(0);
    crate::mm::process::ke_unstack_detach_process();
    if pid != 0 {
        let _ = crate::mm::process::mm_delete_process_address_space(pid);
    }
    crate::ke::sched::terminate_current_thread()
}

/// The executive's user exception handler (`KiDispatchException` for
/// PreviousMode UserMode): without a user-mode dispatcher (ntdll) the
/// exception is unhandled, which ends the process with its code (as an
/// unhandled exception does on NT).
fn user_exception(frame: &mut crate::ke::trap::KTrapFrame, status: u32, address: u64) {
    crate::dbg_println!(
        "user: unhandled exception {status:#010x} at {:#x} (address {address:#x}); ending process {:#x}",
        frame.rip,
        crate::mm::process::current_process()
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

/// Appends displayed text to the current process's output.
pub fn record_output(text: &str) {
    if let Some(p) = current() {
        p.output.with(|o| {
            if o.len() < 64 * 1024 {
                o.push_str(text);
                o.push('\n');
            }
        });
    }
}

/// Runs the boot image `name` (`System32\<name>`) with `arguments` to its
/// end, waiting at most `timeout_ms`; returns its exit status and what it
/// displayed, and forgets the process. STATUS_OBJECT_NAME_NOT_FOUND when
/// winload did not hand the image over, STATUS_TIMEOUT when it did not end.
pub fn run_to_exit(
    name: &str,
    arguments: &str,
    timeout_ms: u64,
) -> Result<(NtStatus, String), NtStatus> {
    let image = boot_image(name).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
    let p = create_user_process(
        image,
        &alloc::format!("\\SystemRoot\\System32\\{name}"),
        &alloc::format!("{name} {arguments}"),
    )?;
    let tid = p.thread.load(Ordering::Relaxed);
    if let Some(t) = crate::ke::wait::ThreadObject::new(tid) {
        let s = crate::ke::wait::ke_wait_for_single_object(
            &t,
            crate::ke::thread::WaitReason::Executive,
            false,
            false,
            Some(timeout_ms * 10_000),
        );
        if s != STATUS_SUCCESS {
            return Err(STATUS_TIMEOUT);
        }
    }
    let status = p.exit_status().ok_or(STATUS_UNSUCCESSFUL)?;
    let out = p.output();
    reap(&p);
    Ok((status, out))
}
