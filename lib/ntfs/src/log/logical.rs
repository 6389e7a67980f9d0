//! Windows' logical log operations: turning a metadata page change (the
//! page on disk → the page about to be written) into the redo/undo
//! operations NTFS logs for it, and applying those operations to a page
//! (the redo and undo passes of recovery).
//!
//! The operation semantics and the meaning of the record header fields are
//! Windows' (*Windows Internals* 7th ed., Part 2 ch. 11, "Log record
//! types"; the public descriptions of NTFS's log records, e.g. libyal's and
//! the Linux ntfs3 driver's replay, read for the facts only):
//!
//! - File record operations: the record is found by `target_vcn` (in
//!   clusters of `$MFT:$DATA`) plus `cluster_block_offset` (512-byte
//!   units); `record_offset` is the offset of the attribute in the record,
//!   `attribute_offset` the offset inside that attribute.
//!   `InitializeFileRecordSegment` copies its data at `record_offset`;
//!   `DeallocateFileRecordSegment` clears the in-use flag and bumps the
//!   sequence number; `CreateAttribute` inserts an attribute (bytes in use,
//!   next instance and — for an indexed attribute — the link count follow);
//!   `DeleteAttribute` removes the one at `record_offset`;
//!   `UpdateResidentValue` writes its data at `attribute_offset` (when redo
//!   and undo lengths differ the value then ends with the data);
//!   `UpdateMappingPairs` replaces the mapping pairs from
//!   `attribute_offset` to the end (the highest VCN is recomputed);
//!   `SetNewAttributeSizes` sets allocated, valid, data (and total) sizes;
//!   `AddIndexEntryRoot`/`DeleteIndexEntryRoot`/`SetIndexEntryVcnRoot`/
//!   `UpdateFileNameRoot` edit the entry at `attribute_offset` of the
//!   `$INDEX_ROOT` at `record_offset`.
//! - Index buffer operations (`...Allocation`): the INDX block starts at
//!   `record_offset` of the page; `attribute_offset` is the entry's offset
//!   from the block's start.
//! - Bitmap operations: data is a `BITMAP_RANGE` (bit offset from the
//!   page's start, bit count).
//!
//! The encoder proves each decomposition: it applies the redo operations
//! to the old page and keeps them only if that gives the new page (the
//! LSN and the update sequence array aside); otherwise the caller logs the
//! page physically (`UpdateNonresidentValue`).

use super::ops::Op;
use crate::attr::{AT_END, AT_INDEX_ROOT};
use crate::error::{Error, Result};
use crate::util::{align8, put16, put32, put64, u16_at, u32_at, u64_at};
use alloc::vec::Vec;

/// One logical change: operations, data and the offsets of the record header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Redo operation.
    pub redo_op: Op,
    /// Undo operation.
    pub undo_op: Op,
    /// Redo data.
    pub redo: Vec<u8>,
    /// Undo data.
    pub undo: Vec<u8>,
    /// `record_offset` of the record header.
    pub record_offset: u16,
    /// `attribute_offset` of the record header.
    pub attribute_offset: u16,
}

fn change(redo_op: Op, undo_op: Op, redo: &[u8], undo: &[u8], ro: usize, ao: usize) -> Change {
    Change {
        redo_op,
        undo_op,
        redo: redo.to_vec(),
        undo: undo.to_vec(),
        record_offset: ro as u16,
        attribute_offset: ao as u16,
    }
}

const BAD: Error = Error::Corrupt("log operation does not fit its page");

/// `RESIDENT_ATTR_IS_INDEXED` of a resident attribute.
fn indexed(a: &[u8]) -> bool {
    a.get(8) == Some(&0) && a.get(0x16).is_some_and(|f| f & 1 != 0)
}

fn rec_used(p: &[u8]) -> Result<usize> {
    let u = u32_at(p, 0x18)? as usize;
    if u > p.len() || u < 0x30 {
        return Err(BAD);
    }
    Ok(u)
}

/// Offsets and lengths of a file record's attributes (up to the end marker).
fn attrs(p: &[u8]) -> Result<Vec<(usize, usize)>> {
    let used = rec_used(p)?;
    let mut o = u16_at(p, 0x14)? as usize;
    let mut v = Vec::new();
    loop {
        if u32_at(p, o)? == AT_END {
            return Ok(v);
        }
        let l = u32_at(p, o + 4)? as usize;
        if l < 0x18 || l & 7 != 0 || o + l > used {
            return Err(BAD);
        }
        v.push((o, l));
        o += l;
    }
}

fn attr_at(p: &[u8], ro: usize) -> Result<usize> {
    let used = rec_used(p)?;
    let l = u32_at(p, ro + 4)? as usize;
    if ro < 0x30 || l < 0x18 || ro + l > used {
        return Err(BAD);
    }
    Ok(l)
}

/// Moves the record's bytes from `from` up to `used` to `to` and fixes
/// bytes in use.
fn shift(p: &mut [u8], from: usize, to: usize) -> Result<()> {
    let used = rec_used(p)?;
    let nu = (used + to).checked_sub(from).ok_or(BAD)?;
    if from > used || nu > p.len() {
        return Err(BAD);
    }
    p.copy_within(from..used, to);
    if nu < used {
        p[nu..used].fill(0);
    }
    put32(p, 0x18, nu as u32);
    Ok(())
}

/// Resizes the attribute at `ro` to `nsize` bytes (moving what follows).
fn resize_attr(p: &mut [u8], ro: usize, nsize: usize) -> Result<()> {
    let asize = attr_at(p, ro)?;
    shift(p, ro + asize, ro + nsize)?;
    put32(p, ro + 4, nsize as u32);
    Ok(())
}

/// Applies a file record operation to an unfixed-up record `p`.
/// `same_len`: redo and undo data had equal lengths (`UpdateResidentValue`).
pub fn apply_record(
    p: &mut [u8],
    op: Op,
    data: &[u8],
    ro: usize,
    ao: usize,
    same_len: bool,
) -> Result<()> {
    match op {
        Op::InitializeFileRecordSegment => {
            p.get_mut(ro..ro + data.len())
                .ok_or(BAD)?
                .copy_from_slice(data);
        }
        Op::DeallocateFileRecordSegment => {
            let f = u16_at(p, 0x16)?;
            put16(p, 0x16, f & !crate::record::MFT_RECORD_IN_USE);
            let s = u16_at(p, 0x10)?;
            put16(p, 0x10, s.wrapping_add(1));
        }
        Op::CreateAttribute => {
            let asize = u32_at(data, 4)? as usize;
            if asize < 0x18 || asize & 7 != 0 || asize > data.len() || ro < 0x30 {
                return Err(BAD);
            }
            shift(p, ro, ro + asize)?;
            p[ro..ro + asize].copy_from_slice(&data[..asize]);
            let id = u16_at(data, 0xe)?;
            if u16_at(p, 0x28)? <= id {
                put16(p, 0x28, id.wrapping_add(1));
            }
            if indexed(data) {
                let l = u16_at(p, 0x12)?;
                put16(p, 0x12, l.wrapping_add(1));
            }
        }
        Op::DeleteAttribute => {
            let asize = attr_at(p, ro)?;
            if indexed(&p[ro..]) {
                let l = u16_at(p, 0x12)?;
                put16(p, 0x12, l.wrapping_sub(1));
            }
            shift(p, ro + asize, ro)?;
        }
        Op::UpdateResidentValue => {
            let asize = attr_at(p, ro)?;
            if p[ro + 8] != 0 {
                return Err(BAD);
            }
            let vo = u16_at(p, ro + 0x14)? as usize;
            let end = ao + data.len();
            if ao < vo {
                return Err(BAD);
            }
            if same_len {
                if end > asize {
                    return Err(BAD);
                }
            } else {
                let nsize = align8(end);
                resize_attr(p, ro, nsize)?;
                if nsize > end {
                    p[ro + end..ro + nsize].fill(0);
                }
                put32(p, ro + 0x10, (end - vo) as u32);
            }
            p[ro + ao..ro + end].copy_from_slice(data);
        }
        Op::UpdateMappingPairs => {
            attr_at(p, ro)?;
            if p[ro + 8] == 0 || ao < u16_at(p, ro + 0x20)? as usize {
                return Err(BAD);
            }
            let end = ao + data.len();
            let nsize = align8(end);
            resize_attr(p, ro, nsize)?;
            p[ro + ao..ro + end].copy_from_slice(data);
            p[ro + end..ro + nsize].fill(0);
            let ro_runs = u16_at(p, ro + 0x20)? as usize;
            let svcn = u64_at(p, ro + 0x10)?;
            let runs = crate::runlist::decode(&p[ro + ro_runs..ro + nsize], svcn)?;
            let last = runs.last().map(|r| r.vcn + r.len).unwrap_or(svcn);
            put64(p, ro + 0x18, last.wrapping_sub(1));
        }
        Op::SetNewAttributeSizes => {
            attr_at(p, ro)?;
            if p[ro + 8] == 0 || data.len() < 24 {
                return Err(BAD);
            }
            put64(p, ro + 0x28, u64_at(data, 0)?);
            put64(p, ro + 0x38, u64_at(data, 8)?);
            put64(p, ro + 0x30, u64_at(data, 16)?);
            if data.len() >= 32 {
                put64(p, ro + 0x40, u64_at(data, 24)?);
            }
        }
        Op::AddIndexEntryRoot | Op::DeleteIndexEntryRoot => {
            let asize = attr_at(p, ro)?;
            if p[ro + 8] != 0 {
                return Err(BAD);
            }
            let vo = u16_at(p, ro + 0x14)? as usize;
            let hdr = ro + vo + 16;
            let used = u32_at(p, hdr + 4)? as usize;
            let used_end = hdr + used;
            let e = ro + ao;
            if e < hdr + 16 || e > used_end || used_end > ro + asize {
                return Err(BAD);
            }
            if op == Op::AddIndexEntryRoot {
                let es = u16_at(data, 8)? as usize;
                if es == 0 || es > data.len() {
                    return Err(BAD);
                }
                resize_attr(p, ro, asize + es)?;
                p.copy_within(e..used_end, e + es);
                p[e..e + es].copy_from_slice(&data[..es]);
                adjust_root(p, ro, hdr, es as i64)?;
            } else {
                let es = u16_at(p, e + 8)? as usize;
                if es == 0 || e + es > used_end {
                    return Err(BAD);
                }
                p.copy_within(e + es..used_end, e);
                p[used_end - es..used_end].fill(0);
                adjust_root(p, ro, hdr, -(es as i64))?;
                resize_attr(p, ro, asize - es)?;
            }
        }
        Op::SetIndexEntryVcnRoot | Op::UpdateFileNameRoot => {
            attr_at(p, ro)?;
            edit_entry(p, ro + ao, op == Op::SetIndexEntryVcnRoot, data)?;
        }
        _ => return Err(Error::Unsupported("not a file record operation")),
    }
    Ok(())
}

fn adjust_root(p: &mut [u8], ro: usize, hdr: usize, d: i64) -> Result<()> {
    let add = |v: u32| (v as i64 + d) as u32;
    let vl = u32_at(p, ro + 0x10)?;
    put32(p, ro + 0x10, add(vl));
    let u = u32_at(p, hdr + 4)?;
    put32(p, hdr + 4, add(u));
    let t = u32_at(p, hdr + 8)?;
    put32(p, hdr + 8, add(t));
    Ok(())
}

/// `SetIndexEntryVcn*` (the child VCN in the entry's last 8 bytes) or
/// `UpdateFileName*` (the duplicated information of a `$FILE_NAME` key).
fn edit_entry(p: &mut [u8], e: usize, vcn: bool, data: &[u8]) -> Result<()> {
    let es = u16_at(p, e + 8)? as usize;
    if es < 16 || e + es > p.len() {
        return Err(BAD);
    }
    if vcn {
        if u16_at(p, e + 12)? & crate::index::INDEX_ENTRY_NODE == 0 || data.len() != 8 {
            return Err(BAD);
        }
        p[e + es - 8..e + es].copy_from_slice(data);
    } else {
        if data.len() != DUP_LEN || es < 16 + 8 + DUP_LEN {
            return Err(BAD);
        }
        p[e + 24..e + 24 + DUP_LEN].copy_from_slice(data);
    }
    Ok(())
}

/// Bytes of a `$FILE_NAME`'s duplicated information (times, sizes, flags,
/// reparse tag) that `UpdateFileName*` carries.
pub const DUP_LEN: usize = 0x38;

/// Offset of the node header in an INDX block.
const INDX_NODE: usize = 0x18;

/// Applies an index buffer operation to an unfixed-up INDX block `p`
/// (the block at `ro` = 0 of the page).
pub fn apply_index(p: &mut [u8], op: Op, data: &[u8], ao: usize) -> Result<()> {
    let used = u32_at(p, INDX_NODE + 4)? as usize;
    let total = u32_at(p, INDX_NODE + 8)? as usize;
    let first = INDX_NODE + u32_at(p, INDX_NODE)? as usize;
    let used_end = INDX_NODE + used;
    if used_end > p.len() || INDX_NODE + total > p.len() || ao < first || ao > used_end {
        return Err(BAD);
    }
    match op {
        Op::AddIndexEntryAllocation => {
            let es = u16_at(data, 8)? as usize;
            if es == 0 || es > data.len() || used + es > total {
                return Err(BAD);
            }
            p.copy_within(ao..used_end, ao + es);
            p[ao..ao + es].copy_from_slice(&data[..es]);
            put32(p, INDX_NODE + 4, (used + es) as u32);
        }
        Op::DeleteIndexEntryAllocation => {
            let es = u16_at(p, ao + 8)? as usize;
            if es == 0 || ao + es > used_end {
                return Err(BAD);
            }
            p.copy_within(ao + es..used_end, ao);
            p[used_end - es..used_end].fill(0);
            put32(p, INDX_NODE + 4, (used - es) as u32);
        }
        Op::SetIndexEntryVcnAllocation => edit_entry(p, ao, true, data)?,
        Op::UpdateFileNameAllocation => edit_entry(p, ao, false, data)?,
        _ => return Err(Error::Unsupported("not an index buffer operation")),
    }
    Ok(())
}

/// Applies `SetBitsInNonresidentBitMap`/`ClearBitsInNonresidentBitMap`
/// (data: `BITMAP_RANGE`) to page `p`.
pub fn apply_bits(p: &mut [u8], op: Op, data: &[u8]) -> Result<()> {
    let off = u32_at(data, 0)? as usize;
    let n = u32_at(data, 4)? as usize;
    if (off + n).div_ceil(8) > p.len() {
        return Err(BAD);
    }
    for b in off..off + n {
        if op == Op::SetBitsInNonresidentBitMap {
            p[b / 8] |= 1 << (b % 8);
        } else {
            p[b / 8] &= !(1 << (b % 8));
        }
    }
    Ok(())
}

/// Whether two unfixed-up pages are equal apart from the LSN (bytes
/// 8..16) and the update sequence array.
pub fn same_page(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() || a.len() < 16 {
        return false;
    }
    let usa = u16_at(a, 4).unwrap_or(0) as usize;
    let cnt = u16_at(a, 6).unwrap_or(0) as usize;
    let skip = |i: usize| (8..16).contains(&i) || (usa..usa + 2 * cnt).contains(&i);
    a.iter()
        .zip(b)
        .enumerate()
        .all(|(i, (x, y))| x == y || skip(i))
}

// ----- encoding -----

/// Entry offsets and lengths of a node whose header is at `hdr`.
fn entries(p: &[u8], hdr: usize) -> Result<Vec<(usize, usize)>> {
    let first = hdr + u32_at(p, hdr)? as usize;
    let end = hdr + u32_at(p, hdr + 4)? as usize;
    if end > p.len() {
        return Err(BAD);
    }
    let mut o = first;
    let mut v = Vec::new();
    while o < end {
        let l = u16_at(p, o + 8)? as usize;
        if l < 16 || o + l > end {
            return Err(BAD);
        }
        v.push((o, l));
        if u16_at(p, o + 12)? & crate::index::INDEX_ENTRY_END != 0 {
            return Ok(v);
        }
        o += l;
    }
    Err(BAD)
}

/// What makes two index entries the same entry (the key; for `$I30` the
/// file reference and the name, not the duplicated information).
fn identity(e: &[u8], i30: bool) -> Vec<u8> {
    if u16_at(e, 12).unwrap_or(0) & crate::index::INDEX_ENTRY_END != 0 {
        return Vec::new();
    }
    let kl = u16_at(e, 10).unwrap_or(0) as usize;
    let key = e.get(16..16 + kl).unwrap_or(&[]);
    let mut id = alloc::vec![1u8];
    if i30 && key.len() >= 0x42 {
        id.extend_from_slice(&e[..8]);
        id.extend_from_slice(&key[..8]);
        id.extend_from_slice(&key[0x40..]);
    } else {
        id.extend_from_slice(key);
    }
    id
}

/// One edit of a node's entries (offset from the page start).
enum Edit {
    Add(usize, Vec<u8>),
    Delete(usize, Vec<u8>),
    Dup(usize, Vec<u8>, Vec<u8>),
    Vcn(usize, Vec<u8>, Vec<u8>),
}

/// Edits turning the entries of `old` (node header at `oh`) into those of
/// `new` (node header at `nh`); offsets are in `old`'s frame, which starts
/// its entries at the same place as `new`'s.
fn diff_entries(old: &[u8], oh: usize, new: &[u8], nh: usize, i30: bool) -> Result<Vec<Edit>> {
    let oe = entries(old, oh)?;
    let ne = entries(new, nh)?;
    let ofirst = oe.first().ok_or(BAD)?.0;
    let nfirst = ne.first().ok_or(BAD)?.0;
    if ofirst != nfirst {
        return Err(BAD);
    }
    let nids: Vec<Vec<u8>> = ne
        .iter()
        .map(|&(o, l)| identity(&new[o..o + l], i30))
        .collect();
    let compatible = |a: &[u8], b: &[u8]| {
        if a.len() != b.len() || a[..16] != b[..16] {
            return false;
        }
        let node = u16_at(a, 12).unwrap_or(0) & crate::index::INDEX_ENTRY_NODE != 0;
        let body_end = if node { a.len() - 8 } else { a.len() };
        (16..body_end).all(|i| a[i] == b[i] || (i30 && (24..24 + DUP_LEN).contains(&i)))
    };
    let mut edits = Vec::new();
    let mut kept = Vec::new();
    let mut cur = ofirst;
    for &(o, l) in &oe {
        let e = &old[o..o + l];
        let id = identity(e, i30);
        let keep = nids
            .iter()
            .position(|n| *n == id)
            .is_some_and(|k| compatible(e, &new[ne[k].0..ne[k].0 + ne[k].1]));
        if keep {
            kept.push(e.to_vec());
            cur += l;
        } else {
            edits.push(Edit::Delete(cur, e.to_vec()));
        }
    }
    let mut j = 0;
    let mut cur = nfirst;
    for (k, &(o, l)) in ne.iter().enumerate() {
        let n = &new[o..o + l];
        if j < kept.len() && identity(&kept[j], i30) == nids[k] {
            let e = &kept[j];
            if i30 && l >= 24 + DUP_LEN && e[24..24 + DUP_LEN] != n[24..24 + DUP_LEN] {
                edits.push(Edit::Dup(
                    cur,
                    n[24..24 + DUP_LEN].to_vec(),
                    e[24..24 + DUP_LEN].to_vec(),
                ));
            }
            if u16_at(n, 12)? & crate::index::INDEX_ENTRY_NODE != 0 && e[l - 8..] != n[l - 8..] {
                edits.push(Edit::Vcn(cur, n[l - 8..].to_vec(), e[l - 8..].to_vec()));
            }
            j += 1;
        } else {
            edits.push(Edit::Add(cur, n.to_vec()));
        }
        cur += l;
    }
    if j != kept.len() {
        return Err(BAD);
    }
    Ok(edits)
}

/// Logical changes turning file record `old` into `new` (both unfixed
/// up; `old_valid`: `old` is a well-formed FILE record). `None`: no
/// decomposition reproduces `new` (log the page physically).
pub fn encode_record(old: &[u8], old_valid: bool, new: &[u8]) -> Option<Vec<Change>> {
    let r = try_encode_record(old, old_valid, new).ok()?;
    let mut w = old.to_vec();
    for c in &r {
        apply_record(
            &mut w,
            c.redo_op,
            &c.redo,
            c.record_offset as usize,
            c.attribute_offset as usize,
            c.redo.len() == c.undo.len(),
        )
        .ok()?;
    }
    same_page(&w, new).then_some(r)
}

fn in_use(p: &[u8]) -> bool {
    u16_at(p, 0x16).is_ok_and(|f| f & crate::record::MFT_RECORD_IN_USE != 0)
}

fn try_encode_record(old: &[u8], old_valid: bool, new: &[u8]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    if !old_valid || !in_use(old) {
        if !in_use(new) && old_valid {
            return Err(BAD);
        }
        // A new file record (or a free record formatted where there was
        // none, as the MFT grows): its image, as Windows logs it.
        let end = (0..new.len())
            .rev()
            .find(|&i| new[i] != old[i])
            .map_or(0, |i| i + 1);
        let end = end.max(rec_used(new)?);
        out.push(change(
            Op::InitializeFileRecordSegment,
            Op::Noop,
            &new[..end],
            &[],
            0,
            0,
        ));
        return Ok(out);
    }
    if !in_use(new) {
        let used = rec_used(old)?;
        out.push(change(
            Op::DeallocateFileRecordSegment,
            Op::InitializeFileRecordSegment,
            &[],
            &old[..used],
            0,
            0,
        ));
        return Ok(out);
    }
    let mut w = old.to_vec();
    let key = |p: &[u8], o: usize| (u32_at(p, o).unwrap_or(0), u16_at(p, o + 0xe).unwrap_or(0));
    let na = attrs(new)?;
    let nkeys: Vec<_> = na.iter().map(|&(o, _)| key(new, o)).collect();
    // 1. Attributes that went away (or changed type of residency).
    for &(o, l) in attrs(old)?.iter().rev() {
        let k = key(old, o);
        let gone = match nkeys.iter().position(|n| *n == k) {
            None => true,
            Some(i) => new[na[i].0 + 8] != old[o + 8],
        };
        if gone {
            out.push(change(
                Op::DeleteAttribute,
                Op::CreateAttribute,
                &[],
                &old[o..o + l],
                o,
                0,
            ));
            apply_record(&mut w, Op::DeleteAttribute, &[], o, 0, false)?;
        }
    }
    // 2. In new order: updates in place, creations.
    for &(no, nl) in &na {
        let k = key(new, no);
        let here = u32_at(&w, no)? != AT_END && key(&w, no) == k;
        if !here {
            let c = change(
                Op::CreateAttribute,
                Op::DeleteAttribute,
                &new[no..no + nl],
                &[],
                no,
                0,
            );
            apply_record(&mut w, Op::CreateAttribute, &c.redo, no, 0, false)?;
            out.push(c);
            continue;
        }
        let wl = attr_at(&w, no)?;
        if w[no..no + wl] == new[no..no + nl] {
            continue;
        }
        let mark = out.len();
        let ok = update_attr(&mut w, new, no, nl, &mut out).is_ok()
            && attr_at(&w, no).is_ok_and(|l| w[no..no + l] == new[no..no + nl]);
        if !ok {
            // Replace it whole.
            out.truncate(mark);
            let wl = attr_at(&w, no)?;
            let old_a = w[no..no + wl].to_vec();
            apply_record(&mut w, Op::DeleteAttribute, &[], no, 0, false)?;
            out.push(change(
                Op::DeleteAttribute,
                Op::CreateAttribute,
                &[],
                &old_a,
                no,
                0,
            ));
            let c = change(
                Op::CreateAttribute,
                Op::DeleteAttribute,
                &new[no..no + nl],
                &[],
                no,
                0,
            );
            apply_record(&mut w, Op::CreateAttribute, &c.redo, no, 0, false)?;
            out.push(c);
        }
    }
    Ok(out)
}

/// Logs the change of attribute `no` (present in `w` and `new` at the same
/// offset) as value, size, mapping pair or index root entry operations,
/// applying them to `w`.
fn update_attr(
    w: &mut [u8],
    new: &[u8],
    no: usize,
    nl: usize,
    out: &mut Vec<Change>,
) -> Result<()> {
    let n = &new[no..no + nl];
    let wl = attr_at(w, no)?;
    if n[8] == 0 {
        let vo = u16_at(n, 0x14)? as usize;
        let a = w[no..no + wl].to_vec();
        if u16_at(&a, 0x14)? as usize != vo {
            return Err(BAD);
        }
        // Header bytes other than the lengths must agree.
        let hdr_same =
            (0..vo).all(|i| a[i] == n[i] || (4..8).contains(&i) || (0x10..0x14).contains(&i));
        if !hdr_same {
            return Err(BAD);
        }
        if u32_at(n, 0)? == AT_INDEX_ROOT && u32_at(&a, 0)? == AT_INDEX_ROOT {
            let i30 = u32_at(n, vo)? == crate::attr::AT_FILE_NAME;
            let fixed_same = a.get(vo..vo + 16) == n.get(vo..vo + 16)
                && a.get(vo + 28..vo + 32) == n.get(vo + 28..vo + 32);
            if fixed_same {
                if let Ok(edits) = diff_entries(&a, vo + 16, n, vo + 16, i30) {
                    for e in edits {
                        let c = match e {
                            Edit::Add(o, b) => change(
                                Op::AddIndexEntryRoot,
                                Op::DeleteIndexEntryRoot,
                                &b,
                                &b,
                                no,
                                o,
                            ),
                            Edit::Delete(o, b) => change(
                                Op::DeleteIndexEntryRoot,
                                Op::AddIndexEntryRoot,
                                &b,
                                &b,
                                no,
                                o,
                            ),
                            Edit::Dup(o, nb, ob) => change(
                                Op::UpdateFileNameRoot,
                                Op::UpdateFileNameRoot,
                                &nb,
                                &ob,
                                no,
                                o,
                            ),
                            Edit::Vcn(o, nb, ob) => change(
                                Op::SetIndexEntryVcnRoot,
                                Op::SetIndexEntryVcnRoot,
                                &nb,
                                &ob,
                                no,
                                o,
                            ),
                        };
                        apply_record(w, c.redo_op, &c.redo, no, c.attribute_offset as usize, true)?;
                        out.push(c);
                    }
                    return Ok(());
                }
            }
        }
        let ovl = u32_at(&a, 0x10)? as usize;
        let nvl = u32_at(n, 0x10)? as usize;
        let ov = a.get(vo..vo + ovl).ok_or(BAD)?;
        let nv = n.get(vo..vo + nvl).ok_or(BAD)?;
        let first = ov
            .iter()
            .zip(nv)
            .position(|(x, y)| x != y)
            .unwrap_or(ovl.min(nvl));
        let c = if ovl == nvl {
            let last = (0..nvl)
                .rev()
                .find(|&i| ov[i] != nv[i])
                .map_or(first, |i| i + 1);
            change(
                Op::UpdateResidentValue,
                Op::UpdateResidentValue,
                &nv[first..last],
                &ov[first..last],
                no,
                vo + first,
            )
        } else {
            let mut c = change(
                Op::UpdateResidentValue,
                Op::UpdateResidentValue,
                &nv[first..],
                &ov[first..],
                no,
                vo + first,
            );
            if c.redo.len() == c.undo.len() {
                // Equal lengths would mean "in place": start one byte earlier.
                let f = first.checked_sub(1).ok_or(BAD)?;
                c = change(
                    Op::UpdateResidentValue,
                    Op::UpdateResidentValue,
                    &nv[f..],
                    &ov[f..],
                    no,
                    vo + f,
                );
            }
            c
        };
        apply_record(
            w,
            c.redo_op,
            &c.redo,
            no,
            c.attribute_offset as usize,
            c.redo.len() == c.undo.len(),
        )?;
        out.push(c);
        return Ok(());
    }
    // Non-resident: sizes, then mapping pairs.
    let a = w[no..no + wl].to_vec();
    let run_off = u16_at(n, 0x20)? as usize;
    if u16_at(&a, 0x20)? as usize != run_off {
        return Err(BAD);
    }
    let total = run_off >= 0x48 && u16_at(n, 0xc)? & 0x80ff != 0;
    let sizes = |b: &[u8]| -> Result<Vec<u8>> {
        let mut v = Vec::new();
        for o in [0x28, 0x38, 0x30] {
            v.extend_from_slice(&u64_at(b, o)?.to_le_bytes());
        }
        if total {
            v.extend_from_slice(&u64_at(b, 0x40)?.to_le_bytes());
        }
        Ok(v)
    };
    let (ns, os) = (sizes(n)?, sizes(&a)?);
    if ns != os {
        let c = change(
            Op::SetNewAttributeSizes,
            Op::SetNewAttributeSizes,
            &ns,
            &os,
            no,
            0,
        );
        apply_record(w, c.redo_op, &c.redo, no, 0, true)?;
        out.push(c);
    }
    let wl = attr_at(w, no)?;
    let a = w[no..no + wl].to_vec();
    if a[run_off..] != n[run_off..] || a[0x18..0x20] != n[0x18..0x20] {
        let first = a[run_off..]
            .iter()
            .zip(&n[run_off..])
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        let ao = run_off + first;
        let c = change(
            Op::UpdateMappingPairs,
            Op::UpdateMappingPairs,
            &n[ao..],
            &a[ao..],
            no,
            ao,
        );
        apply_record(w, c.redo_op, &c.redo, no, ao, false)?;
        out.push(c);
    }
    Ok(())
}

/// Whether undoing `changes` (newest first) turns `new` back into `old`
/// (file record changes when `record`, else index buffer changes). A new
/// record's `InitializeFileRecordSegment` has undo `Noop`, as on Windows:
/// not checked; nor is a record's next attribute instance, which undoing
/// `CreateAttribute` leaves as it is (as Windows does).
pub fn undo_restores(old: &[u8], new: &[u8], changes: &[Change], record: bool) -> bool {
    if changes.iter().any(|c| c.undo_op == Op::Noop) {
        return true;
    }
    let mut w = new.to_vec();
    for c in changes.iter().rev() {
        let r = if record {
            apply_record(
                &mut w,
                c.undo_op,
                &c.undo,
                c.record_offset as usize,
                c.attribute_offset as usize,
                c.redo.len() == c.undo.len(),
            )
        } else {
            apply_index(&mut w, c.undo_op, &c.undo, c.attribute_offset as usize)
        };
        if r.is_err() {
            return false;
        }
    }
    if record && w.len() > 0x2a {
        w[0x28..0x2a].copy_from_slice(&old[0x28..0x2a]);
    }
    same_page(&w, old)
}

/// Logical changes turning INDX block `old` into `new` (both unfixed up).
pub fn encode_index(old: &[u8], new: &[u8], i30: bool) -> Option<Vec<Change>> {
    // The same block (magic, VCN), same entry start, size and node flags.
    let same = |r: core::ops::Range<usize>| {
        old.get(r.clone()).is_some() && old.get(r.clone()) == new.get(r)
    };
    if old.len() != new.len()
        || !same(0..4)
        || !same(0x10..0x18)
        || !same(INDX_NODE..INDX_NODE + 4)
        || !same(INDX_NODE + 8..INDX_NODE + 16)
    {
        return None;
    }
    let edits = diff_entries(old, INDX_NODE, new, INDX_NODE, i30).ok()?;
    let mut out = Vec::new();
    let mut w = old.to_vec();
    for e in edits {
        let c = match e {
            Edit::Add(o, b) => change(
                Op::AddIndexEntryAllocation,
                Op::DeleteIndexEntryAllocation,
                &b,
                &b,
                0,
                o,
            ),
            Edit::Delete(o, b) => change(
                Op::DeleteIndexEntryAllocation,
                Op::AddIndexEntryAllocation,
                &b,
                &b,
                0,
                o,
            ),
            Edit::Dup(o, nb, ob) => change(
                Op::UpdateFileNameAllocation,
                Op::UpdateFileNameAllocation,
                &nb,
                &ob,
                0,
                o,
            ),
            Edit::Vcn(o, nb, ob) => change(
                Op::SetIndexEntryVcnAllocation,
                Op::SetIndexEntryVcnAllocation,
                &nb,
                &ob,
                0,
                o,
            ),
        };
        apply_index(&mut w, c.redo_op, &c.redo, c.attribute_offset as usize).ok()?;
        out.push(c);
    }
    same_page(&w, new).then_some(out)
}

/// Bit ranges that changed between two bitmap images: (first bit, count,
/// set). Ranges do not cross a multiple of `split` bits.
pub fn bit_ranges(old: &[u8], new: &[u8], split: usize) -> Vec<(usize, usize, bool)> {
    let mut out: Vec<(usize, usize, bool)> = Vec::new();
    for (i, (o, n)) in old.iter().zip(new).enumerate() {
        if o == n {
            continue;
        }
        for b in 0..8 {
            let (ob, nb) = (o >> b & 1, n >> b & 1);
            if ob == nb {
                continue;
            }
            let bit = i * 8 + b;
            let set = nb == 1;
            match out.last_mut() {
                Some((s, c, st)) if *st == set && *s + *c == bit && bit % split != 0 => *c += 1,
                _ => out.push((bit, 1, set)),
            }
        }
    }
    out
}

/// `BITMAP_RANGE` data.
pub fn bitmap_range(off: usize, bits: usize) -> Vec<u8> {
    let mut v = alloc::vec![0u8; 8];
    put32(&mut v, 0, off as u32);
    put32(&mut v, 4, bits as u32);
    v
}

/// A short description of a logical operation's data for log dumps: the
/// bit range of a bitmap operation, the attribute type of a created or
/// restored attribute, the file name of an index entry, the new sizes.
pub fn describe(op: Op, data: &[u8]) -> Option<alloc::string::String> {
    use alloc::format;
    match op {
        Op::SetBitsInNonresidentBitMap | Op::ClearBitsInNonresidentBitMap => Some(format!(
            "bits {:#x}+{}",
            u32_at(data, 0).ok()?,
            u32_at(data, 4).ok()?
        )),
        Op::CreateAttribute => Some(format!("attribute type {:#x}", u32_at(data, 0).ok()?)),
        Op::SetNewAttributeSizes => Some(format!(
            "allocated {:#x} valid {:#x} size {:#x}",
            u64_at(data, 0).ok()?,
            u64_at(data, 8).ok()?,
            u64_at(data, 16).ok()?
        )),
        Op::AddIndexEntryRoot
        | Op::AddIndexEntryAllocation
        | Op::DeleteIndexEntryRoot
        | Op::DeleteIndexEntryAllocation => {
            let kl = u16_at(data, 10).ok()? as usize;
            let key = data.get(16..16 + kl)?;
            let nl = *key.get(0x40)? as usize;
            let name = key.get(0x42..0x42 + 2 * nl)?;
            let name = crate::util::utf16_to_string(&crate::util::utf16_units(name));
            Some(format!(
                "file {:#x} \"{name}\"",
                u64_at(data, 0).ok()? & 0xFFFF_FFFF_FFFF
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_bits_and_entries() {
        assert_eq!(
            describe(Op::SetBitsInNonresidentBitMap, &bitmap_range(0x10, 3)).as_deref(),
            Some("bits 0x10+3")
        );
        let mut e = alloc::vec![0u8; 16 + 0x42 + 4];
        put64(&mut e, 0, 0x0001_0000_0000_0024);
        let el = e.len() as u16;
        put16(&mut e, 8, el);
        put16(&mut e, 10, 0x42 + 4);
        e[16 + 0x40] = 2;
        e[16 + 0x42] = b'h';
        e[16 + 0x44] = b'i';
        assert_eq!(
            describe(Op::AddIndexEntryAllocation, &e).as_deref(),
            Some("file 0x24 \"hi\"")
        );
        assert_eq!(describe(Op::Noop, &[]), None);
    }

    #[test]
    fn bit_ranges_split_at_pages() {
        let old = [0u8, 0xFF, 0];
        let new = [0xF0u8, 0x0F, 0x01];
        let r = bit_ranges(&old, &new, 16);
        assert_eq!(r, [(4, 4, true), (12, 4, false), (16, 1, true)]);
        let mut p = old.to_vec();
        for (o, n, set) in r {
            let op = if set {
                Op::SetBitsInNonresidentBitMap
            } else {
                Op::ClearBitsInNonresidentBitMap
            };
            apply_bits(&mut p, op, &bitmap_range(o, n)).unwrap();
        }
        assert_eq!(p, new);
    }
}
