//! Transaction logs (new format, `.LOG1` / `.LOG2`) and crash-safe flushing.
//!
//! A flush ([`LoggedHive::flush`]) is write-ahead: it first writes the pages that changed since
//! the last flush into one log file (a base block copy of file type 6 followed by one `HvLE` log
//! entry, hashed with Marvin32), alternating between the two logs; then it writes the primary
//! file's base block with the primary sequence number incremented, the dirty pages, and finally
//! the base block with the secondary sequence number equal to the primary. A primary whose
//! sequence numbers differ was interrupted and is repaired on load ([`load_with_logs`]) by
//! replaying the log entries of the matching log whose hashes are valid.
//!
//! Files are modelled by the [`HiveFiles`] trait; [`MemFiles`] keeps them in memory and can fail
//! every write after a given number, which is how the crash tests interrupt a flush at each write
//! boundary. Old-format logs (file type 1 or 2: a `DIRT` bitmap of dirty 512-byte sectors followed
//! by the sectors) are read during recovery when no new-format log continues the primary; they
//! are never written.

use alloc::vec::Vec;

use crate::*;

/// Log entries start at this offset of a log file (after the 512-byte base block copy).
pub const LOG_ENTRIES_OFFSET: usize = 512;
/// File type of a new-format transaction log in its base block.
pub const HFILE_TYPE_LOG_NEW: u32 = 6;
/// Marvin32 seed used for log entry hashes.
pub const MARVIN_SEED: u64 = 0x82EF_4D88_7A4E_55C5;

/// The Marvin32 hash of `data` with `seed` (64-bit result: high half `s1`, low half `s0`).
pub fn marvin32(seed: u64, data: &[u8]) -> u64 {
    fn block(s0: &mut u32, s1: &mut u32) {
        *s1 ^= *s0;
        *s0 = s0.rotate_left(20);
        *s0 = s0.wrapping_add(*s1);
        *s1 = s1.rotate_left(9);
        *s1 ^= *s0;
        *s0 = s0.rotate_left(27);
        *s0 = s0.wrapping_add(*s1);
        *s1 = s1.rotate_left(19);
    }
    let mut s0 = seed as u32;
    let mut s1 = (seed >> 32) as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        s0 = s0.wrapping_add(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        block(&mut s0, &mut s1);
    }
    let r = chunks.remainder();
    let fin: u32 = match r.len() {
        0 => 0x80,
        1 => 0x8000 | r[0] as u32,
        2 => 0x0080_0000 | r[0] as u32 | (r[1] as u32) << 8,
        _ => 0x8000_0000 | r[0] as u32 | (r[1] as u32) << 8 | (r[2] as u32) << 16,
    };
    s0 = s0.wrapping_add(fin);
    block(&mut s0, &mut s1);
    block(&mut s0, &mut s1);
    ((s1 as u64) << 32) | s0 as u64
}

/// The three files of a hive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiveFile {
    /// The primary hive file.
    Primary,
    /// `.LOG1`.
    Log1,
    /// `.LOG2`.
    Log2,
}

/// Storage for a hive's files. Each `write` / `set_len` call is one write boundary.
pub trait HiveFiles {
    /// The whole contents of a file.
    fn read(&self, f: HiveFile) -> Vec<u8>;
    /// Writes `data` at `offset`, extending the file with zeros if needed.
    fn write(&mut self, f: HiveFile, offset: usize, data: &[u8]) -> Result<()>;
    /// Truncates or extends a file.
    fn set_len(&mut self, f: HiveFile, len: usize) -> Result<()>;
    /// Makes the writes to `f` so far durable before any later write (`CmpFileFlush`: a cached
    /// file's data reaches the disk). Files written straight through need nothing.
    fn flush(&mut self, _f: HiveFile) -> Result<()> {
        Ok(())
    }
}

/// In-memory hive files. With `fail_after = Some(n)`, the first `n` writes succeed and every later
/// one fails with `STATUS_REGISTRY_IO_FAILED` without changing anything (a crash).
#[derive(Clone, Debug, Default)]
pub struct MemFiles {
    /// Primary, LOG1, LOG2.
    pub files: [Vec<u8>; 3],
    /// Crash after this many more writes.
    pub fail_after: Option<usize>,
    /// Writes performed so far.
    pub writes: usize,
    /// Flush barriers: the file and how many writes had been performed when it was flushed.
    pub flushes: Vec<(HiveFile, usize)>,
}

impl MemFiles {
    fn idx(f: HiveFile) -> usize {
        match f {
            HiveFile::Primary => 0,
            HiveFile::Log1 => 1,
            HiveFile::Log2 => 2,
        }
    }
    fn boundary(&mut self) -> Result<()> {
        if let Some(n) = self.fail_after {
            if self.writes >= n {
                return Err(Error::Status(STATUS_REGISTRY_IO_FAILED));
            }
        }
        self.writes += 1;
        Ok(())
    }
}

impl HiveFiles for MemFiles {
    fn read(&self, f: HiveFile) -> Vec<u8> {
        self.files[Self::idx(f)].clone()
    }
    fn write(&mut self, f: HiveFile, offset: usize, data: &[u8]) -> Result<()> {
        self.boundary()?;
        let v = &mut self.files[Self::idx(f)];
        let end = offset
            .checked_add(data.len())
            .ok_or(Error::Status(STATUS_INVALID_PARAMETER))?;
        if v.len() < end {
            v.resize(end, 0);
        }
        v[offset..end].copy_from_slice(data);
        Ok(())
    }
    fn set_len(&mut self, f: HiveFile, len: usize) -> Result<()> {
        self.boundary()?;
        self.files[Self::idx(f)].resize(len, 0);
        Ok(())
    }
    fn flush(&mut self, f: HiveFile) -> Result<()> {
        self.flushes.push((f, self.writes));
        Ok(())
    }
}

/// Builds one `HvLE` log entry holding `pages` (offset relative to the hive bins, page bytes).
pub fn build_log_entry(seq: u32, bins_len: u32, pages: &[(u32, &[u8])]) -> Vec<u8> {
    try_build_log_entry(seq, bins_len, pages).unwrap_or_default()
}

/// [`build_log_entry`], allocating the entry fallibly (`STATUS_INSUFFICIENT_RESOURCES`).
pub fn try_build_log_entry(seq: u32, bins_len: u32, pages: &[(u32, &[u8])]) -> Result<Vec<u8>> {
    let data: usize = pages.iter().map(|(_, p)| p.len()).sum();
    let size = (40 + pages.len() * 8 + data).div_ceil(512) * 512;
    let mut e = Vec::new();
    e.try_reserve_exact(size)
        .map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
    e.resize(40, 0);
    e[0..4].copy_from_slice(b"HvLE");
    wr32(&mut e, 8, 0);
    wr32(&mut e, 12, seq);
    wr32(&mut e, 16, bins_len);
    wr32(&mut e, 20, pages.len() as u32);
    for (off, p) in pages {
        e.extend_from_slice(&off.to_le_bytes());
        e.extend_from_slice(&(p.len() as u32).to_le_bytes());
    }
    for (_, p) in pages {
        e.extend_from_slice(p);
    }
    e.resize(size, 0);
    wr32(&mut e, 4, size as u32);
    let h1 = marvin32(MARVIN_SEED, &e[40..]);
    wr64(&mut e, 24, h1);
    let h2 = marvin32(MARVIN_SEED, &e[..32]);
    wr64(&mut e, 32, h2);
    Ok(e)
}

/// One parsed, hash-verified log entry.
struct Entry {
    seq: u32,
    bins_len: u32,
    pages: Vec<(u32, Vec<u8>)>,
}

/// Parses the valid entries of a new-format log, stopping at the first bad one.
fn log_entries(log: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut pos = LOG_ENTRIES_OFFSET;
    while let Some(h) = log.get(pos..pos + 40) {
        if &h[0..4] != b"HvLE" {
            break;
        }
        let size = rd32(h, 4).unwrap_or(0) as usize;
        if size < 512 || !size.is_multiple_of(512) {
            break;
        }
        let Some(e) = log.get(pos..pos + size) else {
            break;
        };
        if rd64(e, 24) != Some(marvin32(MARVIN_SEED, &e[40..]))
            || rd64(e, 32) != Some(marvin32(MARVIN_SEED, &e[..32]))
        {
            break;
        }
        let bins_len = rd32(e, 16).unwrap_or(0);
        let n = rd32(e, 20).unwrap_or(0) as usize;
        if !(bins_len as usize).is_multiple_of(PAGE) || n == 0 || n > size / 8 {
            break;
        }
        let mut pages = Vec::new();
        let mut dp = 40 + n * 8;
        let mut ok = true;
        for i in 0..n {
            let off = rd32(e, 40 + i * 8).unwrap_or(0);
            let len = rd32(e, 44 + i * 8).unwrap_or(0) as usize;
            match e.get(dp..dp.saturating_add(len)) {
                Some(p) if (off as usize).saturating_add(len) <= bins_len as usize => {
                    pages.push((off, p.to_vec()))
                }
                _ => {
                    ok = false;
                    break;
                }
            }
            dp += len;
        }
        if !ok {
            break;
        }
        out.push(Entry {
            seq: rd32(e, 12).unwrap_or(0),
            bins_len,
            pages,
        });
        pos += size;
    }
    out
}

fn base_valid(b: &[u8]) -> bool {
    b.len() >= 512 && &b[0..4] == b"regf" && rd32(b, 508) == Some(base_checksum(&b[..512]))
}

/// How a hive was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The primary file was consistent.
    Clean,
    /// Log entries were replayed (`STATUS_REGISTRY_RECOVERED`): up to this sequence number.
    Recovered(u32),
    /// The primary's sequence numbers differ and no log repaired it; it was read as it is
    /// ([`OpenOptions::strict`] off). Changes of the interrupted flush may be missing.
    Dirty {
        /// Primary sequence number.
        seq1: u32,
        /// Secondary sequence number.
        seq2: u32,
    },
}

/// How [`open`] treats a primary whose sequence numbers differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    /// Replay the transaction logs given, when one continues the primary.
    pub apply_logs: bool,
    /// Refuse a dirty primary that no log repairs (`STATUS_REGISTRY_CORRUPT`), as the
    /// configuration manager does. Off: read it as it is and report [`Recovery::Dirty`] (what
    /// forensic readers do with hives copied from a running system without their logs).
    pub strict: bool,
}

impl Default for OpenOptions {
    /// Logs applied, strict: the configuration manager's behaviour.
    fn default() -> Self {
        OpenOptions {
            apply_logs: true,
            strict: true,
        }
    }
}

/// Opens a hive from its primary file and logs as `opts` says. A dirty primary is first repaired
/// from the logs (when `apply_logs`); if no log continues it, a strict open fails as
/// [`load_with_logs`] does, otherwise the primary is read as it is ([`Recovery::Dirty`]; its
/// sequence numbers are made equal so that a later write produces a consistent file).
pub fn open(
    primary: &[u8],
    log1: &[u8],
    log2: &[u8],
    opts: OpenOptions,
) -> Result<(Hive, Recovery)> {
    let (l1, l2) = if opts.apply_logs {
        (log1, log2)
    } else {
        (&[][..], &[][..])
    };
    match load_with_logs(primary, l1, l2) {
        Ok(r) => Ok(r),
        Err(e) if opts.strict => Err(e),
        Err(e) => {
            let base = primary.get(..PAGE).unwrap_or(&[]);
            let (seq1, seq2) = (rd32(base, 4).unwrap_or(0), rd32(base, 8).unwrap_or(0));
            if !base_valid(base) || seq1 == seq2 {
                // Not a dirty hive: the error is about something else.
                return Err(e);
            }
            let mut h = Hive::from_bytes_dirty(primary)?;
            h.set_sequence(seq1.max(seq2));
            Ok((h, Recovery::Dirty { seq1, seq2 }))
        }
    }
}

/// Loads a hive from its primary file and logs (`HvLoadHive` with recovery): a primary whose
/// sequence numbers differ (or whose base block is damaged) is repaired by replaying the
/// hash-valid entries of its new-format logs in sequence order.
///
/// The writer alternates between `.LOG1` and `.LOG2`, so the entries to replay can be split
/// between them. With a valid primary base block both logs are used: the one whose entries are
/// earlier first, then the other where it continues the sequence (its first entry numbered one
/// past the last entry applied). A log whose entries all precede the primary's secondary sequence
/// number was already written to the primary and is skipped. Since Windows 8.1 the first entry
/// to replay can be numbered past the primary's secondary sequence number: when the writer
/// switched logs twice before the primary was written in full, it wrote the primary's hive bins
/// without updating its base block, and the skipped entries are gone. With a damaged primary base
/// block only the log with the latest entries is used, with that log's copy of the base block.
pub fn load_with_logs(primary: &[u8], log1: &[u8], log2: &[u8]) -> Result<(Hive, Recovery)> {
    let pbase = primary.get(..PAGE).unwrap_or(&[]);
    let pvalid = base_valid(pbase);
    if pvalid && rd32(pbase, 4) == rd32(pbase, 8) {
        return Ok((Hive::from_bytes(primary)?, Recovery::Clean));
    }
    // The secondary sequence number says which state the primary last completed.
    let done = if pvalid {
        rd32(pbase, 8).unwrap_or(0)
    } else {
        0
    };
    // Each log's entries from its own sequence number on, without gaps; with its base block.
    let mut logs: Vec<(Vec<u8>, Vec<Entry>)> = Vec::new();
    for log in [log1, log2] {
        if !base_valid(log) || rd32(log, 28) != Some(HFILE_TYPE_LOG_NEW) {
            continue;
        }
        let lseq = rd32(log, 4).unwrap_or(0);
        let mut keep = Vec::new();
        let mut want = lseq;
        for e in log_entries(log) {
            if e.seq != want {
                break;
            }
            want = want.wrapping_add(1);
            keep.push(e);
        }
        let Some(last) = keep.last().map(|e| e.seq) else {
            continue;
        };
        if pvalid && last < done {
            continue;
        }
        let mut base = log[..512].to_vec();
        base.resize(PAGE, 0);
        logs.push((base, keep));
    }
    let first_seq = |l: &(Vec<u8>, Vec<Entry>)| l.1.first().map_or(0, |e| e.seq);
    let last_seq = |l: &(Vec<u8>, Vec<Entry>)| l.1.last().map_or(0, |e| e.seq);
    let chosen = if pvalid {
        logs.sort_by_key(first_seq);
        let mut it = logs.into_iter();
        match it.next() {
            None => None,
            Some((lbase, mut entries)) => {
                for (_, next) in it {
                    let after = entries.last().map_or(0, |e| e.seq).wrapping_add(1);
                    // Continue with the entries of the other log from `after` on, if it has it.
                    let Some(at) = next.iter().position(|e| e.seq == after) else {
                        break;
                    };
                    entries.extend(next.into_iter().skip(at));
                }
                Some((lbase, entries))
            }
        }
    } else {
        logs.into_iter().max_by_key(last_seq)
    };
    let Some((lbase, entries)) = chosen else {
        for log in [log1, log2] {
            if let Some((h, seq)) = recover_old_format(primary, log, pvalid, done) {
                return Ok((h, Recovery::Recovered(seq)));
            }
        }
        return corrupt(
            4,
            "primary needs recovery but no transaction log continues it",
        );
    };
    let mut base = if pvalid { pbase.to_vec() } else { lbase };
    let mut bins = primary.get(PAGE..).unwrap_or(&[]).to_vec();
    let mut seq = 0;
    for e in &entries {
        bins.resize(e.bins_len as usize, 0);
        for (off, p) in &e.pages {
            let o = *off as usize;
            bins[o..o + p.len()].copy_from_slice(p);
        }
        wr32(&mut base, 40, e.bins_len);
        seq = e.seq;
    }
    wr32(&mut base, 4, seq);
    wr32(&mut base, 8, seq);
    wr32(&mut base, 28, 0);
    let sum = base_checksum(&base);
    wr32(&mut base, 508, sum);
    base.extend_from_slice(&bins);
    let mut h = Hive::from_bytes(&base)?;
    h.set_sequence(seq);
    Ok((h, Recovery::Recovered(seq)))
}

/// A hive bound to its files, flushed with write-ahead logging. The pages to write are the
/// hive's dirty pages (`HvMarkCellDirty` marks them as cells change), so a flush touches only what
/// changed and needs no copy of the whole hive.
#[derive(Clone, Debug)]
pub struct LoggedHive {
    /// The hive; mutate it freely between flushes.
    pub hive: Hive,
    /// Length of the hive bins the files hold.
    flushed_len: usize,
    seq: u32,
    next_log: HiveFile,
}

impl LoggedHive {
    /// Writes `hive` as a new primary file (sequence 1) with empty logs.
    pub fn create(files: &mut dyn HiveFiles, mut hive: Hive) -> Result<LoggedHive> {
        hive.set_sequence(1);
        let image = hive.try_stable_image()?;
        files.set_len(HiveFile::Log1, 0)?;
        files.set_len(HiveFile::Log2, 0)?;
        files.set_len(HiveFile::Primary, 0)?;
        files.write(HiveFile::Primary, PAGE, &image)?;
        files.write(HiveFile::Primary, 0, &hive.base_block(1, 1, 0))?;
        hive.clear_dirty();
        Ok(LoggedHive {
            hive,
            flushed_len: image.len(),
            seq: 1,
            next_log: HiveFile::Log1,
        })
    }

    /// Binds `hive`, which the boot loader read from the primary file (`CmpInitializeHiveList`
    /// for a hive handed over in memory), to its files once they can be opened. `primary_base` is
    /// the primary file's base block as it is now. When the primary is consistent and holds the
    /// state the hive was read from (same sequence number), the next flush writes only what
    /// changed since the hive was read; otherwise (a primary that needed recovery, or one that
    /// differs) every page is written and the sequence continues past both files' numbers.
    pub fn attach(mut hive: Hive, primary_base: &[u8]) -> LoggedHive {
        let valid = base_valid(primary_base);
        let seq1 = rd32(primary_base, 4).unwrap_or(0);
        let seq2 = rd32(primary_base, 8).unwrap_or(0);
        let bins = rd32(primary_base, 40).unwrap_or(0) as usize;
        let mine = hive.base_info().seq1;
        if valid && seq1 == seq2 && seq1 == mine && bins.is_multiple_of(PAGE) && bins != 0 {
            return LoggedHive {
                hive,
                flushed_len: bins,
                seq: mine,
                next_log: HiveFile::Log1,
            };
        }
        let seq = if valid {
            mine.max(seq1).max(seq2)
        } else {
            mine
        };
        hive.set_sequence(seq);
        hive.mark_all_dirty();
        LoggedHive {
            hive,
            flushed_len: 0,
            seq,
            next_log: HiveFile::Log1,
        }
    }

    /// Opens a hive from its files, recovering from the logs if needed.
    pub fn open(files: &dyn HiveFiles) -> Result<(LoggedHive, Recovery)> {
        let (mut hive, r) = load_with_logs(
            &files.read(HiveFile::Primary),
            &files.read(HiveFile::Log1),
            &files.read(HiveFile::Log2),
        )?;
        let seq = hive.base_info().seq1;
        // A recovered hive's primary is stale: every page is written on the next flush.
        let flushed_len = match r {
            Recovery::Clean => {
                hive.clear_dirty();
                hive.stable_len()
            }
            Recovery::Recovered(_) | Recovery::Dirty { .. } => {
                hive.mark_all_dirty();
                0
            }
        };
        Ok((
            LoggedHive {
                hive,
                flushed_len,
                seq,
                next_log: HiveFile::Log1,
            },
            r,
        ))
    }

    /// The sequence number of the last completed flush.
    pub fn sequence(&self) -> u32 {
        self.seq
    }

    /// Whether the hive changed since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.hive.is_dirty() || self.hive.stable_len() != self.flushed_len
    }

    /// Flushes the hive (`HvSyncHive`): log first, then the primary with sequence discipline.
    /// On an error the files hold either the previous or the new state once recovered, and the
    /// in-memory hive is unchanged (the flush can be retried).
    pub fn flush(&mut self, files: &mut dyn HiveFiles) -> Result<()> {
        if !self.is_dirty() {
            return Ok(());
        }
        let offs = self.hive.dirty_pages();
        let mut dirty: Vec<(u32, &[u8])> = Vec::new();
        dirty
            .try_reserve_exact(offs.len().max(1))
            .map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
        for off in offs {
            match self.hive.stable_page(off) {
                Some(p) => dirty.push((off, p)),
                None => return corrupt(off, "dirty page outside the hive bins"),
            }
        }
        let new = self
            .seq
            .checked_add(1)
            .ok_or(Error::Status(STATUS_REGISTRY_IO_FAILED))?;
        let bins_len = self.hive.stable_len();
        if dirty.is_empty() {
            match self.hive.stable_page(0) {
                Some(p) => dirty.push((0, p)),
                None => return corrupt(0, "hive without bins"),
            }
        }
        // 1. The log: base block copy (file type 6) and one entry.
        let log = self.next_log;
        let entry = try_build_log_entry(new, bins_len as u32, &dirty)?;
        let mut lbase = self.hive.base_block(new, new, HFILE_TYPE_LOG_NEW);
        lbase.truncate(512);
        files.set_len(log, 0)?;
        files.write(log, LOG_ENTRIES_OFFSET, &entry)?;
        drop(entry);
        files.write(log, 0, &lbase)?;
        files.flush(log)?;
        // 2. The primary: sequence 1 first, the pages, then sequence 2.
        files.write(
            HiveFile::Primary,
            0,
            &self.hive.base_block(new, self.seq, 0),
        )?;
        files.set_len(HiveFile::Primary, PAGE + bins_len)?;
        for (off, page) in &dirty {
            files.write(HiveFile::Primary, PAGE + *off as usize, page)?;
        }
        files.flush(HiveFile::Primary)?;
        files.write(HiveFile::Primary, 0, &self.hive.base_block(new, new, 0))?;
        files.flush(HiveFile::Primary)?;
        drop(dirty);
        self.seq = new;
        self.hive.set_sequence(new);
        self.hive.clear_dirty();
        self.flushed_len = bins_len;
        self.next_log = match log {
            HiveFile::Log1 => HiveFile::Log2,
            _ => HiveFile::Log1,
        };
        Ok(())
    }
}

/// Signature of the dirty vector in an old-format log.
pub const DIRT: &[u8; 4] = b"DIRT";

/// Replays an old-format log: its base block (file type 1 or 2, equal sequence numbers newer than
/// the primary's secondary) is followed at offset 512 by `DIRT`, a bitmap with one bit per 512-byte
/// sector of the hive bins, and (from the next 512-byte boundary) the dirty sectors in bit order.
fn recover_old_format(primary: &[u8], log: &[u8], pvalid: bool, done: u32) -> Option<(Hive, u32)> {
    if !base_valid(log) || !matches!(rd32(log, 28), Some(1) | Some(2)) {
        return None;
    }
    let seq = rd32(log, 4)?;
    if rd32(log, 8)? != seq || (pvalid && seq <= done) {
        return None;
    }
    if log.get(512..516)? != DIRT {
        return None;
    }
    let bins_len = rd32(log, 40)? as usize;
    if bins_len == 0 || !bins_len.is_multiple_of(PAGE) {
        return None;
    }
    let sectors = bins_len / 512;
    let bitmap = log.get(516..516 + sectors.div_ceil(8))?;
    let mut data = (516 + bitmap.len()).div_ceil(512) * 512;
    let mut bins = primary.get(PAGE..).unwrap_or(&[]).to_vec();
    bins.resize(bins_len, 0);
    for i in 0..sectors {
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            let s = log.get(data..data + 512)?;
            bins[i * 512..i * 512 + 512].copy_from_slice(s);
            data += 512;
        }
    }
    let mut base = log[..512].to_vec();
    base.resize(PAGE, 0);
    wr32(&mut base, 28, 0);
    let sum = base_checksum(&base);
    wr32(&mut base, 508, sum);
    base.extend_from_slice(&bins);
    let mut h = Hive::from_bytes(&base).ok()?;
    h.set_sequence(seq);
    Some((h, seq))
}
