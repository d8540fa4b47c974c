//! `Machine`: a VM this process booted (`krunbox::vm::Vm`), and the
//! module functions that boot one or attach to a named one.

use std::ffi::OsString;
use std::net::IpAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Mutex;

use krunbox::client::ClientConfig;
use krunbox::egress::{Policy, Rule};
use krunbox::runner::RunnerProgram;
use krunbox::state::{NamedVm, StateDir, VmName};
use krunbox::vm::{NetMode, PublishedPort, Rlimit, Vm, VmConfig, Volume};
use pyo3::prelude::*;
use pyo3_async_runtimes::tokio::future_into_py;

use crate::agent::Agent;
use crate::command::seconds;
use crate::errors::{value_error, Raise};
use crate::values;

/// A VM's configuration as the Python layer describes it: a dict with
/// every key present (`krunbox/_spec.py` builds it).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct BootSpec {
    rootfs: Option<PathBuf>,
    image: Option<String>,
    cpus: u8,
    memory_mib: u32,
    env: Vec<(String, String)>,
    workdir: Option<String>,
    net: String,
    hostname: Option<String>,
    volumes: Vec<(PathBuf, String, bool)>,
    publish: Vec<(u16, u16)>,
    allow: Option<Vec<String>>,
    hosts: Vec<(String, String)>,
    rlimits: Vec<String>,
    user: Option<(u32, u32)>,
    overlay_root: Option<bool>,
    log_level: Option<u32>,
    console_log: Option<PathBuf>,
    runner: Option<(PathBuf, Vec<OsString>)>,
    liveness_timeout: Option<f64>,
}

impl BootSpec {
    fn config(&self) -> Result<VmConfig, PyErr> {
        let mut config = match (&self.rootfs, &self.image) {
            (Some(rootfs), None) => VmConfig::new(rootfs),
            (None, Some(reference)) => {
                let store = krunbox::image::Store::open_default().map_err(Raise::from)?;
                let image = store.get(reference).map_err(Raise::from)?;
                VmConfig::from_image(&image).map_err(|e| Raise::new("ImageError", &e))?
            }
            _ => return Err(value_error("give exactly one of rootfs and image")),
        };
        config = config.cpus(self.cpus).memory_mib(self.memory_mib);
        for (key, value) in &self.env {
            config = config.env(key.as_str(), value.as_str());
        }
        if let Some(dir) = &self.workdir {
            config = config.workdir(dir.as_str());
        }
        config = config.net(match self.net.as_str() {
            "tsi" => NetMode::Tsi,
            "none" => NetMode::None,
            other => {
                return Err(value_error(format!(
                    "net must be 'tsi' or 'none', not {other:?}"
                )))
            }
        });
        if let Some(name) = &self.hostname {
            config = config.hostname(name.as_str());
        }
        for (host, guest, read_only) in &self.volumes {
            let volume = Volume::new(host, guest.as_str());
            config = config.volume(if *read_only {
                volume.read_only()
            } else {
                volume
            });
        }
        for (host, guest) in &self.publish {
            config = config.publish(PublishedPort::new(*host, *guest));
        }
        if let Some(rules) = &self.allow {
            let rules = rules
                .iter()
                .map(|rule| rule.parse::<Rule>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Raise::new("ConfigError", &e))?;
            config = config.egress(Policy::new(rules));
        }
        for (name, addr) in &self.hosts {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| value_error(format!("{addr:?} is not an IP address (for {name})")))?;
            config = config.egress_host(name.as_str(), addr);
        }
        for limit in &self.rlimits {
            let limit: Rlimit = limit.parse().map_err(|e| Raise::new("ConfigError", &e))?;
            config = config.rlimit(limit);
        }
        if let Some((uid, gid)) = self.user {
            config = config.user(uid, gid);
        }
        if let Some(overlay) = self.overlay_root {
            config = config.overlay_root(overlay);
        }
        if let Some(level) = self.log_level {
            config = config.log_level(level);
        }
        if let Some(path) = &self.console_log {
            config = config.console_log(path);
        }
        if let Some((program, args)) = &self.runner {
            config = config.runner(RunnerProgram::Command {
                program: program.clone(),
                args: args.clone(),
            });
        }
        Ok(config)
    }

    fn client_config(&self) -> PyResult<ClientConfig> {
        let mut config = ClientConfig::default();
        if let Some(timeout) = self.liveness_timeout {
            config.liveness_timeout = seconds(timeout)?;
        }
        Ok(config)
    }
}

/// A VM booted by this process: it ends when this object is shut down,
/// killed, or garbage-collected.
#[pyclass(frozen, module = "krunbox._krunbox")]
pub(crate) struct Machine {
    vm: Mutex<Option<Vm>>,
    agent: Py<Agent>,
    runner_pid: u32,
    log_path: PathBuf,
}

impl Machine {
    fn take(&self) -> PyResult<Vm> {
        self.vm
            .lock()
            .ok()
            .and_then(|mut vm| vm.take())
            .ok_or_else(|| {
                Raise::message("VmGoneError", "the VM was shut down or killed".into()).into()
            })
    }
}

/// `(code, signal)` of an exit status.
fn exit(status: std::process::ExitStatus) -> (Option<i32>, Option<i32>) {
    (status.code(), status.signal())
}

#[pymethods]
impl Machine {
    /// The VM's agent.
    fn agent(&self, py: Python<'_>) -> Py<Agent> {
        self.agent.clone_ref(py)
    }

    /// The runner process's pid on the host.
    #[getter]
    fn runner_pid(&self) -> u32 {
        self.runner_pid
    }

    /// The VM's log (runner and console) on the host.
    #[getter]
    fn log_path(&self) -> PathBuf {
        self.log_path.clone()
    }

    /// Whether the runner still runs.
    fn is_running(&self) -> bool {
        self.vm
            .lock()
            .map(|vm| vm.as_ref().is_some_and(Vm::is_running))
            .unwrap_or(false)
    }

    /// The boot timeline, in milliseconds from the runner's spawn.
    fn timeline<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let vm = self.vm.lock().map_err(|_| value_error("poisoned"))?;
        let vm = vm.as_ref().ok_or_else(|| {
            PyErr::from(Raise::message(
                "VmGoneError",
                "the VM was shut down or killed".into(),
            ))
        })?;
        Ok(values::timeline(py, &vm.timeline())?.into_any())
    }

    /// Asks the guest to power off and waits at most `timeout` seconds
    /// (then kills it): `(code, signal)` of the runner.
    fn shutdown<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let timeout = seconds(timeout)?;
        let vm = self.take()?;
        future_into_py(py, async move {
            let status = vm.shutdown(timeout).await.map_err(Raise::from)?;
            Ok(exit(status))
        })
    }

    /// Kills the VM at once and waits until its runner is gone.
    fn kill<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let vm = self.vm.lock().ok().and_then(|mut vm| vm.take());
        future_into_py(py, async move {
            if let Some(vm) = vm {
                vm.kill().await;
            }
            Ok(())
        })
    }
}

/// Boots a VM as `spec` describes: an awaitable `Machine`.
#[pyfunction]
pub(crate) fn boot<'py>(py: Python<'py>, spec: BootSpec) -> PyResult<Bound<'py, PyAny>> {
    let config = spec.config()?;
    let client_config = spec.client_config()?;
    future_into_py(py, async move {
        let vm = config.boot_with(client_config).await.map_err(Raise::from)?;
        let agent = Python::attach(|py| Py::new(py, Agent::new(vm.agent().clone())))?;
        Ok(Machine {
            runner_pid: vm.runner_pid(),
            log_path: vm.log_path().to_owned(),
            vm: Mutex::new(Some(vm)),
            agent,
        })
    })
}

/// The agent of the named VM `name` (started by `krunbox start`).
#[pyfunction]
pub(crate) fn attach(name: &str) -> PyResult<Agent> {
    let name: VmName = name.parse().map_err(Raise::from)?;
    let state = StateDir::open().map_err(Raise::from)?;
    let vm = NamedVm::open(&state, &name).map_err(Raise::from)?;
    let client = vm.agent(ClientConfig::default()).map_err(Raise::from)?;
    Ok(Agent::new(client))
}
