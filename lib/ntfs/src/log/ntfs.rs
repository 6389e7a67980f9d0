//! NTFS's client records: an [`NtfsRecordHeader`] with the LCNs of the
//! target page, then the redo and undo data (each 8-aligned); and NTFS's
//! checkpoints: dumps of the open attribute, attribute name, dirty page and
//! transaction tables, then a client restart record naming them.

use super::layout::*;
use super::ops::Op;
use super::read::{Log, LogRecord};
use super::write::{LogStore, LogWriter, NewRecord};
use crate::error::{Error, Result};
use crate::util::{align8, u16_at};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// An NTFS client record, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NtfsRecord {
    /// Header (offsets and lengths are recomputed by [`NtfsRecord::to_bytes`]).
    pub header: NtfsRecordHeader,
    /// LCNs of the target page's clusters.
    pub lcns: Vec<u64>,
    /// Redo data.
    pub redo: Vec<u8>,
    /// Undo data.
    pub undo: Vec<u8>,
}

impl NtfsRecord {
    /// A record with operations `redo`/`undo` and their data.
    pub fn new(redo_op: Op, undo_op: Op, redo: Vec<u8>, undo: Vec<u8>) -> Self {
        Self {
            header: NtfsRecordHeader {
                redo_operation: redo_op as u16,
                undo_operation: undo_op as u16,
                ..Default::default()
            },
            lcns: Vec::new(),
            redo,
            undo,
        }
    }

    /// Its client data bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut h = self.header;
        let too_big = Error::InvalidParameter("NTFS log record too large");
        h.lcns_to_follow = u16::try_from(self.lcns.len()).map_err(|_| too_big.clone())?;
        let redo_off = NTFS_RECORD_HEADER_LEN + 8 * self.lcns.len();
        let undo_off = redo_off + align8(self.redo.len());
        let end = undo_off + align8(self.undo.len());
        if end > u16::MAX as usize {
            return Err(too_big);
        }
        h.redo_offset = redo_off as u16;
        h.redo_length = self.redo.len() as u16;
        h.undo_offset = undo_off as u16;
        h.undo_length = self.undo.len() as u16;
        let mut b = alloc::vec![0u8; end];
        h.write(&mut b);
        for (i, l) in self.lcns.iter().enumerate() {
            crate::util::put64(&mut b, NTFS_RECORD_HEADER_LEN + 8 * i, *l);
        }
        b[redo_off..redo_off + self.redo.len()].copy_from_slice(&self.redo);
        b[undo_off..undo_off + self.undo.len()].copy_from_slice(&self.undo);
        Ok(b)
    }

    /// Decodes client data; every offset and length is bounds-checked.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let header = NtfsRecordHeader::parse(b)?;
        let mut lcns = Vec::new();
        for i in 0..header.lcns_to_follow as usize {
            lcns.push(crate::util::u64_at(b, NTFS_RECORD_HEADER_LEN + 8 * i)?);
        }
        let redo = crate::util::sub(b, header.redo_offset as usize, header.redo_length as usize)?;
        let undo = crate::util::sub(b, header.undo_offset as usize, header.undo_length as usize)?;
        Ok(Self {
            header,
            redo: redo.to_vec(),
            undo: undo.to_vec(),
            lcns,
        })
    }

    /// The redo operation, if Windows defines its code.
    pub fn redo_op(&self) -> Option<Op> {
        Op::from_code(self.header.redo_operation)
    }

    /// The undo operation, if Windows defines its code.
    pub fn undo_op(&self) -> Option<Op> {
        Op::from_code(self.header.undo_operation)
    }
}

/// A restart table (as dumped at a checkpoint): entry size, and the
/// allocated entries by their byte offset in the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestartTable {
    /// Bytes per entry.
    pub entry_size: u16,
    /// Allocated entries: (offset in the table, entry bytes).
    pub entries: Vec<(u32, Vec<u8>)>,
}

impl RestartTable {
    /// Decodes a table dump.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let h = RestartTableHeader::parse(b)?;
        let es = h.entry_size as usize;
        if es < 4 || !es.is_multiple_of(4) {
            return Err(Error::Corrupt("restart table entry size"));
        }
        let mut entries = Vec::new();
        for i in 0..h.number_entries as usize {
            let o = RESTART_TABLE_HEADER_LEN + i * es;
            let e = crate::util::sub(b, o, es)?;
            if crate::util::u32_at(e, 0)? == RESTART_ENTRY_ALLOCATED {
                entries.push((o as u32, e.to_vec()));
            }
        }
        Ok(Self {
            entry_size: h.entry_size,
            entries,
        })
    }

    /// Builds a dump holding `entries` (offset in the table, bytes) as
    /// allocated entries; offsets must be [`table_offset`]s. Slots between
    /// them are free (their next-free field 0).
    pub fn build(entry_size: u16, entries: &[(u32, Vec<u8>)]) -> Result<Vec<u8>> {
        let es = entry_size as usize;
        let bad = Error::InvalidParameter("restart table entry offset");
        let mut slots = 0usize;
        for (o, _) in entries {
            let o = *o as usize;
            if o < RESTART_TABLE_HEADER_LEN || !(o - RESTART_TABLE_HEADER_LEN).is_multiple_of(es) {
                return Err(bad);
            }
            slots = slots.max((o - RESTART_TABLE_HEADER_LEN) / es + 1);
        }
        let n = u16::try_from(slots).map_err(|_| bad.clone())?;
        let mut b = alloc::vec![0u8; RESTART_TABLE_HEADER_LEN + es * slots];
        RestartTableHeader {
            entry_size,
            number_entries: n,
            number_allocated: entries.len() as u16,
            ..Default::default()
        }
        .write(&mut b);
        for (o, e) in entries {
            let o = *o as usize;
            let k = e.len().min(es);
            b[o..o + k].copy_from_slice(&e[..k]);
            crate::util::put32(&mut b, o, RESTART_ENTRY_ALLOCATED);
        }
        Ok(b)
    }
}

/// Offset of the `i`th entry of a table with `entry_size` entries (what
/// NTFS uses as a transaction id or a target attribute index).
pub fn table_offset(entry_size: u16, i: usize) -> u32 {
    (RESTART_TABLE_HEADER_LEN + i * entry_size as usize) as u32
}

/// The tables a checkpoint dumps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Open attribute table entries by table offset (the index records use
    /// as their target attribute).
    pub open_attributes: Vec<(u32, OpenAttributeEntry)>,
    /// Attribute names: (open attribute table offset, name).
    pub attribute_names: Vec<(u16, Vec<u16>)>,
    /// Dirty page table entries with their LCNs.
    pub dirty_pages: Vec<(DirtyPageEntry, Vec<u64>)>,
    /// Transaction table entries by table offset (the transaction id).
    pub transactions: Vec<(u32, TransactionEntry)>,
}

fn names_dump(names: &[(u16, Vec<u16>)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (off, n) in names {
        b.extend_from_slice(&off.to_le_bytes());
        b.extend_from_slice(&((2 * n.len()) as u16).to_le_bytes());
        for u in n {
            b.extend_from_slice(&u.to_le_bytes());
        }
        b.extend_from_slice(&[0, 0]);
    }
    b.extend_from_slice(&[0, 0, 0, 0]);
    b
}

/// Decodes an attribute names dump.
pub fn parse_names(b: &[u8]) -> Result<Vec<(u16, Vec<u16>)>> {
    let mut out = Vec::new();
    let mut o = 0;
    loop {
        let off = u16_at(b, o)?;
        let len = u16_at(b, o + 2)? as usize;
        if off == 0 && len == 0 {
            return Ok(out);
        }
        let name = crate::util::utf16_units(crate::util::sub(b, o + 4, len)?);
        out.push((off, name));
        o += 4 + len + 2;
    }
}

impl Checkpoint {
    /// Writes the table dumps and the client restart record, updates the
    /// writer's client record (restart LSN, oldest LSN = the checkpoint's
    /// start unless a transaction or dirty page needs an older one), and
    /// returns the restart record's LSN. The log is forced.
    pub fn write<S: LogStore>(&self, w: &mut LogWriter, s: &mut S) -> Result<u64> {
        let start = w.next_lsn();
        let rec =
            |op: Op, data: Vec<u8>| NtfsRecord::new(op, Op::Noop, data, Vec::new()).to_bytes();
        let plain = NewRecord {
            record_type: LFS_CLIENT_RECORD,
            ..Default::default()
        };
        let oat: Vec<(u32, Vec<u8>)> = self
            .open_attributes
            .iter()
            .map(|(o, e)| {
                let mut b = alloc::vec![0u8; OPEN_ATTRIBUTE_ENTRY_LEN];
                e.write(&mut b, 0);
                (*o, b)
            })
            .collect();
        let oat = RestartTable::build(OPEN_ATTRIBUTE_ENTRY_LEN as u16, &oat)?;
        let names = names_dump(&self.attribute_names);
        let max_lcns = self
            .dirty_pages
            .iter()
            .map(|d| d.1.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let dpe_size = (DIRTY_PAGE_ENTRY_LEN + 8 * max_lcns) as u16;
        let dpt: Vec<(u32, Vec<u8>)> = self
            .dirty_pages
            .iter()
            .enumerate()
            .map(|(i, (e, l))| {
                let mut b = alloc::vec![0u8; dpe_size as usize];
                let mut e = *e;
                e.lcns_to_follow = l.len() as u32;
                e.write(&mut b, 0);
                for (k, x) in l.iter().enumerate() {
                    crate::util::put64(&mut b, DIRTY_PAGE_ENTRY_LEN + 8 * k, *x);
                }
                (table_offset(dpe_size, i), b)
            })
            .collect();
        let dpt = RestartTable::build(dpe_size, &dpt)?;
        let tt: Vec<(u32, Vec<u8>)> = self
            .transactions
            .iter()
            .map(|(o, e)| {
                let mut b = alloc::vec![0u8; TRANSACTION_ENTRY_LEN];
                e.write(&mut b, 0);
                (*o, b)
            })
            .collect();
        let tt = RestartTable::build(TRANSACTION_ENTRY_LEN as u16, &tt)?;
        let mut ra = NtfsRestartArea {
            major_version: 1,
            minor_version: 0,
            start_of_checkpoint: start,
            open_attribute_table_length: oat.len() as u32,
            attribute_names_length: names.len() as u32,
            dirty_page_table_length: dpt.len() as u32,
            transaction_table_length: tt.len() as u32,
            ..Default::default()
        };
        ra.open_attribute_table_lsn =
            w.append(s, &plain, &rec(Op::OpenAttributeTableDump, oat)?)?;
        ra.attribute_names_lsn = w.append(s, &plain, &rec(Op::AttributeNamesDump, names)?)?;
        ra.dirty_page_table_lsn = w.append(s, &plain, &rec(Op::DirtyPageTableDump, dpt)?)?;
        ra.transaction_table_lsn = w.append(s, &plain, &rec(Op::TransactionTableDump, tt)?)?;
        let restart = NewRecord {
            record_type: LFS_CLIENT_RESTART,
            ..Default::default()
        };
        let lsn = w.append(s, &restart, &ra.to_bytes())?;
        let mut oldest = start;
        for (_, t) in &self.transactions {
            if t.first_lsn != 0 {
                oldest = oldest.min(t.first_lsn);
            }
        }
        for (d, _) in &self.dirty_pages {
            if d.oldest_lsn != 0 {
                oldest = oldest.min(d.oldest_lsn);
            }
        }
        w.force(s)?;
        let c = w.client();
        c.client_restart_lsn = lsn;
        c.oldest_lsn = oldest;
        Ok(lsn)
    }

    /// Reads the checkpoint named by client restart record `lsn`.
    pub fn read(log: &Log<'_>, lsn: u64) -> Result<(NtfsRestartArea, Checkpoint)> {
        let r = log.read_record(lsn)?;
        if r.header.record_type != LFS_CLIENT_RESTART {
            return Err(Error::Corrupt("client restart LSN names no restart record"));
        }
        let ra = NtfsRestartArea::parse(&r.data)?;
        let dump = |lsn: u64, op: Op| -> Result<Vec<u8>> {
            if lsn == 0 {
                return Ok(Vec::new());
            }
            let n = NtfsRecord::parse(&log.read_record(lsn)?.data)?;
            if n.redo_op() != Some(op) {
                return Err(Error::Corrupt("checkpoint table dump operation"));
            }
            Ok(n.redo)
        };
        let mut cp = Checkpoint::default();
        let oat = dump(ra.open_attribute_table_lsn, Op::OpenAttributeTableDump)?;
        if !oat.is_empty() {
            for (o, e) in RestartTable::parse(&oat)?.entries {
                cp.open_attributes
                    .push((o, OpenAttributeEntry::parse(&e, 0)?));
            }
        }
        let names = dump(ra.attribute_names_lsn, Op::AttributeNamesDump)?;
        if !names.is_empty() {
            cp.attribute_names = parse_names(&names)?;
        }
        let dpt = dump(ra.dirty_page_table_lsn, Op::DirtyPageTableDump)?;
        if !dpt.is_empty() {
            for (_, e) in RestartTable::parse(&dpt)?.entries {
                let d = DirtyPageEntry::parse(&e, 0)?;
                let mut l = Vec::new();
                for i in 0..d.lcns_to_follow as usize {
                    l.push(crate::util::u64_at(&e, DIRTY_PAGE_ENTRY_LEN + 8 * i)?);
                }
                cp.dirty_pages.push((d, l));
            }
        }
        let tt = dump(ra.transaction_table_lsn, Op::TransactionTableDump)?;
        if !tt.is_empty() {
            for (o, e) in RestartTable::parse(&tt)?.entries {
                cp.transactions.push((o, TransactionEntry::parse(&e, 0)?));
            }
        }
        Ok((ra, cp))
    }
}

/// Result of the analysis pass: which transactions were still open at the
/// end of the log (to undo, newest record first) and which committed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// LSN the redo pass starts at.
    pub redo_lsn: u64,
    /// Transactions with no `ForgetTransaction` by the end of the log:
    /// transaction id → its last LSN (the undo chain's head).
    pub uncommitted: BTreeMap<u32, u64>,
    /// Transactions that committed (wrote `ForgetTransaction`).
    pub committed: Vec<u32>,
    /// Records seen from the start of the scan.
    pub records: usize,
    /// The open attribute table at the end of the log: the checkpoint's,
    /// then each `OpenNonresidentAttribute` record's entry (redo data) and
    /// name (undo data), by table offset.
    pub open_attributes: BTreeMap<u16, (OpenAttributeEntry, Vec<u16>)>,
    /// Client records naming a target attribute the table does not hold at
    /// that point of the log.
    pub unresolved_targets: usize,
    /// Client records (other than table dumps and `OpenNonresidentAttribute`)
    /// naming no target attribute (0).
    pub no_target: usize,
}

/// The analysis pass: from the last checkpoint's start (or the log's
/// start) to the end of the log, tracks each transaction's last LSN;
/// `ForgetTransaction` ends (commits) a transaction.
pub fn analyze(log: &Log<'_>) -> Result<Analysis> {
    let mut a = Analysis::default();
    let client = log
        .current
        .clients
        .first()
        .ok_or(Error::Corrupt("$LogFile has no client"))?;
    let mut start = log.start_lsn();
    if client.client_restart_lsn != 0 {
        let (ra, cp) = Checkpoint::read(log, client.client_restart_lsn)?;
        for (o, e) in cp.open_attributes {
            let name = cp
                .attribute_names
                .iter()
                .find(|(n, _)| *n as u32 == o)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            a.open_attributes.insert(o as u16, (e, name));
        }
        for (id, t) in cp.transactions {
            if t.previous_lsn != 0 {
                a.uncommitted.insert(id, t.previous_lsn);
            }
        }
        start = Some(ra.start_of_checkpoint);
        for (d, _) in cp.dirty_pages {
            if d.oldest_lsn != 0 {
                start = start.map(|s| s.min(d.oldest_lsn));
            }
        }
    }
    let Some(start) = start else { return Ok(a) };
    a.redo_lsn = start;
    for r in log.records_from(start) {
        a.records += 1;
        note(&mut a, &r);
    }
    Ok(a)
}

fn note(a: &mut Analysis, r: &LogRecord) {
    if r.header.record_type != LFS_CLIENT_RECORD {
        return;
    }
    let n = NtfsRecord::parse(&r.data).ok();
    let op = n.as_ref().and_then(|n| n.redo_op());
    if let Some(n) = &n {
        let ta = n.header.target_attribute;
        if op == Some(Op::OpenNonresidentAttribute) {
            if let Ok(mut e) = OpenAttributeEntry::parse(&n.redo, 0) {
                e.lsn_of_open_record = r.header.this_lsn;
                let name = crate::util::utf16_units(&n.undo);
                a.open_attributes.insert(ta, (e, name));
            }
        } else if !matches!(
            op,
            Some(
                Op::OpenAttributeTableDump
                    | Op::AttributeNamesDump
                    | Op::DirtyPageTableDump
                    | Op::TransactionTableDump
                    | Op::ForgetTransaction
            )
        ) {
            if ta == 0 {
                a.no_target += 1;
            } else if !a.open_attributes.contains_key(&ta) {
                a.unresolved_targets += 1;
            }
        }
    }
    if r.header.transaction_id == 0 {
        return;
    }
    let t = r.header.transaction_id;
    if op == Some(Op::ForgetTransaction) {
        a.uncommitted.remove(&t);
        a.committed.push(t);
    } else {
        a.uncommitted.insert(t, r.header.this_lsn);
    }
}
