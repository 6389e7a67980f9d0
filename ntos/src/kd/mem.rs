//! kd's memory commands, shaped as WinDbg's: `db`/`dw`/`dd`/`dq` (dump),
//! `dps` (pointers with symbols), `u` (disassembly, iced-x86), `x`
//! (exports matching a wildcard), `ln` (nearest symbols) and `.process`
//! (the implicit process whose address space user addresses are read in).
//!
//! Memory is read with `mm::dbg::mm_dbg_copy_memory`, which never faults:
//! what cannot be read prints as `?`. Symbols are ntoskrnl's exports (the
//! only symbols the kernel carries): an address in the kernel is named
//! after the nearest export at or below it, as WinDbg does with export
//! symbols only; an address in a driver is `module+0xoffset`.

use crate::dbg_println;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use nt::kdmem::{self, Address, Symbol, Unit};

/// The implicit process's directory table base (0: the current address
/// space) and its process address (for `.process`).
static IMPLICIT_DTB: AtomicU64 = AtomicU64::new(0);
static IMPLICIT_PROCESS: AtomicU64 = AtomicU64::new(0);

fn dtb() -> Option<u64> {
    match IMPLICIT_DTB.load(Ordering::Relaxed) {
        0 => None,
        d => Some(d),
    }
}

/// Reads `len` bytes at `va` in the implicit process's address space;
/// returns the buffer and how many bytes could be read.
fn read(va: u64, len: usize) -> (Vec<u8>, usize) {
    let mut buf = alloc::vec![0u8; len];
    let n = crate::mm::dbg::mm_dbg_copy_memory(dtb(), va, &mut buf);
    (buf, n)
}

/// ntoskrnl's export symbols, built on first use.
struct KernelSymbols {
    base: u64,
    size: u64,
    /// (RVA, name), sorted by RVA.
    names: Vec<(u32, &'static [u8])>,
}

static KERNEL_SYMBOLS: once_cell::race::OnceBox<Option<KernelSymbols>> =
    once_cell::race::OnceBox::new();

fn load_kernel_symbols() -> Option<KernelSymbols> {
    let (base, names) = crate::mm::ldr::kernel_symbols()?;
    let size = crate::mm::ldr::module_containing(base)?.size_of_image as u64;
    Some(KernelSymbols { base, size, names })
}

fn kernel_symbols() -> Option<&'static KernelSymbols> {
    KERNEL_SYMBOLS
        .get_or_init(|| alloc::boxed::Box::new(load_kernel_symbols()))
        .as_ref()
}

fn as_str(n: &[u8]) -> &str {
    core::str::from_utf8(n).unwrap_or("?")
}

/// The symbol naming `va`, if it lies in a loaded image.
fn symbolize(va: u64) -> Option<String> {
    if let Some(k) = kernel_symbols().filter(|k| va >= k.base && va - k.base < k.size) {
        let rva = (va - k.base) as u32;
        let i = k.names.partition_point(|&(r, _)| r <= rva);
        let s = match i.checked_sub(1).map(|i| k.names[i]) {
            Some((r, n)) => Symbol {
                module: "nt",
                name: Some(as_str(n)),
                offset: (rva - r) as u64,
            },
            None => Symbol {
                module: "nt",
                name: None,
                offset: rva as u64,
            },
        };
        return Some(alloc::format!("{s}"));
    }
    let m = crate::mm::ldr::module_containing(va)?;
    Some(alloc::format!(
        "{}",
        Symbol {
            module: kdmem::module_name(&m.base_dll_name),
            name: None,
            offset: va - m.dll_base,
        }
    ))
}

/// The export that starts exactly at `va`, if any (a label line for `u`).
fn label_at(va: u64) -> Option<&'static str> {
    let k = kernel_symbols().filter(|k| va >= k.base && va - k.base < k.size)?;
    let rva = (va - k.base) as u32;
    let i = k.names.partition_point(|&(r, _)| r < rva);
    k.names
        .get(i)
        .filter(|&&(r, _)| r == rva)
        .map(|&(_, n)| as_str(n))
}

/// Where the last dump or disassembly ended, so a bare `db`/`u` goes on.
static NEXT_DUMP: AtomicU64 = AtomicU64::new(0);
static NEXT_U: AtomicU64 = AtomicU64::new(0);

/// The address of symbol `nt!name` (an exact export name).
fn symbol_address(sym: &str) -> Option<u64> {
    let (module, name) = sym.split_once('!')?;
    if !module.eq_ignore_ascii_case("nt") {
        return None;
    }
    let k = kernel_symbols()?;
    k.names
        .iter()
        .find(|&&(_, n)| n == name.as_bytes())
        .map(|&(r, _)| k.base + r as u64)
}

/// The arguments with a leading `nt!name` replaced by its address, so the
/// number parser sees a number (WinDbg evaluates symbols in addresses).
fn resolve_first(args: &str) -> Result<String, String> {
    let args = args.trim();
    let (first, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    if !first.contains('!') {
        return Ok(String::from(args));
    }
    match symbol_address(first) {
        Some(a) => Ok(alloc::format!("{a:x} {rest}")),
        None => Err(alloc::format!("Couldn't resolve error at '{first}'")),
    }
}

/// The address argument of `ln`-like commands: a number or `nt!name`.
fn address_arg(args: &str) -> Option<u64> {
    let w = args.split_whitespace().next()?;
    if w.contains('!') {
        symbol_address(w)
    } else {
        crate::kd::parse_number(w)
    }
}

fn range_or_next(args: &str, size: usize, default: u64, next: &AtomicU64) -> Option<(u64, u64)> {
    if args.trim().is_empty() {
        return Some((next.load(Ordering::Relaxed), default));
    }
    let args = match resolve_first(args) {
        Ok(a) => a,
        Err(e) => {
            dbg_println!("{e}");
            return None;
        }
    };
    let args = args.as_str();
    match kdmem::parse_range(args, size, default) {
        Ok(r) => Some(r),
        Err(e) => {
            dbg_println!("{e} in '{args}'");
            None
        }
    }
}

/// `db`, `dw`, `dd`, `dq`.
pub fn dump(unit: Unit, args: &str) {
    let Some((start, count)) = range_or_next(args, unit.size(), unit.default_count(), &NEXT_DUMP)
    else {
        return;
    };
    let len = count as usize * unit.size();
    let (buf, n) = read(start, len);
    let mut out = String::new();
    let _ = kdmem::write_dump(&mut out, start, &buf, n, unit);
    crate::dbg_print!("{out}");
    NEXT_DUMP.store(start.wrapping_add(len as u64), Ordering::Relaxed);
}

/// `dps`: pointer-sized values, each with its symbol when it points into a
/// loaded image.
pub fn dps(args: &str) {
    let Some((start, count)) = range_or_next(args, 8, 16, &NEXT_DUMP) else {
        return;
    };
    let (buf, n) = read(start, count as usize * 8);
    for i in 0..count as usize {
        let a = start.wrapping_add(i as u64 * 8);
        if (i + 1) * 8 > n {
            dbg_println!("{}  ????????`????????", Address(a));
            continue;
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(&buf[i * 8..i * 8 + 8]);
        let v = u64::from_le_bytes(w);
        match symbolize(v) {
            Some(s) => dbg_println!("{}  {} {s}", Address(a), Address(v)),
            None => dbg_println!("{}  {}", Address(a), Address(v)),
        }
    }
    NEXT_DUMP.store(start.wrapping_add(count * 8), Ordering::Relaxed);
}

/// `u [address] [L<count>]`: disassembles `count` instructions (8 by
/// default) in WinDbg's layout: address, instruction bytes, mnemonic,
/// operands; a label line where an export starts.
pub fn unassemble(args: &str) {
    use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter, MemorySizeOptions};
    let Some((start, count)) = range_or_next(args, 1, 8, &NEXT_U) else {
        return;
    };
    let (buf, n) = read(start, count as usize * 15);
    let mut decoder = Decoder::with_ip(64, &buf[..n], start, DecoderOptions::NONE);
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_uppercase_hex(false);
    // WinDbg names the operand size of every memory operand (`qword ptr`).
    fmt.options_mut()
        .set_memory_size_options(MemorySizeOptions::Always);
    let mut next = start;
    for _ in 0..count {
        if !decoder.can_decode() {
            dbg_println!("{} ??              ???", Address(next));
            break;
        }
        let ins = decoder.decode();
        if let Some(l) = label_at(ins.ip()) {
            dbg_println!("nt!{l}:");
        }
        let off = (ins.ip() - start) as usize;
        let mut bytes = String::new();
        for b in &buf[off..off + ins.len()] {
            bytes.push_str(&alloc::format!("{b:02x}"));
        }
        let mut mnemonic = String::new();
        fmt.format_mnemonic(&ins, &mut mnemonic);
        let mut operands = String::new();
        fmt.format_all_operands(&ins, &mut operands);
        if ins.is_invalid() {
            mnemonic = String::from("???");
        }
        dbg_println!("{} {bytes:<16}{mnemonic:<7} {operands}", Address(ins.ip()));
        next = ins.next_ip();
    }
    NEXT_U.store(next, Ordering::Relaxed);
}

/// `x module!pattern`: the symbols matching the pattern (`*`, `?`), with
/// their addresses. Only `nt` has symbols (its exports).
pub fn examine(args: &str) {
    let arg = args.trim();
    let (module, pattern) = arg.split_once('!').unwrap_or(("nt", arg));
    if pattern.is_empty() {
        dbg_println!("usage: x nt!<pattern>   (* and ? are wildcards)");
        return;
    }
    if !module.eq_ignore_ascii_case("nt") {
        // WinDbg lists nothing for a module without matching symbols.
        return;
    }
    let Some(k) = kernel_symbols() else { return };
    let mut hits: Vec<(&str, u32)> = k
        .names
        .iter()
        .map(|&(r, n)| (as_str(n), r))
        .filter(|(n, _)| kdmem::matches_wildcard(pattern, n))
        .collect();
    hits.sort_unstable();
    for (n, r) in hits {
        dbg_println!("{} nt!{n}", Address(k.base + r as u64));
    }
}

/// `ln <address>`: the nearest symbols at or below and above the address.
pub fn list_near(args: &str) {
    let Some(va) = address_arg(args) else {
        dbg_println!("usage: ln <address>");
        return;
    };
    let Some(k) = kernel_symbols().filter(|k| va >= k.base && va - k.base < k.size) else {
        match symbolize(va) {
            Some(s) => dbg_println!("({})   {s}", Address(va)),
            None => dbg_println!("No symbol found at {}", Address(va)),
        }
        return;
    };
    let rva = (va - k.base) as u32;
    let i = k.names.partition_point(|&(r, _)| r <= rva);
    let below = i.checked_sub(1).map(|j| k.names[j]);
    let above = k.names[i..].iter().find(|&&(r, _)| r > rva).copied();
    let mut line = String::new();
    match below {
        Some((r, n)) => {
            let s = Symbol {
                module: "nt",
                name: Some(as_str(n)),
                offset: (rva - r) as u64,
            };
            line.push_str(&alloc::format!("({})   {s}", Address(k.base + r as u64)));
        }
        None => line.push_str(&alloc::format!("({})   nt+{rva:#x}", Address(va))),
    }
    if let Some((r, n)) = above {
        line.push_str(&alloc::format!(
            "   |  ({})   nt!{}",
            Address(k.base + r as u64),
            as_str(n)
        ));
    }
    dbg_println!("{line}");
    if below.is_some_and(|(r, _)| r == rva) {
        dbg_println!("Exact matches:");
        for &(_, n) in k.names.iter().filter(|&&(r, _)| r == rva) {
            dbg_println!("    nt!{}", as_str(n));
        }
    }
}

/// `.process [address]`: sets the implicit process (0: back to the
/// current one), whose address space user addresses are read in, and says
/// which it is.
pub fn dot_process(args: &str) {
    if let Some(a) = args.split_whitespace().next() {
        let Some(addr) = crate::kd::parse_number(a) else {
            dbg_println!("Syntax error in '{a}'");
            return;
        };
        if addr == 0 {
            IMPLICIT_DTB.store(0, Ordering::Relaxed);
            IMPLICIT_PROCESS.store(0, Ordering::Relaxed);
        } else {
            let Some(p) = crate::ps::process_list()
                .into_iter()
                .find(|p| p.address() == addr)
            else {
                dbg_println!("{} is not a process (see !process 0 0)", Address(addr));
                return;
            };
            IMPLICIT_DTB.store(p.pcb().directory_table_base(), Ordering::Relaxed);
            IMPLICIT_PROCESS.store(addr, Ordering::Relaxed);
        }
    }
    match IMPLICIT_PROCESS.load(Ordering::Relaxed) {
        0 => dbg_println!("Implicit process is now the current process"),
        a => dbg_println!("Implicit process is now {}", Address(a)),
    }
}

/// Boot tests: the debugger's reads and symbols.
pub const TESTS: &[crate::ktest::Test] = &[
    ("kd.mem.read_never_faults", t_read),
    ("kd.mem.symbols_are_nts_exports", t_symbols),
];

fn t_read() -> crate::ktest::TestResult {
    use crate::ktest::check;
    use crate::mm::dbg::mm_dbg_copy_memory;
    let base = crate::mm::ldr::loaded_modules()
        .first()
        .map(|m| m.dll_base)
        .ok_or("no loaded modules")?;
    let mut b = [0u8; 2];
    check(
        mm_dbg_copy_memory(None, base, &mut b) == 2 && &b == b"MZ",
        "the kernel's first bytes are not MZ",
    )?;
    let mut z = [0u8; 16];
    check(
        mm_dbg_copy_memory(None, 0, &mut z) == 0,
        "page 0 (not mapped) was read",
    )?;
    check(
        mm_dbg_copy_memory(None, 0x8000_0000_0000, &mut z) == 0,
        "a non-canonical address was read",
    )?;
    // Two pages of pool with a pattern, read across the page boundary.
    let v: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut out = alloc::vec![0u8; 8192];
    let at = v.as_ptr() as u64;
    check(
        mm_dbg_copy_memory(None, at, &mut out) == 8192 && out == v,
        "a pool buffer read back differently",
    )?;
    // The same bytes through the System process's directory table base
    // (the kernel half is shared by every address space).
    let sys = crate::ps::process_list()
        .into_iter()
        .find(|p| p.pid() == 4)
        .ok_or("no System process")?;
    let mut again = alloc::vec![0u8; 64];
    check(
        mm_dbg_copy_memory(
            Some(sys.pcb().directory_table_base()),
            at + 4000,
            &mut again,
        ) == 64
            && again[..] == v[4000..4064],
        "a read through System's directory table base differs",
    )
}

fn t_symbols() -> crate::ktest::TestResult {
    use crate::ktest::check;
    let a = crate::mm::ldr::mm_get_system_routine_address(b"KeBugCheckEx")
        .ok_or("KeBugCheckEx is not exported")?;
    check(
        symbol_address("nt!KeBugCheckEx") == Some(a),
        "nt!KeBugCheckEx resolves elsewhere",
    )?;
    check(
        label_at(a) == Some("KeBugCheckEx"),
        "no label at KeBugCheckEx",
    )?;
    let s = symbolize(a + 5).unwrap_or_default();
    check(
        s == "nt!KeBugCheckEx+0x5" || s.starts_with("nt!") && s.ends_with("+0x5"),
        "an address 5 bytes into KeBugCheckEx is not named from it",
    )?;
    check(symbolize(0x1000).is_none(), "a user address got a symbol")?;
    check(
        resolve_first("nt!NoSuchExport L2").is_err(),
        "an unknown symbol resolved",
    )
}
