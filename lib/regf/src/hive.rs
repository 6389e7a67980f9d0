//! The in-memory hive: base block, loading a hive file image, serializing it.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::*;

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

/// A registry hive in memory.
#[derive(Clone, Debug)]
pub struct Hive {
    pub(crate) stable: Space,
    pub(crate) volatile: Space,
    pub(crate) root: u32,
    pub(crate) base: BaseInfo,
    /// Current time (FILETIME) used for last-write stamps; set with [`Hive::set_time`].
    pub(crate) now: u64,
    /// Volatile subkeys of stable keys: key → (count, list). NT keeps these in the nk cell's
    /// volatile fields; keeping them beside the cell means stable storage always equals the file
    /// image (nothing to clear before a flush writes a page).
    pub(crate) vol: BTreeMap<u32, (u32, u32)>,
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
            vol: BTreeMap::new(),
        };
        let sk = h.alloc_sk(false, &DEFAULT_SD)?;
        let root = h.alloc_nk(false, root_name, NIL, sk, None)?;
        h.nk_mut_u16(
            root,
            NK_FLAGS,
            KEY_HIVE_ENTRY | KEY_NO_DELETE | h.nk_flags(root)?,
        )?;
        h.root = root;
        h.stable.mark_all_dirty();
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
        Self::parse_file(b, false)
    }

    /// Parses a hive file image as it is, also when its sequence numbers differ (a "dirty" hive:
    /// a flush was interrupted, or the file was copied from a running system, and its logs were
    /// not replayed). The hive bins are read as the primary holds them; the structures are
    /// validated exactly as [`Hive::from_bytes`] does. [`BaseInfo`] keeps both sequence numbers.
    pub fn from_bytes_dirty(b: &[u8]) -> Result<Hive> {
        Self::parse_file(b, true)
    }

    fn parse_file(b: &[u8], allow_dirty: bool) -> Result<Hive> {
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
        if seq1 != seq2 && !allow_dirty {
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
        let stable = Space::parse(bins)?;
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
            vol: BTreeMap::new(),
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
        h.stable.clear_dirty();
        Ok(h)
    }

    /// Serializes the stable part of the hive: base block and hive bins. Volatile keys are left
    /// out (the volatile subkey fields of stable keys are zero / -1 in stable storage).
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
        wr32(&mut out, 40, self.stable.len() as u32);
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

    /// The hive bins as written to the file (stable storage).
    pub fn stable_image(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.stable.len());
        for b in &self.stable.bins {
            out.extend_from_slice(&b.data);
        }
        out
    }

    /// [`Hive::stable_image`], failing with `STATUS_INSUFFICIENT_RESOURCES` when memory runs out.
    pub fn try_stable_image(&self) -> Result<Vec<u8>> {
        self.stable.image()
    }

    /// Sets the sequence numbers kept for the next serialization.
    pub fn set_sequence(&mut self, seq: u32) {
        self.base.seq1 = seq;
        self.base.seq2 = seq;
    }

    /// Total stable storage in bytes (hive bins).
    pub fn stable_len(&self) -> usize {
        self.stable.len()
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
