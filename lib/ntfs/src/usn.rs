//! The USN change journal (*Windows Internals* Part 2 ch. 11, "Change
//! logging"): `$Extend\$UsnJrnl`, whose sparse `$DATA:$J` holds
//! `USN_RECORD_V2` records (a record's USN is its byte offset in `$J`) and
//! whose `$DATA:$Max` holds the journal's parameters.
//!
//! Layouts: `USN_RECORD_V2`, `USN_JOURNAL_DATA_V0`/`V1`,
//! `READ_USN_JOURNAL_DATA_V0`/`V1`, `CREATE_USN_JOURNAL_DATA` and
//! `DELETE_USN_JOURNAL_DATA` as Microsoft documents them (winioctl.h);
//! `$Max` (maximum size, allocation delta, journal id, lowest valid USN:
//! 32 bytes) as forensic descriptions of the journal give it. Records are
//! 8-byte aligned and never straddle a 4 KiB page of `$J` (the rest of a
//! page is zeros, skipped by readers). When `$J` grows past the maximum
//! size plus the allocation delta, its start is deallocated in units of
//! the delta (a sparse hole) and the first USN moves on.

use crate::attr::*;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::record::{Attr, Body, NonResident};
use crate::util::{put16, put32, put64, u16_at, u32_at, u64_at};
use crate::volume::{rec, Volume};
use alloc::vec::Vec;

/// `USN_REASON_DATA_OVERWRITE`.
pub const USN_REASON_DATA_OVERWRITE: u32 = 0x0000_0001;
/// `USN_REASON_DATA_EXTEND`.
pub const USN_REASON_DATA_EXTEND: u32 = 0x0000_0002;
/// `USN_REASON_DATA_TRUNCATION`.
pub const USN_REASON_DATA_TRUNCATION: u32 = 0x0000_0004;
/// `USN_REASON_NAMED_DATA_OVERWRITE`.
pub const USN_REASON_NAMED_DATA_OVERWRITE: u32 = 0x0000_0010;
/// `USN_REASON_NAMED_DATA_EXTEND`.
pub const USN_REASON_NAMED_DATA_EXTEND: u32 = 0x0000_0020;
/// `USN_REASON_NAMED_DATA_TRUNCATION`.
pub const USN_REASON_NAMED_DATA_TRUNCATION: u32 = 0x0000_0040;
/// `USN_REASON_FILE_CREATE`.
pub const USN_REASON_FILE_CREATE: u32 = 0x0000_0100;
/// `USN_REASON_FILE_DELETE`.
pub const USN_REASON_FILE_DELETE: u32 = 0x0000_0200;
/// `USN_REASON_EA_CHANGE`.
pub const USN_REASON_EA_CHANGE: u32 = 0x0000_0400;
/// `USN_REASON_SECURITY_CHANGE`.
pub const USN_REASON_SECURITY_CHANGE: u32 = 0x0000_0800;
/// `USN_REASON_RENAME_OLD_NAME`.
pub const USN_REASON_RENAME_OLD_NAME: u32 = 0x0000_1000;
/// `USN_REASON_RENAME_NEW_NAME`.
pub const USN_REASON_RENAME_NEW_NAME: u32 = 0x0000_2000;
/// `USN_REASON_INDEXABLE_CHANGE`.
pub const USN_REASON_INDEXABLE_CHANGE: u32 = 0x0000_4000;
/// `USN_REASON_BASIC_INFO_CHANGE`.
pub const USN_REASON_BASIC_INFO_CHANGE: u32 = 0x0000_8000;
/// `USN_REASON_HARD_LINK_CHANGE`.
pub const USN_REASON_HARD_LINK_CHANGE: u32 = 0x0001_0000;
/// `USN_REASON_COMPRESSION_CHANGE`.
pub const USN_REASON_COMPRESSION_CHANGE: u32 = 0x0002_0000;
/// `USN_REASON_ENCRYPTION_CHANGE`.
pub const USN_REASON_ENCRYPTION_CHANGE: u32 = 0x0004_0000;
/// `USN_REASON_OBJECT_ID_CHANGE`.
pub const USN_REASON_OBJECT_ID_CHANGE: u32 = 0x0008_0000;
/// `USN_REASON_REPARSE_POINT_CHANGE`.
pub const USN_REASON_REPARSE_POINT_CHANGE: u32 = 0x0010_0000;
/// `USN_REASON_STREAM_CHANGE`.
pub const USN_REASON_STREAM_CHANGE: u32 = 0x0020_0000;
/// `USN_REASON_CLOSE`.
pub const USN_REASON_CLOSE: u32 = 0x8000_0000;

/// Reason flag names, in `fsutil usn readjournal`'s wording.
pub const REASON_NAMES: &[(u32, &str)] = &[
    (USN_REASON_DATA_OVERWRITE, "Data overwrite"),
    (USN_REASON_DATA_EXTEND, "Data extend"),
    (USN_REASON_DATA_TRUNCATION, "Data truncation"),
    (USN_REASON_NAMED_DATA_OVERWRITE, "Named data overwrite"),
    (USN_REASON_NAMED_DATA_EXTEND, "Named data extend"),
    (USN_REASON_NAMED_DATA_TRUNCATION, "Named data truncation"),
    (USN_REASON_FILE_CREATE, "File create"),
    (USN_REASON_FILE_DELETE, "File delete"),
    (USN_REASON_EA_CHANGE, "Extended attributes change"),
    (USN_REASON_SECURITY_CHANGE, "Security change"),
    (USN_REASON_RENAME_OLD_NAME, "Rename: old name"),
    (USN_REASON_RENAME_NEW_NAME, "Rename: new name"),
    (USN_REASON_INDEXABLE_CHANGE, "Indexable change"),
    (USN_REASON_BASIC_INFO_CHANGE, "Basic info change"),
    (USN_REASON_HARD_LINK_CHANGE, "Hard link change"),
    (USN_REASON_COMPRESSION_CHANGE, "Compression change"),
    (USN_REASON_ENCRYPTION_CHANGE, "Encryption change"),
    (USN_REASON_OBJECT_ID_CHANGE, "Object ID change"),
    (USN_REASON_REPARSE_POINT_CHANGE, "Reparse point change"),
    (USN_REASON_STREAM_CHANGE, "Stream change"),
    (USN_REASON_CLOSE, "Close"),
];

/// `FSCTL_READ_USN_JOURNAL` (METHOD_NEITHER).
pub const FSCTL_READ_USN_JOURNAL: u32 = 0x0009_00BB;
/// `FSCTL_CREATE_USN_JOURNAL` (METHOD_NEITHER).
pub const FSCTL_CREATE_USN_JOURNAL: u32 = 0x0009_00E7;
/// `FSCTL_QUERY_USN_JOURNAL` (METHOD_BUFFERED).
pub const FSCTL_QUERY_USN_JOURNAL: u32 = 0x0009_00F4;
/// `FSCTL_DELETE_USN_JOURNAL` (METHOD_BUFFERED).
pub const FSCTL_DELETE_USN_JOURNAL: u32 = 0x0009_00F8;
/// `USN_DELETE_FLAG_DELETE`.
pub const USN_DELETE_FLAG_DELETE: u32 = 1;
/// `USN_DELETE_FLAG_NOTIFY`.
pub const USN_DELETE_FLAG_NOTIFY: u32 = 2;

/// Bytes of `USN_RECORD_V2` before the file name.
pub const USN_RECORD_V2_HEADER_LEN: usize = 0x3C;
/// Size of `USN_JOURNAL_DATA_V0`.
pub const USN_JOURNAL_DATA_V0_LEN: usize = 0x38;
/// Size of `USN_JOURNAL_DATA_V1`.
pub const USN_JOURNAL_DATA_V1_LEN: usize = 0x3C;
/// Size of `READ_USN_JOURNAL_DATA_V0`.
pub const READ_USN_JOURNAL_DATA_V0_LEN: usize = 0x28;
/// Size of `READ_USN_JOURNAL_DATA_V1`.
pub const READ_USN_JOURNAL_DATA_V1_LEN: usize = 0x2C;
/// Size of `CREATE_USN_JOURNAL_DATA`.
pub const CREATE_USN_JOURNAL_DATA_LEN: usize = 0x10;
/// Size of `DELETE_USN_JOURNAL_DATA`.
pub const DELETE_USN_JOURNAL_DATA_LEN: usize = 0x10;

/// Records never straddle a page of `$J` of this size.
const USN_PAGE: u64 = 4096;

/// The largest USN the journal supports (`MaxUsn`): USNs are `LONGLONG`.
pub const MAX_USN: i64 = 0x7FFF_FFFF_FFFF_0000;

/// One `USN_RECORD_V2`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsnRecord {
    /// `FileReferenceNumber`.
    pub file_reference: u64,
    /// `ParentFileReferenceNumber`.
    pub parent_reference: u64,
    /// `Usn`.
    pub usn: i64,
    /// `TimeStamp` (100 ns since 1601, UTC).
    pub timestamp: u64,
    /// `Reason` (`USN_REASON_*`).
    pub reason: u32,
    /// `SourceInfo`.
    pub source_info: u32,
    /// `SecurityId`.
    pub security_id: u32,
    /// `FileAttributes`.
    pub file_attributes: u32,
    /// The file name (UTF-16).
    pub name: Vec<u16>,
}

impl UsnRecord {
    /// `RecordLength`: header plus name, 8-aligned.
    pub fn len(&self) -> usize {
        crate::util::align8(USN_RECORD_V2_HEADER_LEN + 2 * self.name.len())
    }

    /// Whether the record has no name (never, for records NTFS writes).
    pub fn is_empty(&self) -> bool {
        self.name.is_empty()
    }

    /// Its bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = alloc::vec![0u8; self.len()];
        put32(&mut b, 0x00, self.len() as u32);
        put16(&mut b, 0x04, 2);
        put16(&mut b, 0x06, 0);
        put64(&mut b, 0x08, self.file_reference);
        put64(&mut b, 0x10, self.parent_reference);
        put64(&mut b, 0x18, self.usn as u64);
        put64(&mut b, 0x20, self.timestamp);
        put32(&mut b, 0x28, self.reason);
        put32(&mut b, 0x2C, self.source_info);
        put32(&mut b, 0x30, self.security_id);
        put32(&mut b, 0x34, self.file_attributes);
        put16(&mut b, 0x38, (2 * self.name.len()) as u16);
        put16(&mut b, 0x3A, USN_RECORD_V2_HEADER_LEN as u16);
        for (i, u) in self.name.iter().enumerate() {
            put16(&mut b, USN_RECORD_V2_HEADER_LEN + 2 * i, *u);
        }
        b
    }

    /// Decodes the record at the start of `b` (version 2.x only; other
    /// major versions are `Unsupported`).
    pub fn parse(b: &[u8]) -> Result<Self> {
        let len = u32_at(b, 0)? as usize;
        if len < USN_RECORD_V2_HEADER_LEN || len > b.len() || !len.is_multiple_of(8) {
            return Err(Error::Corrupt("USN record length"));
        }
        if u16_at(b, 4)? != 2 {
            return Err(Error::Unsupported("USN record version other than 2"));
        }
        let nl = u16_at(b, 0x38)? as usize;
        let no = u16_at(b, 0x3A)? as usize;
        if no < USN_RECORD_V2_HEADER_LEN || no + nl > len || !nl.is_multiple_of(2) {
            return Err(Error::Corrupt("USN record name"));
        }
        Ok(Self {
            file_reference: u64_at(b, 0x08)?,
            parent_reference: u64_at(b, 0x10)?,
            usn: u64_at(b, 0x18)? as i64,
            timestamp: u64_at(b, 0x20)?,
            reason: u32_at(b, 0x28)?,
            source_info: u32_at(b, 0x2C)?,
            security_id: u32_at(b, 0x30)?,
            file_attributes: u32_at(b, 0x34)?,
            name: crate::util::utf16_units(&b[no..no + nl]),
        })
    }

    /// The reason flags by name, joined with " | ".
    pub fn reason_text(reason: u32) -> alloc::string::String {
        let mut s = alloc::string::String::new();
        for (bit, name) in REASON_NAMES {
            if reason & bit != 0 {
                if !s.is_empty() {
                    s.push_str(" | ");
                }
                s.push_str(name);
            }
        }
        s
    }
}

/// `USN_JOURNAL_DATA_V1` (V0 is its first 0x38 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalData {
    /// `UsnJournalID`.
    pub journal_id: u64,
    /// `FirstUsn`: the first record that can be read.
    pub first_usn: i64,
    /// `NextUsn`: the USN the next record gets.
    pub next_usn: i64,
    /// `LowestValidUsn`: the first USN of this journal instance.
    pub lowest_valid_usn: i64,
    /// `MaxUsn`.
    pub max_usn: i64,
    /// `MaximumSize`.
    pub maximum_size: u64,
    /// `AllocationDelta`.
    pub allocation_delta: u64,
}

impl JournalData {
    /// `USN_JOURNAL_DATA_V0` (`v1` false) or `V1` (supported record major
    /// versions 2 to 2).
    pub fn to_bytes(&self, v1: bool) -> Vec<u8> {
        let mut b =
            alloc::vec![0u8; if v1 { USN_JOURNAL_DATA_V1_LEN } else { USN_JOURNAL_DATA_V0_LEN }];
        put64(&mut b, 0x00, self.journal_id);
        put64(&mut b, 0x08, self.first_usn as u64);
        put64(&mut b, 0x10, self.next_usn as u64);
        put64(&mut b, 0x18, self.lowest_valid_usn as u64);
        put64(&mut b, 0x20, self.max_usn as u64);
        put64(&mut b, 0x28, self.maximum_size);
        put64(&mut b, 0x30, self.allocation_delta);
        if v1 {
            put16(&mut b, 0x38, 2);
            put16(&mut b, 0x3A, 2);
        }
        b
    }

    /// Decodes a `USN_JOURNAL_DATA_V0` or `V1`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        Ok(Self {
            journal_id: u64_at(b, 0x00)?,
            first_usn: u64_at(b, 0x08)? as i64,
            next_usn: u64_at(b, 0x10)? as i64,
            lowest_valid_usn: u64_at(b, 0x18)? as i64,
            max_usn: u64_at(b, 0x20)? as i64,
            maximum_size: u64_at(b, 0x28)?,
            allocation_delta: u64_at(b, 0x30)?,
        })
    }
}

/// `READ_USN_JOURNAL_DATA_V0`/`V1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadJournalData {
    /// `StartUsn`.
    pub start_usn: i64,
    /// `ReasonMask`.
    pub reason_mask: u32,
    /// `ReturnOnlyOnClose`.
    pub return_only_on_close: u32,
    /// `Timeout`.
    pub timeout: u64,
    /// `BytesToWaitFor`.
    pub bytes_to_wait_for: u64,
    /// `UsnJournalID`.
    pub journal_id: u64,
    /// `MinMajorVersion` (V1; 2 for V0).
    pub min_major_version: u16,
    /// `MaxMajorVersion` (V1; 2 for V0).
    pub max_major_version: u16,
}

impl ReadJournalData {
    /// Decodes a V0 (0x28 bytes) or V1 (0x2C bytes) input buffer.
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < READ_USN_JOURNAL_DATA_V0_LEN {
            return Err(Error::InvalidParameter("READ_USN_JOURNAL_DATA too short"));
        }
        let v1 = b.len() >= READ_USN_JOURNAL_DATA_V1_LEN;
        Ok(Self {
            start_usn: u64_at(b, 0x00)? as i64,
            reason_mask: u32_at(b, 0x08)?,
            return_only_on_close: u32_at(b, 0x0C)?,
            timeout: u64_at(b, 0x10)?,
            bytes_to_wait_for: u64_at(b, 0x18)?,
            journal_id: u64_at(b, 0x20)?,
            min_major_version: if v1 { u16_at(b, 0x28)? } else { 2 },
            max_major_version: if v1 { u16_at(b, 0x2A)? } else { 2 },
        })
    }

    /// Its V0 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = alloc::vec![0u8; READ_USN_JOURNAL_DATA_V0_LEN];
        put64(&mut b, 0x00, self.start_usn as u64);
        put32(&mut b, 0x08, self.reason_mask);
        put32(&mut b, 0x0C, self.return_only_on_close);
        put64(&mut b, 0x10, self.timeout);
        put64(&mut b, 0x18, self.bytes_to_wait_for);
        put64(&mut b, 0x20, self.journal_id);
        b
    }
}

fn u16s(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// `$Max`'s value: maximum size, allocation delta, journal id, lowest
/// valid USN.
fn max_bytes(max: u64, delta: u64, id: u64, lowest: i64) -> Vec<u8> {
    let mut b = alloc::vec![0u8; 32];
    put64(&mut b, 0, max);
    put64(&mut b, 8, delta);
    put64(&mut b, 16, id);
    put64(&mut b, 24, lowest as u64);
    b
}

impl<D: BlockDevice> Volume<D> {
    /// `$Extend\$UsnJrnl`'s record number, if the journal exists.
    pub fn usn_journal_file(&mut self) -> Result<Option<u64>> {
        Ok(self
            .lookup_in(rec::EXTEND, &u16s("$UsnJrnl"))?
            .map(|e| e.mft_no()))
    }

    /// `FSCTL_QUERY_USN_JOURNAL`: the journal's state, `None` when there
    /// is none (STATUS_JOURNAL_NOT_ACTIVE).
    pub fn query_usn_journal(&mut self) -> Result<Option<JournalData>> {
        let Some(n) = self.usn_journal_file()? else {
            return Ok(None);
        };
        let m = self.read_stream_all(n, AT_DATA, &u16s("$Max"))?;
        if m.len() < 32 {
            return Err(Error::Corrupt("$UsnJrnl:$Max"));
        }
        let s = self.open_stream(n, AT_DATA, &u16s("$J"))?;
        // The first USN: the first allocated byte of $J (its start is a
        // sparse hole once trimmed).
        let cs = self.cluster_size();
        let first = s
            .runs
            .iter()
            .find(|r| r.lcn.is_some())
            .map(|r| r.vcn * cs)
            .unwrap_or(s.data_size)
            .min(s.data_size);
        Ok(Some(JournalData {
            journal_id: u64_at(&m, 16)?,
            first_usn: first as i64,
            next_usn: s.data_size as i64,
            lowest_valid_usn: u64_at(&m, 24)? as i64,
            max_usn: MAX_USN,
            maximum_size: u64_at(&m, 0)?,
            allocation_delta: u64_at(&m, 8)?,
        }))
    }

    /// `FSCTL_CREATE_USN_JOURNAL`: creates `$Extend\$UsnJrnl` (a hidden
    /// system file with an empty sparse `$J` and `$Max`) with journal id
    /// `id` (NTFS takes the system time), or changes an existing journal's
    /// maximum size and allocation delta. The delta is rounded up to a
    /// multiple of the cluster and page size (at least one page); a
    /// maximum size of 0 takes 32 MiB and a delta of 0 an eighth of the
    /// maximum (ntrs's defaults, not Windows').
    pub fn create_usn_journal(&mut self, max: u64, delta: u64, id: u64) -> Result<JournalData> {
        let max = if max == 0 { 32 << 20 } else { max };
        let unit = self.cluster_size().max(USN_PAGE);
        let delta = if delta == 0 { max / 8 } else { delta };
        let delta = delta.div_ceil(unit).max(1) * unit;
        match self.usn_journal_file()? {
            Some(n) => {
                let m = self.read_stream_all(n, AT_DATA, &u16s("$Max"))?;
                let (old_id, lowest) = (u64_at(&m, 16)?, u64_at(&m, 24)? as i64);
                self.write_at(n, &u16s("$Max"), 0, &max_bytes(max, delta, old_id, lowest))?;
            }
            None => {
                self.op(|v| {
                    let n = v.create_in(rec::EXTEND, &u16s("$UsnJrnl"), false)?;
                    let mut r = v.read_record(n)?;
                    r.remove(AT_DATA, &[]);
                    r.add(Attr::resident(
                        AT_DATA,
                        &u16s("$Max"),
                        max_bytes(max, delta, id, 0),
                    ));
                    let mut j = Attr::resident(AT_DATA, &u16s("$J"), Vec::new());
                    j.flags = ATTR_SPARSE;
                    j.body = Body::NonResident(NonResident {
                        start_vcn: 0,
                        last_vcn: u64::MAX,
                        runs: Vec::new(),
                        compression_unit: 0,
                        allocated_size: 0,
                        data_size: 0,
                        initialized_size: 0,
                        compressed_size: Some(0),
                    });
                    r.add(j);
                    if let Some(a) = r.find_mut(AT_STANDARD_INFORMATION, &[]) {
                        if let Body::Resident { value, .. } = &mut a.body {
                            let attrs = u32_at(value, 0x20)?
                                | FILE_ATTRIBUTE_HIDDEN
                                | FILE_ATTRIBUTE_SYSTEM
                                | FILE_ATTRIBUTE_SPARSE_FILE;
                            put32(value, 0x20, attrs);
                        }
                    }
                    v.write_record(&r)
                })?;
            }
        }
        self.query_usn_journal()?
            .ok_or(Error::Corrupt("$UsnJrnl vanished"))
    }

    /// `FSCTL_DELETE_USN_JOURNAL` (`USN_DELETE_FLAG_DELETE`): removes
    /// `$Extend\$UsnJrnl` and its clusters. `id` must be the journal's
    /// (`InvalidParameter` otherwise); no journal is `NotFound`.
    pub fn delete_usn_journal(&mut self, id: u64) -> Result<()> {
        let j = self.query_usn_journal()?.ok_or(Error::NotFound)?;
        if j.journal_id != id {
            return Err(Error::InvalidParameter("USN journal id"));
        }
        self.remove("/$Extend/$UsnJrnl")
    }

    /// Writes a `USN_RECORD_V2` for file `n` with `reason` at time `time`
    /// (its name and parent from its first Win32 or POSIX `$FILE_NAME`,
    /// its attributes and security id from `$STANDARD_INFORMATION`, plus
    /// `FILE_ATTRIBUTE_DIRECTORY` for a directory), and stores the
    /// record's USN in the file's `$STANDARD_INFORMATION` (`Usn`, 3.x
    /// form). Returns the USN, or `None` when there is no journal.
    pub fn usn_append(&mut self, n: u64, reason: u32, time: u64) -> Result<Option<i64>> {
        let Some(jn) = self.usn_journal_file()? else {
            return Ok(None);
        };
        if n == jn {
            return Ok(None);
        }
        let info = self.stat(n)?;
        let fname = info
            .names
            .iter()
            .find(|f| f.namespace != 2)
            .or(info.names.first())
            .ok_or(Error::BadRecord {
                record: n,
                reason: "no $FILE_NAME for the USN record",
            })?;
        let mut attrs = info.std_info.file_attributes;
        if info.is_dir() {
            attrs |= 0x10; // FILE_ATTRIBUTE_DIRECTORY
        }
        let j = self.query_usn_journal()?.ok_or(Error::NotFound)?;
        let mut usn = j.next_usn as u64;
        let mut rec = UsnRecord {
            file_reference: make_ref(n, info.seq),
            parent_reference: fname.parent,
            usn: 0,
            timestamp: time,
            reason,
            source_info: 0,
            security_id: info.std_info.security_id,
            file_attributes: attrs,
            name: fname.name.clone(),
        };
        let len = rec.len() as u64;
        let mut pad = 0;
        if usn % USN_PAGE + len > USN_PAGE {
            pad = USN_PAGE - usn % USN_PAGE;
            usn += pad;
        }
        rec.usn = usn as i64;
        let mut bytes = alloc::vec![0u8; pad as usize];
        bytes.extend_from_slice(&rec.to_bytes());
        self.op(|v| {
            v.write_at(jn, &u16s("$J"), j.next_usn as u64, &bytes)?;
            let mut r = v.read_record(n)?;
            if let Some(a) = r.find_mut(AT_STANDARD_INFORMATION, &[]) {
                if let Body::Resident { value, .. } = &mut a.body {
                    if value.len() >= 0x48 {
                        put64(value, 0x40, usn);
                        v.write_record(&r)?;
                    }
                }
            }
            v.usn_trim(
                jn,
                j.first_usn as u64,
                usn + len,
                j.maximum_size,
                j.allocation_delta,
            )
        })?;
        Ok(Some(usn as i64))
    }

    /// Deallocates the start of `$J` in units of `delta` while it holds
    /// more than `max + delta` bytes from its first USN `first` to `end`.
    fn usn_trim(&mut self, jn: u64, first: u64, end: u64, max: u64, delta: u64) -> Result<()> {
        let cs = self.cluster_size();
        if delta == 0 || end - first <= max + delta {
            return Ok(());
        }
        let mut cut = first;
        while end - cut > max {
            cut += delta;
        }
        let cut_vcn = cut / cs;
        let mut r = self.read_record(jn)?;
        let j = u16s("$J");
        let a = r.find_mut(AT_DATA, &j).ok_or(Error::NotFound)?;
        let Body::NonResident(nr) = &mut a.body else {
            return Err(Error::Corrupt("resident $J"));
        };
        let mut runs = Vec::new();
        let mut free = Vec::new();
        if cut_vcn > 0 {
            runs.push(crate::runlist::Run {
                vcn: 0,
                len: cut_vcn,
                lcn: None,
            });
        }
        for run in &nr.runs {
            let end_vcn = run.vcn + run.len;
            if end_vcn <= cut_vcn {
                if let Some(l) = run.lcn {
                    free.push((l, run.len));
                }
            } else if run.vcn < cut_vcn {
                let k = cut_vcn - run.vcn;
                if let Some(l) = run.lcn {
                    free.push((l, k));
                }
                runs.push(crate::runlist::Run {
                    vcn: cut_vcn,
                    len: run.len - k,
                    lcn: run.lcn.map(|l| l + k),
                });
            } else {
                runs.push(*run);
            }
        }
        crate::runlist::normalize(&mut runs);
        let allocated: u64 = runs.iter().filter(|r| r.lcn.is_some()).map(|r| r.len).sum();
        nr.runs = runs;
        nr.compressed_size = Some(allocated * cs);
        a.flags |= ATTR_SPARSE;
        self.write_record(&r)?;
        for (l, k) in free {
            self.free_clusters(l, k)?;
        }
        Ok(())
    }

    /// `FSCTL_READ_USN_JOURNAL`: the records from `q.start_usn` on (0:
    /// from the first; a USN below the first reads from the first) whose
    /// reason has a bit of `q.reason_mask` (and `USN_REASON_CLOSE` when
    /// `return_only_on_close`), as many whole records as fit in `out_len`
    /// bytes after the 8-byte next USN. Returns that buffer. A journal id
    /// that is not the journal's is `InvalidParameter`
    /// (STATUS_INVALID_PARAMETER), no journal `NotFound`.
    pub fn read_usn_journal(&mut self, q: &ReadJournalData, out_len: usize) -> Result<Vec<u8>> {
        if out_len < 8 {
            return Err(Error::InvalidParameter("output buffer too small"));
        }
        let jd = self.query_usn_journal()?.ok_or(Error::NotFound)?;
        if q.journal_id != jd.journal_id {
            return Err(Error::InvalidParameter("USN journal id"));
        }
        if q.min_major_version > 2 || q.max_major_version < 2 {
            return Err(Error::InvalidParameter("USN record version"));
        }
        let jn = self.usn_journal_file()?.ok_or(Error::NotFound)?;
        let s = self.open_stream(jn, AT_DATA, &u16s("$J"))?;
        let mut pos = (q.start_usn.max(jd.first_usn)) as u64;
        let end = jd.next_usn as u64;
        let mut out = alloc::vec![0u8; 8];
        let mut page = alloc::vec![0u8; USN_PAGE as usize];
        let mut page_at = u64::MAX;
        while pos < end {
            let p = pos - pos % USN_PAGE;
            if p != page_at {
                page.fill(0);
                let want = (end - p).min(USN_PAGE) as usize;
                self.read_stream_at(&s, p, &mut page[..want])?;
                page_at = p;
            }
            let o = (pos - p) as usize;
            let len = u32_at(&page, o).unwrap_or(0) as usize;
            if len == 0 {
                // The rest of the page is padding.
                pos = p + USN_PAGE;
                continue;
            }
            if o + len > page.len() {
                return Err(Error::Corrupt("USN record crosses a page"));
            }
            let r = UsnRecord::parse(&page[o..o + len])?;
            let want = r.reason & q.reason_mask != 0
                && (q.return_only_on_close == 0 || r.reason & USN_REASON_CLOSE != 0);
            if want {
                if out.len() + len > out_len {
                    break;
                }
                out.extend_from_slice(&page[o..o + len]);
            }
            pos += len as u64;
        }
        put64(&mut out, 0, pos.min(end));
        Ok(out)
    }

    /// Every record of the journal (for `ntrs-ntfs usn`).
    pub fn usn_records(&mut self) -> Result<(JournalData, Vec<UsnRecord>)> {
        let jd = self.query_usn_journal()?.ok_or(Error::NotFound)?;
        let q = ReadJournalData {
            start_usn: 0,
            reason_mask: u32::MAX,
            journal_id: jd.journal_id,
            min_major_version: 2,
            max_major_version: 2,
            ..Default::default()
        };
        let mut recs = Vec::new();
        let mut start = 0;
        loop {
            let b = self.read_usn_journal(
                &ReadJournalData {
                    start_usn: start,
                    ..q
                },
                64 << 10,
            )?;
            let next = u64_at(&b, 0)? as i64;
            let mut o = 8;
            while o < b.len() {
                let len = u32_at(&b, o)? as usize;
                recs.push(UsnRecord::parse(&b[o..o + len])?);
                o += len;
            }
            if next >= jd.next_usn || next <= start {
                break;
            }
            start = next;
        }
        Ok((jd, recs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, format, FormatOptions, MemDevice};

    fn vol() -> Volume<MemDevice> {
        format(MemDevice::new(16 << 20), &FormatOptions::default()).unwrap()
    }

    const ID: u64 = 0x01DC_0000_1234_5678;

    #[test]
    fn record_layout_is_usn_record_v2() {
        let r = UsnRecord {
            file_reference: 0x0002_0000_0000_001B,
            parent_reference: 0x0005_0000_0000_0005,
            usn: 0x1000,
            timestamp: 0x01DC_1111_2222_3333,
            reason: USN_REASON_FILE_CREATE | USN_REASON_CLOSE,
            source_info: 0,
            security_id: 0x100,
            file_attributes: 0x20,
            name: u16s("a.txt"),
        };
        let b = r.to_bytes();
        assert_eq!(b.len(), 0x48);
        assert_eq!(u32_at(&b, 0).unwrap(), 0x48);
        assert_eq!(u16_at(&b, 4).unwrap(), 2);
        assert_eq!(u64_at(&b, 0x08).unwrap(), 0x0002_0000_0000_001B);
        assert_eq!(u64_at(&b, 0x18).unwrap(), 0x1000);
        assert_eq!(u32_at(&b, 0x28).unwrap(), 0x8000_0100);
        assert_eq!(u16_at(&b, 0x38).unwrap(), 10);
        assert_eq!(u16_at(&b, 0x3A).unwrap(), 0x3C);
        assert_eq!(u16_at(&b, 0x3C).unwrap(), b'a' as u16);
        assert_eq!(UsnRecord::parse(&b).unwrap(), r);
        assert_eq!(UsnRecord::reason_text(r.reason), "File create | Close");
        let j = JournalData {
            journal_id: ID,
            next_usn: 8,
            max_usn: MAX_USN,
            ..Default::default()
        };
        assert_eq!(j.to_bytes(false).len(), 0x38);
        let v1 = j.to_bytes(true);
        assert_eq!((v1.len(), u16_at(&v1, 0x38).unwrap()), (0x3C, 2));
        assert_eq!(JournalData::parse(&v1).unwrap(), j);
        let q = ReadJournalData {
            start_usn: 8,
            reason_mask: 3,
            journal_id: ID,
            min_major_version: 2,
            max_major_version: 2,
            ..Default::default()
        };
        assert_eq!(ReadJournalData::parse(&q.to_bytes()).unwrap(), q);
        assert!(ReadJournalData::parse(&[0; 8]).is_err());
        assert!(UsnRecord::parse(&b[..0x40]).is_err());
    }

    #[test]
    fn journal_create_append_read_trim_delete() {
        let mut v = vol();
        assert_eq!(v.query_usn_journal().unwrap(), None);
        let free0 = v.free_cluster_count().unwrap();
        let j = v.create_usn_journal(64 << 10, 16 << 10, ID).unwrap();
        assert_eq!(
            (
                j.journal_id,
                j.first_usn,
                j.next_usn,
                j.maximum_size,
                j.allocation_delta
            ),
            (ID, 0, 0, 64 << 10, 16 << 10)
        );
        let n = v.write_file("/a.txt", b"hello").unwrap();
        assert_eq!(v.usn_append(n, USN_REASON_FILE_CREATE, 7).unwrap(), Some(0));
        let u2 = v
            .usn_append(n, USN_REASON_FILE_CREATE | USN_REASON_DATA_EXTEND, 8)
            .unwrap()
            .unwrap();
        assert_eq!(u2, 0x48);
        let u3 = v
            .usn_append(
                n,
                USN_REASON_FILE_CREATE | USN_REASON_DATA_EXTEND | USN_REASON_CLOSE,
                9,
            )
            .unwrap()
            .unwrap();
        assert_eq!(v.stat(n).unwrap().std_info.usn, u3 as u64);
        let j = v.query_usn_journal().unwrap().unwrap();
        assert_eq!(j.next_usn, 3 * 0x48);
        let q = ReadJournalData {
            reason_mask: u32::MAX,
            journal_id: ID,
            min_major_version: 2,
            max_major_version: 2,
            ..Default::default()
        };
        let all = v.read_usn_journal(&q, 4096).unwrap();
        assert_eq!(
            (all.len(), u64_at(&all, 0).unwrap()),
            (8 + 3 * 0x48, 3 * 0x48)
        );
        let r0 = UsnRecord::parse(&all[8..]).unwrap();
        assert_eq!(r0.file_reference, make_ref(n, v.stat(n).unwrap().seq));
        assert_eq!(r0.parent_reference & 0xFFFF_FFFF_FFFF, rec::ROOT);
        assert_eq!((r0.timestamp, r0.name.clone()), (7, u16s("a.txt")));
        // Only closes.
        let c = ReadJournalData {
            return_only_on_close: 1,
            ..q
        };
        let only = v.read_usn_journal(&c, 4096).unwrap();
        assert_eq!(only.len(), 8 + 0x48);
        assert_eq!(UsnRecord::parse(&only[8..]).unwrap().usn, u3);
        // A buffer for one record: the next USN is the second's.
        let one = v.read_usn_journal(&q, 8 + 0x48).unwrap();
        assert_eq!((one.len(), u64_at(&one, 0).unwrap()), (8 + 0x48, 0x48));
        // A wrong journal id.
        let bad = ReadJournalData { journal_id: 1, ..q };
        assert!(matches!(
            v.read_usn_journal(&bad, 4096),
            Err(Error::InvalidParameter(_))
        ));
        // Many records: none straddles a page; past max + delta the start
        // of $J becomes a sparse hole.
        let d = v.create_dir_all("/dir-with-a-longer-name").unwrap();
        for i in 0..2000u64 {
            v.usn_append(
                if i % 2 == 0 { n } else { d },
                USN_REASON_BASIC_INFO_CHANGE,
                i,
            )
            .unwrap();
        }
        let j = v.query_usn_journal().unwrap().unwrap();
        assert!(j.first_usn > 0 && j.first_usn % (16 << 10) == 0, "{j:?}");
        assert!((j.next_usn - j.first_usn) as u64 <= (64 << 10) + (16 << 10));
        let (_, recs) = v.usn_records().unwrap();
        assert_eq!(recs.first().unwrap().usn, j.first_usn);
        for w in recs.windows(2) {
            assert!(w[1].usn > w[0].usn);
        }
        for r in &recs {
            assert!(r.usn as u64 % 4096 + r.len() as u64 <= 4096);
        }
        assert_eq!(recs.last().unwrap().timestamp, 1999);
        let jn = v.usn_journal_file().unwrap().unwrap();
        let s = v.open_stream(jn, AT_DATA, &u16s("$J")).unwrap();
        assert_eq!(s.runs[0].lcn, None);
        assert!(check(&mut v).unwrap().is_empty(), "{:?}", check(&mut v));
        // Changing the sizes keeps the id and the records.
        let j2 = v.create_usn_journal(1 << 20, 64 << 10, 99).unwrap();
        assert_eq!(
            (j2.journal_id, j2.next_usn, j2.maximum_size),
            (ID, j.next_usn, 1 << 20)
        );
        // Delete: the id must match; the file and its clusters go.
        assert!(v.delete_usn_journal(5).is_err());
        v.delete_usn_journal(ID).unwrap();
        assert_eq!(v.query_usn_journal().unwrap(), None);
        assert_eq!(v.usn_append(n, USN_REASON_CLOSE, 1).unwrap(), None);
        v.remove("/a.txt").unwrap();
        v.remove("/dir-with-a-longer-name").unwrap();
        assert!(check(&mut v).unwrap().is_empty());
        assert_eq!(v.free_cluster_count().unwrap(), free0);
    }
}
