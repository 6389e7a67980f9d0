//! The I/O system (*Windows Internals*, Part 1, ch. 6).

pub mod pnp;
