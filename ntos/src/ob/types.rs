//! Object types with their procedures (*Windows Internals*, Part 2, ch. 8,
//! "Type objects": `OBJECT_TYPE_INITIALIZER` with `OpenProcedure`,
//! `CloseProcedure`, `DeleteProcedure`, `ParseProcedure`,
//! `SecurityProcedure`, `QueryNameProcedure`, `OkayToCloseProcedure`).
//! The object manager calls them at the points NT does: open on every new
//! handle, okay-to-close and close when a handle goes, delete when the last
//! reference goes, parse when a name lookup reaches an object of the type.

use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use ::ob::namespace::{ObjectId, TypeIndex};
use alloc::string::String;
use alloc::vec::Vec;
use nt::NtStatus;

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

/// `OBJECT_TYPE_INITIALIZER` (the procedures; generic mappings come from the type name).
#[derive(Clone, Copy, Default)]
pub struct TypeInitializer {
    /// `OpenProcedure`: a handle is being created (may refuse it).
    pub open: Option<OpenProcedure>,
    /// `CloseProcedure`: a handle went away (with the handle count left).
    pub close: Option<fn(ObjectId, u64)>,
    /// `DeleteProcedure`: the last reference went away.
    pub delete: Option<fn(ObjectId)>,
    /// `ParseProcedure`.
    pub parse: Option<ParseProcedure>,
    /// `OkayToCloseProcedure`: may refuse `NtClose` of a handle.
    pub okay_to_close: Option<fn(ObjectId, u64) -> bool>,
    /// `QueryNameProcedure`: a name for objects the namespace does not name.
    pub query_name: Option<fn(ObjectId) -> Option<String>>,
}

/// Procedures by type index.
static PROCEDURES: SpinLocked<Vec<(TypeIndex, TypeInitializer)>, DISPATCH_LEVEL> =
    SpinLocked::new(Vec::new());

/// `ObCreateObjectType`: registers the type under `\ObjectTypes` with its
/// procedures. STATUS_OBJECT_NAME_COLLISION for a name already taken.
pub fn ob_create_object_type(name: &str, init: TypeInitializer) -> Result<TypeIndex, NtStatus> {
    let t = super::with_ob(|st| st.ns.create_type(name, init.parse.is_some()))?;
    PROCEDURES.with(|p| p.push((t, init)));
    Ok(t)
}

/// The procedures of `t` (all `None` for types created without them).
pub fn procedures(t: TypeIndex) -> TypeInitializer {
    PROCEDURES.with(|p| p.iter().find(|e| e.0 == t).map(|e| e.1).unwrap_or_default())
}

/// Sets the procedures of an existing (system) type (`ObCreateObjectType`
/// at phase 1 for the executive's types).
pub fn set_procedures(t: TypeIndex, init: TypeInitializer) {
    PROCEDURES.with(|p| {
        p.retain(|e| e.0 != t);
        p.push((t, init));
    });
}
