//! An unprivileged uid for a runner started as root: the runner gives up
//! root (every capability with it) before anything of the guest's runs,
//! keeping only the group of `/dev/kvm` so that it can still open it.
//!
//! The VM's files must then be that user's to serve: its root and volumes
//! readable (and writable where the guest writes), its private directory
//! (the library hands it over before the runner starts). A guest's
//! `chown` fails then, as it would for any unprivileged file server.

use std::os::unix::fs::MetadataExt;

use nix::unistd::{Gid, Uid};
use serde::{Deserialize, Serialize};

use super::Applied;

/// The user and group a runner started as root runs as.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunAs {
    /// The uid (not 0).
    pub uid: u32,
    /// The gid.
    pub gid: u32,
}

/// Why the runner could not change its ids.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UserError {
    /// Running "as" root is not dropping anything.
    #[error("the runner's uid to drop to is 0: name an unprivileged uid")]
    Root,
    /// A set*id call failed.
    #[error("{call} failed")]
    Call {
        /// Which call.
        call: &'static str,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// Drops to `ids`, keeping `/dev/kvm`'s group when it is not root's.
/// Only a runner that is real root does so; one in a user namespace of
/// its own (an image booted without root) already runs as its caller.
pub(super) fn drop_to(ids: RunAs, in_own_user_ns: bool) -> Result<Applied, UserError> {
    if ids.uid == 0 {
        return Err(UserError::Root);
    }
    if in_own_user_ns || !Uid::effective().is_root() {
        return Ok(Applied::Unavailable(
            "the runner is not root: it runs as its caller's uid already".into(),
        ));
    }
    let kvm_group = std::fs::metadata("/dev/kvm")
        .map(|m| m.gid())
        .ok()
        .filter(|&gid| gid != 0);
    let groups: Vec<Gid> = kvm_group.map(Gid::from_raw).into_iter().collect();
    let call =
        |call, result: nix::Result<()>| result.map_err(|source| UserError::Call { call, source });
    call("setgroups", nix::unistd::setgroups(&groups))?;
    let gid = Gid::from_raw(ids.gid);
    call("setresgid", nix::unistd::setresgid(gid, gid, gid))?;
    let uid = Uid::from_raw(ids.uid);
    call("setresuid", nix::unistd::setresuid(uid, uid, uid))?;
    Ok(Applied::Full)
}
