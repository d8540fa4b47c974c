//! `Process`: a streamed exec (`krunbox::client::ExecSession`).

use std::borrow::Cow;
use std::sync::Arc;

use krunbox::client::{ExecControl, ExecEvent, ExecSession, WinSize};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3_async_runtimes::tokio::future_into_py;
use tokio::sync::Mutex;

use crate::errors::Raise;
use crate::values::{self, PyBytesOut, Status};

/// A running guest process: its events in order, and its stdin, signals
/// and window size. Dropping the last reference before it ended kills it.
#[pyclass(frozen, module = "krunbox._krunbox")]
pub(crate) struct Process {
    session: Arc<Mutex<ExecSession>>,
    control: ExecControl,
}

impl Process {
    /// Wraps a started session.
    pub(crate) fn new(session: ExecSession) -> Self {
        let control = session.control();
        Self {
            session: Arc::new(Mutex::new(session)),
            control,
        }
    }
}

/// One event: `("started", pid)`, `("stdout", bytes)`, `("stderr", bytes)`
/// or `("exit", (code, signal, timed_out))`.
#[derive(IntoPyObject)]
enum Event {
    Pid(&'static str, u32),
    Bytes(&'static str, PyBytesOut),
    Exit(&'static str, Status),
}

#[pymethods]
impl Process {
    /// The next event, or `None` after the exit event.
    fn next_event<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let session = self.session.clone();
        future_into_py(py, async move {
            let event = session
                .lock()
                .await
                .next_event()
                .await
                .map_err(Raise::from)?;
            Ok(event.map(|event| match event {
                ExecEvent::Started(pid) => Event::Pid("started", pid),
                ExecEvent::Stdout(bytes) => Event::Bytes("stdout", Cow::Owned(bytes.to_vec())),
                ExecEvent::Stderr(bytes) => Event::Bytes("stderr", Cow::Owned(bytes.to_vec())),
                ExecEvent::Exit(status) => Event::Exit("exit", values::status(&status)),
            }))
        })
    }

    /// Writes to its stdin (waits while the guest's window is full).
    fn write_stdin<'py>(
        &self,
        py: Python<'py>,
        data: PyBackedBytes,
    ) -> PyResult<Bound<'py, PyAny>> {
        let control = self.control.clone();
        future_into_py(py, async move {
            control.write_stdin(&data).await.map_err(Raise::from)?;
            Ok(())
        })
    }

    /// Closes its stdin.
    fn close_stdin<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let control = self.control.clone();
        future_into_py(py, async move {
            control.close_stdin().await.map_err(Raise::from)?;
            Ok(())
        })
    }

    /// Sends it `signal`.
    fn signal<'py>(&self, py: Python<'py>, signal: i32) -> PyResult<Bound<'py, PyAny>> {
        let control = self.control.clone();
        future_into_py(py, async move {
            control.signal(signal).await.map_err(Raise::from)?;
            Ok(())
        })
    }

    /// Resizes its terminal.
    fn resize<'py>(&self, py: Python<'py>, rows: u16, cols: u16) -> PyResult<Bound<'py, PyAny>> {
        let control = self.control.clone();
        future_into_py(py, async move {
            control
                .resize(WinSize { rows, cols })
                .await
                .map_err(Raise::from)?;
            Ok(())
        })
    }
}
