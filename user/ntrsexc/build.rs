//! Exports the user-mode dispatchers by name: the kernel finds them in the
//! image's export directory until ntdll is mapped into processes.
fn main() {
    println!("cargo:rustc-link-arg=/export:KiUserExceptionDispatcher");
    println!("cargo:rustc-link-arg=/export:KiUserApcDispatcher");
}
