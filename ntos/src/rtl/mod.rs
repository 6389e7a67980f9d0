//! The kernel's bottom layer: what every component may use and what uses
//! nothing above it — the debug port (`debug`, NT's kdcom transport and
//! `DbgPrint`) and the loader parameter block handed over by winload
//! (`boot`, `KeLoaderBlock` and the load options). The HAL, the kernel and
//! the executive all sit above it.

pub mod boot;
pub mod debug;
pub mod once;
pub mod string;

pub use boot::{load_options, loader_block, test_mode};
pub use once::Once;
