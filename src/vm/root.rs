//! How the guest's root filesystem is served.
//!
//! By default the host directory is the guest's root, read-write: what the
//! guest writes lands in it. With [`VmConfig::overlay_root`] (every VM
//! booted from an image) the directory is shared read-only under the tag
//! [`ROOT_SHARE_TAG`], and the VM boots on an empty per-VM *boot root* in
//! its private directory that holds only what libkrun serves from memory
//! (its init, the agent). The agent stacks a writable layer in guest
//! memory over the share and pivots into it (`krunbox-agent --root TAG`),
//! so every VM sees its own writes, the tree never changes, and starting a
//! VM costs the same whatever the tree's size.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::VmConfig;
use crate::runner::RunnerConfig;

/// The virtio-fs tag of a read-only root's share.
pub(crate) const ROOT_SHARE_TAG: &str = "krunbox-root";

/// The boot root's name in a VM's private directory.
const BOOT_ROOT: &str = "boot-root";

impl VmConfig {
    /// Shares the root directory read-only and gives the guest a writable
    /// layer over it in its own memory: writes vanish with the VM and the
    /// directory on the host never changes, so many VMs can boot from one
    /// tree. (Writes then count against the VM's memory.)
    pub fn overlay_root(mut self, overlay: bool) -> Self {
        self.overlay_root = overlay;
        self
    }

    /// Whether the root is shared read-only under a writable layer.
    pub fn has_overlay_root(&self) -> bool {
        self.overlay_root
    }

    /// Boots a VM whose root is shared read-only from its boot root, made
    /// in the VM's private directory `scratch` (nothing for a read-write
    /// root).
    pub(crate) fn place_boot_root(
        &self,
        config: &mut RunnerConfig,
        scratch: &Path,
    ) -> io::Result<()> {
        if self.overlay_root {
            config.rootfs = make_boot_root(scratch)?;
        }
        Ok(())
    }
}

/// The empty boot root: libkrun's init makes `/dev`, `/proc` and `/sys`
/// itself; the agent makes its mount points.
fn make_boot_root(scratch: &Path) -> io::Result<PathBuf> {
    let dir = scratch.join(BOOT_ROOT);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Workload;

    #[test]
    fn an_overlay_root_boots_from_an_empty_boot_root_with_the_tree_read_only() {
        let tree = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let vm = VmConfig::new(tree.path())
            .overlay_root(true)
            .workdir("/srv");
        let workload = Workload::Exec {
            program: "/bin/true".into(),
            args: vec![],
        };
        let mut config = vm.runner_config(workload, vec![]).unwrap();
        vm.place_boot_root(&mut config, scratch.path()).unwrap();
        let boot = scratch.path().join(BOOT_ROOT);
        assert_eq!(config.rootfs, boot);
        assert_eq!(std::fs::read_dir(&boot).unwrap().count(), 0);
        assert_eq!(
            config.shares,
            [(ROOT_SHARE_TAG.to_owned(), tree.path().to_owned(), true)]
        );
        // The workdir exists only in the image: the agent enters it.
        assert_eq!(config.workdir, None);
        let Workload::Agent { args } = &config.workload else {
            panic!("{:?}", config.workload)
        };
        assert_eq!(
            args,
            &[
                "--root",
                ROOT_SHARE_TAG,
                "--chdir",
                "/srv",
                "--exec",
                "/bin/true"
            ]
        );
    }

    #[test]
    fn a_read_write_root_is_the_tree_itself() {
        let tree = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let vm = VmConfig::new(tree.path());
        let workload = Workload::Agent { args: vec![] };
        let mut config = vm.runner_config(workload, vec![]).unwrap();
        vm.place_boot_root(&mut config, scratch.path()).unwrap();
        assert_eq!(config.rootfs, tree.path());
        assert!(config.shares.is_empty());
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    }
}
