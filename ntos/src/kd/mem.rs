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

/// ntoskrnl's symbols and `va`'s RVA in ntoskrnl, when `va` lies in it.
fn kernel_rva(va: u64) -> Option<(&'static KernelSymbols, u32)> {
    let k = kernel_symbols().filter(|k| va >= k.base && va - k.base < k.size)?;
    Some((k, (va - k.base) as u32))
}

fn as_str(n: &[u8]) -> &str {
    core::str::from_utf8(n).unwrap_or("?")
}

/// The symbol naming `va`, if it lies in a loaded image.
fn symbolize(va: u64) -> Option<String> {
    if let Some((k, rva)) = kernel_rva(va) {
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
    let (k, rva) = kernel_rva(va)?;
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
    let Some((k, rva)) = kernel_rva(va) else {
        match symbolize(va) {
            Some(s) => dbg_println!("({})   {s}", Address(va)),
            None => dbg_println!("No symbol found at {}", Address(va)),
        }
        return;
    };
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

/// The implicit thread of `k` (0: the current thread), set by `.thread`.
static IMPLICIT_THREAD: AtomicU64 = AtomicU64::new(0);

/// The memory the unwinder reads (code, unwind data, stacks): the
/// debugger's reads, which never fault.
struct DbgMemory;

impl unwind::Memory for DbgMemory {
    fn read(&self, address: u64, buf: &mut [u8]) -> bool {
        crate::mm::dbg::mm_dbg_copy_memory(None, address, buf) == buf.len()
    }
}

/// The exception directory (`.pdata`) of the loaded image containing
/// `pc`: (image base, table address, entries).
fn function_table(pc: u64) -> Option<(u64, u64, u32)> {
    use unwind::Memory;
    let base = crate::mm::ldr::module_containing(pc)?.dll_base;
    let m = DbgMemory;
    let nt = base + u64::from(m.read_u32(base + 0x3C).ok()?);
    let opt = nt + 24;
    if m.read_u16(opt).ok()? != 0x20B {
        return None; // not PE32+
    }
    if m.read_u32(opt + 108).ok()? <= 3 {
        return None; // no exception directory slot
    }
    let rva = m.read_u32(opt + 112 + 3 * 8).ok()?;
    let size = m.read_u32(opt + 112 + 3 * 8 + 4).ok()?;
    (rva != 0 && size >= 12).then(|| (base, base + u64::from(rva), size / 12))
}

/// One frame of a walk: its stack pointer, the return address unwinding
/// found, and the code address it was at.
struct Frame {
    child_sp: u64,
    ret: u64,
    pc: u64,
}

/// Walks a kernel stack from `ctx` (RIP, RSP and the nonvolatile
/// registers) with the images' unwind data; a function without a
/// `RUNTIME_FUNCTION` is a leaf (its return address at RSP). Stops after
/// `max` frames, outside the loaded images, or when RSP leaves
/// `limit..top` or does not grow.
fn walk(
    mut ctx: nt::context::Context,
    limit: u64,
    top: u64,
    max: usize,
) -> (Vec<Frame>, Option<String>) {
    use unwind::Memory;
    let mut frames = Vec::new();
    let m = DbgMemory;
    while frames.len() < max {
        let (pc, sp) = (ctx.rip, ctx.rsp);
        if sp < limit || sp >= top {
            return (
                frames,
                Some(alloc::format!(
                    "stack pointer {} left the stack",
                    Address(sp)
                )),
            );
        }
        let step = match function_table(pc) {
            Some((base, table, n)) => match unwind::lookup_function_entry(&m, base, table, n, pc) {
                Some(at) => m
                    .read_runtime_function(at)
                    .and_then(|f| unwind::virtual_unwind(&m, 0, base, pc, &f, &mut ctx, None))
                    .map(|_| ()),
                None => m.read_u64(sp).map(|r| {
                    ctx.rip = r;
                    ctx.rsp = sp + 8;
                }),
            },
            None => {
                return (
                    frames,
                    Some(alloc::format!("{} is not in a loaded image", Address(pc))),
                )
            }
        };
        if let Err(e) = step {
            return (frames, Some(alloc::format!("unwinding stopped: {e:?}")));
        }
        frames.push(Frame {
            child_sp: sp,
            ret: ctx.rip,
            pc,
        });
        if ctx.rsp <= sp || ctx.rip == 0 || crate::mm::ldr::module_containing(ctx.rip).is_none() {
            break;
        }
    }
    (frames, None)
}

/// The context a not-running thread resumes with: its switch frame.
fn switch_context(switch_rsp: u64) -> Option<nt::context::Context> {
    use unwind::Memory;
    let m = DbgMemory;
    let w = |i: u64| m.read_u64(switch_rsp + 8 * i).ok();
    Some(nt::context::Context {
        r15: w(1)?,
        r14: w(2)?,
        r13: w(3)?,
        r12: w(4)?,
        rsi: w(5)?,
        rdi: w(6)?,
        rbp: w(7)?,
        rbx: w(8)?,
        rip: w(9)?,
        rsp: switch_rsp + 80,
        ..Default::default()
    })
}

/// The current thread's context here (the walk starts in this function).
#[inline(never)]
fn current_context() -> nt::context::Context {
    let (rip, rsp, rbp, rbx, rsi, rdi, r12, r13, r14, r15): (
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
    );
    // SAFETY: reads registers and this instruction's address; no memory
    // is touched.
    unsafe {
        core::arch::asm!(
            "lea {0}, [rip]",
            "mov {1}, rsp",
            "mov {2}, rbp",
            "mov {3}, rbx",
            "mov {4}, rsi",
            "mov {5}, rdi",
            "mov {6}, r12",
            "mov {7}, r13",
            "mov {8}, r14",
            "mov {9}, r15",
            out(reg) rip, out(reg) rsp, out(reg) rbp, out(reg) rbx, out(reg) rsi,
            out(reg) rdi, out(reg) r12, out(reg) r13, out(reg) r14, out(reg) r15,
            options(nomem, nostack, preserves_flags)
        )
    };
    nt::context::Context {
        rip,
        rsp,
        rbp,
        rbx,
        rsi,
        rdi,
        r12,
        r13,
        r14,
        r15,
        ..Default::default()
    }
}

/// `k [frames]`: the kernel stack of the implicit thread (`.thread`), or
/// of the current one, in WinDbg's columns.
pub fn stack(args: &str) {
    let max = match args.split_whitespace().next() {
        Some(a) => match crate::kd::parse_number(a) {
            Some(n) if n > 0 => n.min(256) as usize,
            _ => {
                dbg_println!("Syntax error in '{a}'");
                return;
            }
        },
        None => 32,
    };
    let (frames, stop) = match IMPLICIT_THREAD.load(Ordering::Relaxed) {
        0 => {
            let Some(t) = crate::ke::thread::try_current_thread() else {
                dbg_println!("no current thread");
                return;
            };
            let (limit, top) = (t.stack_limit, t.initial_stack);
            walk(current_context(), limit, top, max)
        }
        addr => match crate::ke::kdext::thread_stack_start(addr) {
            None => {
                dbg_println!("{} is not a thread", Address(addr));
                return;
            }
            Some(crate::ke::kdext::StackStart::Running) => {
                dbg_println!(
                    "thread {} is running: its registers are not saved",
                    Address(addr)
                );
                return;
            }
            Some(crate::ke::kdext::StackStart::Saved {
                switch_rsp,
                limit,
                top,
            }) => match switch_context(switch_rsp) {
                Some(ctx) => walk(ctx, limit, top, max),
                None => {
                    dbg_println!("the switch frame at {} cannot be read", Address(switch_rsp));
                    return;
                }
            },
        },
    };
    dbg_println!(" # Child-SP          RetAddr               Call Site");
    for (i, f) in frames.iter().enumerate() {
        let site = symbolize(f.pc).unwrap_or_else(|| alloc::format!("{}", Address(f.pc)));
        dbg_println!(
            "{i:02x} {} {}     {site}",
            Address(f.child_sp),
            Address(f.ret)
        );
    }
    if let Some(why) = stop {
        dbg_println!("({why})");
    }
}

/// `.thread [address]`: sets the implicit thread of `k` (0: the current
/// thread) and says which it is.
pub fn dot_thread(args: &str) {
    if let Some(a) = args.split_whitespace().next() {
        let Some(addr) = crate::kd::parse_number(a) else {
            dbg_println!("Syntax error in '{a}'");
            return;
        };
        if addr != 0 && crate::ke::kdext::thread_stack_start(addr).is_none() {
            dbg_println!("{} is not a thread (see !process 0 7)", Address(addr));
            return;
        }
        IMPLICIT_THREAD.store(addr, Ordering::Relaxed);
    }
    match IMPLICIT_THREAD.load(Ordering::Relaxed) {
        0 => dbg_println!("Implicit thread is now the current thread"),
        a => dbg_println!("Implicit thread is now {}", Address(a)),
    }
}

/// Reads a little-endian value of `N` bytes at `va` in address space `dtb`.
fn read_le<const N: usize>(dtb: Option<u64>, va: u64) -> Option<[u8; N]> {
    let mut b = [0u8; N];
    (crate::mm::dbg::mm_dbg_copy_memory(dtb, va, &mut b) == N).then_some(b)
}

fn read_u64_in(dtb: Option<u64>, va: u64) -> Option<u64> {
    read_le::<8>(dtb, va).map(u64::from_le_bytes)
}

/// A `UNICODE_STRING` at `va` (its buffer at `base` + the buffer field when
/// the parameters are not normalized), as text; WinDbg's words when it
/// cannot be read.
fn unicode_string_at(dtb: Option<u64>, va: u64, base: u64) -> String {
    let Some(h) = read_le::<16>(dtb, va) else {
        return String::from("< Name not readable >");
    };
    let len = u16::from_le_bytes([h[0], h[1]]) as usize;
    let mut buf = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    if buf == 0 {
        return String::new();
    }
    buf = buf.wrapping_add(base);
    let mut bytes = alloc::vec![0u8; len.min(1024)];
    if crate::mm::dbg::mm_dbg_copy_memory(dtb, buf, &mut bytes) != bytes.len() {
        return String::from("< Name not readable >");
    }
    let units = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// `!peb`: the PEB of the implicit process (`.process`), else of the
/// current one, read from that process's address space.
pub fn peb(_args: &str) {
    let process = match IMPLICIT_PROCESS.load(Ordering::Relaxed) {
        0 => crate::ps::current_process(),
        a => crate::ps::process_list()
            .into_iter()
            .find(|p| p.address() == a),
    };
    let Some(p) = process else {
        dbg_println!("no process (set one with .process)");
        return;
    };
    for l in peb_lines(&p) {
        dbg_println!("{l}");
    }
}

/// `!peb`'s lines for process `p`.
fn peb_lines(p: &crate::ps::EProcess) -> Vec<String> {
    use core::mem::offset_of;
    use nt::user::{Peb, RtlUserProcessParameters};
    let mut out = Vec::new();
    macro_rules! line {
        ($($t:tt)*) => { out.push(alloc::format!($($t)*)) };
    }
    let at = p.peb.load(Ordering::Relaxed);
    if at == 0 {
        line!(
            "PEB NULL... (process {} has no user mode)",
            p.image_file_name
        );
        return out;
    }
    let dtb = Some(p.pcb().directory_table_base());
    let mut raw = alloc::vec![0u8; core::mem::size_of::<Peb>()];
    if crate::mm::dbg::mm_dbg_copy_memory(dtb, at, &mut raw) != raw.len() {
        line!("PEB at {at:016x}: memory not readable");
        return out;
    }
    let b = |o: usize| raw[o];
    let q = |o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&raw[o..o + 8]);
        u64::from_le_bytes(w)
    };
    let d = |o: usize| u32::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
    let yes = |v: u8| if v != 0 { "Yes" } else { "No" };
    line!("PEB at {at:016x}");
    line!(
        "    InheritedAddressSpace:    {}",
        yes(b(offset_of!(Peb, inherited_address_space)))
    );
    line!(
        "    ReadImageFileExecOptions: {}",
        yes(b(offset_of!(Peb, read_image_file_exec_options)))
    );
    line!(
        "    BeingDebugged:            {}",
        yes(b(offset_of!(Peb, being_debugged)))
    );
    line!(
        "    ImageBaseAddress:         {:016x}",
        q(offset_of!(Peb, image_base_address))
    );
    line!(
        "    NtGlobalFlag:             {:x}",
        d(offset_of!(Peb, nt_global_flag))
    );
    line!(
        "    Ldr                       {:016x}",
        q(offset_of!(Peb, ldr))
    );
    line!(
        "    SubSystemData:     {:016x}",
        q(offset_of!(Peb, sub_system_data))
    );
    line!(
        "    ProcessHeap:       {:016x}",
        q(offset_of!(Peb, process_heap))
    );
    let pp = q(offset_of!(Peb, process_parameters));
    line!("    ProcessParameters: {pp:016x}");
    if pp == 0 {
        return out;
    }
    let normalized = read_le::<4>(dtb, pp + offset_of!(RtlUserProcessParameters, flags) as u64)
        .map(u32::from_le_bytes)
        .is_some_and(|f| f & 1 != 0);
    let base = if normalized { 0 } else { pp };
    let field = |o: usize| unicode_string_at(dtb, pp + o as u64, base);
    let cur = offset_of!(RtlUserProcessParameters, current_directory);
    line!("    CurrentDirectory:  '{}'", field(cur));
    line!(
        "    ImageFile:    '{}'",
        field(offset_of!(RtlUserProcessParameters, image_path_name))
    );
    line!(
        "    CommandLine:  '{}'",
        field(offset_of!(RtlUserProcessParameters, command_line))
    );
    match read_u64_in(
        dtb,
        pp + offset_of!(RtlUserProcessParameters, environment) as u64,
    ) {
        Some(e) => line!("    Environment:  {e:016x}"),
        None => line!("    Environment:  < not readable >"),
    }
    out
}

/// Boot tests: the debugger's reads and symbols.
pub const TESTS: &[crate::ktest::Test] = &[
    ("kd.mem.read_never_faults", t_read),
    ("kd.mem.symbols_are_nts_exports", t_symbols),
    ("kd.mem.stack_walk_with_unwind_data", t_stack_walk),
    ("kd.mem.peb_of_a_user_process", t_peb),
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

/// `k`'s walk: from here it must reach this test's caller (the boot test
/// runner, in ntoskrnl) through frames that grow up the stack; a waiting
/// thread's walk starts at its switch frame and ends inside the kernel.
fn t_stack_walk() -> crate::ktest::TestResult {
    use crate::ktest::check;
    let t = crate::ke::thread::try_current_thread().ok_or("no current thread")?;
    let (limit, top) = (t.stack_limit, t.initial_stack);
    let (frames, _) = walk(current_context(), limit, top, 64);
    check(
        frames.len() >= 3,
        "fewer than three frames from a boot test",
    )?;
    check(
        frames
            .windows(2)
            .all(|w| w[1].child_sp > w[0].child_sp && w[0].ret == w[1].pc),
        "frames do not chain (each return address is the next frame's PC)",
    )?;
    let kernel = crate::mm::ldr::loaded_modules()
        .first()
        .map(|m| (m.dll_base, m.size_of_image as u64))
        .ok_or("no kernel")?;
    check(
        frames
            .iter()
            .all(|f| f.pc >= kernel.0 && f.pc - kernel.0 < kernel.1),
        "a frame outside ntoskrnl",
    )?;
    // The walk ends at the bottom of the thread's stack: within a page of
    // its top (the thread start frame), not somewhere in the middle.
    let last = frames.last().map_or(0, |f| f.child_sp);
    check(
        top - last <= 4096,
        "the walk stopped before the bottom of the stack",
    )?;
    // A thread waiting in a delay: its walk starts at its switch frame.
    static STOP: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    STOP.store(false, Ordering::SeqCst);
    let tid = crate::ke::sched::start_system_thread(
        "k-walk",
        8,
        u64::MAX,
        |_| {
            while !STOP.load(Ordering::SeqCst) {
                crate::ke::sched::ke_delay_execution_thread(100_000);
            }
        },
        0,
    )
    .map_err(|_| "thread creation failed")?;
    crate::ktest::sleep_ms(50);
    let r = (|| {
        let th = crate::ke::sched::reference_thread(tid).ok_or("the thread is gone")?;
        let start = crate::ke::kdext::thread_stack_start(th.address()).ok_or("not a thread")?;
        let crate::ke::kdext::StackStart::Saved {
            switch_rsp,
            limit,
            top,
        } = start
        else {
            return Err("a delaying thread is running");
        };
        let ctx = switch_context(switch_rsp).ok_or("switch frame unreadable")?;
        let (frames, _) = walk(ctx, limit, top, 64);
        check(
            frames.len() >= 2,
            "fewer than two frames for a waiting thread",
        )?;
        check(
            frames
                .windows(2)
                .all(|w| w[1].child_sp > w[0].child_sp && w[0].ret == w[1].pc),
            "the waiting thread's frames do not chain",
        )
    })();
    STOP.store(true, Ordering::SeqCst);
    r
}

/// `!peb` of a running user process (ntrsuser.exe spinning, started by a
/// helper thread that ends it after 3 s): the image, command line and
/// image base come from that process's address space.
fn t_peb() -> crate::ktest::TestResult {
    use crate::ktest::check;
    use core::sync::atomic::AtomicBool;
    static DONE: AtomicBool = AtomicBool::new(false);
    DONE.store(false, Ordering::SeqCst);
    crate::ps::ps_create_system_thread(
        None,
        "peb-test",
        |_| {
            let _ = crate::ex::uproc::run_to_exit("ntrsuser.exe", "spin", 3000);
            DONE.store(true, Ordering::SeqCst);
        },
        0,
    )
    .map_err(|_| "thread creation failed")?;
    let lines = core::cell::RefCell::new(Vec::new());
    let found = crate::ktest::wait_until(2000, || {
        let p = crate::ps::process_list().into_iter().find(|p| {
            p.image_file_name.eq_ignore_ascii_case("ntrsuser.exe")
                && p.peb.load(Ordering::Relaxed) != 0
        });
        match p {
            Some(p) => {
                *lines.borrow_mut() = peb_lines(&p);
                true
            }
            None => false,
        }
    });
    let ended = crate::ktest::wait_until(10_000, || DONE.load(Ordering::SeqCst));
    check(found, "no ntrsuser.exe process with a PEB appeared")?;
    check(ended, "the spinning process was not ended")?;
    let lines = lines.into_inner();
    let has = |prefix: &str, what: &str| {
        lines
            .iter()
            .any(|l| l.trim_start().starts_with(prefix) && l.contains(what))
    };
    check(
        lines.first().is_some_and(|l| l.starts_with("PEB at ")),
        "no PEB header",
    )?;
    check(
        has("CommandLine:", "'ntrsuser.exe spin'"),
        "CommandLine is not the process's",
    )?;
    check(
        has("ImageFile:", "ntrsuser.exe'"),
        "ImageFile is not the process's",
    )?;
    check(
        !has("ImageBaseAddress:", "0000000000000000"),
        "ImageBaseAddress is zero",
    )
}
