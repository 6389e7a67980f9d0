//! The object manager in the kernel (*Windows Internals*, Part 2, ch. 8,
//! "Object Manager"): the host-tested `ob` crate's namespace behind a spin
//! lock, its counted object headers and handle tables without one, the type
//! objects, and the `!object` kd command.

pub mod directory_export;
pub mod handle;
pub mod object;
/// Boot tests (`/TESTS`) of this component.
pub mod tests;
pub mod types;

use crate::ke::irql::SpinLocked;
use ::ob::namespace::{Lookup, Namespace, ObjectId, TypeIndex};
use ::ob::object::ObjectHeaders;
use security::access::GenericMapping;
use types::{ObjectTypeRef, TypeInitializer};

/// The counted part of every object's header (pointer count, handle count,
/// type index): updated with atomic operations and no lock.
pub static OB_HEADERS: ObjectHeaders = ObjectHeaders::new();

/// `ObpTypeObjectType`, `ObpDirectoryObjectType`, `ObpSymbolicLinkObjectType`.
pub static OB_TYPE_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();
pub static OB_DIRECTORY_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();
pub static OB_SYMBOLIC_LINK_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();

/// Everything the object manager's lock protects.
pub struct ObState {
    pub ns: Namespace<'static>,
    pub bodies: object::Bodies,
    pub last_access: Option<object::LastAccess>,
    /// Objects whose last reference went away (their bodies were released).
    pub deleted_total: u64,
    /// Deleted objects whose type has a delete procedure (run outside the lock).
    pub type_deletes: alloc::vec::Vec<(ObjectId, TypeIndex)>,
}

impl ObState {
    fn record_access(&mut self, desired: u32, r: &Result<u32, nt::NtStatus>) {
        self.last_access = Some(object::LastAccess {
            desired,
            granted: *r.as_ref().unwrap_or(&0),
            status: match r {
                Ok(_) => nt::status::STATUS_SUCCESS,
                Err(e) => *e,
            },
        });
    }

    /// Releases the bodies of objects the namespace deleted (`ObpDeleteObject`
    /// calling the type's delete procedure).
    pub fn reap(&mut self) {
        for (id, ty) in core::mem::take(&mut self.ns.deleted) {
            if let Some(ext) = self.bodies.0.remove(&id) {
                object::delete_procedure(*ext);
            }
            if types::info(ty).delete.is_some() {
                // The slot is recycled after the delete procedure ran.
                self.type_deletes.push((id, ty));
            } else {
                self.ns.recycle(id);
            }
            self.deleted_total += 1;
        }
    }
}

static OB: SpinLocked<Option<ObState>, { crate::ke::DISPATCH_LEVEL }> = SpinLocked::new(None);

/// Runs `f` with the object manager's lock held (at DISPATCH_LEVEL).
pub fn with_ob<R>(f: impl FnOnce(&mut ObState) -> R) -> R {
    OB.with(|o| {
        if o.is_none() {
            match Namespace::new(&OB_HEADERS) {
                Ok(ns) => {
                    *o = Some(ObState {
                        ns,
                        bodies: object::Bodies(alloc::collections::BTreeMap::new()),
                        last_access: None,
                        deleted_total: 0,
                        type_deletes: alloc::vec::Vec::new(),
                    })
                }
                Err(s) => crate::ke::bugcheck::ke_bug_check_ex(
                    nt::bugcheck::PHASE1_INITIALIZATION_FAILED,
                    s.as_u32() as u64,
                    1,
                    0,
                    0,
                ),
            }
        }
        match o.as_mut() {
            Some(st) => f(st),
            None => unreachable!("created above"),
        }
    })
}

/// Calls the delete procedures of deleted objects of custom types (outside the lock).
pub fn run_type_deletes() {
    let list = with_ob(|st| core::mem::take(&mut st.type_deletes));
    for (id, ty) in list {
        if let Some(f) = types::info(ty).delete {
            f(id);
        }
        with_ob(|st| st.ns.recycle(id));
    }
}

/// Runs `f` on the namespace with the object manager's lock held.
pub fn with_namespace<R>(f: impl FnOnce(&mut Namespace<'static>) -> R) -> R {
    with_ob(|st| f(&mut st.ns))
}

/// `ObInitSystem`: the initial directories, the type objects of the
/// namespace's own types, then the executive's types and the boot token
/// (`ExInitSystem`, `SeInitSystem`).
pub fn ob_init_system() -> Result<(), nt::NtStatus> {
    // Type objects and the namespace's own structures are charged to ObjT.
    let _tag = crate::ex::pool::PoolTag::enter(*b"ObjT");
    use ::ob::namespace::{TYPE_DIRECTORY, TYPE_SYMBOLIC_LINK, TYPE_TYPE};
    with_ob(|_| ());
    types::ob_register_namespace_type(
        TYPE_TYPE,
        TypeInitializer {
            generic_mapping: GenericMapping {
                read: 0x0002_0000,
                write: 0x0002_0000,
                execute: 0x0002_0000,
                all: 0x000F_0001,
            },
            ..Default::default()
        },
        &OB_TYPE_OBJECT_TYPE,
    )?;
    // DIRECTORY_QUERY 1, DIRECTORY_TRAVERSE 2, CREATE_OBJECT 4, CREATE_SUBDIRECTORY 8.
    types::ob_register_namespace_type(
        TYPE_DIRECTORY,
        TypeInitializer {
            generic_mapping: GenericMapping {
                read: 0x0002_0003,
                write: 0x0002_000C,
                execute: 0x0002_0003,
                all: 0x000F_000F,
            },
            ..Default::default()
        },
        &OB_DIRECTORY_OBJECT_TYPE,
    )?;
    // SYMBOLIC_LINK_QUERY 1.
    types::ob_register_namespace_type(
        TYPE_SYMBOLIC_LINK,
        TypeInitializer {
            generic_mapping: GenericMapping {
                read: 0x0002_0001,
                write: 0x0002_0000,
                execute: 0x0002_0001,
                all: 0x000F_0001,
            },
            ..Default::default()
        },
        &OB_SYMBOLIC_LINK_OBJECT_TYPE,
    )?;
    crate::ex::event::ex_init_object_types()?;
    crate::se::se_init_system()?;
    Ok(())
}

/// `ObQueryNameString`: the type's query-name procedure, else the
/// namespace name (empty for an unnamed object).
pub fn ob_query_name_string(id: ObjectId) -> alloc::string::String {
    let (ty, name) = with_ob(|st| (st.ns.header(id).map(|h| h.type_index), st.ns.full_name(id)));
    if name.is_empty() {
        if let Some(q) = ty.and_then(|t| types::info(t).query_name) {
            return q(id).unwrap_or_default();
        }
    }
    name
}

/// The address kd shows for an object: its header's.
pub fn object_address(id: ObjectId) -> u64 {
    OB_HEADERS.address_of(id).unwrap_or(0) as u64
}

/// The live object whose header is at `addr` (kd commands that take an
/// object address).
pub fn object_at(addr: u64) -> Option<ObjectId> {
    let id = OB_HEADERS.id_of_address(addr as usize)?;
    with_ob(|st| st.ns.header(id).is_some()).then_some(id)
}

/// The address of a type object (kd prints it beside the type's name).
fn type_address(t: TypeIndex) -> u64 {
    types::object_type(t).map_or(0, |o| o as *const _ as u64)
}

/// The object header lines `!object` and `!handle` print, as WinDbg does.
pub fn kd_print_object(id: ObjectId) {
    let (ty, parent) = with_ob(|st| {
        let h = st.ns.header(id);
        (h.map(|h| h.type_index), h.and_then(|h| h.parent))
    });
    let Some(ty) = ty else {
        crate::dbg_println!("{:016x}: not a live object", object_address(id));
        return;
    };
    let ty_name = types::object_type(ty).map_or("?", |t| t.name.as_str());
    let (pointers, handles) = (OB_HEADERS.pointer_count(id), OB_HEADERS.handle_count(id));
    crate::dbg_println!(
        "Object: {:016x}  Type: ({:016x}) {}",
        object_address(id),
        type_address(ty),
        ty_name
    );
    crate::dbg_println!("    HandleCount: {handles}  PointerCount: {pointers}");
    let name = ob_query_name_string(id);
    let leaf = name.rsplit('\\').next().unwrap_or("");
    match parent {
        Some(p) => crate::dbg_println!(
            "    Directory Object: {:016x}  Name: {leaf}",
            object_address(p)
        ),
        None if !name.is_empty() => crate::dbg_println!("    Name: {name}"),
        None => {}
    }
}

/// `!object <path|address>`: the object and, for a directory, its entries
/// like WinObj.
pub fn kd_object(arg: &str) {
    let id: ObjectId = if arg.starts_with('\\') {
        match with_ob(|st| st.ns.lookup(arg, ::ob::OBJ_CASE_INSENSITIVE, None)) {
            Ok(Lookup::Found(id)) => id,
            Ok(Lookup::Parse { object, remaining }) => {
                crate::dbg_println!(
                    "{arg}: reaches {:016x}, whose type parses the rest '{remaining}'",
                    object_address(object)
                );
                return;
            }
            Err(s) => {
                crate::dbg_println!("{arg} is not a valid object path ({s})");
                return;
            }
        }
    } else {
        match crate::kd::parse_number(arg).and_then(object_at) {
            Some(id) => id,
            None => {
                crate::dbg_println!("{arg} is not a valid object path or object address");
                return;
            }
        }
    };
    kd_print_object(id);
    let entries = with_ob(|st| st.ns.list_directory(id));
    if let Ok(entries) = entries {
        crate::dbg_println!();
        crate::dbg_println!("    {:<25} Name", "Type");
        crate::dbg_println!("    {:<25} ----", "----");
        for (name, ty) in entries {
            crate::dbg_println!("    {ty:<25} {name}");
        }
    }
}
