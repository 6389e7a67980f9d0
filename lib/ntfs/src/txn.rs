//! The one place metadata reaches the disk: file records (with the
//! `$MFTMirr` copy), index blocks, the cluster bitmap (`$Bitmap`) and the
//! MFT bitmap (`$MFT:$BITMAP`), plus the cluster and record allocators.
//!
//! Every metadata write funnels through `Volume::meta_write`, which logs
//! it to `$LogFile` when journaling is on (`log/volume.rs`); callers say
//! what they write (`WriteState::meta_kind`) so that file records, index
//! blocks and bitmap pages are logged as Windows' logical operations.

use crate::attr::*;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::index::{self, IndexEntry};
use crate::log::volume::Target;
use crate::record::{fixup, Body, NonResident, Record};
use crate::runlist::{self, Run};
use crate::volume::{rec, IndexCtx, Volume};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;

/// Cached allocation state of a volume opened for writing.
#[derive(Default, Debug)]
pub struct WriteState {
    bitmap: Option<Vec<u8>>,
    bitmap_runs: Vec<Run>,
    bitmap_dirty: BTreeSet<u64>,
    mft_bitmap: Option<Vec<u8>>,
    mft_bitmap_dirty: BTreeSet<u64>,
    data_hint: u64,
    mft_hint: u64,
    /// Metadata updates issued so far (the future LSN source).
    pub updates: u64,
    /// Allocator changes of the operation in progress, undone if it fails.
    undo: Option<Vec<Undo>>,
    /// `$LogFile` journaling state when logging is on (`log/volume.rs`).
    pub(crate) log: Option<alloc::boxed::Box<crate::log::volume::VolumeLog>>,
    /// The next `write_runs` carries file data (not logged).
    pub(crate) data_write: bool,
    /// What the metadata writes in progress are (for logical logging).
    pub(crate) meta_kind: crate::log::volume::MetaKind,
    /// The LSN the last logged page write carried (the `$MFTMirr` copy
    /// of a file record carries the same).
    pub(crate) page_lsn: Option<u64>,
    /// The stream the metadata writes in progress go to (its open
    /// attribute table entry names it in their log records).
    pub(crate) meta_target: Option<crate::log::volume::Target>,
}

/// An allocator change to undo when an operation fails.
#[derive(Clone, Copy, Debug)]
enum Undo {
    Clusters(u64, u64, bool),
    Record(u64, bool),
}

/// What a metadata update touched (for the future log record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// A file record.
    Record(u64),
    /// An index block of a file's index.
    IndexBlock(u64, u64),
    /// Bytes of `$Bitmap`.
    ClusterBitmap,
    /// Bytes of the MFT bitmap.
    MftBitmap,
}

impl<D: BlockDevice> Volume<D> {
    /// The journaling hook: every metadata update passes here first.
    pub(crate) fn log_update(&mut self, _what: Update) {
        self.state.updates = self.state.updates.wrapping_add(1);
    }

    /// Number of records mirrored in `$MFTMirr`.
    pub(crate) fn mirror_records(&self) -> u64 {
        core::cmp::max(4, self.cs / self.rs as u64)
    }

    /// Writes a file record (and its `$MFTMirr` copy for the first records).
    /// A whole file read by [`Volume::read_file_record`], or a record whose
    /// attributes do not fit, is laid out over extension records behind an
    /// `$ATTRIBUTE_LIST` (`attrlist.rs`).
    pub fn write_record(&mut self, r: &Record) -> Result<()> {
        if self.needs_layout(r) {
            return self.write_file_layout(r);
        }
        self.log_update(Update::Record(r.number));
        let mut b = r.build(self.rs)?;
        fixup(&mut b)?;
        self.write_record_raw(r.number, &b)
    }

    pub(crate) fn write_record_raw(&mut self, n: u64, b: &[u8]) -> Result<()> {
        let off = n
            .checked_mul(self.rs as u64)
            .ok_or(Error::Corrupt("record number"))?;
        let runs = core::mem::take(&mut self.mft_runs);
        self.state.meta_kind = crate::log::volume::MetaKind::Record;
        self.state.meta_target = Some(Target::system(rec::MFT, AT_DATA, &[], 0));
        self.state.page_lsn = None;
        let r = self.write_runs(&runs, off, b);
        self.state.meta_kind = Default::default();
        self.state.meta_target = None;
        self.mft_runs = runs;
        r?;
        if n < self.mirror_records() {
            let o = self
                .boot
                .mftmirr_lcn
                .checked_mul(self.cs)
                .and_then(|o| o.checked_add(n * self.rs as u64))
                .ok_or(Error::Corrupt("$MFTMirr LCN"))?;
            let mut m = b.to_vec();
            if let Some(lsn) = self.state.page_lsn.take() {
                crate::util::put64(&mut m, 8, lsn);
            }
            self.state.meta_target = Some(Target::system(rec::MFTMIRR, AT_DATA, &[], 0));
            let r = self.meta_write(o, (n * self.rs as u64) / self.cs, &m);
            self.state.meta_target = None;
            r?;
        }
        Ok(())
    }

    /// Writes bytes at `offset` of a run-mapped stream (all clusters must be allocated).
    pub(crate) fn write_runs(&mut self, runs: &[Run], offset: u64, buf: &[u8]) -> Result<()> {
        let data = core::mem::take(&mut self.state.data_write);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let vcn = pos / self.cs;
            let in_cl = pos % self.cs;
            let (lcn, left) =
                runlist::lookup(runs, vcn).ok_or(Error::Corrupt("write to unmapped VCN"))?;
            let lcn = lcn.ok_or(Error::Corrupt("write into a sparse run"))?;
            if lcn
                .checked_add(left)
                .is_none_or(|e| e > self.total_clusters())
            {
                return Err(Error::Corrupt("run beyond end of volume"));
            }
            let n = core::cmp::min(
                left.saturating_mul(self.cs) - in_cl,
                (buf.len() - done) as u64,
            ) as usize;
            if data {
                self.dev
                    .write_at(lcn * self.cs + in_cl, &buf[done..done + n])?;
            } else {
                self.meta_write(lcn * self.cs + in_cl, vcn, &buf[done..done + n])?;
            }
            done += n;
        }
        Ok(())
    }

    /// Writes one INDX block of an index.
    pub(crate) fn write_block(
        &mut self,
        ctx: &IndexCtx,
        vcn: u64,
        entries: &[IndexEntry],
    ) -> Result<()> {
        self.log_update(Update::IndexBlock(ctx.mft, vcn));
        let bs = ctx.hdr.block_size as usize;
        let b = index::build_block(vcn, entries, bs, ctx.hdr.ty == 0)?;
        let s = ctx
            .alloc
            .as_ref()
            .ok_or(Error::Corrupt("no $INDEX_ALLOCATION"))?;
        self.state.meta_kind = crate::log::volume::MetaKind::Index {
            i30: ctx.hdr.ty == AT_FILE_NAME,
        };
        self.state.meta_target = Some(Target {
            file_reference: make_ref(ctx.mft, ctx.record.seq),
            type_code: AT_INDEX_ALLOCATION,
            name: ctx.name.clone(),
            bytes_per_index_buffer: ctx.hdr.block_size,
        });
        let r = self.write_runs(&s.runs.clone(), vcn * ctx.vcn_unit, &b);
        self.state.meta_kind = Default::default();
        self.state.meta_target = None;
        r
    }

    // ----- cluster bitmap -----

    fn load_bitmap(&mut self) -> Result<()> {
        if self.state.bitmap.is_some() {
            return Ok(());
        }
        let s = self.open_stream(rec::BITMAP, AT_DATA, &[])?;
        let need = self.total_clusters().div_ceil(8);
        if s.data_size < need {
            return Err(Error::Corrupt("$Bitmap smaller than the volume"));
        }
        let data = self.read_whole(&s)?;
        self.state.bitmap_runs = s.runs;
        self.state.bitmap = Some(data);
        if self.state.data_hint == 0 {
            // Start user data past the MFT zone (an eighth of the volume after the MFT).
            self.state.data_hint =
                (self.boot.mft_lcn + self.total_clusters() / 8) % self.total_clusters().max(1);
        }
        Ok(())
    }

    /// Whether cluster `lcn` is marked in use.
    pub fn cluster_in_use(&mut self, lcn: u64) -> Result<bool> {
        self.load_bitmap()?;
        let bm = self.state.bitmap.as_ref().ok_or(Error::Corrupt("bitmap"))?;
        Ok(bm
            .get((lcn / 8) as usize)
            .is_some_and(|b| b & (1 << (lcn % 8)) != 0))
    }

    /// Runs one public operation: if it fails, the cluster and MFT bitmap
    /// changes it made in memory are undone (records it already wrote stay;
    /// the failure points are before the final record write).
    pub(crate) fn op<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let outer = self.state.undo.is_none();
        if outer {
            self.state.undo = Some(Vec::new());
        }
        let mut r = f(self);
        if outer {
            if r.is_ok() && self.state.log.is_some() {
                if let Err(e) = self.flush().and_then(|_| self.log_commit()) {
                    r = Err(e);
                }
            }
            let undo = self.state.undo.take().unwrap_or_default();
            if r.is_err() {
                for u in undo.into_iter().rev() {
                    let _ = match u {
                        Undo::Clusters(l, n, used) => self.set_bits_raw(l, n, !used),
                        Undo::Record(n, used) => self.set_mft_bit_raw(n, !used),
                    };
                }
                let _ = self.flush();
                // The rollback is consistent: it ends the transaction.
                let _ = self.log_commit();
            }
        }
        r
    }

    /// Makes the allocator changes so far permanent (they were written).
    fn keep_undo(&mut self, mark: usize) {
        if let Some(u) = self.state.undo.as_mut() {
            u.truncate(mark);
        }
    }

    fn undo_mark(&self) -> usize {
        self.state.undo.as_ref().map(|u| u.len()).unwrap_or(0)
    }

    fn set_bits(&mut self, lcn: u64, len: u64, used: bool) -> Result<()> {
        if let Some(u) = self.state.undo.as_mut() {
            u.push(Undo::Clusters(lcn, len, used));
        }
        self.set_bits_raw(lcn, len, used)
    }

    fn set_bits_raw(&mut self, lcn: u64, len: u64, used: bool) -> Result<()> {
        self.load_bitmap()?;
        let cs = self.cs;
        let bm = self.state.bitmap.as_mut().ok_or(Error::Corrupt("bitmap"))?;
        for c in lcn..lcn + len {
            let byte = bm
                .get_mut((c / 8) as usize)
                .ok_or(Error::Corrupt("cluster beyond bitmap"))?;
            if used {
                *byte |= 1 << (c % 8);
            } else {
                *byte &= !(1 << (c % 8));
            }
        }
        let first = lcn / 8 / cs;
        let last = (lcn + len).div_ceil(8) / cs;
        for p in first..=last {
            self.state.bitmap_dirty.insert(p);
        }
        Ok(())
    }

    /// Allocates `count` clusters, contiguous if possible, starting the search at `hint`.
    pub(crate) fn alloc_clusters(
        &mut self,
        count: u64,
        hint: Option<u64>,
    ) -> Result<Vec<(u64, u64)>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        self.load_bitmap()?;
        let total = self.total_clusters();
        let hint = hint.unwrap_or(self.state.data_hint) % total.max(1);
        let bm = self.state.bitmap.as_ref().ok_or(Error::Corrupt("bitmap"))?;
        let free = |c: u64| bm[(c / 8) as usize] & (1 << (c % 8)) == 0;
        // Pass 1: a contiguous run of `count`, scanning from the hint and wrapping.
        let mut found = None;
        'outer: for (from, to) in [(hint, total), (0, hint)] {
            let mut c = from;
            while c < to {
                if c % 8 == 0 && c + 8 <= to && bm[(c / 8) as usize] == 0xFF {
                    c += 8;
                    continue;
                }
                if free(c) {
                    let start = c;
                    while c < to && c - start < count && free(c) {
                        c += 1;
                    }
                    if c - start == count {
                        found = Some(start);
                        break 'outer;
                    }
                } else {
                    c += 1;
                }
            }
        }
        let mut out = Vec::new();
        if let Some(s) = found {
            out.push((s, count));
        } else {
            let mut need = count;
            let mut c = 0;
            while c < total && need > 0 {
                if free(c) {
                    let start = c;
                    while c < total && c - start < need && free(c) {
                        c += 1;
                    }
                    out.push((start, c - start));
                    need -= c - start;
                } else {
                    c += 1;
                }
            }
            if need > 0 {
                return Err(Error::DiskFull);
            }
        }
        for &(l, n) in &out {
            self.set_bits(l, n, true)?;
        }
        if let Some(&(l, n)) = out.last() {
            if hint == self.state.data_hint || out.len() > 1 {
                self.state.data_hint = l + n;
            }
        }
        Ok(out)
    }

    /// Marks clusters free.
    pub(crate) fn free_clusters(&mut self, lcn: u64, len: u64) -> Result<()> {
        self.set_bits(lcn, len, false)
    }

    /// Number of free clusters.
    pub fn free_cluster_count(&mut self) -> Result<u64> {
        self.load_bitmap()?;
        let total = self.total_clusters();
        let bm = self.state.bitmap.as_ref().ok_or(Error::Corrupt("bitmap"))?;
        Ok((0..total)
            .filter(|c| bm[(c / 8) as usize] & (1 << (c % 8)) == 0)
            .count() as u64)
    }

    // ----- MFT records -----

    fn load_mft_bitmap(&mut self) -> Result<()> {
        if self.state.mft_bitmap.is_some() {
            return Ok(());
        }
        let s = self.open_stream(rec::MFT, AT_BITMAP, &[])?;
        let data = self.read_whole(&s)?;
        self.state.mft_bitmap = Some(data);
        if self.state.mft_hint == 0 {
            self.state.mft_hint = rec::FIRST_USER;
        }
        Ok(())
    }

    /// Whether MFT record `n` is marked in use in the MFT bitmap.
    pub fn record_in_use(&mut self, n: u64) -> Result<bool> {
        self.load_mft_bitmap()?;
        let bm = self
            .state
            .mft_bitmap
            .as_ref()
            .ok_or(Error::Corrupt("mft bitmap"))?;
        Ok(bm
            .get((n / 8) as usize)
            .is_some_and(|b| b & (1 << (n % 8)) != 0))
    }

    fn set_mft_bit(&mut self, n: u64, used: bool) -> Result<()> {
        if let Some(u) = self.state.undo.as_mut() {
            u.push(Undo::Record(n, used));
        }
        self.set_mft_bit_raw(n, used)
    }

    fn set_mft_bit_raw(&mut self, n: u64, used: bool) -> Result<()> {
        self.load_mft_bitmap()?;
        let cs = self.cs;
        let bm = self
            .state
            .mft_bitmap
            .as_mut()
            .ok_or(Error::Corrupt("mft bitmap"))?;
        let byte = bm
            .get_mut((n / 8) as usize)
            .ok_or(Error::Corrupt("record beyond MFT bitmap"))?;
        if used {
            *byte |= 1 << (n % 8);
        } else {
            *byte &= !(1 << (n % 8));
        }
        self.state.mft_bitmap_dirty.insert(n / 8 / cs);
        Ok(())
    }

    /// Allocates a free MFT record, growing `$MFT` when all are used.
    /// Returns (record number, sequence number to use).
    pub(crate) fn alloc_record(&mut self) -> Result<(u64, u16)> {
        self.load_mft_bitmap()?;
        let records = self.mft_records();
        let mut n = None;
        {
            let bm = self
                .state
                .mft_bitmap
                .as_ref()
                .ok_or(Error::Corrupt("mft bitmap"))?;
            let start = self.state.mft_hint.max(rec::FIRST_USER);
            for pass in [(start, records), (rec::FIRST_USER, start)] {
                let mut i = pass.0;
                while i < pass.1 {
                    let b = bm.get((i / 8) as usize).copied().unwrap_or(0xFF);
                    if b == 0xFF && i % 8 == 0 {
                        i += 8;
                        continue;
                    }
                    if b & (1 << (i % 8)) == 0 {
                        n = Some(i);
                        break;
                    }
                    i += 1;
                }
                if n.is_some() {
                    break;
                }
            }
        }
        let n = match n {
            Some(n) => n,
            None => {
                self.grow_mft()?;
                records
            }
        };
        self.set_mft_bit(n, true)?;
        self.state.mft_hint = n + 1;
        let seq = match self.read_record_raw(n) {
            Ok(mut raw) => {
                if crate::record::unfixup(&mut raw, b"FILE").is_ok() {
                    let s = u16::from_le_bytes([raw[0x10], raw[0x11]]);
                    if s == 0 {
                        1
                    } else {
                        s
                    }
                } else {
                    1
                }
            }
            Err(_) => 1,
        };
        Ok((n, seq))
    }

    /// Frees a record: clears its in-use flag, bumps its sequence number.
    /// A base record's extension records and list clusters go with it.
    pub(crate) fn free_record(&mut self, mut r: Record) -> Result<()> {
        if r.base == 0
            && r.number != rec::MFT
            && (r.has_ext || r.find(AT_ATTRIBUTE_LIST, &[]).is_some())
        {
            self.free_layout(r.number)?;
        }
        r.flags = 0;
        r.seq = r.seq.wrapping_add(1).max(1);
        r.has_ext = false;
        r.attrs.retain(|a| a.ty != AT_ATTRIBUTE_LIST);
        while r.encoded_len(self.rs) > self.rs {
            r.attrs.pop();
        }
        self.write_record(&r)?;
        self.set_mft_bit(r.number, false)
    }

    /// Extends `$MFT` by 64 records (and its bitmap if needed).
    fn grow_mft(&mut self) -> Result<()> {
        let mark = self.undo_mark();
        let r = self.grow_mft_inner();
        if r.is_ok() {
            // The grown $MFT is on disk: its clusters stay allocated.
            self.keep_undo(mark);
        }
        r
    }

    fn grow_mft_inner(&mut self) -> Result<()> {
        // Grow by an eighth (at least 64 records) so a large MFT stays in few runs.
        let add_records = core::cmp::max(64, self.mft_records() / 8).div_ceil(64) * 64;
        let add_bytes = add_records * self.rs as u64;
        let mut r0 = self.read_record(rec::MFT)?;
        let d = r0
            .find(AT_DATA, &[])
            .and_then(|a| a.nonres())
            .ok_or(Error::Corrupt("$MFT $DATA"))?
            .clone();
        if d.start_vcn != 0 || r0.find(AT_ATTRIBUTE_LIST, &[]).is_some() {
            return Err(Error::Unsupported(
                "growing an $MFT that has an attribute list",
            ));
        }
        let new_size = d.data_size + add_bytes;
        let mut runs = d.runs.clone();
        let have = d.allocated_size;
        if new_size > have {
            let need = (new_size - have).div_ceil(self.cs);
            let hint = runs.last().and_then(|r| r.lcn.map(|l| l + r.len));
            let got = self.alloc_clusters(need, hint)?;
            let mut vcn = runlist::end_vcn(&runs);
            for (l, n) in got {
                runs.push(Run {
                    vcn,
                    len: n,
                    lcn: Some(l),
                });
                vcn += n;
            }
            runlist::normalize(&mut runs);
        }
        let alloc = runlist::end_vcn(&runs)
            .checked_mul(self.cs)
            .ok_or(Error::Corrupt("$MFT run list"))?;
        if let Some(a) = r0.find_mut(AT_DATA, &[]) {
            a.body = Body::NonResident(NonResident {
                start_vcn: 0,
                last_vcn: runlist::end_vcn(&runs) - 1,
                runs: runs.clone(),
                compression_unit: 0,
                allocated_size: alloc,
                data_size: new_size,
                initialized_size: new_size,
                compressed_size: None,
            });
        }
        // The new records must be addressable before they are written.
        let old_records = self.mft_records();
        self.mft_runs = runs;
        self.mft_size = new_size;
        // Grow the MFT bitmap to cover the new records (8-byte granules).
        let need_bytes = (new_size / self.rs as u64).div_ceil(64) * 8;
        self.resize_attr(&mut r0, AT_BITMAP, &[], need_bytes, true)?;
        if let Some(bm) = self.state.mft_bitmap.as_mut() {
            bm.resize(need_bytes as usize, 0);
        }
        let cs = self.cs;
        for p in 0..need_bytes.div_ceil(cs) {
            self.state.mft_bitmap_dirty.insert(p);
        }
        self.write_record(&r0)?;
        for n in old_records..self.mft_records() {
            let mut e = Record::new(n, 1);
            e.flags = 0;
            self.write_record(&e)?;
        }
        Ok(())
    }

    /// Writes back dirty bitmap pages.
    pub fn flush(&mut self) -> Result<()> {
        let cs = self.cs;
        if let Some(bm) = self.state.bitmap.take() {
            let dirty = core::mem::take(&mut self.state.bitmap_dirty);
            let runs = self.state.bitmap_runs.clone();
            let mut r = Ok(());
            for p in dirty {
                let start = (p * cs) as usize;
                if start >= bm.len() {
                    continue;
                }
                let end = core::cmp::min(bm.len(), start + cs as usize);
                self.log_update(Update::ClusterBitmap);
                self.state.meta_kind = crate::log::volume::MetaKind::Bitmap;
                self.state.meta_target = Some(Target::system(rec::BITMAP, AT_DATA, &[], 0));
                r = r.and(self.write_runs(&runs, start as u64, &bm[start..end]));
                self.state.meta_kind = Default::default();
                self.state.meta_target = None;
            }
            self.state.bitmap = Some(bm);
            r?;
        }
        if let Some(bm) = self.state.mft_bitmap.take() {
            let dirty = core::mem::take(&mut self.state.mft_bitmap_dirty);
            let r = if dirty.is_empty() {
                Ok(())
            } else {
                self.log_update(Update::MftBitmap);
                self.write_mft_bitmap(&bm, &dirty)
            };
            self.state.mft_bitmap = Some(bm);
            r?;
        }
        self.dev.flush()
    }

    /// Writes the dirty pages (cluster-sized) of the MFT bitmap.
    fn write_mft_bitmap(&mut self, bm: &[u8], dirty: &BTreeSet<u64>) -> Result<()> {
        let mut r0 = self.read_record(rec::MFT)?;
        let a = r0
            .find_mut(AT_BITMAP, &[])
            .ok_or(Error::Corrupt("$MFT has no $BITMAP"))?;
        match &mut a.body {
            Body::Resident { value, .. } => {
                *value = bm.to_vec();
                self.write_record(&r0)
            }
            Body::NonResident(n) => {
                let runs = n.runs.clone();
                let cs = self.cs as usize;
                for &p in dirty {
                    let start = p as usize * cs;
                    if start >= bm.len() {
                        continue;
                    }
                    let end = core::cmp::min(bm.len(), start + cs);
                    self.state.meta_kind = crate::log::volume::MetaKind::Bitmap;
                    self.state.meta_target = Some(Target::system(rec::MFT, AT_BITMAP, &[], 0));
                    let r = self.write_runs(&runs, start as u64, &bm[start..end]);
                    self.state.meta_kind = Default::default();
                    self.state.meta_target = None;
                    r?;
                }
                Ok(())
            }
        }
    }

    /// Sets the size of a non-resident (or resident) attribute of record `r`
    /// in memory, allocating or freeing clusters; new bytes are zero on disk.
    /// Converts resident → non-resident when `nonresident` is set.
    pub(crate) fn resize_attr(
        &mut self,
        r: &mut Record,
        ty: u32,
        name: &[u16],
        new_size: u64,
        nonresident: bool,
    ) -> Result<()> {
        self.resize_attr_ex(r, ty, name, new_size, nonresident, true)
    }

    /// [`Volume::resize_attr`]; with `free_excess` false, clusters past the
    /// new size stay allocated (preallocation).
    pub(crate) fn resize_attr_ex(
        &mut self,
        r: &mut Record,
        ty: u32,
        name: &[u16],
        new_size: u64,
        nonresident: bool,
        free_excess: bool,
    ) -> Result<()> {
        let cs = self.cs;
        let a = r.find(ty, name).ok_or(Error::NotFound)?.clone();
        let (mut runs, old_size, old_valid) = match &a.body {
            Body::Resident { value, .. } => {
                if !nonresident {
                    let mut v = value.clone();
                    v.resize(new_size as usize, 0);
                    if let Some(a) = r.find_mut(ty, name) {
                        a.body = Body::Resident {
                            value: v,
                            indexed: false,
                        };
                    }
                    return Ok(());
                }
                (Vec::new(), 0u64, value.clone())
            }
            Body::NonResident(n) => {
                if n.compression_unit != 0 || a.flags & (ATTR_COMPRESSED | ATTR_ENCRYPTED) != 0 {
                    return Err(Error::Unsupported(
                        "writing compressed or encrypted streams",
                    ));
                }
                (n.runs.clone(), n.data_size, Vec::new())
            }
        };
        let _ = old_size;
        let want = new_size.div_ceil(cs);
        let have = runlist::end_vcn(&runs);
        if want > have {
            let hint = runs.iter().rev().find_map(|r| r.lcn.map(|l| l + r.len));
            let got = self.alloc_clusters(want - have, hint)?;
            let mut vcn = have;
            for (l, n) in got {
                // New clusters read as zero.
                let zero = alloc::vec![0u8; (n * cs).min(1 << 20) as usize];
                let mut off = 0;
                while off < n * cs {
                    let k = core::cmp::min(zero.len() as u64, n * cs - off);
                    self.dev.write_at(l * cs + off, &zero[..k as usize])?;
                    off += k;
                }
                runs.push(Run {
                    vcn,
                    len: n,
                    lcn: Some(l),
                });
                vcn += n;
            }
            runlist::normalize(&mut runs);
        } else if want < have && free_excess {
            let mut keep = Vec::new();
            for r in runs {
                if r.vcn >= want {
                    if let Some(l) = r.lcn {
                        self.free_clusters(l, r.len)?;
                    }
                } else if r.vcn + r.len > want {
                    let k = want - r.vcn;
                    if let Some(l) = r.lcn {
                        self.free_clusters(l + k, r.len - k)?;
                    }
                    keep.push(Run {
                        vcn: r.vcn,
                        len: k,
                        lcn: r.lcn,
                    });
                } else {
                    keep.push(r);
                }
            }
            runs = keep;
        }
        let keep = core::cmp::min(old_valid.len() as u64, new_size) as usize;
        if keep > 0 {
            self.write_runs(&runs, 0, &old_valid[..keep])?;
        }
        // Zero the tail of the last cluster when shrinking within a cluster or
        // growing past old data, so stale bytes never become visible.
        if let Body::NonResident(n) = &a.body {
            if new_size > n.data_size && n.data_size % cs != 0 {
                let from = n.data_size;
                let to = core::cmp::min(new_size, n.data_size.div_ceil(cs).saturating_mul(cs));
                let z = alloc::vec![0u8; (to - from) as usize];
                self.write_runs(&runs, from, &z)?;
            }
        }
        let alloc = runlist::end_vcn(&runs)
            .checked_mul(cs)
            .ok_or(Error::Corrupt("run list size"))?;
        let sparse = runs.iter().any(|r| r.lcn.is_none());
        let in_use = runs
            .iter()
            .filter(|r| r.lcn.is_some())
            .map(|r| r.len)
            .sum::<u64>()
            * cs;
        if let Some(a) = r.find_mut(ty, name) {
            a.body = Body::NonResident(NonResident {
                start_vcn: 0,
                last_vcn: runlist::end_vcn(&runs).wrapping_sub(1),
                runs,
                compression_unit: 0,
                allocated_size: alloc,
                data_size: new_size,
                initialized_size: new_size,
                // A sparse stream's compressed size counts the clusters
                // actually allocated (not its holes).
                compressed_size: if a.flags & ATTR_SPARSE != 0 || sparse {
                    Some(in_use)
                } else {
                    None
                },
            });
        }
        Ok(())
    }
}
