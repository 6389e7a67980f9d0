//! Bounds-checked little-endian access.

use crate::error::{Error, Result};

pub(crate) fn sub(b: &[u8], off: usize, len: usize) -> Result<&[u8]> {
    let end = off
        .checked_add(len)
        .ok_or(Error::Corrupt("offset overflow"))?;
    b.get(off..end)
        .ok_or(Error::Corrupt("structure past end of buffer"))
}

pub(crate) fn u8_at(b: &[u8], off: usize) -> Result<u8> {
    b.get(off)
        .copied()
        .ok_or(Error::Corrupt("structure past end of buffer"))
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> Result<u16> {
    let s = sub(b, off, 2)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Result<u32> {
    let s = sub(b, off, 4)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Result<u64> {
    let s = sub(b, off, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    if let Some(s) = b.get_mut(off..off + 2) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn put64(b: &mut [u8], off: usize, v: u64) {
    if let Some(s) = b.get_mut(off..off + 8) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn align8(v: usize) -> usize {
    (v + 7) & !7
}

/// UTF-16LE bytes to code units.
pub(crate) fn utf16_units(b: &[u8]) -> alloc::vec::Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Code units to a Rust string (lossy for unpaired surrogates).
pub fn utf16_to_string(u: &[u16]) -> alloc::string::String {
    // Most names are ASCII: those are their bytes.
    if u.iter().all(|&c| c < 0x80) {
        let bytes: alloc::vec::Vec<u8> = u.iter().map(|&c| c as u8).collect();
        return alloc::string::String::from_utf8(bytes).unwrap_or_default();
    }
    let mut s = alloc::string::String::with_capacity(u.len());
    s.extend(
        char::decode_utf16(u.iter().copied()).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)),
    );
    s
}
