//! With the `bindgen` feature, the bindings generated now from
//! include/krun.h must equal the checked-in src/bindings.rs.

#[cfg(feature = "bindgen")]
#[test]
fn checked_in_bindings_match_the_header() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/bindings.rs"));
    let checked_in = include_str!("../src/bindings.rs");
    assert!(
        generated == checked_in,
        "src/bindings.rs is stale: regenerate it with \
         KRUNBOX_SYS_UPDATE_BINDINGS=1 cargo build -p krunbox-sys --features bindgen"
    );
}
