//! Subkey lists (`lf`, `lh`, `li`, `ri`) and name hashing: sorted leaves of at most
//! [`MAX_LEAF`] entries, an `ri` index above that, case-insensitive ordering by upper-cased UTF-16.
//!
//! Lookups never allocate: a wanted name is prepared once as a [`NameKey`] (UTF-16 length and
//! `lh` hash); an `ri` index is binary-searched for the leaf (by each leaf's last name); an `lh`
//! leaf is scanned for the name's hash and only entries with an equal hash are compared by name
//! (`lf` / `li` leaves, which have no hashes, are binary-searched by name).
//!
//! Leaves are edited in place as NT edits them: an insert shifts the entries of its leaf when
//! the leaf's cell has room (otherwise the leaf moves to a cell twice as large); a full leaf
//! splits in two; a removal shifts entries and frees a leaf that becomes empty. Every cell an
//! edit needs is allocated before anything changes, so a failed allocation leaves the list as
//! it was.

use alloc::vec::Vec;
use core::cmp::Ordering;

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

/// Longest key name, in UTF-16 units.
pub const MAX_KEY_NAME: usize = 255;

/// A key name prepared for lookups: the name with its UTF-16 length and `lh` hash, computed
/// once; comparisons upper-case its units on the fly (no buffer, no allocation), byte by byte
/// for the common all-ASCII name.
#[derive(Clone, Copy, Debug)]
pub struct NameKey<'a> {
    name: &'a str,
    len: usize,
    hash: u32,
    fold: u32,
    ascii: bool,
}

/// One step of [`NameKey::fold_hash`] over a UTF-16 unit: ASCII letters fold to lower case by
/// setting bit 5 (cheap, and equal for both cases), other units are upper-cased.
#[inline]
pub fn fold_step(h: u32, u: u16) -> u32 {
    let f = if u < 0x80 { u | 0x20 } else { upcase_unit(u) };
    h.wrapping_mul(31).wrapping_add(f as u32)
}

const fn ascii_upper(c: u8) -> u8 {
    if c.is_ascii_lowercase() {
        c - 32
    } else {
        c
    }
}

impl<'a> NameKey<'a> {
    /// Prepares `name`; `STATUS_OBJECT_NAME_INVALID` when it is empty, longer than 255 UTF-16
    /// units or contains a backslash.
    pub fn new(name: &'a str) -> Result<NameKey<'a>> {
        let mut hash = 0u32;
        let mut fold = 0u32;
        let mut ascii = true;
        for &b in name.as_bytes() {
            if b >= 0x80 {
                ascii = false;
                break;
            }
            if b == b'\\' {
                return Err(Error::Status(STATUS_OBJECT_NAME_INVALID));
            }
            hash = hash.wrapping_mul(37).wrapping_add(ascii_upper(b) as u32);
            fold = fold_step(fold, b as u16);
        }
        let len = if ascii {
            name.len()
        } else {
            hash = 0;
            fold = 0;
            let mut len = 0usize;
            for u in name.encode_utf16() {
                if u == b'\\' as u16 {
                    return Err(Error::Status(STATUS_OBJECT_NAME_INVALID));
                }
                hash = hash.wrapping_mul(37).wrapping_add(upcase_unit(u) as u32);
                fold = fold_step(fold, u);
                len += 1;
            }
            len
        };
        if len == 0 || len > MAX_KEY_NAME {
            return Err(Error::Status(STATUS_OBJECT_NAME_INVALID));
        }
        Ok(NameKey {
            name,
            len,
            hash,
            fold,
            ascii,
        })
    }

    /// The upper-cased UTF-16 units.
    pub fn units(&self) -> impl Iterator<Item = u16> + 'a {
        self.name.encode_utf16().map(upcase_unit)
    }

    /// The number of UTF-16 units.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a `NameKey` is not empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `lh` hash.
    pub fn hash(&self) -> u32 {
        self.hash
    }

    /// A case-insensitive hash that is cheaper than the `lh` hash to compute over a whole path
    /// ([`fold_step`] over the units); the KCB cache keys paths by it.
    pub fn fold_hash(&self) -> u32 {
        self.fold
    }

    /// Whether `units` (upper-cased UTF-16) is this name.
    pub fn matches(&self, units: &[u16]) -> bool {
        if units.len() != self.len {
            return false;
        }
        if self.ascii {
            units
                .iter()
                .zip(self.name.as_bytes())
                .all(|(&u, &c)| u == ascii_upper(c) as u16)
        } else {
            units.iter().copied().eq(self.units())
        }
    }

    /// Compares a compressed (one Latin-1 byte per character) stored name with this one,
    /// both upper-cased.
    pub(crate) fn cmp_compressed(&self, stored: &[u8]) -> Ordering {
        if self.ascii {
            let want = self.name.as_bytes();
            let n = stored.len().min(want.len());
            let (stored_n, want_n) = (&stored[..n], &want[..n]);
            for i in 0..n {
                let (s, w) = (stored_n[i], want_n[i]);
                if s == w {
                    continue;
                }
                let su = if s < 0x80 {
                    ascii_upper(s) as u16
                } else {
                    upcase_unit(s as u16)
                };
                let wu = ascii_upper(w) as u16;
                if su != wu {
                    return su.cmp(&wu);
                }
            }
            stored.len().cmp(&want.len())
        } else {
            stored
                .iter()
                .map(|&b| upcase_unit(b as u16))
                .cmp(self.units())
        }
    }
}

/// The upper-cased UTF-16 units of a name stored in an nk or vk record (compressed: one Latin-1
/// byte per character; else UTF-16LE, decoded as [`decode_name`] does).
pub(crate) fn stored_name_units(raw: &[u8], compressed: bool) -> impl Iterator<Item = u16> + '_ {
    let (narrow, wide) = if compressed {
        (raw, &[][..])
    } else {
        (&[][..], raw)
    };
    let wide = char::decode_utf16(
        wide.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]])),
    )
    .flat_map(|r| {
        let mut b = [0u16; 2];
        let n = r.unwrap_or('\u{FFFD}').encode_utf16(&mut b).len();
        b.into_iter().take(n)
    });
    narrow
        .iter()
        .map(|&b| b as u16)
        .chain(wide)
        .map(upcase_unit)
}

/// Where an insert went.
enum LeafInsert {
    /// The leaf was edited in place.
    InPlace,
    /// The leaf moved to this (larger) cell; the old one is still allocated.
    Moved(u32),
    /// The leaf split into these two new cells; the old one is still allocated.
    Split(u32, u32),
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
        let (sig, n, stride) = self.list_header(list)?;
        let d = self.cell(list)?;
        for i in 0..n {
            let e = rd32(d, 4 + i * stride).unwrap_or(NIL);
            if sig == *b"ri" {
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

    /// (signature, entry count, entry stride) of a subkey list, checked against its cell.
    pub(crate) fn list_header(&self, list: u32) -> Result<([u8; 2], usize, usize)> {
        Self::header_of(list, self.cell(list)?)
    }

    /// [`Hive::list_header`] of the list cell `d` (at `list`).
    fn header_of(list: u32, d: &[u8]) -> Result<([u8; 2], usize, usize)> {
        let sig = [d[0], d[1]];
        let n = rd16(d, 2).unwrap_or(0) as usize;
        let stride = match &sig {
            b"lf" | b"lh" => 8,
            b"li" | b"ri" => 4,
            _ => return corrupt(list, "not a subkey list (lf/lh/li/ri)"),
        };
        if 4 + n * stride > d.len() {
            return corrupt(list, alloc::format!("{} entries overrun the cell", n));
        }
        Ok((sig, n, stride))
    }

    /// The number of keys in a subkey list.
    pub(crate) fn list_count(&self, list: u32) -> Result<usize> {
        if list == NIL {
            return Ok(0);
        }
        let (sig, n, _) = self.list_header(list)?;
        if sig != *b"ri" {
            return Ok(n);
        }
        let d = self.cell(list)?;
        let mut total = 0;
        for i in 0..n {
            let leaf = rd32(d, 4 + i * 4).unwrap_or(NIL);
            let (lsig, ln, _) = self.list_header(leaf)?;
            if lsig == *b"ri" {
                return corrupt(list, "nested ri list");
            }
            total += ln;
        }
        Ok(total)
    }

    /// The `index`th key of a subkey list, if there is one.
    pub(crate) fn list_nth(&self, list: u32, mut index: usize) -> Result<Option<u32>> {
        if list == NIL {
            return Ok(None);
        }
        let (sig, n, stride) = self.list_header(list)?;
        let d = self.cell(list)?;
        if sig != *b"ri" {
            return Ok((index < n).then(|| rd32(d, 4 + index * stride).unwrap_or(NIL)));
        }
        for i in 0..n {
            let leaf = rd32(d, 4 + i * 4).unwrap_or(NIL);
            let (lsig, ln, ls) = self.list_header(leaf)?;
            if lsig == *b"ri" {
                return corrupt(list, "nested ri list");
            }
            if index < ln {
                return Ok(rd32(self.cell(leaf)?, 4 + index * ls));
            }
            index -= ln;
        }
        Ok(None)
    }

    /// Compares the upper-cased name of nk `off` with `want` without allocating.
    pub(crate) fn cmp_key_name(&self, off: u32, want: &NameKey) -> Result<Ordering> {
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
            Ok(want.cmp_compressed(name))
        } else {
            Ok(stored_name_units(name, false).cmp(want.units()))
        }
    }

    /// Binary search of a leaf (lf, lh or li) for `want` by name: `Ok(index)` of the key, or
    /// `Err(insertion index)`.
    pub(crate) fn leaf_search(
        &self,
        leaf: u32,
        want: &NameKey,
    ) -> Result<core::result::Result<usize, usize>> {
        let (sig, n, stride) = self.list_header(leaf)?;
        if sig == *b"ri" {
            return corrupt(leaf, "nested ri list");
        }
        let d = self.cell(leaf)?;
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let e = rd32(d, 4 + mid * stride).unwrap_or(NIL);
            match self.cmp_key_name(e, want)? {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(Ok(mid)),
            }
        }
        Ok(Err(lo))
    }

    /// Finds `want` in a leaf (`CmpFindSubKeyInLeaf`): an `lh` leaf is scanned for the name's
    /// hash and only entries with that hash are compared by name; `lf` / `li` leaves, which have
    /// no hashes, are binary-searched by name.
    pub(crate) fn leaf_find(&self, leaf: u32, want: &NameKey) -> Result<Option<u32>> {
        let d = self.cell(leaf)?;
        let (sig, n, stride) = Self::header_of(leaf, d)?;
        if sig == *b"lh" {
            let entries = &d[4..4 + n * 8];
            for e in entries.chunks_exact(8) {
                if u32::from_le_bytes([e[4], e[5], e[6], e[7]]) == want.hash() {
                    let k = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                    if self.cmp_key_name(k, want)? == Ordering::Equal {
                        return Ok(Some(k));
                    }
                }
            }
            return Ok(None);
        }
        Ok(match self.leaf_search(leaf, want)? {
            Ok(i) => rd32(d, 4 + i * stride),
            Err(_) => None,
        })
    }

    /// In an `ri` list: the index of the first leaf whose last name sorts at or after `want`
    /// (else the last leaf).
    fn ri_find_leaf(&self, ri: u32, want: &NameKey) -> Result<usize> {
        let (_, n, _) = self.list_header(ri)?;
        if n == 0 {
            return corrupt(ri, "empty ri list");
        }
        let d = self.cell(ri)?;
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let leaf = rd32(d, 4 + mid * 4).unwrap_or(NIL);
            let l = self.cell(leaf)?;
            let stride = match l.get(0..2) {
                Some(b"lf") | Some(b"lh") => 8,
                Some(b"li") => 4,
                _ => return corrupt(leaf, "not a subkey leaf in an ri list"),
            };
            let ln = rd16(l, 2).unwrap_or(0) as usize;
            let last = match ln.checked_sub(1).and_then(|i| rd32(l, 4 + i * stride)) {
                Some(k) if 4 + ln * stride <= l.len() => k,
                _ => return corrupt(leaf, "empty or short leaf in an ri list"),
            };
            if self.cmp_key_name(last, want)? != Ordering::Less {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo.min(n - 1))
    }

    /// Finds a key by name in a subkey list (case-insensitive).
    pub(crate) fn list_find(&self, list: u32, want: &NameKey) -> Result<Option<u32>> {
        if list == NIL {
            return Ok(None);
        }
        let d = self.cell(list)?;
        let leaf = if d[0..2] == *b"ri" {
            let i = self.ri_find_leaf(list, want)?;
            rd32(d, 4 + i * 4).unwrap_or(NIL)
        } else {
            list
        };
        self.leaf_find(leaf, want)
    }

    /// A new `lh` leaf with room for `capacity` entries holding `entries` (nk, hash).
    fn new_leaf(&mut self, volatile: bool, entries: &[(u32, u32)], capacity: usize) -> Result<u32> {
        let c = self.alloc(volatile, 4 + 8 * capacity.max(entries.len()))?;
        let d = self.cell_mut(c)?;
        d[0..2].copy_from_slice(b"lh");
        wr16(d, 2, entries.len() as u16);
        for (i, &(e, h)) in entries.iter().enumerate() {
            wr32(d, 4 + i * 8, e);
            wr32(d, 8 + i * 8, h);
        }
        Ok(c)
    }

    /// The (nk, hash) entries of a leaf; hashes are computed for `lf` and `li` leaves.
    fn leaf_pairs(&self, leaf: u32) -> Result<Vec<(u32, u32)>> {
        let (sig, n, stride) = self.list_header(leaf)?;
        let d = self.cell(leaf)?;
        let mut v = Vec::new();
        v.try_reserve_exact(n + 1)
            .map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
        for i in 0..n {
            let e = rd32(d, 4 + i * stride).unwrap_or(NIL);
            let h = if sig == *b"lh" {
                rd32(d, 8 + i * stride).unwrap_or(0)
            } else {
                lh_hash(&self.nk_named(e)?.name)
            };
            v.push((e, h));
        }
        Ok(v)
    }

    /// A new `ri` index over `leaves` with room for `capacity`.
    fn new_ri(&mut self, volatile: bool, leaves: &[u32], capacity: usize) -> Result<u32> {
        let c = self.alloc(volatile, 4 + 4 * capacity.max(leaves.len()))?;
        let d = self.cell_mut(c)?;
        d[0..2].copy_from_slice(b"ri");
        wr16(d, 2, leaves.len() as u16);
        for (i, l) in leaves.iter().enumerate() {
            wr32(d, 4 + i * 4, *l);
        }
        Ok(c)
    }

    /// Inserts (nk, hash) into leaf `leaf`, in place when its cell has room. Nothing changes on
    /// an error.
    fn leaf_insert(
        &mut self,
        volatile: bool,
        leaf: u32,
        key: u32,
        want: &NameKey,
    ) -> Result<LeafInsert> {
        let pos = match self.leaf_search(leaf, want)? {
            Ok(_) => return Err(Error::Status(STATUS_OBJECT_NAME_COLLISION)),
            Err(p) => p,
        };
        let (sig, n, _) = self.list_header(leaf)?;
        let cap = (self.cell(leaf)?.len() - 4) / 8;
        if sig == *b"lh" && n < cap && n < MAX_LEAF {
            let d = self.cell_mut(leaf)?;
            d.copy_within(4 + pos * 8..4 + n * 8, 4 + (pos + 1) * 8);
            wr32(d, 4 + pos * 8, key);
            wr32(d, 8 + pos * 8, want.hash());
            wr16(d, 2, n as u16 + 1);
            return Ok(LeafInsert::InPlace);
        }
        let mut e = self.leaf_pairs(leaf)?;
        e.insert(pos, (key, want.hash()));
        if e.len() <= MAX_LEAF {
            let cap = (2 * e.len()).clamp(4, MAX_LEAF);
            return Ok(LeafInsert::Moved(self.new_leaf(volatile, &e, cap)?));
        }
        let half = e.len() / 2;
        let a = self.new_leaf(volatile, &e[..half], half + 1)?;
        match self.new_leaf(volatile, &e[half..], e.len() - half + 1) {
            Ok(b) => Ok(LeafInsert::Split(a, b)),
            Err(err) => {
                self.free(a)?;
                Err(err)
            }
        }
    }

    /// Frees the cells of a failed edit (best effort: they were just allocated).
    fn undo_cells(&mut self, cells: &[u32]) {
        for &c in cells {
            let _ = self.free(c);
        }
    }

    /// Inserts nk `key` (named `want`) into a sorted subkey list; returns the list's offset
    /// (unchanged unless a new list cell replaced it). On an error nothing has changed.
    pub(crate) fn list_insert(
        &mut self,
        volatile: bool,
        list: u32,
        key: u32,
        want: &NameKey,
    ) -> Result<u32> {
        if list == NIL {
            return self.new_leaf(volatile, &[(key, want.hash())], 4);
        }
        let (sig, n, _) = self.list_header(list)?;
        if sig != *b"ri" {
            return match self.leaf_insert(volatile, list, key, want)? {
                LeafInsert::InPlace => Ok(list),
                LeafInsert::Moved(new) => {
                    self.free(list)?;
                    Ok(new)
                }
                LeafInsert::Split(a, b) => match self.new_ri(volatile, &[a, b], 4) {
                    Ok(ri) => {
                        self.free(list)?;
                        Ok(ri)
                    }
                    Err(e) => {
                        self.undo_cells(&[a, b]);
                        Err(e)
                    }
                },
            };
        }
        let li = self.ri_find_leaf(list, want)?;
        let leaf = rd32(self.cell(list)?, 4 + li * 4).unwrap_or(NIL);
        match self.leaf_insert(volatile, leaf, key, want)? {
            LeafInsert::InPlace => Ok(list),
            LeafInsert::Moved(new) => {
                wr32(self.cell_mut(list)?, 4 + li * 4, new);
                self.free(leaf)?;
                Ok(list)
            }
            LeafInsert::Split(a, b) => {
                let cap = (self.cell(list)?.len() - 4) / 4;
                if n < cap && n < u16::MAX as usize {
                    let d = self.cell_mut(list)?;
                    d.copy_within(4 + (li + 1) * 4..4 + n * 4, 4 + (li + 2) * 4);
                    wr32(d, 4 + li * 4, a);
                    wr32(d, 4 + (li + 1) * 4, b);
                    wr16(d, 2, n as u16 + 1);
                    self.free(leaf)?;
                    return Ok(list);
                }
                if n + 1 > u16::MAX as usize {
                    self.undo_cells(&[a, b]);
                    return Err(Error::Status(STATUS_INSUFFICIENT_RESOURCES));
                }
                let mut leaves = Vec::new();
                if leaves.try_reserve_exact(n + 1).is_err() {
                    self.undo_cells(&[a, b]);
                    return Err(Error::Status(STATUS_INSUFFICIENT_RESOURCES));
                }
                let d = self.cell(list)?;
                leaves.extend((0..n).filter_map(|i| rd32(d, 4 + i * 4)));
                leaves.splice(li..li + 1, [a, b]);
                match self.new_ri(volatile, &leaves, 2 * leaves.len()) {
                    Ok(ri) => {
                        self.free(leaf)?;
                        self.free(list)?;
                        Ok(ri)
                    }
                    Err(e) => {
                        self.undo_cells(&[a, b]);
                        Err(e)
                    }
                }
            }
        }
    }

    /// Removes entry `i` of a leaf or index in place (no allocation); returns the entries left.
    fn remove_entry(&mut self, list: u32, i: usize) -> Result<usize> {
        let (_, n, stride) = self.list_header(list)?;
        let d = self.cell_mut(list)?;
        d.copy_within(4 + (i + 1) * stride..4 + n * stride, 4 + i * stride);
        wr16(d, 2, n as u16 - 1);
        Ok(n - 1)
    }

    /// Position of nk `key` in a leaf.
    fn leaf_position(&self, leaf: u32, key: u32) -> Result<Option<usize>> {
        let (_, n, stride) = self.list_header(leaf)?;
        let d = self.cell(leaf)?;
        Ok((0..n).find(|&i| rd32(d, 4 + i * stride) == Some(key)))
    }

    /// Removes nk `key` (named `want`) from a subkey list in place, freeing a leaf or index that
    /// becomes empty; returns the list's offset (`NIL` once empty). Never allocates.
    pub(crate) fn list_remove(&mut self, list: u32, key: u32, want: &NameKey) -> Result<u32> {
        if list == NIL {
            return corrupt(key, "key missing from its parent's subkey list");
        }
        let (sig, n, _) = self.list_header(list)?;
        if sig != *b"ri" {
            let Some(pos) = self.leaf_position(list, key)? else {
                return corrupt(list, "key missing from its parent's subkey list");
            };
            if self.remove_entry(list, pos)? == 0 {
                self.free(list)?;
                return Ok(NIL);
            }
            return Ok(list);
        }
        let first = self.ri_find_leaf(list, want)?;
        for li in (first..n).chain(0..first) {
            let leaf = rd32(self.cell(list)?, 4 + li * 4).unwrap_or(NIL);
            if let Some(pos) = self.leaf_position(leaf, key)? {
                if self.remove_entry(leaf, pos)? == 0 {
                    self.free(leaf)?;
                    if self.remove_entry(list, li)? == 0 {
                        self.free(list)?;
                        return Ok(NIL);
                    }
                }
                return Ok(list);
            }
        }
        corrupt(list, "key missing from its parent's subkey list")
    }
}
