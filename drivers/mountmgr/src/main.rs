//! mountmgr.sys, the mount manager (*Windows Internals* 7th ed., Part 2,
//! ch. 11, "The mount manager"). `DriverEntry` creates
//! `\Device\MountPointManager` (and `\GLOBAL??\MountPointManager`) and
//! registers for `MOUNTDEV_MOUNTED_DEVICE_GUID` interface arrivals,
//! existing ones included. For each arriving volume it opens the interface,
//! asks the volume for its device name (`IOCTL_MOUNTDEV_QUERY_DEVICE_NAME`)
//! and unique ID (`IOCTL_MOUNTDEV_QUERY_UNIQUE_ID`), its GPT entry
//! (`IOCTL_DISK_GET_PARTITION_INFO_EX`) and its disk and partition numbers
//! (`IOCTL_STORAGE_GET_DEVICE_NUMBER`), then runs `lib/storage::mountmgr`'s
//! policy (the host-tested code) over every volume it knows with the
//! `MountedDevices` values as its database: it creates the
//! `\GLOBAL??\Volume{GUID}` and drive-letter links and writes the
//! `\DosDevices\X:` and `\??\Volume{GUID}` values (REG_BINARY, the unique
//! ID) through `ZwCreateKey`/`ZwEnumerateValueKey`/`ZwSetValueKey`. It
//! answers `IOCTL_MOUNTMGR_QUERY_POINTS` from the same mount points.
//!
//! The system volume (which gets `C:`) is the partition named by
//! `Control\SystemBootDevice` (the ARC name of the boot partition the
//! kernel records there, `multi(0)disk(0)rdisk(0)partition(2)`). Windows'
//! mount manager learns the boot volume's letter from the kernel's
//! drive-letter assignment at boot instead.
//!
//! Not done: volume removal (interface removal events are ignored),
//! `IOCTL_MOUNTMGR_CREATE_POINT`/`DELETE_POINTS`/other mount manager
//! requests (`STATUS_INVALID_DEVICE_REQUEST`), suggested link names, mount
//! points in directories (reparse points), offline volumes; no `DriverUnload`.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use nt::status::*;
use nt::NtStatus;
use rt::request::{complete, dispatch_raw_create_close, ioctl, unicode, PassiveLock};
use rt::wdk::disk::*;
use rt::wdk::mountdev::*;
use rt::wdk::pnpnotify::*;
use rt::wdk::registry::*;
use rt::wdk::*;
use storage::guid::Guid;
use storage::mountmgr::{self as policy, MountPoint};

/// What the mount manager knows.
struct State {
    volumes: Vec<policy::Volume>,
    /// `\GLOBAL??` leaves it created.
    links: Vec<String>,
    points: Vec<MountPoint>,
}

static STATE: PassiveLock<State> = PassiveLock::new(State {
    volumes: Vec::new(),
    links: Vec::new(),
    points: Vec::new(),
});

const MOUNTED_DEVICES: &str = "\\Registry\\Machine\\System\\MountedDevices";
const SYSTEM_BOOT_DEVICE_KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Control";

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn from_utf16_bytes(b: &[u8]) -> String {
    let u: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&u)
}

/// Opens or creates the key at `path`.
fn open_key(path: &str, create: bool) -> Result<HANDLE, NtStatus> {
    let p = utf16(path);
    let mut name = unicode(&p);
    let mut oa = OBJECT_ATTRIBUTES {
        Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: core::ptr::null_mut(),
        ObjectName: &mut name,
        Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
        SecurityDescriptor: core::ptr::null_mut(),
        SecurityQualityOfService: core::ptr::null_mut(),
    };
    let mut h: HANDLE = core::ptr::null_mut();
    // SAFETY: valid attributes and out pointers.
    let s = unsafe {
        if create {
            ZwCreateKey(
                &mut h,
                KEY_ALL_ACCESS,
                &mut oa,
                0,
                core::ptr::null_mut(),
                REG_OPTION_NON_VOLATILE,
                core::ptr::null_mut(),
            )
        } else {
            ZwOpenKey(&mut h, KEY_READ, &mut oa)
        }
    };
    if s.is_success() {
        Ok(h)
    } else {
        Err(s)
    }
}

/// Every REG_BINARY value of `MountedDevices`: (name, data).
fn database(h: HANDLE) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1024];
    let mut i = 0;
    loop {
        let mut need = 0u32;
        // SAFETY: a valid key handle and buffer.
        let s = unsafe {
            ZwEnumerateValueKey(
                h,
                i,
                KeyValueFullInformation,
                buf.as_mut_ptr().cast(),
                buf.len() as u32,
                &mut need,
            )
        };
        if s == STATUS_BUFFER_OVERFLOW || s == STATUS_BUFFER_TOO_SMALL {
            if need as usize <= buf.len() || buf.try_reserve(need as usize).is_err() {
                break;
            }
            buf.resize(need as usize, 0);
            continue;
        }
        if !s.is_success() {
            break;
        }
        let r = |at: usize| {
            u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize
        };
        let (ty, off, len, nlen) = (r(4) as u32, r(8), r(12), r(16));
        if ty == REG_BINARY && 20 + nlen <= buf.len() && off + len <= buf.len() {
            out.push((
                from_utf16_bytes(&buf[20..20 + nlen]),
                buf[off..off + len].to_vec(),
            ));
        }
        i += 1;
    }
    out
}

/// (rdisk, partition) of `Control\SystemBootDevice`.
fn boot_partition() -> Option<(u32, u32)> {
    let h = open_key(SYSTEM_BOOT_DEVICE_KEY, false).ok()?;
    let n = utf16("SystemBootDevice");
    let mut name = unicode(&n);
    let mut buf = [0u8; 512];
    let mut need = 0u32;
    // SAFETY: a valid key handle and buffer.
    let s = unsafe {
        let s = ZwQueryValueKey(
            h,
            &mut name,
            KeyValuePartialInformation,
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            &mut need,
        );
        ZwClose(h);
        s
    };
    if !s.is_success() {
        return None;
    }
    let len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    let arc = from_utf16_bytes(buf.get(12..12 + len)?).to_ascii_lowercase();
    let num = |key: &str| -> Option<u32> {
        let rest = &arc[arc.find(key)? + key.len()..];
        rest[..rest.find(')')?].parse().ok()
    };
    Some((num("rdisk(")?, num("partition(")?))
}

/// A `MOUNTDEV_NAME`-style answer (u16 length + bytes), asking again with
/// the size the first answer gave.
fn query_mountdev(dev: *mut DEVICE_OBJECT, code: u32) -> Result<Vec<u8>, NtStatus> {
    let mut buf = vec![0u8; 256];
    for _ in 0..2 {
        // SAFETY: `dev` is referenced through the caller's file object.
        let (s, n) = unsafe { ioctl(dev, code, &[], &mut buf, false) };
        let len = u16::from_le_bytes([buf[0], buf[1]]) as usize;
        if s == STATUS_BUFFER_OVERFLOW && n >= 2 {
            buf.resize(len + 2, 0);
            continue;
        }
        if !s.is_success() {
            return Err(s);
        }
        if n < 2 + len {
            return Err(STATUS_INVALID_PARAMETER);
        }
        return Ok(buf[2..2 + len].to_vec());
    }
    Err(STATUS_BUFFER_OVERFLOW)
}

/// What the volume behind interface `name` says about itself.
fn query_volume(name: &[u16], boot: Option<(u32, u32)>) -> Result<policy::Volume, NtStatus> {
    let mut u = unicode(name);
    let mut file: *mut FILE_OBJECT = core::ptr::null_mut();
    let mut dev: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: a valid name and out pointers.
    let s = unsafe { IoGetDeviceObjectPointer(&mut u, 0, &mut file, &mut dev) };
    if !s.is_success() {
        return Err(s);
    }
    let r = (|| {
        let device = from_utf16_bytes(&query_mountdev(dev, IOCTL_MOUNTDEV_QUERY_DEVICE_NAME)?);
        let unique_id = query_mountdev(dev, IOCTL_MOUNTDEV_QUERY_UNIQUE_ID)?;
        let mut pi = PARTITION_INFORMATION_EX::default();
        // SAFETY: the struct is plain data viewed as bytes for the answer.
        let pib = unsafe {
            core::slice::from_raw_parts_mut(
                (&raw mut pi).cast::<u8>(),
                core::mem::size_of::<PARTITION_INFORMATION_EX>(),
            )
        };
        // SAFETY: as above.
        let (s, _) = unsafe { ioctl(dev, IOCTL_DISK_GET_PARTITION_INFO_EX, &[], pib, false) };
        let gpt = s.is_success() && pi.PartitionStyle == PARTITION_STYLE_GPT;
        let mut num = [0u8; 12];
        // SAFETY: as above.
        let (s, _) = unsafe { ioctl(dev, IOCTL_STORAGE_GET_DEVICE_NUMBER, &[], &mut num, false) };
        let numbers = s.is_success().then(|| {
            (
                u32::from_le_bytes([num[4], num[5], num[6], num[7]]),
                u32::from_le_bytes([num[8], num[9], num[10], num[11]]),
            )
        });
        Ok(policy::Volume {
            device,
            unique_id,
            partition_guid: gpt.then(|| Guid::from(pi.Gpt.PartitionId)),
            partition_type: if gpt {
                Guid::from(pi.Gpt.PartitionType)
            } else {
                Guid::NULL
            },
            attributes: if gpt { pi.Gpt.Attributes } else { 0 },
            system: numbers.is_some() && numbers == boot,
        })
    })();
    // SAFETY: the reference IoGetDeviceObjectPointer gave us.
    unsafe { ObfDereferenceObject(file.cast()) };
    r
}

/// A volume arrived: learn it, re-plan, create the new links, write the values.
fn volume_arrival(name: &[u16]) -> NtStatus {
    let v = match query_volume(name, boot_partition()) {
        Ok(v) => v,
        Err(s) => {
            rt::kprintln!(
                "mountmgr: cannot query {}: {s:?}",
                String::from_utf16_lossy(name)
            );
            return s;
        }
    };
    let mut st = STATE.lock();
    if st
        .volumes
        .iter()
        .any(|x| x.device.eq_ignore_ascii_case(&v.device))
    {
        return STATUS_SUCCESS;
    }
    if st.volumes.try_reserve(1).is_err() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    st.volumes.push(v);
    let h = match open_key(MOUNTED_DEVICES, true) {
        Ok(h) => h,
        Err(s) => {
            rt::kprintln!("mountmgr: cannot open MountedDevices: {s:?}");
            return s;
        }
    };
    let existing = database(h);
    let plan = policy::plan(&st.volumes, &existing);
    let mut status = STATUS_SUCCESS;
    for (leaf, target) in &plan.links {
        if st.links.iter().any(|l| l.eq_ignore_ascii_case(leaf)) {
            continue;
        }
        let l = utf16(&alloc::format!("\\GLOBAL??\\{leaf}"));
        let t = utf16(target);
        let (mut ul, mut ut) = (unicode(&l), unicode(&t));
        // SAFETY: valid strings.
        let s = unsafe { IoCreateSymbolicLink(&mut ul, &mut ut) };
        if s.is_success() {
            if leaf.len() == 2 {
                rt::kprintln!("mountmgr: \\GLOBAL??\\{leaf} -> {target}");
            }
            st.links.push(leaf.clone());
        } else {
            rt::kprintln!("mountmgr: cannot create \\GLOBAL??\\{leaf}: {s:?}");
            status = s;
        }
    }
    for (name, data) in &plan.values {
        if existing.iter().any(|(n, d)| n == name && d == data) {
            continue;
        }
        let n = utf16(name);
        let mut un = unicode(&n);
        // SAFETY: a valid key handle, name and data.
        let s = unsafe {
            ZwSetValueKey(
                h,
                &mut un,
                0,
                REG_BINARY,
                data.as_ptr() as *mut c_void,
                data.len() as u32,
            )
        };
        if !s.is_success() {
            status = s;
        }
    }
    // SAFETY: the handle ZwCreateKey gave us.
    unsafe { ZwClose(h) };
    st.points = policy::mount_points(&plan, &st.volumes);
    status
}

/// The `EventCategoryDeviceInterfaceChange` callback.
unsafe extern "system" fn interface_change(n: *mut c_void, _context: *mut c_void) -> NtStatus {
    // SAFETY: the PnP manager passes a DEVICE_INTERFACE_CHANGE_NOTIFICATION
    // whose name lives across the call.
    unsafe {
        let n = &*(n as *const DEVICE_INTERFACE_CHANGE_NOTIFICATION);
        if n.Event != GUID_DEVICE_INTERFACE_ARRIVAL || n.SymbolicLinkName.is_null() {
            return STATUS_SUCCESS;
        }
        let name = (*n.SymbolicLinkName).as_slice().to_vec();
        volume_arrival(&name)
    }
}

/// `IRP_MJ_DEVICE_CONTROL`: `IOCTL_MOUNTMGR_QUERY_POINTS`.
unsafe extern "system" fn device_control(_dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager's IRP; METHOD_BUFFERED: the system buffer
    // holds max(input, output) bytes, the input first.
    unsafe {
        let sl = IoGetCurrentIrpStackLocation(irp);
        let p = &(*sl).Parameters.DeviceIoControl;
        if p.IoControlCode != IOCTL_MOUNTMGR_QUERY_POINTS {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_NO_INCREMENT);
        }
        let sys = (*irp).AssociatedIrp.SystemBuffer as *mut u8;
        let (inl, outl) = (p.InputBufferLength as usize, p.OutputBufferLength as usize);
        if sys.is_null() || inl == 0 || outl == 0 {
            return complete(irp, STATUS_INVALID_PARAMETER, 0, IO_NO_INCREMENT);
        }
        let mut input = Vec::new();
        if input.try_reserve(inl).is_err() {
            return complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0, IO_NO_INCREMENT);
        }
        input.extend_from_slice(core::slice::from_raw_parts(sys, inl));
        let out = core::slice::from_raw_parts_mut(sys, outl);
        let st = STATE.lock();
        let (s, n) = policy::query_points(&st.points, &input, out);
        drop(st);
        complete(irp, s, n, IO_NO_INCREMENT)
    }
}

static DEVICE_NAME: [u16; 26] = rt::utf16("\\Device\\MountPointManager\0");
static LINK_NAME: [u16; 28] = rt::utf16("\\GLOBAL??\\MountPointManager\0");
/// The notification entry (never unregistered: no unload).
static ENTRY: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// `DriverEntry`.
///
/// # Safety
/// Called by the I/O manager with a valid driver object.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
) -> NtStatus {
    STATE.init();
    let mut name = rt::unicode_string(&DEVICE_NAME);
    let mut link = rt::unicode_string(&LINK_NAME);
    let mut dev: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: the driver object is ours during DriverEntry; valid pointers.
    unsafe {
        let s = IoCreateDevice(
            driver,
            0,
            &mut name,
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            0,
            &mut dev,
        );
        if !s.is_success() {
            return s;
        }
        let mf = &mut (*driver).MajorFunction;
        mf[IRP_MJ_CREATE as usize] = Some(dispatch_raw_create_close);
        mf[IRP_MJ_CLEANUP as usize] = Some(dispatch_raw_create_close);
        mf[IRP_MJ_CLOSE as usize] = Some(dispatch_raw_create_close);
        mf[IRP_MJ_DEVICE_CONTROL as usize] = Some(device_control);
        (*dev).Flags |= DO_BUFFERED_IO;
        (*dev).Flags &= !DO_DEVICE_INITIALIZING;
        let s = IoCreateSymbolicLink(&mut link, &mut name);
        if !s.is_success() {
            IoDeleteDevice(dev);
            return s;
        }
        let mut entry: *mut c_void = core::ptr::null_mut();
        let s = IoRegisterPlugPlayNotification(
            EventCategoryDeviceInterfaceChange,
            PNPNOTIFY_DEVICE_INTERFACE_INCLUDE_EXISTING_INTERFACES,
            (&MOUNTDEV_MOUNTED_DEVICE_GUID as *const GUID) as *mut c_void,
            driver,
            interface_change,
            core::ptr::null_mut(),
            &mut entry,
        );
        if !s.is_success() {
            IoDeleteSymbolicLink(&mut link);
            IoDeleteDevice(dev);
            return s;
        }
        ENTRY.store(entry as usize, core::sync::atomic::Ordering::Release);
    }
    STATUS_SUCCESS
}
