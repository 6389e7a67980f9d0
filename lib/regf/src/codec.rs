//! Little-endian field access, name encoding (compressed Latin-1 or UTF-16LE) and the base
//! block checksum.

use alloc::string::String;
use alloc::vec::Vec;

use crate::*;

pub(crate) fn rd16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

pub(crate) fn rd32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn rd64(b: &[u8], off: usize) -> Option<u64> {
    let lo = rd32(b, off)? as u64;
    let hi = rd32(b, off.checked_add(4)?)? as u64;
    Some(lo | (hi << 32))
}

pub(crate) fn wr16(b: &mut [u8], off: usize, v: u16) {
    if let Some(s) = b.get_mut(off..off + 2) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn wr32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn wr64(b: &mut [u8], off: usize, v: u64) {
    wr32(b, off, v as u32);
    wr32(b, off + 4, (v >> 32) as u32);
}

/// Encodes a name for an nk or vk record: compressed (Latin-1) when possible.
pub(crate) fn encode_name(name: &str) -> (Vec<u8>, bool) {
    if name.chars().all(|c| (c as u32) < 0x100) {
        (name.chars().map(|c| c as u32 as u8).collect(), true)
    } else {
        let mut v = Vec::new();
        for u in name.encode_utf16() {
            v.extend_from_slice(&u.to_le_bytes());
        }
        (v, false)
    }
}

pub(crate) fn decode_name(b: &[u8], compressed: bool) -> String {
    try_decode_name(b, compressed).unwrap_or_default()
}

/// Decodes a stored name (compressed Latin-1 or UTF-16LE, unpaired surrogates as U+FFFD) into a
/// string allocated fallibly (`STATUS_INSUFFICIENT_RESOURCES`).
pub(crate) fn try_decode_name(b: &[u8], compressed: bool) -> Result<String> {
    let mut s = String::new();
    // Every unit becomes at most 3 UTF-8 bytes (a surrogate pair, 2 units, becomes 4).
    let bound = if compressed {
        b.len() * 2
    } else {
        b.len() / 2 * 3
    };
    s.try_reserve_exact(bound)
        .map_err(|_| Error::Status(STATUS_INSUFFICIENT_RESOURCES))?;
    if compressed {
        s.extend(b.iter().map(|&c| c as char));
    } else {
        s.extend(
            char::decode_utf16(b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])))
                .map(|r| r.unwrap_or('\u{FFFD}')),
        );
    }
    Ok(s)
}

/// UTF-16 byte length of a name (the unit Windows keeps the maximum name lengths in).
pub(crate) fn utf16_len(name: &str) -> u32 {
    (name.encode_utf16().count() * 2) as u32
}

/// Encodes a string as UTF-16LE with a terminating NUL (REG_SZ data).
pub fn utf16z(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for u in s.encode_utf16() {
        v.extend_from_slice(&u.to_le_bytes());
    }
    v.extend_from_slice(&[0, 0]);
    v
}

/// Decodes UTF-16LE data, stopping at the first NUL.
pub fn from_utf16z(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    char::decode_utf16(units)
        .map(|r| r.unwrap_or('\u{FFFD}'))
        .collect()
}

/// The base block checksum: XOR of the first 127 dwords, 0 mapped to 1 and -1 to -2.
pub fn base_checksum(base: &[u8]) -> u32 {
    let mut x = 0u32;
    for i in 0..127 {
        x ^= rd32(base, i * 4).unwrap_or(0);
    }
    match x {
        0 => 1,
        0xFFFF_FFFF => 0xFFFF_FFFE,
        v => v,
    }
}
