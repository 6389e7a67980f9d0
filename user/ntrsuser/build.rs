//! A native program: entry `NtProcessStartup`, based where Windows' linker
//! puts 64-bit programs (see ../.cargo/config.toml for the shared flags).
fn main() {
    println!("cargo:rustc-link-arg-bins=/entry:NtProcessStartup");
    println!("cargo:rustc-link-arg-bins=/base:0x140000000");
    println!("cargo:rerun-if-changed=build.rs");
}
