//! Multiprocessor start-up (*Windows Internals*, Part 2, ch. 12, "Kernel
//! initialization": `KeStartAllProcessors`) and inter-processor requests.
//!
//! Each application processor is started with INIT-SIPI-SIPI into a
//! real-mode trampoline copied to a free page below 1 MiB; the trampoline
//! enters long mode on the kernel's page tables (where the memory manager
//! mapped that one page at VA == PA for the switch; the loader's identity
//! map is gone by then) and jumps to `KiSystemStartupAp` with its processor
//! number, stack and IST stacks (kernel stacks with guard pages) prepared by
//! the boot processor.
//!
//! TLB shootdown (`KeFlushSingleTb`, `KeFlushMultipleTb`,
//! `KeFlushEntireTb`): the caller has cleared the PTEs; the sender flushes
//! its own TB, publishes one flush packet (a list of addresses, or "all"),
//! IPIs every other running processor and waits until each one has
//! flushed and acknowledged. Only then may the caller free the frames.

use crate::dbg_println;
use crate::hal::{self, apic, MAX_PROCESSORS};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

// The trampoline, position independent: it runs at CS:IP = (page>>4):0.
// Parameters sit at fixed offsets in the same page (filled before each SIPI):
//   0xF00 CR3   0xF08 stack top   0xF10 64-bit entry   0xF18 processor number
//   0xF20 temporary GDT (4 entries)   0xF40 GDTR   0xF48 / 0xF50 far pointers
//   (offset32, selector) to the 32-bit and 64-bit parts.
core::arch::global_asm!(
    ".global KiApTrampoline",
    ".global KiApTrampolinePm32",
    ".global KiApTrampolineLm64",
    ".global KiApTrampolineEnd",
    ".code16",
    "KiApTrampoline:",
    "cli",
    "cld",
    "movw %cs, %ax",
    "movw %ax, %ds",
    "xorl %ebx, %ebx",
    "movw %cs, %bx",
    "shll $4, %ebx",
    "lgdtl 0xF40",
    "movl %cr0, %eax",
    "orl $1, %eax",
    "movl %eax, %cr0",
    "ljmpl *0xF48",
    ".code32",
    "KiApTrampolinePm32:",
    "movw $0x10, %ax",
    "movw %ax, %ds",
    "movw %ax, %es",
    "movw %ax, %ss",
    "movl %cr4, %eax",
    "orl $0x6A0, %eax",
    "movl %eax, %cr4",
    "movl 0xF00(%ebx), %eax",
    "movl %eax, %cr3",
    "movl $0xC0000080, %ecx",
    "rdmsr",
    "orl $0x900, %eax",
    "wrmsr",
    "movl %cr0, %eax",
    "orl $0x80010000, %eax",
    "movl %eax, %cr0",
    "ljmpl *0xF50(%ebx)",
    ".code64",
    "KiApTrampolineLm64:",
    "movl %ebx, %ebx",
    "movq 0xF08(%rbx), %rsp",
    "movl 0xF18(%rbx), %ecx",
    "movq 0xF10(%rbx), %rax",
    "subq $40, %rsp",
    "jmpq *%rax",
    "KiApTrampolineEnd:",
    options(att_syntax),
);

extern "C" {
    fn KiApTrampoline();
    fn KiApTrampolinePm32();
    fn KiApTrampolineLm64();
    fn KiApTrampolineEnd();
}

/// Processors that reached `KiSystemStartupAp`.
static STARTED: AtomicU32 = AtomicU32::new(0);
/// Per-processor (stack top, IST tops) handed to the AP entry.
static AP_STACKS: [[AtomicU64; 4]; MAX_PROCESSORS] =
    [const { [const { AtomicU64::new(0) }; 4] }; MAX_PROCESSORS];

/// A kernel stack (with its guard page) for a starting processor; lives for
/// the whole boot.
fn alloc_stack(size: usize) -> u64 {
    match super::stack::create_kernel_stack(size as u64) {
        Ok(top) => top,
        Err(s) => super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::INSTALL_MORE_MEMORY,
            size as u64,
            s.as_u32() as u64,
            0,
            0,
        ),
    }
}

/// `KeStartAllProcessors`: starts every enabled processor in the MADT
/// through the real-mode trampoline copied to `page` (a page frame below
/// 1 MiB that the caller identity-mapped for the switch to paging).
pub fn ke_start_all_processors(page: u64) {
    let Some(madt) = super::madt() else { return };
    if madt.processor_count <= 1 {
        return;
    }
    let cr3 = hal::read_cr3();
    if cr3 >= 1 << 32 {
        dbg_println!("ntrs kernel: page tables above 4 GiB; application processors not started");
        return;
    }
    let base = hal::phys_to_virt(page << 12);
    let code = KiApTrampoline as *const () as u64;
    let len = KiApTrampolineEnd as *const () as u64 - code;
    // SAFETY: the page is free RAM below 1 MiB, mapped through the direct map;
    // the trampoline is shorter than 0xF00 bytes.
    unsafe {
        core::ptr::write_bytes(base as *mut u8, 0, 4096);
        core::ptr::copy_nonoverlapping(code as *const u8, base as *mut u8, len as usize);
        let gdt = (base + 0xF20) as *mut u64;
        gdt.add(1).write(0x00CF_9A00_0000_FFFF); // 32-bit code
        gdt.add(2).write(0x00CF_9200_0000_FFFF); // data
        gdt.add(3).write(0x0020_9A00_0000_0000); // 64-bit code
        ((base + 0xF40) as *mut u16).write(31);
        let pa = (page << 12) as u32;
        let pm32 = (KiApTrampolinePm32 as *const () as u64 - code) as u32;
        let lm64 = (KiApTrampolineLm64 as *const () as u64 - code) as u32;
        ((base + 0xF48) as *mut u32).write(pa + pm32);
        ((base + 0xF4C) as *mut u16).write(0x08);
        ((base + 0xF50) as *mut u32).write(pa + lm64);
        ((base + 0xF54) as *mut u16).write(0x18);
        ((base + 0xF42) as *mut u32).write_unaligned((page << 12) as u32 + 0xF20);
        ((base + 0xF00) as *mut u64).write(cr3);
        ((base + 0xF10) as *mut u64).write(KiSystemStartupAp as *const () as u64);
    }
    let me = apic::current_apic_id_raw();
    let mut number = 1u32;
    for &id in madt.apic_ids[..madt.processor_count].iter() {
        if id == me || number as usize >= MAX_PROCESSORS {
            continue;
        }
        let stack = alloc_stack(nt::arc::KERNEL_STACK_SIZE as usize);
        AP_STACKS[number as usize][0].store(stack, Ordering::Relaxed);
        for i in 0..3 {
            AP_STACKS[number as usize][i + 1].store(alloc_stack(16 * 1024), Ordering::Relaxed);
        }
        // SAFETY: parameter slots in the trampoline page (see the layout above).
        unsafe {
            ((base + 0xF08) as *mut u64).write_volatile(stack);
            ((base + 0xF18) as *mut u32).write_volatile(number);
        }
        let before = STARTED.load(Ordering::Acquire);
        apic::start_processor(id, page as u8, hal::stall_execution_processor);
        // Wait up to 1 s for it to check in before reusing the page.
        let t0 = hal::rdtsc();
        let limit = crate::rtl::loader_block().tsc_frequency.max(1_000_000);
        while STARTED.load(Ordering::Acquire) == before && hal::rdtsc() - t0 < limit {
            core::hint::spin_loop();
        }
        if STARTED.load(Ordering::Acquire) == before {
            dbg_println!("ntrs kernel: processor with APIC id {id} did not start");
            continue;
        }
        // Wait until it is fully initialized (its PCR counted) before the next one.
        while super::processor_count() <= number && hal::rdtsc() - t0 < 4 * limit {
            core::hint::spin_loop();
        }
        number += 1;
    }
    dbg_println!(
        "ntrs kernel: {} processors started",
        super::processor_count()
    );
}

/// Entry of an application processor in long mode (`KiSystemStartup` for APs).
#[no_mangle]
extern "C" fn KiSystemStartupAp(number: u32) -> ! {
    STARTED.fetch_add(1, Ordering::AcqRel);
    let n = number as usize;
    let stack = AP_STACKS[n][0].load(Ordering::Relaxed);
    let ist = [
        AP_STACKS[n][1].load(Ordering::Relaxed),
        AP_STACKS[n][2].load(Ordering::Relaxed),
        AP_STACKS[n][3].load(Ordering::Relaxed),
    ];
    // SAFETY: first code on this processor, interrupts off, its own block.
    unsafe { super::ki_initialize_processor(number, ist, stack) };
    super::irql::set_irql(super::HIGH_LEVEL);
    super::thread::init_extended_state(false);
    if let Some(m) = super::madt() {
        apic::initialize_processor(&m, false);
    }
    apic::start_clock();
    super::sched::become_idle(number, stack)
}

/// TLB flush requests this processor served for others (`!prcb`, tests).
pub static TLB_FLUSH_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Set by `KeBugCheckEx`: every processor that takes the IPI stops (`KiFreezeTargetExecution`).
pub static FREEZE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Stops every other processor (bugcheck): each takes a non-maskable
/// interrupt, so one spinning with interrupts disabled stops too, records
/// where it was ([`freeze_this_processor`]) and halts with interrupts off.
pub fn freeze_other_processors() {
    FREEZE.store(true, Ordering::SeqCst);
    let me = super::current_processor_number();
    for p in 0..super::processor_count() {
        if p != me {
            if let Some(id) = super::apic_id_of(p) {
                apic::send_nmi(id);
            }
        }
    }
}

/// Kernel-stack words a frozen processor records (from its interrupted RSP up).
const FROZEN_STACK_WORDS: usize = 32;

/// Where a processor was when the freeze stopped it (`KiFreezeTargetExecution`
/// saves the processor state in its PRCB): written once by that processor,
/// read by the bugcheck's processor after `valid` is set.
struct FrozenState {
    valid: core::sync::atomic::AtomicBool,
    rip: AtomicU64,
    rsp: AtomicU64,
    irql: AtomicU64,
    thread: AtomicU64,
    /// Words on the kernel stack above RSP that are kernel addresses
    /// (candidate return addresses), with their stack addresses.
    words: [(AtomicU64, AtomicU64); FROZEN_STACK_WORDS],
}

static FROZEN: [FrozenState; MAX_PROCESSORS] = [const {
    FrozenState {
        valid: core::sync::atomic::AtomicBool::new(false),
        rip: AtomicU64::new(0),
        rsp: AtomicU64::new(0),
        irql: AtomicU64::new(0),
        thread: AtomicU64::new(0),
        words: [const { (AtomicU64::new(0), AtomicU64::new(0)) }; FROZEN_STACK_WORDS],
    }
}; MAX_PROCESSORS];

/// The freeze NMI's handler on a target processor: records the interrupted
/// `rip`, `rsp`, IRQL and thread (and, when `rsp` lies in the current
/// thread's kernel stack, the kernel addresses found on it) for the stop
/// screen, then halts for good.
pub fn freeze_this_processor(rip: u64, rsp: u64, irql: u8, kernel_mode: bool) -> ! {
    let me = super::current_processor_number() as usize % MAX_PROCESSORS;
    let f = &FROZEN[me];
    f.rip.store(rip, Ordering::Relaxed);
    f.rsp.store(rsp, Ordering::Relaxed);
    f.irql.store(irql as u64, Ordering::Relaxed);
    if let Some(t) = super::thread::try_current_thread() {
        f.thread.store(t.address(), Ordering::Relaxed);
    }
    if kernel_mode {
        let mut n = 0;
        current_stack_code_words(rsp, FROZEN_STACK_WORDS, |a, w| {
            f.words[n].0.store(a, Ordering::Relaxed);
            f.words[n].1.store(w, Ordering::Relaxed);
            n += 1;
        });
    }
    f.valid.store(true, Ordering::Release);
    hal::halt_forever()
}

/// Calls `f(address, word)` for up to `max` words on the current thread's
/// kernel stack, from `rsp` up, that lie in the kernel's image and driver
/// ranges (0xFFFFF800`00000000 and above): candidate return addresses for
/// a person with the symbols. Nothing when `rsp` is not inside that stack
/// (a user RSP, an interrupt stack).
pub fn current_stack_code_words(rsp: u64, max: usize, mut f: impl FnMut(u64, u64)) {
    let Some(t) = super::thread::try_current_thread() else {
        return;
    };
    let (limit, top) = (t.stack_limit, t.initial_stack);
    if !rsp.is_multiple_of(8) || rsp < limit || rsp >= top {
        return;
    }
    let mut n = 0;
    for a in (rsp..top).step_by(8) {
        if n == max {
            break;
        }
        // SAFETY: `a` is an aligned address inside the current thread's
        // kernel stack (StackLimit..InitialStack), which stays mapped and
        // allocated while this processor runs the thread, as it does here.
        let w = unsafe { AtomicU64::from_ptr(a as *mut u64) }.load(Ordering::Relaxed);
        if w >= 0xFFFF_F800_0000_0000 {
            f(a, w);
            n += 1;
        }
    }
}

/// The stop screen's view of the other processors: for each, where the
/// freeze found it, or that it did not answer within 100 ms.
pub fn print_frozen_processors() {
    let me = super::current_processor_number();
    let n = super::processor_count();
    for _ in 0..100 {
        let all = (0..n).filter(|&p| p != me).all(|p| {
            FROZEN[p as usize % MAX_PROCESSORS]
                .valid
                .load(Ordering::Acquire)
        });
        if all {
            break;
        }
        hal::stall_execution_processor(1000);
    }
    for p in (0..n).filter(|&p| p != me) {
        let f = &FROZEN[p as usize % MAX_PROCESSORS];
        if !f.valid.load(Ordering::Acquire) {
            dbg_println!("processor {p}: did not answer the freeze");
            continue;
        }
        dbg_println!(
            "processor {p}: frozen at rip {:016x} rsp {:016x} irql {} thread {:016x}",
            f.rip.load(Ordering::Relaxed),
            f.rsp.load(Ordering::Relaxed),
            f.irql.load(Ordering::Relaxed),
            f.thread.load(Ordering::Relaxed)
        );
        for (a, w) in &f.words {
            let a = a.load(Ordering::Relaxed);
            if a != 0 {
                dbg_println!("    {a:016x}  {:016x}", w.load(Ordering::Relaxed));
            }
        }
    }
}

/// Most addresses one flush request lists (NT's `FLUSH_MULTIPLE_MAXIMUM`
/// idea); a longer list becomes a full flush.
pub const FLUSH_MULTIPLE_MAXIMUM: usize = 32;
/// `FLUSH_COUNT` value that asks for a full flush.
const FLUSH_ENTIRE: usize = usize::MAX;

/// The one flush packet (`KiIpiSendPacket` for `KiFlushTargetMultipleTb`):
/// written only by the holder of `FLUSH_OWNER`, read by the targets while
/// their bit in `FLUSH_TARGETS` is set.
static FLUSH_OWNER: AtomicU32 = AtomicU32::new(0);
static FLUSH_COUNT: AtomicU64 = AtomicU64::new(0);
static FLUSH_LIST: [AtomicU64; FLUSH_MULTIPLE_MAXIMUM] =
    [const { AtomicU64::new(0) }; FLUSH_MULTIPLE_MAXIMUM];
/// Processors that have not yet acknowledged the current packet.
static FLUSH_TARGETS: AtomicU64 = AtomicU64::new(0);

/// `KiIpiServiceRoutine`: the IPI vector's handler (at IPI_LEVEL).
pub fn ipi_received() {
    if FREEZE.load(Ordering::SeqCst) {
        hal::halt_forever();
    }
    ki_flush_target_tb();
}

/// Serves the pending flush request addressed to this processor, if any,
/// and acknowledges it (`KiFlushTargetMultipleTb` + `KiIpiSignalPacketDone`).
/// Code that spins with interrupts disabled calls it in its loop (as NT's
/// spin loops process IPI requests), so a sender never waits on a
/// processor that cannot take the IPI.
pub fn ki_flush_target_tb() {
    let me = 1u64 << super::current_processor_number();
    if FLUSH_TARGETS.load(Ordering::Acquire) & me == 0 {
        return;
    }
    flush_local(FLUSH_COUNT.load(Ordering::Relaxed) as usize, |i| {
        FLUSH_LIST[i].load(Ordering::Relaxed)
    });
    TLB_FLUSH_REQUESTS.fetch_add(1, Ordering::Relaxed);
    FLUSH_TARGETS.fetch_and(!me, Ordering::Release);
}

fn flush_local(count: usize, va: impl Fn(usize) -> u64) {
    if count == FLUSH_ENTIRE {
        hal::flush_tb_entire();
    } else {
        for i in 0..count {
            hal::invlpg(va(i));
        }
    }
}

/// Flushes `list` (or everything, for `None` or a list longer than
/// `FLUSH_MULTIPLE_MAXIMUM`) on this processor and on every other running
/// processor, and returns only when all of them have acknowledged: after
/// it, no processor holds a stale translation, so the frames behind the
/// cleared PTEs may be reused. The caller cleared the PTEs first.
fn ki_flush_tb(list: Option<&[u64]>) {
    let count = match list {
        Some(l) if l.len() <= FLUSH_MULTIPLE_MAXIMUM => l.len(),
        _ => FLUSH_ENTIRE,
    };
    let va = |i: usize| list.map_or(0, |l| l[i]);
    // Stay on this processor (no preemption) until the acknowledgements are in.
    let raised = super::irql() < super::DISPATCH_LEVEL;
    let old = if raised {
        super::irql::ke_raise_irql(super::DISPATCH_LEVEL)
    } else {
        0
    };
    flush_local(count, va);
    let me = super::current_processor_number();
    let targets = (0..super::processor_count())
        .filter(|&p| p != me)
        .fold(0u64, |m, p| m | 1 << p);
    if targets != 0 {
        // Another sender may be waiting for us: serve its request while we
        // wait for the packet (interrupts may be off here).
        while FLUSH_OWNER
            .compare_exchange(0, me + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            ki_flush_target_tb();
            core::hint::spin_loop();
        }
        FLUSH_COUNT.store(count as u64, Ordering::Relaxed);
        if count != FLUSH_ENTIRE {
            for (i, slot) in FLUSH_LIST.iter().enumerate().take(count) {
                slot.store(va(i), Ordering::Relaxed);
            }
        }
        FLUSH_TARGETS.store(targets, Ordering::Release);
        for p in 0..super::processor_count() {
            if targets & (1 << p) != 0 {
                if let Some(id) = super::apic_id_of(p) {
                    apic::send_ipi(id, apic::IPI_VECTOR);
                }
            }
        }
        while FLUSH_TARGETS.load(Ordering::Acquire) != 0 {
            core::hint::spin_loop();
        }
        FLUSH_OWNER.store(0, Ordering::Release);
    }
    if raised {
        super::irql::ke_lower_irql(old);
    }
}

/// `KeFlushEntireTb` on every processor, waiting for all of them.
pub fn ke_flush_entire_tb() {
    ki_flush_tb(None);
}

/// `KeFlushSingleTb` on every processor, waiting for all of them.
pub fn ke_flush_single_tb(va: u64) {
    ki_flush_tb(Some(&[va]));
}

/// `KeFlushMultipleTb` on every processor, waiting for all of them.
pub fn ke_flush_multiple_tb(list: &[u64]) {
    ki_flush_tb(Some(list));
}
