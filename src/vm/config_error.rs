//! Why a [`VmConfig`](super::VmConfig) cannot boot, found before anything
//! started.

use std::path::PathBuf;

use super::publish::PortError;
use super::rlimit::RlimitError;
use super::volume::VolumeError;
use crate::runner::NetMode;

/// A configuration that cannot boot, found before anything started.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The root filesystem directory is missing or not a directory.
    #[error("rootfs {} {problem}", path.display())]
    Rootfs {
        /// The path given.
        path: PathBuf,
        /// "does not exist" or "is not a directory".
        problem: &'static str,
    },
    /// No command was given.
    #[error("no command given for the guest")]
    EmptyCommand,
    /// A value cannot travel on the kernel command line.
    #[error("{what} {value:?} cannot be passed to the guest: it contains {problem}")]
    Unpassable {
        /// What it is ("argument", "environment variable", …).
        what: &'static str,
        /// The value.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The command and environment are too long for the kernel command line.
    #[error(
        "the command and environment take {len} bytes; at most {max} fit on the \
         guest kernel command line"
    )]
    TooLong {
        /// Their length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Egress rules or pinned names given, but the network mode is not
    /// [`NetMode::Egress`].
    #[error(
        "an egress allow-list (or a pinned egress host) was given, but the guest network is \
         {0:?}: the list applies only to the egress mode (--net egress)"
    )]
    EgressOff(NetMode),
    /// A network namespace that cannot be joined.
    #[error("network namespace {}: {problem}", path.display())]
    NetNamespace {
        /// The namespace's path.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A published port that cannot work.
    #[error("invalid published port")]
    Port(#[from] PortError),
    /// A volume that cannot be shared.
    #[error("invalid volume")]
    Volume(#[from] VolumeError),
    /// A resource limit that cannot be set.
    #[error("invalid resource limit")]
    Rlimit(#[from] RlimitError),
    /// Not a valid host name.
    #[error(
        "hostname {0:?} is not a valid host name (at most 64 letters, digits, '-' and '.', \
         in labels not starting or ending with '-')"
    )]
    Hostname(String),
    /// The console log cannot be written where asked.
    #[error("console log {}: {problem}", path.display())]
    ConsoleLog {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A number out of range.
    #[error("{what} must be {range}, not {value}")]
    OutOfRange {
        /// What it is.
        what: &'static str,
        /// The accepted range.
        range: &'static str,
        /// The value given.
        value: u64,
    },
}
