//! The object manager in the kernel: the system's namespace (rules in the
//! host-tested `ob` crate) behind a spin lock, its object types, and the
//! `!object` kd command.

use ::ob::namespace::{Lookup, Namespace, ObjectId};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// The executive's object types, registered in phase 1 (`\ObjectTypes`).
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

pub struct Locked {
    lock: AtomicBool,
    ns: UnsafeCell<Option<Namespace>>,
}

// SAFETY: `ns` is only touched with `lock` held.
unsafe impl Sync for Locked {}

static NAMESPACE: Locked = Locked {
    lock: AtomicBool::new(false),
    ns: UnsafeCell::new(None),
};

/// Runs `f` on the namespace with its lock held.
pub fn with_namespace<R>(f: impl FnOnce(&mut Namespace) -> R) -> R {
    while NAMESPACE
        .lock
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    // SAFETY: the lock is held; the namespace is created on first use.
    let ns = unsafe { &mut *NAMESPACE.ns.get() }.get_or_insert_with(Namespace::new);
    let r = f(ns);
    NAMESPACE.lock.store(false, Ordering::Release);
    r
}

/// `ObInitSystem`: the initial directories and the executive's types.
pub fn ob_init_system() -> Result<(), nt::NtStatus> {
    with_namespace(|ns| {
        for &(name, parse) in SYSTEM_TYPES {
            ns.create_type(name, parse)?;
        }
        Ok(())
    })
}

/// `!object <path>`: the object and, for a directory, its entries like WinObj.
pub fn kd_object(path: &str) {
    with_namespace(|ns| {
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
