//! `state`: the runtime-spec's state JSON, with runc's `rootfs`,
//! `created` and `owner` beside it (containerd's shim reads them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use liboci_cli::State;
use oci_spec::runtime::ContainerState;
use serde::Serialize;

use crate::container::{self, Container};
use crate::error::Error;

/// The runtime-spec version this state follows.
const OCI_VERSION: &str = "1.2.0";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateJson {
    oci_version: &'static str,
    id: String,
    status: String,
    pid: u32,
    bundle: PathBuf,
    rootfs: PathBuf,
    created: String,
    owner: &'static str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    annotations: HashMap<String, String>,
}

pub(super) fn run(root: Option<&Path>, args: State) -> Result<(), Error> {
    let state = container::state_dir(root)?;
    let container = Container::open(&state, &args.container_id)?;
    let json = state_json(&container);
    println!(
        "{}",
        serde_json::to_string_pretty(&json).expect("plain fields serialize")
    );
    Ok(())
}

fn state_json(container: &Container) -> StateJson {
    let status = container.status();
    let record = container.record.clone();
    // A stopped container has no process: runc says pid 0.
    let pid = match (status, record.as_ref().and_then(|r| r.monitor)) {
        (ContainerState::Created | ContainerState::Running, Some(monitor)) => monitor.pid,
        _ => 0,
    };
    // While `create` boots it there is no record yet: empty fields.
    let record = record.unwrap_or_default();
    StateJson {
        oci_version: OCI_VERSION,
        id: container.id.clone(),
        status: status.to_string(),
        pid,
        bundle: record.bundle,
        rootfs: record.rootfs,
        created: record.created,
        owner: "",
        annotations: record.annotations,
    }
}
