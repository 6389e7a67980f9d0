//! Key nodes (`nk`): parsing, creation, lookup by name, deletion, links, and key information.

use alloc::string::String;
use alloc::vec::Vec;

use crate::*;

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
pub(crate) const NK_FLAGS: usize = 2;
pub(crate) const NK_TIME: usize = 4;
pub(crate) const NK_PARENT: usize = 16;
pub(crate) const NK_SUBKEYS: usize = 20;
pub(crate) const NK_VSUBKEYS: usize = 24;
pub(crate) const NK_LIST: usize = 28;
pub(crate) const NK_VLIST: usize = 32;
pub(crate) const NK_NVALUES: usize = 36;
pub(crate) const NK_VALUES: usize = 40;
pub(crate) const NK_SK: usize = 44;
pub(crate) const NK_CLASS: usize = 48;
pub(crate) const NK_MAXNAME: usize = 52;
pub(crate) const NK_MAXCLASS: usize = 56;
pub(crate) const NK_MAXVNAME: usize = 60;
pub(crate) const NK_MAXVDATA: usize = 64;
pub(crate) const NK_NAMELEN: usize = 72;
pub(crate) const NK_CLASSLEN: usize = 74;
pub(crate) const NK_NAME: usize = 76;

impl Hive {
    // ---- nk ----

    /// The fixed fields of nk `off` (`name` left empty: see [`Hive::nk_named`]).
    pub(crate) fn nk(&self, off: u32) -> Result<Nk> {
        self.parse_nk(off, false)
    }

    /// The nk at `off` with its name decoded.
    pub(crate) fn nk_named(&self, off: u32) -> Result<Nk> {
        self.parse_nk(off, true)
    }

    fn parse_nk(&self, off: u32, named: bool) -> Result<Nk> {
        let d = self.cell(off)?;
        if d.get(0..2) != Some(b"nk") {
            return corrupt(off, "not an nk record");
        }
        let g = |o| rd32(d, o).unwrap_or(0);
        let nlen = rd16(d, NK_NAMELEN).unwrap_or(0) as usize;
        let flags = rd16(d, NK_FLAGS).unwrap_or(0);
        let name = match d.get(NK_NAME..NK_NAME + nlen) {
            Some(n) if named => try_decode_name(n, flags & KEY_COMP_NAME != 0)?,
            Some(_) => String::new(),
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

    /// [`Hive::nk`] for a key reached through a handle: a freed cell is `STATUS_KEY_DELETED`.
    pub(crate) fn nk_checked(&self, key: KeyRef) -> Result<Nk> {
        match self.nk(key) {
            Ok(n) => Ok(n),
            Err(Error::Corrupt { .. }) if self.cell(key).is_err() => {
                Err(Error::Status(STATUS_KEY_DELETED))
            }
            Err(e) => Err(e),
        }
    }

    fn nk_checked_named(&self, key: KeyRef) -> Result<Nk> {
        let n = self.nk_checked(key)?;
        self.nk_named(key).map(|full| Nk {
            name: full.name,
            ..n
        })
    }

    pub(crate) fn nk_flags(&self, off: u32) -> Result<u16> {
        Ok(self.nk(off)?.flags)
    }

    pub(crate) fn nk_mut_u32(&mut self, off: u32, field: usize, v: u32) -> Result<()> {
        wr32(self.cell_mut(off)?, field, v);
        Ok(())
    }

    pub(crate) fn nk_mut_u16(&mut self, off: u32, field: usize, v: u16) -> Result<()> {
        wr16(self.cell_mut(off)?, field, v);
        Ok(())
    }

    pub(crate) fn touch(&mut self, off: u32) -> Result<()> {
        let now = self.now;
        wr64(self.cell_mut(off)?, NK_TIME, now);
        Ok(())
    }

    pub(crate) fn alloc_nk(
        &mut self,
        volatile: bool,
        name: &str,
        parent: u32,
        sk: u32,
        class: Option<&str>,
    ) -> Result<u32> {
        let (nb, comp) = encode_name(name);
        let class_cell = match class {
            Some(cl) if !cl.is_empty() => {
                let mut v = utf16z(cl);
                v.truncate(v.len() - 2);
                Some((self.alloc_bytes(volatile, &v)?, v.len() as u16))
            }
            _ => None,
        };
        let c = match self.alloc(volatile, NK_NAME + nb.len()) {
            Ok(c) => c,
            Err(e) => {
                if let Some((cc, _)) = class_cell {
                    self.free(cc)?;
                }
                return Err(e);
            }
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

    /// Frees an nk that is in no list: its class, its security reference and the cell.
    fn free_nk_cells(&mut self, key: u32, nk: &Nk) -> Result<()> {
        if nk.class != NIL {
            self.free(nk.class)?;
        }
        if nk.sk != NIL {
            self.sk_ref(nk.sk, -1)?;
        }
        self.free(key)
    }

    /// (count, list) of the volatile subkeys of `key`.
    pub(crate) fn vol_subkeys(&self, key: KeyRef, nk: &Nk) -> (u32, u32) {
        if key & VOLATILE_BIT != 0 {
            (nk.vsubkeys, nk.vlist)
        } else {
            self.vol.get(&key).copied().unwrap_or((0, NIL))
        }
    }

    fn set_vol_subkeys(&mut self, key: KeyRef, count: u32, list: u32) -> Result<()> {
        if key & VOLATILE_BIT != 0 {
            self.nk_mut_u32(key, NK_VSUBKEYS, count)?;
            self.nk_mut_u32(key, NK_VLIST, list)
        } else {
            if count == 0 {
                self.vol.remove(&key);
            } else {
                self.vol.insert(key, (count, list));
            }
            Ok(())
        }
    }

    // ---- public key API ----

    /// Finds a direct subkey (stable, then volatile) by a prepared name; never allocates.
    pub fn find_subkey(&self, key: KeyRef, want: &NameKey) -> Result<Option<KeyRef>> {
        let (list, vlist) = match self.cell(key) {
            Ok(d) if d.get(0..2) == Some(b"nk") => {
                let list = rd32(d, NK_LIST).unwrap_or(NIL);
                let vlist = if key & VOLATILE_BIT != 0 {
                    rd32(d, NK_VLIST).unwrap_or(NIL)
                } else if self.vol.is_empty() {
                    NIL
                } else {
                    self.vol.get(&key).map_or(NIL, |v| v.1)
                };
                (list, vlist)
            }
            _ => {
                let nk = self.nk_checked(key)?;
                (nk.list, self.vol_subkeys(key, &nk).1)
            }
        };
        if let Some(k) = self.list_find(list, want)? {
            return Ok(Some(k));
        }
        self.list_find(vlist, want)
    }

    /// Opens a direct subkey by name (case-insensitive), stable or volatile.
    pub fn open_subkey(&self, key: KeyRef, name: &str) -> Result<KeyRef> {
        let want = NameKey::new(name).map_err(|_| Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))?;
        self.find_subkey(key, &want)?
            .ok_or(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
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
    /// When the hive cannot grow (`STATUS_INSUFFICIENT_RESOURCES`) nothing has changed.
    pub fn create_key_ex(
        &mut self,
        parent: KeyRef,
        name: &str,
        class: Option<&str>,
        volatile: bool,
    ) -> Result<(KeyRef, bool)> {
        let pnk = self.nk_checked(parent)?;
        let want = NameKey::new(name)?;
        if let Some(k) = self.find_subkey(parent, &want)? {
            return Ok((k, false));
        }
        if pnk.flags & KEY_IS_VOLATILE != 0 && !volatile {
            return Err(Error::Status(STATUS_CHILD_MUST_BE_VOLATILE));
        }
        // Security: inherit the parent's descriptor (shared in the same storage).
        let (sk, new_sk) = if (pnk.sk & VOLATILE_BIT != 0) == volatile {
            (pnk.sk, false)
        } else {
            let sd = self.key_security(parent)?;
            (self.alloc_sk(volatile, &sd)?, true)
        };
        let k = match self.alloc_nk(volatile, name, parent, sk, class) {
            Ok(k) => k,
            Err(e) => {
                if new_sk {
                    self.free(sk)?;
                }
                return Err(e);
            }
        };
        let (count, list) = if volatile {
            self.vol_subkeys(parent, &pnk)
        } else {
            (pnk.subkeys, pnk.list)
        };
        let pvol = parent & VOLATILE_BIT != 0;
        let nl = match self.list_insert(pvol || volatile, list, k, &want) {
            Ok(l) => l,
            Err(e) => {
                let nk = self.nk(k)?;
                self.free_nk_cells(k, &nk)?;
                return Err(e);
            }
        };
        if volatile {
            self.set_vol_subkeys(parent, count.saturating_add(1), nl)?;
        } else {
            self.nk_mut_u32(parent, NK_LIST, nl)?;
            self.nk_mut_u32(parent, NK_SUBKEYS, count.saturating_add(1))?;
        }
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
        let mut v = utf16z(target);
        v.truncate(v.len() - 2);
        if let Err(e) = self.set_value(k, SYMBOLIC_LINK_VALUE, REG_LINK, &v) {
            self.delete_key(k)?;
            return Err(e);
        }
        let f = self.nk(k)?.flags | KEY_SYM_LINK;
        self.nk_mut_u16(k, NK_FLAGS, f)?;
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

    /// Sets nk flags of a key (`KEY_NO_DELETE`, `KEY_HIVE_EXIT`, `KEY_IS_VOLATILE` on the root of
    /// a hive that lives only in memory, ...); other flags are left as they are.
    pub fn set_key_flags(&mut self, key: KeyRef, flags: u16) -> Result<()> {
        let f = self.nk_checked(key)?.flags | flags;
        self.nk_mut_u16(key, NK_FLAGS, f)
    }

    /// Deletes a key (`NtDeleteKey`). A key with subkeys, or the root / a KEY_NO_DELETE key,
    /// gives `STATUS_CANNOT_DELETE`. Deleting never allocates: subkey and value lists are edited
    /// in place.
    pub fn delete_key(&mut self, key: KeyRef) -> Result<()> {
        let nk = self.nk_checked_named(key)?;
        if key == self.root || nk.flags & (KEY_NO_DELETE | KEY_HIVE_ENTRY) != 0 {
            return Err(Error::Status(STATUS_CANNOT_DELETE));
        }
        if nk.subkeys != 0 || self.vol_subkeys(key, &nk).0 != 0 {
            return Err(Error::Status(STATUS_CANNOT_DELETE));
        }
        let want = NameKey::new(&nk.name).map_err(|_| Error::Corrupt {
            offset: key,
            what: "key name is not a valid name".into(),
        })?;
        let parent = nk.parent;
        let pnk = self.nk(parent)?;
        let volatile = key & VOLATILE_BIT != 0;
        let (count, list) = if volatile {
            self.vol_subkeys(parent, &pnk)
        } else {
            (pnk.subkeys, pnk.list)
        };
        let nl = self.list_remove(list, key, &want)?;
        if volatile {
            self.set_vol_subkeys(parent, count.saturating_sub(1), nl)?;
        } else {
            self.nk_mut_u32(parent, NK_LIST, nl)?;
            self.nk_mut_u32(parent, NK_SUBKEYS, count.saturating_sub(1))?;
        }
        // Values, class, security, then the nk itself.
        for i in 0..nk.nvalues as usize {
            let v = rd32(self.cell(nk.values)?, i * 4).unwrap_or(NIL);
            self.free_value(v)?;
        }
        if nk.values != NIL && nk.nvalues != 0 {
            self.free(nk.values)?;
        }
        self.free_nk_cells(key, &nk)?;
        self.vol.remove(&key);
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

    pub(crate) fn recompute_max_names(&mut self, key: KeyRef) -> Result<()> {
        let mut mn = 0;
        let mut mc = 0;
        for s in self.enum_subkeys(key)? {
            let n = self.nk_named(s)?;
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
        e.extend(self.list_entries(self.vol_subkeys(key, &nk).1)?);
        Ok(e)
    }

    /// The `index`th subkey in `NtEnumerateKey` order (stable keys by name, then volatile keys
    /// by name), without building the list.
    pub fn subkey_at(&self, key: KeyRef, index: usize) -> Result<Option<KeyRef>> {
        let nk = self.nk_checked(key)?;
        let stable = self.list_count(nk.list)?;
        if index < stable {
            return self.list_nth(nk.list, index);
        }
        self.list_nth(self.vol_subkeys(key, &nk).1, index - stable)
    }

    /// A key's name.
    pub fn key_name(&self, key: KeyRef) -> Result<String> {
        Ok(self.nk_checked_named(key)?.name)
    }

    /// A key's class name, if any.
    pub fn key_class(&self, key: KeyRef) -> Result<Option<String>> {
        let nk = self.nk_checked(key)?;
        if nk.class == NIL || nk.class_len == 0 {
            return Ok(None);
        }
        let d = self.cell(nk.class)?;
        match d.get(..nk.class_len as usize) {
            Some(b) => Ok(Some(try_decode_name(b, false)?)),
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

    /// A key's nk flags (KEY_*), read without parsing the rest of the nk.
    pub fn key_flags(&self, key: KeyRef) -> Result<u16> {
        match self.cell(key) {
            Ok(d) if d.get(0..2) == Some(b"nk") => Ok(rd16(d, NK_FLAGS).unwrap_or(0)),
            _ => Ok(self.nk_checked(key)?.flags),
        }
    }

    /// Counts and sizes of a key (`KEY_FULL_INFORMATION` essentials).
    pub fn key_info(&self, key: KeyRef) -> Result<KeyInfo> {
        let n = self.nk_checked(key)?;
        let (vcount, _) = self.vol_subkeys(key, &n);
        Ok(KeyInfo {
            flags: n.flags,
            last_write: n.last_write,
            subkeys: n.subkeys,
            volatile_subkeys: vcount,
            values: n.nvalues,
            max_name: n.max_name & 0xFFFF,
            max_class: n.max_class,
            max_value_name: n.max_vname,
            max_value_data: n.max_vdata,
            security: n.sk,
        })
    }

    /// The full path of a key below the root (components joined by `\`, "" for the root).
    pub fn key_path(&self, key: KeyRef) -> Result<String> {
        let mut parts = Vec::new();
        let mut k = key;
        let mut guard = 0;
        while k != self.root {
            let nk = self.nk_checked_named(k)?;
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
}

/// What [`Hive::key_info`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// nk flags (`KEY_*`).
    pub flags: u16,
    /// Last write time (FILETIME).
    pub last_write: u64,
    /// Stable subkeys.
    pub subkeys: u32,
    /// Volatile subkeys.
    pub volatile_subkeys: u32,
    /// Values.
    pub values: u32,
    /// Longest subkey name (UTF-16 bytes).
    pub max_name: u32,
    /// Longest subkey class (UTF-16 bytes).
    pub max_class: u32,
    /// Longest value name (UTF-16 bytes).
    pub max_value_name: u32,
    /// Largest value data (bytes).
    pub max_value_data: u32,
    /// The key's security cell (`sk`).
    pub security: u32,
}
