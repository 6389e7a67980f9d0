//! Kernel threads (`KTHREAD`), their lifetime, stacks and extended state,
//! and the context switch (*Windows Internals*, Part 1, ch. 4, "Thread
//! internals" and "Context switching").
//!
//! ntrs's `KThread` is a Rust structure, not NT's binary `KTHREAD` layout
//! (drivers never see it: they get opaque `PKTHREAD`s). A thread is also
//! named by a small id (its slot in the thread table, reused after the
//! thread is reaped, as client ids are) that the scheduler, the dispatcher
//! database and the timer table use.
//!
//! Lifetime: a `KThread` is reference counted ([`ThreadRef`], NT's object
//! pointer count). The thread table holds one reference from creation until
//! the thread is reaped (after its last switch out); the debugger, waiters on
//! the thread ([`super::wait::ThreadObject`]) and anyone else who keeps a
//! thread beyond the dispatcher lock hold their own. The last reference
//! frees the stack, the extended-state area, the thread's dispatcher object
//! and the `KThread`.
//!
//! What in a `KThread` can change is either atomic or belongs to the
//! scheduler: the scheduling state lives in the host-tested
//! `ke::sched::Scheduler`, the APC queues and the current wait in the
//! dispatcher state's thread table (both under the dispatcher lock).

use super::process::KProcess;
use alloc::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use nt::status::{STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER};
use nt::NtStatus;

pub use super::sched::live_threads;
pub use ::ke::objects::WaitReason;
pub use ::ke::sched::ThreadState;

/// Most threads alive at once (the size of the thread table).
pub const MAX_THREADS: usize = 1024;
/// Kernel stack per thread.
pub const THREAD_STACK_SIZE: usize = 32 * 1024;

/// A thread's start routine: runs at PASSIVE_LEVEL with its context argument.
pub type StartRoutine = fn(usize);

/// The kernel thread object (`KTHREAD`, the fields ntrs has).
#[repr(C)]
pub struct KThread {
    /// Saved RSP while not running (offset 0: `KiSwapContext` writes it).
    kernel_stack: AtomicU64,
    /// Top of the kernel stack (`InitialStack`; the TSS RSP0 while running).
    pub initial_stack: u64,
    /// Lowest stack address (`StackLimit`).
    pub stack_limit: u64,
    /// XSAVE/FXSAVE area, 64-byte aligned (offset 24: `KiSwapContext` reads it).
    npx_save_area: u64,
    /// The thread id (thread-table slot).
    pub id: u32,
    /// References (`PointerCount` of the thread object).
    ref_count: AtomicU32,
    /// `Process`: the owning kernel process object.
    pub process: &'static KProcess,
    /// The thread as a waitable object in the dispatcher database
    /// (signaled when it terminates), created with the thread.
    pub(super) dispatcher_object: ::ke::objects::ObjectId,
    /// `StartAddress` and its context.
    pub start_routine: Option<StartRoutine>,
    pub start_context: usize,
    name: [u8; 24],
    /// Whether the stack was allocated here (boot and AP stacks are adopted).
    owns_stack: bool,
    /// `ContextSwitches`.
    context_switches: AtomicU64,
    /// `KernelTime`: clock ticks charged while running.
    kernel_time: AtomicU64,
    /// `KernelApcDisable` (critical regions; NT counts down, ntrs up):
    /// changed only by the thread itself, read by APC inserters.
    pub(super) kernel_apc_disable: AtomicU16,
    /// `SpecialApcDisable` (guarded regions), likewise.
    pub(super) special_apc_disable: AtomicU16,
    /// `ApcState.KernelApcInProgress`, likewise.
    pub(super) kernel_apc_in_progress: AtomicBool,
    /// `ApcState.KernelApcPending`: a mirror of "kernel APCs are queued"
    /// kept under the dispatcher lock, read by the thread when it leaves a
    /// critical or guarded region.
    pub(super) kernel_apc_pending: AtomicBool,
    /// Address space the thread is attached to (0: none; an id of
    /// `mm::process`), and the CR3 it runs on (0: the system's).
    attached_process: AtomicU32,
    cr3: AtomicU64,
    /// The thread's heap allocation scope (`ex::pool::PoolTag`): pool tag in
    /// the low 32 bits, bit 32 for the paged pool; 0 = none. Only the thread
    /// itself writes it.
    pool_tag: AtomicU64,
    /// The processor's interrupt depth (`ke::intr`) while the thread is
    /// switched out: non-zero when it was switched out by the dispatch
    /// interrupt.
    interrupt_depth: AtomicU32,
    /// `Teb`: the user-mode thread environment block (0 for a thread that
    /// never runs in user mode); the user GS base, loaded into
    /// KERNEL_GS_BASE whenever the thread is switched in.
    teb: AtomicU64,
    /// The executive's thread (`CONTAINING_RECORD(Tcb, ETHREAD, Tcb)` in
    /// NT): an opaque value the process manager sets once (0: none) and
    /// gets back from the thread-delete routine when the thread is freed.
    executive: AtomicU64,
}

impl KThread {
    /// `Teb` (0: a kernel-only thread).
    pub fn teb(&self) -> u64 {
        self.teb.load(Ordering::Relaxed)
    }

    /// Makes the thread a user thread with this TEB (the thread itself,
    /// before it first enters user mode).
    pub fn set_teb(&self, teb: u64) {
        self.teb.store(teb, Ordering::Relaxed);
    }

    /// The executive's value set by `set_executive` (0: none).
    pub fn executive(&self) -> u64 {
        self.executive.load(Ordering::Acquire)
    }

    /// Sets the executive's value once; false if one was set already.
    pub fn set_executive(&self, v: u64) -> bool {
        self.executive
            .compare_exchange(0, v, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The thread's dispatcher object (signaled when it terminates).
    pub fn dispatcher_object_index(&self) -> u32 {
        self.dispatcher_object.0
    }

    pub fn name(&self) -> &str {
        let n = self.name.iter().position(|&b| b == 0).unwrap_or(24);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }

    /// The object's address (what `!thread` prints and accepts).
    pub fn address(&self) -> u64 {
        self as *const KThread as u64
    }

    /// Saved stack pointer while switched out (`KernelStack`).
    pub fn kernel_stack(&self) -> u64 {
        self.kernel_stack.load(Ordering::Relaxed)
    }

    pub fn context_switches(&self) -> u64 {
        self.context_switches.load(Ordering::Relaxed)
    }

    /// Clock ticks charged to the thread.
    pub fn kernel_time(&self) -> u64 {
        self.kernel_time.load(Ordering::Relaxed)
    }

    pub(super) fn charge_tick(&self) {
        self.kernel_time.fetch_add(1, Ordering::Relaxed);
        self.process.charge_tick();
    }

    /// The address space the thread is attached to (0: none).
    pub fn attached_process(&self) -> u32 {
        self.attached_process.load(Ordering::Relaxed)
    }

    /// `KeStackAttachProcess`'s bookkeeping: the thread now runs in address
    /// space `pid` on `cr3` (0, 0: the system's again). Only the thread
    /// itself calls it (the caller loads CR3).
    pub fn set_address_space(&self, pid: u32, cr3: u64) {
        self.attached_process.store(pid, Ordering::Relaxed);
        self.cr3.store(cr3, Ordering::Relaxed);
    }

    /// `KernelApcDisable` (critical-region depth).
    pub fn kernel_apc_disable(&self) -> u16 {
        self.kernel_apc_disable.load(Ordering::Relaxed)
    }

    /// `SpecialApcDisable` (guarded-region depth).
    pub fn special_apc_disable(&self) -> u16 {
        self.special_apc_disable.load(Ordering::Relaxed)
    }
}

/// A counted reference to a thread (`ObReferenceObject` on a thread): the
/// thread stays allocated while any exists.
pub struct ThreadRef(NonNull<KThread>);

// SAFETY: a KThread's fields are immutable after creation or atomic, so it
// may be shared between processors; the count keeps it allocated.
unsafe impl Send for ThreadRef {}
// SAFETY: as above.
unsafe impl Sync for ThreadRef {}

impl ThreadRef {
    /// Whether two references name the same thread object.
    pub fn same(&self, other: &ThreadRef) -> bool {
        self.0 == other.0
    }

    pub(super) fn as_ptr(&self) -> *const KThread {
        self.0.as_ptr()
    }
}

impl core::ops::Deref for ThreadRef {
    type Target = KThread;
    fn deref(&self) -> &KThread {
        // SAFETY: this reference holds one count, so the KThread is allocated
        // (it is freed only when the count drops to zero in `drop`).
        unsafe { self.0.as_ref() }
    }
}

impl Clone for ThreadRef {
    fn clone(&self) -> Self {
        self.ref_count.fetch_add(1, Ordering::Relaxed);
        ThreadRef(self.0)
    }
}

impl Drop for ThreadRef {
    fn drop(&mut self) {
        if self.ref_count.fetch_sub(1, Ordering::Release) == 1 {
            core::sync::atomic::fence(Ordering::Acquire);
            delete_thread(self.0);
        }
    }
}

/// The thread running on this processor (`KeGetCurrentThread`), as a
/// guard that cannot leave this thread (not `Send`).
pub struct CurrentThread {
    t: NonNull<KThread>,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl core::ops::Deref for CurrentThread {
    type Target = KThread;
    fn deref(&self) -> &KThread {
        // SAFETY: `t` is the thread executing this code. A thread is freed
        // only after it is reaped, which happens after its last switch out,
        // so it is allocated for as long as code runs on it; the guard is
        // not Send, so no other thread can hold it.
        unsafe { self.t.as_ref() }
    }
}

/// `KeGetCurrentThread`, or None before the scheduler has made the boot
/// path a thread (phase 0).
pub fn try_current_thread() -> Option<CurrentThread> {
    if !super::gs_ready() {
        return None;
    }
    // One GS-relative read, as `KeGetCurrentThread` does: finding this
    // processor's PRCB and then loading its field is two steps, and a thread
    // preempted and moved to another processor between them would read the
    // first processor's current thread (seen as a wrong current process and
    // thread on 4 processors).
    let p: u64;
    // SAFETY: `gs_ready` says GS holds this processor's KPCR, and GS:[0x188]
    // is its `Prcb.CurrentThread` (offset asserted in ke/mod.rs); the read has
    // no other effect.
    unsafe { core::arch::asm!("mov {}, gs:[0x188]", out(reg) p, options(nostack, readonly)) };
    NonNull::new(p as *mut KThread).map(|t| CurrentThread {
        t,
        _not_send: core::marker::PhantomData,
    })
}

/// The current thread's heap allocation scope (`KThread::pool_tag`), or
/// `None` before this processor runs a thread.
#[inline]
pub fn current_pool_tag() -> Option<u64> {
    try_current_thread().map(|t| t.pool_tag.load(Ordering::Relaxed))
}

/// [`current_pool_tag`] in one GS-relative read of `Prcb.CurrentThread`
/// (0 before this processor runs a thread): the kernel heap's fast path.
///
/// # Safety
/// GS must point at this processor's KPCR (`ki_initialize_processor` ran
/// on it).
#[inline(always)]
pub unsafe fn current_pool_tag_unchecked() -> u64 {
    let t: u64;
    // SAFETY: per the contract GS:[0x188] is this processor's
    // `Prcb.CurrentThread` (offset asserted in ke/mod.rs).
    unsafe { core::arch::asm!("mov {}, gs:[0x188]", out(reg) t, options(nostack, readonly)) };
    if t == 0 {
        return 0;
    }
    // SAFETY: a non-zero `CurrentThread` is the thread running this code: it
    // is not freed while it runs (threads are reaped after their last switch
    // out).
    unsafe { (*(t as *const KThread)).pool_tag.load(Ordering::Relaxed) }
}

/// Sets the current thread's heap allocation scope and returns the previous
/// one; `None` (and nothing set) before this processor runs a thread.
#[inline]
pub fn swap_current_pool_tag(v: u64) -> Option<u64> {
    try_current_thread().map(|t| t.pool_tag.swap(v, Ordering::Relaxed))
}

/// Size of the extended-state area (set by `init_extended_state`).
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
        // x87 | SSE | AVX
        let mask = d.eax as u64 & 0x7;
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

/// Whether AVX state (the upper halves of YMM0-15) is enabled in XCR0 and
/// so switched with the threads.
pub fn avx_enabled() -> bool {
    // CPUID.1:ECX.OSXSAVE mirrors CR4.OSXSAVE.
    if core::arch::x86_64::__cpuid(1).ecx & (1 << 27) == 0 {
        return false;
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: XGETBV 0 is valid once CR4.OSXSAVE is set (checked above).
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") _hi, options(nomem, nostack))
    };
    lo & 0b110 == 0b110
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

/// The x87 control word after `FNINIT`.
pub const DEFAULT_FCW: u16 = 0x037F;
/// MXCSR at reset: all SSE exceptions masked, round to nearest.
pub const DEFAULT_MXCSR: u32 = 0x1F80;

/// Fills a new thread's extended-state area with the default image: the
/// legacy region as `FNINIT` and reset leave it (FCW 0x037F, everything
/// else zero, MXCSR 0x1F80) and a zeroed XSAVE header, so `XRSTOR` puts
/// every component in its initial state (`FXRSTOR` loads the same legacy
/// image). Nothing of the creating thread's registers reaches the new one.
fn initialize_extended_state(area: *mut u8, size: usize) {
    // SAFETY: `area` is a fresh allocation of `size` (>= 512) bytes.
    unsafe {
        core::ptr::write_bytes(area, 0, size);
        area.cast::<u16>().write(DEFAULT_FCW);
        area.add(24).cast::<u32>().write(DEFAULT_MXCSR);
    }
}

fn alloc_zeroed(size: usize, align: usize) -> Option<NonNull<u8>> {
    let layout = Layout::from_size_align(size, align).ok()?;
    // SAFETY: `size` is non-zero for every caller.
    NonNull::new(unsafe { alloc::alloc::alloc_zeroed(layout) })
}

/// # Safety
/// `p` was returned by `alloc_zeroed(size, align)` and is not used afterwards.
unsafe fn free(p: u64, size: usize, align: usize) {
    if let Ok(layout) = Layout::from_size_align(size, align) {
        // SAFETY: per the contract, same layout as the allocation.
        unsafe { alloc::alloc::dealloc(p as *mut u8, layout) };
    }
}

/// Allocates a kernel stack: (StackLimit, InitialStack). `MmCreateKernelStack`
/// through `ke::stack`: system PTEs with an unmapped guard page below, so an
/// overflow faults instead of corrupting a neighbour.
fn allocate_kernel_stack() -> Option<(u64, u64)> {
    let top = super::stack::create_kernel_stack(THREAD_STACK_SIZE as u64).ok()?;
    Some((top - THREAD_STACK_SIZE as u64, top))
}

/// Frees a stack from `allocate_kernel_stack` (`MmDeleteKernelStack`).
fn free_kernel_stack(_limit: u64, top: u64) {
    super::stack::delete_kernel_stack(top, THREAD_STACK_SIZE as u64);
}

/// Memory for a thread before it gets its id: the object, its stack and
/// its extended-state area. Dropping it frees what was allocated.
struct ThreadMemory {
    object: NonNull<KThread>,
    stack: Option<(u64, u64)>,
    npx: NonNull<u8>,
    npx_size: usize,
}

impl ThreadMemory {
    /// `stack`: an adopted stack, or None to allocate one.
    fn allocate(stack: Option<(u64, u64)>) -> Result<ThreadMemory, NtStatus> {
        let npx_size = XSAVE_SIZE.load(Ordering::Relaxed) as usize;
        let npx = alloc_zeroed(npx_size, 64).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        initialize_extended_state(npx.as_ptr(), npx_size);
        let Some(object) = alloc_zeroed(
            core::mem::size_of::<KThread>(),
            core::mem::align_of::<KThread>(),
        ) else {
            // SAFETY: allocated just above with this size and alignment.
            unsafe { free(npx.as_ptr() as u64, npx_size, 64) };
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        };
        let mut m = ThreadMemory {
            object: object.cast(),
            stack: None,
            npx,
            npx_size,
        };
        m.stack = match stack {
            Some(s) => Some(s),
            None => Some(allocate_kernel_stack().ok_or(STATUS_INSUFFICIENT_RESOURCES)?),
        };
        Ok(m)
    }
}

impl Drop for ThreadMemory {
    fn drop(&mut self) {
        // SAFETY: these were allocated in `allocate` and never published
        // (a published thread's memory is taken out with `mem::forget`).
        unsafe {
            free(self.npx.as_ptr() as u64, self.npx_size, 64);
            free(
                self.object.as_ptr() as u64,
                core::mem::size_of::<KThread>(),
                core::mem::align_of::<KThread>(),
            );
        }
    }
}

/// How a new thread starts.
pub(super) enum Start {
    /// A system thread: the first switch to it enters `KiStartSystemThread`.
    Routine(StartRoutine, usize),
    /// The code running now (the boot path, an AP's startup) becomes the thread.
    Adopt { stack_top: u64 },
}

/// Builds a thread: allocates its memory, takes an id and its dispatcher
/// object under the dispatcher lock (`init` there adds it to the scheduler)
/// and links it into its process. Returns its id.
pub(super) fn create_thread(
    name: &str,
    process: &'static KProcess,
    start: Start,
    init: impl FnOnce(&mut super::sched::DispatcherState, u32) -> Result<(), NtStatus>,
) -> Result<u32, NtStatus> {
    let adopted = match start {
        Start::Adopt { stack_top } => Some((stack_top - nt::arc::KERNEL_STACK_SIZE, stack_top)),
        Start::Routine(..) => None,
    };
    // A thread's memory is charged to `Thre`, the tag of NT's thread objects.
    let scope = swap_current_pool_tag(u32::from_le_bytes(*b"Thre") as u64);
    let mem = ThreadMemory::allocate(adopted);
    if let Some(saved) = scope {
        swap_current_pool_tag(saved);
    }
    let mem = mem?;
    let (limit, top) = mem.stack.unwrap_or((0, 0));
    let owns_stack = adopted.is_none();
    let (routine, context, sp) = match start {
        Start::Routine(r, c) => {
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
            let sp = top - (frame.len() as u64 * 8);
            // SAFETY: the stack was just allocated, is THREAD_STACK_SIZE bytes
            // and nobody else uses it; the frame fits at its top.
            unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut u64, frame.len()) };
            (Some(r), c, sp)
        }
        Start::Adopt { .. } => (None, 0, 0),
    };
    let mut n = [0u8; 24];
    let len = name.len().min(23);
    n[..len].copy_from_slice(&name.as_bytes()[..len]);
    let object = mem.object;
    let npx = mem.npx.as_ptr() as u64;
    let published = {
        let mut g = super::sched::lock();
        let st = &mut *g;
        let r = st.thread_table.allocate_id().and_then(|id| {
            let obj = st.db.create_thread_object(false);
            // SAFETY: `object` is a fresh, exclusively owned allocation of a KThread.
            unsafe {
                object.as_ptr().write(KThread {
                    kernel_stack: AtomicU64::new(sp),
                    initial_stack: top,
                    stack_limit: limit,
                    npx_save_area: npx,
                    id,
                    ref_count: AtomicU32::new(1),
                    process,
                    dispatcher_object: obj,
                    start_routine: routine,
                    start_context: context,
                    name: n,
                    owns_stack,
                    context_switches: AtomicU64::new(0),
                    kernel_time: AtomicU64::new(0),
                    kernel_apc_disable: AtomicU16::new(0),
                    special_apc_disable: AtomicU16::new(0),
                    kernel_apc_in_progress: AtomicBool::new(false),
                    kernel_apc_pending: AtomicBool::new(false),
                    attached_process: AtomicU32::new(0),
                    cr3: AtomicU64::new(0),
                    pool_tag: AtomicU64::new(0),
                    interrupt_depth: AtomicU32::new(0),
                    teb: AtomicU64::new(0),
                    executive: AtomicU64::new(0),
                })
            };
            if let Err(e) = init(st, id) {
                let mut unwaits = alloc::vec::Vec::new();
                let _ = st.db.delete(obj, &mut unwaits);
                st.thread_table.release_id(id);
                return Err(e);
            }
            st.thread_table.insert(id, ThreadRef(object));
            Ok(id)
        });
        drop(g);
        r
    };
    match published {
        Ok(id) => {
            // The table's reference owns the memory now.
            core::mem::forget(mem);
            process.add_thread(id);
            Ok(id)
        }
        Err(e) => {
            if owns_stack {
                free_kernel_stack(limit, top);
            }
            Err(e)
        }
    }
}

/// The last reference to a thread went away: its dispatcher object, stack,
/// extended-state area and object are freed. Never called with the
/// dispatcher lock held (references are dropped after it is released).
fn delete_thread(t: NonNull<KThread>) {
    // SAFETY: the count reached zero: this is the only access left.
    let th = unsafe { t.as_ref() };
    let executive = th.executive();
    {
        let mut g = super::sched::lock();
        let st = &mut *g;
        let _ = st.db.delete(th.dispatcher_object, &mut st.unwaits);
        super::wait::process_unwaits(st);
    }
    let npx_size = XSAVE_SIZE.load(Ordering::Relaxed) as usize;
    if th.owns_stack {
        free_kernel_stack(th.stack_limit, th.initial_stack);
    }
    // SAFETY: the area and the object were allocated in `ThreadMemory::allocate`
    // with these layouts; nothing references them any more.
    unsafe {
        free(th.npx_save_area, npx_size, 64);
        free(
            t.as_ptr() as u64,
            core::mem::size_of::<KThread>(),
            core::mem::align_of::<KThread>(),
        );
    }
    if executive != 0 {
        if let Some(routine) = THREAD_DELETE_ROUTINE.get() {
            routine(executive);
        }
    }
}

/// The executive's thread-delete routine (the kernel does not import the
/// executive): called with a freed thread's `executive` value, outside the
/// dispatcher lock, possibly at DISPATCH_LEVEL.
static THREAD_DELETE_ROUTINE: crate::rtl::Once<fn(u64)> = crate::rtl::Once::new();

/// Registers the executive's thread-delete routine (phase 0; once).
pub fn register_thread_delete_routine(routine: fn(u64)) -> bool {
    THREAD_DELETE_ROUTINE.set(routine)
}

/// `PsCreateSystemThread` (the kernel part, `KeInitThread`): a thread of
/// the System process that runs `routine(context)` at PASSIVE_LEVEL and
/// terminates when it returns. It is left Initialized; `sched::ready_thread`
/// starts it. STATUS_INVALID_PARAMETER for a priority above 31 or an
/// affinity with no active processor, STATUS_INSUFFICIENT_RESOURCES when
/// memory or thread ids run out.
pub fn create_system_thread(
    name: &str,
    priority: u8,
    affinity: u64,
    routine: StartRoutine,
    context: usize,
) -> Result<u32, NtStatus> {
    create_thread_in_process(
        name,
        &super::process::KI_SYSTEM_PROCESS,
        priority,
        affinity,
        routine,
        context,
    )
}

/// `KeInitThread` for a kernel thread of `process` (the process manager's
/// `PspCreateThread`): as [`create_system_thread`], in any process. The
/// caller keeps `process` allocated until the thread is freed (the
/// thread-delete routine tells it).
pub fn create_thread_in_process(
    name: &str,
    process: &'static KProcess,
    priority: u8,
    affinity: u64,
    routine: StartRoutine,
    context: usize,
) -> Result<u32, NtStatus> {
    if priority > 31 || affinity == 0 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    create_thread(name, process, Start::Routine(routine, context), |st, id| {
        let ideal = id % super::processor_count().max(1);
        st.sched
            .create_thread(
                ::ke::objects::ThreadId(id),
                priority,
                affinity,
                ideal,
                process.quantum_reset,
            )
            .map_err(|_| STATUS_INVALID_PARAMETER)
    })
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

// `KiSwapContext(old: *const KThread /* rcx */, new: *const KThread /* rdx */)`:
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
    fn KiSwapContext(old: *const KThread, new: *const KThread);
}

/// Switches this processor from `old` to `new` (`SwapContext`):
/// `Prcb.CurrentThread`, TSS RSP0, address space, then the register and
/// extended-state switch. Returns when `old` is switched back in.
///
/// # Safety
/// Called by the scheduler only, on the processor where `old` runs, with
/// the dispatcher lock held (so `new`, switched out and in the thread
/// table, stays allocated and nobody else switches to it); `old` is the
/// current thread. No reference into the dispatcher state may be live
/// across the call (other threads change it meanwhile).
pub(super) unsafe fn swap_context(old: *const KThread, new: *const KThread) {
    // SAFETY: per the contract both point at allocated threads.
    let (oldt, newt) = unsafe { (&*old, &*new) };
    super::current_prcb()
        .current_thread
        .store(new as u64, Ordering::Relaxed);
    newt.context_switches.fetch_add(1, Ordering::Relaxed);
    super::set_tss_rsp0(newt.initial_stack);
    // Address space: the new thread's process, or the system's.
    let cr3 = newt.cr3.load(Ordering::Relaxed);
    let want = if cr3 != 0 {
        cr3
    } else {
        crate::rtl::loader_block().pml4_physical
    };
    if crate::hal::read_cr3() & !0xFFF != want {
        load_cr3(want);
    }
    // A user thread's GS base for user mode (`swapgs` exchanges it in).
    let teb = newt.teb.load(Ordering::Relaxed);
    if teb != 0 {
        // SAFETY: KERNEL_GS_BASE is only used by swapgs on the way to user
        // mode; the new thread's TEB is what it must see there.
        unsafe { crate::hal::wrmsr(super::MSR_KERNEL_GS_BASE, teb) };
    }
    // The interrupt depth travels with the thread.
    let depth = super::intr::exchange_interrupt_depth(newt.interrupt_depth.load(Ordering::Relaxed));
    oldt.interrupt_depth.store(depth, Ordering::Relaxed);
    // SAFETY: `new.kernel_stack` holds a switch frame built by `create_thread`
    // or by an earlier `KiSwapContext` of that thread; both save areas are
    // 64-byte aligned and XSAVE_SIZE long.
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
    let start = try_current_thread().and_then(|t| t.start_routine.map(|f| (f, t.start_context)));
    if let Some((f, ctx)) = start {
        f(ctx);
    }
    super::sched::terminate_current_thread()
}
