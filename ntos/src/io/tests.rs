//! Boot tests of the I/O manager.

use crate::ktest::Test;

pub const TESTS: &[Test] = &[];
