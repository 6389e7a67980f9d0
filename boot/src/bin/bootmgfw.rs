//! The Windows Boot Manager (bootmgfw.efi): finds the system volume, loads the
//! OS loader `\Windows\System32\winload.efi` and starts it. BCD parsing and the
//! boot menu come with the registry work; until then the one entry is implicit.
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
    let mut vol = match find_system_volume() {
        Ok(v) => v,
        Err(s) => {
            println!("bootmgr: no system volume with \\Windows\\System32\\ntoskrnl.exe ({s})");
            return Status::NOT_FOUND;
        }
    };
    let winload = match vol.read_file("\\Windows\\System32\\winload.efi") {
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
    // Hand the firmware hand-off time to winload through its load options.
    let opts: &'static str =
        alloc::boxed::Box::leak(format!("handoff_tsc={handoff_tsc}\0").into_boxed_str());
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
