//! Kernel stacks for the kernel's threads and processors. The memory
//! manager provides them (`MmCreateKernelStack` / `MmDeleteKernelStack`:
//! system PTEs with an unmapped guard page below each stack); the kernel
//! does not import the memory manager, which registers its routines here in
//! phase 0 before the first thread or processor needs a stack.

use nt::NtStatus;

/// The memory manager's stack routines.
#[derive(Clone, Copy)]
pub struct StackRoutines {
    /// Creates a stack of the given number of pages; returns its top.
    pub create: fn(u64) -> Result<u64, NtStatus>,
    /// Deletes the stack with this top and number of pages.
    pub delete: fn(u64, u64),
}

static ROUTINES: crate::rtl::Once<StackRoutines> = crate::rtl::Once::new();

/// Registers the memory manager's stack routines (phase 0, once).
pub fn register(r: StackRoutines) {
    ROUTINES.set(r);
}

/// Pages in a stack of `bytes` bytes.
pub fn pages_of(bytes: u64) -> u64 {
    bytes.div_ceil(4096)
}

/// `MmCreateKernelStack` through the registered routine: a stack of `bytes`
/// bytes with a guard page; returns its top (`InitialStack`).
pub fn create_kernel_stack(bytes: u64) -> Result<u64, NtStatus> {
    let r = ROUTINES
        .get()
        .ok_or(nt::status::STATUS_INSUFFICIENT_RESOURCES)?;
    (r.create)(pages_of(bytes))
}

/// `MmDeleteKernelStack` for a stack `create_kernel_stack` made.
pub fn delete_kernel_stack(top: u64, bytes: u64) {
    if let Some(r) = ROUTINES.get() {
        (r.delete)(top, pages_of(bytes));
    }
}
