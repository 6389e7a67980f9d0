//! Private cache maps and intelligent read-ahead.
//!
//! *Windows Internals* 7th ed., Part 2, ch. 11, "Intelligent read-ahead":
//! each handle's private cache map (`PRIVATE_CACHE_MAP`) remembers the last
//! two reads (`FileOffset1`/`BeyondLastByte1`, `FileOffset2`/
//! `BeyondLastByte2`). From them the cache manager predicts the next read:
//! a read that starts where the previous one ended is sequential, and reads
//! a constant stride apart (forward or backward) are a pattern too. When a
//! prediction exists it reads the predicted data into the cache
//! asynchronously (a system worker thread) before the caller asks. Sequential
//! read-ahead runs a read-ahead granularity ahead of the reader (64 KiB by
//! default, `CcSetReadAheadGranularity`); a file opened with
//! `FILE_FLAG_SEQUENTIAL_SCAN` (`FO_SEQUENTIAL_ONLY`) reads twice as far
//! ahead.

use crate::PAGE_SIZE;

/// Default read-ahead granularity (64 KiB).
pub const DEFAULT_READ_AHEAD_GRANULARITY: u64 = 0x1_0000;

/// A read to issue ahead of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadAhead {
    /// Page-aligned file offset.
    pub offset: u64,
    /// Bytes (whole pages, clipped to the file size rounded up to a page).
    pub length: u64,
}

/// How the last reads relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// No pattern (random access, or too little history).
    None,
    /// This read starts where the previous one ended.
    Sequential,
    /// The last three reads are `stride` bytes apart (not sequential).
    Strided(i64),
}

/// A handle's private cache map (`PRIVATE_CACHE_MAP`).
#[derive(Clone, Debug)]
pub struct PrivateCacheMap {
    /// The read before the last one (`FileOffset1`, `BeyondLastByte1`).
    pub file_offset1: u64,
    /// End of that read.
    pub beyond_last_byte1: u64,
    /// The last read (`FileOffset2`, `BeyondLastByte2`).
    pub file_offset2: u64,
    /// End of that read.
    pub beyond_last_byte2: u64,
    reads: u8,
    /// End of the data already read ahead for the sequential stream
    /// (`ReadAheadOffset[1] + ReadAheadLength[1]` in NT's terms).
    pub read_ahead_end: u64,
    /// Read-ahead granularity in bytes (a power of two, at least a page;
    /// `ReadAheadMask + 1`).
    pub granularity: u64,
    /// `FO_SEQUENTIAL_ONLY`: read twice as far ahead.
    pub sequential_only: bool,
    /// `FO_RANDOM_ACCESS` / `CcSetDisableReadAhead`: no read-ahead.
    pub disabled: bool,
    /// Read-aheads scheduled through this handle (`!filecache` counts).
    pub read_aheads: u64,
}

impl Default for PrivateCacheMap {
    fn default() -> Self {
        Self::new()
    }
}

fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

fn page_up(x: u64) -> u64 {
    x.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

impl PrivateCacheMap {
    /// A fresh map: no history, the default granularity.
    pub const fn new() -> Self {
        PrivateCacheMap {
            file_offset1: 0,
            beyond_last_byte1: 0,
            file_offset2: 0,
            beyond_last_byte2: 0,
            reads: 0,
            read_ahead_end: 0,
            granularity: DEFAULT_READ_AHEAD_GRANULARITY,
            sequential_only: false,
            disabled: false,
            read_aheads: 0,
        }
    }

    /// `CcSetReadAheadGranularity`: rounded up to a power of two of at least
    /// a page.
    pub fn set_granularity(&mut self, g: u64) {
        self.granularity = g.max(PAGE_SIZE).next_power_of_two();
    }

    /// How the read `[offset, offset + length)` relates to the history.
    pub fn pattern(&self, offset: u64) -> Pattern {
        if self.reads >= 1 && offset == self.beyond_last_byte2 {
            return Pattern::Sequential;
        }
        if self.reads >= 2 {
            let s1 = self.file_offset2 as i64 - self.file_offset1 as i64;
            let s2 = offset as i64 - self.file_offset2 as i64;
            if s1 == s2 && s1 != 0 {
                return Pattern::Strided(s1);
            }
        }
        Pattern::None
    }

    /// Records a cached read of `[offset, offset + length)` of a file of
    /// `file_size` bytes (`CcCopyRead` after the copy) and returns the
    /// read-ahead to schedule, if any (`CcScheduleReadAhead`).
    pub fn record_read(&mut self, offset: u64, length: u64, file_size: u64) -> Option<ReadAhead> {
        let end = offset.saturating_add(length);
        let pattern = if self.sequential_only {
            Pattern::Sequential
        } else {
            self.pattern(offset)
        };
        self.file_offset1 = self.file_offset2;
        self.beyond_last_byte1 = self.beyond_last_byte2;
        self.file_offset2 = offset;
        self.beyond_last_byte2 = end;
        self.reads = self.reads.saturating_add(1).min(2);
        if self.disabled || length == 0 {
            return None;
        }
        let limit = page_up(file_size);
        let ra = match pattern {
            Pattern::None => {
                self.read_ahead_end = 0;
                None
            }
            Pattern::Sequential => {
                let depth = if self.sequential_only {
                    2 * self.granularity
                } else {
                    self.granularity
                };
                // Keep read-ahead at least half a depth in front of the
                // reader; when it falls behind that, read the next `depth`
                // bytes from the end of what was read ahead (or from the
                // reader's position, whichever is further).
                if self.read_ahead_end >= end.saturating_add(depth / 2) {
                    None
                } else {
                    let start = page_up(end).max(self.read_ahead_end);
                    let stop = start.saturating_add(depth).min(limit);
                    (start < stop).then(|| ReadAhead {
                        offset: start,
                        length: stop - start,
                    })
                }
            }
            Pattern::Strided(stride) => {
                let next = offset as i64 + stride;
                if next < 0 {
                    None
                } else {
                    let start = page_down(next as u64);
                    let stop = page_up(next as u64 + length).min(limit);
                    (start < stop).then(|| ReadAhead {
                        offset: start,
                        length: stop - start,
                    })
                }
            }
        };
        if let (Pattern::Sequential, Some(r)) = (pattern, ra) {
            self.read_ahead_end = r.offset + r.length;
        }
        if ra.is_some() {
            self.read_aheads += 1;
        }
        ra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn first_read_predicts_nothing() {
        let mut p = PrivateCacheMap::new();
        assert_eq!(p.record_read(0, 4096, MB), None);
    }

    #[test]
    fn sequential_reads_stay_a_granularity_ahead() {
        let mut p = PrivateCacheMap::new();
        p.record_read(0, 4096, MB);
        let r = p.record_read(4096, 4096, MB).unwrap();
        assert_eq!(
            r,
            ReadAhead {
                offset: 8192,
                length: DEFAULT_READ_AHEAD_GRANULARITY
            }
        );
        // Reads well inside what was read ahead schedule nothing more.
        assert_eq!(p.record_read(8192, 4096, MB), None);
        // Every byte up to the end is read ahead exactly once, in order.
        let mut covered = r.offset + r.length;
        let mut off = 12288;
        while off < MB {
            if let Some(r) = p.record_read(off, 4096, MB) {
                assert_eq!(r.offset, covered, "gap or overlap at {off:#x}");
                covered = r.offset + r.length;
            }
            assert!(
                covered >= (off + 4096).min(MB),
                "reader overtook read-ahead"
            );
            off += 4096;
        }
        assert_eq!(covered, MB);
    }

    #[test]
    fn read_ahead_clipped_at_end_of_file() {
        let mut p = PrivateCacheMap::new();
        p.record_read(0, 100, 10_000);
        let r = p.record_read(100, 100, 10_000).unwrap();
        assert_eq!(
            r,
            ReadAhead {
                offset: 4096,
                length: 8192
            }
        );
        let mut q = PrivateCacheMap::new();
        q.record_read(0, 8192, 8192);
        assert_eq!(q.record_read(8192, 100, 8192), None);
    }

    #[test]
    fn random_reads_do_not_read_ahead() {
        let mut p = PrivateCacheMap::new();
        for off in [5 * 4096u64, 90 * 4096, 17 * 4096, 200 * 4096] {
            assert_eq!(p.record_read(off, 4096, MB), None);
        }
    }

    #[test]
    fn strided_reads_predict_the_next_stride() {
        let mut p = PrivateCacheMap::new();
        p.record_read(0, 4096, MB);
        assert_eq!(p.record_read(64 * 1024, 4096, MB), None);
        assert_eq!(
            p.record_read(128 * 1024, 4096, MB),
            Some(ReadAhead {
                offset: 192 * 1024,
                length: 4096
            })
        );
        // Backward strides too.
        let mut b = PrivateCacheMap::new();
        b.record_read(512 * 1024, 4096, MB);
        b.record_read(448 * 1024, 4096, MB);
        assert_eq!(
            b.record_read(384 * 1024, 4096, MB),
            Some(ReadAhead {
                offset: 320 * 1024,
                length: 4096
            })
        );
    }

    #[test]
    fn sequential_only_reads_twice_as_far_and_from_the_first_read() {
        let mut p = PrivateCacheMap::new();
        p.sequential_only = true;
        let r = p.record_read(0, 4096, MB).unwrap();
        assert_eq!(
            r.length + r.offset,
            4096 + 2 * DEFAULT_READ_AHEAD_GRANULARITY
        );
        let mut d = PrivateCacheMap::new();
        d.disabled = true;
        d.record_read(0, 4096, MB);
        assert_eq!(d.record_read(4096, 4096, MB), None);
    }

    #[test]
    fn granularity_is_a_power_of_two() {
        let mut p = PrivateCacheMap::new();
        p.set_granularity(100_000);
        assert_eq!(p.granularity, 131_072);
        p.set_granularity(1);
        assert_eq!(p.granularity, PAGE_SIZE);
    }
}
