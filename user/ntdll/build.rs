//! Generates the `Nt*`/`Zw*` system-call stubs from the one service list
//! (`nt::syscalls::SERVICES`, lib/nt/src/syscalls.rs) into
//! `$OUT_DIR/stubs.s`, which `src/syscalls.rs` assembles: every service the
//! kernel implements gets both exports, with the kernel's number.
//!
//! ntdll is a DLL without an entry point (the kernel starts every thread at
//! `LdrInitializeThunk`; `AddressOfEntryPoint` is 0, as on Windows), based
//! at lld's default DLL base (programs pass their own entry and base in
//! their build.rs; `.cargo/config.toml` holds only the shared flags).
use std::fmt::Write;

/// `mov r10, rcx` as Windows encodes it (4C 8B D1, MOV r64, r/m64); LLVM's
/// assembler would pick the equivalent 49 89 CA.
const MOV_R10_RCX: &str = ".byte 0x4C, 0x8B, 0xD1";

fn main() {
    let mut asm = String::new();
    let mut exports = String::new();
    asm.push_str(".section .text$nt_stubs,\"xr\"\n");
    for s in nt::syscalls::SERVICES {
        let zw = format!(
            "Zw{}",
            s.name
                .strip_prefix("Nt")
                .expect("service names start with Nt")
        );
        writeln!(
            asm,
            ".p2align 5\n.globl {nt}\n.globl {zw}\n{nt}:\n{zw}:\n\
             {MOV_R10_RCX}\nmov eax, {n:#x}\ntest byte ptr [0x7FFE0308], 1\njne 2f\n\
             syscall\nret\n2:\nint 0x2E\nret",
            nt = s.name,
            n = s.number,
        )
        .unwrap();
        writeln!(exports, ".ascii \" -export:{} -export:{zw}\"", s.name).unwrap();
    }
    asm.push_str(".section .drectve,\"yn\"\n");
    asm.push_str(&exports);
    asm.push_str(".text\n");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("stubs.s");
    std::fs::write(out, asm).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../lib/nt/src/syscalls.rs");
    println!("cargo:rustc-cdylib-link-arg=/noentry");
    println!("cargo:rustc-cdylib-link-arg=/base:0x180000000");
}
