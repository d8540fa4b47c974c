//! A safe wrapper over libkrun's C API (through `krunbox-sys`).
//!
//! [`Context`] owns one libkrun configuration context and frees it when
//! dropped. Every call that libkrun fails with a negative errno becomes an
//! [`Error::Call`] naming the function, so a failure reads "krun_set_root
//! failed: No such file or directory" instead of a bare `-2`.
//!
//! libkrun's [`Context::start_enter`] takes over the calling process and
//! ends it with the guest workload's exit code: it is meant to be called in
//! a runner process (see [`crate::runner`]), never in a program that has
//! other work to do.

mod context;
mod error;

pub use context::Context;
pub use error::Error;

/// The virtio-fs tag of the root filesystem set with
/// [`Context::set_root`].
pub const ROOT_FS_TAG: &str = "/dev/root";

/// The libkrun version linked into this binary and whether it is the
/// bundled build.
pub fn library_version() -> (&'static str, bool) {
    (krunbox_sys::LIBKRUN_VERSION, krunbox_sys::BUNDLED)
}

/// Sets libkrun's log level for this process (0 = off … 5 = trace); its
/// messages go to standard error.
pub fn set_log_level(level: u32) -> Result<(), Error> {
    // SAFETY: a plain integer; libkrun validates it.
    let ret = unsafe { krunbox_sys::krun_set_log_level(level) };
    error::check("krun_set_log_level", ret).map(drop)
}
