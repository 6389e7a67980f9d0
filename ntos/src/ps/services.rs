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
    match reference_process(handle, PROCESS_TERMINATE, mode) {
        Ok((_r, p)) => terminate_process(&p, status),
        Err(e) => e,
    }
}

/// `NtTerminateThread` (THREAD_TERMINATE).
pub fn nt_terminate_thread(handle: u64, status: NtStatus, mode: Mode) -> NtStatus {
    match reference_thread(handle, THREAD_TERMINATE, mode) {
        Ok((_r, t)) => terminate_thread(&t, status),
        Err(e) => e,
    }
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
