//! The `printf` formatter behind `DbgPrint`, `DbgPrintEx` and `vDbgPrintEx`
//! (and, later, the `RtlStringCb*Printf` family), with the conversions and
//! size prefixes of the Microsoft C runtime on x64 (LLP64: `int` and `long`
//! are 32 bits, `long long`, `I64`, `I`, `z`, `j`, `t` and pointers 64).
//!
//! The argument list is a Windows x64 `va_list`: one 8-byte slot per
//! argument, in order ([`VaArgs`]). Strings the arguments point at are read
//! through [`ArgMemory`], so the kernel can refuse an address it knows is
//! not mapped instead of faulting (NT's routine takes an exception under
//! `__try`; ntrs has no kernel SEH yet). `%s` of a NULL pointer prints
//! `(null)` as Windows does; an unreadable pointer prints `(invalid)`
//! (ntrs's choice: Windows would stop formatting at the exception).
//!
//! Supported: flags `-` `+` space `#` `0`; width and precision as digits or
//! `*` (a negative `*` width left-justifies, a negative precision is
//! ignored); sizes `h` `hh` `l` `ll` `L` `w` `I` `I32` `I64` `z` `j` `t`;
//! conversions `d i u o x X p c C s S Z %`, with `%wZ` a `UNICODE_STRING`
//! and `%Z` an `ANSI_STRING`, `%hs`/`%hc` narrow and `%ls`/`%ws`/`%lc`/`%wc`
//! wide. Wide characters above 0x7F print as `?` (the debug port is 7-bit
//! ASCII here; Windows converts through the ANSI code page). Floating point
//! (`%e %f %g %a`, which DbgPrint does not support) and `%n` consume their
//! slot and print the conversion as written.

/// The arguments after the format string: a Windows x64 `va_list`.
pub trait VaArgs {
    /// The next 8-byte argument slot.
    fn next_slot(&mut self) -> u64;
}

/// Reads memory an argument points at.
pub trait ArgMemory {
    /// Fills `out` from `addr`; `false` if any byte cannot be read safely.
    fn read(&self, addr: u64, out: &mut [u8]) -> bool;
}

/// An argument list over a slice of slots (host tests, and a kernel
/// `va_list` already validated); past the end every slot reads 0.
pub struct SliceArgs<'a> {
    slots: &'a [u64],
    next: usize,
}

impl<'a> SliceArgs<'a> {
    /// The argument list `slots`.
    pub fn new(slots: &'a [u64]) -> Self {
        SliceArgs { slots, next: 0 }
    }
}

impl VaArgs for SliceArgs<'_> {
    fn next_slot(&mut self) -> u64 {
        let v = self.slots.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        v
    }
}

/// A bounded output buffer: bytes past the capacity are dropped (DbgPrint
/// sends at most 512 bytes per call).
pub struct Output<'a> {
    buf: &'a mut [u8],
    len: usize,
    truncated: bool,
}

impl<'a> Output<'a> {
    /// Output into `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Output {
            buf,
            len: 0,
            truncated: false,
        }
    }
    /// The bytes written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// Whether output was dropped for want of room.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
    /// Appends one byte (dropped when full).
    pub fn push_byte(&mut self, b: u8) {
        self.push(b);
    }
    fn push(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
            self.len += 1;
        } else {
            self.truncated = true;
        }
    }
    fn push_all(&mut self, s: &[u8]) {
        for &b in s {
            self.push(b);
        }
    }
    fn pad(&mut self, b: u8, n: usize) {
        for _ in 0..n {
            self.push(b);
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Size {
    Default,
    Char,
    Short,
    Long,
    Int64,
    Wide,
}

/// The longest string a `%s` reads (a guard against a missing NUL).
const MAX_STRING: usize = 4096;

/// Formats `format` with `args` into `out`.
pub fn format(format: &[u8], args: &mut impl VaArgs, mem: &impl ArgMemory, out: &mut Output) {
    let mut i = 0;
    while i < format.len() {
        let c = format[i];
        i += 1;
        if c != b'%' {
            out.push(c);
            continue;
        }
        let start = i - 1;
        let mut spec = Spec::default();
        while i < format.len() {
            match format[i] {
                b'-' => spec.left = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                b'#' => spec.alt = true,
                b'0' => spec.zero = true,
                _ => break,
            }
            i += 1;
        }
        if i < format.len() && format[i] == b'*' {
            i += 1;
            let w = args.next_slot() as u32 as i32;
            if w < 0 {
                spec.left = true;
            }
            spec.width = w.unsigned_abs() as usize;
        } else {
            spec.width = digits(format, &mut i);
        }
        if i < format.len() && format[i] == b'.' {
            i += 1;
            if i < format.len() && format[i] == b'*' {
                i += 1;
                let p = args.next_slot() as u32 as i32;
                spec.precision = (p >= 0).then_some(p as usize);
            } else {
                spec.precision = Some(digits(format, &mut i));
            }
        }
        let mut size = Size::Default;
        let rest = &format[i..];
        let (s, n) = if rest.starts_with(b"I64") {
            (Size::Int64, 3)
        } else if rest.starts_with(b"I32") {
            (Size::Default, 3)
        } else if rest.starts_with(b"ll") {
            (Size::Int64, 2)
        } else if rest.starts_with(b"hh") {
            (Size::Char, 2)
        } else {
            match rest.first() {
                Some(b'I' | b'z' | b'j' | b't') => (Size::Int64, 1),
                Some(b'l') => (Size::Long, 1),
                Some(b'L') => (Size::Int64, 1),
                Some(b'h') => (Size::Short, 1),
                Some(b'w') => (Size::Wide, 1),
                _ => (Size::Default, 0),
            }
        };
        if n > 0 {
            size = s;
            i += n;
        }
        let Some(&conv) = format.get(i) else {
            out.push_all(&format[start..]);
            return;
        };
        i += 1;
        match conv {
            b'%' => out.push(b'%'),
            b'd' | b'i' => {
                let v = signed(args.next_slot(), size);
                integer(out, &spec, v.unsigned_abs(), v < 0, 10, false, b"");
            }
            b'u' | b'o' | b'x' | b'X' => {
                let v = unsigned(args.next_slot(), size);
                let (base, upper) = match conv {
                    b'u' => (10, false),
                    b'o' => (8, false),
                    b'x' => (16, false),
                    _ => (16, true),
                };
                let prefix: &[u8] = match (spec.alt && v != 0, conv) {
                    (true, b'x') => b"0x",
                    (true, b'X') => b"0X",
                    (true, b'o') => b"0",
                    _ => b"",
                };
                let s = Spec {
                    plus: false,
                    space: false,
                    ..spec
                };
                integer(out, &s, v, false, base, upper, prefix);
            }
            b'p' => {
                let v = args.next_slot();
                let s = Spec {
                    plus: false,
                    space: false,
                    precision: Some(16),
                    ..spec
                };
                integer(out, &s, v, false, 16, true, b"");
            }
            b'c' | b'C' => {
                let v = args.next_slot();
                let wide = matches!((conv, size), (b'c', Size::Long | Size::Wide))
                    || (conv == b'C' && size != Size::Short);
                let b = if wide { narrow(v as u16) } else { v as u8 };
                justify(out, &spec, 1, |o| o.push(b));
            }
            b's' | b'S' => {
                let p = args.next_slot();
                let wide = matches!((conv, size), (b's', Size::Long | Size::Wide))
                    || (conv == b'S' && size != Size::Short);
                if p == 0 {
                    text(out, &spec, b"(null)");
                } else if wide {
                    wide_string(out, &spec, mem, p, None);
                } else {
                    narrow_string(out, &spec, mem, p, None);
                }
            }
            b'Z' => {
                let p = args.next_slot();
                counted_string(out, &spec, mem, p, size == Size::Wide || size == Size::Long);
            }
            b'e' | b'E' | b'f' | b'F' | b'g' | b'G' | b'a' | b'A' | b'n' => {
                let _ = args.next_slot();
                out.push_all(&format[start..i]);
            }
            _ => out.push_all(&format[start..i]),
        }
    }
}

fn digits(f: &[u8], i: &mut usize) -> usize {
    let mut v: usize = 0;
    while *i < f.len() && f[*i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add((f[*i] - b'0') as usize);
        *i += 1;
    }
    v.min(4096)
}

fn signed(v: u64, size: Size) -> i64 {
    match size {
        Size::Int64 => v as i64,
        Size::Char => v as u8 as i8 as i64,
        Size::Short => v as u16 as i16 as i64,
        _ => v as u32 as i32 as i64,
    }
}

fn unsigned(v: u64, size: Size) -> u64 {
    match size {
        Size::Int64 => v,
        Size::Char => v as u8 as u64,
        Size::Short => v as u16 as u64,
        _ => v as u32 as u64,
    }
}

fn narrow(c: u16) -> u8 {
    if c < 0x80 {
        c as u8
    } else {
        b'?'
    }
}

#[allow(clippy::too_many_arguments)]
fn integer(
    out: &mut Output,
    spec: &Spec,
    v: u64,
    negative: bool,
    base: u64,
    upper: bool,
    prefix: &[u8],
) {
    let mut buf = [0u8; 64];
    let mut n = 0;
    let mut x = v;
    let table: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    while x != 0 {
        buf[n] = table[(x % base) as usize];
        x /= base;
        n += 1;
    }
    let min_digits = spec.precision.unwrap_or(1);
    let zeros = min_digits.saturating_sub(n);
    // "%#o" of a value whose digits already start with 0 needs no prefix.
    let prefix = if prefix == b"0" && zeros > 0 {
        b"" as &[u8]
    } else {
        prefix
    };
    let sign: &[u8] = if negative {
        b"-"
    } else if spec.plus {
        b"+"
    } else if spec.space {
        b" "
    } else {
        b""
    };
    let body = sign.len() + prefix.len() + zeros + n;
    let fill = spec.width.saturating_sub(body);
    let zero_fill = spec.zero && !spec.left && spec.precision.is_none();
    if !spec.left && !zero_fill {
        out.pad(b' ', fill);
    }
    out.push_all(sign);
    out.push_all(prefix);
    if zero_fill {
        out.pad(b'0', fill);
    }
    out.pad(b'0', zeros);
    for k in (0..n).rev() {
        out.push(buf[k]);
    }
    if spec.left {
        out.pad(b' ', fill);
    }
}

fn justify(out: &mut Output, spec: &Spec, len: usize, body: impl FnOnce(&mut Output)) {
    let fill = spec.width.saturating_sub(len);
    if !spec.left {
        out.pad(if spec.zero { b'0' } else { b' ' }, fill);
    }
    body(out);
    if spec.left {
        out.pad(b' ', fill);
    }
}

fn text(out: &mut Output, spec: &Spec, s: &[u8]) {
    let s = &s[..spec.precision.unwrap_or(usize::MAX).min(s.len())];
    justify(out, spec, s.len(), |o| o.push_all(s));
}

/// Walks a string of `unit`-byte units at `p`: `count` units, or up to the
/// NUL (at most `limit`, at most MAX_STRING), handing each character to
/// `each`. The number of characters, or `None` if a unit cannot be read.
fn walk_units(
    mem: &impl ArgMemory,
    p: u64,
    unit: usize,
    count: Option<usize>,
    limit: usize,
    mut each: impl FnMut(u8),
) -> Option<usize> {
    let max = count.unwrap_or(usize::MAX).min(limit).min(MAX_STRING);
    let mut n = 0;
    while n < max {
        let mut u = [0u8; 2];
        if !mem.read(p.checked_add((n * unit) as u64)?, &mut u[..unit]) {
            return None;
        }
        let c = u16::from_le_bytes(u);
        if count.is_none() && c == 0 {
            break;
        }
        each(if unit == 2 { narrow(c) } else { c as u8 });
        n += 1;
    }
    Some(n)
}

/// Prints a string in two passes (its length for the padding, then its
/// characters), so no copy of it is needed.
fn string_at(
    out: &mut Output,
    spec: &Spec,
    mem: &impl ArgMemory,
    p: u64,
    unit: usize,
    count: Option<usize>,
) {
    let limit = spec.precision.unwrap_or(usize::MAX);
    match walk_units(mem, p, unit, count, limit, |_| {}) {
        Some(n) => justify(out, spec, n, |o| {
            let _ = walk_units(mem, p, unit, Some(n), n, |c| o.push(c));
        }),
        None => text(out, spec, b"(invalid)"),
    }
}

fn narrow_string(
    out: &mut Output,
    spec: &Spec,
    mem: &impl ArgMemory,
    p: u64,
    count: Option<usize>,
) {
    string_at(out, spec, mem, p, 1, count);
}

fn wide_string(out: &mut Output, spec: &Spec, mem: &impl ArgMemory, p: u64, count: Option<usize>) {
    string_at(out, spec, mem, p, 2, count);
}

/// `%Z` (`ANSI_STRING`) and `%wZ` (`UNICODE_STRING`): `Length` (bytes) at
/// 0, `Buffer` at 8. A NULL structure or buffer prints `(null)`.
fn counted_string(out: &mut Output, spec: &Spec, mem: &impl ArgMemory, p: u64, wide: bool) {
    if p == 0 {
        return text(out, spec, b"(null)");
    }
    let mut hdr = [0u8; 16];
    if !mem.read(p, &mut hdr) {
        return text(out, spec, b"(invalid)");
    }
    let length = u16::from_le_bytes([hdr[0], hdr[1]]) as usize;
    let buffer = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or([0; 8]));
    if buffer == 0 {
        return text(out, spec, b"(null)");
    }
    if wide {
        wide_string(out, spec, mem, buffer, Some(length / 2));
    } else {
        narrow_string(out, spec, mem, buffer, Some(length));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// Fake memory: regions at chosen addresses.
    struct Mem(Vec<(u64, Vec<u8>)>);
    impl ArgMemory for Mem {
        fn read(&self, addr: u64, out: &mut [u8]) -> bool {
            for (base, bytes) in &self.0 {
                if addr >= *base && addr + out.len() as u64 <= base + bytes.len() as u64 {
                    let o = (addr - base) as usize;
                    out.copy_from_slice(&bytes[o..o + out.len()]);
                    return true;
                }
            }
            false
        }
    }

    fn fmt_with(f: &str, slots: &[u64], mem: &Mem) -> std::string::String {
        let mut buf = [0u8; 512];
        let mut out = Output::new(&mut buf);
        format(f.as_bytes(), &mut SliceArgs::new(slots), mem, &mut out);
        std::string::String::from_utf8(out.as_bytes().to_vec()).unwrap()
    }

    fn fmt(f: &str, slots: &[u64]) -> std::string::String {
        fmt_with(f, slots, &Mem(Vec::new()))
    }

    fn wide(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect()
    }

    #[test]
    fn integers() {
        assert_eq!(
            fmt("%d %i %u", &[(-5i64) as u64, 42, u64::MAX]),
            "-5 42 4294967295"
        );
        assert_eq!(fmt("%x %X %o", &[0xBEEF, 0xbeef, 8]), "beef BEEF 10");
        assert_eq!(
            fmt("%ld %lu %lx", &[(-1i32) as u32 as u64, 7, 0x1_0000_00ff]),
            "-1 7 ff"
        );
        assert_eq!(
            fmt(
                "%I64d %I64x %llx %lld",
                &[(-2i64) as u64, 1 << 40, u64::MAX, 1 << 33]
            ),
            "-2 10000000000 ffffffffffffffff 8589934592"
        );
        assert_eq!(
            fmt("%zu %Iu %Ix", &[1 << 35, 3, 0xabc]),
            "34359738368 3 abc"
        );
        assert_eq!(
            fmt("%hd %hhx %I32x", &[0x1_8000, 0x1ff, 0x1_0000_0001]),
            "-32768 ff 1"
        );
        assert_eq!(fmt("%d", &[0x8000_0000]), "-2147483648");
    }

    #[test]
    fn flags_width_precision() {
        assert_eq!(
            fmt("[%5d][%-5d][%05d]", &[42, 42, 42]),
            "[   42][42   ][00042]"
        );
        assert_eq!(
            fmt("[%+d][% d][%+d]", &[5, 5, (-5i64) as u64]),
            "[+5][ 5][-5]"
        );
        assert_eq!(
            fmt("[%#x][%#X][%#o][%#x]", &[255, 255, 8, 0]),
            "[0xff][0XFF][010][0]"
        );
        assert_eq!(
            fmt("[%08.3d][%.0d][%.5x]", &[7, 0, 0xab]),
            "[     007][][000ab]"
        );
        assert_eq!(fmt("[%*d][%-*d]", &[4, 1, 3, 2]), "[   1][2  ]");
        assert_eq!(fmt("[%*d]", &[(-4i32) as u32 as u64, 9]), "[9   ]");
        assert_eq!(fmt("[%.*d]", &[3, 9]), "[009]");
        assert_eq!(fmt("[%#010x]", &[0x1f]), "[0x0000001f]");
        assert_eq!(fmt("[%-+6d]", &[3]), "[+3    ]");
    }

    #[test]
    fn pointers_chars_percent() {
        assert_eq!(fmt("%p", &[0xFFFF_F800_0012_3400]), "FFFFF80000123400");
        assert_eq!(fmt("%p", &[0x10]), "0000000000000010");
        assert_eq!(fmt("%c%c%C%%", &[b'o' as u64, b'k' as u64, 0x41]), "okA%");
        assert_eq!(fmt("%C|%lc|%hc", &[0x263A, 0x42, 0x4143]), "?|B|C");
        assert_eq!(fmt("[%3c]", &[b'z' as u64]), "[  z]");
    }

    #[test]
    fn strings() {
        let mem = Mem(std::vec![
            (0x1000, b"hello\0".to_vec()),
            (0x2000, {
                let mut w = wide("w\u{e9}de");
                w.extend([0, 0]);
                w
            }),
            // UNICODE_STRING { Length 6, MaximumLength 8, Buffer 0x3000 }
            (
                0x2800,
                [6u16.to_le_bytes(), 8u16.to_le_bytes(), [0; 2], [0; 2]]
                    .concat()
                    .into_iter()
                    .chain(0x3000u64.to_le_bytes())
                    .collect()
            ),
            (0x3000, wide("Null-terminator-not-needed")),
            // ANSI_STRING { Length 3, Buffer 0x1000 }
            (
                0x3800,
                [3u16.to_le_bytes(), 6u16.to_le_bytes(), [0; 2], [0; 2]]
                    .concat()
                    .into_iter()
                    .chain(0x1000u64.to_le_bytes())
                    .collect()
            ),
            // UNICODE_STRING with a NULL buffer
            (0x3900, std::vec![0u8; 16]),
            (0x4000, b"abc".to_vec()),
        ]);
        assert_eq!(fmt_with("%s!", &[0x1000], &mem), "hello!");
        assert_eq!(
            fmt_with(
                "%hs|%.3s|%7s|%-7s|",
                &[0x1000, 0x1000, 0x1000, 0x1000],
                &mem
            ),
            "hello|hel|  hello|hello  |"
        );
        assert_eq!(
            fmt_with("%S %ls %ws", &[0x2000, 0x2000, 0x2000], &mem),
            "w?de w?de w?de"
        );
        assert_eq!(
            fmt_with("%wZ|%Z|%wZ", &[0x2800, 0x3800, 0x3900], &mem),
            "Nul|hel|(null)"
        );
        assert_eq!(
            fmt_with("%s %wZ %S %Z", &[0, 0, 0, 0], &mem),
            "(null) (null) (null) (null)"
        );
        // Unreadable pointers never fault: the reader refuses them.
        assert_eq!(
            fmt_with("%s|%wZ|%S", &[0xDEAD_0000, 0xDEAD_0000, 0xDEAD_0000], &mem),
            "(invalid)|(invalid)|(invalid)"
        );
        // A string running off its mapping.
        assert_eq!(
            fmt_with("%s|%.3s", &[0x4000, 0x4000], &mem),
            "(invalid)|abc"
        );
    }

    #[test]
    fn odd_formats() {
        assert_eq!(fmt("100%", &[]), "100%");
        assert_eq!(fmt("%5", &[]), "%5");
        assert_eq!(fmt("%f|%d", &[0x4000_0000_0000_0000, 3]), "%f|3");
        assert_eq!(fmt("%q", &[]), "%q");
        assert_eq!(fmt("%d %d", &[1]), "1 0");
        assert_eq!(fmt("%99999999999999999999d", &[1]).len(), 512);
    }

    #[test]
    fn truncates_at_capacity() {
        let mut buf = [0u8; 4];
        let mut out = Output::new(&mut buf);
        format(
            b"abcdef",
            &mut SliceArgs::new(&[]),
            &Mem(Vec::new()),
            &mut out,
        );
        assert_eq!(out.as_bytes(), b"abcd");
        assert!(out.truncated());
    }
}
