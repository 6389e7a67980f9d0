//! Attribute types and the contents of the small fixed attributes
//! (`$STANDARD_INFORMATION`, `$FILE_NAME`, `$VOLUME_INFORMATION`).

use crate::error::{Error, Result};
use crate::util::*;
use alloc::vec::Vec;

/// `$STANDARD_INFORMATION`.
pub const AT_STANDARD_INFORMATION: u32 = 0x10;
/// `$ATTRIBUTE_LIST`.
pub const AT_ATTRIBUTE_LIST: u32 = 0x20;
/// `$FILE_NAME`.
pub const AT_FILE_NAME: u32 = 0x30;
/// `$OBJECT_ID`.
pub const AT_OBJECT_ID: u32 = 0x40;
/// `$SECURITY_DESCRIPTOR`.
pub const AT_SECURITY_DESCRIPTOR: u32 = 0x50;
/// `$VOLUME_NAME`.
pub const AT_VOLUME_NAME: u32 = 0x60;
/// `$VOLUME_INFORMATION`.
pub const AT_VOLUME_INFORMATION: u32 = 0x70;
/// `$DATA`.
pub const AT_DATA: u32 = 0x80;
/// `$INDEX_ROOT`.
pub const AT_INDEX_ROOT: u32 = 0x90;
/// `$INDEX_ALLOCATION`.
pub const AT_INDEX_ALLOCATION: u32 = 0xA0;
/// `$BITMAP`.
pub const AT_BITMAP: u32 = 0xB0;
/// `$REPARSE_POINT`.
pub const AT_REPARSE_POINT: u32 = 0xC0;
/// `$EA_INFORMATION`.
pub const AT_EA_INFORMATION: u32 = 0xD0;
/// `$EA`.
pub const AT_EA: u32 = 0xE0;
/// `$LOGGED_UTILITY_STREAM`.
pub const AT_LOGGED_UTILITY_STREAM: u32 = 0x100;
/// End-of-attributes marker.
pub const AT_END: u32 = 0xFFFF_FFFF;

/// Attribute header flag: compressed.
pub const ATTR_COMPRESSED: u16 = 0x0001;
/// Attribute header flag: encrypted.
pub const ATTR_ENCRYPTED: u16 = 0x4000;
/// Attribute header flag: sparse.
pub const ATTR_SPARSE: u16 = 0x8000;

/// `FILE_ATTRIBUTE_READONLY`.
pub const FILE_ATTRIBUTE_READONLY: u32 = 0x1;
/// `FILE_ATTRIBUTE_HIDDEN`.
pub const FILE_ATTRIBUTE_HIDDEN: u32 = 0x2;
/// `FILE_ATTRIBUTE_SYSTEM`.
pub const FILE_ATTRIBUTE_SYSTEM: u32 = 0x4;
/// `FILE_ATTRIBUTE_ARCHIVE`.
pub const FILE_ATTRIBUTE_ARCHIVE: u32 = 0x20;
/// `FILE_ATTRIBUTE_NORMAL`.
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;
/// `FILE_ATTRIBUTE_SPARSE_FILE`.
pub const FILE_ATTRIBUTE_SPARSE_FILE: u32 = 0x200;
/// `FILE_ATTRIBUTE_REPARSE_POINT`.
pub const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
/// `FILE_ATTRIBUTE_COMPRESSED`.
pub const FILE_ATTRIBUTE_COMPRESSED: u32 = 0x800;
/// NTFS's "has an `$I30` index" bit in `$FILE_NAME`/`$STANDARD_INFORMATION` flags.
pub const FILE_ATTR_DUP_FILE_NAME_INDEX_PRESENT: u32 = 0x1000_0000;
/// NTFS's "has a view index" bit.
pub const FILE_ATTR_DUP_VIEW_INDEX_PRESENT: u32 = 0x2000_0000;

/// `$VOLUME_INFORMATION` flag: 8.3 short name creation disabled on this
/// volume (the per-volume state of `fsutil 8dot3name`).
pub const VOLUME_DISABLE_SHORT_NAMES: u16 = 0x0080;

/// `$FILE_NAME` namespace: POSIX (case-sensitive, any character but NUL and '/').
pub const NS_POSIX: u8 = 0;
/// `$FILE_NAME` namespace: Win32.
pub const NS_WIN32: u8 = 1;
/// `$FILE_NAME` namespace: DOS 8.3.
pub const NS_DOS: u8 = 2;
/// `$FILE_NAME` namespace: a name that is both the Win32 and the DOS name.
pub const NS_WIN32_AND_DOS: u8 = 3;

/// Decoded `$STANDARD_INFORMATION`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StandardInformation {
    /// Creation time (100 ns since 1601).
    pub creation: u64,
    /// Last data modification.
    pub modification: u64,
    /// Last MFT record change.
    pub mft_change: u64,
    /// Last access.
    pub access: u64,
    /// `FILE_ATTRIBUTE_*`.
    pub file_attributes: u32,
    /// Owner id (NTFS 3.0+).
    pub owner_id: u32,
    /// Security id: key into `$Secure:$SII` (NTFS 3.0+).
    pub security_id: u32,
    /// Quota charged.
    pub quota_charged: u64,
    /// Update sequence number in `$UsnJrnl`.
    pub usn: u64,
}

impl StandardInformation {
    /// Parses the value (48 bytes for NTFS 1.2, 72 for 3.x).
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < 48 {
            return Err(Error::Corrupt("short $STANDARD_INFORMATION"));
        }
        let mut si = StandardInformation {
            creation: u64_at(b, 0)?,
            modification: u64_at(b, 8)?,
            mft_change: u64_at(b, 16)?,
            access: u64_at(b, 24)?,
            file_attributes: u32_at(b, 32)?,
            ..Default::default()
        };
        if b.len() >= 72 {
            si.owner_id = u32_at(b, 48)?;
            si.security_id = u32_at(b, 52)?;
            si.quota_charged = u64_at(b, 56)?;
            si.usn = u64_at(b, 64)?;
        }
        Ok(si)
    }
    /// The 72-byte NTFS 3.x encoding.
    pub fn build(&self) -> Vec<u8> {
        let mut b = alloc::vec![0u8; 72];
        put64(&mut b, 0, self.creation);
        put64(&mut b, 8, self.modification);
        put64(&mut b, 16, self.mft_change);
        put64(&mut b, 24, self.access);
        put32(&mut b, 32, self.file_attributes);
        put32(&mut b, 48, self.owner_id);
        put32(&mut b, 52, self.security_id);
        put64(&mut b, 56, self.quota_charged);
        put64(&mut b, 64, self.usn);
        b
    }
}

/// Decoded `$FILE_NAME` (also the key of `$I30` index entries).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileName {
    /// File reference of the parent directory.
    pub parent: u64,
    /// Creation time.
    pub creation: u64,
    /// Modification time.
    pub modification: u64,
    /// MFT change time.
    pub mft_change: u64,
    /// Access time.
    pub access: u64,
    /// Allocated size of the unnamed data stream.
    pub allocated_size: u64,
    /// Size of the unnamed data stream.
    pub data_size: u64,
    /// `FILE_ATTRIBUTE_*` plus the `FILE_ATTR_DUP_*` bits.
    pub flags: u32,
    /// Reparse tag (if a reparse point) or EA size.
    pub reparse: u32,
    /// `NS_*`.
    pub namespace: u8,
    /// The name in UTF-16 code units.
    pub name: Vec<u16>,
}

impl FileName {
    /// Parses the value.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let n = u8_at(b, 0x40)? as usize;
        let name = utf16_units(sub(b, 0x42, 2 * n)?);
        Ok(FileName {
            parent: u64_at(b, 0)?,
            creation: u64_at(b, 8)?,
            modification: u64_at(b, 16)?,
            mft_change: u64_at(b, 24)?,
            access: u64_at(b, 32)?,
            allocated_size: u64_at(b, 40)?,
            data_size: u64_at(b, 48)?,
            flags: u32_at(b, 56)?,
            reparse: u32_at(b, 60)?,
            namespace: u8_at(b, 0x41)?,
            name,
        })
    }
    /// Encodes the value (0x42 + 2 × name length bytes).
    pub fn build(&self) -> Vec<u8> {
        let mut b = alloc::vec![0u8; 0x42 + 2 * self.name.len()];
        put64(&mut b, 0, self.parent);
        put64(&mut b, 8, self.creation);
        put64(&mut b, 16, self.modification);
        put64(&mut b, 24, self.mft_change);
        put64(&mut b, 32, self.access);
        put64(&mut b, 40, self.allocated_size);
        put64(&mut b, 48, self.data_size);
        put32(&mut b, 56, self.flags);
        put32(&mut b, 60, self.reparse);
        b[0x40] = self.name.len() as u8;
        b[0x41] = self.namespace;
        for (i, u) in self.name.iter().enumerate() {
            put16(&mut b, 0x42 + 2 * i, *u);
        }
        b
    }
    /// The name as a string.
    pub fn name_string(&self) -> alloc::string::String {
        utf16_to_string(&self.name)
    }
}

/// MFT record number of a file reference (low 48 bits).
pub fn mft_no(fref: u64) -> u64 {
    fref & 0x0000_FFFF_FFFF_FFFF
}

/// Sequence number of a file reference (high 16 bits).
pub fn seq_no(fref: u64) -> u16 {
    (fref >> 48) as u16
}

/// Builds a file reference.
pub fn make_ref(no: u64, seq: u16) -> u64 {
    (no & 0x0000_FFFF_FFFF_FFFF) | ((seq as u64) << 48)
}

/// One `$ATTRIBUTE_LIST` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrListEntry {
    /// Attribute type.
    pub ty: u32,
    /// Attribute name.
    pub name: Vec<u16>,
    /// Lowest VCN of this extent.
    pub start_vcn: u64,
    /// Record holding it.
    pub fref: u64,
    /// Attribute instance.
    pub instance: u16,
}

/// Parses the value of `$ATTRIBUTE_LIST`.
pub fn parse_attr_list(b: &[u8]) -> Result<Vec<AttrListEntry>> {
    let mut out = Vec::new();
    let mut o = 0usize;
    while o + 0x1a <= b.len() {
        let ty = u32_at(b, o)?;
        let len = u16_at(b, o + 4)? as usize;
        if len < 0x1a || o + len > b.len() {
            return Err(Error::Corrupt("attribute list entry length"));
        }
        let nl = u8_at(b, o + 6)? as usize;
        let no = u8_at(b, o + 7)? as usize;
        let name = utf16_units(sub(b, o + no, 2 * nl)?);
        out.push(AttrListEntry {
            ty,
            name,
            start_vcn: u64_at(b, o + 8)?,
            fref: u64_at(b, o + 0x10)?,
            instance: u16_at(b, o + 0x18)?,
        });
        o += len;
    }
    Ok(out)
}
