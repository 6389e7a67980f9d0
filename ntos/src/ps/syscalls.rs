//! The user-mode entry halves of the process manager's system services
//! (`KiServiceTable` rows; see docs/syscalls.md): each probes and captures
//! the caller's arguments, calls the kernel half with PreviousMode
//! UserMode and writes the results back. A handle written to a bad pointer
//! is closed again.

use super::create::ProcessParameters;
use super::services::*;
use super::*;
use crate::ex::services::{capture_object_attributes, user_handle};
use crate::ke::syscall::{ServiceRoutine, MAX_SERVICE_ARGUMENTS};
use crate::ke::trap::KTrapFrame;
use crate::ke::user::{copy_from_user, copy_to_user, probe, read_user, write_user};
use crate::ob::object::Mode;
use alloc::vec;

type Args = [u64; MAX_SERVICE_ARGUMENTS];
const USER: Mode = Mode::UserMode;

/// The routines this module provides, by service name.
pub fn routine(name: &str) -> Option<ServiceRoutine> {
    Some(match name {
        "NtCreateUserProcess" => nt_create_user_process,
        "NtCreateThreadEx" => nt_create_thread_ex,
        "NtOpenProcess" => nt_open_process_service,
        "NtOpenThread" => nt_open_thread_service,
        "NtQueryInformationProcess" => nt_query_information_process_service,
        "NtQueryInformationThread" => nt_query_information_thread_service,
        "NtResumeThread" => nt_resume_thread_service,
        "NtSuspendThread" => nt_suspend_thread_service,
        "NtQuerySystemInformation" => nt_query_system_information_service,
        "NtCreateJobObject" => nt_create_job_object_service,
        "NtOpenJobObject" => nt_open_job_object_service,
        "NtAssignProcessToJobObject" => nt_assign_process_to_job_object_service,
        "NtIsProcessInJob" => nt_is_process_in_job_service,
        "NtTerminateJobObject" => nt_terminate_job_object_service,
        "NtQueryInformationJobObject" => nt_query_information_job_object_service,
        "NtSetInformationJobObject" => nt_set_information_job_object_service,
        _ => return None,
    })
}

fn result(r: Result<NtStatus, NtStatus>) -> NtStatus {
    r.unwrap_or_else(|e| e)
}

/// Writes a new handle to the caller's `PHANDLE`; closes it again if that
/// fails.
fn give_handle(at: u64, h: u64) -> Result<(), NtStatus> {
    if let Err(e) = write_user(at, &h) {
        let _ = crate::ob::handle::nt_close(h);
        return Err(e);
    }
    Ok(())
}

/// `PS_ATTRIBUTE` numbers (`PsAttributeValue(number, thread, input, additive)`).
const PS_ATTRIBUTE_PARENT_PROCESS: u64 = 0x0006_0000;
const PS_ATTRIBUTE_CLIENT_ID: u64 = 0x0001_0003;
const PS_ATTRIBUTE_TEB_ADDRESS: u64 = 0x0001_0004;
const PS_ATTRIBUTE_IMAGE_NAME: u64 = 0x0002_0005;

/// One captured `PS_ATTRIBUTE` (x64: Attribute, Size, Value, ReturnLength).
#[derive(Clone, Copy)]
struct Attribute {
    attribute: u64,
    size: u64,
    value: u64,
    return_length: u64,
}

/// Captures a `PS_ATTRIBUTE_LIST` (`TotalLength` then 32-byte entries; at
/// most 32). NULL: none.
fn capture_attribute_list(at: u64) -> Result<Vec<Attribute>, NtStatus> {
    if at == 0 {
        return Ok(Vec::new());
    }
    probe(at, 8, 8)?;
    let total: u64 = read_user(at)?;
    if total < 8 || !(total - 8).is_multiple_of(32) || total > 8 + 32 * 32 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let mut raw = vec![0u8; total as usize];
    copy_from_user(&mut raw, at)?;
    let q = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or([0; 8]));
    Ok((0..(total as usize - 8) / 32)
        .map(|i| {
            let o = 8 + 32 * i;
            Attribute {
                attribute: q(o),
                size: q(o + 8),
                value: q(o + 16),
                return_length: q(o + 24),
            }
        })
        .collect())
}

/// The attributes ntrs takes: the parent process, the image name (input),
/// the client id and TEB address (output). Any other is
/// STATUS_NOT_IMPLEMENTED (documented in docs/ps.md).
fn check_attributes(list: &[Attribute], process: bool) -> Result<(), NtStatus> {
    for a in list {
        match a.attribute {
            PS_ATTRIBUTE_CLIENT_ID | PS_ATTRIBUTE_TEB_ADDRESS => {}
            PS_ATTRIBUTE_PARENT_PROCESS | PS_ATTRIBUTE_IMAGE_NAME if process => {}
            _ => return Err(STATUS_NOT_IMPLEMENTED),
        }
    }
    Ok(())
}

/// Writes the output attributes (`CLIENT_ID`, TEB address) of `t`.
fn write_thread_attributes(list: &[Attribute], t: &EThread) -> Result<(), NtStatus> {
    for a in list {
        let bytes: Vec<u8> = match a.attribute {
            PS_ATTRIBUTE_CLIENT_ID => [u64::from(t.process.pid()), u64::from(t.tid())]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            PS_ATTRIBUTE_TEB_ADDRESS => t.user.map_or(0, |u| u.layout.teb).to_le_bytes().to_vec(),
            _ => continue,
        };
        if a.size < bytes.len() as u64 {
            return Err(STATUS_INFO_LENGTH_MISMATCH);
        }
        copy_to_user(a.value, &bytes)?;
        if a.return_length != 0 {
            write_user(a.return_length, &(bytes.len() as u64))?;
        }
    }
    Ok(())
}

/// A UTF-16 string of `bytes` bytes at `at` in the caller's memory (at
/// most 32 KiB).
fn capture_utf16(at: u64, bytes: u64) -> Result<Vec<u16>, NtStatus> {
    if !bytes.is_multiple_of(2) || bytes > 0x8000 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let mut raw = vec![0u8; bytes as usize];
    copy_from_user(&mut raw, at)?;
    Ok(raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect())
}

/// `RTL_USER_PROCESS_PARAMETERS` from the caller: normalized (the strings'
/// buffers are addresses) or not (offsets from the structure); the
/// environment block up to its double NUL (`EnvironmentSize` when given,
/// at most 1 MiB).
fn capture_process_parameters(at: u64) -> Result<ProcessParameters, NtStatus> {
    const HEADER: usize = core::mem::size_of::<nt::user::RtlUserProcessParameters>();
    if at == 0 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    probe(at, HEADER, 8)?;
    let mut raw = vec![0u8; HEADER];
    copy_from_user(&mut raw, at)?;
    let d = |o: usize| u32::from_le_bytes(raw[o..o + 4].try_into().unwrap_or([0; 4]));
    let q = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or([0; 8]));
    if (d(4) as usize) < HEADER {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let normalized = d(8) & nt::user::RTL_USER_PROC_PARAMS_NORMALIZED != 0;
    let string = |field: usize| -> Result<Vec<u16>, NtStatus> {
        let len = u64::from(u16::from_le_bytes([raw[field], raw[field + 1]]));
        let buffer = q(field + 8);
        if len == 0 {
            return Ok(Vec::new());
        }
        let address = if normalized {
            buffer
        } else {
            at.checked_add(buffer).ok_or(STATUS_ACCESS_VIOLATION)?
        };
        capture_utf16(address, len)
    };
    let mut window = [0u32; 9];
    for (i, w) in window.iter_mut().enumerate() {
        *w = d(0x88 + 4 * i);
    }
    let environment = match q(0x80) {
        0 => Vec::new(),
        env => capture_environment(env, q(0x3F0))?,
    };
    Ok(ProcessParameters {
        flags: d(8) & !nt::user::RTL_USER_PROC_PARAMS_NORMALIZED,
        debug_flags: d(0xC),
        console_handle: q(0x10),
        console_flags: d(0x18),
        standard_handles: [q(0x20), q(0x28), q(0x30)],
        current_directory: string(0x38)?,
        dll_path: string(0x50)?,
        image_path_name: string(0x60)?,
        command_line: string(0x70)?,
        window_title: string(0xB0)?,
        desktop_info: string(0xC0)?,
        shell_info: string(0xD0)?,
        runtime_data: string(0xE0)?,
        environment,
        window,
    })
}

/// An environment block (`name=value\0...\0\0`).
fn capture_environment(at: u64, size: u64) -> Result<Vec<u16>, NtStatus> {
    const LIMIT: u64 = 1 << 20;
    let mut out: Vec<u16> = Vec::new();
    let mut chunk = [0u8; 512];
    let mut offset = 0u64;
    loop {
        if offset >= LIMIT || (size != 0 && offset >= size) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let n = if size != 0 {
            (size - offset).min(chunk.len() as u64) as usize
        } else {
            chunk.len()
        };
        copy_from_user(&mut chunk[..n], at + offset)?;
        for c in chunk[..n].chunks_exact(2) {
            let c = u16::from_le_bytes([c[0], c[1]]);
            out.push(c);
            let l = out.len();
            if l >= 2 && out[l - 1] == 0 && out[l - 2] == 0 {
                return Ok(out);
            }
        }
        offset += n as u64;
    }
}

/// `PS_CREATE_INFO` (x64, 0x58 bytes) states.
const PS_CREATE_INFO_SIZE: u64 = 0x58;
const PS_CREATE_FAIL_ON_FILE_OPEN: u32 = 1;
const PS_CREATE_FAIL_EXE_FORMAT: u32 = 3;
const PS_CREATE_SUCCESS: u32 = 6;
/// `PROCESS_CREATE_FLAGS_INHERIT_HANDLES`, `THREAD_CREATE_FLAGS_CREATE_SUSPENDED`.
const PROCESS_CREATE_FLAGS_INHERIT_HANDLES: u64 = 0x4;
/// `PROCESS_CREATE_FLAGS_BREAKAWAY`.
const PROCESS_CREATE_FLAGS_BREAKAWAY: u64 = 0x1;
const THREAD_CREATE_FLAGS_CREATE_SUSPENDED: u64 = 0x1;

/// `NtCreateUserProcess(ProcessHandle, ThreadHandle, ProcessDesiredAccess,
/// ThreadDesiredAccess, ProcessObjectAttributes, ThreadObjectAttributes,
/// ProcessFlags, ThreadFlags, ProcessParameters, CreateInfo, AttributeList)`.
fn nt_create_user_process(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        probe(a[0], 8, 8)?;
        probe(a[1], 8, 8)?;
        let process_attributes = capture_object_attributes(a[4])?.map_or(0, |x| x.attributes);
        let thread_attributes = capture_object_attributes(a[5])?.map_or(0, |x| x.attributes);
        let params = capture_process_parameters(a[8])?;
        probe(a[9], PS_CREATE_INFO_SIZE as usize, 8)?;
        if read_user::<u64>(a[9])? != PS_CREATE_INFO_SIZE {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let attributes = capture_attribute_list(a[10])?;
        check_attributes(&attributes, true)?;
        let mut image_name = None;
        let mut parent = None;
        for x in &attributes {
            match x.attribute {
                PS_ATTRIBUTE_IMAGE_NAME => image_name = Some(capture_utf16(x.value, x.size)?),
                PS_ATTRIBUTE_PARENT_PROCESS => {
                    let h = user_handle(x.value)?;
                    parent = Some(reference_process(h, PROCESS_CREATE_PROCESS, USER)?.1);
                }
                _ => {}
            }
        }
        let image_name = image_name.ok_or(STATUS_INVALID_PARAMETER)?;
        let image = match create::open_image(&String::from_utf16_lossy(&image_name)) {
            Ok(i) => i,
            Err(e) => {
                write_user(a[9] + 8, &PS_CREATE_FAIL_ON_FILE_OPEN)?;
                return Err(e);
            }
        };
        if let Err(e) = crate::mm::user::check_user_image(image) {
            write_user(a[9] + 8, &PS_CREATE_FAIL_EXE_FORMAT)?;
            return Err(e);
        }
        let (p, t) = create::ps_create_user_process_ex(
            parent,
            a[6] & PROCESS_CREATE_FLAGS_INHERIT_HANDLES != 0,
            a[6] & PROCESS_CREATE_FLAGS_BREAKAWAY != 0,
            image,
            &params,
            0,
        )?;
        // The initial thread is suspended until the caller has its handles.
        let r = (|| {
            let ph = crate::ob::handle::ob_insert_object_handle(
                p.object(),
                a[2] as u32,
                process_attributes,
                USER,
            )
            .and_then(|ph| give_handle(a[0], ph));
            if let Err(e) = ph {
                // The thread's creation reference was not handed over.
                ob_dereference_object(t.object());
                return Err(e);
            }
            // From here the process handle is the caller's to close.
            let th = crate::ob::handle::ob_insert_object_handle(
                t.object(),
                a[3] as u32,
                thread_attributes,
                USER,
            );
            let th = match th {
                Ok(h) => h,
                Err(e) => {
                    let _ = terminate_process(&p, e);
                    return Err(e);
                }
            };
            give_handle(a[1], th)?;
            let mut info = [0u8; PS_CREATE_INFO_SIZE as usize];
            info[0..8].copy_from_slice(&PS_CREATE_INFO_SIZE.to_le_bytes());
            info[8..12].copy_from_slice(&PS_CREATE_SUCCESS.to_le_bytes());
            let pp = with_peb_parameters(&p).unwrap_or(0);
            info[0x28..0x30].copy_from_slice(&pp.to_le_bytes());
            info[0x38..0x40].copy_from_slice(&p.peb.load(Ordering::Acquire).to_le_bytes());
            copy_to_user(a[9], &info)?;
            write_thread_attributes(&attributes, &t)?;
            Ok(())
        })();
        match r {
            Ok(()) => {
                if a[7] & THREAD_CREATE_FLAGS_CREATE_SUSPENDED == 0 {
                    resume_thread(&t);
                }
                Ok(STATUS_SUCCESS)
            }
            Err(e) => {
                // The process does not run: end it (its handles, if given,
                // stay the caller's and see it exited).
                let _ = terminate_process(&p, e);
                Err(e)
            }
        }
    })())
}

/// The process parameters' address (`PEB.ProcessParameters`) of `p`.
fn with_peb_parameters(p: &EProcess) -> Option<u64> {
    let peb = p.peb.load(Ordering::Acquire);
    create::with_attached(p, || {
        read_user::<u64>(peb + core::mem::offset_of!(nt::user::Peb, process_parameters) as u64)
    })
    .ok()
}

/// `NtCreateThreadEx(ThreadHandle, DesiredAccess, ObjectAttributes,
/// ProcessHandle, StartRoutine, Argument, CreateFlags, ZeroBits, StackSize,
/// MaximumStackSize, AttributeList)`: PROCESS_CREATE_THREAD on the process;
/// `CreateFlags` bit 0 creates it suspended (the other flags are ignored);
/// the stack is `MaximumStackSize` (or `StackSize`, or 256 KiB) committed.
fn nt_create_thread_ex(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        probe(a[0], 8, 8)?;
        let attributes = capture_object_attributes(a[2])?.map_or(0, |x| x.attributes);
        let list = capture_attribute_list(a[10])?;
        check_attributes(&list, false)?;
        if a[7] != 0 {
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        let (_r, p) = reference_process(user_handle(a[3])?, PROCESS_CREATE_THREAD, USER)?;
        let t = create::ps_create_user_thread(&p, a[4], a[5], a[9].max(a[8]), true)?;
        let r = (|| {
            let h = crate::ob::handle::ob_insert_object_handle(
                t.object(),
                a[1] as u32,
                attributes,
                USER,
            );
            let h = match h {
                Ok(h) => h,
                Err(e) => {
                    let _ = terminate_thread(&t, e);
                    return Err(e);
                }
            };
            give_handle(a[0], h)?;
            write_thread_attributes(&list, &t)
        })();
        match r {
            Ok(()) => {
                if a[6] & THREAD_CREATE_FLAGS_CREATE_SUSPENDED == 0 {
                    resume_thread(&t);
                }
                Ok(STATUS_SUCCESS)
            }
            Err(e) => {
                let _ = terminate_thread(&t, e);
                Err(e)
            }
        }
    })())
}

/// A `CLIENT_ID` from the caller.
fn read_client_id(at: u64) -> Result<(u64, u64), NtStatus> {
    probe(at, 16, 8)?;
    Ok((read_user(at)?, read_user(at + 8)?))
}

fn cid(v: u64) -> Result<u32, NtStatus> {
    u32::try_from(v).map_err(|_| STATUS_INVALID_CID)
}

/// `NtOpenProcess(ProcessHandle, DesiredAccess, ObjectAttributes, ClientId)`.
fn nt_open_process_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        probe(a[0], 8, 8)?;
        let attributes = capture_object_attributes(a[2])?.map_or(0, |x| x.attributes);
        if a[3] == 0 {
            return Err(STATUS_INVALID_PARAMETER_MIX);
        }
        let (pid, _) = read_client_id(a[3])?;
        let h = nt_open_process(a[1] as u32, attributes, cid(pid)?, USER)?;
        give_handle(a[0], h)?;
        Ok(STATUS_SUCCESS)
    })())
}

/// `NtOpenThread(ThreadHandle, DesiredAccess, ObjectAttributes, ClientId)`.
fn nt_open_thread_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        probe(a[0], 8, 8)?;
        let attributes = capture_object_attributes(a[2])?.map_or(0, |x| x.attributes);
        if a[3] == 0 {
            return Err(STATUS_INVALID_PARAMETER_MIX);
        }
        let (pid, tid) = read_client_id(a[3])?;
        let h = nt_open_thread(a[1] as u32, attributes, cid(pid)?, cid(tid)?, USER)?;
        give_handle(a[0], h)?;
        Ok(STATUS_SUCCESS)
    })())
}

/// The (class, buffer, length, return length) tail of the query services:
/// the answer is built in a kernel buffer and copied out.
fn query(
    a: &Args,
    f: impl FnOnce(&mut [u8], u64) -> Result<usize, NtStatus>,
) -> Result<NtStatus, NtStatus> {
    let len = a[3] as u32 as usize;
    if len > 1 << 16 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    probe(a[2], len, 4)?;
    if a[4] != 0 {
        probe(a[4], 4, 4)?;
    }
    let mut buffer = vec![0u8; len];
    let n = f(&mut buffer, a[2])?;
    copy_to_user(a[2], &buffer[..n.min(len)])?;
    if a[4] != 0 {
        write_user(a[4], &(n as u32))?;
    }
    Ok(STATUS_SUCCESS)
}

/// `NtQueryInformationProcess(ProcessHandle, ProcessInformationClass,
/// ProcessInformation, ProcessInformationLength, ReturnLength)`.
fn nt_query_information_process_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        let h = user_handle(a[0])?;
        query(a, |b, at| {
            nt_query_information_process(h, a[1] as u32, b, at, USER)
        })
    })())
}

/// `NtQueryInformationThread(ThreadHandle, ThreadInformationClass,
/// ThreadInformation, ThreadInformationLength, ReturnLength)`.
fn nt_query_information_thread_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        let h = user_handle(a[0])?;
        query(a, |b, _| {
            nt_query_information_thread(h, a[1] as u32, b, USER)
        })
    })())
}

fn suspend_resume(a: &Args, f: fn(u64, Mode) -> Result<u32, NtStatus>) -> NtStatus {
    result((|| {
        let h = user_handle(a[0])?;
        if a[1] != 0 {
            probe(a[1], 4, 4)?;
        }
        let prev = f(h, USER)?;
        if a[1] != 0 {
            write_user(a[1], &prev)?;
        }
        Ok(STATUS_SUCCESS)
    })())
}

/// `NtResumeThread(ThreadHandle, PreviousSuspendCount)`.
fn nt_resume_thread_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    suspend_resume(a, nt_resume_thread)
}

/// `NtSuspendThread(ThreadHandle, PreviousSuspendCount)`.
fn nt_suspend_thread_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    suspend_resume(a, nt_suspend_thread)
}

/// The largest output buffer a query service fills in kernel memory (the
/// caller's may be larger; the answer never is).
const QUERY_BUFFER_LIMIT: usize = 1 << 20;

/// The (buffer, length, return length) tail of a query whose failure may
/// still report a length: the answer is built in a kernel buffer and
/// copied out; `Err((status, n))` writes `n` to `ReturnLength` too, and
/// copies `n` bytes of data for a warning (STATUS_BUFFER_OVERFLOW).
fn query_with_length(
    buffer: u64,
    length: u64,
    return_length: u64,
    f: impl FnOnce(&mut [u8], u64) -> Result<usize, (NtStatus, usize)>,
) -> Result<NtStatus, NtStatus> {
    let len = length as u32 as usize;
    probe(buffer, len, 4)?;
    if return_length != 0 {
        probe(return_length, 4, 4)?;
    }
    let mut kernel = vec![0u8; len.min(QUERY_BUFFER_LIMIT)];
    let (status, n) = match f(&mut kernel, buffer) {
        Ok(n) => (STATUS_SUCCESS, n),
        Err((e, n)) => (e, n),
    };
    if !status.is_error() {
        copy_to_user(buffer, &kernel[..n.min(kernel.len())])?;
    }
    if return_length != 0 && (!status.is_error() || n != 0) {
        write_user(return_length, &(n as u32))?;
    }
    if status.is_error() {
        Err(status)
    } else {
        Ok(status)
    }
}

/// `NtQuerySystemInformation(SystemInformationClass, SystemInformation,
/// SystemInformationLength, ReturnLength)`: a short buffer is
/// STATUS_INFO_LENGTH_MISMATCH with the length needed in `ReturnLength`.
fn nt_query_system_information_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result(query_with_length(a[1], a[2], a[3], |b, at| {
        nt_query_system_information(a[0] as u32, b, at)
    }))
}

/// `NtCreateJobObject(JobHandle, DesiredAccess, ObjectAttributes)`.
fn nt_create_job_object_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        probe(a[0], 8, 8)?;
        let oa = capture_object_attributes(a[2])?;
        let (name, attributes) = match &oa {
            Some(x) => (x.name.as_deref(), x.attributes),
            None => (None, 0),
        };
        let (h, status) = job::nt_create_job_object(a[1] as u32, name, attributes, USER)?;
        give_handle(a[0], h)?;
        Ok(status)
    })())
}

/// `NtOpenJobObject(JobHandle, DesiredAccess, ObjectAttributes)`.
fn nt_open_job_object_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        probe(a[0], 8, 8)?;
        let oa = capture_object_attributes(a[2])?.ok_or(STATUS_INVALID_PARAMETER)?;
        let name = oa.name.ok_or(STATUS_OBJECT_NAME_INVALID)?;
        let h = job::nt_open_job_object(a[1] as u32, &name, oa.attributes, USER)?;
        give_handle(a[0], h)?;
        Ok(STATUS_SUCCESS)
    })())
}

/// `NtAssignProcessToJobObject(JobHandle, ProcessHandle)`.
fn nt_assign_process_to_job_object_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        let j = user_handle(a[0])?;
        let p = user_handle(a[1])?;
        Ok(job::nt_assign_process_to_job_object(j, p, USER))
    })())
}

/// `NtIsProcessInJob(ProcessHandle, JobHandle)` (a NULL job: any job).
fn nt_is_process_in_job_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        let p = user_handle(a[0])?;
        let j = match a[1] {
            0 => None,
            h => Some(user_handle(h)?),
        };
        Ok(job::nt_is_process_in_job(p, j, USER))
    })())
}

/// `NtTerminateJobObject(JobHandle, ExitStatus)`.
fn nt_terminate_job_object_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        let j = user_handle(a[0])?;
        Ok(job::nt_terminate_job_object(
            j,
            NtStatus(a[1] as u32 as i32),
            USER,
        ))
    })())
}

/// `NtQueryInformationJobObject(JobHandle, JobObjectInformationClass,
/// JobObjectInformation, JobObjectInformationLength, ReturnLength)`.
fn nt_query_information_job_object_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        let j = user_handle(a[0])?;
        query_with_length(a[2], a[3], a[4], |b, _| {
            job::nt_query_information_job_object(j, a[1] as u32, b, USER)
        })
    })())
}

/// `NtSetInformationJobObject(JobHandle, JobObjectInformationClass,
/// JobObjectInformation, JobObjectInformationLength)`.
fn nt_set_information_job_object_service(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    result((|| {
        let j = user_handle(a[0])?;
        let len = a[3] as u32 as usize;
        if len > 0x1000 {
            return Err(STATUS_INFO_LENGTH_MISMATCH);
        }
        probe(a[2], len, 4)?;
        let mut input = vec![0u8; len];
        copy_from_user(&mut input, a[2])?;
        Ok(job::nt_set_information_job_object(
            j,
            a[1] as u32,
            &input,
            USER,
        ))
    })())
}
