//! Recovery of deleted keys and values from unallocated space (what forensic readers such as
//! yarp and regipy call "deleted" or "carved" records).
//!
//! Freeing a cell (`HvFreeCell`) only makes its size field positive and may merge it with free
//! neighbours; the record bytes stay until the space is allocated again. [`Hive::recover_deleted`]
//! walks every free cell of stable storage and looks, at each 8-byte boundary inside it, for a
//! record header (size field, then `nk` or `vk`) whose whole record lies in unallocated space and
//! whose fields are plausible (name length within the record and the limits of the format, a
//! parent offset that is a cell boundary inside the hive bins holding an `nk`, known flags). A
//! recovered key's path is reported when its parent chain resolves to the root, through live keys
//! or other recovered keys. Its values are recovered through its value list when the list, the
//! `vk` records and their data are all still unallocated; other `vk` records found in free space
//! are reported without a key.
//!
//! Everything read here is untrusted: every offset and length is checked, and nothing panics on
//! any content of the free cells (a property test plants random bytes there).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::*;

/// A key recovered from unallocated space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedKey {
    /// Cell offset of the nk record.
    pub offset: u32,
    /// The key's name.
    pub name: String,
    /// Full path below the root (components joined by `\`) when the parent chain resolves.
    pub path: Option<String>,
    /// The parent cell offset recorded in the nk.
    pub parent: u32,
    /// Last write time (FILETIME) recorded in the nk.
    pub last_write: u64,
    /// nk flags (`KEY_*`).
    pub flags: u16,
    /// Values recovered through the key's value list.
    pub values: Vec<DeletedValue>,
}

/// A value recovered from unallocated space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedValue {
    /// Cell offset of the vk record.
    pub offset: u32,
    /// Value name ("" is the default value).
    pub name: String,
    /// `REG_*` type.
    pub ty: u32,
    /// The data size recorded in the vk.
    pub size: u32,
    /// The data, when it is inline or its cells are still unallocated (else `None`: the space was
    /// reused).
    pub data: Option<Vec<u8>>,
}

/// What [`Hive::recover_deleted`] finds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Deleted keys, by cell offset.
    pub keys: Vec<DeletedKey>,
    /// Deleted values that belong to no recovered key, by cell offset.
    pub values: Vec<DeletedValue>,
}

/// Known nk flag bits (KEY_IS_VOLATILE .. KEY_VIRTUAL_STORE, 0x0001..0x0080) and the user flag /
/// virtualization bits 0x0F00 / 0xF000 newer Windows stores in the upper byte.
const NK_ALLOWED: u16 = !(KEY_HIVE_ENTRY | KEY_HIVE_EXIT);
/// Longest value name in UTF-16 units.
const MAX_VALUE_NAME: usize = 16383;

/// The unallocated regions of stable storage: start → end (hive-bin offsets).
struct Unallocated(BTreeMap<u32, u32>);

impl Unallocated {
    /// Whether `off..off + len` lies inside one free region.
    fn contains(&self, off: u32, len: u32) -> bool {
        let Some(end) = off.checked_add(len) else {
            return false;
        };
        match self.0.range(..=off).next_back() {
            Some((_, &e)) => end <= e,
            None => false,
        }
    }
}

impl Hive {
    /// The raw bytes of stable storage from `off` to the end of its bin (allocated or not).
    fn raw(&self, off: u32) -> Option<&[u8]> {
        if off & VOLATILE_BIT != 0 || !off.is_multiple_of(8) {
            return None;
        }
        self.stable.bytes(off)
    }

    fn unallocated(&self) -> Unallocated {
        let mut m = BTreeMap::new();
        for b in &self.stable.bins {
            let mut c = 32usize;
            while c + 4 <= b.data.len() {
                let s = rd32(&b.data, c).unwrap_or(0) as i32;
                let z = s.unsigned_abs() as usize;
                if z < 8 || c + z > b.data.len() {
                    break;
                }
                if s > 0 {
                    m.insert(b.start + c as u32, b.start + (c + z) as u32);
                }
                c += z;
            }
        }
        Unallocated(m)
    }

    /// A record at `off` lying wholly in unallocated space: its bytes after the size field,
    /// `len` of them at most (the record's own size field, as freed, bounds it).
    fn free_record<'a>(&'a self, free: &Unallocated, off: u32, sig: &[u8; 2]) -> Option<&'a [u8]> {
        let b = self.raw(off)?;
        let z = (rd32(b, 0)? as i32).unsigned_abs();
        if z < 8 || !z.is_multiple_of(8) || !free.contains(off, z) {
            return None;
        }
        let d = b.get(4..z as usize)?;
        (d.get(0..2)? == sig).then_some(d)
    }

    /// Whether `off` is a plausible cell offset holding an nk record (allocated or free).
    fn nk_at(&self, off: u32) -> bool {
        self.raw(off)
            .and_then(|b| b.get(4..6))
            .is_some_and(|s| s == b"nk")
    }

    /// Parses a free nk record; `None` when a field is implausible.
    fn carve_nk(&self, free: &Unallocated, off: u32) -> Option<DeletedKey> {
        let d = self.free_record(free, off, b"nk")?;
        let flags = rd16(d, NK_FLAGS)?;
        if flags & !NK_ALLOWED != 0 {
            return None;
        }
        let nlen = rd16(d, NK_NAMELEN)? as usize;
        let comp = flags & KEY_COMP_NAME != 0;
        let units = if comp { nlen } else { nlen / 2 };
        if nlen == 0 || units > MAX_KEY_NAME || (!comp && !nlen.is_multiple_of(2)) {
            return None;
        }
        let name = try_decode_name(d.get(NK_NAME..NK_NAME + nlen)?, comp).ok()?;
        if name.contains('\\') || name.chars().any(|c| c == '\0') {
            return None;
        }
        let parent = rd32(d, NK_PARENT)?;
        if parent == off || !self.nk_at(parent) {
            return None;
        }
        Some(DeletedKey {
            offset: off,
            name,
            path: None,
            parent,
            last_write: rd64(d, NK_TIME)?,
            flags,
            values: Vec::new(),
        })
    }

    /// Parses a free vk record and, when still unallocated, its data.
    fn carve_vk(&self, free: &Unallocated, off: u32) -> Option<DeletedValue> {
        let d = self.free_record(free, off, b"vk")?;
        let nlen = rd16(d, 2)? as usize;
        let flags = rd16(d, 16)?;
        if flags & !0x3 != 0 {
            return None;
        }
        let comp = flags & VALUE_COMP_NAME != 0;
        let units = if comp { nlen } else { nlen / 2 };
        if units > MAX_VALUE_NAME || (!comp && !nlen.is_multiple_of(2)) {
            return None;
        }
        let name = try_decode_name(d.get(20..20 + nlen)?, comp).ok()?;
        if name.chars().any(|c| c == '\0') {
            return None;
        }
        let size = rd32(d, 4)?;
        let doff = rd32(d, 8)?;
        let ty = rd32(d, 12)?;
        Some(DeletedValue {
            offset: off,
            name,
            ty,
            size,
            data: self.carve_data(free, size, doff),
        })
    }

    /// Value data from unallocated cells (inline data needs no cell).
    fn carve_data(&self, free: &Unallocated, size: u32, off: u32) -> Option<Vec<u8>> {
        if size & 0x8000_0000 != 0 {
            let len = (size & 0x7FFF_FFFF) as usize;
            return (len <= 4).then(|| off.to_le_bytes()[..len].to_vec());
        }
        let len = size as usize;
        if len == 0 {
            return Some(Vec::new());
        }
        if len > self.stable.len() {
            return None;
        }
        let cell = |o: u32| -> Option<&[u8]> {
            let b = self.raw(o)?;
            let z = (rd32(b, 0)? as i32).unsigned_abs();
            if z < 8 || !free.contains(o, z) {
                return None;
            }
            b.get(4..z as usize)
        };
        let d = cell(off)?;
        if len > BIG_DATA_THRESHOLD && self.base.minor >= 4 && d.get(0..2) == Some(b"db") {
            let n = rd16(d, 2)? as usize;
            let l = cell(rd32(d, 4)?)?;
            let mut out = Vec::new();
            for i in 0..n {
                let seg = cell(rd32(l, i * 4)?)?;
                let take = (len - out.len()).min(BIG_DATA_THRESHOLD).min(seg.len());
                out.extend_from_slice(&seg[..take]);
            }
            return (out.len() == len).then_some(out);
        }
        d.get(..len).map(|b| b.to_vec())
    }

    /// Finds deleted keys and values in the free cells of the hive (see the module docs).
    pub fn recover_deleted(&self) -> Recovered {
        let free = self.unallocated();
        let mut keys = BTreeMap::new();
        let mut vks = BTreeMap::new();
        for (&start, &end) in &free.0 {
            let mut p = start;
            while p + 8 <= end {
                if let Some(k) = self.carve_nk(&free, p) {
                    keys.insert(p, k);
                } else if let Some(v) = self.carve_vk(&free, p) {
                    vks.insert(p, v);
                }
                p += 8;
            }
        }
        // Values through each key's value list, when the list is unallocated too.
        let mut claimed = BTreeSet::new();
        for (&off, k) in keys.iter_mut() {
            let Some(d) = self.raw(off).and_then(|b| b.get(4..)) else {
                continue;
            };
            let n = rd32(d, NK_NVALUES).unwrap_or(0) as usize;
            let list = rd32(d, NK_VALUES).unwrap_or(NIL);
            let Some(l) = self.raw(list) else {
                continue;
            };
            let lz = (rd32(l, 0).unwrap_or(0) as i32).unsigned_abs();
            if n == 0 || n.saturating_mul(4) + 4 > lz as usize || !free.contains(list, lz) {
                continue;
            }
            for i in 0..n {
                let Some(v) = rd32(l, 4 + i * 4) else { break };
                if let Some(val) = vks.get(&v) {
                    k.values.push(val.clone());
                    claimed.insert(v);
                }
            }
        }
        // Paths: through live keys (reachable from the root) or other recovered keys.
        let mut paths: BTreeMap<u32, Option<String>> = BTreeMap::new();
        let offs: Vec<u32> = keys.keys().copied().collect();
        for off in offs {
            let mut chain = Vec::new();
            let mut cur = off;
            let base = loop {
                if let Some(p) = paths.get(&cur) {
                    break p.clone();
                }
                if chain.len() > 512 || chain.contains(&cur) {
                    break None;
                }
                match keys.get(&cur) {
                    Some(k) => {
                        chain.push(cur);
                        cur = k.parent;
                    }
                    None => break self.live_path(cur),
                }
            };
            // Unwind: each chain member's path is its parent's path plus its name.
            let mut p = base;
            for &c in chain.iter().rev() {
                let name = &keys[&c].name;
                p = p.map(|pp| {
                    if pp.is_empty() {
                        name.clone()
                    } else {
                        alloc::format!("{}\\{}", pp, name)
                    }
                });
                paths.insert(c, p.clone());
            }
        }
        for (off, k) in keys.iter_mut() {
            k.path = paths.get(off).cloned().flatten();
        }
        Recovered {
            keys: keys.into_values().collect(),
            values: vks
                .into_iter()
                .filter(|(o, _)| !claimed.contains(o))
                .map(|(_, v)| v)
                .collect(),
        }
    }

    /// The path of a live key, when `off` is an allocated nk whose parent chain reaches the root.
    fn live_path(&self, off: u32) -> Option<String> {
        if off == self.root {
            return Some(String::new());
        }
        let mut parts = Vec::new();
        let mut k = off;
        while k != self.root {
            if parts.len() > 512 {
                return None;
            }
            let nk = self.nk_named(k).ok()?;
            parts.push(nk.name);
            k = nk.parent;
        }
        parts.reverse();
        Some(parts.join("\\"))
    }
}
