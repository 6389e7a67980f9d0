//! The Windows Boot Manager (bootmgfw.efi): reads the BCD store from its own
//! volume (`\EFI\Microsoft\Boot\BCD`, a registry hive), finds the system
//! volume, loads the default entry's OS loader (`\Windows\System32\winload.efi`)
//! and starts it.
//!
//! With more than one entry the boot manager shows its menu and waits up to
//! the store's timeout, unless a one-time boot sequence names the entry to
//! start (as `bcdedit /bootsequence` does on NT): the test harness and
//! non-interactive `cargo xtask run` pass the entry's GUID in the QEMU
//! fw_cfg file `opt/org.ntrs/bootsequence`, so nobody waits for a menu that
//! no person can answer.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::format;
use bootlib::fs::find_system_volume;
use uefi::boot::{self as uboot, LoadImageSource};
use uefi::prelude::*;
use uefi::println;
use uefi::proto::loaded_image::LoadedImage;

#[entry]
fn main() -> Status {
    let handoff_tsc = bootlib::rdtsc();
    uefi::helpers::init().unwrap();
    println!("ntrs boot manager");
    let (loader_path, os_options) = read_bcd_choice().unwrap_or_else(|| {
        (
            "\\Windows\\System32\\winload.efi".into(),
            alloc::string::String::new(),
        )
    });
    let mut vol = match find_system_volume() {
        Ok(v) => v,
        Err(s) => {
            println!("bootmgr: no system volume with \\Windows\\System32\\ntoskrnl.exe ({s})");
            return Status::NOT_FOUND;
        }
    };
    let winload = match vol.read_file(&loader_path) {
        Ok(d) => d,
        Err(s) => {
            println!("bootmgr: cannot read winload.efi ({s})");
            return Status::NOT_FOUND;
        }
    };
    drop(vol);
    let child = match uboot::load_image(
        uboot::image_handle(),
        LoadImageSource::FromBuffer {
            buffer: &winload,
            file_path: None,
        },
    ) {
        Ok(h) => h,
        Err(e) => {
            println!("bootmgr: LoadImage(winload.efi) failed: {:?}", e.status());
            return e.status();
        }
    };
    // Hand the firmware hand-off time to winload through its load options
    // (shifted by the time the menu waited for the user).
    let handoff_tsc = handoff_tsc + MENU_TICKS.load(core::sync::atomic::Ordering::Relaxed);
    let opts: &'static str = alloc::boxed::Box::leak(
        format!("handoff_tsc={handoff_tsc};osloadoptions={os_options}\0").into_boxed_str(),
    );
    if let Ok(mut li) = uboot::open_protocol_exclusive::<LoadedImage>(child) {
        // SAFETY: `opts` is leaked, so it outlives the child image.
        unsafe { li.set_load_options(opts.as_ptr(), opts.len() as u32) };
    }
    match uboot::start_image(child) {
        Ok(()) => Status::SUCCESS,
        Err(e) => {
            println!("bootmgr: winload returned {:?}", e.status());
            e.status()
        }
    }
}

/// The fw_cfg file holding a one-time boot sequence: the GUID of the entry
/// to start without showing the menu.
const BOOT_SEQUENCE: &str = "opt/org.ntrs/bootsequence";

/// TSC ticks spent waiting at the menu (left out of the boot-time figure).
static MENU_TICKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Reads the BCD store from the boot manager's own volume; with more than one
/// OS loader entry shows the menu ("Windows Boot Manager") and waits up to the
/// store's timeout for a digit, else takes the default. Returns the chosen
/// entry's loader path and load options.
fn read_bcd_choice() -> Option<(alloc::string::String, alloc::string::String)> {
    use uefi::proto::media::fs::SimpleFileSystem;
    let li = uboot::open_protocol_exclusive::<LoadedImage>(uboot::image_handle()).ok()?;
    let device = li.device()?;
    drop(li);
    let sfs = uboot::open_protocol_exclusive::<SimpleFileSystem>(device).ok()?;
    let mut fs = uefi::fs::FileSystem::new(sfs);
    let path = uefi::CString16::try_from("\\EFI\\Microsoft\\Boot\\BCD").ok()?;
    let bytes = match fs.read(path.as_ref()) {
        Ok(b) => b,
        Err(_) => {
            println!("bootmgr: no BCD store; using the default OS loader path");
            return None;
        }
    };
    let store = match regf::Hive::from_bytes(&bytes).and_then(|h| regf::bcd::read_bcd(&h)) {
        Ok(s) => s,
        Err(e) => {
            println!("bootmgr: the BCD store is unusable ({e})");
            return None;
        }
    };
    let entries: alloc::vec::Vec<&regf::bcd::BcdEntry> = store.entries.iter().collect();
    let default = store
        .default
        .as_ref()
        .and_then(|g| entries.iter().position(|e| e.guid.eq_ignore_ascii_case(g)))
        .unwrap_or(0);
    let mut chosen = default;
    let timeout = store.timeout.unwrap_or(0);
    let sequence: Option<alloc::string::String> =
        bootlib::fwcfg::read_file(BOOT_SEQUENCE).map(|d| {
            alloc::string::String::from_utf8_lossy(&d)
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .into()
        });
    if let Some(guid) = sequence {
        // A one-time boot sequence: start that entry, show no menu.
        match entries
            .iter()
            .position(|e| e.guid.eq_ignore_ascii_case(&guid))
        {
            Some(i) => chosen = i,
            None => println!("bootmgr: the boot sequence names no entry {guid}; using the default"),
        }
    } else if entries.len() > 1 && timeout > 0 {
        println!("Windows Boot Manager: choose an operating system to start:");
        for (i, e) in entries.iter().enumerate() {
            println!(
                "  {}. {}{}",
                i + 1,
                e.description.as_deref().unwrap_or("?"),
                if i == default { " (default)" } else { "" }
            );
        }
        let waited_from = bootlib::rdtsc();
        // Tenths of a second; a hostile BCD's huge timeout saturates
        // instead of wrapping.
        let mut left = timeout.saturating_mul(10);
        while left > 0 {
            let key = uefi::system::with_stdin(|i| i.read_key().ok().flatten());
            if let Some(uefi::proto::console::text::Key::Printable(c)) = key {
                let c = char::from(c);
                if let Some(d) = c.to_digit(10) {
                    if (1..=entries.len() as u32).contains(&d) {
                        chosen = d as usize - 1;
                        break;
                    }
                }
                if c == '\r' {
                    break;
                }
            }
            uboot::stall(core::time::Duration::from_millis(100));
            left -= 1;
        }
        MENU_TICKS.store(
            bootlib::rdtsc() - waited_from,
            core::sync::atomic::Ordering::Relaxed,
        );
    }
    let e = entries.get(chosen)?;
    println!(
        "bootmgr: BCD: {} entr{}, starting {} '{}'",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" },
        e.guid,
        e.description.as_deref().unwrap_or("")
    );
    Some((e.path.clone()?, e.load_options.clone().unwrap_or_default()))
}
