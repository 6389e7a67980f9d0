//! Device queues (`KDEVICE_QUEUE`, *Windows Internals* 7th ed., Part 1,
//! ch. 6, "Driver structure: StartIo"): the busy flag and the ordered list
//! behind `IoStartPacket`/`IoStartNextPacket(ByKey)`. The queue is *busy*
//! while its device works on a request; inserting into an idle queue does
//! not queue the entry but marks the queue busy and returns `false` (the
//! caller starts the request at once); removing from an empty queue marks
//! it idle.
//!
//! These are the bodies of `KeInsertDeviceQueue`,
//! `KeInsertByKeyDeviceQueue`, `KeRemoveDeviceQueue`,
//! `KeRemoveByKeyDeviceQueue` and `KeRemoveEntryDeviceQueue`; the caller
//! (the kernel) holds the queue's spin lock at DISPATCH_LEVEL.

use wdk::*;

/// `IO_TYPE_DEVICE_QUEUE`.
pub const IO_TYPE_DEVICE_QUEUE: i16 = 0x14;

/// `KeInitializeDeviceQueue`: idle and empty.
///
/// # Safety
/// `q` must be writable.
pub unsafe fn initialize(q: *mut KDEVICE_QUEUE) {
    // SAFETY: the caller guarantees `q`.
    unsafe {
        (*q).Type = IO_TYPE_DEVICE_QUEUE;
        (*q).Size = core::mem::size_of::<KDEVICE_QUEUE>() as i16;
        InitializeListHead(&mut (*q).DeviceListHead);
        (*q).Lock = 0;
        (*q).Busy = 0;
    }
}

/// Whether the queue is busy.
///
/// # Safety
/// `q` must be an initialised queue.
pub unsafe fn busy(q: *const KDEVICE_QUEUE) -> bool {
    // SAFETY: the caller guarantees `q`.
    unsafe { (*q).Busy as u8 != 0 }
}

/// The entry owning a list link (the link is the entry's first field).
fn entry_of(link: *mut LIST_ENTRY) -> *mut KDEVICE_QUEUE_ENTRY {
    link.cast()
}

/// `KeInsertDeviceQueue`: an idle queue becomes busy and the entry is not
/// queued (`false`); a busy queue gets the entry at its tail (`true`).
///
/// # Safety
/// `q` initialised, `e` writable and on no queue; the queue's lock held.
pub unsafe fn insert(q: *mut KDEVICE_QUEUE, e: *mut KDEVICE_QUEUE_ENTRY) -> bool {
    // SAFETY: the caller guarantees both and holds the lock.
    unsafe {
        let inserted = busy(q);
        if inserted {
            InsertTailList(&mut (*q).DeviceListHead, &mut (*e).DeviceListEntry);
        } else {
            (*q).Busy = 1;
        }
        (*e).Inserted = inserted as u8;
        inserted
    }
}

/// `KeInsertByKeyDeviceQueue`: as [`insert`], but a busy queue keeps its
/// entries in ascending `SortKey` order (an entry goes after those with an
/// equal key).
///
/// # Safety
/// As [`insert`].
pub unsafe fn insert_by_key(q: *mut KDEVICE_QUEUE, e: *mut KDEVICE_QUEUE_ENTRY, key: u32) -> bool {
    // SAFETY: the caller guarantees both and holds the lock.
    unsafe {
        (*e).SortKey = key;
        let inserted = busy(q);
        if inserted {
            let head: *mut LIST_ENTRY = &mut (*q).DeviceListHead;
            let mut next = (*head).Flink;
            while next != head && (*entry_of(next)).SortKey <= key {
                next = (*next).Flink;
            }
            // Before `next`: at the tail of the list that ends before it.
            InsertTailList(next, &mut (*e).DeviceListEntry);
        } else {
            (*q).Busy = 1;
        }
        (*e).Inserted = inserted as u8;
        inserted
    }
}

/// `KeRemoveDeviceQueue`: the first entry, or null (and the queue idle)
/// when it is empty.
///
/// # Safety
/// `q` initialised; the queue's lock held.
pub unsafe fn remove(q: *mut KDEVICE_QUEUE) -> *mut KDEVICE_QUEUE_ENTRY {
    // SAFETY: the caller guarantees `q` and holds the lock.
    unsafe {
        let head: *mut LIST_ENTRY = &mut (*q).DeviceListHead;
        if IsListEmpty(head) {
            (*q).Busy = 0;
            return core::ptr::null_mut();
        }
        let e = entry_of(RemoveHeadList(head));
        (*e).Inserted = 0;
        e
    }
}

/// `KeRemoveByKeyDeviceQueue`: the first entry whose `SortKey` is at least
/// `key`, else (every key is smaller) the first entry; null (and the queue
/// idle) when it is empty.
///
/// # Safety
/// As [`remove`].
pub unsafe fn remove_by_key(q: *mut KDEVICE_QUEUE, key: u32) -> *mut KDEVICE_QUEUE_ENTRY {
    // SAFETY: the caller guarantees `q` and holds the lock.
    unsafe {
        let head: *mut LIST_ENTRY = &mut (*q).DeviceListHead;
        if IsListEmpty(head) {
            (*q).Busy = 0;
            return core::ptr::null_mut();
        }
        let mut next = (*head).Flink;
        while next != head && (*entry_of(next)).SortKey < key {
            next = (*next).Flink;
        }
        if next == head {
            next = (*head).Flink;
        }
        RemoveEntryList(next);
        let e = entry_of(next);
        (*e).Inserted = 0;
        e
    }
}

/// `KeRemoveEntryDeviceQueue`: takes `e` out if it is queued (`true`);
/// `false` if it was not (already removed, or started at once).
///
/// # Safety
/// `q` initialised, `e` an entry last inserted into `q`; the lock held.
pub unsafe fn remove_entry(_q: *mut KDEVICE_QUEUE, e: *mut KDEVICE_QUEUE_ENTRY) -> bool {
    // SAFETY: the caller guarantees both and holds the lock.
    unsafe {
        if (*e).Inserted == 0 {
            return false;
        }
        (*e).Inserted = 0;
        RemoveEntryList(&mut (*e).DeviceListEntry);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    fn queue() -> Box<KDEVICE_QUEUE> {
        let mut q = Box::new(KDEVICE_QUEUE {
            Type: 0,
            Size: 0,
            DeviceListHead: LIST_ENTRY {
                Flink: core::ptr::null_mut(),
                Blink: core::ptr::null_mut(),
            },
            Lock: 0,
            Busy: 0,
        });
        // SAFETY: a fresh queue.
        unsafe { initialize(&mut *q) };
        q
    }

    fn entries(n: usize) -> Vec<KDEVICE_QUEUE_ENTRY> {
        (0..n)
            .map(|_| KDEVICE_QUEUE_ENTRY {
                DeviceListEntry: LIST_ENTRY {
                    Flink: core::ptr::null_mut(),
                    Blink: core::ptr::null_mut(),
                },
                SortKey: 0,
                Inserted: 0,
            })
            .collect()
    }

    fn ptr(e: &mut KDEVICE_QUEUE_ENTRY) -> *mut KDEVICE_QUEUE_ENTRY {
        e
    }

    #[test]
    fn idle_insert_starts_busy_then_fifo_then_idle() {
        let mut q = queue();
        let mut e = entries(3);
        // SAFETY: the entries and the queue outlive the test.
        unsafe {
            assert_eq!(q.Type, IO_TYPE_DEVICE_QUEUE);
            assert_eq!(q.Size, 0x28);
            assert!(!insert(&mut *q, ptr(&mut e[0])), "idle: not queued");
            assert!(busy(&*q));
            assert_eq!(e[0].Inserted, 0);
            assert!(insert(&mut *q, ptr(&mut e[1])));
            assert!(insert(&mut *q, ptr(&mut e[2])));
            assert_eq!(e[1].Inserted, 1);
            assert_eq!(remove(&mut *q), ptr(&mut e[1]));
            assert_eq!(e[1].Inserted, 0);
            assert_eq!(remove(&mut *q), ptr(&mut e[2]));
            assert!(busy(&*q), "busy until a remove finds it empty");
            assert!(remove(&mut *q).is_null());
            assert!(!busy(&*q));
            // Idle again: the next insert starts at once.
            assert!(!insert(&mut *q, ptr(&mut e[0])));
        }
    }

    #[test]
    fn by_key_order_and_wraparound() {
        let mut q = queue();
        let mut e = entries(6);
        // SAFETY: as above.
        unsafe {
            assert!(!insert_by_key(&mut *q, ptr(&mut e[0]), 10));
            for (i, k) in [(1, 30), (2, 20), (3, 40), (4, 20), (5, 5)] {
                assert!(insert_by_key(&mut *q, ptr(&mut e[i]), k));
            }
            // Queue order: 5, 20 (e2), 20 (e4), 30, 40.
            assert_eq!(remove_by_key(&mut *q, 25), ptr(&mut e[1]));
            assert_eq!(
                remove_by_key(&mut *q, 20),
                ptr(&mut e[2]),
                "equal keys FIFO"
            );
            assert_eq!(
                remove_by_key(&mut *q, 50),
                ptr(&mut e[5]),
                "none >= 50: the first"
            );
            assert_eq!(remove(&mut *q), ptr(&mut e[4]));
            assert_eq!(remove_by_key(&mut *q, 0), ptr(&mut e[3]));
            assert!(remove_by_key(&mut *q, 0).is_null());
            assert!(!busy(&*q));
        }
    }

    #[test]
    fn remove_entry_only_when_queued() {
        let mut q = queue();
        let mut e = entries(3);
        // SAFETY: as above.
        unsafe {
            assert!(!insert(&mut *q, ptr(&mut e[0])));
            assert!(
                !remove_entry(&mut *q, ptr(&mut e[0])),
                "started, not queued"
            );
            assert!(insert(&mut *q, ptr(&mut e[1])));
            assert!(insert(&mut *q, ptr(&mut e[2])));
            assert!(remove_entry(&mut *q, ptr(&mut e[1])));
            assert!(!remove_entry(&mut *q, ptr(&mut e[1])), "twice");
            assert_eq!(remove(&mut *q), ptr(&mut e[2]));
            assert!(remove(&mut *q).is_null());
        }
    }
}
