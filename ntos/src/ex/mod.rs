//! Executive support (ex): the early pool allocator, executive
//! synchronization, worker threads, and the dispatcher-object services.

pub mod event;
pub mod pool;
pub mod probe;
/// Boot tests of `ProbeForRead`/`ProbeForWrite`.
pub mod probe_tests;
/// Boot tests of ntdll's structured exception handling (ntrsseh.exe).
pub mod seh_tests;
pub mod services;
pub mod shutdown;
pub mod sync;
/// Boot tests (`/TESTS`) of this component.
pub mod tests;
pub mod uproc;
/// Boot tests of user mode and the system services.
pub mod uproc_tests;
pub mod worker;
pub mod xcpt;
/// Boot tests of exception and APC dispatching to user mode.
pub mod xcpt_tests;
pub mod xpool;
