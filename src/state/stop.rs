//! Stopping a named VM: ask its agent to power off, wait for the runner
//! (which is not our child, so its exit is watched in `/proc`), kill it if
//! it takes too long, then remove its directory.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{Error, NamedVm, ProcessId, VmStatus};
use crate::client::ClientConfig;

/// How often a runner that is not our child is checked for exit.
const POLL: Duration = Duration::from_millis(50);
/// How long a runner may take to die after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// How a [`NamedVm::stop`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The guest powered off when asked.
    PoweredOff,
    /// The guest did not power off in time (or could not be asked) and its
    /// runner was killed.
    Killed,
    /// It was not running; its directory was removed.
    WasDead,
}

impl NamedVm {
    /// Stops the VM: asks its guest to sync and power off, waits at most
    /// `timeout` for its runner to exit, kills the runner after that, and
    /// removes the VM's directory. A VM that is still starting is an error.
    pub async fn stop(self, timeout: Duration) -> Result<Stopped, Error> {
        let outcome = match (self.status(), self.record.runner) {
            (VmStatus::Starting, _) => {
                return Err(Error::NotRunning {
                    name: self.name.to_string(),
                    status: VmStatus::Starting,
                    ended: None,
                })
            }
            (VmStatus::Dead, _) | (_, None) => Stopped::WasDead,
            (VmStatus::Running, Some(runner)) => self.power_off(runner, timeout).await?,
        };
        super::remove_dir(&self.state, &self.dir)?;
        Ok(outcome)
    }

    async fn power_off(&self, runner: ProcessId, timeout: Duration) -> Result<Stopped, Error> {
        let deadline = Instant::now() + timeout;
        let config = ClientConfig {
            connect_timeout: timeout.min(Duration::from_secs(5)),
            request_timeout: timeout,
            ..ClientConfig::default()
        };
        let asked = match self.agent(config) {
            Ok(agent) => tokio::time::timeout(timeout, agent.shutdown(0))
                .await
                .is_ok_and(|r| r.is_ok()),
            Err(_) => false,
        };
        if asked && wait_gone(runner, deadline).await {
            return Ok(Stopped::PoweredOff);
        }
        if runner.is_alive() {
            let _ = kill(Pid::from_raw(runner.pid as i32), Signal::SIGKILL);
        }
        if wait_gone(runner, Instant::now() + KILL_GRACE).await {
            Ok(Stopped::Killed)
        } else {
            Err(Error::Unkillable {
                name: self.name.to_string(),
                pid: runner.pid,
            })
        }
    }
}

/// Waits until `runner` has exited, at most until `deadline`.
async fn wait_gone(runner: ProcessId, deadline: Instant) -> bool {
    loop {
        if !runner.is_alive() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Kills the runner of a VM that could not be recorded.
pub(crate) fn kill_runner(pid: u32) {
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
}
