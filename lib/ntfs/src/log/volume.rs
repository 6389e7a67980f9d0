//! Journaling a mounted volume (opt-in: [`Volume::enable_logging`]).
//!
//! What is logged, and how: every metadata write that passes through
//! `txn.rs` is logged before it reaches the device, and the log is forced
//! first (write-ahead). A whole file record or INDX block is logged as
//! Windows' logical operations (`logical.rs`: `InitializeFileRecordSegment`,
//! `CreateAttribute`, `AddIndexEntryAllocation`, ...), preceded — at the
//! page's first change in the transaction — by its image before (redo
//! `Noop`, undo `UpdateNonresidentValue`), which lets undo repair a torn
//! page; the page then carries the LSN of its last record. Bitmap pages
//! are logged as `SetBitsInNonresidentBitMap`/`ClearBitsInNonresidentBitMap`
//! ranges. Everything else (`$MFTMirr` copies, attribute lists, `$Secure`
//! data, page changes no logical sequence reproduces) is logged physically:
//! redo `UpdateNonresidentValue` with the new bytes, undo with the bytes on
//! disk before, in pieces of at most 16 KiB. File data is not logged, as
//! on Windows. Each outermost public operation (`Volume::op`) is one
//! transaction; when it succeeds, its last record is `ForgetTransaction`
//! (undo `CompensationLogRecord`) and the device is flushed; the restart
//! area is written at checkpoints only (below).
//!
//! Each record names its stream by its open attribute table entry
//! (`target_attribute`), opened by an `OpenNonresidentAttribute` record the
//! first time a stream is written. Checkpoints (every
//! [`CHECKPOINT_EVERY`] commits, when a quarter of the log is in use at a
//! commit, and within a transaction when half of it is) flush the device,
//! dump the open attribute, attribute name, dirty page and transaction
//! tables and write the restart area pointing at the checkpoint's restart
//! record; the client's oldest LSN then moves to the checkpoint's start (or
//! the open transaction's first record), which is how the circular log
//! reclaims space. [`Volume::recover`] replays it: analysis from the last
//! checkpoint, redo of every record from the checkpoint's start in LSN
//! order (page LSN checked for file record and index buffer operations),
//! then undo of
//! the records of transactions with no `ForgetTransaction`, newest first,
//! each preceded by a compensation log record appended to the log (so a
//! crash during recovery does not undo twice); then the log is reset to
//! clean with LSNs continuing.

use super::layout::*;
use super::logical;
use super::ntfs::{analyze, table_offset, Checkpoint, NtfsRecord};
use super::ops::Op;
use super::read::Log;
use super::write::{LogStore, LogWriter, NewRecord};
use crate::attr::AT_DATA;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::record::unfixup;
use crate::runlist::{self, Run};
use crate::volume::{rec, Volume};
use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;

/// Largest redo (and undo) image in one record.
const PIECE: usize = 16 << 10;

/// Transaction id of the (single) transaction in progress: the offset of
/// the first transaction table entry.
const TXN: u32 = 0x18;

/// A checkpoint is taken at the commit of every this many transactions.
pub const CHECKPOINT_EVERY: u32 = 32;

/// Open attribute table slots at most (table offsets must fit a `u16`);
/// writes to further streams name no attribute (`target_attribute` 0).
const MAX_OPEN: usize = 1024;

/// `TransactionActive` in a transaction table entry.
const TRANSACTION_ACTIVE: u8 = 1;

/// A stream metadata writes go to, as its open attribute table entry
/// names it: file reference, attribute type and name, index buffer size
/// (index allocations).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// File reference (sequence << 48 | record) of the file holding it.
    pub file_reference: u64,
    /// Attribute type code.
    pub type_code: u32,
    /// Attribute name (UTF-16).
    pub name: Vec<u16>,
    /// Bytes per index buffer of an `$INDEX_ALLOCATION` (else 0).
    pub bytes_per_index_buffer: u32,
}

impl Target {
    /// A stream of system file `n` (whose sequence number is its record
    /// number, `$MFT`'s 1, as format gives them).
    pub fn system(n: u64, type_code: u32, name: &[u16], bytes_per_index_buffer: u32) -> Self {
        Self {
            file_reference: crate::attr::make_ref(n, n.max(1) as u16),
            type_code,
            name: name.to_vec(),
            bytes_per_index_buffer,
        }
    }

    fn entry(&self, lsn_of_open_record: u64) -> OpenAttributeEntry {
        OpenAttributeEntry {
            allocated_or_next_free: RESTART_ENTRY_ALLOCATED,
            bytes_per_index_buffer: self.bytes_per_index_buffer,
            attribute_type_code: self.type_code,
            file_reference: self.file_reference,
            lsn_of_open_record,
            ..Default::default()
        }
    }
}

/// An open attribute table slot in use.
#[derive(Clone, Debug)]
struct OpenSlot {
    target: Target,
    /// LSN of its `OpenNonresidentAttribute` record.
    lsn: u64,
    /// Named by a record since the last checkpoint.
    used: bool,
}

/// Logging state of a volume.
#[derive(Debug)]
pub struct VolumeLog {
    writer: LogWriter,
    runs: Vec<Run>,
    size: u64,
    /// Last LSN of the open transaction (0: none open).
    prev: u64,
    /// First LSN of the open transaction.
    first: u64,
    /// The open attribute table: slot `i` is table offset
    /// `table_offset(0x28, i)`.
    open: Vec<Option<OpenSlot>>,
    /// Commits since the last checkpoint.
    commits: u32,
    /// Checkpoints taken.
    pub checkpoints: u64,
    /// Records written (for tests and statistics).
    pub records: u64,
    /// Log forces.
    pub forces: u64,
    /// Records written by redo operation code.
    pub ops: [u64; 0x26],
    /// Page writes no logical operation sequence described (logged
    /// physically).
    pub physical_pages: u64,
    /// Logical page changes whose undo operations did not give the page
    /// back (checked in tests; must stay 0).
    pub undo_mismatches: u64,
    /// Device offsets of the pages the open transaction changed (their
    /// image before it is logged once).
    touched: BTreeSet<u64>,
}

/// What a metadata write in progress is (set by `txn.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetaKind {
    /// Not known: logged physically.
    #[default]
    Other,
    /// A whole file record of `$MFT`.
    Record,
    /// A whole INDX block (`i30`: of a `$I30` index).
    Index {
        /// A file name index.
        i30: bool,
    },
    /// Bytes of `$Bitmap` or of the MFT bitmap.
    Bitmap,
}

struct DevLog<'a, D> {
    dev: &'a mut D,
    runs: &'a [Run],
    cs: u64,
    size: u64,
}

impl<D: BlockDevice> DevLog<'_, D> {
    fn each(
        &mut self,
        off: u64,
        len: usize,
        mut f: impl FnMut(&mut D, u64, core::ops::Range<usize>) -> Result<()>,
    ) -> Result<()> {
        let mut done = 0usize;
        while done < len {
            let pos = off + done as u64;
            let vcn = pos / self.cs;
            let in_cl = pos % self.cs;
            let (lcn, left) =
                runlist::lookup(self.runs, vcn).ok_or(Error::Corrupt("$LogFile run"))?;
            let lcn = lcn.ok_or(Error::Corrupt("$LogFile sparse"))?;
            let n = core::cmp::min(left * self.cs - in_cl, (len - done) as u64) as usize;
            f(self.dev, lcn * self.cs + in_cl, done..done + n)?;
            done += n;
        }
        Ok(())
    }
}

impl<D: BlockDevice> LogStore for DevLog<'_, D> {
    fn read_log(&mut self, off: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len();
        self.each(off, len, |d, p, r| d.read_at(p, &mut buf[r]).map(|_| ()))
    }

    fn write_log(&mut self, off: u64, buf: &[u8]) -> Result<()> {
        self.each(off, buf.len(), |d, p, r| d.write_at(p, &buf[r]))
    }

    fn log_size(&self) -> u64 {
        self.size
    }
}

impl<D: BlockDevice> Volume<D> {
    fn log_store_parts(&mut self) -> Result<(Vec<Run>, u64)> {
        let s = self.open_stream(rec::LOGFILE, AT_DATA, &[])?;
        if s.runs.iter().any(|r| r.lcn.is_none()) {
            return Err(Error::Corrupt("$LogFile is sparse"));
        }
        Ok((s.runs.clone(), s.data_size))
    }

    /// Starts journaling metadata writes to `$LogFile` (see the module
    /// docs). A log that needs recovery is refused: run
    /// [`Volume::recover`] first.
    pub fn enable_logging(&mut self) -> Result<()> {
        if self.state.log.is_some() {
            return Ok(());
        }
        let (runs, size) = self.log_store_parts()?;
        let cs = self.cs;
        let mut st = DevLog {
            dev: &mut self.dev,
            runs: &runs,
            cs,
            size,
        };
        let writer = LogWriter::open(&mut st)?;
        self.state.log = Some(Box::new(VolumeLog {
            writer,
            runs,
            size,
            prev: 0,
            first: 0,
            open: Vec::new(),
            commits: 0,
            checkpoints: 0,
            records: 0,
            forces: 0,
            ops: [0; 0x26],
            physical_pages: 0,
            undo_mismatches: 0,
            touched: BTreeSet::new(),
        }));
        // The first checkpoint (empty tables) makes the log dirty until a
        // clean shutdown.
        if let Err(e) = self.log_checkpoint() {
            self.state.log = None;
            return Err(e);
        }
        Ok(())
    }

    /// Checkpoints taken since logging started.
    pub fn log_checkpoints(&self) -> Option<u64> {
        self.state.log.as_ref().map(|l| l.checkpoints)
    }

    /// Takes a checkpoint (*Windows Internals*: NTFS "writes a checkpoint
    /// record ... periodically"): flushes the device, so no page is dirty,
    /// dumps the open attribute table (slots no record named since the last
    /// checkpoint are closed first, when no transaction is open), the
    /// attribute names, an empty dirty page table and the transaction table
    /// (the open transaction, if any, with its first, last and undo-next
    /// LSNs), then the client restart record; the restart area names it and
    /// the oldest LSN moves to the checkpoint's start, or to the open
    /// transaction's first record. The device is flushed again so the
    /// restart area is stable before the log reuses the space it freed.
    pub(crate) fn log_checkpoint(&mut self) -> Result<()> {
        self.dev.flush()?;
        self.with_log(|l, st| {
            let mut cp = Checkpoint::default();
            for (i, s) in l.open.iter_mut().enumerate() {
                let Some(slot) = s else { continue };
                if !slot.used && l.prev == 0 {
                    *s = None;
                    continue;
                }
                slot.used = false;
                let off = table_offset(OPEN_ATTRIBUTE_ENTRY_LEN as u16, i);
                cp.open_attributes.push((off, slot.target.entry(slot.lsn)));
                if !slot.target.name.is_empty() {
                    cp.attribute_names
                        .push((off as u16, slot.target.name.clone()));
                }
            }
            while l.open.last().is_some_and(|s| s.is_none()) {
                l.open.pop();
            }
            if l.prev != 0 {
                cp.transactions.push((
                    TXN,
                    TransactionEntry {
                        allocated_or_next_free: RESTART_ENTRY_ALLOCATED,
                        transaction_state: TRANSACTION_ACTIVE,
                        first_lsn: l.first,
                        previous_lsn: l.prev,
                        undo_next_lsn: l.prev,
                        ..Default::default()
                    },
                ));
            }
            cp.write(&mut l.writer, st)?;
            l.writer.write_restart(st, false)?;
            if l.checkpoints == 0 {
                // Both restart pages say dirty from the first checkpoint on.
                l.writer.write_restart(st, false)?;
            }
            l.forces += 2;
            l.commits = 0;
            l.checkpoints += 1;
            Ok(())
        })?;
        self.dev.flush()
    }

    /// The open attribute table offset of the stream being written
    /// (`WriteState::meta_target`), opening it with an
    /// `OpenNonresidentAttribute` record (redo: the table entry; undo: the
    /// attribute name) the first time; 0 when no stream is named.
    fn open_target(&mut self) -> Result<u16> {
        let Some(t) = self.state.meta_target.clone() else {
            return Ok(0);
        };
        let Some(l) = self.state.log.as_mut() else {
            return Ok(0);
        };
        let es = OPEN_ATTRIBUTE_ENTRY_LEN as u16;
        if let Some(i) = l
            .open
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.target == t))
        {
            if let Some(s) = l.open[i].as_mut() {
                s.used = true;
            }
            return Ok(table_offset(es, i) as u16);
        }
        let i = match l.open.iter().position(|s| s.is_none()) {
            Some(i) => i,
            None if l.open.len() < MAX_OPEN => {
                l.open.push(None);
                l.open.len() - 1
            }
            None => return Ok(0),
        };
        let off = table_offset(es, i) as u16;
        let mut entry = alloc::vec![0u8; OPEN_ATTRIBUTE_ENTRY_LEN];
        t.entry(0).write(&mut entry, 0);
        let name: Vec<u8> = t.name.iter().flat_map(|u| u.to_le_bytes()).collect();
        let mut r = NtfsRecord::new(Op::OpenNonresidentAttribute, Op::Noop, entry, name);
        r.header.target_attribute = off;
        let data = r.to_bytes()?;
        let lsn = self.with_log(|l, st| {
            let lsn = l.writer.append(
                st,
                &NewRecord {
                    record_type: LFS_CLIENT_RECORD,
                    ..Default::default()
                },
                &data,
            )?;
            l.records += 1;
            l.ops[Op::OpenNonresidentAttribute as usize] += 1;
            l.open[i] = Some(OpenSlot {
                target: t,
                lsn,
                used: true,
            });
            Ok(lsn)
        })?;
        lsn.map(|_| off)
            .ok_or(Error::InvalidParameter("not logging"))
    }

    /// Takes a checkpoint within or before a transaction when half of the
    /// log is in use and a checkpoint would free some of it.
    fn checkpoint_if_short(&mut self) -> Result<()> {
        let due = self.state.log.as_mut().is_some_and(|l| {
            let oldest = l.writer.client().oldest_lsn;
            l.writer.used_bytes() * 2 >= l.writer.capacity() && (l.prev == 0 || l.first > oldest)
        });
        if due {
            self.log_checkpoint()?;
        }
        Ok(())
    }

    /// Whether metadata writes are being logged.
    pub fn logging(&self) -> bool {
        self.state.log.is_some()
    }

    /// Records written per redo operation, the page writes logged
    /// physically for want of a logical description, and (tests) the
    /// logical changes whose undo did not restore the page.
    pub fn log_op_counts(&self) -> Option<([u64; 0x26], u64, u64)> {
        self.state
            .log
            .as_ref()
            .map(|l| (l.ops, l.physical_pages, l.undo_mismatches))
    }

    /// Log statistics: (records written, log forces).
    pub fn log_stats(&self) -> Option<(u64, u64)> {
        self.state.log.as_ref().map(|l| (l.records, l.forces))
    }

    /// Ends journaling: marks the log clean (the volume is consistent).
    pub fn disable_logging(&mut self) -> Result<()> {
        let Some(mut l) = self.state.log.take() else {
            return Ok(());
        };
        self.flush()?;
        let cs = self.cs;
        let mut st = DevLog {
            dev: &mut self.dev,
            runs: &l.runs,
            cs,
            size: l.size,
        };
        let next = l.writer.next_lsn();
        l.writer.client().oldest_lsn = next;
        l.writer.write_restart(&mut st, true)?;
        self.dev.flush()
    }

    fn with_log<T>(
        &mut self,
        f: impl FnOnce(&mut VolumeLog, &mut DevLog<'_, D>) -> Result<T>,
    ) -> Result<Option<T>> {
        let Some(mut l) = self.state.log.take() else {
            return Ok(None);
        };
        let cs = self.cs;
        let runs = core::mem::take(&mut l.runs);
        let r = {
            let mut st = DevLog {
                dev: &mut self.dev,
                runs: &runs,
                cs,
                size: l.size,
            };
            f(&mut l, &mut st)
        };
        l.runs = runs;
        self.state.log = Some(l);
        r.map(Some)
    }

    fn log_append(&mut self, r: &mut NtfsRecord) -> Result<u64> {
        self.checkpoint_if_short()?;
        r.header.target_attribute = self.open_target()?;
        let data = r.to_bytes()?;
        let lsn = self.with_log(|l, st| {
            let nr = NewRecord {
                previous_lsn: l.prev,
                undo_next_lsn: l.prev,
                record_type: LFS_CLIENT_RECORD,
                transaction_id: TXN,
            };
            let lsn = l.writer.append(st, &nr, &data)?;
            if l.prev == 0 {
                l.first = lsn;
            }
            l.prev = lsn;
            l.records += 1;
            let op = r.header.redo_operation as usize;
            if let Some(c) = l.ops.get_mut(op) {
                *c += 1;
            }
            Ok(l.prev)
        })?;
        lsn.ok_or(Error::InvalidParameter("not logging"))
    }

    fn log_force(&mut self) -> Result<()> {
        self.with_log(|l, st| {
            l.writer.force(st)?;
            l.forces += 1;
            Ok(())
        })?;
        Ok(())
    }

    /// Logs bytes about to be written at `pos` physically: redo
    /// `UpdateNonresidentValue` (new bytes) / undo `UpdateNonresidentValue`
    /// (the bytes there now), in pieces of at most 16 KiB; `redo` false
    /// logs only the undo image (redo `Noop`: a page's image before the
    /// transaction's first change to it). Returns the last LSN.
    fn log_physical(&mut self, pos: u64, vcn: u64, buf: &[u8], redo: bool) -> Result<u64> {
        let cs = self.cs;
        let mut done = 0;
        let mut lsn = 0;
        while done < buf.len() {
            let n = core::cmp::min(PIECE, buf.len() - done);
            let p = pos + done as u64;
            let mut old = alloc::vec![0u8; n];
            self.dev.read_at(p, &mut old)?;
            let mut r = if redo {
                NtfsRecord::new(
                    Op::UpdateNonresidentValue,
                    Op::UpdateNonresidentValue,
                    buf[done..done + n].to_vec(),
                    old,
                )
            } else {
                NtfsRecord::new(Op::Noop, Op::UpdateNonresidentValue, Vec::new(), old)
            };
            let first = p / cs;
            let last = (p + n as u64 - 1) / cs;
            r.lcns = (first..=last).collect();
            r.header.target_vcn = vcn + (done as u64 + pos % cs) / cs;
            r.header.record_offset = (p % cs) as u16;
            lsn = self.log_append(&mut r)?;
            done += n;
        }
        Ok(lsn)
    }

    /// Writes metadata bytes at device offset `pos` (inside the volume),
    /// logging them first when journaling is on. `vcn` is the target's VCN
    /// (in clusters) in its stream. File records and index blocks are
    /// logged as Windows' logical operations (`logical.rs`), bitmap pages
    /// as set/clear bit ranges, anything else (and a page change no
    /// logical operation sequence reproduces) physically.
    pub(crate) fn meta_write(&mut self, pos: u64, vcn: u64, buf: &[u8]) -> Result<()> {
        if self.state.log.is_none() {
            return self.dev.write_at(pos, buf);
        }
        let kind = self.state.meta_kind;
        let page = match kind {
            MetaKind::Record => buf.len() == self.rs && pos.is_multiple_of(512),
            MetaKind::Index { .. } => {
                buf.len() >= 512
                    && buf.len().is_multiple_of(512)
                    && buf.len() <= PIECE
                    && pos.is_multiple_of(512)
            }
            _ => false,
        };
        if page {
            return self.log_page(pos, vcn, buf, kind);
        }
        if kind == MetaKind::Bitmap {
            return self.log_bits(pos, vcn, buf);
        }
        self.log_physical(pos, vcn, buf, true)?;
        self.log_force()?;
        self.dev.write_at(pos, buf)
    }

    fn log_page(&mut self, pos: u64, vcn: u64, buf: &[u8], kind: MetaKind) -> Result<()> {
        let cs = self.cs;
        let n = buf.len();
        let mut old_raw = alloc::vec![0u8; n];
        self.dev.read_at(pos, &mut old_raw)?;
        let magic: &[u8; 4] = if kind == MetaKind::Record {
            b"FILE"
        } else {
            b"INDX"
        };
        let mut old_un = old_raw.clone();
        let old_valid = unfixup(&mut old_un, magic).is_ok();
        if !old_valid {
            old_un.copy_from_slice(&old_raw);
        }
        let mut new_un = buf.to_vec();
        let changes = if unfixup(&mut new_un, magic).is_err() {
            None
        } else if kind == MetaKind::Record {
            logical::encode_record(&old_un, old_valid, &new_un)
        } else if let (MetaKind::Index { i30 }, true) = (kind, old_valid) {
            logical::encode_index(&old_un, &new_un, i30)
        } else {
            None
        };
        let first_touch = self
            .state
            .log
            .as_mut()
            .is_some_and(|l| l.touched.insert(pos));
        if first_touch {
            // The page as it was before this transaction: what undo puts
            // back when the page itself cannot be trusted (a torn write).
            self.log_physical(pos, vcn, &old_raw, false)?;
        }
        if changes.as_ref().is_some_and(|c| c.is_empty()) {
            // Nothing but the LSN or the update sequence number changed:
            // the page keeps its LSN.
            let lsn = crate::util::u64_at(&old_un, 8)?;
            if first_touch {
                self.log_force()?;
            }
            let mut out = buf.to_vec();
            crate::util::put64(&mut out, 8, lsn);
            self.state.page_lsn = Some(lsn);
            return self.dev.write_at(pos, &out);
        }
        if cfg!(test) {
            if let Some(ch) = &changes {
                if !logical::undo_restores(&old_un, &new_un, ch, kind == MetaKind::Record) {
                    if let Some(l) = self.state.log.as_mut() {
                        l.undo_mismatches += 1;
                    }
                }
            }
        }
        let lsn = match changes {
            Some(ch) => {
                let mut lsn = 0;
                for c in ch {
                    let mut r = NtfsRecord::new(c.redo_op, c.undo_op, c.redo, c.undo);
                    r.lcns = (pos / cs..=(pos + n as u64 - 1) / cs).collect();
                    r.header.target_vcn = vcn;
                    r.header.cluster_block_offset = ((pos % cs) / 512) as u16;
                    r.header.record_offset = c.record_offset;
                    r.header.attribute_offset = c.attribute_offset;
                    lsn = self.log_append(&mut r)?;
                }
                lsn
            }
            None => {
                if let Some(l) = self.state.log.as_mut() {
                    l.physical_pages += 1;
                }
                self.log_physical(pos, vcn, buf, true)?
            }
        };
        self.log_force()?;
        // The page carries the LSN of its last log record (redo skips
        // records the page already reflects).
        let mut out = buf.to_vec();
        crate::util::put64(&mut out, 8, lsn);
        self.state.page_lsn = Some(lsn);
        self.dev.write_at(pos, &out)
    }

    fn log_bits(&mut self, pos: u64, vcn: u64, buf: &[u8]) -> Result<()> {
        let cs = self.cs;
        let mut old = alloc::vec![0u8; buf.len()];
        self.dev.read_at(pos, &mut old)?;
        let in_cl = (pos % cs) as usize;
        let cbits = cs as usize * 8;
        // Bit offsets from the start of the first cluster.
        let mut pad_old = alloc::vec![0u8; in_cl];
        pad_old.extend_from_slice(&old);
        let mut pad_new = alloc::vec![0u8; in_cl];
        pad_new.extend_from_slice(buf);
        let ranges = logical::bit_ranges(&pad_old, &pad_new, cbits);
        if ranges.is_empty() {
            return Ok(());
        }
        for (bit, count, set) in ranges {
            let c = (bit / cbits) as u64;
            let (redo, undo) = if set {
                (
                    Op::SetBitsInNonresidentBitMap,
                    Op::ClearBitsInNonresidentBitMap,
                )
            } else {
                (
                    Op::ClearBitsInNonresidentBitMap,
                    Op::SetBitsInNonresidentBitMap,
                )
            };
            let d = logical::bitmap_range(bit % cbits, count);
            let mut r = NtfsRecord::new(redo, undo, d.clone(), d);
            r.lcns = alloc::vec![pos / cs + c];
            r.header.target_vcn = vcn + c;
            self.log_append(&mut r)?;
        }
        self.log_force()?;
        self.dev.write_at(pos, buf)
    }

    /// Commits the open transaction (if any): `ForgetTransaction`, a
    /// device flush, and a checkpoint when one is due.
    pub(crate) fn log_commit(&mut self) -> Result<()> {
        let open = self.state.log.as_ref().is_some_and(|l| l.prev != 0);
        if !open {
            return Ok(());
        }
        let data = NtfsRecord::new(
            Op::ForgetTransaction,
            Op::CompensationLogRecord,
            Vec::new(),
            Vec::new(),
        )
        .to_bytes()?;
        self.with_log(|l, st| {
            let nr = NewRecord {
                previous_lsn: l.prev,
                undo_next_lsn: 0,
                record_type: LFS_CLIENT_RECORD,
                transaction_id: TXN,
            };
            l.writer.append(st, &nr, &data)?;
            l.records += 1;
            l.writer.force(st)?;
            l.forces += 1;
            l.prev = 0;
            l.first = 0;
            l.touched.clear();
            l.commits += 1;
            Ok(())
        })?;
        self.dev.flush()?;
        let due = self.state.log.as_mut().is_some_and(|l| {
            l.commits >= CHECKPOINT_EVERY || l.writer.used_bytes() * 4 >= l.writer.capacity()
        });
        if due {
            self.log_checkpoint()?;
        }
        Ok(())
    }

    /// Device offset of the page a record names: its first LCN plus
    /// `cluster_block_offset` sectors, `len` bytes of which must lie in
    /// the (consecutive) LCNs it lists.
    fn record_page(&self, r: &NtfsRecord, extra: u64, len: u64) -> Result<u64> {
        let cs = self.cs;
        let bad = Error::Corrupt("log record target");
        let first = *r
            .lcns
            .first()
            .ok_or(Error::Corrupt("log record without LCNs"))?;
        if r.lcns.windows(2).any(|w| w[1] != w[0] + 1)
            || r.lcns.last().is_some_and(|l| *l >= self.total_clusters())
        {
            return Err(bad);
        }
        let start = (r.header.cluster_block_offset as u64) * 512 + extra;
        if start + len > r.lcns.len() as u64 * cs {
            return Err(bad);
        }
        first
            .checked_mul(cs)
            .and_then(|p| p.checked_add(start))
            .ok_or(bad)
    }

    /// Applies one record's redo (`redo`) or undo operation during
    /// recovery. Redo of a file record or index buffer operation is
    /// skipped when the page's LSN shows it already has it (`lsn`: the
    /// record's); undo always applies. A page that is torn or not what
    /// the operation expects is left alone (its image before the
    /// transaction, logged at its first change, is put back by undo).
    /// Returns whether the operation was applied.
    fn replay(&mut self, r: &NtfsRecord, redo: bool, lsn: Option<u64>) -> Result<bool> {
        let Some(op) = (if redo { r.redo_op() } else { r.undo_op() }) else {
            return Ok(false);
        };
        let data = if redo { &r.redo } else { &r.undo };
        let same_len = r.redo.len() == r.undo.len();
        let ro = r.header.record_offset as usize;
        let ao = r.header.attribute_offset as usize;
        let cls = class(op);
        match cls {
            Class::Physical => {
                let pos = self.record_page(r, ro as u64, data.len() as u64)?;
                self.dev.write_at(pos, data)?;
                Ok(true)
            }
            Class::Bits => {
                let pos = self.record_page(r, 0, 0)?;
                let len =
                    r.lcns.len() as u64 * self.cs - (r.header.cluster_block_offset as u64) * 512;
                let mut p = alloc::vec![0u8; len as usize];
                self.dev.read_at(pos, &mut p)?;
                if logical::apply_bits(&mut p, op, data).is_err() {
                    return Ok(false);
                }
                self.dev.write_at(pos, &p)?;
                Ok(true)
            }
            Class::Record | Class::Index => {
                let (magic, len, extra): (&[u8; 4], u64, u64) = if cls == Class::Record {
                    (b"FILE", self.rs as u64, 0)
                } else {
                    let pos = self.record_page(r, ro as u64, 512)?;
                    let mut h = [0u8; 512];
                    self.dev.read_at(pos, &mut h)?;
                    let cnt = crate::util::u16_at(&h, 6)? as u64;
                    if !(2..=129).contains(&cnt) {
                        return Ok(false);
                    }
                    (b"INDX", (cnt - 1) * 512, ro as u64)
                };
                let pos = self.record_page(r, extra, len)?;
                let mut raw = alloc::vec![0u8; len as usize];
                self.dev.read_at(pos, &mut raw)?;
                let mut p = raw.clone();
                if unfixup(&mut p, magic).is_err() {
                    if op != Op::InitializeFileRecordSegment {
                        return Ok(false);
                    }
                    p.copy_from_slice(&raw);
                }
                if let Some(lsn) = lsn {
                    if crate::util::u64_at(&p, 8)? >= lsn {
                        return Ok(false);
                    }
                }
                let ok = if cls == Class::Record {
                    logical::apply_record(&mut p, op, data, ro, ao, same_len)
                } else {
                    logical::apply_index(&mut p, op, data, ao)
                };
                if ok.is_err() {
                    return Ok(false);
                }
                if let Some(lsn) = lsn {
                    crate::util::put64(&mut p, 8, lsn);
                }
                if crate::record::fixup(&mut p).is_err() {
                    return Ok(false);
                }
                self.dev.write_at(pos, &p)?;
                Ok(true)
            }
            Class::None => Ok(false),
        }
    }

    /// Restart recovery: when `$LogFile` is not clean, redoes every logged
    /// write from the oldest LSN in LSN order, undoes those of transactions
    /// that did not commit (newest first), and marks the log clean with
    /// LSNs continuing. Returns (records redone, records undone); a clean
    /// log returns (0, 0).
    pub fn recover(&mut self) -> Result<(usize, usize)> {
        if self.state.log.is_some() {
            return Err(Error::InvalidParameter("recovery on a volume being logged"));
        }
        let (runs, size) = self.log_store_parts()?;
        let cs = self.cs;
        let mut bytes = alloc::vec![0u8; usize::try_from(size).map_err(|_| Error::OutOfRange)?];
        DevLog {
            dev: &mut self.dev,
            runs: &runs,
            cs,
            size,
        }
        .read_log(0, &mut bytes)?;
        let (recs, an, mut writer) = {
            let log = Log::open(&bytes)?;
            if log.current.clean() {
                // A crash while the end of recovery wrote the restart pages
                // leaves one clean and the other not: finish it.
                let both = [&log.first, &log.second]
                    .iter()
                    .all(|p| p.as_ref().is_ok_and(|p| p.clean()));
                if !both {
                    let lsn = log.current.area.current_lsn;
                    let mut st = DevLog {
                        dev: &mut self.dev,
                        runs: &runs,
                        cs,
                        size,
                    };
                    super::write::reset_clean(&mut st, lsn)?;
                    self.dev.flush()?;
                }
                return Ok((0, 0));
            }
            let an = analyze(&log)?;
            let recs: Vec<_> = log.records().collect();
            // Undo writes compensation log records after the last record,
            // so a crash during recovery recovers (a log we cannot continue
            // — another geometry — is undone without them).
            let writer = match recs.last() {
                Some(last) => {
                    let mut st = DevLog {
                        dev: &mut self.dev,
                        runs: &runs,
                        cs,
                        size,
                    };
                    match LogWriter::resume(&mut st, &log, last) {
                        Ok(w) => Some(w),
                        Err(Error::Unsupported(_)) => None,
                        Err(e) => return Err(e),
                    }
                }
                None => None,
            };
            (recs, an, writer)
        };
        let mut last = recs.last().map(|r| r.header.this_lsn).unwrap_or(0);
        let mut redone = 0;
        let mut by_lsn = alloc::collections::BTreeMap::new();
        for r in &recs {
            if r.header.record_type != LFS_CLIENT_RECORD {
                continue;
            }
            let n = NtfsRecord::parse(&r.data)?;
            // Redo starts at the last checkpoint: everything before it was
            // on disk when it was taken.
            if r.header.this_lsn >= an.redo_lsn && self.replay(&n, true, Some(r.header.this_lsn))? {
                redone += 1;
            }
            by_lsn.insert(r.header.this_lsn, (r.header, n));
        }
        // Undo: each open transaction's chain from its last record back by
        // undo-next LSNs. A compensation log record (undo operation
        // `CompensationLogRecord`) says the records after its undo-next LSN
        // are undone already: the chain jumps there.
        let mut undone = 0;
        for (&t, &head) in &an.uncommitted {
            let mut next = head;
            let mut prev = head;
            let mut steps = 0usize;
            while next != 0 && steps <= by_lsn.len() {
                steps += 1;
                let Some((h, n)) = by_lsn.get(&next) else {
                    break;
                };
                let undo_next = h.client_undo_next_lsn;
                if h.transaction_id != t || undo_next >= next {
                    break;
                }
                next = undo_next;
                let Some(op) = n.undo_op() else { continue };
                if matches!(op, Op::Noop | Op::CompensationLogRecord) {
                    continue;
                }
                let applied = match writer.as_mut() {
                    Some(w) => {
                        // The CLR: redo = this record's undo. Its undo data
                        // (never used) is the record's redo data, so redo
                        // and undo lengths compare as they did.
                        let mut clr = NtfsRecord::new(
                            op,
                            Op::CompensationLogRecord,
                            n.undo.clone(),
                            n.redo.clone(),
                        );
                        clr.header = n.header;
                        clr.header.redo_operation = op as u16;
                        clr.header.undo_operation = Op::CompensationLogRecord as u16;
                        clr.lcns = n.lcns.clone();
                        let data = clr.to_bytes()?;
                        let mut st = DevLog {
                            dev: &mut self.dev,
                            runs: &runs,
                            cs,
                            size,
                        };
                        let lsn = w.append(
                            &mut st,
                            &NewRecord {
                                previous_lsn: prev,
                                undo_next_lsn: undo_next,
                                record_type: LFS_CLIENT_RECORD,
                                transaction_id: t,
                            },
                            &data,
                        )?;
                        w.force(&mut st)?;
                        prev = lsn;
                        last = lsn;
                        self.replay(&clr, true, Some(lsn))?
                    }
                    None => self.replay(n, false, None)?,
                };
                undone += applied as usize;
            }
            if let Some(w) = writer.as_mut() {
                // The transaction is over.
                let data = NtfsRecord::new(
                    Op::ForgetTransaction,
                    Op::CompensationLogRecord,
                    Vec::new(),
                    Vec::new(),
                )
                .to_bytes()?;
                let mut st = DevLog {
                    dev: &mut self.dev,
                    runs: &runs,
                    cs,
                    size,
                };
                last = w.append(
                    &mut st,
                    &NewRecord {
                        previous_lsn: prev,
                        undo_next_lsn: 0,
                        record_type: LFS_CLIENT_RECORD,
                        transaction_id: t,
                    },
                    &data,
                )?;
                w.force(&mut st)?;
            }
        }
        if last == 0 {
            last = Log::open(&bytes)?.current.area.current_lsn;
        }
        self.dev.flush()?;
        // The cached allocation state is stale now.
        self.state = Default::default();
        let (mft_runs, mft_size) = {
            let s = self.open_stream(rec::MFT, AT_DATA, &[])?;
            (s.runs.clone(), s.data_size)
        };
        self.mft_runs = mft_runs;
        self.mft_size = mft_size;
        // Mark the log clean, continuing LSNs past the last one.
        let mut st = DevLog {
            dev: &mut self.dev,
            runs: &runs,
            cs,
            size,
        };
        super::write::reset_clean(&mut st, last)?;
        self.dev.flush()?;
        Ok((redone, undone))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Record,
    Index,
    Bits,
    Physical,
    None,
}

/// Which kind of page an operation works on.
fn class(op: Op) -> Class {
    use Op::*;
    match op {
        InitializeFileRecordSegment
        | DeallocateFileRecordSegment
        | CreateAttribute
        | DeleteAttribute
        | UpdateResidentValue
        | UpdateMappingPairs
        | SetNewAttributeSizes
        | AddIndexEntryRoot
        | DeleteIndexEntryRoot
        | SetIndexEntryVcnRoot
        | UpdateFileNameRoot => Class::Record,
        AddIndexEntryAllocation
        | DeleteIndexEntryAllocation
        | SetIndexEntryVcnAllocation
        | UpdateFileNameAllocation => Class::Index,
        SetBitsInNonresidentBitMap | ClearBitsInNonresidentBitMap => Class::Bits,
        UpdateNonresidentValue => Class::Physical,
        _ => Class::None,
    }
}
