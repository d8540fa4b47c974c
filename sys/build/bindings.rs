//! The Rust declarations of `include/krun.h`.
//!
//! By default the checked-in `src/bindings.rs` is used and nothing runs
//! here. With the `bindgen` feature they are generated into
//! `$OUT_DIR/bindings.rs` (and copied over the checked-in file when
//! `KRUNBOX_SYS_UPDATE_BINDINGS=1`).

#[cfg(not(feature = "bindgen"))]
pub fn provide() {}

#[cfg(feature = "bindgen")]
pub fn provide() {
    use std::path::Path;

    use crate::env;

    let manifest = env::manifest_dir();
    let header = Path::new(&manifest).join("include/krun.h");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("bindings.rs");
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .allowlist_function("krun_.*")
        .allowlist_var("KRUN_.*")
        .default_macro_constant_type(bindgen::MacroTypeVariation::Signed)
        .use_core()
        .layout_tests(true)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| crate::fail(&format!("bindgen failed on {}: {e}", header.display())));
    bindings
        .write_to_file(&out)
        .unwrap_or_else(|e| crate::fail(&format!("cannot write {}: {e}", out.display())));
    if env::flag(env::UPDATE_BINDINGS) {
        let checked_in = Path::new(&manifest).join("src/bindings.rs");
        std::fs::copy(&out, &checked_in).unwrap_or_else(|e| {
            crate::fail(&format!("cannot write {}: {e}", checked_in.display()))
        });
    }
}
