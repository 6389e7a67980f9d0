//! Device interrupts: assignment at resource time (an IDT vector, and MSI
//! programmed into the function's capability to the boot processor's local
//! APIC, or its INTx line through the I/O APIC), and the driver interface:
//! `IoConnectInterrupt`, `IoConnectInterruptEx` (fully specified, line
//! based, message based), `IoDisconnectInterrupt(Ex)`,
//! `KeSynchronizeExecution`, `KeAcquireInterruptSpinLock` /
//! `KeReleaseInterruptSpinLock`.
//!
//! A driver's `PKINTERRUPT` points at a [`DriverInterrupt`], which owns the
//! kernel's interrupt object; the kernel's dispatcher calls
//! [`DriverInterrupt`]'s trampoline at the device IRQL, which raises to the
//! synchronize IRQL, takes the interrupt spin lock and calls the driver's
//! service routine, as `KiInterruptDispatch` does.

use super::resource::CmPartialResourceDescriptor;
use crate::ke::intr::{self, InterruptObject, KInterrupt, NO_GSI};
use crate::ke::irql::{KSpinLock, SpinLocked};
use crate::ke::{DISPATCH_LEVEL, PASSIVE_LEVEL};
use alloc::boxed::Box;
use core::ffi::c_void;
use nt::status::*;
use nt::NtStatus;
use wdk::pnp::{CONNECT_FULLY_SPECIFIED, CONNECT_LINE_BASED, CONNECT_MESSAGE_BASED};
use wdk::pnp::{
    IO_CONNECT_INTERRUPT_LINE_BASED_PARAMETERS, IO_CONNECT_INTERRUPT_PARAMETERS,
    IO_DISCONNECT_INTERRUPT_PARAMETERS, IO_INTERRUPT_MESSAGE_INFO, IO_INTERRUPT_MESSAGE_INFO_ENTRY,
    PKINTERRUPT, PKSERVICE_ROUTINE, PKSYNCHRONIZE_ROUTINE,
};

/// The interrupt a device was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptAssignment {
    /// Message signaled: the MSI capability holds `address`/`data`.
    Message {
        vector: u8,
        irql: u8,
        apic_id: u8,
        address: u64,
        data: u16,
    },
    /// The function's INTx pin: bus-relative `line` (the raw resource),
    /// wired to I/O APIC input `gsi`.
    Line {
        line: u8,
        gsi: u32,
        mps_flags: u16,
        vector: u8,
        irql: u8,
    },
}

/// Processors an interrupt goes to (`KAFFINITY`): the boot processor.
pub const AFFINITY: u64 = 1;

impl InterruptAssignment {
    pub fn vector(&self) -> u8 {
        match *self {
            InterruptAssignment::Message { vector, .. }
            | InterruptAssignment::Line { vector, .. } => vector,
        }
    }

    pub fn irql(&self) -> u8 {
        self.vector() >> 4
    }

    pub fn is_message(&self) -> bool {
        matches!(self, InterruptAssignment::Message { .. })
    }

    /// The raw and translated resource descriptors.
    pub fn descriptors(&self) -> (CmPartialResourceDescriptor, CmPartialResourceDescriptor) {
        match *self {
            InterruptAssignment::Message { vector, irql, .. } => (
                CmPartialResourceDescriptor::message_raw(1, AFFINITY),
                CmPartialResourceDescriptor::message_translated(irql, vector as u32, AFFINITY),
            ),
            InterruptAssignment::Line {
                line, vector, irql, ..
            } => (
                CmPartialResourceDescriptor::interrupt_line(line as u16, line as u32, AFFINITY),
                CmPartialResourceDescriptor::interrupt_line(irql as u16, vector as u32, AFFINITY),
            ),
        }
    }
}

/// Device IRQLs the PnP manager hands out, tried from the top (vectors at
/// 0xB0..0xBF first, down to 0x40).
const DEVICE_IRQLS: core::ops::RangeInclusive<u8> = 4..=11;

fn reserve_vector() -> Result<u8, NtStatus> {
    DEVICE_IRQLS
        .rev()
        .find_map(intr::reserve_vector)
        .ok_or(STATUS_INSUFFICIENT_RESOURCES)
}

/// The MSI capability of the PCI function at `addr`, read through the
/// ECAM mapping (the HAL's part of message translation).
fn msi_of(addr: ::pci::Address) -> Option<::pci::cap::Msi> {
    let cs = super::ecam::AllWindows;
    let hdr = ::pci::header::Header::read(&cs, addr)?;
    let off = ::pci::cap::capabilities(&cs, addr, &hdr)
        .into_iter()
        .find(|c| c.id == ::pci::cap::CAP_ID_MSI)?
        .offset;
    Some(::pci::cap::Msi::read(&cs, addr, off))
}

/// Translates the interrupt the arbiter assigned (the HAL's interrupt
/// translator, `HalpInterruptTranslateBusInterrupt` in spirit): a
/// message-signaled interrupt gets a vector at a device IRQL and its
/// message (to the boot processor's local APIC) is written into the
/// function's MSI capability, INTx disabled; a line gets a vector and the
/// I/O APIC input the line maps to through the MADT's interrupt source
/// overrides (the Interrupt Line register is an ISA IRQ: ntrs has no AML
/// interpreter for `_PRT`).
pub fn translate(
    node: &super::DeviceNode,
    a: &::pnp::arbiter::Assigned,
) -> Result<InterruptAssignment, NtStatus> {
    let apic_id = crate::ke::apic_id_of(0).unwrap_or(0);
    if a.message {
        let addr = node.pci_address().ok_or(STATUS_NOT_IMPLEMENTED)?;
        let msi = msi_of(addr).ok_or(super::STATUS_DEVICE_CONFIGURATION_ERROR)?;
        let vector = reserve_vector()?;
        let address = ::pci::cap::x86_msi_address(apic_id);
        let data = ::pci::cap::x86_msi_data(vector);
        if !msi.enable(&super::ecam::AllWindows, addr, address, data) {
            return Err(super::STATUS_DEVICE_CONFIGURATION_ERROR);
        }
        return Ok(InterruptAssignment::Message {
            vector,
            irql: vector >> 4,
            apic_id,
            address,
            data,
        });
    }
    let line = u8::try_from(a.start).map_err(|_| STATUS_INVALID_PARAMETER)?;
    let (gsi, mut flags) = match crate::ke::madt() {
        Some(m) if (line as usize) < 16 => m.isa_override[line as usize],
        _ => (line as u32, 0),
    };
    if flags == 0 {
        // Conforming to the bus: PCI INTx is level triggered, active low.
        flags = 0xF;
    }
    let vector = reserve_vector()?;
    Ok(InterruptAssignment::Line {
        line,
        gsi,
        mps_flags: flags,
        vector,
        irql: vector >> 4,
    })
}

/// `KSERVICE_ROUTINE`.
type KServiceRoutine = unsafe extern "system" fn(PKINTERRUPT, *mut c_void) -> u8;
/// `KMESSAGE_SERVICE_ROUTINE`.
type KMessageServiceRoutine = unsafe extern "system" fn(PKINTERRUPT, *mut c_void, u32) -> u8;

#[derive(Clone, Copy)]
enum Isr {
    Line(KServiceRoutine),
    Message(KMessageServiceRoutine),
    /// Kernel-internal connections (boot tests).
    Kernel(fn(usize) -> bool),
}

/// What a driver's `PKINTERRUPT` points at: the service routine, its
/// context, the interrupt spin lock and the kernel's interrupt object.
pub struct DriverInterrupt {
    isr: Isr,
    context: usize,
    /// The driver's spin lock (`SpinLock` parameter), or null for `own_lock`.
    external_lock: *const KSpinLock,
    own_lock: KSpinLock,
    pub irql: u8,
    pub synchronize_irql: u8,
    pub vector: u8,
    object: SpinLocked<Option<InterruptObject>, DISPATCH_LEVEL>,
}

// SAFETY: the fields are read-only after connection except `object` (under
// its lock) and the spin locks (atomics); `external_lock` points at the
// driver's KSPIN_LOCK, which the driver keeps until it disconnects.
unsafe impl Send for DriverInterrupt {}
// SAFETY: as above.
unsafe impl Sync for DriverInterrupt {}

impl DriverInterrupt {
    fn lock(&self) -> &KSpinLock {
        if self.external_lock.is_null() {
            &self.own_lock
        } else {
            // SAFETY: the driver passed a KSPIN_LOCK it keeps valid while
            // the interrupt is connected (IoConnectInterrupt's contract).
            unsafe { &*self.external_lock }
        }
    }

    /// Interrupts the kernel object took (for tests and kd).
    pub fn count(&self) -> u64 {
        self.object.with(|o| {
            o.as_ref()
                .map_or(0, |o| o.count.load(core::sync::atomic::Ordering::Relaxed))
        })
    }

    /// `KeSynchronizeExecution` for kernel callers.
    pub fn synchronize<R>(&self, f: impl FnOnce() -> R) -> R {
        let old = self.lock().acquire_raise(self.synchronize_irql);
        let r = f();
        self.lock().release(old);
        r
    }
}

/// The kernel interrupt object's service routine for a driver connection.
fn trampoline(k: &KInterrupt, ctx: usize) -> bool {
    // SAFETY: `ctx` is the DriverInterrupt this connection was made for; it
    // is freed only after the kernel object is disconnected, which waits
    // until no processor runs this routine.
    let di = unsafe { &*(ctx as *const DriverInterrupt) };
    let old = di.lock().acquire_raise(di.synchronize_irql.max(k.irql));
    let me = ctx as PKINTERRUPT;
    let claimed = match di.isr {
        // SAFETY: the driver's service routine, called as its contract
        // says: at the device IRQL (or the synchronize IRQL) with the
        // interrupt object and its context.
        Isr::Line(f) => unsafe { f(me, di.context as *mut c_void) != 0 },
        // SAFETY: as above, with message 0 (ntrs gives one message).
        Isr::Message(f) => unsafe { f(me, di.context as *mut c_void, 0) != 0 },
        Isr::Kernel(f) => f(di.context),
    };
    di.lock().release(old);
    claimed
}

/// Where an assigned vector comes from: (gsi or NO_GSI, MPS flags), found
/// through the device tree.
fn source_of(vector: u8) -> Option<(u32, u16)> {
    let tree = super::device_tree()?;
    tree.nodes().find_map(|n| match n.resources()?.interrupt? {
        InterruptAssignment::Message { vector: v, .. } if v == vector => Some((NO_GSI, 0)),
        InterruptAssignment::Line {
            vector: v,
            gsi,
            mps_flags,
            ..
        } if v == vector => Some((gsi, mps_flags)),
        _ => None,
    })
}

/// Connects `isr` to an assigned `vector` (the core of every connect
/// routine). The returned pointer is the driver's `PKINTERRUPT`.
fn connect(
    vector: u8,
    irql: u8,
    synchronize_irql: u8,
    isr: Isr,
    context: usize,
    lock: *const KSpinLock,
) -> Result<*mut DriverInterrupt, NtStatus> {
    if crate::ke::irql() > PASSIVE_LEVEL {
        return Err(STATUS_INVALID_DEVICE_REQUEST);
    }
    let (gsi, flags) = source_of(vector).ok_or(STATUS_INVALID_PARAMETER)?;
    if irql != vector >> 4 || synchronize_irql < irql {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let di = Box::into_raw(crate::ex::pool::try_box(DriverInterrupt {
        isr,
        context,
        external_lock: lock,
        own_lock: KSpinLock::new(),
        irql,
        synchronize_irql,
        vector,
        object: SpinLocked::new(None),
    })?);
    match intr::connect_reserved(vector, irql, gsi, flags, trampoline, di as usize) {
        Ok(obj) => {
            // SAFETY: `di` was just allocated; the dispatcher only reads it
            // through shared references, and `object` is behind its lock.
            unsafe { (*di).object.with(|o| *o = Some(obj)) };
            Ok(di)
        }
        Err(s) => {
            // SAFETY: never published (the connect failed).
            drop(unsafe { Box::from_raw(di) });
            Err(s)
        }
    }
}

/// Disconnects and frees what `connect` made.
///
/// # Safety
/// `di` came from `connect` and is not used afterwards.
unsafe fn disconnect(di: *mut DriverInterrupt) {
    // SAFETY: the caller passes a live connection.
    let obj = unsafe { (*di).object.with(|o| o.take()) };
    // Disconnecting waits until no processor runs the trampoline.
    drop(obj);
    // SAFETY: no dispatch can reach `di` any more.
    drop(unsafe { Box::from_raw(di) });
}

/// A kernel connection to a device node's assigned interrupt (boot tests):
/// `isr(context)` runs at the device IRQL under the interrupt lock.
pub struct KernelConnection(*mut DriverInterrupt);

// SAFETY: the connection is a handle to a Sync DriverInterrupt.
unsafe impl Send for KernelConnection {}

impl KernelConnection {
    pub fn interrupt(&self) -> &DriverInterrupt {
        // SAFETY: alive until this handle drops.
        unsafe { &*self.0 }
    }
}

impl Drop for KernelConnection {
    fn drop(&mut self) {
        // SAFETY: this handle owns the connection.
        unsafe { disconnect(self.0) }
    }
}

/// Connects a kernel routine to `node`'s assigned interrupt.
pub fn connect_kernel(
    node: &super::DeviceNode,
    isr: fn(usize) -> bool,
    context: usize,
) -> Result<KernelConnection, NtStatus> {
    let a = node
        .resources()
        .and_then(|r| r.interrupt)
        .ok_or(STATUS_INVALID_DEVICE_REQUEST)?;
    connect(
        a.vector(),
        a.irql(),
        a.irql(),
        Isr::Kernel(isr),
        context,
        core::ptr::null(),
    )
    .map(KernelConnection)
}

// ---- driver interface ----

/// The `DriverInterrupt` behind a driver's `PKINTERRUPT`.
///
/// # Safety
/// `interrupt` is a `PKINTERRUPT` a connect routine returned and that is
/// still connected.
unsafe fn driver_interrupt<'a>(interrupt: PKINTERRUPT) -> &'a DriverInterrupt {
    // SAFETY: per the contract, it points at a live DriverInterrupt.
    unsafe { &*(interrupt as *const DriverInterrupt) }
}

/// `IoConnectInterrupt`: `vector` and `irql` as the translated interrupt
/// resource gave them. Sharing and processor masks beyond the boot
/// processor are accepted and ignored (ntrs routes each vector to the boot
/// processor, exclusively); FloatingSave is ignored (x64 kernels never
/// save floating state for ISRs).
///
/// # Safety
/// Pointers as `IoConnectInterrupt` requires.
#[no_mangle]
#[allow(non_snake_case, clippy::too_many_arguments)]
pub unsafe extern "system" fn IoConnectInterrupt(
    interrupt_object: *mut PKINTERRUPT,
    service_routine: PKSERVICE_ROUTINE,
    service_context: *mut c_void,
    spin_lock: *mut wdk::KSPIN_LOCK,
    vector: u32,
    irql: u8,
    synchronize_irql: u8,
    _interrupt_mode: u32,
    _share_vector: u8,
    _processor_enable_mask: usize,
    _floating_save: u8,
) -> NtStatus {
    let (Some(isr), false) = (service_routine, interrupt_object.is_null()) else {
        return STATUS_INVALID_PARAMETER;
    };
    let Ok(vector) = u8::try_from(vector) else {
        return STATUS_INVALID_PARAMETER;
    };
    match connect(
        vector,
        irql,
        synchronize_irql,
        Isr::Line(isr),
        service_context as usize,
        spin_lock.cast::<KSpinLock>(),
    ) {
        Ok(di) => {
            // SAFETY: checked non-null; the caller passes writable storage.
            unsafe { interrupt_object.write(di.cast()) };
            STATUS_SUCCESS
        }
        Err(s) => s,
    }
}

/// `IoDisconnectInterrupt`.
///
/// # Safety
/// `interrupt_object` came from `IoConnectInterrupt` and is not used again.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn IoDisconnectInterrupt(interrupt_object: PKINTERRUPT) {
    if !interrupt_object.is_null() {
        // SAFETY: per the contract above.
        unsafe { disconnect(interrupt_object.cast()) }
    }
}

/// The device node whose PDO is `pdo`.
fn node_of_pdo(pdo: *mut c_void) -> Option<&'static super::DeviceNode> {
    let tree = super::device_tree()?;
    let pdo = pdo as u64;
    if pdo == 0 {
        return None;
    }
    tree.by_pdo(pdo)
}

/// `IoConnectInterruptEx`: CONNECT_FULLY_SPECIFIED as `IoConnectInterrupt`;
/// CONNECT_LINE_BASED and CONNECT_MESSAGE_BASED find the interrupt in the
/// resources assigned to the PDO's device node. A message-based request for
/// a device given a line interrupt connects the fallback routine and sets
/// `Version` to CONNECT_LINE_BASED, as Windows does. Other versions
/// (group and passive-level variants) are STATUS_NOT_IMPLEMENTED.
///
/// # Safety
/// `parameters` as `IoConnectInterruptEx` requires.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn IoConnectInterruptEx(
    parameters: *mut IO_CONNECT_INTERRUPT_PARAMETERS,
) -> NtStatus {
    if parameters.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller passes a valid parameter block.
    let p = unsafe { &mut *parameters };
    match p.Version {
        CONNECT_FULLY_SPECIFIED => {
            // SAFETY: the version says which union member is valid.
            let f = unsafe { p.u.FullySpecified };
            // SAFETY: forwarded with the caller's pointers.
            unsafe {
                IoConnectInterrupt(
                    f.InterruptObject,
                    f.ServiceRoutine,
                    f.ServiceContext,
                    f.SpinLock,
                    f.Vector,
                    f.Irql,
                    f.SynchronizeIrql,
                    f.InterruptMode,
                    f.ShareVector,
                    f.ProcessorEnableMask,
                    f.FloatingSave,
                )
            }
        }
        CONNECT_LINE_BASED | CONNECT_MESSAGE_BASED => {
            // SAFETY: both members start with the PDO.
            let pdo = unsafe { p.u.LineBased.PhysicalDeviceObject };
            let Some(a) = node_of_pdo(pdo)
                .and_then(|n| n.resources())
                .and_then(|r| r.interrupt)
            else {
                return STATUS_INVALID_DEVICE_REQUEST;
            };
            if p.Version == CONNECT_MESSAGE_BASED {
                // SAFETY: the version says which union member is valid.
                let m = unsafe { p.u.MessageBased };
                if let InterruptAssignment::Message {
                    vector,
                    irql,
                    address,
                    data,
                    ..
                } = a
                {
                    let (Some(isr), false) =
                        (m.MessageServiceRoutine, m.ConnectionContext.is_null())
                    else {
                        return STATUS_INVALID_PARAMETER;
                    };
                    let sync = m.SynchronizeIrql.max(irql);
                    let di = match connect(
                        vector,
                        irql,
                        sync,
                        Isr::Message(isr),
                        m.ServiceContext as usize,
                        m.SpinLock.cast::<KSpinLock>(),
                    ) {
                        Ok(di) => di,
                        Err(s) => return s,
                    };
                    let info = IO_INTERRUPT_MESSAGE_INFO {
                        UnifiedIrql: sync,
                        MessageCount: 1,
                        MessageInfo: [IO_INTERRUPT_MESSAGE_INFO_ENTRY {
                            MessageAddress: address as i64,
                            TargetProcessorSet: AFFINITY as usize,
                            InterruptObject: di.cast(),
                            MessageData: data as u32,
                            Vector: vector as u32,
                            Irql: irql,
                            Mode: wdk::pnp::Latched,
                            Polarity: 0,
                        }],
                    };
                    let Ok(b) = crate::ex::pool::try_box(info) else {
                        // SAFETY: just connected, not handed out.
                        unsafe { disconnect(di) };
                        return STATUS_INSUFFICIENT_RESOURCES;
                    };
                    // SAFETY: checked non-null; the caller's storage.
                    unsafe { m.ConnectionContext.write(Box::into_raw(b).cast()) };
                    return STATUS_SUCCESS;
                }
                // No MSI: the fallback routine on the line.
                let Some(fallback) = m.FallBackServiceRoutine else {
                    return STATUS_INVALID_PARAMETER;
                };
                p.Version = CONNECT_LINE_BASED;
                p.u.LineBased = IO_CONNECT_INTERRUPT_LINE_BASED_PARAMETERS {
                    PhysicalDeviceObject: m.PhysicalDeviceObject,
                    InterruptObject: m.ConnectionContext.cast(),
                    ServiceRoutine: Some(fallback),
                    ServiceContext: m.ServiceContext,
                    SpinLock: m.SpinLock,
                    SynchronizeIrql: m.SynchronizeIrql,
                    FloatingSave: m.FloatingSave,
                };
            }
            // SAFETY: the version (possibly just rewritten) is line based.
            let l = unsafe { p.u.LineBased };
            let (Some(isr), false) = (l.ServiceRoutine, l.InterruptObject.is_null()) else {
                return STATUS_INVALID_PARAMETER;
            };
            match connect(
                a.vector(),
                a.irql(),
                l.SynchronizeIrql.max(a.irql()),
                Isr::Line(isr),
                l.ServiceContext as usize,
                l.SpinLock.cast::<KSpinLock>(),
            ) {
                Ok(di) => {
                    // SAFETY: checked non-null; the caller's storage.
                    unsafe { l.InterruptObject.write(di.cast()) };
                    STATUS_SUCCESS
                }
                Err(s) => s,
            }
        }
        _ => STATUS_NOT_IMPLEMENTED,
    }
}

/// `IoDisconnectInterruptEx`.
///
/// # Safety
/// `parameters` names a connection `IoConnectInterruptEx` made, with the
/// version it returned.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn IoDisconnectInterruptEx(
    parameters: *mut IO_DISCONNECT_INTERRUPT_PARAMETERS,
) {
    if parameters.is_null() {
        return;
    }
    // SAFETY: the caller passes a valid parameter block.
    let p = unsafe { &*parameters };
    if p.ConnectionContext.is_null() {
        return;
    }
    match p.Version {
        CONNECT_MESSAGE_BASED => {
            // SAFETY: a message table IoConnectInterruptEx allocated.
            let info =
                unsafe { Box::from_raw(p.ConnectionContext.cast::<IO_INTERRUPT_MESSAGE_INFO>()) };
            // SAFETY: its one entry's interrupt object is live.
            unsafe { disconnect(info.MessageInfo[0].InterruptObject.cast()) };
        }
        // SAFETY: a PKINTERRUPT from a fully specified or line-based connect.
        _ => unsafe { disconnect(p.ConnectionContext.cast()) },
    }
}

/// `KeSynchronizeExecution`: runs `routine(context)` at the interrupt's
/// synchronize IRQL holding its spin lock, so it never overlaps the ISR.
/// A NULL routine returns FALSE.
///
/// # Safety
/// `interrupt` is a connected `PKINTERRUPT`.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeSynchronizeExecution(
    interrupt: PKINTERRUPT,
    routine: PKSYNCHRONIZE_ROUTINE,
    context: *mut c_void,
) -> u8 {
    let Some(routine) = routine else {
        return 0;
    };
    // SAFETY: per the contract.
    let di = unsafe { driver_interrupt(interrupt) };
    // SAFETY: the driver's synchronize routine with its context.
    di.synchronize(|| unsafe { routine(context) })
}

/// `KeAcquireInterruptSpinLock`: raises to the synchronize IRQL, takes the
/// interrupt's lock and returns the old IRQL.
///
/// # Safety
/// `interrupt` is a connected `PKINTERRUPT`.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeAcquireInterruptSpinLock(interrupt: PKINTERRUPT) -> u8 {
    // SAFETY: per the contract.
    let di = unsafe { driver_interrupt(interrupt) };
    di.lock().acquire_raise(di.synchronize_irql)
}

/// `KeReleaseInterruptSpinLock`.
///
/// # Safety
/// `interrupt` is the interrupt whose lock `KeAcquireInterruptSpinLock` took.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeReleaseInterruptSpinLock(interrupt: PKINTERRUPT, old_irql: u8) {
    // SAFETY: per the contract.
    let di = unsafe { driver_interrupt(interrupt) };
    di.lock().release(old_irql);
}

/// Reads the MSI state of a PCI function (for kd and tests).
pub fn msi_state(addr: ::pci::Address) -> Option<(u64, u16)> {
    msi_of(addr)?.current(&super::ecam::AllWindows, addr)
}
