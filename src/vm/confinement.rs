//! How a VM's runner is asked to fence itself in (docs/security.md, "The
//! runner"), and what the library prepares for it.

use std::path::{Path, PathBuf};

use super::VmConfig;
use crate::runner::{Confinement, RunAs, SeccompMode};

impl VmConfig {
    /// How the VM's runner fences itself in (docs/security.md, "The
    /// runner"): by default every mechanism the kernel has. The variable
    /// `KRUNBOX_SECCOMP=log` turns the seccomp filter into a logging one
    /// (the kernel logs each call outside its list and lets it through),
    /// for measuring what a workload needs.
    pub fn confinement(mut self, confinement: Confinement) -> Self {
        self.confinement = confinement;
        self
    }

    /// The confinement the VM's runner is asked for.
    pub fn confinement_asked(&self) -> &Confinement {
        &self.confinement
    }

    /// The confinement asked for, with `KRUNBOX_SECCOMP=log` applied.
    pub(crate) fn runner_confinement(&self) -> Confinement {
        let mut confinement = self.confinement.clone();
        if confinement.seccomp == SeccompMode::Enforce
            && std::env::var_os(SECCOMP_ENV).is_some_and(|v| v == "log")
        {
            confinement.seccomp = SeccompMode::Log;
        }
        confinement
    }

    /// A new cgroup directory for one VM, when a cgroup is asked for:
    /// `krunbox-<pid>-<n>` under the parent, unique in this process.
    pub(crate) fn cgroup_dir(&self) -> Option<PathBuf> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let limits = self.confinement.cgroup.as_ref()?;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(
            limits
                .parent
                .join(format!("krunbox-{}-{n}", std::process::id())),
        )
    }
}

/// The variable that turns the seccomp filter into a logging one.
pub const SECCOMP_ENV: &str = "KRUNBOX_SECCOMP";

/// Hands `dir` (the VM's private directory) and what is in it that the
/// runner must use (its sockets, its boot root) to the unprivileged user
/// a root runner drops to. Nothing to do unless this process is root.
pub(crate) fn hand_over(dir: &Path, ids: RunAs) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let chown = |path: &Path| std::os::unix::fs::chown(path, Some(ids.uid), Some(ids.gid));
    chown(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_socket() || kind.is_dir() {
            chown(&entry.path())?;
        }
    }
    Ok(())
}
