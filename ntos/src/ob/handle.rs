//! Handles (*Windows Internals*, Part 2, ch. 8, "Object handles and the
//! process handle table"): the kernel handle table (`ObpKernelHandleTable`,
//! handles with the sign bit set, `OBJ_KERNEL_HANDLE`) and each process's
//! table, over the host-tested multi-level `::ob::handle::HandleTable`.

use super::object::{ob_dereference_object, Mode, OBJ_KERNEL_HANDLE};
use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use ::ob::handle::{Handle, HandleEntry, HandleTable, HANDLE_INHERIT, HANDLE_PROTECT_FROM_CLOSE};
use ::ob::namespace::{ObjectId, TypeIndex};
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

type Table = SpinLocked<Option<HandleTable<ObjectId>>, DISPATCH_LEVEL>;

/// `ObpKernelHandleTable`.
static KERNEL_TABLE: Table = SpinLocked::new(None);
/// The System process's handle table (the only process until process creation lands).
static SYSTEM_TABLE: Table = SpinLocked::new(None);

/// Which table a handle value belongs to, and its index part.
fn table_of(handle: u64) -> (&'static Table, Handle) {
    if handle & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK {
        (&KERNEL_TABLE, Handle(handle & !KERNEL_HANDLE_MASK))
    } else {
        (&SYSTEM_TABLE, Handle(handle))
    }
}

fn with_table<R>(t: &Table, f: impl FnOnce(&mut HandleTable<ObjectId>) -> R) -> R {
    t.with(|t| f(t.get_or_insert_with(HandleTable::new)))
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

/// `ObInsertObject`'s handle half (`ObpCreateHandle`): stores the object
/// with the granted access in the kernel table (`OBJ_KERNEL_HANDLE`) or the
/// process's, counts the handle on the object (one more pointer reference).
pub fn ob_create_handle(id: ObjectId, granted: u32, attributes: u32) -> Result<u64, NtStatus> {
    let ty = super::object::object_type_of(id).ok_or(STATUS_INVALID_HANDLE)?;
    if let Some(open) = super::types::procedures(ty).open {
        open(super::types::OpenReason::ObOpenHandle, id, granted)?;
    }
    super::with_ob(|st| st.ns.open_handle(id))?;
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
    match with_table(table, |t| t.create(entry)) {
        Ok(h) => Ok(if kernel {
            h.0 | KERNEL_HANDLE_MASK
        } else {
            h.0
        }),
        Err(e) => {
            super::with_ob(|st| {
                let _ = st.ns.close_handle(id, false);
                st.reap();
            });
            Err(e)
        }
    }
}

/// `ObInsertObject`'s handle for a new object the caller holds one reference
/// to: the access a creator gets (no descriptor yet) is checked, the handle
/// is created, and the caller's reference is dropped (the handle keeps the object).
pub fn ob_insert_object_handle(
    id: ObjectId,
    type_name: &str,
    desired: u32,
    attributes: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    let token = security::token::Token::system();
    let granted =
        super::object::ob_check_object_access(None, type_name, desired, mode, attributes, &token);
    let r = granted.and_then(|g| ob_create_handle(id, g, attributes));
    ob_dereference_object(id);
    r
}

/// `ObOpenObjectByName`: looks the name up (checking type and access for
/// `token`) and returns a handle.
pub fn ob_open_object_by_name_handle(
    path: &str,
    type_name: Option<&str>,
    attributes: u32,
    desired: u32,
    mode: Mode,
    token: &security::token::Token,
) -> Result<u64, NtStatus> {
    let (id, granted) =
        super::object::ob_open_object_by_name(path, type_name, attributes, desired, mode, token)?;
    let r = ob_create_handle(id, granted, attributes);
    ob_dereference_object(id);
    r
}

/// `ObReferenceObjectByHandle`: the object behind `handle`, referenced.
/// STATUS_INVALID_HANDLE for a handle not in the table (or a kernel handle
/// used from user mode), STATUS_OBJECT_TYPE_MISMATCH for the wrong type,
/// STATUS_ACCESS_DENIED when a user-mode caller asks for rights the handle
/// was not granted (kernel-mode callers are trusted, as in NT).
pub fn ob_reference_object_by_handle(
    handle: u64,
    desired: u32,
    object_type: Option<TypeIndex>,
    mode: Mode,
) -> Result<ObjectRef, NtStatus> {
    if handle & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK
        && mode == Mode::UserMode
        && handle != NT_CURRENT_PROCESS
        && handle != NT_CURRENT_THREAD
    {
        return Err(STATUS_INVALID_HANDLE);
    }
    let (table, h) = table_of(handle);
    let entry = with_table(table, |t| t.lookup(h).copied())?;
    super::with_ob(|st| {
        let ty = st
            .ns
            .header(entry.object)
            .map(|hd| hd.type_index)
            .ok_or(STATUS_INVALID_HANDLE)?;
        if object_type.is_some_and(|want| want != ty) {
            return Err(STATUS_OBJECT_TYPE_MISMATCH);
        }
        if mode == Mode::UserMode && desired & !entry.granted_access != 0 {
            return Err(STATUS_ACCESS_DENIED);
        }
        st.ns.reference(entry.object)?;
        Ok(ObjectRef {
            id: entry.object,
            granted_access: entry.granted_access,
        })
    })
}

/// `NtClose` (`ObCloseHandle`): STATUS_INVALID_HANDLE for a bad handle,
/// STATUS_HANDLE_NOT_CLOSABLE for a protected one.
pub fn nt_close(handle: u64) -> NtStatus {
    let (table, h) = table_of(handle);
    // OkayToCloseProcedure may refuse.
    if let Ok(e) = with_table(table, |t| t.lookup(h).copied()) {
        if let Some(ty) = super::object::object_type_of(e.object) {
            if let Some(ok) = super::types::procedures(ty).okay_to_close {
                if !ok(e.object, handle) {
                    return STATUS_HANDLE_NOT_CLOSABLE;
                }
            }
        }
    }
    match with_table(table, |t| t.close(h)) {
        Ok(e) => {
            let ty = super::object::object_type_of(e.object);
            let close = ty.and_then(|t| super::types::procedures(t).close);
            let defer = crate::ke::irql() > crate::ke::APC_LEVEL;
            let queue = super::with_ob(|st| {
                let _ = st.ns.close_handle(e.object, defer);
                st.reap();
                defer && st.ns.pending_deletes() > 0
            });
            if let Some(f) = close {
                let left =
                    super::with_ob(|st| st.ns.header(e.object).map_or(0, |h| h.handle_count));
                f(e.object, left);
            }
            if queue {
                super::object::queue_deferred_deletes();
            }
            super::run_type_deletes();
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
    let entry = with_table(table, |t| t.lookup(h).copied())?;
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
    let new = ob_create_handle(entry.object, access, attrs)?;
    if options & DUPLICATE_CLOSE_SOURCE != 0 {
        let _ = nt_close(source);
    }
    Ok(new)
}

/// `NtSetInformationObject(ObjectHandleFlagInformation)`: protect from close.
pub fn set_protect_from_close(handle: u64, protect: bool) -> NtStatus {
    let (table, h) = table_of(handle);
    with_table(table, |t| {
        let Ok(e) = t.lookup(h) else {
            return STATUS_INVALID_HANDLE;
        };
        let a = if protect {
            e.attributes | HANDLE_PROTECT_FROM_CLOSE
        } else {
            e.attributes & !HANDLE_PROTECT_FROM_CLOSE
        };
        match t.set_attributes(h, a) {
            Ok(()) => STATUS_SUCCESS,
            Err(s) => s,
        }
    })
}

/// Handles open in the System process and the kernel table.
pub fn handle_counts() -> (usize, usize) {
    (
        with_table(&SYSTEM_TABLE, |t| t.count()),
        with_table(&KERNEL_TABLE, |t| t.count()),
    )
}

/// `!handle [handle] [kernel]`: the System process's (or kernel) handle table, like WinDbg.
pub fn kd_handle(arg: Option<&str>, which: Option<&str>) {
    let one = arg
        .filter(|a| *a != "0")
        .and_then(|a| nt::kd::parse_number(a).ok());
    let kernel = which.is_some_and(|w| w.eq_ignore_ascii_case("kernel"))
        || one.is_some_and(|h| h & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK);
    let table = if kernel { &KERNEL_TABLE } else { &SYSTEM_TABLE };
    let entries: Vec<(u64, HandleEntry<ObjectId>)> = with_table(table, |t| {
        t.iter()
            .map(|(h, e)| {
                (
                    if kernel {
                        h.0 | KERNEL_HANDLE_MASK
                    } else {
                        h.0
                    },
                    *e,
                )
            })
            .filter(|(h, _)| one.is_none_or(|o| o == *h))
            .collect()
    });
    let levels = with_table(table, |t| t.levels());
    crate::dbg_println!(
        "PROCESS ffffffffffffffff  SessionId: none  Cid: 0004  Peb: 00000000  ParentCid: 0000"
    );
    crate::dbg_println!(
        "    Image: System\n\n{} version of handle table at {} with {} entries in use ({} level{})\n",
        if kernel { "Kernel" } else { "Process" },
        if kernel { "ObpKernelHandleTable" } else { "System" },
        entries.len(),
        levels,
        if levels == 1 { "" } else { "s" }
    );
    for (h, e) in entries {
        let (ty, name, hc, pc) = super::with_ob(|st| {
            let hd = st.ns.header(e.object);
            (
                hd.and_then(|hd| st.ns.object_type(hd.type_index))
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                st.ns.full_name(e.object),
                hd.map_or(0, |hd| hd.handle_count),
                hd.map_or(0, |hd| hd.pointer_count),
            )
        });
        crate::dbg_println!(
            "{:04x}: Object: {:016x}  GrantedAccess: {:08x}{}{} Entry: {:016x}",
            h & !KERNEL_HANDLE_MASK,
            e.object,
            e.granted_access,
            if e.attributes & HANDLE_INHERIT != 0 {
                " (Inherit)"
            } else {
                ""
            },
            if e.attributes & HANDLE_PROTECT_FROM_CLOSE != 0 {
                " (Protected)"
            } else {
                ""
            },
            h
        );
        crate::dbg_println!(
            "Object: {:016x}  Type: ({}) {}\n    ObjectHeader: HandleCount: {}  PointerCount: {}\n    Directory Object: - Name: {}\n",
            e.object,
            ty,
            ty,
            hc,
            pc,
            if name.is_empty() { "<unnamed>" } else { name.as_str() }
        );
    }
}
