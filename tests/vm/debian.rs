//! The Debian minbase layer `cargo xtask setup` builds with debootstrap
//! (`xtask/src/debian_image.rs`), for the case that pushes it to a real
//! registry, pulls it and boots it. The harness puts it into the lab.

use std::path::{Path, PathBuf};

use libtest_mimic::Failed;

use crate::support;

/// The layer's name, and its uncompressed digest's file beside it.
const LAYER: &str = "debian-bookworm-minbase.tar.gz";
const DIFF_ID: &str = "debian-bookworm-minbase.diff-id";

/// Where the layer sits inside the lab.
const LAB_DIR: &str = "/test-images";

/// The layer's directory on this host: `$XDG_DATA_HOME/krunbox/test-images`,
/// or the same under `$HOME/.local/share` (as setup writes it).
fn host_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let data = var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".local/share")))?;
    Some(data.join("krunbox/test-images"))
}

/// The files to put into the lab (host path, lab path), if setup made
/// them; a case that needs them fails in the lab, saying so, if not.
pub fn lab_files() -> Vec<(PathBuf, String)> {
    let Some(dir) = host_dir() else {
        return Vec::new();
    };
    [LAYER, DIFF_ID]
        .iter()
        .map(|name| (dir.join(name), format!("{LAB_DIR}/{name}")))
        .filter(|(host, _)| host.exists())
        .collect()
}

/// The layer (gzipped, as stored) and its `diff_id`.
pub fn layer() -> Result<(Vec<u8>, String), Failed> {
    let dir = if support::in_lab() {
        PathBuf::from(LAB_DIR)
    } else {
        host_dir().ok_or("neither XDG_DATA_HOME nor HOME is set")?
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| {
            Failed::from(format!(
                "no Debian minbase layer at {} ({e}): `cargo xtask setup` builds it with \
                 debootstrap",
                path.display()
            ))
        })
    };
    let diff_id = String::from_utf8_lossy(&read(&dir.join(DIFF_ID))?)
        .trim()
        .to_owned();
    Ok((read(&dir.join(LAYER))?, diff_id))
}
