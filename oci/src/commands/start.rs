//! `start`: asks the monitor to run the container's process.

use std::path::Path;

use liboci_cli::Start;
use oci_spec::runtime::ContainerState;

use crate::container::{self, Container};
use crate::ctl::{self, Request};
use crate::error::Error;

pub(super) async fn run(root: Option<&Path>, args: Start) -> Result<(), Error> {
    let state = container::state_dir(root)?;
    let container = Container::open(&state, &args.container_id)?;
    if container.status() != ContainerState::Created {
        return Err(container.wrong_state("start", "created"));
    }
    ctl::call(&container.ctl_path(), Request::Start)
        .await
        .map_err(Error::Ctl)
}
