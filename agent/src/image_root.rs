//! An image's root for this VM alone: the cached image tree, shared
//! read-only, under a writable layer in guest memory.
//!
//! A VM booted from an image boots on a small per-VM boot root that holds
//! only libkrun's init and this agent; the image tree comes as a second,
//! read-only virtio-fs share (libkrun refuses the guest's writes to it on
//! the host side). Before anything else runs the agent builds
//!
//! ```text
//! /.krunbox/lower   the image share, read-only
//! /.krunbox/rw      tmpfs: upper/ and work/ of the overlay
//! /.krunbox/root    overlay(lower, rw/upper): the VM's own root
//! ```
//!
//! moves the mounts init made (`/dev`, `/proc`, `/sys`, …) into it and
//! pivots into it. Writes land in guest memory and vanish with the VM; the
//! image tree on the host never changes, and starting a VM costs nothing
//! that grows with the image.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

const LOWER: &str = "/.krunbox/lower";
const RW: &str = "/.krunbox/rw";
const ROOT: &str = "/.krunbox/root";

/// Why the image root could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// A directory for the overlay could not be made.
    #[error("cannot create {}", .0.display())]
    Dir(PathBuf, #[source] std::io::Error),
    /// A mount failed.
    #[error("cannot mount {what} at {}", path.display())]
    Mount {
        /// What was being mounted.
        what: String,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        errno: Errno,
    },
    /// The mount table could not be read.
    #[error("cannot read /proc/self/mountinfo")]
    MountInfo(#[source] std::io::Error),
    /// Moving into the new root failed.
    #[error("cannot pivot into the image root ({step})")]
    Pivot {
        /// The step that failed.
        step: &'static str,
        /// Why.
        #[source]
        errno: Errno,
    },
}

/// Mounts the image share `tag` under a writable layer and makes it `/`.
pub fn enter(tag: &str) -> Result<(), RootError> {
    // pivot_root refuses a root whose mounts propagate to a peer.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|errno| RootError::Mount {
        what: "private propagation".into(),
        path: "/".into(),
        errno,
    })?;
    for dir in [LOWER, RW, ROOT] {
        mkdir(Path::new(dir))?;
    }
    mount_fs(tag, LOWER, "virtiofs", MsFlags::MS_RDONLY, None)?;
    mount_fs("tmpfs", RW, "tmpfs", MsFlags::empty(), Some("mode=0755"))?;
    for dir in ["upper", "work"] {
        mkdir(&Path::new(RW).join(dir))?;
    }
    let options = format!("lowerdir={LOWER},upperdir={RW}/upper,workdir={RW}/work");
    mount_fs("overlay", ROOT, "overlay", MsFlags::empty(), Some(&options))?;
    for point in top_level_mounts()? {
        let target = Path::new(ROOT).join(point.strip_prefix("/").unwrap_or(&point));
        mkdir(&target)?;
        mount(
            Some(&point),
            &target,
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(|errno| RootError::Mount {
            what: point.display().to_string(),
            path: target,
            errno,
        })?;
    }
    pivot()
}

/// `pivot_root(".", ".")` in the new root, then the old root detached
/// from above it: no directory for the old root is left in the image.
fn pivot() -> Result<(), RootError> {
    let step = |step| move |errno| RootError::Pivot { step, errno };
    nix::unistd::chdir(ROOT).map_err(step("chdir"))?;
    nix::unistd::pivot_root(".", ".").map_err(step("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step("detaching the boot root"))?;
    nix::unistd::chdir("/").map_err(step("chdir /"))
}

fn mkdir(path: &Path) -> Result<(), RootError> {
    std::fs::create_dir_all(path).map_err(|e| RootError::Dir(path.to_owned(), e))
}

fn mount_fs(
    source: &str,
    path: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), RootError> {
    mount(Some(source), path, Some(fstype), flags, data).map_err(|errno| RootError::Mount {
        what: format!("{fstype} {source}"),
        path: path.into(),
        errno,
    })
}

/// Mount points directly below `/` that init made (`/dev`, `/proc`, …),
/// not the overlay's own. Mounts below them move along with them.
fn top_level_mounts() -> Result<Vec<PathBuf>, RootError> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").map_err(RootError::MountInfo)?;
    Ok(top_level(&table))
}

fn top_level(mountinfo: &str) -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.parent() == Some(Path::new("/")) && !p.starts_with("/.krunbox"))
        .collect();
    points.dedup();
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_top_level_mounts_outside_the_overlay_move() {
        let table = "\
1 0 0:1 / / rw - virtiofs /dev/root rw
2 1 0:2 / /dev rw - devtmpfs devtmpfs rw
3 2 0:3 / /dev/pts rw - devpts devpts rw
4 1 0:4 / /proc rw - proc proc rw
5 1 0:5 / /sys rw - sysfs sysfs rw
6 5 0:6 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
7 1 0:7 / /.krunbox/lower ro - virtiofs img ro
8 1 0:8 / /.krunbox/root rw - overlay overlay rw
";
        assert_eq!(
            top_level(table),
            ["/dev", "/proc", "/sys"].map(PathBuf::from).to_vec()
        );
    }
}
