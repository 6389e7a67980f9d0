//! Asynchronous command handling for one port, as storahci runs it from its
//! dispatch routine and its DPC: commands are issued into free command
//! slots (several in flight), further ones wait in a queue, and `service`
//! (run after the port's interrupt) completes the slots whose PxCI bit
//! cleared, starts queued commands, and on an error recovers the port
//! (engine restart, COMRESET if needed) and retries the failed command up
//! to [`MAX_RETRIES`] times (not for IDNF/ABRT), re-issuing the commands
//! the recovery cancelled.

use super::reg::*;
use super::*;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// One ATA command and its owner's tag.
pub struct Command<T> {
    /// The command FIS.
    pub fis: H2dFis,
    /// Data direction (host to device).
    pub write: bool,
    /// The data buffer's physical pieces.
    pub segments: Vec<Segment>,
    /// The owner's token (storahci: the IRP).
    pub tag: T,
    /// Failed attempts so far.
    pub failures: u32,
}

/// A finished command: its tag and the bytes moved (PRDBC) or the error.
pub type Completion<T> = (T, Result<u32, PortError>);

/// The port's slots and queue.
pub struct Engine<T> {
    slots: [Option<Command<T>>; layout::SLOTS as usize],
    queue: VecDeque<Command<T>>,
}

impl<T> Default for Engine<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Engine<T> {
    /// No commands.
    pub const fn new() -> Self {
        Engine {
            slots: [const { None }; layout::SLOTS as usize],
            queue: VecDeque::new(),
        }
    }

    /// Commands in command slots.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Commands waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queues `cmd` and issues what fits into free slots; commands the port
    /// refuses outright (bad segments) land in `done`.
    pub fn submit<H: Hba, M: PortMemory>(
        &mut self,
        port: &mut Port<H, M>,
        cmd: Command<T>,
        done: &mut Vec<Completion<T>>,
    ) {
        self.queue.push_back(cmd);
        self.start(port, done);
    }

    fn start<H: Hba, M: PortMemory>(
        &mut self,
        port: &mut Port<H, M>,
        done: &mut Vec<Completion<T>>,
    ) {
        while let Some(c) = self.queue.pop_front() {
            match port.issue(&c.fis, c.write, &c.segments) {
                Ok(slot) => self.slots[slot as usize] = Some(c),
                // No free slot: wait for a completion.
                Err(PortError::Timeout) => {
                    self.queue.push_front(c);
                    break;
                }
                Err(e) => done.push((c.tag, Err(e))),
            }
        }
    }

    /// After an interrupt (or a poll): completes finished slots, handles an
    /// error, and starts queued commands.
    pub fn service<H: Hba, M: PortMemory>(
        &mut self,
        port: &mut Port<H, M>,
        done: &mut Vec<Completion<T>>,
    ) {
        let base = super::reg::port(port.port);
        let is = port.hba.read32(base + PXIS);
        if is & IS_ERRORS != 0 {
            self.error(port, is, done);
        } else {
            for slot in 0..layout::SLOTS {
                if self.slots[slot as usize].is_none() {
                    continue;
                }
                match port.poll(slot) {
                    None => {}
                    Some(Ok(())) => {
                        if let Some(c) = self.slots[slot as usize].take() {
                            port.stats.completed += 1;
                            done.push((c.tag, Ok(port.transferred(slot))));
                        }
                    }
                    Some(Err(PortError::Device(is, _))) => {
                        // The error arrived meanwhile.
                        self.error(port, is, done);
                        break;
                    }
                    Some(Err(_)) => {}
                }
            }
        }
        self.start(port, done);
    }

    fn error<H: Hba, M: PortMemory>(
        &mut self,
        port: &mut Port<H, M>,
        is: u32,
        done: &mut Vec<Completion<T>>,
    ) {
        let base = super::reg::port(port.port);
        let tfd = port.hba.read32(base + PXTFD);
        let ci = port.hba.read32(base + PXCI);
        let ccs = (port.hba.read32(base + PXCMD) >> 8) & 0x1F;
        port.stats.errors += 1;
        // Slots that finished before the error completed normally.
        let mut unfinished: Vec<(u32, Command<T>)> = Vec::new();
        for slot in 0..layout::SLOTS {
            if let Some(c) = self.slots[slot as usize].take() {
                if ci & (1 << slot) == 0 {
                    port.stats.completed += 1;
                    done.push((c.tag, Ok(port.transferred(slot))));
                } else {
                    unfinished.push((slot, c));
                }
            }
        }
        // The command that failed: the one the engine was on (PxCMD.CCS),
        // else the first one still issued.
        let failed = unfinished
            .iter()
            .position(|(s, _)| *s == ccs)
            .or(if unfinished.is_empty() { None } else { Some(0) });
        let err = PortError::Device(is, tfd);
        if let Err(e) = port.recover() {
            for (_, c) in unfinished {
                done.push((c.tag, Err(e)));
            }
            return;
        }
        let fatal = (tfd >> 8) & (ATA_ERR_IDNF | ATA_ERR_ABRT) != 0;
        // Re-queue in slot order, ahead of waiting commands.
        for (i, (_, mut c)) in unfinished.into_iter().enumerate().rev() {
            if Some(i) == failed {
                c.failures += 1;
                if fatal || c.failures > MAX_RETRIES {
                    done.push((c.tag, Err(err)));
                    continue;
                }
            }
            self.queue.push_front(c);
        }
    }

    /// Resets the port on request (storport's `HwResetBus` /
    /// `SRB_FUNCTION_RESET_DEVICE`): commands whose slot already finished
    /// complete normally; the engine is stopped, the link gets a COMRESET
    /// (AHCI 10.4.2), the errors are cleared and the engine started again;
    /// the commands that were in flight are issued again (a reset is not
    /// counted as their failure). If the device does not come back, every
    /// command fails with the error and so does the reset.
    pub fn reset<H: Hba, M: PortMemory>(
        &mut self,
        port: &mut Port<H, M>,
        done: &mut Vec<Completion<T>>,
    ) -> Result<(), PortError> {
        let base = super::reg::port(port.port);
        let ci = port.hba.read32(base + PXCI);
        let mut unfinished: Vec<Command<T>> = Vec::new();
        for slot in 0..layout::SLOTS {
            if let Some(c) = self.slots[slot as usize].take() {
                if ci & (1 << slot) == 0 && port.hba.read32(base + PXIS) & IS_ERRORS == 0 {
                    port.stats.completed += 1;
                    done.push((c.tag, Ok(port.transferred(slot))));
                } else {
                    unfinished.push(c);
                }
            }
        }
        let _ = port.stop();
        let r = port.comreset().and_then(|()| {
            port.clear_errors();
            port.start()
        });
        for c in unfinished.into_iter().rev() {
            self.queue.push_front(c);
        }
        if let Err(e) = r {
            self.fail_all(port, e, done);
            return Err(e);
        }
        self.start(port, done);
        Ok(())
    }

    /// Fails every command (in flight and queued) with `e`, e.g. when the
    /// device is gone; the port's engine is stopped first.
    pub fn fail_all<H: Hba, M: PortMemory>(
        &mut self,
        port: &mut Port<H, M>,
        e: PortError,
        done: &mut Vec<Completion<T>>,
    ) {
        let _ = port.stop();
        for s in self.slots.iter_mut() {
            if let Some(c) = s.take() {
                done.push((c.tag, Err(e)));
            }
        }
        while let Some(c) = self.queue.pop_front() {
            done.push((c.tag, Err(e)));
        }
    }
}
