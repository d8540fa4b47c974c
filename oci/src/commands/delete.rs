//! `delete`: powers the VM off if it still runs and removes everything of
//! the container. A running container needs `--force`, which kills it.

use std::path::Path;
use std::time::Duration;

use liboci_cli::Delete;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::ContainerState;

use crate::container::{self, Container};
use crate::ctl::{self, Request};
use crate::error::Error;

/// How long delete waits for the monitor, then for the VM, to end.
const WAIT: Duration = Duration::from_secs(10);

pub(super) async fn run(root: Option<&Path>, args: Delete) -> Result<(), Error> {
    let state = container::state_dir(root)?;
    let container = Container::open(&state, &args.container_id)?;
    match container.status() {
        ContainerState::Running if !args.force => {
            return Err(container.wrong_state("delete", "stopped (or --force)"))
        }
        ContainerState::Created | ContainerState::Running => {
            let _ = ctl::call(&container.ctl_path(), Request::Kill { signal: 9 }).await;
        }
        ContainerState::Creating | ContainerState::Stopped => {}
    }
    end_monitor(&container).await;
    container
        .vm()?
        .stop(WAIT)
        .await
        .map(drop)
        .map_err(Error::Vm)
}

/// Waits for the monitor to exit (it powers the VM off first); kills it
/// if it does not in time.
async fn end_monitor(container: &Container) {
    let Some(monitor) = container.record.as_ref().and_then(|r| r.monitor) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while monitor.is_alive() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if monitor.is_alive() {
        let _ = kill(Pid::from_raw(monitor.pid as i32), Signal::SIGKILL);
    }
}
