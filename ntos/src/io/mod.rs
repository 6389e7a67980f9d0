//! The I/O manager (*Windows Internals*, Part 1, ch. 6, "I/O system"):
//! driver, device, file and I/O completion objects in the object namespace,
//! IRPs travelling down device stacks and back, and the `Nt*File` services.
//! The policy (stack-location traffic, share access, the completion queue)
//! is the host-tested `io` crate; the structures drivers see are `wdk`'s,
//! in their Windows x64 layouts.
//!
//! I/O objects live in nonpaged pool as NT's do: a 16-byte ntrs header
//! (the object manager id of the object) directly before the body a driver
//! sees (`DRIVER_OBJECT`, `DEVICE_OBJECT` + extension, `FILE_OBJECT`), so a
//! body pointer finds its object (`ObfDereferenceObject(DeviceObject)`).

pub mod completion;
pub mod config;
pub mod device;
pub mod driver;
pub mod exports;
pub mod fastio;
pub mod file;
pub mod fs;
pub mod info;
pub mod irp;
pub mod kd;
pub mod load;
pub mod mdl;
pub mod pnp;
pub mod queue;
pub mod remlock;
/// Boot tests (`/TESTS`) of the I/O manager.
pub mod tests;
/// Boot tests (`/TESTS`) of completion in the issuing thread.
pub mod tests_apc;
/// Boot tests (`/TESTS`) of fast I/O and file information queries.
pub mod tests_fastio;
/// Boot tests (`/TESTS`) of the mount path and ntfs.sys.
pub mod tests_fs;
/// Boot tests (`/TESTS`) of driver loading.
pub mod tests_load;
/// Boot tests (`/TESTS`) of device queues and `StartIo`.
pub mod tests_queue;
pub mod tests_usn;

use crate::ex::xpool;
use crate::ke::irql::SpinLocked;
use crate::ob::object::{ob_create_object, ob_dereference_object, CreateSpec, ObjectBody};
use crate::ob::types::{ob_create_object_type, ObjectTypeRef, TypeInitializer};
use ::ob::namespace::ObjectId;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use mm::pool::PoolType;
use nt::status::*;
use nt::NtStatus;
use security::access::GenericMapping;
use wdk::*;

/// `IoDriverObjectType`, `IoDeviceObjectType`, `IoFileObjectType`,
/// `IoCompletionObjectType`.
pub static IO_DRIVER_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();
pub static IO_DEVICE_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();
pub static IO_FILE_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();
pub static IO_COMPLETION_OBJECT_TYPE: ObjectTypeRef = ObjectTypeRef::new();

/// A pool tag as the pool reports it (`b"Irp "`).
pub const fn tag(t: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*t)
}

/// Pool tags of the I/O manager's allocations.
pub const TAG_DRIVER: u32 = tag(b"Driv");
pub const TAG_DEVICE: u32 = tag(b"Devi");
pub const TAG_FILE: u32 = tag(b"File");
pub const TAG_COMPLETION: u32 = tag(b"IoCo");
pub const TAG_IRP: u32 = tag(b"Irp ");
pub const TAG_MDL: u32 = tag(b"Mdl ");
pub const TAG_BUFFER: u32 = tag(b"IoBu");
pub const TAG_NAME: u32 = tag(b"IoNm");

/// Which I/O object a header precedes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum IoKind {
    Driver = 1,
    Device = 2,
    File = 3,
    Completion = 4,
}

const HEADER_MAGIC: u32 = u32::from_le_bytes(*b"IoOb");

/// The ntrs header before every I/O object body.
#[repr(C, align(16))]
struct IoHeader {
    id: usize,
    magic: u32,
    kind: u32,
}

/// Live I/O objects: object id → (body address, kind, pool tag).
static OBJECTS: SpinLocked<BTreeMap<ObjectId, (u64, IoKind, u32)>, { crate::ke::DISPATCH_LEVEL }> =
    SpinLocked::new(BTreeMap::new());

/// Allocates zeroed nonpaged pool for an object body of `bytes`, with the
/// header before it; returns the body's address.
fn allocate_body(kind: IoKind, bytes: usize, tag: u32) -> Result<u64, NtStatus> {
    let hdr = core::mem::size_of::<IoHeader>() as u64;
    let va = xpool::allocate(PoolType::NonPaged, hdr + bytes as u64, tag, true)
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    // SAFETY: `va` is a fresh, 16-byte aligned block of `hdr + bytes` bytes.
    unsafe {
        (va as *mut IoHeader).write(IoHeader {
            id: usize::MAX,
            magic: HEADER_MAGIC,
            kind: kind as u32,
        })
    };
    Ok(va + hdr)
}

fn free_body(body: u64, tag: u32) {
    let va = body - core::mem::size_of::<IoHeader>() as u64;
    // SAFETY: the header is ours; clearing the magic makes stale pointers fail lookups.
    unsafe { (*(va as *mut IoHeader)).magic = 0 };
    let _ = xpool::free(va, tag);
}

/// Creates the object manager object for a body allocated by
/// `allocate_body` (named or not); on failure the body is freed. The
/// caller holds the one reference.
fn insert_object(
    object_type: &'static ObjectTypeRef,
    kind: IoKind,
    body: u64,
    tag: u32,
    name: Option<&str>,
    attributes: u32,
) -> Result<ObjectId, NtStatus> {
    let created = ob_create_object(CreateSpec {
        object_type,
        name,
        attributes,
        body: ObjectBody::Io(body),
        sd: None,
    });
    let id = match created {
        Ok((id, s)) if s == STATUS_SUCCESS => id,
        Ok((id, _)) => {
            // OBJ_OPENIF found another object of that name.
            ob_dereference_object(id);
            free_body(body, tag);
            return Err(STATUS_OBJECT_NAME_COLLISION);
        }
        Err(e) => {
            free_body(body, tag);
            return Err(e);
        }
    };
    let hdr = (body - core::mem::size_of::<IoHeader>() as u64) as *mut IoHeader;
    // SAFETY: our header, before the body we just allocated.
    unsafe { (*hdr).id = id };
    OBJECTS.with(|m| m.insert(id, (body, kind, tag)));
    Ok(id)
}

/// The object id of an I/O object body of `kind` (None for anything else).
pub fn object_of(body: u64, kind: IoKind) -> Option<ObjectId> {
    if body < 0xFFFF_8000_0000_0000 || body & 0xF != 0 {
        return None;
    }
    let hdr = (body - core::mem::size_of::<IoHeader>() as u64) as *const IoHeader;
    // SAFETY: kernel bodies of I/O objects are preceded by their header; a
    // stale or foreign pointer is checked against the live-object table below.
    let (id, magic, k) = unsafe { ((*hdr).id, (*hdr).magic, (*hdr).kind) };
    if magic != HEADER_MAGIC || k != kind as u32 {
        return None;
    }
    OBJECTS
        .with(|m| {
            m.get(&id)
                .is_some_and(|&(b, kk, _)| b == body && kk == kind)
        })
        .then_some(id)
}

/// The body address and kind of a live I/O object.
pub fn body_of(id: ObjectId) -> Option<(u64, IoKind)> {
    OBJECTS.with(|m| m.get(&id).map(|&(b, k, _)| (b, k)))
}

/// Every live I/O object of `kind` (kd).
pub fn objects_of(kind: IoKind) -> Vec<(ObjectId, u64)> {
    OBJECTS.with(|m| {
        m.iter()
            .filter(|(_, v)| v.1 == kind)
            .map(|(id, v)| (*id, v.0))
            .collect()
    })
}

/// The type delete procedure of every I/O type (`IopDeleteDriver`,
/// `IopDeleteDevice`, `IopDeleteFile`, `IopDeleteIoCompletion`): runs
/// outside the object manager's lock when the last reference went.
fn delete_procedure(id: ObjectId) {
    let Some((body, kind, tag)) = OBJECTS.with(|m| m.remove(&id)) else {
        return;
    };
    match kind {
        IoKind::Driver => driver::delete_driver(body),
        IoKind::Device => device::delete_device(body),
        IoKind::File => file::delete_file(body),
        IoKind::Completion => completion::delete_completion(body),
    }
    free_body(body, tag);
}

/// `IoInitSystem` (the part that does not load drivers): the I/O object
/// types and `\FileSystem` (`\Device` and `\Driver` come with the namespace).
pub fn io_init_system() -> Result<(), NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"IoIn");
    // Thread exit cancels the thread's requests (`IoCancelThreadIo`).
    crate::ke::sched::register_thread_exit_routine(irp::io_cancel_thread_io);
    let sync = 0x0010_0000;
    type TypeRow<'a> = (
        &'a str,
        GenericMapping,
        &'a ObjectTypeRef,
        Option<crate::ob::types::ParseProcedure>,
        Option<fn(ObjectId, u64)>,
    );
    let types: [TypeRow; 4] = [
        (
            "Driver",
            GenericMapping {
                read: 0x0002_0000,
                write: 0x0002_0000,
                execute: 0x0002_0000,
                all: 0x001F_01FF,
            },
            &IO_DRIVER_OBJECT_TYPE,
            None,
            None,
        ),
        (
            "Device",
            GenericMapping {
                read: FILE_GENERIC_READ,
                write: FILE_GENERIC_WRITE,
                execute: FILE_GENERIC_EXECUTE,
                all: FILE_ALL_ACCESS,
            },
            &IO_DEVICE_OBJECT_TYPE,
            Some(file::parse_device),
            None,
        ),
        (
            "File",
            GenericMapping {
                read: FILE_GENERIC_READ,
                write: FILE_GENERIC_WRITE,
                execute: FILE_GENERIC_EXECUTE,
                all: FILE_ALL_ACCESS,
            },
            &IO_FILE_OBJECT_TYPE,
            None,
            Some(file::close_file),
        ),
        (
            "IoCompletion",
            GenericMapping {
                read: 0x0002_0001,
                write: 0x0002_0002,
                execute: sync,
                all: 0x001F_0003,
            },
            &IO_COMPLETION_OBJECT_TYPE,
            None,
            None,
        ),
    ];
    for (name, map, out, parse, close) in types {
        let init = TypeInitializer {
            generic_mapping: map,
            parse,
            close,
            delete: Some(delete_procedure),
            ..Default::default()
        };
        ob_create_object_type(name, init, out)?;
    }
    crate::ob::with_namespace(|ns| {
        ns.insert(
            "\\FileSystem",
            ::ob::OBJ_PERMANENT,
            ::ob::namespace::TYPE_DIRECTORY,
            ::ob::namespace::Body::Directory(Vec::new()),
        )
        .map(|_| ())
    })?;
    Ok(())
}

/// A UTF-16 copy of `s` in nonpaged pool as a `UNICODE_STRING` (freed with
/// [`free_unicode`]). STATUS_NAME_TOO_LONG past 32767 characters.
pub fn alloc_unicode(s: &str) -> Result<UNICODE_STRING, NtStatus> {
    let units: Vec<u16> = s.encode_utf16().collect();
    if units.len() > 0x7FFF {
        return Err(STATUS_INVALID_PARAMETER);
    }
    if units.is_empty() {
        return Ok(UNICODE_STRING::empty());
    }
    let bytes = units.len() * 2;
    let va = xpool::allocate(PoolType::NonPaged, bytes as u64, TAG_NAME, false)
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    // SAFETY: a fresh block of `bytes` bytes.
    unsafe { core::ptr::copy_nonoverlapping(units.as_ptr(), va as *mut u16, units.len()) };
    Ok(UNICODE_STRING {
        Length: bytes as u16,
        MaximumLength: bytes as u16,
        Buffer: va as *mut u16,
    })
}

/// Frees a string from [`alloc_unicode`].
pub fn free_unicode(s: &mut UNICODE_STRING) {
    if !s.Buffer.is_null() {
        let _ = xpool::free(s.Buffer as u64, TAG_NAME);
    }
    *s = UNICODE_STRING::empty();
}

/// The string a `UNICODE_STRING` holds.
///
/// # Safety
/// `s` must describe readable memory.
pub unsafe fn unicode_to_string(s: &UNICODE_STRING) -> String {
    // SAFETY: the caller guarantees the buffer is readable.
    String::from_utf16_lossy(unsafe { s.as_slice() })
}
