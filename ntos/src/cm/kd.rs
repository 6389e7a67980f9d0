//! `!reg` in kd, shaped as WinDbg's: `querykey <path>`, `keyinfo <HiveAddr>
//! <KnodeAddr>`, `openkeys`, `hivelist`. Every address printed is real: a
//! KCB is the cache entry's address, a hive the mounted hive's structure, a
//! key node the nk cell's data in the hive bin that holds it.

use super::*;
use regf::registry::MountedHive;

/// `!reg <subcommand> [args]`.
pub fn kd_reg(args: &str) {
    if REGISTRY.is_held() {
        crate::dbg_println!(
            "The registry lock is held by a thread; !reg does not wait for it (try again)."
        );
        return;
    }
    let args = args.trim();
    let (sub, rest) = args.split_once(' ').unwrap_or((args, ""));
    let rest = rest.trim();
    match sub {
        // Key names may contain spaces: the path is the rest of the line.
        "querykey" | "q" => querykey(if rest.is_empty() { "\\REGISTRY" } else { rest }),
        "keyinfo" => keyinfo(rest),
        "openkeys" => openkeys(),
        "hivelist" => hivelist(),
        _ => crate::dbg_println!(
            "usage: !reg querykey <\\REGISTRY\\...> | !reg keyinfo <HiveAddr> <KnodeAddr> | !reg openkeys | !reg hivelist"
        ),
    }
}

fn format_value(v: &regf::Value) -> String {
    match v.ty {
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

/// The subkey and value listing of a key node, as `!reg querykey` and
/// `!reg keyinfo` print it.
fn key_listing(
    lines: &mut Vec<String>,
    mh: &MountedHive<Arc<SecurityDescriptor>>,
    hive_addr: usize,
    cell: u32,
) {
    let h = mh.hive();
    let Ok(info) = h.key_info(cell) else {
        lines.push(alloc::format!("Key node {cell:#x} is not readable"));
        return;
    };
    let stable = info.subkeys as usize;
    let all = stable + info.volatile_subkeys as usize;
    for (first, last, title) in [
        (0, stable, "[SubKeyName]"),
        (stable, all, "[VolatileSubKeyName]"),
    ] {
        if first == last {
            continue;
        }
        lines.push(String::new());
        lines.push(alloc::format!("{:<20} {title}", "[SubKeyAddr]"));
        for i in first..last {
            if let Ok(Some(c)) = h.subkey_at(cell, i) {
                lines.push(alloc::format!(
                    "{:016x}     {}",
                    h.cell_address(c).unwrap_or(0),
                    h.key_name(c).unwrap_or_default()
                ));
            }
        }
    }
    if all > 0 {
        lines.push(String::new());
        lines.push(alloc::format!(
            " Use '!reg keyinfo {hive_addr:016x} <SubKeyAddr>' to dump the subkey details"
        ));
    }
    if info.values > 0 {
        lines.push(String::new());
        lines.push(alloc::format!(
            "{:<19} {:<29} {}",
            "[ValueType]",
            "[ValueName]",
            "[ValueData]"
        ));
        for i in 0..info.values as usize {
            if let Ok(Some(v)) = h.value_by_index(cell, i) {
                lines.push(alloc::format!(
                    "{:<19} {:<29} {}",
                    type_name(v.ty),
                    v.name,
                    format_value(&v)
                ));
            }
        }
    }
}

fn print(lines: Vec<String>) {
    for l in lines {
        crate::dbg_println!("{l}");
    }
}

fn querykey(path: &str) {
    let Ok(rel) = below_root(path) else {
        crate::dbg_println!("{path} is not a registry path (\\REGISTRY\\...)");
        return;
    };
    // The lookup may add KCBs to the cache, as any open does.
    let out = with_exclusive(|r| {
        let k = r.lookup(ROOT_KCB, rel).map_err(status_of)?;
        let mut lines = Vec::new();
        let (mh, cell) = (
            r.hive_of(k).map_err(status_of)?,
            r.kcb(k).map_err(status_of)?.cell,
        );
        let hive_addr = r.hive_address(mh);
        lines.push(alloc::format!(
            "Found KCB = {:016x} :: {}",
            r.kcb_address(k).unwrap_or(0),
            r.full_name(k)
        ));
        lines.push(String::new());
        lines.push(alloc::format!("Hive         {hive_addr:016x}"));
        lines.push(alloc::format!(
            "KeyNode      {:016x}",
            mh.hive().cell_address(cell).unwrap_or(0)
        ));
        key_listing(&mut lines, mh, hive_addr, cell);
        r.release(k);
        Ok(lines)
    });
    match out {
        Ok(lines) => print(lines),
        Err(s) => crate::dbg_println!("Key {path} not found ({s})"),
    }
}

/// A hex number as WinDbg takes it (optional `0x`, backtick separators).
fn parse_hex(s: &str) -> Option<usize> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: String = s.chars().filter(|&c| c != '`').collect();
    usize::from_str_radix(&digits, 16).ok()
}

/// `!reg keyinfo <HiveAddr> <KnodeAddr>`: the key node at that address of
/// that hive (both as `!reg querykey` and `!reg hivelist` print them).
fn keyinfo(args: &str) {
    let mut it = args.split_whitespace();
    let (Some(ha), Some(ka)) = (it.next().and_then(parse_hex), it.next().and_then(parse_hex))
    else {
        crate::dbg_println!("usage: !reg keyinfo <HiveAddr> <KnodeAddr>");
        return;
    };
    let out = with_shared(|r| {
        let Some(mh) = r.hive_at_address(ha) else {
            return Ok(alloc::vec![alloc::format!(
                "{ha:016x} is not a hive (see !reg hivelist)"
            )]);
        };
        let h = mh.hive();
        let Some(cell) = h.cell_at_address(ka) else {
            return Ok(alloc::vec![alloc::format!(
                "{ka:016x} is not a cell of hive {ha:016x}"
            )]);
        };
        let mut lines = Vec::new();
        let Ok(path) = h.key_path(cell) else {
            return Ok(alloc::vec![alloc::format!("{ka:016x} is not a key node")]);
        };
        let mount = r.full_name(mh.root);
        lines.push(alloc::format!(
            "KeyPath      {mount}{}{path}",
            if path.is_empty() { "" } else { "\\" }
        ));
        lines.push(alloc::format!("Hive         {ha:016x}"));
        lines.push(alloc::format!("KeyNode      {ka:016x}"));
        key_listing(&mut lines, mh, ha, cell);
        Ok(lines)
    });
    match out {
        Ok(lines) => print(lines),
        Err(s) => crate::dbg_println!("!reg keyinfo: {s}"),
    }
}

fn openkeys() {
    let lines = with_shared(|r| {
        Ok(r.kcbs()
            .filter(|(_, _, refs)| *refs > 0)
            .map(|(i, k, refs)| {
                alloc::format!(
                    "  {:016x} {:>4} {}{}",
                    r.kcb_address(i).unwrap_or(0),
                    refs,
                    r.full_name(i),
                    if k.deleted { " (deleted)" } else { "" }
                )
            })
            .collect::<Vec<_>>())
    })
    .unwrap_or_default();
    crate::dbg_println!("Referenced key control blocks: {}", lines.len());
    crate::dbg_println!("  KCB              Refs Name");
    print(lines);
}

fn hivelist() {
    let lines = with_shared(|r| {
        Ok(r.hives()
            .map(|h| {
                alloc::format!(
                    "| {:016x} | {:>11x} | {:>13x} | {:<40} | {}",
                    r.hive_address(h),
                    h.hive().stable_len(),
                    h.hive().volatile_len(),
                    h.file_name,
                    r.full_name(h.root)
                )
            })
            .collect::<Vec<_>>())
    })
    .unwrap_or_default();
    let rule = "-".repeat(110);
    crate::dbg_println!("{rule}");
    crate::dbg_println!(
        "|     HiveAddr     |Stable Length|Volatile Length| {:<40} | MountPoint",
        "FileName"
    );
    crate::dbg_println!("{rule}");
    print(lines);
}
