//! The object namespace: directory objects, symbolic links, name lookup
//! (`ObpLookupObjectName`), insertion (`ObInsertObject`), and object
//! lifetime by pointer and handle counts, including temporary objects losing
//! their names and deferred deletion. The counts live in the lock-free
//! `ObjectHeaders` table beside the namespace; the namespace itself (names,
//! directories, links) is changed under its owner's lock.

use crate::object::{ObjectHeaders, FLAG_NAMED, FLAG_PERMANENT};
use crate::{OBJ_CASE_INSENSITIVE, OBJ_OPENIF, OBJ_OPENLINK, OBJ_PERMANENT};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

/// Index of an object in the namespace's object table.
pub type ObjectId = usize;
/// Index of an object type.
pub type TypeIndex = u16;

/// Type index of `Type` objects.
pub const TYPE_TYPE: TypeIndex = 0;
/// Type index of `Directory` objects.
pub const TYPE_DIRECTORY: TypeIndex = 1;
/// Type index of `SymbolicLink` objects.
pub const TYPE_SYMBOLIC_LINK: TypeIndex = 2;

/// How many symbolic links one lookup may traverse before NT gives up
/// (`OBJ_MAX_REPARSE_ATTEMPTS`).
pub const MAX_REPARSE: usize = 32;

/// `OBJECT_TYPE` as far as the namespace cares.
#[derive(Clone, Debug)]
pub struct ObjectType {
    pub name: String,
    /// The type has a parse procedure (`ParseProcedure`): lookups that reach
    /// an object of this type hand it the rest of the path (I/O manager for
    /// devices, configuration manager for keys).
    pub has_parse: bool,
}

/// Type-specific body the namespace itself understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `OBJECT_DIRECTORY`: the children.
    Directory(Vec<ObjectId>),
    /// `OBJECT_SYMBOLIC_LINK`: the target path.
    SymbolicLink(String),
    /// Any other type: the owner keeps its body elsewhere.
    Opaque,
}

/// `OBJECT_HEADER` fields the namespace keeps (the counts are in
/// `ObjectHeaders`).
#[derive(Clone, Debug)]
pub struct ObjectHeader {
    pub name: String,
    pub parent: Option<ObjectId>,
    pub type_index: TypeIndex,
    pub permanent: bool,
    pub body: Body,
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The object named by the whole path.
    Found(ObjectId),
    /// An object with a parse procedure, and the rest of the path for it
    /// (without a leading backslash).
    Parse { object: ObjectId, remaining: String },
}

/// The object namespace rooted at `\`.
pub struct Namespace<'h> {
    headers: &'h ObjectHeaders,
    objects: Vec<Option<ObjectHeader>>,
    types: Vec<ObjectType>,
    root: ObjectId,
    global_dos_devices: ObjectId,
    object_types_dir: ObjectId,
    pending_delete: Vec<ObjectId>,
    free_ids: Vec<ObjectId>,
    /// Deleted objects' slots not yet recycled.
    dying: alloc::collections::BTreeSet<ObjectId>,
    /// Objects whose last reference went, in order: the kernel frees their
    /// bodies and runs their type's delete procedure, then gives each slot
    /// back with [`Namespace::recycle`]. Until then the id names no object
    /// and is not handed out again, so a delete procedure keyed by the id
    /// cannot meet a newer object (NT frees an object's memory only after
    /// `ObpDeleteObject` called the delete procedure).
    pub deleted: Vec<(ObjectId, TypeIndex)>,
}

fn eq_name(a: &str, b: &str, insensitive: bool) -> bool {
    if insensitive {
        a.len() == b.len()
            && a.chars()
                .zip(b.chars())
                .all(|(x, y)| x.to_uppercase().eq(y.to_uppercase()))
    } else {
        a == b
    }
}

impl<'h> Namespace<'h> {
    /// `ObInitSystem`: `\`, `\ObjectTypes` with Type/Directory/SymbolicLink,
    /// `\Device`, `\Driver`, `\KernelObjects`, `\BaseNamedObjects`, `\GLOBAL??`.
    /// `\??` resolves to `\GLOBAL??` (ntrs has one session's DosDevices).
    /// The objects' counts go into `headers`. STATUS_INSUFFICIENT_RESOURCES
    /// without memory for them.
    pub fn new(headers: &'h ObjectHeaders) -> Result<Self, NtStatus> {
        let mut ns = Namespace {
            headers,
            objects: Vec::new(),
            types: Vec::new(),
            root: 0,
            global_dos_devices: 0,
            object_types_dir: 0,
            pending_delete: Vec::new(),
            free_ids: Vec::new(),
            dying: alloc::collections::BTreeSet::new(),
            deleted: Vec::new(),
        };
        for name in ["Type", "Directory", "SymbolicLink"] {
            ns.types.push(ObjectType {
                name: name.into(),
                has_parse: false,
            });
        }
        ns.root = ns.alloc(ObjectHeader {
            name: String::new(),
            parent: None,
            type_index: TYPE_DIRECTORY,
            permanent: true,
            body: Body::Directory(Vec::new()),
        })?;
        let dir = |ns: &mut Namespace, path: &str| {
            ns.insert(
                path,
                OBJ_PERMANENT,
                TYPE_DIRECTORY,
                Body::Directory(Vec::new()),
            )
            .map(|r| r.0)
        };
        ns.object_types_dir = dir(&mut ns, "\\ObjectTypes")?;
        for name in ["Type", "Directory", "SymbolicLink"] {
            let path = alloc::format!("\\ObjectTypes\\{name}");
            ns.insert(&path, OBJ_PERMANENT, TYPE_TYPE, Body::Opaque)?;
        }
        for d in [
            "\\Device",
            "\\Driver",
            "\\KernelObjects",
            "\\BaseNamedObjects",
            "\\Callback",
        ] {
            dir(&mut ns, d)?;
        }
        ns.global_dos_devices = dir(&mut ns, "\\GLOBAL??")?;
        Ok(ns)
    }

    /// The counted headers of this namespace's objects.
    pub fn headers(&self) -> &'h ObjectHeaders {
        self.headers
    }

    fn alloc(&mut self, h: ObjectHeader) -> Result<ObjectId, NtStatus> {
        // Slots of deleted objects are reused once recycled (their last
        // reference is gone and their delete procedure ran).
        let id = match self.free_ids.last() {
            Some(&id) => id,
            None => self.objects.len(),
        };
        let mut flags = if h.permanent { FLAG_PERMANENT } else { 0 };
        if h.parent.is_some() {
            flags |= FLAG_NAMED;
        }
        self.headers.init(id, h.type_index, flags)?;
        if id == self.objects.len() {
            self.objects
                .try_reserve(1)
                .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
            self.objects.push(Some(h));
        } else {
            self.free_ids.pop();
            self.objects[id] = Some(h);
        }
        Ok(id)
    }

    /// The root directory `\`.
    pub fn root(&self) -> ObjectId {
        self.root
    }

    /// `ObCreateObjectType`: registers a type and names it under `\ObjectTypes`.
    pub fn create_type(&mut self, name: &str, has_parse: bool) -> Result<TypeIndex, NtStatus> {
        if self.types.iter().any(|t| t.name.eq_ignore_ascii_case(name)) {
            return Err(STATUS_OBJECT_NAME_COLLISION);
        }
        let path = alloc::format!("\\ObjectTypes\\{name}");
        self.insert(&path, OBJ_PERMANENT, TYPE_TYPE, Body::Opaque)?;
        self.types.push(ObjectType {
            name: name.into(),
            has_parse,
        });
        Ok((self.types.len() - 1) as TypeIndex)
    }

    pub fn object_type(&self, t: TypeIndex) -> Option<&ObjectType> {
        self.types.get(t as usize)
    }

    /// The header of a live object.
    pub fn header(&self, id: ObjectId) -> Option<&ObjectHeader> {
        self.objects.get(id)?.as_ref()
    }

    fn header_mut(&mut self, id: ObjectId) -> Result<&mut ObjectHeader, NtStatus> {
        self.objects
            .get_mut(id)
            .and_then(|o| o.as_mut())
            .ok_or(STATUS_INVALID_PARAMETER)
    }

    fn children(&self, dir: ObjectId) -> Option<&Vec<ObjectId>> {
        match &self.header(dir)?.body {
            Body::Directory(c) => Some(c),
            _ => None,
        }
    }

    fn find_child(&self, dir: ObjectId, name: &str, insensitive: bool) -> Option<ObjectId> {
        // A case-sensitive match wins over a case-insensitive one.
        let kids = self.children(dir)?;
        kids.iter()
            .copied()
            .find(|&c| self.header(c).is_some_and(|h| h.name == name))
            .or_else(|| {
                if insensitive {
                    kids.iter()
                        .copied()
                        .find(|&c| self.header(c).is_some_and(|h| eq_name(&h.name, name, true)))
                } else {
                    None
                }
            })
    }

    /// `ObpLookupObjectName`: resolves an absolute path (or one relative to
    /// `root_directory`). Status codes follow NT:
    /// - a path without a leading `\` and no root: `STATUS_OBJECT_PATH_SYNTAX_BAD`;
    /// - an empty component (`\\` or a trailing `\`): `STATUS_OBJECT_NAME_INVALID`;
    /// - a missing last component: `STATUS_OBJECT_NAME_NOT_FOUND`;
    /// - a missing intermediate component: `STATUS_OBJECT_PATH_NOT_FOUND`;
    /// - walking through an object that is neither a directory nor has a
    ///   parse procedure: `STATUS_OBJECT_TYPE_MISMATCH`;
    /// - more than `MAX_REPARSE` symbolic links: `STATUS_REPARSE_POINT_NOT_RESOLVED`.
    ///
    /// Symbolic links are followed, except the last component with `OBJ_OPENLINK`.
    pub fn lookup(
        &self,
        path: &str,
        attributes: u32,
        root_directory: Option<ObjectId>,
    ) -> Result<Lookup, NtStatus> {
        let insensitive = attributes & OBJ_CASE_INSENSITIVE != 0;
        let mut path: String = path.to_string();
        let mut start = match root_directory {
            Some(r) => {
                if path.starts_with('\\') {
                    return Err(STATUS_OBJECT_PATH_SYNTAX_BAD);
                }
                if self.children(r).is_none() {
                    return Err(STATUS_OBJECT_TYPE_MISMATCH);
                }
                r
            }
            None => {
                if !path.starts_with('\\') {
                    return Err(STATUS_OBJECT_PATH_SYNTAX_BAD);
                }
                path.remove(0);
                self.root
            }
        };
        let mut reparses = 0;
        'restart: loop {
            if path.is_empty() {
                return Ok(Lookup::Found(start));
            }
            let comps: Vec<&str> = path.split('\\').collect();
            let mut cur = start;
            for (i, comp) in comps.iter().enumerate() {
                let last = i + 1 == comps.len();
                if comp.is_empty() {
                    return Err(STATUS_OBJECT_NAME_INVALID);
                }
                let header = self.header(cur).ok_or(STATUS_OBJECT_PATH_NOT_FOUND)?;
                let child = if cur == self.root && *comp == "??" {
                    Some(self.global_dos_devices)
                } else {
                    match header.body {
                        Body::Directory(_) => self.find_child(cur, comp, insensitive),
                        _ => return Err(STATUS_OBJECT_TYPE_MISMATCH),
                    }
                };
                let Some(child) = child else {
                    return Err(if last {
                        STATUS_OBJECT_NAME_NOT_FOUND
                    } else {
                        STATUS_OBJECT_PATH_NOT_FOUND
                    });
                };
                let ch = self.header(child).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
                if let Body::SymbolicLink(target) = &ch.body {
                    if !last || attributes & OBJ_OPENLINK == 0 {
                        reparses += 1;
                        if reparses > MAX_REPARSE {
                            return Err(STATUS_REPARSE_POINT_NOT_RESOLVED);
                        }
                        let rest = comps[i + 1..].join("\\");
                        let mut next = target.clone();
                        if !next.starts_with('\\') {
                            return Err(STATUS_OBJECT_PATH_SYNTAX_BAD);
                        }
                        // A trailing separator stays (`\??\C:\` is the
                        // volume's root directory, `\??\C:` the volume).
                        if i + 1 < comps.len() {
                            next.push('\\');
                            next.push_str(&rest);
                        }
                        next.remove(0);
                        path = next;
                        start = self.root;
                        continue 'restart;
                    }
                }
                if last {
                    return Ok(Lookup::Found(child));
                }
                if self
                    .types
                    .get(ch.type_index as usize)
                    .is_some_and(|t| t.has_parse)
                {
                    // Only a trailing separator left: the device's root
                    // (`\`), which a file system opens as its root directory.
                    let rest = comps[i + 1..].join("\\");
                    return Ok(Lookup::Parse {
                        object: child,
                        remaining: if rest.is_empty() { "\\".into() } else { rest },
                    });
                }
                cur = child;
            }
            unreachable!("a non-empty path has a last component");
        }
    }

    /// `ObInsertObject` of a named object: creates `path` with one pointer
    /// reference (the creator's). With `OBJ_OPENIF`, an existing object of
    /// the same type is referenced and returned with `STATUS_OBJECT_NAME_EXISTS`;
    /// of another type, `STATUS_OBJECT_TYPE_MISMATCH`; without it,
    /// `STATUS_OBJECT_NAME_COLLISION`. Creating beneath an object with a
    /// parse procedure is that owner's business: `STATUS_NOT_IMPLEMENTED` here.
    pub fn insert(
        &mut self,
        path: &str,
        attributes: u32,
        type_index: TypeIndex,
        body: Body,
    ) -> Result<(ObjectId, NtStatus), NtStatus> {
        if type_index as usize >= self.types.len() {
            return Err(STATUS_OBJECT_TYPE_MISMATCH);
        }
        let Some((parent_path, name)) = path.rsplit_once('\\') else {
            return Err(STATUS_OBJECT_PATH_SYNTAX_BAD);
        };
        if name.is_empty() {
            return Err(STATUS_OBJECT_NAME_INVALID);
        }
        let parent_path = if parent_path.is_empty() {
            "\\"
        } else {
            parent_path
        };
        let parent = match self.lookup(parent_path, attributes & OBJ_CASE_INSENSITIVE, None) {
            Ok(Lookup::Found(p)) => p,
            Ok(Lookup::Parse { .. }) => return Err(STATUS_NOT_IMPLEMENTED),
            Err(STATUS_OBJECT_NAME_NOT_FOUND) => return Err(STATUS_OBJECT_PATH_NOT_FOUND),
            Err(e) => return Err(e),
        };
        if self.children(parent).is_none() {
            let parse = self
                .header(parent)
                .and_then(|h| self.types.get(h.type_index as usize))
                .is_some_and(|t| t.has_parse);
            return Err(if parse {
                STATUS_NOT_IMPLEMENTED
            } else {
                STATUS_OBJECT_TYPE_MISMATCH
            });
        }
        if let Some(existing) =
            self.find_child(parent, name, attributes & OBJ_CASE_INSENSITIVE != 0)
        {
            let same_type = self
                .header(existing)
                .is_some_and(|h| h.type_index == type_index);
            if attributes & OBJ_OPENIF != 0 && same_type {
                if self.headers.reference_if_alive(existing) {
                    return Ok((existing, STATUS_OBJECT_NAME_EXISTS));
                }
            } else if self.headers.pointer_count(existing) != 0 {
                return Err(if attributes & OBJ_OPENIF == 0 {
                    STATUS_OBJECT_NAME_COLLISION
                } else {
                    STATUS_OBJECT_TYPE_MISMATCH
                });
            }
            // Its last reference is gone and its deleter waits for the
            // lock: the name is free now.
            self.unlink_name(existing);
        }
        let id = self.alloc(ObjectHeader {
            name: name.into(),
            parent: Some(parent),
            type_index,
            permanent: attributes & OBJ_PERMANENT != 0,
            body,
        })?;
        if let Some(Body::Directory(kids)) = self.objects[parent].as_mut().map(|h| &mut h.body) {
            kids.push(id);
        }
        Ok((id, STATUS_SUCCESS))
    }

    /// Creates an unnamed object (one pointer reference).
    pub fn create_unnamed(
        &mut self,
        type_index: TypeIndex,
        body: Body,
    ) -> Result<ObjectId, NtStatus> {
        if type_index as usize >= self.types.len() {
            return Err(STATUS_OBJECT_TYPE_MISMATCH);
        }
        self.alloc(ObjectHeader {
            name: String::new(),
            parent: None,
            type_index,
            permanent: false,
            body,
        })
    }

    /// `ObReferenceObject` of an object found under the lock (by name or
    /// id): STATUS_INVALID_PARAMETER for no object or one being deleted.
    pub fn reference(&mut self, id: ObjectId) -> Result<(), NtStatus> {
        self.header(id).ok_or(STATUS_INVALID_PARAMETER)?;
        if self.headers.reference_if_alive(id) {
            Ok(())
        } else {
            Err(STATUS_INVALID_PARAMETER)
        }
    }

    /// `ObDereferenceObject` (`ObDereferenceObjectDeferDelete` when
    /// `defer`, as NT does above APC_LEVEL): the last reference deletes the
    /// object now, or queues it for `process_deferred_deletes`.
    pub fn dereference(&mut self, id: ObjectId, defer: bool) -> Result<(), NtStatus> {
        self.header(id).ok_or(STATUS_INVALID_PARAMETER)?;
        if self.headers.dereference(id)? {
            self.object_dead(id, defer);
        }
        Ok(())
    }

    /// The rest of a last dereference done without the lock
    /// (`ObjectHeaders::dereference` returned `true`): deletes the object
    /// now, or queues it for `process_deferred_deletes`.
    pub fn object_dead(&mut self, id: ObjectId, defer: bool) {
        if defer {
            self.pending_delete.push(id);
        } else {
            self.delete(id);
        }
    }

    /// Runs deferred deletions (the work item `ObpProcessRemoveObjectQueue` queues).
    pub fn process_deferred_deletes(&mut self) -> usize {
        let list = core::mem::take(&mut self.pending_delete);
        let n = list.len();
        for id in list {
            self.delete(id);
        }
        n
    }

    /// Objects awaiting deferred deletion.
    pub fn pending_deletes(&self) -> usize {
        self.pending_delete.len()
    }

    fn unlink_name(&mut self, id: ObjectId) {
        let Some(parent) = self.header(id).and_then(|h| h.parent) else {
            return;
        };
        if let Some(Some(ObjectHeader {
            body: Body::Directory(kids),
            ..
        })) = self.objects.get_mut(parent)
        {
            kids.retain(|&k| k != id);
        }
        if let Some(Some(h)) = self.objects.get_mut(id) {
            h.parent = None;
        }
        self.headers.set_flag(id, FLAG_NAMED, false);
    }

    fn delete(&mut self, id: ObjectId) {
        self.unlink_name(id);
        if let Some(h) = self.objects.get_mut(id).and_then(|o| o.take()) {
            if let Body::Directory(kids) = &h.body {
                for &k in kids {
                    if let Some(Some(c)) = self.objects.get_mut(k) {
                        c.parent = None;
                        self.headers.set_flag(k, FLAG_NAMED, false);
                    }
                }
            }
            self.deleted.push((id, h.type_index));
            self.dying.insert(id);
        }
    }

    /// Gives the slot of a deleted object (one taken from
    /// [`Namespace::deleted`]) back for reuse; an id that names a live
    /// object, or is already free, is left alone.
    pub fn recycle(&mut self, id: ObjectId) {
        if self.dying.remove(&id) {
            self.free_ids.push(id);
        }
    }

    /// A handle was opened to the object (`ObpIncrementHandleCount`): one more
    /// handle and one more pointer reference.
    pub fn open_handle(&mut self, id: ObjectId) -> Result<(), NtStatus> {
        self.header(id).ok_or(STATUS_INVALID_PARAMETER)?;
        self.headers.open_handle(id)
    }

    /// A handle was closed (`ObpDecrementHandleCount`): a temporary object
    /// loses its name with its last handle (`ObpDeleteNameCheck`), then the
    /// handle's pointer reference is dropped.
    pub fn close_handle(&mut self, id: ObjectId, defer: bool) -> Result<(), NtStatus> {
        self.header(id).ok_or(STATUS_INVALID_PARAMETER)?;
        if self.headers.close_handle(id)?.name_check {
            self.delete_name_check(id);
        }
        self.dereference(id, defer)
    }

    /// `ObpDeleteNameCheck`: a temporary object without handles loses its
    /// name (checked again under the lock: a handle may have come since).
    pub fn delete_name_check(&mut self, id: ObjectId) {
        if self.header(id).is_some_and(|h| !h.permanent) && self.headers.handle_count(id) == 0 {
            self.unlink_name(id);
        }
    }

    /// `NtMakeTemporaryObject`.
    pub fn make_temporary(&mut self, id: ObjectId) -> Result<(), NtStatus> {
        self.header_mut(id)?.permanent = false;
        self.headers.set_flag(id, FLAG_PERMANENT, false);
        self.delete_name_check(id);
        Ok(())
    }

    /// `NtMakePermanentObject`.
    pub fn make_permanent(&mut self, id: ObjectId) -> Result<(), NtStatus> {
        self.header_mut(id)?.permanent = true;
        self.headers.set_flag(id, FLAG_PERMANENT, true);
        Ok(())
    }

    /// `PointerCount` and `HandleCount` of an object.
    pub fn counts(&self, id: ObjectId) -> (u64, u64) {
        (
            self.headers.pointer_count(id),
            self.headers.handle_count(id),
        )
    }

    /// The object's full name (`ObQueryNameString`), empty when unnamed.
    pub fn full_name(&self, id: ObjectId) -> String {
        if id == self.root {
            return "\\".into();
        }
        let mut parts = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            if c == self.root {
                break;
            }
            let Some(h) = self.header(c) else {
                return String::new();
            };
            if h.parent.is_none() {
                return String::new();
            }
            parts.push(h.name.as_str());
            cur = h.parent;
        }
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('\\');
            s.push_str(p);
        }
        s
    }

    /// A directory's entries as (name, type name), as WinObj and `!object` list them.
    pub fn list_directory(&self, dir: ObjectId) -> Result<Vec<(String, String)>, NtStatus> {
        let kids = self.children(dir).ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
        let mut v: Vec<(String, String)> = kids
            .iter()
            .filter_map(|&k| {
                let h = self.header(k)?;
                Some((
                    h.name.clone(),
                    self.types.get(h.type_index as usize)?.name.clone(),
                ))
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// Live objects (for leak tests).
    /// Object slots in use or free for reuse (grows only with live objects).
    pub fn slots(&self) -> usize {
        self.objects.len()
    }

    pub fn live_objects(&self) -> usize {
        self.objects.iter().filter(|o| o.is_some()).count()
    }
}

#[cfg(test)]
mod tests;
