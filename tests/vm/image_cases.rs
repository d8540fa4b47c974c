//! A read-only root under a writable layer in guest memory, as every VM
//! booted from an image gets: each VM sees only its own writes, the tree
//! on the host never changes, and the guest cannot write to the share
//! even by mounting it itself.

use std::path::Path;

use libtest_mimic::{Failed, Trial};

use crate::cases::{chain, check, text};
use crate::lab_faults::trial;
use crate::support::{rootfs, vm};

/// The image-root cases, by name.
pub fn all() -> Vec<Trial> {
    vec![trial(
        "images::overlay_roots_keep_writes_apart_and_the_tree_unchanged",
        overlay_roots_keep_writes_apart_and_the_tree_unchanged,
    )]
}

/// Writes to `/etc`, `/` and the workdir in two VMs one after the other
/// from the same tree, and tries to write through the share directly.
fn overlay_roots_keep_writes_apart_and_the_tree_unchanged() -> Result<(), Failed> {
    let tree = rootfs();
    let before = listing(&tree)?;
    for id in ["first", "second"] {
        let script = format!(
            "test ! -e /etc/marker || {{ echo saw another VM; exit 3; }}; \
             echo {id} > /etc/marker && touch /new-at-root && cat /etc/marker && pwd; \
             mkdir -p /mnt/share && mount -t virtiofs krunbox-root /mnt/share \
             && {{ touch /mnt/share/pwned 2>/dev/null && echo wrote through the share; true; }}"
        );
        let out = vm()
            .overlay_root(true)
            .workdir("/tmp")
            .command(["sh", "-c", &script])
            .output()
            .map_err(chain)?;
        let said = format!(
            "status {:?}, stdout {:?}, stderr {:?}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        check(out.status.success(), || said.clone())?;
        check(text(&out.stdout) == format!("{id}\n/tmp\n"), || {
            said.clone()
        })?;
    }
    let after = listing(&tree)?;
    check(before == after, || {
        format!("the tree changed: before {before:?}, after {after:?}")
    })
}

/// Names and sizes at the top of `tree` and in its `etc`.
fn listing(tree: &Path) -> Result<Vec<(String, u64)>, Failed> {
    let mut out = Vec::new();
    for dir in [tree.to_owned(), tree.join("etc")] {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            out.push((entry.path().display().to_string(), meta.len()));
        }
    }
    out.sort();
    Ok(out)
}
