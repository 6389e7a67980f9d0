//! Writing a `$LogFile` as LFS 1.1: an empty, clean log for format, and a
//! writer that appends records with their LSNs, fills and wraps log pages,
//! forces the partly filled page to the two tail pages (alternately) and
//! writes restart areas (alternately to the two restart pages; both on a
//! clean shutdown).

use super::layout::*;
use super::read::{Log, LogRecord};
use crate::error::{Error, Result};
use crate::record::{fixup, USA_STRIDE};
use crate::util::align8;
use alloc::vec::Vec;

/// Byte access to the `$LogFile` stream.
pub trait LogStore {
    /// Reads `buf.len()` bytes at `off`.
    fn read_log(&mut self, off: u64, buf: &mut [u8]) -> Result<()>;
    /// Writes `buf` at `off`.
    fn write_log(&mut self, off: u64, buf: &[u8]) -> Result<()>;
    /// Size of the stream.
    fn log_size(&self) -> u64;
}

impl LogStore for Vec<u8> {
    fn read_log(&mut self, off: u64, buf: &mut [u8]) -> Result<()> {
        let s = usize::try_from(off).map_err(|_| Error::OutOfRange)?;
        let src = self.get(s..s + buf.len()).ok_or(Error::OutOfRange)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_log(&mut self, off: u64, buf: &[u8]) -> Result<()> {
        let s = usize::try_from(off).map_err(|_| Error::OutOfRange)?;
        let dst = self.get_mut(s..s + buf.len()).ok_or(Error::OutOfRange)?;
        dst.copy_from_slice(buf);
        Ok(())
    }

    fn log_size(&self) -> u64 {
        self.len() as u64
    }
}

/// Geometry of a log we write: 4 KiB system and log pages (what Windows
/// and mkntfs use), LFS 1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// System (restart) page size.
    pub system_page_size: u32,
    /// Log record page size.
    pub log_page_size: u32,
    /// Usable log size (multiple of the page size).
    pub file_size: u64,
    /// LFS major version written in the restart pages (1; tests also lay
    /// out 2.0 logs, whose first log page is at 0x22 pages).
    pub major_version: i16,
}

impl Geometry {
    /// 4 KiB pages over a log of `file_size` bytes.
    pub fn new(file_size: u64) -> Result<Self> {
        let g = Self {
            system_page_size: 4096,
            log_page_size: 4096,
            file_size: file_size & !4095,
            major_version: 1,
        };
        if g.file_size < g.first_page() + 2 * 4096 {
            return Err(Error::InvalidParameter("$LogFile too small"));
        }
        Ok(g)
    }

    /// First log record page: after the two restart and two tail pages
    /// (1.1), or at 0x22 pages (2.0).
    pub fn first_page(&self) -> u64 {
        if self.major_version >= 2 {
            0x22 * self.log_page_size as u64
        } else {
            2 * self.system_page_size as u64 + 2 * self.log_page_size as u64
        }
    }

    fn usa_count(size: u32) -> u16 {
        (size as usize / USA_STRIDE + 1) as u16
    }

    /// Offset of record data in a log page: after the RCRD header and its
    /// update sequence array, 8-aligned (0x40 for 4 KiB pages).
    pub fn data_offset(&self) -> u16 {
        align8(RECORD_PAGE_HEADER_LEN + 2 * Self::usa_count(self.log_page_size) as usize) as u16
    }

    /// Offset of the restart area in a restart page (0x30 for 4 KiB pages).
    pub fn restart_offset(&self) -> u16 {
        align8(RESTART_PAGE_HEADER_LEN + 2 * Self::usa_count(self.system_page_size) as usize) as u16
    }
}

/// The restart area of an empty log: one client ("NTFS") in use, no LSNs.
pub fn empty_restart_area(g: &Geometry, clean: bool) -> RestartArea {
    RestartArea {
        current_lsn: 0,
        log_clients: 1,
        client_free_list: LFS_NO_CLIENT,
        client_in_use_list: 0,
        flags: if clean { RESTART_VOLUME_IS_CLEAN } else { 0 },
        seq_number_bits: LsnMath::bits_for_size(g.file_size),
        restart_area_length: (RESTART_AREA_LEN + CLIENT_RECORD_LEN) as u16,
        client_array_offset: RESTART_AREA_LEN as u16,
        file_size: g.file_size,
        last_lsn_data_length: 0,
        log_record_header_length: RECORD_HEADER_LEN as u16,
        log_page_data_offset: g.data_offset(),
        restart_log_open_count: 0,
        reserved: 0,
    }
}

/// A restart page (fixups applied, ready to write) holding `area` and `client`.
pub fn restart_page(
    g: &Geometry,
    area: &RestartArea,
    client: &ClientRecord,
    usn: u16,
) -> Result<Vec<u8>> {
    let ps = g.system_page_size as usize;
    let mut b = alloc::vec![0u8; ps];
    let h = RestartPageHeader {
        magic: *RSTR,
        usa_ofs: RESTART_PAGE_HEADER_LEN as u16,
        usa_count: Geometry::usa_count(g.system_page_size),
        chkdsk_lsn: 0,
        system_page_size: g.system_page_size,
        log_page_size: g.log_page_size,
        restart_offset: g.restart_offset(),
        minor_version: if g.major_version >= 2 { 0 } else { 1 },
        major_version: g.major_version,
    };
    h.write(&mut b);
    crate::util::put16(&mut b, RESTART_PAGE_HEADER_LEN, usn);
    let ra = g.restart_offset() as usize;
    area.write(&mut b, ra);
    client.write(&mut b, ra + area.client_array_offset as usize);
    fixup(&mut b)?;
    Ok(b)
}

/// The restart page of a freshly formatted volume: clean, one client
/// "NTFS", no records.
pub fn empty_restart_page(file_size: u64) -> Result<Vec<u8>> {
    let g = Geometry::new(file_size)?;
    restart_page(&g, &empty_restart_area(&g, true), &ClientRecord::ntfs(), 0)
}

/// Writes an empty clean log over the whole store: both restart pages, the
/// rest 0xFF (never written).
pub fn format_log<S: LogStore>(s: &mut S) -> Result<()> {
    let size = s.log_size();
    let rp = empty_restart_page(size)?;
    let chunk = alloc::vec![0xFFu8; 1 << 16];
    let mut off = 0;
    while off < size {
        let k = core::cmp::min(chunk.len() as u64, size - off);
        s.write_log(off, &chunk[..k as usize])?;
        off += k;
    }
    s.write_log(0, &rp)?;
    s.write_log(rp.len() as u64, &rp)
}

/// Fields of a record to append (the LSN is the writer's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewRecord {
    /// Previous LSN of the same transaction (0 for its first record).
    pub previous_lsn: u64,
    /// Next LSN to undo in the transaction.
    pub undo_next_lsn: u64,
    /// [`LFS_CLIENT_RECORD`] or [`LFS_CLIENT_RESTART`].
    pub record_type: u32,
    /// Transaction id.
    pub transaction_id: u32,
}

/// Appends records to an LFS 1.1 log.
#[derive(Debug)]
pub struct LogWriter {
    g: Geometry,
    /// LSN arithmetic.
    pub math: LsnMath,
    area: RestartArea,
    client: ClientRecord,
    seq: u64,
    page_off: u64,
    page: Vec<u8>,
    pos: u64,
    page_written_home: bool,
    usn: u16,
    tail_next: u64,
    restart_next: u64,
    last_len: u32,
}

impl LogWriter {
    /// Opens the log in `s` for appending. A clean log (ours or Windows',
    /// 1.1 or 2.0) is started afresh as LFS 1.1 at its first page, one
    /// sequence number past its current LSN, so LSNs keep growing. A log
    /// that needs recovery is refused (`Unsupported`) until recovery ran.
    pub fn open<S: LogStore>(s: &mut S) -> Result<Self> {
        let g = Geometry::new(s.log_size())?;
        Self::open_with(s, g)
    }

    /// [`LogWriter::open`] with a given geometry.
    pub fn open_with<S: LogStore>(s: &mut S, g: Geometry) -> Result<Self> {
        let size = s.log_size();
        if g.file_size > size || g.file_size < g.first_page() + 2 * g.log_page_size as u64 {
            return Err(Error::InvalidParameter("$LogFile geometry"));
        }
        let mut bytes = alloc::vec![0u8; usize::try_from(size).map_err(|_| Error::OutOfRange)?];
        s.read_log(0, &mut bytes)?;
        let (last_lsn, open_count, clean, old_bits) = match Log::open(&bytes) {
            Ok(l) => (
                l.current.area.current_lsn,
                l.current.area.restart_log_open_count,
                l.current.clean() || l.is_empty(),
                l.math,
            ),
            // Both restart pages unwritten (0xFF): a log never used.
            Err(_) if bytes.iter().take(8192).all(|b| *b == 0xFF) => {
                (0, 0, true, LsnMath::new(LsnMath::bits_for_size(size))?)
            }
            Err(e) => return Err(e),
        };
        if !clean {
            return Err(Error::Unsupported("$LogFile needs recovery"));
        }
        let math = LsnMath::new(LsnMath::bits_for_size(g.file_size))?;
        let mut area = empty_restart_area(&g, false);
        area.restart_log_open_count = open_count.wrapping_add(1);
        let seq = if last_lsn == 0 {
            1
        } else {
            old_bits.seq(last_lsn) + 1
        };
        let mut w = Self {
            g,
            math,
            area,
            client: ClientRecord::ntfs(),
            seq,
            page_off: g.first_page(),
            page: alloc::vec![0u8; g.log_page_size as usize],
            pos: g.data_offset() as u64,
            page_written_home: false,
            usn: 0,
            tail_next: 0,
            restart_next: 0,
            last_len: 0,
        };
        w.page_hdr_init();
        // Readers start here until a checkpoint or commit moves it on.
        w.client.oldest_lsn = w.next_lsn();
        Ok(w)
    }

    /// Continues a dirty LFS 1.1 log after its last record `last` (restart
    /// recovery appending compensation log records). Tail copies newer than
    /// their home are written home first (this writer's forces reuse the
    /// tail pages); appending starts on the page after the one the last
    /// record ends on (readers look for a record there when the rest of
    /// that page is empty), or at `last`'s successor when that starts a
    /// page. The client's oldest LSN is kept, so nothing still needed is
    /// overwritten. `Unsupported` for other geometries (a 2.0 log).
    pub fn resume<S: LogStore>(s: &mut S, log: &Log<'_>, last: &LogRecord) -> Result<Self> {
        let g = Geometry::new(s.log_size())?;
        if log.current.header.major_version != 1
            || log.page_size != g.log_page_size as u64
            || log.current.header.system_page_size != g.system_page_size
            || log.file_size != g.file_size
            || log.data_offset != g.data_offset() as u64
            || log.first_page != g.first_page()
        {
            return Err(Error::Unsupported("continuing a log of another geometry"));
        }
        for (home, mut b) in log.tails_newer_than_home() {
            let h = RecordPageHeader::parse(&b)?;
            crate::util::put64(&mut b, 0x08, h.last_end_lsn);
            fixup(&mut b)?;
            s.write_log(home, &b)?;
        }
        let math = log.math;
        let next = log.next_lsn(last);
        let ps = g.log_page_size as u64;
        let mut off = math.offset(next);
        let mut seq = math.seq(next);
        if off % ps != g.data_offset() as u64 {
            off = off - off % ps + ps;
            if off >= g.file_size {
                off = g.first_page();
                seq += 1;
            }
        } else {
            off -= off % ps;
        }
        let mut area = log.current.area;
        area.flags = 0;
        let client = log
            .current
            .clients
            .first()
            .copied()
            .ok_or(Error::Corrupt("$LogFile has no client"))?;
        let mut w = Self {
            g,
            math,
            area,
            client,
            seq,
            page_off: off,
            page: alloc::vec![0u8; g.log_page_size as usize],
            pos: g.data_offset() as u64,
            page_written_home: false,
            usn: 0,
            tail_next: 0,
            restart_next: 0,
            last_len: last.header.client_data_length,
        };
        w.area.current_lsn = last.header.this_lsn;
        w.page_hdr_init();
        w.check_space()?;
        Ok(w)
    }

    /// LSN the next record will get (when it fits on the current page).
    pub fn next_lsn(&self) -> u64 {
        self.math.lsn(self.seq, self.page_off + self.pos)
    }

    /// LSN of the last record appended (0 if none).
    pub fn last_lsn(&self) -> u64 {
        self.area.current_lsn
    }

    /// Bytes of the circular log area the records from the client's
    /// oldest LSN up to the next record take (what a checkpoint can
    /// reclaim by moving the oldest LSN on).
    pub fn used_bytes(&self) -> u64 {
        let oldest = self.client.oldest_lsn;
        if oldest == 0 {
            return 0;
        }
        let area = self.capacity();
        let (so, oo) = (self.math.seq(oldest), self.math.offset(oldest));
        let next = self.page_off + self.pos;
        (self.seq.saturating_sub(so) * area + next).saturating_sub(oo)
    }

    /// Bytes of the circular log area (the log record pages).
    pub fn capacity(&self) -> u64 {
        self.g.file_size - self.g.first_page()
    }

    /// The client record as it will be written.
    pub fn client(&mut self) -> &mut ClientRecord {
        &mut self.client
    }

    fn page_hdr_init(&mut self) {
        self.page.fill(0);
        let h = RecordPageHeader {
            magic: *RCRD,
            usa_ofs: RECORD_PAGE_HEADER_LEN as u16,
            usa_count: Geometry::usa_count(self.g.log_page_size),
            page_count: 1,
            page_position: 1,
            ..Default::default()
        };
        h.write(&mut self.page);
        self.pos = self.g.data_offset() as u64;
        self.page_written_home = false;
    }

    fn page_bytes(&mut self, tail: bool) -> Result<Vec<u8>> {
        let mut b = self.page.clone();
        if tail {
            crate::util::put64(&mut b, 0x08, self.page_off);
        }
        self.usn = self.usn.wrapping_add(1);
        crate::util::put16(&mut b, RECORD_PAGE_HEADER_LEN, self.usn);
        fixup(&mut b)?;
        Ok(b)
    }

    fn advance_page<S: LogStore>(&mut self, s: &mut S) -> Result<()> {
        let b = self.page_bytes(false)?;
        s.write_log(self.page_off, &b)?;
        let n = self.page_off + self.g.log_page_size as u64;
        if n >= self.g.file_size {
            self.page_off = self.g.first_page();
            self.seq += 1;
        } else {
            self.page_off = n;
        }
        self.check_space()?;
        self.page_hdr_init();
        Ok(())
    }

    /// Refuses to enter the page holding the oldest LSN still needed from a
    /// later wrap (log full: a checkpoint must move the oldest LSN first).
    fn check_space(&self) -> Result<()> {
        let oldest = self.client.oldest_lsn;
        if oldest == 0 {
            return Ok(());
        }
        let o = self.math.offset(oldest);
        let ps = self.g.log_page_size as u64;
        if o - o % ps == self.page_off && self.math.seq(oldest) < self.seq {
            return Err(Error::DiskFull);
        }
        Ok(())
    }

    /// Pages the next record of `len` data bytes would start and end on;
    /// errors when it would overrun the oldest LSN.
    fn would_fit(&self, len: u64) -> Result<()> {
        let ps = self.g.log_page_size as u64;
        let hl = RECORD_HEADER_LEN as u64;
        let usable = ps - self.g.data_offset() as u64;
        let pages_in_log = (self.g.file_size - self.g.first_page()) / ps;
        let mut need = (self.pos + hl + len).saturating_sub(ps).div_ceil(usable) + 1;
        if need > pages_in_log - 1 {
            return Err(Error::DiskFull);
        }
        let oldest = self.client.oldest_lsn;
        if oldest == 0 {
            return Ok(());
        }
        let o = self.math.offset(oldest);
        let target = o - o % ps;
        let (mut p, mut seq) = (self.page_off, self.seq);
        while need > 0 {
            if p == target && self.math.seq(oldest) < seq {
                return Err(Error::DiskFull);
            }
            need -= 1;
            p += ps;
            if p >= self.g.file_size {
                p = self.g.first_page();
                seq += 1;
            }
        }
        Ok(())
    }

    /// Appends a record; returns its LSN. The record is in memory until
    /// its page fills or [`LogWriter::force`] runs.
    pub fn append<S: LogStore>(&mut self, s: &mut S, r: &NewRecord, data: &[u8]) -> Result<u64> {
        let ps = self.g.log_page_size as u64;
        let hl = RECORD_HEADER_LEN as u64;
        let len = u32::try_from(data.len()).map_err(|_| Error::InvalidParameter("log record"))?;
        if self.pos + hl > ps {
            self.advance_page(s)?;
        }
        self.would_fit(data.len() as u64)?;
        let lsn = self.next_lsn();
        let multi = self.pos + hl + data.len() as u64 > ps;
        let h = RecordHeader {
            this_lsn: lsn,
            client_previous_lsn: r.previous_lsn,
            client_undo_next_lsn: r.undo_next_lsn,
            client_data_length: len,
            client_seq_number: self.client.seq_number,
            client_index: 0,
            record_type: r.record_type,
            transaction_id: r.transaction_id,
            flags: if multi { LOG_RECORD_MULTI_PAGE } else { 0 },
            reserved: [0; 6],
        };
        h.write(&mut self.page, self.pos as usize);
        crate::util::put64(&mut self.page, 0x08, lsn);
        self.pos += hl;
        let mut done = 0usize;
        loop {
            let take = core::cmp::min((ps - self.pos) as usize, data.len() - done);
            let p = self.pos as usize;
            self.page[p..p + take].copy_from_slice(&data[done..done + take]);
            done += take;
            self.pos += take as u64;
            if done == data.len() {
                break;
            }
            self.advance_page(s)?;
            crate::util::put64(&mut self.page, 0x08, lsn);
        }
        self.pos = align8(self.pos as usize) as u64;
        // The record ends on this page.
        let mut ph = RecordPageHeader::parse(&self.page)?;
        ph.flags |= LOG_PAGE_LOG_RECORD_END;
        ph.last_end_lsn = lsn;
        ph.next_record_offset = self.pos.min(ps) as u16;
        ph.write(&mut self.page);
        self.area.current_lsn = lsn;
        self.last_len = len;
        if self.pos + hl > ps {
            self.advance_page(s)?;
        }
        Ok(lsn)
    }

    /// Forces the log: the partly filled current page goes to the next
    /// tail page (its home is written when it fills or at close).
    pub fn force<S: LogStore>(&mut self, s: &mut S) -> Result<()> {
        if self.pos == self.g.data_offset() as u64 {
            return Ok(());
        }
        let b = self.page_bytes(true)?;
        let off = 2 * self.g.system_page_size as u64 + self.tail_next * self.g.log_page_size as u64;
        self.tail_next ^= 1;
        s.write_log(off, &b)
    }

    /// Writes the restart area (to the next restart page; to both when
    /// `clean`, after writing the partly filled page home).
    pub fn write_restart<S: LogStore>(&mut self, s: &mut S, clean: bool) -> Result<()> {
        if clean && self.pos != self.g.data_offset() as u64 && !self.page_written_home {
            let b = self.page_bytes(false)?;
            s.write_log(self.page_off, &b)?;
            self.page_written_home = true;
        } else {
            self.force(s)?;
        }
        let mut area = self.area;
        area.flags = if clean { RESTART_VOLUME_IS_CLEAN } else { 0 };
        area.last_lsn_data_length = self.last_len;
        self.usn = self.usn.wrapping_add(1);
        let page = restart_page(&self.g, &area, &self.client, self.usn)?;
        let ss = self.g.system_page_size as u64;
        if clean {
            s.write_log(0, &page)?;
            s.write_log(ss, &page)
        } else {
            let off = self.restart_next * ss;
            self.restart_next ^= 1;
            s.write_log(off, &page)
        }
    }
}

/// Rewrites both restart pages clean and empty, with the current LSN set to
/// `last_lsn` so a later writer continues past it (after recovery).
pub fn reset_clean<S: LogStore>(s: &mut S, last_lsn: u64) -> Result<()> {
    let g = Geometry::new(s.log_size())?;
    let mut area = empty_restart_area(&g, true);
    area.current_lsn = last_lsn;
    let p = restart_page(&g, &area, &ClientRecord::ntfs(), 0)?;
    s.write_log(0, &p)?;
    s.write_log(g.system_page_size as u64, &p)
}
