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

    pub(crate) fn nk_checked(&self, key: KeyRef) -> Result<Nk> {
        match self.nk(key) {
            Ok(n) => Ok(n),
            Err(Error::Corrupt { .. }) if self.cell(key).is_err() => {
                Err(Error::Status(STATUS_KEY_DELETED))
            }
            Err(e) => Err(e),
        }
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

    pub(crate) fn recompute_max_names(&mut self, key: KeyRef) -> Result<()> {
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
}
