//! Every object and element of a BCD store, as `bcdedit /enum all` shows them, and the edits
//! `bcdedit` makes (`/set`, `/deletevalue`, `/create`, `/delete`, `/default`, `/timeout`,
//! `/displayorder`). [`crate::bcd`] is the boot manager's narrow view; this module is the
//! whole store, for `ntrs-reg bcd`.
//!
//! Facts used (public): the element type layout (class in bits 28-31, format in bits 24-27,
//! `BcdElementType` in the BCD WMI reference), the element enumerations
//! (`BcdLibraryElementTypes`, `BcdBootMgrElementTypes`, `BcdOSLoaderElementTypes`,
//! `BcdResumeElementTypes`, `BcdMemDiagElementTypes`, `BcdDeviceObjectElementTypes`), the
//! well-known object GUIDs and bcdedit's names for elements and objects (bcdedit's help and
//! Geoff Chappell's BCD notes), and the layout of the binary device element (a 16-byte
//! additional-options GUID, then the boot environment device: type, flags, size, and for a
//! partition its identifier, the partition style and the disk's GUID or MBR signature).
//!
//! Values are stored as Windows stores them: strings and objects `REG_SZ`, object lists
//! `REG_MULTI_SZ`, integers 8-byte `REG_BINARY`, booleans 1-byte `REG_BINARY`, devices and
//! integer lists `REG_BINARY`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::*;

/// Element data formats (bits 24-27 of an element type).
pub const FORMAT_DEVICE: u32 = 1;
/// A string.
pub const FORMAT_STRING: u32 = 2;
/// An object (GUID in braces).
pub const FORMAT_OBJECT: u32 = 3;
/// A list of objects.
pub const FORMAT_OBJECT_LIST: u32 = 4;
/// A 64-bit integer.
pub const FORMAT_INTEGER: u32 = 5;
/// A boolean.
pub const FORMAT_BOOLEAN: u32 = 6;
/// A list of 64-bit integers.
pub const FORMAT_INTEGER_LIST: u32 = 7;

/// The data format of element type `ty`.
pub fn element_format(ty: u32) -> u32 {
    (ty >> 24) & 0xF
}

/// The well-known objects: GUID and bcdedit's name. `{current}` and `{default}` are virtual
/// (they name no object in a store; `{default}` is the boot manager's default element).
pub const WELL_KNOWN: &[(&str, &str)] = &[
    ("{9dea862c-5cdd-4e70-acc1-f32b344d4795}", "{bootmgr}"),
    ("{a5a30fa2-3d06-4e9f-b5f4-a01df9d1fcba}", "{fwbootmgr}"),
    ("{b2721d73-1db4-4c62-bf78-c548a880142d}", "{memdiag}"),
    ("{466f5a88-0af2-4f76-9038-095b170dc21c}", "{ntldr}"),
    ("{ae5534e0-a924-466c-b836-758539a3ee3a}", "{ramdiskoptions}"),
    ("{4636856e-540f-4170-a130-a84776f4c654}", "{dbgsettings}"),
    ("{0ce4991b-e6b3-4b16-b23c-5e0d9250e5d9}", "{emssettings}"),
    ("{5189b25c-5558-4bf2-bca4-289b11bd29e2}", "{badmemory}"),
    ("{7ea2e1ac-2e61-4728-aaa3-896d9d0a9f0e}", "{globalsettings}"),
    (
        "{6efb52bf-1766-41db-a6b3-0ee5eff72bd7}",
        "{bootloadersettings}",
    ),
    (
        "{1afa9c49-16ab-4a5c-4a90-212802da9460}",
        "{resumeloadersettings}",
    ),
    (
        "{7ff607e0-4395-11db-b0de-0800200c9a66}",
        "{hypervisorsettings}",
    ),
    (
        "{313e8eed-7098-4586-a9bf-309c61f8d449}",
        "{kerneldbgsettings}",
    ),
    ("{fa926493-6f1c-4193-a414-58f0b2456d1e}", "{current}"),
    ("{1cae1eb7-a0df-4d4d-9851-4860e34ef535}", "{default}"),
];

/// `{legacy}` is another name bcdedit accepts for `{ntldr}`.
const ALIASES: &[(&str, &str)] = &[("{legacy}", "{466f5a88-0af2-4f76-9038-095b170dc21c}")];

/// bcdedit's name of a well-known object GUID.
pub fn well_known_name(guid: &str) -> Option<&'static str> {
    WELL_KNOWN
        .iter()
        .find(|(g, _)| g.eq_ignore_ascii_case(guid))
        .map(|(_, n)| *n)
}

/// Application types (low 20 bits of an application object's type).
const APP_FWBOOTMGR: u32 = 1;
const APP_BOOTMGR: u32 = 2;
const APP_OSLOADER: u32 = 3;
const APP_RESUME: u32 = 4;
const APP_MEMDIAG: u32 = 5;

/// Object type of an OS loader (`/application osloader`).
pub const TYPE_OSLOADER: u32 = 0x1020_0003;
/// Object type of a resume loader (`/application resume`).
pub const TYPE_RESUME: u32 = 0x1020_0004;
/// Object type of a real-mode boot sector (`/application bootsector`).
pub const TYPE_BOOTSECTOR: u32 = 0x1040_0008;
/// Object type of a real-mode startup application (`/application startup`).
pub const TYPE_STARTUP: u32 = 0x1040_0009;

/// The application type whose elements apply to an object of type `ty`: an application's own,
/// or the one an application-inheritable settings object (`0x202xxxxx`) is for; 0 for others.
fn app_type(ty: u32) -> u32 {
    match ty >> 28 {
        1 => ty & 0xF_FFFF,
        2 if (ty >> 20) & 0xF == 2 => ty & 0xF_FFFF,
        _ => 0,
    }
}

const LIBRARY: &[(u32, &str)] = &[
    (0x1100_0001, "device"),
    (0x1200_0002, "path"),
    (0x1200_0004, "description"),
    (0x1200_0005, "locale"),
    (0x1400_0006, "inherit"),
    (0x1500_0007, "truncatememory"),
    (0x1400_0008, "recoverysequence"),
    (0x1600_0009, "recoveryenabled"),
    (0x1700_000a, "badmemorylist"),
    (0x1600_000b, "badmemoryaccess"),
    (0x1500_000c, "firstmegabytepolicy"),
    (0x1500_000d, "relocatephysical"),
    (0x1500_000e, "avoidlowmemory"),
    (0x1600_000f, "traditionalkseg"),
    (0x1600_0010, "bootdebug"),
    (0x1500_0011, "debugtype"),
    (0x1500_0012, "debugaddress"),
    (0x1500_0013, "debugport"),
    (0x1500_0014, "baudrate"),
    (0x1500_0015, "channel"),
    (0x1200_0016, "targetname"),
    (0x1600_0017, "noumex"),
    (0x1500_0018, "debugstart"),
    (0x1200_0019, "busparams"),
    (0x1500_001a, "hostip"),
    (0x1500_001b, "port"),
    (0x1600_001c, "dhcp"),
    (0x1200_001d, "key"),
    (0x1600_001e, "vm"),
    (0x1600_0020, "bootems"),
    (0x1500_0022, "emsport"),
    (0x1500_0023, "emsbaudrate"),
    (0x1200_0030, "loadoptions"),
    (0x1600_0040, "advancedoptions"),
    (0x1600_0041, "optionsedit"),
    (0x1500_0042, "keyringaddress"),
    (0x1100_0043, "bootstatdevice"),
    (0x1200_0044, "bootstatfilepath"),
    (0x1600_0045, "preservebootstat"),
    (0x1600_0046, "graphicsmodedisabled"),
    (0x1500_0047, "configaccesspolicy"),
    (0x1600_0048, "nointegritychecks"),
    (0x1600_0049, "testsigning"),
    (0x1200_004a, "fontpath"),
    (0x1500_004b, "integrityservices"),
    (0x1500_004c, "volumebandid"),
    (0x1600_0050, "extendedinput"),
    (0x1500_0051, "initialconsoleinput"),
    (0x1500_0052, "graphicsresolution"),
    (0x1600_0053, "restartonfailure"),
    (0x1600_0054, "highestmode"),
    (0x1600_0060, "isolatedcontext"),
    (0x1500_0065, "displaymessage"),
    (0x1500_0066, "displaymessageoverride"),
    (0x1600_0071, "forcefipscrypto"),
    (0x1500_0073, "booterrorux"),
    (0x1600_0074, "flightsigning"),
    (0x1500_0075, "measuredbootlogformat"),
    (0x1500_0076, "displayrotation"),
    (0x1500_0077, "logcontrol"),
    (0x1600_0078, "nofirmwaresync"),
];

const BOOTMGR: &[(u32, &str)] = &[
    (0x2400_0001, "displayorder"),
    (0x2400_0002, "bootsequence"),
    (0x2300_0003, "default"),
    (0x2500_0004, "timeout"),
    (0x2600_0005, "resume"),
    (0x2300_0006, "resumeobject"),
    (0x2400_0007, "startupsequence"),
    (0x2400_0010, "toolsdisplayorder"),
    (0x2600_0020, "displaybootmenu"),
    (0x2600_0021, "noerrordisplay"),
    (0x2100_0022, "bcddevice"),
    (0x2200_0023, "bcdfilepath"),
    (0x2600_0024, "hormenabled"),
    (0x2600_0025, "hiberboot"),
    (0x2200_0026, "passwordoverride"),
    (0x2200_0027, "pinpassphraseoverride"),
    (0x2600_0028, "processcustomactionsfirst"),
    (0x2700_0030, "customactions"),
    (0x2600_0031, "persistbootsequence"),
    (0x2600_0032, "skipstartupsequence"),
];

const OSLOADER: &[(u32, &str)] = &[
    (0x2100_0001, "osdevice"),
    (0x2200_0002, "systemroot"),
    (0x2300_0003, "resumeobject"),
    (0x2600_0004, "stampdisks"),
    (0x2600_0010, "detecthal"),
    (0x2200_0011, "kernel"),
    (0x2200_0012, "hal"),
    (0x2200_0013, "dbgtransport"),
    (0x2500_0020, "nx"),
    (0x2500_0021, "pae"),
    (0x2600_0022, "winpe"),
    (0x2600_0024, "nocrashautoreboot"),
    (0x2600_0025, "lastknowngood"),
    (0x2600_0026, "oslnointegritychecks"),
    (0x2600_0027, "osltestsigning"),
    (0x2600_0030, "nolowmem"),
    (0x2500_0031, "removememory"),
    (0x2500_0032, "increaseuserva"),
    (0x2500_0033, "perfmem"),
    (0x2600_0040, "vga"),
    (0x2600_0041, "quietboot"),
    (0x2600_0042, "novesa"),
    (0x2600_0043, "novga"),
    (0x2500_0050, "clustermodeaddressing"),
    (0x2600_0051, "usephysicaldestination"),
    (0x2500_0052, "restrictapiccluster"),
    (0x2200_0053, "evstore"),
    (0x2600_0054, "uselegacyapicmode"),
    (0x2500_0055, "x2apicpolicy"),
    (0x2600_0060, "onecpu"),
    (0x2500_0061, "numproc"),
    (0x2600_0062, "maxproc"),
    (0x2500_0063, "configflags"),
    (0x2600_0064, "maxgroup"),
    (0x2600_0065, "groupaware"),
    (0x2500_0066, "groupsize"),
    (0x2600_0070, "usefirmwarepcisettings"),
    (0x2500_0071, "msi"),
    (0x2500_0072, "pciexpress"),
    (0x2500_0080, "safeboot"),
    (0x2600_0081, "safebootalternateshell"),
    (0x2600_0090, "bootlog"),
    (0x2600_0091, "sos"),
    (0x2600_00a0, "debug"),
    (0x2600_00a1, "halbreakpoint"),
    (0x2600_00a2, "useplatformclock"),
    (0x2600_00a3, "forcelegacyplatform"),
    (0x2600_00a4, "useplatformtick"),
    (0x2600_00a5, "disabledynamictick"),
    (0x2500_00a6, "tscsyncpolicy"),
    (0x2600_00b0, "ems"),
    (0x2500_00c0, "forcefailure"),
    (0x2500_00c1, "driverloadfailurepolicy"),
    (0x2500_00c2, "bootmenupolicy"),
    (0x2600_00c3, "onetimeadvancedoptions"),
    (0x2600_00c4, "onetimeoptionsedit"),
    (0x2500_00e0, "bootstatuspolicy"),
    (0x2600_00e1, "disableelamdrivers"),
    (0x2500_00f0, "hypervisorlaunchtype"),
    (0x2200_00f1, "hypervisorpath"),
    (0x2600_00f2, "hypervisordebug"),
    (0x2500_00f3, "hypervisordebugtype"),
    (0x2500_00f4, "hypervisordebugport"),
    (0x2500_00f5, "hypervisorbaudrate"),
    (0x2500_00f6, "hypervisorchannel"),
    (0x2500_00f7, "bootux"),
    (0x2600_00f8, "hypervisordisableslat"),
    (0x2200_00f9, "hypervisorbusparams"),
    (0x2500_00fa, "hypervisornumproc"),
    (0x2500_00fb, "hypervisorrootprocpernode"),
    (0x2600_00fc, "hypervisoruselargevtlb"),
    (0x2500_00fd, "hypervisorhostip"),
    (0x2500_00fe, "hypervisorhostport"),
    (0x2500_00ff, "hypervisordebugpages"),
    (0x2500_0100, "tpmbootentropy"),
    (0x2200_0110, "hypervisorusekey"),
    (0x2200_0112, "hypervisorproductskutype"),
    (0x2500_0113, "hypervisorrootproc"),
    (0x2600_0114, "hypervisordhcp"),
    (0x2500_0115, "hypervisoriommupolicy"),
    (0x2600_0116, "hypervisorusevapic"),
    (0x2200_0117, "hypervisorloadoptions"),
    (0x2500_0118, "hypervisormsrfilterpolicy"),
    (0x2500_0119, "hypervisormmionxpolicy"),
    (0x2500_011a, "hypervisorschedulertype"),
    (0x2500_0120, "xsavepolicy"),
];

const RESUME: &[(u32, &str)] = &[
    (0x2100_0001, "filedevice"),
    (0x2200_0002, "filepath"),
    (0x2600_0003, "customsettings"),
    (0x2600_0004, "pae"),
    (0x2100_0005, "associatedosdevice"),
    (0x2600_0006, "debugoptionenabled"),
    (0x2500_0007, "bootux"),
    (0x2500_0008, "bootmenupolicy"),
    (0x2600_0024, "hormenabled"),
];

const MEMDIAG: &[(u32, &str)] = &[
    (0x2500_0001, "passcount"),
    (0x2500_0002, "testmix"),
    (0x2500_0003, "failurecount"),
    (0x2500_0004, "testtofail"),
];

const DEVICE_OBJECT: &[(u32, &str)] = &[
    (0x3500_0001, "ramdiskimageoffset"),
    (0x3500_0002, "ramdisktftpclientport"),
    (0x3100_0003, "ramdisksdidevice"),
    (0x3200_0004, "ramdisksdipath"),
    (0x3500_0005, "ramdiskimagelength"),
    (0x3600_0006, "exportascd"),
    (0x3500_0007, "ramdisktftpblocksize"),
    (0x3500_0008, "ramdisktftpwindowsize"),
];

/// The element tables that apply to an object of type `obj_type`.
fn tables(obj_type: u32) -> [&'static [(u32, &'static str)]; 3] {
    let app: &[(u32, &str)] = match app_type(obj_type) {
        APP_FWBOOTMGR | APP_BOOTMGR => BOOTMGR,
        APP_OSLOADER => OSLOADER,
        APP_RESUME => RESUME,
        APP_MEMDIAG => MEMDIAG,
        _ => &[],
    };
    let dev: &[(u32, &str)] = if obj_type >> 28 == 3 {
        DEVICE_OBJECT
    } else {
        &[]
    };
    [LIBRARY, app, dev]
}

/// bcdedit's name of element `ty` in an object of type `obj_type`: its own name, or
/// `custom:xxxxxxxx` for a type it does not name.
pub fn element_name(obj_type: u32, ty: u32) -> String {
    tables(obj_type)
        .iter()
        .flat_map(|t| t.iter())
        .find(|(t, _)| *t == ty)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("custom:{:08x}", ty))
}

/// The element type bcdedit's `name` means in an object of type `obj_type` (also
/// `custom:xxxxxxxx`). `None` when the name is unknown there.
pub fn element_type(obj_type: u32, name: &str) -> Option<u32> {
    if let Some(h) = name.strip_prefix("custom:") {
        return u32::from_str_radix(h, 16).ok().filter(|t| *t >> 28 != 0);
    }
    tables(obj_type)
        .iter()
        .flat_map(|t| t.iter())
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(t, _)| *t)
}

/// Named integer values bcdedit shows instead of the number.
fn integer_names(name: &str) -> &'static [&'static str] {
    match name {
        "nx" => &["OptIn", "OptOut", "AlwaysOff", "AlwaysOn"],
        "pae" => &["Default", "ForceEnable", "ForceDisable"],
        "bootmenupolicy" => &["Legacy", "Standard"],
        "bootstatuspolicy" => &[
            "DisplayAllFailures",
            "IgnoreAllFailures",
            "IgnoreShutdownFailures",
            "IgnoreBootFailures",
            "IgnoreCheckpointFailures",
            "DisplayShutdownFailures",
            "DisplayBootFailures",
            "DisplayCheckpointFailures",
        ],
        "debugtype" | "hypervisordebugtype" => &["Serial", "1394", "USB", "NET", "Local"],
        "debugstart" => &["Active", "AutoEnable", "Disable"],
        "safeboot" => &["Minimal", "Network", "DsRepair"],
        "hypervisorlaunchtype" => &["Off", "Auto"],
        "bootux" => &["Disabled", "Basic", "Standard"],
        "tscsyncpolicy" | "x2apicpolicy" => &["Default", "Legacy", "Enhanced"],
        "configaccesspolicy" => &["Default", "DisallowMmConfig"],
        "firstmegabytepolicy" => &["UseNone", "UseAll", "UsePrivate"],
        "driverloadfailurepolicy" => &["Fatal", "UseErrorControl"],
        _ => &[],
    }
}

/// The heading bcdedit prints above an object.
pub fn object_heading(ty: u32, guid: &str) -> String {
    let by_type = match ty {
        0x1010_0001 => Some("Firmware Boot Manager"),
        0x1010_0002 => Some("Windows Boot Manager"),
        TYPE_OSLOADER => Some("Windows Boot Loader"),
        TYPE_RESUME => Some("Resume from Hibernate"),
        0x1020_0005 => Some("Windows Memory Tester"),
        0x1030_0006 => Some("Windows Legacy OS Loader"),
        TYPE_BOOTSECTOR => Some("Real-mode Boot Sector"),
        _ => None,
    };
    if let Some(h) = by_type {
        return h.to_string();
    }
    let by_guid = match well_known_name(guid) {
        Some("{emssettings}") => Some("EMS Settings"),
        Some("{dbgsettings}") | Some("{kerneldbgsettings}") => Some("Debugger Settings"),
        Some("{badmemory}") => Some("RAM Defects"),
        Some("{globalsettings}") => Some("Global Settings"),
        Some("{bootloadersettings}") => Some("Boot Loader Settings"),
        Some("{resumeloadersettings}") => Some("Resume Loader Settings"),
        Some("{hypervisorsettings}") => Some("Hypervisor Settings"),
        _ => None,
    };
    match (by_guid, ty >> 28) {
        (Some(h), _) => h.to_string(),
        (None, 2) => "Inheritable Settings".to_string(),
        (None, 3) => "Device options".to_string(),
        (None, 1) => format!("Application (type {:#010x})", ty),
        _ => format!("Object (type {:#010x})", ty),
    }
}

/// One element of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// Element type.
    pub ty: u32,
    /// Registry value type of `Element`.
    pub reg_type: u32,
    /// Raw data.
    pub data: Vec<u8>,
}

/// One object of a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// The object's key name (its GUID in braces).
    pub guid: String,
    /// `Description\Type` (0 when missing).
    pub ty: u32,
    /// Elements in key order (ascending type).
    pub elements: Vec<Element>,
}

impl Object {
    /// The element of type `ty`.
    pub fn element(&self, ty: u32) -> Option<&Element> {
        self.elements.iter().find(|e| e.ty == ty)
    }
}

/// Reads every object of a store. An element key whose name is not 8 hex digits, or without an
/// `Element` value, is left out. `STATUS_OBJECT_NAME_NOT_FOUND` without an `Objects` key.
pub fn read_objects(h: &Hive) -> Result<Vec<Object>> {
    let objects = h.open_subkey(h.root(), "Objects")?;
    let mut out = Vec::new();
    for o in h.enum_subkeys(objects)? {
        let guid = h.key_name(o)?;
        let ty = h
            .open_subkey(o, "Description")
            .and_then(|d| h.query_value(d, "Type"))
            .ok()
            .and_then(|v| rd32(&v.data, 0))
            .unwrap_or(0);
        let mut elements = Vec::new();
        if let Ok(els) = h.open_subkey(o, "Elements") {
            for e in h.enum_subkeys(els)? {
                let name = h.key_name(e)?;
                let Some(ety) = parse_hex32(&name) else {
                    continue;
                };
                if let Ok(v) = h.query_value(e, "Element") {
                    elements.push(Element {
                        ty: ety,
                        reg_type: v.ty,
                        data: v.data,
                    });
                }
            }
        }
        elements.sort_by_key(|e| e.ty);
        out.push(Object { guid, ty, elements });
    }
    Ok(out)
}

fn parse_hex32(s: &str) -> Option<u32> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// A GUID from its 16-byte binary form (Windows' mixed-endian layout), braced, lower case.
pub fn guid_string(b: &[u8]) -> Option<String> {
    let b = b.get(..16)?;
    let d1 = rd32(b, 0)?;
    let d2 = rd16(b, 4)?;
    let d3 = rd16(b, 6)?;
    Some(format!(
        "{{{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}}}",
        d1, d2, d3, b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

/// Whether `s` is a GUID in braces (`{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`).
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 38
        && b[0] == b'{'
        && b[37] == b'}'
        && b[1..37].iter().enumerate().all(|(i, &c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Device types of the boot environment device structure.
const DEVICE_BOOT: u32 = 5;
const DEVICE_PARTITION_EX: u32 = 6;
const DEVICE_LOCATE: u32 = 8;
/// Size of the device structure after the options GUID, as Windows writes it.
const DEVICE_SIZE: u32 = 0x48;

/// A device element's data as text: `boot`, `partition=...` (offline, the disk and partition
/// identifiers, since no disk is there to name a volume), `locate`, else `unknown`; an
/// additional-options object is appended as `,{guid}` as bcdedit does for RAM disks.
pub fn decode_device(d: &[u8]) -> String {
    let Some(ty) = rd32(d, 0x10) else {
        return "unknown".to_string();
    };
    let mut s = match ty {
        DEVICE_BOOT => "boot".to_string(),
        DEVICE_PARTITION_EX => match (rd32(d, 0x34), d.get(0x20..0x30), d.get(0x38..0x48)) {
            (Some(0), Some(p), Some(disk)) => format!(
                "partition=(GPT disk {} partition {})",
                guid_string(disk).unwrap_or_default(),
                guid_string(p).unwrap_or_default()
            ),
            (Some(1), Some(_), Some(_)) => format!(
                "partition=(MBR disk signature {:08x}, partition at byte {})",
                rd32(d, 0x38).unwrap_or(0),
                rd64(d, 0x20).unwrap_or(0)
            ),
            _ => format!("unknown (partition style {:?})", rd32(d, 0x34)),
        },
        DEVICE_LOCATE => "locate".to_string(),
        t => format!("unknown (device type {})", t),
    };
    if let Some(g) = d.get(..16).filter(|g| g.iter().any(|&b| b != 0)) {
        s.push(',');
        s.push_str(&guid_string(g).unwrap_or_default());
    }
    s
}

/// The device element data of `boot` (the boot manager's own device).
pub fn boot_device() -> Vec<u8> {
    let mut d = alloc::vec![0u8; 16 + DEVICE_SIZE as usize];
    d[0x10..0x14].copy_from_slice(&DEVICE_BOOT.to_le_bytes());
    d[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
    d[0x18..0x1c].copy_from_slice(&DEVICE_SIZE.to_le_bytes());
    d
}

fn utf16_items(d: &[u8]) -> Vec<String> {
    let units: Vec<u16> = d
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    units
        .split(|&u| u == 0)
        .filter(|s| !s.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

fn hex(d: &[u8]) -> String {
    let mut s = String::new();
    for (i, b) in d.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{:02x}", b));
    }
    s
}

/// An element's value as bcdedit shows it, one string per output line (object and integer
/// lists take a line per item). `name` names objects (well-known names, `{default}`).
/// Data that does not fit the element's format is shown as hex bytes with its size.
pub fn decode_value(obj_type: u32, e: &Element, name: &dyn Fn(&str) -> String) -> Vec<String> {
    let d = &e.data;
    let raw = || {
        alloc::vec![format!(
            "(bad data, type {} {} bytes: {})",
            e.reg_type,
            d.len(),
            hex(d)
        )]
    };
    match element_format(e.ty) {
        FORMAT_DEVICE => alloc::vec![decode_device(d)],
        FORMAT_STRING if d.len().is_multiple_of(2) => alloc::vec![from_utf16z(d)],
        FORMAT_OBJECT if d.len().is_multiple_of(2) => alloc::vec![name(&from_utf16z(d))],
        FORMAT_OBJECT_LIST if d.len().is_multiple_of(2) => {
            utf16_items(d).iter().map(|g| name(g)).collect()
        }
        FORMAT_INTEGER if !d.is_empty() && d.len() <= 8 => {
            let mut b = [0u8; 8];
            b[..d.len()].copy_from_slice(d);
            let v = u64::from_le_bytes(b);
            let en = element_name(obj_type, e.ty);
            match integer_names(&en).get(v as usize) {
                Some(n) => alloc::vec![n.to_string()],
                None => alloc::vec![v.to_string()],
            }
        }
        FORMAT_BOOLEAN if !d.is_empty() => {
            alloc::vec![if d.iter().any(|&b| b != 0) {
                "Yes"
            } else {
                "No"
            }
            .to_string()]
        }
        FORMAT_INTEGER_LIST if d.len().is_multiple_of(8) => d
            .chunks_exact(8)
            .map(|c| format!("{:#x}", rd64(c, 0).unwrap_or(0)))
            .collect(),
        _ => raw(),
    }
}

/// Text of `bcdedit /enum` for `objects` in the order given: a heading, a dashed line, then
/// `identifier` and each element, names padded to 24 columns, a blank line between objects.
/// `verbose` (`/v`) shows GUIDs; otherwise well-known names and `{default}` for the boot
/// manager's default object.
pub fn enum_text(all: &[Object], shown: &[&Object], verbose: bool) -> String {
    let default = all
        .iter()
        .find(|o| well_known_name(&o.guid) == Some("{bootmgr}"))
        .and_then(|o| o.element(0x2300_0003))
        .filter(|e| e.data.len().is_multiple_of(2))
        .map(|e| from_utf16z(&e.data));
    let name = |g: &str| -> String {
        if verbose {
            return g.to_string();
        }
        if default
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case(g))
        {
            return "{default}".to_string();
        }
        well_known_name(g)
            .map(str::to_string)
            .unwrap_or_else(|| g.to_string())
    };
    let mut s = String::new();
    for (i, o) in shown.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let head = object_heading(o.ty, &o.guid);
        s.push_str(&head);
        s.push('\n');
        s.push_str(&"-".repeat(head.chars().count()));
        s.push('\n');
        s.push_str(&format!("{:<24}{}\n", "identifier", name(&o.guid)));
        for e in &o.elements {
            let lines = decode_value(o.ty, e, &name);
            let en = element_name(o.ty, e.ty);
            for (j, l) in lines.iter().enumerate() {
                s.push_str(&format!(
                    "{:<24}{}\n",
                    if j == 0 { en.as_str() } else { "" },
                    l
                ));
            }
            if lines.is_empty() {
                s.push_str(&format!("{}\n", en));
            }
        }
    }
    s
}

/// Display rank of an object type for `/enum all` (firmware boot manager, boot manager, boot
/// loaders, other applications, settings objects, device objects).
pub fn type_rank(ty: u32) -> u32 {
    match ty {
        0x1010_0001 => 0,
        0x1010_0002 => 1,
        TYPE_OSLOADER => 2,
        TYPE_RESUME => 3,
        0x1020_0005 => 4,
        0x1030_0006 => 5,
        _ => match ty >> 28 {
            1 => 6,
            2 => 7,
            3 => 8,
            _ => 9,
        },
    }
}

/// Resolves an identifier as bcdedit takes it: a GUID in braces, a well-known name (`{bootmgr}`,
/// `{legacy}`...), or `{default}` (the boot manager's default object). Returns the GUID, lower
/// case. `STATUS_INVALID_PARAMETER` for anything else or `{current}` (no running system).
pub fn resolve_id(h: &Hive, id: &str) -> Result<String> {
    let id_l = id.to_ascii_lowercase();
    if id_l == "{default}" {
        let bm = object_key(h, "{9dea862c-5cdd-4e70-acc1-f32b344d4795}")?;
        return match element_data(h, bm, 0x2300_0003)? {
            Some((_, d)) => Ok(from_utf16z(&d).to_ascii_lowercase()),
            None => Err(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND)),
        };
    }
    if id_l == "{current}" {
        return Err(Error::Status(STATUS_INVALID_PARAMETER));
    }
    if let Some((_, g)) = ALIASES.iter().find(|(n, _)| *n == id_l) {
        return Ok(g.to_string());
    }
    if let Some((g, _)) = WELL_KNOWN.iter().find(|(_, n)| *n == id_l) {
        return Ok(g.to_string());
    }
    if is_guid(&id_l) {
        return Ok(id_l);
    }
    Err(Error::Status(STATUS_INVALID_PARAMETER))
}

fn object_key(h: &Hive, guid: &str) -> Result<KeyRef> {
    let objects = h.open_subkey(h.root(), "Objects")?;
    h.open_subkey(objects, guid)
}

/// The type (`Description\Type`) of object `guid`.
pub fn object_type(h: &Hive, guid: &str) -> Result<u32> {
    let o = object_key(h, guid)?;
    let d = h.open_subkey(o, "Description")?;
    let v = h.query_value(d, "Type")?;
    rd32(&v.data, 0).ok_or(Error::Status(STATUS_REGISTRY_CORRUPT))
}

fn element_data(h: &Hive, obj: KeyRef, ty: u32) -> Result<Option<(u32, Vec<u8>)>> {
    let e = match h
        .open_subkey(obj, "Elements")
        .and_then(|els| h.open_subkey(els, &format!("{:08X}", ty)))
    {
        Ok(e) => e,
        Err(Error::Status(s)) if s == STATUS_OBJECT_NAME_NOT_FOUND => return Ok(None),
        Err(x) => return Err(x),
    };
    match h.query_value(e, "Element") {
        Ok(v) => Ok(Some((v.ty, v.data))),
        Err(Error::Status(s)) if s == STATUS_OBJECT_NAME_NOT_FOUND => Ok(None),
        Err(x) => Err(x),
    }
}

/// Writes element `ty` of object `guid` (the object must exist).
pub fn put_element(h: &mut Hive, guid: &str, ty: u32, reg_type: u32, data: &[u8]) -> Result<()> {
    let o = object_key(h, guid)?;
    let els = h.create_key(o, "Elements")?;
    let e = h.create_key(els, &format!("{:08X}", ty))?;
    h.set_value(e, "Element", reg_type, data)
}

/// Deletes element `ty` of object `guid` (`bcdedit /deletevalue`).
/// `STATUS_OBJECT_NAME_NOT_FOUND` when the object has no such element.
pub fn delete_element(h: &mut Hive, guid: &str, ty: u32) -> Result<()> {
    let o = object_key(h, guid)?;
    let els = h.open_subkey(o, "Elements")?;
    let e = h.open_subkey(els, &format!("{:08X}", ty))?;
    h.delete_tree(e)
}

fn multi_sz(items: &[String]) -> Vec<u8> {
    let mut v = Vec::new();
    for i in items {
        v.extend_from_slice(&utf16z(i));
    }
    v.extend_from_slice(&[0, 0]);
    v
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Encodes `value` (bcdedit's text) for element `ty` of an object of type `obj_type`: strings
/// as they are, objects and object lists as identifiers (space separated), integers as numbers
/// (decimal or 0x) or the names bcdedit shows, booleans as yes/no/on/off/true/false/1/0,
/// integer lists as numbers, devices `boot` only (a partition needs the disk, which an offline
/// store does not have). Returns the registry type and data, or a message naming the problem.
pub fn encode_value(
    h: &Hive,
    obj_type: u32,
    ty: u32,
    value: &[&str],
) -> core::result::Result<(u32, Vec<u8>), String> {
    let one = || -> core::result::Result<&str, String> {
        match value {
            [v] => Ok(v),
            _ => Err(format!("{} takes one value", element_name(obj_type, ty))),
        }
    };
    let id =
        |s: &str| resolve_id(h, s).map_err(|_| format!("\"{}\" is not an object identifier", s));
    Ok(match element_format(ty) {
        FORMAT_DEVICE => match one()?.to_ascii_lowercase().as_str() {
            "boot" => (REG_BINARY, boot_device()),
            v => {
                return Err(format!(
                    "device \"{}\": only \"boot\" can be set in an offline store",
                    v
                ))
            }
        },
        FORMAT_STRING => (REG_SZ, utf16z(&value.join(" "))),
        FORMAT_OBJECT => (REG_SZ, utf16z(&id(one()?)?)),
        FORMAT_OBJECT_LIST => {
            let ids = value
                .iter()
                .map(|s| id(s))
                .collect::<core::result::Result<Vec<_>, _>>()?;
            (REG_MULTI_SZ, multi_sz(&ids))
        }
        FORMAT_INTEGER => {
            let v = one()?;
            let en = element_name(obj_type, ty);
            let n = match integer_names(&en)
                .iter()
                .position(|n| n.eq_ignore_ascii_case(v))
            {
                Some(i) => i as u64,
                None => parse_u64(v).ok_or_else(|| format!("\"{}\" is not a number", v))?,
            };
            (REG_BINARY, n.to_le_bytes().to_vec())
        }
        FORMAT_BOOLEAN => {
            let b = match one()?.to_ascii_lowercase().as_str() {
                "yes" | "on" | "true" | "1" => 1u8,
                "no" | "off" | "false" | "0" => 0,
                v => return Err(format!("\"{}\" is not a boolean (yes/no, on/off)", v)),
            };
            (REG_BINARY, alloc::vec![b])
        }
        FORMAT_INTEGER_LIST => {
            let mut d = Vec::new();
            for v in value {
                let n = parse_u64(v).ok_or_else(|| format!("\"{}\" is not a number", v))?;
                d.extend_from_slice(&n.to_le_bytes());
            }
            (REG_BINARY, d)
        }
        f => return Err(format!("element format {} cannot be set", f)),
    })
}

/// Creates object `guid` of type `ty` with a description (`bcdedit /create`).
/// `STATUS_OBJECT_NAME_COLLISION` if it exists.
pub fn create_object(h: &mut Hive, guid: &str, ty: u32, description: Option<&str>) -> Result<()> {
    if !is_guid(guid) {
        return Err(Error::Status(STATUS_INVALID_PARAMETER));
    }
    let root = h.root();
    let objects = h.create_key(root, "Objects")?;
    if h.open_subkey(objects, guid).is_ok() {
        return Err(Error::Status(STATUS_OBJECT_NAME_COLLISION));
    }
    let o = h.create_key(objects, &guid.to_ascii_lowercase())?;
    let d = h.create_key(o, "Description")?;
    h.set_value(d, "Type", REG_DWORD, &ty.to_le_bytes())?;
    if let Some(desc) = description {
        put_element(h, guid, 0x1200_0004, REG_SZ, &utf16z(desc))?;
    }
    Ok(())
}

/// Deletes object `guid` and every reference to it: list entries are removed from object lists,
/// object elements naming it are deleted (`bcdedit /delete` with its default `/cleanup`).
pub fn delete_object(h: &mut Hive, guid: &str) -> Result<()> {
    let o = object_key(h, guid)?;
    h.delete_tree(o)?;
    for obj in read_objects(h)? {
        for e in &obj.elements {
            match element_format(e.ty) {
                FORMAT_OBJECT if from_utf16z(&e.data).eq_ignore_ascii_case(guid) => {
                    delete_element(h, &obj.guid, e.ty)?;
                }
                FORMAT_OBJECT_LIST => {
                    let items = utf16_items(&e.data);
                    let kept: Vec<String> = items
                        .iter()
                        .filter(|g| !g.eq_ignore_ascii_case(guid))
                        .cloned()
                        .collect();
                    if kept.len() != items.len() {
                        put_element(h, &obj.guid, e.ty, REG_MULTI_SZ, &multi_sz(&kept))?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// How `/displayorder` changes the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListEdit {
    /// Replace the list.
    Set,
    /// Append (moving an entry already listed to the end).
    AddLast,
    /// Prepend (moving an entry already listed to the front).
    AddFirst,
    /// Remove the entries.
    Remove,
}

/// Changes object list element `ty` of object `guid` (`/displayorder`, `/toolsdisplayorder`,
/// `/bootsequence`). Each id must name an existing object (GUIDs given lower case).
pub fn edit_list(h: &mut Hive, guid: &str, ty: u32, ids: &[String], how: ListEdit) -> Result<()> {
    let o = object_key(h, guid)?;
    let cur = match element_data(h, o, ty)? {
        Some((_, d)) => utf16_items(&d),
        None => Vec::new(),
    };
    let objects = h.open_subkey(h.root(), "Objects")?;
    if how != ListEdit::Remove {
        for i in ids {
            h.open_subkey(objects, i)?;
        }
    }
    let without = |l: &[String]| -> Vec<String> {
        l.iter()
            .filter(|g| !ids.iter().any(|i| i.eq_ignore_ascii_case(g)))
            .cloned()
            .collect()
    };
    let new = match how {
        ListEdit::Set => ids.to_vec(),
        ListEdit::AddLast => {
            let mut l = without(&cur);
            l.extend_from_slice(ids);
            l
        }
        ListEdit::AddFirst => {
            let mut l = ids.to_vec();
            l.extend(without(&cur));
            l
        }
        ListEdit::Remove => without(&cur),
    };
    put_element(h, guid, ty, REG_MULTI_SZ, &multi_sz(&new))
}
