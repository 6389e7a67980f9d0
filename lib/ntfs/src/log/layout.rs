//! On-disk structures of the NTFS log file service (`$LogFile`), *Windows
//! Internals* 7th ed. Part 2 ch. 11, "NTFS recovery support" / "Log file
//! service". Layouts follow the public descriptions (libyal's NTFS format
//! notes, the Linux kernel's ntfs3/ntfs documentation and headers read for
//! facts). Each structure is a `#[repr(C)]` mirror whose field offsets are
//! asserted at compile time; parsing and building read and write the bytes
//! at exactly those offsets (`core::mem::offset_of!`), so the asserts pin
//! the code that runs.

use crate::error::{Error, Result};
use crate::util::{put16, put32, put64, u16_at, u32_at, u64_at};
use core::mem::offset_of;

/// Restart page magic.
pub const RSTR: &[u8; 4] = b"RSTR";
/// Restart page written by chkdsk.
pub const CHKD: &[u8; 4] = b"CHKD";
/// Log record page magic.
pub const RCRD: &[u8; 4] = b"RCRD";

/// Restart area flag: the log is written one page per I/O.
pub const RESTART_SINGLE_PAGE_IO: u16 = 0x0001;
/// Restart area flag: the volume was cleanly dismounted.
pub const RESTART_VOLUME_IS_CLEAN: u16 = 0x0002;
/// "No client" in the client lists and client records' links.
pub const LFS_NO_CLIENT: u16 = 0xFFFF;

/// Log record page flag: a log record ends on this page.
pub const LOG_PAGE_LOG_RECORD_END: u32 = 0x0000_0001;
/// Log record header flag: the record continues on the next page(s).
pub const LOG_RECORD_MULTI_PAGE: u16 = 0x0001;

/// Record type: an ordinary client record (redo/undo).
pub const LFS_CLIENT_RECORD: u32 = 1;
/// Record type: a client restart record (NTFS: its checkpoint restart area).
pub const LFS_CLIENT_RESTART: u32 = 2;

/// Restart table entry marker: allocated.
pub const RESTART_ENTRY_ALLOCATED: u32 = 0xFFFF_FFFF;

/// Restart page header ("RSTR"), at offset 0 and at the system page size of
/// `$LogFile` (two copies). `MULTI_SECTOR_HEADER` first; the update
/// sequence array follows at `usa_ofs` (0x1E).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartPageHeader {
    /// "RSTR" or "CHKD".
    pub magic: [u8; 4],
    /// Offset of the update sequence array.
    pub usa_ofs: u16,
    /// Entries of the update sequence array (1 + sectors).
    pub usa_count: u16,
    /// LSN chkdsk saw (CHKD pages).
    pub chkdsk_lsn: u64,
    /// System page size (the restart page's size).
    pub system_page_size: u32,
    /// Log page size (RCRD pages).
    pub log_page_size: u32,
    /// Offset of the restart area in this page.
    pub restart_offset: u16,
    /// LFS minor version.
    pub minor_version: i16,
    /// LFS major version.
    pub major_version: i16,
}

/// Bytes of the restart page header before its update sequence array.
pub const RESTART_PAGE_HEADER_LEN: usize = 0x1E;

const _: () = {
    assert!(offset_of!(RestartPageHeader, magic) == 0x00);
    assert!(offset_of!(RestartPageHeader, usa_ofs) == 0x04);
    assert!(offset_of!(RestartPageHeader, usa_count) == 0x06);
    assert!(offset_of!(RestartPageHeader, chkdsk_lsn) == 0x08);
    assert!(offset_of!(RestartPageHeader, system_page_size) == 0x10);
    assert!(offset_of!(RestartPageHeader, log_page_size) == 0x14);
    assert!(offset_of!(RestartPageHeader, restart_offset) == 0x18);
    assert!(offset_of!(RestartPageHeader, minor_version) == 0x1A);
    assert!(offset_of!(RestartPageHeader, major_version) == 0x1C);
};

macro_rules! off {
    ($t:ty, $f:ident) => {
        offset_of!($t, $f)
    };
}

impl RestartPageHeader {
    /// Reads the header from the start of `b` (fixups already applied).
    pub fn parse(b: &[u8]) -> Result<Self> {
        let mut magic = [0u8; 4];
        magic.copy_from_slice(crate::util::sub(b, 0, 4)?);
        Ok(Self {
            magic,
            usa_ofs: u16_at(b, off!(Self, usa_ofs))?,
            usa_count: u16_at(b, off!(Self, usa_count))?,
            chkdsk_lsn: u64_at(b, off!(Self, chkdsk_lsn))?,
            system_page_size: u32_at(b, off!(Self, system_page_size))?,
            log_page_size: u32_at(b, off!(Self, log_page_size))?,
            restart_offset: u16_at(b, off!(Self, restart_offset))?,
            minor_version: u16_at(b, off!(Self, minor_version))? as i16,
            major_version: u16_at(b, off!(Self, major_version))? as i16,
        })
    }

    /// Writes the header to the start of `b`.
    pub fn write(&self, b: &mut [u8]) {
        if let Some(m) = b.get_mut(0..4) {
            m.copy_from_slice(&self.magic);
        }
        put16(b, off!(Self, usa_ofs), self.usa_ofs);
        put16(b, off!(Self, usa_count), self.usa_count);
        put64(b, off!(Self, chkdsk_lsn), self.chkdsk_lsn);
        put32(b, off!(Self, system_page_size), self.system_page_size);
        put32(b, off!(Self, log_page_size), self.log_page_size);
        put16(b, off!(Self, restart_offset), self.restart_offset);
        put16(b, off!(Self, minor_version), self.minor_version as u16);
        put16(b, off!(Self, major_version), self.major_version as u16);
    }
}

/// LFS restart area (`LFS_RESTART_AREA`), at `restart_offset` of a restart page.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartArea {
    /// LSN of the last record written when this area was written.
    pub current_lsn: u64,
    /// Client records in the client array.
    pub log_clients: u16,
    /// First free client record ([`LFS_NO_CLIENT`] if none).
    pub client_free_list: u16,
    /// First in-use client record ([`LFS_NO_CLIENT`] if none).
    pub client_in_use_list: u16,
    /// [`RESTART_SINGLE_PAGE_IO`], [`RESTART_VOLUME_IS_CLEAN`].
    pub flags: u16,
    /// High bits of an LSN holding the wrap sequence number.
    pub seq_number_bits: u32,
    /// Length of the restart area with its client array.
    pub restart_area_length: u16,
    /// Offset of the client array from the start of the restart area.
    pub client_array_offset: u16,
    /// Usable size of the log file.
    pub file_size: u64,
    /// Length of the client data of the record at `current_lsn`.
    pub last_lsn_data_length: u32,
    /// Log record header length (0x30).
    pub log_record_header_length: u16,
    /// Offset of the first record byte in a log record page.
    pub log_page_data_offset: u16,
    /// Times the log was opened (restarted).
    pub restart_log_open_count: u32,
    /// Reserved.
    pub reserved: u32,
}

/// Bytes of the restart area fields (the client array may start later).
pub const RESTART_AREA_LEN: usize = 0x30;

const _: () = {
    assert!(offset_of!(RestartArea, current_lsn) == 0x00);
    assert!(offset_of!(RestartArea, log_clients) == 0x08);
    assert!(offset_of!(RestartArea, client_free_list) == 0x0A);
    assert!(offset_of!(RestartArea, client_in_use_list) == 0x0C);
    assert!(offset_of!(RestartArea, flags) == 0x0E);
    assert!(offset_of!(RestartArea, seq_number_bits) == 0x10);
    assert!(offset_of!(RestartArea, restart_area_length) == 0x14);
    assert!(offset_of!(RestartArea, client_array_offset) == 0x16);
    assert!(offset_of!(RestartArea, file_size) == 0x18);
    assert!(offset_of!(RestartArea, last_lsn_data_length) == 0x20);
    assert!(offset_of!(RestartArea, log_record_header_length) == 0x24);
    assert!(offset_of!(RestartArea, log_page_data_offset) == 0x26);
    assert!(offset_of!(RestartArea, restart_log_open_count) == 0x28);
    assert!(offset_of!(RestartArea, reserved) == 0x2C);
    assert!(core::mem::size_of::<RestartArea>() == RESTART_AREA_LEN);
};

impl RestartArea {
    /// Reads a restart area at `o` of `b`.
    pub fn parse(b: &[u8], o: usize) -> Result<Self> {
        Ok(Self {
            current_lsn: u64_at(b, o + off!(Self, current_lsn))?,
            log_clients: u16_at(b, o + off!(Self, log_clients))?,
            client_free_list: u16_at(b, o + off!(Self, client_free_list))?,
            client_in_use_list: u16_at(b, o + off!(Self, client_in_use_list))?,
            flags: u16_at(b, o + off!(Self, flags))?,
            seq_number_bits: u32_at(b, o + off!(Self, seq_number_bits))?,
            restart_area_length: u16_at(b, o + off!(Self, restart_area_length))?,
            client_array_offset: u16_at(b, o + off!(Self, client_array_offset))?,
            file_size: u64_at(b, o + off!(Self, file_size))?,
            last_lsn_data_length: u32_at(b, o + off!(Self, last_lsn_data_length))?,
            log_record_header_length: u16_at(b, o + off!(Self, log_record_header_length))?,
            log_page_data_offset: u16_at(b, o + off!(Self, log_page_data_offset))?,
            restart_log_open_count: u32_at(b, o + off!(Self, restart_log_open_count))?,
            reserved: u32_at(b, o + off!(Self, reserved))?,
        })
    }

    /// Writes the restart area at `o` of `b`.
    pub fn write(&self, b: &mut [u8], o: usize) {
        put64(b, o + off!(Self, current_lsn), self.current_lsn);
        put16(b, o + off!(Self, log_clients), self.log_clients);
        put16(b, o + off!(Self, client_free_list), self.client_free_list);
        put16(
            b,
            o + off!(Self, client_in_use_list),
            self.client_in_use_list,
        );
        put16(b, o + off!(Self, flags), self.flags);
        put32(b, o + off!(Self, seq_number_bits), self.seq_number_bits);
        put16(
            b,
            o + off!(Self, restart_area_length),
            self.restart_area_length,
        );
        put16(
            b,
            o + off!(Self, client_array_offset),
            self.client_array_offset,
        );
        put64(b, o + off!(Self, file_size), self.file_size);
        put32(
            b,
            o + off!(Self, last_lsn_data_length),
            self.last_lsn_data_length,
        );
        put16(
            b,
            o + off!(Self, log_record_header_length),
            self.log_record_header_length,
        );
        put16(
            b,
            o + off!(Self, log_page_data_offset),
            self.log_page_data_offset,
        );
        put32(
            b,
            o + off!(Self, restart_log_open_count),
            self.restart_log_open_count,
        );
        put32(b, o + off!(Self, reserved), self.reserved);
    }
}

/// A log client record (`LFS_CLIENT_RECORD`, 0xA0 bytes) in the restart
/// area's client array. NTFS is the only client ("NTFS").
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    /// Oldest LSN the client still needs (start of the redo/undo scan).
    pub oldest_lsn: u64,
    /// LSN of the client's last restart record (its checkpoint).
    pub client_restart_lsn: u64,
    /// Previous client in its list.
    pub prev_client: u16,
    /// Next client in its list.
    pub next_client: u16,
    /// Client sequence number (bumped when the record is reused).
    pub seq_number: u16,
    /// Reserved.
    pub reserved: [u8; 6],
    /// Name length in bytes.
    pub client_name_length: u32,
    /// Name, UTF-16.
    pub client_name: [u16; 64],
}

/// Size of a client record.
pub const CLIENT_RECORD_LEN: usize = 0xA0;

const _: () = {
    assert!(offset_of!(ClientRecord, oldest_lsn) == 0x00);
    assert!(offset_of!(ClientRecord, client_restart_lsn) == 0x08);
    assert!(offset_of!(ClientRecord, prev_client) == 0x10);
    assert!(offset_of!(ClientRecord, next_client) == 0x12);
    assert!(offset_of!(ClientRecord, seq_number) == 0x14);
    assert!(offset_of!(ClientRecord, reserved) == 0x16);
    assert!(offset_of!(ClientRecord, client_name_length) == 0x1C);
    assert!(offset_of!(ClientRecord, client_name) == 0x20);
    assert!(core::mem::size_of::<ClientRecord>() == CLIENT_RECORD_LEN);
};

impl Default for ClientRecord {
    fn default() -> Self {
        Self {
            oldest_lsn: 0,
            client_restart_lsn: 0,
            prev_client: LFS_NO_CLIENT,
            next_client: LFS_NO_CLIENT,
            seq_number: 0,
            reserved: [0; 6],
            client_name_length: 0,
            client_name: [0; 64],
        }
    }
}

impl ClientRecord {
    /// The NTFS client with no LSNs yet.
    pub fn ntfs() -> Self {
        let mut c = Self {
            client_name_length: 8,
            ..Self::default()
        };
        for (i, u) in "NTFS".encode_utf16().enumerate() {
            c.client_name[i] = u;
        }
        c
    }

    /// The client's name.
    pub fn name(&self) -> alloc::string::String {
        let n = (self.client_name_length as usize / 2).min(64);
        crate::util::utf16_to_string(&self.client_name[..n])
    }

    /// Reads a client record at `o` of `b`.
    pub fn parse(b: &[u8], o: usize) -> Result<Self> {
        let mut reserved = [0u8; 6];
        reserved.copy_from_slice(crate::util::sub(b, o + off!(Self, reserved), 6)?);
        let mut client_name = [0u16; 64];
        for (i, u) in client_name.iter_mut().enumerate() {
            *u = u16_at(b, o + off!(Self, client_name) + 2 * i)?;
        }
        Ok(Self {
            oldest_lsn: u64_at(b, o + off!(Self, oldest_lsn))?,
            client_restart_lsn: u64_at(b, o + off!(Self, client_restart_lsn))?,
            prev_client: u16_at(b, o + off!(Self, prev_client))?,
            next_client: u16_at(b, o + off!(Self, next_client))?,
            seq_number: u16_at(b, o + off!(Self, seq_number))?,
            reserved,
            client_name_length: u32_at(b, o + off!(Self, client_name_length))?,
            client_name,
        })
    }

    /// Writes the client record at `o` of `b`.
    pub fn write(&self, b: &mut [u8], o: usize) {
        put64(b, o + off!(Self, oldest_lsn), self.oldest_lsn);
        put64(
            b,
            o + off!(Self, client_restart_lsn),
            self.client_restart_lsn,
        );
        put16(b, o + off!(Self, prev_client), self.prev_client);
        put16(b, o + off!(Self, next_client), self.next_client);
        put16(b, o + off!(Self, seq_number), self.seq_number);
        if let Some(s) = b.get_mut(o + off!(Self, reserved)..o + off!(Self, reserved) + 6) {
            s.copy_from_slice(&self.reserved);
        }
        put32(
            b,
            o + off!(Self, client_name_length),
            self.client_name_length,
        );
        for (i, u) in self.client_name.iter().enumerate() {
            put16(b, o + off!(Self, client_name) + 2 * i, *u);
        }
    }
}

/// Log record page header ("RCRD"), at the start of every log page.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordPageHeader {
    /// "RCRD".
    pub magic: [u8; 4],
    /// Offset of the update sequence array (0x28).
    pub usa_ofs: u16,
    /// Entries of the update sequence array.
    pub usa_count: u16,
    /// Highest LSN of a record with bytes on this page; in an LFS 1.1 tail
    /// page, the file offset of the page it is a copy of.
    pub last_lsn_or_file_offset: u64,
    /// [`LOG_PAGE_LOG_RECORD_END`].
    pub flags: u32,
    /// Pages written in the same I/O as this one.
    pub page_count: u16,
    /// Position of this page in that I/O (1-based).
    pub page_position: u16,
    /// Offset of the free space after the last record ending on this page.
    pub next_record_offset: u16,
    /// Reserved.
    pub reserved: [u8; 6],
    /// LSN of the last record that ends on this page.
    pub last_end_lsn: u64,
}

/// Bytes of the record page header before its update sequence array.
pub const RECORD_PAGE_HEADER_LEN: usize = 0x28;

const _: () = {
    assert!(offset_of!(RecordPageHeader, magic) == 0x00);
    assert!(offset_of!(RecordPageHeader, usa_ofs) == 0x04);
    assert!(offset_of!(RecordPageHeader, usa_count) == 0x06);
    assert!(offset_of!(RecordPageHeader, last_lsn_or_file_offset) == 0x08);
    assert!(offset_of!(RecordPageHeader, flags) == 0x10);
    assert!(offset_of!(RecordPageHeader, page_count) == 0x14);
    assert!(offset_of!(RecordPageHeader, page_position) == 0x16);
    assert!(offset_of!(RecordPageHeader, next_record_offset) == 0x18);
    assert!(offset_of!(RecordPageHeader, reserved) == 0x1A);
    assert!(offset_of!(RecordPageHeader, last_end_lsn) == 0x20);
    assert!(core::mem::size_of::<RecordPageHeader>() == RECORD_PAGE_HEADER_LEN);
};

impl RecordPageHeader {
    /// Reads the header from the start of `b` (fixups already applied).
    pub fn parse(b: &[u8]) -> Result<Self> {
        let mut magic = [0u8; 4];
        magic.copy_from_slice(crate::util::sub(b, 0, 4)?);
        let mut reserved = [0u8; 6];
        reserved.copy_from_slice(crate::util::sub(b, off!(Self, reserved), 6)?);
        Ok(Self {
            magic,
            usa_ofs: u16_at(b, off!(Self, usa_ofs))?,
            usa_count: u16_at(b, off!(Self, usa_count))?,
            last_lsn_or_file_offset: u64_at(b, off!(Self, last_lsn_or_file_offset))?,
            flags: u32_at(b, off!(Self, flags))?,
            page_count: u16_at(b, off!(Self, page_count))?,
            page_position: u16_at(b, off!(Self, page_position))?,
            next_record_offset: u16_at(b, off!(Self, next_record_offset))?,
            reserved,
            last_end_lsn: u64_at(b, off!(Self, last_end_lsn))?,
        })
    }

    /// Writes the header to the start of `b`.
    pub fn write(&self, b: &mut [u8]) {
        if let Some(m) = b.get_mut(0..4) {
            m.copy_from_slice(&self.magic);
        }
        put16(b, off!(Self, usa_ofs), self.usa_ofs);
        put16(b, off!(Self, usa_count), self.usa_count);
        put64(
            b,
            off!(Self, last_lsn_or_file_offset),
            self.last_lsn_or_file_offset,
        );
        put32(b, off!(Self, flags), self.flags);
        put16(b, off!(Self, page_count), self.page_count);
        put16(b, off!(Self, page_position), self.page_position);
        put16(b, off!(Self, next_record_offset), self.next_record_offset);
        if let Some(s) = b.get_mut(off!(Self, reserved)..off!(Self, reserved) + 6) {
            s.copy_from_slice(&self.reserved);
        }
        put64(b, off!(Self, last_end_lsn), self.last_end_lsn);
    }
}

/// LFS log record header (`LFS_RECORD_HEADER`, 0x30 bytes); the client's
/// data follows it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// This record's LSN.
    pub this_lsn: u64,
    /// The client's previous record in the same transaction.
    pub client_previous_lsn: u64,
    /// Next record to undo in the transaction (skips compensated ones).
    pub client_undo_next_lsn: u64,
    /// Bytes of client data after the header.
    pub client_data_length: u32,
    /// Client id: sequence number of the client record.
    pub client_seq_number: u16,
    /// Client id: index of the client record.
    pub client_index: u16,
    /// [`LFS_CLIENT_RECORD`] or [`LFS_CLIENT_RESTART`].
    pub record_type: u32,
    /// Transaction id (NTFS: offset of its transaction table entry).
    pub transaction_id: u32,
    /// [`LOG_RECORD_MULTI_PAGE`].
    pub flags: u16,
    /// Reserved.
    pub reserved: [u8; 6],
}

/// Size of the LFS record header.
pub const RECORD_HEADER_LEN: usize = 0x30;

const _: () = {
    assert!(offset_of!(RecordHeader, this_lsn) == 0x00);
    assert!(offset_of!(RecordHeader, client_previous_lsn) == 0x08);
    assert!(offset_of!(RecordHeader, client_undo_next_lsn) == 0x10);
    assert!(offset_of!(RecordHeader, client_data_length) == 0x18);
    assert!(offset_of!(RecordHeader, client_seq_number) == 0x1C);
    assert!(offset_of!(RecordHeader, client_index) == 0x1E);
    assert!(offset_of!(RecordHeader, record_type) == 0x20);
    assert!(offset_of!(RecordHeader, transaction_id) == 0x24);
    assert!(offset_of!(RecordHeader, flags) == 0x28);
    assert!(offset_of!(RecordHeader, reserved) == 0x2A);
    assert!(core::mem::size_of::<RecordHeader>() == RECORD_HEADER_LEN);
};

impl RecordHeader {
    /// Reads a record header at `o` of `b`.
    pub fn parse(b: &[u8], o: usize) -> Result<Self> {
        let mut reserved = [0u8; 6];
        reserved.copy_from_slice(crate::util::sub(b, o + off!(Self, reserved), 6)?);
        Ok(Self {
            this_lsn: u64_at(b, o + off!(Self, this_lsn))?,
            client_previous_lsn: u64_at(b, o + off!(Self, client_previous_lsn))?,
            client_undo_next_lsn: u64_at(b, o + off!(Self, client_undo_next_lsn))?,
            client_data_length: u32_at(b, o + off!(Self, client_data_length))?,
            client_seq_number: u16_at(b, o + off!(Self, client_seq_number))?,
            client_index: u16_at(b, o + off!(Self, client_index))?,
            record_type: u32_at(b, o + off!(Self, record_type))?,
            transaction_id: u32_at(b, o + off!(Self, transaction_id))?,
            flags: u16_at(b, o + off!(Self, flags))?,
            reserved,
        })
    }

    /// Writes the header at `o` of `b`.
    pub fn write(&self, b: &mut [u8], o: usize) {
        put64(b, o + off!(Self, this_lsn), self.this_lsn);
        put64(
            b,
            o + off!(Self, client_previous_lsn),
            self.client_previous_lsn,
        );
        put64(
            b,
            o + off!(Self, client_undo_next_lsn),
            self.client_undo_next_lsn,
        );
        put32(
            b,
            o + off!(Self, client_data_length),
            self.client_data_length,
        );
        put16(b, o + off!(Self, client_seq_number), self.client_seq_number);
        put16(b, o + off!(Self, client_index), self.client_index);
        put32(b, o + off!(Self, record_type), self.record_type);
        put32(b, o + off!(Self, transaction_id), self.transaction_id);
        put16(b, o + off!(Self, flags), self.flags);
        if let Some(s) = b.get_mut(o + off!(Self, reserved)..o + off!(Self, reserved) + 6) {
            s.copy_from_slice(&self.reserved);
        }
    }
}

/// NTFS's client record header (`NTFS_LOG_RECORD_HEADER`, 0x20 bytes plus
/// `lcns_to_follow` LCNs): what a redo/undo pair changes and where.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NtfsRecordHeader {
    /// Redo operation ([`super::ops::Op`] code).
    pub redo_operation: u16,
    /// Undo operation.
    pub undo_operation: u16,
    /// Offset of the redo data from the start of this header.
    pub redo_offset: u16,
    /// Redo data length.
    pub redo_length: u16,
    /// Offset of the undo data.
    pub undo_offset: u16,
    /// Undo data length.
    pub undo_length: u16,
    /// Index of the target attribute in the open attribute table.
    pub target_attribute: u16,
    /// LCNs after the header (one per cluster of the target page).
    pub lcns_to_follow: u16,
    /// Byte offset of the change within the target (record or index buffer).
    pub record_offset: u16,
    /// Offset within the attribute (or index entry) being changed.
    pub attribute_offset: u16,
    /// Cluster block offset (512-byte units) within the target cluster.
    pub cluster_block_offset: u16,
    /// Reserved.
    pub reserved: u16,
    /// Target VCN of the page being changed.
    pub target_vcn: u64,
}

/// Size of the NTFS record header without LCNs.
pub const NTFS_RECORD_HEADER_LEN: usize = 0x20;

const _: () = {
    assert!(offset_of!(NtfsRecordHeader, redo_operation) == 0x00);
    assert!(offset_of!(NtfsRecordHeader, undo_operation) == 0x02);
    assert!(offset_of!(NtfsRecordHeader, redo_offset) == 0x04);
    assert!(offset_of!(NtfsRecordHeader, redo_length) == 0x06);
    assert!(offset_of!(NtfsRecordHeader, undo_offset) == 0x08);
    assert!(offset_of!(NtfsRecordHeader, undo_length) == 0x0A);
    assert!(offset_of!(NtfsRecordHeader, target_attribute) == 0x0C);
    assert!(offset_of!(NtfsRecordHeader, lcns_to_follow) == 0x0E);
    assert!(offset_of!(NtfsRecordHeader, record_offset) == 0x10);
    assert!(offset_of!(NtfsRecordHeader, attribute_offset) == 0x12);
    assert!(offset_of!(NtfsRecordHeader, cluster_block_offset) == 0x14);
    assert!(offset_of!(NtfsRecordHeader, reserved) == 0x16);
    assert!(offset_of!(NtfsRecordHeader, target_vcn) == 0x18);
    assert!(core::mem::size_of::<NtfsRecordHeader>() == NTFS_RECORD_HEADER_LEN);
};

impl NtfsRecordHeader {
    /// Reads the header at the start of client data `b`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        Ok(Self {
            redo_operation: u16_at(b, off!(Self, redo_operation))?,
            undo_operation: u16_at(b, off!(Self, undo_operation))?,
            redo_offset: u16_at(b, off!(Self, redo_offset))?,
            redo_length: u16_at(b, off!(Self, redo_length))?,
            undo_offset: u16_at(b, off!(Self, undo_offset))?,
            undo_length: u16_at(b, off!(Self, undo_length))?,
            target_attribute: u16_at(b, off!(Self, target_attribute))?,
            lcns_to_follow: u16_at(b, off!(Self, lcns_to_follow))?,
            record_offset: u16_at(b, off!(Self, record_offset))?,
            attribute_offset: u16_at(b, off!(Self, attribute_offset))?,
            cluster_block_offset: u16_at(b, off!(Self, cluster_block_offset))?,
            reserved: u16_at(b, off!(Self, reserved))?,
            target_vcn: u64_at(b, off!(Self, target_vcn))?,
        })
    }

    /// Writes the header at the start of `b`.
    pub fn write(&self, b: &mut [u8]) {
        put16(b, off!(Self, redo_operation), self.redo_operation);
        put16(b, off!(Self, undo_operation), self.undo_operation);
        put16(b, off!(Self, redo_offset), self.redo_offset);
        put16(b, off!(Self, redo_length), self.redo_length);
        put16(b, off!(Self, undo_offset), self.undo_offset);
        put16(b, off!(Self, undo_length), self.undo_length);
        put16(b, off!(Self, target_attribute), self.target_attribute);
        put16(b, off!(Self, lcns_to_follow), self.lcns_to_follow);
        put16(b, off!(Self, record_offset), self.record_offset);
        put16(b, off!(Self, attribute_offset), self.attribute_offset);
        put16(
            b,
            off!(Self, cluster_block_offset),
            self.cluster_block_offset,
        );
        put16(b, off!(Self, reserved), self.reserved);
        put64(b, off!(Self, target_vcn), self.target_vcn);
    }
}

/// NTFS's checkpoint restart area (the client data of an
/// [`LFS_CLIENT_RESTART`] record): where the table dumps of the last
/// checkpoint are.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NtfsRestartArea {
    /// Major version (0: 32-bit table entries, 1: 64-bit).
    pub major_version: u32,
    /// Minor version.
    pub minor_version: u32,
    /// LSN where the checkpoint began (analysis starts here).
    pub start_of_checkpoint: u64,
    /// LSN of the open attribute table dump.
    pub open_attribute_table_lsn: u64,
    /// LSN of the attribute names dump.
    pub attribute_names_lsn: u64,
    /// LSN of the dirty page table dump.
    pub dirty_page_table_lsn: u64,
    /// LSN of the transaction table dump.
    pub transaction_table_lsn: u64,
    /// Length of the open attribute table dump.
    pub open_attribute_table_length: u32,
    /// Length of the attribute names dump.
    pub attribute_names_length: u32,
    /// Length of the dirty page table dump.
    pub dirty_page_table_length: u32,
    /// Length of the transaction table dump.
    pub transaction_table_length: u32,
}

/// Size of the NTFS restart area.
pub const NTFS_RESTART_AREA_LEN: usize = 0x40;

const _: () = {
    assert!(offset_of!(NtfsRestartArea, major_version) == 0x00);
    assert!(offset_of!(NtfsRestartArea, minor_version) == 0x04);
    assert!(offset_of!(NtfsRestartArea, start_of_checkpoint) == 0x08);
    assert!(offset_of!(NtfsRestartArea, open_attribute_table_lsn) == 0x10);
    assert!(offset_of!(NtfsRestartArea, attribute_names_lsn) == 0x18);
    assert!(offset_of!(NtfsRestartArea, dirty_page_table_lsn) == 0x20);
    assert!(offset_of!(NtfsRestartArea, transaction_table_lsn) == 0x28);
    assert!(offset_of!(NtfsRestartArea, open_attribute_table_length) == 0x30);
    assert!(offset_of!(NtfsRestartArea, attribute_names_length) == 0x34);
    assert!(offset_of!(NtfsRestartArea, dirty_page_table_length) == 0x38);
    assert!(offset_of!(NtfsRestartArea, transaction_table_length) == 0x3C);
    assert!(core::mem::size_of::<NtfsRestartArea>() == NTFS_RESTART_AREA_LEN);
};

impl NtfsRestartArea {
    /// Reads it from client data `b`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        Ok(Self {
            major_version: u32_at(b, off!(Self, major_version))?,
            minor_version: u32_at(b, off!(Self, minor_version))?,
            start_of_checkpoint: u64_at(b, off!(Self, start_of_checkpoint))?,
            open_attribute_table_lsn: u64_at(b, off!(Self, open_attribute_table_lsn))?,
            attribute_names_lsn: u64_at(b, off!(Self, attribute_names_lsn))?,
            dirty_page_table_lsn: u64_at(b, off!(Self, dirty_page_table_lsn))?,
            transaction_table_lsn: u64_at(b, off!(Self, transaction_table_lsn))?,
            open_attribute_table_length: u32_at(b, off!(Self, open_attribute_table_length))?,
            attribute_names_length: u32_at(b, off!(Self, attribute_names_length))?,
            dirty_page_table_length: u32_at(b, off!(Self, dirty_page_table_length))?,
            transaction_table_length: u32_at(b, off!(Self, transaction_table_length))?,
        })
    }

    /// Its bytes.
    pub fn to_bytes(&self) -> [u8; NTFS_RESTART_AREA_LEN] {
        let mut b = [0u8; NTFS_RESTART_AREA_LEN];
        put32(&mut b, off!(Self, major_version), self.major_version);
        put32(&mut b, off!(Self, minor_version), self.minor_version);
        put64(
            &mut b,
            off!(Self, start_of_checkpoint),
            self.start_of_checkpoint,
        );
        put64(
            &mut b,
            off!(Self, open_attribute_table_lsn),
            self.open_attribute_table_lsn,
        );
        put64(
            &mut b,
            off!(Self, attribute_names_lsn),
            self.attribute_names_lsn,
        );
        put64(
            &mut b,
            off!(Self, dirty_page_table_lsn),
            self.dirty_page_table_lsn,
        );
        put64(
            &mut b,
            off!(Self, transaction_table_lsn),
            self.transaction_table_lsn,
        );
        put32(
            &mut b,
            off!(Self, open_attribute_table_length),
            self.open_attribute_table_length,
        );
        put32(
            &mut b,
            off!(Self, attribute_names_length),
            self.attribute_names_length,
        );
        put32(
            &mut b,
            off!(Self, dirty_page_table_length),
            self.dirty_page_table_length,
        );
        put32(
            &mut b,
            off!(Self, transaction_table_length),
            self.transaction_table_length,
        );
        b
    }
}

/// Header of a restart table (open attribute, dirty page and transaction
/// tables, dumped at checkpoints). Entries of `entry_size` bytes follow;
/// an allocated entry starts with [`RESTART_ENTRY_ALLOCATED`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartTableHeader {
    /// Bytes per entry.
    pub entry_size: u16,
    /// Entries in the table.
    pub number_entries: u16,
    /// Entries allocated (in use).
    pub number_allocated: u16,
    /// Reserved.
    pub reserved: [u16; 3],
    /// Offset where the free list should be cut back to.
    pub free_goal: u32,
    /// Offset of the first free entry (0 if none).
    pub first_free: u32,
    /// Offset of the last free entry (0 if none).
    pub last_free: u32,
}

/// Size of the restart table header.
pub const RESTART_TABLE_HEADER_LEN: usize = 0x18;

const _: () = {
    assert!(offset_of!(RestartTableHeader, entry_size) == 0x00);
    assert!(offset_of!(RestartTableHeader, number_entries) == 0x02);
    assert!(offset_of!(RestartTableHeader, number_allocated) == 0x04);
    assert!(offset_of!(RestartTableHeader, reserved) == 0x06);
    assert!(offset_of!(RestartTableHeader, free_goal) == 0x0C);
    assert!(offset_of!(RestartTableHeader, first_free) == 0x10);
    assert!(offset_of!(RestartTableHeader, last_free) == 0x14);
    assert!(core::mem::size_of::<RestartTableHeader>() == RESTART_TABLE_HEADER_LEN);
};

impl RestartTableHeader {
    /// Reads the header at the start of a table dump.
    pub fn parse(b: &[u8]) -> Result<Self> {
        Ok(Self {
            entry_size: u16_at(b, off!(Self, entry_size))?,
            number_entries: u16_at(b, off!(Self, number_entries))?,
            number_allocated: u16_at(b, off!(Self, number_allocated))?,
            reserved: [0; 3],
            free_goal: u32_at(b, off!(Self, free_goal))?,
            first_free: u32_at(b, off!(Self, first_free))?,
            last_free: u32_at(b, off!(Self, last_free))?,
        })
    }

    /// Writes the header at the start of `b`.
    pub fn write(&self, b: &mut [u8]) {
        put16(b, off!(Self, entry_size), self.entry_size);
        put16(b, off!(Self, number_entries), self.number_entries);
        put16(b, off!(Self, number_allocated), self.number_allocated);
        put32(b, off!(Self, free_goal), self.free_goal);
        put32(b, off!(Self, first_free), self.first_free);
        put32(b, off!(Self, last_free), self.last_free);
    }
}

/// Transaction table entry (0x28 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransactionEntry {
    /// [`RESTART_ENTRY_ALLOCATED`] or the next free entry.
    pub allocated_or_next_free: u32,
    /// Transaction state (1 active, 2 prepared, 3 committed).
    pub transaction_state: u8,
    /// Reserved.
    pub reserved: [u8; 3],
    /// First LSN of the transaction.
    pub first_lsn: u64,
    /// Last LSN written by the transaction.
    pub previous_lsn: u64,
    /// Next LSN to undo.
    pub undo_next_lsn: u64,
    /// Undo records pending.
    pub undo_records: u32,
    /// Bytes of undo pending.
    pub undo_bytes: u32,
}

/// Size of a transaction table entry.
pub const TRANSACTION_ENTRY_LEN: usize = 0x28;

const _: () = {
    assert!(offset_of!(TransactionEntry, allocated_or_next_free) == 0x00);
    assert!(offset_of!(TransactionEntry, transaction_state) == 0x04);
    assert!(offset_of!(TransactionEntry, first_lsn) == 0x08);
    assert!(offset_of!(TransactionEntry, previous_lsn) == 0x10);
    assert!(offset_of!(TransactionEntry, undo_next_lsn) == 0x18);
    assert!(offset_of!(TransactionEntry, undo_records) == 0x20);
    assert!(offset_of!(TransactionEntry, undo_bytes) == 0x24);
    assert!(core::mem::size_of::<TransactionEntry>() == TRANSACTION_ENTRY_LEN);
};

impl TransactionEntry {
    /// Reads an entry at `o` of `b`.
    pub fn parse(b: &[u8], o: usize) -> Result<Self> {
        Ok(Self {
            allocated_or_next_free: u32_at(b, o + off!(Self, allocated_or_next_free))?,
            transaction_state: crate::util::u8_at(b, o + off!(Self, transaction_state))?,
            reserved: [0; 3],
            first_lsn: u64_at(b, o + off!(Self, first_lsn))?,
            previous_lsn: u64_at(b, o + off!(Self, previous_lsn))?,
            undo_next_lsn: u64_at(b, o + off!(Self, undo_next_lsn))?,
            undo_records: u32_at(b, o + off!(Self, undo_records))?,
            undo_bytes: u32_at(b, o + off!(Self, undo_bytes))?,
        })
    }

    /// Writes the entry at `o` of `b`.
    pub fn write(&self, b: &mut [u8], o: usize) {
        put32(
            b,
            o + off!(Self, allocated_or_next_free),
            self.allocated_or_next_free,
        );
        if let Some(s) = b.get_mut(o + off!(Self, transaction_state)) {
            *s = self.transaction_state;
        }
        put64(b, o + off!(Self, first_lsn), self.first_lsn);
        put64(b, o + off!(Self, previous_lsn), self.previous_lsn);
        put64(b, o + off!(Self, undo_next_lsn), self.undo_next_lsn);
        put32(b, o + off!(Self, undo_records), self.undo_records);
        put32(b, o + off!(Self, undo_bytes), self.undo_bytes);
    }
}

/// Open attribute table entry as NTFS restart version 1 writes it (0x28
/// bytes; the last 8 are the in-memory pointer, meaningless on disk).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenAttributeEntry {
    /// [`RESTART_ENTRY_ALLOCATED`] or the next free entry.
    pub allocated_or_next_free: u32,
    /// Index buffer size of an index attribute.
    pub bytes_per_index_buffer: u32,
    /// Attribute type code.
    pub attribute_type_code: u32,
    /// Whether dirty pages of it were seen.
    pub dirty_pages_seen: u8,
    /// Reserved.
    pub reserved: [u8; 3],
    /// File reference of the file holding the attribute.
    pub file_reference: u64,
    /// LSN of its `OpenNonresidentAttribute` record.
    pub lsn_of_open_record: u64,
    /// In-memory pointer slot.
    pub pointer: u64,
}

/// Size of an open attribute table entry (version 1).
pub const OPEN_ATTRIBUTE_ENTRY_LEN: usize = 0x28;

const _: () = {
    assert!(offset_of!(OpenAttributeEntry, allocated_or_next_free) == 0x00);
    assert!(offset_of!(OpenAttributeEntry, bytes_per_index_buffer) == 0x04);
    assert!(offset_of!(OpenAttributeEntry, attribute_type_code) == 0x08);
    assert!(offset_of!(OpenAttributeEntry, dirty_pages_seen) == 0x0C);
    assert!(offset_of!(OpenAttributeEntry, file_reference) == 0x10);
    assert!(offset_of!(OpenAttributeEntry, lsn_of_open_record) == 0x18);
    assert!(offset_of!(OpenAttributeEntry, pointer) == 0x20);
    assert!(core::mem::size_of::<OpenAttributeEntry>() == OPEN_ATTRIBUTE_ENTRY_LEN);
};

impl OpenAttributeEntry {
    /// Reads an entry at `o` of `b`.
    pub fn parse(b: &[u8], o: usize) -> Result<Self> {
        Ok(Self {
            allocated_or_next_free: u32_at(b, o + off!(Self, allocated_or_next_free))?,
            bytes_per_index_buffer: u32_at(b, o + off!(Self, bytes_per_index_buffer))?,
            attribute_type_code: u32_at(b, o + off!(Self, attribute_type_code))?,
            dirty_pages_seen: crate::util::u8_at(b, o + off!(Self, dirty_pages_seen))?,
            reserved: [0; 3],
            file_reference: u64_at(b, o + off!(Self, file_reference))?,
            lsn_of_open_record: u64_at(b, o + off!(Self, lsn_of_open_record))?,
            pointer: 0,
        })
    }

    /// Writes the entry at `o` of `b` (pointer slot zero).
    pub fn write(&self, b: &mut [u8], o: usize) {
        put32(
            b,
            o + off!(Self, allocated_or_next_free),
            self.allocated_or_next_free,
        );
        put32(
            b,
            o + off!(Self, bytes_per_index_buffer),
            self.bytes_per_index_buffer,
        );
        put32(
            b,
            o + off!(Self, attribute_type_code),
            self.attribute_type_code,
        );
        if let Some(s) = b.get_mut(o + off!(Self, dirty_pages_seen)) {
            *s = self.dirty_pages_seen;
        }
        put64(b, o + off!(Self, file_reference), self.file_reference);
        put64(
            b,
            o + off!(Self, lsn_of_open_record),
            self.lsn_of_open_record,
        );
        put64(b, o + off!(Self, pointer), 0);
    }
}

/// Dirty page table entry (64-bit form, 0x20 bytes plus `lcns_to_follow` LCNs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirtyPageEntry {
    /// [`RESTART_ENTRY_ALLOCATED`] or the next free entry.
    pub allocated_or_next_free: u32,
    /// Index of the attribute in the open attribute table.
    pub target_attribute: u32,
    /// Bytes of the page.
    pub length_of_transfer: u32,
    /// LCNs after the entry.
    pub lcns_to_follow: u32,
    /// VCN of the dirty page.
    pub vcn: u64,
    /// Oldest LSN whose change to the page may not be on disk.
    pub oldest_lsn: u64,
}

/// Size of a dirty page entry without LCNs.
pub const DIRTY_PAGE_ENTRY_LEN: usize = 0x20;

const _: () = {
    assert!(offset_of!(DirtyPageEntry, allocated_or_next_free) == 0x00);
    assert!(offset_of!(DirtyPageEntry, target_attribute) == 0x04);
    assert!(offset_of!(DirtyPageEntry, length_of_transfer) == 0x08);
    assert!(offset_of!(DirtyPageEntry, lcns_to_follow) == 0x0C);
    assert!(offset_of!(DirtyPageEntry, vcn) == 0x10);
    assert!(offset_of!(DirtyPageEntry, oldest_lsn) == 0x18);
    assert!(core::mem::size_of::<DirtyPageEntry>() == DIRTY_PAGE_ENTRY_LEN);
};

impl DirtyPageEntry {
    /// Reads an entry at `o` of `b`.
    pub fn parse(b: &[u8], o: usize) -> Result<Self> {
        Ok(Self {
            allocated_or_next_free: u32_at(b, o + off!(Self, allocated_or_next_free))?,
            target_attribute: u32_at(b, o + off!(Self, target_attribute))?,
            length_of_transfer: u32_at(b, o + off!(Self, length_of_transfer))?,
            lcns_to_follow: u32_at(b, o + off!(Self, lcns_to_follow))?,
            vcn: u64_at(b, o + off!(Self, vcn))?,
            oldest_lsn: u64_at(b, o + off!(Self, oldest_lsn))?,
        })
    }

    /// Writes the entry at `o` of `b`.
    pub fn write(&self, b: &mut [u8], o: usize) {
        put32(
            b,
            o + off!(Self, allocated_or_next_free),
            self.allocated_or_next_free,
        );
        put32(b, o + off!(Self, target_attribute), self.target_attribute);
        put32(
            b,
            o + off!(Self, length_of_transfer),
            self.length_of_transfer,
        );
        put32(b, o + off!(Self, lcns_to_follow), self.lcns_to_follow);
        put64(b, o + off!(Self, vcn), self.vcn);
        put64(b, o + off!(Self, oldest_lsn), self.oldest_lsn);
    }
}

/// LSN arithmetic of one log: the top `seq_number_bits` bits of an LSN are
/// the wrap sequence number, the rest is the file offset divided by 8
/// (records are quadword aligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsnMath {
    /// Sequence number bits from the restart area.
    pub seq_number_bits: u32,
}

impl LsnMath {
    /// Checks the bits are usable (an offset needs at least one bit, and
    /// offsets up to 2^64 bytes fit).
    pub fn new(seq_number_bits: u32) -> Result<Self> {
        if !(3..64).contains(&seq_number_bits) {
            return Err(Error::Corrupt("$LogFile sequence number bits"));
        }
        Ok(Self { seq_number_bits })
    }

    /// Sequence number bits for a log of `file_size` bytes, as mkntfs and
    /// Windows derive it: 67 minus the bit length of the size (so the
    /// offset part, in 8-byte units, covers twice the file).
    pub fn bits_for_size(file_size: u64) -> u32 {
        67 - (64 - file_size.leading_zeros())
    }

    fn file_data_bits(&self) -> u32 {
        64 - self.seq_number_bits
    }

    /// File offset of an LSN.
    pub fn offset(&self, lsn: u64) -> u64 {
        (lsn << self.seq_number_bits) >> (self.seq_number_bits - 3)
    }

    /// Wrap sequence number of an LSN.
    pub fn seq(&self, lsn: u64) -> u64 {
        lsn >> self.file_data_bits()
    }

    /// LSN of file offset `off` (a multiple of 8) in wrap `seq`.
    pub fn lsn(&self, seq: u64, off: u64) -> u64 {
        (seq << self.file_data_bits()) | ((off >> 3) & ((1u64 << self.file_data_bits()) - 1))
    }
}
