//! The guest's resolver configuration in the egress mode: its
//! `/etc/resolv.conf` names the host's DNS server for the VM, without
//! writing into the root filesystem (a host directory the VM shares).
//!
//! The file is written on the guest's own devtmpfs (`/dev`, which
//! libkrun's init mounts) and bind-mounted over `/etc/resolv.conf`.

use std::io;
use std::path::Path;

use nix::mount::{mount, MsFlags};

/// Where the file is written before it is mounted.
const STAGED: &str = "/dev/krunbox-resolv.conf";
/// Where resolvers read it.
const TARGET: &str = "/etc/resolv.conf";

/// The resolver configuration could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum ResolvError {
    /// The file could not be written.
    #[error("cannot write {STAGED}")]
    Write(#[source] io::Error),
    /// There is nothing to mount it over, and none could be made.
    #[error("cannot create {TARGET} to mount over")]
    Target(#[source] io::Error),
    /// mount(2) failed.
    #[error("cannot bind-mount {STAGED} over {TARGET}")]
    Mount(#[source] nix::errno::Errno),
}

/// The file's text for the name server `addr`.
pub fn text(addr: &str) -> String {
    format!("# krunbox egress mode: names resolve only through the host\nnameserver {addr}\noptions timeout:2 attempts:2\n")
}

/// Makes `/etc/resolv.conf` name `addr` only.
pub fn point_at(addr: &str) -> Result<(), ResolvError> {
    std::fs::write(STAGED, text(addr)).map_err(ResolvError::Write)?;
    if !Path::new(TARGET).exists() {
        // A missing file (or a link to one) gets an empty one to cover.
        std::fs::write(TARGET, b"").map_err(ResolvError::Target)?;
    }
    mount(
        Some(STAGED),
        TARGET,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(ResolvError::Mount)
}
