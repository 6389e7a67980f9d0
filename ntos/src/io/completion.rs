//! I/O completion objects (`NtCreateIoCompletion`, `NtSetIoCompletion`,
//! `NtRemoveIoCompletion`, `NtRemoveIoCompletionEx`): a queue of
//! completion packets (the `io` crate's `CompletionQueue`) and a kernel
//! queue (`ke/queue.rs`, NT's `KQUEUE`) that hands them to removers under
//! the port's concurrency value: a waiter is released only while fewer
//! threads associated with the port run than the value allows; an
//! associated thread that blocks on anything else lets another waiter go.
//! Files associated with a port (`FileCompletionInformation`) queue a
//! packet when a request of theirs completes.

use super::*;
use crate::ob::handle::{ob_insert_object_handle, ob_reference_object_by_handle};
use crate::ob::object::Mode;
use ::io::queue::{CompletionPacket, CompletionQueue};

/// `IO_COMPLETION_MODIFY_STATE`, `IO_COMPLETION_ALL_ACCESS`.
pub const IO_COMPLETION_MODIFY_STATE: u32 = 0x0002;
pub const IO_COMPLETION_ALL_ACCESS: u32 = 0x001F_0003;

/// The body of an I/O completion object.
pub struct IoCompletion {
    queue: SpinLocked<CompletionQueue, { crate::ke::DISPATCH_LEVEL }>,
    /// The kernel queue (gate) that hands the packets out.
    kqueue: u32,
    pub concurrency: u32,
}

/// `NtCreateIoCompletion`: returns the handle.
pub fn nt_create_io_completion(
    desired: u32,
    name: Option<&str>,
    attributes: u32,
    concurrency: u32,
    mode: Mode,
) -> Result<u64, NtStatus> {
    let concurrency = if concurrency == 0 {
        crate::ke::processor_count()
    } else {
        concurrency
    };
    let kq = crate::ke::queue::ke_initialize_queue(concurrency)?;
    let body = match allocate_body(
        IoKind::Completion,
        core::mem::size_of::<IoCompletion>(),
        TAG_COMPLETION,
    ) {
        Ok(b) => b,
        Err(e) => {
            crate::ke::queue::ke_rundown_queue(kq);
            return Err(e);
        }
    };
    // SAFETY: a fresh block for the body.
    unsafe {
        (body as *mut IoCompletion).write(IoCompletion {
            queue: SpinLocked::new(CompletionQueue::new()),
            kqueue: kq,
            concurrency,
        })
    };
    let id = match insert_object(
        &IO_COMPLETION_OBJECT_TYPE,
        IoKind::Completion,
        body,
        TAG_COMPLETION,
        name,
        attributes,
    ) {
        Ok(id) => id,
        Err(e) => {
            crate::ke::queue::ke_rundown_queue(kq);
            return Err(e);
        }
    };
    ob_insert_object_handle(id, desired, attributes, mode)
}

/// The completion object's delete procedure.
pub(super) fn delete_completion(body: u64) {
    // SAFETY: the last reference went; the body is ours to drop.
    unsafe {
        let c = body as *mut IoCompletion;
        crate::ke::queue::ke_rundown_queue((*c).kqueue);
        core::ptr::drop_in_place(c);
    }
}

/// Queues a packet to the completion object at `port` (`IoSetIoCompletion`).
pub fn post(port: u64, p: CompletionPacket) -> Result<(), NtStatus> {
    // SAFETY: callers hold a reference on the port (a file's association or a handle).
    let c = unsafe { &*(port as *const IoCompletion) };
    c.queue.with(|q| {
        q.reserve().map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        q.post(p);
        Ok(())
    })?;
    crate::ke::queue::ke_insert_queue(c.kqueue);
    Ok(())
}

fn port_of(
    handle: u64,
    access: u32,
    mode: Mode,
) -> Result<(crate::ob::handle::ObjectRef, u64), NtStatus> {
    let r = ob_reference_object_by_handle(handle, access, Some(&IO_COMPLETION_OBJECT_TYPE), mode)?;
    match body_of(r.id) {
        Some((b, IoKind::Completion)) => Ok((r, b)),
        _ => Err(STATUS_OBJECT_TYPE_MISMATCH),
    }
}

/// `NtSetIoCompletion`: queues a packet.
pub fn nt_set_io_completion(
    handle: u64,
    key: usize,
    apc_context: usize,
    status: NtStatus,
    information: usize,
    mode: Mode,
) -> Result<(), NtStatus> {
    let (_r, port) = port_of(handle, IO_COMPLETION_MODIFY_STATE, mode)?;
    post(
        port,
        CompletionPacket {
            key,
            apc_context,
            status,
            information,
        },
    )
}

/// `NtRemoveIoCompletionEx`: waits (`timeout` relative in 100 ns, None
/// forever, Some(0) a poll) for at least one packet and returns up to
/// `out.len()` of them; Ok(0) after a timeout (NT's STATUS_TIMEOUT).
pub fn nt_remove_io_completion_ex(
    handle: u64,
    out: &mut [CompletionPacket],
    timeout: Option<u64>,
    alertable: bool,
    mode: Mode,
) -> Result<usize, NtStatus> {
    if out.is_empty() {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let (_r, port) = port_of(handle, IO_COMPLETION_MODIFY_STATE, mode)?;
    // SAFETY: the handle's reference keeps the port.
    let c = unsafe { &*(port as *const IoCompletion) };
    let s = crate::ke::queue::ke_remove_queue(c.kqueue, mode == Mode::UserMode, alertable, timeout);
    if s != STATUS_SUCCESS {
        return if s == STATUS_TIMEOUT { Ok(0) } else { Err(s) };
    }
    // A token: a packet is there for this thread; further ones only if
    // pending (the thread counts once however many it takes).
    let mut n = 0;
    while n < out.len() && (n == 0 || crate::ke::queue::ke_remove_queue_more(c.kqueue)) {
        match c.queue.with(|q| q.remove()) {
            Some(p) => {
                out[n] = p;
                n += 1;
            }
            None => break,
        }
    }
    Ok(n)
}

/// `NtRemoveIoCompletion`: one packet, or None after a timeout.
pub fn nt_remove_io_completion(
    handle: u64,
    timeout: Option<u64>,
    mode: Mode,
) -> Result<Option<CompletionPacket>, NtStatus> {
    let mut one = [CompletionPacket {
        key: 0,
        apc_context: 0,
        status: STATUS_SUCCESS,
        information: 0,
    }];
    let n = nt_remove_io_completion_ex(handle, &mut one, timeout, false, mode)?;
    Ok((n == 1).then_some(one[0]))
}

/// Packets queued now (`!object`-style reports and tests).
pub fn depth(port: u64) -> usize {
    // SAFETY: callers hold a reference on the port.
    let c = unsafe { &*(port as *const IoCompletion) };
    c.queue.with(|q| q.depth())
}
