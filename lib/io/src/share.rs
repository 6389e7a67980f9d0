//! Share access (`IoCheckShareAccess` & co.): a file's `SHARE_ACCESS`
//! counts how many opens read, write and delete and how many of them let
//! others do so; a new open conflicts when it wants an access some open
//! does not share, or does not share an access some open has.

use nt::status::*;
use nt::NtStatus;
use wdk::*;

/// The access bits of one open as its file object records them
/// (`ReadAccess`, `WriteAccess`, `DeleteAccess`, `SharedRead`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenAccess {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
    pub shared_read: bool,
    pub shared_write: bool,
    pub shared_delete: bool,
}

impl OpenAccess {
    /// What an open asking `desired` access and sharing `share`
    /// (`FILE_SHARE_*`) takes part in: reading is `FILE_READ_DATA` or
    /// `FILE_EXECUTE`, writing `FILE_WRITE_DATA` or `FILE_APPEND_DATA`,
    /// deleting `DELETE`.
    pub fn new(desired: u32, share: u32) -> OpenAccess {
        OpenAccess {
            read: desired & (FILE_EXECUTE | FILE_READ_DATA) != 0,
            write: desired & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0,
            delete: desired & DELETE != 0,
            shared_read: share & FILE_SHARE_READ != 0,
            shared_write: share & FILE_SHARE_WRITE != 0,
            shared_delete: share & FILE_SHARE_DELETE != 0,
        }
    }

    /// Whether the open takes part in share access at all (opens for
    /// attributes or synchronisation only do not).
    pub fn counts(&self) -> bool {
        self.read || self.write || self.delete
    }
}

/// `IoCheckShareAccess`: STATUS_SHARING_VIOLATION if the open conflicts
/// with the opens counted in `sa`; otherwise, with `update`, the open is
/// counted.
pub fn check_share_access(open: &OpenAccess, sa: &mut SHARE_ACCESS, update: bool) -> NtStatus {
    if !open.counts() {
        return STATUS_SUCCESS;
    }
    let oc = sa.OpenCount;
    if (open.read && sa.SharedRead < oc)
        || (open.write && sa.SharedWrite < oc)
        || (open.delete && sa.SharedDelete < oc)
        || (sa.Readers != 0 && !open.shared_read)
        || (sa.Writers != 0 && !open.shared_write)
        || (sa.Deleters != 0 && !open.shared_delete)
    {
        return STATUS_SHARING_VIOLATION;
    }
    if update {
        add(open, sa);
    }
    STATUS_SUCCESS
}

fn add(open: &OpenAccess, sa: &mut SHARE_ACCESS) {
    sa.OpenCount += 1;
    sa.Readers += open.read as u32;
    sa.Writers += open.write as u32;
    sa.Deleters += open.delete as u32;
    sa.SharedRead += open.shared_read as u32;
    sa.SharedWrite += open.shared_write as u32;
    sa.SharedDelete += open.shared_delete as u32;
}

/// `IoSetShareAccess`: the first open of a file sets the counts.
pub fn set_share_access(open: &OpenAccess, sa: &mut SHARE_ACCESS) {
    *sa = SHARE_ACCESS::default();
    if open.counts() {
        add(open, sa);
    }
}

/// `IoRemoveShareAccess`: the open goes away (its file object's bits say
/// what it counted).
pub fn remove_share_access(open: &OpenAccess, sa: &mut SHARE_ACCESS) {
    if !open.counts() || sa.OpenCount == 0 {
        return;
    }
    sa.OpenCount -= 1;
    sa.Readers -= open.read as u32;
    sa.Writers -= open.write as u32;
    sa.Deleters -= open.delete as u32;
    sa.SharedRead -= open.shared_read as u32;
    sa.SharedWrite -= open.shared_write as u32;
    sa.SharedDelete -= open.shared_delete as u32;
}
