//! MFT file records ("FILE") and index records ("INDX"): update sequence
//! array fixups, the record header and the attribute headers.

use crate::attr::*;
use crate::error::{Error, Result};
use crate::runlist::{self, Run};
use crate::util::*;
use alloc::vec::Vec;

/// Stride of the update sequence array: one fixup per 512 bytes.
pub const USA_STRIDE: usize = 512;

/// Record header flag: in use.
pub const MFT_RECORD_IN_USE: u16 = 0x1;
/// Record header flag: a directory (has `$I30`).
pub const MFT_RECORD_IS_DIRECTORY: u16 = 0x2;
/// Record header flag: in `$Extend`.
pub const MFT_RECORD_IS_4: u16 = 0x4;
/// Record header flag: has a view index.
pub const MFT_RECORD_IS_VIEW_INDEX: u16 = 0x8;

/// Applies the fixups of a multi-sector record in place (after reading).
pub fn unfixup(b: &mut [u8], magic: &[u8; 4]) -> Result<()> {
    if b.get(0..4) != Some(&magic[..]) {
        return Err(Error::Corrupt("bad record magic"));
    }
    let usa_ofs = u16_at(b, 4)? as usize;
    let usa_cnt = u16_at(b, 6)? as usize;
    if usa_cnt == 0 || (usa_cnt - 1) * USA_STRIDE != b.len() || usa_ofs & 1 != 0 {
        return Err(Error::Corrupt("update sequence array size"));
    }
    if usa_ofs + 2 * usa_cnt > USA_STRIDE - 2 {
        return Err(Error::Corrupt("update sequence array offset"));
    }
    let usn = u16_at(b, usa_ofs)?;
    for i in 1..usa_cnt {
        let end = i * USA_STRIDE - 2;
        if u16_at(b, end)? != usn {
            return Err(Error::Corrupt("update sequence mismatch (torn write)"));
        }
        let v = u16_at(b, usa_ofs + 2 * i)?;
        put16(b, end, v);
    }
    Ok(())
}

/// Applies fixups before writing: bumps the update sequence number and
/// saves each sector's last two bytes into the array.
pub fn fixup(b: &mut [u8]) -> Result<()> {
    let usa_ofs = u16_at(b, 4)? as usize;
    let usa_cnt = u16_at(b, 6)? as usize;
    if usa_cnt == 0 || (usa_cnt - 1) * USA_STRIDE != b.len() {
        return Err(Error::Corrupt("update sequence array size"));
    }
    let mut usn = u16_at(b, usa_ofs)?.wrapping_add(1);
    if usn == 0 || usn == 0xFFFF {
        usn = 1;
    }
    put16(b, usa_ofs, usn);
    for i in 1..usa_cnt {
        let end = i * USA_STRIDE - 2;
        let v = u16_at(b, end)?;
        put16(b, usa_ofs + 2 * i, v);
        put16(b, end, usn);
    }
    Ok(())
}

/// Body of an attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Value stored in the record.
    Resident {
        /// The value.
        value: Vec<u8>,
        /// `RESIDENT_ATTR_IS_INDEXED` (set for `$FILE_NAME`).
        indexed: bool,
    },
    /// Value stored in clusters.
    NonResident(NonResident),
}

/// A non-resident attribute extent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonResident {
    /// Lowest VCN mapped by this extent.
    pub start_vcn: u64,
    /// Highest VCN mapped (start_vcn - 1 when empty).
    pub last_vcn: u64,
    /// The runs (VCNs absolute).
    pub runs: Vec<Run>,
    /// Compression unit (log2 clusters), 0 = not compressed.
    pub compression_unit: u8,
    /// Allocated size (only meaningful in the first extent).
    pub allocated_size: u64,
    /// Data size.
    pub data_size: u64,
    /// Initialized size.
    pub initialized_size: u64,
    /// Compressed size (present when compressed or sparse).
    pub compressed_size: Option<u64>,
}

/// One attribute of a file record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// `AT_*`.
    pub ty: u32,
    /// Name (streams, `$I30`, ...).
    pub name: Vec<u16>,
    /// `ATTR_*` flags.
    pub flags: u16,
    /// Instance number, unique in the record.
    pub instance: u16,
    /// Resident value or run list.
    pub body: Body,
}

impl Attr {
    /// A resident attribute.
    pub fn resident(ty: u32, name: &[u16], value: Vec<u8>) -> Attr {
        Attr {
            ty,
            name: name.to_vec(),
            flags: 0,
            instance: 0,
            body: Body::Resident {
                value,
                indexed: ty == AT_FILE_NAME,
            },
        }
    }
    /// The resident value, if resident.
    pub fn value(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Resident { value, .. } => Some(value),
            Body::NonResident(_) => None,
        }
    }
    /// The non-resident part, if non-resident.
    pub fn nonres(&self) -> Option<&NonResident> {
        match &self.body {
            Body::NonResident(n) => Some(n),
            Body::Resident { .. } => None,
        }
    }
    /// Whether the name equals `n`.
    pub fn named(&self, n: &[u16]) -> bool {
        self.name == n
    }
    /// Size of the data (value length or data size).
    pub fn data_size(&self) -> u64 {
        match &self.body {
            Body::Resident { value, .. } => value.len() as u64,
            Body::NonResident(n) => n.data_size,
        }
    }
    /// Bytes this attribute takes in a record.
    pub fn encoded_len(&self) -> usize {
        match &self.body {
            Body::Resident { value, .. } => {
                align8(align8(0x18 + 2 * self.name.len()) + value.len())
            }
            Body::NonResident(n) => {
                let hdr = if n.compressed_size.is_some() {
                    0x48
                } else {
                    0x40
                };
                align8(align8(hdr + 2 * self.name.len()) + runlist::encode(&n.runs).len())
            }
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = self.encoded_len();
        out.resize(start + len, 0);
        let b = &mut out[start..];
        put32(b, 0, self.ty);
        put32(b, 4, len as u32);
        b[9] = self.name.len() as u8;
        put16(b, 0xc, self.flags);
        put16(b, 0xe, self.instance);
        match &self.body {
            Body::Resident { value, indexed } => {
                let name_off = 0x18;
                let val_off = align8(name_off + 2 * self.name.len());
                put16(b, 0xa, name_off as u16);
                put32(b, 0x10, value.len() as u32);
                put16(b, 0x14, val_off as u16);
                b[0x16] = *indexed as u8;
                for (i, u) in self.name.iter().enumerate() {
                    put16(b, name_off + 2 * i, *u);
                }
                b[val_off..val_off + value.len()].copy_from_slice(value);
            }
            Body::NonResident(n) => {
                b[8] = 1;
                let name_off = if n.compressed_size.is_some() {
                    0x48
                } else {
                    0x40
                };
                let runs_off = align8(name_off + 2 * self.name.len());
                put16(b, 0xa, name_off as u16);
                put64(b, 0x10, n.start_vcn);
                put64(b, 0x18, n.last_vcn);
                put16(b, 0x20, runs_off as u16);
                b[0x22] = n.compression_unit;
                put64(b, 0x28, n.allocated_size);
                put64(b, 0x30, n.data_size);
                put64(b, 0x38, n.initialized_size);
                if let Some(c) = n.compressed_size {
                    put64(b, 0x40, c);
                }
                for (i, u) in self.name.iter().enumerate() {
                    put16(b, name_off + 2 * i, *u);
                }
                let rl = runlist::encode(&n.runs);
                b[runs_off..runs_off + rl.len()].copy_from_slice(&rl);
            }
        }
    }
}

/// Decodes an attribute (its header already checked by [`AttrView::parse`]).
fn parse_attr(v: &AttrView<'_>, rec: u64) -> Result<Attr> {
    let bad = |reason| Error::BadRecord {
        record: rec,
        reason,
    };
    let b = v.b;
    let body = match v.value {
        Some(value) => Body::Resident {
            value: value.to_vec(),
            indexed: u8_at(b, 0x16)? & 1 != 0,
        },
        None => {
            let start_vcn = u64_at(b, 0x10)?;
            let last_vcn = u64_at(b, 0x18)?;
            let ro = u16_at(b, 0x20)? as usize;
            let rl = b.get(ro..).ok_or(bad("run list offset"))?;
            let runs = runlist::decode(rl, start_vcn).map_err(|_| bad("bad run list"))?;
            let has_c =
                v.flags & (ATTR_COMPRESSED | ATTR_SPARSE) != 0 && b.len() >= 0x48 && ro >= 0x48;
            Body::NonResident(NonResident {
                start_vcn,
                last_vcn,
                runs,
                compression_unit: u8_at(b, 0x22)?,
                allocated_size: u64_at(b, 0x28)?,
                data_size: u64_at(b, 0x30)?,
                initialized_size: u64_at(b, 0x38)?,
                compressed_size: if has_c { Some(u64_at(b, 0x40)?) } else { None },
            })
        }
    };
    Ok(Attr {
        ty: v.ty,
        name: utf16_units(v.name),
        flags: v.flags,
        instance: u16_at(b, 0xe)?,
        body,
    })
}

/// One attribute of a record as stored, borrowed from the record's bytes: what a scan over
/// many records reads without copying. [`AttrView::to_attr`] decodes it fully.
#[derive(Clone, Copy, Debug)]
pub struct AttrView<'a> {
    /// The attribute's bytes (its header to its length).
    b: &'a [u8],
    /// `AT_*`.
    pub ty: u32,
    /// `ATTR_*` flags.
    pub flags: u16,
    /// Whether the attribute is non-resident.
    pub non_resident: bool,
    /// The name as UTF-16 LE bytes.
    name: &'a [u8],
    /// The resident value (`None` when non-resident).
    value: Option<&'a [u8]>,
}

impl<'a> AttrView<'a> {
    /// Reads an attribute's header: its name and, when resident, its value must lie inside it.
    fn parse(b: &'a [u8], rec: u64) -> Result<Self> {
        let bad = |reason| Error::BadRecord {
            record: rec,
            reason,
        };
        let nonres = u8_at(b, 8)? != 0;
        let nl = u8_at(b, 9)? as usize;
        let no = u16_at(b, 0xa)? as usize;
        let name = sub(b, no, 2 * nl).map_err(|_| bad("attribute name out of bounds"))?;
        let value = if nonres {
            if b.len() < 0x40 {
                return Err(bad("short non-resident header"));
            }
            None
        } else {
            let vl = u32_at(b, 0x10)? as usize;
            let vo = u16_at(b, 0x14)? as usize;
            Some(sub(b, vo, vl).map_err(|_| bad("resident value out of bounds"))?)
        };
        Ok(AttrView {
            b,
            ty: u32_at(b, 0)?,
            flags: u16_at(b, 0xc)?,
            non_resident: nonres,
            name,
            value,
        })
    }

    /// The resident value, if resident.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// Whether the name equals `n` (UTF-16 code units).
    pub fn named(&self, n: &[u16]) -> bool {
        self.name.len() == 2 * n.len()
            && self
                .name
                .chunks_exact(2)
                .zip(n)
                .all(|(c, &u)| u16::from_le_bytes([c[0], c[1]]) == u)
    }

    /// Size of the data (value length or data size), as [`Attr::data_size`].
    pub fn data_size(&self) -> u64 {
        match self.value {
            Some(v) => v.len() as u64,
            None => u64_at(self.b, 0x30).unwrap_or(0),
        }
    }

    /// The attribute decoded (run list included).
    pub fn to_attr(&self, rec: u64) -> Result<Attr> {
        parse_attr(self, rec)
    }
}

/// A record's header fields and attributes as stored, borrowed (fixups already applied).
/// [`Record::parse`] is this view decoded; a scan that needs a few attributes of many
/// records reads them here without copying.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    b: &'a [u8],
    /// Record number.
    pub number: u64,
    /// Sequence number.
    pub seq: u16,
    /// `MFT_RECORD_*`.
    pub flags: u16,
    /// Base record reference (0 for a base record).
    pub base: u64,
    /// Offset of the first attribute.
    attrs_at: usize,
    /// Bytes in use.
    used: usize,
}

impl<'a> RecordView<'a> {
    /// Checks a record's header (signature, bytes in use, attribute offset).
    pub fn parse(b: &'a [u8], number: u64) -> Result<Self> {
        let bad = |reason| Error::BadRecord {
            record: number,
            reason,
        };
        if b.get(0..4) != Some(b"FILE") {
            return Err(bad("no FILE signature"));
        }
        let ao = u16_at(b, 0x14)? as usize;
        let used = u32_at(b, 0x18)? as usize;
        if used > b.len() || ao >= used || ao < 0x2a {
            return Err(bad("bytes in use / attribute offset"));
        }
        Ok(RecordView {
            b,
            number,
            seq: u16_at(b, 0x10)?,
            flags: u16_at(b, 0x16)?,
            base: u64_at(b, 0x20)?,
            attrs_at: ao,
            used,
        })
    }

    /// Whether the record is in use.
    pub fn in_use(&self) -> bool {
        self.flags & MFT_RECORD_IN_USE != 0
    }

    /// The attributes in record order, up to the end marker; an attribute whose length or
    /// header is bad ends the walk with its error.
    pub fn attrs(&self) -> AttrViews<'a> {
        AttrViews {
            b: self.b,
            at: self.attrs_at,
            used: self.used,
            number: self.number,
            done: false,
        }
    }
}

/// The attributes of a [`RecordView`].
pub struct AttrViews<'a> {
    b: &'a [u8],
    at: usize,
    used: usize,
    number: u64,
    done: bool,
}

impl<'a> Iterator for AttrViews<'a> {
    type Item = Result<AttrView<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let number = self.number;
        let bad = |reason| Error::BadRecord {
            record: number,
            reason,
        };
        let r = (|| {
            let o = self.at;
            let ty = u32_at(self.b, o).map_err(|_| bad("attributes not terminated"))?;
            if ty == AT_END {
                return Ok(None);
            }
            let len = u32_at(self.b, o + 4)? as usize;
            if len < 0x18 || len & 7 != 0 || o + len > self.used {
                return Err(bad("attribute length"));
            }
            self.at = o + len;
            AttrView::parse(&self.b[o..o + len], number).map(Some)
        })();
        match r {
            Ok(Some(a)) => Some(Ok(a)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A decoded MFT file record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Record number.
    pub number: u64,
    /// Log sequence number of the last change.
    pub lsn: u64,
    /// Sequence number (bumped on reuse).
    pub seq: u16,
    /// Hard link count (number of non-DOS `$FILE_NAME`s in the index).
    pub link_count: u16,
    /// `MFT_RECORD_*`.
    pub flags: u16,
    /// Base record reference (0 for a base record).
    pub base: u64,
    /// Next attribute instance number.
    pub next_instance: u16,
    /// The update sequence number found on disk.
    pub usn: u16,
    /// Attributes, sorted by type and name.
    pub attrs: Vec<Attr>,
    /// A whole file's attributes read by `Volume::read_file_record` from a
    /// base record with an `$ATTRIBUTE_LIST` (extension records merged in):
    /// writing it lays the attributes out over records again.
    pub has_ext: bool,
}

impl Record {
    /// An empty, in-use record.
    pub fn new(number: u64, seq: u16) -> Record {
        Record {
            number,
            lsn: 0,
            seq,
            link_count: 0,
            flags: MFT_RECORD_IN_USE,
            base: 0,
            next_instance: 0,
            usn: 1,
            attrs: Vec::new(),
            has_ext: false,
        }
    }

    /// Parses a record (fixups already applied).
    pub fn parse(b: &[u8], number: u64) -> Result<Record> {
        let view = RecordView::parse(b, number)?;
        let mut r = Record {
            number,
            lsn: u64_at(b, 8)?,
            seq: view.seq,
            link_count: u16_at(b, 0x12)?,
            flags: view.flags,
            base: view.base,
            next_instance: u16_at(b, 0x28)?,
            usn: u16_at(b, u16_at(b, 4)? as usize)?,
            attrs: Vec::new(),
            has_ext: false,
        };
        for a in view.attrs() {
            r.attrs.push(a?.to_attr(number)?);
        }
        Ok(r)
    }

    /// Space the attributes take, with the header and end marker.
    pub fn encoded_len(&self, record_size: usize) -> usize {
        let ao = attrs_offset(record_size);
        ao + self.attrs.iter().map(|a| a.encoded_len()).sum::<usize>() + 8
    }

    /// Encodes the record into `record_size` bytes, without fixups applied.
    pub fn build(&self, record_size: usize) -> Result<Vec<u8>> {
        let used = self.encoded_len(record_size);
        if used > record_size {
            return Err(Error::Unsupported(
                "attributes do not fit in the file record (attribute lists are not written)",
            ));
        }
        let mut b = Vec::with_capacity(record_size);
        b.resize(attrs_offset(record_size), 0);
        b[0..4].copy_from_slice(b"FILE");
        put16(&mut b, 4, 0x30);
        put16(&mut b, 6, (record_size / USA_STRIDE + 1) as u16);
        put64(&mut b, 8, self.lsn);
        put16(&mut b, 0x10, self.seq);
        put16(&mut b, 0x12, self.link_count);
        put16(&mut b, 0x14, attrs_offset(record_size) as u16);
        put16(&mut b, 0x16, self.flags);
        put32(&mut b, 0x18, used as u32);
        put32(&mut b, 0x1c, record_size as u32);
        put64(&mut b, 0x20, self.base);
        put16(&mut b, 0x28, self.next_instance);
        put32(&mut b, 0x2c, self.number as u32);
        put16(&mut b, 0x30, self.usn);
        for a in &self.attrs {
            a.encode(&mut b);
        }
        b.extend_from_slice(&AT_END.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.resize(record_size, 0);
        Ok(b)
    }

    /// Adds an attribute, giving it the next instance number, keeping order.
    pub fn add(&mut self, mut a: Attr) {
        a.instance = self.next_instance;
        self.next_instance = self.next_instance.wrapping_add(1);
        let pos = self
            .attrs
            .iter()
            .position(|x| (x.ty, &x.name) > (a.ty, &a.name))
            .unwrap_or(self.attrs.len());
        self.attrs.insert(pos, a);
    }

    /// First attribute of a type and name.
    pub fn find(&self, ty: u32, name: &[u16]) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.ty == ty && a.name == name)
    }
    /// Mutable [`Record::find`].
    pub fn find_mut(&mut self, ty: u32, name: &[u16]) -> Option<&mut Attr> {
        self.attrs.iter_mut().find(|a| a.ty == ty && a.name == name)
    }
    /// Removes the attribute of a type and name.
    pub fn remove(&mut self, ty: u32, name: &[u16]) -> Option<Attr> {
        let i = self
            .attrs
            .iter()
            .position(|a| a.ty == ty && a.name == name)?;
        Some(self.attrs.remove(i))
    }
    /// Whether the record is in use.
    pub fn in_use(&self) -> bool {
        self.flags & MFT_RECORD_IN_USE != 0
    }
    /// Whether the record is a directory.
    pub fn is_dir(&self) -> bool {
        self.flags & MFT_RECORD_IS_DIRECTORY != 0
    }
}

/// Offset of the first attribute for a record size (header + USA, 8-aligned).
pub fn attrs_offset(record_size: usize) -> usize {
    align8(0x30 + 2 * (record_size / USA_STRIDE + 1))
}
