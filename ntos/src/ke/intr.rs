//! Interrupt dispatching (*Windows Internals*, Part 2, ch. 8, "Hardware
//! interrupt processing"): the common handler raises IRQL to the vector's
//! level (`vector >> 4`), signals end of interrupt, runs the service routine
//! with interrupts enabled so higher levels can nest, then restores IRQL.
//! Interrupt objects (`KINTERRUPT`) let drivers connect a service routine
//! to a device vector (`IoConnectInterrupt`); disconnecting waits until no
//! processor runs the routine any more, then frees the object.

use super::irql::{set_irql, SpinLocked};
use super::{APC_LEVEL, CLOCK_LEVEL, DISPATCH_LEVEL, HIGH_LEVEL};
use crate::hal::{apic, disable_interrupts, restore_interrupts};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// `PKSERVICE_ROUTINE`: (Interrupt, ServiceContext) → whether the device interrupted.
pub type ServiceRoutine = fn(&KInterrupt, usize) -> bool;

/// `KINTERRUPT`.
pub struct KInterrupt {
    pub vector: u8,
    pub irql: u8,
    /// The I/O APIC input, or [`NO_GSI`] for a message-signaled interrupt.
    pub gsi: u32,
    pub routine: ServiceRoutine,
    pub context: usize,
    pub count: AtomicU64,
}

static CONNECTED: [AtomicPtr<KInterrupt>; 256] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; 256];
/// Processors inside the dispatch of each vector (counted before the
/// connected object is read, so a disconnect can wait them out).
static ACTIVE: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];

/// A connected interrupt object (what `IoConnectInterrupt` returns): it
/// stays connected until `io_disconnect_interrupt` (or drop) disconnects
/// and frees it.
pub struct InterruptObject(NonNull<KInterrupt>);

// SAFETY: KInterrupt is immutable apart from its atomic count.
unsafe impl Send for InterruptObject {}
// SAFETY: as above.
unsafe impl Sync for InterruptObject {}

impl core::ops::Deref for InterruptObject {
    type Target = KInterrupt;
    fn deref(&self) -> &KInterrupt {
        // SAFETY: the object is freed only when this handle disconnects it.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for InterruptObject {
    fn drop(&mut self) {
        disconnect(self.0);
    }
}
/// Interrupts dispatched to the object connected at `vector` (None when
/// nothing is connected there): `!idt`-style statistics and tests.
pub fn interrupt_count(vector: u8) -> Option<u64> {
    ACTIVE[vector as usize].fetch_add(1, Ordering::SeqCst);
    let obj = CONNECTED[vector as usize].load(Ordering::SeqCst);
    // SAFETY: counted in ACTIVE before reading the pointer, so a disconnect
    // waits for this read (as in the dispatch).
    let n = (!obj.is_null()).then(|| unsafe { (*obj).count.load(Ordering::Relaxed) });
    ACTIVE[vector as usize].fetch_sub(1, Ordering::SeqCst);
    n
}

/// `KInterrupt::gsi` of a message-signaled interrupt (no I/O APIC input).
pub const NO_GSI: u32 = u32::MAX;

/// Vectors the PnP manager assigned to a device (`IoConnectInterrupt`'s
/// automatic choice skips them; connecting one takes the reservation).
static RESERVED: [core::sync::atomic::AtomicBool; 256] =
    [const { core::sync::atomic::AtomicBool::new(false) }; 256];

/// Reserves a free device vector at `irql` (vector = irql << 4 | n) for a
/// device's resource assignment (the HAL's vector allocation for
/// `IoGetDeviceProperty`/`IRP_MN_START_DEVICE` translated resources).
pub fn reserve_vector(irql: u8) -> Option<u8> {
    if !(3..CLOCK_LEVEL).contains(&irql) {
        return None;
    }
    NEXT_VECTOR.with(|_| {
        let v = (0..16u8).map(|n| (irql << 4) | n).find(|&v| {
            v >= apic::FIRST_DEVICE_VECTOR
                && !RESERVED[v as usize].load(Ordering::Relaxed)
                && CONNECTED[v as usize].load(Ordering::Relaxed).is_null()
        })?;
        RESERVED[v as usize].store(true, Ordering::Relaxed);
        Some(v)
    })
}

/// Connects `routine` at `vector`, which `reserve_vector` handed out
/// (`KeConnectInterrupt` for PnP-assigned resources): for a line-based
/// interrupt `gsi` is routed to the boot processor with `mps_flags`'
/// polarity and trigger; for a message-signaled one (`gsi` = [`NO_GSI`])
/// the device's MSI capability already names the vector.
/// STATUS_INVALID_PARAMETER for a vector that was not reserved or whose
/// level is not `irql`; STATUS_SHARING_VIOLATION if it is connected.
pub fn connect_reserved(
    vector: u8,
    irql: u8,
    gsi: u32,
    mps_flags: u16,
    routine: ServiceRoutine,
    context: usize,
) -> Result<InterruptObject, nt::status::NtStatus> {
    if vector >> 4 != irql || !RESERVED[vector as usize].load(Ordering::Relaxed) {
        return Err(nt::status::STATUS_INVALID_PARAMETER);
    }
    let layout = core::alloc::Layout::new::<KInterrupt>();
    // SAFETY: KInterrupt has a non-zero size.
    let Some(obj) = NonNull::new(unsafe { alloc::alloc::alloc(layout) }.cast::<KInterrupt>())
    else {
        return Err(nt::status::STATUS_INSUFFICIENT_RESOURCES);
    };
    let ok = NEXT_VECTOR.with(|_| {
        if !CONNECTED[vector as usize].load(Ordering::Relaxed).is_null() {
            return false;
        }
        // SAFETY: a fresh allocation with KInterrupt's layout, owned here.
        unsafe {
            obj.as_ptr().write(KInterrupt {
                vector,
                irql,
                gsi,
                routine,
                context,
                count: AtomicU64::new(0),
            })
        };
        CONNECTED[vector as usize].store(obj.as_ptr(), Ordering::SeqCst);
        true
    });
    if !ok {
        // SAFETY: allocated above with this layout and never published.
        unsafe { alloc::alloc::dealloc(obj.as_ptr().cast::<u8>(), layout) };
        return Err(nt::status::STATUS_SHARING_VIOLATION);
    }
    if gsi != NO_GSI {
        if let Some(m) = super::madt() {
            apic::ioapic_route(
                &m,
                gsi,
                vector,
                super::apic_id_of(0).unwrap_or(0),
                mps_flags,
            );
        }
    }
    Ok(InterruptObject(obj))
}

/// Interrupts taken per vector (for `!idt`-style statistics).
pub static COUNTS: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];
static NEXT_VECTOR: SpinLocked<u8, HIGH_LEVEL> = SpinLocked::new(apic::FIRST_DEVICE_VECTOR);

/// `IoConnectInterrupt` (the kernel half, `KeConnectInterrupt`): allocates a
/// device vector at `irql` (vector = irql << 4 | n), routes global system
/// interrupt `gsi` to the boot processor with the MADT's polarity/trigger,
/// and connects `routine`.
pub fn io_connect_interrupt(
    gsi: u32,
    irql: u8,
    mps_flags: u16,
    routine: ServiceRoutine,
    context: usize,
) -> Result<InterruptObject, nt::status::NtStatus> {
    if !(3..CLOCK_LEVEL).contains(&irql) {
        return Err(nt::status::STATUS_INVALID_PARAMETER);
    }
    let layout = core::alloc::Layout::new::<KInterrupt>();
    // SAFETY: KInterrupt has a non-zero size.
    let Some(obj) = NonNull::new(unsafe { alloc::alloc::alloc(layout) }.cast::<KInterrupt>())
    else {
        return Err(nt::status::STATUS_INSUFFICIENT_RESOURCES);
    };
    // The vector is chosen and connected under one lock, so two connects
    // never share it.
    let vector = NEXT_VECTOR.with(|_| {
        let v = (0..16u8).map(|n| (irql << 4) | n).find(|&v| {
            v >= apic::FIRST_DEVICE_VECTOR
                && !RESERVED[v as usize].load(Ordering::Relaxed)
                && CONNECTED[v as usize].load(Ordering::Relaxed).is_null()
        })?;
        // SAFETY: a fresh allocation with KInterrupt's layout, owned here.
        unsafe {
            obj.as_ptr().write(KInterrupt {
                vector: v,
                irql,
                gsi,
                routine,
                context,
                count: AtomicU64::new(0),
            })
        };
        CONNECTED[v as usize].store(obj.as_ptr(), Ordering::SeqCst);
        Some(v)
    });
    let Some(vector) = vector else {
        // SAFETY: allocated above with this layout and never published.
        unsafe { alloc::alloc::dealloc(obj.as_ptr().cast::<u8>(), layout) };
        return Err(nt::status::STATUS_INSUFFICIENT_RESOURCES);
    };
    if let Some(m) = super::madt() {
        apic::ioapic_route(
            &m,
            gsi,
            vector,
            super::apic_id_of(0).unwrap_or(0),
            mps_flags,
        );
    }
    Ok(InterruptObject(obj))
}

/// `IoDisconnectInterrupt`: masks the input, disconnects the routine, waits
/// until no processor runs it, and frees the object (PASSIVE_LEVEL: not
/// from the routine itself).
pub fn io_disconnect_interrupt(obj: InterruptObject) {
    drop(obj);
}

fn disconnect(obj: NonNull<KInterrupt>) {
    // SAFETY: the handle being dropped owns the object; it is still allocated.
    let (vector, gsi) = unsafe { (obj.as_ref().vector, obj.as_ref().gsi) };
    if gsi != NO_GSI {
        if let Some(m) = super::madt() {
            apic::ioapic_mask(&m, gsi);
        }
    }
    CONNECTED[vector as usize].store(core::ptr::null_mut(), Ordering::SeqCst);
    while ACTIVE[vector as usize].load(Ordering::SeqCst) != 0 {
        core::hint::spin_loop();
    }
    // SAFETY: the object was allocated with this layout in
    // `io_connect_interrupt`; it is no longer reachable from CONNECTED and
    // no dispatch still uses it (each counts itself in ACTIVE before reading
    // CONNECTED). KInterrupt needs no drop.
    unsafe {
        alloc::alloc::dealloc(
            obj.as_ptr().cast::<u8>(),
            core::alloc::Layout::new::<KInterrupt>(),
        )
    };
}

/// Entry from the trap dispatcher for vectors 0x1F..0xFF (interrupts
/// disabled on entry and on return).
pub fn dispatch_interrupt(vector: u8) {
    super::sched::note_halt_end(super::current_processor_number() as usize);
    depth_of_this_processor().fetch_add(1, Ordering::Relaxed);
    dispatch_interrupt_inner(vector);
    // The dispatch interrupt may have switched threads: this thread may now
    // run on another processor, whose counter it brought along (see
    // `exchange_interrupt_depth`), so this is the counter to decrement.
    depth_of_this_processor().fetch_sub(1, Ordering::Relaxed);
}

/// Per processor: interrupts being serviced (the DPC/dispatch interrupt
/// included) by the thread running there, written only by that processor.
/// A context switch saves it in the outgoing thread and loads the incoming
/// thread's ([`exchange_interrupt_depth`]): a thread switched out inside the
/// dispatch interrupt resumes there, wherever it runs next, and a thread
/// switched in that blocked outside any interrupt runs with 0.
static INTERRUPT_DEPTH: [AtomicU32; crate::hal::MAX_PROCESSORS] =
    [const { AtomicU32::new(0) }; crate::hal::MAX_PROCESSORS];

fn depth_of_this_processor() -> &'static AtomicU32 {
    &INTERRUPT_DEPTH[super::current_processor_number() as usize % crate::hal::MAX_PROCESSORS]
}

/// Whether this processor is servicing an interrupt (an ISR, the clock, or
/// the dispatch interrupt with its DPCs): code running there does not act
/// for the thread it interrupted. Lock-free, for the allocator.
pub fn in_interrupt() -> bool {
    depth_of_this_processor().load(Ordering::Relaxed) != 0
}

/// The context switch's part (`SwapContext`, interrupts disabled or the
/// dispatcher lock held at DISPATCH_LEVEL on this processor): sets this
/// processor's interrupt depth to the incoming thread's saved `depth` and
/// returns the outgoing thread's, to save in it. An interrupt arriving in
/// between increments and decrements symmetrically, so nothing is lost.
pub fn exchange_interrupt_depth(depth: u32) -> u32 {
    depth_of_this_processor().swap(depth, Ordering::Relaxed)
}

fn dispatch_interrupt_inner(vector: u8) {
    COUNTS[vector as usize].fetch_add(1, Ordering::Relaxed);
    if vector == apic::SPURIOUS_VECTOR {
        return; // no EOI for spurious interrupts
    }
    let old = super::irql();
    match vector {
        apic::DPC_VECTOR => {
            set_irql(DISPATCH_LEVEL);
            apic::eoi();
            enable();
            super::sched::dispatch_interrupt();
            disable_interrupts();
        }
        apic::APC_VECTOR => {
            set_irql(APC_LEVEL);
            apic::eoi();
            if super::sched::SCHEDULER_RUNNING.load(Ordering::Relaxed) {
                enable();
                super::apc::ki_deliver_kernel_apcs(old);
                disable_interrupts();
            }
        }
        apic::CLOCK_VECTOR => {
            set_irql(CLOCK_LEVEL);
            apic::eoi();
            super::clock::clock_interrupt(old);
        }
        apic::IPI_VECTOR => {
            set_irql(super::IPI_LEVEL);
            apic::eoi();
            super::mp::ipi_received();
        }
        v => {
            set_irql(v >> 4);
            ACTIVE[v as usize].fetch_add(1, Ordering::SeqCst);
            let obj = CONNECTED[v as usize].load(Ordering::SeqCst);
            if !obj.is_null() {
                // SAFETY: this dispatch is counted in ACTIVE before it read
                // the pointer, so `disconnect` (which clears the pointer
                // first, then waits for ACTIVE to drain) cannot free the
                // object until the routine has returned.
                let obj = unsafe { &*obj };
                enable();
                obj.count.fetch_add(1, Ordering::Relaxed);
                (obj.routine)(obj, obj.context);
                disable_interrupts();
            }
            ACTIVE[v as usize].fetch_sub(1, Ordering::SeqCst);
            apic::eoi();
        }
    }
    set_irql(old);
}

fn enable() {
    restore_interrupts(0x200);
}
