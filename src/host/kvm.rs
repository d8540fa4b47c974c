//! The hypervisor device: is there one, may we use it, what provides it.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// The KVM device node.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// The state of this host's hypervisor, as far as libkrun is concerned.
#[derive(Debug)]
pub enum Kvm {
    /// `/dev/kvm` is provided by hardware virtualization (VT-x / AMD-V):
    /// libkrun guests boot.
    Hardware {
        /// The vendor module (`kvm_intel`, `kvm_amd`) when known.
        module: Option<&'static str>,
    },
    /// `/dev/kvm` is provided by the paravirtual `kvm_pvm` module, which
    /// runs only guest kernels built for it: libkrunfw's kernel dies in its
    /// first instructions (`KVM_EXIT_INTERNAL_ERROR`).
    Paravirtual,
    /// There is no `/dev/kvm`.
    Missing,
    /// `/dev/kvm` exists but cannot be opened read-write.
    NoAccess(io::Error),
    /// macOS: libkrun uses Hypervisor.framework, no device node.
    HypervisorFramework,
}

impl Kvm {
    /// Looks at this host.
    pub fn probe() -> Self {
        if cfg!(target_os = "macos") {
            return Kvm::HypervisorFramework;
        }
        Self::probe_at(Path::new(KVM_DEVICE), Path::new("/sys/module"))
    }

    fn probe_at(device: &Path, modules: &Path) -> Self {
        if !device.exists() {
            return Kvm::Missing;
        }
        if let Err(e) = OpenOptions::new().read(true).write(true).open(device) {
            return Kvm::NoAccess(e);
        }
        if modules.join("kvm_pvm").exists() {
            return Kvm::Paravirtual;
        }
        let module = ["kvm_intel", "kvm_amd"]
            .into_iter()
            .find(|m| modules.join(m).exists());
        Kvm::Hardware { module }
    }

    /// Whether libkrun guests can boot directly on this host.
    pub fn can_boot(&self) -> bool {
        matches!(self, Kvm::Hardware { .. } | Kvm::HypervisorFramework)
    }

    /// One line for people: what this is.
    pub fn describe(&self) -> String {
        match self {
            Kvm::Hardware { module: Some(m) } => {
                format!("{KVM_DEVICE} is hardware-assisted ({m})")
            }
            Kvm::Hardware { module: None } => format!("{KVM_DEVICE} is present and usable"),
            Kvm::Paravirtual => format!(
                "{KVM_DEVICE} is paravirtual (module kvm_pvm): it runs only guest kernels \
                 built for PVM, not libkrunfw's"
            ),
            Kvm::Missing => format!("{KVM_DEVICE} does not exist"),
            Kvm::NoAccess(e) => format!("{KVM_DEVICE} cannot be opened read-write: {e}"),
            Kvm::HypervisorFramework => "Hypervisor.framework (macOS)".to_owned(),
        }
    }

    /// What to do about it, when guests cannot boot.
    pub fn advice(&self) -> Option<&'static str> {
        match self {
            Kvm::Hardware { .. } | Kvm::HypervisorFramework => None,
            Kvm::Paravirtual => Some(
                "guests boot only in the nested lab here: \
                 cargo xtask lab -- krunbox run --rootfs \"$KRUNBOX_TEST_ROOTFS\" -- CMD",
            ),
            Kvm::Missing => Some(
                "enable virtualization (VT-x/AMD-V) in the firmware and load kvm_intel or \
                 kvm_amd; in a cloud VM, choose an instance type with nested virtualization",
            ),
            Kvm::NoAccess(_) => Some(
                "add yourself to the group that owns /dev/kvm (usually `kvm`): \
                 sudo usermod -aG kvm $USER, then log in again",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn missing_device_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let kvm = Kvm::probe_at(&dir.path().join("kvm"), dir.path());
        assert!(matches!(kvm, Kvm::Missing));
        assert!(!kvm.can_boot());
        assert!(kvm.advice().is_some());
    }

    #[test]
    fn pvm_module_means_paravirtual() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("kvm");
        fs::write(&device, b"").unwrap();
        fs::create_dir(dir.path().join("kvm_pvm")).unwrap();
        let kvm = Kvm::probe_at(&device, dir.path());
        assert!(matches!(kvm, Kvm::Paravirtual), "{kvm:?}");
        assert!(kvm.describe().contains("paravirtual"));
        assert!(kvm.advice().unwrap().contains("lab"));
    }

    #[test]
    fn vendor_module_means_hardware() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("kvm");
        fs::write(&device, b"").unwrap();
        fs::create_dir(dir.path().join("kvm_amd")).unwrap();
        let kvm = Kvm::probe_at(&device, dir.path());
        assert!(matches!(
            kvm,
            Kvm::Hardware {
                module: Some("kvm_amd")
            }
        ));
        assert!(kvm.can_boot());
    }
}
