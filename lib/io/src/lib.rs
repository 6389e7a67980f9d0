//! The I/O manager's policy (*Windows Internals*, Part 1, ch. 6, "I/O
//! system"), kept free of the hardware and tested on the host. ntoskrnl's
//! `IofCallDriver`, `IofCompleteRequest` and `IoCheckShareAccess` run this
//! code on the real structures:
//!
//! - `irp`: moving an IRP down the stack (`IoCallDriver`) and back up
//!   (the completion walk: completion routines per stack location,
//!   `STATUS_MORE_PROCESSING_REQUIRED`, `PendingReturned` propagation);
//! - `share`: the share-access rules of `IoCheckShareAccess`,
//!   `IoSetShareAccess`, `IoUpdateShareAccess`, `IoRemoveShareAccess`;
//! - `queue`: the FIFO of an I/O completion object;
//! - `devqueue`: device queues (`KDEVICE_QUEUE`) behind `IoStartPacket`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod csq;
pub mod devqueue;
pub mod irp;
pub mod queue;
pub mod remlock;
pub mod share;

#[cfg(test)]
mod tests;
