//! A native program (entry `NtProcessStartup`, base 0x140000000). It
//! exports no dispatcher: the kernel uses ntdll's `KiUserExceptionDispatcher`.
fn main() {
    println!("cargo:rustc-link-arg-bins=/entry:NtProcessStartup");
    println!("cargo:rustc-link-arg-bins=/base:0x140000000");
    println!("cargo:rerun-if-changed=build.rs");
}
