//! Journaling a mounted volume (opt-in: [`Volume::enable_logging`]).
//!
//! What is logged, and how: every metadata write that passes through
//! `txn.rs` (file records and their `$MFTMirr` copies, index blocks,
//! `$Bitmap` and MFT bitmap pages, attribute lists, `$Secure` entries) is
//! preceded by one log record per contiguous piece (at most 16 KiB): redo
//! `UpdateNonresidentValue` with the new bytes, undo `UpdateNonresidentValue`
//! with the bytes on disk before, the target's LCNs, its VCN and the byte
//! offset in the first cluster (`record_offset`). The log is forced before
//! the write reaches the device (write-ahead). File data is not logged, as
//! on Windows. Each outermost public operation (`Volume::op`) is one
//! transaction; when it succeeds, its last record is `ForgetTransaction`
//! (undo `CompensationLogRecord`), the device is flushed and the restart
//! area moves the client's oldest LSN past it (writes are write-through,
//! so nothing older is needed for redo).
//!
//! These are physical images, not yet Windows' logical operations
//! (`InitializeFileRecordSegment`, `AddIndexEntryRoot`, ...): Windows could
//! parse our log but its restart would need our open attribute table,
//! which we do not dump. [`Volume::recover`] replays it: redo of every
//! record from the oldest LSN in LSN order, then undo of the records of
//! transactions with no `ForgetTransaction`, newest first; then the log is
//! reset to clean with LSNs continuing.

use super::layout::*;
use super::ntfs::{analyze, NtfsRecord};
use super::ops::Op;
use super::read::Log;
use super::write::{LogStore, LogWriter, NewRecord};
use crate::attr::AT_DATA;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::runlist::{self, Run};
use crate::volume::{rec, Volume};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Largest redo (and undo) image in one record.
const PIECE: usize = 16 << 10;

/// Transaction id of the (single) transaction in progress: the offset of
/// the first transaction table entry.
const TXN: u32 = 0x18;

/// Logging state of a volume.
#[derive(Debug)]
pub struct VolumeLog {
    writer: LogWriter,
    runs: Vec<Run>,
    size: u64,
    /// Last LSN of the open transaction (0: none open).
    prev: u64,
    /// Records written (for tests and statistics).
    pub records: u64,
    /// Log forces.
    pub forces: u64,
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
        let mut writer = LogWriter::open(&mut st)?;
        // Dirty from here until a clean shutdown.
        writer.write_restart(&mut st, false)?;
        self.dev.flush()?;
        self.state.log = Some(Box::new(VolumeLog {
            writer,
            runs,
            size,
            prev: 0,
            records: 0,
            forces: 1,
        }));
        Ok(())
    }

    /// Whether metadata writes are being logged.
    pub fn logging(&self) -> bool {
        self.state.log.is_some()
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

    /// Writes metadata bytes at device offset `pos` (inside the volume),
    /// logging them first when journaling is on. `vcn` is the target's VCN
    /// in its stream (for the record).
    pub(crate) fn meta_write(&mut self, pos: u64, vcn: u64, buf: &[u8]) -> Result<()> {
        if self.state.log.is_some() {
            let cs = self.cs;
            let mut done = 0;
            while done < buf.len() {
                let n = core::cmp::min(PIECE, buf.len() - done);
                let p = pos + done as u64;
                let mut old = alloc::vec![0u8; n];
                self.dev.read_at(p, &mut old)?;
                let first = p / cs;
                let last = (p + n as u64 - 1) / cs;
                let mut r = NtfsRecord::new(
                    Op::UpdateNonresidentValue,
                    Op::UpdateNonresidentValue,
                    buf[done..done + n].to_vec(),
                    old,
                );
                r.lcns = (first..=last).collect();
                r.header.target_vcn = vcn + (done as u64) / cs;
                r.header.record_offset = (p % cs) as u16;
                let data = r.to_bytes()?;
                self.with_log(|l, st| {
                    let nr = NewRecord {
                        previous_lsn: l.prev,
                        undo_next_lsn: l.prev,
                        record_type: LFS_CLIENT_RECORD,
                        transaction_id: TXN,
                    };
                    l.prev = l.writer.append(st, &nr, &data)?;
                    l.records += 1;
                    l.writer.force(st)?;
                    l.forces += 1;
                    Ok(())
                })?;
                done += n;
            }
        }
        self.dev.write_at(pos, buf)
    }

    /// Commits the open transaction (if any): `ForgetTransaction`, a
    /// device flush, and the restart area moving the oldest LSN past it.
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
            Ok(())
        })?;
        self.dev.flush()?;
        self.with_log(|l, st| {
            let next = l.writer.next_lsn();
            l.writer.client().oldest_lsn = next;
            l.writer.write_restart(st, false)
        })?;
        Ok(())
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
        let (recs, an, last) = {
            let log = Log::open(&bytes)?;
            if log.current.clean() {
                return Ok((0, 0));
            }
            let an = analyze(&log)?;
            let recs: Vec<_> = log.records().collect();
            let last = recs
                .last()
                .map(|r| r.header.this_lsn)
                .unwrap_or(log.current.area.current_lsn);
            (recs, an, last)
        };
        let total = self.total_clusters();
        let apply = |dev: &mut D, r: &NtfsRecord, redo: bool| -> Result<bool> {
            let op = if redo { r.redo_op() } else { r.undo_op() };
            if op != Some(Op::UpdateNonresidentValue) {
                return Ok(false);
            }
            let img = if redo { &r.redo } else { &r.undo };
            let first = *r
                .lcns
                .first()
                .ok_or(Error::Corrupt("log record without LCNs"))?;
            let end = first
                .checked_mul(cs)
                .and_then(|p| p.checked_add(r.header.record_offset as u64))
                .ok_or(Error::Corrupt("log record target"))?;
            if r.lcns.windows(2).any(|w| w[1] != w[0] + 1)
                || r.lcns.last().is_some_and(|l| *l >= total)
                || end + img.len() as u64 > (first + r.lcns.len() as u64) * cs
            {
                return Err(Error::Corrupt("log record target"));
            }
            dev.write_at(end, img)?;
            Ok(true)
        };
        let mut redone = 0;
        let mut parsed = Vec::new();
        for r in &recs {
            if r.header.record_type != LFS_CLIENT_RECORD {
                continue;
            }
            let n = NtfsRecord::parse(&r.data)?;
            if apply(&mut self.dev, &n, true)? {
                redone += 1;
            }
            parsed.push((r.header.transaction_id, n));
        }
        let mut undone = 0;
        for (t, n) in parsed.iter().rev() {
            if an.uncommitted.contains_key(t) && apply(&mut self.dev, n, false)? {
                undone += 1;
            }
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
