//! Link ntoskrnl.exe as NT links it: native subsystem, entry KiSystemStartup,
//! preferred base in the upper half, and the exports drivers import.
fn main() {
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-uefi") {
        for arg in [
            "/entry:KiSystemStartup",
            "/subsystem:native",
            "/base:0xFFFFF80000400000",
            "/export:KeBugCheckEx",
            "/export:KeGetCurrentIrql",
            "/export:DbgPrint",
            "/export:ExAllocatePool2",
            "/export:ExFreePoolWithTag",
        ] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
