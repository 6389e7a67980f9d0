//! Native process and thread services (`NtOpenProcess`, `NtTerminateProcess`,
//! ...), kernel-callable with the previous mode; the system call table
//! (`docs/syscalls.md`) passes user callers' arguments after capture.

use super::*;
use crate::ob::handle::{ob_create_handle, ob_reference_object_by_handle, ObjectRef};
use crate::ob::object::{ob_check_object_access, ob_query_object_security, Mode};

/// A process object behind a handle, referenced, with its `EProcess`.
pub fn reference_process(
    handle: u64,
    desired: u32,
    mode: Mode,
) -> Result<(ObjectRef, Arc<EProcess>), NtStatus> {
    let r = ob_reference_object_by_handle(handle, desired, Some(&PS_PROCESS_TYPE), mode)?;
    let p = process_by_object(r.id).ok_or(STATUS_INVALID_HANDLE)?;
    Ok((r, p))
}

/// A thread object behind a handle, referenced, with its `EThread`.
pub fn reference_thread(
    handle: u64,
    desired: u32,
    mode: Mode,
) -> Result<(ObjectRef, Arc<EThread>), NtStatus> {
    let r = ob_reference_object_by_handle(handle, desired, Some(&PS_THREAD_TYPE), mode)?;
    let t = thread_by_object(r.id).ok_or(STATUS_INVALID_HANDLE)?;
    Ok((r, t))
}

/// `NtCreateProcessEx` without a section (ntrs differs: the image section
/// parameter is not taken yet; the process gets an empty user address
/// space, and user's `NtCreateUserProcess` maps the image). `parent`:
/// a process handle (PROCESS_CREATE_PROCESS) or `None` for the current
/// process. Returns a handle with `desired` access (checked against the
/// new object's descriptor for user-mode callers).
pub fn nt_create_process_ex(
    parent: Option<u64>,
    desired: u32,
    attributes: u32,
    inherit_handles: bool,
    image_file_name: &str,
    mode: Mode,
) -> Result<u64, NtStatus> {
    let parent = match parent {
        Some(h) => Some(reference_process(h, PROCESS_CREATE_PROCESS, mode)?.1),
        None => None,
    };
    let p = ps_create_process(CreateProcess {
        parent,
        inherit_handles,
        image_file_name,
        breakaway: false,
    })?;
    // The creation reference goes to the handle (or is dropped on failure).
    crate::ob::handle::ob_insert_object_handle(p.object(), desired, attributes, mode)
}

/// Opens `id` (referenced by the caller) for the caller: the access
/// check against the object's descriptor, then a handle.
fn open_object(
    id: ObjectId,
    ty: &ObjectTypeRef,
    desired: u32,
    attributes: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    let r = (|| {
        let sd = ob_query_object_security(id)?;
        let subject = crate::se::se_capture_subject_context();
        let granted = ob_check_object_access(
            sd.as_ref(),
            ty,
            desired,
            mode,
            attributes,
            subject.effective_token(),
        )?;
        ob_create_handle(id, granted, attributes)
    })();
    ob_dereference_object(id);
    r
}

/// `NtOpenProcess` by client id: STATUS_INVALID_CID for an id naming no
/// live process, STATUS_ACCESS_DENIED when the caller's token is refused.
pub fn nt_open_process(
    desired: u32,
    attributes: u32,
    pid: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    let id = ps_lookup_process_by_process_id(pid)?;
    open_object(id, &PS_PROCESS_TYPE, desired, attributes, mode)
}

/// `NtOpenThread` by client id (`CLIENT_ID.UniqueThread`; a non-zero
/// `UniqueProcess` must be the thread's process, else STATUS_INVALID_CID).
pub fn nt_open_thread(
    desired: u32,
    attributes: u32,
    pid: u32,
    tid: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    let id = ps_lookup_thread_by_thread_id(tid)?;
    if pid != 0 && thread_by_object(id).map(|t| t.process.pid()) != Some(pid) {
        ob_dereference_object(id);
        return Err(STATUS_INVALID_CID);
    }
    open_object(id, &PS_THREAD_TYPE, desired, attributes, mode)
}

/// `NtTerminateProcess` (PROCESS_TERMINATE): every thread ends with
/// `status`; the process object is signaled when the last one has.
/// STATUS_PROCESS_IS_TERMINATING if it has exited; the System process
/// cannot be terminated (STATUS_ACCESS_DENIED).
pub fn nt_terminate_process(handle: u64, status: NtStatus, mode: Mode) -> NtStatus {
    let (r, p) = match reference_process(handle, PROCESS_TERMINATE, mode) {
        Ok(x) => x,
        Err(e) => return e,
    };
    match terminate_process_others(&p, status) {
        Ok(true) => {
            // The caller's own process: it ends last, holding nothing.
            drop(r);
            drop(p);
            ps_terminate_current_thread(status)
        }
        Ok(false) => STATUS_SUCCESS,
        Err(e) => e,
    }
}

/// `NtTerminateProcess(NULL, status)`: every thread of the current
/// process but the caller ends with `status`.
pub fn nt_terminate_other_threads(status: NtStatus) -> NtStatus {
    let Some(p) = current_process() else {
        return STATUS_INVALID_HANDLE;
    };
    let me = with_current_thread(|c| c.map(|c| c.object()));
    for t in threads_of(&p).0 {
        if Some(t.object()) != me {
            let _ = terminate_thread(&t, status);
        }
    }
    STATUS_SUCCESS
}

/// `NtTerminateThread` (THREAD_TERMINATE).
pub fn nt_terminate_thread(handle: u64, status: NtStatus, mode: Mode) -> NtStatus {
    let (r, t) = match reference_thread(handle, THREAD_TERMINATE, mode) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if with_current_thread(|c| c.map(|c| c.object())) == Some(t.object()) {
        // The caller itself: it ends holding nothing.
        drop(r);
        drop(t);
        ps_terminate_current_thread(status);
    }
    terminate_thread(&t, status)
}

/// `NtSuspendThread` (THREAD_SUSPEND_RESUME): the previous suspend count.
pub fn nt_suspend_thread(handle: u64, mode: Mode) -> Result<u32, NtStatus> {
    let (_r, t) = reference_thread(handle, THREAD_SUSPEND_RESUME, mode)?;
    suspend_thread(&t)
}

/// `NtResumeThread` (THREAD_SUSPEND_RESUME): the previous suspend count.
pub fn nt_resume_thread(handle: u64, mode: Mode) -> Result<u32, NtStatus> {
    let (_r, t) = reference_thread(handle, THREAD_SUSPEND_RESUME, mode)?;
    Ok(resume_thread(&t))
}

/// `NtGetContextThread` / `NtSetContextThread`: STATUS_NOT_IMPLEMENTED
/// until threads have user-mode trap frames (issue 15 item 4: the thread's
/// `CONTEXT` comes from its `KTRAP_FRAME`); the handle and access are
/// checked first.
pub fn nt_get_context_thread(handle: u64, mode: Mode) -> NtStatus {
    match reference_thread(handle, THREAD_GET_CONTEXT, mode) {
        Ok(_) => STATUS_NOT_IMPLEMENTED,
        Err(e) => e,
    }
}

/// `NtSetContextThread`: see [`nt_get_context_thread`].
pub fn nt_set_context_thread(handle: u64, mode: Mode) -> NtStatus {
    match reference_thread(handle, THREAD_SET_CONTEXT, mode) {
        Ok(_) => STATUS_NOT_IMPLEMENTED,
        Err(e) => e,
    }
}

/// For drivers and callers that hold a process already: a handle to it.
pub fn open_process_object(
    p: &EProcess,
    desired: u32,
    attributes: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    ob_reference_object(p.object())?;
    open_object(p.object(), &PS_PROCESS_TYPE, desired, attributes, mode)
}

/// Clock ticks as 100 ns units.
fn ticks_100ns(ticks: u64) -> u64 {
    ticks * crate::ke::clock::TIME_INCREMENT
}

/// `NtQueryInformationProcess` into `buffer` (the caller's captured
/// buffer, which lives at `buffer_address` in its address space):
/// `ProcessBasicInformation` (PROCESS_QUERY_LIMITED_INFORMATION),
/// `ProcessTimes`, `ProcessPriorityClass`-less `ProcessHandleCount`,
/// `ProcessImageFileName` (the image name ntrs keeps; NT gives the NT path
/// of the image file). Returns the `ReturnLength`; other classes are
/// STATUS_INVALID_INFO_CLASS. ntrs differs: `UserTime` is 0 (no user time
/// is charged yet); `PebBaseAddress` is 0 for processes without a user part.
pub fn nt_query_information_process(
    handle: u64,
    class: u32,
    buffer: &mut [u8],
    buffer_address: u64,
    mode: Mode,
) -> Result<usize, NtStatus> {
    use ::ps::info::*;
    let (_r, p) = reference_process(handle, PROCESS_QUERY_LIMITED_INFORMATION, mode)?;
    match class {
        PROCESS_BASIC_INFORMATION => answer_fixed(
            &ProcessBasicInformation {
                exit_status: p.exit_status().0,
                peb_base_address: p.peb.load(Ordering::Acquire),
                affinity_mask: p.affinity.load(Ordering::Relaxed),
                base_priority: i32::from(p.pcb().base_priority),
                unique_process_id: u64::from(p.pid()),
                inherited_from_unique_process_id: u64::from(p.inherited_from),
            },
            buffer,
        ),
        PROCESS_TIMES => answer_fixed(
            &KernelUserTimes {
                create_time: p.create_time,
                exit_time: p.exit_time(),
                kernel_time: ticks_100ns(p.pcb().kernel_time()),
                user_time: 0,
            },
            buffer,
        ),
        PROCESS_HANDLE_COUNT => {
            answer_u32(p.handle_table().map_or(0, |t| t.count() as u32), buffer)
        }
        PROCESS_IMAGE_FILE_NAME => {
            answer_unicode_string(&p.image_file_name, buffer_address, buffer).map_err(|(e, _)| e)
        }
        _ => Err(STATUS_INVALID_INFO_CLASS),
    }
}

/// `NtSetInformationProcess` (PROCESS_SET_INFORMATION):
/// `ProcessPriorityClass` (`PROCESS_PRIORITY_CLASS`: `Foreground` byte,
/// `PriorityClass` byte) sets the base priority new threads get and
/// `ProcessAffinityMask` (a `KAFFINITY`, non-zero) the affinity new threads
/// get. ntrs differs: running threads keep theirs.
pub fn nt_set_information_process(handle: u64, class: u32, buffer: &[u8], mode: Mode) -> NtStatus {
    use ::ps::info::*;
    let (_r, p) = match reference_process(handle, PROCESS_SET_INFORMATION, mode) {
        Ok(x) => x,
        Err(e) => return e,
    };
    match class {
        PROCESS_PRIORITY_CLASS => match input::<2>(buffer) {
            Ok([_, class]) => {
                if priority_class_base(class).is_none() {
                    return STATUS_INVALID_PARAMETER;
                }
                p.priority_class.store(class, Ordering::Relaxed);
                STATUS_SUCCESS
            }
            Err(e) => e,
        },
        PROCESS_AFFINITY_MASK => match input::<8>(buffer) {
            Ok(b) => match u64::from_le_bytes(b) {
                0 => STATUS_INVALID_PARAMETER,
                a => {
                    p.affinity.store(a, Ordering::Relaxed);
                    STATUS_SUCCESS
                }
            },
            Err(e) => e,
        },
        _ => STATUS_INVALID_INFO_CLASS,
    }
}

/// `NtQueryInformationThread` (THREAD_QUERY_LIMITED_INFORMATION):
/// `ThreadBasicInformation` (`BasePriority` is the thread's base priority
/// relative to its process's, as NT reports it; `TebBaseAddress` the TEB
/// once the thread runs in user mode), `ThreadTimes`, `ThreadSuspendCount`.
pub fn nt_query_information_thread(
    handle: u64,
    class: u32,
    buffer: &mut [u8],
    mode: Mode,
) -> Result<usize, NtStatus> {
    use ::ps::info::*;
    let (_r, t) = reference_thread(handle, THREAD_QUERY_LIMITED_INFORMATION, mode)?;
    let k = t.kernel_thread();
    let prio = crate::ke::sched::thread_priorities(t.kernel_id.load(Ordering::Acquire))
        .filter(|_| k.is_some());
    match class {
        THREAD_BASIC_INFORMATION => {
            let (priority, base, affinity) = prio.unwrap_or((0, 0, 0));
            answer_fixed(
                &ThreadBasicInformation {
                    exit_status: t.exit_status().0,
                    teb_base_address: k.as_ref().map_or(0, |k| k.teb()),
                    unique_process: u64::from(t.process.pid()),
                    unique_thread: u64::from(t.tid()),
                    affinity_mask: affinity,
                    priority: i32::from(priority),
                    base_priority: i32::from(base) - i32::from(t.process.pcb().base_priority),
                },
                buffer,
            )
        }
        THREAD_TIMES => answer_fixed(
            &KernelUserTimes {
                create_time: t.create_time,
                exit_time: t.exit_time(),
                kernel_time: k.as_ref().map_or(0, |k| ticks_100ns(k.kernel_time())),
                user_time: 0,
            },
            buffer,
        ),
        THREAD_SUSPEND_COUNT => answer_u32(t.suspend_count.load(Ordering::Acquire), buffer),
        _ => Err(STATUS_INVALID_INFO_CLASS),
    }
}

/// `NtSetInformationThread` (THREAD_SET_INFORMATION): `ThreadPriority`
/// (a `KPRIORITY` 1..31: `KeSetPriorityThread`), `ThreadAffinityMask`
/// (STATUS_NOT_IMPLEMENTED: the kernel sets only the current thread's
/// affinity today).
pub fn nt_set_information_thread(handle: u64, class: u32, buffer: &[u8], mode: Mode) -> NtStatus {
    use ::ps::info::*;
    let (_r, t) = match reference_thread(handle, THREAD_SET_INFORMATION, mode) {
        Ok(x) => x,
        Err(e) => return e,
    };
    match class {
        THREAD_PRIORITY => match input::<4>(buffer) {
            Ok(b) => {
                let p = i32::from_le_bytes(b);
                if !(1..=31).contains(&p) {
                    return STATUS_INVALID_PARAMETER;
                }
                if t.kernel_thread().is_none() {
                    return STATUS_THREAD_IS_TERMINATING;
                }
                crate::ke::sched::ke_set_priority_thread(
                    t.kernel_id.load(Ordering::Acquire),
                    p as u8,
                );
                STATUS_SUCCESS
            }
            Err(e) => e,
        },
        THREAD_AFFINITY_MASK => STATUS_NOT_IMPLEMENTED,
        _ => STATUS_INVALID_INFO_CLASS,
    }
}

/// `NtQuerySystemInformation`: `SystemBasicInformation` and
/// `SystemProcessInformation` (every process with its threads; Idle first
/// with its idle threads is left out: ntrs's idle threads have no client
/// ids). Other classes are STATUS_INVALID_INFO_CLASS. On a short buffer
/// STATUS_INFO_LENGTH_MISMATCH with the length needed.
pub fn nt_query_system_information(
    class: u32,
    buffer: &mut [u8],
    buffer_address: u64,
) -> Result<usize, (NtStatus, usize)> {
    use ::ps::info::*;
    match class {
        SYSTEM_BASIC_INFORMATION => {
            let n = crate::ke::processor_count();
            let total = crate::mm::pfn::counts().map_or(0, |c| c.total);
            let highest = crate::mm::pfn::PFN_DB
                .with(|d| d.as_ref().map_or(0, |d| d.len()))
                .saturating_sub(1);
            answer_fixed(
                &SystemBasicInformation {
                    timer_resolution: crate::ke::clock::TIME_INCREMENT as u32,
                    page_size: 4096,
                    number_of_physical_pages: total as u32,
                    lowest_physical_page_number: 0,
                    highest_physical_page_number: highest as u32,
                    allocation_granularity: 0x10000,
                    minimum_user_mode_address: 0x10000,
                    maximum_user_mode_address: 0x7FFF_FFFE_FFFF,
                    active_processors_affinity_mask: if n >= 64 { u64::MAX } else { (1 << n) - 1 },
                    number_of_processors: n as i8,
                },
                buffer,
            )
            .map_err(|e| (e, SystemBasicInformation::SIZE))
        }
        SYSTEM_PROCESS_INFORMATION => {
            let list: Vec<SystemProcess> = process_list()
                .iter()
                .map(|p| {
                    let (threads, _) = threads_of(p);
                    SystemProcess {
                        create_time: p.create_time,
                        user_time: 0,
                        kernel_time: ticks_100ns(p.pcb().kernel_time()),
                        image_name: p.image_file_name.clone(),
                        base_priority: i32::from(p.pcb().base_priority),
                        unique_process_id: u64::from(p.pid()),
                        inherited_from_unique_process_id: u64::from(p.inherited_from),
                        handle_count: p.handle_table().map_or(0, |t| t.count() as u32),
                        threads: threads
                            .iter()
                            .filter_map(|t| {
                                let k = t.kernel_thread()?;
                                let (priority, base, _) =
                                    crate::ke::sched::thread_priorities(k.id)?;
                                Some(SystemThreadInformation {
                                    kernel_time: ticks_100ns(k.kernel_time()),
                                    user_time: 0,
                                    create_time: t.create_time,
                                    wait_time: 0,
                                    start_address: t.start_address(),
                                    unique_process: u64::from(p.pid()),
                                    unique_thread: u64::from(t.tid()),
                                    priority: i32::from(priority),
                                    base_priority: i32::from(base),
                                    context_switches: k.context_switches() as u32,
                                    thread_state: crate::ke::sched::thread_state(k.id)
                                        .map_or(4, |s| s as u32),
                                    wait_reason: 0,
                                })
                            })
                            .collect(),
                    }
                })
                .collect();
            answer_process_list(&list, buffer_address, buffer)
        }
        _ => Err((STATUS_INVALID_INFO_CLASS, 0)),
    }
}
