//! The bundled libkrun: the pinned `libkrun` crate, a Rust dependency.
//!
//! Nothing is compiled here: cargo builds the crate, and `src/lib.rs` links
//! it (`extern crate krun`) unless a system libkrun was chosen.

/// The pinned version, kept equal to the `=` requirement in Cargo.toml.
pub const VERSION: &str = "1.19.7";

/// Whether the `bundled` feature made the crate available.
pub fn available() -> bool {
    std::env::var_os("CARGO_FEATURE_BUNDLED").is_some()
}
