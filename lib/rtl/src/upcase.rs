//! `RtlUpcaseUnicodeChar`: Windows' upper-case table (the one its NLS data
//! gives and NTFS copies into `$UpCase`), as runs: each of `count` code units
//! `first + k * stride` maps to itself plus `delta` (mod 2^16); every other
//! unit maps to itself. The runs are the ones lib/ntfs formats `$UpCase`
//! from (`ntfs::upcase`), and a test checks the two tables are equal.
//! Lookups binary-search the runs: no 128 KiB table in memory.

/// (first code unit, count, stride, delta).
const RUNS: &[(u16, u16, u8, u16)] = &[
    (0x0061, 26, 1, 0xffe0),
    (0x00e0, 23, 1, 0xffe0),
    (0x00f8, 7, 1, 0xffe0),
    (0x00ff, 1, 1, 0x0079),
    (0x0101, 24, 2, 0xffff),
    (0x0133, 3, 2, 0xffff),
    (0x013a, 8, 2, 0xffff),
    (0x014b, 23, 2, 0xffff),
    (0x017a, 3, 2, 0xffff),
    (0x0180, 1, 1, 0x00c3),
    (0x0183, 2, 2, 0xffff),
    (0x0188, 1, 1, 0xffff),
    (0x018c, 1, 1, 0xffff),
    (0x0192, 1, 1, 0xffff),
    (0x0195, 1, 1, 0x0061),
    (0x0199, 1, 1, 0xffff),
    (0x019a, 1, 1, 0x00a3),
    (0x019e, 1, 1, 0x0082),
    (0x01a1, 3, 2, 0xffff),
    (0x01a8, 1, 1, 0xffff),
    (0x01ad, 1, 1, 0xffff),
    (0x01b0, 1, 1, 0xffff),
    (0x01b4, 2, 2, 0xffff),
    (0x01b9, 1, 1, 0xffff),
    (0x01bd, 1, 1, 0xffff),
    (0x01bf, 1, 1, 0x0038),
    (0x01c6, 1, 1, 0xfffe),
    (0x01c9, 1, 1, 0xfffe),
    (0x01cc, 1, 1, 0xfffe),
    (0x01ce, 8, 2, 0xffff),
    (0x01dd, 1, 1, 0xffb1),
    (0x01df, 9, 2, 0xffff),
    (0x01f3, 1, 1, 0xfffe),
    (0x01f5, 1, 1, 0xffff),
    (0x01f9, 20, 2, 0xffff),
    (0x0223, 9, 2, 0xffff),
    (0x023c, 1, 1, 0xffff),
    (0x0242, 1, 1, 0xffff),
    (0x0247, 5, 2, 0xffff),
    (0x0250, 1, 1, 0x2a1f),
    (0x0251, 1, 1, 0x2a1c),
    (0x0253, 1, 1, 0xff2e),
    (0x0254, 1, 1, 0xff32),
    (0x0256, 2, 1, 0xff33),
    (0x0259, 1, 1, 0xff36),
    (0x025b, 1, 1, 0xff35),
    (0x0260, 1, 1, 0xff33),
    (0x0263, 1, 1, 0xff31),
    (0x0268, 1, 1, 0xff2f),
    (0x0269, 1, 1, 0xff2d),
    (0x026b, 1, 1, 0x29f7),
    (0x026f, 1, 1, 0xff2d),
    (0x0271, 1, 1, 0x29fd),
    (0x0272, 1, 1, 0xff2b),
    (0x0275, 1, 1, 0xff2a),
    (0x027d, 1, 1, 0x29e7),
    (0x0280, 1, 1, 0xff26),
    (0x0283, 1, 1, 0xff26),
    (0x0288, 1, 1, 0xff26),
    (0x0289, 1, 1, 0xffbb),
    (0x028a, 2, 1, 0xff27),
    (0x028c, 1, 1, 0xffb9),
    (0x0292, 1, 1, 0xff25),
    (0x0371, 2, 2, 0xffff),
    (0x0377, 1, 1, 0xffff),
    (0x037b, 3, 1, 0x0082),
    (0x03ac, 1, 1, 0xffda),
    (0x03ad, 3, 1, 0xffdb),
    (0x03b1, 17, 1, 0xffe0),
    (0x03c3, 9, 1, 0xffe0),
    (0x03cc, 1, 1, 0xffc0),
    (0x03cd, 2, 1, 0xffc1),
    (0x03d7, 1, 1, 0xfff8),
    (0x03d9, 12, 2, 0xffff),
    (0x03f2, 1, 1, 0x0007),
    (0x03f8, 1, 1, 0xffff),
    (0x03fb, 1, 1, 0xffff),
    (0x0430, 32, 1, 0xffe0),
    (0x0450, 16, 1, 0xffb0),
    (0x0461, 17, 2, 0xffff),
    (0x048b, 27, 2, 0xffff),
    (0x04c2, 7, 2, 0xffff),
    (0x04cf, 1, 1, 0xfff1),
    (0x04d1, 42, 2, 0xffff),
    (0x0561, 38, 1, 0xffd0),
    (0x1d79, 1, 1, 0x8a04),
    (0x1d7d, 1, 1, 0x0ee6),
    (0x1e01, 75, 2, 0xffff),
    (0x1ea1, 48, 2, 0xffff),
    (0x1f00, 8, 1, 0x0008),
    (0x1f10, 6, 1, 0x0008),
    (0x1f20, 8, 1, 0x0008),
    (0x1f30, 8, 1, 0x0008),
    (0x1f40, 6, 1, 0x0008),
    (0x1f51, 4, 2, 0x0008),
    (0x1f60, 8, 1, 0x0008),
    (0x1f70, 2, 1, 0x004a),
    (0x1f72, 4, 1, 0x0056),
    (0x1f76, 2, 1, 0x0064),
    (0x1f78, 2, 1, 0x0080),
    (0x1f7a, 2, 1, 0x0070),
    (0x1f7c, 2, 1, 0x007e),
    (0x1f80, 8, 1, 0x0008),
    (0x1f90, 8, 1, 0x0008),
    (0x1fa0, 8, 1, 0x0008),
    (0x1fb0, 2, 1, 0x0008),
    (0x1fb3, 1, 1, 0x0009),
    (0x1fc3, 1, 1, 0x0009),
    (0x1fd0, 2, 1, 0x0008),
    (0x1fe0, 2, 1, 0x0008),
    (0x1fe5, 1, 1, 0x0007),
    (0x1ff3, 1, 1, 0x0009),
    (0x214e, 1, 1, 0xffe4),
    (0x2170, 16, 1, 0xfff0),
    (0x2184, 1, 1, 0xffff),
    (0x24d0, 26, 1, 0xffe6),
    (0x2c30, 47, 1, 0xffd0),
    (0x2c61, 1, 1, 0xffff),
    (0x2c65, 1, 1, 0xd5d5),
    (0x2c66, 1, 1, 0xd5d8),
    (0x2c68, 3, 2, 0xffff),
    (0x2c73, 1, 1, 0xffff),
    (0x2c76, 1, 1, 0xffff),
    (0x2c81, 50, 2, 0xffff),
    (0x2d00, 38, 1, 0xe3a0),
    (0xa641, 16, 2, 0xffff),
    (0xa663, 6, 2, 0xffff),
    (0xa681, 12, 2, 0xffff),
    (0xa723, 7, 2, 0xffff),
    (0xa733, 31, 2, 0xffff),
    (0xa77a, 2, 2, 0xffff),
    (0xa77f, 5, 2, 0xffff),
    (0xa78c, 1, 1, 0xffff),
    (0xff41, 26, 1, 0xffe0),
];

/// The longest distance from a run's first unit to its last.
const MAX_SPAN: u32 = {
    let mut m = 0;
    let mut i = 0;
    while i < RUNS.len() {
        let span = (RUNS[i].1 as u32 - 1) * RUNS[i].2 as u32;
        if span > m {
            m = span;
        }
        i += 1;
    }
    m
};

/// `RtlUpcaseUnicodeChar`.
pub fn upcase(c: u16) -> u16 {
    // Runs starting at or below `c`, nearest first, while one could still
    // reach it (runs with a stride of 2 interleave, so the nearest is not
    // always the one).
    let i = RUNS.partition_point(|r| r.0 <= c);
    for &(first, count, stride, delta) in RUNS[..i].iter().rev() {
        let off = (c - first) as u32;
        if off > MAX_SPAN {
            break;
        }
        if off.is_multiple_of(stride as u32) && off / (stride as u32) < count as u32 {
            return c.wrapping_add(delta);
        }
    }
    c
}

/// `RtlDowncaseUnicodeChar`: the unit whose upper case is `c`, when `c` is
/// an upper-case letter of the table (the lowest such unit), else `c`.
pub fn downcase(c: u16) -> u16 {
    for &(first, count, stride, delta) in RUNS {
        let up_first = first.wrapping_add(delta);
        let off = c.wrapping_sub(up_first) as u32;
        if off.is_multiple_of(stride as u32) && off / (stride as u32) < count as u32 {
            return first + off as u16;
        }
    }
    c
}

/// ASCII-only upper case (`RtlUpperChar` for the characters ntrs's ANSI
/// subset maps one-to-one).
pub fn upcase_ansi(c: u8) -> u8 {
    let u = upcase(c as u16);
    if u < 0x100 {
        u as u8
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_the_ntfs_upcase_table() {
        let t = ntfs::upcase::default_table();
        for c in 0..=0xFFFFu16 {
            assert_eq!(upcase(c), t[c as usize], "{c:#x}");
        }
    }

    #[test]
    fn runs_are_sorted_and_disjoint() {
        for w in RUNS.windows(2) {
            assert!(w[0].0 < w[1].0);
        }
    }

    #[test]
    fn known_letters() {
        assert_eq!(upcase(b'a' as u16), b'A' as u16);
        assert_eq!(upcase(b'{' as u16), b'{' as u16);
        assert_eq!(upcase(0xE9), 0xC9); // e acute
        assert_eq!(upcase(0xFF), 0x178); // y diaeresis
        assert_eq!(upcase(0xDF), 0xDF); // sharp s has no one-unit upper case
        assert_eq!(upcase(0x3B1), 0x391); // alpha
        assert_eq!(upcase(0x430), 0x410); // Cyrillic a
        assert_eq!(upcase(0xFF41), 0xFF21); // fullwidth a
        assert_eq!(downcase(0xC9), 0xE9);
        assert_eq!(downcase(b'Q' as u16), b'q' as u16);
        assert_eq!(downcase(b'1' as u16), b'1' as u16);
        assert_eq!(upcase_ansi(b'z'), b'Z');
        assert_eq!(upcase_ansi(0xFF), 0xFF); // its upper case is outside Latin-1
    }

    #[test]
    fn downcase_inverts_upcase_on_letters() {
        for c in 0..=0xFFFFu16 {
            let u = upcase(c);
            if u != c {
                assert_eq!(upcase(downcase(u)), u, "{c:#x}");
            }
        }
    }
}
