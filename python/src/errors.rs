//! krunbox's errors as the package's exceptions.
//!
//! The hierarchy is defined in Python (`krunbox/errors.py`, where it can
//! use multiple inheritance and carry docstrings); this module picks the
//! class for each Rust error and fills in its message (the error and its
//! causes, as `krunbox::error_chain` prints them), its `hint` (what the
//! CLI would advise), and for the agent's errors its `kind` and `errno`.

use krunbox::client::ClientError;
use pyo3::prelude::*;

/// An exception to raise: its class in `krunbox.errors` and its fields.
#[derive(Debug)]
pub(crate) struct Raise {
    class: &'static str,
    message: String,
    hint: Option<String>,
    kind: Option<String>,
    errno: Option<i32>,
}

impl Raise {
    /// An exception of `class` for `error`, its message the chain of causes.
    pub(crate) fn new(class: &'static str, error: &dyn std::error::Error) -> Self {
        Self::message(class, krunbox::error_chain(error))
    }

    /// An exception of `class` with `message`.
    pub(crate) fn message(class: &'static str, message: String) -> Self {
        Self {
            class,
            message,
            hint: None,
            kind: None,
            errno: None,
        }
    }

    fn hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    fn build(&self, py: Python<'_>) -> PyResult<PyErr> {
        let class = py.import("krunbox.errors")?.getattr(self.class)?;
        let value = class.call1((self.message.as_str(),))?;
        value.setattr("hint", self.hint.as_deref())?;
        if self.kind.is_some() {
            value.setattr("kind", self.kind.as_deref())?;
            value.setattr("errno", self.errno)?;
        }
        Ok(PyErr::from_value(value))
    }
}

impl From<Raise> for PyErr {
    fn from(raise: Raise) -> Self {
        Python::attach(|py| raise.build(py).unwrap_or_else(|failed| failed))
    }
}

impl From<ClientError> for Raise {
    fn from(error: ClientError) -> Self {
        use ClientError as E;
        let class = match &error {
            E::HelloTimeout(_) | E::Timeout { .. } => "TimeoutError",
            E::Connect { .. }
            | E::Io { .. }
            | E::Closed { .. }
            | E::Gone { .. }
            | E::Disconnected { .. } => "VmGoneError",
            E::Agent { .. } => "AgentError",
            E::Tree { .. } | E::Uncopyable { .. } => "CopyError",
            E::OutputCut { .. } => "OutputCutError",
            E::OutputLimit { .. } => "OutputLimitError",
            _ => "ProtocolError",
        };
        let mut raise = Raise::new(class, &error);
        if let E::Agent { source, .. } = &error {
            raise.kind = serde_json::to_value(source.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            raise.errno = source.errno;
        }
        raise
    }
}

impl From<krunbox::vm::Error> for Raise {
    fn from(error: krunbox::vm::Error) -> Self {
        use krunbox::vm::Error as E;
        let class = match &error {
            E::Config(_) | E::RunnerProgram(_) => "ConfigError",
            E::Lost { .. } => "VmGoneError",
            E::ShutdownTimeout(_) => "TimeoutError",
            _ => "BootError",
        };
        let hint = error.advice();
        Raise::new(class, &error).hint(hint)
    }
}

impl From<krunbox::state::Error> for Raise {
    fn from(error: krunbox::state::Error) -> Self {
        let hint = error.advice();
        Raise::new("StateError", &error).hint(hint)
    }
}

impl From<krunbox::image::StoreError> for Raise {
    fn from(error: krunbox::image::StoreError) -> Self {
        Raise::new("ImageError", &error)
    }
}

/// Python's `ValueError` for an argument that makes no sense.
pub(crate) fn value_error(message: impl Into<String>) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(message.into())
}
