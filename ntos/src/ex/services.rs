//! The system service table (`KiServiceTable`) and the service routines'
//! user-mode entry halves (*Windows Internals*, Part 2, ch. 8, "System
//! service dispatching"): each takes the raw arguments `KiSystemCall64`
//! collected, probes and captures user pointers (a bad pointer gives
//! STATUS_ACCESS_VIOLATION, never a crash), calls the executive routine
//! with PreviousMode UserMode and copies results back.
//!
//! The table is built from the one list `nt::syscalls` (Windows 10 build
//! 19045 numbers): every listed name must have a routine here
//! (`missing_routines`, checked by a boot test), and every number not in
//! the list returns STATUS_INVALID_SYSTEM_SERVICE.
//!
//! Not there yet (STATUS_NOT_IMPLEMENTED): other processes' handles than
//! `NtCurrentProcess()` in the virtual-memory services (the process
//! manager's objects), a non-zero `ZeroBits`, named objects under a
//! `RootDirectory`, and `NtWriteFile` with an APC routine.

use super::event::EventType;
use crate::ke::syscall::{ServiceEntry, ServiceRoutine, MAX_SERVICE_ARGUMENTS};
use crate::ke::trap::KTrapFrame;
use crate::ke::user::{copy_from_user, probe, read_user, write_user};
use crate::ob::object::Mode;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use nt::status::*;
use nt::syscalls::{table_limit, SERVICES};
use nt::NtStatus;

type Args = [u64; MAX_SERVICE_ARGUMENTS];

const NT_CURRENT_PROCESS: u64 = u64::MAX;
const NT_CURRENT_THREAD: u64 = u64::MAX - 1;
const USER: Mode = Mode::UserMode;

fn routine(name: &str) -> Option<ServiceRoutine> {
    Some(match name {
        "NtWaitForSingleObject" => nt_wait_for_single_object,
        "NtWriteFile" => nt_write_file,
        "NtSetEvent" => nt_set_event,
        "NtClose" => nt_close,
        "NtAllocateVirtualMemory" => nt_allocate_virtual_memory,
        "NtFreeVirtualMemory" => nt_free_virtual_memory,
        "NtQueryVirtualMemory" => nt_query_virtual_memory,
        "NtTerminateProcess" => nt_terminate_process,
        "NtQueryPerformanceCounter" => nt_query_performance_counter,
        "NtDelayExecution" => nt_delay_execution,
        "NtClearEvent" => nt_clear_event,
        "NtYieldExecution" => nt_yield_execution,
        "NtCreateEvent" => nt_create_event,
        "NtProtectVirtualMemory" => nt_protect_virtual_memory,
        "NtTerminateThread" => nt_terminate_thread,
        "NtQuerySystemTime" => nt_query_system_time,
        "NtDisplayString" => nt_display_string,
        "NtResetEvent" => nt_reset_event,
        _ => {
            return crate::ps::syscalls::routine(name).or_else(|| super::xcpt::routine(name));
        }
    })
}

/// Names in the service list that have no routine here (must be empty).
pub fn missing_routines() -> Vec<&'static str> {
    SERVICES
        .iter()
        .filter(|s| routine(s.name).is_none())
        .map(|s| s.name)
        .collect()
}

static TABLE: crate::rtl::Once<&'static [Option<ServiceEntry>]> = crate::rtl::Once::new();

/// Builds `KiServiceTable` from the list and registers it with the kernel.
pub fn initialize() {
    if TABLE.get().is_some() {
        return;
    }
    super::xcpt::initialize();
    let mut t = vec![None; table_limit()];
    for s in SERVICES {
        if let Some(r) = routine(s.name) {
            t[s.number as usize] = Some(ServiceEntry {
                routine: r,
                arguments: s.arguments,
                delivers_apcs: matches!(s.name, "NtTestAlert" | "NtContinue"),
            });
        }
    }
    let t: &'static [Option<ServiceEntry>] = t.leak();
    TABLE.set(t);
    crate::ke::syscall::register_service_table(t);
}

fn status(r: Result<(), NtStatus>) -> NtStatus {
    r.err().unwrap_or(STATUS_SUCCESS)
}

/// A user-mode handle value: kernel handles are not the caller's.
pub(crate) fn user_handle(h: u64) -> Result<u64, NtStatus> {
    if h & crate::ob::handle::KERNEL_HANDLE_MASK == crate::ob::handle::KERNEL_HANDLE_MASK
        && h != NT_CURRENT_PROCESS
        && h != NT_CURRENT_THREAD
    {
        return Err(STATUS_INVALID_HANDLE);
    }
    Ok(h)
}

/// Captures a `UNICODE_STRING` (at most 32 KiB of text) as a `String`.
fn capture_unicode_string(at: u64) -> Result<String, NtStatus> {
    let us: nt::user::UnicodeString = read_user(at)?;
    if !us.length.is_multiple_of(2) || us.length > us.maximum_length {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let mut bytes = vec![0u8; us.length as usize];
    copy_from_user(&mut bytes, us.buffer)?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Ok(String::from_utf16_lossy(&units))
}

/// `OBJECT_ATTRIBUTES` (x64) as the services use them: name and attributes.
pub(crate) struct Attributes {
    pub name: Option<String>,
    pub attributes: u32,
}

pub(crate) fn capture_object_attributes(at: u64) -> Result<Option<Attributes>, NtStatus> {
    if at == 0 {
        return Ok(None);
    }
    let mut raw = [0u8; 0x30];
    probe(at, raw.len(), 8)?;
    copy_from_user(&mut raw, at)?;
    let q = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or([0; 8]));
    let length = u32::from_le_bytes(raw[0..4].try_into().unwrap_or([0; 4]));
    if length != 0x30 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    if q(8) != 0 {
        return Err(STATUS_NOT_IMPLEMENTED);
    }
    let name = match q(0x10) {
        0 => None,
        p => Some(capture_unicode_string(p)?),
    };
    Ok(Some(Attributes {
        name,
        attributes: q(0x18) as u32,
    }))
}

/// A relative (negative) or absolute (positive) NT timeout in 100 ns units
/// as a relative interval.
fn relative_interval(t: i64) -> u64 {
    if t < 0 {
        t.unsigned_abs()
    } else {
        (t as u64).saturating_sub(crate::ke::clock::ke_query_system_time())
    }
}

fn nt_display_string(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    let text = match capture_unicode_string(a[0]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    crate::dbg_println!("{text}");
    super::uproc::record_output(&text);
    STATUS_SUCCESS
}

fn nt_terminate_process(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    let status = NtStatus(a[1] as i32);
    match a[0] {
        // NULL: every other thread of the caller's process.
        0 => crate::ps::services::nt_terminate_other_threads(status),
        h => match user_handle(h) {
            Ok(h) => crate::ps::services::nt_terminate_process(h, status, USER),
            Err(e) => e,
        },
    }
}

fn nt_terminate_thread(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    let status = NtStatus(a[1] as i32);
    // NULL: the current thread (the last thread's exit ends its process).
    let h = if a[0] == 0 { NT_CURRENT_THREAD } else { a[0] };
    match user_handle(h) {
        Ok(h) => crate::ps::services::nt_terminate_thread(h, status, USER),
        Err(e) => e,
    }
}

fn nt_query_system_time(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    let now = crate::ke::clock::ke_query_system_time() as i64;
    status(probe(a[0], 8, 4).and_then(|_| write_user(a[0], &now)))
}

fn nt_query_performance_counter(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    let counter = crate::hal::rdtsc() as i64;
    let freq = crate::rtl::loader_block().tsc_frequency as i64;
    status((|| {
        probe(a[0], 8, 4)?;
        write_user(a[0], &counter)?;
        if a[1] != 0 {
            probe(a[1], 8, 4)?;
            write_user(a[1], &freq)?;
        }
        Ok(())
    })())
}

fn nt_delay_execution(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    let t: i64 = match probe(a[1], 8, 4).and_then(|_| read_user(a[1])) {
        Ok(t) => t,
        Err(e) => return e,
    };
    crate::ke::sched::ke_delay_execution_thread_ex(true, a[0] as u8 != 0, relative_interval(t))
}

fn nt_yield_execution(_: &Args, _: &mut KTrapFrame) -> NtStatus {
    crate::ke::sched::ke_yield_execution()
}

fn nt_create_event(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    let r = (|| {
        probe(a[0], 8, 8)?;
        let attrs = capture_object_attributes(a[2])?;
        let ty = match a[3] as u32 {
            0 => EventType::NotificationEvent,
            1 => EventType::SynchronizationEvent,
            _ => return Err(STATUS_INVALID_PARAMETER_4),
        };
        let (name, attributes) = match &attrs {
            Some(x) => (x.name.as_deref(), x.attributes),
            None => (None, 0),
        };
        let (h, st) = super::event::nt_create_event(
            a[1] as u32,
            name,
            attributes,
            ty,
            a[4] as u8 != 0,
            USER,
        )?;
        if let Err(e) = write_user(a[0], &h) {
            let _ = crate::ob::handle::nt_close(h);
            return Err(e);
        }
        Ok(st)
    })();
    r.unwrap_or_else(|e| e)
}

fn event_op(a: &Args, op: fn(u64, Mode) -> Result<i32, NtStatus>, with_previous: bool) -> NtStatus {
    let r = (|| {
        let h = user_handle(a[0])?;
        if with_previous && a[1] != 0 {
            probe(a[1], 4, 4)?;
        }
        let prev = op(h, USER)?;
        if with_previous && a[1] != 0 {
            write_user(a[1], &prev)?;
        }
        Ok(())
    })();
    status(r)
}

fn nt_set_event(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    event_op(a, super::event::nt_set_event, true)
}

fn nt_reset_event(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    event_op(a, super::event::nt_reset_event, true)
}

fn nt_clear_event(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    event_op(a, super::event::nt_reset_event, false)
}

fn nt_wait_for_single_object(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    let r = (|| {
        let h = user_handle(a[0])?;
        let timeout = match a[2] {
            0 => None,
            p => {
                probe(p, 8, 4)?;
                Some(relative_interval(read_user::<i64>(p)?))
            }
        };
        Ok(super::event::nt_wait_for_single_object(
            h,
            a[1] as u8 != 0,
            timeout,
            USER,
        ))
    })();
    r.unwrap_or_else(|e| e)
}

fn nt_close(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    match user_handle(a[0]) {
        Ok(h) => crate::ob::handle::nt_close(h),
        Err(e) => e,
    }
}

/// The in/out `PVOID*` and `SIZE_T*` of the virtual-memory services.
fn read_base_size(base: u64, size: u64) -> Result<(u64, u64), NtStatus> {
    probe(base, 8, 8)?;
    probe(size, 8, 8)?;
    Ok((read_user(base)?, read_user(size)?))
}

fn current_process_only(h: u64) -> Result<(), NtStatus> {
    if h == NT_CURRENT_PROCESS {
        Ok(())
    } else {
        Err(STATUS_NOT_IMPLEMENTED)
    }
}

fn nt_allocate_virtual_memory(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    status((|| {
        current_process_only(a[0])?;
        let (mut b, mut s) = read_base_size(a[1], a[3])?;
        if a[2] != 0 {
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        let st = crate::mm::process::nt_allocate_virtual_memory(
            &mut b,
            &mut s,
            a[4] as u32,
            a[5] as u32,
        );
        if st.is_error() {
            return Err(st);
        }
        write_user(a[1], &b)?;
        write_user(a[3], &s)
    })())
}

fn nt_free_virtual_memory(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    status((|| {
        current_process_only(a[0])?;
        let (mut b, mut s) = read_base_size(a[1], a[2])?;
        if b & !0xFFF == nt::user::MM_SHARED_USER_DATA_VA {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        let st = crate::mm::process::nt_free_virtual_memory(&mut b, &mut s, a[3] as u32);
        if st.is_error() {
            return Err(st);
        }
        write_user(a[1], &b)?;
        write_user(a[2], &s)
    })())
}

fn nt_protect_virtual_memory(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    status((|| {
        current_process_only(a[0])?;
        let (mut b, mut s) = read_base_size(a[1], a[2])?;
        probe(a[4], 4, 4)?;
        if b & !0xFFF == nt::user::MM_SHARED_USER_DATA_VA {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        let old = crate::mm::process::nt_protect_virtual_memory(&mut b, &mut s, a[3] as u32)?;
        write_user(a[1], &b)?;
        write_user(a[2], &s)?;
        write_user(a[4], &old)
    })())
}

fn nt_query_virtual_memory(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    status((|| {
        current_process_only(a[0])?;
        if a[2] != 0 {
            // Only MemoryBasicInformation.
            return Err(STATUS_INVALID_INFO_CLASS);
        }
        if a[4] < 0x30 {
            return Err(STATUS_INFO_LENGTH_MISMATCH);
        }
        probe(a[3], 0x30, 8)?;
        if a[5] != 0 {
            probe(a[5], 8, 8)?;
        }
        let m = crate::mm::process::nt_query_virtual_memory(a[1])?;
        // MEMORY_BASIC_INFORMATION (x64).
        let mut out = [0u8; 0x30];
        out[0..8].copy_from_slice(&m.base_address.to_le_bytes());
        out[8..16].copy_from_slice(&m.allocation_base.to_le_bytes());
        out[16..20].copy_from_slice(&m.allocation_protect.to_le_bytes());
        out[24..32].copy_from_slice(&m.region_size.to_le_bytes());
        out[32..36].copy_from_slice(&m.state.to_le_bytes());
        out[36..40].copy_from_slice(&m.protect.to_le_bytes());
        out[40..44].copy_from_slice(&m.type_.to_le_bytes());
        crate::ke::user::copy_to_user(a[3], &out)?;
        if a[5] != 0 {
            write_user(a[5], &0x30u64)?;
        }
        Ok(())
    })())
}

/// `NtWriteFile` for synchronous requests: the data is captured into a
/// kernel buffer, the I/O manager sends the IRP, and the status block is
/// copied back to the caller's.
fn nt_write_file(a: &Args, _: &mut KTrapFrame) -> NtStatus {
    let r = (|| {
        let h = user_handle(a[0])?;
        if a[2] != 0 {
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        probe(a[4], 16, 8)?;
        let len = a[6] as u32;
        if len > 1 << 20 {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let mut data = vec![0u8; len as usize];
        copy_from_user(&mut data, a[5])?;
        let offset = match a[7] {
            0 => None,
            p => {
                probe(p, 8, 4)?;
                Some(read_user::<i64>(p)?)
            }
        };
        let mut iosb = wdk::IO_STATUS_BLOCK::zeroed();
        let args = crate::io::file::RequestArgs {
            event: (a[1] != 0).then_some(a[1]),
            apc_context: 0,
            iosb: &mut iosb,
            mode: USER,
            apc_routine: None,
        };
        let st = crate::io::file::nt_write_file(
            h,
            &args,
            data.as_mut_ptr().cast(),
            len,
            offset,
            a[8] as u32,
        )?;
        if st == STATUS_PENDING {
            // The kernel buffer and status block must outlive the request.
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        let mut out = [0u8; 16];
        out[0..4].copy_from_slice(&iosb.Status.0.to_le_bytes());
        out[8..16].copy_from_slice(&(iosb.Information as u64).to_le_bytes());
        crate::ke::user::copy_to_user(a[4], &out)?;
        Ok(st)
    })();
    r.unwrap_or_else(|e| e)
}
