//! Process manager logic that does not need the kernel (*Windows
//! Internals* 7th ed., Part 1, ch. 3 and 4): the information classes
//! `NtQueryInformationProcess`, `NtQueryInformationThread` and
//! `NtQuerySystemInformation` return, laid out as Windows x64 lays them
//! out (offsets checked against the structures' documented layouts), and
//! the rules for the caller's buffer; and job objects' limits and
//! accounting (`job`).

#![no_std]
extern crate alloc;

pub mod info;
pub mod job;
