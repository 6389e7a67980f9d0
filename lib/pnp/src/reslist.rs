//! The binary forms (wdm.h, x64) of `IO_RESOURCE_REQUIREMENTS_LIST` and
//! `CM_RESOURCE_LIST`, read with every length and count checked against
//! the buffer (a bus driver's answer is input like any other: a damaged
//! list is [`Malformed`], never a read past its end), and written from
//! their decoded forms. Offsets come from lib/wdk's structures, whose
//! layouts are asserted there.

use alloc::vec::Vec;
use core::mem::{offset_of, size_of};
use wdk::pnp::{
    CM_PARTIAL_RESOURCE_DESCRIPTOR, IO_RESOURCE_DESCRIPTOR, IO_RESOURCE_LIST,
    IO_RESOURCE_REQUIREMENTS_LIST,
};

/// A list that does not fit its buffer, or whose sizes and counts disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Largest list accepted (a PCI function needs a few hundred bytes).
pub const MAX_LIST_BYTES: usize = 64 * 1024;

/// One `IO_RESOURCE_DESCRIPTOR`, decoded. For ports and memory the range
/// fields are `u.Port`/`u.Memory`; for interrupts `length` is 1,
/// `alignment` 1 and `min`/`max` are `MinimumVector`/`MaximumVector`; for
/// bus numbers `min`/`max` are `MinBusNumber`/`MaxBusNumber`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoDescriptor {
    /// `IO_RESOURCE_PREFERRED`, `IO_RESOURCE_ALTERNATIVE`, ...
    pub option: u8,
    /// `CmResourceType*`.
    pub ty: u8,
    /// `CmResourceShare*`.
    pub share: u8,
    pub flags: u16,
    pub length: u64,
    pub alignment: u64,
    pub min: u64,
    pub max: u64,
}

impl IoDescriptor {
    /// Whether this descriptor is an alternative to the one before it.
    pub fn is_alternative(&self) -> bool {
        self.option & wdk::pnp::IO_RESOURCE_ALTERNATIVE != 0
    }

    /// Whether it asks for a message-signaled interrupt.
    pub fn is_message_interrupt(&self) -> bool {
        self.ty == wdk::pnp::CmResourceTypeInterrupt
            && self.flags & wdk::pnp::CM_RESOURCE_INTERRUPT_MESSAGE != 0
    }
}

/// An `IO_RESOURCE_REQUIREMENTS_LIST`, decoded: its alternative lists, in
/// order of preference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirements {
    pub interface_type: i32,
    pub bus_number: u32,
    pub slot_number: u32,
    pub lists: Vec<Vec<IoDescriptor>>,
}

const LIST_HDR: usize = offset_of!(IO_RESOURCE_LIST, Descriptors);
const REQ_HDR: usize = offset_of!(IO_RESOURCE_REQUIREMENTS_LIST, List);
const IO_DESC: usize = size_of::<IO_RESOURCE_DESCRIPTOR>();

fn rd_u16(b: &[u8], at: usize) -> Result<u16, Malformed> {
    let s = b.get(at..at + 2).ok_or(Malformed)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}
fn rd_u32(b: &[u8], at: usize) -> Result<u32, Malformed> {
    let s = b.get(at..at + 4).ok_or(Malformed)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn rd_u64(b: &[u8], at: usize) -> Result<u64, Malformed> {
    Ok(rd_u32(b, at)? as u64 | (rd_u32(b, at + 4)? as u64) << 32)
}

/// Reads an `IO_RESOURCE_REQUIREMENTS_LIST`: `ListSize` must lie within
/// `bytes` and hold every alternative list and descriptor.
pub fn parse_requirements(bytes: &[u8]) -> Result<Requirements, Malformed> {
    let size = rd_u32(bytes, 0)? as usize;
    if size < REQ_HDR || size > bytes.len() || size > MAX_LIST_BYTES {
        return Err(Malformed);
    }
    let b = &bytes[..size];
    let count = rd_u32(
        b,
        offset_of!(IO_RESOURCE_REQUIREMENTS_LIST, AlternativeLists),
    )? as usize;
    let mut lists = Vec::new();
    let mut at = REQ_HDR;
    for _ in 0..count {
        let n = rd_u32(b, at + offset_of!(IO_RESOURCE_LIST, Count))? as usize;
        let end = n
            .checked_mul(IO_DESC)
            .and_then(|x| x.checked_add(at + LIST_HDR))
            .ok_or(Malformed)?;
        if end > b.len() {
            return Err(Malformed);
        }
        let mut list = Vec::with_capacity(n);
        for i in 0..n {
            list.push(parse_io_descriptor(b, at + LIST_HDR + i * IO_DESC)?);
        }
        lists.push(list);
        at = end;
    }
    Ok(Requirements {
        interface_type: rd_u32(b, offset_of!(IO_RESOURCE_REQUIREMENTS_LIST, InterfaceType))? as i32,
        bus_number: rd_u32(b, offset_of!(IO_RESOURCE_REQUIREMENTS_LIST, BusNumber))?,
        slot_number: rd_u32(b, offset_of!(IO_RESOURCE_REQUIREMENTS_LIST, SlotNumber))?,
        lists,
    })
}

fn parse_io_descriptor(b: &[u8], at: usize) -> Result<IoDescriptor, Malformed> {
    let u = at + offset_of!(IO_RESOURCE_DESCRIPTOR, u);
    let ty = *b.get(at + 1).ok_or(Malformed)?;
    let mut d = IoDescriptor {
        option: *b.get(at).ok_or(Malformed)?,
        ty,
        share: *b.get(at + 2).ok_or(Malformed)?,
        flags: rd_u16(b, at + offset_of!(IO_RESOURCE_DESCRIPTOR, Flags))?,
        length: 0,
        alignment: 0,
        min: 0,
        max: 0,
    };
    match ty {
        wdk::pnp::CmResourceTypeInterrupt => {
            d.length = 1;
            d.alignment = 1;
            d.min = rd_u32(b, u)? as u64;
            d.max = rd_u32(b, u + 4)? as u64;
        }
        wdk::pnp::CmResourceTypeBusNumber => {
            d.length = rd_u32(b, u)? as u64;
            d.alignment = 1;
            d.min = rd_u32(b, u + 4)? as u64;
            d.max = rd_u32(b, u + 8)? as u64;
        }
        _ => {
            d.length = rd_u32(b, u)? as u64;
            d.alignment = rd_u32(b, u + 4)? as u64;
            d.min = rd_u64(b, u + 8)?;
            d.max = rd_u64(b, u + 16)?;
        }
    }
    Ok(d)
}

/// Writes `r` as an `IO_RESOURCE_REQUIREMENTS_LIST` (Version 1,
/// Revision 1 lists, as pci.sys writes them).
pub fn encode_requirements(r: &Requirements) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0u32.to_le_bytes()); // ListSize, below
    v.extend_from_slice(&r.interface_type.to_le_bytes());
    v.extend_from_slice(&r.bus_number.to_le_bytes());
    v.extend_from_slice(&r.slot_number.to_le_bytes());
    v.extend_from_slice(&[0; 12]);
    v.extend_from_slice(&(r.lists.len() as u32).to_le_bytes());
    for list in &r.lists {
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for d in list {
            v.extend_from_slice(&[d.option, d.ty, d.share, 0]);
            v.extend_from_slice(&d.flags.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            match d.ty {
                wdk::pnp::CmResourceTypeInterrupt => {
                    v.extend_from_slice(&(d.min as u32).to_le_bytes());
                    v.extend_from_slice(&(d.max as u32).to_le_bytes());
                    v.extend_from_slice(&[0; 16]);
                }
                wdk::pnp::CmResourceTypeBusNumber => {
                    v.extend_from_slice(&(d.length as u32).to_le_bytes());
                    v.extend_from_slice(&(d.min as u32).to_le_bytes());
                    v.extend_from_slice(&(d.max as u32).to_le_bytes());
                    v.extend_from_slice(&[0; 12]);
                }
                _ => {
                    v.extend_from_slice(&(d.length as u32).to_le_bytes());
                    v.extend_from_slice(&(d.alignment as u32).to_le_bytes());
                    v.extend_from_slice(&d.min.to_le_bytes());
                    v.extend_from_slice(&d.max.to_le_bytes());
                }
            }
        }
    }
    let n = v.len() as u32;
    v[..4].copy_from_slice(&n.to_le_bytes());
    v
}

/// One `CM_FULL_RESOURCE_DESCRIPTOR`, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmFull {
    pub interface_type: i32,
    pub bus_number: u32,
    pub descriptors: Vec<CM_PARTIAL_RESOURCE_DESCRIPTOR>,
}

const CM_DESC: usize = size_of::<CM_PARTIAL_RESOURCE_DESCRIPTOR>();
/// Bytes of a full descriptor before its partial descriptors
/// (InterfaceType, BusNumber, Version, Revision, Count).
const CM_FULL_HDR: usize = 16;

/// How many bytes the `CM_RESOURCE_LIST` at the start of `bytes` occupies.
pub fn cm_list_len(bytes: &[u8]) -> Result<usize, Malformed> {
    let count = rd_u32(bytes, 0)? as usize;
    let mut at = 4usize;
    for _ in 0..count {
        let n = rd_u32(bytes, at + 12)? as usize;
        at = n
            .checked_mul(CM_DESC)
            .and_then(|x| x.checked_add(at + CM_FULL_HDR))
            .ok_or(Malformed)?;
        if at > bytes.len() || at > MAX_LIST_BYTES {
            return Err(Malformed);
        }
    }
    Ok(at)
}

/// Reads a `CM_RESOURCE_LIST`.
pub fn parse_cm_list(bytes: &[u8]) -> Result<Vec<CmFull>, Malformed> {
    cm_list_len(bytes)?;
    let count = rd_u32(bytes, 0)? as usize;
    let mut out = Vec::with_capacity(count);
    let mut at = 4;
    for _ in 0..count {
        let n = rd_u32(bytes, at + 12)? as usize;
        let mut descriptors = Vec::with_capacity(n);
        for i in 0..n {
            let d = at + CM_FULL_HDR + i * CM_DESC;
            descriptors.push(CM_PARTIAL_RESOURCE_DESCRIPTOR {
                Type: bytes[d],
                ShareDisposition: bytes[d + 1],
                Flags: rd_u16(bytes, d + 2)?,
                u: [
                    rd_u32(bytes, d + 4)?,
                    rd_u32(bytes, d + 8)?,
                    rd_u32(bytes, d + 12)?,
                    rd_u32(bytes, d + 16)?,
                ],
            });
        }
        out.push(CmFull {
            interface_type: rd_u32(bytes, at)? as i32,
            bus_number: rd_u32(bytes, at + 4)?,
            descriptors,
        });
        at += CM_FULL_HDR + n * CM_DESC;
    }
    Ok(out)
}

/// Writes a `CM_RESOURCE_LIST` (Version 1, Revision 1 partial lists).
pub fn encode_cm_list(lists: &[CmFull]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(lists.len() as u32).to_le_bytes());
    for l in lists {
        v.extend_from_slice(&l.interface_type.to_le_bytes());
        v.extend_from_slice(&l.bus_number.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&(l.descriptors.len() as u32).to_le_bytes());
        for d in &l.descriptors {
            v.extend_from_slice(&[d.Type, d.ShareDisposition]);
            v.extend_from_slice(&d.Flags.to_le_bytes());
            for w in d.u {
                v.extend_from_slice(&w.to_le_bytes());
            }
        }
    }
    v
}
