//! krunbox drives [libkrun] microVMs from Rust: boot a VM on a host
//! directory, run commands in it, and get their output and exit codes —
//! in-process, without a VM CLI in between.
//!
//! - [`vm`]: configure and boot VMs ([`vm::VmConfig`]), on a host
//!   directory or an image ([`vm::VmConfig::from_image`]).
//! - [`image`]: OCI images loaded into a per-user store.
//! - [`state`]: named VMs that outlive their starting process, found again
//!   by name in a per-user state directory.
//! - [`runner`]: the one-process-per-VM model that libkrun requires; call
//!   [`runner::enter_if_requested`] first in `main`.
//! - [`host`]: what this host offers (KVM, libkrunfw), for checks and
//!   `krunbox doctor`.
//! - [`krun`]: the safe wrapper over libkrun's C API.
//! - [`egress`]: egress allow-lists and their decisions.
//!
//! [libkrun]: https://github.com/containers/libkrun

pub mod agent_image;
pub mod client;
pub mod egress;
pub mod host;
/// OCI images: references, the store, and their layers
/// ([`krunbox_image`], re-exported).
pub use krunbox_image as image;
pub mod krun;
pub mod pool;
pub mod runner;
pub mod state;
pub mod vm;

mod dns_name;
mod report;
pub use report::Report;

/// Formats an error with its chain of causes, `outer: inner: root`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source in their own message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_lists_every_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let err = runner::SpawnError::Exec {
            program: "/x".into(),
            source: io,
        };
        assert_eq!(error_chain(&err), "cannot execute the runner /x: gone");
    }
}
