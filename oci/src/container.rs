//! A container in the `--root` state directory: its named VM's directory
//! (the library's, with the VM's record, sockets and logs) holds
//! `container.json`, this runtime's record, and `ctl.sock`, the monitor's
//! socket.
//!
//! The status is derived, never stored alone: no record yet is
//! `creating`; a live monitor is `created` until the process started, then
//! `running`; an exit recorded or a monitor gone is `stopped`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use krunbox::state::{NamedVm, ProcessId, StateDir, VmName};
use oci_spec::runtime::ContainerState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// The record's file name in the container's directory.
const RECORD_FILE: &str = "container.json";
/// The monitor's socket in the container's directory.
pub(crate) const CTL_SOCKET: &str = "ctl.sock";
/// Where state goes without `--root`, as runc's `/run/runc`.
const DEFAULT_ROOT: &str = "/run/krunbox-oci";

/// What this runtime records of a container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) id: String,
    pub(crate) bundle: PathBuf,
    pub(crate) rootfs: PathBuf,
    /// RFC 3339.
    pub(crate) created: String,
    pub(crate) annotations: HashMap<String, String>,
    /// The monitor: the pid the caller was given.
    pub(crate) monitor: Option<ProcessId>,
    /// The container's process started.
    pub(crate) started: bool,
    /// Its exit status, once it ended (the monitor's own exit code).
    pub(crate) exit_code: Option<i32>,
}

/// The state directory of this invocation.
pub(crate) fn state_dir(root: Option<&Path>) -> Result<StateDir, Error> {
    StateDir::at(root.unwrap_or(Path::new(DEFAULT_ROOT))).map_err(Error::Vm)
}

/// The VM name of container `id`: the id itself when it is a valid VM
/// name, otherwise `c-` and 40 hex digits of its SHA-256.
pub(crate) fn vm_name(id: &str) -> VmName {
    if let Ok(name) = id.parse() {
        return name;
    }
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("c-{}", &hex[..40])
        .parse()
        .expect("c- and hex digits make a VM name")
}

/// A container found in the state directory.
#[derive(Debug)]
pub(crate) struct Container {
    pub(crate) id: String,
    pub(crate) dir: PathBuf,
    pub(crate) state: StateDir,
    pub(crate) name: VmName,
    /// `None` while `create` is booting it.
    pub(crate) record: Option<Record>,
}

impl Container {
    /// Finds container `id`.
    pub(crate) fn open(state: &StateDir, id: &str) -> Result<Self, Error> {
        let name = vm_name(id);
        let dir = state.vm_dir(&name);
        if !dir.is_dir() {
            return Err(Error::NoSuchContainer { id: id.to_owned() });
        }
        let record = read_record(&dir)?;
        if record.as_ref().is_some_and(|r| r.id != id) {
            // Another id with the same digest prefix: as good as absent.
            return Err(Error::NoSuchContainer { id: id.to_owned() });
        }
        Ok(Self {
            id: id.to_owned(),
            dir,
            state: state.clone(),
            name,
            record,
        })
    }

    /// The status, from the record and whether the monitor lives.
    pub(crate) fn status(&self) -> ContainerState {
        let Some(record) = &self.record else {
            return ContainerState::Creating;
        };
        let alive = record.monitor.is_some_and(|m| m.is_alive());
        match (alive, record.started, record.exit_code) {
            (_, _, Some(_)) | (false, _, _) => ContainerState::Stopped,
            (true, false, None) => ContainerState::Created,
            (true, true, None) => ContainerState::Running,
        }
    }

    /// The named VM.
    pub(crate) fn vm(&self) -> Result<NamedVm, Error> {
        NamedVm::open(&self.state, &self.name).map_err(Error::Vm)
    }

    /// The record, which exists once `create` finished.
    pub(crate) fn record(&self) -> Result<&Record, Error> {
        self.record
            .as_ref()
            .ok_or_else(|| self.wrong_state("this", "created"))
    }

    /// The monitor's socket.
    pub(crate) fn ctl_path(&self) -> PathBuf {
        self.dir.join(CTL_SOCKET)
    }

    /// The runtime-spec's error for `op` in the current state.
    pub(crate) fn wrong_state(&self, op: &'static str, needs: &'static str) -> Error {
        Error::WrongState {
            id: self.id.clone(),
            op,
            status: self.status(),
            needs,
        }
    }
}

/// Writes `record` into `dir`, whole or not at all (a temporary file
/// renamed over the old one).
pub(crate) fn write_record(dir: &Path, record: &Record) -> Result<(), Error> {
    let path = dir.join(RECORD_FILE);
    let temp = dir.join(format!(".{RECORD_FILE}.tmp"));
    let json = serde_json::to_vec_pretty(record).map_err(|source| Error::Record {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&temp, json)
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|source| Error::State { path, source })
}

/// The record in `dir`, `None` if there is none yet.
fn read_record(dir: &Path) -> Result<Option<Record>, Error> {
    let path = dir.join(RECORD_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::State { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| Error::Record { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_no_vm_name_map_to_a_digest() {
        assert_eq!(vm_name("web-1").as_str(), "web-1");
        let k8s = "a".repeat(64);
        let name = vm_name(&k8s);
        assert!(name.as_str().starts_with("c-"), "{name}");
        assert_eq!(name.as_str().len(), 42);
        assert_eq!(vm_name(&k8s), name);
        assert_ne!(vm_name(&"b".repeat(64)), name);
        assert!(vm_name("with/slash").as_str().starts_with("c-"));
    }
}
