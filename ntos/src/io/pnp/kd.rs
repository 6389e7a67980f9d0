//! `!devnode` and `!arbiter` in kd, shaped as WinDbg's: `!devnode 0 1`
//! dumps the tree from `IopRootDeviceNode`, `!devnode <addr> [flags]` one
//! node. Flags: 1 = children too, 2 = the allocated (raw)
//! CM_RESOURCE_LIST, 4 = the IO_RESOURCE_REQUIREMENTS_LIST, 8 = the
//! translated CM_RESOURCE_LIST. Only fields ntrs has are printed: `for
//! PDO` appears once the node has a PDO. `!arbiter [flags]` prints each
//! arbiter's allocated ranges with their owners.

use super::resource::{CmResourceList, *};
use super::{device_tree, problem_name, state_name, DeviceNode, DeviceTree};
use crate::dbg_println;

/// `!devnode [address [flags]]`.
pub fn kd_devnode(args: &str) {
    let Some(tree) = device_tree() else {
        dbg_println!("The PnP manager has not built the device tree.");
        return;
    };
    let mut it = args.split_whitespace();
    let addr = it.next().map(crate::kd::parse_number);
    let flags = it.next().map(crate::kd::parse_number).unwrap_or(Some(0));
    let (Some(addr), Some(flags)) = (addr.unwrap_or(Some(0)), flags) else {
        dbg_println!("usage: !devnode [address [flags]]");
        return;
    };
    let node = if addr == 0 {
        dbg_println!("Dumping IopRootDeviceNode (= {:#x})", tree.root().address());
        tree.root()
    } else if let Some(n) = tree.by_address(addr) {
        n
    } else {
        dbg_println!("{addr:#x} is not a device node");
        return;
    };
    dump(tree, node, flags, 0);
}

fn dump(tree: &DeviceTree, n: &DeviceNode, flags: u64, depth: usize) {
    let pad = "  ".repeat(depth);
    let pdo = n.pdo.load(core::sync::atomic::Ordering::Acquire);
    if pdo != 0 {
        dbg_println!("{pad}DevNode {:#x} for PDO {:#x}", n.address(), pdo);
    } else {
        dbg_println!("{pad}DevNode {:#x}", n.address());
    }
    dbg_println!("{pad}  InstancePath is \"{}\"", n.instance_path);
    if let Some(s) = n.service_name() {
        dbg_println!("{pad}  ServiceName is \"{s}\"");
    }
    dbg_println!(
        "{pad}  State = {} ({:#x})",
        state_name(n.state()),
        n.state()
    );
    dbg_println!(
        "{pad}  Previous State = {} ({:#x})",
        state_name(n.previous_state()),
        n.previous_state()
    );
    if n.problem() != 0 {
        dbg_println!("{pad}  Problem = {}", problem_name(n.problem()));
    }
    if let Some(r) = n.resources() {
        if flags & 2 != 0 {
            dump_list(&pad, "CmResourceList", &r.raw, false);
        }
    }
    if flags & 4 != 0 {
        if let Some(req) = &n.bus.requirements {
            dump_requirements(&pad, req);
        }
    }
    if let Some(r) = n.resources() {
        if flags & 8 != 0 {
            dump_list(&pad, "TranslatedResourceList", &r.translated, true);
        }
    }
    if flags & 1 != 0 {
        for c in tree.children(n.index) {
            dump(tree, c, flags, depth + 1);
        }
    }
}

fn dump_list(pad: &str, what: &str, l: &CmResourceList, translated: bool) {
    let v = &l.0;
    if v.len() < 5 {
        return;
    }
    dbg_println!(
        "{pad}  {what} at {:#018x}  Version {}.{}  Interface {:#x}  Bus #{}",
        l.as_ptr() as u64,
        v[3] & 0xFFFF,
        v[3] >> 16,
        v[1],
        v[2]
    );
    for (i, d) in l.descriptors().iter().enumerate() {
        let (ty, share) = (type_name(d.Type), share_name(d.ShareDisposition));
        dbg_println!(
            "{pad}    Entry {i} - {ty} ({:#x}) {share} ({:#x})",
            d.Type,
            d.ShareDisposition
        );
        match d.Type {
            CM_RESOURCE_TYPE_MEMORY | CM_RESOURCE_TYPE_PORT => {
                dbg_println!("{pad}      Flags ({:#06x})", d.Flags);
                dbg_println!(
                    "{pad}      Range starts at {:#018x} for {:#x} bytes",
                    d.Start(),
                    d.Length()
                );
            }
            CM_RESOURCE_TYPE_INTERRUPT => {
                let latched = d.Flags & CM_RESOURCE_INTERRUPT_LATCHED != 0;
                let message = d.Flags & CM_RESOURCE_INTERRUPT_MESSAGE != 0;
                dbg_println!(
                    "{pad}      Flags ({:#06x}) - {}{}",
                    d.Flags,
                    if latched {
                        "LATCHED"
                    } else {
                        "LEVEL_SENSITIVE"
                    },
                    if message { " MESSAGE" } else { "" }
                );
                if message && !translated {
                    // u.MessageInterrupt.Raw: Group, MessageCount, Vector.
                    dbg_println!(
                        "{pad}      MessageCount {:#x}, Vector {:#x}, Group {}, Affinity {:#x}",
                        d.u[0] >> 16,
                        d.Vector(),
                        d.u[0] & 0xFFFF,
                        d.Affinity()
                    );
                } else {
                    dbg_println!(
                        "{pad}      Level {:#x}, Vector {:#x}, Group {}, Affinity {:#x}",
                        d.Level(),
                        d.Vector(),
                        d.u[0] >> 16,
                        d.Affinity()
                    );
                }
            }
            wdk::pnp::CmResourceTypeBusNumber => {
                dbg_println!(
                    "{pad}      Range starts at {:#x} for {:#x} buses",
                    d.u[0],
                    d.u[1]
                );
            }
            _ => {}
        }
    }
}

/// The requirements list as `!devnode` flag 4 prints it.
fn dump_requirements(pad: &str, r: &::pnp::reslist::Requirements) {
    dbg_println!(
        "{pad}  IoResList  Interface {:#x}  Bus #{}  Slot {:#x}  AlternativeLists {}",
        r.interface_type,
        r.bus_number,
        r.slot_number,
        r.lists.len()
    );
    for (i, l) in r.lists.iter().enumerate() {
        dbg_println!("{pad}    Alternative {i} (Version 1.1)");
        for d in l {
            let opt = if d.is_alternative() {
                "Alternative"
            } else {
                ""
            };
            dbg_println!(
                "{pad}      {} {} ({:#x}) {} Flags ({:#06x}) {opt}",
                type_name(d.ty),
                share_name(d.share),
                d.share,
                if d.option & wdk::pnp::IO_RESOURCE_PREFERRED != 0 {
                    "Preferred"
                } else {
                    ""
                },
                d.flags
            );
            match d.ty {
                CM_RESOURCE_TYPE_INTERRUPT => dbg_println!(
                    "{pad}        MinimumVector {:#x}, MaximumVector {:#x}",
                    d.min,
                    d.max
                ),
                _ => dbg_println!(
                    "{pad}        {:#x} byte range with alignment {:#x}\n{pad}        {:#018x} - {:#018x}",
                    d.length,
                    d.alignment,
                    d.min,
                    d.max
                ),
            }
        }
    }
}

/// `!arbiter [flags]`: every arbiter's allocated ranges (`S` = shared),
/// owned by a device node or reserved (RAM, firmware, ECAM, a test
/// reservation). Flags as WinDbg's: 1 port, 2 memory, 4 interrupt,
/// 0x10 bus number (0 = all).
pub fn kd_arbiter(args: &str) {
    use ::pnp::arbiter::Owner;
    use ::pnp::ResourceKind;
    let flags = match args.split_whitespace().next().map(crate::kd::parse_number) {
        None => 0,
        Some(Some(f)) => f,
        Some(None) => {
            dbg_println!("usage: !arbiter [flags]");
            return;
        }
    };
    let tree = device_tree();
    let root = tree.map(|t| t.root().address()).unwrap_or(0);
    dbg_println!("DEVNODE {root:#x} (HTREE\\ROOT\\0)");
    for (bit, kind) in [
        (1, ResourceKind::Port),
        (2, ResourceKind::Memory),
        (4, ResourceKind::Interrupt),
        (0x10, ResourceKind::BusNumber),
    ] {
        if flags != 0 && flags & bit == 0 {
            continue;
        }
        // The debugger must not wait on a lock a frozen processor holds.
        let snapshot = super::arb::try_snapshot(kind);
        let Some((ranges, windows)) = snapshot else {
            dbg_println!("  {} Arbiter: busy or not set up", kind.arbiter_name());
            continue;
        };
        dbg_println!(
            "  {} Arbiter \"Root{}\"",
            kind.arbiter_name(),
            kind.arbiter_name()
        );
        for (s, e) in &windows {
            dbg_println!("    Window {s:016x} - {e:016x}");
        }
        dbg_println!("    Allocated ranges:");
        for a in &ranges {
            let owner = match a.owner {
                Owner::Device(d) => {
                    let path = tree
                        .and_then(|t| t.by_address(d))
                        .map(|n| n.instance_path.as_str())
                        .unwrap_or("?");
                    alloc::format!("{d:#x} ({path})")
                }
                Owner::Reserved(tag) => {
                    let t = tag.to_le_bytes();
                    alloc::format!(
                        "<Reserved {}>",
                        core::str::from_utf8(&t).unwrap_or("?").trim_end()
                    )
                }
            };
            dbg_println!(
                "      {:016x} - {:016x} {} {owner}",
                a.start,
                a.end,
                if a.shared { "S" } else { " " }
            );
        }
        if kind == ResourceKind::Interrupt {
            // Messages are not line ranges: their vectors, per device.
            for n in tree.iter().flat_map(|t| t.nodes()) {
                if let Some(i) = n
                    .resources()
                    .and_then(|r| r.interrupt)
                    .filter(|i| i.is_message())
                {
                    dbg_println!(
                        "      message vector {:#04x} {:#x} ({})",
                        i.vector(),
                        n.address(),
                        n.instance_path
                    );
                }
            }
        }
    }
}

fn type_name(t: u8) -> &'static str {
    match t {
        CM_RESOURCE_TYPE_NULL => "Null",
        CM_RESOURCE_TYPE_PORT => "Port",
        CM_RESOURCE_TYPE_INTERRUPT => "Interrupt",
        CM_RESOURCE_TYPE_MEMORY => "Memory",
        wdk::pnp::CmResourceTypeBusNumber => "BusNumber",
        _ => "?",
    }
}

fn share_name(s: u8) -> &'static str {
    match s {
        CM_RESOURCE_SHARE_DEVICE_EXCLUSIVE => "Device Exclusive",
        CM_RESOURCE_SHARE_SHARED => "Shared",
        2 => "Driver Exclusive",
        _ => "Undetermined",
    }
}
