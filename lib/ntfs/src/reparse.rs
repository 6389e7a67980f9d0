//! Reparse points: symbolic links and junctions are decoded and surfaced,
//! never followed by the lookup code; `set_reparse_point` stores one and
//! indexes it in `$Extend\$Reparse:$R`.

use crate::attr::*;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::index::IndexEntry;
use crate::record::{Attr, Body};
use crate::util::*;
use crate::volume::{rec, Volume};
use alloc::string::String;
use alloc::vec::Vec;

/// `IO_REPARSE_TAG_MOUNT_POINT` (junctions, volume mount points).
pub const IO_REPARSE_TAG_MOUNT_POINT: u32 = 0xA000_0003;
/// `IO_REPARSE_TAG_SYMLINK`.
pub const IO_REPARSE_TAG_SYMLINK: u32 = 0xA000_000C;
/// `SYMLINK_FLAG_RELATIVE`.
pub const SYMLINK_FLAG_RELATIVE: u32 = 1;

/// A decoded reparse point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReparsePoint {
    /// A symbolic link.
    Symlink {
        /// Substitute name (the NT path to follow).
        target: String,
        /// Print name.
        print: String,
        /// Relative to the link's directory.
        relative: bool,
    },
    /// A junction or mount point.
    MountPoint {
        /// Substitute name.
        target: String,
        /// Print name.
        print: String,
    },
    /// Any other tag: the raw reparse data after the 8-byte header.
    Other {
        /// The reparse tag.
        tag: u32,
        /// Tag-specific data.
        data: Vec<u8>,
    },
}

fn name_at(buf: &[u8], off: u16, len: u16) -> Result<String> {
    Ok(utf16_to_string(&utf16_units(sub(
        buf,
        off as usize,
        len as usize,
    )?)))
}

impl ReparsePoint {
    /// Decodes `REPARSE_DATA_BUFFER` bytes (the `$REPARSE_POINT` value).
    pub fn parse(b: &[u8]) -> Result<Self> {
        let tag = u32_at(b, 0)?;
        let len = u16_at(b, 4)? as usize;
        let data = sub(b, 8, len)?;
        match tag {
            IO_REPARSE_TAG_SYMLINK | IO_REPARSE_TAG_MOUNT_POINT => {
                let (so, sl, po, pl) = (
                    u16_at(data, 0)?,
                    u16_at(data, 2)?,
                    u16_at(data, 4)?,
                    u16_at(data, 6)?,
                );
                if tag == IO_REPARSE_TAG_SYMLINK {
                    let flags = u32_at(data, 8)?;
                    let buf = data
                        .get(12..)
                        .ok_or(Error::Corrupt("symlink reparse data"))?;
                    Ok(ReparsePoint::Symlink {
                        target: name_at(buf, so, sl)?,
                        print: name_at(buf, po, pl)?,
                        relative: flags & SYMLINK_FLAG_RELATIVE != 0,
                    })
                } else {
                    let buf = data
                        .get(8..)
                        .ok_or(Error::Corrupt("mount point reparse data"))?;
                    Ok(ReparsePoint::MountPoint {
                        target: name_at(buf, so, sl)?,
                        print: name_at(buf, po, pl)?,
                    })
                }
            }
            _ => Ok(ReparsePoint::Other {
                tag,
                data: data.to_vec(),
            }),
        }
    }

    /// Encodes a symbolic link's `REPARSE_DATA_BUFFER`.
    pub fn symlink(target: &str, print: &str, relative: bool) -> Vec<u8> {
        let t: Vec<u8> = target
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let p: Vec<u8> = print.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let mut d = Vec::new();
        d.extend_from_slice(&0u16.to_le_bytes());
        d.extend_from_slice(&(t.len() as u16).to_le_bytes());
        d.extend_from_slice(&(t.len() as u16).to_le_bytes());
        d.extend_from_slice(&(p.len() as u16).to_le_bytes());
        d.extend_from_slice(&(relative as u32).to_le_bytes());
        d.extend_from_slice(&t);
        d.extend_from_slice(&p);
        let mut b = Vec::new();
        b.extend_from_slice(&IO_REPARSE_TAG_SYMLINK.to_le_bytes());
        b.extend_from_slice(&(d.len() as u16).to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&d);
        b
    }
}

impl<D: BlockDevice> Volume<D> {
    /// The reparse point of file `n`, if it has one (never followed).
    pub fn reparse_point(&mut self, n: u64) -> Result<Option<ReparsePoint>> {
        let (_, attrs) = self.load(n)?;
        match attrs.iter().find(|a| a.ty == AT_REPARSE_POINT) {
            None => Ok(None),
            Some(a) => {
                let v = self.attr_value(a, n)?;
                Ok(Some(ReparsePoint::parse(&v)?))
            }
        }
    }

    /// Makes file `n` a reparse point with `data` (a `REPARSE_DATA_BUFFER`):
    /// stores `$REPARSE_POINT`, sets `FILE_ATTRIBUTE_REPARSE_POINT` and adds
    /// the (tag, file reference) key to `$Extend\$Reparse:$R`. Files that
    /// already are reparse points are refused (`Unsupported`).
    pub fn set_reparse_point(&mut self, n: u64, data: &[u8]) -> Result<()> {
        self.op(|v| v.set_reparse_point_op(n, data))
    }

    fn set_reparse_point_op(&mut self, n: u64, data: &[u8]) -> Result<()> {
        ReparsePoint::parse(data)?;
        if data.len() > 16 * 1024 {
            return Err(Error::InvalidParameter("reparse data larger than 16 KiB"));
        }
        let tag = u32_at(data, 0)?;
        let mut r = self.read_record(n)?;
        if r.find(AT_ATTRIBUTE_LIST, &[]).is_some() || r.find(AT_REPARSE_POINT, &[]).is_some() {
            return Err(Error::Unsupported(
                "replacing a reparse point or files with an $ATTRIBUTE_LIST",
            ));
        }
        if let Some(Body::Resident { value, .. }) = r
            .find_mut(AT_STANDARD_INFORMATION, &[])
            .map(|a| &mut a.body)
        {
            let mut si = StandardInformation::parse(value)?;
            si.file_attributes |= FILE_ATTRIBUTE_REPARSE_POINT;
            let keep = value.len();
            let mut nv = si.build();
            nv.truncate(keep.max(48));
            *value = nv;
        }
        r.add(Attr::resident(AT_REPARSE_POINT, &[], data.to_vec()));
        self.write_record(&r)?;
        // Index it.
        let reparse = self
            .lookup_in(rec::EXTEND, &"$Reparse".encode_utf16().collect::<Vec<_>>())?
            .ok_or(Error::Corrupt("no $Extend\\$Reparse"))?;
        let fref = make_ref(n, r.seq);
        let key = [&tag.to_le_bytes()[..], &fref.to_le_bytes()[..]].concat();
        let ctx = self.index_ctx(reparse.mft_no(), &"$R".encode_utf16().collect::<Vec<_>>())?;
        self.index_insert(
            ctx,
            IndexEntry {
                fref: 0,
                key,
                data: Vec::new(),
                child: None,
                last: false,
            },
        )?;
        self.flush()
    }
}
