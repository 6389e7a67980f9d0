//! Objects in the kernel (*Windows Internals*, Part 2, ch. 8, "Object
//! Manager"): each object's header lives in the host-tested namespace
//! (`::ob::namespace`, pointer and handle counts, name, type); the kernel
//! keeps the type-specific body and the security descriptor beside it, and
//! every open goes through one access-check call (`ob_check_object_access`).

use ::ob::namespace::{Body, Lookup, ObjectId, TypeIndex};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use nt::status::*;
use nt::NtStatus;
use security::access::GenericMapping;
use security::sd::SecurityDescriptor;
use security::token::Token;

/// `KPROCESSOR_MODE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    KernelMode,
    UserMode,
}

/// `OBJ_KERNEL_HANDLE`.
pub const OBJ_KERNEL_HANDLE: u32 = 0x200;
/// `OBJ_FORCE_ACCESS_CHECK`.
pub const OBJ_FORCE_ACCESS_CHECK: u32 = 0x400;

/// The kernel's part of an object: its body and security.
pub enum ObjectBody {
    /// Directories, symbolic links and types: the namespace holds them.
    Namespace,
    /// A dispatcher object of the kernel (event, mutant, semaphore, timer):
    /// its index in the dispatcher database.
    Dispatcher(u32),
    /// A registry key object (`CM_KEY_BODY`): the index of its key control block.
    Key(usize),
    /// A timer object (`ETIMER`): the kernel timer it wraps.
    Timer(&'static crate::ke::timer::KTimer),
    /// A thread (`ETHREAD`): its kernel thread id.
    Thread(u32),
    /// A process (`EPROCESS`): its id.
    Process(u32),
    /// An access token.
    Token(Box<Token>),
    /// A test object with no state of its own.
    Plain,
}

pub struct ObjectExt {
    pub body: ObjectBody,
    pub sd: Option<SecurityDescriptor>,
}

/// Generic mappings of the executive's types (`ObjectType->TypeInfo.GenericMapping`).
pub fn generic_mapping(type_name: &str) -> GenericMapping {
    match type_name {
        // EVENT_QUERY_STATE 1, EVENT_MODIFY_STATE 2.
        "Event" => GenericMapping {
            read: 0x0002_0001,
            write: 0x0002_0002,
            execute: 0x0010_0000,
            all: 0x001F_0003,
        },
        // MUTANT_QUERY_STATE 1.
        "Mutant" => GenericMapping {
            read: 0x0002_0001,
            write: 0x0002_0000,
            execute: 0x0010_0000,
            all: 0x001F_0001,
        },
        // SEMAPHORE_QUERY_STATE 1, SEMAPHORE_MODIFY_STATE 2.
        "Semaphore" => GenericMapping {
            read: 0x0002_0001,
            write: 0x0002_0002,
            execute: 0x0010_0000,
            all: 0x001F_0003,
        },
        // TIMER_QUERY_STATE 1, TIMER_MODIFY_STATE 2.
        "Timer" => GenericMapping {
            read: 0x0002_0001,
            write: 0x0002_0002,
            execute: 0x0010_0000,
            all: 0x001F_0003,
        },
        "Directory" => GenericMapping {
            read: 0x0002_0003,
            write: 0x0002_000C,
            execute: 0x0002_0003,
            all: 0x000F_000F,
        },
        "SymbolicLink" => GenericMapping {
            read: 0x0002_0001,
            write: 0x0002_0000,
            execute: 0x0002_0001,
            all: 0x000F_0001,
        },
        "File" | "Device" => GenericMapping::FILE,
        "Key" => GenericMapping::KEY,
        "Process" => GenericMapping {
            read: 0x0002_0410,
            write: 0x0002_0BEA,
            execute: 0x0012_1000,
            all: 0x001F_FFFF,
        },
        "Thread" => GenericMapping {
            read: 0x0002_0048,
            write: 0x0002_0437,
            execute: 0x0012_1800,
            all: 0x001F_FFFF,
        },
        _ => GenericMapping {
            read: 0x0002_0000,
            write: 0x0002_0000,
            execute: 0x0002_0000,
            all: 0x001F_0001,
        },
    }
}

/// Bodies by object id (beside the namespace, under the same lock).
pub struct Bodies(pub BTreeMap<ObjectId, ObjectExt>);

/// Access decisions of the last opens (the hook records what was asked,
/// for `!object` and tests).
pub struct LastAccess {
    pub desired: u32,
    pub granted: u32,
    pub status: NtStatus,
}

/// The one access check every open goes through (`ObCheckObjectAccess` →
/// `SeAccessCheck`). Kernel-mode opens without `OBJ_FORCE_ACCESS_CHECK` are
/// granted what they ask for (generic rights mapped; MAXIMUM_ALLOWED gives
/// all the type's rights), as NT does; otherwise the object's security
/// descriptor is checked against `token`. An object without a descriptor
/// grants everything.
pub fn ob_check_object_access(
    sd: Option<&SecurityDescriptor>,
    type_name: &str,
    desired: u32,
    mode: Mode,
    attributes: u32,
    token: &Token,
) -> Result<u32, NtStatus> {
    let map = generic_mapping(type_name);
    let all = |d: u32| {
        if d & security::access::MAXIMUM_ALLOWED != 0 {
            map.all | security::access::map_generic(d & !security::access::MAXIMUM_ALLOWED, &map)
        } else {
            security::access::map_generic(d, &map)
        }
    };
    if mode == Mode::KernelMode && attributes & OBJ_FORCE_ACCESS_CHECK == 0 {
        return Ok(all(desired));
    }
    match sd {
        None => Ok(all(desired)),
        Some(sd) => security::check::access_check(
            sd,
            token,
            desired,
            &map,
            security::check::CheckFlags::default(),
        ),
    }
}

/// What `create_object` makes.
pub struct CreateSpec<'a> {
    pub type_name: &'a str,
    pub name: Option<&'a str>,
    pub attributes: u32,
    pub body: ObjectBody,
    pub sd: Option<SecurityDescriptor>,
}

/// `ObCreateObject` + `ObInsertObject` without a handle: a named object goes
/// into the namespace (`OBJ_OPENIF` returns the existing one with
/// STATUS_OBJECT_NAME_EXISTS), an unnamed one just exists. The caller owns
/// one pointer reference.
pub fn ob_create_object(spec: CreateSpec) -> Result<(ObjectId, NtStatus), NtStatus> {
    super::with_ob(|st| {
        let ty = st.type_index(spec.type_name)?;
        let (id, status) = match spec.name {
            Some(path) => st.ns.insert(path, spec.attributes, ty, Body::Opaque)?,
            None => (st.ns.create_unnamed(ty, Body::Opaque), STATUS_SUCCESS),
        };
        if status == STATUS_SUCCESS {
            st.bodies.0.insert(
                id,
                ObjectExt {
                    body: spec.body,
                    sd: spec.sd,
                },
            );
        }
        Ok((id, status))
    })
}

/// `ObOpenObjectByName` (without the handle): looks the path up, checks the
/// type and the access; returns the object referenced once and the access
/// granted. A lookup that reaches an object whose type has a parse procedure
/// hands it the rest of the path (`ObpLookupObjectName` → `ParseProcedure`);
/// a type without one there is STATUS_OBJECT_TYPE_MISMATCH.
pub fn ob_open_object_by_name(
    path: &str,
    type_name: Option<&str>,
    attributes: u32,
    desired: u32,
    mode: Mode,
    token: &Token,
) -> Result<(ObjectId, u32), NtStatus> {
    enum Found {
        Object(ObjectId, u32),
        Parse(ObjectId, alloc::string::String, TypeIndex),
    }
    let found = super::with_ob(|st| {
        let id = match st.ns.lookup(path, attributes, None)? {
            Lookup::Found(id) => id,
            Lookup::Parse { object, remaining } => {
                let ty = st
                    .ns
                    .header(object)
                    .map(|h| h.type_index)
                    .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
                st.ns.reference(object)?;
                return Ok(Found::Parse(object, remaining, ty));
            }
        };
        let ty_index = st
            .ns
            .header(id)
            .map(|h| h.type_index)
            .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        let ty_name = st
            .ns
            .object_type(ty_index)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        if let Some(want) = type_name {
            if !ty_name.eq_ignore_ascii_case(want) {
                return Err(STATUS_OBJECT_TYPE_MISMATCH);
            }
        }
        let sd = st.bodies.0.get(&id).and_then(|b| b.sd.as_ref());
        let granted = ob_check_object_access(sd, &ty_name, desired, mode, attributes, token);
        st.record_access(desired, &granted);
        let granted = granted?;
        st.ns.reference(id)?;
        Ok(Found::Object(id, granted))
    })?;
    match found {
        Found::Object(id, granted) => Ok((id, granted)),
        Found::Parse(object, remaining, ty) => {
            let r = match super::types::procedures(ty).parse {
                Some(parse) => parse(
                    object,
                    &remaining,
                    &super::types::ParseContext {
                        attributes,
                        desired,
                        mode,
                        token,
                    },
                ),
                None => Err(STATUS_OBJECT_TYPE_MISMATCH),
            };
            ob_dereference_object(object);
            r
        }
    }
}

/// `ObReferenceObject`.
pub fn ob_reference_object(id: ObjectId) -> Result<(), NtStatus> {
    super::with_ob(|st| st.ns.reference(id))
}

/// `ObDereferenceObject` (deferred above APC_LEVEL, `ObDereferenceObjectDeferDelete`:
/// the deletion runs later in a delayed worker thread).
pub fn ob_dereference_object(id: ObjectId) {
    let defer = crate::ke::irql() > crate::ke::APC_LEVEL;
    let queue = super::with_ob(|st| {
        let _ = st.ns.dereference(id, defer);
        st.reap();
        defer && st.ns.pending_deletes() > 0
    });
    if queue {
        queue_deferred_deletes();
    }
    super::run_type_deletes();
}

/// `ObpProcessRemoveObjectQueue` as a work item.
pub fn queue_deferred_deletes() {
    crate::ex::worker::ex_queue_work_item(
        crate::ex::worker::WorkQueueItem {
            routine: |_| {
                super::with_ob(|st| {
                    st.ns.process_deferred_deletes();
                    st.reap();
                });
            },
            parameter: 0,
        },
        crate::ex::worker::WorkQueueType::DelayedWorkQueue,
    );
}

/// The type index of an object.
pub fn object_type_of(id: ObjectId) -> Option<TypeIndex> {
    super::with_ob(|st| st.ns.header(id).map(|h| h.type_index))
}

/// Runs `f` on the object's kernel body.
pub fn with_body<R>(id: ObjectId, f: impl FnOnce(&mut ObjectExt) -> R) -> Option<R> {
    super::with_ob(|st| st.bodies.0.get_mut(&id).map(f))
}

/// The type's delete procedure for a kernel body (`ObpDeleteObject`).
pub fn delete_procedure(ext: ObjectExt) {
    match ext.body {
        ObjectBody::Dispatcher(index) => crate::ke::wait::delete_object(index),
        ObjectBody::Key(kcb) => crate::cm::cm_delete_key_object(kcb),
        ObjectBody::Timer(t) => {
            crate::ke::timer::ke_cancel_timer(t);
            t.destroy();
            // SAFETY: timer bodies are leaked boxes owned by their object;
            // cancelled, so the timer table no longer refers to it.
            drop(unsafe {
                alloc::boxed::Box::from_raw(t as *const _ as *mut crate::ke::timer::KTimer)
            });
        }
        _ => {}
    }
}
