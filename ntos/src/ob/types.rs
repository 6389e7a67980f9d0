//! Object types (*Windows Internals*, Part 2, ch. 8, "Type objects"): each
//! `OBJECT_TYPE` owns what its `OBJECT_TYPE_INITIALIZER` gave it — the
//! generic mapping and the procedures `OpenProcedure`, `CloseProcedure`,
//! `DeleteProcedure`, `ParseProcedure`, `SecurityProcedure`,
//! `QueryNameProcedure` and `OkayToCloseProcedure`. The object manager
//! calls them at the points NT does: open on every new handle,
//! okay-to-close and close when a handle goes, delete when the last
//! reference goes, parse when a name lookup reaches an object of the type,
//! security for `NtQuerySecurityObject`/`NtSetSecurityObject` (and `!sd`),
//! query-name for the object's name (`ObQueryNameString`, `!object`).
//!
//! Code names a type by its type object, as NT code uses `ExEventObjectType`
//! or `CmKeyObjectType`: a static [`ObjectTypeRef`] that the creating
//! component fills with `ob_create_object_type`. Type names appear only
//! where a type is created. Type objects are read without a lock (a table
//! filled once per type), so handle paths cost no lock to find them.

use ::ob::namespace::{ObjectId, TypeIndex};
use alloc::string::String;
use core::sync::atomic::{AtomicU16, Ordering};
use nt::status::*;
use nt::NtStatus;
use once_cell::race::OnceBox;
use security::access::GenericMapping;
use security::sd::SecurityDescriptor;

/// `OB_OPEN_REASON`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenReason {
    ObCreateHandle,
    ObOpenHandle,
    ObDuplicateHandle,
}

/// What a parse procedure gets besides the object and the remaining path
/// (`ACCESS_STATE` and the open's mode and attributes).
pub struct ParseContext<'a> {
    pub attributes: u32,
    pub desired: u32,
    pub mode: super::object::Mode,
    pub token: &'a security::token::Token,
}

/// `ParseProcedure`: (object reached, remaining path, context) → the object
/// found (referenced once) and the access granted.
pub type ParseProcedure = fn(ObjectId, &str, &ParseContext) -> Result<(ObjectId, u32), NtStatus>;

/// `OpenProcedure`: (reason, object, granted access); an error refuses the handle.
pub type OpenProcedure = fn(OpenReason, ObjectId, u32) -> Result<(), NtStatus>;

/// `SECURITY_OPERATION_CODE`.
pub enum SecurityOperation<'a> {
    /// `QuerySecurityDescriptor`.
    Query,
    /// `SetSecurityDescriptor`.
    Set(&'a SecurityDescriptor),
}

/// `SecurityProcedure`: queries or sets the object's descriptor where the
/// type keeps it (a key's lives in its hive). `Ok(None)`: no descriptor.
pub type SecurityProcedure =
    fn(ObjectId, SecurityOperation) -> Result<Option<SecurityDescriptor>, NtStatus>;

/// `OBJECT_TYPE_INITIALIZER`.
#[derive(Clone, Copy)]
pub struct TypeInitializer {
    /// `GenericMapping`: what GENERIC_READ/WRITE/EXECUTE/ALL mean for the type.
    pub generic_mapping: GenericMapping,
    /// `OpenProcedure`: a handle is being created (may refuse it).
    pub open: Option<OpenProcedure>,
    /// `CloseProcedure`: a handle went away (with the handle count left).
    pub close: Option<fn(ObjectId, u64)>,
    /// `DeleteProcedure`: the last reference went away.
    pub delete: Option<fn(ObjectId)>,
    /// `ParseProcedure`.
    pub parse: Option<ParseProcedure>,
    /// `SecurityProcedure` (`None`: `SeDefaultObjectMethod`, the descriptor
    /// the object manager keeps with the object).
    pub security: Option<SecurityProcedure>,
    /// `OkayToCloseProcedure`: may refuse `NtClose` of a handle. ntrs calls
    /// it at DISPATCH_LEVEL with the handle entry locked.
    pub okay_to_close: Option<fn(ObjectId, u64) -> bool>,
    /// `QueryNameProcedure`: a name for objects the namespace does not name.
    pub query_name: Option<fn(ObjectId) -> Option<String>>,
}

impl Default for TypeInitializer {
    /// No procedures; a generic mapping that grants READ_CONTROL for the
    /// generic rights and the standard rights plus one specific right for
    /// GENERIC_ALL.
    fn default() -> Self {
        TypeInitializer {
            generic_mapping: GenericMapping {
                read: 0x0002_0000,
                write: 0x0002_0000,
                execute: 0x0002_0000,
                all: 0x001F_0001,
            },
            open: None,
            close: None,
            delete: None,
            parse: None,
            security: None,
            okay_to_close: None,
            query_name: None,
        }
    }
}

/// `OBJECT_TYPE`.
pub struct ObjectType {
    /// `Name` (as registered under `\ObjectTypes`).
    pub name: String,
    /// `Index`: the `TypeIndex` in every header of the type's objects.
    pub index: TypeIndex,
    /// `TypeInfo`.
    pub info: TypeInitializer,
}

/// Most types the system can have (`ObpObjectTypes`).
pub const MAX_TYPES: usize = 64;

/// Type objects by index, each set once (`ObpObjectTypes`).
static TYPES: [OnceBox<ObjectType>; MAX_TYPES] = [const { OnceBox::new() }; MAX_TYPES];

/// A `POBJECT_TYPE` variable (`ExEventObjectType`, `CmKeyObjectType`, ...):
/// filled by `ob_create_object_type`, read without a lock.
pub struct ObjectTypeRef(AtomicU16);

const UNSET: u16 = u16::MAX;

impl Default for ObjectTypeRef {
    fn default() -> Self {
        Self::new()
    }
}

impl ObjectTypeRef {
    pub const fn new() -> Self {
        ObjectTypeRef(AtomicU16::new(UNSET))
    }

    /// The type object, once created.
    pub fn get(&self) -> Option<&'static ObjectType> {
        object_type(self.index()?)
    }

    /// The type's index, once created.
    pub fn index(&self) -> Option<TypeIndex> {
        let i = self.0.load(Ordering::Acquire);
        (i != UNSET).then_some(i)
    }

    /// The type's generic mapping (STATUS_OBJECT_TYPE_MISMATCH before the
    /// type exists).
    pub fn generic_mapping(&self) -> Result<GenericMapping, NtStatus> {
        self.get()
            .map(|t| t.info.generic_mapping)
            .ok_or(STATUS_OBJECT_TYPE_MISMATCH)
    }
}

/// The type object with index `i`.
pub fn object_type(i: TypeIndex) -> Option<&'static ObjectType> {
    TYPES.get(i as usize)?.get()
}

/// The procedures and mapping of type `i` (the defaults for a type that
/// has no type object).
pub fn info(i: TypeIndex) -> TypeInitializer {
    object_type(i).map(|t| t.info).unwrap_or_default()
}

/// Fills the type-object table entry of a type the namespace registered.
fn publish(
    index: TypeIndex,
    name: &str,
    init: TypeInitializer,
    out: &ObjectTypeRef,
) -> Result<&'static ObjectType, NtStatus> {
    let slot = TYPES
        .get(index as usize)
        .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let t = ObjectType {
        name: name.into(),
        index,
        info: init,
    };
    slot.set(alloc::boxed::Box::new(t))
        .map_err(|_| STATUS_OBJECT_NAME_COLLISION)?;
    out.0.store(index, Ordering::Release);
    slot.get().ok_or(STATUS_INSUFFICIENT_RESOURCES)
}

/// `ObCreateObjectType`: registers the type under `\ObjectTypes` and
/// stores its type object in `out`. STATUS_OBJECT_NAME_COLLISION for a name
/// already taken.
pub fn ob_create_object_type(
    name: &str,
    init: TypeInitializer,
    out: &ObjectTypeRef,
) -> Result<&'static ObjectType, NtStatus> {
    let index = super::with_ob(|st| st.ns.create_type(name, init.parse.is_some()))?;
    publish(index, name, init, out)
}

/// Gives a type the namespace itself created (Type, Directory,
/// SymbolicLink) its type object (`ObInitSystem`).
pub fn ob_register_namespace_type(
    index: TypeIndex,
    init: TypeInitializer,
    out: &ObjectTypeRef,
) -> Result<&'static ObjectType, NtStatus> {
    let name = super::with_ob(|st| st.ns.object_type(index).map(|t| t.name.clone()))
        .ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    publish(index, &name, init, out)
}
