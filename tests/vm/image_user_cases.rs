//! An image loaded and booted by a user who is not root (uid 65534 here,
//! with /dev/kvm's group): the tree on disk is that user's, yet the guest
//! sees it as root's, as it is in the image, because the runner is root of
//! a user namespace of its own (`src/runner/user_ns.rs`).

use std::os::unix::fs::{chown, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use libtest_mimic::{Failed, Trial};

use crate::cases::{chain, check, text};
use crate::support::{in_lab, runner};
use krunbox_suite::trial;

/// The user the case runs the CLI as, when the suite runs as root.
const NOBODY: u32 = 65534;

pub fn all() -> Vec<Trial> {
    vec![trial(
        "images::a_user_not_root_sees_the_image_as_roots",
        a_user_not_root_sees_the_image_as_roots,
    )]
}

fn a_user_not_root_sees_the_image_as_roots() -> Result<(), Failed> {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let archive = dir.join("image.tar");
    crate::image_cases::build_archive(&archive);
    let as_root = nix::unistd::geteuid().is_root();
    let kvm_group = if as_root {
        for path in [dir, archive.as_path()] {
            chown(path, Some(NOBODY), Some(NOBODY))?;
        }
        Some(kvm_group()?)
    } else {
        None
    };
    let krunbox = |args: &[&str]| as_user(dir, kvm_group, args);
    let out = krunbox(&["load", "-q", "-i", archive.to_str().unwrap()])?;
    check(out.status.success(), || said(&out))?;
    let tree_owner = std::fs::metadata(dir.join("store/roots"))?.uid();
    let out = krunbox(&[
        "run",
        "--mem",
        "256",
        "--image",
        "kbtest:1",
        "--entrypoint",
        "stat",
        "--",
        "-c",
        "%u:%g",
        "/",
        "/etc/greeting",
    ])?;
    check(
        out.status.success() && text(&out.stdout) == "0:0\n0:0\n",
        || {
            format!(
                "wanted root's tree in the guest (on disk: uid {tree_owner}); got {}",
                said(&out)
            )
        },
    )
}

/// The group that may use /dev/kvm: in the lab (whose /dev/kvm is
/// root's alone) it is opened to its group first; elsewhere it must be.
fn kvm_group() -> Result<u32, Failed> {
    let kvm = Path::new("/dev/kvm");
    if in_lab() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(kvm, std::fs::Permissions::from_mode(0o660))?;
    }
    let meta = std::fs::metadata(kvm)?;
    check(meta.mode() & 0o060 == 0o060, || {
        format!(
            "run as root, this case boots as uid {NOBODY} with /dev/kvm's group, but \
             /dev/kvm (mode {:o}) is not open to its group here",
            meta.mode() & 0o777
        )
    })?;
    Ok(meta.gid())
}

/// `krunbox ARGS…` with a store, state and temporary files in `dir`: as
/// [`NOBODY`] with `kvm_group` when given, else as this user.
fn as_user(dir: &Path, kvm_group: Option<u32>, args: &[&str]) -> Result<Output, Failed> {
    let mut cmd = Command::new(runner());
    cmd.args(args)
        .env("KRUNBOX_IMAGE_STORE", dir.join("store"))
        .env("KRUNBOX_STATE_DIR", dir.join("state"))
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .env_remove("XDG_RUNTIME_DIR");
    if let Some(group) = kvm_group {
        // SAFETY: between fork and exec, only setgroups, setgid and setuid
        // (async-signal-safe) on values computed before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let groups = [group];
                if libc::setgroups(1, groups.as_ptr()) < 0
                    || libc::setgid(NOBODY) < 0
                    || libc::setuid(NOBODY) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.output().map_err(chain)
}

fn said(out: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}
