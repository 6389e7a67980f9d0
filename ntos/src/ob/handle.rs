//! Handles (*Windows Internals*, Part 2, ch. 8, "Object handles and the
//! process handle table"): the kernel handle table (`ObpKernelHandleTable`,
//! handles with the sign bit set, `OBJ_KERNEL_HANDLE`) and each process's
//! table (`EPROCESS.ObjectTable`, owned by the process manager; handles
//! without the sign bit name the current process's), over the host-tested
//! lock-free `::ob::handle::HandleTable`.
//! No path here takes the object manager's lock unless an object loses its
//! name or its last reference: `ObReferenceObjectByHandle` locks one handle
//! entry (at DISPATCH_LEVEL, so the holder is never preempted by a spinner)
//! and counts with atomic operations.

use super::object::{handle_closed, ob_dereference_object, Mode, OBJ_KERNEL_HANDLE};
use super::types::ObjectTypeRef;
use super::OB_HEADERS;
use crate::ke::DISPATCH_LEVEL;
use ::ob::handle::{Handle, HandleEntry, HandleTable, HANDLE_INHERIT, HANDLE_PROTECT_FROM_CLOSE};
use ::ob::namespace::ObjectId;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

/// Kernel handles carry the sign bit (`KERNEL_HANDLE_MASK`).
pub const KERNEL_HANDLE_MASK: u64 = 0xFFFF_FFFF_8000_0000;
/// `NtCurrentProcess()` and `NtCurrentThread()`.
pub const NT_CURRENT_PROCESS: u64 = u64::MAX;
pub const NT_CURRENT_THREAD: u64 = u64::MAX - 1;
/// `OBJ_INHERIT`.
pub const OBJ_INHERIT: u32 = 0x2;
/// `DUPLICATE_CLOSE_SOURCE`, `DUPLICATE_SAME_ACCESS`, `DUPLICATE_SAME_ATTRIBUTES`.
pub const DUPLICATE_CLOSE_SOURCE: u32 = 1;
pub const DUPLICATE_SAME_ACCESS: u32 = 2;
pub const DUPLICATE_SAME_ATTRIBUTES: u32 = 4;

/// A handle table (`HANDLE_TABLE`).
pub type Table = HandleTable<ObjectId>;

/// `ObpKernelHandleTable`.
static KERNEL_TABLE: Table = HandleTable::new();
/// The System process's handle table (`PsInitialSystemProcess->ObjectTable`).
static SYSTEM_TABLE: Table = HandleTable::new();
/// The System process's id (`PsInitialSystemProcess->UniqueProcessId`).
pub const SYSTEM_PROCESS_ID: u32 = 4;

/// The System process's handle table.
pub fn system_table() -> &'static Table {
    &SYSTEM_TABLE
}

/// Runs `f` on the table a handle value belongs to (the kernel table for
/// kernel handles, else the current process's) and its index part.
fn with_table<R>(handle: u64, f: impl FnOnce(&Table, Handle) -> R) -> R {
    if handle & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK {
        f(&KERNEL_TABLE, Handle(handle & !KERNEL_HANDLE_MASK))
    } else {
        crate::ps::with_current_handle_table(|t| f(t, Handle(handle)))
    }
}

/// Runs `f` at DISPATCH_LEVEL at least (a handle entry lock is held only
/// there, so no thread on the same processor can preempt its holder and
/// spin on it).
#[inline(always)]
fn at_dispatch<R>(f: impl FnOnce() -> R) -> R {
    let old = crate::ke::irql();
    if old >= DISPATCH_LEVEL {
        return f();
    }
    // KeRaiseIrql/KeLowerIrql without their checks: `old` was read here
    // and is below DISPATCH_LEVEL.
    crate::ke::irql::set_irql(DISPATCH_LEVEL);
    let r = f();
    crate::ke::irql::set_irql(old);
    r
}

/// A referenced object from `ob_reference_object_by_handle`; dropping it is
/// `ObDereferenceObject`.
pub struct ObjectRef {
    pub id: ObjectId,
    pub granted_access: u32,
}

impl Drop for ObjectRef {
    fn drop(&mut self) {
        ob_dereference_object(self.id);
    }
}

/// `ObInsertObject`'s handle half (`ObpCreateHandle`): the type's open
/// procedure may refuse; the handle is counted on the object (one more
/// handle and pointer reference) and stored with the granted access in the
/// kernel table (`OBJ_KERNEL_HANDLE`) or the process's. The caller holds a
/// reference to `id`.
pub fn ob_create_handle(id: ObjectId, granted: u32, attributes: u32) -> Result<u64, NtStatus> {
    if attributes & OBJ_KERNEL_HANDLE != 0 {
        ob_create_handle_in(&KERNEL_TABLE, id, granted, attributes)
    } else {
        crate::ps::with_current_handle_table(|t| ob_create_handle_in(t, id, granted, attributes))
    }
}

/// `ObpCreateHandle` in a given table (the process manager creates handles
/// in a process other than the current one, e.g. inherited handles).
pub fn ob_create_handle_in(
    table: &Table,
    id: ObjectId,
    granted: u32,
    attributes: u32,
) -> Result<u64, NtStatus> {
    let ty = OB_HEADERS.type_index(id).ok_or(STATUS_INVALID_HANDLE)?;
    if let Some(open) = super::types::info(ty).open {
        open(super::types::OpenReason::ObOpenHandle, id, granted)?;
    }
    OB_HEADERS.open_handle(id)?;
    let kernel = core::ptr::eq(table, &KERNEL_TABLE);
    let entry = HandleEntry {
        object: id,
        granted_access: granted,
        attributes: if attributes & OBJ_INHERIT != 0 {
            HANDLE_INHERIT
        } else {
            0
        },
    };
    // A table that grows takes its new page from the pool, charged to Obtb.
    let created = {
        let _tag = crate::ex::pool::PoolTag::enter(*b"Obtb");
        table.create(entry)
    };
    match created {
        Ok(h) => Ok(if kernel {
            h.0 | KERNEL_HANDLE_MASK
        } else {
            h.0
        }),
        Err(e) => {
            handle_closed(id);
            Err(e)
        }
    }
}

/// `ObInsertObject`'s handle for a new object the caller holds one reference
/// to: the access the creator gets is checked against the object's
/// descriptor with the caller's effective token (an object without one
/// grants what is asked), the handle is created, and the caller's reference
/// is dropped (the handle keeps the object).
pub fn ob_insert_object_handle(
    id: ObjectId,
    desired: u32,
    attributes: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    let r = (|| {
        let ty = OB_HEADERS.type_index(id).ok_or(STATUS_INVALID_HANDLE)?;
        let sd = super::object::with_body(id, |b| b.sd.clone()).flatten();
        let map = super::types::info(ty).generic_mapping;
        let granted = match sd {
            Some(sd)
                if mode == Mode::UserMode
                    || attributes & super::object::OBJ_FORCE_ACCESS_CHECK != 0 =>
            {
                let subject = crate::se::se_capture_subject_context();
                security::check::access_check(
                    &sd,
                    subject.effective_token(),
                    desired,
                    &map,
                    security::check::CheckFlags::default(),
                )?
            }
            _ => {
                if desired & security::access::MAXIMUM_ALLOWED != 0 {
                    map.all
                        | security::access::map_generic(
                            desired & !security::access::MAXIMUM_ALLOWED,
                            &map,
                        )
                } else {
                    security::access::map_generic(desired, &map)
                }
            }
        };
        ob_create_handle(id, granted, attributes)
    })();
    ob_dereference_object(id);
    r
}

/// `ObOpenObjectByName`: looks the name up (checking type and access for
/// `token`, the caller's effective token) and returns a handle.
pub fn ob_open_object_by_name_handle(
    path: &str,
    object_type: Option<&ObjectTypeRef>,
    attributes: u32,
    desired: u32,
    mode: Mode,
    token: &security::token::Token,
) -> Result<u64, NtStatus> {
    let (id, granted) =
        super::object::ob_open_object_by_name(path, object_type, attributes, desired, mode, token)?;
    let r = ob_create_handle(id, granted, attributes);
    ob_dereference_object(id);
    r
}

/// `ObReferenceObjectByHandle`: the object behind `handle`, referenced.
/// STATUS_INVALID_HANDLE for a handle not in the table (or a kernel handle
/// used from user mode), STATUS_OBJECT_TYPE_MISMATCH for the wrong type,
/// STATUS_ACCESS_DENIED when a user-mode caller asks for rights the handle
/// was not granted (kernel-mode callers are trusted, as in NT). Takes no
/// lock but the handle's entry.
pub fn ob_reference_object_by_handle(
    handle: u64,
    desired: u32,
    object_type: Option<&ObjectTypeRef>,
    mode: Mode,
) -> Result<ObjectRef, NtStatus> {
    if handle & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK
        && mode == Mode::UserMode
        && handle != NT_CURRENT_PROCESS
        && handle != NT_CURRENT_THREAD
    {
        return Err(STATUS_INVALID_HANDLE);
    }
    let want = match object_type {
        Some(t) => Some(t.index().ok_or(STATUS_OBJECT_TYPE_MISMATCH)?),
        None => None,
    };
    if handle == NT_CURRENT_PROCESS || handle == NT_CURRENT_THREAD {
        // `NtCurrentProcess()`/`NtCurrentThread()`: the current process or
        // thread with all access.
        let (id, granted) = crate::ps::reference_pseudo_handle(handle == NT_CURRENT_PROCESS)?;
        let r = ObjectRef {
            id,
            granted_access: granted,
        };
        if want.is_some_and(|w| OB_HEADERS.type_index(id) != Some(w)) {
            return Err(STATUS_OBJECT_TYPE_MISMATCH);
        }
        return Ok(r);
    }
    with_table(handle, |table, h| {
        reference_in(table, h, want, desired, mode)
    })
}

/// `ObReferenceObjectByHandle`'s lookup in one table.
fn reference_in(
    table: &Table,
    h: Handle,
    want: Option<::ob::namespace::TypeIndex>,
    desired: u32,
    mode: Mode,
) -> Result<ObjectRef, NtStatus> {
    at_dispatch(|| {
        table.with_entry(h, |e| {
            let header = OB_HEADERS.header(e.object).ok_or(STATUS_INVALID_HANDLE)?;
            if want.is_some_and(|w| header.type_index() != w) {
                return Err(STATUS_OBJECT_TYPE_MISMATCH);
            }
            if mode == Mode::UserMode && desired & !e.granted_access != 0 {
                return Err(STATUS_ACCESS_DENIED);
            }
            // The locked entry holds the handle's reference: the count is
            // above zero.
            header.reference();
            Ok(ObjectRef {
                id: e.object,
                granted_access: e.granted_access,
            })
        })
    })?
}

/// `NtClose` (`ObCloseHandle`): STATUS_INVALID_HANDLE for a bad handle,
/// STATUS_HANDLE_NOT_CLOSABLE for a protected one or one the type's
/// okay-to-close procedure keeps.
pub fn nt_close(handle: u64) -> NtStatus {
    with_table(handle, |table, h| close_in(table, h, handle))
}

/// `ObpCloseHandleTableEntry` in one table.
fn close_in(table: &Table, h: Handle, handle: u64) -> NtStatus {
    let r = at_dispatch(|| {
        table.close_if(h, |e| {
            match OB_HEADERS
                .type_index(e.object)
                .and_then(|t| super::types::info(t).okay_to_close)
            {
                Some(ok) => ok(e.object, handle),
                None => true,
            }
        })
    });
    match r {
        Ok(e) => {
            handle_closed(e.object);
            STATUS_SUCCESS
        }
        Err(s) => s,
    }
}

/// `NtDuplicateObject` within the System process (and the kernel table):
/// the new handle gets the source's access (`DUPLICATE_SAME_ACCESS`) or
/// `desired`, which may not exceed the source's for user-mode callers
/// (STATUS_ACCESS_DENIED); `DUPLICATE_CLOSE_SOURCE` closes the source.
pub fn nt_duplicate_object(
    source: u64,
    desired: u32,
    attributes: u32,
    options: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    // Referenced while the source entry is locked, so a concurrent close of
    // the source cannot free the object before the new handle holds it.
    let (entry, r) = with_table(source, |table, h| {
        at_dispatch(|| {
            table.with_entry(h, |e| {
                OB_HEADERS.reference(e.object).map(|_| {
                    (
                        *e,
                        ObjectRef {
                            id: e.object,
                            granted_access: e.granted_access,
                        },
                    )
                })
            })
        })
    })??;
    let access = if options & DUPLICATE_SAME_ACCESS != 0 {
        entry.granted_access
    } else {
        if mode == Mode::UserMode && desired & !entry.granted_access != 0 {
            return Err(STATUS_ACCESS_DENIED);
        }
        desired
    };
    let attrs = if options & DUPLICATE_SAME_ATTRIBUTES != 0 {
        if entry.attributes & HANDLE_INHERIT != 0 {
            OBJ_INHERIT
        } else {
            0
        }
    } else {
        attributes
    } | (attributes & OBJ_KERNEL_HANDLE);
    let new = ob_create_handle(r.id, access, attrs)?;
    drop(r);
    if options & DUPLICATE_CLOSE_SOURCE != 0 {
        let _ = nt_close(source);
    }
    Ok(new)
}

/// `NtSetInformationObject(ObjectHandleFlagInformation)`: protect from close.
pub fn set_protect_from_close(handle: u64, protect: bool) -> NtStatus {
    let r = with_table(handle, |table, h| {
        at_dispatch(|| {
            table.update_attributes(h, |a| {
                if protect {
                    a | HANDLE_PROTECT_FROM_CLOSE
                } else {
                    a & !HANDLE_PROTECT_FROM_CLOSE
                }
            })
        })
    });
    match r {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

/// `ExSweepHandleTable` + `ObpCloseHandleTableEntry` at process exit
/// (`ObKillProcess`): closes every handle in `table` (protected ones too).
/// Returns how many were closed.
pub fn ob_kill_handle_table(table: &Table) -> usize {
    let mut n = 0;
    let handles: Vec<Handle> = table.iter().map(|(h, _)| h).collect();
    for h in handles {
        let _ = at_dispatch(|| table.update_attributes(h, |a| a & !HANDLE_PROTECT_FROM_CLOSE));
        if let Ok(e) = at_dispatch(|| table.close(h)) {
            handle_closed(e.object);
            n += 1;
        }
    }
    n
}

/// `ObInitProcess` with inheritance (`ExDupHandleTable` +
/// `ObpIncrementHandleCount` for each): a copy of `parent`'s inheritable
/// handles at the same values, each counted on its object.
pub fn ob_duplicate_inheritable(parent: &Table) -> Result<Table, NtStatus> {
    // ntrs differs: NT copies and counts each entry with the parent's entry
    // locked; here the copy is taken first, and an entry whose object died
    // meanwhile (the parent closed its last handle) is dropped again.
    let t = {
        let _tag = crate::ex::pool::PoolTag::enter(*b"Obtb");
        parent.duplicate_inheritable()?
    };
    for (h, e) in t.iter() {
        if OB_HEADERS.reference_if_alive(e.object) {
            let _ = OB_HEADERS.open_handle(e.object);
            ob_dereference_object(e.object);
        } else {
            let _ = t.close(h);
        }
    }
    Ok(t)
}

/// Handles open in the current process and the kernel table.
pub fn handle_counts() -> (usize, usize) {
    (
        crate::ps::with_current_handle_table(|t| t.count()),
        KERNEL_TABLE.count(),
    )
}

/// `!handle [h] [flags] [process] | [h] kernel`: a process's handle table
/// (default the current one) or the kernel's, like WinDbg's: which table,
/// its address and handle count, then each handle with its entry and
/// object.
pub fn kd_handle(arg: Option<&str>, which: Option<&str>, process: Option<&str>) {
    let one = arg.filter(|a| *a != "0").and_then(crate::kd::parse_number);
    let kernel = which.is_some_and(|w| w.eq_ignore_ascii_case("kernel"))
        || one.is_some_and(|h| h & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK);
    if kernel {
        crate::dbg_println!(
            "Kernel handle table (ObpKernelHandleTable) at {:016x} with {} entries in use\n",
            &KERNEL_TABLE as *const Table as u64,
            KERNEL_TABLE.count()
        );
        kd_handle_entries(&KERNEL_TABLE, true, one);
        return;
    }
    let shown = crate::ps::kd::kd_with_process_table(process, |label, table| {
        crate::dbg_println!(
            "{label}Handle table at {:016x} with {} entries in use\n",
            table as *const Table as u64,
            table.count()
        );
        kd_handle_entries(table, false, one);
    });
    if !shown {
        crate::dbg_println!("{} is not a process", process.unwrap_or("?"));
    }
}

fn kd_handle_entries(table: &Table, kernel: bool, one: Option<u64>) {
    let entries: Vec<(u64, Handle, HandleEntry<ObjectId>)> = table
        .iter()
        .map(|(h, e)| {
            (
                if kernel {
                    h.0 | KERNEL_HANDLE_MASK
                } else {
                    h.0
                },
                h,
                e,
            )
        })
        .filter(|(v, _, _)| one.is_none_or(|o| o & !3 == *v))
        .collect();
    if one.is_some() && entries.is_empty() {
        crate::dbg_println!(
            "{:04x}: free handle",
            one.unwrap_or(0) & !KERNEL_HANDLE_MASK
        );
        return;
    }
    for (v, h, e) in entries {
        crate::dbg_println!(
            "{:04x}: Object: {:016x}  GrantedAccess: {:08x}{}{} Entry: {:016x}",
            v & !KERNEL_HANDLE_MASK,
            super::object_address(e.object),
            e.granted_access,
            if e.attributes & HANDLE_PROTECT_FROM_CLOSE != 0 {
                " (Protected)"
            } else {
                ""
            },
            if e.attributes & HANDLE_INHERIT != 0 {
                " (Inherit)"
            } else {
                ""
            },
            table.entry_address(h).unwrap_or(0)
        );
        super::kd_print_object(e.object);
        crate::dbg_println!();
    }
}
