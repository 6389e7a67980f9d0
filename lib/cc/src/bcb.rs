//! Buffer control blocks: the mapping and pinning interface (`CcMapData`,
//! `CcPinRead`, `CcPinMappedData`, `CcPreparePinWrite`, `CcUnpinData`;
//! *Windows Internals* Part 2, ch. 11, "Cache manager interfaces"). A file
//! system maps a byte range of a cached stream and gets the view's address
//! and an opaque BCB; pinning (to modify the data) marks the BCB pinned;
//! every map or pin is ended by one unpin.
//!
//! This is the bookkeeping: which BCBs are live, over which stream range,
//! mapped or pinned, and the rules the documentation gives (a range must
//! lie in one 256 KiB view; `PIN_IF_BCB` pins only where a live BCB already
//! covers the range). The kernel holds the view references and the
//! `PUBLIC_BCB` blocks drivers see.

use crate::manager::MapId;
use crate::vacb::VACB_MAPPING_GRANULARITY;
use alloc::vec::Vec;

/// `PIN_WAIT` (= `MAP_WAIT`).
pub const PIN_WAIT: u32 = 1;
/// `PIN_EXCLUSIVE`.
pub const PIN_EXCLUSIVE: u32 = 2;
/// `PIN_NO_READ`.
pub const PIN_NO_READ: u32 = 4;
/// `PIN_IF_BCB`.
pub const PIN_IF_BCB: u32 = 8;
/// `PIN_CALLER_TRACKS_DIRTY_DATA`.
pub const PIN_CALLER_TRACKS_DIRTY_DATA: u32 = 32;
/// `MAP_WAIT`.
pub const MAP_WAIT: u32 = 1;
/// `MAP_NO_READ`.
pub const MAP_NO_READ: u32 = 0x10;

/// A live BCB's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BcbId(pub u32);

/// Why a map or pin request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BcbError {
    /// Zero length, or a range that crosses a 256 KiB view boundary (the
    /// documented limit of `CcMapData` and the pin routines).
    BadRange,
    /// `PIN_IF_BCB` and no live BCB covers the range.
    NoBcb,
    /// The BCB number is not live.
    Unknown,
}

/// One live BCB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bcb {
    pub map: MapId,
    pub offset: u64,
    pub length: u64,
    /// Pinned (may be modified) rather than only mapped.
    pub pinned: bool,
    /// The caller tracks the dirty data (`PIN_CALLER_TRACKS_DIRTY_DATA`).
    pub caller_tracks_dirty: bool,
}

/// Whether `[offset, offset + length)` is non-empty and lies in one view.
pub fn in_one_view(offset: u64, length: u64) -> bool {
    length != 0
        && offset.checked_add(length - 1).is_some_and(|last| {
            offset / VACB_MAPPING_GRANULARITY == last / VACB_MAPPING_GRANULARITY
        })
}

/// The live BCBs of every stream.
#[derive(Debug, Default)]
pub struct Bcbs {
    live: Vec<(BcbId, Bcb)>,
    next: u32,
}

impl Bcbs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a map (`pin` false) or pin request of `flags` over a range
    /// of stream `map`: the range must lie in one view, and with
    /// `PIN_IF_BCB` a live BCB must already cover it.
    pub fn check(
        &self,
        map: MapId,
        offset: u64,
        length: u64,
        pin: bool,
        flags: u32,
    ) -> Result<(), BcbError> {
        if !in_one_view(offset, length) {
            return Err(BcbError::BadRange);
        }
        if pin
            && flags & PIN_IF_BCB != 0
            && flags & PIN_CALLER_TRACKS_DIRTY_DATA == 0
            && self.covering(map, offset, length).is_none()
        {
            return Err(BcbError::NoBcb);
        }
        Ok(())
    }

    /// Records a new BCB (after [`Bcbs::check`]).
    pub fn insert(&mut self, bcb: Bcb) -> BcbId {
        self.next = self.next.wrapping_add(1);
        let id = BcbId(self.next);
        self.live.push((id, bcb));
        id
    }

    pub fn get(&self, id: BcbId) -> Option<&Bcb> {
        self.live.iter().find(|(i, _)| *i == id).map(|(_, b)| b)
    }

    /// `CcPinMappedData`: a mapped BCB becomes pinned.
    pub fn pin(&mut self, id: BcbId) -> Result<Bcb, BcbError> {
        let b = self
            .live
            .iter_mut()
            .find(|(i, _)| *i == id)
            .map(|(_, b)| b)
            .ok_or(BcbError::Unknown)?;
        b.pinned = true;
        Ok(*b)
    }

    /// `CcUnpinData`: ends the BCB.
    pub fn remove(&mut self, id: BcbId) -> Result<Bcb, BcbError> {
        let i = self
            .live
            .iter()
            .position(|(i, _)| *i == id)
            .ok_or(BcbError::Unknown)?;
        Ok(self.live.swap_remove(i).1)
    }

    /// A live BCB of `map` whose range contains `[offset, offset + length)`.
    pub fn covering(&self, map: MapId, offset: u64, length: u64) -> Option<BcbId> {
        self.live
            .iter()
            .find(|(_, b)| {
                b.map == map && b.offset <= offset && offset + length <= b.offset + b.length
            })
            .map(|(i, _)| *i)
    }

    /// Live BCBs of stream `map` (a stream is not torn down under them).
    pub fn count_of(&self, map: MapId) -> usize {
        self.live.iter().filter(|(_, b)| b.map == map).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: MapId = MapId(1);

    fn bcb(offset: u64, length: u64) -> Bcb {
        Bcb {
            map: M,
            offset,
            length,
            pinned: false,
            caller_tracks_dirty: false,
        }
    }

    #[test]
    fn a_range_must_lie_in_one_view() {
        let v = VACB_MAPPING_GRANULARITY;
        assert!(in_one_view(0, v));
        assert!(in_one_view(v - 1, 1));
        assert!(!in_one_view(v - 1, 2));
        assert!(!in_one_view(0, v + 1));
        assert!(!in_one_view(5, 0));
        assert!(!in_one_view(u64::MAX, 2));
        let b = Bcbs::new();
        assert_eq!(
            b.check(M, v - 10, 20, false, MAP_WAIT),
            Err(BcbError::BadRange)
        );
        assert_eq!(b.check(M, v, 20, true, PIN_WAIT), Ok(()));
    }

    #[test]
    fn pin_if_bcb_needs_a_covering_bcb() {
        let mut b = Bcbs::new();
        assert_eq!(
            b.check(M, 100, 10, true, PIN_WAIT | PIN_IF_BCB),
            Err(BcbError::NoBcb)
        );
        let id = b.insert(bcb(0, 4096));
        assert_eq!(b.check(M, 100, 10, true, PIN_WAIT | PIN_IF_BCB), Ok(()));
        assert_eq!(
            b.check(M, 4090, 10, true, PIN_WAIT | PIN_IF_BCB),
            Err(BcbError::NoBcb)
        );
        assert_eq!(
            b.check(MapId(2), 100, 10, true, PIN_WAIT | PIN_IF_BCB),
            Err(BcbError::NoBcb)
        );
        // A map request ignores PIN_IF_BCB's rule.
        assert_eq!(b.check(M, 8192, 10, false, PIN_IF_BCB), Ok(()));
        assert_eq!(b.covering(M, 0, 4096), Some(id));
    }

    #[test]
    fn map_pin_unpin_lifecycle() {
        let mut b = Bcbs::new();
        let a = b.insert(bcb(0, 512));
        let c = b.insert(bcb(512, 512));
        assert_ne!(a, c);
        assert_eq!(b.count_of(M), 2);
        assert!(!b.get(a).unwrap().pinned);
        assert!(b.pin(a).unwrap().pinned);
        assert!(b.get(a).unwrap().pinned);
        assert_eq!(b.remove(a).map(|x| x.offset), Ok(0));
        assert_eq!(b.remove(a), Err(BcbError::Unknown));
        assert_eq!(b.pin(a), Err(BcbError::Unknown));
        assert_eq!(b.count_of(M), 1);
        assert!(b.remove(c).is_ok());
        assert_eq!(b.count_of(M), 0);
    }
}
