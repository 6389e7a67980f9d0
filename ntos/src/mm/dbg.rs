//! The debugger's view of memory (`MmDbgCopyMemory`, *Windows Internals*
//! Part 2, ch. 10, "Kernel debugging"): kd reads any virtual address of any
//! address space without faulting. A virtual address is translated by
//! walking the paging structures of a directory table base (the current
//! one, or a process's for `.process`) through a one-page window onto
//! physical memory, and only RAM is read (never device memory, whose reads
//! can have side effects). Nothing here takes a lock, so it also works on
//! the stop screen while a frozen processor holds the memory manager's.

use super::map;
use super::pte::PTE_NX;
use core::sync::atomic::{AtomicBool, Ordering};
use nt::arc::MemoryType;

/// The window's virtual address (one system PTE, reserved on first use).
static WINDOW: crate::rtl::Once<u64> = crate::rtl::Once::new();
/// Held while the window is in use (kd on two processors at once is not a
/// supported case: the second reader gets nothing rather than waiting).
static BUSY: AtomicBool = AtomicBool::new(false);

const FRAME_MASK: u64 = 0x000F_FFFF_FFFF_F000;
const PRESENT: u64 = 1;
const LARGE: u64 = 1 << 7;

fn window() -> Option<u64> {
    if let Some(va) = WINDOW.get() {
        return Some(va);
    }
    let va = map::reserve_system_ptes(1)?;
    // Mapping it once creates its page tables; later uses only rewrite the PTE.
    map::map_page(va, 0, PTE_NX).ok()?;
    WINDOW.set(va);
    WINDOW.get()
}

/// Whether physical page `frame` is RAM the loader described (not a
/// memory-mapped device range).
fn is_ram(frame: u64) -> bool {
    // SAFETY: the loader's descriptor array stays mapped for the life of
    // the system and is never written after hand-off.
    let descs = unsafe { crate::rtl::loader_block().memory_descriptors() };
    descs.iter().any(|d| {
        d.memory_type != MemoryType::SpecialMemory
            && frame >= d.base_page
            && frame - d.base_page < d.page_count
    })
}

/// Copies physical memory at `pa` into `out`, not crossing the page; false
/// if the page is not RAM or the window is unavailable.
fn read_physical_in_page(win: u64, pa: u64, out: &mut [u8]) -> bool {
    let off = (pa & 0xFFF) as usize;
    if !is_ram(pa >> 12) || off + out.len() > 4096 {
        return false;
    }
    let f = crate::hal::disable_interrupts();
    map::set_debugger_window(win, pa >> 12);
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: the window maps the RAM page `pa >> 12` on this processor
        // (interrupts are disabled, so this thread stays here and no other
        // use of the window intervenes: BUSY is held); `off + i` < 4096. The
        // page may be in use by anyone: the bytes are only copied, volatile.
        *b = unsafe { ((win + (off + i) as u64) as *const u8).read_volatile() };
    }
    crate::hal::restore_interrupts(f);
    true
}

fn read_physical_u64(win: u64, pa: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    read_physical_in_page(win, pa, &mut b).then(|| u64::from_le_bytes(b))
}

/// The physical address `va` maps to under directory table base `dtb`.
fn translate(win: u64, dtb: u64, va: u64) -> Option<u64> {
    let mut table = dtb & FRAME_MASK;
    for (level, shift) in [39u32, 30, 21, 12].into_iter().enumerate() {
        let e = read_physical_u64(win, table + ((va >> shift) & 511) * 8)?;
        if e & PRESENT == 0 {
            return None;
        }
        let frame = e & FRAME_MASK;
        if (level == 1 || level == 2) && e & LARGE != 0 {
            let mask = (1u64 << shift) - 1;
            return Some((frame & !mask) | (va & mask));
        }
        table = frame;
    }
    Some(table | (va & 0xFFF))
}

/// `MmDbgCopyMemory`: copies up to `out.len()` bytes from virtual address
/// `va` in the address space of directory table base `dtb` (`None`: the
/// current one), stopping at the first page that is not mapped or not
/// RAM. Returns how many bytes were copied.
pub fn mm_dbg_copy_memory(dtb: Option<u64>, va: u64, out: &mut [u8]) -> usize {
    if BUSY.swap(true, Ordering::Acquire) {
        return 0;
    }
    let done = match window() {
        Some(win) => {
            let dtb = dtb.unwrap_or_else(crate::hal::read_cr3);
            let mut done = 0;
            while done < out.len() {
                let v = va.wrapping_add(done as u64);
                if ((v as i64) << 16 >> 16) as u64 != v {
                    break; // not canonical
                }
                let n = (4096 - (v & 0xFFF) as usize).min(out.len() - done);
                let ok = translate(win, dtb, v)
                    .is_some_and(|pa| read_physical_in_page(win, pa, &mut out[done..done + n]));
                if !ok {
                    break;
                }
                done += n;
            }
            done
        }
        None => 0,
    };
    BUSY.store(false, Ordering::Release);
    done
}
