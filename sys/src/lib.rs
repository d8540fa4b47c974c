//! Raw FFI bindings to [libkrun], the library that runs a process inside a
//! KVM (Linux) or Hypervisor.framework (macOS) microVM.
//!
//! The declarations come from `include/krun.h` (libkrun 1.19 ABI) through
//! bindgen; see `sys/README.md` for how libkrun is found or built and how
//! the bindings are regenerated. Everything here is `unsafe` and returns
//! libkrun's raw codes (negative errno on failure): the `krunbox` crate
//! wraps it in a safe API.
//!
//! [libkrun]: https://github.com/containers/libkrun

#![no_std]

// The bundled libkrun: linking the crate provides the `krun_*` symbols.
#[cfg(all(feature = "bundled", not(krunbox_sys_linked)))]
extern crate krun as _;

/// The generated declarations.
#[allow(
    clippy::all,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code
)]
mod bindings {
    #[cfg(feature = "bindgen")]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
    #[cfg(not(feature = "bindgen"))]
    include!("bindings.rs");
}

pub use bindings::*;

/// Whether this build uses the bundled libkrun crate rather than a system
/// library.
pub const BUNDLED: bool = cfg!(all(feature = "bundled", not(krunbox_sys_linked)));

/// The libkrun version this build was made against (`unknown` for a system
/// library given by directory).
pub const LIBKRUN_VERSION: &str = env!("KRUNBOX_SYS_LIBKRUN_VERSION");
