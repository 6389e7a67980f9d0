//! Executive support (ex): the early pool allocator, executive
//! synchronization, worker threads, and the dispatcher-object services.

pub mod event;
pub mod pool;
pub mod sync;
pub mod worker;
pub mod xpool;
