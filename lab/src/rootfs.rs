//! Busybox trees: the lab's own `/bin`, and the guest test rootfs that
//! libkrun guests boot from inside the lab.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applet_list_skips_busybox_itself() {
        assert_eq!(parse_applets("sh\nbusybox\n\nls\n"), ["sh", "ls"]);
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
