//! [`NamedPool`]: VMs booted ahead of need in the state directory, each
//! claimed once, under a name, by any process of the same user. No daemon
//! keeps the pool: whoever fills it boots its members as named VMs would
//! be booted, and a claim renames a ready member's directory to the name
//! asked for, after which it is an ordinary named VM (`exec`, `cp`,
//! `stop`).
//!
//! A member's runner holds its directory by descriptor, not by path: its
//! sockets stay bound, its logs stay open, and its monitor writes the
//! VM's end into the directory wherever it has moved, so the rename is
//! all a claim needs.
//!
//! **Two claims at once.** A claim takes the state directory's lock, picks
//! the oldest ready member, and renames it before it lets go, so two
//! claims, from any processes, never get the same VM; when no member is
//! ready, [`NamedPool::claim`] says so and the caller boots one cold.
//! Fills reserve their members' directories under the same lock, so two
//! fills at once never boot more than the pool's size between them.
//!
//! **A reboot of the machine** ends every member. The state directory is
//! usually on a tmpfs (`$XDG_RUNTIME_DIR`) and goes with them; where it
//! survives, each member's record names a runner whose pid and start time
//! no longer match any process, so it counts as dead: claims skip it, and
//! the next fill removes it and boots a replacement.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::dir::{check_socket_dir, make_private_dir};
use super::record::write_json;
use super::{
    make_way_locked, place_locked, record_error, remove_dir_locked, starting_record, validate,
    Error, NamedVm, StateDir, VmName, VmRecord, VmStatus,
};
use crate::client::ClientConfig;
use crate::vm::VmConfig;

/// The pool's record, in its directory.
const SPEC_FILE: &str = "pool.json";

/// Most members a pool may have (their directory names stay short enough
/// for socket paths).
pub const MAX_POOL_SIZE: usize = 64;

/// What a pool is: how many VMs it keeps booted, and how they boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// VMs kept booted.
    pub size: usize,
    /// The options its VMs boot with, as its creator gave them (the CLI
    /// keeps `krunbox start`'s options here). The library stores them and
    /// does not read them: [`NamedPool::fill`] takes the configuration.
    pub options: Vec<String>,
    /// The directory relative paths in `options` are read from (empty:
    /// wherever the caller is).
    #[serde(default)]
    pub cwd: PathBuf,
    /// When the pool was created, in seconds since the epoch.
    pub created_unix: u64,
}

impl PoolSpec {
    /// A pool of `size` VMs booted with `options`, created now.
    pub fn new(size: usize, options: Vec<String>) -> Self {
        Self {
            size,
            options,
            cwd: PathBuf::new(),
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// A pool's members by what they are doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemberCounts {
    /// Booted, their agents ready: what a claim takes.
    pub ready: usize,
    /// Being booted by a fill.
    pub starting: usize,
    /// Ended (killed, powered off, or the machine rebooted); the next
    /// fill removes them.
    pub dead: usize,
}

/// A pool of pre-booted VMs in the state directory.
#[derive(Debug, Clone)]
pub struct NamedPool {
    name: VmName,
    dir: PathBuf,
    spec: PoolSpec,
    state: StateDir,
}

impl NamedPool {
    /// Records a new, empty pool `name`; [`NamedPool::fill`] boots its
    /// members. A pool of that name already is an error.
    pub fn create(state: &StateDir, name: &VmName, spec: PoolSpec) -> Result<Self, Error> {
        if spec.size == 0 || spec.size > MAX_POOL_SIZE {
            return Err(Error::BadPoolSize {
                size: spec.size,
                max: MAX_POOL_SIZE,
            });
        }
        let pools = state.pools_dir();
        make_private_dir(&pools, false)?;
        let dir = pools.join(name.as_str());
        // The longest member directory name: `m` and three digits.
        check_socket_dir(&dir.join("m000"))?;
        let _lock = state.lock()?;
        if dir.exists() {
            return Err(Error::PoolExists {
                name: name.to_string(),
            });
        }
        let aside = pools.join(format!(".new-{name}-{}", std::process::id()));
        make_private_dir(&aside, false)?;
        let placed =
            write_json(&aside, SPEC_FILE, &spec).and_then(|()| std::fs::rename(&aside, &dir));
        placed.map_err(|source| {
            let _ = std::fs::remove_dir_all(&aside);
            pool_record_error(name, &dir, source)
        })?;
        Ok(Self {
            name: name.clone(),
            dir,
            spec,
            state: state.clone(),
        })
    }

    /// Finds the pool `name`.
    pub fn open(state: &StateDir, name: &VmName) -> Result<Self, Error> {
        let dir = state.pools_dir().join(name.as_str());
        if !dir.is_dir() {
            return Err(Error::NoSuchPool {
                name: name.to_string(),
            });
        }
        let bytes =
            std::fs::read(dir.join(SPEC_FILE)).map_err(|e| pool_record_error(name, &dir, e))?;
        let spec = serde_json::from_slice(&bytes)
            .map_err(|e| pool_record_error(name, &dir, std::io::Error::other(e)))?;
        Ok(Self {
            name: name.clone(),
            dir,
            spec,
            state: state.clone(),
        })
    }

    /// Every pool, by name. Directories whose record cannot be read are
    /// left out.
    pub fn list(state: &StateDir) -> Result<Vec<Self>, Error> {
        let pools = state.pools_dir();
        let dirs = match subdirs(&pools) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            found => found.map_err(|source| Error::StateDir {
                path: pools.clone(),
                source,
            })?,
        };
        let mut out: Vec<Self> = dirs
            .into_iter()
            .filter_map(|(name, _)| Self::open(state, &name).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The pool's name.
    pub fn name(&self) -> &VmName {
        &self.name
    }

    /// What the pool is.
    pub fn spec(&self) -> &PoolSpec {
        &self.spec
    }

    /// Where the background refills a claim starts write what they say.
    pub fn refill_log_path(&self) -> PathBuf {
        self.dir.join("refill.log")
    }

    /// Its members now; those whose record cannot be read are left out.
    pub fn members(&self) -> Vec<NamedVm> {
        subdirs(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, dir)| NamedVm::open_dir(&self.state, &name, dir).ok())
            .collect()
    }

    /// How many members are ready, starting and dead.
    pub fn counts(&self) -> MemberCounts {
        let mut counts = MemberCounts::default();
        for member in self.members() {
            match member.status() {
                VmStatus::Running => counts.ready += 1,
                VmStatus::Starting => counts.starting += 1,
                VmStatus::Dead => counts.dead += 1,
            }
        }
        counts
    }

    /// Boots members of `config` until the pool has its size (counting
    /// those another fill is booting), at most `max_boots` at a time, and
    /// removes dead members first. Returns how many it booted; with a
    /// failed boot, the first failure, once the other boots have ended.
    pub async fn fill(
        &self,
        config: &VmConfig,
        client: ClientConfig,
        max_boots: usize,
    ) -> Result<usize, Error> {
        validate(&self.name, config)?;
        let reserved = self.reserve(config)?;
        let permits = Arc::new(Semaphore::new(max_boots.max(1)));
        let mut boots = JoinSet::new();
        for (name, dir, record) in reserved {
            let (state, config, client) = (self.state.clone(), config.clone(), client.clone());
            let permits = permits.clone();
            boots.spawn(async move {
                let _permit = permits.acquire_owned().await;
                NamedVm::boot_into(&state, &name, dir, record, &config, client).await
            });
        }
        succeeded(boots).await
    }

    /// Under the state lock: removes dead members and makes the
    /// directories (with starting records) of the members still missing.
    fn reserve(&self, config: &VmConfig) -> Result<Vec<(VmName, PathBuf, VmRecord)>, Error> {
        let _lock = self.state.lock()?;
        let no_pool = || Error::NoSuchPool {
            name: self.name.to_string(),
        };
        let dirs = subdirs(&self.dir).map_err(|_| no_pool())?;
        let mut taken = HashSet::new();
        for (name, dir) in dirs {
            match NamedVm::open_dir(&self.state, &name, dir.clone()) {
                Ok(member) if member.status() != VmStatus::Dead => {
                    taken.insert(name);
                }
                _ => remove_dir_locked(&dir).map_err(|source| Error::StateDir {
                    path: dir.clone(),
                    source,
                })?,
            }
        }
        let mut reserved = Vec::new();
        let free = (0..MAX_POOL_SIZE * 2)
            .filter_map(|i| format!("m{i}").parse::<VmName>().ok())
            .filter(|name| !taken.contains(name));
        for name in free.take(self.spec.size.saturating_sub(taken.len())) {
            let dir = self.dir.join(name.as_str());
            let record = starting_record(&name, config, &dir);
            place_locked(&name, &dir, &record)?;
            reserved.push((name, dir, record));
        }
        Ok(reserved)
    }

    /// Takes the oldest ready member and makes it the named VM `name`:
    /// atomically, so two claims never take the same member. A dead VM
    /// called `name` is removed first; a live one is an error. `None` when
    /// no member is ready (the caller may boot `name` cold).
    pub fn claim(&self, name: &VmName) -> Result<Option<NamedVm>, Error> {
        self.state.check_socket_paths(name)?;
        let _lock = self.state.lock()?;
        if !self.dir.is_dir() {
            return Err(Error::NoSuchPool {
                name: self.name.to_string(),
            });
        }
        let target = self.state.vm_dir(name);
        make_way_locked(&self.state, name, &target)?;
        let mut ready: Vec<NamedVm> = self
            .members()
            .into_iter()
            .filter(|m| m.status() == VmStatus::Running)
            .collect();
        ready.sort_by_key(|m| {
            (
                m.record.created_unix,
                m.record.runner.map(|r| r.start_ticks),
            )
        });
        let Some(member) = ready.into_iter().next() else {
            return Ok(None);
        };
        let mut record = member.record.clone();
        record.name = name.to_string();
        if let Ok(inside) = record.console_log.strip_prefix(&member.dir) {
            record.console_log = target.join(inside);
        }
        // The record first: a claim cut short between the two leaves a
        // ready member whose record names another VM, which the next
        // claim writes again.
        record
            .write(&member.dir)
            .map_err(|e| record_error(name, &member.dir, e))?;
        std::fs::rename(&member.dir, &target).map_err(|source| Error::StateDir {
            path: target.clone(),
            source,
        })?;
        Ok(Some(NamedVm {
            name: name.clone(),
            dir: target,
            record,
            state: self.state.clone(),
        }))
    }

    /// Removes the pool: no claim or fill finds it from now on; its ready
    /// members are stopped (each given `timeout` to power off), and its
    /// directory goes. A member a fill is still booting is killed by that
    /// fill, which finds its directory gone. Returns how many were stopped.
    pub async fn remove(self, timeout: Duration) -> Result<usize, Error> {
        let aside =
            self.state
                .pools_dir()
                .join(format!(".rm-{}-{}", self.name, std::process::id()));
        {
            let _lock = self.state.lock()?;
            std::fs::rename(&self.dir, &aside).map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => Error::NoSuchPool {
                    name: self.name.to_string(),
                },
                _ => Error::StateDir {
                    path: self.dir.clone(),
                    source,
                },
            })?;
        }
        let moved = Self {
            dir: aside.clone(),
            ..self
        };
        let mut stops = JoinSet::new();
        for member in moved.members() {
            if member.status() == VmStatus::Running {
                stops.spawn(member.stop(timeout));
            }
        }
        let stopped = succeeded(stops).await?;
        std::fs::remove_dir_all(&aside).map_err(|source| Error::StateDir {
            path: aside,
            source,
        })?;
        Ok(stopped)
    }
}

/// Waits for every task of `tasks`; how many succeeded, or the first
/// failure once all have ended. A task's panic goes on here.
async fn succeeded<T: 'static>(mut tasks: JoinSet<Result<T, Error>>) -> Result<usize, Error> {
    let mut done = 0;
    let mut failed = None;
    while let Some(ended) = tasks.join_next().await {
        match ended {
            Ok(Ok(_)) => done += 1,
            Ok(Err(e)) => {
                failed.get_or_insert(e);
            }
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => {}
        }
    }
    failed.map_or(Ok(done), Err)
}

/// The subdirectories of `dir` whose names are VM names (so not the
/// hidden ones being placed or removed).
fn subdirs(dir: &Path) -> std::io::Result<Vec<(VmName, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let name = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<VmName>().ok());
        if let (true, Some(name)) = (is_dir, name) {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}

fn pool_record_error(name: &VmName, dir: &Path, source: std::io::Error) -> Error {
    Error::PoolRecord {
        name: name.to_string(),
        path: dir.join(SPEC_FILE),
        source,
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
