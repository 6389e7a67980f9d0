//! Index structures: `$INDEX_ROOT` values, INDX blocks of
//! `$INDEX_ALLOCATION`, and their entries. `$I30` (file names) entries carry
//! a file reference and a `$FILE_NAME` key; view indexes (`$SII`, `$SDH`,
//! `$O`, `$Q`, `$R`) carry a key and a data part.

use crate::error::{Error, Result};
use crate::record::{fixup, unfixup};
use crate::util::*;
use alloc::vec::Vec;

/// Entry flag: has a child node (VCN in the last 8 bytes).
pub const INDEX_ENTRY_NODE: u16 = 1;
/// Entry flag: the end entry of a node (no key).
pub const INDEX_ENTRY_END: u16 = 2;
/// Node header flag: the node has children.
pub const LARGE_INDEX: u8 = 1;

/// `COLLATION_BINARY`.
pub const COLLATION_BINARY: u32 = 0;
/// `COLLATION_FILE_NAME`.
pub const COLLATION_FILE_NAME: u32 = 1;
/// `COLLATION_NTOFS_ULONG`.
pub const COLLATION_NTOFS_ULONG: u32 = 0x10;
/// `COLLATION_NTOFS_SID`.
pub const COLLATION_NTOFS_SID: u32 = 0x11;
/// `COLLATION_NTOFS_SECURITY_HASH`.
pub const COLLATION_NTOFS_SECURITY_HASH: u32 = 0x12;
/// `COLLATION_NTOFS_ULONGS`.
pub const COLLATION_NTOFS_ULONGS: u32 = 0x13;

/// One index entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// `$I30`: the file reference of the entry's file. Views: unused (rebuilt).
    pub fref: u64,
    /// The key (`$FILE_NAME` value for `$I30`).
    pub key: Vec<u8>,
    /// View indexes: the data part.
    pub data: Vec<u8>,
    /// Child node VCN (entries in the child sort before this entry).
    pub child: Option<u64>,
    /// The end entry of its node (no key).
    pub last: bool,
}

impl IndexEntry {
    /// An end entry.
    pub fn end(child: Option<u64>) -> Self {
        IndexEntry {
            fref: 0,
            key: Vec::new(),
            data: Vec::new(),
            child,
            last: true,
        }
    }
    /// Bytes the entry takes.
    pub fn encoded_len(&self) -> usize {
        let base = if self.last {
            16
        } else {
            align8(16 + self.key.len() + self.data.len())
        };
        base + if self.child.is_some() { 8 } else { 0 }
    }
    fn encode(&self, view: bool, out: &mut Vec<u8>) {
        let s = out.len();
        let len = self.encoded_len();
        out.resize(s + len, 0);
        let b = &mut out[s..];
        if view {
            if !self.last {
                put16(b, 0, (16 + self.key.len()) as u16);
                put16(b, 2, self.data.len() as u16);
            }
        } else {
            put64(b, 0, self.fref);
        }
        put16(b, 8, len as u16);
        put16(b, 10, if self.last { 0 } else { self.key.len() as u16 });
        let mut flags = 0;
        if self.child.is_some() {
            flags |= INDEX_ENTRY_NODE;
        }
        if self.last {
            flags |= INDEX_ENTRY_END;
        }
        put16(b, 12, flags);
        if !self.last {
            b[16..16 + self.key.len()].copy_from_slice(&self.key);
            let d = 16 + self.key.len();
            b[d..d + self.data.len()].copy_from_slice(&self.data);
            // `$Secure:$SDH` entries (key: hash + id, data: the 20-byte
            // `$SDS` header) end in the 4 padding bytes "I\0I\0", as
            // Windows writes them; no other index has that shape.
            if view && self.key.len() == 8 && self.data.len() == 20 && b.len() >= d + 24 {
                b[d + 20..d + 24].copy_from_slice(b"I\0I\0");
            }
        }
        if let Some(c) = self.child {
            put64(b, len - 8, c);
        }
    }
}

/// Parses the entries of a node whose node header starts at `b[0]`.
/// Returns the entries (the end entry last) and the node flags.
pub fn parse_node(b: &[u8], view: bool) -> Result<(Vec<IndexEntry>, u8)> {
    let eo = u32_at(b, 0)? as usize;
    let il = u32_at(b, 4)? as usize;
    let flags = u8_at(b, 12)?;
    if il > b.len() || eo < 16 || eo > il {
        return Err(Error::Corrupt("index node header"));
    }
    let mut out = Vec::new();
    let mut o = eo;
    loop {
        if o + 16 > il {
            return Err(Error::Corrupt("index node without end entry"));
        }
        let len = u16_at(b, o + 8)? as usize;
        let kl = u16_at(b, o + 10)? as usize;
        let ef = u16_at(b, o + 12)?;
        if len < 16 || o + len > il || len & 7 != 0 {
            return Err(Error::Corrupt("index entry length"));
        }
        let e = &b[o..o + len];
        let last = ef & INDEX_ENTRY_END != 0;
        let child = if ef & INDEX_ENTRY_NODE != 0 {
            if len < 24 {
                return Err(Error::Corrupt("index entry child pointer"));
            }
            Some(u64_at(e, len - 8)?)
        } else {
            None
        };
        let key_end = if child.is_some() { len - 8 } else { len };
        let (key, data, fref) = if last {
            (Vec::new(), Vec::new(), 0)
        } else {
            if 16 + kl > key_end {
                return Err(Error::Corrupt("index key length"));
            }
            let key = e[16..16 + kl].to_vec();
            if view {
                let doff = u16_at(e, 0)? as usize;
                let dlen = u16_at(e, 2)? as usize;
                let data = if dlen == 0 {
                    Vec::new()
                } else {
                    if doff + dlen > key_end {
                        return Err(Error::Corrupt("index data out of entry"));
                    }
                    e[doff..doff + dlen].to_vec()
                };
                (key, data, 0)
            } else {
                (key, Vec::new(), u64_at(e, 0)?)
            }
        };
        out.push(IndexEntry {
            fref,
            key,
            data,
            child,
            last,
        });
        if last {
            break;
        }
        o += len;
        if out.len() > 65536 {
            return Err(Error::Corrupt("too many index entries"));
        }
    }
    Ok((out, flags))
}

/// Encodes entries after a node header (entries offset 16 from the header).
fn encode_entries(entries: &[IndexEntry], view: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        e.encode(view, &mut out);
    }
    out
}

/// Size of a node's entries.
pub fn entries_len(entries: &[IndexEntry]) -> usize {
    entries.iter().map(|e| e.encoded_len()).sum()
}

/// The fixed part of an `$INDEX_ROOT` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootHeader {
    /// Indexed attribute type (0x30) or 0 for views.
    pub ty: u32,
    /// `COLLATION_*`.
    pub collation: u32,
    /// INDX block size in bytes.
    pub block_size: u32,
    /// Clusters (or 512-byte blocks when smaller than a cluster) per block.
    pub clusters_per_block: u8,
}

/// Parses an `$INDEX_ROOT` value.
pub fn parse_root(v: &[u8]) -> Result<(RootHeader, Vec<IndexEntry>, u8)> {
    let h = RootHeader {
        ty: u32_at(v, 0)?,
        collation: u32_at(v, 4)?,
        block_size: u32_at(v, 8)?,
        clusters_per_block: u8_at(v, 12)?,
    };
    let (e, f) = parse_node(
        v.get(16..).ok_or(Error::Corrupt("short index root"))?,
        h.ty == 0,
    )?;
    Ok((h, e, f))
}

/// Encodes an `$INDEX_ROOT` value.
pub fn build_root(h: &RootHeader, entries: &[IndexEntry]) -> Vec<u8> {
    let body = encode_entries(entries, h.ty == 0);
    let mut v = alloc::vec![0u8; 32];
    put32(&mut v, 0, h.ty);
    put32(&mut v, 4, h.collation);
    put32(&mut v, 8, h.block_size);
    v[12] = h.clusters_per_block;
    put32(&mut v, 16, 16);
    put32(&mut v, 20, (16 + body.len()) as u32);
    put32(&mut v, 24, (16 + body.len()) as u32);
    v[28] = if entries.iter().any(|e| e.child.is_some()) {
        LARGE_INDEX
    } else {
        0
    };
    v.extend_from_slice(&body);
    v
}

/// Offset of the node header inside an INDX block.
const INDX_NODE: usize = 0x18;

fn indx_entries_offset(block_size: usize) -> usize {
    align8(0x28 + 2 * (block_size / 512 + 1))
}

/// Room for entries in an INDX block.
pub fn block_capacity(block_size: usize) -> usize {
    block_size - indx_entries_offset(block_size)
}

/// Parses an INDX block as read from disk (applies fixups on a copy).
pub fn parse_block(raw: &[u8], view: bool) -> Result<(u64, Vec<IndexEntry>)> {
    let mut b = raw.to_vec();
    unfixup(&mut b, b"INDX")?;
    let vcn = u64_at(&b, 0x10)?;
    let (e, _) = parse_node(&b[INDX_NODE..], view)?;
    Ok((vcn, e))
}

/// Encodes an INDX block (with fixups applied, ready to write).
pub fn build_block(
    vcn: u64,
    entries: &[IndexEntry],
    block_size: usize,
    view: bool,
) -> Result<Vec<u8>> {
    let body = encode_entries(entries, view);
    let eo = indx_entries_offset(block_size);
    if eo + body.len() > block_size {
        return Err(Error::Corrupt("index block overflow"));
    }
    let mut b = alloc::vec![0u8; block_size];
    b[0..4].copy_from_slice(b"INDX");
    put16(&mut b, 4, 0x28);
    put16(&mut b, 6, (block_size / 512 + 1) as u16);
    put64(&mut b, 0x10, vcn);
    put32(&mut b, INDX_NODE, (eo - INDX_NODE) as u32);
    put32(&mut b, INDX_NODE + 4, (eo - INDX_NODE + body.len()) as u32);
    put32(&mut b, INDX_NODE + 8, (block_size - INDX_NODE) as u32);
    b[INDX_NODE + 12] = if entries.iter().any(|e| e.child.is_some()) {
        LARGE_INDEX
    } else {
        0
    };
    b[eo..eo + body.len()].copy_from_slice(&body);
    fixup(&mut b)?;
    Ok(b)
}
