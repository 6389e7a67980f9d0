//! `!devnode` in kd, shaped as WinDbg's: `!devnode 0 1` dumps the tree
//! from `IopRootDeviceNode`, `!devnode <addr> [flags]` one node. Flags:
//! 1 = children too, 2 = the allocated (raw) CM_RESOURCE_LIST, 8 = the
//! translated one. Only fields ntrs has are printed: `for PDO` appears
//! once the I/O manager gave the node a PDO.

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
        if flags & 8 != 0 {
            dump_list(&pad, "TranslatedResourceList", &r.translated, true);
        }
    }
    if flags & 1 != 0 {
        for &c in &n.children {
            dump(tree, &tree.nodes[c], flags, depth + 1);
        }
        for c in super::devices::dynamic_children(n) {
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
            _ => {}
        }
    }
}

fn type_name(t: u8) -> &'static str {
    match t {
        CM_RESOURCE_TYPE_NULL => "Null",
        CM_RESOURCE_TYPE_PORT => "Port",
        CM_RESOURCE_TYPE_INTERRUPT => "Interrupt",
        CM_RESOURCE_TYPE_MEMORY => "Memory",
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
