//! Where the krunbox guest agent's sources are.
//!
//! The agent itself is the `krunbox-agent` binary (feature `agent`, on by
//! default): a static Linux program that the `krunbox` library injects
//! into every VM. The `krunbox` crate's build script depends on this
//! library, with no features, only to learn where cargo put these sources,
//! and builds the binary from them for the guest.

/// The directory of this crate's `Cargo.toml`.
pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
