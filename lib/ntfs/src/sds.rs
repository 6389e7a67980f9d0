//! Reading `$Secure` whole, for auditing (`ntrs-ntfs secaudit`): every descriptor `$SDS` holds,
//! with its hash checked and its mirror copy compared, and the `$SII` (by id) and `$SDH` (by
//! hash) index entries that point at them.
//!
//! `$SDS` layout (*Windows Internals* 7th ed., ch. 11, and the public NTFS documentation):
//! 256 KiB blocks, each followed by a mirror copy of itself; entries 16-byte aligned, each a
//! 20-byte header (hash, security id, offset of the entry in the stream, entry length) and then
//! the self-relative descriptor. The hash is [`sd_hash`] of the descriptor.

use crate::attr::AT_DATA;
use crate::device::BlockDevice;
use crate::error::Result;
use crate::format::sd_hash;
use crate::secure::SDS_BLOCK;
use crate::util::*;
use crate::volume::{rec, Volume};
use alloc::string::String;
use alloc::vec::Vec;

/// One `$SDS` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdsEntry {
    /// Hash recorded in the header.
    pub hash: u32,
    /// Security id.
    pub id: u32,
    /// Offset of the entry in `$SDS` (as recorded, and where it was found).
    pub offset: u64,
    /// Entry length (header + descriptor) as recorded.
    pub length: u32,
    /// The self-relative descriptor.
    pub sd: Vec<u8>,
    /// Whether `hash` is the hash of `sd`.
    pub hash_ok: bool,
    /// Whether the mirror block holds the same bytes (`None` when the stream ends before it).
    pub mirror_ok: Option<bool>,
}

/// One `$SII` or `$SDH` index entry: the `$SDS` header it stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecureIndexEntry {
    /// Hash.
    pub hash: u32,
    /// Security id.
    pub id: u32,
    /// Offset in `$SDS`.
    pub offset: u64,
    /// Entry length.
    pub length: u32,
}

/// Everything parsed from `$Secure`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecureAudit {
    /// `$SDS` entries in stream order.
    pub entries: Vec<SdsEntry>,
    /// `$SII` entries (by id).
    pub sii: Vec<SecureIndexEntry>,
    /// `$SDH` entries (by hash).
    pub sdh: Vec<SecureIndexEntry>,
    /// What did not parse: one line each (offset and reason).
    pub problems: Vec<String>,
}

/// Parses the `$SDS` stream: entries of each primary block, in order. Parsing of a block stops
/// at its first zero header (the unused tail) or at a header that does not fit (a problem).
pub fn parse_sds(sds: &[u8]) -> (Vec<SdsEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut block = 0u64;
    while block < sds.len() as u64 {
        let end = core::cmp::min(block + SDS_BLOCK, sds.len() as u64);
        let mut pos = block;
        while pos + 20 <= end {
            let p = pos as usize;
            let h = &sds[p..p + 20];
            let (hash, id, off, len) = (
                u32_at(h, 0).unwrap_or(0),
                u32_at(h, 4).unwrap_or(0),
                u64_at(h, 8).unwrap_or(0),
                u32_at(h, 16).unwrap_or(0),
            );
            if hash == 0 && id == 0 && off == 0 && len == 0 {
                break;
            }
            if off != pos {
                problems.push(alloc::format!(
                    "$SDS {pos:#x}: the entry records offset {off:#x}"
                ));
                break;
            }
            if len < 40 || pos + len as u64 > end {
                problems.push(alloc::format!(
                    "$SDS {pos:#x}: entry length {len:#x} does not fit its block"
                ));
                break;
            }
            let sd = sds[p + 20..p + len as usize].to_vec();
            let mirror = pos + SDS_BLOCK;
            let mirror_ok = sds
                .get(mirror as usize..mirror as usize + len as usize)
                .map(|m| m == &sds[p..p + len as usize]);
            entries.push(SdsEntry {
                hash,
                id,
                offset: off,
                length: len,
                hash_ok: sd_hash(&sd) == hash,
                sd,
                mirror_ok,
            });
            pos = (pos + len as u64).div_ceil(16) * 16;
        }
        block += 2 * SDS_BLOCK;
    }
    (entries, problems)
}

fn index_entry(data: &[u8]) -> Option<SecureIndexEntry> {
    Some(SecureIndexEntry {
        hash: u32_at(data, 0).ok()?,
        id: u32_at(data, 4).ok()?,
        offset: u64_at(data, 8).ok()?,
        length: u32_at(data, 16).ok()?,
    })
}

impl<D: BlockDevice> Volume<D> {
    /// Reads `$Secure`: the `$SDS` stream parsed by [`parse_sds`], and the `$SII` and `$SDH`
    /// indexes. An index that cannot be read is a problem line, not an error; an error is
    /// returned only when `$SDS` itself cannot be read.
    pub fn secure_audit(&mut self) -> Result<SecureAudit> {
        let name = |s: &str| -> Vec<u16> { s.encode_utf16().collect() };
        let sds = self.read_stream_all(rec::SECURE, AT_DATA, &name("$SDS"))?;
        let (entries, mut problems) = parse_sds(&sds);
        let mut idx = |n: &str| -> Vec<SecureIndexEntry> {
            let r = self
                .index_ctx_ro(rec::SECURE, &name(n))
                .and_then(|ctx| self.index_all(&ctx));
            match r {
                Ok(es) => es
                    .iter()
                    .filter_map(|e| {
                        let x = index_entry(&e.data);
                        if x.is_none() {
                            problems.push(alloc::format!("{n}: an entry with short data"));
                        }
                        x
                    })
                    .collect(),
                Err(e) => {
                    problems.push(alloc::format!("{n}: {e}"));
                    Vec::new()
                }
            }
        };
        let sii = idx("$SII");
        let sdh = idx("$SDH");
        Ok(SecureAudit {
            entries,
            sii,
            sdh,
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds an `$SDS` stream holding `sds` (one primary block and its mirror).
    pub(crate) fn build(sds: &[Vec<u8>]) -> Vec<u8> {
        let mut s = alloc::vec![0u8; 2 * SDS_BLOCK as usize];
        let mut pos = 0usize;
        for (i, sd) in sds.iter().enumerate() {
            let len = 20 + sd.len();
            let mut e = Vec::new();
            e.extend_from_slice(&sd_hash(sd).to_le_bytes());
            e.extend_from_slice(&(0x100 + i as u32).to_le_bytes());
            e.extend_from_slice(&(pos as u64).to_le_bytes());
            e.extend_from_slice(&(len as u32).to_le_bytes());
            e.extend_from_slice(sd);
            s[pos..pos + len].copy_from_slice(&e);
            let m = pos + SDS_BLOCK as usize;
            s[m..m + len].copy_from_slice(&e);
            pos = (pos + len).div_ceil(16) * 16;
        }
        s
    }

    #[test]
    fn entries_hashes_and_mirrors() {
        let a = alloc::vec![1u8; 20];
        let b = alloc::vec![2u8; 36];
        let mut s = build(&[a.clone(), b.clone()]);
        let (e, p) = parse_sds(&s);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].id, e[0].offset, e[0].length), (0x100, 0, 40));
        assert_eq!((e[1].id, e[1].offset), (0x101, 48));
        assert!(e.iter().all(|x| x.hash_ok && x.mirror_ok == Some(true)));
        assert_eq!(e[1].sd, b);
        // A changed descriptor byte: the hash and the mirror no longer agree.
        s[48 + 25] ^= 0xff;
        let (e, _) = parse_sds(&s);
        assert!(!e[1].hash_ok && e[1].mirror_ok == Some(false));
        assert!(e[0].hash_ok);
        // A wrong recorded offset stops the block with a problem.
        s[8] = 0x10;
        let (e, p) = parse_sds(&s);
        assert!(e.is_empty() && p.len() == 1, "{p:?}");
    }

    proptest! {
        /// Any bytes: no panic, and every entry returned lies inside the stream.
        #[test]
        fn random_streams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let (e, _) = parse_sds(&data);
            for x in e {
                prop_assert!(x.offset as usize + x.length as usize <= data.len());
            }
        }

        /// Built streams parse back to the descriptors put in, with their hashes verified.
        #[test]
        fn built_streams_round_trip(sds in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 20..200), 0..40)) {
            let s = build(&sds);
            let (e, p) = parse_sds(&s);
            prop_assert!(p.is_empty());
            prop_assert_eq!(e.len(), sds.len());
            for (x, sd) in e.iter().zip(&sds) {
                prop_assert_eq!(&x.sd, sd);
                prop_assert!(x.hash_ok);
                prop_assert_eq!(x.mirror_ok, Some(true));
            }
        }
    }
}
