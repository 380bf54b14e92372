//! Locates the eBPF object built by `cargo xtask build` and hands its path to
//! the crate, which embeds it. Without it the build fails with instructions.
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let object = std::env::var_os("WACKAMOLE_EBPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/bpfel-unknown-none/release/wackamole-ebpf"));
    println!("cargo:rerun-if-env-changed=WACKAMOLE_EBPF_OBJECT");
    println!("cargo:rerun-if-changed={}", object.display());
    if !object.is_file() {
        panic!(
            "\n\nthe eBPF object {} does not exist.\nBuild it (and the agent) with `cargo xtask build`; \
             `cargo xtask setup` installs what that needs.\n\n",
            object.display()
        );
    }
    println!("cargo:rustc-env=WACKAMOLE_EBPF_OBJECT={}", object.display());
}
