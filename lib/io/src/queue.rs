//! The queue of an I/O completion object (`KQUEUE` entries): completion
//! packets in FIFO order, each with the key of the file (or of
//! `NtSetIoCompletion`), the caller's context, status and information.

use alloc::collections::VecDeque;
use nt::NtStatus;

/// One completion packet (`FILE_IO_COMPLETION_INFORMATION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletionPacket {
    pub key: usize,
    pub apc_context: usize,
    pub status: NtStatus,
    pub information: usize,
}

/// The packets of one completion object, oldest first.
#[derive(Debug, Default)]
pub struct CompletionQueue {
    packets: VecDeque<CompletionPacket>,
    /// Packets ever queued (for `!object`-style reports and tests).
    pub posted: u64,
}

impl CompletionQueue {
    pub const fn new() -> Self {
        CompletionQueue {
            packets: VecDeque::new(),
            posted: 0,
        }
    }
    /// Makes room for one more packet (fallible: the pool may be exhausted).
    pub fn reserve(&mut self) -> Result<(), alloc::collections::TryReserveError> {
        self.packets.try_reserve(1)
    }
    /// Queues a packet (after `reserve`).
    pub fn post(&mut self, p: CompletionPacket) {
        self.packets.push_back(p);
        self.posted += 1;
    }
    /// The oldest packet.
    pub fn remove(&mut self) -> Option<CompletionPacket> {
        self.packets.pop_front()
    }
    /// Packets waiting.
    pub fn depth(&self) -> usize {
        self.packets.len()
    }
}
