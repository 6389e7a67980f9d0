//! `KeLoaderBlock`: the loader parameter block winload hands over, and what
//! phase 0 reads from it once (the load options' test mode).

use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use nt::arc::{LoaderParameterBlock, LOADER_BLOCK_SIGNATURE, LOADER_BLOCK_VERSION};

static LOADER_BLOCK: AtomicPtr<LoaderParameterBlock> = AtomicPtr::new(core::ptr::null_mut());
static TEST_MODE: AtomicBool = AtomicBool::new(false);

/// Records the loader block (phase 0, `KiSystemStartup`) after checking its
/// signature and version; `Err` gives the values found.
///
/// # Safety
/// `block` must point at a loader parameter block that stays mapped and
/// unmodified for the whole boot (winload's MemoryData pages, reached
/// through the direct map).
pub unsafe fn set_loader_block(block: *mut LoaderParameterBlock) -> Result<(), (u64, u32)> {
    // SAFETY: the caller guarantees `block` is valid.
    let lb = unsafe { &*block };
    if lb.signature != LOADER_BLOCK_SIGNATURE || lb.version != LOADER_BLOCK_VERSION {
        return Err((lb.signature, lb.version));
    }
    LOADER_BLOCK.store(block, Ordering::Release);
    TEST_MODE.store(
        load_options()
            .split_whitespace()
            .any(|o| o.eq_ignore_ascii_case("/TESTS")),
        Ordering::Relaxed,
    );
    Ok(())
}

/// `KeLoaderBlock`: the block winload passed (valid for the whole boot; ntrs
/// never frees loader memory yet).
pub fn loader_block() -> &'static LoaderParameterBlock {
    // SAFETY: set once in phase 0 by `set_loader_block`, whose caller
    // guarantees the block stays mapped and unmodified; nothing runs before it.
    unsafe { &*LOADER_BLOCK.load(Ordering::Acquire) }
}

/// Load options (`/TESTS /BENCH ...`), upper-cased by the loader convention.
pub fn load_options() -> &'static str {
    // SAFETY: the loader string lives in MemoryData pages that stay mapped.
    unsafe { loader_block().load_options.as_str() }
}

/// Whether this boot runs the in-kernel tests (`/TESTS` in the load options).
pub fn test_mode() -> bool {
    TEST_MODE.load(Ordering::Relaxed)
}
