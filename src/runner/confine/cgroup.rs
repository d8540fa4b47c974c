//! A cgroup v2 of the VM's own, with memory, CPU and pids limits: the
//! runner makes it under the parent the caller names, writes the limits,
//! and moves itself in before anything else of the VM starts; the process
//! that reaps the runner removes it ([`remove`]).
//!
//! The parent must be a cgroup v2 directory the runner may write (root's,
//! or one delegated to the caller), with the controllers available in its
//! `cgroup.controllers`; the runner enables those it needs in the
//! parent's `cgroup.subtree_control`.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Applied;

/// The limits of a VM's cgroup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CgroupLimits {
    /// The cgroup v2 directory under which the VM's cgroup is made, e.g.
    /// `/sys/fs/cgroup/sandboxes`.
    pub parent: PathBuf,
    /// `memory.max`, in MiB: the guest's memory, libkrun's and the
    /// devices' together. The kernel kills the runner past it.
    pub memory_max_mib: Option<u64>,
    /// `cpu.max`, in CPUs (1.5: one and a half CPUs' time per period).
    pub cpus: Option<f64>,
    /// `pids.max`: the runner's threads (vCPUs, devices) count.
    pub pids_max: Option<u64>,
}

/// The period `cpu.max` is written with, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// Why the cgroup could not be made or joined.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}", path.display())]
pub(crate) struct CgroupError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

/// Makes `dir` under its parent with `limits` and moves this process in.
/// A parent that is not cgroup v2 is unavailable, not an error.
pub(super) fn join(limits: &CgroupLimits, dir: &Path) -> Result<Applied, CgroupError> {
    if !limits.parent.join("cgroup.controllers").is_file() {
        return Ok(Applied::Unavailable(format!(
            "{} is not a cgroup v2 directory",
            limits.parent.display()
        )));
    }
    let writes = settings(limits);
    let wanted: Vec<String> = writes
        .iter()
        .map(|(file, _)| format!("+{}", file.split('.').next().unwrap_or(file)))
        .collect();
    if !wanted.is_empty() {
        write(
            &limits.parent.join("cgroup.subtree_control"),
            &wanted.join(" "),
        )?;
    }
    std::fs::create_dir(dir).map_err(|source| CgroupError {
        action: "create the VM's cgroup",
        path: dir.to_owned(),
        source,
    })?;
    for (file, value) in &writes {
        write(&dir.join(file), value)?;
    }
    write(&dir.join("cgroup.procs"), "0")?;
    Ok(Applied::Full)
}

/// The files to write and their values.
fn settings(limits: &CgroupLimits) -> Vec<(&'static str, String)> {
    let mut writes = Vec::new();
    if let Some(mib) = limits.memory_max_mib {
        writes.push(("memory.max", (mib << 20).to_string()));
    }
    if let Some(cpus) = limits.cpus {
        let quota = (cpus * CPU_PERIOD_US as f64).round().max(1000.0) as u64;
        writes.push(("cpu.max", format!("{quota} {CPU_PERIOD_US}")));
    }
    if let Some(pids) = limits.pids_max {
        writes.push(("pids.max", pids.to_string()));
    }
    writes
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

/// Removes the VM's cgroup once its runner has been reaped (an empty
/// cgroup's directory is removed with `rmdir`); gone already is fine.
pub(crate) fn remove(dir: &Path) {
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_cgroup_files() {
        let limits = CgroupLimits {
            parent: "/sys/fs/cgroup/vms".into(),
            memory_max_mib: Some(768),
            cpus: Some(1.5),
            pids_max: Some(256),
        };
        assert_eq!(
            settings(&limits),
            [
                ("memory.max", "805306368".to_owned()),
                ("cpu.max", "150000 100000".to_owned()),
                ("pids.max", "256".to_owned()),
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let not_v2 = CgroupLimits {
            parent: dir.path().into(),
            ..limits
        };
        let applied = join(&not_v2, &dir.path().join("vm")).unwrap();
        assert!(matches!(applied, Applied::Unavailable(_)), "{applied:?}");
        assert!(!dir.path().join("vm").exists());
    }
}
