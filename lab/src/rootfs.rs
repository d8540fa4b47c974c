//! Busybox trees: the lab's own `/bin`, the guest test rootfs that
//! libkrun guests boot from inside the lab, and the same rootfs as a host
//! directory ([`build_busybox_rootfs`]) for hosts whose KVM boots guests.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::initramfs::{Layout, Node};
use crate::LabError;

/// Lab path of the guest test rootfs, exported as `KRUNBOX_TEST_ROOTFS`.
pub const TEST_ROOTFS: &str = "/lab/rootfs";

/// The applets `busybox --list` names, without `busybox` itself.
pub(crate) fn applets(busybox: &Path) -> Result<Vec<String>, LabError> {
    let output = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|source| LabError::BusyboxApplets {
            path: busybox.to_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(LabError::BusyboxApplets {
            path: busybox.to_owned(),
            source: std::io::Error::other(format!("busybox --list: {}", output.status)),
        });
    }
    Ok(parse_applets(&String::from_utf8_lossy(&output.stdout)))
}

fn parse_applets(list: &str) -> Vec<String> {
    list.lines()
        .map(str::trim)
        // A `busybox` symlink to itself would replace the binary (ELOOP).
        .filter(|name| !name.is_empty() && *name != "busybox" && !name.contains('/'))
        .map(str::to_owned)
        .collect()
}

/// `<root>/bin/busybox` plus a symlink to it for every applet.
pub(crate) fn add_busybox_bin(
    layout: &mut Layout,
    root: &str,
    busybox: &Path,
    applets: &[String],
) -> Result<(), LabError> {
    let bin = format!("{}/bin", root.trim_end_matches('/'));
    layout.add(
        &format!("{bin}/busybox"),
        Node::HostFile {
            path: busybox.to_owned(),
            mode: 0o755,
        },
    )?;
    for applet in applets {
        layout.add(
            &format!("{bin}/{applet}"),
            Node::Symlink {
                target: "busybox".into(),
            },
        )?;
    }
    Ok(())
}

/// Directories and `/etc` files every Linux userland expects, under `root`.
pub(crate) fn add_skeleton(layout: &mut Layout, root: &str) -> Result<(), LabError> {
    let root = root.trim_end_matches('/');
    for (dir, mode) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("run", 0o755),
        ("root", 0o700),
        ("etc", 0o755),
    ] {
        layout.add(&format!("{root}/{dir}"), Node::Dir { mode })?;
    }
    let files: [(&str, &str); 4] = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/hostname", "krunbox\n"),
        ("etc/hosts", "127.0.0.1 localhost krunbox\n::1 localhost\n"),
    ];
    for (path, text) in files {
        layout.add(
            &format!("{root}/{path}"),
            Node::Bytes {
                data: text.as_bytes().to_vec(),
                mode: 0o644,
            },
        )?;
    }
    Ok(())
}

/// The guest test rootfs at [`TEST_ROOTFS`]: a static busybox userland.
pub(crate) fn add_test_rootfs(
    layout: &mut Layout,
    busybox: &Path,
    applets: &[String],
) -> Result<(), LabError> {
    add_skeleton(layout, TEST_ROOTFS)?;
    add_busybox_bin(layout, TEST_ROOTFS, busybox, applets)
}

/// Builds the guest rootfs as the host directory `dest`: the tree the lab
/// holds at [`TEST_ROOTFS`] (a static busybox userland and `/etc`
/// basics). `cargo xtask setup` makes the default one for `krunbox demo`;
/// the VM tests make their own.
///
/// The tree is written under a temporary name next to `dest` and renamed
/// into place, so `dest` is either complete or absent. If `dest` exists
/// already, nothing is done.
pub fn build_busybox_rootfs(busybox: &Path, dest: &Path) -> Result<(), LabError> {
    if dest.exists() {
        return Ok(());
    }
    if !busybox.is_file() {
        return Err(LabError::BusyboxMissing {
            path: busybox.to_owned(),
        });
    }
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| LabError::RootfsDir { path, source }
    };
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(failed(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".krunbox-rootfs-")
        .tempdir_in(parent)
        .map_err(failed(parent))?;
    let mut layout = Layout::default();
    add_skeleton(&mut layout, "/")?;
    add_busybox_bin(&mut layout, "/", busybox, &applets(busybox)?)?;
    write_dir(&layout, staging.path())?;
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
        .map_err(failed(staging.path()))?;
    match fs::rename(staging.path(), dest) {
        Ok(()) => {
            // Renamed away: nothing left for the guard to remove.
            let _ = staging.keep();
            Ok(())
        }
        // Someone else built it meanwhile; theirs is complete too.
        Err(_) if dest.exists() => Ok(()),
        Err(source) => Err(LabError::RootfsDir {
            path: dest.to_owned(),
            source,
        }),
    }
}

/// Writes `layout` under the existing directory `root`. Directory modes are
/// set last, deepest first, so a read-only directory is filled before it
/// becomes read-only.
fn write_dir(layout: &Layout, root: &Path) -> Result<(), LabError> {
    for (name, node) in layout.nodes() {
        let path = root.join(name);
        let written = match node {
            Node::Dir { .. } => fs::create_dir(&path),
            Node::HostFile { path: host, mode } => fs::copy(host, &path)
                .and_then(|_| fs::set_permissions(&path, fs::Permissions::from_mode(*mode))),
            Node::Bytes { data, mode } => fs::write(&path, data)
                .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(*mode))),
            Node::Symlink { target } => std::os::unix::fs::symlink(target, &path),
            Node::CharDev { .. } => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "device nodes cannot be part of a rootfs directory",
            )),
        };
        written.map_err(|source| LabError::RootfsDir { path, source })?;
    }
    for (name, node) in layout.nodes().rev() {
        if let Node::Dir { mode } = node {
            let path = root.join(name);
            fs::set_permissions(&path, fs::Permissions::from_mode(*mode))
                .map_err(|source| LabError::RootfsDir { path, source })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applet_list_skips_busybox_itself() {
        assert_eq!(parse_applets("sh\nbusybox\n\nls\n"), ["sh", "ls"]);
    }

    #[test]
    fn rootfs_directory_is_built_whole_and_once() {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.is_file(),
            "/bin/busybox missing: install busybox-static (cargo xtask setup)"
        );
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("rootfs");
        build_busybox_rootfs(busybox, &dest).unwrap();
        let sh = fs::read_link(dest.join("bin/sh")).unwrap();
        assert_eq!(sh, Path::new("busybox"));
        assert!(dest.join("bin/busybox").is_file());
        let tmp_mode = fs::metadata(dest.join("tmp")).unwrap().permissions().mode();
        assert_eq!(tmp_mode & 0o7777, 0o1777);
        assert!(fs::read_to_string(dest.join("etc/passwd"))
            .unwrap()
            .starts_with("root:"));
        // Only the rootfs is left next to it: no staging directory.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        // A second call leaves the first tree alone.
        fs::write(dest.join("etc/marker"), b"x").unwrap();
        build_busybox_rootfs(busybox, &dest).unwrap();
        assert!(dest.join("etc/marker").exists());
    }

    #[test]
    fn missing_busybox_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("rootfs");
        let err = build_busybox_rootfs(Path::new("/nonexistent/busybox"), &dest).unwrap_err();
        assert!(matches!(err, LabError::BusyboxMissing { .. }), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn test_rootfs_layout() {
        let mut layout = Layout::default();
        let applets = vec!["sh".to_owned(), "ls".to_owned()];
        add_test_rootfs(&mut layout, Path::new("/bin/busybox"), &applets).unwrap();
        assert_eq!(
            layout.get("/lab/rootfs/bin/sh"),
            Some(&Node::Symlink {
                target: "busybox".into()
            })
        );
        assert!(matches!(
            layout.get("/lab/rootfs/bin/busybox"),
            Some(Node::HostFile { .. })
        ));
        assert_eq!(
            layout.get("/lab/rootfs/tmp"),
            Some(&Node::Dir { mode: 0o1777 })
        );
        assert!(matches!(
            layout.get("/lab/rootfs/etc/passwd"),
            Some(Node::Bytes { .. })
        ));
    }
}
