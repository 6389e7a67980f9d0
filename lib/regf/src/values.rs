//! Values (`vk`), value lists and value data (inline, cell, `db` big data).

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

impl Hive {
    // ---- values ----

    pub(crate) fn value_offsets(&self, key: KeyRef) -> Result<Vec<u32>> {
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

    pub(crate) fn find_value(&self, key: KeyRef, name: &str) -> Result<Option<(usize, u32)>> {
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

    pub(crate) fn value_at(&self, vk: u32) -> Result<Value> {
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

    pub(crate) fn recompute_max_values(&mut self, key: KeyRef) -> Result<()> {
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
}
