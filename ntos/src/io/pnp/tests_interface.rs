//! Boot tests of device interfaces, interface-change notifications, class
//! filters and the `Zw*` registry exports (interface.rs, filters.rs,
//! cm/zw.rs).

use super::interface::*;
use crate::cm::*;
use crate::ktest::{check, Test, TestResult};
use crate::ob::object::Mode;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use nt::status::*;
use nt::NtStatus;
use wdk::disk::GUID;
use wdk::pnpnotify::*;

pub const TESTS: &[Test] = &[
    ("pnp.interface.register_enable_notify", t_interfaces),
    ("pnp.interface.class_filters_from_registry", t_filters),
    ("pnp.zw_registry_exports", t_zw),
];

/// A class GUID only these tests use.
const TEST_CLASS: GUID = GUID {
    Data1: 0x6e74_7273,
    Data2: 0x7465,
    Data3: 0x7374,
    Data4: [1, 2, 3, 4, 5, 6, 7, 8],
};

static ARRIVALS: AtomicU64 = AtomicU64::new(0);
static REMOVALS: AtomicU64 = AtomicU64::new(0);
static BAD: AtomicU64 = AtomicU64::new(0);
static LAST: crate::ke::irql::SpinLocked<String, { crate::ke::DISPATCH_LEVEL }> =
    crate::ke::irql::SpinLocked::new(String::new());

unsafe extern "system" fn on_change(
    n: *mut core::ffi::c_void,
    ctx: *mut core::ffi::c_void,
) -> NtStatus {
    // SAFETY: the PnP manager passes a DEVICE_INTERFACE_CHANGE_NOTIFICATION
    // whose name string lives across the call.
    unsafe {
        let n = &*(n as *const DEVICE_INTERFACE_CHANGE_NOTIFICATION);
        if ctx as u64 != 0x1234
            || n.Version != 1
            || n.Size as usize != core::mem::size_of::<DEVICE_INTERFACE_CHANGE_NOTIFICATION>()
            || n.InterfaceClassGuid != TEST_CLASS
        {
            BAD.fetch_add(1, Ordering::SeqCst);
        }
        let name = crate::io::unicode_to_string(&*n.SymbolicLinkName);
        LAST.with(|l| *l = name);
        if n.Event == GUID_DEVICE_INTERFACE_ARRIVAL {
            ARRIVALS.fetch_add(1, Ordering::SeqCst);
        } else if n.Event == GUID_DEVICE_INTERFACE_REMOVAL {
            REMOVALS.fetch_add(1, Ordering::SeqCst);
        } else {
            BAD.fetch_add(1, Ordering::SeqCst);
        }
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn pdo_entry(
    d: *mut wdk::DRIVER_OBJECT,
    _r: *mut wdk::UNICODE_STRING,
) -> NtStatus {
    // SAFETY: the I/O manager passes the new driver object.
    unsafe { (*d).MajorFunction[wdk::IRP_MJ_PNP as usize] = Some(pdo_pnp) };
    STATUS_SUCCESS
}

/// A bus driver's PDO: answers IRP_MN_QUERY_ID with `NTRS\TestBus` / `7`.
unsafe extern "system" fn pdo_pnp(_d: *mut wdk::DEVICE_OBJECT, irp: *mut wdk::IRP) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP.
    unsafe {
        let sl = wdk::IoGetCurrentIrpStackLocation(irp);
        let mut status = (*irp).IoStatus.Status;
        if (*sl).MinorFunction == wdk::IRP_MN_QUERY_ID {
            let s = match (*sl).Parameters.QueryId.IdType {
                wdk::BUS_QUERY_DEVICE_ID => Some("NTRS\\TestBus"),
                wdk::BUS_QUERY_INSTANCE_ID => Some("7"),
                _ => None,
            };
            if let Some(s) = s {
                let b = super::registry::reg_sz(s);
                let p = crate::ex::xpool::ExAllocatePool2(
                    ::mm::pool::POOL_FLAG_NON_PAGED,
                    b.len(),
                    u32::from_le_bytes(*b"Test"),
                );
                if !p.is_null() {
                    core::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
                    (*irp).IoStatus.Information = p as usize;
                    status = STATUS_SUCCESS;
                }
            }
        }
        (*irp).IoStatus.Status = status;
        crate::io::irp::iof_complete_request(irp, 0);
        status
    }
}

fn query_sz(path: &str, name: &str) -> Option<String> {
    super::registry::query_sz(path, name)
}

/// Registers an interface on a test PDO (the name from its bus's
/// IRP_MN_QUERY_ID answers), the DeviceClasses keys, a notification with
/// existing interfaces (none), enabling (link, Linked = 1, an arrival),
/// a second registration including existing ones (one arrival at once),
/// IoGetDeviceInterfaces, disabling (removal, link gone), unregistering
/// (no more callbacks), bad arguments.
fn t_interfaces() -> TestResult {
    let h = crate::io::driver::create_driver_object(
        "\\Driver\\IfTest",
        pdo_entry,
        "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\IfTest",
        (0, 0),
        core::ptr::null_mut(),
    )
    .map_err(|_| "cannot create the test driver")?;
    // SAFETY: the live test driver object.
    let pdo = unsafe {
        crate::io::device::io_create_device(
            h.driver,
            0,
            Some("\\Device\\IfTestPdo"),
            0x22,
            0,
            false,
        )
    }
    .map_err(|_| "cannot create the PDO")?;
    // SAFETY: a fresh device.
    unsafe { (*pdo).Flags &= !wdk::DO_DEVICE_INITIALIZING };
    // Not a PDO yet: refused.
    // SAFETY: a live device object.
    let r = unsafe { io_register_device_interface(pdo, &TEST_CLASS, None) };
    check(
        r == Err(STATUS_INVALID_DEVICE_REQUEST),
        "an interface was registered on a device that is not a PDO",
    )?;
    // SAFETY: as above.
    unsafe { (*pdo).Flags |= wdk::DO_BUS_ENUMERATED_DEVICE };
    // SAFETY: as above.
    let name = unsafe { io_register_device_interface(pdo, &TEST_CLASS, None) }
        .map_err(|_| "IoRegisterDeviceInterface failed")?;
    let class = guid_string(&TEST_CLASS);
    let want = alloc::format!("\\??\\NTRS#TestBus#7#{class}");
    check(
        name == want,
        "interface name is not <instance path>#{class}",
    )?;
    let key = alloc::format!("{DEVICE_CLASSES}\\{class}\\##?#NTRS#TestBus#7#{class}");
    check(
        query_sz(&key, "DeviceInstance").as_deref() == Some("NTRS\\TestBus\\7"),
        "DeviceClasses key lacks DeviceInstance",
    )?;
    check(
        query_sz(&alloc::format!("{key}\\#"), "SymbolicLink").as_deref()
            == Some(alloc::format!("\\\\?\\NTRS#TestBus#7#{class}").as_str()),
        "the # subkey lacks SymbolicLink",
    )?;
    check(
        io_get_device_interfaces(&TEST_CLASS, 0, 0).is_empty()
            && io_get_device_interfaces(&TEST_CLASS, 0, DEVICE_INTERFACE_INCLUDE_NONACTIVE).len()
                == 1,
        "IoGetDeviceInterfaces lists a disabled interface as active",
    )?;
    // A registration including existing interfaces: none yet.
    let mut e1 = 0u64;
    // SAFETY: a live driver object; the callback is a static function.
    let s = unsafe {
        io_register_plug_play_notification(
            EventCategoryDeviceInterfaceChange,
            PNPNOTIFY_DEVICE_INTERFACE_INCLUDE_EXISTING_INTERFACES,
            &TEST_CLASS,
            h.driver,
            on_change,
            0x1234,
            &mut e1,
        )
    };
    check(s == STATUS_SUCCESS && e1 != 0, "registration failed")?;
    check(
        ARRIVALS.load(Ordering::SeqCst) == 0,
        "arrival without an interface",
    )?;
    check(
        io_set_device_interface_state(&name, true) == STATUS_SUCCESS,
        "enable failed",
    )?;
    check(ARRIVALS.load(Ordering::SeqCst) == 1, "no arrival callback")?;
    check(
        LAST.with(|l| l.clone()) == name,
        "callback got another name",
    )?;
    check(
        crate::storage::symbolic_link_target(&alloc::format!("\\GLOBAL??\\NTRS#TestBus#7#{class}"))
            .ok()
            .as_deref()
            == Some("\\Device\\IfTestPdo"),
        "no \\GLOBAL?? link to the PDO",
    )?;
    check(
        io_set_device_interface_state(&name, true) == STATUS_OBJECT_NAME_EXISTS,
        "enabling twice succeeded",
    )?;
    let linked = nt_open_key(
        &alloc::format!("{key}\\#\\Control"),
        KEY_READ,
        Mode::KernelMode,
    )
    .and_then(|k| {
        let v = nt_query_value_key(k, "Linked", Mode::KernelMode);
        crate::ob::handle::nt_close(k);
        v
    });
    check(
        matches!(linked, Ok((REG_DWORD, ref d)) if d.as_slice() == [1, 0, 0, 0]),
        "Linked is not 1",
    )?;
    // Include-existing: the second registration hears of the enabled one at once.
    let mut e2 = 0u64;
    // SAFETY: as above.
    let s = unsafe {
        io_register_plug_play_notification(
            EventCategoryDeviceInterfaceChange,
            PNPNOTIFY_DEVICE_INTERFACE_INCLUDE_EXISTING_INTERFACES,
            &TEST_CLASS,
            h.driver,
            on_change,
            0x1234,
            &mut e2,
        )
    };
    check(
        s == STATUS_SUCCESS && ARRIVALS.load(Ordering::SeqCst) == 2,
        "existing interface not reported on registration",
    )?;
    check(
        io_get_device_interfaces(&TEST_CLASS, pdo as u64, 0) == alloc::vec![name.clone()]
            && io_get_device_interfaces(&TEST_CLASS, 1, 0).is_empty(),
        "IoGetDeviceInterfaces does not filter by PDO",
    )?;
    // The export: a double-NUL-terminated list in pool, one name.
    let mut list: *mut u16 = core::ptr::null_mut();
    // SAFETY: a valid GUID and out pointer; the list is read up to its
    // double NUL and freed with ExFreePool as drivers do.
    let listed = unsafe {
        let s = IoGetDeviceInterfaces(&TEST_CLASS, core::ptr::null_mut(), 0, &mut list);
        let mut units = Vec::new();
        let mut p = list;
        while s == STATUS_SUCCESS && !(p.read() == 0 && units.last() == Some(&0)) {
            units.push(p.read());
            p = p.add(1);
        }
        if !list.is_null() {
            crate::ex::xpool::ExFreePool(list.cast());
        }
        (s, String::from_utf16_lossy(&units))
    };
    check(
        listed.0 == STATUS_SUCCESS && listed.1 == alloc::format!("{name}\0"),
        "IoGetDeviceInterfaces' list is not the name and a double NUL",
    )?;
    check(
        io_unregister_plug_play_notification(e2) == STATUS_SUCCESS
            && io_unregister_plug_play_notification(e2) == STATUS_INVALID_PARAMETER,
        "unregistration (twice) misbehaves",
    )?;
    check(
        io_set_device_interface_state(&name, false) == STATUS_SUCCESS,
        "disable failed",
    )?;
    check(
        REMOVALS.load(Ordering::SeqCst) == 1,
        "removal not reported exactly once (to the remaining registration)",
    )?;
    check(
        crate::storage::symbolic_link_target(&alloc::format!("\\GLOBAL??\\NTRS#TestBus#7#{class}"))
            .is_err(),
        "the link outlived the interface",
    )?;
    check(
        io_set_device_interface_state(&name, false) == STATUS_OBJECT_NAME_NOT_FOUND
            && io_set_device_interface_state("\\??\\NoSuch#{x}", true)
                == STATUS_OBJECT_NAME_NOT_FOUND,
        "bad state changes accepted",
    )?;
    check(
        io_unregister_plug_play_notification(e1) == STATUS_SUCCESS,
        "unregister failed",
    )?;
    check(
        io_set_device_interface_state(&name, true) == STATUS_SUCCESS
            && ARRIVALS.load(Ordering::SeqCst) == 2,
        "a callback ran after unregistration",
    )?;
    let _ = io_set_device_interface_state(&name, false);
    let mut e3 = 0u64;
    // SAFETY: an invalid category and a bogus driver object.
    unsafe {
        check(
            io_register_plug_play_notification(
                EventCategoryTargetDeviceChange,
                0,
                &TEST_CLASS,
                h.driver,
                on_change,
                0,
                &mut e3,
            ) == STATUS_NOT_IMPLEMENTED
                && io_register_plug_play_notification(
                    EventCategoryDeviceInterfaceChange,
                    0,
                    &TEST_CLASS,
                    0x1000 as *mut wdk::DRIVER_OBJECT,
                    on_change,
                    0,
                    &mut e3,
                ) == STATUS_INVALID_PARAMETER,
            "bad registrations accepted",
        )?;
    }
    check(
        BAD.load(Ordering::SeqCst) == 0,
        "a notification was malformed",
    )
}

/// The disk class's UpperFilters (SYSTEM.reg, as Windows ships it) name
/// partmgr; a device's Enum key adds its own before the class's.
fn t_filters() -> TestResult {
    let class = guid_string(&wdk::mountdev::GUID_DEVCLASS_DISKDRIVE);
    let up = super::filters::filter_services(None, Some(&class), true);
    check(
        up == alloc::vec![String::from("partmgr")],
        "disk class UpperFilters is not partmgr",
    )?;
    check(
        super::filters::filter_services(None, Some(&class), false).is_empty(),
        "disk class has LowerFilters",
    )?;
    check(
        super::filters::multi_sz(&[b'a', 0, 0, 0, b'b', 0, b'c', 0, 0, 0, 0, 0])
            == alloc::vec![String::from("a"), String::from("bc")],
        "REG_MULTI_SZ parse",
    )
}

/// ZwCreateKey/ZwSetValueKey/ZwQueryValueKey/ZwEnumerateValueKey/ZwClose
/// with the three information classes and short buffers.
fn t_zw() -> TestResult {
    use crate::cm::zw::*;
    use wdk::registry::*;
    let path: Vec<u16> = "\\Registry\\Machine\\System\\ZwTest"
        .encode_utf16()
        .collect();
    let mut name = wdk::UNICODE_STRING {
        Length: (path.len() * 2) as u16,
        MaximumLength: (path.len() * 2) as u16,
        Buffer: path.as_ptr() as *mut u16,
    };
    let mut oa = OBJECT_ATTRIBUTES {
        Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: core::ptr::null_mut(),
        ObjectName: &mut name,
        Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
        SecurityDescriptor: core::ptr::null_mut(),
        SecurityQualityOfService: core::ptr::null_mut(),
    };
    let mut h: wdk::HANDLE = core::ptr::null_mut();
    let mut disp = 0u32;
    // SAFETY: valid pointers to locals throughout.
    unsafe {
        check(
            ZwCreateKey(
                &mut h,
                KEY_ALL_ACCESS,
                &mut oa,
                0,
                core::ptr::null_mut(),
                0,
                &mut disp,
            ) == STATUS_SUCCESS
                && (disp == REG_CREATED_NEW_KEY || disp == REG_OPENED_EXISTING_KEY),
            "ZwCreateKey failed",
        )?;
        let vn: Vec<u16> = "V".encode_utf16().collect();
        let mut vname = wdk::UNICODE_STRING {
            Length: 2,
            MaximumLength: 2,
            Buffer: vn.as_ptr() as *mut u16,
        };
        let mut data = [1u8, 2, 3, 4, 5];
        check(
            ZwSetValueKey(h, &mut vname, 0, REG_BINARY, data.as_mut_ptr().cast(), 5)
                == STATUS_SUCCESS,
            "ZwSetValueKey failed",
        )?;
        let mut buf = [0u8; 64];
        let mut need = 0u32;
        let s = ZwQueryValueKey(
            h,
            &mut vname,
            KeyValuePartialInformation,
            buf.as_mut_ptr().cast(),
            64,
            &mut need,
        );
        check(
            s == STATUS_SUCCESS
                && need == 17
                && buf[4] == 3
                && buf[8] == 5
                && buf[12..17] == [1, 2, 3, 4, 5],
            "partial information wrong",
        )?;
        let s = ZwQueryValueKey(
            h,
            &mut vname,
            KeyValuePartialInformation,
            buf.as_mut_ptr().cast(),
            8,
            &mut need,
        );
        check(
            s == STATUS_BUFFER_TOO_SMALL && need == 17,
            "short buffer not BUFFER_TOO_SMALL",
        )?;
        let s = ZwQueryValueKey(
            h,
            &mut vname,
            KeyValuePartialInformation,
            buf.as_mut_ptr().cast(),
            14,
            &mut need,
        );
        check(
            s == STATUS_BUFFER_OVERFLOW && need == 17,
            "partial buffer not BUFFER_OVERFLOW",
        )?;
        let s = ZwEnumerateValueKey(
            h,
            0,
            KeyValueFullInformation,
            buf.as_mut_ptr().cast(),
            64,
            &mut need,
        );
        let off = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
        check(
            s == STATUS_SUCCESS
                && buf[16] == 2
                && buf[20] == b'V'
                && off.is_multiple_of(8)
                && off >= 22
                && buf[off..off + 5] == [1, 2, 3, 4, 5],
            "full information wrong",
        )?;
        check(
            ZwEnumerateValueKey(
                h,
                1,
                KeyValueBasicInformation,
                buf.as_mut_ptr().cast(),
                64,
                &mut need,
            ) == STATUS_NO_MORE_ENTRIES,
            "enumeration past the end",
        )?;
        check(
            ZwQueryValueKey(h, &mut vname, 9, buf.as_mut_ptr().cast(), 64, &mut need)
                == STATUS_NOT_IMPLEMENTED,
            "unknown class accepted",
        )?;
        check(ZwClose(h) == STATUS_SUCCESS, "ZwClose failed")?;
        check(ZwClose(h) != STATUS_SUCCESS, "ZwClose twice succeeded")?;
        let mut h2: wdk::HANDLE = core::ptr::null_mut();
        check(
            ZwOpenKey(&mut h2, KEY_READ, &mut oa) == STATUS_SUCCESS
                && ZwClose(h2) == STATUS_SUCCESS,
            "ZwOpenKey failed",
        )?;
        oa.RootDirectory = 4 as wdk::HANDLE;
        check(
            ZwOpenKey(&mut h2, KEY_READ, &mut oa) == STATUS_NOT_IMPLEMENTED,
            "a relative open was not refused",
        )?;
    }
    Ok(())
}
