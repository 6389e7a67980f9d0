//! Windows NT registry hive files ("regf"), *Windows Internals* 7th ed. Part 2, ch. 10
//! ("The registry": hive structure, cell maps, key control blocks).
//!
//! A [`Hive`] holds the hive bins of a hive in memory (stable storage, written to the file) and
//! a second, volatile storage space (offsets with the top bit set, never written). Keys are
//! addressed by cell offset ([`KeyRef`]). Every read of hive data is bounds-checked: corrupt input
//! gives [`Error::Corrupt`] (`STATUS_REGISTRY_CORRUPT`), never a panic.
//!
//! Facts about the on-disk format follow the libyal "Windows NT Registry File (REGF) format"
//! document.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bcd;
pub mod check;
pub mod log;
pub mod regtext;
#[cfg(test)]
mod tests;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use nt::status::*;

pub use check::{check, Problem};

/// Size of the base block and of one hive bin page.
pub const PAGE: usize = 4096;
/// Offset of the checksum in the base block.
const CHECKSUM_OFF: usize = 508;
/// Values with more data than this use a big data (`db`) record (hive version 1.4 and later).
pub const BIG_DATA_THRESHOLD: usize = 16344;
/// Maximum entries in one leaf subkey list we write (a larger list becomes an `ri` index).
pub const MAX_LEAF: usize = 500;
/// Top bit of a cell offset: the cell is in volatile storage.
pub const VOLATILE_BIT: u32 = 0x8000_0000;
/// "No cell" marker.
pub const NIL: u32 = 0xFFFF_FFFF;

/// nk flag: the key is volatile.
pub const KEY_IS_VOLATILE: u16 = 0x0001;
/// nk flag: mount point of another hive.
pub const KEY_HIVE_EXIT: u16 = 0x0002;
/// nk flag: the root key of the hive.
pub const KEY_HIVE_ENTRY: u16 = 0x0004;
/// nk flag: the key cannot be deleted.
pub const KEY_NO_DELETE: u16 = 0x0008;
/// nk flag: the key is a symbolic link.
pub const KEY_SYM_LINK: u16 = 0x0010;
/// nk flag: the key name is stored in compressed (one byte per character) form.
pub const KEY_COMP_NAME: u16 = 0x0020;
/// vk flag: the value name is stored compressed.
pub const VALUE_COMP_NAME: u16 = 0x0001;

/// Registry value types.
pub const REG_NONE: u32 = 0;
/// `REG_SZ`
pub const REG_SZ: u32 = 1;
/// `REG_EXPAND_SZ`
pub const REG_EXPAND_SZ: u32 = 2;
/// `REG_BINARY`
pub const REG_BINARY: u32 = 3;
/// `REG_DWORD`
pub const REG_DWORD: u32 = 4;
/// `REG_DWORD_BIG_ENDIAN`
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
/// `REG_LINK`
pub const REG_LINK: u32 = 6;
/// `REG_MULTI_SZ`
pub const REG_MULTI_SZ: u32 = 7;
/// `REG_RESOURCE_LIST`
pub const REG_RESOURCE_LIST: u32 = 8;
/// `REG_FULL_RESOURCE_DESCRIPTOR`
pub const REG_FULL_RESOURCE_DESCRIPTOR: u32 = 9;
/// `REG_RESOURCE_REQUIREMENTS_LIST`
pub const REG_RESOURCE_REQUIREMENTS_LIST: u32 = 10;
/// `REG_QWORD`
pub const REG_QWORD: u32 = 11;

/// Name of the value holding a symbolic link's target.
pub const SYMBOLIC_LINK_VALUE: &str = "SymbolicLinkValue";

/// An error from hive parsing or a registry operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// An NT status (for example `STATUS_OBJECT_NAME_NOT_FOUND`, `STATUS_CANNOT_DELETE`).
    Status(NtStatus),
    /// The hive data is inconsistent at `offset` (a hive-bin relative offset, or a file offset for
    /// the base block); reported as `STATUS_REGISTRY_CORRUPT`.
    Corrupt {
        /// Where.
        offset: u32,
        /// What is wrong.
        what: String,
    },
}

impl Error {
    /// The NT status this error maps to.
    pub fn status(&self) -> NtStatus {
        match self {
            Error::Status(s) => *s,
            Error::Corrupt { .. } => STATUS_REGISTRY_CORRUPT,
        }
    }
}

impl From<NtStatus> for Error {
    fn from(s: NtStatus) -> Self {
        Error::Status(s)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status(s) => write!(f, "{}", s),
            Error::Corrupt { offset, what } => {
                write!(f, "STATUS_REGISTRY_CORRUPT: cell 0x{:x}: {}", offset, what)
            }
        }
    }
}

/// Result alias.
pub type Result<T> = core::result::Result<T, Error>;

fn corrupt<T>(offset: u32, what: impl Into<String>) -> Result<T> {
    Err(Error::Corrupt {
        offset,
        what: what.into(),
    })
}

/// A key: the cell offset of its nk record (top bit set for volatile keys).
pub type KeyRef = u32;

/// A registry value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// Name ("" is the default value).
    pub name: String,
    /// `REG_*` type.
    pub ty: u32,
    /// Raw data.
    pub data: Vec<u8>,
}

pub(crate) fn rd16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

pub(crate) fn rd32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn rd64(b: &[u8], off: usize) -> Option<u64> {
    let lo = rd32(b, off)? as u64;
    let hi = rd32(b, off.checked_add(4)?)? as u64;
    Some(lo | (hi << 32))
}

fn wr16(b: &mut [u8], off: usize, v: u16) {
    if let Some(s) = b.get_mut(off..off + 2) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn wr32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn wr64(b: &mut [u8], off: usize, v: u64) {
    wr32(b, off, v as u32);
    wr32(b, off + 4, (v >> 32) as u32);
}

/// `RtlUpcaseUnicodeChar` approximation: simple one-to-one upper-case mapping of a UTF-16 unit.
pub fn upcase_unit(u: u16) -> u16 {
    if u < 0x80 {
        return (u as u8).to_ascii_uppercase() as u16;
    }
    match char::from_u32(u as u32) {
        Some(c) => {
            let mut it = c.to_uppercase();
            match (it.next(), it.next()) {
                (Some(up), None) if (up as u32) < 0x10000 => up as u32 as u16,
                _ => u,
            }
        }
        None => u,
    }
}

/// The upper-cased UTF-16 form of a name, used for ordering subkey lists.
pub fn upcase_name(name: &str) -> Vec<u16> {
    name.encode_utf16().map(upcase_unit).collect()
}

/// The `lh` list hash of a key name: `h = h * 37 + upcase(c)` over its UTF-16 units.
pub fn lh_hash(name: &str) -> u32 {
    name.encode_utf16().fold(0u32, |h, c| {
        h.wrapping_mul(37).wrapping_add(upcase_unit(c) as u32)
    })
}

/// Encodes a name for an nk or vk record: compressed (Latin-1) when possible.
fn encode_name(name: &str) -> (Vec<u8>, bool) {
    if name.chars().all(|c| (c as u32) < 0x100) {
        (name.chars().map(|c| c as u32 as u8).collect(), true)
    } else {
        let mut v = Vec::new();
        for u in name.encode_utf16() {
            v.extend_from_slice(&u.to_le_bytes());
        }
        (v, false)
    }
}

fn decode_name(b: &[u8], compressed: bool) -> String {
    if compressed {
        b.iter().map(|&c| c as char).collect()
    } else {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        char::decode_utf16(units)
            .map(|r| r.unwrap_or('\u{FFFD}'))
            .collect()
    }
}

/// UTF-16 byte length of a name (the unit Windows keeps the maximum name lengths in).
fn utf16_len(name: &str) -> u32 {
    (name.encode_utf16().count() * 2) as u32
}

/// Encodes a string as UTF-16LE with a terminating NUL (REG_SZ data).
pub fn utf16z(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for u in s.encode_utf16() {
        v.extend_from_slice(&u.to_le_bytes());
    }
    v.extend_from_slice(&[0, 0]);
    v
}

/// Decodes UTF-16LE data, stopping at the first NUL.
pub fn from_utf16z(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    char::decode_utf16(units)
        .map(|r| r.unwrap_or('\u{FFFD}'))
        .collect()
}

/// The base block checksum: XOR of the first 127 dwords, 0 mapped to 1 and -1 to -2.
pub fn base_checksum(base: &[u8]) -> u32 {
    let mut x = 0u32;
    for i in 0..127 {
        x ^= rd32(base, i * 4).unwrap_or(0);
    }
    match x {
        0 => 1,
        0xFFFF_FFFF => 0xFFFF_FFFE,
        v => v,
    }
}

/// One storage space (stable or volatile): hive bins and a free-cell index.
#[derive(Clone, Debug, Default)]
pub(crate) struct Space {
    pub(crate) data: Vec<u8>,
    /// (start, size) of each hive bin, ascending.
    bins: Vec<(u32, u32)>,
    /// Free cells as (size, offset).
    free: BTreeSet<(u32, u32)>,
}

impl Space {
    fn bin_of(&self, off: u32) -> Option<(u32, u32)> {
        let i = self.bins.partition_point(|&(s, _)| s <= off);
        let (s, z) = *self.bins.get(i.checked_sub(1)?)?;
        if off < s.checked_add(z)? {
            Some((s, z))
        } else {
            None
        }
    }

    fn size_at(&self, off: u32) -> Option<i32> {
        rd32(&self.data, off as usize).map(|v| v as i32)
    }

    fn add_bin(&mut self, need: u32, time: u64) -> Result<u32> {
        let start = self.data.len() as u32;
        let size = (need as usize + 32).div_ceil(PAGE) * PAGE;
        let size32 =
            u32::try_from(size).map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
        start
            .checked_add(size32)
            .ok_or(Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
        let mut hdr = [0u8; 32];
        hdr[0..4].copy_from_slice(b"hbin");
        wr32(&mut hdr, 4, start);
        wr32(&mut hdr, 8, size32);
        wr64(&mut hdr, 20, time);
        self.data.extend_from_slice(&hdr);
        self.data.resize(start as usize + size, 0);
        self.bins.push((start, size32));
        let cell = start + 32;
        wr32(&mut self.data, cell as usize, size32 - 32);
        self.free.insert((size32 - 32, cell));
        Ok(cell)
    }

    /// Allocates a cell with room for `len` data bytes; returns its offset (zero-filled data).
    fn alloc(&mut self, len: usize, time: u64) -> Result<u32> {
        let total = (len + 4).div_ceil(8) * 8;
        let total =
            u32::try_from(total).map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
        let found = self.free.range((total, 0)..).next().copied();
        let (size, off) = match found {
            Some(f) => f,
            None => {
                let c = self.add_bin(total, time)?;
                let size = self.size_at(c).unwrap_or(0) as u32;
                (size, c)
            }
        };
        self.free.remove(&(size, off));
        let rest = size - total;
        let used = if rest >= 8 {
            let r = off + total;
            wr32(&mut self.data, r as usize, rest);
            self.free.insert((rest, r));
            total
        } else {
            size
        };
        wr32(
            &mut self.data,
            off as usize,
            (used as i32).wrapping_neg() as u32,
        );
        if let Some(s) = self.data.get_mut(off as usize + 4..(off + used) as usize) {
            s.fill(0);
        }
        Ok(off)
    }

    /// Frees a cell, coalescing it with free neighbours in the same bin.
    fn free_cell(&mut self, off: u32) -> Result<()> {
        let size = match self.size_at(off) {
            Some(s) if s < 0 => s.unsigned_abs(),
            _ => return corrupt(off, "freeing a cell that is not allocated"),
        };
        let (bs, bz) = match self.bin_of(off) {
            Some(b) => b,
            None => return corrupt(off, "freeing a cell outside every hive bin"),
        };
        let mut start = off;
        let mut len = size;
        // Next neighbour.
        let next = off.saturating_add(size);
        if next < bs + bz {
            if let Some(ns) = self.size_at(next) {
                if ns > 0 && self.free.remove(&(ns as u32, next)) {
                    len += ns as u32;
                }
            }
        }
        // Previous neighbour: walk the bin.
        let mut p = bs + 32;
        while p < off {
            let s = match self.size_at(p) {
                Some(s) if s != 0 => s,
                _ => break,
            };
            let z = s.unsigned_abs();
            if p.checked_add(z) == Some(off) {
                if s > 0 && self.free.remove(&(z, p)) {
                    start = p;
                    len += z;
                }
                break;
            }
            p = match p.checked_add(z) {
                Some(n) => n,
                None => break,
            };
        }
        wr32(&mut self.data, start as usize, len);
        self.free.insert((len, start));
        Ok(())
    }

    /// Parses the hive bins of `data` (stable storage) and indexes its free cells.
    fn parse(data: Vec<u8>) -> Result<Space> {
        let mut sp = Space {
            data,
            bins: Vec::new(),
            free: BTreeSet::new(),
        };
        let mut pos = 0usize;
        while pos < sp.data.len() {
            let p32 = pos as u32;
            if sp.data.get(pos..pos + 4) != Some(b"hbin") {
                return corrupt(p32, "hive bin signature is not \"hbin\"");
            }
            let off = rd32(&sp.data, pos + 4).unwrap_or(NIL);
            if off as usize != pos {
                return corrupt(p32, alloc::format!("hive bin offset field is 0x{:x}", off));
            }
            let size = rd32(&sp.data, pos + 8).unwrap_or(0) as usize;
            if size < PAGE || !size.is_multiple_of(PAGE) || pos + size > sp.data.len() {
                return corrupt(p32, alloc::format!("bad hive bin size 0x{:x}", size));
            }
            let mut c = pos + 32;
            while c < pos + size {
                let s = rd32(&sp.data, c).unwrap_or(0) as i32;
                let z = s.unsigned_abs() as usize;
                if z < 8 || !z.is_multiple_of(8) || c + z > pos + size {
                    return corrupt(c as u32, alloc::format!("bad cell size {}", s));
                }
                if s > 0 {
                    sp.free.insert((z as u32, c as u32));
                }
                c += z;
            }
            sp.bins.push((pos as u32, size as u32));
            pos += size;
        }
        Ok(sp)
    }
}

/// Parsed fixed part of an nk record.
#[derive(Clone, Debug, Default)]
pub(crate) struct Nk {
    pub flags: u16,
    pub last_write: u64,
    pub parent: u32,
    pub subkeys: u32,
    pub vsubkeys: u32,
    pub list: u32,
    pub vlist: u32,
    pub nvalues: u32,
    pub values: u32,
    pub sk: u32,
    pub class: u32,
    pub max_name: u32,
    pub max_class: u32,
    pub max_vname: u32,
    pub max_vdata: u32,
    pub name: String,
    pub class_len: u16,
}

// nk field offsets (within the cell data, i.e. after the size field).
const NK_FLAGS: usize = 2;
const NK_TIME: usize = 4;
const NK_PARENT: usize = 16;
const NK_SUBKEYS: usize = 20;
const NK_VSUBKEYS: usize = 24;
const NK_LIST: usize = 28;
const NK_VLIST: usize = 32;
const NK_NVALUES: usize = 36;
const NK_VALUES: usize = 40;
const NK_SK: usize = 44;
const NK_CLASS: usize = 48;
const NK_MAXNAME: usize = 52;
const NK_MAXCLASS: usize = 56;
const NK_MAXVNAME: usize = 60;
const NK_MAXVDATA: usize = 64;
const NK_NAMELEN: usize = 72;
const NK_CLASSLEN: usize = 74;
const NK_NAME: usize = 76;

/// Parsed vk record.
#[derive(Clone, Debug)]
pub(crate) struct Vk {
    pub name: String,
    pub size: u32,
    pub data: u32,
    pub ty: u32,
}

/// The contents of a hive's base block that survive a load.
#[derive(Clone, Debug)]
pub struct BaseInfo {
    /// Primary sequence number.
    pub seq1: u32,
    /// Secondary sequence number.
    pub seq2: u32,
    /// Last written FILETIME.
    pub timestamp: u64,
    /// Major version (1).
    pub major: u32,
    /// Minor version (3, 4, 5 or 6).
    pub minor: u32,
    /// File name stored in the base block (the last 31 characters).
    pub file_name: String,
}

/// Default security descriptor for a new hive's root (self-relative): owner Administrators, group
/// SYSTEM, DACL granting KEY_ALL_ACCESS to Administrators and SYSTEM and KEY_READ to Everyone, all
/// container-inheritable.
pub const DEFAULT_SD: [u8; 120] = {
    let mut sd = [0u8; 120];
    sd[0] = 1; // revision
    sd[2] = 0x04; // SE_DACL_PRESENT
    sd[3] = 0x80; // SE_SELF_RELATIVE
    sd[4] = 92; // owner
    sd[8] = 108; // group
    sd[16] = 20; // dacl
                 // ACL header
    sd[20] = 2;
    sd[22] = 72;
    sd[24] = 3;
    // ACE 1: Administrators
    sd[28] = 0;
    sd[29] = 2;
    sd[30] = 24;
    sd[32] = 0x3F;
    sd[34] = 0x0F;
    let admins = [1u8, 2, 0, 0, 0, 0, 0, 5, 0x20, 0, 0, 0, 0x20, 2, 0, 0];
    let system = [1u8, 1, 0, 0, 0, 0, 0, 5, 0x12, 0, 0, 0];
    let everyone = [1u8, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    let mut i = 0;
    while i < 16 {
        sd[36 + i] = admins[i];
        sd[92 + i] = admins[i];
        i += 1;
    }
    // ACE 2: SYSTEM at 52
    sd[52] = 0;
    sd[53] = 2;
    sd[54] = 20;
    sd[56] = 0x3F;
    sd[58] = 0x0F;
    // ACE 3: Everyone at 72, KEY_READ
    sd[72] = 0;
    sd[73] = 2;
    sd[74] = 20;
    sd[76] = 0x19;
    sd[78] = 0x02;
    let mut j = 0;
    while j < 12 {
        sd[60 + j] = system[j];
        sd[80 + j] = everyone[j];
        sd[108 + j] = system[j];
        j += 1;
    }
    sd
};

/// A registry hive in memory.
#[derive(Clone, Debug)]
pub struct Hive {
    pub(crate) stable: Space,
    pub(crate) volatile: Space,
    root: u32,
    base: BaseInfo,
    /// Current time (FILETIME) used for last-write stamps; set with [`Hive::set_time`].
    now: u64,
}

impl Hive {
    /// Creates a hive with just a root key named `root_name` (hive version 1.5).
    pub fn new_empty(root_name: &str) -> Result<Hive> {
        let mut h = Hive {
            stable: Space::default(),
            volatile: Space::default(),
            root: 0,
            base: BaseInfo {
                seq1: 1,
                seq2: 1,
                timestamp: 0,
                major: 1,
                minor: 5,
                file_name: String::new(),
            },
            now: 0,
        };
        let sk = h.alloc_sk(false, &DEFAULT_SD)?;
        let root = h.alloc_nk(false, root_name, NIL, sk, None)?;
        h.nk_mut_u16(
            root,
            NK_FLAGS,
            KEY_HIVE_ENTRY | KEY_NO_DELETE | h.nk_flags(root)?,
        )?;
        h.root = root;
        Ok(h)
    }

    /// Sets the clock used for last-write times (a FILETIME).
    pub fn set_time(&mut self, filetime: u64) {
        self.now = filetime;
    }

    /// Sets the file name recorded in the base block.
    pub fn set_file_name(&mut self, name: &str) {
        self.base.file_name = String::from(name);
    }

    /// The base block information.
    pub fn base_info(&self) -> &BaseInfo {
        &self.base
    }

    /// The root key.
    pub fn root(&self) -> KeyRef {
        self.root
    }

    /// Parses a hive file image (base block followed by hive bins). The primary and secondary
    /// sequence numbers must match (a hive left inconsistent needs its logs) and the checksum must
    /// be right. Volatile fields of the file are cleared, as the configuration manager does.
    pub fn from_bytes(b: &[u8]) -> Result<Hive> {
        let base = b.get(..PAGE).ok_or(Error::Corrupt {
            offset: 0,
            what: "file shorter than a base block".into(),
        })?;
        if &base[0..4] != b"regf" {
            return corrupt(0, "base block signature is not \"regf\"");
        }
        let sum = rd32(base, CHECKSUM_OFF).unwrap_or(0);
        if sum != base_checksum(base) {
            return corrupt(
                CHECKSUM_OFF as u32,
                alloc::format!(
                    "base block checksum 0x{:08x}, computed 0x{:08x}",
                    sum,
                    base_checksum(base)
                ),
            );
        }
        let seq1 = rd32(base, 4).unwrap_or(0);
        let seq2 = rd32(base, 8).unwrap_or(0);
        if seq1 != seq2 {
            return corrupt(
                4,
                alloc::format!(
                    "sequence numbers differ ({} / {}): the hive needs recovery from its logs",
                    seq1,
                    seq2
                ),
            );
        }
        let major = rd32(base, 20).unwrap_or(0);
        let minor = rd32(base, 24).unwrap_or(0);
        if major != 1 || !(2..=6).contains(&minor) {
            return corrupt(
                20,
                alloc::format!("unsupported version {}.{}", major, minor),
            );
        }
        if rd32(base, 28) != Some(0) {
            return corrupt(28, "file type is not a primary file");
        }
        let root = rd32(base, 36).unwrap_or(NIL);
        let len = rd32(base, 40).unwrap_or(0) as usize;
        if !len.is_multiple_of(PAGE) || len == 0 {
            return corrupt(40, alloc::format!("hive bins data size 0x{:x}", len));
        }
        let bins = b.get(PAGE..PAGE + len).ok_or(Error::Corrupt {
            offset: 40,
            what: alloc::format!("hive bins data size 0x{:x} exceeds the file", len),
        })?;
        let name = from_utf16z(base.get(48..112).unwrap_or(&[]));
        let stable = Space::parse(bins.to_vec())?;
        let mut h = Hive {
            stable,
            volatile: Space::default(),
            root,
            base: BaseInfo {
                seq1,
                seq2,
                timestamp: rd64(base, 12).unwrap_or(0),
                major,
                minor,
                file_name: name,
            },
            now: 0,
        };
        if root & VOLATILE_BIT != 0 {
            return corrupt(root, "root cell offset out of range");
        }
        h.nk(root)?;
        // Walk the tree: validates reachability and clears volatile fields.
        let mut seen = BTreeSet::new();
        let mut stack = alloc::vec![root];
        while let Some(k) = stack.pop() {
            if !seen.insert(k) {
                return corrupt(k, "key reached twice (cycle or shared nk)");
            }
            let d = h.cell_mut(k)?;
            wr32(d, NK_VSUBKEYS, 0);
            wr32(d, NK_VLIST, NIL);
            for c in h.list_entries(h.nk(k)?.list)? {
                h.nk(c)?;
                stack.push(c);
            }
        }
        Ok(h)
    }

    /// Serializes the stable part of the hive: base block and hive bins. Volatile keys are left
    /// out (the volatile subkey fields of stable keys are written as zero / -1).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.base_block(self.base.seq1, self.base.seq2, 0);
        out.extend_from_slice(&self.stable_image());
        out
    }

    /// A base block (4096 bytes) for the current hive with the given sequence numbers and file
    /// type (0 primary, 6 new-format log).
    pub fn base_block(&self, seq1: u32, seq2: u32, file_type: u32) -> Vec<u8> {
        let mut out = alloc::vec![0u8; PAGE];
        out[0..4].copy_from_slice(b"regf");
        wr32(&mut out, 4, seq1);
        wr32(&mut out, 8, seq2);
        wr64(&mut out, 12, self.now.max(self.base.timestamp));
        wr32(&mut out, 20, self.base.major);
        wr32(&mut out, 24, self.base.minor);
        wr32(&mut out, 28, file_type);
        wr32(&mut out, 32, 1);
        wr32(&mut out, 36, self.root);
        wr32(&mut out, 40, self.stable.data.len() as u32);
        wr32(&mut out, 44, 1);
        let name: Vec<u16> = self.base.file_name.encode_utf16().collect();
        let tail = &name[name.len().saturating_sub(31)..];
        for (i, u) in tail.iter().enumerate() {
            wr16(&mut out, 48 + i * 2, *u);
        }
        let sum = base_checksum(&out);
        wr32(&mut out, CHECKSUM_OFF, sum);
        out
    }

    /// The hive bins as written to the file: stable storage with the volatile subkey fields of
    /// every key cleared.
    pub fn stable_image(&self) -> Vec<u8> {
        let mut data = self.stable.data.clone();
        let mut stack = alloc::vec![self.root];
        let mut guard = 0usize;
        while let Some(k) = stack.pop() {
            guard += 1;
            if guard > 10_000_000 {
                break;
            }
            let Ok(nk) = self.nk(k) else { continue };
            wr32(&mut data, k as usize + 4 + NK_VSUBKEYS, 0);
            wr32(&mut data, k as usize + 4 + NK_VLIST, NIL);
            if let Ok(e) = self.list_entries(nk.list) {
                stack.extend(e);
            }
        }
        data
    }

    /// Sets the sequence numbers kept for the next serialization.
    pub fn set_sequence(&mut self, seq: u32) {
        self.base.seq1 = seq;
        self.base.seq2 = seq;
    }

    // ---- cell access ----

    fn space(&self, off: u32) -> (&Space, usize) {
        if off & VOLATILE_BIT != 0 {
            (&self.volatile, (off & !VOLATILE_BIT) as usize)
        } else {
            (&self.stable, off as usize)
        }
    }

    /// The data of the allocated cell at `off` (after the size field, including padding).
    pub fn cell(&self, off: u32) -> Result<&[u8]> {
        let (sp, o) = self.space(off);
        let s = match rd32(&sp.data, o) {
            Some(s) => s as i32,
            None => return corrupt(off, "cell offset beyond the hive bins"),
        };
        if s >= 0 {
            return corrupt(off, "cell is not allocated");
        }
        let z = s.unsigned_abs() as usize;
        match sp.data.get(o + 4..o.saturating_add(z)) {
            Some(d) if z >= 8 => Ok(d),
            _ => corrupt(
                off,
                alloc::format!("cell size {} runs past the hive bins", s),
            ),
        }
    }

    fn cell_mut(&mut self, off: u32) -> Result<&mut [u8]> {
        let len = self.cell(off)?.len();
        let (sp, o) = if off & VOLATILE_BIT != 0 {
            (&mut self.volatile, (off & !VOLATILE_BIT) as usize)
        } else {
            (&mut self.stable, off as usize)
        };
        Ok(&mut sp.data[o + 4..o + 4 + len])
    }

    fn alloc(&mut self, volatile: bool, len: usize) -> Result<u32> {
        if volatile {
            Ok(self.volatile.alloc(len, self.now)? | VOLATILE_BIT)
        } else {
            self.stable.alloc(len, self.now)
        }
    }

    fn free(&mut self, off: u32) -> Result<()> {
        if off & VOLATILE_BIT != 0 {
            self.volatile.free_cell(off & !VOLATILE_BIT)
        } else {
            self.stable.free_cell(off)
        }
    }

    fn alloc_bytes(&mut self, volatile: bool, bytes: &[u8]) -> Result<u32> {
        let c = self.alloc(volatile, bytes.len())?;
        self.cell_mut(c)?[..bytes.len()].copy_from_slice(bytes);
        Ok(c)
    }

    // ---- nk ----

    pub(crate) fn nk(&self, off: u32) -> Result<Nk> {
        let d = self.cell(off)?;
        if d.get(0..2) != Some(b"nk") {
            return corrupt(off, "not an nk record");
        }
        let g = |o| rd32(d, o).unwrap_or(0);
        let nlen = rd16(d, NK_NAMELEN).unwrap_or(0) as usize;
        let flags = rd16(d, NK_FLAGS).unwrap_or(0);
        let name = match d.get(NK_NAME..NK_NAME + nlen) {
            Some(n) => decode_name(n, flags & KEY_COMP_NAME != 0),
            None => return corrupt(off, "nk name runs past the cell"),
        };
        Ok(Nk {
            flags,
            last_write: rd64(d, NK_TIME).unwrap_or(0),
            parent: g(NK_PARENT),
            subkeys: g(NK_SUBKEYS),
            vsubkeys: g(NK_VSUBKEYS),
            list: g(NK_LIST),
            vlist: g(NK_VLIST),
            nvalues: g(NK_NVALUES),
            values: g(NK_VALUES),
            sk: g(NK_SK),
            class: g(NK_CLASS),
            max_name: g(NK_MAXNAME),
            max_class: g(NK_MAXCLASS),
            max_vname: g(NK_MAXVNAME),
            max_vdata: g(NK_MAXVDATA),
            name,
            class_len: rd16(d, NK_CLASSLEN).unwrap_or(0),
        })
    }

    fn nk_checked(&self, key: KeyRef) -> Result<Nk> {
        match self.nk(key) {
            Ok(n) => Ok(n),
            Err(Error::Corrupt { .. }) if self.cell(key).is_err() => {
                Err(Error::Status(STATUS_KEY_DELETED))
            }
            Err(e) => Err(e),
        }
    }

    fn nk_flags(&self, off: u32) -> Result<u16> {
        Ok(self.nk(off)?.flags)
    }

    fn nk_mut_u32(&mut self, off: u32, field: usize, v: u32) -> Result<()> {
        wr32(self.cell_mut(off)?, field, v);
        Ok(())
    }

    fn nk_mut_u16(&mut self, off: u32, field: usize, v: u16) -> Result<()> {
        wr16(self.cell_mut(off)?, field, v);
        Ok(())
    }

    fn touch(&mut self, off: u32) -> Result<()> {
        let now = self.now;
        wr64(self.cell_mut(off)?, NK_TIME, now);
        Ok(())
    }

    fn alloc_nk(
        &mut self,
        volatile: bool,
        name: &str,
        parent: u32,
        sk: u32,
        class: Option<&str>,
    ) -> Result<u32> {
        let (nb, comp) = encode_name(name);
        let c = self.alloc(volatile, NK_NAME + nb.len())?;
        let class_cell = match class {
            Some(cl) if !cl.is_empty() => {
                let mut v = utf16z(cl);
                v.truncate(v.len() - 2);
                Some((self.alloc_bytes(volatile, &v)?, v.len() as u16))
            }
            _ => None,
        };
        let now = self.now;
        let d = self.cell_mut(c)?;
        d[0..2].copy_from_slice(b"nk");
        let mut flags = if comp { KEY_COMP_NAME } else { 0 };
        if volatile {
            flags |= KEY_IS_VOLATILE;
        }
        wr16(d, NK_FLAGS, flags);
        wr64(d, NK_TIME, now);
        wr32(d, NK_PARENT, parent);
        wr32(d, NK_LIST, NIL);
        wr32(d, NK_VLIST, NIL);
        wr32(d, NK_VALUES, NIL);
        wr32(d, NK_SK, sk);
        wr32(d, NK_CLASS, class_cell.map(|c| c.0).unwrap_or(NIL));
        wr16(d, NK_NAMELEN, nb.len() as u16);
        wr16(d, NK_CLASSLEN, class_cell.map(|c| c.1).unwrap_or(0));
        d[NK_NAME..NK_NAME + nb.len()].copy_from_slice(&nb);
        if sk != NIL {
            self.sk_ref(sk, 1)?;
        }
        Ok(c)
    }

    // ---- sk ----

    fn alloc_sk(&mut self, volatile: bool, sd: &[u8]) -> Result<u32> {
        let c = self.alloc(volatile, 20 + sd.len())?;
        let d = self.cell_mut(c)?;
        d[0..2].copy_from_slice(b"sk");
        wr32(d, 4, c);
        wr32(d, 8, c);
        wr32(d, 12, 0);
        wr32(d, 16, sd.len() as u32);
        d[20..20 + sd.len()].copy_from_slice(sd);
        Ok(c)
    }

    fn sk_ref(&mut self, sk: u32, delta: i32) -> Result<()> {
        let d = self.cell_mut(sk)?;
        if d.get(0..2) != Some(b"sk") {
            return corrupt(sk, "not an sk record");
        }
        let r = rd32(d, 12).unwrap_or(0);
        let n = if delta >= 0 {
            r.checked_add(delta as u32)
        } else {
            r.checked_sub(delta.unsigned_abs())
        };
        let n = match n {
            Some(n) => n,
            None => return corrupt(sk, "sk reference count out of range"),
        };
        wr32(d, 12, n);
        if n == 0 {
            // Unlink from the security list and free.
            let fl = rd32(d, 4).unwrap_or(sk);
            let bl = rd32(d, 8).unwrap_or(sk);
            if fl != sk {
                wr32(self.cell_mut(fl)?, 8, bl);
                wr32(self.cell_mut(bl)?, 4, fl);
            }
            self.free(sk)?;
        }
        Ok(())
    }

    /// The security descriptor bytes of a key.
    pub fn key_security(&self, key: KeyRef) -> Result<Vec<u8>> {
        let sk = self.nk_checked(key)?.sk;
        let d = self.cell(sk)?;
        let len = rd32(d, 16).unwrap_or(0) as usize;
        match d.get(20..20usize.saturating_add(len)) {
            Some(s) if d.get(0..2) == Some(b"sk") => Ok(s.to_vec()),
            _ => corrupt(sk, "bad sk record"),
        }
    }

    /// Sets a key's security descriptor (self-relative bytes), sharing an identical existing sk
    /// record when there is one. The descriptor is stored as given (not validated here).
    pub fn set_key_security(&mut self, key: KeyRef, sd: &[u8]) -> Result<()> {
        let old = self.nk_checked(key)?.sk;
        let volatile = key & VOLATILE_BIT != 0;
        // Search the list (in the same storage) for an identical descriptor.
        let mut found = None;
        if old & VOLATILE_BIT == key & VOLATILE_BIT {
            let mut p = old;
            for _ in 0..100_000 {
                let d = self.cell(p)?;
                let len = rd32(d, 16).unwrap_or(0) as usize;
                if d.get(20..20 + len) == Some(sd) {
                    found = Some(p);
                    break;
                }
                p = rd32(d, 4).unwrap_or(old);
                if p == old {
                    break;
                }
            }
        }
        let new = match found {
            Some(p) => p,
            None => {
                let n = self.alloc_sk(volatile, sd)?;
                if old & VOLATILE_BIT == key & VOLATILE_BIT {
                    // Insert after `old`.
                    let next = rd32(self.cell(old)?, 4).unwrap_or(old);
                    wr32(self.cell_mut(n)?, 4, next);
                    wr32(self.cell_mut(n)?, 8, old);
                    wr32(self.cell_mut(old)?, 4, n);
                    wr32(self.cell_mut(next)?, 8, n);
                }
                n
            }
        };
        if new == old {
            return Ok(());
        }
        self.sk_ref(new, 1)?;
        self.nk_mut_u32(key, NK_SK, new)?;
        self.sk_ref(old, -1)
    }

    // ---- subkey lists ----

    /// All nk offsets of a subkey list (lf, lh, li or ri), in list order.
    pub(crate) fn list_entries(&self, list: u32) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        if list == NIL {
            return Ok(out);
        }
        self.collect_list(list, &mut out, 0)?;
        Ok(out)
    }

    fn collect_list(&self, list: u32, out: &mut Vec<u32>, depth: u32) -> Result<()> {
        let d = self.cell(list)?;
        let sig = d.get(0..2).unwrap_or(b"  ");
        let n = rd16(d, 2).unwrap_or(0) as usize;
        let stride = match sig {
            b"lf" | b"lh" => 8,
            b"li" | b"ri" => 4,
            _ => return corrupt(list, "not a subkey list (lf/lh/li/ri)"),
        };
        if 4 + n * stride > d.len() {
            return corrupt(list, alloc::format!("{} entries overrun the cell", n));
        }
        for i in 0..n {
            let e = rd32(d, 4 + i * stride).unwrap_or(NIL);
            if sig == b"ri" {
                if depth > 0 {
                    return corrupt(list, "nested ri list");
                }
                self.collect_list(e, out, depth + 1)?;
            } else {
                out.push(e);
            }
        }
        Ok(())
    }

    fn build_leaf(&mut self, volatile: bool, entries: &[u32]) -> Result<u32> {
        let c = self.alloc(volatile, 4 + 8 * entries.len())?;
        let mut hashes = Vec::with_capacity(entries.len());
        for &e in entries {
            hashes.push(lh_hash(&self.nk(e)?.name));
        }
        let d = self.cell_mut(c)?;
        d[0..2].copy_from_slice(b"lh");
        wr16(d, 2, entries.len() as u16);
        for (i, (&e, h)) in entries.iter().zip(hashes).enumerate() {
            wr32(d, 4 + i * 8, e);
            wr32(d, 8 + i * 8, h);
        }
        Ok(c)
    }

    fn build_list(&mut self, volatile: bool, entries: &[u32]) -> Result<u32> {
        if entries.is_empty() {
            return Ok(NIL);
        }
        if entries.len() <= MAX_LEAF {
            return self.build_leaf(volatile, entries);
        }
        let mut leaves = Vec::new();
        for chunk in entries.chunks(MAX_LEAF) {
            leaves.push(self.build_leaf(volatile, chunk)?);
        }
        let c = self.alloc(volatile, 4 + 4 * leaves.len())?;
        let d = self.cell_mut(c)?;
        d[0..2].copy_from_slice(b"ri");
        wr16(d, 2, leaves.len() as u16);
        for (i, l) in leaves.iter().enumerate() {
            wr32(d, 4 + i * 4, *l);
        }
        Ok(c)
    }

    /// Leaf offsets of an `ri` list, or `None` if `list` is a leaf.
    fn ri_leaves(&self, list: u32) -> Result<Option<Vec<u32>>> {
        let d = self.cell(list)?;
        if d.get(0..2) != Some(b"ri") {
            return Ok(None);
        }
        let n = rd16(d, 2).unwrap_or(0) as usize;
        if 4 + n * 4 > d.len() {
            return corrupt(list, alloc::format!("{} entries overrun the cell", n));
        }
        Ok(Some((0..n).filter_map(|i| rd32(d, 4 + i * 4)).collect()))
    }

    /// In an `ri` list: the first leaf whose last name sorts at or after `name` (else the last).
    fn find_leaf(&self, leaves: &[u32], name: &str) -> Result<usize> {
        let want = upcase_name(name);
        let (mut lo, mut hi) = (0usize, leaves.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let d = self.cell(leaves[mid])?;
            let n = rd16(d, 2).unwrap_or(0) as usize;
            let stride = if d.get(0..2) == Some(b"li") { 4 } else { 8 };
            let last = match n.checked_sub(1).and_then(|i| rd32(d, 4 + i * stride)) {
                Some(l) => l,
                None => return corrupt(leaves[mid], "empty or short leaf in an ri list"),
            };
            if upcase_name(&self.nk(last)?.name) >= want {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo.min(leaves.len().saturating_sub(1)))
    }

    fn build_ri(&mut self, volatile: bool, leaves: &[u32]) -> Result<u32> {
        if leaves.is_empty() {
            return Ok(NIL);
        }
        let c = self.alloc(volatile, 4 + 4 * leaves.len())?;
        let d = self.cell_mut(c)?;
        d[0..2].copy_from_slice(b"ri");
        wr16(d, 2, leaves.len() as u16);
        for (i, l) in leaves.iter().enumerate() {
            wr32(d, 4 + i * 4, *l);
        }
        Ok(c)
    }

    /// Inserts nk `key` (named `name`) into a sorted subkey list, rebuilding only the leaf it
    /// lands in (split in two when it grows past [`MAX_LEAF`]); returns the new list offset.
    fn list_insert(&mut self, volatile: bool, list: u32, key: u32, name: &str) -> Result<u32> {
        if list == NIL {
            return self.build_leaf(volatile, &[key]);
        }
        let Some(mut leaves) = self.ri_leaves(list)? else {
            let mut e = self.list_entries(list)?;
            let pos = match self.search_list(&e, name)? {
                Ok(i) | Err(i) => i,
            };
            e.insert(pos, key);
            let nl = self.build_list(volatile, &e)?;
            self.free(list)?;
            return Ok(nl);
        };
        if leaves.is_empty() {
            return corrupt(list, "empty ri list");
        }
        let li = self.find_leaf(&leaves, name)?;
        let leaf = leaves[li];
        let mut e = self.list_entries(leaf)?;
        let pos = match self.search_list(&e, name)? {
            Ok(i) | Err(i) => i,
        };
        e.insert(pos, key);
        let new_leaves = if e.len() > MAX_LEAF {
            let half = e.len() / 2;
            alloc::vec![
                self.build_leaf(volatile, &e[..half])?,
                self.build_leaf(volatile, &e[half..])?
            ]
        } else {
            alloc::vec![self.build_leaf(volatile, &e)?]
        };
        leaves.splice(li..li + 1, new_leaves);
        let nl = self.build_ri(volatile, &leaves)?;
        self.free(leaf)?;
        self.free(list)?;
        Ok(nl)
    }

    /// Removes nk `key` from a subkey list, rebuilding only its leaf; returns the new list offset.
    fn list_remove(&mut self, volatile: bool, list: u32, key: u32, name: &str) -> Result<u32> {
        let Some(mut leaves) = self.ri_leaves(list)? else {
            let mut e = self.list_entries(list)?;
            let Some(pos) = e.iter().position(|&x| x == key) else {
                return corrupt(list, "key missing from its parent's subkey list");
            };
            e.remove(pos);
            let nl = self.build_list(volatile, &e)?;
            self.free(list)?;
            return Ok(nl);
        };
        let first = self.find_leaf(&leaves, name)?;
        for li in first..leaves.len() {
            let leaf = leaves[li];
            let mut e = self.list_entries(leaf)?;
            if let Some(pos) = e.iter().position(|&x| x == key) {
                e.remove(pos);
                if e.is_empty() {
                    leaves.remove(li);
                } else {
                    leaves[li] = self.build_leaf(volatile, &e)?;
                }
                let nl = self.build_ri(volatile, &leaves)?;
                self.free(leaf)?;
                self.free(list)?;
                return Ok(nl);
            }
        }
        corrupt(list, "key missing from its parent's subkey list")
    }

    /// Finds a subkey by name (case-insensitive) in a sorted list: (index, nk) or insertion index.
    fn search_list(
        &self,
        entries: &[u32],
        name: &str,
    ) -> Result<core::result::Result<usize, usize>> {
        let want = upcase_name(name);
        let mut lo = 0usize;
        let mut hi = entries.len();
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.cmp_key_name(entries[mid], &want)? {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Ok(Ok(mid)),
            }
        }
        Ok(Err(lo))
    }

    /// Compares the upper-cased name of nk `off` with `want` (upper-cased UTF-16) without
    /// allocating.
    fn cmp_key_name(&self, off: u32, want: &[u16]) -> Result<core::cmp::Ordering> {
        let d = self.cell(off)?;
        if d.get(0..2) != Some(b"nk") {
            return corrupt(off, "not an nk record");
        }
        let flags = rd16(d, NK_FLAGS).unwrap_or(0);
        let nlen = rd16(d, NK_NAMELEN).unwrap_or(0) as usize;
        let Some(name) = d.get(NK_NAME..NK_NAME + nlen) else {
            return corrupt(off, "nk name runs past the cell");
        };
        if flags & KEY_COMP_NAME != 0 {
            let units = name.iter().map(|&b| upcase_unit(b as u16));
            Ok(units.cmp(want.iter().copied()))
        } else {
            // Decode through char so that invalid UTF-16 compares as the other paths do.
            Ok(upcase_name(&decode_name(name, false)).as_slice().cmp(want))
        }
    }

    // ---- public key API ----

    /// Opens a direct subkey by name (case-insensitive), stable or volatile.
    pub fn open_subkey(&self, key: KeyRef, name: &str) -> Result<KeyRef> {
        let nk = self.nk_checked(key)?;
        for list in [nk.list, nk.vlist] {
            if list == NIL {
                continue;
            }
            let leaf = match self.ri_leaves(list)? {
                Some(leaves) if !leaves.is_empty() => leaves[self.find_leaf(&leaves, name)?],
                _ => list,
            };
            let e = self.list_entries(leaf)?;
            if let Ok(i) = self.search_list(&e, name)? {
                return Ok(e[i]);
            }
        }
        Err(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
    }

    /// Opens a key by a backslash-separated path relative to the root ("" is the root).
    /// Symbolic links are not followed (see [`Hive::link_target`]).
    pub fn open_key(&self, path: &str) -> Result<KeyRef> {
        let mut k = self.root;
        for part in path.split('\\').filter(|p| !p.is_empty()) {
            k = self.open_subkey(k, part)?;
        }
        Ok(k)
    }

    /// Creates (or opens, if it exists) a direct stable subkey; see [`Hive::create_key_ex`].
    pub fn create_key(&mut self, parent: KeyRef, name: &str) -> Result<KeyRef> {
        Ok(self.create_key_ex(parent, name, None, false)?.0)
    }

    /// Creates every missing key of a backslash-separated path below the root and returns the last.
    pub fn create_key_path(&mut self, path: &str) -> Result<KeyRef> {
        let mut k = self.root;
        for part in path.split('\\').filter(|p| !p.is_empty()) {
            k = self.create_key(k, part)?;
        }
        Ok(k)
    }

    /// Creates a subkey (`NtCreateKey` semantics for one path component): returns the key and
    /// whether it was created (false: it existed and is opened). A stable key under a volatile
    /// parent gives `STATUS_CHILD_MUST_BE_VOLATILE`; a bad name `STATUS_OBJECT_NAME_INVALID`.
    pub fn create_key_ex(
        &mut self,
        parent: KeyRef,
        name: &str,
        class: Option<&str>,
        volatile: bool,
    ) -> Result<(KeyRef, bool)> {
        let pnk = self.nk_checked(parent)?;
        if name.is_empty() || name.contains('\\') || name.encode_utf16().count() > 255 {
            return Err(Error::Status(STATUS_OBJECT_NAME_INVALID));
        }
        if let Ok(k) = self.open_subkey(parent, name) {
            return Ok((k, false));
        }
        if pnk.flags & KEY_IS_VOLATILE != 0 && !volatile {
            return Err(Error::Status(STATUS_CHILD_MUST_BE_VOLATILE));
        }
        // Security: inherit the parent's descriptor (shared in the same storage).
        let sk = if (pnk.sk & VOLATILE_BIT != 0) == volatile {
            pnk.sk
        } else {
            let sd = self.key_security(parent)?;

            self.alloc_sk(volatile, &sd)?
        };
        let k = self.alloc_nk(volatile, name, parent, sk, class)?;
        let (lf, cf) = if volatile {
            (NK_VLIST, NK_VSUBKEYS)
        } else {
            (NK_LIST, NK_SUBKEYS)
        };
        let list = if volatile { pnk.vlist } else { pnk.list };
        let pvol = parent & VOLATILE_BIT != 0;
        let nl = self.list_insert(pvol || volatile, list, k, name)?;
        let count = if volatile { pnk.vsubkeys } else { pnk.subkeys };
        self.nk_mut_u32(parent, lf, nl)?;
        self.nk_mut_u32(parent, cf, count.saturating_add(1))?;
        let ml = utf16_len(name).max(pnk.max_name);
        self.nk_mut_u32(parent, NK_MAXNAME, ml)?;
        let cl = class.map(utf16_len).unwrap_or(0).max(pnk.max_class);
        self.nk_mut_u32(parent, NK_MAXCLASS, cl)?;
        self.touch(parent)?;
        Ok((k, true))
    }

    /// Creates a symbolic link key `name` under `parent` pointing at `target` (a full registry
    /// path such as `\Registry\Machine\System\ControlSet001`): KEY_SYM_LINK and a REG_LINK
    /// `SymbolicLinkValue`.
    pub fn create_link(
        &mut self,
        parent: KeyRef,
        name: &str,
        target: &str,
        volatile: bool,
    ) -> Result<KeyRef> {
        let (k, created) = self.create_key_ex(parent, name, None, volatile)?;
        if !created {
            return Err(Error::Status(STATUS_OBJECT_NAME_COLLISION));
        }
        let f = self.nk(k)?.flags | KEY_SYM_LINK;
        self.nk_mut_u16(k, NK_FLAGS, f)?;
        let mut v = utf16z(target);
        v.truncate(v.len() - 2);
        self.set_value(k, SYMBOLIC_LINK_VALUE, REG_LINK, &v)?;
        Ok(k)
    }

    /// The target of a symbolic link key, or `None` if the key is not a link.
    pub fn link_target(&self, key: KeyRef) -> Result<Option<String>> {
        if self.nk_checked(key)?.flags & KEY_SYM_LINK == 0 {
            return Ok(None);
        }
        let v = self.query_value(key, SYMBOLIC_LINK_VALUE)?;
        Ok(Some(from_utf16z(&v.data)))
    }

    /// Deletes a key (`NtDeleteKey`). A key with subkeys, or the root / a KEY_NO_DELETE key,
    /// gives `STATUS_CANNOT_DELETE`.
    pub fn delete_key(&mut self, key: KeyRef) -> Result<()> {
        let nk = self.nk_checked(key)?;
        if key == self.root || nk.flags & (KEY_NO_DELETE | KEY_HIVE_ENTRY) != 0 {
            return Err(Error::Status(STATUS_CANNOT_DELETE));
        }
        if nk.subkeys != 0 || nk.vsubkeys != 0 {
            return Err(Error::Status(STATUS_CANNOT_DELETE));
        }
        let parent = nk.parent;
        let pnk = self.nk(parent)?;
        let volatile = key & VOLATILE_BIT != 0;
        let (list, lf, cf) = if volatile {
            (pnk.vlist, NK_VLIST, NK_VSUBKEYS)
        } else {
            (pnk.list, NK_LIST, NK_SUBKEYS)
        };
        let count = if volatile { pnk.vsubkeys } else { pnk.subkeys };
        if !self.list_entries(list)?.contains(&key) {
            return corrupt(parent, "key missing from its parent's subkey list");
        }
        let pvol = parent & VOLATILE_BIT != 0;
        let nl = self.list_remove(pvol || volatile, list, key, &nk.name)?;
        self.nk_mut_u32(parent, lf, nl)?;
        self.nk_mut_u32(parent, cf, count.saturating_sub(1))?;
        // Values, class, security, then the nk itself.
        for v in self.value_offsets(key)? {
            self.free_value(v)?;
        }
        if nk.values != NIL {
            self.free(nk.values)?;
        }
        if nk.class != NIL {
            self.free(nk.class)?;
        }
        self.sk_ref(nk.sk, -1)?;
        self.free(key)?;
        // The maxima are upper bounds (as in Windows); shrink them exactly only when cheap.
        if count <= MAX_LEAF as u32
            && (utf16_len(&nk.name) >= pnk.max_name & 0xFFFF
                || nk.class_len as u32 >= pnk.max_class)
        {
            self.recompute_max_names(parent)?;
        }
        self.touch(parent)
    }

    /// Deletes a key and all its subkeys.
    pub fn delete_tree(&mut self, key: KeyRef) -> Result<()> {
        for s in self.enum_subkeys(key)? {
            self.delete_tree(s)?;
        }
        self.delete_key(key)
    }

    fn recompute_max_names(&mut self, key: KeyRef) -> Result<()> {
        let mut mn = 0;
        let mut mc = 0;
        for s in self.enum_subkeys(key)? {
            let n = self.nk(s)?;
            mn = mn.max(utf16_len(&n.name));
            mc = mc.max(n.class_len as u32);
        }
        self.nk_mut_u32(key, NK_MAXNAME, mn)?;
        self.nk_mut_u32(key, NK_MAXCLASS, mc)
    }

    /// The stable then volatile subkeys of a key (`NtEnumerateKey` order).
    pub fn enum_subkeys(&self, key: KeyRef) -> Result<Vec<KeyRef>> {
        let nk = self.nk_checked(key)?;
        let mut e = self.list_entries(nk.list)?;
        e.extend(self.list_entries(nk.vlist)?);
        Ok(e)
    }

    /// A key's name.
    pub fn key_name(&self, key: KeyRef) -> Result<String> {
        Ok(self.nk_checked(key)?.name)
    }

    /// A key's class name, if any.
    pub fn key_class(&self, key: KeyRef) -> Result<Option<String>> {
        let nk = self.nk_checked(key)?;
        if nk.class == NIL || nk.class_len == 0 {
            return Ok(None);
        }
        let d = self.cell(nk.class)?;
        match d.get(..nk.class_len as usize) {
            Some(b) => Ok(Some(decode_name(b, false))),
            None => corrupt(nk.class, "class name runs past its cell"),
        }
    }

    /// A key's last write time (FILETIME).
    pub fn key_last_write(&self, key: KeyRef) -> Result<u64> {
        Ok(self.nk_checked(key)?.last_write)
    }

    /// A key's parent (None for the root).
    pub fn key_parent(&self, key: KeyRef) -> Result<Option<KeyRef>> {
        if key == self.root {
            return Ok(None);
        }
        Ok(Some(self.nk_checked(key)?.parent))
    }

    /// A key's nk flags (KEY_*).
    pub fn key_flags(&self, key: KeyRef) -> Result<u16> {
        Ok(self.nk_checked(key)?.flags)
    }

    /// The full path of a key below the root (components joined by `\`, "" for the root).
    pub fn key_path(&self, key: KeyRef) -> Result<String> {
        let mut parts = Vec::new();
        let mut k = key;
        let mut guard = 0;
        while k != self.root {
            let nk = self.nk_checked(k)?;
            parts.push(nk.name);
            k = nk.parent;
            guard += 1;
            if guard > 512 {
                return corrupt(key, "parent chain too deep");
            }
        }
        parts.reverse();
        Ok(parts.join("\\"))
    }

    /// The maximum lengths a key records: (subkey name, subkey class, value name, value data),
    /// names in UTF-16 bytes.
    pub fn key_max_lengths(&self, key: KeyRef) -> Result<(u32, u32, u32, u32)> {
        let n = self.nk_checked(key)?;
        Ok((n.max_name & 0xFFFF, n.max_class, n.max_vname, n.max_vdata))
    }

    // ---- values ----

    fn value_offsets(&self, key: KeyRef) -> Result<Vec<u32>> {
        let nk = self.nk_checked(key)?;
        if nk.nvalues == 0 {
            return Ok(Vec::new());
        }
        let d = self.cell(nk.values)?;
        if (nk.nvalues as usize).saturating_mul(4) > d.len() {
            return corrupt(
                nk.values,
                alloc::format!("value list too small for {} values", nk.nvalues),
            );
        }
        Ok((0..nk.nvalues as usize)
            .filter_map(|i| rd32(d, i * 4))
            .collect())
    }

    pub(crate) fn vk(&self, off: u32) -> Result<Vk> {
        let d = self.cell(off)?;
        if d.get(0..2) != Some(b"vk") {
            return corrupt(off, "not a vk record");
        }
        let nlen = rd16(d, 2).unwrap_or(0) as usize;
        let flags = rd16(d, 16).unwrap_or(0);
        let name = match d.get(20..20 + nlen) {
            Some(n) => decode_name(n, flags & VALUE_COMP_NAME != 0),
            None => return corrupt(off, "vk name runs past the cell"),
        };
        Ok(Vk {
            name,
            size: rd32(d, 4).unwrap_or(0),
            data: rd32(d, 8).unwrap_or(0),
            ty: rd32(d, 12).unwrap_or(0),
        })
    }

    /// Reads value data given a vk's size and data offset fields.
    pub(crate) fn read_data(&self, size: u32, off: u32) -> Result<Vec<u8>> {
        if size & 0x8000_0000 != 0 {
            let len = (size & 0x7FFF_FFFF) as usize;
            if len > 4 {
                return corrupt(off, alloc::format!("inline data size {} > 4", len));
            }
            return Ok(off.to_le_bytes()[..len].to_vec());
        }
        let len = size as usize;
        if len == 0 {
            return Ok(Vec::new());
        }
        let d = self.cell(off)?;
        if len > BIG_DATA_THRESHOLD && self.base.minor >= 4 && d.get(0..2) == Some(b"db") {
            let n = rd16(d, 2).unwrap_or(0) as usize;
            let list = rd32(d, 4).unwrap_or(NIL);
            let l = self.cell(list)?;
            let mut out = Vec::with_capacity(len);
            for i in 0..n {
                let seg = match rd32(l, i * 4) {
                    Some(s) => s,
                    None => return corrupt(list, "big data segment list too small"),
                };
                let sd = self.cell(seg)?;
                let take = (len - out.len()).min(BIG_DATA_THRESHOLD).min(sd.len());
                out.extend_from_slice(&sd[..take]);
            }
            if out.len() != len {
                return corrupt(
                    off,
                    alloc::format!("big data has {} of {} bytes", out.len(), len),
                );
            }
            return Ok(out);
        }
        match d.get(..len) {
            Some(b) => Ok(b.to_vec()),
            None => corrupt(off, alloc::format!("data size {} exceeds its cell", len)),
        }
    }

    fn write_data(&mut self, volatile: bool, data: &[u8]) -> Result<(u32, u32)> {
        if data.len() <= 4 {
            let mut b = [0u8; 4];
            b[..data.len()].copy_from_slice(data);
            return Ok((data.len() as u32 | 0x8000_0000, u32::from_le_bytes(b)));
        }
        let len = u32::try_from(data.len())
            .ok()
            .filter(|&l| l < 0x8000_0000)
            .ok_or(Error::Status(STATUS_INVALID_PARAMETER))?;
        if data.len() <= BIG_DATA_THRESHOLD || self.base.minor < 4 {
            return Ok((len, self.alloc_bytes(volatile, data)?));
        }
        let mut segs = Vec::new();
        for chunk in data.chunks(BIG_DATA_THRESHOLD) {
            segs.push(self.alloc_bytes(volatile, chunk)?);
        }
        let mut lb = Vec::new();
        for s in &segs {
            lb.extend_from_slice(&s.to_le_bytes());
        }
        let list = self.alloc_bytes(volatile, &lb)?;
        let mut db = [0u8; 12];
        db[0..2].copy_from_slice(b"db");
        wr16(&mut db, 2, segs.len() as u16);
        wr32(&mut db, 4, list);
        Ok((len, self.alloc_bytes(volatile, &db)?))
    }

    fn free_data(&mut self, size: u32, off: u32) -> Result<()> {
        if size & 0x8000_0000 != 0 || size == 0 {
            return Ok(());
        }
        let d = self.cell(off)?;
        if size as usize > BIG_DATA_THRESHOLD && self.base.minor >= 4 && d.get(0..2) == Some(b"db")
        {
            let n = rd16(d, 2).unwrap_or(0) as usize;
            let list = rd32(d, 4).unwrap_or(NIL);
            let l = self.cell(list)?;
            let segs: Vec<u32> = (0..n).filter_map(|i| rd32(l, i * 4)).collect();
            for s in segs {
                self.free(s)?;
            }
            self.free(list)?;
        }
        self.free(off)
    }

    fn free_value(&mut self, vk: u32) -> Result<()> {
        let v = self.vk(vk)?;
        self.free_data(v.size, v.data)?;
        self.free(vk)
    }

    fn find_value(&self, key: KeyRef, name: &str) -> Result<Option<(usize, u32)>> {
        let want = upcase_name(name);
        for (i, v) in self.value_offsets(key)?.into_iter().enumerate() {
            if upcase_name(&self.vk(v)?.name) == want {
                return Ok(Some((i, v)));
            }
        }
        Ok(None)
    }

    /// Reads a value (`NtQueryValueKey`); `STATUS_OBJECT_NAME_NOT_FOUND` if absent.
    pub fn query_value(&self, key: KeyRef, name: &str) -> Result<Value> {
        match self.find_value(key, name)? {
            Some((_, v)) => self.value_at(v),
            None => Err(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND)),
        }
    }

    fn value_at(&self, vk: u32) -> Result<Value> {
        let v = self.vk(vk)?;
        Ok(Value {
            data: self.read_data(v.size, v.data)?,
            name: v.name,
            ty: v.ty,
        })
    }

    /// All values of a key in list order (`NtEnumerateValueKey`).
    pub fn enum_values(&self, key: KeyRef) -> Result<Vec<Value>> {
        self.value_offsets(key)?
            .into_iter()
            .map(|v| self.value_at(v))
            .collect()
    }

    /// Sets (creates or replaces) a value (`NtSetValueKey`).
    pub fn set_value(&mut self, key: KeyRef, name: &str, ty: u32, data: &[u8]) -> Result<()> {
        let nk = self.nk_checked(key)?;
        if name.encode_utf16().count() > 16383 {
            return Err(Error::Status(STATUS_INVALID_PARAMETER));
        }
        let volatile = key & VOLATILE_BIT != 0;
        let (size, doff) = self.write_data(volatile, data)?;
        match self.find_value(key, name)? {
            Some((_, vk)) => {
                let old = self.vk(vk)?;
                self.free_data(old.size, old.data)?;
                let d = self.cell_mut(vk)?;
                wr32(d, 4, size);
                wr32(d, 8, doff);
                wr32(d, 12, ty);
            }
            None => {
                let (nb, comp) = encode_name(name);
                let vk = self.alloc(volatile, 20 + nb.len())?;
                let d = self.cell_mut(vk)?;
                d[0..2].copy_from_slice(b"vk");
                wr16(d, 2, nb.len() as u16);
                wr32(d, 4, size);
                wr32(d, 8, doff);
                wr32(d, 12, ty);
                wr16(d, 16, if comp { VALUE_COMP_NAME } else { 0 });
                d[20..20 + nb.len()].copy_from_slice(&nb);
                let mut offs = self.value_offsets(key)?;
                offs.push(vk);
                let mut lb = Vec::new();
                for o in &offs {
                    lb.extend_from_slice(&o.to_le_bytes());
                }
                let nl = self.alloc_bytes(volatile, &lb)?;
                if nk.values != NIL && nk.nvalues != 0 {
                    self.free(nk.values)?;
                }
                self.nk_mut_u32(key, NK_VALUES, nl)?;
                self.nk_mut_u32(key, NK_NVALUES, offs.len() as u32)?;
            }
        }
        self.recompute_max_values(key)?;
        self.touch(key)
    }

    /// Deletes a value (`NtDeleteValueKey`); `STATUS_OBJECT_NAME_NOT_FOUND` if absent.
    pub fn delete_value(&mut self, key: KeyRef, name: &str) -> Result<()> {
        let nk = self.nk_checked(key)?;
        let (i, vk) = self
            .find_value(key, name)?
            .ok_or(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))?;
        let mut offs = self.value_offsets(key)?;
        offs.remove(i);
        self.free_value(vk)?;
        self.free(nk.values)?;
        let nl = if offs.is_empty() {
            NIL
        } else {
            let mut lb = Vec::new();
            for o in &offs {
                lb.extend_from_slice(&o.to_le_bytes());
            }
            self.alloc_bytes(key & VOLATILE_BIT != 0, &lb)?
        };
        self.nk_mut_u32(key, NK_VALUES, nl)?;
        self.nk_mut_u32(key, NK_NVALUES, offs.len() as u32)?;
        self.recompute_max_values(key)?;
        self.touch(key)
    }

    fn recompute_max_values(&mut self, key: KeyRef) -> Result<()> {
        let mut mn = 0;
        let mut md = 0;
        for v in self.value_offsets(key)? {
            let vk = self.vk(v)?;
            mn = mn.max(utf16_len(&vk.name));
            md = md.max(vk.size & 0x7FFF_FFFF);
        }
        self.nk_mut_u32(key, NK_MAXVNAME, mn)?;
        self.nk_mut_u32(key, NK_MAXVDATA, md)
    }

    /// Total stable storage in bytes (hive bins).
    pub fn stable_len(&self) -> usize {
        self.stable.data.len()
    }

    /// A snapshot of the whole tree: path → sorted values, for comparisons.
    pub fn dump(&self) -> Result<BTreeMap<String, Vec<Value>>> {
        let mut out = BTreeMap::new();
        let mut stack = alloc::vec![(self.root, String::new())];
        while let Some((k, p)) = stack.pop() {
            let mut vals = self.enum_values(k)?;
            vals.sort_by_key(|a| upcase_name(&a.name));
            for s in self.enum_subkeys(k)? {
                let n = self.key_name(s)?;
                let sp = if p.is_empty() {
                    n
                } else {
                    alloc::format!("{}\\{}", p, n)
                };
                stack.push((s, sp));
            }
            out.insert(p, vals);
        }
        Ok(out)
    }
}

/// Runs one fuzz input: parse, check, then walk and mutate; must never panic.
pub fn fuzz_one(data: &[u8]) {
    let _ = check(data);
    // The second half as a transaction log for the first.
    let half = data.len() / 2;
    let _ = log::load_with_logs(&data[..half], &data[half..], &[]);
    if let Ok(mut h) = Hive::from_bytes(data) {
        let _ = h.dump();
        let root = h.root();
        let _ = h.create_key(root, "FuzzKey");
        if let Ok(subs) = h.enum_subkeys(root) {
            for s in subs.into_iter().take(8) {
                let _ = h.set_value(s, "v", REG_SZ, b"x\0y\0\0\0");
                let _ = h.enum_values(s);
                let _ = h.delete_value(s, "v");
                let _ = h.delete_key(s);
            }
        }
        let _ = h.to_bytes();
    }
}
