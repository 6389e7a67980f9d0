//! Memory manager glue in the kernel (*Windows Internals*, Part 1, ch. 5):
//! page-table inspection through the self-map. The PFN database, pools and
//! address spaces arrive on top of the host-tested `mm` crate.

pub mod contig;
pub mod dbg;
pub mod file;
pub mod ldr;
/// Boot tests of the image loader.
pub mod ldr_tests;
pub mod map;
pub mod pfn;
pub mod process;
pub mod pte;
/// Boot tests (`/TESTS`) of this component.
pub mod tests;
/// Boot tests of file-backed sections.
pub mod tests_file;
/// Boot tests of image sections.
pub mod tests_image;
pub mod user;
