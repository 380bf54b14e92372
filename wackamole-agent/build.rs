//! Locates the eBPF object built by `cargo xtask build` and hands its path to
//! the crate, which embeds it.
//!
//! Without the object (stable Rust only, no bpf-linker) the build still
//! succeeds so that the pure core (allocator, config, codecs) can be built and
//! tested anywhere: an empty stub is embedded instead, and opening the data
//! plane fails at run time with "built without the XDP program".
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
    let embedded = if object.is_file() {
        object
    } else {
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let stub = out.join("wackamole-ebpf.stub");
        std::fs::write(&stub, b"").expect("writing the empty eBPF stub into OUT_DIR");
        println!(
            "cargo:warning=no eBPF object at {}: building without the XDP program \
             (the data plane will refuse to start); `cargo xtask build` builds it",
            object.display()
        );
        stub
    };
    println!(
        "cargo:rustc-env=WACKAMOLE_EBPF_OBJECT={}",
        embedded.display()
    );
}
