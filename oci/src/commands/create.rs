//! `create`: boots the container's VM, copies its file binds in, and
//! leaves the monitor waiting for `start`; its pid goes to `--pid-file`.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, SystemTime};

use krunbox::client::ClientConfig;
use krunbox::state::NamedVm;
use liboci_cli::{Create, GlobalOpts};

use super::{spawn_self, write_pid_file};
use crate::console::{self, ConsoleError};
use crate::container::{self, Record, CTL_SOCKET};
use crate::error::Error;
use crate::spec::{self, Plan};

/// How long a failed create waits for its VM to power off.
const CLEANUP_WAIT: Duration = Duration::from_secs(10);

pub(super) async fn run(
    root: Option<&Path>,
    global: &GlobalOpts,
    args: Create,
) -> Result<(), Error> {
    let bundle = std::path::absolute(&args.bundle).map_err(|source| Error::State {
        path: args.bundle.clone(),
        source,
    })?;
    let spec_error = |source| Error::Spec {
        bundle: bundle.clone(),
        source,
    };
    let state = container::state_dir(root)?;
    let id = args.container_id.clone();
    let name = container::vm_name(&id);
    if state.vm_dir(&name).exists() {
        return Err(Error::Exists { id });
    }
    let plan = spec::plan(&bundle).map_err(spec_error)?;
    // The process is checked now, not at start, so that create fails.
    spec::process(&plan.spec).map_err(spec_error)?;
    let terminal = plan.spec.process().as_ref().is_some_and(spec::terminal);
    let console_socket = match (terminal, args.console_socket) {
        (true, None) => return Err(ConsoleError::NoSocket.into()),
        (true, socket) => socket,
        (false, _) => None,
    };
    let vm = NamedVm::start(&state, &name, &plan.vm, ClientConfig::default())
        .await
        .map_err(Error::Vm)?;
    let record = Record {
        id,
        bundle: bundle.clone(),
        rootfs: plan.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        annotations: plan.spec.annotations().clone().unwrap_or_default(),
        monitor: None,
        started: false,
        exit_code: None,
    };
    let outside = Outside {
        global,
        pid_file: args.pid_file.as_deref(),
        console_socket: console_socket.as_deref(),
    };
    match prepare(&vm, &plan, record, &outside).await {
        Ok(()) => Ok(()),
        Err(error) => {
            // Nothing half-made stays: the VM, its directory, the monitor
            // (it exits once its VM is gone).
            let _ = vm.stop(CLEANUP_WAIT).await;
            Err(error)
        }
    }
}

/// What the caller gave `create` besides the bundle.
struct Outside<'a> {
    global: &'a GlobalOpts,
    pid_file: Option<&'a Path>,
    /// Set when the process has a terminal.
    console_socket: Option<&'a Path>,
}

/// Copies the file binds in, starts the monitor (on a console sent to
/// the caller when the process has a terminal), writes the pid file.
async fn prepare(
    vm: &NamedVm,
    plan: &Plan,
    mut record: Record,
    outside: &Outside<'_>,
) -> Result<(), Error> {
    let agent = vm.agent(ClientConfig::default()).map_err(Error::Vm)?;
    for file in &plan.files {
        let bytes = std::fs::read(&file.host).map_err(|source| Error::State {
            path: file.host.clone(),
            source,
        })?;
        if let Some(parent) = Path::new(&file.guest).parent() {
            let parent = parent.to_string_lossy();
            agent.mkdir_p(&parent, 0o755).await.map_err(Error::Agent)?;
        }
        agent
            .write_file(&file.guest, bytes, file.mode)
            .await
            .map_err(Error::Agent)?;
    }
    container::write_record(vm.dir(), &record)?;
    let console = match outside.console_socket {
        Some(socket) => Some(console::open(Some(socket))?),
        None => None,
    };
    let monitor = spawn_monitor(vm.dir(), &record.id, outside.global, console)?;
    record.monitor = krunbox::state::ProcessId::of(monitor);
    container::write_record(vm.dir(), &record)?;
    if let Some(path) = outside.pid_file {
        write_pid_file(path, monitor)?;
    }
    Ok(())
}

/// Binds the control socket and starts the monitor with it and this
/// process's stdio (the container's), or the `console`: its pid.
fn spawn_monitor(
    dir: &Path,
    id: &str,
    global: &GlobalOpts,
    console: Option<OwnedFd>,
) -> Result<u32, Error> {
    let path = dir.join(CTL_SOCKET);
    let listener = UnixListener::bind(&path).map_err(|source| Error::State { path, source })?;
    let child = spawn_self(
        global,
        [OsStr::new("monitor"), OsStr::new(id)],
        ("--listen-fd", &listener),
        console,
    )?;
    Ok(child.id())
}
