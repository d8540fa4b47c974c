//! Finding the host files the lab is built from: QEMU, the L1 kernel and
//! its kvm modules, libkrunfw and a static busybox.

use std::env;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::{ldd, LabError};

/// The kernel modules the lab loads, in load order, with their paths
/// relative to `/lib/modules/<version>/`.
pub const KVM_MODULES: [(&str, &str); 4] = [
    ("irqbypass", "kernel/virt/lib/irqbypass.ko"),
    ("ccp", "kernel/drivers/crypto/ccp/ccp.ko"),
    ("kvm", "kernel/arch/x86/kvm/kvm.ko"),
    ("kvm-amd", "kernel/arch/x86/kvm/kvm-amd.ko"),
];

/// Where libkrunfw is looked for, first match wins (Debian, Fedora, local).
const LIBKRUNFW_CANDIDATES: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/libkrunfw.so.5",
    "/usr/lib64/libkrunfw.so.5",
    "/usr/local/lib64/libkrunfw.so.5",
];

/// The host files a lab is built from.
///
/// [`HostPaths::discover`] finds them on a Debian host set up with
/// `cargo xtask setup`; the fields are public so callers can point the
/// lab at other files, then [`HostPaths::check`] them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The `qemu-system-x86_64` binary.
    pub qemu: PathBuf,
    /// The L1 kernel image (`/boot/vmlinuz-<version>`).
    pub kernel: PathBuf,
    /// That kernel's module tree (`/lib/modules/<version>`).
    pub modules_dir: PathBuf,
    /// `libkrunfw.so.5` (a symlink is fine: the file behind it is copied).
    pub libkrunfw: PathBuf,
    /// A statically linked busybox, the lab's and the guest rootfs' userland.
    pub busybox: PathBuf,
}

impl HostPaths {
    /// Finds every file the lab needs, or says which is missing and what to
    /// install.
    pub fn discover() -> Result<HostPaths, LabError> {
        let qemu = find_on_path("qemu-system-x86_64").ok_or(LabError::QemuMissing)?;
        let (kernel, modules_dir) = find_kernel(Path::new("/boot"), Path::new("/lib/modules"))?;
        let libkrunfw = LIBKRUNFW_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from(LIBKRUNFW_CANDIDATES[0]));
        let paths = HostPaths {
            qemu,
            kernel,
            modules_dir,
            libkrunfw,
            busybox: PathBuf::from("/bin/busybox"),
        };
        paths.check()?;
        Ok(paths)
    }

    /// Checks that every file exists and can be used.
    pub fn check(&self) -> Result<(), LabError> {
        if !self.qemu.is_file() {
            return Err(LabError::QemuMissing);
        }
        File::open(&self.kernel).map_err(|source| LabError::ReadInput {
            path: self.kernel.clone(),
            source,
        })?;
        for (module, _) in KVM_MODULES {
            let path = self.module(module);
            if !path.is_file() {
                return Err(LabError::ModuleMissing { module, path });
            }
        }
        self.libkrunfw_file()?;
        if !self.busybox.is_file() || !ldd::libraries(&self.busybox)?.is_empty() {
            return Err(LabError::BusyboxMissing {
                path: self.busybox.clone(),
            });
        }
        Ok(())
    }

    /// The host path of one of the [`KVM_MODULES`].
    pub fn module(&self, name: &str) -> PathBuf {
        let relative = KVM_MODULES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(name, |(_, rel)| rel);
        self.modules_dir.join(relative)
    }

    /// The real file behind [`HostPaths::libkrunfw`].
    pub fn libkrunfw_file(&self) -> Result<PathBuf, LabError> {
        fs::canonicalize(&self.libkrunfw).map_err(|source| LabError::LibkrunfwMissing {
            path: self.libkrunfw.clone(),
            source,
        })
    }
}

/// The first executable file called `name` on `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The newest `vmlinuz-<version>` in `boot` whose modules include kvm-amd.
fn find_kernel(boot: &Path, modules: &Path) -> Result<(PathBuf, PathBuf), LabError> {
    let missing = || LabError::KernelMissing {
        boot_dir: boot.to_owned(),
        modules_dir: modules.to_owned(),
    };
    let entries = fs::read_dir(boot).map_err(|_| missing())?;
    let kvm_amd = KVM_MODULES[3].1;
    let mut versions: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some(name.strip_prefix("vmlinuz-")?.to_owned())
        })
        .filter(|version| modules.join(version).join(kvm_amd).is_file())
        .collect();
    versions.sort_by_key(|v| version_key(v));
    let newest = versions.pop().ok_or_else(missing)?;
    Ok((boot.join(format!("vmlinuz-{newest}")), modules.join(newest)))
}

/// Sort key for kernel versions: numeric runs compare as numbers
/// (`6.10.0` after `6.9.0`).
fn version_key(version: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut rest = version;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (num, after) = rest.split_at(digits);
        let text_len = after.len()
            - after
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .len();
        let (text, after) = after.split_at(text_len);
        key.push((num.parse().unwrap_or(0), text.to_owned()));
        rest = after;
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_sort_numerically() {
        let mut v = vec!["6.10.0-1-amd64", "6.9.0-2-amd64", "6.1.0-56-amd64"];
        v.sort_by_key(|s| version_key(s));
        assert_eq!(v, ["6.1.0-56-amd64", "6.9.0-2-amd64", "6.10.0-1-amd64"]);
    }

    #[test]
    fn picks_the_newest_kernel_that_has_kvm_modules() {
        let dir = tempfile::tempdir().unwrap();
        let (boot, modules) = (dir.path().join("boot"), dir.path().join("modules"));
        fs::create_dir_all(&boot).unwrap();
        for version in ["6.1.0-1-amd64", "6.9.0-1-amd64", "6.12.0-1-amd64"] {
            fs::write(boot.join(format!("vmlinuz-{version}")), b"").unwrap();
        }
        // 6.12 has no modules installed: not usable.
        for version in ["6.1.0-1-amd64", "6.9.0-1-amd64"] {
            let kvm = modules.join(version).join("kernel/arch/x86/kvm");
            fs::create_dir_all(&kvm).unwrap();
            fs::write(kvm.join("kvm-amd.ko"), b"").unwrap();
        }
        let (kernel, mods) = find_kernel(&boot, &modules).unwrap();
        assert_eq!(kernel, boot.join("vmlinuz-6.9.0-1-amd64"));
        assert_eq!(mods, modules.join("6.9.0-1-amd64"));
    }

    #[test]
    fn no_kernel_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = find_kernel(dir.path(), dir.path()).unwrap_err();
        assert!(matches!(err, LabError::KernelMissing { .. }));
        assert!(err.to_string().contains("cargo xtask setup"));
    }

    #[test]
    fn module_paths_follow_the_tree() {
        let paths = HostPaths {
            qemu: "/q".into(),
            kernel: "/k".into(),
            modules_dir: "/lib/modules/6.1.0".into(),
            libkrunfw: "/l".into(),
            busybox: "/b".into(),
        };
        assert_eq!(
            paths.module("kvm-amd"),
            PathBuf::from("/lib/modules/6.1.0/kernel/arch/x86/kvm/kvm-amd.ko")
        );
    }
}
