//! Writing security descriptors through `$Secure`: descriptors are shared
//! by id; `$SDS` holds them (each in a 256 KiB block and again in the mirror
//! block after it), `$SII` indexes them by id and `$SDH` by hash.

use crate::attr::*;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::format::sd_hash;
use crate::index::IndexEntry;
use crate::record::Body;
use crate::util::*;
use crate::volume::{rec, Volume};
use alloc::vec::Vec;

/// Size of an `$SDS` block; each block is followed by its mirror copy.
pub const SDS_BLOCK: u64 = 0x40000;

fn u16s(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

impl<D: BlockDevice> Volume<D> {
    /// Returns the security id of `sd` (a self-relative descriptor), adding it
    /// to `$SDS`, `$SII` and `$SDH` when the volume does not have it yet.
    pub fn add_security_descriptor(&mut self, sd: &[u8]) -> Result<u32> {
        self.op(|v| v.add_security_descriptor_op(sd))
    }

    fn add_security_descriptor_op(&mut self, sd: &[u8]) -> Result<u32> {
        if sd.len() < 20 || sd.len() > 0x10000 || sd[0] != 1 || u16_at(sd, 2)? & 0x8000 == 0 {
            return Err(Error::InvalidParameter(
                "not a self-relative security descriptor",
            ));
        }
        let hash = sd_hash(sd);
        let sdh = self.index_ctx(rec::SECURE, &u16s("$SDH"))?;
        for e in self.index_all(&sdh)? {
            if u32_at(&e.key, 0)? == hash {
                let id = u32_at(&e.key, 4)?;
                if self.security_by_id(id)?.as_deref() == Some(sd) {
                    return Ok(id);
                }
            }
        }
        let sii = self.index_ctx(rec::SECURE, &u16s("$SII"))?;
        let all = self.index_all(&sii)?;
        let mut id = 0x100u32;
        let mut end = 0u64;
        for e in &all {
            id = id.max(u32_at(&e.key, 0)?.checked_add(1).ok_or(Error::DiskFull)?);
            let off = u64_at(&e.data, 8)?;
            let len = u32_at(&e.data, 16)? as u64;
            end = end.max(off.checked_add(len).ok_or(Error::Corrupt("$SDS entry"))?);
        }
        let len = 20 + sd.len() as u64;
        let mut off = end.div_ceil(16) * 16;
        if (off / SDS_BLOCK) % 2 == 1 {
            off = (off / SDS_BLOCK + 1) * SDS_BLOCK;
        }
        if off % SDS_BLOCK + len > SDS_BLOCK {
            off = (off / SDS_BLOCK + 2) * SDS_BLOCK;
        }
        let mirror = off + SDS_BLOCK;
        let sds = u16s("$SDS");
        let mut r9 = self.read_record(rec::SECURE)?;
        if r9.find(AT_ATTRIBUTE_LIST, &[]).is_some() {
            return Err(Error::Unsupported("$Secure with an attribute list"));
        }
        let size = r9
            .find(AT_DATA, &sds)
            .map(|a| a.data_size())
            .ok_or(Error::BadRecord {
                record: rec::SECURE,
                reason: "no $SDS",
            })?;
        if mirror + len > size {
            self.resize_attr(&mut r9, AT_DATA, &sds, mirror + len, true)?;
            self.write_record(&r9)?;
        }
        let runs = r9
            .find(AT_DATA, &sds)
            .and_then(|a| a.nonres())
            .map(|n| n.runs.clone())
            .ok_or(Error::BadRecord {
                record: rec::SECURE,
                reason: "resident $SDS",
            })?;
        let mut hdr = [0u8; 20];
        put32(&mut hdr, 0, hash);
        put32(&mut hdr, 4, id);
        put64(&mut hdr, 8, off);
        put32(&mut hdr, 16, len as u32);
        let mut entry = hdr.to_vec();
        entry.extend_from_slice(sd);
        self.state.meta_target = Some(crate::log::volume::Target::system(
            rec::SECURE,
            AT_DATA,
            &sds,
            0,
        ));
        let r = self
            .write_runs(&runs, off, &entry)
            .and_then(|_| self.write_runs(&runs, mirror, &entry));
        self.state.meta_target = None;
        r?;
        let e = IndexEntry {
            fref: 0,
            key: id.to_le_bytes().to_vec(),
            data: hdr.to_vec(),
            child: None,
            last: false,
        };
        let ctx = self.index_ctx(rec::SECURE, &u16s("$SII"))?;
        self.index_insert(ctx, e)?;
        let key = [hash.to_le_bytes(), id.to_le_bytes()].concat();
        let e = IndexEntry {
            fref: 0,
            key,
            data: hdr.to_vec(),
            child: None,
            last: false,
        };
        let ctx = self.index_ctx(rec::SECURE, &u16s("$SDH"))?;
        self.index_insert(ctx, e)?;
        self.flush()?;
        Ok(id)
    }

    /// Sets the security descriptor of file `n` (through `$Secure`; an own
    /// `$SECURITY_DESCRIPTOR` attribute is dropped). Returns the security id.
    pub fn set_security(&mut self, n: u64, sd: &[u8]) -> Result<u32> {
        self.op(|v| v.set_security_op(n, sd))
    }

    fn set_security_op(&mut self, n: u64, sd: &[u8]) -> Result<u32> {
        let id = self.add_security_descriptor(sd)?;
        let mut r = self.read_record(n)?;
        if r.find(AT_ATTRIBUTE_LIST, &[]).is_some() {
            return Err(Error::Unsupported(
                "modifying files with an $ATTRIBUTE_LIST",
            ));
        }
        let a = r
            .find_mut(AT_STANDARD_INFORMATION, &[])
            .ok_or(Error::BadRecord {
                record: n,
                reason: "no $STANDARD_INFORMATION",
            })?;
        if let Body::Resident { value, .. } = &mut a.body {
            let mut si = StandardInformation::parse(value)?;
            si.security_id = id;
            *value = si.build();
        }
        if r.find(AT_SECURITY_DESCRIPTOR, &[]).is_some() {
            if r.find(AT_SECURITY_DESCRIPTOR, &[])
                .is_some_and(|a| a.nonres().is_some())
            {
                self.resize_attr(&mut r, AT_SECURITY_DESCRIPTOR, &[], 0, true)?;
            }
            r.remove(AT_SECURITY_DESCRIPTOR, &[]);
        }
        self.write_record(&r)?;
        self.flush()?;
        Ok(id)
    }
}
