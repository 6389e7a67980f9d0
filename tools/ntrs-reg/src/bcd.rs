//! `ntrs-reg bcd STORE [bcdedit arguments]`: a BCD store shown and edited as `bcdedit /store`
//! does. The store logic is `regf::bcdedit` (host-tested there); this file parses bcdedit's
//! command line and prints its messages.

use regf::bcd::BOOTMGR_GUID;
use regf::bcdedit::{self as be, ListEdit, Object};
use regf::Hive;

/// Help text of the subcommand (bcdedit's switches that are supported).
pub const HELP: &str = "\
bcdedit's switches, on the store file (as `bcdedit /store STORE ...`):
  (none) | /enum [active|all|bootmgr|osloader|resume|firmware|bootapp|inherit|{id}] [/v]
  /set {id} <element> <value>...      e.g. /set {default} loadoptions /DEBUG
  /deletevalue {id} <element>
  /create [{id}] /d \"text\" /application osloader|resume|bootsector|startup
  /delete {id} [/f]                   (/f for a well-known object); references are removed
  /default {id}    /timeout <seconds>
  /displayorder {id}... [/addlast|/addfirst|/remove]
Identifiers: {GUID}, {bootmgr}, {default}, {globalsettings}, {bootloadersettings}, ... ({current}
needs a running system and is refused). Elements: bcdedit's names (device, path, description,
osdevice, systemroot, nx, bootmenupolicy, ...) or custom:XXXXXXXX. Devices can be set to `boot`
only (a partition needs its disk). /v shows GUIDs instead of well-known names.";

/// Runs the bcdedit command line `args` on the store `h` (already opened). Returns the text to
/// print and whether the store changed (then the caller writes it back).
pub fn run(h: &mut Hive, args: &[String]) -> Result<(String, bool), String> {
    let verbose = args.iter().any(|a| a.eq_ignore_ascii_case("/v"));
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.eq_ignore_ascii_case("/v"))
        .collect();
    let lower = |s: &str| s.to_ascii_lowercase();
    let done = || Ok(("The operation completed successfully.\n".to_string(), true));
    let Some(cmd) = args.first().map(|c| lower(c)) else {
        return enumerate(h, "active", verbose).map(|t| (t, false));
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "/enum" => {
            let what = match rest {
                [] => "active".to_string(),
                [w] => w.to_string(),
                _ => return Err("/enum takes one type or identifier".into()),
            };
            enumerate(h, &what, verbose).map(|t| (t, false))
        }
        "/set" => {
            let [id, element, value @ ..] = rest else {
                return Err("usage: /set {id} <element> <value>".into());
            };
            if value.is_empty() {
                return Err(format!("/set {id} {element}: no value"));
            }
            let guid = existing(h, id)?;
            let ty = object_type(h, &guid)?;
            let et = be::element_type(ty, element)
                .ok_or_else(|| format!("{element}: not an element of {id} (type {ty:#010x})"))?;
            let (rt, d) = be::encode_value(h, ty, et, value)?;
            be::put_element(h, &guid, et, rt, &d).map_err(|e| e.to_string())?;
            done()
        }
        "/deletevalue" => {
            let [id, element] = rest else {
                return Err("usage: /deletevalue {id} <element>".into());
            };
            let guid = existing(h, id)?;
            let ty = object_type(h, &guid)?;
            let et = be::element_type(ty, element)
                .ok_or_else(|| format!("{element}: not an element of {id}"))?;
            be::delete_element(h, &guid, et)
                .map_err(|e| format!("{id} has no element {element} ({e})"))?;
            done()
        }
        "/create" => create(h, rest),
        "/delete" => {
            let (ids, force): (Vec<&str>, Vec<&str>) =
                rest.iter().partition(|a| !a.eq_ignore_ascii_case("/f"));
            let [id] = ids[..] else {
                return Err("usage: /delete {id} [/f]".into());
            };
            let guid = existing(h, id)?;
            if be::well_known_name(&guid).is_some() && force.is_empty() {
                return Err(format!(
                    "{id} is a well-known object: /delete {id} /f deletes it"
                ));
            }
            be::delete_object(h, &guid).map_err(|e| e.to_string())?;
            done()
        }
        "/default" => {
            let [id] = rest else {
                return Err("usage: /default {id}".into());
            };
            let guid = existing(h, id)?;
            be::put_element(
                h,
                BOOTMGR_GUID,
                0x2300_0003,
                regf::REG_SZ,
                &regf::utf16z(&guid),
            )
            .map_err(|e| format!("{{bootmgr}}: {e}"))?;
            done()
        }
        "/timeout" => {
            let [n] = rest else {
                return Err("usage: /timeout <seconds>".into());
            };
            let v: u64 = n
                .parse()
                .map_err(|_| format!("/timeout: \"{n}\" is not a number of seconds"))?;
            be::put_element(
                h,
                BOOTMGR_GUID,
                0x2500_0004,
                regf::REG_BINARY,
                &v.to_le_bytes(),
            )
            .map_err(|e| format!("{{bootmgr}}: {e}"))?;
            done()
        }
        "/displayorder" => {
            let mut how = ListEdit::Set;
            let mut ids = Vec::new();
            for a in rest {
                match lower(a).as_str() {
                    "/addlast" => how = ListEdit::AddLast,
                    "/addfirst" => how = ListEdit::AddFirst,
                    "/remove" => how = ListEdit::Remove,
                    _ => ids.push(
                        be::resolve_id(h, a).map_err(|_| format!("\"{a}\": not an identifier"))?,
                    ),
                }
            }
            if ids.is_empty() {
                return Err("usage: /displayorder {id}... [/addlast|/addfirst|/remove]".into());
            }
            if how != ListEdit::Set && ids.len() != 1 {
                return Err("/addlast, /addfirst and /remove take one identifier".into());
            }
            be::edit_list(h, BOOTMGR_GUID, 0x2400_0001, &ids, how)
                .map_err(|e| format!("/displayorder: {e} (every entry must exist)"))?;
            done()
        }
        c => Err(format!(
            "unknown or unsupported switch \"{c}\" (see ntrs-reg bcd --help)"
        )),
    }
}

/// The GUID of an identifier that names an object of the store.
fn existing(h: &Hive, id: &str) -> Result<String, String> {
    let g = be::resolve_id(h, id).map_err(|_| match id.to_ascii_lowercase().as_str() {
        "{current}" => "{current} names the running system's entry: not in an offline store".into(),
        _ => format!("\"{id}\" is not an identifier ({{GUID}} or a well-known name)"),
    })?;
    be::object_type(h, &g).map_err(|_| format!("{id}: no such object in the store"))?;
    Ok(g)
}

fn object_type(h: &Hive, guid: &str) -> Result<u32, String> {
    be::object_type(h, guid).map_err(|e| format!("{guid}: {e}"))
}

fn create(h: &mut Hive, rest: &[&str]) -> Result<(String, bool), String> {
    let mut id = None;
    let mut desc = None;
    let mut app = None;
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].to_ascii_lowercase();
        let next = rest.get(i + 1).copied();
        match a.as_str() {
            "/d" => {
                desc = Some(next.ok_or("/d needs a description")?);
                i += 1;
            }
            "/application" => {
                app = Some(
                    next.ok_or("/application needs a type")?
                        .to_ascii_lowercase(),
                );
                i += 1;
            }
            _ if a.starts_with('{') && id.is_none() => id = Some(rest[i]),
            _ => return Err(format!("/create: unexpected \"{}\"", rest[i])),
        }
        i += 1;
    }
    let ty = match app.as_deref() {
        Some("osloader") => be::TYPE_OSLOADER,
        Some("resume") => be::TYPE_RESUME,
        Some("bootsector") => be::TYPE_BOOTSECTOR,
        Some("startup") => be::TYPE_STARTUP,
        Some(a) => {
            return Err(format!(
                "/application {a}: osloader, resume, bootsector or startup"
            ))
        }
        None => {
            return Err("/create needs /application (osloader, resume, bootsector, startup)".into())
        }
    };
    let desc = desc.ok_or("/create needs /d \"description\"")?;
    let guid = match id {
        Some(i) => be::resolve_id(h, i).map_err(|_| format!("\"{i}\" is not an identifier"))?,
        None => new_guid(),
    };
    be::create_object(h, &guid, ty, Some(desc)).map_err(|e| match e {
        regf::Error::Status(s) if s == nt::status::STATUS_OBJECT_NAME_COLLISION => {
            format!("{guid} already exists")
        }
        e => e.to_string(),
    })?;
    Ok((
        format!("The entry {guid} was successfully created.\n"),
        true,
    ))
}

/// A random (version 4) GUID, from the standard library's randomly keyed hasher and the time.
fn new_guid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut b = [0u8; 16];
    for (i, c) in b.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        c.copy_from_slice(&h.finish().to_le_bytes());
    }
    b[7] = (b[7] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    be::guid_string(&b).unwrap_or_default()
}

/// `/enum WHAT`: the objects of a type, the active ones (boot manager and display order), all,
/// or one identifier.
fn enumerate(h: &Hive, what: &str, verbose: bool) -> Result<String, String> {
    let mut objs = be::read_objects(h).map_err(|e| format!("not a BCD store: {e}"))?;
    objs.sort_by_key(|o| (be::type_rank(o.ty), o.guid.to_ascii_lowercase()));
    let find = |g: &str| objs.iter().find(|o| o.guid.eq_ignore_ascii_case(g));
    let shown: Vec<&Object> = match what.to_ascii_lowercase().as_str() {
        "all" => objs.iter().collect(),
        "active" => {
            let mut v: Vec<&Object> = find(BOOTMGR_GUID).into_iter().collect();
            if let Some(order) = v.first().and_then(|b| b.element(0x2400_0001)) {
                for g in be::decode_value(b_type(), order, &|g: &str| g.to_string()) {
                    if let Some(o) = find(&g) {
                        v.push(o);
                    }
                }
            }
            v
        }
        "bootmgr" => objs.iter().filter(|o| o.ty == 0x1010_0002).collect(),
        "osloader" => objs.iter().filter(|o| o.ty == be::TYPE_OSLOADER).collect(),
        "resume" => objs.iter().filter(|o| o.ty == be::TYPE_RESUME).collect(),
        "firmware" => objs.iter().filter(|o| o.ty >> 20 == 0x101).collect(),
        "bootapp" => objs.iter().filter(|o| o.ty >> 28 == 1).collect(),
        "inherit" => objs.iter().filter(|o| o.ty >> 28 == 2).collect(),
        id if id.starts_with('{') => {
            let g = be::resolve_id(h, id).map_err(|_| format!("\"{id}\" is not an identifier"))?;
            vec![find(&g).ok_or_else(|| format!("{id}: no such object in the store"))?]
        }
        w => return Err(format!("/enum {w}: unknown type (active, all, bootmgr, osloader, resume, firmware, bootapp, inherit or an identifier)")),
    };
    Ok(be::enum_text(&objs, &shown, verbose))
}

/// The boot manager's object type (for decoding its display order).
fn b_type() -> u32 {
    0x1010_0002
}
