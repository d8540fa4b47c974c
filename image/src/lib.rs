//! OCI images for krunbox: what a reference names, where images are kept,
//! and how their layers become a root filesystem a VM boots from.
//!
//! - [`layer`]: applies one layer (a tar stream) to a directory exactly as
//!   the OCI layer spec says, treating it as hostile input.
