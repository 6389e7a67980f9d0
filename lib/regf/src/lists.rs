//! Subkey lists (`lf`, `lh`, `li`, `ri`) and name hashing: sorted leaves of at most
//! [`MAX_LEAF`] entries, an `ri` index above that, case-insensitive ordering by upper-cased UTF-16.

use alloc::vec::Vec;

use crate::*;

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

impl Hive {
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

    pub(crate) fn collect_list(&self, list: u32, out: &mut Vec<u32>, depth: u32) -> Result<()> {
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

    pub(crate) fn build_leaf(&mut self, volatile: bool, entries: &[u32]) -> Result<u32> {
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

    pub(crate) fn build_list(&mut self, volatile: bool, entries: &[u32]) -> Result<u32> {
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
    pub(crate) fn ri_leaves(&self, list: u32) -> Result<Option<Vec<u32>>> {
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
    pub(crate) fn find_leaf(&self, leaves: &[u32], name: &str) -> Result<usize> {
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

    pub(crate) fn build_ri(&mut self, volatile: bool, leaves: &[u32]) -> Result<u32> {
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
    pub(crate) fn list_insert(
        &mut self,
        volatile: bool,
        list: u32,
        key: u32,
        name: &str,
    ) -> Result<u32> {
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
    pub(crate) fn list_remove(
        &mut self,
        volatile: bool,
        list: u32,
        key: u32,
        name: &str,
    ) -> Result<u32> {
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
    pub(crate) fn search_list(
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
    pub(crate) fn cmp_key_name(&self, off: u32, want: &[u16]) -> Result<core::cmp::Ordering> {
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
}
