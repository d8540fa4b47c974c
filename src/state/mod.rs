//! Named VMs: VMs that outlive the command that started them, found again
//! by name, as a VM CLI user works (`krunbox start / exec / cp / ls /
//! stop`).
//!
//! Each lives in its own 0700 directory under the per-user
//! [`StateDir`]: its record, its log and the agent's ops socket. Any
//! process of the same user can [`NamedVm::open`] it and talk to its agent
//! with an [attached](crate::client::AgentClient::attach) client; no daemon
//! is involved. The runner of a named VM starts its own session and does
//! not watch its parent, and its agent runs with `--persist`, so the VM
//! keeps running until it is stopped or powers itself off.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use krunbox::client::{ClientConfig, GuestCommand};
//! use krunbox::state::{NamedVm, StateDir};
//! use krunbox::vm::VmConfig;
//!
//! let state = StateDir::open()?;
//! let name = "web".parse()?;
//! NamedVm::start(&state, &name, &VmConfig::new("/srv/rootfs"), ClientConfig::default()).await?;
//! // … later, from any process of the same user …
//! let vm = NamedVm::open(&state, &name)?;
//! let out = vm.agent(ClientConfig::default())?.exec(&GuestCommand::new("uptime")).await?;
//! vm.stop(std::time::Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```

mod dir;
mod error;
mod name;
mod pool;
mod record;
mod stop;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use dir::{StateDir, MAX_SOCKET_PATH, STATE_DIR_ENV};
pub use error::Error;
pub use name::{VmName, MAX_NAME_LEN};
pub use pool::{MemberCounts, NamedPool, PoolSpec};
pub(crate) use record::start_ticks;
pub use record::{ProcessId, VmRecord};
pub use stop::Stopped;

use crate::client::{AgentClient, ClientConfig};
use crate::runner::RunnerEnd;
use crate::vm::{SocketDir, VmConfig};

/// The file in a VM's directory where its runner's monitor writes how the
/// VM ended ([`RunnerEnd`]).
pub const EXIT_RECORD_FILE: &str = "exit.json";
/// The egress mode's record of attempts, in the VM's directory.
pub const EGRESS_LOG_FILE: &str = "egress.log";

/// What a named VM is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VmStatus {
    /// `krunbox start` is booting it.
    Starting,
    /// Its runner is alive and its agent was ready.
    Running,
    /// Its runner (or the start that was booting it) has gone: the VM
    /// powered off, crashed or was killed. Its directory remains until
    /// `stop` or a new `start` of the same name removes it.
    Dead,
}

impl fmt::Display for VmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Dead => "dead: its runner has exited",
        })
    }
}

/// A named VM found in the state directory.
#[derive(Debug, Clone)]
pub struct NamedVm {
    name: VmName,
    dir: PathBuf,
    record: VmRecord,
    state: StateDir,
}

impl NamedVm {
    /// Boots `config` as the VM `name` and returns once its agent is ready;
    /// the VM keeps running after this process exits. A dead VM of the
    /// same name is cleaned up first; a live one is an error. If the boot
    /// fails, nothing is left behind.
    pub async fn start(
        state: &StateDir,
        name: &VmName,
        config: &VmConfig,
        client: ClientConfig,
    ) -> Result<Self, Error> {
        state.check_socket_paths(name)?;
        validate(name, config)?;
        let dir = state.vm_dir(name);
        let record = starting_record(name, config, &dir);
        claim(state, name, &dir, &record)?;
        Self::boot_into(state, name, dir, record, config, client).await
    }

    /// Boots `config` into `dir`, which holds its starting `record`
    /// already; removes `dir` if the boot fails.
    pub(crate) async fn boot_into(
        state: &StateDir,
        name: &VmName,
        dir: PathBuf,
        mut record: VmRecord,
        config: &VmConfig,
        client: ClientConfig,
    ) -> Result<Self, Error> {
        let booted = config
            .boot_in(SocketDir::Given(dir.clone()), client, true)
            .await;
        let vm = match booted {
            Ok(vm) => vm,
            Err(source) => {
                let _ = remove_dir(state, &dir);
                return Err(Error::Boot {
                    name: name.to_string(),
                    source,
                });
            }
        };
        let detached = vm.detach();
        record.runner = ProcessId::of(detached.runner_pid);
        record.hello = Some(detached.hello);
        record.ready_ms = detached.timeline.ready.map(|d| d.as_millis() as u64);
        record.confinement = detached.confinement;
        if let Err(source) = record.write(&dir) {
            stop::kill_runner(detached.runner_pid);
            let _ = remove_dir(state, &dir);
            return Err(record_error(name, &dir, source));
        }
        Ok(Self {
            name: name.clone(),
            dir,
            record,
            state: state.clone(),
        })
    }

    /// Finds the VM `name`.
    pub fn open(state: &StateDir, name: &VmName) -> Result<Self, Error> {
        let dir = state.vm_dir(name);
        if !dir.is_dir() {
            return Err(Error::NoSuchVm {
                name: name.to_string(),
            });
        }
        Self::open_dir(state, name, dir)
    }

    /// The VM whose directory is `dir` (a pool member's, or `name`'s).
    pub(crate) fn open_dir(state: &StateDir, name: &VmName, dir: PathBuf) -> Result<Self, Error> {
        let record = VmRecord::read(&dir).map_err(|e| record_error(name, &dir, e))?;
        Ok(Self {
            name: name.clone(),
            dir,
            record,
            state: state.clone(),
        })
    }

    /// Every VM in the state directory, by name. Directories whose record
    /// cannot be read are left out.
    pub fn list(state: &StateDir) -> Result<Vec<Self>, Error> {
        Ok(state
            .names()?
            .iter()
            .filter_map(|name| Self::open(state, name).ok())
            .collect())
    }

    /// The VM's name.
    pub fn name(&self) -> &VmName {
        &self.name
    }

    /// What `start` recorded.
    pub fn record(&self) -> &VmRecord {
        &self.record
    }

    /// The VM's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The guest console's log: kernel, init and agent messages.
    pub fn log_path(&self) -> &Path {
        &self.record.console_log
    }

    /// The runner's log: libkrun's messages.
    pub fn runner_log_path(&self) -> PathBuf {
        self.dir.join("vm.log")
    }

    /// The egress mode's record of attempts (JSON lines; absent in the
    /// other modes).
    pub fn egress_log_path(&self) -> PathBuf {
        self.dir.join(EGRESS_LOG_FILE)
    }

    /// What it is doing now.
    pub fn status(&self) -> VmStatus {
        match (&self.record.runner, &self.record.starter) {
            (Some(runner), _) if runner.is_alive() => VmStatus::Running,
            (Some(_), _) => VmStatus::Dead,
            (None, Some(starter)) if starter.is_alive() => VmStatus::Starting,
            (None, _) => VmStatus::Dead,
        }
    }

    /// How the VM ended, when it has and its monitor could say: exit
    /// status or signal, and the host kernel's OOM line. Kept until `stop`.
    pub fn end(&self) -> Option<RunnerEnd> {
        RunnerEnd::read(&self.dir.join(EXIT_RECORD_FILE))
    }

    /// A client for the VM's agent, if the VM is running.
    pub fn agent(&self, config: ClientConfig) -> Result<AgentClient, Error> {
        let status = self.status();
        match (&self.record.hello, status) {
            (Some(hello), VmStatus::Running) => Ok(AgentClient::attach(
                self.dir.join("ops.sock"),
                hello.clone(),
                config,
            )),
            _ => Err(Error::NotRunning {
                name: self.name.to_string(),
                status,
                ended: self.end(),
            }),
        }
    }
}

/// Checks `config` before anything is written for VM `name`.
fn validate(name: &VmName, config: &VmConfig) -> Result<(), Error> {
    config.validate().map_err(|e| Error::Boot {
        name: name.to_string(),
        source: e.into(),
    })
}

/// The record of VM `name`, about to boot `config` in `dir`.
fn starting_record(name: &VmName, config: &VmConfig, dir: &Path) -> VmRecord {
    VmRecord {
        name: name.to_string(),
        starter: ProcessId::current(),
        runner: None,
        hello: None,
        rootfs: config.rootfs().to_owned(),
        cpus: config.cpus,
        memory_mib: config.memory_mib,
        net: config.net,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        ready_ms: None,
        console_log: config
            .console_log
            .clone()
            .unwrap_or_else(|| dir.join("console.log")),
        confinement: None,
    }
}

/// Creates the VM directory with its first record, atomically: it is
/// prepared under a temporary name and renamed into place under the state
/// lock, after a dead VM of the same name is removed.
fn claim(state: &StateDir, name: &VmName, dir: &Path, record: &VmRecord) -> Result<(), Error> {
    let _lock = state.lock()?;
    make_way_locked(state, name, dir)?;
    place_locked(name, dir, record)
}

/// With the state lock held: fails if a VM `name` lives at `dir`, removes
/// it if it is dead.
fn make_way_locked(state: &StateDir, name: &VmName, dir: &Path) -> Result<(), Error> {
    if !dir.exists() {
        return Ok(());
    }
    match NamedVm::open(state, name) {
        Ok(existing) if existing.status() != VmStatus::Dead => Err(Error::Exists {
            name: name.to_string(),
            status: existing.status(),
        }),
        // Dead, or a directory without a readable record: the start
        // that made it died before writing one (the lock was held
        // from mkdir to the record's write).
        _ => remove_dir_locked(dir).map_err(|source| Error::StateDir {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// With the state lock held: makes `dir` with `record` in it, prepared
/// beside it and renamed into place.
fn place_locked(name: &VmName, dir: &Path, record: &VmRecord) -> Result<(), Error> {
    let file_name = dir.file_name().unwrap_or_default().to_string_lossy();
    let aside = dir.with_file_name(format!(".new-{file_name}-{}", std::process::id()));
    dir::make_private_dir(&aside, false)?;
    let prepared = record
        .write(&aside)
        .and_then(|()| std::fs::rename(&aside, dir));
    prepared.map_err(|source| {
        let _ = std::fs::remove_dir_all(&aside);
        record_error(name, dir, source)
    })
}

/// Removes a VM directory under the state lock.
fn remove_dir(state: &StateDir, dir: &Path) -> Result<(), Error> {
    let _lock = state.lock()?;
    remove_dir_locked(dir).map_err(|source| Error::StateDir {
        path: dir.to_owned(),
        source,
    })
}

fn remove_dir_locked(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn record_error(name: &VmName, dir: &Path, source: std::io::Error) -> Error {
    Error::Record {
        name: name.to_string(),
        path: dir.join(record::RECORD_FILE),
        source,
    }
}
