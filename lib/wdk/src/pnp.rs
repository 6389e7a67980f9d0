//! Plug and Play structures drivers see (wdm.h, x64): resource lists as
//! `IRP_MN_START_DEVICE` hands them over, and the interrupt connection
//! parameters of `IoConnectInterruptEx`.
//!
//! The `CM_*` resource structures are declared under 4-byte packing in
//! wdm.h: a `CM_PARTIAL_RESOURCE_DESCRIPTOR` is 20 bytes (Type,
//! ShareDisposition, Flags, then a 16-byte union at offset 4), so its
//! 8-byte members are only 4-byte aligned. The union is kept here as four
//! dwords with accessors named after the members, which avoids references
//! to misaligned fields.

#![allow(non_upper_case_globals)]

use crate::base::*;
use core::ffi::c_void;

/// `CmResourceTypeNull`.
pub const CmResourceTypeNull: u8 = 0;
/// `CmResourceTypePort`.
pub const CmResourceTypePort: u8 = 1;
/// `CmResourceTypeInterrupt`.
pub const CmResourceTypeInterrupt: u8 = 2;
/// `CmResourceTypeMemory`.
pub const CmResourceTypeMemory: u8 = 3;
/// `CmResourceTypeDma`.
pub const CmResourceTypeDma: u8 = 4;
/// `CmResourceTypeDeviceSpecific`.
pub const CmResourceTypeDeviceSpecific: u8 = 5;
/// `CmResourceTypeBusNumber`.
pub const CmResourceTypeBusNumber: u8 = 6;
/// `CmResourceTypeMemoryLarge`.
pub const CmResourceTypeMemoryLarge: u8 = 7;

/// `CmResourceShareUndetermined`.
pub const CmResourceShareUndetermined: u8 = 0;
/// `CmResourceShareDeviceExclusive`.
pub const CmResourceShareDeviceExclusive: u8 = 1;
/// `CmResourceShareDriverExclusive`.
pub const CmResourceShareDriverExclusive: u8 = 2;
/// `CmResourceShareShared`.
pub const CmResourceShareShared: u8 = 3;

pub const CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE: u16 = 0;
pub const CM_RESOURCE_INTERRUPT_LATCHED: u16 = 1;
pub const CM_RESOURCE_INTERRUPT_MESSAGE: u16 = 2;
/// `Vector` of a raw message-signaled interrupt descriptor: `(ULONG)-2`.
pub const CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN: u32 = 0xFFFF_FFFE;

pub const CM_RESOURCE_MEMORY_READ_WRITE: u16 = 0;
pub const CM_RESOURCE_MEMORY_READ_ONLY: u16 = 1;
pub const CM_RESOURCE_MEMORY_WRITE_ONLY: u16 = 2;
pub const CM_RESOURCE_MEMORY_PREFETCHABLE: u16 = 4;

pub const CM_RESOURCE_PORT_MEMORY: u16 = 0;
pub const CM_RESOURCE_PORT_IO: u16 = 1;

/// `INTERFACE_TYPE` `Internal`.
pub const Internal: i32 = 0;
/// `INTERFACE_TYPE` `PCIBus`.
pub const PCIBus: i32 = 5;

/// `CM_PARTIAL_RESOURCE_DESCRIPTOR` (20 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CM_PARTIAL_RESOURCE_DESCRIPTOR {
    pub Type: u8,
    pub ShareDisposition: u8,
    pub Flags: u16,
    /// The `u` union as dwords (see the accessors).
    pub u: [u32; 4],
}

impl CM_PARTIAL_RESOURCE_DESCRIPTOR {
    /// `u.Port` / `u.Memory` / `u.Generic`: Start (PHYSICAL_ADDRESS), Length.
    pub const fn range(Type: u8, Flags: u16, Start: u64, Length: u32) -> Self {
        CM_PARTIAL_RESOURCE_DESCRIPTOR {
            Type,
            ShareDisposition: CmResourceShareDeviceExclusive,
            Flags,
            u: [Start as u32, (Start >> 32) as u32, Length, 0],
        }
    }

    /// A memory range (`CmResourceTypeMemory`).
    pub const fn memory(Start: u64, Length: u32, prefetchable: bool) -> Self {
        let flags = if prefetchable {
            CM_RESOURCE_MEMORY_PREFETCHABLE
        } else {
            CM_RESOURCE_MEMORY_READ_WRITE
        };
        Self::range(CmResourceTypeMemory, flags, Start, Length)
    }

    /// An I/O port range (`CmResourceTypePort`, `CM_RESOURCE_PORT_IO`).
    pub const fn port(Start: u64, Length: u32) -> Self {
        Self::range(CmResourceTypePort, CM_RESOURCE_PORT_IO, Start, Length)
    }

    /// `u.Interrupt` (Level, Group as USHORTs, Vector, Affinity) of a
    /// shared, level-sensitive line interrupt.
    pub const fn interrupt_line(Level: u16, Vector: u32, Affinity: u64) -> Self {
        CM_PARTIAL_RESOURCE_DESCRIPTOR {
            Type: CmResourceTypeInterrupt,
            ShareDisposition: CmResourceShareShared,
            Flags: CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE,
            u: [
                Level as u32,
                Vector,
                Affinity as u32,
                (Affinity >> 32) as u32,
            ],
        }
    }

    /// `u.MessageInterrupt.Raw` (Group, MessageCount, Vector =
    /// `CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN`, Affinity).
    pub const fn message_raw(MessageCount: u16, Affinity: u64) -> Self {
        CM_PARTIAL_RESOURCE_DESCRIPTOR {
            Type: CmResourceTypeInterrupt,
            ShareDisposition: CmResourceShareDeviceExclusive,
            Flags: CM_RESOURCE_INTERRUPT_LATCHED | CM_RESOURCE_INTERRUPT_MESSAGE,
            u: [
                (MessageCount as u32) << 16,
                CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN,
                Affinity as u32,
                (Affinity >> 32) as u32,
            ],
        }
    }

    /// `u.MessageInterrupt.Translated` (Level, Group, Vector, Affinity).
    pub const fn message_translated(Level: u8, Vector: u32, Affinity: u64) -> Self {
        CM_PARTIAL_RESOURCE_DESCRIPTOR {
            Type: CmResourceTypeInterrupt,
            ShareDisposition: CmResourceShareDeviceExclusive,
            Flags: CM_RESOURCE_INTERRUPT_LATCHED | CM_RESOURCE_INTERRUPT_MESSAGE,
            u: [
                Level as u32,
                Vector,
                Affinity as u32,
                (Affinity >> 32) as u32,
            ],
        }
    }

    /// `u.Memory.Start` / `u.Port.Start`.
    pub const fn Start(&self) -> u64 {
        self.u[0] as u64 | (self.u[1] as u64) << 32
    }
    /// `u.Memory.Length` / `u.Port.Length`.
    pub const fn Length(&self) -> u32 {
        self.u[2]
    }
    /// `u.Interrupt.Level` / `u.MessageInterrupt.Translated.Level`.
    pub const fn Level(&self) -> u16 {
        self.u[0] as u16
    }
    /// `u.Interrupt.Group` / `u.MessageInterrupt.Translated.Group`.
    pub const fn Group(&self) -> u16 {
        (self.u[0] >> 16) as u16
    }
    /// `u.MessageInterrupt.Raw.MessageCount`.
    pub const fn MessageCount(&self) -> u16 {
        (self.u[0] >> 16) as u16
    }
    /// `u.Interrupt.Vector`.
    pub const fn Vector(&self) -> u32 {
        self.u[1]
    }
    /// `u.Interrupt.Affinity`.
    pub const fn Affinity(&self) -> u64 {
        self.u[2] as u64 | (self.u[3] as u64) << 32
    }
}

/// `CM_PARTIAL_RESOURCE_LIST` (its descriptors follow the header; the
/// declared array has one).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CM_PARTIAL_RESOURCE_LIST {
    pub Version: u16,
    pub Revision: u16,
    pub Count: u32,
    pub PartialDescriptors: [CM_PARTIAL_RESOURCE_DESCRIPTOR; 1],
}

/// `CM_FULL_RESOURCE_DESCRIPTOR`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CM_FULL_RESOURCE_DESCRIPTOR {
    /// `INTERFACE_TYPE`.
    pub InterfaceType: i32,
    pub BusNumber: u32,
    pub PartialResourceList: CM_PARTIAL_RESOURCE_LIST,
}

/// `CM_RESOURCE_LIST`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CM_RESOURCE_LIST {
    pub Count: u32,
    pub List: [CM_FULL_RESOURCE_DESCRIPTOR; 1],
}

const _: () = assert!(core::mem::size_of::<CM_PARTIAL_RESOURCE_DESCRIPTOR>() == 20);
const _: () = assert!(core::mem::size_of::<CM_PARTIAL_RESOURCE_LIST>() == 28);
const _: () = assert!(core::mem::size_of::<CM_FULL_RESOURCE_DESCRIPTOR>() == 36);
const _: () = assert!(core::mem::size_of::<CM_RESOURCE_LIST>() == 40);
const _: () = assert!(core::mem::offset_of!(CM_RESOURCE_LIST, List) == 4);
const _: () = assert!(core::mem::offset_of!(CM_FULL_RESOURCE_DESCRIPTOR, PartialResourceList) == 8);

/// The partial descriptors of the first full descriptor of `list`
/// (`list->List[0].PartialResourceList.PartialDescriptors[0..Count]`).
///
/// # Safety
/// `list` points at a complete resource list: its first full descriptor
/// holds `Count` partial descriptors that stay valid for `'a`.
pub unsafe fn partial_descriptors<'a>(
    list: *const CM_RESOURCE_LIST,
) -> &'a [CM_PARTIAL_RESOURCE_DESCRIPTOR] {
    // SAFETY: per the contract; the descriptors are 4-byte aligned like the list.
    unsafe {
        if list.is_null() || (*list).Count == 0 {
            return &[];
        }
        let pl = &raw const (*list).List[0].PartialResourceList;
        let n = (*pl).Count as usize;
        core::slice::from_raw_parts((&raw const (*pl).PartialDescriptors).cast(), n)
    }
}

/// `PKINTERRUPT`: opaque to drivers (the kernel's interrupt object).
pub type PKINTERRUPT = *mut c_void;
/// `KSERVICE_ROUTINE`.
pub type PKSERVICE_ROUTINE = Option<
    unsafe extern "system" fn(Interrupt: PKINTERRUPT, ServiceContext: *mut c_void) -> BOOLEAN,
>;
/// `KMESSAGE_SERVICE_ROUTINE`.
pub type PKMESSAGE_SERVICE_ROUTINE = Option<
    unsafe extern "system" fn(
        Interrupt: PKINTERRUPT,
        ServiceContext: *mut c_void,
        MessageId: u32,
    ) -> BOOLEAN,
>;
/// `KSYNCHRONIZE_ROUTINE`.
pub type PKSYNCHRONIZE_ROUTINE =
    Option<unsafe extern "system" fn(SynchronizeContext: *mut c_void) -> BOOLEAN>;

/// `KINTERRUPT_MODE` `LevelSensitive`.
pub const LevelSensitive: u32 = 0;
/// `KINTERRUPT_MODE` `Latched`.
pub const Latched: u32 = 1;

pub const CONNECT_FULLY_SPECIFIED: u32 = 1;
pub const CONNECT_LINE_BASED: u32 = 2;
pub const CONNECT_MESSAGE_BASED: u32 = 3;
pub const CONNECT_FULLY_SPECIFIED_GROUP: u32 = 4;
pub const CONNECT_MESSAGE_BASED_PASSIVE: u32 = 5;

/// `IO_CONNECT_INTERRUPT_FULLY_SPECIFIED_PARAMETERS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_CONNECT_INTERRUPT_FULLY_SPECIFIED_PARAMETERS {
    pub PhysicalDeviceObject: *mut c_void,
    pub InterruptObject: *mut PKINTERRUPT,
    pub ServiceRoutine: PKSERVICE_ROUTINE,
    pub ServiceContext: *mut c_void,
    pub SpinLock: *mut KSPIN_LOCK,
    pub SynchronizeIrql: KIRQL,
    pub FloatingSave: BOOLEAN,
    pub ShareVector: BOOLEAN,
    pub Vector: u32,
    pub Irql: KIRQL,
    /// `KINTERRUPT_MODE`.
    pub InterruptMode: u32,
    pub ProcessorEnableMask: usize,
    pub Group: u16,
}

/// `IO_CONNECT_INTERRUPT_LINE_BASED_PARAMETERS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_CONNECT_INTERRUPT_LINE_BASED_PARAMETERS {
    pub PhysicalDeviceObject: *mut c_void,
    pub InterruptObject: *mut PKINTERRUPT,
    pub ServiceRoutine: PKSERVICE_ROUTINE,
    pub ServiceContext: *mut c_void,
    pub SpinLock: *mut KSPIN_LOCK,
    pub SynchronizeIrql: KIRQL,
    pub FloatingSave: BOOLEAN,
}

/// `IO_CONNECT_INTERRUPT_MESSAGE_BASED_PARAMETERS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_CONNECT_INTERRUPT_MESSAGE_BASED_PARAMETERS {
    pub PhysicalDeviceObject: *mut c_void,
    /// `ConnectionContext` (`Generic`, `InterruptMessageTable` or
    /// `InterruptObject`): receives a `PIO_INTERRUPT_MESSAGE_INFO`, or a
    /// `PKINTERRUPT` when the fallback routine was connected.
    pub ConnectionContext: *mut *mut c_void,
    pub MessageServiceRoutine: PKMESSAGE_SERVICE_ROUTINE,
    pub ServiceContext: *mut c_void,
    pub SpinLock: *mut KSPIN_LOCK,
    pub SynchronizeIrql: KIRQL,
    pub FloatingSave: BOOLEAN,
    pub FallBackServiceRoutine: PKSERVICE_ROUTINE,
}

/// The parameter union of `IO_CONNECT_INTERRUPT_PARAMETERS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IO_CONNECT_INTERRUPT_PARAMETERS_u {
    pub FullySpecified: IO_CONNECT_INTERRUPT_FULLY_SPECIFIED_PARAMETERS,
    pub LineBased: IO_CONNECT_INTERRUPT_LINE_BASED_PARAMETERS,
    pub MessageBased: IO_CONNECT_INTERRUPT_MESSAGE_BASED_PARAMETERS,
}

/// `IO_CONNECT_INTERRUPT_PARAMETERS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_CONNECT_INTERRUPT_PARAMETERS {
    pub Version: u32,
    pub u: IO_CONNECT_INTERRUPT_PARAMETERS_u,
}

/// `IO_DISCONNECT_INTERRUPT_PARAMETERS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_DISCONNECT_INTERRUPT_PARAMETERS {
    pub Version: u32,
    /// `ConnectionContext`: the `PKINTERRUPT` or `PIO_INTERRUPT_MESSAGE_INFO`.
    pub ConnectionContext: *mut c_void,
}

/// `IO_INTERRUPT_MESSAGE_INFO_ENTRY`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_INTERRUPT_MESSAGE_INFO_ENTRY {
    pub MessageAddress: PHYSICAL_ADDRESS,
    pub TargetProcessorSet: usize,
    pub InterruptObject: PKINTERRUPT,
    pub MessageData: u32,
    pub Vector: u32,
    pub Irql: KIRQL,
    /// `KINTERRUPT_MODE`.
    pub Mode: u32,
    /// `KINTERRUPT_POLARITY` (0 = `InterruptPolarityUnknown`).
    pub Polarity: u32,
}

/// `IO_INTERRUPT_MESSAGE_INFO` (its entries follow; the declared array has one).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_INTERRUPT_MESSAGE_INFO {
    pub UnifiedIrql: KIRQL,
    pub MessageCount: u32,
    pub MessageInfo: [IO_INTERRUPT_MESSAGE_INFO_ENTRY; 1],
}

/// `PHYSICAL_ADDRESS` (its `QuadPart`).
pub type PHYSICAL_ADDRESS = i64;

const _: () =
    assert!(core::mem::size_of::<IO_CONNECT_INTERRUPT_FULLY_SPECIFIED_PARAMETERS>() == 0x48);
const _: () =
    assert!(core::mem::offset_of!(IO_CONNECT_INTERRUPT_FULLY_SPECIFIED_PARAMETERS, Vector) == 0x2C);
const _: () = assert!(
    core::mem::offset_of!(
        IO_CONNECT_INTERRUPT_FULLY_SPECIFIED_PARAMETERS,
        ProcessorEnableMask
    ) == 0x38
);
const _: () = assert!(
    core::mem::offset_of!(
        IO_CONNECT_INTERRUPT_MESSAGE_BASED_PARAMETERS,
        FallBackServiceRoutine
    ) == 0x30
);
const _: () = assert!(core::mem::size_of::<IO_CONNECT_INTERRUPT_PARAMETERS>() == 0x50);
const _: () = assert!(core::mem::size_of::<IO_DISCONNECT_INTERRUPT_PARAMETERS>() == 0x10);
const _: () = assert!(core::mem::size_of::<IO_INTERRUPT_MESSAGE_INFO_ENTRY>() == 0x30);
const _: () = assert!(core::mem::size_of::<IO_INTERRUPT_MESSAGE_INFO>() == 0x38);

#[cfg(feature = "driver")]
#[link(name = "ntoskrnl")]
extern "system" {
    pub fn IoConnectInterrupt(
        InterruptObject: *mut PKINTERRUPT,
        ServiceRoutine: PKSERVICE_ROUTINE,
        ServiceContext: *mut c_void,
        SpinLock: *mut KSPIN_LOCK,
        Vector: u32,
        Irql: KIRQL,
        SynchronizeIrql: KIRQL,
        InterruptMode: u32,
        ShareVector: BOOLEAN,
        ProcessorEnableMask: usize,
        FloatingSave: BOOLEAN,
    ) -> nt::NtStatus;
    pub fn IoDisconnectInterrupt(InterruptObject: PKINTERRUPT);
    pub fn IoConnectInterruptEx(Parameters: *mut IO_CONNECT_INTERRUPT_PARAMETERS) -> nt::NtStatus;
    pub fn IoDisconnectInterruptEx(Parameters: *mut IO_DISCONNECT_INTERRUPT_PARAMETERS);
    pub fn KeSynchronizeExecution(
        Interrupt: PKINTERRUPT,
        SynchronizeRoutine: PKSYNCHRONIZE_ROUTINE,
        SynchronizeContext: *mut c_void,
    ) -> BOOLEAN;
    pub fn KeAcquireInterruptSpinLock(Interrupt: PKINTERRUPT) -> KIRQL;
    pub fn KeReleaseInterruptSpinLock(Interrupt: PKINTERRUPT, OldIrql: KIRQL);
    pub fn MmMapIoSpace(
        PhysicalAddress: PHYSICAL_ADDRESS,
        NumberOfBytes: usize,
        CacheType: u32,
    ) -> *mut c_void;
    pub fn MmUnmapIoSpace(BaseAddress: *mut c_void, NumberOfBytes: usize);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    extern crate alloc;

    /// A one-list resource list in a dword buffer, as the kernel builds it.
    fn list(descs: &[CM_PARTIAL_RESOURCE_DESCRIPTOR]) -> Vec<u32> {
        let mut v = alloc::vec![1, PCIBus as u32, 0, 1, descs.len() as u32];
        for d in descs {
            v.push(d.Type as u32 | (d.ShareDisposition as u32) << 8 | (d.Flags as u32) << 16);
            v.extend_from_slice(&d.u);
        }
        v
    }

    #[test]
    fn resource_list_reads_back_through_the_windows_layout() {
        let descs = [
            CM_PARTIAL_RESOURCE_DESCRIPTOR::port(0xC040, 0x20),
            CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(0x1_8100_0000, 0x1000, true),
            CM_PARTIAL_RESOURCE_DESCRIPTOR::message_translated(0xB, 0xB0, 1),
        ];
        let buf = list(&descs);
        let l = buf.as_ptr().cast::<CM_RESOURCE_LIST>();
        // SAFETY: `buf` holds a complete list with three descriptors.
        let d = unsafe { partial_descriptors(l) };
        assert_eq!(d, descs);
        // SAFETY: as above.
        unsafe {
            assert_eq!((*l).List[0].InterfaceType, PCIBus);
            assert_eq!((*l).List[0].PartialResourceList.Version, 1);
        }
        assert_eq!(d[0].Type, CmResourceTypePort);
        assert_eq!((d[0].Start(), d[0].Length()), (0xC040, 0x20));
        assert_eq!(d[0].Flags, CM_RESOURCE_PORT_IO);
        assert_eq!(d[1].Start(), 0x1_8100_0000);
        assert_eq!(d[1].Flags, CM_RESOURCE_MEMORY_PREFETCHABLE);
        assert_eq!(
            (d[2].Level(), d[2].Vector(), d[2].Affinity()),
            (0xB, 0xB0, 1)
        );
        assert_eq!(
            d[2].Flags,
            CM_RESOURCE_INTERRUPT_LATCHED | CM_RESOURCE_INTERRUPT_MESSAGE
        );
        // The first descriptor's union starts at byte 24 of the list
        // (Count 4, InterfaceType 4, BusNumber 4, Version/Revision 4,
        // Count 4, then Type/Share/Flags 4).
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(&bytes[24..28], &0xC040u32.to_le_bytes());
        assert_eq!(bytes.len(), 20 + 3 * 20);
    }

    #[test]
    fn interrupt_descriptors() {
        let raw = CM_PARTIAL_RESOURCE_DESCRIPTOR::message_raw(1, 1);
        assert_eq!(raw.Vector(), CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN);
        assert_eq!((raw.MessageCount(), raw.Group()), (1, 1));
        let line = CM_PARTIAL_RESOURCE_DESCRIPTOR::interrupt_line(10, 10, 1 << 40);
        assert_eq!(line.ShareDisposition, CmResourceShareShared);
        assert_eq!(line.Flags, CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE);
        assert_eq!((line.Level(), line.Group(), line.Vector()), (10, 0, 10));
        assert_eq!(line.Affinity(), 1 << 40);
        let empty = [0u32; 1];
        // SAFETY: a Count of zero is a complete (empty) list.
        assert!(unsafe { partial_descriptors(empty.as_ptr().cast()) }.is_empty());
    }
}
