//! `!reg` in kd: `querykey <path>`, `openkeys`, `hivelist`.

use super::*;

/// `!reg <subcommand> [args]`.
pub fn kd_reg(args: &str) {
    let args = args.trim();
    let (sub, rest) = args.split_once(' ').unwrap_or((args, ""));
    let rest = rest.trim();
    match Some(sub) {
        // Key names may contain spaces: the path is the rest of the line.
        Some("querykey") | Some("q") => querykey(if rest.is_empty() { "\\REGISTRY" } else { rest }),
        Some("openkeys") => openkeys(),
        Some("hivelist") => hivelist(),
        _ => crate::dbg_println!(
            "usage: !reg querykey <\\REGISTRY\\...> | !reg openkeys | !reg hivelist"
        ),
    }
}

fn format_value(v: &Value) -> String {
    match v.value_type {
        REG_SZ | REG_EXPAND_SZ | REG_LINK => alloc::format!("\"{}\"", regf::from_utf16z(&v.data)),
        REG_DWORD if v.data.len() >= 4 => alloc::format!(
            "0x{:x}",
            u32::from_le_bytes([v.data[0], v.data[1], v.data[2], v.data[3]])
        ),
        REG_QWORD if v.data.len() >= 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v.data[..8]);
            alloc::format!("0x{:x}", u64::from_le_bytes(b))
        }
        REG_MULTI_SZ => {
            let s = utf16_string_all(&v.data);
            alloc::format!("{:?}", s)
        }
        _ => alloc::format!("{} bytes", v.data.len()),
    }
}

fn utf16_string_all(d: &[u8]) -> Vec<String> {
    let units: Vec<u16> = d
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    units
        .split(|&u| u == 0)
        .filter(|s| !s.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

fn type_name(t: u32) -> &'static str {
    match t {
        REG_NONE => "REG_NONE",
        REG_SZ => "REG_SZ",
        REG_EXPAND_SZ => "REG_EXPAND_SZ",
        REG_BINARY => "REG_BINARY",
        REG_DWORD => "REG_DWORD",
        REG_LINK => "REG_LINK",
        REG_MULTI_SZ => "REG_MULTI_SZ",
        REG_QWORD => "REG_QWORD",
        _ => "REG_?",
    }
}

fn querykey(path: &str) {
    let out = REGISTRY.with(|r| {
        let r = r.as_ref()?;
        let rel = below_root(path).ok()?;
        let k = r.walk(ROOT, rel).ok()?;
        let key = &r.keys[k];
        let mut lines = alloc::vec![alloc::format!(
            "Found KCB = {:016x} :: {}\n",
            k,
            r.full_name(k)
        )];
        lines.push(alloc::format!("{:<8} {:<30} {}", "Hive", "KeyNode", ""));
        for &c in key.subkeys.iter().filter(|&&c| !r.keys[c].deleted) {
            let sk = &r.keys[c];
            lines.push(alloc::format!(
                "[{}]  {:<30} [SubKeyAddr+{:x}]",
                if sk.volatile { "Volatile" } else { "Stable  " },
                sk.name,
                c
            ));
        }
        if !key.values.is_empty() {
            lines.push(String::from(
                "\n Use '!reg keyinfo' to dump the subkey details\n",
            ));
            lines.push(alloc::format!(
                "{:<10} {:<30} {}",
                "[ValueType]",
                "[ValueName]",
                "[ValueData]"
            ));
            for v in &key.values {
                lines.push(alloc::format!(
                    "{:<10}  {:<30} {}",
                    type_name(v.value_type),
                    v.name,
                    format_value(v)
                ));
            }
        }
        Some(lines)
    });
    match out {
        Some(lines) => {
            for l in lines {
                crate::dbg_println!("{l}");
            }
        }
        None => crate::dbg_println!("Key {path} not found"),
    }
}

fn openkeys() {
    let lines: Vec<String> = REGISTRY
        .with(|r| {
            r.as_ref().map(|r| {
                r.keys
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| k.open_count > 0)
                    .map(|(i, k)| {
                        alloc::format!("  {:016x} {:>4} {}", i, k.open_count, r.full_name(i))
                    })
                    .collect()
            })
        })
        .unwrap_or_default();
    crate::dbg_println!("Open key control blocks: {}", lines.len());
    crate::dbg_println!("  KCB              Refs Name");
    for l in lines {
        crate::dbg_println!("{l}");
    }
}

fn hivelist() {
    let hives: Vec<(String, String, usize)> = REGISTRY
        .with(|r| {
            r.as_ref().map(|r| {
                r.hives
                    .iter()
                    .map(|(k, f, n)| (r.full_name(*k), f.clone(), *n))
                    .collect()
            })
        })
        .unwrap_or_default();
    crate::dbg_println!(
        "-------------------------------------------------------------------------------"
    );
    crate::dbg_println!("| HiveAddr |Stable Length|Volatile Length| FileName");
    crate::dbg_println!(
        "-------------------------------------------------------------------------------"
    );
    crate::dbg_println!("| 00000000 |           0 |        (memory)| \\REGISTRY\\MACHINE\\HARDWARE (volatile, built at boot)");
    for (mount, file, len) in hives {
        crate::dbg_println!("| 00000000 | {len:>11} |               | {file} at {mount}");
    }
}
