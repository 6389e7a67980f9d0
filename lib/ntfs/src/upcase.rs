//! `$UpCase`: the 64 Ki-entry table mapping each UTF-16 code unit to its upper
//! case, used to collate `$I30` entries (`COLLATION_FILE_NAME`).

use alloc::vec::Vec;
use core::cmp::Ordering;

/// Builds the table our formatter writes: each BMP code point mapped by
/// Unicode simple upper-casing when that yields a single BMP code point.
pub fn default_table() -> Vec<u16> {
    let mut t = Vec::with_capacity(65536);
    for u in 0..=0xFFFFu32 {
        let up = char::from_u32(u)
            .and_then(|c| {
                let mut it = c.to_uppercase();
                let first = it.next()?;
                if it.next().is_some() {
                    return None;
                }
                u16::try_from(first as u32).ok()
            })
            .unwrap_or(u as u16);
        t.push(up);
    }
    t
}

/// Upper-cases one code unit (identity when the table is short).
#[inline]
pub fn up(table: &[u16], c: u16) -> u16 {
    table.get(c as usize).copied().unwrap_or(c)
}

/// Compares two names ignoring case.
pub fn cmp_ignore_case(table: &[u16], a: &[u16], b: &[u16]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let (ux, uy) = (up(table, *x), up(table, *y));
        if ux != uy {
            return ux.cmp(&uy);
        }
    }
    a.len().cmp(&b.len())
}

/// `COLLATION_FILE_NAME`: case-insensitive order, ties broken by the exact
/// code units (so POSIX names that differ only in case have an order).
pub fn collate_names(table: &[u16], a: &[u16], b: &[u16]) -> Ordering {
    cmp_ignore_case(table, a, b).then_with(|| a.cmp(b))
}
