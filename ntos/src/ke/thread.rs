//! Kernel threads (`KTHREAD`), their stacks and extended state, and the
//! context switch (*Windows Internals*, Part 1, ch. 4, "Thread internals"
//! and "Context switching").
//!
//! ntrs's `KThread` is a Rust structure, not NT's binary `KTHREAD` layout
//! (drivers never see it: they get opaque `PKTHREAD`s); threads are also
//! named by a small index (`ThreadId`) that the ready queues and the
//! host-tested dispatcher use.

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// Most threads alive at once (the thread table is a fixed array of pointers
/// so lookups by id never take a lock).
pub const MAX_THREADS: usize = 1024;
/// Kernel stack per thread.
pub const THREAD_STACK_SIZE: usize = 32 * 1024;

/// `KTHREAD_STATE`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    Initialized = 0,
    Ready = 1,
    Running = 2,
    Standby = 3,
    Terminated = 4,
    Waiting = 5,
    Transition = 6,
    DeferredReady = 7,
}

impl ThreadState {
    pub fn name(self) -> &'static str {
        match self {
            ThreadState::Initialized => "INITIALIZED",
            ThreadState::Ready => "READY",
            ThreadState::Running => "RUNNING",
            ThreadState::Standby => "STANDBY",
            ThreadState::Terminated => "TERMINATED",
            ThreadState::Waiting => "WAIT",
            ThreadState::Transition => "TRANSITION",
            ThreadState::DeferredReady => "DEFERREDREADY",
        }
    }
}

/// `KWAIT_REASON` values ntrs uses.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    Executive = 0,
    DelayExecution = 4,
    UserRequest = 6,
    WrQueue = 15,
    WrDispatchInt = 31,
}

/// A thread's start routine: runs at PASSIVE_LEVEL with its context argument.
pub type StartRoutine = fn(usize);

/// The kernel thread object (`KTHREAD`, the fields ntrs uses).
#[repr(C)]
pub struct KThread {
    /// Saved RSP while not running (offset 0: the switch code relies on it).
    pub kernel_stack: u64,
    /// Top of the kernel stack (`InitialStack`; the TSS RSP0 while running).
    pub initial_stack: u64,
    /// Lowest stack address (`StackLimit`).
    pub stack_limit: u64,
    /// XSAVE/FXSAVE area (64-byte aligned).
    pub npx_save_area: u64,
    pub id: u32,
    pub state: ThreadState,
    pub priority: u8,
    pub base_priority: u8,
    pub priority_decrement: u8,
    pub quantum: ::ke::priority::Quantum,
    /// Processor the thread last ran on / is queued for (`NextProcessor`).
    pub next_processor: u32,
    pub ideal_processor: u32,
    /// `Affinity`: processors it may run on.
    pub affinity: u64,
    pub wait_reason: WaitReason,
    /// IRQL the thread returns to after a wait (`WaitIrql`).
    pub wait_irql: u8,
    /// Status the satisfied wait returns (`WaitStatus`).
    pub wait_status: i32,
    pub alertable: bool,
    /// Interrupt time at which a timed wait ends (0: none).
    pub wake_time: u64,
    pub context_switches: u64,
    /// Clock ticks charged while running (`KernelTime`).
    pub kernel_time: u64,
    pub start_routine: Option<StartRoutine>,
    pub start_context: usize,
    pub name: [u8; 24],
    /// Owning process id (`Process->UniqueProcessId`; 4 is System).
    pub process_id: u32,
    /// `WaitMode` of the current wait (user-mode waits can take user APCs).
    pub wait_mode_user: bool,
    /// `Alerted[KernelMode]`, `Alerted[UserMode]`.
    pub alerted: [bool; 2],
    /// `ApcState`: queues, pending flags, disable counts.
    pub apc: super::apc::ApcState,
    /// The thread's waitable object in the dispatcher database (id + 1; 0 = none yet).
    pub dispatcher_object: u32,
    /// Process whose address space the thread is attached to (0: none).
    pub attached_process: u32,
    /// CR3 while running (0: the system address space).
    pub cr3: u64,
}

impl KThread {
    pub fn name(&self) -> &str {
        let n = self.name.iter().position(|&b| b == 0).unwrap_or(24);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
}

/// Pointer table indexed by thread id.
static THREADS: [AtomicPtr<KThread>; MAX_THREADS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_THREADS];
static NEXT_ID: AtomicU32 = AtomicU32::new(1);
/// Ids of reaped threads, reused before new ones (`PspCidTable` reuses CIDs too).
static FREE_IDS: super::irql::SpinLocked<alloc::vec::Vec<u32>, { super::HIGH_LEVEL }> =
    super::irql::SpinLocked::new(alloc::vec::Vec::new());
/// Whether the stack was allocated by `new_thread` (adopted boot/AP stacks are not freed).
static OWNS_STACK: [core::sync::atomic::AtomicBool; MAX_THREADS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; MAX_THREADS];

/// Size and alignment of the extended-state area (set by `init_extended_state`).
static XSAVE_SIZE: AtomicU32 = AtomicU32::new(512);
#[no_mangle]
static KI_USE_XSAVE: AtomicU32 = AtomicU32::new(0);
use KI_USE_XSAVE as USE_XSAVE;

/// Enables FXSAVE/XSAVE on this processor: CR4.OSFXSR/OSXMMEXCPT, and
/// CR4.OSXSAVE with XCR0 = every x87/SSE/AVX component the CPU supports.
pub fn init_extended_state(boot: bool) {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    let has_xsave = leaf1.ecx & (1 << 26) != 0;
    // SAFETY: setting OSFXSR/OSXMMEXCPT (and OSXSAVE when supported) only enables instructions.
    unsafe {
        let mut cr4: u64;
        core::arch::asm!("mov {}, cr4", out(reg) cr4);
        cr4 |= (1 << 9) | (1 << 10);
        if has_xsave {
            cr4 |= 1 << 18;
        }
        core::arch::asm!("mov cr4, {}", in(reg) cr4);
    }
    if has_xsave {
        let d = core::arch::x86_64::__cpuid_count(0xD, 0);
        let mask = d.eax as u64 & 0x7; // x87 | SSE | AVX
                                       // SAFETY: XCR0 takes a subset of the supported components, with x87 set.
        unsafe {
            core::arch::asm!("xsetbv", in("ecx") 0, in("eax") mask as u32, in("edx") 0u32);
        }
        if boot {
            let d = core::arch::x86_64::__cpuid_count(0xD, 0);
            XSAVE_SIZE.store(d.ebx.max(576), Ordering::Relaxed);
            USE_XSAVE.store(1, Ordering::Relaxed);
        }
    }
}

/// Whether context switches use XSAVE (else FXSAVE), and the area size.
pub fn extended_state_format() -> (&'static str, u32) {
    let size = XSAVE_SIZE.load(Ordering::Relaxed);
    if USE_XSAVE.load(Ordering::Relaxed) != 0 {
        ("XSAVE", size)
    } else {
        ("FXSAVE", size)
    }
}

/// The thread with id `id`.
pub fn thread(id: u32) -> Option<&'static mut KThread> {
    let p = THREADS.get(id as usize)?.load(Ordering::Acquire);
    // SAFETY: entries point at leaked, never-freed KThread boxes; mutation
    // follows the dispatcher's rules (the dispatcher lock or the owning processor).
    (!p.is_null()).then(|| unsafe { &mut *p })
}

/// Every live thread id (for `!thread`, `!process`).
pub fn thread_ids() -> impl Iterator<Item = u32> {
    (0..NEXT_ID.load(Ordering::Relaxed).min(MAX_THREADS as u32))
        .filter(|&i| !THREADS[i as usize].load(Ordering::Relaxed).is_null())
}

fn alloc_aligned(size: usize, align: usize) -> u64 {
    let layout = Layout::from_size_align(size, align).expect("layout");
    // SAFETY: non-zero size; freed by `reap` with the same layout.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        super::bugcheck::ke_bug_check_ex(nt::bugcheck::INSTALL_MORE_MEMORY, size as u64, 0, 0, 0);
    }
    p as u64
}

fn set_name(t: &mut KThread, name: &str) {
    let n = name.len().min(23);
    t.name[..n].copy_from_slice(&name.as_bytes()[..n]);
}

fn new_thread(
    name: &str,
    priority: u8,
    affinity: u64,
    stack: Option<(u64, u64)>,
) -> &'static mut KThread {
    let id = FREE_IDS
        .with(|f| f.pop())
        .unwrap_or_else(|| NEXT_ID.fetch_add(1, Ordering::Relaxed));
    if id as usize >= MAX_THREADS {
        super::bugcheck::ke_bug_check_ex(nt::bugcheck::NO_MORE_SYSTEM_PTES, id as u64, 0, 0, 0);
    }
    OWNS_STACK[id as usize].store(stack.is_none(), Ordering::Relaxed);
    let (limit, top) = stack.unwrap_or_else(|| {
        // `MmCreateKernelStack`: system PTEs with a guard page below.
        let top = match super::stack::create_kernel_stack(THREAD_STACK_SIZE as u64) {
            Ok(top) => top,
            Err(s) => super::bugcheck::ke_bug_check_ex(
                nt::bugcheck::INSTALL_MORE_MEMORY,
                THREAD_STACK_SIZE as u64,
                s.as_u32() as u64,
                0,
                0,
            ),
        };
        (top - THREAD_STACK_SIZE as u64, top)
    });
    let xsize = XSAVE_SIZE.load(Ordering::Relaxed) as usize;
    let npx = alloc_aligned(xsize, 64);
    // Start from the processor's current (default) x87/SSE state.
    // SAFETY: `npx` is a fresh 64-byte aligned area of the size XSAVE/FXSAVE need.
    unsafe { save_extended_state(npx) };
    let mut t = Box::new(KThread {
        kernel_stack: 0,
        initial_stack: top,
        stack_limit: limit,
        npx_save_area: npx,
        id,
        state: ThreadState::Initialized,
        priority,
        base_priority: priority,
        priority_decrement: 0,
        quantum: ::ke::priority::Quantum::new(::ke::priority::CLIENT_QUANTUM),
        next_processor: 0,
        ideal_processor: id % super::processor_count().max(1),
        affinity,
        wait_reason: WaitReason::Executive,
        wait_irql: 0,
        wait_status: 0,
        alertable: false,
        wait_mode_user: false,
        alerted: [false; 2],
        apc: super::apc::ApcState::new(),
        dispatcher_object: 0,
        attached_process: 0,
        cr3: 0,
        wake_time: 0,
        context_switches: 0,
        kernel_time: 0,
        start_routine: None,
        start_context: 0,
        name: [0; 24],
        process_id: 4,
    });
    set_name(&mut t, name);
    let p = Box::leak(t);
    THREADS[id as usize].store(p, Ordering::Release);
    p
}

/// Frees a terminated thread that is no longer running anywhere (called by
/// the thread that was switched in after it): its stack, extended-state area,
/// `KThread` and id.
pub fn reap(id: u32) {
    let Some(slot) = THREADS.get(id as usize) else {
        return;
    };
    let p = slot.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if p.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Box::leak` in `new_thread`; the thread
    // is terminated and off every processor, and its table slot is cleared.
    let t = unsafe { Box::from_raw(p) };
    let xsize = XSAVE_SIZE.load(Ordering::Relaxed) as usize;
    // SAFETY: allocated in `new_thread` with exactly these layouts.
    unsafe {
        alloc::alloc::dealloc(
            t.npx_save_area as *mut u8,
            Layout::from_size_align(xsize, 64).expect("layout"),
        );
    }
    if OWNS_STACK[id as usize].load(Ordering::Relaxed) {
        super::stack::delete_kernel_stack(t.initial_stack, THREAD_STACK_SIZE as u64);
    }
    drop(t);
    FREE_IDS.with(|f| f.push(id));
}

/// Threads alive now (for leak checks).
pub fn live_threads() -> usize {
    thread_ids().count()
}

/// Makes the code running now (the boot or an AP's startup path) a thread,
/// running on `stack` (`KiInitializeKernel`'s initial/idle threads).
pub fn adopt_current(name: &str, priority: u8, stack_top: u64, processor: u32) -> u32 {
    let t = new_thread(
        name,
        priority,
        1 << processor,
        Some((stack_top - nt::arc::KERNEL_STACK_SIZE, stack_top)),
    );
    t.state = ThreadState::Running;
    t.next_processor = processor;
    t.ideal_processor = processor;
    t.id
}

/// `KeInitThread`/`PspCreateThread` for a system thread: allocates the stack
/// and extended-state area and builds the first switch frame so the first
/// switch to it enters `KiStartSystemThread`. The thread is left Initialized;
/// `sched::ready_thread` makes it runnable.
pub fn create_system_thread(
    name: &str,
    priority: u8,
    affinity: u64,
    routine: StartRoutine,
    context: usize,
) -> u32 {
    let t = new_thread(name, priority, affinity, None);
    t.start_routine = Some(routine);
    t.start_context = context;
    // Switch frame (see `KiSwapContext`): rflags, r15..r12, rsi, rdi, rbp, rbx, return address.
    let frame = [
        0x2u64, // RFLAGS: IF clear until the start routine lowers IRQL
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        KiStartSystemThread as *const () as u64,
        // A return-address slot and the 32-byte home area the x64 ABI gives
        // every callee (RSP % 16 == 8 at entry, as after a call).
        0,
        0,
        0,
        0,
        0,
    ];
    let sp = t.initial_stack - (frame.len() as u64 * 8);
    // SAFETY: the stack is freshly allocated and large enough.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut u64, frame.len()) };
    t.kernel_stack = sp;
    t.id
}

/// Saves this processor's extended state to `area`.
///
/// # Safety
/// `area` must be 64-byte aligned and as large as `extended_state_format().1`.
pub unsafe fn save_extended_state(area: u64) {
    if USE_XSAVE.load(Ordering::Relaxed) != 0 {
        // SAFETY: per the contract; XCR0 is set by `init_extended_state`.
        unsafe {
            core::arch::asm!("xsave64 [{}]", in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX)
        };
    } else {
        // SAFETY: per the contract (16-byte alignment suffices for FXSAVE).
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) area) };
    }
}

/// Restores extended state from `area`.
///
/// # Safety
/// As for `save_extended_state`, and `area` must hold a valid image.
pub unsafe fn restore_extended_state(area: u64) {
    if USE_XSAVE.load(Ordering::Relaxed) != 0 {
        // SAFETY: per the contract.
        unsafe {
            core::arch::asm!("xrstor64 [{}]", in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX)
        };
    } else {
        // SAFETY: per the contract.
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) area) };
    }
}

// `KiSwapContext(old: *mut KThread /* rcx */, new: *mut KThread /* rdx */)`:
// saves the callee-saved registers and RFLAGS on the old stack and the full
// extended state (XSAVE, or FXSAVE without it) in old->NpxSaveArea, stores RSP
// in old->KernelStack, then loads the new thread's state the same way.
core::arch::global_asm!(
    ".global KiSwapContext",
    "KiSwapContext:",
    "push rbx",
    "push rbp",
    "push rdi",
    "push rsi",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "pushfq",
    "cli",
    "mov r10, rdx",
    "mov r8, [rcx + 24]",
    "mov r9, [r10 + 24]",
    "cmp dword ptr [rip + KI_USE_XSAVE], 0",
    "je 1f",
    "mov eax, -1",
    "mov edx, -1",
    "xsave64 [r8]",
    "mov [rcx], rsp",
    "xrstor64 [r9]",
    "jmp 2f",
    "1:",
    "fxsave64 [r8]",
    "mov [rcx], rsp",
    "fxrstor64 [r9]",
    "2:",
    "mov rsp, [r10]",
    "popfq",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rsi",
    "pop rdi",
    "pop rbp",
    "pop rbx",
    "ret",
);

#[allow(improper_ctypes)]
extern "C" {
    fn KiSwapContext(old: *mut KThread, new: *mut KThread);
}

/// Switches this processor from `old` to `new` (`SwapContext`): extended
/// state, TSS RSP0, `Prcb.CurrentThread`, then the register switch.
///
/// # Safety
/// Called by the scheduler only, with the dispatcher lock held and both
/// threads valid; returns when `old` is switched back in.
pub unsafe fn swap_context(old: &mut KThread, new: &mut KThread) {
    let prcb = super::current_prcb_mut();
    prcb.current_thread = new as *mut KThread as u64;
    new.context_switches += 1;
    super::set_tss_rsp0(new.initial_stack);
    // Address space: the new thread's process, or the system's.
    let want = if new.cr3 != 0 {
        new.cr3
    } else {
        crate::rtl::loader_block().pml4_physical
    };
    if crate::hal::read_cr3() & !0xFFF != want {
        load_cr3(want);
    }
    // SAFETY: `new.kernel_stack` holds a switch frame built by `create_system_thread`
    // or by an earlier `KiSwapContext` of that thread.
    unsafe { KiSwapContext(old, new) };
}

/// Loads CR3 (switches address space; non-global TLB entries are flushed).
pub fn load_cr3(cr3: u64) {
    // SAFETY: `cr3` is a PML4 whose kernel half equals the system's, so the
    // code and stack in use stay mapped.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) cr3, options(nostack)) };
}

/// First code a new system thread runs (`KiStartSystemThread`): it inherits
/// the dispatcher lock from the switch that started it, releases it, drops
/// to PASSIVE_LEVEL, and calls the start routine; returning terminates the thread.
#[no_mangle]
extern "C" fn KiStartSystemThread() -> ! {
    super::sched::after_switch();
    super::irql::set_irql(super::PASSIVE_LEVEL);
    // SAFETY: a fresh thread starts with interrupts enabled at PASSIVE_LEVEL.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    let t = super::sched::current_thread();
    if let Some(f) = t.start_routine {
        f(t.start_context);
    }
    super::sched::terminate_current_thread()
}
