//! Resource lists as drivers receive them in `IRP_MN_START_DEVICE`
//! (`Parameters.StartDevice.AllocatedResources` and
//! `AllocatedResourcesTranslated`): `CM_RESOURCE_LIST` with one
//! `CM_FULL_RESOURCE_DESCRIPTOR` for the PCI bus, built from the BARs
//! firmware assigned and the interrupt the PnP manager assigned.
//!
//! The structures are lib/wdk's (`wdk::pnp`); this builds the list in a
//! dword buffer, so the 4-byte-packed layout is aligned for drivers.
//! Layouts (wdm.h, x64, declared under 4-byte packing): a
//! `CM_PARTIAL_RESOURCE_DESCRIPTOR` is 20 bytes (Type, ShareDisposition,
//! Flags, a 16-byte union at offset 4), `CM_PARTIAL_RESOURCE_LIST` 8 bytes
//! of header (Version, Revision, Count) before its descriptors,
//! `CM_FULL_RESOURCE_DESCRIPTOR` 8 more (InterfaceType, BusNumber), and
//! `CM_RESOURCE_LIST` a 4-byte Count in front: so the first partial
//! descriptor of a one-list resource list is at offset 20.

use alloc::vec::Vec;

pub use wdk::pnp::CM_PARTIAL_RESOURCE_DESCRIPTOR as CmPartialResourceDescriptor;
pub use wdk::pnp::{
    CmResourceShareDeviceExclusive as CM_RESOURCE_SHARE_DEVICE_EXCLUSIVE,
    CmResourceShareShared as CM_RESOURCE_SHARE_SHARED,
    CmResourceTypeInterrupt as CM_RESOURCE_TYPE_INTERRUPT,
    CmResourceTypeMemory as CM_RESOURCE_TYPE_MEMORY, CmResourceTypeNull as CM_RESOURCE_TYPE_NULL,
    CmResourceTypePort as CM_RESOURCE_TYPE_PORT, CM_RESOURCE_INTERRUPT_LATCHED,
    CM_RESOURCE_INTERRUPT_MESSAGE, CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN,
};

/// `INTERFACE_TYPE` `PCIBus`.
pub const PCI_BUS: u32 = wdk::pnp::PCIBus as u32;

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
            v.push(d.Type as u32 | (d.ShareDisposition as u32) << 8 | (d.Flags as u32) << 16);
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
                Type: c[0] as u8,
                ShareDisposition: (c[0] >> 8) as u8,
                Flags: (c[0] >> 16) as u16,
                u: [c[1], c[2], c[3], c[4]],
            })
            .collect()
    }
}

/// A `CmResourceTypeBusNumber` descriptor (`u.BusNumber`: Start, Length).
pub fn bus_number(start: u32, length: u32) -> CmPartialResourceDescriptor {
    CmPartialResourceDescriptor {
        Type: wdk::pnp::CmResourceTypeBusNumber,
        ShareDisposition: CM_RESOURCE_SHARE_SHARED,
        Flags: 0,
        u: [start, length, 0, 0],
    }
}
