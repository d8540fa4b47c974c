//! `exec`: another process in a running container, from `--process` (a
//! runtime-spec process JSON, as containerd's shim passes) or from the
//! command line. Attached, this command is the process: it pumps its
//! stdio, passes its signals on and exits with its status. With
//! `--detach` a child of it does that, and its pid goes to `--pid-file`
//! once the process has started.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use krunbox::client::{AgentClient, ClientConfig, ExecSession};
use liboci_cli::{Exec, GlobalOpts};
use oci_spec::runtime::{ContainerState, Process};

use super::{spawn_self, write_pid_file};
use crate::container::{self, Container};
use crate::error::Error;
use crate::log::Log;
use crate::pump;
use crate::spec;

/// The detached child's arguments (`krunbox-oci exec-child`).
#[derive(clap::Args, Debug)]
pub(crate) struct ChildArgs {
    /// The container.
    container_id: String,
    /// The process, as runtime-spec JSON.
    #[arg(long)]
    process_json: String,
    /// Where to say that the process started (or why not).
    #[arg(long)]
    ready_fd: RawFd,
    /// Stdio is the process's console (`process.terminal`).
    #[arg(long)]
    console: bool,
}

pub(super) fn run(root: Option<&Path>, global: &GlobalOpts, args: Exec) -> Result<i32, Error> {
    let process = process_of(&args)?;
    if args.detach {
        detach(global, &args, &process)?;
        return Ok(0);
    }
    if spec::terminal(&process) {
        return Err(Error::Unsupported {
            what: "an attached exec with a terminal (use --detach with --console-socket)".into(),
        });
    }
    let log = Log::new(global);
    super::block_on(async {
        let (_agent, session) = start(root, &args.container_id, &process).await?;
        let mut signals = pump::forwarded_signals(false);
        Ok(pump::until_exit(session, &mut signals, std::future::pending, &log).await)
    })
}

/// The detached child: starts the process, says so, then pumps it.
pub(crate) fn run_child(root: Option<&Path>, log: &Log, args: ChildArgs) -> Result<i32, Error> {
    if args.console {
        crate::console::attach()?;
    }
    // SAFETY: the parent made this socket for this process and left its
    // descriptor open; nothing else here owns or closes it.
    let mut ready = unsafe { UnixStream::from_raw_fd(args.ready_fd) };
    let process: Process =
        serde_json::from_str(&args.process_json).map_err(|source| Error::Record {
            path: "--process-json".into(),
            source,
        })?;
    super::block_on(async {
        let (_agent, session) = match start(root, &args.container_id, &process).await {
            Ok(started) => {
                let _ = writeln!(ready, "ok");
                started
            }
            Err(error) => {
                let _ = writeln!(ready, "{}", krunbox::error_chain(&error));
                return Err(error);
            }
        };
        drop(ready);
        let mut signals = pump::forwarded_signals(args.console);
        Ok(pump::until_exit(session, &mut signals, std::future::pending, log).await)
    })
}

/// Starts `process` in the running container `id`: the session, and the
/// client it came from, which must live as long (the client's liveness
/// watch ends with the last clone of it, and the session's waits with it).
async fn start(
    root: Option<&Path>,
    id: &str,
    process: &Process,
) -> Result<(AgentClient, ExecSession), Error> {
    let state = container::state_dir(root)?;
    let container = Container::open(&state, id)?;
    if container.status() != ContainerState::Running {
        return Err(container.wrong_state("exec", "running"));
    }
    let bundle = container.record()?.bundle.clone();
    let command = spec::command(process).map_err(|source| Error::Spec { bundle, source })?;
    let agent: AgentClient = container
        .vm()?
        .agent(ClientConfig::default())
        .map_err(Error::Vm)?;
    let session = pump::start(&agent, &command, spec::terminal(process))
        .await
        .map_err(Error::Agent)?;
    Ok((agent, session))
}

/// The process: `--process`, else the command line's.
fn process_of(args: &Exec) -> Result<Process, Error> {
    if let Some(path) = &args.process {
        let bytes = std::fs::read(path).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        return serde_json::from_slice(&bytes).map_err(|source| Error::Record {
            path: path.clone(),
            source,
        });
    }
    let (uid, gid) = args
        .user
        .map_or((0, 0), |(uid, gid)| (uid, gid.unwrap_or(0)));
    let env: Vec<String> = args.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let json = serde_json::json!({
        "args": args.command,
        "env": env,
        "cwd": args.cwd.clone().unwrap_or_else(|| "/".into()),
        "user": {"uid": uid, "gid": gid},
        "terminal": args.tty,
    });
    serde_json::from_value(json).map_err(|source| Error::Record {
        path: "the command line".into(),
        source,
    })
}

/// Starts the detached child and waits for it to say the process started;
/// then writes `--pid-file`.
fn detach(global: &GlobalOpts, args: &Exec, process: &Process) -> Result<(), Error> {
    let (ours, theirs) = UnixStream::pair().map_err(Error::SpawnSelf)?;
    let json = serde_json::to_string(process).expect("a parsed process serializes");
    let child_args = [
        "exec-child",
        args.container_id.as_str(),
        "--process-json",
        json.as_str(),
    ];
    let console = if spec::terminal(process) {
        Some(crate::console::open(args.console_socket.as_deref())?)
    } else {
        None
    };
    let child = spawn_self(global, child_args, ("--ready-fd", &theirs), console)?;
    drop(theirs);
    let mut line = String::new();
    let _ = BufReader::new(ours).read_line(&mut line);
    match line.trim_end() {
        "ok" => {}
        "" => {
            return Err(Error::ExecChild(
                "it ended before the process started".into(),
            ))
        }
        why => return Err(Error::ExecChild(why.to_owned())),
    }
    match &args.pid_file {
        Some(path) => write_pid_file(path, child.id()),
        None => Ok(()),
    }
}
