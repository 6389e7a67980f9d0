//! Debug output for drivers (`DbgPrint`, `DbgPrintEx`, `vDbgPrintEx`,
//! `vDbgPrintExWithPrefix`), the component filter (`Kd_<component>_Mask`,
//! `DbgQueryDebugFilterState`, `DbgSetDebugFilterState`, the registry's
//! `Control\Session Manager\Debug Print Filter`) and the print callbacks
//! (`DbgSetDebugPrintCallback`), as the WDK's "Reading and Filtering
//! Debugging Messages" describes them.
//!
//! `DbgPrint` and `DbgPrintEx` are C variadic routines. Stable Rust cannot
//! define one, so their entries are assembly: they spill RCX, RDX, R8 and
//! R9 to the caller's home area, which makes the arguments after the format
//! string one contiguous array of 8-byte slots (the Windows x64 `va_list`),
//! and call `vDbgPrintEx` with a pointer to it. The formatting itself is the
//! host-tested `nt::printf`; this file only reads memory for it, and reads
//! only addresses in the kernel half whose pages are mapped (ntrs has no
//! kernel SEH to catch a fault as NT's `__try` does).
//!
//! `DbgPrint` is `DbgPrintEx(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, ...)`, so
//! it is filtered as on Windows Vista and later; ntrs's SYSTEM hive sets
//! `Debug Print Filter\DEFAULT` so that drivers' `DbgPrint` lines show in
//! the boot log. A message is cut at 512 bytes, as Windows cuts it.

use crate::cm::{nt_open_key, nt_query_value_key, KEY_READ};
use crate::mm::pte;
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use nt::dpfltr::{self, DPFLTR_DEFAULT_ID, DPFLTR_ENDOFTABLE_ID, DPFLTR_INFO_LEVEL};
use nt::printf::{ArgMemory, Output, VaArgs};
use nt::status::*;

// DbgPrint(Format, ...) and DbgPrintEx(ComponentId, Level, Format, ...):
// spill the register arguments to the home area (the caller reserved it),
// so the variadic arguments follow the format pointer in memory, and call
// vDbgPrintEx(ComponentId, Level, Format, &first variadic argument). On
// entry RSP is 8 mod 16; 40 bytes (home area for the callee + alignment)
// make it 0 mod 16 at the call.
core::arch::global_asm!(
    ".globl DbgPrint",
    "DbgPrint:",
    "mov [rsp + 8], rcx",
    "mov [rsp + 16], rdx",
    "mov [rsp + 24], r8",
    "mov [rsp + 32], r9",
    "lea r9, [rsp + 16]",
    "mov r8, rcx",
    "mov ecx, {default_id}",
    "mov edx, {info_level}",
    "sub rsp, 40",
    "call vDbgPrintEx",
    "add rsp, 40",
    "ret",
    ".globl DbgPrintEx",
    "DbgPrintEx:",
    "mov [rsp + 8], rcx",
    "mov [rsp + 16], rdx",
    "mov [rsp + 24], r8",
    "mov [rsp + 32], r9",
    "lea r9, [rsp + 32]",
    "sub rsp, 40",
    "call vDbgPrintEx",
    "add rsp, 40",
    "ret",
    default_id = const DPFLTR_DEFAULT_ID,
    info_level = const DPFLTR_INFO_LEVEL,
);

/// The most a single call sends (Windows: 512 bytes).
pub const MAX_MESSAGE: usize = 512;

/// The longest format string read (a guard against a missing NUL).
const MAX_FORMAT: usize = 16 * 1024;

/// `Kd_<component>_Mask`, indexed by `DPFLTR_<component>_ID`.
static COMPONENT_MASKS: [AtomicU32; DPFLTR_ENDOFTABLE_ID as usize] =
    [const { AtomicU32::new(0) }; DPFLTR_ENDOFTABLE_ID as usize];

/// `Kd_WIN2000_Mask`: the error level, as on Windows.
static WIN2000_MASK: AtomicU32 = AtomicU32::new(1 << dpfltr::DPFLTR_ERROR_LEVEL);

/// `Kd_<component>_Mask` of `id` (0 for an id past the table).
pub fn component_mask(id: u32) -> u32 {
    COMPONENT_MASKS
        .get(id as usize)
        .map(|m| m.load(Ordering::Relaxed))
        .unwrap_or(0)
}

/// Sets `Kd_<component>_Mask` (`ed nt!Kd_<component>_Mask`); false for an
/// id past the table.
pub fn set_component_mask(id: u32, mask: u32) -> bool {
    COMPONENT_MASKS
        .get(id as usize)
        .map(|m| m.store(mask, Ordering::Relaxed))
        .is_some()
}

/// Whether a message of `component`/`level` goes out (`vDbgPrintExWithPrefix`'s
/// filter; an id past the table has only `Kd_WIN2000_Mask`).
pub fn filter_enabled(component: u32, level: u32) -> bool {
    dpfltr::enabled(
        level,
        component_mask(component),
        WIN2000_MASK.load(Ordering::Relaxed),
    )
}

/// Loads the masks from `CurrentControlSet\Control\Session Manager\Debug
/// Print Filter` (a `REG_DWORD` per component name, `WIN2000` for the
/// WIN2000 mask), as Windows does at boot. Returns how many were set.
pub fn kd_update_debug_filter_from_registry() -> usize {
    const KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Control\\Session Manager\\Debug Print Filter";
    let Ok(h) = nt_open_key(KEY, KEY_READ, Mode::KernelMode) else {
        return 0;
    };
    let dword = |name: &str| -> Option<u32> {
        let (_, d) = nt_query_value_key(h, name, Mode::KernelMode).ok()?;
        Some(u32::from_le_bytes(d.get(..4)?.try_into().ok()?))
    };
    let mut n = 0;
    for (id, name) in dpfltr::COMPONENT_NAMES.iter().enumerate() {
        if let Some(v) = dword(name) {
            set_component_mask(id as u32, v);
            n += 1;
        }
    }
    if let Some(v) = dword("WIN2000") {
        WIN2000_MASK.store(v, Ordering::Relaxed);
        n += 1;
    }
    let _ = nt_close(h);
    n
}

/// Kernel memory as the formatter reads it: only addresses in the kernel
/// half whose pages are mapped (a page ntrs maps stays mapped while a
/// driver can name it: kernel memory is not paged).
struct KernelMemory;

impl KernelMemory {
    fn readable(addr: u64, len: usize) -> bool {
        let Some(end) = addr.checked_add(len as u64) else {
            return false;
        };
        if addr < 0xFFFF_8000_0000_0000 || len == 0 {
            return len == 0;
        }
        let mut page = addr & !0xFFF;
        while page < end {
            if pte::physical_address(page).is_none() {
                return false;
            }
            page += 0x1000;
        }
        true
    }
}

impl ArgMemory for KernelMemory {
    fn read(&self, addr: u64, out: &mut [u8]) -> bool {
        if !Self::readable(addr, out.len()) {
            return false;
        }
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: every page of [addr, addr + len) was just found mapped
            // in the kernel half, where nothing is paged out.
            *b = unsafe { core::ptr::read_volatile((addr + i as u64) as *const u8) };
        }
        true
    }
}

/// A Windows x64 `va_list`: consecutive 8-byte slots; a slot that is not
/// readable kernel memory reads as 0.
struct KernelVaList(u64);

impl VaArgs for KernelVaList {
    fn next_slot(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let v = if KernelMemory.read(self.0, &mut b) {
            u64::from_le_bytes(b)
        } else {
            0
        };
        self.0 = self.0.wrapping_add(8);
        v
    }
}

/// The NUL-terminated string at `p` as a slice of kernel memory, if it is
/// readable up to its NUL (at most MAX_FORMAT bytes).
fn kernel_c_string(p: u64) -> Option<&'static [u8]> {
    let mut n = 0usize;
    loop {
        if n >= MAX_FORMAT {
            return None;
        }
        let mut b = [0u8; 1];
        if !KernelMemory.read(p + n as u64, &mut b) {
            return None;
        }
        if b[0] == 0 {
            break;
        }
        n += 1;
    }
    // SAFETY: the n bytes at p were just read through KernelMemory (mapped
    // kernel pages, never paged out); the caller's format string outlives
    // the call.
    Some(unsafe { core::slice::from_raw_parts(p as *const u8, n) })
}

/// `PDEBUG_PRINT_CALLBACK`: `(PSTRING Output, ULONG ComponentId, ULONG Level)`.
pub type DebugPrintCallback = unsafe extern "system" fn(*const AnsiString, u32, u32);

/// `STRING` (`ANSI_STRING`) as the callbacks receive it.
#[repr(C)]
pub struct AnsiString {
    pub length: u16,
    pub maximum_length: u16,
    pub buffer: *const u8,
}

/// The registered callbacks (0 = free slot) and the prints running them
/// (an unregistering caller waits until none is in flight).
static CALLBACKS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static CALLBACKS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// `DbgSetDebugPrintCallback`: registers (Enable) or removes a routine
/// called with every message that passes the filter. Eight at most
/// (`STATUS_INSUFFICIENT_RESOURCES`); registering one twice or removing one
/// not registered is `STATUS_INVALID_PARAMETER`. Removal returns once no
/// print is running the callbacks.
pub fn dbg_set_debug_print_callback(cb: Option<DebugPrintCallback>, enable: bool) -> NtStatus {
    let Some(cb) = cb else {
        return STATUS_INVALID_PARAMETER;
    };
    let v = cb as usize as u64;
    if enable {
        if CALLBACKS.iter().any(|c| c.load(Ordering::Acquire) == v) {
            return STATUS_INVALID_PARAMETER;
        }
        for c in &CALLBACKS {
            if c.compare_exchange(0, v, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return STATUS_SUCCESS;
            }
        }
        STATUS_INSUFFICIENT_RESOURCES
    } else {
        let Some(slot) = CALLBACKS.iter().find(|c| c.load(Ordering::Acquire) == v) else {
            return STATUS_INVALID_PARAMETER;
        };
        slot.store(0, Ordering::SeqCst);
        while CALLBACKS_IN_FLIGHT.load(Ordering::SeqCst) != 0 {
            core::hint::spin_loop();
        }
        STATUS_SUCCESS
    }
}

/// `vDbgPrintExWithPrefix`: formats `format` with the `va_list` at `args`
/// after `prefix`, and sends it to the debug port and the callbacks if the
/// filter lets it through. `STATUS_SUCCESS`, or `STATUS_INVALID_PARAMETER`
/// for an unreadable format.
pub fn v_dbg_print_ex_with_prefix(
    prefix: &[u8],
    component: u32,
    level: u32,
    format: u64,
    args: u64,
) -> NtStatus {
    if !filter_enabled(component, level) {
        return STATUS_SUCCESS;
    }
    let Some(fmt) = kernel_c_string(format) else {
        return STATUS_INVALID_PARAMETER;
    };
    let mut buf = [0u8; MAX_MESSAGE];
    let mut out = Output::new(&mut buf);
    for &b in prefix {
        out.push_byte(b);
    }
    nt::printf::format(fmt, &mut KernelVaList(args), &KernelMemory, &mut out);
    emit(out.as_bytes(), component, level);
    STATUS_SUCCESS
}

fn emit(msg: &[u8], component: u32, level: u32) {
    for chunk in msg.utf8_chunks() {
        crate::dbg_print!("{}", chunk.valid());
        for _ in chunk.invalid() {
            crate::dbg_print!("?");
        }
    }
    CALLBACKS_IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let s = AnsiString {
        length: msg.len() as u16,
        maximum_length: msg.len() as u16,
        buffer: msg.as_ptr(),
    };
    for c in &CALLBACKS {
        let v = c.load(Ordering::SeqCst);
        if v != 0 {
            // SAFETY: v was stored from a DebugPrintCallback by
            // dbg_set_debug_print_callback and stays valid until its removal,
            // which waits for CALLBACKS_IN_FLIGHT to drain.
            let f: DebugPrintCallback = unsafe { core::mem::transmute(v as usize) };
            // SAFETY: the STRING lives across the call.
            unsafe { f(&s, component, level) };
        }
    }
    CALLBACKS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
}

/// `vDbgPrintEx(ComponentId, Level, Format, arglist)`: exported; also the
/// target of the `DbgPrint`/`DbgPrintEx` entries. Returns an NTSTATUS.
#[no_mangle]
pub extern "system" fn vDbgPrintEx(
    component: u32,
    level: u32,
    format: *const u8,
    args: *const u64,
) -> u32 {
    v_dbg_print_ex_with_prefix(b"", component, level, format as u64, args as u64).as_u32()
}

/// `vDbgPrintExWithPrefix(Prefix, ComponentId, Level, Format, arglist)`.
#[no_mangle]
pub extern "system" fn vDbgPrintExWithPrefix(
    prefix: *const u8,
    component: u32,
    level: u32,
    format: *const u8,
    args: *const u64,
) -> u32 {
    let p = if prefix.is_null() {
        Some(&b""[..])
    } else {
        kernel_c_string(prefix as u64)
    };
    match p {
        Some(p) => {
            v_dbg_print_ex_with_prefix(p, component, level, format as u64, args as u64).as_u32()
        }
        None => STATUS_INVALID_PARAMETER.as_u32(),
    }
}

/// `DbgQueryDebugFilterState(ComponentId, Level)`: TRUE or FALSE as an
/// NTSTATUS, `STATUS_INVALID_PARAMETER_1` for an unknown component.
#[no_mangle]
pub extern "system" fn DbgQueryDebugFilterState(component: u32, level: u32) -> u32 {
    if component >= DPFLTR_ENDOFTABLE_ID {
        return STATUS_INVALID_PARAMETER_1.as_u32();
    }
    filter_enabled(component, level) as u32
}

/// `DbgSetDebugFilterState(ComponentId, Level, State)`: sets or clears the
/// level's bit (or mask) in `Kd_<component>_Mask`.
#[no_mangle]
pub extern "system" fn DbgSetDebugFilterState(component: u32, level: u32, state: u8) -> u32 {
    let Some(m) = COMPONENT_MASKS.get(component as usize) else {
        return STATUS_INVALID_PARAMETER_1.as_u32();
    };
    let bits = if level < 32 { 1u32 << level } else { level };
    if state != 0 {
        m.fetch_or(bits, Ordering::Relaxed);
    } else {
        m.fetch_and(!bits, Ordering::Relaxed);
    }
    STATUS_SUCCESS.as_u32()
}

/// `DbgSetDebugPrintCallback(DebugPrintCallback, Enable)`.
#[no_mangle]
pub extern "system" fn DbgSetDebugPrintCallback(cb: Option<DebugPrintCallback>, enable: u8) -> u32 {
    dbg_set_debug_print_callback(cb, enable != 0).as_u32()
}
