//! Handles (*Windows Internals*, Part 2, ch. 8, "Object handles and the
//! process handle table"): the kernel handle table (`ObpKernelHandleTable`,
//! handles with the sign bit set, `OBJ_KERNEL_HANDLE`) and the System
//! process's table, over the host-tested lock-free `::ob::handle::HandleTable`.
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

type Table = HandleTable<ObjectId>;

/// `ObpKernelHandleTable`.
static KERNEL_TABLE: Table = HandleTable::new();
/// The System process's handle table (the only process with one until
/// process creation lands).
static SYSTEM_TABLE: Table = HandleTable::new();
/// The System process's id (`PsInitialSystemProcess->UniqueProcessId`).
pub const SYSTEM_PROCESS_ID: u32 = 4;

/// Which table a handle value belongs to, and its index part.
fn table_of(handle: u64) -> (&'static Table, Handle) {
    if handle & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK {
        (&KERNEL_TABLE, Handle(handle & !KERNEL_HANDLE_MASK))
    } else {
        (&SYSTEM_TABLE, Handle(handle))
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
    let ty = OB_HEADERS.type_index(id).ok_or(STATUS_INVALID_HANDLE)?;
    if let Some(open) = super::types::info(ty).open {
        open(super::types::OpenReason::ObOpenHandle, id, granted)?;
    }
    OB_HEADERS.open_handle(id)?;
    let kernel = attributes & OBJ_KERNEL_HANDLE != 0;
    let table = if kernel { &KERNEL_TABLE } else { &SYSTEM_TABLE };
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
    let (table, h) = table_of(handle);
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
    let (table, h) = table_of(handle);
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
    let (table, h) = table_of(source);
    // Referenced while the source entry is locked, so a concurrent close of
    // the source cannot free the object before the new handle holds it.
    let (entry, r) = at_dispatch(|| {
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
    let (table, h) = table_of(handle);
    let r = at_dispatch(|| {
        table.update_attributes(h, |a| {
            if protect {
                a | HANDLE_PROTECT_FROM_CLOSE
            } else {
                a & !HANDLE_PROTECT_FROM_CLOSE
            }
        })
    });
    match r {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

/// A process's handle table (`EPROCESS.ObjectTable`) as kd shows it: its
/// address and handle count. Only the System process has one today.
pub fn process_handle_table(process_id: u32) -> Option<(u64, usize)> {
    (process_id == SYSTEM_PROCESS_ID)
        .then(|| (&SYSTEM_TABLE as *const Table as u64, SYSTEM_TABLE.count()))
}

/// Handles open in the System process and the kernel table.
pub fn handle_counts() -> (usize, usize) {
    (SYSTEM_TABLE.count(), KERNEL_TABLE.count())
}

/// `!handle [handle] [kernel]`: the System process's (or the kernel's)
/// handle table, like WinDbg's: which table, its address and handle count,
/// then each handle with its entry and object.
pub fn kd_handle(arg: Option<&str>, which: Option<&str>) {
    let one = arg.filter(|a| *a != "0").and_then(crate::kd::parse_number);
    let kernel = which.is_some_and(|w| w.eq_ignore_ascii_case("kernel"))
        || one.is_some_and(|h| h & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK);
    let table: &Table = if kernel { &KERNEL_TABLE } else { &SYSTEM_TABLE };
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
    if kernel {
        crate::dbg_println!(
            "Kernel handle table (ObpKernelHandleTable) at {:016x} with {} entries in use\n",
            table as *const Table as u64,
            table.count()
        );
    } else {
        crate::dbg_println!(
            "Handle table of the System process (Cid: {:04x}) at {:016x} with {} entries in use\n",
            SYSTEM_PROCESS_ID,
            table as *const Table as u64,
            table.count()
        );
    }
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
