//! Counted strings (`UNICODE_STRING`, `ANSI_STRING`): lengths, comparisons
//! and conversions. Buffers are slices; ntdll's exports turn the C
//! structures into slices and write the lengths back.
//!
//! ANSI here is ntrs's honest subset: Latin-1 (ISO 8859-1), where each byte
//! is the UTF-16 unit of the same value. Windows uses the system ANSI code
//! page (1252 on an English system), which differs from Latin-1 only in
//! 0x80..=0x9F; a UTF-16 unit with no Latin-1 byte becomes `?`, as
//! Windows' default character. Multi-byte code pages are not done.

use crate::upcase::upcase;
use nt::status::*;
use nt::NtStatus;

/// `RtlInitUnicodeString`: `(Length, MaximumLength)` in bytes for a
/// NUL-terminated source of `units` UTF-16 units (not counting the NUL).
/// A source longer than a counted string can hold is cut to 0xFFFC bytes
/// (0xFFFE with the NUL), as Windows does.
pub fn init_unicode_lengths(units: usize) -> (u16, u16) {
    let bytes = units.saturating_mul(2);
    if bytes > 0xFFFC {
        (0xFFFC, 0xFFFE)
    } else {
        (bytes as u16, bytes as u16 + 2)
    }
}

/// `RtlInitUnicodeStringEx`: as [`init_unicode_lengths`], but a source too
/// long is `STATUS_NAME_TOO_LONG`.
pub fn init_unicode_lengths_ex(units: usize) -> Result<(u16, u16), NtStatus> {
    if units.saturating_mul(2) > 0xFFFC {
        return Err(STATUS_NAME_TOO_LONG);
    }
    Ok(init_unicode_lengths(units))
}

/// `RtlInitAnsiString`: `(Length, MaximumLength)` for a NUL-terminated
/// source of `bytes` bytes; cut to 0xFFFE (0xFFFF with the NUL).
pub fn init_ansi_lengths(bytes: usize) -> (u16, u16) {
    if bytes > 0xFFFE {
        (0xFFFE, 0xFFFF)
    } else {
        (bytes as u16, bytes as u16 + 1)
    }
}

/// `RtlCompareUnicodeString`: the difference of the first units that
/// differ (upper-cased first when `case_insensitive`), else the difference
/// of the lengths in bytes. Negative, zero or positive like `memcmp`.
pub fn compare_unicode(a: &[u16], b: &[u16], case_insensitive: bool) -> i32 {
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = if case_insensitive {
            (upcase(x), upcase(y))
        } else {
            (x, y)
        };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    (a.len() as i32 - b.len() as i32) * 2
}

/// `RtlEqualUnicodeString`.
pub fn equal_unicode(a: &[u16], b: &[u16], case_insensitive: bool) -> bool {
    a.len() == b.len() && compare_unicode(a, b, case_insensitive) == 0
}

/// `RtlPrefixUnicodeString`: whether `prefix` starts `s`.
pub fn prefix_unicode(prefix: &[u16], s: &[u16], case_insensitive: bool) -> bool {
    prefix.len() <= s.len() && equal_unicode(prefix, &s[..prefix.len()], case_insensitive)
}

/// `RtlCompareString` (ANSI, Latin-1 upper case).
pub fn compare_ansi(a: &[u8], b: &[u8], case_insensitive: bool) -> i32 {
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = if case_insensitive {
            (crate::upcase::upcase_ansi(x), crate::upcase::upcase_ansi(y))
        } else {
            (x, y)
        };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    a.len() as i32 - b.len() as i32
}

/// The Latin-1 byte for a UTF-16 unit, `?` when there is none.
pub fn unicode_to_ansi_char(c: u16) -> u8 {
    if c < 0x100 {
        c as u8
    } else {
        b'?'
    }
}

/// `RtlUnicodeStringToAnsiString` into a caller's buffer (`dst` is the
/// whole `MaximumLength`): returns the new `Length` and the status. The
/// result is NUL-terminated. A source whose ANSI form (with its NUL) passes
/// 0xFFFF bytes is `STATUS_INVALID_PARAMETER_2`; a buffer too small gets
/// what fits (with the NUL) and `STATUS_BUFFER_OVERFLOW`.
pub fn unicode_string_to_ansi(src: &[u16], dst: &mut [u8]) -> (u16, NtStatus) {
    if src.len() + 1 > 0xFFFF {
        return (0, STATUS_INVALID_PARAMETER_2);
    }
    let (n, status) = if dst.len() > src.len() {
        (src.len(), STATUS_SUCCESS)
    } else if dst.is_empty() {
        return (0, STATUS_BUFFER_OVERFLOW);
    } else {
        (dst.len() - 1, STATUS_BUFFER_OVERFLOW)
    };
    for (d, &s) in dst.iter_mut().zip(&src[..n]) {
        *d = unicode_to_ansi_char(s);
    }
    dst[n] = 0;
    (n as u16, status)
}

/// `RtlAnsiStringToUnicodeString` into a caller's buffer (`dst` is the
/// whole `MaximumLength` in units): returns the new `Length` in bytes and
/// the status, as [`unicode_string_to_ansi`] (the limit is 0xFFFE bytes
/// with the NUL).
pub fn ansi_string_to_unicode(src: &[u8], dst: &mut [u16]) -> (u16, NtStatus) {
    if (src.len() + 1) * 2 > 0xFFFE {
        return (0, STATUS_INVALID_PARAMETER_2);
    }
    let (n, status) = if dst.len() > src.len() {
        (src.len(), STATUS_SUCCESS)
    } else if dst.is_empty() {
        return (0, STATUS_BUFFER_OVERFLOW);
    } else {
        (dst.len() - 1, STATUS_BUFFER_OVERFLOW)
    };
    for (d, &s) in dst.iter_mut().zip(&src[..n]) {
        *d = s as u16;
    }
    dst[n] = 0;
    ((n * 2) as u16, status)
}

/// `RtlUpcaseUnicodeString` into a caller's buffer: `STATUS_BUFFER_OVERFLOW`
/// (nothing written) when `dst` is shorter than `src`.
pub fn upcase_unicode_string(src: &[u16], dst: &mut [u16]) -> Result<u16, NtStatus> {
    if dst.len() < src.len() {
        return Err(STATUS_BUFFER_OVERFLOW);
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = upcase(s);
    }
    Ok((src.len() * 2) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn init_lengths() {
        assert_eq!(init_unicode_lengths(0), (0, 2));
        assert_eq!(init_unicode_lengths(5), (10, 12));
        assert_eq!(init_unicode_lengths(0x7FFE), (0xFFFC, 0xFFFE));
        assert_eq!(init_unicode_lengths(0x7FFF), (0xFFFC, 0xFFFE));
        assert_eq!(init_unicode_lengths(usize::MAX), (0xFFFC, 0xFFFE));
        assert_eq!(init_unicode_lengths_ex(0x7FFF), Err(STATUS_NAME_TOO_LONG));
        assert_eq!(init_unicode_lengths_ex(3), Ok((6, 8)));
        assert_eq!(init_ansi_lengths(3), (3, 4));
        assert_eq!(init_ansi_lengths(0x1_0000), (0xFFFE, 0xFFFF));
    }

    #[test]
    fn comparisons() {
        assert_eq!(compare_unicode(&w("abc"), &w("abc"), false), 0);
        assert!(compare_unicode(&w("abc"), &w("abd"), false) < 0);
        assert!(compare_unicode(&w("abc"), &w("ABC"), false) > 0);
        assert_eq!(compare_unicode(&w("abc"), &w("ABC"), true), 0);
        assert!(compare_unicode(&w("ab"), &w("abc"), true) < 0);
        assert!(compare_unicode(&w("abcd"), &w("ABC"), true) > 0);
        assert!(equal_unicode(&w("Straße"), &w("STRAßE"), true));
        assert!(equal_unicode(&w("ÉTÉ"), &w("été"), true));
        assert!(!equal_unicode(&w("été"), &w("ÉTÉ"), false));
        assert!(!equal_unicode(&w("a"), &w("ab"), true));
        assert!(prefix_unicode(&w("\\??\\"), &w("\\??\\C:\\x"), false));
        assert!(prefix_unicode(
            &w("\\sYstemroot"),
            &w("\\SystemRoot\\x"),
            true
        ));
        assert!(!prefix_unicode(
            &w("\\SystemRoot\\x\\y"),
            &w("\\SystemRoot\\x"),
            true
        ));
        assert_eq!(compare_ansi(b"hello", b"HELLO", true), 0);
        assert!(compare_ansi(b"hello", b"HELLO", false) > 0);
    }

    #[test]
    fn conversions() {
        let mut a = [0xAAu8; 8];
        assert_eq!(
            unicode_string_to_ansi(&w("héllo€"), &mut a),
            (6, STATUS_SUCCESS)
        );
        assert_eq!(&a[..7], b"h\xE9llo?\0");
        let mut small = [0xAAu8; 4];
        assert_eq!(
            unicode_string_to_ansi(&w("hello"), &mut small),
            (3, STATUS_BUFFER_OVERFLOW)
        );
        assert_eq!(&small, b"hel\0");
        assert_eq!(
            unicode_string_to_ansi(&w("x"), &mut []),
            (0, STATUS_BUFFER_OVERFLOW)
        );
        let long = vec![0x41u16; 0xFFFF];
        assert_eq!(
            unicode_string_to_ansi(&long, &mut a).1,
            STATUS_INVALID_PARAMETER_2
        );
        let mut u = [0xAAAAu16; 8];
        assert_eq!(
            ansi_string_to_unicode(b"h\xE9llo", &mut u),
            (10, STATUS_SUCCESS)
        );
        assert_eq!(&u[..6], &[0x68, 0xE9, 0x6C, 0x6C, 0x6F, 0]);
        let mut us = [0u16; 3];
        assert_eq!(
            ansi_string_to_unicode(b"hello", &mut us),
            (4, STATUS_BUFFER_OVERFLOW)
        );
        assert_eq!(us, [0x68, 0x65, 0]);
        assert_eq!(
            ansi_string_to_unicode(&[b'a'; 0x7FFF], &mut u).1,
            STATUS_INVALID_PARAMETER_2
        );
        let mut up = [0u16; 4];
        assert_eq!(upcase_unicode_string(&w("aé1"), &mut up), Ok(6));
        assert_eq!(&up[..3], &w("AÉ1")[..]);
        assert_eq!(
            upcase_unicode_string(&w("abcde"), &mut up),
            Err(STATUS_BUFFER_OVERFLOW)
        );
    }

    proptest::proptest! {
        /// Latin-1 text survives ANSI -> Unicode -> ANSI unchanged.
        #[test]
        fn latin1_round_trips(s in proptest::collection::vec(1u8..=255, 0..200)) {
            let mut u = vec![0u16; s.len() + 1];
            let (ul, st) = ansi_string_to_unicode(&s, &mut u);
            proptest::prop_assert_eq!((ul as usize, st), (s.len() * 2, STATUS_SUCCESS));
            let mut back = vec![0u8; s.len() + 1];
            let (al, st) = unicode_string_to_ansi(&u[..s.len()], &mut back);
            proptest::prop_assert_eq!((al as usize, st), (s.len(), STATUS_SUCCESS));
            proptest::prop_assert_eq!(&back[..s.len()], &s[..]);
        }

        /// Case-insensitive equality is equality of the upper-cased strings,
        /// and comparison is antisymmetric.
        #[test]
        fn case_insensitive_compare_is_consistent(a in "[a-zA-Zéèàß0-9]{0,12}", b in "[a-zA-Zéèàß0-9]{0,12}") {
            let (x, y) = (w(&a), w(&b));
            let ux: Vec<u16> = x.iter().map(|&c| upcase(c)).collect();
            let uy: Vec<u16> = y.iter().map(|&c| upcase(c)).collect();
            proptest::prop_assert_eq!(equal_unicode(&x, &y, true), ux == uy);
            proptest::prop_assert_eq!(compare_unicode(&x, &y, true).signum(), -compare_unicode(&y, &x, true).signum());
            proptest::prop_assert_eq!(compare_unicode(&x, &y, false).signum(), match x.cmp(&y) {
                core::cmp::Ordering::Less => -1, core::cmp::Ordering::Equal => 0, core::cmp::Ordering::Greater => 1 });
        }
    }
}
