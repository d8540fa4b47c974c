//! The environment variables that steer the build (see sys/README.md).

/// `1`: use the bundled libkrun even when a system one is found.
pub const BUNDLED: &str = "LIBKRUN_SYS_BUNDLED";
/// `1`: never fall back to the bundled libkrun; fail without a system one.
pub const NO_VENDOR: &str = "LIBKRUN_NO_VENDOR";
/// A directory holding `libkrun.so` / `libkrun.dylib`: link it without
/// asking pkg-config (its version is then taken on trust).
pub const LIB_DIR: &str = "LIBKRUN_LIB_DIR";
/// `1` (with the `bindgen` feature): also write the generated bindings over
/// the checked-in `src/bindings.rs`.
pub const UPDATE_BINDINGS: &str = "KRUNBOX_SYS_UPDATE_BINDINGS";

/// Variables read by the pkg-config crate on our behalf.
const PKG_CONFIG_VARS: &[&str] = &[
    "PKG_CONFIG_PATH",
    "PKG_CONFIG_LIBDIR",
    "PKG_CONFIG_SYSROOT_DIR",
];

/// Tells cargo to rerun the build script when any steering variable changes.
pub fn declare_reruns() {
    for var in [BUNDLED, NO_VENDOR, LIB_DIR, UPDATE_BINDINGS]
        .iter()
        .chain(PKG_CONFIG_VARS)
    {
        println!("cargo:rerun-if-env-changed={var}");
    }
}

/// Whether a boolean variable is set to something other than `0` or empty.
pub fn flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The value of a variable, if set and not empty.
pub fn value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The sys crate's own directory.
pub fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")
}
