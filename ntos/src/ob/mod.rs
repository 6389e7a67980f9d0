//! The object manager in the kernel: the system's namespace (rules in the
//! host-tested `ob` crate) behind a spin lock, its object types, and the
//! `!object` kd command.

pub mod handle;
pub mod object;
pub mod types;

use crate::ke::irql::SpinLocked;
use ::ob::namespace::{Lookup, Namespace, ObjectId, TypeIndex};
use core::sync::atomic::{AtomicU16, Ordering};

/// The executive's object types, registered in phase 1 (`\ObjectTypes`):
/// (name, has a parse procedure).
pub const SYSTEM_TYPES: &[(&str, bool)] = &[
    ("Event", false),
    ("Mutant", false),
    ("Semaphore", false),
    ("Timer", false),
    ("Process", false),
    ("Thread", false),
    ("Job", false),
    ("Section", false),
    ("File", true),
    ("Device", true),
    ("Driver", false),
    ("Key", true),
    ("Token", false),
];

/// Type indices of `SYSTEM_TYPES`, in that order (`ExEventObjectType`, ...).
pub static TYPE_INDICES: [AtomicU16; 13] = [const { AtomicU16::new(u16::MAX) }; 13];

/// The index of a system type by name.
pub fn system_type(name: &str) -> Option<TypeIndex> {
    let i = SYSTEM_TYPES.iter().position(|(n, _)| *n == name)?;
    let t = TYPE_INDICES[i].load(Ordering::Relaxed);
    (t != u16::MAX).then_some(t)
}

/// Everything the object manager's lock protects.
pub struct ObState {
    pub ns: Namespace,
    pub bodies: object::Bodies,
    pub last_access: Option<object::LastAccess>,
    /// Objects whose last reference went away (their bodies were released).
    pub deleted_total: u64,
    /// Deleted objects whose type has a delete procedure (run outside the lock).
    pub type_deletes: alloc::vec::Vec<(ObjectId, TypeIndex)>,
}

impl ObState {
    /// A type's index by name (`\ObjectTypes\<name>`).
    pub fn type_index(&self, name: &str) -> Result<TypeIndex, nt::NtStatus> {
        (0..64u16)
            .find(|&t| self.ns.object_type(t).is_some_and(|ty| ty.name == name))
            .ok_or(nt::status::STATUS_OBJECT_TYPE_MISMATCH)
    }

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
            if types::procedures(ty).delete.is_some() {
                self.type_deletes.push((id, ty));
            }
            self.deleted_total += 1;
        }
    }
}

static OB: SpinLocked<Option<ObState>, { crate::ke::DISPATCH_LEVEL }> = SpinLocked::new(None);

/// Runs `f` with the object manager's lock held (at DISPATCH_LEVEL).
pub fn with_ob<R>(f: impl FnOnce(&mut ObState) -> R) -> R {
    OB.with(|o| {
        let st = o.get_or_insert_with(|| ObState {
            ns: Namespace::new(),
            bodies: object::Bodies(alloc::collections::BTreeMap::new()),
            last_access: None,
            deleted_total: 0,
            type_deletes: alloc::vec::Vec::new(),
        });
        f(st)
    })
}

/// Calls the delete procedures of deleted objects of custom types (outside the lock).
pub fn run_type_deletes() {
    let list = with_ob(|st| core::mem::take(&mut st.type_deletes));
    for (id, ty) in list {
        if let Some(f) = types::procedures(ty).delete {
            f(id);
        }
    }
}

/// Runs `f` on the namespace with the object manager's lock held.
pub fn with_namespace<R>(f: impl FnOnce(&mut Namespace) -> R) -> R {
    with_ob(|st| f(&mut st.ns))
}

/// `ObInitSystem`: the initial directories and the executive's types.
pub fn ob_init_system() -> Result<(), nt::NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"ObjT");
    with_ob(|st| {
        for (i, &(name, parse)) in SYSTEM_TYPES.iter().enumerate() {
            let t = st.ns.create_type(name, parse)?;
            TYPE_INDICES[i].store(t, Ordering::Relaxed);
        }
        Ok(())
    })
}

/// `!object <path>`: the object and, for a directory, its entries like WinObj.
pub fn kd_object(path: &str) {
    with_ob(|st| {
        let ns = &st.ns;
        let id: ObjectId = match ns.lookup(path, ::ob::OBJ_CASE_INSENSITIVE, None) {
            Ok(Lookup::Found(id)) => id,
            Ok(Lookup::Parse { object, remaining }) => {
                crate::dbg_println!(
                    "{path}: parsed by object {object:#x} with remaining path '{remaining}'"
                );
                return;
            }
            Err(s) => {
                crate::dbg_println!("{path} is not a valid object path ({s})");
                return;
            }
        };
        let Some(h) = ns.header(id) else { return };
        let ty = ns
            .object_type(h.type_index)
            .map(|t| t.name.as_str())
            .unwrap_or("?");
        crate::dbg_println!("Object: {id:#x}  Type: {ty}");
        crate::dbg_println!(
            "    HandleCount: {}  PointerCount: {}",
            h.handle_count,
            h.pointer_count
        );
        crate::dbg_println!("    Name: {}", ns.full_name(id));
        if let Ok(entries) = ns.list_directory(id) {
            crate::dbg_println!();
            crate::dbg_println!("    {:<25} Name", "Type");
            crate::dbg_println!("    {:<25} ----", "----");
            for (name, ty) in entries {
                crate::dbg_println!("    {ty:<25} {name}");
            }
        }
    })
}
