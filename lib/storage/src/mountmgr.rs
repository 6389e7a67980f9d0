//! Mount manager policy (*Windows Internals* 7th ed. Part 2 ch. 11, "The
//! mount manager"): the names it gives volumes,
//! the unique IDs volumes report (`IOCTL_MOUNTDEV_QUERY_UNIQUE_ID`), the
//! `\REGISTRY\MACHINE\SYSTEM\MountedDevices` values it writes (its persistent
//! name database), and drive-letter assignment.
//!
//! Value data formats (libyal winreg-kb "Mounted devices"): a GPT partition's
//! unique ID is 24 bytes, `"DMIO:ID:"` then the partition's unique GUID in
//! its on-disk byte order; an MBR partition's is 12 bytes, the disk
//! signature then the partition's byte offset.

use crate::guid::{types, Guid};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// `GPT_BASIC_DATA_ATTRIBUTE_NO_DRIVE_LETTER`.
pub const GPT_BASIC_DATA_ATTRIBUTE_NO_DRIVE_LETTER: u64 = 0x8000_0000_0000_0000;
/// `GPT_BASIC_DATA_ATTRIBUTE_HIDDEN`.
pub const GPT_BASIC_DATA_ATTRIBUTE_HIDDEN: u64 = 0x4000_0000_0000_0000;

/// The unique ID of a GPT basic volume: `"DMIO:ID:"` + the partition GUID.
pub fn gpt_unique_id(partition_guid: &Guid) -> [u8; 24] {
    let mut v = [0u8; 24];
    v[..8].copy_from_slice(b"DMIO:ID:");
    v[8..].copy_from_slice(&partition_guid.to_bytes());
    v
}

/// The unique ID of an MBR partition: disk signature + byte offset.
pub fn mbr_unique_id(signature: u32, offset: u64) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&signature.to_le_bytes());
    v[4..].copy_from_slice(&offset.to_le_bytes());
    v
}

/// The partition GUID in a GPT unique ID, if it is one.
pub fn parse_gpt_unique_id(data: &[u8]) -> Option<Guid> {
    if data.len() != 24 || &data[..8] != b"DMIO:ID:" {
        return None;
    }
    Some(Guid::from_bytes(data[8..].try_into().ok()?))
}

/// `\Device\Harddisk<disk>\Partition<n>` (n = 0: the whole disk, a link to `DR<disk>`).
pub fn partition_device_name(disk: u32, partition: u32) -> String {
    format!("\\Device\\Harddisk{disk}\\Partition{partition}")
}

/// `\Device\Harddisk<disk>\DR<disk>`: the disk class driver's device.
pub fn disk_device_name(disk: u32) -> String {
    format!("\\Device\\Harddisk{disk}\\DR{disk}")
}

/// `\Device\HarddiskVolume<n>`.
pub fn volume_device_name(n: u32) -> String {
    format!("\\Device\\HarddiskVolume{n}")
}

/// `Volume{guid}` (the leaf under `\GLOBAL??`; the registry value name is
/// `\??\Volume{guid}`).
pub fn volume_guid_leaf(g: &Guid) -> String {
    format!("Volume{{{g}}}")
}

/// `X:`.
pub fn drive_letter_leaf(letter: u8) -> String {
    format!("{}:", letter as char)
}

/// `\DosDevices\X:`, the MountedDevices value name of a drive letter.
pub fn dos_devices_value_name(letter: u8) -> String {
    format!("\\DosDevices\\{}:", letter as char)
}

/// `\??\Volume{guid}`, the MountedDevices value name of a volume GUID.
pub fn volume_value_name(g: &Guid) -> String {
    format!("\\??\\{}", volume_guid_leaf(g))
}

/// A volume as the mount manager sees it when it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Its device name (`\Device\HarddiskVolumeN`).
    pub device: String,
    /// `IOCTL_MOUNTDEV_QUERY_UNIQUE_ID`.
    pub unique_id: Vec<u8>,
    /// The GPT partition GUID (the volume GUID name), when a GPT volume.
    pub partition_guid: Option<Guid>,
    /// The GPT partition type.
    pub partition_type: Guid,
    /// The GPT attributes.
    pub attributes: u64,
    /// Whether this is the system (boot) volume.
    pub system: bool,
}

impl Volume {
    /// Whether it may get a drive letter automatically: basic data volumes
    /// without the no-drive-letter attribute. The ESP and MSR never do.
    pub fn letter_eligible(&self) -> bool {
        self.partition_type == types::BASIC_DATA
            && self.attributes & GPT_BASIC_DATA_ATTRIBUTE_NO_DRIVE_LETTER == 0
    }
}

/// What the mount manager does for the volumes: symbolic links under
/// `\GLOBAL??` and `MountedDevices` values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// (leaf under `\GLOBAL??`, target device name).
    pub links: Vec<(String, String)>,
    /// (MountedDevices value name, REG_BINARY data).
    pub values: Vec<(String, Vec<u8>)>,
}

/// Assigns names: every volume with a GUID gets `Volume{guid}`; drive
/// letters come first from the persistent database (`existing` MountedDevices
/// values whose data is the volume's unique ID), then the system volume gets
/// `C:` if free, then other eligible volumes the next free letter from `C:`
/// (A: and B: are left to floppies, as Windows does).
pub fn plan(volumes: &[Volume], existing: &[(String, Vec<u8>)]) -> Plan {
    let mut p = Plan::default();
    let mut used = [false; 26];
    let mut letters: Vec<Option<u8>> = alloc::vec![None; volumes.len()];
    // Persistent letters.
    for (name, data) in existing {
        let Some(l) = parse_dos_devices_letter(name) else {
            continue;
        };
        if let Some(i) = volumes.iter().position(|v| v.unique_id == *data) {
            if letters[i].is_none() && !used[(l - b'A') as usize] {
                letters[i] = Some(l);
                used[(l - b'A') as usize] = true;
            }
        } else {
            // A letter held for a volume not present now stays reserved.
            used[(l - b'A') as usize] = true;
        }
    }
    let mut order: Vec<usize> = (0..volumes.len()).collect();
    order.sort_by_key(|&i| !volumes[i].system);
    for i in order {
        if letters[i].is_some() || !volumes[i].letter_eligible() {
            continue;
        }
        if let Some(k) = (2..26).find(|&k| !used[k]) {
            used[k] = true;
            letters[i] = Some(b'A' + k as u8);
        }
    }
    for (v, l) in volumes.iter().zip(&letters) {
        if let Some(g) = v.partition_guid {
            p.links.push((volume_guid_leaf(&g), v.device.clone()));
            p.values.push((volume_value_name(&g), v.unique_id.clone()));
        }
        if let Some(l) = l {
            p.links.push((drive_letter_leaf(*l), v.device.clone()));
            p.values
                .push((dos_devices_value_name(*l), v.unique_id.clone()));
        }
    }
    p
}

/// One mount point the mount manager answers `IOCTL_MOUNTMGR_QUERY_POINTS`
/// with: a name from its database (`\DosDevices\C:`, `\??\Volume{...}`),
/// the volume's unique ID and its (nonpersistent) device name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPoint {
    /// The symbolic link name, as the `MountedDevices` value is named.
    pub link: String,
    /// The volume's unique ID.
    pub unique_id: Vec<u8>,
    /// `\Device\HarddiskVolumeN`.
    pub device: String,
}

/// The mount points of a plan: one per `MountedDevices` value, with the
/// device of the volume whose unique ID it holds.
pub fn mount_points(plan: &Plan, volumes: &[Volume]) -> Vec<MountPoint> {
    plan.values
        .iter()
        .filter_map(|(name, id)| {
            let v = volumes.iter().find(|v| v.unique_id == *id)?;
            Some(MountPoint {
                link: name.clone(),
                unique_id: id.clone(),
                device: v.device.clone(),
            })
        })
        .collect()
}

fn utf16_bytes(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn u16le(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u32le(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// `IOCTL_MOUNTMGR_QUERY_POINTS`: `input` is a `MOUNTMGR_MOUNT_POINT` whose
/// non-empty members (offsets from the start of the input) select the
/// points whose link name (case-insensitive), unique ID or device name
/// (case-insensitive) equal them; all empty selects every point. The answer
/// is `MOUNTMGR_MOUNT_POINTS` (offsets from the start of the output; the
/// names and IDs after the array, not NUL-terminated). Statuses: input
/// shorter than `MOUNTMGR_MOUNT_POINT` or a member outside it, or output
/// shorter than `sizeof(MOUNTMGR_MOUNT_POINTS)`: `STATUS_INVALID_PARAMETER`;
/// criteria matching nothing: `STATUS_OBJECT_NAME_NOT_FOUND`; output too
/// small for the answer: `Size` and `NumberOfMountPoints` only, with
/// `STATUS_BUFFER_OVERFLOW`. Returns (status, `Information`).
pub fn query_points(points: &[MountPoint], input: &[u8], out: &mut [u8]) -> (nt::NtStatus, usize) {
    use nt::status::*;
    use wdk::mountdev::*;
    const MP: usize = core::mem::size_of::<MOUNTMGR_MOUNT_POINT>();
    if input.len() < MP || out.len() < MOUNTMGR_MOUNT_POINTS_SIZE {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    let member = |off: usize, len: usize| -> Result<Option<&[u8]>, ()> {
        if len == 0 {
            return Ok(None);
        }
        match off.checked_add(len) {
            Some(end) if end <= input.len() => Ok(Some(&input[off..end])),
            _ => Err(()),
        }
    };
    let (Ok(link), Ok(id), Ok(dev)) = (
        member(u32le(input, 0), u16le(input, 4)),
        member(u32le(input, 8), u16le(input, 12)),
        member(u32le(input, 16), u16le(input, 20)),
    ) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    let text = |b: &[u8]| -> String {
        let u: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&u)
    };
    let (link, dev) = (link.map(text), dev.map(text));
    let selected: Vec<&MountPoint> = points
        .iter()
        .filter(|p| link.as_ref().is_none_or(|l| p.link.eq_ignore_ascii_case(l)))
        .filter(|p| id.is_none_or(|i| p.unique_id == i))
        .filter(|p| {
            dev.as_ref()
                .is_none_or(|d| p.device.eq_ignore_ascii_case(d))
        })
        .collect();
    if selected.is_empty() && (link.is_some() || id.is_some() || dev.is_some()) {
        return (STATUS_OBJECT_NAME_NOT_FOUND, 0);
    }
    let mut data = Vec::new();
    let mut entries = Vec::new();
    let data_start = MOUNTMGR_MOUNT_POINTS_ENTRIES_OFFSET + MP * selected.len();
    for p in &selected {
        let l = utf16_bytes(&p.link);
        let d = utf16_bytes(&p.device);
        let lo = data_start + data.len();
        data.extend_from_slice(&l);
        let io = data_start + data.len();
        data.extend_from_slice(&p.unique_id);
        let dof = data_start + data.len();
        data.extend_from_slice(&d);
        entries.push(MOUNTMGR_MOUNT_POINT {
            SymbolicLinkNameOffset: lo as u32,
            SymbolicLinkNameLength: l.len() as u16,
            Reserved1: 0,
            UniqueIdOffset: io as u32,
            UniqueIdLength: p.unique_id.len() as u16,
            Reserved2: 0,
            DeviceNameOffset: dof as u32,
            DeviceNameLength: d.len() as u16,
            Reserved3: 0,
        });
    }
    let size = data_start + data.len();
    out[..4].copy_from_slice(&(size as u32).to_le_bytes());
    out[4..8].copy_from_slice(&(selected.len() as u32).to_le_bytes());
    if out.len() < size {
        return (STATUS_BUFFER_OVERFLOW, MOUNTMGR_MOUNT_POINTS_SIZE);
    }
    for (k, e) in entries.iter().enumerate() {
        let at = MOUNTMGR_MOUNT_POINTS_ENTRIES_OFFSET + k * MP;
        let mut b = [0u8; MP];
        b[0..4].copy_from_slice(&e.SymbolicLinkNameOffset.to_le_bytes());
        b[4..6].copy_from_slice(&e.SymbolicLinkNameLength.to_le_bytes());
        b[8..12].copy_from_slice(&e.UniqueIdOffset.to_le_bytes());
        b[12..14].copy_from_slice(&e.UniqueIdLength.to_le_bytes());
        b[16..20].copy_from_slice(&e.DeviceNameOffset.to_le_bytes());
        b[20..22].copy_from_slice(&e.DeviceNameLength.to_le_bytes());
        out[at..at + MP].copy_from_slice(&b);
    }
    out[data_start..size].copy_from_slice(&data);
    (STATUS_SUCCESS, size.max(MOUNTMGR_MOUNT_POINTS_SIZE))
}

/// `C` from `\DosDevices\C:`.
pub fn parse_dos_devices_letter(name: &str) -> Option<u8> {
    let rest = name.strip_prefix("\\DosDevices\\")?.as_bytes();
    match rest {
        [l, b':'] if l.is_ascii_alphabetic() => Some(l.to_ascii_uppercase()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn vol(n: u32, guid: &str, ty: Guid, system: bool) -> Volume {
        let g = Guid::parse(guid).unwrap();
        Volume {
            device: volume_device_name(n),
            unique_id: gpt_unique_id(&g).to_vec(),
            partition_guid: Some(g),
            partition_type: ty,
            attributes: 0,
            system,
        }
    }

    #[test]
    fn unique_id_formats() {
        let g = Guid::parse("01234567-89ab-cdef-0123-456789abcdef").unwrap();
        let id = gpt_unique_id(&g);
        assert_eq!(&id[..8], b"DMIO:ID:");
        assert_eq!(&id[8..12], &[0x67, 0x45, 0x23, 0x01]);
        assert_eq!(&id[12..14], &[0xab, 0x89]);
        assert_eq!(&id[16..], &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        assert_eq!(parse_gpt_unique_id(&id), Some(g));
        assert_eq!(parse_gpt_unique_id(&id[..20]), None);
        let m = mbr_unique_id(0xB2F6B2F6, 63 * 512);
        assert_eq!(m, [0xf6, 0xb2, 0xf6, 0xb2, 0x00, 0x7e, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn names() {
        let g = Guid::parse("01234567-89AB-cdef-0123-456789abcdef").unwrap();
        assert_eq!(
            volume_value_name(&g),
            "\\??\\Volume{01234567-89ab-cdef-0123-456789abcdef}"
        );
        assert_eq!(dos_devices_value_name(b'C'), "\\DosDevices\\C:");
        assert_eq!(
            partition_device_name(0, 2),
            "\\Device\\Harddisk0\\Partition2"
        );
        assert_eq!(disk_device_name(0), "\\Device\\Harddisk0\\DR0");
        assert_eq!(volume_device_name(2), "\\Device\\HarddiskVolume2");
        assert_eq!(parse_dos_devices_letter("\\DosDevices\\d:"), Some(b'D'));
        assert_eq!(parse_dos_devices_letter("\\DosDevices\\CD:"), None);
        assert_eq!(parse_dos_devices_letter("\\??\\Volume{x}"), None);
    }

    #[test]
    fn system_volume_gets_c_and_esp_no_letter() {
        let esp = vol(
            1,
            "11111111-1111-1111-1111-111111111111",
            types::EFI_SYSTEM,
            false,
        );
        let data = vol(
            3,
            "33333333-3333-3333-3333-333333333333",
            types::BASIC_DATA,
            false,
        );
        let sys = vol(
            2,
            "22222222-2222-2222-2222-222222222222",
            types::BASIC_DATA,
            true,
        );
        let p = plan(&[esp.clone(), data.clone(), sys.clone()], &[]);
        let link = |leaf: &str| p.links.iter().find(|l| l.0 == leaf).map(|l| l.1.clone());
        assert_eq!(link("C:"), Some("\\Device\\HarddiskVolume2".to_string()));
        assert_eq!(link("D:"), Some("\\Device\\HarddiskVolume3".to_string()));
        assert_eq!(
            link("Volume{11111111-1111-1111-1111-111111111111}"),
            Some("\\Device\\HarddiskVolume1".to_string())
        );
        assert_eq!(p.links.len(), 5);
        let c = p.values.iter().find(|v| v.0 == "\\DosDevices\\C:").unwrap();
        assert_eq!(c.1, sys.unique_id);
        assert_eq!(p.values.len(), 5);
    }

    #[test]
    fn persistent_letters_win_and_reserved_letters_are_skipped() {
        let data = vol(
            3,
            "33333333-3333-3333-3333-333333333333",
            types::BASIC_DATA,
            false,
        );
        let sys = vol(
            2,
            "22222222-2222-2222-2222-222222222222",
            types::BASIC_DATA,
            true,
        );
        let gone = gpt_unique_id(&Guid::parse("44444444-4444-4444-4444-444444444444").unwrap());
        let existing = vec![
            ("\\DosDevices\\C:".to_string(), gone.to_vec()),
            ("\\DosDevices\\E:".to_string(), sys.unique_id.clone()),
        ];
        let p = plan(&[data, sys], &existing);
        let link = |leaf: &str| p.links.iter().find(|l| l.0 == leaf).map(|l| l.1.clone());
        assert_eq!(link("E:"), Some("\\Device\\HarddiskVolume2".to_string()));
        assert_eq!(link("C:"), None);
        assert_eq!(link("D:"), Some("\\Device\\HarddiskVolume3".to_string()));
    }

    #[test]
    fn no_drive_letter_attribute() {
        let mut v = vol(
            2,
            "22222222-2222-2222-2222-222222222222",
            types::BASIC_DATA,
            true,
        );
        v.attributes = GPT_BASIC_DATA_ATTRIBUTE_NO_DRIVE_LETTER;
        let p = plan(&[v], &[]);
        assert_eq!(p.links.len(), 1);
        assert!(p.links[0].0.starts_with("Volume{"));
    }
    #[test]
    fn query_points_layout_and_criteria() {
        use nt::status::*;
        let v1 = vol(
            1,
            "11111111-2222-3333-4444-555555555555",
            types::EFI_SYSTEM,
            false,
        );
        let v2 = vol(
            2,
            "01234567-89ab-cdef-0123-456789abcdef",
            types::BASIC_DATA,
            true,
        );
        let vols = vec![v1.clone(), v2.clone()];
        let p = plan(&vols, &[]);
        let pts = mount_points(&p, &vols);
        assert_eq!(pts.len(), 3);
        let all = [0u8; 24];
        let mut out = vec![0u8; 4096];
        let (s, n) = query_points(&pts, &all, &mut out);
        assert_eq!(s, STATUS_SUCCESS);
        let size = u32::from_le_bytes(out[0..4].try_into().unwrap()) as usize;
        assert_eq!(size, n);
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 3);
        // Each entry's names lie in the answer and read back.
        let mut links = Vec::new();
        for k in 0..3 {
            let e = &out[8 + 24 * k..8 + 24 * (k + 1)];
            let (lo, ll) = (u32le(e, 0), u16le(e, 4));
            let (io, il) = (u32le(e, 8), u16le(e, 12));
            let (dof, dl) = (u32le(e, 16), u16le(e, 20));
            assert!(lo + ll <= size && io + il <= size && dof + dl <= size);
            let s16 = |o: usize, l: usize| {
                let u: Vec<u16> = out[o..o + l]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16(&u).unwrap()
            };
            links.push((s16(lo, ll), out[io..io + il].to_vec(), s16(dof, dl)));
        }
        assert!(links.contains(&(
            "\\DosDevices\\C:".to_string(),
            v2.unique_id.clone(),
            v2.device.clone()
        )));
        assert!(links
            .iter()
            .any(|l| l.0.starts_with("\\??\\Volume{11111111") && l.2 == v1.device));
        // Criteria: a device name selects its points only.
        let dev: Vec<u8> = v2
            .device
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let mut input = vec![0u8; 24];
        input[16..20].copy_from_slice(&24u32.to_le_bytes());
        input[20..22].copy_from_slice(&(dev.len() as u16).to_le_bytes());
        input.extend_from_slice(&dev);
        let (s, _) = query_points(&pts, &input, &mut out);
        assert_eq!(s, STATUS_SUCCESS);
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 2);
        // A unique ID matching nothing.
        let mut input = vec![0u8; 24];
        input[8..12].copy_from_slice(&24u32.to_le_bytes());
        input[12..14].copy_from_slice(&2u16.to_le_bytes());
        input.extend_from_slice(b"zz");
        assert_eq!(
            query_points(&pts, &input, &mut out).0,
            STATUS_OBJECT_NAME_NOT_FOUND
        );
        // A member outside the input, short buffers.
        let mut bad = vec![0u8; 24];
        bad[0..4].copy_from_slice(&20u32.to_le_bytes());
        bad[4..6].copy_from_slice(&8u16.to_le_bytes());
        assert_eq!(
            query_points(&pts, &bad, &mut out).0,
            STATUS_INVALID_PARAMETER
        );
        assert_eq!(
            query_points(&pts, &all[..23], &mut out).0,
            STATUS_INVALID_PARAMETER
        );
        assert_eq!(
            query_points(&pts, &all, &mut out[..31]).0,
            STATUS_INVALID_PARAMETER
        );
        let mut small = vec![0u8; 32];
        assert_eq!(
            query_points(&pts, &all, &mut small),
            (STATUS_BUFFER_OVERFLOW, 32)
        );
        assert_eq!(
            u32::from_le_bytes(small[0..4].try_into().unwrap()) as usize,
            size
        );
        // No volumes: an empty answer.
        assert_eq!(query_points(&[], &all, &mut out), (STATUS_SUCCESS, 32));
        assert_eq!(&out[..8], &[8, 0, 0, 0, 0, 0, 0, 0]);
    }
}
