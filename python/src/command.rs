//! A guest command as the Python layer describes it: a dict with every
//! key present (`krunbox/_spec.py` builds it).

use std::time::Duration;

use krunbox::client::GuestCommand;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;

use crate::errors::value_error;

/// The dict's keys, as the Python layer fills them.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct CommandSpec {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    env_clear: bool,
    cwd: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    stdin: Option<PyBackedBytes>,
    stream_stdin: bool,
    timeout: Option<f64>,
}

impl CommandSpec {
    /// The library's command.
    pub(crate) fn command(&self) -> PyResult<GuestCommand> {
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| value_error("the command is empty: give at least the program"))?;
        let mut cmd = GuestCommand::new(program.as_str()).args(args.iter().map(String::as_str));
        if self.env_clear {
            cmd = cmd.env_clear();
        }
        for (key, value) in &self.env {
            cmd = cmd.env(key.as_str(), value.as_str());
        }
        if let Some(cwd) = &self.cwd {
            cmd = cmd.cwd(cwd.as_str());
        }
        if let Some(uid) = self.uid {
            cmd = cmd.uid(uid);
        }
        if let Some(gid) = self.gid {
            cmd = cmd.gid(gid);
        }
        if let Some(stdin) = &self.stdin {
            cmd = cmd.stdin(stdin.to_vec());
        }
        if self.stream_stdin {
            cmd = cmd.stream_stdin();
        }
        if let Some(timeout) = self.timeout {
            cmd = cmd.timeout(seconds(timeout)?);
        }
        Ok(cmd)
    }
}

/// A duration in seconds from Python, which must be finite and not negative.
pub(crate) fn seconds(value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| value_error(format!("{value} is not a duration in seconds")))
}
