//! Points the linker at ntoskrnl.lib, the import library the kernel build
//! writes beside ntoskrnl.efi (`ntos/build.rs`). `NTRS_NTOSKRNL_LIB_DIR`
//! overrides the directory. A link search path from a dependency's build
//! script applies to every crate that depends on it: each driver.
use std::path::PathBuf;

fn main() {
    let dir = match std::env::var("NTRS_NTOSKRNL_LIB_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
            .join("../../ntos/target/x86_64-unknown-uefi/release"),
    };
    let lib = dir.join("ntoskrnl.lib");
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-uefi") && !lib.exists() {
        panic!(
            "{} does not exist: build the kernel first (cd ntos && cargo build --release), \
             or run cargo xtask, which builds it before the drivers",
            lib.display()
        );
    }
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:rerun-if-env-changed=NTRS_NTOSKRNL_LIB_DIR");
}
