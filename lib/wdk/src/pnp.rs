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

// ---- Requirements, capabilities, bus information (wdm.h, x64) ----

/// `IO_RESOURCE_DESCRIPTOR.Option`: the preferred choice.
pub const IO_RESOURCE_PREFERRED: u8 = 0x1;
/// `IO_RESOURCE_DESCRIPTOR.Option`: the default choice.
pub const IO_RESOURCE_DEFAULT: u8 = 0x2;
/// `IO_RESOURCE_DESCRIPTOR.Option`: an alternative to the descriptor
/// before it (the arbiter takes one of the group).
pub const IO_RESOURCE_ALTERNATIVE: u8 = 0x8;

/// `CM_RESOURCE_PORT_16_BIT_DECODE`.
pub const CM_RESOURCE_PORT_16_BIT_DECODE: u16 = 0x4;
/// `CM_RESOURCE_PORT_POSITIVE_DECODE`.
pub const CM_RESOURCE_PORT_POSITIVE_DECODE: u16 = 0x20;
/// `CM_RESOURCE_MEMORY_24`.
pub const CM_RESOURCE_MEMORY_24: u16 = 0x10;

/// `u.Port` / `u.Memory` of an `IO_RESOURCE_DESCRIPTOR`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IO_RESOURCE_RANGE {
    pub Length: u32,
    pub Alignment: u32,
    pub MinimumAddress: i64,
    pub MaximumAddress: i64,
}

/// `u.Interrupt` of an `IO_RESOURCE_DESCRIPTOR` (processor-group form).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IO_RESOURCE_INTERRUPT {
    pub MinimumVector: u32,
    pub MaximumVector: u32,
    /// `IRQ_DEVICE_POLICY` (as a USHORT with processor groups).
    pub AffinityPolicy: u16,
    pub Group: u16,
    /// `IRQ_PRIORITY`.
    pub PriorityPolicy: u32,
    /// `KAFFINITY`.
    pub TargetedProcessors: u64,
}

/// `u.BusNumber` of an `IO_RESOURCE_DESCRIPTOR`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IO_RESOURCE_BUS_NUMBER {
    pub Length: u32,
    pub MinBusNumber: u32,
    pub MaxBusNumber: u32,
    pub Reserved: u32,
}

/// The `u` union of an `IO_RESOURCE_DESCRIPTOR` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub union IO_RESOURCE_DESCRIPTOR_u {
    pub Port: IO_RESOURCE_RANGE,
    pub Memory: IO_RESOURCE_RANGE,
    pub Interrupt: IO_RESOURCE_INTERRUPT,
    pub BusNumber: IO_RESOURCE_BUS_NUMBER,
    pub Generic: IO_RESOURCE_RANGE,
}

/// `IO_RESOURCE_DESCRIPTOR` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_RESOURCE_DESCRIPTOR {
    pub Option: u8,
    pub Type: u8,
    pub ShareDisposition: u8,
    pub Spare1: u8,
    pub Flags: u16,
    pub Spare2: u16,
    pub u: IO_RESOURCE_DESCRIPTOR_u,
}

/// `IO_RESOURCE_LIST` (its descriptors follow the header; the declared
/// array has one).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_RESOURCE_LIST {
    pub Version: u16,
    pub Revision: u16,
    pub Count: u32,
    pub Descriptors: [IO_RESOURCE_DESCRIPTOR; 1],
}

/// `IO_RESOURCE_REQUIREMENTS_LIST` (`AlternativeLists` lists follow one
/// another from `List`; `ListSize` is the byte size of the whole).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_RESOURCE_REQUIREMENTS_LIST {
    pub ListSize: u32,
    /// `INTERFACE_TYPE`.
    pub InterfaceType: i32,
    pub BusNumber: u32,
    pub SlotNumber: u32,
    pub Reserved: [u32; 3],
    pub AlternativeLists: u32,
    pub List: [IO_RESOURCE_LIST; 1],
}

/// `DEVICE_POWER_STATE` values.
pub const PowerDeviceUnspecified: u32 = 0;
pub const PowerDeviceD0: u32 = 1;
pub const PowerDeviceD1: u32 = 2;
pub const PowerDeviceD2: u32 = 3;
pub const PowerDeviceD3: u32 = 4;
/// `SYSTEM_POWER_STATE` values.
pub const PowerSystemUnspecified: u32 = 0;
pub const PowerSystemWorking: u32 = 1;
pub const PowerSystemSleeping1: u32 = 2;
pub const PowerSystemSleeping2: u32 = 3;
pub const PowerSystemSleeping3: u32 = 4;
pub const PowerSystemHibernate: u32 = 5;
pub const PowerSystemShutdown: u32 = 6;
/// `POWER_SYSTEM_MAXIMUM`.
pub const POWER_SYSTEM_MAXIMUM: usize = 7;

/// `DEVICE_CAPABILITIES` bit-field bits (the ULONG at offset 4).
pub mod caps {
    pub const DeviceD1: u32 = 1 << 0;
    pub const DeviceD2: u32 = 1 << 1;
    pub const LockSupported: u32 = 1 << 2;
    pub const EjectSupported: u32 = 1 << 3;
    pub const Removable: u32 = 1 << 4;
    pub const DockDevice: u32 = 1 << 5;
    pub const UniqueID: u32 = 1 << 6;
    pub const SilentInstall: u32 = 1 << 7;
    pub const RawDeviceOK: u32 = 1 << 8;
    pub const SurpriseRemovalOK: u32 = 1 << 9;
    pub const WakeFromD0: u32 = 1 << 10;
    pub const WakeFromD1: u32 = 1 << 11;
    pub const WakeFromD2: u32 = 1 << 12;
    pub const WakeFromD3: u32 = 1 << 13;
    pub const HardwareDisabled: u32 = 1 << 14;
    pub const NonDynamic: u32 = 1 << 15;
    pub const WarmEjectSupported: u32 = 1 << 16;
    pub const NoDisplayInUI: u32 = 1 << 17;
}

/// `DEVICE_CAPABILITIES` (64 bytes, Version 1). The bit fields after
/// `Version` are one ULONG (`Bits`, see [`caps`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DEVICE_CAPABILITIES {
    pub Size: u16,
    pub Version: u16,
    pub Bits: u32,
    /// The device's address on its bus (PCI: device << 16 | function).
    pub Address: u32,
    /// A number for the user interface (0xFFFFFFFF when unknown).
    pub UINumber: u32,
    /// `DEVICE_POWER_STATE` per `SYSTEM_POWER_STATE`.
    pub DeviceState: [u32; POWER_SYSTEM_MAXIMUM],
    pub SystemWake: u32,
    pub DeviceWake: u32,
    pub D1Latency: u32,
    pub D2Latency: u32,
    pub D3Latency: u32,
}

/// `PNP_BUS_INFORMATION`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PNP_BUS_INFORMATION {
    pub BusTypeGuid: crate::disk::GUID,
    /// `INTERFACE_TYPE`.
    pub LegacyBusType: i32,
    pub BusNumber: u32,
}

/// `GUID_BUS_TYPE_PCI` {c8ebdfb0-b510-11d0-80e5-00a0c92542e3} (wdmguid.h).
pub const GUID_BUS_TYPE_PCI: crate::disk::GUID = crate::disk::GUID {
    Data1: 0xc8eb_dfb0,
    Data2: 0xb510,
    Data3: 0x11d0,
    Data4: [0x80, 0xe5, 0x00, 0xa0, 0xc9, 0x25, 0x42, 0xe3],
};

/// `DEVICE_TEXT_TYPE` values (`IRP_MN_QUERY_DEVICE_TEXT`).
pub const DeviceTextDescription: u32 = 0;
pub const DeviceTextLocationInformation: u32 = 1;

/// `BUS_DATA_TYPE` `PCIConfiguration` (`HalGetBusDataByOffset`).
pub const PCIConfiguration: u32 = 4;

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<IO_RESOURCE_DESCRIPTOR>() == 0x20);
    assert!(offset_of!(IO_RESOURCE_DESCRIPTOR, Flags) == 4);
    assert!(offset_of!(IO_RESOURCE_DESCRIPTOR, u) == 8);
    assert!(offset_of!(IO_RESOURCE_RANGE, MinimumAddress) == 8);
    assert!(offset_of!(IO_RESOURCE_RANGE, MaximumAddress) == 16);
    assert!(offset_of!(IO_RESOURCE_INTERRUPT, PriorityPolicy) == 12);
    assert!(offset_of!(IO_RESOURCE_INTERRUPT, TargetedProcessors) == 16);
    assert!(offset_of!(IO_RESOURCE_BUS_NUMBER, MaxBusNumber) == 8);
    assert!(size_of::<IO_RESOURCE_LIST>() == 0x28);
    assert!(offset_of!(IO_RESOURCE_LIST, Descriptors) == 8);
    assert!(size_of::<IO_RESOURCE_REQUIREMENTS_LIST>() == 0x48);
    assert!(offset_of!(IO_RESOURCE_REQUIREMENTS_LIST, SlotNumber) == 0xc);
    assert!(offset_of!(IO_RESOURCE_REQUIREMENTS_LIST, Reserved) == 0x10);
    assert!(offset_of!(IO_RESOURCE_REQUIREMENTS_LIST, AlternativeLists) == 0x1c);
    assert!(offset_of!(IO_RESOURCE_REQUIREMENTS_LIST, List) == 0x20);
    assert!(size_of::<DEVICE_CAPABILITIES>() == 0x40);
    assert!(offset_of!(DEVICE_CAPABILITIES, Address) == 0x8);
    assert!(offset_of!(DEVICE_CAPABILITIES, UINumber) == 0xc);
    assert!(offset_of!(DEVICE_CAPABILITIES, DeviceState) == 0x10);
    assert!(offset_of!(DEVICE_CAPABILITIES, SystemWake) == 0x2c);
    assert!(offset_of!(DEVICE_CAPABILITIES, DeviceWake) == 0x30);
    assert!(offset_of!(DEVICE_CAPABILITIES, D3Latency) == 0x3c);
    assert!(size_of::<PNP_BUS_INFORMATION>() == 0x18);
    assert!(offset_of!(PNP_BUS_INFORMATION, LegacyBusType) == 0x10);
    assert!(offset_of!(PNP_BUS_INFORMATION, BusNumber) == 0x14);
};
