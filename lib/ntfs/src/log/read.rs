//! Reading a `$LogFile`: both restart pages (the newer valid copy wins),
//! then the log records from an LSN forward across pages, through
//! multi-page records and the wrap from the end of the file back to the
//! first log page (one sequence number up), until the data stops being a
//! valid continuation (the end of the log).
//!
//! LFS 1.1 keeps two tail pages after the restart pages: copies of the
//! last, partly filled log page, whose 0x08 field is the file offset of the
//! page they copy. LFS 2.0 (Windows 8 and later) has a tail-copy area of
//! 0x20 pages there and its first log page at 0x22 pages. A page is read
//! from whichever valid copy — home or tail — is newest.

use super::layout::*;
use crate::error::{Error, Result};
use crate::record::unfixup;
use alloc::vec::Vec;

/// One parsed restart page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartPage {
    /// Offset in `$LogFile`.
    pub offset: u64,
    /// Its header.
    pub header: RestartPageHeader,
    /// Its restart area.
    pub area: RestartArea,
    /// The client records of the client array.
    pub clients: Vec<ClientRecord>,
}

impl RestartPage {
    /// Whether the restart area says the volume was dismounted cleanly.
    pub fn clean(&self) -> bool {
        self.area.flags & RESTART_VOLUME_IS_CLEAN != 0
    }

    /// The LFS version as "major.minor".
    pub fn version(&self) -> (i16, i16) {
        (self.header.major_version, self.header.minor_version)
    }
}

fn pow2_in(v: u32, lo: u32, hi: u32) -> bool {
    v.is_power_of_two() && (lo..=hi).contains(&v)
}

/// Parses a restart page (`page` is exactly one system page, fixups not
/// yet applied).
pub fn parse_restart_page(page: &[u8], offset: u64) -> Result<RestartPage> {
    let mut b = page.to_vec();
    if unfixup(&mut b, RSTR).is_err() && unfixup(&mut b, CHKD).is_err() {
        return Err(Error::Corrupt("$LogFile restart page signature or fixups"));
    }
    let header = RestartPageHeader::parse(&b)?;
    if header.system_page_size as usize != b.len() || !pow2_in(header.log_page_size, 512, 65536) {
        return Err(Error::Corrupt("$LogFile restart page sizes"));
    }
    if !matches!(header.major_version, 0..=2) {
        return Err(Error::Corrupt("$LogFile version"));
    }
    let ra = header.restart_offset as usize;
    if !ra.is_multiple_of(8) || ra < RESTART_PAGE_HEADER_LEN || ra + RESTART_AREA_LEN > b.len() {
        return Err(Error::Corrupt("$LogFile restart area offset"));
    }
    let area = RestartArea::parse(&b, ra)?;
    let ca = area.client_array_offset as usize;
    let clients_end = ca
        .checked_add(area.log_clients as usize * CLIENT_RECORD_LEN)
        .ok_or(Error::Corrupt("$LogFile client array"))?;
    if !ca.is_multiple_of(8)
        || ca < RESTART_AREA_LEN
        || clients_end > area.restart_area_length as usize
        || ra + area.restart_area_length as usize > b.len()
    {
        return Err(Error::Corrupt("$LogFile client array"));
    }
    let mut clients = Vec::new();
    for i in 0..area.log_clients as usize {
        clients.push(ClientRecord::parse(&b, ra + ca + i * CLIENT_RECORD_LEN)?);
    }
    if area.client_in_use_list != LFS_NO_CLIENT && area.client_in_use_list >= area.log_clients {
        return Err(Error::Corrupt("$LogFile client in-use list"));
    }
    Ok(RestartPage {
        offset,
        header,
        area,
        clients,
    })
}

/// A log record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// File offset of its header.
    pub offset: u64,
    /// The LFS header.
    pub header: RecordHeader,
    /// The client data (all pages' parts joined).
    pub data: Vec<u8>,
}

/// A `$LogFile` opened for reading.
#[derive(Debug)]
pub struct Log<'a> {
    bytes: &'a [u8],
    /// Restart page at offset 0 (or its error).
    pub first: Result<RestartPage>,
    /// Restart page at the system page size (or its error).
    pub second: Result<RestartPage>,
    /// The restart page in effect: the newer valid copy.
    pub current: RestartPage,
    /// LSN arithmetic.
    pub math: LsnMath,
    /// Log page size.
    pub page_size: u64,
    /// Offset of the first log record page.
    pub first_page: u64,
    /// Usable log size (end of the circular area).
    pub file_size: u64,
    /// Offset of record data in a log page.
    pub data_offset: u64,
    /// Newest tail copies by home page offset.
    tails: Vec<(u64, Vec<u8>)>,
}

fn newest_lsn(h: &RecordPageHeader, is_tail: bool) -> u64 {
    if is_tail {
        h.last_end_lsn
    } else {
        h.last_end_lsn.max(h.last_lsn_or_file_offset)
    }
}

impl<'a> Log<'a> {
    /// Opens a log held in `bytes` (the whole `$LogFile` stream).
    pub fn open(bytes: &'a [u8]) -> Result<Log<'a>> {
        let first_len = bytes
            .get(0x10..0x14)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .filter(|v| pow2_in(*v, 512, 65536))
            .unwrap_or(4096) as usize;
        let first = match bytes.get(..first_len) {
            Some(p) => parse_restart_page(p, 0),
            None => Err(Error::Corrupt("$LogFile shorter than a restart page")),
        };
        // The second copy is one system page in; when the first is bad, look
        // for it at each power of two.
        let mut second = Err(Error::Corrupt("$LogFile second restart page missing"));
        let candidates: Vec<usize> = match &first {
            Ok(p) => alloc::vec![p.header.system_page_size as usize],
            Err(_) => (9..=16).map(|s| 1usize << s).collect(),
        };
        for off in candidates {
            let Some(p) = bytes.get(off..) else { break };
            let len = p
                .get(0x10..0x14)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
                .unwrap_or(0);
            if len != off {
                if second.is_err() && first.is_ok() {
                    second = Err(Error::Corrupt("$LogFile second restart page sizes"));
                }
                continue;
            }
            if let Some(pg) = p.get(..len) {
                second = parse_restart_page(pg, off as u64);
                if second.is_ok() {
                    break;
                }
            }
        }
        let current = match (&first, &second) {
            (Ok(a), Ok(b)) => {
                if b.area.current_lsn > a.area.current_lsn {
                    b.clone()
                } else {
                    a.clone()
                }
            }
            (Ok(a), Err(_)) => a.clone(),
            (Err(_), Ok(b)) => b.clone(),
            (Err(e), Err(_)) => return Err(e.clone()),
        };
        let math = LsnMath::new(current.area.seq_number_bits)?;
        let page_size = current.header.log_page_size as u64;
        let sys = current.header.system_page_size as u64;
        let first_page = if current.header.major_version >= 2 {
            0x22 * page_size
        } else {
            2 * sys + 2 * page_size
        };
        let file_size = current.area.file_size & !(page_size - 1);
        if file_size > bytes.len() as u64 || file_size < first_page + 2 * page_size {
            return Err(Error::Corrupt("$LogFile restart area file size"));
        }
        let data_offset = current.area.log_page_data_offset as u64;
        let hdr_len = current.area.log_record_header_length as u64;
        if !data_offset.is_multiple_of(8)
            || data_offset < RECORD_PAGE_HEADER_LEN as u64
            || data_offset + hdr_len > page_size
            || hdr_len < RECORD_HEADER_LEN as u64
            || !hdr_len.is_multiple_of(8)
        {
            return Err(Error::Corrupt(
                "$LogFile record header length or page data offset",
            ));
        }
        let mut log = Log {
            bytes,
            first,
            second,
            current,
            math,
            page_size,
            first_page,
            file_size,
            data_offset,
            tails: Vec::new(),
        };
        log.load_tails();
        Ok(log)
    }

    fn load_tails(&mut self) {
        let start = 2 * self.current.header.system_page_size as u64;
        let mut off = start;
        while off + self.page_size <= self.first_page {
            if let Some((h, b)) = self.raw_page(off) {
                // 1.1: 0x08 holds the home offset; otherwise locate the page by
                // the LSN of the last record ending on it.
                let f = h.last_lsn_or_file_offset;
                let home = if f % self.page_size == 0 && f >= self.first_page && f < self.file_size
                {
                    Some(f)
                } else if h.last_end_lsn != 0 {
                    let o = self.math.offset(h.last_end_lsn);
                    Some(o - o % self.page_size)
                        .filter(|o| *o >= self.first_page && *o < self.file_size)
                } else {
                    None
                };
                if let Some(home) = home {
                    let newer = match self.tails.iter().position(|t| t.0 == home) {
                        Some(i) => {
                            let old = RecordPageHeader::parse(&self.tails[i].1).ok();
                            if old.is_none_or(|o| o.last_end_lsn < h.last_end_lsn) {
                                self.tails.remove(i);
                                true
                            } else {
                                false
                            }
                        }
                        None => true,
                    };
                    if newer {
                        self.tails.push((home, b));
                    }
                }
            }
            off += self.page_size;
        }
    }

    fn raw_page(&self, off: u64) -> Option<(RecordPageHeader, Vec<u8>)> {
        let s = usize::try_from(off).ok()?;
        let mut b = self
            .bytes
            .get(s..s.checked_add(self.page_size as usize)?)?
            .to_vec();
        unfixup(&mut b, RCRD).ok()?;
        let h = RecordPageHeader::parse(&b).ok()?;
        Some((h, b))
    }

    /// The log page at home offset `off`, from the newest valid copy.
    pub fn page(&self, off: u64) -> Option<(RecordPageHeader, Vec<u8>)> {
        let home = self.raw_page(off);
        let tail = self.tails.iter().find(|t| t.0 == off).and_then(|t| {
            let h = RecordPageHeader::parse(&t.1).ok()?;
            Some((h, t.1.clone()))
        });
        match (home, tail) {
            (Some(h), Some(t)) => {
                if newest_lsn(&t.0, true) > newest_lsn(&h.0, false) {
                    Some(t)
                } else {
                    Some(h)
                }
            }
            (h, t) => h.or(t),
        }
    }

    /// Tail copies newer than their home page: (home offset, the page
    /// with its update sequence array removed). A writer continuing a log
    /// after its last record (recovery writing compensation records)
    /// writes these home first, as its own tail writes replace them.
    pub fn tails_newer_than_home(&self) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for (home, b) in &self.tails {
            let Ok(t) = RecordPageHeader::parse(b) else {
                continue;
            };
            let newer = self
                .raw_page(*home)
                .is_none_or(|h| newest_lsn(&t, true) > newest_lsn(&h.0, false));
            if newer {
                out.push((*home, b.clone()));
            }
        }
        out
    }

    /// Offset of the page after the one at `page` (wrapping), and whether it wrapped.
    fn next_page(&self, page: u64) -> (u64, bool) {
        let n = page + self.page_size;
        if n >= self.file_size {
            (self.first_page, true)
        } else {
            (n, false)
        }
    }

    /// Whether the restart area names no log records (a clean, empty log).
    pub fn is_empty(&self) -> bool {
        self.start_lsn().is_none()
    }

    /// LSN where a reader should start: the oldest LSN any client still
    /// needs, else its restart LSN, else the current LSN.
    pub fn start_lsn(&self) -> Option<u64> {
        let mut best: Option<u64> = None;
        for c in &self.current.clients {
            for l in [c.oldest_lsn, c.client_restart_lsn] {
                if l != 0 {
                    best = Some(best.map_or(l, |b| b.min(l)));
                }
            }
        }
        best.or(Some(self.current.area.current_lsn).filter(|l| *l != 0))
    }

    /// Reads the record with LSN `lsn`, checking that it is one.
    pub fn read_record(&self, lsn: u64) -> Result<LogRecord> {
        let off = self.math.offset(lsn);
        let ps = self.page_size;
        let in_page = off % ps;
        let page_off = off - in_page;
        if !off.is_multiple_of(8)
            || page_off < self.first_page
            || page_off >= self.file_size
            || in_page < self.data_offset
            || in_page + RECORD_HEADER_LEN as u64 > ps
        {
            return Err(Error::Corrupt("LSN outside the log record area"));
        }
        let (ph, page) = self
            .page(page_off)
            .ok_or(Error::Corrupt("log page invalid"))?;
        if newest_lsn(&ph, false) < lsn && ph.last_lsn_or_file_offset != page_off {
            return Err(Error::Corrupt("log page older than the record"));
        }
        let header = RecordHeader::parse(&page, in_page as usize)?;
        if header.this_lsn != lsn {
            return Err(Error::Corrupt("log record LSN mismatch"));
        }
        if !matches!(header.record_type, LFS_CLIENT_RECORD | LFS_CLIENT_RESTART)
            || header.client_index >= self.current.area.log_clients.max(1)
            || u64::from(header.client_data_length) > self.file_size
        {
            return Err(Error::Corrupt("log record header"));
        }
        let want = header.client_data_length as usize;
        let mut data = Vec::with_capacity(want.min(1 << 16));
        let hl = self.current.area.log_record_header_length as u64;
        let mut pos = in_page + hl;
        let mut cur_page = page_off;
        let mut page_buf = page;
        let mut seq = self.math.seq(lsn);
        while data.len() < want {
            if pos >= ps {
                let (n, wrapped) = self.next_page(cur_page);
                if n == page_off {
                    return Err(Error::Corrupt("log record longer than the log"));
                }
                seq += wrapped as u64;
                let (h, b) = self
                    .page(n)
                    .ok_or(Error::Corrupt("continuation page invalid"))?;
                if newest_lsn(&h, false) < lsn && h.last_lsn_or_file_offset != n {
                    return Err(Error::Corrupt("continuation page older than the record"));
                }
                // A page that starts with a record header carrying its own
                // position's LSN is a new page, not this record's
                // continuation: the record was never completed (a writer
                // continuing the log after a crash started there).
                let here = self.math.lsn(seq, n + self.data_offset);
                if RecordHeader::parse(&b, self.data_offset as usize)
                    .is_ok_and(|x| x.this_lsn == here)
                {
                    return Err(Error::Corrupt("log record not completed"));
                }
                cur_page = n;
                page_buf = b;
                pos = self.data_offset;
            }
            let take = core::cmp::min((ps - pos) as usize, want - data.len());
            let s = pos as usize;
            data.extend_from_slice(
                page_buf
                    .get(s..s + take)
                    .ok_or(Error::Corrupt("log record data"))?,
            );
            pos += take as u64;
        }
        Ok(LogRecord {
            offset: off,
            header,
            data,
        })
    }

    /// LSN of the record after `r` (where it would start).
    pub fn next_lsn(&self, r: &LogRecord) -> u64 {
        let ps = self.page_size;
        let hl = self.current.area.log_record_header_length as u64;
        let mut seq = self.math.seq(r.header.this_lsn);
        let mut page = r.offset - r.offset % ps;
        let mut pos = r.offset % ps + hl;
        let mut left = r.header.client_data_length as u64;
        loop {
            let room = ps - pos;
            if left <= room {
                pos += left;
                break;
            }
            left -= room;
            let (n, wrapped) = self.next_page(page);
            seq += wrapped as u64;
            page = n;
            pos = self.data_offset;
        }
        pos = (pos + 7) & !7;
        if pos + hl > ps {
            let (n, wrapped) = self.next_page(page);
            seq += wrapped as u64;
            page = n;
            pos = self.data_offset;
        }
        self.math.lsn(seq, page + pos)
    }

    /// The records from `lsn` on, in log order, until the end of the log.
    pub fn records_from(&self, lsn: u64) -> Records<'_, 'a> {
        Records {
            log: self,
            next: Some(lsn),
            count: 0,
        }
    }

    /// Every record that can still be read, older ones than
    /// [`Log::start_lsn`] too (for forensic dumps): walks from each log page
    /// that begins with a record, oldest first, skipping what was seen.
    pub fn all_records(&self) -> Vec<LogRecord> {
        let mut starts = Vec::new();
        let mut p = self.first_page;
        while p < self.file_size {
            if let Some((_, b)) = self.page(p) {
                if let Ok(h) = RecordHeader::parse(&b, self.data_offset as usize) {
                    if h.this_lsn != 0 && self.math.offset(h.this_lsn) == p + self.data_offset {
                        starts.push(h.this_lsn);
                    }
                }
            }
            p += self.page_size;
        }
        starts.extend(self.start_lsn());
        starts.sort_unstable();
        let mut out: Vec<LogRecord> = Vec::new();
        for s in starts {
            if out.last().is_some_and(|r| r.header.this_lsn >= s) {
                continue;
            }
            for r in self.records_from(s) {
                if out
                    .last()
                    .is_some_and(|l| l.header.this_lsn >= r.header.this_lsn)
                {
                    break;
                }
                out.push(r);
            }
        }
        out
    }

    /// Every record still in the log ([`Log::start_lsn`] onwards).
    pub fn records(&self) -> Records<'_, 'a> {
        Records {
            log: self,
            next: self.start_lsn(),
            count: 0,
        }
    }
}

/// Iterator over log records; ends at the first position that does not hold
/// the next record (the end of the log).
pub struct Records<'l, 'a> {
    log: &'l Log<'a>,
    next: Option<u64>,
    count: u64,
}

impl Iterator for Records<'_, '_> {
    type Item = LogRecord;

    fn next(&mut self) -> Option<LogRecord> {
        let lsn = self.next.take()?;
        // A log holds at most one record per 0x30 bytes: more means a loop.
        self.count += 1;
        if self.count > self.log.file_size / RECORD_HEADER_LEN as u64 + 1 {
            return None;
        }
        let r = match self.log.read_record(lsn) {
            Ok(r) => r,
            Err(_) => {
                // A writer may have started the record on the next page.
                let off = self.log.math.offset(lsn);
                let ps = self.log.page_size;
                if off % ps == self.log.data_offset {
                    return None;
                }
                let page = off - off % ps;
                let (n, wrapped) = self.log.next_page(page);
                let seq = self.log.math.seq(lsn) + wrapped as u64;
                let alt = self.log.math.lsn(seq, n + self.log.data_offset);
                self.log.read_record(alt).ok()?
            }
        };
        self.next = Some(self.log.next_lsn(&r));
        Some(r)
    }
}
