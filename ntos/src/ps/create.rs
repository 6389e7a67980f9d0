//! User processes and user threads (*Windows Internals* 7th ed., Part 1,
//! ch. 3, "Flow of CreateProcess", stages 3-7, and ch. 4, "Thread
//! creation"): the kernel half of `NtCreateUserProcess` (a process object
//! with its own address space, the image mapped, the process parameters and
//! environment copied in, the PEB, the initial thread) and of
//! `NtCreateThreadEx` (a user thread: stack, TEB, an `ETHREAD` of the
//! process that enters user mode at its start address); the user part of
//! thread exit and the deletion of the address space at process exit.
//!
//! ntrs differs:
//! - the image comes from the copy winload loaded (`System32\<name>` in the
//!   boot driver list) and is copied into private memory, not mapped as an
//!   image section (SEC_IMAGE); ntdll is not mapped (there is none yet), so
//!   the initial thread starts at the image's entry point with the PEB in
//!   RCX (a native `NtProcessStartup(PPEB)`), not at
//!   `ntdll!LdrInitializeThunk`, and a thread from `NtCreateThreadEx`
//!   starts at its start routine with the argument in RCX (not at
//!   `ntdll!RtlUserThreadStart`); returning from either faults (there is
//!   no caller), so threads end with `NtTerminateThread`/`Process`;
//! - the whole address space is deleted when the last thread exits
//!   (NT cleans the user range at exit and frees the page directory at
//!   deletion); threads of other processes attached to it (these builders)
//!   are waited for first.

use super::*;
use crate::mm::user::UserThreadLayout;

/// A user thread's start: where it enters user mode and its stack and TEB.
#[derive(Clone, Copy, Debug)]
pub struct UserStart {
    pub entry: u64,
    /// RCX at the entry.
    pub argument: u64,
    pub layout: UserThreadLayout,
}

/// The process parameters a new process gets (`RTL_USER_PROCESS_PARAMETERS`
/// as captured from the creator), UTF-16 without terminators.
#[derive(Default, Clone)]
pub struct ProcessParameters {
    pub flags: u32,
    pub debug_flags: u32,
    pub console_handle: u64,
    pub console_flags: u32,
    pub standard_handles: [u64; 3],
    pub current_directory: Vec<u16>,
    pub dll_path: Vec<u16>,
    pub image_path_name: Vec<u16>,
    pub command_line: Vec<u16>,
    pub window_title: Vec<u16>,
    pub desktop_info: Vec<u16>,
    pub shell_info: Vec<u16>,
    pub runtime_data: Vec<u16>,
    /// The environment block, with its final double NUL (empty: none).
    pub environment: Vec<u16>,
    /// StartingX .. ShowWindowFlags (`StartingX` at 0x88 through
    /// `ShowWindowFlags` at 0xA8), kept as the creator gave them.
    pub window: [u32; 9],
}

impl ProcessParameters {
    /// Parameters with just an image path and a command line.
    pub fn new(image_path_name: &str, command_line: &str) -> Self {
        ProcessParameters {
            image_path_name: image_path_name.encode_utf16().collect(),
            command_line: command_line.encode_utf16().collect(),
            ..Default::default()
        }
    }
}

/// Runs `f` attached to `p`'s address space (`KeStackAttachProcess`), then
/// goes back to the address space the thread was in. Counted, so that the
/// process's exit does not delete the space under it.
pub fn with_attached<R>(
    p: &EProcess,
    f: impl FnOnce() -> Result<R, NtStatus>,
) -> Result<R, NtStatus> {
    // No terminate APC may end the thread while it is attached elsewhere.
    crate::ke::apc::ke_enter_critical_region();
    p.attach_count.fetch_add(1, Ordering::SeqCst);
    let r = if p.space_deleted.load(Ordering::SeqCst) || p.address_space == 0 {
        Err(STATUS_PROCESS_IS_TERMINATING)
    } else {
        let old = crate::mm::process::current_process();
        let r = crate::mm::process::ke_stack_attach_process(p.address_space).and_then(|_| f());
        if old != 0 {
            // The thread's own address space, which exists while it runs.
            let _ = crate::mm::process::ke_stack_attach_process(old);
        } else {
            crate::mm::process::ke_unstack_detach_process();
        }
        r
    };
    p.attach_count.fetch_sub(1, Ordering::SeqCst);
    crate::ke::apc::ke_leave_critical_region();
    r
}

/// The user image for an NT path: ntrs serves `\SystemRoot\System32\<name>`
/// and `\??\C:\Windows\System32\<name>` from the files winload loaded
/// (STATUS_OBJECT_PATH_NOT_FOUND for another directory,
/// STATUS_OBJECT_NAME_NOT_FOUND for a file winload did not load).
pub fn open_image(nt_path: &str) -> Result<&'static [u8], NtStatus> {
    let (dir, name) = nt_path
        .rsplit_once('\\')
        .ok_or(STATUS_OBJECT_PATH_SYNTAX_BAD)?;
    let served = ["\\SystemRoot\\System32", "\\??\\C:\\Windows\\System32"];
    if !served.iter().any(|d| d.eq_ignore_ascii_case(dir)) {
        return Err(STATUS_OBJECT_PATH_NOT_FOUND);
    }
    if name.is_empty() {
        return Err(STATUS_OBJECT_NAME_INVALID);
    }
    crate::ex::uproc::boot_image(name).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)
}

fn allocate(size: u64) -> Result<u64, NtStatus> {
    let (mut b, mut s) = (0, size);
    let st = crate::mm::process::nt_allocate_virtual_memory(
        &mut b,
        &mut s,
        crate::mm::user::MEM_RESERVE | crate::mm::user::MEM_COMMIT | crate::mm::user::MEM_TOP_DOWN,
        crate::mm::user::PAGE_READWRITE,
    );
    if st.is_error() {
        return Err(st);
    }
    Ok(b)
}

/// Writes normalized process parameters (and the environment, in its own
/// allocation as on NT) into the attached process; returns their address.
fn write_parameters(pp: &ProcessParameters) -> Result<u64, NtStatus> {
    use nt::user::RtlUserProcessParameters as P;
    let header = core::mem::size_of::<P>();
    let strings: [&[u16]; 8] = [
        &pp.current_directory,
        &pp.dll_path,
        &pp.image_path_name,
        &pp.command_line,
        &pp.window_title,
        &pp.desktop_info,
        &pp.shell_info,
        &pp.runtime_data,
    ];
    let mut total = header;
    for s in strings {
        if s.len() > 0x7FFE {
            return Err(STATUS_NAME_TOO_LONG);
        }
        total += (2 * s.len() + 2).next_multiple_of(8);
    }
    let environment = if pp.environment.is_empty() {
        0
    } else {
        let e = allocate(2 * pp.environment.len() as u64)?;
        let bytes: Vec<u8> = pp
            .environment
            .iter()
            .flat_map(|c| c.to_le_bytes())
            .collect();
        crate::ke::user::copy_to_user(e, &bytes)?;
        e
    };
    let base = allocate(total as u64)?;
    let mut block = alloc::vec![0u8; total];
    let put32 = |b: &mut [u8], o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |b: &mut [u8], o: usize, v: u64| b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    put32(&mut block, 0, total as u32);
    put32(&mut block, 4, total as u32);
    put32(
        &mut block,
        8,
        pp.flags | nt::user::RTL_USER_PROC_PARAMS_NORMALIZED,
    );
    put32(&mut block, 0xC, pp.debug_flags);
    put64(&mut block, 0x10, pp.console_handle);
    put32(&mut block, 0x18, pp.console_flags);
    for (i, h) in pp.standard_handles.iter().enumerate() {
        put64(&mut block, 0x20 + 8 * i, *h);
    }
    put64(&mut block, 0x80, environment);
    for (i, w) in pp.window.iter().enumerate() {
        put32(&mut block, 0x88 + 4 * i, *w);
    }
    put64(&mut block, 0x3F0, 2 * pp.environment.len() as u64);
    // Where each UNICODE_STRING lives in the structure.
    let fields = [0x38, 0x50, 0x60, 0x70, 0xB0, 0xC0, 0xD0, 0xE0];
    let mut at = header;
    for (s, field) in strings.iter().zip(fields) {
        let len = 2 * s.len();
        block[field..field + 2].copy_from_slice(&(len as u16).to_le_bytes());
        block[field + 2..field + 4].copy_from_slice(&(len as u16 + 2).to_le_bytes());
        put64(&mut block, field + 8, base + at as u64);
        for (i, c) in s.iter().enumerate() {
            block[at + 2 * i..at + 2 * i + 2].copy_from_slice(&c.to_le_bytes());
        }
        at += (len + 2).next_multiple_of(8);
    }
    crate::ke::user::copy_to_user(base, &block)?;
    Ok(base)
}

/// The name kd and `ProcessImageFileName` show: the path's last component.
fn short_name(path: &[u16]) -> String {
    let s = String::from_utf16_lossy(path);
    s.rsplit('\\').next().unwrap_or(&s).into()
}

/// `PspCreateUserProcess` (kernel half of `NtCreateUserProcess`): a process
/// (child of `parent`, or of the current process) with `image` mapped, the
/// parameters and environment written, the PEB, and its initial thread
/// created suspended at the image's entry point. Returns the process and
/// the thread, each object referenced once for the caller; the caller
/// resumes the thread.
pub fn ps_create_user_process(
    parent: Option<Arc<EProcess>>,
    inherit_handles: bool,
    image: &[u8],
    params: &ProcessParameters,
    stack_size: u64,
) -> Result<(Arc<EProcess>, Arc<EThread>), NtStatus> {
    ps_create_user_process_ex(parent, inherit_handles, false, image, params, stack_size)
}

/// [`ps_create_user_process`] with `breakaway`
/// (`PROCESS_CREATE_FLAGS_BREAKAWAY`: the child leaves the parent's job if
/// the job allows it).
pub fn ps_create_user_process_ex(
    parent: Option<Arc<EProcess>>,
    inherit_handles: bool,
    breakaway: bool,
    image: &[u8],
    params: &ProcessParameters,
    stack_size: u64,
) -> Result<(Arc<EProcess>, Arc<EThread>), NtStatus> {
    crate::mm::user::check_user_image(image)?;
    let name = short_name(&params.image_path_name);
    let p = ps_create_process(CreateProcess {
        parent,
        inherit_handles,
        image_file_name: &name,
        breakaway,
    })?;
    let built = with_attached(&p, || {
        let mapped = crate::mm::user::map_user_image(image)?;
        // ntdll.dll in every user process (PspMapSystemDll), when winload
        // handed it over.
        if let Some(ntdll) = crate::ex::uproc::boot_image("ntdll.dll") {
            crate::mm::user::map_system_dll(ntdll)?;
        }
        let pp = write_parameters(params)?;
        let peb = crate::mm::user::create_peb(&mapped, pp)?;
        Ok((mapped, peb))
    });
    let (mapped, peb) = match built {
        Ok(x) => x,
        Err(e) => {
            abandon(&p, e);
            return Err(e);
        }
    };
    p.peb.store(peb, Ordering::Release);
    match ps_create_user_thread(&p, mapped.entry, peb, stack_size, true) {
        Ok(t) => Ok((p, t)),
        Err(e) => {
            abandon(&p, e);
            Err(e)
        }
    }
}

/// A process whose creation failed: it exits (handles, address space) and
/// the creation reference goes.
fn abandon(p: &Arc<EProcess>, status: NtStatus) {
    let _ = terminate_process(p, status);
    ob_dereference_object(p.object());
}

/// `PspCreateThread` for a user thread (kernel half of `NtCreateThreadEx`
/// and of the initial thread): a stack of `stack_size` bytes and a TEB in
/// `p`'s address space, then the thread, which enters user mode at `entry`
/// with `argument` in RCX. `suspended`: it waits for `NtResumeThread`.
/// Returns the thread, its object referenced once for the caller.
pub fn ps_create_user_thread(
    p: &Arc<EProcess>,
    entry: u64,
    argument: u64,
    stack_size: u64,
    suspended: bool,
) -> Result<Arc<EThread>, NtStatus> {
    let peb = p.peb.load(Ordering::Acquire);
    if peb == 0 {
        // Not a user process (System, or one without an image).
        return Err(STATUS_INVALID_PARAMETER);
    }
    if entry == 0 || entry >= nt::user::MM_USER_PROBE_ADDRESS {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let size = if stack_size == 0 {
        crate::mm::user::USER_STACK_SIZE
    } else {
        stack_size
    };
    // ClientId.UniqueThread is written by the thread itself at its start.
    let layout = with_attached(p, || {
        crate::mm::user::create_teb(peb, (u64::from(p.pid()), 0), size)
    })?;
    let priority = priority_class_base(p.priority_class.load(Ordering::Relaxed)).unwrap_or(8);
    let r = create_thread(
        p,
        "user",
        priority,
        psp_user_thread_startup,
        0,
        suspended,
        Some(UserStart {
            entry,
            argument,
            layout,
        }),
    );
    if r.is_err() {
        let _ = with_attached(p, || {
            crate::mm::user::delete_teb(&layout);
            Ok(())
        });
    }
    r
}

/// `PspUserThreadStartup`: the new user thread attaches to its process's
/// address space for its life, writes its thread id into its TEB's
/// `ClientId` and enters user mode.
fn psp_user_thread_startup(_: usize) {
    let start = with_current_thread(|t| {
        t.and_then(|t| {
            t.user
                .map(|u| (u, t.process.address_space, u64::from(t.tid())))
        })
    });
    let Some((u, space, tid)) = start else {
        return;
    };
    if crate::mm::process::ke_stack_attach_process(space).is_err() {
        return;
    }
    let client_thread = u.layout.teb + core::mem::offset_of!(nt::user::Teb, client_id) as u64 + 8;
    if crate::ke::user::write_user(client_thread, &tid).is_err() {
        // The TEB is gone (another thread freed it): nothing to run on.
        ps_terminate_current_thread(STATUS_ACCESS_VIOLATION);
    }
    // The entry point is entered as if called: 8 mod 16 with the return
    // address slot and the 32-byte home area above the stack pointer.
    // SAFETY: this is the thread's start routine on its own stack at
    // PASSIVE_LEVEL, attached to the address space where the stack, TEB and
    // entry were set up; nothing on this stack needs dropping.
    unsafe {
        crate::ke::user::enter_user_mode(
            u.entry,
            u.layout.stack_base - 0x28,
            u.argument,
            u.layout.teb,
        )
    }
}

/// The user part of `PspExitThread`, on the exiting thread: its TEB and
/// stack are freed while the process goes on, and it leaves the address
/// space (before it is counted out, so the last thread can delete it).
pub(super) fn leave_user_address_space(p: &EProcess, u: &UserStart) {
    if p.address_space == 0 || crate::mm::process::current_process() != p.address_space {
        return;
    }
    if p.active_threads() > 1 {
        crate::mm::user::delete_teb(&u.layout);
    }
    crate::ke::sched::current_thread().set_teb(0);
    crate::mm::process::ke_unstack_detach_process();
}

/// `MmCleanProcessAddressSpace` and `MmDeleteProcessAddressSpace` at
/// process exit (see the module note): waits until no other thread is
/// attached, then deletes the whole address space.
pub(super) fn delete_user_address_space(p: &EProcess) {
    if p.address_space == 0 || p.peb.load(Ordering::Acquire) == 0 {
        // Kernel-only processes keep theirs until deletion.
        return;
    }
    if p.space_deleted.swap(true, Ordering::SeqCst) {
        return;
    }
    while p.attach_count.load(Ordering::SeqCst) != 0 {
        crate::ke::sched::ke_delay_execution_thread(10_000);
    }
    let _ = crate::mm::process::mm_delete_process_address_space(p.address_space);
}
