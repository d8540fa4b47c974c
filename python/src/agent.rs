//! `Agent`: a connected guest agent (`krunbox::client::AgentClient`),
//! every operation an awaitable.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Mutex;

use krunbox::client::{AgentClient, ClientConfig, Provision, WinSize};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyTuple;
use pyo3_async_runtimes::tokio::future_into_py;

use crate::command::{seconds, CommandSpec};
use crate::errors::{value_error, Raise};
use crate::process::Process;
use crate::values;

/// A connected guest agent. Cheap to share; the connection closes when
/// the last reference is gone, which ends the agent's processes.
#[pyclass(frozen, module = "krunbox._krunbox")]
pub(crate) struct Agent {
    client: AgentClient,
}

impl Agent {
    /// Wraps a connected client.
    pub(crate) fn new(client: AgentClient) -> Self {
        Self { client }
    }
}

/// The plan from the Python layer's steps: `(op, args…)` tuples.
fn plan(steps: &[Bound<'_, PyTuple>]) -> PyResult<Provision> {
    let mut plan = Provision::new();
    for step in steps {
        let op: String = step.get_item(0)?.extract()?;
        match op.as_str() {
            "mkdir" => {
                let (_, path, mode): (String, String, u32) = step.extract()?;
                plan.mkdir(path, mode);
            }
            "write" => {
                let (_, path, contents, mode): (String, String, PyBackedBytes, u32) =
                    step.extract()?;
                plan.write_bytes(path, contents.to_vec(), mode);
            }
            "chmod" => {
                let (_, path, mode): (String, String, u32) = step.extract()?;
                plan.chmod(path, mode);
            }
            "symlink" => {
                let (_, path, target): (String, String, String) = step.extract()?;
                plan.symlink(path, target);
            }
            "tree" => {
                let (_, source, dest): (String, PathBuf, String) = step.extract()?;
                plan.copy_tree(source, &dest).map_err(Raise::from)?;
            }
            other => return Err(value_error(format!("unknown provisioning step {other:?}"))),
        }
    }
    Ok(plan)
}

#[pymethods]
impl Agent {
    /// Runs a command to completion: `(code, signal, timed_out, stdout, stderr)`.
    fn exec<'py>(&self, py: Python<'py>, spec: CommandSpec) -> PyResult<Bound<'py, PyAny>> {
        let cmd = spec.command()?;
        let client = self.client.clone();
        future_into_py(py, async move {
            let out = client.exec(&cmd).await.map_err(Raise::from)?;
            let (code, signal, timed_out) = values::status(&out.status);
            let stdout: values::PyBytesOut = Cow::Owned(out.stdout);
            let stderr: values::PyBytesOut = Cow::Owned(out.stderr);
            Ok((code, signal, timed_out, stdout, stderr))
        })
    }

    /// Starts a command and returns its `Process`; with `pty` as
    /// `(rows, cols)`, on a new terminal of that size.
    #[pyo3(signature = (spec, pty=None))]
    fn stream<'py>(
        &self,
        py: Python<'py>,
        spec: CommandSpec,
        pty: Option<(u16, u16)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cmd = spec.command()?;
        let client = self.client.clone();
        future_into_py(py, async move {
            let session = match pty {
                Some((rows, cols)) => client.exec_pty(&cmd, WinSize { rows, cols }).await,
                None => client.exec_streaming(&cmd).await,
            }
            .map_err(Raise::from)?;
            Ok(Process::new(session))
        })
    }

    /// Starts a background process: `(id, pid)`.
    fn spawn<'py>(&self, py: Python<'py>, spec: CommandSpec) -> PyResult<Bound<'py, PyAny>> {
        let cmd = spec.command()?;
        let client = self.client.clone();
        future_into_py(py, async move {
            let process = client.spawn_background(&cmd).await.map_err(Raise::from)?;
            Ok((process.id, process.pid))
        })
    }

    /// The background processes: `[(id, pid, argv, status)]`.
    fn processes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            let list = client.list_processes().await.map_err(Raise::from)?;
            Ok(list
                .into_iter()
                .map(values::process_info)
                .collect::<Vec<_>>())
        })
    }

    /// Waits at most `timeout` seconds for a background process: its status,
    /// or `None` if it still runs.
    fn wait_process<'py>(
        &self,
        py: Python<'py>,
        id: u64,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let timeout = seconds(timeout)?;
        future_into_py(py, async move {
            let status = client
                .wait_process(id, timeout)
                .await
                .map_err(Raise::from)?;
            Ok(status.as_ref().map(values::status))
        })
    }

    /// Sends `signal` to a background process.
    fn kill_process<'py>(
        &self,
        py: Python<'py>,
        id: u64,
        signal: i32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            client.kill_process(id, signal).await.map_err(Raise::from)?;
            Ok(())
        })
    }

    /// Forgets an ended background process.
    fn remove_process<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            client.remove_process(id).await.map_err(Raise::from)?;
            Ok(())
        })
    }

    /// A background process's kept output from the given offsets.
    fn read_output<'py>(
        &self,
        py: Python<'py>,
        id: u64,
        stdout_offset: u64,
        stderr_offset: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            let out = client
                .read_output(id, stdout_offset, stderr_offset)
                .await
                .map_err(Raise::from)?;
            Ok(values::output(out))
        })
    }

    /// Copies a host file or tree into the guest: `(entries, bytes, skipped)`.
    fn copy_in<'py>(
        &self,
        py: Python<'py>,
        source: PathBuf,
        dest: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            let stats = client.copy_in(source, &dest).await.map_err(Raise::from)?;
            Ok(values::copy_stats(stats))
        })
    }

    /// Copies a guest file or tree to the host: `(entries, bytes, skipped)`.
    fn copy_out<'py>(
        &self,
        py: Python<'py>,
        source: String,
        dest: PathBuf,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            let stats = client.copy_out(&source, dest).await.map_err(Raise::from)?;
            Ok(values::copy_stats(stats))
        })
    }

    /// Carries out every step in one request.
    fn provision<'py>(
        &self,
        py: Python<'py>,
        steps: Vec<Bound<'py, PyTuple>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let plan = plan(&steps)?;
        let client = self.client.clone();
        future_into_py(py, async move {
            client.provision(&plan).await.map_err(Raise::from)?;
            Ok(())
        })
    }

    /// Creates a guest directory and its parents.
    fn mkdir<'py>(&self, py: Python<'py>, path: String, mode: u32) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            client.mkdir_p(&path, mode).await.map_err(Raise::from)?;
            Ok(())
        })
    }

    /// A guest path's metadata (not following a final symlink).
    fn stat<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            let stat = client.stat(&path).await.map_err(Raise::from)?;
            Ok(values::stat(stat))
        })
    }

    /// Asks the agent to end the guest with exit `code`.
    fn shutdown<'py>(&self, py: Python<'py>, code: i32) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            client.shutdown(code).await.map_err(Raise::from)?;
            Ok(())
        })
    }

    /// Whether the agent still answers.
    fn is_alive(&self) -> bool {
        self.client.is_alive()
    }

    /// Why the agent counts as gone, or `None`.
    fn gone_reason(&self) -> Option<String> {
        self.client.gone_reason().map(|r| r.to_string())
    }
}

/// Where an agent that runs as a host process announces itself (tests,
/// and programs that test against the agent without a VM).
#[pyclass(frozen, module = "krunbox._krunbox")]
pub(crate) struct AgentListener {
    listener: Mutex<Option<std::os::unix::net::UnixListener>>,
}

#[pymethods]
impl AgentListener {
    /// Listens on the unix socket `path` (which must not exist).
    #[new]
    fn new(path: PathBuf) -> PyResult<Self> {
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener: Mutex::new(Some(listener)),
        })
    }

    /// Waits for the agent to announce itself, then connects to its
    /// operations socket `ops_path`. With `liveness_timeout`, the agent
    /// counts as gone after that many seconds of silence.
    #[pyo3(signature = (ops_path, liveness_timeout=None))]
    fn accept<'py>(
        &self,
        py: Python<'py>,
        ops_path: PathBuf,
        liveness_timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let listener = self
            .listener
            .lock()
            .map_err(|_| value_error("the listener is poisoned"))?
            .take()
            .ok_or_else(|| value_error("this listener has already accepted its agent"))?;
        let mut config = ClientConfig::default();
        if let Some(timeout) = liveness_timeout {
            config.liveness_timeout = seconds(timeout)?;
        }
        future_into_py(py, async move {
            let listener = tokio::net::UnixListener::from_std(listener)?;
            let client = AgentClient::accept(&listener, &ops_path, config)
                .await
                .map_err(Raise::from)?;
            Ok(Agent::new(client))
        })
    }
}
