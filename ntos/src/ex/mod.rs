//! Executive support (ex): the early pool allocator and spin locks.

pub mod pool;
