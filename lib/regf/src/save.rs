//! Saving a key's subtree as a new hive, and restoring one over a key, (`CmSaveKey`, behind `NtSaveKey` / `NtSaveKeyEx`;
//! *Windows Internals* 7th ed., Part 2, ch. 10, "Registry internals"): the key and its stable
//! descendants — names, classes, values, security descriptors, last write times, symbolic link
//! flags — copied into a fresh hive whose root is the saved key. The copy holds no deleted keys
//! or values and no volatile keys (NT's save leaves volatile keys out).
//!
//! Formats (`RegSaveKeyEx`'s flags): `REG_STANDARD_FORMAT` writes the format Windows 2000 reads,
//! hive version 1.3 — `lf` leaves (name hints) and no big data records; `REG_LATEST_FORMAT`
//! writes version 1.5 — `lh` leaves (name hashes) and `db` records for data over 16,344 bytes
//! (libyal's REGF document gives which version introduced which record).

use alloc::vec::Vec;

use crate::*;

/// `REG_STANDARD_FORMAT`: the format Windows 2000 reads (hive version 1.3).
pub const REG_STANDARD_FORMAT: u32 = 1;
/// `REG_LATEST_FORMAT`: the latest format (hive version 1.5 in ntrs).
pub const REG_LATEST_FORMAT: u32 = 2;
/// `REG_NO_COMPRESSION`: save a hive root as it is, without compacting (not supported).
pub const REG_NO_COMPRESSION: u32 = 4;

/// nk flags a saved key keeps (the rest describe where the key is, not what it is).
const COPIED_FLAGS: u16 = KEY_SYM_LINK;

impl Hive {
    /// Builds a new hive holding `key` and its stable subtree (`CmSaveKey`). The new hive's
    /// root is named as `key`; volatile subkeys are left out. `format` is
    /// [`REG_STANDARD_FORMAT`] or [`REG_LATEST_FORMAT`]; anything else is
    /// `STATUS_INVALID_PARAMETER` (`REG_NO_COMPRESSION` included: ntrs always compacts).
    pub fn save_subtree(&self, key: KeyRef, format: u32) -> Result<Hive> {
        let minor = match format {
            REG_STANDARD_FORMAT => 3,
            REG_LATEST_FORMAT => 5,
            _ => return Err(Error::Status(STATUS_INVALID_PARAMETER)),
        };
        let name = self.key_name(key)?;
        let mut out = Hive::new_empty(&name)?;
        out.base.minor = minor;
        out.now = self.now;
        let root = out.root;
        self.copy_tree(key, &mut out, root)?;
        if minor < 5 {
            out.leaves_to_lf()?;
        }
        out.base.timestamp = self.now;
        out.stable.mark_all_dirty();
        Ok(out)
    }

    /// Copies `key`'s values, descriptor, link flag and stable subtree (names, classes, values,
    /// descriptors, last write times) into `out` below `dst`, which becomes the copy of `key`.
    fn copy_tree(&self, key: KeyRef, out: &mut Hive, dst: KeyRef) -> Result<()> {
        // (source, copy) of every key, parents first.
        let mut pairs: Vec<(KeyRef, KeyRef)> = Vec::new();
        let mut stack = alloc::vec![(key, dst)];
        while let Some((src, dst)) = stack.pop() {
            pairs
                .try_reserve(1)
                .map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
            pairs.push((src, dst));
            out.set_key_security(dst, &self.key_security(src)?)?;
            for v in self.enum_values(src)? {
                out.set_value(dst, &v.name, v.ty, &v.data)?;
            }
            let flags = self.key_flags(src)? & COPIED_FLAGS;
            if flags != 0 {
                out.set_key_flags(dst, flags)?;
            }
            // Stable subkeys only: the volatile ones are not copied.
            let nk = self.nk_checked(src)?;
            for child in self.list_entries(nk.list)? {
                let cname = self.key_name(child)?;
                let class = self.key_class(child)?;
                let (c, _) = out.create_key_ex(dst, &cname, class.as_deref(), false)?;
                stack.push((child, c));
            }
        }
        // Last write times last: creating children and values touched their parents.
        for &(src, dst) in &pairs {
            let t = self.key_last_write(src)?;
            wr64(out.cell_mut(dst)?, NK_TIME, t);
        }
        Ok(())
    }

    /// `NtRestoreKey` (`CmRestoreKey`): replaces the values and subkeys of `key` (stable and
    /// volatile) with those of `source`'s root — its values, descriptor and subtree. `key`
    /// keeps its name and its place. The change is made on a copy of the hive, so on an error
    /// (`STATUS_INSUFFICIENT_RESOURCES` when the hive cannot grow) the hive is unchanged.
    pub fn restore_subtree(&mut self, key: KeyRef, source: &Hive) -> Result<()> {
        if key & VOLATILE_BIT != 0 {
            // A volatile key cannot hold the stable keys of a hive file.
            return Err(Error::Status(STATUS_CHILD_MUST_BE_VOLATILE));
        }
        let mut work = self.clone();
        for s in work.enum_subkeys(key)? {
            work.delete_tree(s)?;
        }
        for v in work.enum_values(key)? {
            work.delete_value(key, &v.name)?;
        }
        source.copy_tree(source.root, &mut work, key)?;
        work.touch(key)?;
        *self = work;
        Ok(())
    }

    /// The file image of [`Hive::save_subtree`]: base block (sequence numbers 1) and hive bins.
    pub fn save_subtree_bytes(&self, key: KeyRef, format: u32) -> Result<Vec<u8>> {
        let h = self.save_subtree(key, format)?;
        let mut out = h.base_block(1, 1, 0);
        let bins = h.try_stable_image()?;
        out.try_reserve_exact(bins.len())
            .map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
        out.extend_from_slice(&bins);
        Ok(out)
    }

    /// Rewrites every `lh` leaf of the stable storage as an `lf` leaf (version 1.3 and
    /// earlier): the hash of each entry becomes the name hint, the first four characters of the
    /// key's name as stored (one byte each, zero-padded).
    fn leaves_to_lf(&mut self) -> Result<()> {
        let mut leaves = Vec::new();
        let mut stack = alloc::vec![self.root];
        while let Some(k) = stack.pop() {
            let list = self.nk_checked(k)?.list;
            if list == NIL {
                continue;
            }
            let (sig, n, _) = self.list_header(list)?;
            if sig == *b"ri" {
                let d = self.cell(list)?;
                for i in 0..n {
                    leaves.push(rd32(d, 4 + i * 4).unwrap_or(NIL));
                }
            } else {
                leaves.push(list);
            }
            stack.extend(self.list_entries(list)?);
        }
        for leaf in leaves {
            let (sig, n, _) = self.list_header(leaf)?;
            if sig != *b"lh" {
                continue;
            }
            let mut hints = Vec::new();
            hints
                .try_reserve_exact(n)
                .map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
            {
                let d = self.cell(leaf)?;
                for i in 0..n {
                    let e = rd32(d, 4 + i * 8).unwrap_or(NIL);
                    let name = self.key_name(e)?;
                    let mut hint = [0u8; 4];
                    for (h, c) in hint.iter_mut().zip(name.chars()) {
                        *h = c as u32 as u8;
                    }
                    hints.push(u32::from_le_bytes(hint));
                }
            }
            let d = self.cell_mut(leaf)?;
            d[0..2].copy_from_slice(b"lf");
            for (i, h) in hints.iter().enumerate() {
                wr32(d, 8 + i * 8, *h);
            }
        }
        Ok(())
    }
}
