//! Resource lists as drivers receive them in `IRP_MN_START_DEVICE`
//! (`Parameters.StartDevice.AllocatedResources` and
//! `AllocatedResourcesTranslated`): `CM_RESOURCE_LIST` with one
//! `CM_FULL_RESOURCE_DESCRIPTOR` for the PCI bus, built from the BARs
//! firmware assigned and the interrupt the PnP manager assigned.
//!
//! Layouts (wdm.h, x64, declared under 4-byte packing): a
//! `CM_PARTIAL_RESOURCE_DESCRIPTOR` is 20 bytes (Type, ShareDisposition,
//! Flags, a 16-byte union at offset 4), `CM_PARTIAL_RESOURCE_LIST` 8 bytes
//! of header (Version, Revision, Count) before its descriptors,
//! `CM_FULL_RESOURCE_DESCRIPTOR` 8 more (InterfaceType, BusNumber), and
//! `CM_RESOURCE_LIST` a 4-byte Count in front: so the first partial
//! descriptor of a one-list resource list is at offset 20.

use alloc::vec::Vec;

pub const CM_RESOURCE_TYPE_NULL: u8 = 0;
pub const CM_RESOURCE_TYPE_PORT: u8 = 1;
pub const CM_RESOURCE_TYPE_INTERRUPT: u8 = 2;
pub const CM_RESOURCE_TYPE_MEMORY: u8 = 3;

pub const CM_RESOURCE_SHARE_DEVICE_EXCLUSIVE: u8 = 1;
pub const CM_RESOURCE_SHARE_SHARED: u8 = 3;

pub const CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE: u16 = 0;
pub const CM_RESOURCE_INTERRUPT_LATCHED: u16 = 1;
pub const CM_RESOURCE_INTERRUPT_MESSAGE: u16 = 2;
/// `Vector` of a raw message-signaled interrupt descriptor.
pub const CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN: u32 = u32::MAX - 1;

pub const CM_RESOURCE_MEMORY_READ_WRITE: u16 = 0;
pub const CM_RESOURCE_MEMORY_PREFETCHABLE: u16 = 4;
pub const CM_RESOURCE_PORT_IO: u16 = 1;

/// `INTERFACE_TYPE` `PCIBus`.
pub const PCI_BUS: u32 = 5;

/// `CM_PARTIAL_RESOURCE_DESCRIPTOR` (20 bytes, 4-byte aligned). The union
/// is kept as four dwords; the constructors fill it as each member lays
/// it out.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CmPartialResourceDescriptor {
    pub type_: u8,
    pub share_disposition: u8,
    pub flags: u16,
    pub u: [u32; 4],
}

const _: () = assert!(core::mem::size_of::<CmPartialResourceDescriptor>() == 20);

impl CmPartialResourceDescriptor {
    /// `u.Memory` / `u.Port`: Start (PHYSICAL_ADDRESS), Length (ULONG).
    fn range(type_: u8, flags: u16, start: u64, length: u32) -> Self {
        CmPartialResourceDescriptor {
            type_,
            share_disposition: CM_RESOURCE_SHARE_DEVICE_EXCLUSIVE,
            flags,
            u: [start as u32, (start >> 32) as u32, length, 0],
        }
    }

    pub fn memory(start: u64, length: u32, prefetchable: bool) -> Self {
        let flags = if prefetchable {
            CM_RESOURCE_MEMORY_PREFETCHABLE
        } else {
            CM_RESOURCE_MEMORY_READ_WRITE
        };
        Self::range(CM_RESOURCE_TYPE_MEMORY, flags, start, length)
    }

    pub fn port(start: u64, length: u32) -> Self {
        Self::range(CM_RESOURCE_TYPE_PORT, CM_RESOURCE_PORT_IO, start, length)
    }

    /// `u.Interrupt` (Level and Group as USHORTs, Vector, Affinity) for a
    /// line-based interrupt: raw Level = Vector = the GSI, translated
    /// Level = IRQL and Vector = the IDT vector.
    pub fn interrupt_line(level: u16, vector: u32, affinity: u64) -> Self {
        CmPartialResourceDescriptor {
            type_: CM_RESOURCE_TYPE_INTERRUPT,
            share_disposition: CM_RESOURCE_SHARE_SHARED,
            flags: CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE,
            u: [
                level as u32,
                vector,
                affinity as u32,
                (affinity >> 32) as u32,
            ],
        }
    }

    /// `u.MessageInterrupt.Raw` (Group, MessageCount, Vector =
    /// `CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN`, Affinity).
    pub fn message_raw(message_count: u16, affinity: u64) -> Self {
        CmPartialResourceDescriptor {
            type_: CM_RESOURCE_TYPE_INTERRUPT,
            share_disposition: CM_RESOURCE_SHARE_DEVICE_EXCLUSIVE,
            flags: CM_RESOURCE_INTERRUPT_LATCHED | CM_RESOURCE_INTERRUPT_MESSAGE,
            u: [
                (message_count as u32) << 16,
                CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN,
                affinity as u32,
                (affinity >> 32) as u32,
            ],
        }
    }

    /// `u.MessageInterrupt.Translated` (Level, Group, Vector, Affinity).
    pub fn message_translated(irql: u8, vector: u32, affinity: u64) -> Self {
        CmPartialResourceDescriptor {
            type_: CM_RESOURCE_TYPE_INTERRUPT,
            share_disposition: CM_RESOURCE_SHARE_DEVICE_EXCLUSIVE,
            flags: CM_RESOURCE_INTERRUPT_LATCHED | CM_RESOURCE_INTERRUPT_MESSAGE,
            u: [
                irql as u32,
                vector,
                affinity as u32,
                (affinity >> 32) as u32,
            ],
        }
    }

    /// `u.Memory.Start` / `u.Port.Start`.
    pub fn start(&self) -> u64 {
        self.u[0] as u64 | (self.u[1] as u64) << 32
    }
    /// `u.Memory.Length` / `u.Port.Length`.
    pub fn length(&self) -> u32 {
        self.u[2]
    }
    /// `u.Interrupt.Level` (the low USHORT of the first dword).
    pub fn level(&self) -> u16 {
        self.u[0] as u16
    }
    /// `u.Interrupt.Vector`.
    pub fn vector(&self) -> u32 {
        self.u[1]
    }
    /// `u.Interrupt.Affinity`.
    pub fn affinity(&self) -> u64 {
        self.u[2] as u64 | (self.u[3] as u64) << 32
    }
}

/// A `CM_RESOURCE_LIST` with one full descriptor, in its binary form
/// (dwords, so the 4-byte-packed structure is aligned for drivers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmResourceList(pub Vec<u32>);

impl CmResourceList {
    /// Builds the list for `bus_number` of `interface_type`.
    pub fn new(
        interface_type: u32,
        bus_number: u32,
        descs: &[CmPartialResourceDescriptor],
    ) -> Self {
        let mut v = Vec::with_capacity(5 + descs.len() * 5);
        v.push(1); // Count
        v.push(interface_type);
        v.push(bus_number);
        v.push(1); // Version 1, Revision 0 (USHORTs)
        v.push(descs.len() as u32);
        for d in descs {
            v.push(d.type_ as u32 | (d.share_disposition as u32) << 8 | (d.flags as u32) << 16);
            v.extend_from_slice(&d.u);
        }
        CmResourceList(v)
    }

    /// Size in bytes (what `IoGetDeviceProperty`-style copies need).
    pub fn byte_len(&self) -> usize {
        self.0.len() * 4
    }

    /// Pointer to the `CM_RESOURCE_LIST` for a driver.
    pub fn as_ptr(&self) -> *const u32 {
        self.0.as_ptr()
    }

    /// The partial descriptors of the first full descriptor.
    pub fn descriptors(&self) -> Vec<CmPartialResourceDescriptor> {
        let v = &self.0;
        if v.len() < 5 || v[0] == 0 {
            return Vec::new();
        }
        let n = v[4] as usize;
        v[5..]
            .chunks_exact(5)
            .take(n)
            .map(|c| CmPartialResourceDescriptor {
                type_: c[0] as u8,
                share_disposition: (c[0] >> 8) as u8,
                flags: (c[0] >> 16) as u16,
                u: [c[1], c[2], c[3], c[4]],
            })
            .collect()
    }
}
