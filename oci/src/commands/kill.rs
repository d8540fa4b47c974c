//! `kill`: a signal to the container's process, through its monitor. A
//! container not started yet ends (runc's init would die of it).

use std::path::Path;
use std::str::FromStr;

use liboci_cli::Kill;
use nix::sys::signal::Signal;
use oci_spec::runtime::ContainerState;

use crate::container::{self, Container};
use crate::ctl::{self, Request};
use crate::error::Error;

pub(super) async fn run(root: Option<&Path>, args: Kill) -> Result<(), Error> {
    let signal = parse_signal(&args.signal)?;
    let state = container::state_dir(root)?;
    let container = Container::open(&state, &args.container_id)?;
    match container.status() {
        ContainerState::Created | ContainerState::Running => {
            ctl::call(&container.ctl_path(), Request::Kill { signal })
                .await
                .map_err(Error::Ctl)
        }
        ContainerState::Stopped => Err(Error::NotRunning { id: container.id }),
        ContainerState::Creating => Err(container.wrong_state("kill", "created or running")),
    }
}

/// `9`, `KILL` or `SIGKILL` (any case) as a signal number.
pub(super) fn parse_signal(text: &str) -> Result<i32, Error> {
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number)
            .map(|s| s as i32)
            .map_err(|_| Error::BadSignal(text.to_owned()));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name)
        .map(|s| s as i32)
        .map_err(|_| Error::BadSignal(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_number_and_name() {
        for (text, number) in [("9", 9), ("KILL", 9), ("sigterm", 15), ("SIGUSR1", 10)] {
            assert_eq!(parse_signal(text).unwrap(), number, "{text}");
        }
        for bad in ["", "0x9", "SIGNOPE", "99"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
