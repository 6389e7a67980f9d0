//! Boot tests of device removal (remove.rs): a root-enumerated test bus
//! (`ROOT\KTRMBUS\0000`, driver `KtRmBus`) reports two children
//! (`KTRM\CHILD\0` and `\1`, PDOs of the same driver); each child's stack
//! is the PDO, a function driver's FDO (`KtRmFn`, `\Device\KtRmFn<n>`)
//! and an upper filter (`KtRmFilt`, from the child's `UpperFilters`).
//! Every driver logs the removal IRPs it sees, so the tests check the
//! exact sequence: top of each stack down, children before parents,
//! cancels after a veto, no remove while a file is open.

use super::remove::{actions_idle, query_and_remove_device};
use super::*;
use crate::io::device::{
    io_attach_device_to_device_stack, io_create_device, io_delete_device, io_detach_device,
};
use crate::io::driver::create_driver_object;
use crate::io::file::*;
use crate::io::irp::{iof_call_driver, iof_complete_request};
use crate::ktest::{check, wait_until, Test, TestResult};
use crate::ob::handle::nt_close;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use wdk::*;

pub const TESTS: &[Test] = &[
    ("pnp.remove.query_remove_veto_cancel_and_remove", t_orderly),
    ("pnp.remove.surprise_removal_with_open_file", t_surprise),
    ("pnp.volumes_are_device_nodes_under_volmgr", t_volumes),
];

const BUS_FDO: u32 = 1;
const CHILD_PDO: u32 = 2;
const FN_FDO: u32 = 3;
const FILTER: u32 = 4;
const SURPRISED: u32 = 1;
const REMOVED: u32 = 2;

/// Extension of every test device.
#[repr(C)]
struct Ext {
    kind: u32,
    index: u32,
    lower: *mut DEVICE_OBJECT,
    state: AtomicU32,
    /// The function driver's remove lock (`IoAcquireRemoveLock` around
    /// each read, `IoReleaseRemoveLockAndWait` at the remove IRP).
    lock: IO_REMOVE_LOCK,
}

/// (who: b'B' bus FDO, b'P' child PDO, b'F' function FDO, b'L' filter;
/// child index; minor) of every removal IRP a test device saw.
static LOG: SpinLocked<Vec<(u8, u8, u8)>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());
static PRESENT: [AtomicBool; 2] = [AtomicBool::new(true), AtomicBool::new(true)];
static VETO: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
static CHILD_PDOS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// Reads the function driver holds pending (child index, IRP).
static PENDED: SpinLocked<Vec<(u32, u64)>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());
static ROOT_PDO: AtomicU64 = AtomicU64::new(0);
static BEFORE: SpinLocked<Vec<(u32, u64)>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());

const QR: u8 = IRP_MN_QUERY_REMOVE_DEVICE;
const RM: u8 = IRP_MN_REMOVE_DEVICE;
const CR: u8 = IRP_MN_CANCEL_REMOVE_DEVICE;
const SR: u8 = IRP_MN_SURPRISE_REMOVAL;

fn log(who: u8, index: u32, minor: u8) {
    if matches!(minor, QR | RM | CR | SR) {
        LOG.with(|l| l.push((who, index as u8, minor)));
    }
}

/// The remove lock in a test device's extension.
///
/// # Safety
/// `dev` is a live test device.
unsafe fn lock_of(dev: *mut DEVICE_OBJECT) -> *mut IO_REMOVE_LOCK {
    // SAFETY: per the contract.
    unsafe { core::ptr::addr_of_mut!((*(*dev).DeviceExtension.cast::<Ext>()).lock) }
}

/// # Safety
/// `dev` is a live test device.
unsafe fn ext(dev: *mut DEVICE_OBJECT) -> &'static Ext {
    // SAFETY: every test device has an Ext, live while the device is.
    unsafe { &*((*dev).DeviceExtension as *const Ext) }
}

/// Creates a test device with its extension.
///
/// # Safety
/// `d` is a live driver object.
unsafe fn make(
    d: *mut DRIVER_OBJECT,
    name: Option<&str>,
    kind: u32,
    index: u32,
) -> Result<*mut DEVICE_OBJECT, NtStatus> {
    // SAFETY: per the contract; the extension is written before use.
    unsafe {
        let dev = io_create_device(
            d,
            core::mem::size_of::<Ext>() as u32,
            name,
            FILE_DEVICE_UNKNOWN,
            0,
            false,
        )?;
        (*dev).DeviceExtension.cast::<Ext>().write(Ext {
            kind,
            index,
            lower: core::ptr::null_mut(),
            state: AtomicU32::new(0),
            lock: core::mem::zeroed(),
        });
        crate::io::remlock::IoInitializeRemoveLockEx(
            core::ptr::addr_of_mut!((*(*dev).DeviceExtension.cast::<Ext>()).lock),
            u32::from_le_bytes(*b"KtRm"),
            0,
            0,
            core::mem::size_of::<IO_REMOVE_LOCK>() as u32,
        );
        Ok(dev)
    }
}

/// # Safety
/// The caller owns `irp`.
unsafe fn finish(irp: *mut IRP, status: NtStatus, info: usize) -> NtStatus {
    // SAFETY: per the contract.
    unsafe {
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = info;
        iof_complete_request(irp, IO_NO_INCREMENT);
    }
    status
}

/// Passes `irp` to the device below (a function or filter driver's PnP
/// IRP), with `status` set first when given.
///
/// # Safety
/// The caller owns `irp`; `lower` is live.
unsafe fn pass_down(
    irp: *mut IRP,
    lower: *mut DEVICE_OBJECT,
    status: Option<NtStatus>,
) -> NtStatus {
    // SAFETY: per the contract.
    unsafe {
        if let Some(s) = status {
            (*irp).IoStatus.Status = s;
        }
        IoSkipCurrentIrpStackLocation(irp);
        iof_call_driver(lower, irp)
    }
}

/// Completes the function driver's pending reads of child `index`.
fn fail_pended(index: u32, status: NtStatus) {
    let mine: Vec<u64> = PENDED.with(|p| {
        let v = p.iter().filter(|e| e.0 == index).map(|e| e.1).collect();
        p.retain(|e| e.0 != index);
        v
    });
    for irp in mine {
        // SAFETY: a pended IRP the driver owned (taken off its queue).
        unsafe { finish(irp as *mut IRP, status, 0) };
    }
}

// ---- KtRmBus: the bus FDO and the child PDOs ----

unsafe extern "system" fn bus_entry(d: *mut DRIVER_OBJECT, _r: *mut UNICODE_STRING) -> NtStatus {
    // SAFETY: the I/O manager passes the new driver object.
    unsafe {
        (*(*d).DriverExtension).AddDevice = Some(bus_add_device);
        (*d).MajorFunction[IRP_MJ_PNP as usize] = Some(bus_pnp);
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn bus_add_device(
    d: *mut DRIVER_OBJECT,
    pdo: *mut DEVICE_OBJECT,
) -> NtStatus {
    // SAFETY: `d` is this driver, `pdo` the root device's live PDO.
    unsafe {
        let fdo = match make(d, None, BUS_FDO, 0) {
            Ok(f) => f,
            Err(s) => return s,
        };
        let lower = io_attach_device_to_device_stack(fdo, pdo);
        (*((*fdo).DeviceExtension as *mut Ext)).lower = lower;
        (*fdo).Flags &= !DO_DEVICE_INITIALIZING;
        for i in 0..2u32 {
            let Ok(c) = make(d, Some(&format!("\\Device\\KtRmChild{i}")), CHILD_PDO, i) else {
                return STATUS_INSUFFICIENT_RESOURCES;
            };
            (*c).Flags |= DO_BUS_ENUMERATED_DEVICE;
            (*c).Flags &= !DO_DEVICE_INITIALIZING;
            CHILD_PDOS[i as usize].store(c as u64, Ordering::SeqCst);
            PRESENT[i as usize].store(true, Ordering::SeqCst);
        }
    }
    STATUS_SUCCESS
}

fn pool_str(s: &str, multi: bool) -> usize {
    let mut u: Vec<u16> = s.encode_utf16().collect();
    u.push(0);
    if multi {
        u.push(0);
    }
    let p = crate::ex::xpool::ExAllocatePool2(
        ::mm::pool::POOL_FLAG_NON_PAGED,
        u.len() * 2,
        u32::from_le_bytes(*b"KtRm"),
    );
    if !p.is_null() {
        // SAFETY: a fresh allocation of u.len() * 2 bytes.
        unsafe { core::ptr::copy_nonoverlapping(u.as_ptr(), p.cast::<u16>(), u.len()) };
    }
    p as usize
}

unsafe extern "system" fn bus_pnp(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP; `dev` is one of ours.
    unsafe {
        let e = ext(dev);
        let sl = IoGetCurrentIrpStackLocation(irp);
        let minor = (*sl).MinorFunction;
        if e.kind == BUS_FDO {
            log(b'B', 0, minor);
            match minor {
                IRP_MN_QUERY_DEVICE_RELATIONS
                    if (*sl).Parameters.QueryDeviceRelations.Type == BUS_RELATIONS =>
                {
                    let kids: Vec<*mut DEVICE_OBJECT> = (0..2)
                        .filter(|&i| PRESENT[i].load(Ordering::SeqCst))
                        .map(|i| CHILD_PDOS[i].load(Ordering::SeqCst) as *mut DEVICE_OBJECT)
                        .filter(|p| !p.is_null())
                        .collect();
                    match super::devices::relations_of(&kids) {
                        Ok(r) => {
                            (*irp).IoStatus.Information = r as usize;
                            pass_down(irp, e.lower, Some(STATUS_SUCCESS))
                        }
                        Err(s) => finish(irp, s, 0),
                    }
                }
                IRP_MN_REMOVE_DEVICE => {
                    let lower = e.lower;
                    let s = pass_down(irp, lower, Some(STATUS_SUCCESS));
                    // Children that are still there go with their bus.
                    for c in &CHILD_PDOS {
                        let p = c.swap(0, Ordering::SeqCst);
                        if p != 0 {
                            io_delete_device(p as *mut DEVICE_OBJECT);
                        }
                    }
                    io_detach_device(lower);
                    io_delete_device(dev);
                    s
                }
                IRP_MN_START_DEVICE
                | IRP_MN_QUERY_REMOVE_DEVICE
                | IRP_MN_CANCEL_REMOVE_DEVICE
                | IRP_MN_SURPRISE_REMOVAL => pass_down(irp, e.lower, Some(STATUS_SUCCESS)),
                _ => pass_down(irp, e.lower, None),
            }
        } else {
            let i = e.index;
            log(b'P', i, minor);
            match minor {
                IRP_MN_QUERY_ID => {
                    let p = match (*sl).Parameters.QueryId.IdType {
                        BUS_QUERY_DEVICE_ID => pool_str("KTRM\\CHILD", false),
                        BUS_QUERY_INSTANCE_ID => pool_str(&format!("{i}"), false),
                        BUS_QUERY_HARDWARE_IDS => pool_str("KTRM\\CHILD", true),
                        _ => {
                            let s = (*irp).IoStatus.Status;
                            return finish(irp, s, 0);
                        }
                    };
                    if p == 0 {
                        finish(irp, STATUS_INSUFFICIENT_RESOURCES, 0)
                    } else {
                        finish(irp, STATUS_SUCCESS, p)
                    }
                }
                IRP_MN_QUERY_CAPABILITIES => {
                    let c = (*sl).Parameters.DeviceCapabilities.Capabilities
                        as *mut wdk::pnp::DEVICE_CAPABILITIES;
                    if !c.is_null() {
                        (*c).Bits |= wdk::pnp::caps::UniqueID;
                    }
                    finish(irp, STATUS_SUCCESS, 0)
                }
                IRP_MN_START_DEVICE
                | IRP_MN_QUERY_REMOVE_DEVICE
                | IRP_MN_CANCEL_REMOVE_DEVICE
                | IRP_MN_SURPRISE_REMOVAL => finish(irp, STATUS_SUCCESS, 0),
                IRP_MN_REMOVE_DEVICE => {
                    let s = finish(irp, STATUS_SUCCESS, 0);
                    // A child that is physically gone loses its PDO; one
                    // still present keeps it (its bus reports it again).
                    if !PRESENT[i as usize].load(Ordering::SeqCst)
                        && CHILD_PDOS[i as usize].swap(0, Ordering::SeqCst) != 0
                    {
                        io_delete_device(dev);
                    }
                    s
                }
                _ => {
                    let s = (*irp).IoStatus.Status;
                    finish(irp, s, 0)
                }
            }
        }
    }
}

// ---- KtRmFn: the function driver ----

unsafe extern "system" fn fn_entry(d: *mut DRIVER_OBJECT, _r: *mut UNICODE_STRING) -> NtStatus {
    // SAFETY: the I/O manager passes the new driver object.
    unsafe {
        (*(*d).DriverExtension).AddDevice = Some(fn_add_device);
        for m in [IRP_MJ_CREATE, IRP_MJ_CLOSE, IRP_MJ_CLEANUP, IRP_MJ_READ] {
            (*d).MajorFunction[m as usize] = Some(fn_io);
        }
        (*d).MajorFunction[IRP_MJ_PNP as usize] = Some(fn_pnp);
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn fn_add_device(
    d: *mut DRIVER_OBJECT,
    pdo: *mut DEVICE_OBJECT,
) -> NtStatus {
    // SAFETY: `pdo` is one of the bus driver's child PDOs.
    unsafe {
        let i = ext(pdo).index;
        let fdo = match make(d, Some(&format!("\\Device\\KtRmFn{i}")), FN_FDO, i) {
            Ok(f) => f,
            Err(s) => return s,
        };
        (*fdo).Flags |= DO_BUFFERED_IO;
        let lower = io_attach_device_to_device_stack(fdo, pdo);
        (*((*fdo).DeviceExtension as *mut Ext)).lower = lower;
        (*fdo).Flags &= !DO_DEVICE_INITIALIZING;
    }
    STATUS_SUCCESS
}

/// Opens, closes and reads: a removed device fails reads with
/// STATUS_DELETE_PENDING (what `IoAcquireRemoveLock` returns once the
/// remove IRP ran), a surprise-removed one with STATUS_NO_SUCH_DEVICE; a
/// one-byte read stays pending until the device goes.
unsafe extern "system" fn fn_io(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP.
    unsafe {
        let e = ext(dev);
        let sl = IoGetCurrentIrpStackLocation(irp);
        if (*sl).MajorFunction != IRP_MJ_READ {
            return finish(irp, STATUS_SUCCESS, 0);
        }
        let lock = lock_of(dev);
        let s =
            crate::io::remlock::IoAcquireRemoveLockEx(lock, irp.cast(), core::ptr::null(), 0, 0x20);
        if !s.is_success() {
            return finish(irp, s, 0);
        }
        let st = e.state.load(Ordering::SeqCst);
        let s = if st & SURPRISED != 0 {
            finish(irp, STATUS_NO_SUCH_DEVICE, 0)
        } else if (*sl).Parameters.Read.Length == 1 {
            IoMarkIrpPending(irp);
            PENDED.with(|p| p.push((e.index, irp as u64)));
            STATUS_PENDING
        } else {
            let len = (*sl).Parameters.Read.Length;
            finish(irp, STATUS_SUCCESS, len as usize)
        };
        // (A pended read keeps no acquisition: the remove handler fails it.)
        crate::io::remlock::IoReleaseRemoveLockEx(lock, irp.cast(), 0x20);
        s
    }
}

unsafe extern "system" fn fn_pnp(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP.
    unsafe {
        let e = ext(dev);
        let minor = (*IoGetCurrentIrpStackLocation(irp)).MinorFunction;
        log(b'F', e.index, minor);
        match minor {
            IRP_MN_QUERY_REMOVE_DEVICE if VETO[e.index as usize].load(Ordering::SeqCst) => {
                finish(irp, STATUS_UNSUCCESSFUL, 0)
            }
            IRP_MN_SURPRISE_REMOVAL => {
                e.state.fetch_or(SURPRISED, Ordering::SeqCst);
                fail_pended(e.index, STATUS_NO_SUCH_DEVICE);
                pass_down(irp, e.lower, Some(STATUS_SUCCESS))
            }
            IRP_MN_REMOVE_DEVICE => {
                e.state.fetch_or(REMOVED, Ordering::SeqCst);
                let lock = lock_of(dev);
                let _ = crate::io::remlock::IoAcquireRemoveLockEx(
                    lock,
                    irp.cast(),
                    core::ptr::null(),
                    0,
                    0x20,
                );
                crate::io::remlock::IoReleaseRemoveLockAndWaitEx(lock, irp.cast(), 0x20);
                fail_pended(e.index, STATUS_NO_SUCH_DEVICE);
                let lower = e.lower;
                let s = pass_down(irp, lower, Some(STATUS_SUCCESS));
                io_detach_device(lower);
                io_delete_device(dev);
                s
            }
            IRP_MN_START_DEVICE | IRP_MN_QUERY_REMOVE_DEVICE | IRP_MN_CANCEL_REMOVE_DEVICE => {
                pass_down(irp, e.lower, Some(STATUS_SUCCESS))
            }
            _ => pass_down(irp, e.lower, None),
        }
    }
}

// ---- KtRmFilt: an upper filter that passes everything down ----

unsafe extern "system" fn filt_entry(d: *mut DRIVER_OBJECT, _r: *mut UNICODE_STRING) -> NtStatus {
    // SAFETY: the I/O manager passes the new driver object.
    unsafe {
        (*(*d).DriverExtension).AddDevice = Some(filt_add_device);
        for m in 0..=IRP_MJ_MAXIMUM_FUNCTION as usize {
            (*d).MajorFunction[m] = Some(filt_dispatch);
        }
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn filt_add_device(
    d: *mut DRIVER_OBJECT,
    pdo: *mut DEVICE_OBJECT,
) -> NtStatus {
    // SAFETY: `pdo` is one of the bus driver's child PDOs.
    unsafe {
        let i = ext(pdo).index;
        let f = match make(d, None, FILTER, i) {
            Ok(f) => f,
            Err(s) => return s,
        };
        let lower = io_attach_device_to_device_stack(f, pdo);
        (*f).Flags |= (*lower).Flags & (DO_BUFFERED_IO | DO_DIRECT_IO);
        (*((*f).DeviceExtension as *mut Ext)).lower = lower;
        (*f).Flags &= !DO_DEVICE_INITIALIZING;
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn filt_dispatch(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP.
    unsafe {
        let e = ext(dev);
        let sl = IoGetCurrentIrpStackLocation(irp);
        if (*sl).MajorFunction != IRP_MJ_PNP {
            return pass_down(irp, e.lower, None);
        }
        let minor = (*sl).MinorFunction;
        log(b'L', e.index, minor);
        if minor == IRP_MN_REMOVE_DEVICE {
            let lower = e.lower;
            let s = pass_down(irp, lower, None);
            io_detach_device(lower);
            io_delete_device(dev);
            return s;
        }
        pass_down(irp, e.lower, None)
    }
}

// ---- the tests ----

fn take_log() -> Vec<(u8, u8, u8)> {
    LOG.with(core::mem::take)
}

fn print_log(l: &[(u8, u8, u8)]) {
    for &(w, i, m) in l {
        crate::dbg_println!("  {}{} minor {:#x}", w as char, i, m);
    }
}

/// The I/O manager's and the test's pool tags (nonpaged: bytes, count).
fn usage() -> Vec<(u32, u64)> {
    [
        crate::io::TAG_IRP,
        crate::io::TAG_FILE,
        crate::io::TAG_DEVICE,
        crate::io::TAG_BUFFER,
        crate::io::TAG_NAME,
        u32::from_le_bytes(*b"PnpR"),
        u32::from_le_bytes(*b"PnpI"),
        u32::from_le_bytes(*b"KtRm"),
    ]
    .iter()
    .map(|&t| (t, crate::ex::xpool::nonpaged_usage(t).0))
    .collect()
}

fn node(path: &str) -> Result<&'static DeviceNode, &'static str> {
    device_tree()
        .ok_or("no tree")?
        .by_instance_path(path)
        .ok_or("node missing")
}

/// Drivers, registry and the test bus (once).
fn setup() -> TestResult {
    if ROOT_PDO.load(Ordering::SeqCst) != 0 {
        return Ok(());
    }
    for (name, entry) in [
        ("KtRmBus", bus_entry as DRIVER_INITIALIZE),
        ("KtRmFn", fn_entry),
        ("KtRmFilt", filt_entry),
    ] {
        if crate::io::driver::find_driver(&format!("\\Driver\\{name}")).is_none() {
            create_driver_object(
                &format!("\\Driver\\{name}"),
                entry,
                &format!("\\Registry\\Machine\\System\\CurrentControlSet\\Services\\{name}"),
                (0, 0),
                core::ptr::null_mut(),
            )
            .map_err(|_| "cannot create a test driver")?;
        }
    }
    // The drivers stay loaded (their objects and names are not a leak).
    BEFORE.with(|b| *b = usage());
    for i in 0..2 {
        let p = format!("KTRM\\CHILD\\{i}");
        super::registry::write_service(&p, "KtRmFn").map_err(|_| "Enum Service")?;
        super::registry::write_enum_value(
            &p,
            "UpperFilters",
            crate::cm::REG_MULTI_SZ,
            &::pci::ids::multi_sz(&["KtRmFilt".into()]),
        )
        .map_err(|_| "Enum UpperFilters")?;
    }
    let pdo = super::devices::create_root_device("ROOT\\KTRMBUS", "0000", "KtRmBus")
        .map_err(|_| "create_root_device failed")?;
    ROOT_PDO.store(pdo as u64, Ordering::SeqCst);
    let ok = wait_until(5000, || {
        actions_idle()
            && (0..2).all(|i| {
                node(&format!("KTRM\\CHILD\\{i}")).is_ok_and(|n| n.state() == DEVICE_NODE_STARTED)
            })
    });
    check(ok, "the test bus and its two children did not start")
}

/// The stack of a node, bottom first, as (kind, index).
fn stack_kinds(n: &DeviceNode) -> Vec<u32> {
    let pdo = n.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
    if pdo.is_null() {
        return Vec::new();
    }
    // SAFETY: a started node's stack; every device is a test device.
    unsafe {
        crate::io::device::stack_of(pdo)
            .iter()
            .map(|&d| ext(d).kind)
            .collect()
    }
}

/// Orderly removal: a veto by child 1's function driver cancels both
/// children's queries (in reverse), leaves the bus unqueried and the
/// devices usable; then child 0 is removed: query and remove go to its
/// filter, function driver and PDO, top down, its node leaves the tree and
/// its device name goes.
fn t_orderly() -> TestResult {
    setup()?;
    let bus = node("ROOT\\KTRMBUS\\0000")?;
    let c0 = node("KTRM\\CHILD\\0")?;
    let c1 = node("KTRM\\CHILD\\1")?;
    check(
        c0.parent == Some(bus.index) && c1.parent == Some(bus.index) && bus.parent == Some(0),
        "tree shape",
    )?;
    check(
        stack_kinds(c0) == [CHILD_PDO, FN_FDO, FILTER],
        "a child's stack is PDO, function FDO, upper filter",
    )?;
    take_log();
    VETO[1].store(true, Ordering::SeqCst);
    let r = query_and_remove_device(bus);
    VETO[1].store(false, Ordering::SeqCst);
    let l = take_log();
    let want = [
        (b'L', 0, QR),
        (b'F', 0, QR),
        (b'P', 0, QR),
        (b'L', 1, QR),
        (b'F', 1, QR),
        (b'L', 1, CR),
        (b'F', 1, CR),
        (b'P', 1, CR),
        (b'L', 0, CR),
        (b'F', 0, CR),
        (b'P', 0, CR),
    ];
    if l != want {
        print_log(&l);
    }
    check(l == want, "query-remove, veto and cancel sequence")?;
    check(
        r == Err((c1.index, STATUS_UNSUCCESSFUL)),
        "the veto names child 1 and its status",
    )?;
    check(
        [bus, c0, c1]
            .iter()
            .all(|n| n.state() == DEVICE_NODE_STARTED),
        "nodes are started again after the cancel",
    )?;
    let h = crate::io::tests::open("\\Device\\KtRmFn0", 0).map_err(|_| "open after cancel")?;
    nt_close(h);

    // Child 0 goes (it is ejected: gone from its bus too), with a file
    // still open on it.
    let h0 = crate::io::tests::open("\\Device\\KtRmFn0", 0).map_err(|_| "open child 0")?;
    PRESENT[0].store(false, Ordering::SeqCst);
    let removed = query_and_remove_device(c0);
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: crate::ob::object::Mode::KernelMode,
    };
    let mut buf = [0u8; 4];
    let r = nt_read_file(h0, &a, buf.as_mut_ptr() as *mut c_void, 4, Some(0), 0);
    nt_close(h0);
    removed.map_err(|_| "removal of child 0 failed")?;
    check(
        matches!(r, Ok(s) | Err(s) if s == STATUS_DELETE_PENDING),
        "a read on a file left open after the remove gets STATUS_DELETE_PENDING (remove lock)",
    )?;
    let l = take_log();
    let want = [
        (b'L', 0, QR),
        (b'F', 0, QR),
        (b'P', 0, QR),
        (b'L', 0, RM),
        (b'F', 0, RM),
        (b'P', 0, RM),
    ];
    if l != want {
        print_log(&l);
    }
    check(l == want, "query-remove then remove, top of the stack down")?;
    check(
        c0.is_gone() && c0.state() == DEVICE_NODE_REMOVED && c0.pdo.load(Ordering::Acquire) == 0,
        "child 0's node is removed",
    )?;
    check(
        device_tree().is_some_and(|t| t.children(bus.index).all(|c| c.index != c0.index)),
        "child 0 left the tree",
    )?;
    check(
        CHILD_PDOS[0].load(Ordering::SeqCst) == 0,
        "the bus driver deleted child 0's PDO",
    )?;
    check(
        crate::io::tests::open("\\Device\\KtRmFn0", 0) == Err(STATUS_OBJECT_NAME_NOT_FOUND),
        "\\Device\\KtRmFn0 is gone",
    )?;
    check(
        query_and_remove_device(c0).is_err(),
        "a removed node cannot be removed again",
    )
}

/// Surprise removal: child 1 disappears from its bus while a file is open
/// on it with a read pending. The read completes with
/// STATUS_NO_SUCH_DEVICE, new reads and opens fail, the remove IRP waits
/// for the file to close, then goes top down. Then the root device goes:
/// the bus gets surprise removal and remove. Nothing is left in the I/O
/// manager's pools.
fn t_surprise() -> TestResult {
    setup()?;
    let bus = node("ROOT\\KTRMBUS\\0000")?;
    let c1 = node("KTRM\\CHILD\\1")?;
    let h = crate::io::tests::open("\\Device\\KtRmFn1", 0).map_err(|_| "open")?;
    let (ev, _) = crate::ex::event::nt_create_event(
        crate::ex::event::EVENT_ALL_ACCESS,
        None,
        0,
        crate::ex::event::EventType::NotificationEvent,
        false,
        crate::ob::object::Mode::KernelMode,
    )
    .map_err(|_| "event")?;
    let mut buf = [0u8; 4];
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let a = RequestArgs {
        event: Some(ev),
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: crate::ob::object::Mode::KernelMode,
    };
    let s = nt_read_file(h, &a, buf.as_mut_ptr() as *mut c_void, 1, Some(0), 0);
    check(s == Ok(STATUS_PENDING), "the one-byte read is pending")?;
    take_log();
    PRESENT[1].store(false, Ordering::SeqCst);
    super::remove::io_invalidate_device_relations(
        bus.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT,
        BUS_RELATIONS,
    );
    check(
        wait_until(5000, || {
            actions_idle() && c1.state() == DEVICE_NODE_DELETE_PENDING_CLOSES
        }),
        "child 1 did not wait for its file to close",
    )?;
    let l = take_log();
    let want = [(b'L', 1, SR), (b'F', 1, SR), (b'P', 1, SR)];
    if l != want {
        print_log(&l);
    }
    check(
        l == want,
        "surprise removal top down, no remove while a file is open",
    )?;
    let w = crate::ex::event::nt_wait_for_single_object(
        ev,
        false,
        Some(1000 * crate::ktest::MS),
        crate::ob::object::Mode::KernelMode,
    );
    check(
        w == STATUS_SUCCESS && iosb.Status == STATUS_NO_SUCH_DEVICE,
        "the pending read completed with STATUS_NO_SUCH_DEVICE",
    )?;
    let mut iosb2 = IO_STATUS_BLOCK::zeroed();
    let a2 = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb2,
        mode: crate::ob::object::Mode::KernelMode,
    };
    let r = nt_read_file(h, &a2, buf.as_mut_ptr() as *mut c_void, 4, Some(0), 0);
    check(
        matches!(r, Ok(s) | Err(s) if s == STATUS_NO_SUCH_DEVICE),
        "a new read fails with STATUS_NO_SUCH_DEVICE",
    )?;
    check(
        crate::io::tests::open("\\Device\\KtRmFn1", 0) == Err(STATUS_NO_SUCH_DEVICE),
        "a new open fails with STATUS_NO_SUCH_DEVICE",
    )?;
    nt_close(ev);
    nt_close(h);
    check(
        wait_until(5000, || actions_idle() && c1.is_gone()),
        "the remove IRP did not follow the close",
    )?;
    let l = take_log();
    let want = [(b'L', 1, RM), (b'F', 1, RM), (b'P', 1, RM)];
    if l != want {
        print_log(&l);
    }
    check(l == want, "remove top down after the close")?;
    check(
        c1.state() == DEVICE_NODE_DELETED,
        "child 1's node is deleted",
    )?;

    // The root device goes: the bus (no children left) is surprise-removed.
    super::devices::delete_root_device(ROOT_PDO.load(Ordering::SeqCst) as *mut DEVICE_OBJECT)
        .map_err(|_| "delete_root_device")?;
    check(
        wait_until(5000, || actions_idle() && bus.is_gone()),
        "the bus was not removed",
    )?;
    let l = take_log();
    let want = [(b'B', 0, SR), (b'B', 0, RM)];
    if l != want {
        print_log(&l);
    }
    check(l == want, "the bus had surprise removal then remove")?;
    check(
        device_tree().is_some_and(|t| t.children(0).all(|c| c.index != bus.index)),
        "the bus left the tree",
    )?;
    let before = BEFORE.with(|b| b.clone());
    let ok = wait_until(3000, || usage() == before);
    if !ok {
        crate::dbg_println!("pool before {before:?} after {:?}", usage());
    }
    check(
        ok,
        "Irp/File/Devi/IoBu/IoNm/PnpR/PnpI/KtRm pool usage back where it was",
    )
}

/// volmgr's FDO sits on the root-enumerated `ROOT\VOLMGR\0000` and
/// reports the volumes as its bus relations: each volume (the disk's two
/// GPT partitions) is a started device node under it (raw: no function
/// driver, `RawDeviceOK`), instance path `STORAGE\Volume\{disk GUID}#<offset>`,
/// PDO of `\Driver\volmgr`.
fn t_volumes() -> TestResult {
    let volmgr = crate::io::driver::find_driver("\\Driver\\volmgr").ok_or("no volmgr")?;
    check(
        wait_until(5000, || {
            actions_idle()
                && node("ROOT\\VOLMGR\\0000").is_ok_and(|n| n.state() == DEVICE_NODE_STARTED)
        }),
        "ROOT\\VOLMGR\\0000 not started",
    )?;
    let root = node("ROOT\\VOLMGR\\0000")?;
    check(
        root.parent == Some(0),
        "ROOT\\VOLMGR\\0000 is a child of the root",
    )?;
    check(
        root.service_name() == Some("volmgr"),
        "its service is volmgr",
    )?;
    let tree = device_tree().ok_or("no tree")?;
    let ok = wait_until(5000, || {
        actions_idle()
            && tree.children(root.index).count() >= 2
            && tree
                .children(root.index)
                .all(|v| v.state() == DEVICE_NODE_STARTED)
    });
    let vols: Vec<&DeviceNode> = tree.children(root.index).collect();
    for v in &vols {
        crate::dbg_println!(
            "  volume node {} state {:#x} problem {:#x}",
            v.instance_path,
            v.state(),
            v.problem()
        );
    }
    check(
        ok,
        "fewer than two started volume nodes under ROOT\\VOLMGR\\0000",
    )?;
    for v in vols {
        check(
            v.instance_path.starts_with("STORAGE\\Volume\\{") && v.instance_path.contains("}#"),
            "volume instance path",
        )?;
        check(
            v.problem() == 0 && v.service_name().is_none(),
            "raw volume node without problem",
        )?;
        let pdo = v.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
        check(!pdo.is_null(), "the volume node has a PDO")?;
        // SAFETY: a started node's PDO is live (volumes are never removed).
        let owner = unsafe { (*pdo).DriverObject };
        check(owner == volmgr, "the volume's PDO is volmgr's")?;
    }
    Ok(())
}
