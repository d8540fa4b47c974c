//! `ps`: the host processes of the container: its monitor while it runs.

use std::path::Path;

use liboci_cli::Ps;
use oci_spec::runtime::ContainerState;

use crate::container::{self, Container};
use crate::error::Error;

pub(super) fn run(root: Option<&Path>, args: Ps) -> Result<(), Error> {
    let state = container::state_dir(root)?;
    let container = Container::open(&state, &args.container_id)?;
    let pids: Vec<u32> = match container.status() {
        ContainerState::Created | ContainerState::Running => container
            .record
            .as_ref()
            .and_then(|r| r.monitor)
            .map(|m| m.pid)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&pids).expect("numbers")),
        "table" => {
            println!("PID");
            for pid in pids {
                println!("{pid}");
            }
        }
        other => {
            return Err(Error::Unsupported {
                what: format!("ps --format {other}"),
            })
        }
    }
    Ok(())
}
