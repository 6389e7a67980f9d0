//! `ntrs-reg`: a host tool for registry hive files (see docs/registry.md).

mod bcd;

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use regf::regtext::{
    decode_reg_file, export_reg_file, export_reg_text, format_value, import_reg_text_prefix,
};
use regf::{
    check, utf16z, Error, Hive, REG_BINARY, REG_DWORD, REG_EXPAND_SZ, REG_LINK, REG_MULTI_SZ,
    REG_NONE, REG_QWORD, REG_SZ,
};

const EXAMPLES: &str = "\
Examples:
  ntrs-reg query SYSTEM 'ControlSet001\\Services\\disk'
  ntrs-reg query SYSTEM 'ControlSet001\\Services\\disk' Start --json
  ntrs-reg export SYSTEM '' --prefix 'HKEY_LOCAL_MACHINE\\SYSTEM' -o system.reg
  ntrs-reg export SYSTEM ControlSet001 --json
  ntrs-reg set NTUSER.DAT 'Software\\Test' Count dword 0x10
  ntrs-reg deleted NTUSER.DAT
  ntrs-reg bcd BCD /enum all /v       # a BCD store as `bcdedit /store BCD /enum all /v` shows it
  ntrs-reg bcd BCD /set {default} loadoptions /DEBUG
  ntrs-reg check SOFTWARE
  ntrs-reg --strict query SAM ''      # refuse a dirty hive that its logs do not repair
  ntrs-reg man > ntrs-reg.1           # manual page; `ntrs-reg completions bash` for completions

Transaction logs: a hive whose sequence numbers differ (an interrupted flush, or a copy taken from
a running system) is repaired from <hive>.LOG1/<hive>.LOG2 when they are beside it. Without logs
that continue it the hive is read as it is, with a warning on stderr; --strict refuses it instead.";

#[derive(Parser)]
#[command(
    name = "ntrs-reg",
    about = "Registry hive (regf) tool: query, export, import, edit and check hive files",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(flatten)]
    open: OpenArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

/// How a dirty hive (sequence numbers differ) is opened.
#[derive(clap::Args, Clone, Copy, Default)]
struct OpenArgs {
    /// Apply the transaction logs <hive>.LOG1/.LOG2 (the default when they exist); fail if none is found.
    #[arg(long, global = true, conflicts_with = "no_logs")]
    logs: bool,
    /// Do not apply transaction logs even when they are beside the hive.
    #[arg(long, global = true)]
    no_logs: bool,
    /// Refuse a dirty hive that no transaction log repairs (the configuration manager's rule).
    #[arg(long, global = true)]
    strict: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create an empty hive.
    Create {
        hive: String,
        /// Root key name.
        #[arg(long, default_value = "ROOT")]
        root: String,
    },
    /// Apply a .reg file (Version 5.00 or REGEDIT4, UTF-16LE with BOM or UTF-8).
    Import {
        hive: String,
        file: String,
        /// Strip this prefix from key paths (default: `\path` is below the root; `HKEY_X\Hive\path` loses two components).
        #[arg(long)]
        prefix: Option<String>,
        /// Create the hive first if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Export a key tree as "Windows Registry Editor Version 5.00" text.
    Export {
        hive: String,
        #[arg(default_value = "")]
        key: String,
        /// Prefix for key lines (e.g. HKEY_LOCAL_MACHINE\SYSTEM); default: `\path`.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Write to this file as `reg export` does (UTF-16LE with a BOM, CRLF, hex data wrapped at
        /// Windows' column) instead of UTF-8 text to stdout.
        #[arg(short, long)]
        output: Option<String>,
        /// JSON instead of .reg text: every key (pre-order) with its path, last write time,
        /// class, security descriptor in SDDL and values.
        #[arg(long, conflicts_with = "output")]
        json: bool,
    },
    /// Show a key (last write time, security descriptor as SDDL, values, subkeys) or one value.
    Query {
        hive: String,
        key: String,
        value: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Set a value: TYPE is sz, expand_sz, multi_sz (items separated by '|'), dword, qword, binary (hex), none, link.
    Set {
        hive: String,
        key: String,
        name: String,
        ty: String,
        data: String,
    },
    /// Delete a value, or a key (with --recursive, its whole tree).
    Delete {
        hive: String,
        key: String,
        value: Option<String>,
        #[arg(short, long)]
        recursive: bool,
    },
    /// Check every structure of a hive.
    Check { hive: String },
    /// Recover deleted keys and values from the hive's free cells (nk/vk records whose fields
    /// are plausible); a key's path is shown when its parent chain still resolves, else `?\name`.
    Deleted {
        hive: String,
        /// JSON output (one object: "keys" and "values").
        #[arg(long)]
        json: bool,
    },
    /// Show or edit a BCD store (Boot Configuration Data) as `bcdedit /store STORE` does:
    /// `/enum`, `/set`, `/deletevalue`, `/create`, `/delete`, `/default`, `/timeout`,
    /// `/displayorder` (see the list below).
    #[command(after_help = bcd::HELP)]
    Bcd {
        store: String,
        /// bcdedit's switches and their arguments (default: `/enum active`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Write the manual page (roff) to stdout: `ntrs-reg man > ntrs-reg.1`.
    Man,
    /// Write a completion script for SHELL to stdout:
    /// `ntrs-reg completions bash > /usr/share/bash-completion/completions/ntrs-reg`.
    Completions { shell: clap_complete::Shell },
    /// Benchmark open+query+close of a value on a hive with 100k keys.
    Bench {
        #[arg(long, default_value_t = 200_000)]
        iterations: u32,
    },
}

/// `println!` that ends the program quietly when stdout is closed (e.g. piped
/// into `head`), and with one error line on any other write failure.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            output_failed(e);
        }
    }};
}

/// The end of a command whose output cannot be written: a closed pipe is
/// the reader's choice (exit 0, as `ntrs-ntfs` does); anything else fails.
fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("ntrs-reg: writing the output: {e}");
    std::process::exit(1);
}

/// Writes raw bytes to stdout, ending the program as `outln!` does on failure.
fn write_stdout(bytes: &[u8]) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().write_all(bytes) {
        output_failed(e);
    }
}

fn now_filetime() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    116_444_736_000_000_000 + d.as_nanos() as u64 / 100
}

/// The transaction log `<hive>.<ext>` beside a hive (also lower-case `.log1`), if present.
fn read_log(path: &str, ext: &str) -> Option<Vec<u8>> {
    [ext.to_string(), ext.to_ascii_lowercase()]
        .iter()
        .find_map(|e| std::fs::read(format!("{}.{}", path, e)).ok())
}

/// Opens a hive file with its logs as `o` says; a dirty hive read as it is gets one warning line.
fn load_with(path: &str, o: OpenArgs) -> Result<Hive, String> {
    use regf::log::{OpenOptions, Recovery};
    let b = std::fs::read(path).map_err(|e| format!("{}: {}", path, e))?;
    let (l1, l2) = if o.no_logs {
        (None, None)
    } else {
        (read_log(path, "LOG1"), read_log(path, "LOG2"))
    };
    let found = l1.is_some() || l2.is_some();
    if o.logs && !found {
        return Err(format!(
            "{}: --logs: no transaction log {}.LOG1 or {}.LOG2",
            path, path, path
        ));
    }
    let opts = OpenOptions {
        apply_logs: found,
        strict: o.strict,
    };
    let (mut h, rec) = regf::log::open(
        &b,
        l1.as_deref().unwrap_or(&[]),
        l2.as_deref().unwrap_or(&[]),
        opts,
    )
    .map_err(|e| format!("{}: {}", path, e))?;
    match rec {
        Recovery::Clean => {}
        Recovery::Recovered(seq) => eprintln!(
            "ntrs-reg: {}: recovered from its transaction logs (sequence {})",
            path, seq
        ),
        Recovery::Dirty { seq1, seq2 } => eprintln!(
            "ntrs-reg: warning: {}: the hive is dirty (sequence numbers {} and {}) and transaction logs were not applied ({}); read as it is, the last changes may be missing",
            path,
            seq1,
            seq2,
            if o.no_logs {
                "--no-logs"
            } else if found {
                "no log continues it"
            } else {
                "none beside it"
            }
        ),
    }
    h.set_time(now_filetime());
    Ok(h)
}

fn save(path: &str, h: &Hive) -> Result<(), String> {
    std::fs::write(path, h.to_bytes()).map_err(|e| format!("{}: {}", path, e))
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<char> = s
        .chars()
        .filter(|c| !matches!(c, ',' | ' ' | ':'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err("hex data has an odd number of digits".into());
    }
    digits
        .chunks(2)
        .map(|p| {
            let t: String = p.iter().collect();
            u8::from_str_radix(&t, 16).map_err(|_| format!("bad hex \"{}\"", t))
        })
        .collect()
}

fn parse_num(s: &str) -> Result<u64, String> {
    let r = if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else {
        s.parse()
    };
    r.map_err(|_| format!("bad number \"{}\"", s))
}

fn value_data(ty: &str, data: &str) -> Result<(u32, Vec<u8>), String> {
    Ok(match ty.to_ascii_lowercase().as_str() {
        "sz" => (REG_SZ, utf16z(data)),
        "expand_sz" => (REG_EXPAND_SZ, utf16z(data)),
        "multi_sz" => {
            let mut v = Vec::new();
            for part in data.split('|').filter(|p| !p.is_empty()) {
                v.extend(utf16z(part));
            }
            v.extend([0, 0]);
            (REG_MULTI_SZ, v)
        }
        "dword" => {
            let n = parse_num(data)?;
            let n = u32::try_from(n).map_err(|_| format!("{} does not fit a dword", n))?;
            (REG_DWORD, n.to_le_bytes().to_vec())
        }
        "qword" => (REG_QWORD, parse_num(data)?.to_le_bytes().to_vec()),
        "binary" => (REG_BINARY, hex_bytes(data)?),
        "none" => (REG_NONE, hex_bytes(data)?),
        "link" => {
            let mut v = utf16z(data);
            v.truncate(v.len() - 2);
            (REG_LINK, v)
        }
        t => return Err(format!("unknown type \"{}\"", t)),
    })
}

fn run(cli: Cli) -> Result<(), String> {
    let o = cli.open;
    let load = |p: &str| load_with(p, o);
    match cli.cmd {
        Cmd::Create { hive, root } => {
            let mut h = Hive::new_empty(&root).map_err(|e| e.to_string())?;
            h.set_time(now_filetime());
            save(&hive, &h)
        }
        Cmd::Import {
            hive,
            file,
            prefix,
            create,
        } => {
            let mut h = if create && !std::path::Path::new(&hive).exists() {
                let mut h = Hive::new_empty("ROOT").map_err(|e| e.to_string())?;
                h.set_time(now_filetime());
                h
            } else {
                load(&hive)?
            };
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {}", file, e))?;
            let text = decode_reg_file(&bytes).map_err(|e| format!("{}: {}", file, e))?;
            import_reg_text_prefix(&mut h, &text, prefix.as_deref())
                .map_err(|e| format!("{}: {}", file, e))?;
            save(&hive, &h)
        }
        Cmd::Export {
            hive,
            key,
            prefix,
            output,
            json,
        } => {
            let h = load(&hive)?;
            let k = h.open_key(&key).map_err(|e| format!("{}: {}", key, e))?;
            if json {
                let mut keys = Vec::new();
                let mut stack = vec![k];
                while let Some(k) = stack.pop() {
                    keys.push(key_json(&h, k, false)?);
                    let mut subs = h.enum_subkeys(k).map_err(|e| e.to_string())?;
                    subs.reverse();
                    stack.extend(subs);
                }
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "keys": keys }))
                        .unwrap_or_default()
                );
                return Ok(());
            }
            match output {
                Some(o) => {
                    let b = export_reg_file(&h, k, &prefix).map_err(|e| e.to_string())?;
                    std::fs::write(&o, b).map_err(|e| format!("{}: {}", o, e))
                }
                None => {
                    let t = export_reg_text(&h, k, &prefix).map_err(|e| e.to_string())?;
                    write_stdout(t.as_bytes());
                    Ok(())
                }
            }
        }
        Cmd::Query {
            hive,
            key,
            value,
            json,
        } => {
            let h = load(&hive)?;
            let k = h.open_key(&key).map_err(|e| format!("{}: {}", key, e))?;
            match value {
                Some(v) => {
                    let val = h.query_value(k, &v).map_err(|e| format!("{}: {}", v, e))?;
                    if json {
                        outln!(
                            "{}",
                            serde_json::to_string_pretty(&value_json(
                                &val.name,
                                val.ty,
                                Some(&val.data)
                            ))
                            .unwrap_or_default()
                        );
                    } else {
                        outln!("{}", format_value(&val));
                    }
                }
                None if json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&key_json(&h, k, true)?).unwrap_or_default()
                ),
                None => {
                    let e = |x: Error| x.to_string();
                    outln!("[{}]", h.key_path(k).map_err(e)?);
                    outln!(
                        "; last write {}",
                        nt::time::Iso8601(h.key_last_write(k).map_err(e)?)
                    );
                    outln!("; security {}", key_sddl(&h, k));
                    if let Some(c) = h.key_class(k).map_err(e)? {
                        outln!("; class {}", c);
                    }
                    if let Some(t) = h.link_target(k).map_err(e)? {
                        outln!("; symbolic link to {}", t);
                    }
                    for v in h.enum_values(k).map_err(e)? {
                        outln!("{}", format_value(&v));
                    }
                    for s in h.enum_subkeys(k).map_err(e)? {
                        outln!("  {}\\", h.key_name(s).map_err(e)?);
                    }
                }
            }
            Ok(())
        }
        Cmd::Set {
            hive,
            key,
            name,
            ty,
            data,
        } => {
            let mut h = load(&hive)?;
            let (t, d) = value_data(&ty, &data)?;
            let k = h
                .create_key_path(&key)
                .map_err(|e| format!("{}: {}", key, e))?;
            h.set_value(k, &name, t, &d).map_err(|e| e.to_string())?;
            save(&hive, &h)
        }
        Cmd::Delete {
            hive,
            key,
            value,
            recursive,
        } => {
            let mut h = load(&hive)?;
            let k = h.open_key(&key).map_err(|e| format!("{}: {}", key, e))?;
            match value {
                Some(v) => h.delete_value(k, &v).map_err(|e| format!("{}: {}", v, e))?,
                None if recursive => h.delete_tree(k).map_err(|e| format!("{}: {}", key, e))?,
                None => h.delete_key(k).map_err(|e| format!("{}: {}", key, e))?,
            }
            save(&hive, &h)
        }
        Cmd::Check { hive } => {
            let b = std::fs::read(&hive).map_err(|e| format!("{}: {}", hive, e))?;
            let p = check(&b);
            for x in &p {
                outln!("{}", x);
            }
            if p.is_empty() {
                outln!("{}: ok", hive);
                Ok(())
            } else {
                Err(format!("{}: {} problem(s)", hive, p.len()))
            }
        }
        Cmd::Deleted { hive, json } => {
            let h = load(&hive)?;
            deleted(&h, json);
            Ok(())
        }
        Cmd::Bcd { store, args } => {
            let mut h = load(&store)?;
            let (text, changed) =
                bcd::run(&mut h, &args).map_err(|m| format!("{}: {}", store, m))?;
            if changed {
                save(&store, &h)?;
            }
            write_stdout(text.as_bytes());
            Ok(())
        }
        Cmd::Bench { iterations } => bench(iterations),
        Cmd::Man => {
            use clap::CommandFactory;
            let mut b = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut b)
                .map_err(|x| x.to_string())?;
            write_stdout(&b);
            Ok(())
        }
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            // Generated into memory: clap_complete panics when its writer fails.
            let mut b = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ntrs-reg", &mut b);
            write_stdout(&b);
            Ok(())
        }
    }
}

/// The `REG_*` name of a value type.
fn type_name(ty: u32) -> String {
    const NAMES: [&str; 12] = [
        "REG_NONE",
        "REG_SZ",
        "REG_EXPAND_SZ",
        "REG_BINARY",
        "REG_DWORD",
        "REG_DWORD_BIG_ENDIAN",
        "REG_LINK",
        "REG_MULTI_SZ",
        "REG_RESOURCE_LIST",
        "REG_FULL_RESOURCE_DESCRIPTOR",
        "REG_RESOURCE_REQUIREMENTS_LIST",
        "REG_QWORD",
    ];
    match NAMES.get(ty as usize) {
        Some(n) => n.to_string(),
        None => format!("0x{:x}", ty),
    }
}

fn hex_string(d: &[u8]) -> String {
    d.iter().map(|b| format!("{:02x}", b)).collect()
}

/// A value as JSON: name, type, size and data (strings decoded for the string types, numbers for
/// DWORD/QWORD, hex otherwise).
fn value_json(name: &str, ty: u32, data: Option<&[u8]>) -> serde_json::Value {
    use serde_json::json;
    let mut o = json!({ "name": name, "type": type_name(ty) });
    let Some(d) = data else {
        o["data"] = serde_json::Value::Null;
        return o;
    };
    o["size"] = json!(d.len());
    o["data"] = match ty {
        REG_SZ | REG_EXPAND_SZ | REG_LINK if d.len() % 2 == 0 => json!(regf::from_utf16z(d)),
        REG_MULTI_SZ if d.len() % 2 == 0 => {
            let units: Vec<u16> = d
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let items: Vec<String> = units
                .split(|&u| u == 0)
                .filter(|s| !s.is_empty())
                .map(String::from_utf16_lossy)
                .collect();
            json!(items)
        }
        REG_DWORD if d.len() == 4 => json!(u32::from_le_bytes([d[0], d[1], d[2], d[3]])),
        REG_QWORD if d.len() == 8 => json!(u64::from_le_bytes(d.try_into().unwrap_or([0; 8]))),
        _ => json!(hex_string(d)),
    };
    o
}

/// A key's security descriptor in SDDL (or why it cannot be shown).
fn key_sddl(h: &Hive, k: regf::KeyRef) -> String {
    match h.key_security(k) {
        Ok(b) => match security::sd::SecurityDescriptor::parse(&b)
            .and_then(|sd| security::sddl::format(&sd))
        {
            Ok(s) => s,
            Err(st) => format!("(descriptor not decoded: {})", st),
        },
        Err(e) => format!("(no descriptor: {})", e),
    }
}

/// A key as JSON: path, name, last write time, class, flags, SDDL, link target, values (and the
/// subkey names when `subkeys`).
fn key_json(h: &Hive, k: regf::KeyRef, subkeys: bool) -> Result<serde_json::Value, String> {
    let e = |x: Error| x.to_string();
    let mut o = serde_json::json!({
        "path": h.key_path(k).map_err(e)?,
        "name": h.key_name(k).map_err(e)?,
        "last_write": nt::time::Iso8601(h.key_last_write(k).map_err(e)?).to_string(),
        "class": h.key_class(k).map_err(e)?,
        "security": key_sddl(h, k),
        "values": h
            .enum_values(k)
            .map_err(e)?
            .iter()
            .map(|v| value_json(&v.name, v.ty, Some(&v.data)))
            .collect::<Vec<_>>(),
    });
    if let Some(t) = h.link_target(k).map_err(e)? {
        o["symbolic_link"] = serde_json::json!(t);
    }
    if subkeys {
        let mut names = Vec::new();
        for s in h.enum_subkeys(k).map_err(e)? {
            names.push(h.key_name(s).map_err(e)?);
        }
        o["subkeys"] = serde_json::json!(names);
    }
    Ok(o)
}

/// Prints what [`Hive::recover_deleted`] finds, as `.reg`-like text or JSON.
fn deleted(h: &Hive, json: bool) {
    let r = h.recover_deleted();
    let path = |k: &regf::DeletedKey| match &k.path {
        Some(p) => p.clone(),
        None => format!("?\\{}", k.name),
    };
    if json {
        let val = |v: &regf::DeletedValue| {
            let mut o = value_json(&v.name, v.ty, v.data.as_deref());
            o["cell"] = serde_json::json!(format!("0x{:x}", v.offset));
            o["recorded_size"] = serde_json::json!(v.size & 0x7FFF_FFFF);
            o
        };
        let keys: Vec<_> = r
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "path": path(k),
                    "path_resolved": k.path.is_some(),
                    "name": k.name,
                    "cell": format!("0x{:x}", k.offset),
                    "parent_cell": format!("0x{:x}", k.parent),
                    "last_write": nt::time::Iso8601(k.last_write).to_string(),
                    "values": k.values.iter().map(val).collect::<Vec<_>>(),
                })
            })
            .collect();
        let values: Vec<_> = r.values.iter().map(val).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "keys": keys, "values": values }))
                .unwrap_or_default()
        );
        return;
    }
    let value = |v: &regf::DeletedValue| match &v.data {
        Some(d) => {
            outln!("; cell 0x{:x}", v.offset);
            outln!(
                "{}",
                format_value(&regf::Value {
                    name: v.name.clone(),
                    ty: v.ty,
                    data: d.clone(),
                })
            );
        }
        None => outln!(
            "; cell 0x{:x}: \"{}\" {} of {} bytes: data cells reused",
            v.offset,
            v.name,
            type_name(v.ty),
            v.size & 0x7FFF_FFFF
        ),
    };
    outln!(
        "; {} deleted key(s), {} deleted value(s) without a key",
        r.keys.len(),
        r.values.len()
    );
    for k in &r.keys {
        outln!("");
        outln!("[{}]", path(k));
        outln!(
            "; deleted key: cell 0x{:x}, last write {}{}",
            k.offset,
            nt::time::Iso8601(k.last_write),
            if k.path.is_none() {
                format!(", parent cell 0x{:x} does not resolve", k.parent)
            } else {
                String::new()
            }
        );
        for v in &k.values {
            value(v);
        }
    }
    if !r.values.is_empty() {
        outln!("");
        outln!("; deleted values whose key is unknown");
        for v in &r.values {
            value(v);
        }
    }
}

/// Builds a hive with 100,000 keys (10 x 100 x 100, one value each), reloads it from bytes, and
/// times opening a key by path plus querying its value.
fn bench(iterations: u32) -> Result<(), String> {
    let e = |x: Error| x.to_string();
    let mut h = Hive::new_empty("ROOT").map_err(e)?;
    let root = h.root();
    for a in 0..10 {
        let ka = h.create_key(root, &format!("Level{}", a)).map_err(e)?;
        for b in 0..100 {
            let kb = h.create_key(ka, &format!("Group{:03}", b)).map_err(e)?;
            for c in 0..100 {
                let kc = h.create_key(kb, &format!("Key{:03}", c)).map_err(e)?;
                h.set_value(
                    kc,
                    "Value",
                    REG_DWORD,
                    &((a * 10000 + b * 100 + c) as u32).to_le_bytes(),
                )
                .map_err(e)?;
            }
        }
    }
    let file = h.to_bytes();
    let h = Hive::from_bytes(&file).map_err(e)?;
    let iterations = iterations.max(1);
    let paths: Vec<String> = (0..997u32)
        .map(|i| {
            format!(
                "Level{}\\Group{:03}\\Key{:03}",
                i % 10,
                (i * 7) % 100,
                (i * 13) % 100
            )
        })
        .collect();
    let start = Instant::now();
    let mut sum = 0u64;
    for i in 0..iterations {
        let p = &paths[i as usize % paths.len()];
        let k = h.open_key(p).map_err(e)?;
        let v = h.query_value(k, "Value").map_err(e)?;
        sum += v.data.first().copied().unwrap_or(0) as u64;
        // Closing is dropping the handle (a cell offset): nothing to do.
    }
    let ns = start.elapsed().as_nanos() / iterations as u128;
    std::hint::black_box(sum);
    outln!("BENCH regf_query_value_100k_keys {} ns", ns);
    bench_export(&file)
}

/// Median of three timed runs of `f` in milliseconds; each run must succeed.
fn median3_ms(mut f: impl FnMut() -> Result<(), String>) -> Result<u128, String> {
    let mut t = Vec::new();
    for _ in 0..3 {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_millis());
    }
    t.sort();
    Ok(t[1])
}

/// Number of key lines (`[...]`) in `.reg` text.
fn key_lines(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with('[')).count()
}

/// `reg_export_large_hive`: `ntrs-reg export HIVE -o FILE` (a process, reading and parsing the
/// hive file, writing the `reg export` format) on the 100,000-key hive, against
/// `hivexregedit --export` of the same file when hivex is installed. Both outputs must list
/// every key.
fn bench_export(file: &[u8]) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("ntrs-reg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|x| x.to_string())?;
    let hive = dir.join("large.hive");
    let out = dir.join("large.reg");
    std::fs::write(&hive, file).map_err(|x| x.to_string())?;
    let keys = 1 + 10 + 1000 + 100_000;
    let me = std::env::current_exe().map_err(|x| x.to_string())?;
    let ms = median3_ms(|| {
        let st = std::process::Command::new(&me)
            .arg("export")
            .arg(&hive)
            .arg("-o")
            .arg(&out)
            .status()
            .map_err(|x| x.to_string())?;
        if !st.success() {
            return Err(format!("ntrs-reg export: {st}"));
        }
        Ok(())
    });
    let check = std::fs::read(&out)
        .map_err(|x| x.to_string())
        .and_then(|b| decode_reg_file(&b).map_err(|x| x.to_string()))
        .map(|t| key_lines(&t));
    let mut failed = true;
    match (ms, check) {
        (Ok(ms), Ok(n)) if n == keys => {
            outln!("BENCH reg_export_large_hive {} ms", ms);
            failed = false;
        }
        (Ok(_), Ok(n)) => outln!("BENCH reg_export_large_hive FAILED {} of {} keys", n, keys),
        (Err(x), _) | (_, Err(x)) => outln!("BENCH reg_export_large_hive FAILED {}", x),
    }
    if std::path::Path::new("/usr/bin/hivexregedit").exists() {
        let mut lines = 0;
        let ms = median3_ms(|| {
            let o = std::process::Command::new("/usr/bin/hivexregedit")
                .arg("--export")
                .arg(&hive)
                .arg("\\")
                .output()
                .map_err(|x| x.to_string())?;
            if !o.status.success() {
                return Err(format!("hivexregedit --export: {}", o.status));
            }
            lines = key_lines(&String::from_utf8_lossy(&o.stdout));
            Ok(())
        });
        match ms {
            Ok(ms) if lines == keys => {
                outln!("BENCH hivexregedit_export_large_hive {} ms", ms)
            }
            Ok(_) => {
                outln!(
                    "BENCH hivexregedit_export_large_hive FAILED {} of {} keys",
                    lines,
                    keys
                );
                failed = true;
            }
            Err(x) => {
                outln!("BENCH hivexregedit_export_large_hive FAILED {}", x);
                failed = true;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if failed {
        return Err("the export benchmark failed".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(m) => {
            eprintln!("ntrs-reg: {}", m);
            ExitCode::FAILURE
        }
    }
}
