//! A native program (entry `NtProcessStartup`, base 0x140000000, as
//! ntrsuser) that exports its user-mode dispatchers by name: the kernel
//! finds them in the image's export directory until ntdll has them.
fn main() {
    println!("cargo:rustc-link-arg-bins=/entry:NtProcessStartup");
    println!("cargo:rustc-link-arg-bins=/base:0x140000000");
    println!("cargo:rustc-link-arg-bins=/export:KiUserExceptionDispatcher");
    println!("cargo:rustc-link-arg-bins=/export:KiUserApcDispatcher");
    println!("cargo:rerun-if-changed=build.rs");
}
