//! Values (`vk`), value lists and value data (inline, cell, `db` big data).
//!
//! A value is found by comparing the wanted name with each vk's stored name in place (no
//! allocation). The value list is edited in place: a new value goes into a free slot of the list
//! cell, or the list moves to a cell twice as large; a deleted value's slot is closed up. Every
//! cell a change needs is allocated before anything changes, so a hive that cannot grow fails the
//! change with `STATUS_INSUFFICIENT_RESOURCES` and is left as it was.

use alloc::string::String;
use alloc::vec::Vec;

use crate::*;

/// Parsed vk record.
#[derive(Clone, Debug)]
pub(crate) struct Vk {
    pub name: String,
    pub size: u32,
    pub data: u32,
    pub ty: u32,
}

fn no_memory<T>(_: T) -> Error {
    Error::Status(STATUS_INSUFFICIENT_RESOURCES)
}

/// UTF-16 byte length of a stored vk name.
fn stored_name_len(nlen: usize, compressed: bool) -> u32 {
    if compressed {
        nlen as u32 * 2
    } else {
        nlen as u32
    }
}

impl Hive {
    // ---- values ----

    /// The value list of a key as (list cell, count), checked against the cell size.
    fn value_list(&self, key: KeyRef) -> Result<(u32, usize)> {
        let (n, values) = match self.cell(key) {
            Ok(d) if d.get(0..2) == Some(b"nk") => (
                rd32(d, NK_NVALUES).unwrap_or(0) as usize,
                rd32(d, NK_VALUES).unwrap_or(NIL),
            ),
            _ => {
                let nk = self.nk_checked(key)?;
                (nk.nvalues as usize, nk.values)
            }
        };
        if n == 0 {
            return Ok((values, 0));
        }
        let d = self.cell(values)?;
        if n.saturating_mul(4) > d.len() {
            return corrupt(
                values,
                alloc::format!("value list too small for {} values", n),
            );
        }
        Ok((values, n))
    }

    pub(crate) fn value_offsets(&self, key: KeyRef) -> Result<Vec<u32>> {
        let (list, n) = self.value_list(key)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let d = self.cell(list)?;
        Ok((0..n).filter_map(|i| rd32(d, i * 4)).collect())
    }

    pub(crate) fn vk(&self, off: u32) -> Result<Vk> {
        let d = self.cell(off)?;
        if d.get(0..2) != Some(b"vk") {
            return corrupt(off, "not a vk record");
        }
        let nlen = rd16(d, 2).unwrap_or(0) as usize;
        let flags = rd16(d, 16).unwrap_or(0);
        let name = match d.get(20..20 + nlen) {
            Some(n) => try_decode_name(n, flags & VALUE_COMP_NAME != 0)?,
            None => return corrupt(off, "vk name runs past the cell"),
        };
        Ok(Vk {
            name,
            size: rd32(d, 4).unwrap_or(0),
            data: rd32(d, 8).unwrap_or(0),
            ty: rd32(d, 12).unwrap_or(0),
        })
    }

    /// Whether vk `off` is named `name` (case-insensitive; `units` is its UTF-16 length).
    fn vk_match(&self, off: u32, name: &str, units: usize) -> Result<bool> {
        let d = self.cell(off)?;
        if d.get(0..2) != Some(b"vk") {
            return corrupt(off, "not a vk record");
        }
        let nlen = rd16(d, 2).unwrap_or(0) as usize;
        let flags = rd16(d, 16).unwrap_or(0);
        let Some(n) = d.get(20..20 + nlen) else {
            return corrupt(off, "vk name runs past the cell");
        };
        let comp = flags & VALUE_COMP_NAME != 0;
        if stored_name_len(nlen, comp) != units as u32 * 2 {
            return Ok(false);
        }
        Ok(lists::stored_name_units(n, comp).eq(name.encode_utf16().map(upcase_unit)))
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
        let mut out = Vec::new();
        if len > BIG_DATA_THRESHOLD && self.base.minor >= 4 && d.get(0..2) == Some(b"db") {
            let n = rd16(d, 2).unwrap_or(0) as usize;
            let list = rd32(d, 4).unwrap_or(NIL);
            let l = self.cell(list)?;
            if n.saturating_mul(BIG_DATA_THRESHOLD) < len {
                return corrupt(
                    off,
                    alloc::format!("big data has {} segments for {} bytes", n, len),
                );
            }
            out.try_reserve_exact(len).map_err(no_memory)?;
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
            Some(b) => {
                out.try_reserve_exact(len).map_err(no_memory)?;
                out.extend_from_slice(b);
                Ok(out)
            }
            None => corrupt(off, alloc::format!("data size {} exceeds its cell", len)),
        }
    }

    /// Stores value data; returns the vk's (size, data) fields. On an error nothing stays
    /// allocated.
    pub(crate) fn write_data(&mut self, volatile: bool, data: &[u8]) -> Result<(u32, u32)> {
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
        let mut cells = Vec::new();
        cells
            .try_reserve_exact(data.len().div_ceil(BIG_DATA_THRESHOLD) + 2)
            .map_err(no_memory)?;
        let r = (|| {
            for chunk in data.chunks(BIG_DATA_THRESHOLD) {
                let c = self.alloc_bytes(volatile, chunk)?;
                cells.push(c);
            }
            let mut lb = Vec::new();
            lb.try_reserve_exact(cells.len() * 4).map_err(no_memory)?;
            for s in &cells {
                lb.extend_from_slice(&s.to_le_bytes());
            }
            let segs = cells.len();
            let list = self.alloc_bytes(volatile, &lb)?;
            cells.push(list);
            let mut db = [0u8; 12];
            db[0..2].copy_from_slice(b"db");
            wr16(&mut db, 2, segs as u16);
            wr32(&mut db, 4, list);
            self.alloc_bytes(volatile, &db)
        })();
        match r {
            Ok(db) => Ok((len, db)),
            Err(e) => {
                for c in cells {
                    self.free(c)?;
                }
                Err(e)
            }
        }
    }

    pub(crate) fn free_data(&mut self, size: u32, off: u32) -> Result<()> {
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

    pub(crate) fn free_value(&mut self, vk: u32) -> Result<()> {
        let v = self.vk(vk)?;
        self.free_data(v.size, v.data)?;
        self.free(vk)
    }

    /// (index in the value list, vk offset) of the value named `name`; never allocates.
    fn find_value(&self, key: KeyRef, name: &str) -> Result<Option<(usize, u32)>> {
        let (list, n) = self.value_list(key)?;
        if n == 0 {
            return Ok(None);
        }
        let units = name.encode_utf16().count();
        let d = self.cell(list)?;
        for i in 0..n {
            let v = rd32(d, i * 4).unwrap_or(NIL);
            if self.vk_match(v, name, units)? {
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

    /// A value's type and data (`NtQueryValueKey`, `KeyValuePartialInformation`), the data
    /// buffer allocated fallibly (`STATUS_INSUFFICIENT_RESOURCES`);
    /// `STATUS_OBJECT_NAME_NOT_FOUND` if absent.
    pub fn query_value_data(&self, key: KeyRef, name: &str) -> Result<(u32, Vec<u8>)> {
        match self.find_value(key, name)? {
            Some((_, v)) => {
                let d = self.cell(v)?;
                let (size, data, ty) = (
                    rd32(d, 4).unwrap_or(0),
                    rd32(d, 8).unwrap_or(0),
                    rd32(d, 12).unwrap_or(0),
                );
                Ok((ty, self.read_data(size, data)?))
            }
            None => Err(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND)),
        }
    }

    /// `NtQueryValueKey` into a caller's buffer: the value's type and data length; as much of
    /// the data as fits is copied to `buf` (the caller reports `STATUS_BUFFER_OVERFLOW` when the
    /// length exceeds it). No allocation.
    pub fn query_value_into(
        &self,
        key: KeyRef,
        name: &str,
        buf: &mut [u8],
    ) -> Result<(u32, usize)> {
        let Some((_, v)) = self.find_value(key, name)? else {
            return Err(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND));
        };
        let d = self.cell(v)?;
        let (size, off, ty) = (
            rd32(d, 4).unwrap_or(0),
            rd32(d, 8).unwrap_or(0),
            rd32(d, 12).unwrap_or(0),
        );
        if size & 0x8000_0000 != 0 {
            let len = (size & 0x7FFF_FFFF) as usize;
            if len > 4 {
                return corrupt(off, alloc::format!("inline data size {} > 4", len));
            }
            let n = len.min(buf.len());
            buf[..n].copy_from_slice(&off.to_le_bytes()[..n]);
            return Ok((ty, len));
        }
        let len = size as usize;
        if len == 0 {
            return Ok((ty, 0));
        }
        let c = self.cell(off)?;
        if len > BIG_DATA_THRESHOLD && self.base.minor >= 4 && c.get(0..2) == Some(b"db") {
            // Big data: assemble through the allocating reader (rare, large values).
            let all = self.read_data(size, off)?;
            let n = len.min(buf.len());
            buf[..n].copy_from_slice(&all[..n]);
            return Ok((ty, len));
        }
        match c.get(..len) {
            Some(b) => {
                let n = len.min(buf.len());
                buf[..n].copy_from_slice(&b[..n]);
                Ok((ty, len))
            }
            None => corrupt(off, alloc::format!("data size {} exceeds its cell", len)),
        }
    }

    pub(crate) fn value_at(&self, vk: u32) -> Result<Value> {
        let v = self.vk(vk)?;
        Ok(Value {
            data: self.read_data(v.size, v.data)?,
            name: v.name,
            ty: v.ty,
        })
    }

    /// Value `index` in list order (`NtEnumerateValueKey`), if there is one.
    pub fn value_by_index(&self, key: KeyRef, index: usize) -> Result<Option<Value>> {
        let (list, n) = self.value_list(key)?;
        if index >= n {
            return Ok(None);
        }
        let v = rd32(self.cell(list)?, index * 4).unwrap_or(NIL);
        self.value_at(v).map(Some)
    }

    /// All values of a key in list order (`NtEnumerateValueKey`).
    pub fn enum_values(&self, key: KeyRef) -> Result<Vec<Value>> {
        self.value_offsets(key)?
            .into_iter()
            .map(|v| self.value_at(v))
            .collect()
    }

    /// Sets (creates or replaces) a value (`NtSetValueKey`). When the hive cannot grow
    /// (`STATUS_INSUFFICIENT_RESOURCES`) the key and its values are as they were.
    pub fn set_value(&mut self, key: KeyRef, name: &str, ty: u32, data: &[u8]) -> Result<()> {
        let nk = self.nk_checked(key)?;
        if name.encode_utf16().count() > 16383 {
            return Err(Error::Status(STATUS_INVALID_PARAMETER));
        }
        let volatile = key & VOLATILE_BIT != 0;
        let existing = self.find_value(key, name)?;
        let (size, doff) = self.write_data(volatile, data)?;
        match existing {
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
                let vk = match self.alloc(volatile, 20 + nb.len()) {
                    Ok(v) => v,
                    Err(e) => {
                        self.free_data(size, doff)?;
                        return Err(e);
                    }
                };
                let d = self.cell_mut(vk)?;
                d[0..2].copy_from_slice(b"vk");
                wr16(d, 2, nb.len() as u16);
                wr32(d, 4, size);
                wr32(d, 8, doff);
                wr32(d, 12, ty);
                wr16(d, 16, if comp { VALUE_COMP_NAME } else { 0 });
                d[20..20 + nb.len()].copy_from_slice(&nb);
                let n = nk.nvalues as usize;
                let cap = if n == 0 || nk.values == NIL {
                    0
                } else {
                    self.cell(nk.values)?.len() / 4
                };
                if n < cap {
                    wr32(self.cell_mut(nk.values)?, n * 4, vk);
                } else {
                    // Move the list to a cell twice as large.
                    let ncap = (2 * (n + 1)).max(2);
                    let nl = match self.alloc(volatile, ncap * 4) {
                        Ok(l) => l,
                        Err(e) => {
                            self.free(vk)?;
                            self.free_data(size, doff)?;
                            return Err(e);
                        }
                    };
                    if n > 0 {
                        let mut old = [0u8; 4];
                        for i in 0..n {
                            old.copy_from_slice(&self.cell(nk.values)?[i * 4..i * 4 + 4]);
                            self.cell_mut(nl)?[i * 4..i * 4 + 4].copy_from_slice(&old);
                        }
                        self.free(nk.values)?;
                    }
                    wr32(self.cell_mut(nl)?, n * 4, vk);
                    self.nk_mut_u32(key, NK_VALUES, nl)?;
                }
                self.nk_mut_u32(key, NK_NVALUES, n as u32 + 1)?;
                let ml = utf16_len(name).max(nk.max_vname);
                self.nk_mut_u32(key, NK_MAXVNAME, ml)?;
            }
        }
        let md = (size & 0x7FFF_FFFF).max(nk.max_vdata);
        self.nk_mut_u32(key, NK_MAXVDATA, md)?;
        self.touch(key)
    }

    /// Deletes a value (`NtDeleteValueKey`); `STATUS_OBJECT_NAME_NOT_FOUND` if absent. Never
    /// allocates (the list is closed up in place; the maximum lengths stay upper bounds, as in
    /// Windows).
    pub fn delete_value(&mut self, key: KeyRef, name: &str) -> Result<()> {
        let nk = self.nk_checked(key)?;
        let (i, vk) = self
            .find_value(key, name)?
            .ok_or(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))?;
        let n = nk.nvalues as usize;
        self.free_value(vk)?;
        if n == 1 {
            self.free(nk.values)?;
            self.nk_mut_u32(key, NK_VALUES, NIL)?;
        } else {
            let d = self.cell_mut(nk.values)?;
            d.copy_within((i + 1) * 4..n * 4, i * 4);
        }
        self.nk_mut_u32(key, NK_NVALUES, n as u32 - 1)?;
        self.touch(key)
    }
}
