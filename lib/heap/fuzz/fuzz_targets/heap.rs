//! Drives a heap with arbitrary call sequences, bad frees included: valid
//! calls keep the model's sizes and contents, bad pointers give
//! STATUS_HEAP_CORRUPTION, nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    heap::fuzz::fuzz_one(data);
});
