//! The shapes of WinDbg's memory commands, for kd: the address range
//! argument (`<address> [L<count> | <end address>]`), the `db`/`dw`/`dd`/
//! `dq` dump lines (`??` for bytes that could not be read), `dps` lines, the
//! `module!name+0xoffset` form of a symbol and the `*`/`?` wildcards of `x`.

use crate::kd::{parse_number, NumberError};
use core::fmt::Write;

/// The element size of a dump command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// `db`: bytes, 16 per line, with the ASCII column.
    Byte,
    /// `dw`: 16-bit words, 8 per line.
    Word,
    /// `dd`: 32-bit double words, 4 per line.
    Dword,
    /// `dq`: 64-bit quad words, 2 per line, with WinDbg's backtick.
    Qword,
}

impl Unit {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Unit::Byte => 1,
            Unit::Word => 2,
            Unit::Dword => 4,
            Unit::Qword => 8,
        }
    }

    /// Elements one line shows (16 bytes a line, as WinDbg).
    pub const fn per_line(self) -> usize {
        16 / self.size()
    }

    /// Elements shown when no length is given (WinDbg's 128 bytes).
    pub const fn default_count(self) -> u64 {
        (128 / self.size()) as u64
    }
}

/// Most elements one command shows (WinDbg refuses large ranges without
/// `L?`; kd simply caps them).
pub const MAX_COUNT: u64 = 0x1_0000;

/// Why a range argument was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeError {
    /// No address.
    Missing,
    /// A number did not parse.
    Number(NumberError),
    /// The end address is below the start, or the count is zero.
    Empty,
    /// More than [`MAX_COUNT`] elements.
    TooLarge,
}

impl core::fmt::Display for RangeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RangeError::Missing => f.write_str("Address expression missing"),
            RangeError::Number(e) => write!(f, "{e}"),
            RangeError::Empty => f.write_str("Range error: empty range"),
            RangeError::TooLarge => write!(f, "Range error: more than {MAX_COUNT:#x} elements"),
        }
    }
}

/// Parses `<address> [L<count> | L <count> | L?<count> | <end>]` into the
/// start address and the number of elements of `size` bytes (`default`
/// when no length is given). An end address is exclusive of nothing: as in
/// WinDbg, the range covers `start..=end`.
pub fn parse_range(args: &str, size: usize, default: u64) -> Result<(u64, u64), RangeError> {
    let mut words = args.split_whitespace();
    let start =
        parse_number(words.next().ok_or(RangeError::Missing)?).map_err(RangeError::Number)?;
    let count = match words.next() {
        None => default,
        Some(w) if w.starts_with(['L', 'l']) => {
            let rest = w[1..].trim_start_matches('?');
            let n = if rest.is_empty() {
                words.next().ok_or(RangeError::Number(NumberError::Empty))?
            } else {
                rest
            };
            parse_number(n).map_err(RangeError::Number)?
        }
        Some(w) => {
            let end = parse_number(w).map_err(RangeError::Number)?;
            if end < start {
                return Err(RangeError::Empty);
            }
            (end - start) / size as u64 + 1
        }
    };
    if count == 0 {
        return Err(RangeError::Empty);
    }
    if count > MAX_COUNT {
        return Err(RangeError::TooLarge);
    }
    Ok((start, count))
}

/// An address as WinDbg prints a 64-bit one: `fffff800`00400000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address(pub u64);

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:08x}`{:08x}", self.0 >> 32, self.0 as u32)
    }
}

/// Writes the dump lines of `data` read at `start`: the first `readable`
/// bytes of `data` were read, the rest print as `?`. One line per 16
/// bytes: the address, two spaces, the elements (bytes split by `-` after
/// the eighth), and for bytes the ASCII column (`.` for anything not
/// printable).
pub fn write_dump(
    w: &mut dyn Write,
    start: u64,
    data: &[u8],
    readable: usize,
    unit: Unit,
) -> core::fmt::Result {
    let size = unit.size();
    let per = unit.per_line();
    let elements = data.len() / size;
    let mut i = 0;
    while i < elements {
        let n = per.min(elements - i);
        let line = start.wrapping_add((i * size) as u64);
        write!(w, "{}  ", Address(line))?;
        for j in 0..n {
            let off = (i + j) * size;
            let ok = off + size <= readable;
            let bytes = &data[off..off + size];
            let v = bytes.iter().rev().fold(0u64, |a, &b| (a << 8) | b as u64);
            let sep = match (unit, j) {
                (_, 0) => "",
                (Unit::Byte, 8) => "-",
                _ => " ",
            };
            w.write_str(sep)?;
            match (unit, ok) {
                (Unit::Qword, true) => write!(w, "{:08x}`{:08x}", v >> 32, v as u32)?,
                (Unit::Qword, false) => w.write_str("????????`????????")?,
                (_, true) => write!(w, "{:0width$x}", v, width = size * 2)?,
                (_, false) => {
                    for _ in 0..size * 2 {
                        w.write_char('?')?;
                    }
                }
            }
        }
        if unit == Unit::Byte {
            // Pad a short last line so the ASCII column lines up.
            for _ in n..per {
                w.write_str("   ")?;
            }
            w.write_str("  ")?;
            for j in 0..n {
                let off = i + j;
                let c = data[off];
                let shown = if off < readable && (0x20..0x7F).contains(&c) {
                    c as char
                } else if off < readable {
                    '.'
                } else {
                    '?'
                };
                w.write_char(shown)?;
            }
        }
        w.write_char('\n')?;
        i += n;
    }
    Ok(())
}

/// A symbol as WinDbg names an address: `module!name` or
/// `module!name+0xoff`, or `module+0xoff` when no symbol precedes it.
#[derive(Clone, Copy, Debug)]
pub struct Symbol<'a> {
    pub module: &'a str,
    pub name: Option<&'a str>,
    pub offset: u64,
}

impl core::fmt::Display for Symbol<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.module;
        match (self.name, self.offset) {
            (Some(n), 0) => write!(f, "{m}!{n}"),
            (Some(n), o) => write!(f, "{m}!{n}+{o:#x}"),
            (None, o) => write!(f, "{m}+{o:#x}"),
        }
    }
}

/// WinDbg's module name for an image file name: the base name without its
/// extension, and `nt` for the kernel.
pub fn module_name(base_dll_name: &str) -> &str {
    let stem = base_dll_name
        .rsplit_once('.')
        .map_or(base_dll_name, |(s, _)| s);
    if stem.eq_ignore_ascii_case("ntoskrnl") || stem.eq_ignore_ascii_case("ntkrnlmp") {
        "nt"
    } else {
        stem
    }
}

/// Whether `name` matches the pattern (`*` any run, `?` one character),
/// case-insensitively as `x` matches symbols.
pub fn matches_wildcard(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // Iterative glob with one backtrack point (the last `*`); symbol names
    // are ASCII, and a multi-byte character only ever matches itself.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&n[ni])) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn dump(start: u64, data: &[u8], readable: usize, unit: Unit) -> String {
        let mut s = String::new();
        write_dump(&mut s, start, data, readable, unit).unwrap();
        s
    }

    #[test]
    fn ranges_take_a_count_or_an_end() {
        assert_eq!(parse_range("1000", 1, 0x80), Ok((0x1000, 0x80)));
        assert_eq!(parse_range("1000 L10", 1, 0x80), Ok((0x1000, 0x10)));
        assert_eq!(parse_range("1000 l 0n16", 4, 32), Ok((0x1000, 16)));
        assert_eq!(parse_range("1000 L?20", 8, 16), Ok((0x1000, 0x20)));
        assert_eq!(parse_range("1000 100f", 4, 32), Ok((0x1000, 4)));
        assert_eq!(parse_range("", 1, 0x80), Err(RangeError::Missing));
        assert_eq!(parse_range("1000 fff", 1, 0x80), Err(RangeError::Empty));
        assert_eq!(parse_range("1000 L0", 1, 0x80), Err(RangeError::Empty));
        assert_eq!(
            parse_range("1000 L100000", 1, 0x80),
            Err(RangeError::TooLarge)
        );
        assert!(matches!(
            parse_range("zz", 1, 0x80),
            Err(RangeError::Number(_))
        ));
    }

    #[test]
    fn db_lines_have_the_dash_and_the_ascii_column() {
        let data: Vec<u8> =
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00AB".to_vec();
        let s = dump(0xFFFF_F800_0040_0000, &data, data.len(), Unit::Byte);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "fffff800`00400000  4d 5a 90 00 03 00 00 00-04 00 00 00 ff ff 00 00  MZ.............."
        );
        assert_eq!(
            lines[1],
            std::format!("fffff800`00400010  41 42{}  AB", "   ".repeat(14))
        );
    }

    #[test]
    fn unreadable_bytes_are_question_marks() {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            dump(0x10, &data, 4, Unit::Dword),
            "00000000`00000010  04030201 ????????\n"
        );
        assert_eq!(
            dump(0x10, &data, 0, Unit::Qword),
            "00000000`00000010  ????????`????????\n"
        );
        assert_eq!(
            dump(0x10, &data, 8, Unit::Qword),
            "00000000`00000010  08070605`04030201\n"
        );
        assert_eq!(
            dump(0, &data[..4], 2, Unit::Word),
            "00000000`00000000  0201 ????\n"
        );
        assert!(dump(0, &data[..2], 1, Unit::Byte).ends_with("  .?\n"));
    }

    #[test]
    fn symbols_and_module_names_are_windbgs() {
        assert_eq!(module_name("ntoskrnl.exe"), "nt");
        assert_eq!(module_name("null.sys"), "null");
        assert_eq!(module_name("disk"), "disk");
        let sym = |module, name, offset| {
            std::format!(
                "{}",
                Symbol {
                    module,
                    name,
                    offset
                }
            )
        };
        assert_eq!(sym("nt", Some("KeBugCheckEx"), 0), "nt!KeBugCheckEx");
        assert_eq!(
            sym("nt", Some("KeBugCheckEx"), 0x1f),
            "nt!KeBugCheckEx+0x1f"
        );
        assert_eq!(sym("null", None, 0x1234), "null+0x1234");
    }

    #[test]
    fn wildcards_match_like_x() {
        assert!(matches_wildcard("Ke*", "KeBugCheckEx"));
        assert!(matches_wildcard("ke*ex", "KeBugCheckEx"));
        assert!(matches_wildcard("*", ""));
        assert!(matches_wildcard("K?BugCheck*", "KeBugCheckEx"));
        assert!(!matches_wildcard("Ke*", "ExAllocatePool"));
        assert!(!matches_wildcard("KeBugCheck", "KeBugCheckEx"));
        assert!(matches_wildcard("*Check*", "KeBugCheckEx"));
        assert!(matches_wildcard("a*b*c", "axxbyyc"));
        assert!(!matches_wildcard("a*b*c", "axxbyy"));
    }
}
