//! Where the default guest rootfs lives: a static-busybox tree that
//! `cargo xtask setup` builds (with `krunbox_lab::build_busybox_rootfs`),
//! used by `krunbox demo` and `krunbox bench` when no rootfs is given.

use std::path::PathBuf;

/// The default rootfs directory: `$XDG_DATA_HOME/krunbox/rootfs`, or
/// `$HOME/.local/share/krunbox/rootfs`; `None` when neither variable is
/// set. (`cargo xtask setup` computes the same path; keep them in step.)
pub fn default_rootfs_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let data = var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".local/share")))?;
    Some(data.join("krunbox/rootfs"))
}
