//! `RTL_BITMAP` routines over a caller's buffer of 32-bit words (bit `i` is
//! bit `i % 32` of word `i / 32`, as Windows lays it out). Ranges outside
//! the bitmap are refused (`false`/`NOT_FOUND`), never a panic: Windows
//! asserts on them in checked builds and corrupts memory in free ones.

/// What the `RtlFind*` routines return when nothing fits (0xFFFFFFFF).
pub const NOT_FOUND: u32 = u32::MAX;

/// `RTL_BITMAP`: `size` bits over `buf` (which must hold them).
pub struct Bitmap<'a> {
    pub size: u32,
    pub buf: &'a mut [u32],
}

impl<'a> Bitmap<'a> {
    /// `RtlInitializeBitMap`: `None` when `buf` is shorter than `size` bits.
    pub fn new(buf: &'a mut [u32], size: u32) -> Option<Self> {
        (buf.len() as u64 * 32 >= size as u64).then_some(Bitmap { size, buf })
    }

    fn ok(&self, start: u32, n: u32) -> bool {
        start as u64 + n as u64 <= self.size as u64
    }

    pub fn test(&self, i: u32) -> bool {
        i < self.size && self.buf[(i / 32) as usize] & (1 << (i % 32)) != 0
    }

    fn put(&mut self, i: u32, v: bool) {
        let w = &mut self.buf[(i / 32) as usize];
        if v {
            *w |= 1 << (i % 32);
        } else {
            *w &= !(1 << (i % 32));
        }
    }

    fn fill(&mut self, start: u32, n: u32, v: bool) -> bool {
        if !self.ok(start, n) {
            return false;
        }
        let mut i = start;
        let end = start + n;
        while i < end {
            if i.is_multiple_of(32) && end - i >= 32 {
                self.buf[(i / 32) as usize] = if v { u32::MAX } else { 0 };
                i += 32;
            } else {
                self.put(i, v);
                i += 1;
            }
        }
        true
    }

    /// `RtlSetBits`.
    pub fn set_bits(&mut self, start: u32, n: u32) -> bool {
        self.fill(start, n, true)
    }
    /// `RtlClearBits`.
    pub fn clear_bits(&mut self, start: u32, n: u32) -> bool {
        self.fill(start, n, false)
    }
    /// `RtlSetAllBits`.
    pub fn set_all(&mut self) {
        self.fill(0, self.size, true);
    }
    /// `RtlClearAllBits`.
    pub fn clear_all(&mut self) {
        self.fill(0, self.size, false);
    }

    fn all(&self, start: u32, n: u32, v: bool) -> bool {
        self.ok(start, n) && (start..start + n).all(|i| self.test(i) == v)
    }
    /// `RtlAreBitsSet`.
    pub fn are_bits_set(&self, start: u32, n: u32) -> bool {
        n != 0 && self.all(start, n, true)
    }
    /// `RtlAreBitsClear`.
    pub fn are_bits_clear(&self, start: u32, n: u32) -> bool {
        n != 0 && self.all(start, n, false)
    }

    /// `RtlNumberOfSetBits`.
    pub fn number_of_set_bits(&self) -> u32 {
        let full = (self.size / 32) as usize;
        let mut n: u32 = self.buf[..full].iter().map(|w| w.count_ones()).sum();
        let rem = self.size % 32;
        if rem != 0 {
            n += (self.buf[full] & ((1u32 << rem) - 1)).count_ones();
        }
        n
    }
    /// `RtlNumberOfClearBits`.
    pub fn number_of_clear_bits(&self) -> u32 {
        self.size - self.number_of_set_bits()
    }

    /// The first run of `n` bits equal to `v` starting in `from..to`.
    fn find_in(&self, n: u32, v: bool, from: u32, to: u32) -> Option<u32> {
        let mut run = 0u32;
        let mut i = from;
        while i < self.size {
            if self.test(i) == v {
                run += 1;
                if run == n {
                    return Some(i + 1 - n);
                }
            } else {
                run = 0;
                if i >= to {
                    return None;
                }
            }
            i += 1;
        }
        None
    }

    fn find(&self, n: u32, v: bool, hint: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if n > self.size {
            return NOT_FOUND;
        }
        let hint = if hint >= self.size { 0 } else { hint };
        // From the hint to the end, then from the start to the hint.
        self.find_in(n, v, hint, self.size)
            .or_else(|| self.find_in(n, v, 0, hint))
            .unwrap_or(NOT_FOUND)
    }

    /// `RtlFindClearBits`: the first index at or after `hint` (wrapping to
    /// the start) of `n` clear bits, or [`NOT_FOUND`]; `n == 0` gives 0.
    pub fn find_clear_bits(&self, n: u32, hint: u32) -> u32 {
        self.find(n, false, hint)
    }
    /// `RtlFindSetBits`.
    pub fn find_set_bits(&self, n: u32, hint: u32) -> u32 {
        self.find(n, true, hint)
    }
    /// `RtlFindClearBitsAndSet`.
    pub fn find_clear_bits_and_set(&mut self, n: u32, hint: u32) -> u32 {
        let i = self.find_clear_bits(n, hint);
        if i != NOT_FOUND && n != 0 {
            self.set_bits(i, n);
        }
        i
    }
    /// `RtlFindSetBitsAndClear`.
    pub fn find_set_bits_and_clear(&mut self, n: u32, hint: u32) -> u32 {
        let i = self.find_set_bits(n, hint);
        if i != NOT_FOUND && n != 0 {
            self.clear_bits(i, n);
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn basics() {
        let mut buf = [0u32; 3];
        let mut b = Bitmap::new(&mut buf, 70).unwrap();
        assert!(b.set_bits(3, 40));
        assert!(b.are_bits_set(3, 40) && !b.are_bits_set(2, 2));
        assert!(b.are_bits_clear(43, 27));
        assert_eq!(b.number_of_set_bits(), 40);
        assert_eq!(b.number_of_clear_bits(), 30);
        assert!(!b.set_bits(60, 11), "past the end");
        assert!(!b.set_bits(u32::MAX, 2));
        assert_eq!(b.find_clear_bits(3, 0), 0);
        assert_eq!(b.find_clear_bits(4, 0), 43);
        assert_eq!(b.find_clear_bits(27, 50), 43, "wraps to the start");
        assert_eq!(b.find_clear_bits(28, 0), NOT_FOUND);
        assert_eq!(b.find_clear_bits_and_set(10, 0), 43);
        assert_eq!(b.find_set_bits_and_clear(5, 20), 20);
        assert!(b.are_bits_clear(20, 5));
        b.set_all();
        assert_eq!(b.number_of_set_bits(), 70);
        assert_eq!(buf[2] >> 6, 0, "bits past the size untouched");
        assert!(Bitmap::new(&mut [0u32; 1], 33).is_none());
    }

    proptest::proptest! {
        /// Against a Vec<bool> model.
        #[test]
        fn matches_a_model(size in 1u32..200, ops in proptest::collection::vec((0u8..4, 0u32..210, 0u32..40), 0..40)) {
            let mut buf = vec![0u32; size.div_ceil(32) as usize];
            let mut b = Bitmap::new(&mut buf, size).unwrap();
            let mut m: Vec<bool> = vec![false; size as usize];
            for (op, a, n) in ops {
                let fits = a as u64 + n as u64 <= size as u64;
                match op {
                    0 => { proptest::prop_assert_eq!(b.set_bits(a, n), fits); if fits { m[a as usize..(a + n) as usize].fill(true); } }
                    1 => { proptest::prop_assert_eq!(b.clear_bits(a, n), fits); if fits { m[a as usize..(a + n) as usize].fill(false); } }
                    _ => {
                        let got = b.find_clear_bits_and_set(n, a);
                        let hint = if a >= size { 0 } else { a };
                        let run_at = |i: u32| i + n <= size && m[i as usize..(i + n) as usize].iter().all(|x| !x);
                        let want = if n == 0 { 0 } else {
                            (hint..size).chain(0..hint).find(|&i| run_at(i)).unwrap_or(NOT_FOUND)
                        };
                        proptest::prop_assert_eq!(got, want);
                        if got != NOT_FOUND && n != 0 { m[got as usize..(got + n) as usize].fill(true); }
                    }
                }
                proptest::prop_assert_eq!(b.number_of_set_bits() as usize, m.iter().filter(|x| **x).count());
                for i in 0..size { proptest::prop_assert_eq!(b.test(i), m[i as usize]); }
            }
        }
    }
}
