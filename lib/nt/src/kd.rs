//! Kernel-debugger command-line rules shared by every kd command: the one
//! number parser (WinDbg's MASM evaluator for plain numbers) and the command
//! table that both dispatch and `help` read.
//!
//! Numbers follow WinDbg's default radix 16: `fffff800`00400000` (backtick
//! separators anywhere), an optional `0x` prefix, and the radix prefixes
//! `0n` (decimal), `0t` (octal) and `0y` (binary). A leading `-` negates in
//! 64-bit two's complement as WinDbg does (`-1` is ffffffff`ffffffff).

/// Why a number did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// Nothing after the prefix (or an empty string).
    Empty,
    /// A character that is not a digit of the radix.
    BadDigit(char),
    /// More than 64 bits.
    Overflow,
}

impl core::fmt::Display for NumberError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NumberError::Empty => f.write_str("Numeric expression missing"),
            NumberError::BadDigit(c) => write!(f, "Syntax error at '{c}'"),
            NumberError::Overflow => f.write_str("Overflow"),
        }
    }
}

/// Parses one kd number (see the module comment).
pub fn parse_number(s: &str) -> Result<u64, NumberError> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (radix, digits) = match s.get(..2) {
        Some(p) if p.eq_ignore_ascii_case("0x") => (16, &s[2..]),
        Some(p) if p.eq_ignore_ascii_case("0n") => (10, &s[2..]),
        Some(p) if p.eq_ignore_ascii_case("0t") => (8, &s[2..]),
        Some(p) if p.eq_ignore_ascii_case("0y") => (2, &s[2..]),
        _ => (16, s),
    };
    let mut value: u64 = 0;
    let mut any = false;
    for c in digits.chars() {
        if c == '`' {
            continue;
        }
        let d = c.to_digit(radix).ok_or(NumberError::BadDigit(c))?;
        value = value
            .checked_mul(radix as u64)
            .and_then(|v| v.checked_add(d as u64))
            .ok_or(NumberError::Overflow)?;
        any = true;
    }
    if !any {
        return Err(NumberError::Empty);
    }
    Ok(if neg { value.wrapping_neg() } else { value })
}

/// [`parse_number`] for a value that must fit in 32 bits (processor
/// numbers, MSR indices, process ids).
pub fn parse_u32(s: &str) -> Result<u32, NumberError> {
    let v = parse_number(s)?;
    u32::try_from(v).map_err(|_| NumberError::Overflow)
}

/// Splits a command line into the command word and the rest (its
/// arguments, trimmed). `~1` is the command `~` with argument `1`, as
/// WinDbg reads `~1s`.
pub fn split_command(line: &str) -> (&str, &str) {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix('~') {
        return ("~", rest.trim());
    }
    match line.split_once(char::is_whitespace) {
        Some((cmd, rest)) => (cmd, rest.trim()),
        None => (line, ""),
    }
}

/// One kd command: its name (and aliases), the syntax and help shown by
/// `help`, and the handler that gets the rest of the line.
pub struct Command<H> {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// Arguments as `help` shows them, e.g. `<first> [last]`.
    pub syntax: &'static str,
    pub help: &'static str,
    pub handler: H,
}

/// Finds the command for a command word (names compare case-insensitively
/// as WinDbg's extension names do).
pub fn find<'a, H>(table: &'a [Command<H>], word: &str) -> Option<&'a Command<H>> {
    table.iter().find(|c| {
        c.name.eq_ignore_ascii_case(word) || c.aliases.iter().any(|a| a.eq_ignore_ascii_case(word))
    })
}

/// The width of the syntax column `help` uses.
pub const HELP_COLUMN: usize = 22;

/// Writes one help line for `c`: `  name syntax<pad>help`.
pub fn write_help_line<H>(w: &mut dyn core::fmt::Write, c: &Command<H>) -> core::fmt::Result {
    let mut used = c.name.len();
    w.write_str("  ")?;
    w.write_str(c.name)?;
    if !c.syntax.is_empty() {
        w.write_char(' ')?;
        w.write_str(c.syntax)?;
        used += 1 + c.syntax.len();
    }
    for a in c.aliases {
        w.write_str(" | ")?;
        w.write_str(a)?;
        used += 3 + a.len();
    }
    if used < HELP_COLUMN {
        for _ in used..HELP_COLUMN {
            w.write_char(' ')?;
        }
    } else {
        w.write_char(' ')?;
    }
    w.write_str(c.help)
}

/// Checks a table for what dispatch relies on: every command has a name
/// and help text, and no name or alias is used twice. Returns the first
/// offending name.
pub fn validate<H>(table: &[Command<H>]) -> Result<(), &'static str> {
    for (i, c) in table.iter().enumerate() {
        if c.name.is_empty() || c.help.is_empty() {
            return Err(c.name);
        }
        let names = core::iter::once(c.name).chain(c.aliases.iter().copied());
        for n in names {
            for later in &table[i + 1..] {
                if later.name.eq_ignore_ascii_case(n)
                    || later.aliases.iter().any(|a| a.eq_ignore_ascii_case(n))
                {
                    return Err(n);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    #[test]
    fn hex_is_the_default_radix() {
        assert_eq!(parse_number("10"), Ok(0x10));
        assert_eq!(parse_number("fffff800"), Ok(0xFFFF_F800));
        assert_eq!(parse_number("FFFFF800"), Ok(0xFFFF_F800));
    }

    #[test]
    fn backticks_are_separators_with_or_without_0x() {
        // `!pfn` used to keep the backtick and reject this.
        assert_eq!(parse_number("fffff800`00400000"), Ok(0xFFFF_F800_0040_0000));
        assert_eq!(
            parse_number("0xfffff800`00400000"),
            Ok(0xFFFF_F800_0040_0000)
        );
        assert_eq!(parse_number("0X1`0"), Ok(0x10));
        // A hex number longer than 32 characters with separators (the
        // old fixed buffer truncated it).
        assert_eq!(
            parse_number("0000`0000`0000`0000`0000`0000`0000`0001"),
            Ok(1)
        );
    }

    #[test]
    fn radix_prefixes() {
        assert_eq!(parse_number("0n10"), Ok(10));
        assert_eq!(parse_number("0N4096"), Ok(4096));
        assert_eq!(parse_number("0t17"), Ok(15));
        assert_eq!(parse_number("0y101"), Ok(5));
        assert_eq!(parse_number("-1"), Ok(u64::MAX));
        assert_eq!(parse_number("-0n2"), Ok(u64::MAX - 1));
    }

    #[test]
    fn errors_are_reported_not_guessed() {
        assert_eq!(parse_number(""), Err(NumberError::Empty));
        assert_eq!(parse_number("0x"), Err(NumberError::Empty));
        assert_eq!(parse_number("`"), Err(NumberError::Empty));
        assert_eq!(parse_number("12g"), Err(NumberError::BadDigit('g')));
        assert_eq!(parse_number("0n1a"), Err(NumberError::BadDigit('a')));
        assert_eq!(
            parse_number("1`0000`0000`0000`0000"),
            Err(NumberError::Overflow)
        );
        assert_eq!(parse_u32("1`0000`0000"), Err(NumberError::Overflow));
        assert_eq!(parse_u32("ffffffff"), Ok(u32::MAX));
        // `0x0x10` is not a number.
        assert_eq!(parse_number("0x0x10"), Err(NumberError::BadDigit('x')));
    }

    #[test]
    fn split_commands() {
        assert_eq!(split_command("  dg 10   50 "), ("dg", "10   50"));
        assert_eq!(split_command("!thread"), ("!thread", ""));
        assert_eq!(split_command("~1"), ("~", "1"));
        assert_eq!(split_command("~ 2"), ("~", "2"));
        assert_eq!(split_command(""), ("", ""));
    }

    fn table() -> [Command<u8>; 3] {
        [
            Command {
                name: "help",
                aliases: &["?"],
                syntax: "",
                help: "this list",
                handler: 0,
            },
            Command {
                name: "dg",
                aliases: &[],
                syntax: "<first> [last]",
                help: "display GDT selectors",
                handler: 1,
            },
            Command {
                name: "!pfn",
                aliases: &[],
                syntax: "<pfn>",
                help: "a PFN database entry",
                handler: 2,
            },
        ]
    }

    #[test]
    fn dispatch_and_help_read_the_same_table() {
        let t = table();
        assert_eq!(validate(&t), Ok(()));
        assert_eq!(find(&t, "?").map(|c| c.handler), Some(0));
        assert_eq!(find(&t, "!PFN").map(|c| c.handler), Some(2));
        assert!(find(&t, "!nothing").is_none());
        let mut out = String::new();
        for c in &t {
            write_help_line(&mut out, c).unwrap();
            out.push('\n');
        }
        assert_eq!(
            out,
            "  help | ?              this list\n  dg <first> [last]     display GDT selectors\n  !pfn <pfn>            a PFN database entry\n"
        );
    }

    #[test]
    fn duplicate_names_are_caught() {
        let mut t = table();
        t[2].aliases = &["DG"];
        assert_eq!(validate(&t), Err("dg"));
        let mut t = table();
        t[1].help = "";
        assert_eq!(validate(&t), Err("dg"));
    }
}
