//! Objects in the kernel (*Windows Internals*, Part 2, ch. 8, "Object
//! Manager"): each object's header is split between the host-tested crate's
//! lock-free counted headers (`OB_HEADERS`: pointer and handle counts, type)
//! and its namespace (name, directory); the kernel keeps the type-specific
//! body and the security descriptor beside them, and every open goes through
//! one access-check call (`ob_check_object_access`).

use super::types::ObjectTypeRef;
use super::OB_HEADERS;
use ::ob::namespace::{Body, Lookup, ObjectId, TypeIndex};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use nt::status::*;
use nt::NtStatus;
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
    /// A dispatcher object of the kernel (event, mutant, semaphore):
    /// its index in the dispatcher database.
    Dispatcher(u32),
    /// A registry key object (`CM_KEY_BODY`): the index of its key control block.
    Key(usize),
    /// A timer object (`ETIMER`): the kernel timer it wraps.
    Timer(&'static crate::ke::timer::KTimer),
    /// An access token (`TOKEN`). Changing a token replaces the `Arc`, so
    /// a subject context captured earlier keeps the token it saw.
    Token(Arc<Token>),
    /// An I/O manager object (driver, device, file, I/O completion): the
    /// address of its body in nonpaged pool (see `crate::io`).
    Io(u64),
    /// A test object with no state of its own.
    Plain,
}

pub struct ObjectExt {
    pub body: ObjectBody,
    pub sd: Option<SecurityDescriptor>,
}

/// Bodies by object id (beside the namespace, under the same lock).
/// Bodies are pool blocks tagged with their type's key, as NT's objects are.
pub struct Bodies(pub BTreeMap<ObjectId, alloc::boxed::Box<ObjectExt>>);

/// An object type's pool tag (`ObjectType->Key`): the first four characters
/// of its name, padded with spaces.
pub fn type_key(type_name: &str) -> [u8; 4] {
    let mut k = *b"    ";
    for (d, s) in k.iter_mut().zip(type_name.bytes()) {
        *d = s;
    }
    k
}

/// Access decisions of the last opens (the hook records what was asked,
/// for `!object` and tests).
pub struct LastAccess {
    pub desired: u32,
    pub granted: u32,
    pub status: NtStatus,
}

/// The one access check every open goes through (`ObCheckObjectAccess` →
/// `SeAccessCheck`) with the type's generic mapping. Kernel-mode opens
/// without `OBJ_FORCE_ACCESS_CHECK` are granted what they ask for (generic
/// rights mapped; MAXIMUM_ALLOWED gives all the type's rights), as NT does;
/// otherwise the object's security descriptor is checked against `token`
/// (the caller's effective token). An object without a descriptor grants
/// everything.
pub fn ob_check_object_access(
    sd: Option<&SecurityDescriptor>,
    object_type: &ObjectTypeRef,
    desired: u32,
    mode: Mode,
    attributes: u32,
    token: &Token,
) -> Result<u32, NtStatus> {
    let map = object_type.generic_mapping()?;
    check_access(sd, &map, desired, mode, attributes, token)
}

fn check_access(
    sd: Option<&SecurityDescriptor>,
    map: &security::access::GenericMapping,
    desired: u32,
    mode: Mode,
    attributes: u32,
    token: &Token,
) -> Result<u32, NtStatus> {
    let all = |d: u32| {
        if d & security::access::MAXIMUM_ALLOWED != 0 {
            map.all | security::access::map_generic(d & !security::access::MAXIMUM_ALLOWED, map)
        } else {
            security::access::map_generic(d, map)
        }
    };
    if mode == Mode::KernelMode && attributes & OBJ_FORCE_ACCESS_CHECK == 0 {
        return Ok(all(desired));
    }
    // An identification-level impersonation token opens nothing.
    token.check_usable_for_access()?;
    match sd {
        None => Ok(all(desired)),
        Some(sd) => security::check::access_check(
            sd,
            token,
            desired,
            map,
            security::check::CheckFlags::default(),
        ),
    }
}

/// What `ob_create_object` makes.
pub struct CreateSpec<'a> {
    pub object_type: &'static ObjectTypeRef,
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
    let object_type = spec.object_type.get().ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    let ty = object_type.index;
    // `ObpAllocateObject`: the body is a pool block tagged with the type's
    // key; an exhausted pool fails the service with STATUS_INSUFFICIENT_RESOURCES.
    let ext = crate::ex::pool::try_box_tagged(
        ObjectExt {
            body: spec.body,
            sd: spec.sd,
        },
        type_key(&object_type.name),
    )?;
    let _tag = crate::ex::pool::PoolTag::enter(*b"Obj ");
    super::with_ob(|st| {
        let (id, status) = match spec.name {
            Some(path) => st.ns.insert(path, spec.attributes, ty, Body::Opaque)?,
            None => (st.ns.create_unnamed(ty, Body::Opaque)?, STATUS_SUCCESS),
        };
        if status == STATUS_SUCCESS {
            st.bodies.0.insert(id, ext);
        }
        Ok((id, status))
    })
}

/// `ObOpenObjectByName` (without the handle): looks the path up, checks the
/// type and the access for `token` (the caller's effective token); returns
/// the object referenced once and the access granted. A lookup that reaches
/// an object whose type has a parse procedure hands it the rest of the path
/// (`ObpLookupObjectName` → `ParseProcedure`); a type without one there is
/// STATUS_OBJECT_TYPE_MISMATCH.
pub fn ob_open_object_by_name(
    path: &str,
    object_type: Option<&ObjectTypeRef>,
    attributes: u32,
    desired: u32,
    mode: Mode,
    token: &Token,
) -> Result<(ObjectId, u32), NtStatus> {
    enum Found {
        Object(ObjectId, u32),
        Parse(ObjectId, alloc::string::String, TypeIndex),
    }
    let want = match object_type {
        Some(t) => Some(t.index().ok_or(STATUS_OBJECT_TYPE_MISMATCH)?),
        None => None,
    };
    let found = super::with_ob(|st| {
        let id = match st.ns.lookup(path, attributes, None)? {
            Lookup::Found(id) => id,
            Lookup::Parse { object, remaining } => {
                let ty = st
                    .ns
                    .header(object)
                    .map(|h| h.type_index)
                    .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
                st.ns
                    .reference(object)
                    .map_err(|_| STATUS_OBJECT_NAME_NOT_FOUND)?;
                return Ok(Found::Parse(object, remaining, ty));
            }
        };
        let ty = st
            .ns
            .header(id)
            .map(|h| h.type_index)
            .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        if want.is_some_and(|w| w != ty) {
            return Err(STATUS_OBJECT_TYPE_MISMATCH);
        }
        let map = super::types::info(ty).generic_mapping;
        let sd = st.bodies.0.get(&id).and_then(|b| b.sd.as_ref());
        let granted = check_access(sd, &map, desired, mode, attributes, token);
        st.record_access(desired, &granted);
        let granted = granted?;
        // A name whose object's last reference just went is gone.
        st.ns
            .reference(id)
            .map_err(|_| STATUS_OBJECT_NAME_NOT_FOUND)?;
        Ok(Found::Object(id, granted))
    })?;
    match found {
        Found::Object(id, granted) => Ok((id, granted)),
        Found::Parse(object, remaining, ty) => {
            let r = match super::types::info(ty).parse {
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

/// `ObReferenceObject` (the caller holds a reference already).
pub fn ob_reference_object(id: ObjectId) -> Result<(), NtStatus> {
    OB_HEADERS.reference(id)
}

/// `ObDereferenceObject`: an atomic decrement; only the last reference
/// takes the object manager's lock, to delete the object — or, above
/// APC_LEVEL, to queue it (`ObDereferenceObjectDeferDelete`: a delayed
/// worker deletes it).
#[inline]
pub fn ob_dereference_object(id: ObjectId) {
    if OB_HEADERS.dereference(id) == Ok(true) {
        last_reference_gone(id);
    }
}

/// `ObpRemoveObjectRoutine` or its deferral.
#[cold]
#[inline(never)]
fn last_reference_gone(id: ObjectId) {
    let defer = crate::ke::irql() > crate::ke::APC_LEVEL;
    let deletes = super::with_ob(|st| {
        st.ns.object_dead(id, defer);
        st.reap();
        !st.type_deletes.is_empty()
    });
    if defer {
        queue_deferred_deletes();
    } else if deletes {
        super::run_type_deletes();
    }
}

/// `ObpDecrementHandleCount` for a handle that went away: the temporary
/// object's name goes with its last handle (taking the lock only then),
/// the type's close procedure runs, and the handle's reference is dropped.
pub fn handle_closed(id: ObjectId) {
    let Ok(closed) = OB_HEADERS.close_handle(id) else {
        return;
    };
    if closed.name_check {
        super::with_ob(|st| st.ns.delete_name_check(id));
    }
    if let Some(close) = OB_HEADERS
        .type_index(id)
        .and_then(|t| super::types::info(t).close)
    {
        close(id, OB_HEADERS.handle_count(id));
    }
    ob_dereference_object(id);
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
                super::run_type_deletes();
            },
            parameter: 0,
        },
        crate::ex::worker::WorkQueueType::DelayedWorkQueue,
    );
}

/// The type index of a live object.
pub fn object_type_of(id: ObjectId) -> Option<TypeIndex> {
    super::with_ob(|st| st.ns.header(id).map(|h| h.type_index))
}

/// Runs `f` on the object's kernel body.
pub fn with_body<R>(id: ObjectId, f: impl FnOnce(&mut ObjectExt) -> R) -> Option<R> {
    super::with_ob(|st| st.bodies.0.get_mut(&id).map(|b| f(b)))
}

/// `ObGetObjectSecurity` / `NtQuerySecurityObject`: the type's security
/// procedure, or (`SeDefaultObjectMethod`) the descriptor kept with the
/// object. `Ok(None)`: the object has none.
pub fn ob_query_object_security(id: ObjectId) -> Result<Option<SecurityDescriptor>, NtStatus> {
    let ty = object_type_of(id).ok_or(STATUS_INVALID_PARAMETER)?;
    match super::types::info(ty).security {
        Some(f) => f(id, super::types::SecurityOperation::Query),
        None => with_body(id, |b| b.sd.clone()).ok_or(STATUS_INVALID_PARAMETER),
    }
}

/// `NtSetSecurityObject` (the whole descriptor): the type's security
/// procedure, or the descriptor kept with the object.
pub fn ob_set_object_security(id: ObjectId, sd: &SecurityDescriptor) -> Result<(), NtStatus> {
    let ty = object_type_of(id).ok_or(STATUS_INVALID_PARAMETER)?;
    match super::types::info(ty).security {
        Some(f) => f(id, super::types::SecurityOperation::Set(sd)).map(|_| ()),
        None => with_body(id, |b| b.sd = Some(sd.clone())).ok_or(STATUS_INVALID_PARAMETER),
    }
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
