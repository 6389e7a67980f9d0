//! Plug and Play resource arbitration (*Windows Internals* 7th ed., Part 1,
//! ch. 6, "Resource arbitration"), free of hardware so it is tested on the
//! host. The kernel's PnP manager (`ntos/src/io/pnp`) runs it; bus drivers
//! (pci.sys) use the same codecs to write the lists they answer with.
//!
//! - [`reslist`]: `IO_RESOURCE_REQUIREMENTS_LIST` (what a bus driver
//!   answers to `IRP_MN_QUERY_RESOURCE_REQUIREMENTS`) and `CM_RESOURCE_LIST`
//!   (boot configurations and assignments) to and from their wdm.h binary
//!   forms, bounds-checked;
//! - [`arbiter`]: one range arbiter per resource type (memory, I/O port,
//!   interrupt line, bus number) and [`arbiter::assign`], which picks one
//!   alternative list of a device and one descriptor of each group in it,
//!   keeping the boot configuration when it is free, else searching the
//!   arbiter's windows, and undoing everything if the device cannot be
//!   satisfied;
//! - [`removal`]: which device nodes get which removal IRP, in which
//!   order (orderly removal with its veto and cancel, surprise removal and
//!   the removes that wait for open handles to close).
#![no_std]

extern crate alloc;

pub mod arbiter;
pub mod removal;
pub mod reslist;

#[cfg(test)]
mod tests;

/// The resource types the arbiters know (`CmResourceType*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Port,
    Interrupt,
    Memory,
    BusNumber,
}

impl ResourceKind {
    /// From a `CmResourceType*` value (`None` for types ntrs does not
    /// arbitrate: DMA, device-specific, large memory, private).
    pub fn from_cm_type(t: u8) -> Option<Self> {
        match t {
            wdk::pnp::CmResourceTypePort => Some(ResourceKind::Port),
            wdk::pnp::CmResourceTypeInterrupt => Some(ResourceKind::Interrupt),
            wdk::pnp::CmResourceTypeMemory => Some(ResourceKind::Memory),
            wdk::pnp::CmResourceTypeBusNumber => Some(ResourceKind::BusNumber),
            _ => None,
        }
    }

    /// The `CmResourceType*` value.
    pub fn cm_type(self) -> u8 {
        match self {
            ResourceKind::Port => wdk::pnp::CmResourceTypePort,
            ResourceKind::Interrupt => wdk::pnp::CmResourceTypeInterrupt,
            ResourceKind::Memory => wdk::pnp::CmResourceTypeMemory,
            ResourceKind::BusNumber => wdk::pnp::CmResourceTypeBusNumber,
        }
    }

    /// WinDbg's name for the arbiter of this type (`!arbiter`).
    pub fn arbiter_name(self) -> &'static str {
        match self {
            ResourceKind::Port => "Port",
            ResourceKind::Interrupt => "Interrupt",
            ResourceKind::Memory => "Memory",
            ResourceKind::BusNumber => "BusNumber",
        }
    }
}
