//! How a tree copy treats what it cannot recreate, and how it reports it.

use std::path::{Path, PathBuf};

pub use krunbox_proto::SkipReason;

/// What a tree copy does with files it cannot recreate: device nodes and
/// sockets. (Fifos and hard links are always recreated.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnSpecial {
    /// Copy everything else and list them in [`CopyStats::skipped`](super::CopyStats::skipped).
    #[default]
    Skip,
    /// Fail naming every one of them
    /// ([`ClientError::Uncopyable`](super::ClientError::Uncopyable)); nothing
    /// is written at the destination.
    Fail,
}

/// Options of [`AgentClient::copy_in_with`](super::AgentClient::copy_in_with)
/// and [`AgentClient::copy_out_with`](super::AgentClient::copy_out_with).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// Device nodes and sockets: skipped and reported (the default), or an
    /// error.
    pub on_special: OnSpecial,
}

impl CopyOptions {
    /// Options that make device nodes and sockets an error.
    pub fn strict() -> Self {
        Self {
            on_special: OnSpecial::Fail,
        }
    }
}

/// A path a tree copy did not copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedPath {
    /// Where it is on the source side (a guest path for copies out, a host
    /// path for copies in). Its bytes are as the filesystem has them: print
    /// it with care, a guest chooses them.
    pub path: PathBuf,
    /// What it is.
    pub reason: SkipReason,
}

impl SkippedPath {
    /// The entry at `rel` below the copy's source `root`.
    pub(super) fn below(root: &Path, rel: &Path, reason: SkipReason) -> Self {
        Self {
            path: root.join(rel),
            reason,
        }
    }
}
