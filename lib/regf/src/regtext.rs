//! `.reg` text files: import ("Windows Registry Editor Version 5.00" and "REGEDIT4") and export
//! (Version 5.00).
//!
//! Key paths in the text are mapped onto the hive like this: a path starting with `\` is relative
//! to the hive's root; a path whose first component starts with `HKEY_` loses that component and
//! the next one (the hive's mount name, e.g. `HKEY_LOCAL_MACHINE\SYSTEM\Select` → `Select`); any
//! other path is relative to the root. [`import_reg_text_prefix`] strips an explicit prefix instead.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::*;

/// A `.reg` parse or apply error, with the 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegTextError {
    /// Line (1-based) of the logical line that failed; 0 for the whole file.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for RegTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn err<T>(line: usize, m: impl Into<String>) -> core::result::Result<T, RegTextError> {
    Err(RegTextError {
        line,
        message: m.into(),
    })
}

/// Decodes a `.reg` file's bytes: UTF-16LE with a BOM, UTF-8 (with or without a BOM).
pub fn decode_reg_file(bytes: &[u8]) -> core::result::Result<String, RegTextError> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        if rest.len() % 2 != 0 {
            return err(0, "UTF-16 file has an odd number of bytes");
        }
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16(&units).or_else(|_| err(0, "invalid UTF-16"));
    }
    let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    match core::str::from_utf8(b) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => err(0, format!("not UTF-8 or UTF-16LE with BOM: {}", e)),
    }
}

/// Encodes text as UTF-16LE with a BOM (the form regedit writes).
pub fn encode_utf16_bom(text: &str) -> Vec<u8> {
    let mut v = alloc::vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        v.extend_from_slice(&u.to_le_bytes());
    }
    v
}

/// One parsed `.reg` statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegOp {
    /// `[path]`: create (and select) a key.
    Key(String),
    /// `[-path]`: delete a key tree.
    DeleteKey(String),
    /// `"name"=value` for the current key.
    Set(Value),
    /// `"name"=-`.
    DeleteValue(String),
}

/// Parses `.reg` text into statements with their line numbers.
pub fn parse_reg_text(text: &str) -> core::result::Result<Vec<(usize, RegOp)>, RegTextError> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let regedit4 = loop {
        match lines.next() {
            None => return err(1, "empty file"),
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((_, l)) if l.trim() == "Windows Registry Editor Version 5.00" => break false,
            Some((_, l)) if l.trim() == "REGEDIT4" => break true,
            Some((n, l)) => return err(n, format!("unknown header \"{}\"", l)),
        }
    };
    let mut ops = Vec::new();
    let mut have_key = false;
    while let Some((n, first)) = lines.next() {
        let mut line = String::from(first.trim_start());
        // Continuation lines (a trailing backslash outside a string).
        while line.ends_with('\\') && !line.starts_with('[') && !ends_in_string(&line) {
            line.pop();
            match lines.next() {
                Some((_, l)) => line.push_str(l.trim()),
                None => break,
            }
        }
        let l = line.trim_end();
        if l.is_empty() || l.starts_with(';') {
            continue;
        }
        if let Some(inner) = l.strip_prefix('[') {
            let inner = match inner.strip_suffix(']') {
                Some(i) => i,
                None => return err(n, "key line does not end with ']'"),
            };
            if let Some(p) = inner.strip_prefix('-') {
                ops.push((n, RegOp::DeleteKey(p.to_string())));
                have_key = false;
            } else {
                ops.push((n, RegOp::Key(inner.to_string())));
                have_key = true;
            }
            continue;
        }
        if !have_key {
            return err(n, "value outside a key section");
        }
        let (name, rest) = if let Some(r) = l.strip_prefix('@') {
            (String::new(), r)
        } else if l.starts_with('"') {
            parse_quoted(l).ok_or(RegTextError {
                line: n,
                message: "unterminated value name".into(),
            })?
        } else {
            return err(n, format!("cannot parse \"{}\"", l));
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('=') {
            Some(r) => r.trim(),
            None => return err(n, "missing '=' after the value name"),
        };
        if rest == "-" {
            ops.push((n, RegOp::DeleteValue(name)));
            continue;
        }
        let (ty, data) = parse_data(rest, regedit4).map_err(|m| RegTextError {
            line: n,
            message: m,
        })?;
        ops.push((n, RegOp::Set(Value { name, ty, data })));
    }
    Ok(ops)
}

/// True if `line` ends inside (or at the close of) a quoted string value, where a backslash is data.
fn ends_in_string(line: &str) -> bool {
    let mut in_s = false;
    let mut esc = false;
    let mut last_quote_close = false;
    for c in line.chars() {
        last_quote_close = false;
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' if in_s => esc = true,
            '"' => {
                in_s = !in_s;
                if !in_s {
                    last_quote_close = true;
                }
            }
            _ => {}
        }
    }
    in_s || last_quote_close || esc
}

/// Parses a leading `"..."` with `\\` and `\"` escapes; returns (string, rest).
fn parse_quoted(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => {
                let (_, e) = it.next()?;
                match e {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    o => out.push(o),
                }
            }
            '"' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

fn parse_data(s: &str, regedit4: bool) -> core::result::Result<(u32, Vec<u8>), String> {
    if s.starts_with('"') {
        let (v, rest) = parse_quoted(s).ok_or("unterminated string")?;
        if !rest.trim().is_empty() {
            return Err(format!("text after the string: \"{}\"", rest.trim()));
        }
        return Ok((REG_SZ, utf16z(&v)));
    }
    if let Some(h) = s.strip_prefix("dword:") {
        let h = h.trim();
        if h.is_empty() || h.len() > 8 {
            return Err(format!("bad dword \"{}\"", h));
        }
        let v = u32::from_str_radix(h, 16).map_err(|_| format!("bad dword \"{}\"", h))?;
        return Ok((REG_DWORD, v.to_le_bytes().to_vec()));
    }
    let (ty, hex) = if let Some(h) = s.strip_prefix("hex:") {
        (REG_BINARY, h)
    } else if let Some(r) = s.strip_prefix("hex(") {
        let close = r.find("):").ok_or("hex( without \"):\"")?;
        let t = u32::from_str_radix(&r[..close], 16)
            .map_err(|_| format!("bad type \"{}\"", &r[..close]))?;
        (t, &r[close + 2..])
    } else {
        return Err(format!("unknown value data \"{}\"", s));
    };
    let mut data = Vec::new();
    for part in hex.split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        if p.len() > 2 {
            return Err(format!("bad hex byte \"{}\"", p));
        }
        data.push(u8::from_str_radix(p, 16).map_err(|_| format!("bad hex byte \"{}\"", p))?);
    }
    if regedit4 && matches!(ty, REG_SZ | REG_EXPAND_SZ | REG_MULTI_SZ) {
        // REGEDIT4 strings are single-byte: widen to UTF-16.
        let mut w = Vec::with_capacity(data.len() * 2);
        for b in data {
            w.extend_from_slice(&(b as u16).to_le_bytes());
        }
        data = w;
    }
    Ok((ty, data))
}

/// Maps a `.reg` key path to a path below the hive root (see the module documentation).
pub fn hive_path(path: &str, prefix: Option<&str>) -> core::result::Result<String, String> {
    if let Some(p) = prefix {
        let pu = upcase_name(p.trim_end_matches('\\'));
        let comps: Vec<&str> = path.split('\\').collect();
        let pcount = p.trim_end_matches('\\').split('\\').count();
        let head = comps
            .get(..pcount)
            .map(|c| c.join("\\"))
            .unwrap_or_default();
        if upcase_name(&head) != pu {
            return Err(format!(
                "key \"{}\" is not below the prefix \"{}\"",
                path, p
            ));
        }
        return Ok(comps[pcount..].join("\\"));
    }
    if let Some(r) = path.strip_prefix('\\') {
        return Ok(r.to_string());
    }
    let comps: Vec<&str> = path.split('\\').collect();
    if comps
        .first()
        .map(|c| c.starts_with("HKEY_"))
        .unwrap_or(false)
    {
        return Ok(comps.get(2..).map(|c| c.join("\\")).unwrap_or_default());
    }
    Ok(path.to_string())
}

/// Applies `.reg` text to a hive (keys are mapped as the module documentation says).
pub fn import_reg_text(hive: &mut Hive, text: &str) -> core::result::Result<(), RegTextError> {
    import_reg_text_prefix(hive, text, None)
}

/// Builds a new hive (root key `root_name`, e.g. `ROOT`) from `.reg` text: what xtask uses to make
/// `SYSTEM` and `SOFTWARE` from `image/registry/*.reg`. Serialize it with [`Hive::to_bytes`].
pub fn hive_from_reg_text(root_name: &str, text: &str) -> core::result::Result<Hive, RegTextError> {
    let mut h = Hive::new_empty(root_name).map_err(|e| RegTextError {
        line: 0,
        message: e.to_string(),
    })?;
    import_reg_text(&mut h, text)?;
    Ok(h)
}

/// Applies `.reg` text to a hive, stripping `prefix` (e.g. `HKEY_LOCAL_MACHINE\SYSTEM`) from
/// every key path when given.
pub fn import_reg_text_prefix(
    hive: &mut Hive,
    text: &str,
    prefix: Option<&str>,
) -> core::result::Result<(), RegTextError> {
    let ops = parse_reg_text(text)?;
    let mut cur: Option<KeyRef> = None;
    for (n, op) in ops {
        let e = |m: Error| RegTextError {
            line: n,
            message: m.to_string(),
        };
        match op {
            RegOp::Key(p) => {
                let hp = hive_path(&p, prefix).map_err(|m| RegTextError {
                    line: n,
                    message: m,
                })?;
                cur = Some(hive.create_key_path(&hp).map_err(e)?);
            }
            RegOp::DeleteKey(p) => {
                let hp = hive_path(&p, prefix).map_err(|m| RegTextError {
                    line: n,
                    message: m,
                })?;
                match hive.open_key(&hp) {
                    Ok(k) => hive.delete_tree(k).map_err(e)?,
                    Err(Error::Status(s)) if s == STATUS_OBJECT_NAME_NOT_FOUND => {}
                    Err(x) => return Err(e(x)),
                }
                cur = None;
            }
            RegOp::Set(v) => {
                let k = cur.ok_or(RegTextError {
                    line: n,
                    message: "value after a deleted key".into(),
                })?;
                hive.set_value(k, &v.name, v.ty, &v.data).map_err(e)?;
            }
            RegOp::DeleteValue(name) => {
                let k = cur.ok_or(RegTextError {
                    line: n,
                    message: "value after a deleted key".into(),
                })?;
                match hive.delete_value(k, &name) {
                    Ok(()) => {}
                    Err(Error::Status(s)) if s == STATUS_OBJECT_NAME_NOT_FOUND => {}
                    Err(x) => return Err(e(x)),
                }
            }
        }
    }
    Ok(())
}

fn quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Column after which `reg export` / regedit continue hex data on the next line: once a
/// byte and its comma bring the line to this many characters (or more) and more bytes follow,
/// the line ends with `\` and the next starts with two spaces. So a continuation line holds 25
/// bytes (77 characters before the backslash) and a first line `"name"=hex:` plus as many bytes
/// as keep it below 77 characters, plus the one that reaches it.
pub const REG_HEX_WRAP: usize = 77;

/// Formats one value as a `.reg` line (Version 5.00 syntax), hex data wrapped as `reg export`
/// does ([`REG_HEX_WRAP`]); continuation lines are joined with "\n".
pub fn format_value(v: &Value) -> String {
    format_value_nl(v, "\n")
}

/// Whether REG_SZ data is written as a quoted string: NUL-terminated UTF-16 with no other NUL
/// and no line break (anything else would not survive import) or empty. Others become `hex(1)`.
fn sz_text(data: &[u8]) -> Option<String> {
    if data.is_empty() {
        return Some(String::new());
    }
    if !data.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    if units.last() != Some(&0) || units[..units.len() - 1].contains(&0) {
        return None;
    }
    String::from_utf16(&units[..units.len() - 1])
        .ok()
        .filter(|t| !t.contains(['\n', '\r']))
}

/// [`format_value`] with `nl` as the line break inside wrapped hex data.
pub fn format_value_nl(v: &Value, nl: &str) -> String {
    let name = if v.name.is_empty() {
        String::from("@")
    } else {
        quote(&v.name)
    };
    let mut s = format!("{}=", name);
    if v.ty == REG_SZ {
        if let Some(t) = sz_text(&v.data) {
            s.push_str(&quote(&t));
            return s;
        }
    }
    if v.ty == REG_DWORD && v.data.len() == 4 {
        let d = u32::from_le_bytes([v.data[0], v.data[1], v.data[2], v.data[3]]);
        s.push_str(&format!("dword:{:08x}", d));
        return s;
    }
    if v.ty == REG_BINARY {
        s.push_str("hex:");
    } else {
        s.push_str(&format!("hex({:x}):", v.ty));
    }
    let mut col = s.encode_utf16().count();
    for (i, b) in v.data.iter().enumerate() {
        s.push_str(&format!("{:02x}", b));
        if i + 1 == v.data.len() {
            break;
        }
        s.push(',');
        col += 3;
        if col >= REG_HEX_WRAP {
            s.push('\\');
            s.push_str(nl);
            s.push_str("  ");
            col = 2;
        }
    }
    s
}

/// Exports `key` and everything below it as "Windows Registry Editor Version 5.00" text
/// with LF line ends, laid out as `reg export` writes it: the header, a blank line, then per key
/// its `[path]` line, its values in value-list order and a blank line; subkeys in enumeration
/// order, depth first. Key lines are `[prefix\path]`; with an empty prefix, `[\path]`.
pub fn export_reg_text(hive: &Hive, key: KeyRef, prefix: &str) -> Result<String> {
    export_with(hive, key, prefix, "\n")
}

/// What `reg export` writes to a file: [`export_reg_text`] with CRLF line ends, as UTF-16LE
/// with a byte order mark.
pub fn export_reg_file(hive: &Hive, key: KeyRef, prefix: &str) -> Result<Vec<u8>> {
    Ok(encode_utf16_bom(&export_with(hive, key, prefix, "\r\n")?))
}

fn export_with(hive: &Hive, key: KeyRef, prefix: &str, nl: &str) -> Result<String> {
    let mut out = format!("Windows Registry Editor Version 5.00{nl}{nl}");
    let mut stack = alloc::vec![key];
    while let Some(k) = stack.pop() {
        let p = hive.key_path(k)?;
        let full = if prefix.is_empty() {
            format!("\\{}", p)
        } else if p.is_empty() {
            prefix.to_string()
        } else {
            format!("{}\\{}", prefix, p)
        };
        out.push_str(&format!("[{}]{nl}", full));
        for v in hive.enum_values(k)? {
            out.push_str(&format_value_nl(&v, nl));
            out.push_str(nl);
        }
        out.push_str(nl);
        let mut subs = hive.enum_subkeys(k)?;
        subs.reverse();
        stack.extend(subs);
    }
    Ok(out)
}
