//! kd commands of the I/O manager, shaped like WinDbg's: `!drvobj`,
//! `!devobj`, `!devstack`, `!irp`, `!irpfind`. They print only state ntrs
//! has (no symbols: routine addresses are shown raw, except the I/O
//! manager's own `IopInvalidDeviceRequest`).

use super::device::attached_to;
use super::irp::{ext_of, for_each_irp};
use super::*;
use crate::dbg_println;

/// The object-manager name of an I/O object body (empty if unnamed).
fn name_of(body: u64, kind: IoKind) -> String {
    object_of(body, kind)
        .map(crate::ob::ob_query_name_string)
        .unwrap_or_default()
}

fn leaf(name: &str) -> &str {
    name.rsplit('\\').next().unwrap_or("")
}

/// A driver object named `\Driver\X`/`\FileSystem\X` or at an address.
fn driver_arg(arg: &str) -> Option<*mut DRIVER_OBJECT> {
    if arg.starts_with('\\') {
        return driver::find_driver(arg);
    }
    if let Some(d) = driver::find_driver(&alloc::format!("\\Driver\\{arg}")) {
        return Some(d);
    }
    let a = crate::kd::parse_number(arg)?;
    object_of(a, IoKind::Driver).map(|_| a as *mut DRIVER_OBJECT)
}

/// A device object by name (`\Device\X`) or address.
fn device_arg(arg: &str) -> Option<*mut DEVICE_OBJECT> {
    if arg.starts_with('\\') {
        let id = match crate::ob::with_namespace(|ns| {
            ns.lookup(arg, ::ob::OBJ_CASE_INSENSITIVE, None)
        }) {
            Ok(::ob::namespace::Lookup::Found(id)) => id,
            _ => return None,
        };
        return match body_of(id) {
            Some((b, IoKind::Device)) => Some(b as *mut DEVICE_OBJECT),
            _ => None,
        };
    }
    let a = crate::kd::parse_number(arg)?;
    object_of(a, IoKind::Device).map(|_| a as *mut DEVICE_OBJECT)
}

fn driver_name(d: *mut DRIVER_OBJECT) -> String {
    if d.is_null() {
        return String::new();
    }
    // SAFETY: a live driver object (devices keep theirs).
    unsafe { unicode_to_string(&(*d).DriverName) }
}

fn routine(addr: usize) -> String {
    if addr == driver::invalid_device_request as *const () as usize {
        alloc::format!("{addr:016x}\tnt!IopInvalidDeviceRequest")
    } else {
        alloc::format!("{addr:016x}")
    }
}

/// `!drvobj <name|address> [flags]`: the driver object and its device
/// objects; flag 2 adds the entry points and the dispatch routines.
pub fn kd_drvobj(args: &str) {
    let mut w = args.split_whitespace();
    let Some(arg) = w.next() else {
        dbg_println!("usage: !drvobj <\\Driver\\name|address> [flags]");
        return;
    };
    let flags = w.next().and_then(crate::kd::parse_number).unwrap_or(1);
    let Some(d) = driver_arg(arg) else {
        dbg_println!("Driver object {arg} not found");
        return;
    };
    // SAFETY: a live driver object; its device list is read as kd reads memory.
    unsafe {
        dbg_println!("Driver object ({:016x}) is for:", d as u64);
        dbg_println!(" {}", unicode_to_string(&(*d).DriverName));
        dbg_println!();
        dbg_println!("Device Object list:");
        let mut line = String::new();
        let mut dev = (*d).DeviceObject;
        while !dev.is_null() {
            line.push_str(&alloc::format!("{:016x}  ", dev as u64));
            dev = (*dev).NextDevice;
        }
        dbg_println!("{line}");
        if flags & 2 != 0 {
            dbg_println!();
            dbg_println!(
                "DriverEntry:   {}",
                routine((*d).DriverInit.map_or(0, |f| f as usize))
            );
            dbg_println!(
                "DriverStartIo: {}",
                routine((*d).DriverStartIo.map_or(0, |f| f as usize))
            );
            dbg_println!(
                "DriverUnload:  {}",
                routine((*d).DriverUnload.map_or(0, |f| f as usize))
            );
            let ext = (*d).DriverExtension;
            if !ext.is_null() {
                dbg_println!(
                    "AddDevice:     {}",
                    routine((*ext).AddDevice.map_or(0, |f| f as usize))
                );
            }
            dbg_println!();
            dbg_println!("Dispatch routines:");
            for (i, f) in (*d).MajorFunction.iter().enumerate() {
                dbg_println!(
                    "[{i:02x}] {:<35}{}",
                    IRP_MJ_NAMES[i],
                    routine(f.map_or(0, |f| f as usize))
                );
            }
        }
    }
}

fn flag_names(flags: u32, table: &[(u32, &str)]) -> String {
    let mut s = String::new();
    for &(bit, name) in table {
        if flags & bit != 0 {
            s.push_str(name);
            s.push_str(", ");
        }
    }
    if s.ends_with(", ") {
        s.truncate(s.len() - 2);
    }
    s
}

const DO_FLAGS: &[(u32, &str)] = &[
    (DO_VERIFY_VOLUME, "DO_VERIFY_VOLUME"),
    (DO_BUFFERED_IO, "DO_BUFFERED_IO"),
    (DO_EXCLUSIVE, "DO_EXCLUSIVE"),
    (DO_DIRECT_IO, "DO_DIRECT_IO"),
    (DO_DEVICE_HAS_NAME, "DO_DEVICE_HAS_NAME"),
    (DO_DEVICE_INITIALIZING, "DO_DEVICE_INITIALIZING"),
    (DO_BUS_ENUMERATED_DEVICE, "DO_BUS_ENUMERATED_DEVICE"),
    (DO_POWER_PAGABLE, "DO_POWER_PAGABLE"),
];

const CHARACTERISTICS: &[(u32, &str)] = &[
    (FILE_REMOVABLE_MEDIA, "FILE_REMOVABLE_MEDIA"),
    (FILE_READ_ONLY_DEVICE, "FILE_READ_ONLY_DEVICE"),
    (FILE_DEVICE_IS_MOUNTED, "FILE_DEVICE_IS_MOUNTED"),
    (
        FILE_AUTOGENERATED_DEVICE_NAME,
        "FILE_AUTOGENERATED_DEVICE_NAME",
    ),
    (FILE_DEVICE_SECURE_OPEN, "FILE_DEVICE_SECURE_OPEN"),
    (
        FILE_CHARACTERISTIC_PNP_DEVICE,
        "FILE_CHARACTERISTIC_PNP_DEVICE",
    ),
];

/// `!devobj <name|address>`.
pub fn kd_devobj(args: &str) {
    let Some(arg) = args.split_whitespace().next() else {
        dbg_println!("usage: !devobj <\\Device\\name|address>");
        return;
    };
    let Some(dev) = device_arg(arg) else {
        dbg_println!("Device object {arg} not found");
        return;
    };
    // SAFETY: a live device object, read as kd reads memory.
    unsafe {
        let name = name_of(dev as u64, IoKind::Device);
        dbg_println!("Device object ({:016x}) is for:", dev as u64);
        dbg_println!(
            " {} {} DriverObject {:016x}",
            leaf(&name),
            driver_name((*dev).DriverObject),
            (*dev).DriverObject as u64
        );
        dbg_println!(
            "Current Irp {:016x} RefCount {} Type {:08x} Flags {:08x}",
            (*dev).CurrentIrp as u64,
            (*dev).ReferenceCount,
            (*dev).DeviceType,
            (*dev).Flags
        );
        if (*dev).Flags != 0 {
            dbg_println!("Flags: {}", flag_names((*dev).Flags, DO_FLAGS));
        }
        let doe = (*dev).DeviceObjectExtension;
        dbg_println!(
            "Vpb {:016x} DevExt {:016x} DevObjExt {:016x}",
            (*dev).Vpb as u64,
            (*dev).DeviceExtension as u64,
            doe as u64
        );
        dbg_println!("ExtensionFlags ({:#010x})", (*doe).ExtensionFlags);
        dbg_println!(
            "Characteristics ({:#010x})  {}",
            (*dev).Characteristics,
            flag_names((*dev).Characteristics, CHARACTERISTICS)
        );
        let up = (*dev).AttachedDevice;
        if !up.is_null() {
            dbg_println!(
                "AttachedDevice (Upper) {:016x} {}",
                up as u64,
                driver_name((*up).DriverObject)
            );
        }
        let down = attached_to(dev);
        if !down.is_null() {
            dbg_println!(
                "AttachedTo (Lower) {:016x} {}",
                down as u64,
                driver_name((*down).DriverObject)
            );
        }
        dbg_println!(
            "StackSize {} SectorSize {} AlignmentRequirement {:#x}",
            (*dev).StackSize,
            (*dev).SectorSize,
            (*dev).AlignmentRequirement
        );
    }
}

/// `!devstack <name|address>`: the device stack, top first, `>` at the
/// device asked about.
pub fn kd_devstack(args: &str) {
    let Some(arg) = args.split_whitespace().next() else {
        dbg_println!("usage: !devstack <\\Device\\name|address>");
        return;
    };
    let Some(dev) = device_arg(arg) else {
        dbg_println!("Device object {arg} not found");
        return;
    };
    // SAFETY: live device objects; stacks read as kd reads memory.
    unsafe {
        let mut bottom = dev;
        while !attached_to(bottom).is_null() {
            bottom = attached_to(bottom);
        }
        let mut stack = Vec::new();
        let mut d = bottom;
        while !d.is_null() {
            stack.push(d);
            d = (*d).AttachedDevice;
        }
        dbg_println!(
            "  {:<18}{:<20}{:<18}ObjectName",
            "!DevObj",
            "!DrvObj",
            "!DevExt"
        );
        for &d in stack.iter().rev() {
            let mark = if d == dev { '>' } else { ' ' };
            dbg_println!(
                "{mark} {:016x}  {:<20}{:016x}  {}",
                d as u64,
                driver_name((*d).DriverObject),
                (*d).DeviceExtension as u64,
                leaf(&name_of(d as u64, IoKind::Device))
            );
        }
    }
}

fn is_live_irp(addr: u64) -> bool {
    let mut found = false;
    for_each_irp(|i| found |= i as u64 == addr);
    found
}

/// `!irp <address>`: the IRP and its stack locations (`>` the current one).
pub fn kd_irp(args: &str) {
    let Some(addr) = args
        .split_whitespace()
        .next()
        .and_then(crate::kd::parse_number)
    else {
        dbg_println!("usage: !irp <address>");
        return;
    };
    if !is_live_irp(addr) {
        dbg_println!("{addr:016x} is not a live IRP from IoAllocateIrp");
        return;
    }
    let irp = addr as *mut IRP;
    // SAFETY: a live IRP, read as kd reads memory.
    unsafe {
        let n = (*irp).StackCount;
        let cur = (*irp).CurrentLocation;
        if cur > n {
            dbg_println!("Irp is completed with {} stacks", n);
        } else {
            dbg_println!(
                "Irp is active with {} stacks {} is current (= {:#018x})",
                n,
                cur,
                IoGetCurrentIrpStackLocation(irp) as u64
            );
        }
        let mdl = (*irp).MdlAddress;
        let sys = (*irp).AssociatedIrp.SystemBuffer;
        dbg_println!(
            " {} {} Thread {:08x}:  Irp stack trace.  ",
            if mdl.is_null() {
                String::from("No Mdl:")
            } else {
                alloc::format!("Mdl = {:016x}:", mdl as u64)
            },
            if (*irp).Flags & IRP_BUFFERED_IO != 0 && !sys.is_null() {
                alloc::format!("System buffer = {:016x}:", sys as u64)
            } else {
                String::from("No System Buffer:")
            },
            (*irp).Tail.Overlay.Thread as u64
        );
        dbg_println!("     cmd  flg cl Device           File             Completion-Context");
        let base = irp.add(1) as *mut IO_STACK_LOCATION;
        for i in 0..n as usize {
            let s = base.add(i);
            let mark = if i as i8 + 1 == cur { '>' } else { ' ' };
            let mj = (*s).MajorFunction as usize;
            let mj_name = if (*s).DeviceObject.is_null() && mj == 0 {
                String::from("N/A(0)")
            } else {
                alloc::format!("{}({:x})", IRP_MJ_NAMES.get(mj).copied().unwrap_or("?"), mj)
            };
            dbg_println!("{mark}[{mj_name}, {}]", (*s).MinorFunction);
            let c = (*s).Control;
            let mut when = String::new();
            for (bit, name) in [
                (SL_INVOKE_ON_SUCCESS, " Success"),
                (SL_INVOKE_ON_ERROR, " Error"),
                (SL_INVOKE_ON_CANCEL, " Cancel"),
            ] {
                if c & bit != 0 {
                    when.push_str(name);
                }
            }
            if c & SL_PENDING_RETURNED != 0 {
                when.push_str(" pending");
            }
            dbg_println!(
                "          {:2x} {:2x} {:016x} {:016x} {:016x}-{:016x}{when}",
                (*s).Flags,
                c,
                (*s).DeviceObject as u64,
                (*s).FileObject as u64,
                (*s).CompletionRoutine.map_or(0, |f| f as usize),
                (*s).Context as u64
            );
            if !(*s).DeviceObject.is_null() {
                dbg_println!("\t\t\t{}", driver_name((*(*s).DeviceObject).DriverObject));
            }
            let o = (*s).Parameters.Others;
            dbg_println!(
                "\t\t\tArgs: {:016x} {:016x} {:016x} {:016x}",
                o.Argument1 as u64,
                o.Argument2 as u64,
                o.Argument3 as u64,
                o.Argument4 as u64
            );
        }
        dbg_println!(
            "IoStatus: Status {:#010x} Information {:#x}  Cancel {}  PendingReturned {}",
            (*irp).IoStatus.Status.as_u32(),
            (*irp).IoStatus.Information,
            (*irp).Cancel,
            (*irp).PendingReturned
        );
    }
}

/// `!irpfind`: every live IRP from `IoAllocateIrp` (WinDbg scans the pool
/// for `Irp ` blocks; ntrs keeps them on a list).
pub fn kd_irpfind(_args: &str) {
    dbg_println!(
        "{:<17}[ Thread ] irpStack: (Mj,Mn)   DevObj          [Driver]",
        "Irp"
    );
    let mut n = 0;
    for_each_irp(|irp| {
        n += 1;
        // SAFETY: IRPs on the locked list are live.
        unsafe {
            let thread = ext_of(irp).map_or(0, |e| (*e).thread);
            if (*irp).CurrentLocation > (*irp).StackCount {
                dbg_println!("{:016x} [{thread:08x}] (not sent or completed)", irp as u64);
                return;
            }
            let s = IoGetCurrentIrpStackLocation(irp);
            let dev = (*s).DeviceObject;
            let drv = if dev.is_null() {
                core::ptr::null_mut()
            } else {
                (*dev).DriverObject
            };
            dbg_println!(
                "{:016x} [{thread:08x}] irpStack: ({:2x},{:2x})  {:016x} [{}]",
                irp as u64,
                (*s).MajorFunction,
                (*s).MinorFunction,
                dev as u64,
                driver_name(drv)
            );
        }
    });
    dbg_println!("{n} IRPs");
}
