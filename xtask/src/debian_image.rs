//! The Debian minbase layer the image tests and `krunbox bench pull` use:
//! `debootstrap --variant=minbase bookworm` from the machine's own mirror,
//! slimmed as Docker's official Debian images are (no apt lists, no
//! package caches), written as one gzipped tar layer, with the digest of
//! its uncompressed tar (the image config's `diff_id`) beside it.
//!
//! The layer is written next to its final name and renamed into place, so
//! an interrupted setup leaves no half-written layer behind; the staging
//! tree is removed either way.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The layer's file name, under the data dir's `krunbox/test-images/`.
pub(crate) const LAYER_NAME: &str = "debian-bookworm-minbase.tar.gz";
/// The file beside it holding `sha256:HEX` of the uncompressed tar.
const DIFF_ID_NAME: &str = "debian-bookworm-minbase.diff-id";

/// What the slimming removes, relative to the tree: the package lists
/// and apt's caches, which `apt-get update` rebuilds.
const SLIMMED: [&str; 2] = ["var/lib/apt/lists", "var/cache/apt"];

/// Why the layer could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DebianImageError {
    #[error("could not prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not run `{command}` (is it installed? `cargo xtask setup` installs it)")]
    Spawn {
        command: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}); its output is above")]
    Failed {
        command: &'static str,
        status: std::process::ExitStatus,
    },
}

/// Builds the layer at `dest` from `mirror` unless it is there already.
pub(crate) fn build(dest: &Path, mirror: &str, dry_run: bool) -> Result<(), DebianImageError> {
    if dest.exists() {
        eprintln!("setup: Debian minbase layer: {} (exists)", dest.display());
        return Ok(());
    }
    if dry_run {
        eprintln!(
            "setup: would debootstrap Debian minbase into {}",
            dest.display()
        );
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let staging = dir.join(".debian-minbase.staging");
    let partial = dir.join(".debian-minbase.partial.tar");
    let diff_id = dir.join(DIFF_ID_NAME);
    remove_tree(&staging)?;
    let result = debootstrap(&staging, mirror)
        .and_then(|()| slim(&staging))
        .and_then(|()| pack(&staging, &partial, &diff_id))
        .and_then(|gzipped| fs::rename(&gzipped, dest).map_err(io_at(dest)));
    remove_tree(&staging)?;
    if result.is_err() {
        let _ = fs::remove_file(&partial);
        let _ = fs::remove_file(partial.with_extension("tar.gz"));
    }
    result?;
    give_back(&[dir, &diff_id, dest])?;
    eprintln!(
        "setup: built the Debian minbase layer at {}",
        dest.display()
    );
    Ok(())
}

/// Under sudo, hands the layer and its directory to the user who ran
/// setup, whose tests read it and whose store may sit beside it.
fn give_back(paths: &[&Path]) -> Result<(), DebianImageError> {
    let id = |name| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let (Some(uid), Some(gid)) = (id("SUDO_UID"), id("SUDO_GID")) else {
        return Ok(());
    };
    for path in paths {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_at(path))?;
    }
    Ok(())
}

fn debootstrap(tree: &Path, mirror: &str) -> Result<(), DebianImageError> {
    eprintln!("setup: debootstrap --variant=minbase bookworm (about a minute)");
    let mut command = Command::new("debootstrap");
    command
        .args(["--variant=minbase", "bookworm"])
        .arg(tree)
        .arg(mirror);
    run("debootstrap", &mut command)
}

fn slim(tree: &Path) -> Result<(), DebianImageError> {
    for dir in SLIMMED {
        let dir = tree.join(dir);
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let path = entry.map_err(io_at(&dir))?.path();
            let removed = if path.is_dir() && !path.is_symlink() {
                // Keep the directories apt expects (lists/partial, archives).
                slim_dir(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(io_at(&path))?;
        }
    }
    Ok(())
}

/// Empties `dir` of files, keeping its subdirectories.
fn slim_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            slim_dir(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Tars `tree` into `tar`, writes its digest to `diff_id`, gzips it;
/// returns the gzipped file.
fn pack(tree: &Path, tar: &Path, diff_id: &Path) -> Result<PathBuf, DebianImageError> {
    let mut command = Command::new("tar");
    command
        .args(["--numeric-owner", "--xattrs", "-cf"])
        .arg(tar)
        .arg("-C")
        .arg(tree)
        .arg(".");
    run("tar", &mut command)?;
    let out = Command::new("sha256sum")
        .arg(tar)
        .output()
        .map_err(|source| DebianImageError::Spawn {
            command: "sha256sum",
            source,
        })?;
    if !out.status.success() {
        return Err(DebianImageError::Failed {
            command: "sha256sum",
            status: out.status,
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    fs::write(diff_id, format!("sha256:{hex}\n")).map_err(io_at(diff_id))?;
    let mut gzip = Command::new("gzip");
    gzip.args(["-n", "-f"]).arg(tar);
    run("gzip", &mut gzip)?;
    Ok(tar.with_extension("tar.gz"))
}

fn run(name: &'static str, command: &mut Command) -> Result<(), DebianImageError> {
    let status = command.status().map_err(|source| DebianImageError::Spawn {
        command: name,
        source,
    })?;
    if !status.success() {
        return Err(DebianImageError::Failed {
            command: name,
            status,
        });
    }
    Ok(())
}

fn remove_tree(path: &Path) -> Result<(), DebianImageError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_at(path)(e)),
        _ => Ok(()),
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> DebianImageError + '_ {
    move |source| DebianImageError::Io {
        path: path.to_owned(),
        source,
    }
}
