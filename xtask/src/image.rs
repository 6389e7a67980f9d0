//! Disk image builder: a GPT disk with an EFI system partition (FAT32) and a
//! system partition (NTFS, formatted and filled by ntrs's own `ntfs` crate)
//! holding `\Windows`. Pure Rust on the host: no root, no loop mounts.

use crate::{Images, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

const MIB: u64 = 1024 * 1024;
const ESP_SIZE: u64 = 40 * MIB;
const SYSTEM_SIZE: u64 = 64 * MIB;
const DISK_SIZE: u64 = MIB + ESP_SIZE + SYSTEM_SIZE + MIB;

/// A window onto one partition of the disk file.
struct Slice<'a> {
    file: &'a mut File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Write for Slice<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "partition full"));
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let put = self.file.write(&buf[..n])?;
        self.pos += put as u64;
        Ok(put)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Slice<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => p as i64,
            SeekFrom::End(d) => self.len as i64 + d,
            SeekFrom::Current(d) => self.pos as i64 + d,
        };
        if new < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

fn io_err(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Formats a FAT32 volume in `slice` and copies `files` (path in volume, host file) into it.
fn fill_fat32(
    file: &mut File,
    (start, len): (u64, u64),
    label: &[u8; 11],
    files: &[(&str, Vec<u8>)],
) -> Result<()> {
    let mut slice = Slice {
        file,
        start,
        len,
        pos: 0,
    };
    fatfs::format_volume(
        &mut slice,
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .volume_label(*label),
    )
    .map_err(io_err("format FAT32"))?;
    slice.seek(SeekFrom::Start(0)).map_err(io_err("seek"))?;
    let fs =
        fatfs::FileSystem::new(slice, fatfs::FsOptions::new()).map_err(io_err("mount FAT32"))?;
    for (dest, data) in files {
        let parts: Vec<&str> = dest.split('\\').filter(|p| !p.is_empty()).collect();
        let mut dir = fs.root_dir();
        for p in &parts[..parts.len() - 1] {
            dir = match dir.open_dir(p) {
                Ok(d) => d,
                Err(_) => dir.create_dir(p).map_err(io_err("mkdir"))?,
            };
        }
        let mut f = dir
            .create_file(parts[parts.len() - 1])
            .map_err(io_err("create"))?;
        f.truncate().map_err(io_err("truncate"))?;
        f.write_all(data).map_err(io_err("write"))?;
    }
    fs.unmount().map_err(io_err("unmount"))?;
    Ok(())
}

/// Formats an NTFS volume for the partition at `(start, len)` with our
/// `ntfs` crate (in memory), copies `files` into it, and writes it out.
fn fill_ntfs(
    file: &mut File,
    (start, len): (u64, u64),
    label: &str,
    files: &[(&str, Vec<u8>)],
) -> Result<()> {
    let dev = ntfs::device::MemDevice::new(len as usize);
    let opts = ntfs::format::FormatOptions {
        label: label.to_string(),
        hidden_sectors: (start / 512) as u32,
        // The system volume has 8.3 names, as Windows setup leaves it.
        short_names: true,
        ..Default::default()
    };
    let mut vol = ntfs::format::format(dev, &opts).map_err(|e| format!("format NTFS: {e}"))?;
    for (dest, data) in files {
        let path = format!("\\{dest}");
        if let Some((dir, _)) = path.rsplit_once('\\') {
            if !dir.is_empty() {
                vol.create_dir_all(dir)
                    .map_err(|e| format!("NTFS mkdir {dir}: {e}"))?;
            }
        }
        vol.write_file(&path, data)
            .map_err(|e| format!("NTFS write {path}: {e}"))?;
    }
    let problems = ntfs::check::check(&mut vol).map_err(|e| format!("NTFS check: {e}"))?;
    if let Some(p) = problems.first() {
        return Err(format!("NTFS check of the new system volume: {p}"));
    }
    let data = vol.into_device().data;
    file.seek(SeekFrom::Start(start)).map_err(io_err("seek"))?;
    file.write_all(&data).map_err(io_err("write NTFS volume"))?;
    Ok(())
}

/// A registry hive file built from a `.reg` source with the regf crate.
fn build_hive(src: &Path, name: &str) -> Result<Vec<u8>> {
    let bytes = fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let text = regf::regtext::decode_reg_file(&bytes)
        .map_err(|e| format!("{}:{}: {}", src.display(), e.line, e.message))?;
    let mut hive = regf::Hive::new_empty("ROOT").map_err(|e| format!("{name} hive: {e}"))?;
    hive.set_file_name(&format!("\\SystemRoot\\System32\\Config\\{name}"));
    if let Some(sddl) = hive_root_sddl(name) {
        // Set before the keys are made: every key shares the root's descriptor.
        let sd = security::sddl::parse(sddl).map_err(|e| format!("{name} descriptor: {e}"))?;
        let root = hive.root();
        hive.set_key_security(root, &sd.to_bytes())
            .map_err(|e| format!("{name} descriptor: {e}"))?;
    }
    regf::regtext::import_reg_text(&mut hive, &text)
        .map_err(|e| format!("{}:{}: {}", src.display(), e.line, e.message))?;
    let out = hive.to_bytes();
    let problems = regf::check(&out);
    if let Some(p) = problems.first() {
        return Err(format!("{name} hive check: {p}"));
    }
    Ok(out)
}

/// The hives of `\\Windows\\System32\\config` besides SYSTEM and SOFTWARE, which the
/// configuration manager loads once the system volume is mounted (`CmpInitializeHiveList`).
pub const OTHER_HIVES: [&str; 3] = ["SAM", "SECURITY", "DEFAULT"];

/// The descriptor of a hive's keys when it is not the default one: SAM and SECURITY grant
/// SYSTEM full access (`KEY_ALL_ACCESS`) and Administrators `WRITE_DAC | READ_CONTROL`.
fn hive_root_sddl(name: &str) -> Option<&'static str> {
    matches!(name, "SAM" | "SECURITY")
        .then_some("O:BAG:SYD:P(A;CI;0xf003f;;;SY)(A;CI;0x60000;;;BA)")
}

/// The BCD entry that starts ntrs (the default).
pub const BCD_DEFAULT_ENTRY: &str = "{6b9a7d36-0c2f-4a39-8d1c-4e8c1b2a7f01}";
/// The BCD entry that starts ntrs with `/TESTS`.
pub const BCD_TESTS_ENTRY: &str = "{6b9a7d36-0c2f-4a39-8d1c-4e8c1b2a7f02}";

/// The BCD store on the ESP: the boot manager object and two OS loader
/// entries, ntrs (default) and ntrs with the kernel tests.
fn build_bcd() -> Result<Vec<u8>> {
    let spec = regf::bcd::BcdSpec {
        key_name: "BCD00000001".into(),
        bootmgr_path: "\\EFI\\Microsoft\\Boot\\bootmgfw.efi".into(),
        bootmgr_device: Vec::new(),
        // The menu shows only when a person can choose (`cargo xtask run`
        // on a terminal, where the digit can also be typed ahead); the
        // harness names the entry in a one-time boot sequence instead.
        timeout: 1,
        default: 0,
        entries: vec![
            regf::bcd::BcdEntrySpec {
                guid: BCD_DEFAULT_ENTRY.into(),
                description: "ntrs".into(),
                path: "\\Windows\\System32\\winload.efi".into(),
                systemroot: "\\Windows".into(),
                load_options: None,
                device: Vec::new(),
            },
            regf::bcd::BcdEntrySpec {
                guid: BCD_TESTS_ENTRY.into(),
                description: "ntrs (kernel tests)".into(),
                path: "\\Windows\\System32\\winload.efi".into(),
                systemroot: "\\Windows".into(),
                load_options: Some("/TESTS".into()),
                device: Vec::new(),
            },
        ],
    };
    let h = regf::bcd::build_bcd(&spec).map_err(|e| format!("BCD: {e}"))?;
    Ok(h.to_bytes())
}

/// Writes the whole disk image to `out`.
pub fn build_disk(images: &Images, out: &Path) -> Result<()> {
    fs::create_dir_all(out.parent().unwrap()).map_err(io_err("mkdir build"))?;
    let tmp = out.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("create image"))?;
    file.set_len(DISK_SIZE).map_err(io_err("size image"))?;

    let lb = gpt::disk::LogicalBlockSize::Lb512;
    let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(((DISK_SIZE / 512) - 1) as u32);
    mbr.overwrite_lba0(&mut file)
        .map_err(|e| format!("MBR: {e}"))?;
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(lb)
        .create_from_device(&mut file, None)
        .map_err(|e| format!("GPT: {e}"))?;
    let esp = disk
        .add_partition(
            "EFI system partition",
            ESP_SIZE,
            gpt::partition_types::EFI,
            0,
            None,
        )
        .map_err(|e| format!("GPT: {e}"))?;
    let sys = disk
        .add_partition(
            "Basic data partition",
            SYSTEM_SIZE,
            gpt::partition_types::BASIC,
            0,
            None,
        )
        .map_err(|e| format!("GPT: {e}"))?;
    let parts = disk.partitions().clone();
    disk.write().map_err(|e| format!("GPT write: {e}"))?;
    let range = |id: u32| -> Result<(u64, u64)> {
        let p = &parts[&id];
        let start = p.bytes_start(lb).map_err(|e| format!("GPT: {e}"))?;
        let len = p.bytes_len(lb).map_err(|e| format!("GPT: {e}"))?;
        Ok((start, len))
    };

    let read = |p: &Path| fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let bootmgr = read(&images.bootmgr)?;
    fill_fat32(
        &mut file,
        range(esp)?,
        b"SYSTEM     ",
        &[
            ("EFI\\BOOT\\BOOTX64.EFI", bootmgr.clone()),
            ("EFI\\Microsoft\\Boot\\bootmgfw.efi", bootmgr),
            ("EFI\\Microsoft\\Boot\\BCD", build_bcd()?),
        ],
    )?;
    let hives = crate::root().join("image/registry");
    let mut files = vec![
        (
            "Windows\\System32\\winload.efi".to_string(),
            read(&images.winload)?,
        ),
        (
            "Windows\\System32\\ntoskrnl.exe".to_string(),
            read(&images.kernel)?,
        ),
        (
            "Windows\\System32\\config\\SYSTEM".to_string(),
            build_hive(&hives.join("SYSTEM.reg"), "SYSTEM")?,
        ),
        (
            "Windows\\System32\\config\\SOFTWARE".to_string(),
            build_hive(&hives.join("SOFTWARE.reg"), "SOFTWARE")?,
        ),
    ];
    for name in OTHER_HIVES {
        files.push((
            format!("Windows\\System32\\config\\{name}"),
            build_hive(&hives.join(format!("{name}.reg")), name)?,
        ));
    }
    for (name, data) in &images.drivers {
        files.push((format!("Windows\\System32\\drivers\\{name}"), data.clone()));
    }
    for (name, data) in &images.user {
        files.push((format!("Windows\\System32\\{name}"), data.clone()));
    }
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    fill_ntfs(&mut file, range(sys)?, "NTRS", &files)?;
    drop(file);
    fs::rename(&tmp, out).map_err(io_err("rename image"))?;
    Ok(())
}

/// Interop check of the image's NTFS system volume with Debian's ntfs-3g
/// tools: `ntfsfix -n` finds nothing to fix, and `ntfscat` reads every OS
/// file back byte-exact. Returns (check name, passed, detail) rows.
pub fn check_system_volume_with_ntfs3g(img: &Path, images: &Images) -> Vec<(String, bool, String)> {
    let mut rows = Vec::new();
    let part = match extract_partition(img, 2) {
        Ok(p) => p,
        Err(e) => {
            rows.push(("image/ntfs-extract".to_string(), false, e));
            return rows;
        }
    };
    let out = std::process::Command::new("ntfsfix")
        .arg("-n")
        .arg(&part)
        .output();
    match out {
        Ok(o) => rows.push((
            "image/ntfsfix-accepts-system-volume".to_string(),
            o.status.success(),
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .last()
                .unwrap_or("")
                .to_string(),
        )),
        Err(e) => rows.push((
            "image/ntfsfix-accepts-system-volume".to_string(),
            false,
            e.to_string(),
        )),
    }
    for (name, host) in [
        ("Windows/System32/ntoskrnl.exe", &images.kernel),
        ("Windows/System32/winload.efi", &images.winload),
    ] {
        let check = format!("image/ntfscat-{}", name.rsplit('/').next().unwrap_or(name));
        let want = fs::read(host).unwrap_or_default();
        match std::process::Command::new("ntfscat")
            .arg(&part)
            .arg(name)
            .output()
        {
            Ok(o) => rows.push((
                check,
                o.status.success() && o.stdout == want && !want.is_empty(),
                format!("{} bytes read, {} expected", o.stdout.len(), want.len()),
            )),
            Err(e) => rows.push((check, false, e.to_string())),
        }
    }
    // The SYSTEM hive we wrote, read back through ntfs-3g and hivex.
    let hive_tmp = img.with_extension("SYSTEM.hive");
    let ok = std::process::Command::new("ntfscat")
        .arg(&part)
        .arg("Windows/System32/config/SYSTEM")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| fs::write(&hive_tmp, o.stdout).ok())
        .is_some();
    let got = if ok {
        std::process::Command::new("hivexget")
            .arg(&hive_tmp)
            .arg("\\ControlSet001\\Services\\Ntfs")
            .arg("Group")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    rows.push((
        "image/hivex-reads-system-hive".to_string(),
        got == "Boot File System",
        format!("hivexget returned '{got}'"),
    ));
    let _ = fs::remove_file(&hive_tmp);
    let _ = fs::remove_file(&part);
    rows
}

/// The system volume of `img` after a boot: (the volume checks — the NTFS
/// checker of `lib/ntfs` (what `ntrs-ntfs check` runs) and ntfs-3g's
/// `ntfsfix -n` — and what `hivexget` reads of `key` `value` in the hive
/// file `hive_path`, taken out of the volume with `lib/ntfs`, as
/// `ntrs-ntfs cp` does). The hive is read as a file whose logs are not
/// applied, so a value that only a log holds is not found.
pub fn check_volume_and_read_value(
    img: &Path,
    hive_path: &str,
    key: &str,
    value: &str,
) -> (Result<()>, Result<String>) {
    let part = match extract_partition(img, 2) {
        Ok(p) => p,
        Err(e) => return (Err(e.clone()), Err(e)),
    };
    let result = (|| {
        let data = fs::read(&part).map_err(|e| format!("{}: {e}", part.display()))?;
        let mut vol = ntfs::Volume::open(ntfs::device::MemDevice::from_vec(data))
            .map_err(|e| format!("NTFS open: {e}"))?;
        let problems = ntfs::check::check(&mut vol).map_err(|e| format!("NTFS check: {e}"))?;
        let hive = vol
            .read_file(&format!("\\{}", hive_path.replace('/', "\\")))
            .map_err(|e| format!("{hive_path}: {e}"));
        Ok::<_, String>((problems, hive))
    })();
    let (volume, hive) = match result {
        Err(e) => (Err(e.clone()), Err(e)),
        Ok((problems, hive)) => {
            let mut volume = match problems.first() {
                Some(p) => Err(format!("NTFS check: {p} ({} problems)", problems.len())),
                None => Ok(()),
            };
            if volume.is_ok() {
                volume = match std::process::Command::new("ntfsfix")
                    .arg("-n")
                    .arg(&part)
                    .output()
                {
                    Ok(o) if o.status.success() => Ok(()),
                    Ok(o) => Err(format!(
                        "ntfsfix -n: {}",
                        String::from_utf8_lossy(&o.stdout).trim()
                    )),
                    Err(e) => Err(format!("ntfsfix: {e}")),
                };
            }
            let value = hive.and_then(|bytes| {
                let tmp = img.with_extension("hive-check");
                fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
                let out = std::process::Command::new("hivexget")
                    .arg(&tmp)
                    .arg(key)
                    .arg(value)
                    .output();
                let _ = fs::remove_file(&tmp);
                match out {
                    Ok(o) if o.status.success() => {
                        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
                    }
                    Ok(o) => Err(format!(
                        "hivexget: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    )),
                    Err(e) => Err(format!("hivexget: {e}")),
                }
            });
            (volume, value)
        }
    };
    let _ = fs::remove_file(&part);
    (volume, hive)
}

/// Copies partition `n` (1-based) of a GPT disk image to a file beside it.
fn extract_partition(img: &Path, n: u32) -> Result<std::path::PathBuf> {
    let mut f = File::open(img).map_err(io_err("open image"))?;
    let disk = gpt::GptConfig::new()
        .writable(false)
        .open_from_device(&mut f)
        .map_err(|e| format!("GPT: {e}"))?;
    let lb = gpt::disk::LogicalBlockSize::Lb512;
    let p = disk
        .partitions()
        .get(&n)
        .ok_or(format!("no partition {n}"))?;
    let start = p.bytes_start(lb).map_err(|e| format!("GPT: {e}"))?;
    let len = p.bytes_len(lb).map_err(|e| format!("GPT: {e}"))?;
    drop(disk);
    let mut buf = vec![0u8; len as usize];
    f.seek(SeekFrom::Start(start)).map_err(io_err("seek"))?;
    f.read_exact(&mut buf).map_err(io_err("read partition"))?;
    let out = img.with_extension(format!("part{n}"));
    fs::write(&out, &buf).map_err(io_err("write partition"))?;
    Ok(out)
}

#[cfg(test)]
mod bcd_store_tests {
    use super::*;
    use regf::bcdedit as be;

    /// The store the image's ESP gets, as `ntrs-reg bcd` shows it, and after the edits
    /// `ntrs-reg bcd /create`, `/set`, `/displayorder`, `/default` make, still read by the boot
    /// manager's parser (`regf::bcd::read_bcd`, what bootmgfw runs).
    #[test]
    fn image_bcd_store_shows_and_edits() {
        let bytes = build_bcd().unwrap();
        let mut h = regf::Hive::from_bytes(&bytes).unwrap();
        let objs = be::read_objects(&h).unwrap();
        let shown: Vec<&be::Object> = objs.iter().collect();
        let t = be::enum_text(&objs, &shown, false);
        assert!(t.contains("identifier              {bootmgr}\n"), "{t}");
        assert!(t.contains("identifier              {default}\n"), "{t}");
        assert!(t.contains("loadoptions             /TESTS\n"), "{t}");
        assert!(
            t.contains(&format!("identifier              {BCD_TESTS_ENTRY}\n")),
            "{t}"
        );
        let new = "{6b9a7d36-0c2f-4a39-8d1c-4e8c1b2a7f03}";
        be::create_object(&mut h, new, be::TYPE_OSLOADER, Some("edited")).unwrap();
        for (name, v) in [
            ("path", "\\Windows\\System32\\winload.efi"),
            ("systemroot", "\\Windows"),
            ("loadoptions", "/X"),
        ] {
            let et = be::element_type(be::TYPE_OSLOADER, name).unwrap();
            let (rt, d) = be::encode_value(&h, be::TYPE_OSLOADER, et, &[v]).unwrap();
            be::put_element(&mut h, new, et, rt, &d).unwrap();
        }
        let bm = regf::bcd::BOOTMGR_GUID;
        be::edit_list(
            &mut h,
            bm,
            0x2400_0001,
            &[new.to_string()],
            be::ListEdit::AddLast,
        )
        .unwrap();
        be::put_element(&mut h, bm, 0x2300_0003, regf::REG_SZ, &regf::utf16z(new)).unwrap();
        let h = regf::Hive::from_bytes(&h.to_bytes()).unwrap();
        let st = regf::bcd::read_bcd(&h).unwrap();
        assert_eq!(st.default.as_deref(), Some(new));
        assert_eq!(st.display_order, [BCD_DEFAULT_ENTRY, BCD_TESTS_ENTRY, new]);
        let e = st.entries.iter().find(|e| e.guid == new).unwrap();
        assert_eq!(e.load_options.as_deref(), Some("/X"));
        assert_eq!(e.description.as_deref(), Some("edited"));
    }
}
