//! QEMU's firmware configuration device (fw_cfg), I/O ports 0x510/0x511.
//! The test harness passes one-time load options through the file
//! `opt/org.ntrs/loadoptions`; they are appended to the boot entry's options.

use alloc::string::String;
use alloc::vec::Vec;

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;
const FW_CFG_SIGNATURE: u16 = 0x0000;
const FW_CFG_FILE_DIR: u16 = 0x0019;

fn select(key: u16) {
    // SAFETY: writing the fw_cfg selector port only changes which item the data port reads.
    unsafe {
        core::arch::asm!("out dx, ax", in("dx") SELECTOR, in("ax") key, options(nomem, nostack))
    };
}

fn read_bytes(buf: &mut [u8]) {
    for b in buf {
        let v: u8;
        // SAFETY: reading the fw_cfg data port returns the next byte of the selected item.
        unsafe {
            core::arch::asm!("in al, dx", in("dx") DATA, out("al") v, options(nomem, nostack))
        };
        *b = v;
    }
}

/// Reads a named fw_cfg file, if the device exists and has it.
pub fn read_file(name: &str) -> Option<Vec<u8>> {
    select(FW_CFG_SIGNATURE);
    let mut sig = [0u8; 4];
    read_bytes(&mut sig);
    if &sig != b"QEMU" {
        return None;
    }
    select(FW_CFG_FILE_DIR);
    let mut n = [0u8; 4];
    read_bytes(&mut n);
    let count = u32::from_be_bytes(n);
    let mut found = None;
    for _ in 0..count.min(4096) {
        let mut e = [0u8; 64];
        read_bytes(&mut e);
        let size = u32::from_be_bytes([e[0], e[1], e[2], e[3]]) as usize;
        let key = u16::from_be_bytes([e[4], e[5]]);
        let fname = &e[8..];
        let len = fname.iter().position(|&c| c == 0).unwrap_or(56);
        if &fname[..len] == name.as_bytes() {
            found = Some((key, size));
        }
    }
    let (key, size) = found?;
    select(key);
    let mut data = alloc::vec![0u8; size.min(1 << 20)];
    read_bytes(&mut data);
    Some(data)
}

/// The harness's load options (`/TESTS`, `/BENCH`), or an empty string.
pub fn load_options() -> String {
    read_file("opt/org.ntrs/loadoptions")
        .map(|d| String::from_utf8_lossy(&d).trim_end_matches('\0').into())
        .unwrap_or_default()
}
