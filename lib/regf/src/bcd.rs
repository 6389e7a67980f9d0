//! Boot Configuration Data stores: a hive with the documented `Description` / `Objects` /
//! `Elements` layout. [`build_bcd`] writes one (a boot manager object plus OS loader objects),
//! [`read_bcd`] reads the boot entries back (what the boot manager needs).
//!
//! Element values are named `Element` under `Objects\{GUID}\Elements\<type as 8 hex digits>`. The
//! element type's bits 24-27 give the format: 1 device (REG_BINARY), 2 string (REG_SZ),
//! 3 object (GUID string), 4 object list (REG_MULTI_SZ), 5 integer (8-byte REG_BINARY),
//! 6 boolean (1-byte REG_BINARY).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::*;

/// The well-known GUID of the Windows Boot Manager object.
pub const BOOTMGR_GUID: &str = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}";
/// Object type: boot manager application.
pub const BCD_TYPE_BOOTMGR: u32 = 0x1010_0002;
/// Object type: OS loader application.
pub const BCD_TYPE_OSLOADER: u32 = 0x1020_0003;
/// BcdLibraryDevice_ApplicationDevice.
pub const ELEM_APP_DEVICE: u32 = 0x1100_0001;
/// BcdLibraryString_ApplicationPath.
pub const ELEM_APP_PATH: u32 = 0x1200_0002;
/// BcdLibraryString_Description.
pub const ELEM_DESCRIPTION: u32 = 0x1200_0004;
/// BcdLibraryString_LoadOptionsString.
pub const ELEM_LOAD_OPTIONS: u32 = 0x1200_0030;
/// BcdOSLoaderDevice_OSDevice.
pub const ELEM_OS_DEVICE: u32 = 0x2100_0001;
/// BcdOSLoaderString_SystemRoot.
pub const ELEM_SYSTEM_ROOT: u32 = 0x2200_0002;
/// BcdBootMgrObject_DefaultObject.
pub const ELEM_DEFAULT: u32 = 0x2300_0003;
/// BcdBootMgrObjectList_DisplayOrder.
pub const ELEM_DISPLAY_ORDER: u32 = 0x2400_0001;
/// BcdBootMgrInteger_Timeout.
pub const ELEM_TIMEOUT: u32 = 0x2500_0004;

/// One OS loader entry to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BcdEntrySpec {
    /// Object GUID in braces, e.g. `{...}`.
    pub guid: String,
    /// Menu text.
    pub description: String,
    /// Loader path on the device, e.g. `\Windows\system32\winload.efi`.
    pub path: String,
    /// System root, e.g. `\Windows`.
    pub systemroot: String,
    /// Load options (kernel command line), if any.
    pub load_options: Option<String>,
    /// Raw device element data for the application and OS device (opaque to this crate; empty to
    /// omit the elements).
    pub device: Vec<u8>,
}

/// A BCD store to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BcdSpec {
    /// `Description\KeyName`, e.g. `BCD00000001`.
    pub key_name: String,
    /// Boot manager path, e.g. `\EFI\Microsoft\Boot\bootmgfw.efi`.
    pub bootmgr_path: String,
    /// Raw boot manager device element (empty to omit).
    pub bootmgr_device: Vec<u8>,
    /// Menu timeout in seconds.
    pub timeout: u64,
    /// Index into `entries` of the default entry.
    pub default: usize,
    /// OS loader entries, in display order.
    pub entries: Vec<BcdEntrySpec>,
}

/// One boot entry as read back.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BcdEntry {
    /// Object GUID.
    pub guid: String,
    /// Object type (`BCD_TYPE_*`).
    pub object_type: u32,
    /// Description element.
    pub description: Option<String>,
    /// Application path.
    pub path: Option<String>,
    /// System root.
    pub systemroot: Option<String>,
    /// Load options.
    pub load_options: Option<String>,
    /// Raw application device element.
    pub device: Option<Vec<u8>>,
}

/// The boot manager's view of a store.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BcdStore {
    /// Default object GUID.
    pub default: Option<String>,
    /// Timeout in seconds.
    pub timeout: Option<u64>,
    /// Display order (GUIDs).
    pub display_order: Vec<String>,
    /// The boot manager object.
    pub bootmgr: Option<BcdEntry>,
    /// Every OS loader object, in display order first, then any others by GUID.
    pub entries: Vec<BcdEntry>,
}

fn set_element(h: &mut Hive, obj: KeyRef, ty: u32, vty: u32, data: &[u8]) -> Result<()> {
    let els = h.create_key(obj, "Elements")?;
    let e = h.create_key(els, &format!("{:08X}", ty))?;
    h.set_value(e, "Element", vty, data)
}

fn multi_sz(items: &[String]) -> Vec<u8> {
    let mut v = Vec::new();
    for i in items {
        v.extend_from_slice(&utf16z(i));
    }
    v.extend_from_slice(&[0, 0]);
    v
}

fn new_object(h: &mut Hive, objects: KeyRef, guid: &str, ty: u32) -> Result<KeyRef> {
    let o = h.create_key(objects, guid)?;
    let d = h.create_key(o, "Description")?;
    h.set_value(d, "Type", REG_DWORD, &ty.to_le_bytes())?;
    Ok(o)
}

/// Builds a BCD store hive from `spec`. `STATUS_INVALID_PARAMETER` if `default` is out of range
/// or a GUID is not in braces.
pub fn build_bcd(spec: &BcdSpec) -> Result<Hive> {
    if !spec.entries.is_empty() && spec.default >= spec.entries.len() {
        return Err(Error::Status(STATUS_INVALID_PARAMETER));
    }
    if spec
        .entries
        .iter()
        .any(|e| !(e.guid.starts_with('{') && e.guid.ends_with('}') && e.guid.len() == 38))
    {
        return Err(Error::Status(STATUS_INVALID_PARAMETER));
    }
    let mut h = Hive::new_empty("ROOT")?;
    h.set_file_name("\\EFI\\Microsoft\\Boot\\BCD");
    let root = h.root();
    let desc = h.create_key(root, "Description")?;
    h.set_value(desc, "KeyName", REG_SZ, &utf16z(&spec.key_name))?;
    let objects = h.create_key(root, "Objects")?;
    let bm = new_object(&mut h, objects, BOOTMGR_GUID, BCD_TYPE_BOOTMGR)?;
    if !spec.bootmgr_device.is_empty() {
        set_element(
            &mut h,
            bm,
            ELEM_APP_DEVICE,
            REG_BINARY,
            &spec.bootmgr_device,
        )?;
    }
    set_element(
        &mut h,
        bm,
        ELEM_APP_PATH,
        REG_SZ,
        &utf16z(&spec.bootmgr_path),
    )?;
    set_element(
        &mut h,
        bm,
        ELEM_DESCRIPTION,
        REG_SZ,
        &utf16z("Windows Boot Manager"),
    )?;
    if let Some(d) = spec.entries.get(spec.default) {
        set_element(&mut h, bm, ELEM_DEFAULT, REG_SZ, &utf16z(&d.guid))?;
    }
    let order: Vec<String> = spec.entries.iter().map(|e| e.guid.clone()).collect();
    set_element(
        &mut h,
        bm,
        ELEM_DISPLAY_ORDER,
        REG_MULTI_SZ,
        &multi_sz(&order),
    )?;
    set_element(
        &mut h,
        bm,
        ELEM_TIMEOUT,
        REG_BINARY,
        &spec.timeout.to_le_bytes(),
    )?;
    for e in &spec.entries {
        let o = new_object(&mut h, objects, &e.guid, BCD_TYPE_OSLOADER)?;
        if !e.device.is_empty() {
            set_element(&mut h, o, ELEM_APP_DEVICE, REG_BINARY, &e.device)?;
            set_element(&mut h, o, ELEM_OS_DEVICE, REG_BINARY, &e.device)?;
        }
        set_element(&mut h, o, ELEM_APP_PATH, REG_SZ, &utf16z(&e.path))?;
        set_element(&mut h, o, ELEM_DESCRIPTION, REG_SZ, &utf16z(&e.description))?;
        set_element(&mut h, o, ELEM_SYSTEM_ROOT, REG_SZ, &utf16z(&e.systemroot))?;
        if let Some(lo) = &e.load_options {
            set_element(&mut h, o, ELEM_LOAD_OPTIONS, REG_SZ, &utf16z(lo))?;
        }
    }
    Ok(h)
}

fn element(h: &Hive, obj: KeyRef, ty: u32) -> Result<Option<Vec<u8>>> {
    let e = match h
        .open_subkey(obj, "Elements")
        .and_then(|els| h.open_subkey(els, &format!("{:08X}", ty)))
    {
        Ok(e) => e,
        Err(Error::Status(s)) if s == STATUS_OBJECT_NAME_NOT_FOUND => return Ok(None),
        Err(x) => return Err(x),
    };
    match h.query_value(e, "Element") {
        Ok(v) => Ok(Some(v.data)),
        Err(Error::Status(s)) if s == STATUS_OBJECT_NAME_NOT_FOUND => Ok(None),
        Err(x) => Err(x),
    }
}

fn element_str(h: &Hive, obj: KeyRef, ty: u32) -> Result<Option<String>> {
    Ok(element(h, obj, ty)?.map(|d| from_utf16z(&d)))
}

fn read_entry(h: &Hive, obj: KeyRef) -> Result<BcdEntry> {
    let ty = h
        .open_subkey(obj, "Description")
        .and_then(|d| h.query_value(d, "Type"))
        .ok()
        .and_then(|v| rd32(&v.data, 0))
        .unwrap_or(0);
    Ok(BcdEntry {
        guid: h.key_name(obj)?,
        object_type: ty,
        description: element_str(h, obj, ELEM_DESCRIPTION)?,
        path: element_str(h, obj, ELEM_APP_PATH)?,
        systemroot: element_str(h, obj, ELEM_SYSTEM_ROOT)?,
        load_options: element_str(h, obj, ELEM_LOAD_OPTIONS)?,
        device: element(h, obj, ELEM_APP_DEVICE)?,
    })
}

/// Reads a BCD store: the boot manager's default, timeout and display order, and every OS loader
/// object. `STATUS_OBJECT_NAME_NOT_FOUND` if there is no `Objects` key.
pub fn read_bcd(h: &Hive) -> Result<BcdStore> {
    let objects = h.open_subkey(h.root(), "Objects")?;
    let mut st = BcdStore::default();
    let mut all = Vec::new();
    for o in h.enum_subkeys(objects)? {
        let e = read_entry(h, o)?;
        if upcase_name(&e.guid) == upcase_name(BOOTMGR_GUID) {
            st.default = element_str(h, o, ELEM_DEFAULT)?;
            st.timeout = element(h, o, ELEM_TIMEOUT)?.and_then(|d| rd64(&d, 0));
            if let Some(d) = element(h, o, ELEM_DISPLAY_ORDER)? {
                let units: Vec<u16> = d
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                st.display_order = units
                    .split(|&u| u == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf16_lossy(s).to_string())
                    .collect();
            }
            st.bootmgr = Some(e);
        } else if e.object_type == BCD_TYPE_OSLOADER {
            all.push(e);
        }
    }
    for g in &st.display_order {
        if let Some(i) = all
            .iter()
            .position(|e| upcase_name(&e.guid) == upcase_name(g))
        {
            st.entries.push(all.remove(i));
        }
    }
    st.entries.extend(all);
    Ok(st)
}
