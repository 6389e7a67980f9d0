//! Boot tests of the object manager in the kernel: handles, references,
//! types, access, lifetime.

use crate::ktest::{check, Test, TestResult};
use crate::ob::handle::*;
use crate::ob::object::*;
use nt::status::*;

fn make(
    name: Option<&str>,
    ty: &str,
    sd: Option<security::sd::SecurityDescriptor>,
) -> Result<::ob::namespace::ObjectId, &'static str> {
    let (id, st) = ob_create_object(CreateSpec {
        type_name: ty,
        name,
        attributes: 0,
        body: ObjectBody::Plain,
        sd,
    })
    .map_err(|_| "ObCreateObject failed")?;
    check(st == STATUS_SUCCESS, "create status")?;
    Ok(id)
}

const EVENT_QUERY_STATE: u32 = 1;
const EVENT_MODIFY_STATE: u32 = 2;

fn t_reference_by_handle() -> TestResult {
    let event = crate::ob::system_type("Event").ok_or("no Event type")?;
    let mutant = crate::ob::system_type("Mutant").ok_or("no Mutant type")?;
    let id = make(Some("\\BaseNamedObjects\\KTestRef"), "Event", None)?;
    let h = ob_create_handle(id, EVENT_QUERY_STATE, 0).map_err(|_| "create handle")?;
    ob_dereference_object(id); // the creation reference; the handle keeps it alive
    check(
        h % 4 == 0 && h != 0,
        "handle values are non-zero multiples of 4",
    )?;
    {
        let r = ob_reference_object_by_handle(h, EVENT_QUERY_STATE, Some(event), Mode::UserMode)
            .map_err(|_| "reference with granted access failed")?;
        check(
            r.id == id && r.granted_access == EVENT_QUERY_STATE,
            "wrong object",
        )?;
    }
    check(
        ob_reference_object_by_handle(h, EVENT_MODIFY_STATE, Some(event), Mode::UserMode).err()
            == Some(STATUS_ACCESS_DENIED),
        "user mode got access the handle was not granted",
    )?;
    check(
        ob_reference_object_by_handle(h, EVENT_MODIFY_STATE, Some(event), Mode::KernelMode).is_ok(),
        "kernel mode must not be access-checked on a handle",
    )?;
    check(
        ob_reference_object_by_handle(h, 0, Some(mutant), Mode::KernelMode).err()
            == Some(STATUS_OBJECT_TYPE_MISMATCH),
        "wrong type was not STATUS_OBJECT_TYPE_MISMATCH",
    )?;
    check(
        ob_reference_object_by_handle(h + 0x400, 0, None, Mode::KernelMode).err()
            == Some(STATUS_INVALID_HANDLE),
        "unused handle was not STATUS_INVALID_HANDLE",
    )?;
    let kh =
        ob_create_handle(id, EVENT_QUERY_STATE, OBJ_KERNEL_HANDLE).map_err(|_| "kernel handle")?;
    check(
        kh & KERNEL_HANDLE_MASK == KERNEL_HANDLE_MASK,
        "kernel handle lacks the sign bit",
    )?;
    check(
        ob_reference_object_by_handle(kh, 0, None, Mode::UserMode).err()
            == Some(STATUS_INVALID_HANDLE),
        "a kernel handle was usable from user mode",
    )?;
    let dup = nt_duplicate_object(h, 0, 0, DUPLICATE_SAME_ACCESS, Mode::UserMode)
        .map_err(|_| "duplicate")?;
    check(
        nt_duplicate_object(h, EVENT_MODIFY_STATE, 0, 0, Mode::UserMode).err()
            == Some(STATUS_ACCESS_DENIED),
        "duplicate widened access",
    )?;
    check(
        set_protect_from_close(dup, true) == STATUS_SUCCESS,
        "protect",
    )?;
    check(
        nt_close(dup) == STATUS_HANDLE_NOT_CLOSABLE,
        "protected handle closed",
    )?;
    check(
        set_protect_from_close(dup, false) == STATUS_SUCCESS,
        "unprotect",
    )?;
    check(nt_close(dup) == STATUS_SUCCESS, "close dup")?;
    check(nt_close(kh) == STATUS_SUCCESS, "close kernel handle")?;
    check(nt_close(h) == STATUS_SUCCESS, "close")?;
    check(
        nt_close(h) == STATUS_INVALID_HANDLE,
        "double close was not STATUS_INVALID_HANDLE",
    )?;
    // The last handle of a temporary object removed its name.
    let token = security::token::Token::system();
    check(
        ob_open_object_by_name(
            "\\BaseNamedObjects\\KTestRef",
            None,
            0,
            0,
            Mode::KernelMode,
            &token,
        )
        .err()
            == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "temporary object outlived its last handle",
    )
}

fn t_open_checks_access() -> TestResult {
    // Everyone may query, the test user is denied everything.
    let sd = security::sddl::parse("O:SYG:SYD:(D;;GA;;;S-1-5-21-1-2-3-1001)(A;;GA;;;WD)")
        .map_err(|_| "sddl")?;
    let id = make(Some("\\BaseNamedObjects\\KTestSecured"), "Event", Some(sd))?;
    let h = ob_create_handle(id, 0x1F0003, 0).map_err(|_| "handle")?;
    ob_dereference_object(id);
    let user = security::sddl::parse_sid("S-1-5-21-1-2-3-1001").map_err(|_| "sid")?;
    let user_token = security::token::Token::standard_user(user);
    let system = security::token::Token::system();
    let path = "\\BaseNamedObjects\\KTestSecured";
    check(
        ob_open_object_by_name(
            path,
            Some("Event"),
            0,
            EVENT_QUERY_STATE,
            Mode::UserMode,
            &user_token,
        )
        .err()
            == Some(STATUS_ACCESS_DENIED),
        "denied token was granted",
    )?;
    let (oid, granted) =
        ob_open_object_by_name(path, Some("Event"), 0, 0x8000_0000, Mode::UserMode, &system)
            .map_err(|_| "system token refused")?;
    ob_dereference_object(oid);
    check(
        granted == 0x0002_0001,
        "GENERIC_READ not mapped through the Event mapping",
    )?;
    check(
        ob_open_object_by_name(path, Some("Mutant"), 0, 0, Mode::KernelMode, &system).err()
            == Some(STATUS_OBJECT_TYPE_MISMATCH),
        "open with the wrong type",
    )?;
    check(nt_close(h) == STATUS_SUCCESS, "close")
}

fn t_million_handles() -> TestResult {
    let id = make(None, "Event", None)?;
    let (p0, k0) = handle_counts();
    let mut grew = true;
    // Other processors allocate meanwhile: a leak grows every round.
    for _ in 0..3 {
        let before = crate::ex::pool::POOL.bytes_in_use();
        for _ in 0..350_000u32 {
            let h = ob_create_handle(id, 0x1F0003, 0).map_err(|_| "create handle")?;
            if nt_close(h) != STATUS_SUCCESS {
                return Err("close failed");
            }
        }
        if crate::ex::pool::POOL.bytes_in_use() <= before {
            grew = false;
        }
    }
    check(handle_counts() == (p0, k0), "handle count changed")?;
    check(!grew, "a million create/close pairs grew pool usage")?;
    let deleted = crate::ob::with_ob(|st| st.deleted_total);
    ob_dereference_object(id);
    check(
        crate::ob::with_ob(|st| st.deleted_total) == deleted + 1,
        "the last reference did not delete the object",
    )
}

pub const TESTS: &[Test] = &[
    ("ob.type_procedures_and_parse", t_type_procedures),
    ("ob.reference_by_handle_statuses", t_reference_by_handle),
    ("ob.open_by_name_checks_access", t_open_checks_access),
    ("ob.million_handles_leave_pool_unchanged", t_million_handles),
];

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

static PARSED: AtomicU64 = AtomicU64::new(0);
static OPENS: AtomicU32 = AtomicU32::new(0);
static CLOSES: AtomicU32 = AtomicU32::new(0);
static DELETES: AtomicU32 = AtomicU32::new(0);
static REFUSE_CLOSE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static LEAF: AtomicU64 = AtomicU64::new(0);

/// A type with every procedure: a parse procedure that owns the namespace
/// below its objects (as the I/O and configuration managers do), open,
/// close, okay-to-close and delete procedures called at NT's points.
fn t_type_procedures() -> TestResult {
    use crate::ob::types::*;
    let init = TypeInitializer {
        open: Some(|_, _, _| {
            OPENS.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }),
        close: Some(|_, _| {
            CLOSES.fetch_add(1, Ordering::SeqCst);
        }),
        delete: Some(|_| {
            DELETES.fetch_add(1, Ordering::SeqCst);
        }),
        parse: Some(|_, remaining, ctx| {
            let desired = ctx.desired;
            // The remaining path must arrive without the leading separator.
            PARSED.store(remaining.len() as u64, Ordering::SeqCst);
            if remaining != "alpha\\beta" {
                return Err(STATUS_OBJECT_NAME_NOT_FOUND);
            }
            let leaf = LEAF.load(Ordering::SeqCst) as usize;
            ob_reference_object(leaf)?;
            Ok((leaf, desired))
        }),
        okay_to_close: Some(|_, _| !REFUSE_CLOSE.load(Ordering::SeqCst)),
        query_name: None,
    };
    ob_create_object_type("KtParsed", init).map_err(|_| "ObCreateObjectType")?;
    check(
        ob_create_object_type("KtParsed", TypeInitializer::default()).err()
            == Some(STATUS_OBJECT_NAME_COLLISION),
        "duplicate type name accepted",
    )?;
    let root = make(Some("\\KtParseRoot"), "KtParsed", None)?;
    let leaf = make(None, "KtParsed", None)?;
    LEAF.store(leaf as u64, Ordering::SeqCst);
    let token = security::token::Token::system();
    let (found, granted) = ob_open_object_by_name(
        "\\KtParseRoot\\alpha\\beta",
        None,
        0,
        0x1234,
        Mode::KernelMode,
        &token,
    )
    .map_err(|_| "open through the parse procedure failed")?;
    check(
        found == leaf && granted == 0x1234,
        "parse procedure result not returned",
    )?;
    check(
        PARSED.load(Ordering::SeqCst) == 10,
        "parse procedure got the wrong remaining path",
    )?;
    check(
        ob_open_object_by_name("\\KtParseRoot\\gamma", None, 0, 0, Mode::KernelMode, &token).err()
            == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "parse procedure's status not returned",
    )?;
    let opens = OPENS.load(Ordering::SeqCst);
    let h = ob_create_handle(found, granted, 0).map_err(|_| "handle")?;
    ob_dereference_object(found);
    check(
        OPENS.load(Ordering::SeqCst) == opens + 1,
        "open procedure not called",
    )?;
    REFUSE_CLOSE.store(true, Ordering::SeqCst);
    check(
        nt_close(h) == STATUS_HANDLE_NOT_CLOSABLE,
        "okay-to-close refusal ignored",
    )?;
    REFUSE_CLOSE.store(false, Ordering::SeqCst);
    // Drop the creation reference: the handle is the last one now.
    ob_dereference_object(leaf);
    let (closes, deletes) = (
        CLOSES.load(Ordering::SeqCst),
        DELETES.load(Ordering::SeqCst),
    );
    check(nt_close(h) == STATUS_SUCCESS, "close")?;
    check(
        CLOSES.load(Ordering::SeqCst) == closes + 1,
        "close procedure not called",
    )?;
    check(
        DELETES.load(Ordering::SeqCst) == deletes + 1,
        "delete procedure not called at the last reference",
    )?;
    let _ = root;
    Ok(())
}
