//! Run lists ("mapping pairs"): the VCN → LCN map of a non-resident attribute.
//!
//! Each run is a header byte (low nibble: size of the length field, high
//! nibble: size of the LCN delta field), the length, and a signed LCN delta
//! from the previous run's LCN; a zero-sized delta is a sparse run. A zero
//! header byte ends the list.

use crate::error::{Error, Result};
use alloc::vec::Vec;

/// One run: `len` clusters starting at `vcn`, at `lcn` (None = sparse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First virtual cluster.
    pub vcn: u64,
    /// Clusters in the run.
    pub len: u64,
    /// First logical cluster, or `None` for a hole.
    pub lcn: Option<u64>,
}

/// Decodes mapping pairs starting at `start_vcn`.
pub fn decode(b: &[u8], start_vcn: u64) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    let mut pos = 0usize;
    let mut vcn = start_vcn;
    let mut lcn: i64 = 0;
    loop {
        let h = *b
            .get(pos)
            .ok_or(Error::Corrupt("run list not terminated"))?;
        if h == 0 {
            break;
        }
        let ls = (h & 0xF) as usize;
        let os = (h >> 4) as usize;
        if ls == 0 || ls > 8 || os > 8 {
            return Err(Error::Corrupt("run list header"));
        }
        pos += 1;
        let lb = b
            .get(pos..pos + ls)
            .ok_or(Error::Corrupt("run list truncated"))?;
        let len = signed(lb);
        if len <= 0 {
            return Err(Error::Corrupt("run length"));
        }
        pos += ls;
        let run_lcn = if os == 0 {
            None
        } else {
            let ob = b
                .get(pos..pos + os)
                .ok_or(Error::Corrupt("run list truncated"))?;
            pos += os;
            lcn = lcn
                .checked_add(signed(ob))
                .ok_or(Error::Corrupt("run LCN overflow"))?;
            if lcn < 0 {
                return Err(Error::Corrupt("negative LCN"));
            }
            Some(lcn as u64)
        };
        runs.push(Run {
            vcn,
            len: len as u64,
            lcn: run_lcn,
        });
        vcn = vcn
            .checked_add(len as u64)
            .ok_or(Error::Corrupt("VCN overflow"))?;
        if runs.len() > 1 << 20 {
            return Err(Error::Corrupt("run list too long"));
        }
    }
    Ok(runs)
}

fn signed(b: &[u8]) -> i64 {
    let mut v: i64 = 0;
    for (i, &x) in b.iter().enumerate() {
        v |= (x as i64) << (8 * i);
    }
    let bits = 8 * b.len();
    if bits < 64 && b.last().is_some_and(|&x| x & 0x80 != 0) {
        v -= 1i64 << bits;
    }
    v
}

fn signed_len(v: i64) -> usize {
    for n in 1..8 {
        let lim = 1i64 << (8 * n - 1);
        if v >= -lim && v < lim {
            return n;
        }
    }
    8
}

/// Encodes runs (their VCNs must be contiguous) as mapping pairs with the
/// terminating zero byte.
pub fn encode(runs: &[Run]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev: i64 = 0;
    for r in runs {
        let ln = signed_len(r.len as i64);
        match r.lcn {
            Some(l) => {
                let d = l as i64 - prev;
                let on = signed_len(d);
                out.push((ln as u8) | ((on as u8) << 4));
                out.extend_from_slice(&(r.len as i64).to_le_bytes()[..ln]);
                out.extend_from_slice(&d.to_le_bytes()[..on]);
                prev = l as i64;
            }
            None => {
                out.push(ln as u8);
                out.extend_from_slice(&(r.len as i64).to_le_bytes()[..ln]);
            }
        }
    }
    out.push(0);
    out
}

/// Maps a VCN to an LCN: `Ok(Some((lcn, clusters left in run)))`, `Ok(None)`
/// with the run length for holes.
pub fn lookup(runs: &[Run], vcn: u64) -> Option<(Option<u64>, u64)> {
    let i = runs.partition_point(|r| r.vcn + r.len <= vcn);
    let r = runs.get(i)?;
    if vcn < r.vcn {
        return None;
    }
    let off = vcn - r.vcn;
    Some((r.lcn.map(|l| l + off), r.len - off))
}

/// Merges adjacent runs that continue each other.
pub fn normalize(runs: &mut Vec<Run>) {
    let mut out: Vec<Run> = Vec::with_capacity(runs.len());
    for r in runs.drain(..) {
        if r.len == 0 {
            continue;
        }
        if let Some(p) = out.last_mut() {
            let cont = match (p.lcn, r.lcn) {
                (Some(a), Some(b)) => a + p.len == b,
                (None, None) => true,
                _ => false,
            };
            if cont && p.vcn + p.len == r.vcn {
                p.len += r.len;
                continue;
            }
        }
        out.push(r);
    }
    *runs = out;
}

/// Total clusters covered (the end VCN).
pub fn end_vcn(runs: &[Run]) -> u64 {
    runs.last().map(|r| r.vcn + r.len).unwrap_or(0)
}
