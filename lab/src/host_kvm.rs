//! Whether this host can boot libkrun guests itself or needs the lab.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// What kind of KVM this host offers, as far as libkrun is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostKvm {
    /// `/dev/kvm` is hardware virtualization (VT-x / AMD-V) and can be
    /// opened: libkrun guests boot directly.
    Hardware,
    /// `/dev/kvm` is provided by the paravirtual `kvm_pvm` module, which
    /// only runs guest kernels built for it: libkrun guests need the lab.
    Paravirtual,
    /// There is no `/dev/kvm`.
    Missing,
    /// `/dev/kvm` exists but this user may not open it (usually: not in
    /// the `kvm` group).
    NoAccess,
}

impl HostKvm {
    /// Whether libkrun guests can boot on this host without the lab.
    pub fn boots_guests_directly(self) -> bool {
        self == HostKvm::Hardware
    }
}

impl fmt::Display for HostKvm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostKvm::Hardware => "hardware KVM: libkrun guests boot directly",
            HostKvm::Paravirtual => "paravirtual KVM (kvm_pvm): libkrun guests need the nested lab",
            HostKvm::Missing => "no /dev/kvm: libkrun guests need the nested lab",
            HostKvm::NoAccess => "/dev/kvm exists but cannot be opened (add the user to group kvm)",
        })
    }
}

/// Looks at `/dev/kvm` and `/sys/module/kvm_pvm` to classify this host.
///
/// A paravirtual KVM is reported as [`HostKvm::Paravirtual`] whether or not
/// this user can open it: it would not run libkrun's guest kernel anyway.
pub fn host_kvm() -> HostKvm {
    classify(Path::new("/dev/kvm"), Path::new("/sys/module/kvm_pvm"))
}

fn classify(dev_kvm: &Path, pvm_module: &Path) -> HostKvm {
    if !dev_kvm.exists() {
        return HostKvm::Missing;
    }
    if pvm_module.exists() {
        return HostKvm::Paravirtual;
    }
    match OpenOptions::new().read(true).write(true).open(dev_kvm) {
        Ok(_) => HostKvm::Hardware,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => HostKvm::NoAccess,
        // Any other failure (ENXIO, ENODEV…) means no usable KVM behind it.
        Err(_) => HostKvm::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dev_kvm() {
        let dir = tempfile::tempdir().unwrap();
        let kvm = dir.path().join("kvm");
        let pvm = dir.path().join("kvm_pvm");
        assert_eq!(classify(&kvm, &pvm), HostKvm::Missing);
    }

    #[test]
    fn pvm_module_wins() {
        let dir = tempfile::tempdir().unwrap();
        let kvm = dir.path().join("kvm");
        let pvm = dir.path().join("kvm_pvm");
        std::fs::write(&kvm, b"").unwrap();
        std::fs::create_dir(&pvm).unwrap();
        assert_eq!(classify(&kvm, &pvm), HostKvm::Paravirtual);
        assert!(!HostKvm::Paravirtual.boots_guests_directly());
    }

    #[test]
    fn openable_without_pvm_is_hardware() {
        let dir = tempfile::tempdir().unwrap();
        let kvm = dir.path().join("kvm");
        std::fs::write(&kvm, b"").unwrap();
        assert_eq!(classify(&kvm, &dir.path().join("nope")), HostKvm::Hardware);
        assert!(HostKvm::Hardware.boots_guests_directly());
    }

    #[test]
    fn this_host_is_classified() {
        // Whatever it is, it must not panic and must print something.
        assert!(!host_kvm().to_string().is_empty());
    }
}
