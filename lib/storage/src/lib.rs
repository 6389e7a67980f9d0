//! Storage stack logic shared by the kernel's storage drivers and host tests
//! (*Windows Internals* 7th ed., Part 1 ch. 6 "Storage"/"The mount manager";
//! Part 2 ch. 11 for volumes): the GUID partition table, the ntdddisk.h
//! structures drivers hand back for disk IOCTLs, the mount manager's names
//! and `MountedDevices` data, and the AHCI port logic written over a register
//! trait so host tests run it against a simulated HBA.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod ahci;
pub mod class;
pub mod crc32;
pub mod disk;
pub mod gpt;
pub mod guid;
pub mod mbr;
pub mod mountmgr;
pub mod request;
pub mod scsi;
pub mod volume;
