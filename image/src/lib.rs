//! OCI images for krunbox: what a reference names, where images are kept,
//! and how their layers become a root filesystem a VM boots from.
//!
//! - [`layer`]: applies one layer (a tar stream) to a directory exactly as
//!   the OCI layer spec says, treating it as hostile input.
//! - [`reference`](mod@reference): docker-style image references, normalized, and the
//!   sources an image is loaded from.
//! - [`digest`]: sha256 content digests, and readers and writers that
//!   verify content against one as it passes.
//! - [`config`]: what an image runs (entrypoint, command, environment,
//!   user), by docker's rules, with the user resolved inside the image.
//! - [`archive`]: images out of a docker-archive (both of its forms) or an
//!   OCI layout directory, every blob checked against its digest.
//! - [`store`]: the content-addressed image store: blobs, unpacked roots
//!   and names, safe for several processes at once.
//! - `registry` (feature `registry`, on by default): images pulled from an
//!   OCI distribution registry into the store (`Store::pull`), every blob
//!   checked as it streams. Without it the crate builds no HTTP or TLS
//!   stack (the fuzz targets take it that way).
//! - [`platform`](mod@platform): which image of a multi-platform index is wanted.

// The manifest and index parsing here serves pulls too; without them
// some of it has no user.
#[cfg_attr(not(feature = "registry"), allow(dead_code, unused_imports))]
pub mod archive;
pub mod config;
pub mod digest;
pub mod layer;
pub mod platform;
pub mod reference;
#[cfg(feature = "registry")]
pub mod registry;
pub mod store;

pub use config::RunConfig;
pub use digest::Digest;
pub use platform::Platform;
pub use reference::Reference;
#[cfg(feature = "registry")]
pub use registry::{PullOptions, RegistryError};
pub use store::{Image, Store, StoreError};
