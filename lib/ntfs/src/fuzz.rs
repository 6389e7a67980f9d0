//! The fuzzing entry point, shared by `fuzz/` (cargo-fuzz) and the host
//! test that replays the committed corpus.
//!
//! Inputs are either a raw volume image or a compact "sparse image"
//! ([`encode_image`]): `NTFZ`, the device size (u32), then chunks — literal
//! bytes, a byte fill, or a run of increasing u16 values (most of `$UpCase`).
//! That keeps seeds of whole volumes at a few tens of KiB.

use crate::check::check;
use crate::device::MemDevice;
use crate::volume::Volume;
use alloc::vec::Vec;

const MAGIC: &[u8; 4] = b"NTFZ";
const MAX_IMAGE: usize = 16 << 20;

/// Decodes a sparse image; `None` when `data` is not one (or is malformed).
pub fn decode_image(data: &[u8]) -> Option<Vec<u8>> {
    if data.get(0..4)? != MAGIC {
        return None;
    }
    let size = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?) as usize;
    if size > MAX_IMAGE {
        return None;
    }
    let mut img = alloc::vec![0u8; size];
    let mut p = 8usize;
    let rd32 = |p: usize| -> Option<u32> {
        Some(u32::from_le_bytes(data.get(p..p + 4)?.try_into().ok()?))
    };
    while p < data.len() {
        let kind = data[p];
        let off = rd32(p + 1)? as usize;
        match kind {
            0 => {
                let len = u16::from_le_bytes(data.get(p + 5..p + 7)?.try_into().ok()?) as usize;
                let src = data.get(p + 7..p + 7 + len)?;
                img.get_mut(off..off.checked_add(len)?)?
                    .copy_from_slice(src);
                p += 7 + len;
            }
            1 => {
                let len = rd32(p + 5)? as usize;
                let b = *data.get(p + 9)?;
                img.get_mut(off..off.checked_add(len)?)?.fill(b);
                p += 10;
            }
            2 => {
                let count = rd32(p + 5)? as usize;
                let start = u16::from_le_bytes(data.get(p + 9..p + 11)?.try_into().ok()?);
                let dst = img.get_mut(off..off.checked_add(count.checked_mul(2)?)?)?;
                for (i, c) in dst.chunks_exact_mut(2).enumerate() {
                    c.copy_from_slice(&start.wrapping_add(i as u16).to_le_bytes());
                }
                p += 11;
            }
            _ => return None,
        }
    }
    Some(img)
}

/// Encodes an image as a sparse image (64-byte granules).
pub fn encode_image(img: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(img.len() as u32).to_le_bytes());
    let g = 64usize;
    let mut i = 0usize;
    while i < img.len() {
        let end = core::cmp::min(i + g, img.len());
        let blk = &img[i..end];
        let first = blk[0];
        if blk.iter().all(|b| *b == first) {
            let mut j = end;
            while j < img.len() && img[j] == first {
                j += 1;
            }
            if first != 0 {
                out.push(1);
                out.extend_from_slice(&(i as u32).to_le_bytes());
                out.extend_from_slice(&((j - i) as u32).to_le_bytes());
                out.push(first);
            }
            i = j;
            continue;
        }
        let is_ramp = |s: &[u8]| {
            s.len().is_multiple_of(2) && {
                let v0 = u16::from_le_bytes([s[0], s[1]]);
                s.chunks_exact(2)
                    .enumerate()
                    .all(|(k, c)| u16::from_le_bytes([c[0], c[1]]) == v0.wrapping_add(k as u16))
            }
        };
        if blk.len() == g && is_ramp(blk) {
            let v0 = u16::from_le_bytes([blk[0], blk[1]]);
            let mut j = end;
            while j + g <= img.len()
                && is_ramp(&img[j..j + g])
                && u16::from_le_bytes([img[j], img[j + 1]]) == v0.wrapping_add(((j - i) / 2) as u16)
            {
                j += g;
            }
            out.push(2);
            out.extend_from_slice(&(i as u32).to_le_bytes());
            out.extend_from_slice(&(((j - i) / 2) as u32).to_le_bytes());
            out.extend_from_slice(&v0.to_le_bytes());
            i = j;
            continue;
        }
        out.push(0);
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&(blk.len() as u16).to_le_bytes());
        out.extend_from_slice(blk);
        i = end;
    }
    out
}

/// Mounts `data` (a raw or sparse image) as a volume and exercises every
/// read path (listing, lookups, every file and stream, security
/// descriptors, the checker), then a few writes. Must never panic.
pub fn fuzz_one(data: &[u8]) {
    let img = match decode_image(data) {
        Some(i) => i,
        None if data.len() <= MAX_IMAGE => data.to_vec(),
        None => return,
    };
    let Ok(mut v) = Volume::open(MemDevice::from_vec(img)) else {
        return;
    };
    let _ = v.volume_name();
    let _ = v.volume_version();
    let mut stack = alloc::vec![5u64];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        seen += 1;
        if seen > 200 {
            break;
        }
        let Ok(entries) = v.read_dir(d) else { continue };
        for e in entries.iter().take(200) {
            let n = e.mft_no();
            if e.is_dir() && n != d && n != 5 {
                stack.push(n);
            }
            if let Ok(info) = v.stat(n) {
                for s in &info.streams {
                    if s.ty == crate::attr::AT_DATA && s.size < (4 << 20) {
                        let name: Vec<u16> = s.name.encode_utf16().collect();
                        let _ = v.read_stream_all(n, s.ty, &name);
                    }
                }
            }
            let _ = v.security_descriptor(n);
            let _ = v.lookup_in(d, &e.file_name.name);
        }
    }
    let _ = v.lookup("/a/b/c");
    // Forensic readers: deleted records (and their data) and $Secure whole.
    if let Ok(deleted) = v.deleted_files() {
        for d in deleted.iter().take(20) {
            let _ = v.recover_data(d.record, &mut |_| Ok(()));
        }
    }
    let _ = v.secure_audit();
    let _ = check(&mut v);
    let _ = v.write_file("/fuzz-new", b"data");
    let _ = v.create_dir_all("/fuzz/dir");
    let _ = v.write_file("/fuzz/dir/big", &[7u8; 20000]);
    let _ = v.remove("/fuzz-new");
    let _ = v.rename("/fuzz/dir/big", "/moved");
}
