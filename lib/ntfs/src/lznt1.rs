//! LZNT1, the compression NTFS applies per compression unit (16 clusters)
//! of a compressed stream. Data is a sequence of chunks of at most 4096
//! decompressed bytes, each with a 16-bit header.

use crate::error::{Error, Result};

/// Decompresses `src` into `out`; returns the number of bytes produced.
/// Output past the produced bytes is left as is (callers zero it).
pub fn decompress(src: &[u8], out: &mut [u8]) -> Result<usize> {
    let mut s = 0usize;
    let mut o = 0usize;
    while s + 2 <= src.len() && o < out.len() {
        let h = u16::from_le_bytes([src[s], src[s + 1]]);
        if h == 0 {
            break;
        }
        let size = (h & 0x0FFF) as usize + 1;
        s += 2;
        let chunk = src
            .get(s..s + size)
            .ok_or(Error::Corrupt("LZNT1 chunk truncated"))?;
        s += size;
        let chunk_out_start = o;
        let chunk_out_end = core::cmp::min(out.len(), o + 4096);
        if h & 0x8000 == 0 {
            let n = core::cmp::min(chunk.len(), chunk_out_end - o);
            out[o..o + n].copy_from_slice(&chunk[..n]);
            o += n;
            continue;
        }
        let mut c = 0usize;
        while c < chunk.len() && o < chunk_out_end {
            let flags = chunk[c];
            c += 1;
            for bit in 0..8 {
                if c >= chunk.len() || o >= chunk_out_end {
                    break;
                }
                if flags & (1 << bit) == 0 {
                    out[o] = chunk[c];
                    o += 1;
                    c += 1;
                } else {
                    let t = u16::from_le_bytes([
                        chunk[c],
                        *chunk
                            .get(c + 1)
                            .ok_or(Error::Corrupt("LZNT1 token truncated"))?,
                    ]);
                    c += 2;
                    let pos = o - chunk_out_start;
                    let mut len_bits = 12u32;
                    let mut p = pos.saturating_sub(1);
                    while p >= 0x10 {
                        len_bits -= 1;
                        p >>= 1;
                    }
                    let len = (t as usize & ((1 << len_bits) - 1)) + 3;
                    let back = (t as usize >> len_bits) + 1;
                    if back > pos {
                        return Err(Error::Corrupt("LZNT1 back reference before chunk"));
                    }
                    for _ in 0..len {
                        if o >= chunk_out_end {
                            break;
                        }
                        out[o] = out[o - back];
                        o += 1;
                    }
                }
            }
        }
    }
    Ok(o)
}

/// Compresses `src` (tests; a greedy matcher). Output decompresses with
/// [`decompress`].
pub fn compress(src: &[u8]) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::new();
    for chunk in src.chunks(4096) {
        let mut body = alloc::vec::Vec::new();
        let mut i = 0usize;
        while i < chunk.len() {
            let flag_at = body.len();
            body.push(0u8);
            for bit in 0..8 {
                if i >= chunk.len() {
                    break;
                }
                let mut len_bits = 12u32;
                let mut p = i.saturating_sub(1);
                while p >= 0x10 {
                    len_bits -= 1;
                    p >>= 1;
                }
                let max_len = (1usize << len_bits) + 2;
                let max_back = 1usize << (16 - len_bits);
                let (mut best_len, mut best_back) = (0, 0);
                let start = i.saturating_sub(max_back);
                for j in start..i {
                    let mut l = 0;
                    while i + l < chunk.len() && l < max_len && chunk[j + l] == chunk[i + l] {
                        l += 1;
                    }
                    if l > best_len {
                        best_len = l;
                        best_back = i - j;
                    }
                }
                if best_len >= 3 {
                    let t = (((best_back - 1) << len_bits) | (best_len - 3)) as u16;
                    body.extend_from_slice(&t.to_le_bytes());
                    body[flag_at] |= 1 << bit;
                    i += best_len;
                } else {
                    body.push(chunk[i]);
                    i += 1;
                }
            }
        }
        if body.len() < chunk.len() {
            let h = 0xB000u16 | (body.len() as u16 - 1);
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(&body);
        } else {
            let h = 0x3000u16 | (chunk.len() as u16 - 1);
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(chunk);
        }
    }
    out
}
