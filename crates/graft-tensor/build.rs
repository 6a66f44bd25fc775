//! Fails early, with the fix, when libtorch has not been set up.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        return;
    }
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        panic!(
            "LIBTORCH is not set: run `cargo xtask setup` in the graft repository (it sets up libtorch 2.13.0)"
        );
    };
    let lib = std::path::Path::new(&libtorch)
        .join("lib")
        .join("libtorch_cpu.so");
    println!("cargo:rerun-if-changed={}", lib.display());
    if !lib.exists() {
        panic!(
            "\n\nlibtorch was not found at {} .\nRun `cargo xtask setup` in the graft repository: it assembles libtorch 2.13.0 in the cache and links it there.\n(`cargo xtask test` and `cargo xtask reproduce` do this by themselves.)\n",
            std::path::Path::new(&libtorch).display()
        );
    }
}
