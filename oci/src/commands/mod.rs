//! One file per subcommand, as runc and youki's `liboci-cli` have them.

mod create;
mod delete;
mod exec;
mod features;
mod kill;
mod ps;
mod start;
mod state;

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use liboci_cli::{CommonCmd, GlobalOpts, StandardCmd};

use crate::error::Error;
use crate::log::Log;
use crate::Command;

/// Runs `command`: the process's exit code.
pub(crate) use exec::ChildArgs;

/// Runs `command`: the process's exit code.
pub(crate) fn run(global: GlobalOpts, command: Command) -> Result<i32, Error> {
    let root = global.root.as_deref();
    let done = match command {
        Command::Standard(standard) => match *standard {
            StandardCmd::Create(args) => block_on(create::run(root, &global, args)),
            StandardCmd::Start(args) => block_on(start::run(root, args)),
            StandardCmd::State(args) => state::run(root, args),
            StandardCmd::Kill(args) => block_on(kill::run(root, args)),
            StandardCmd::Delete(args) => block_on(delete::run(root, args)),
        },
        Command::Common(common) => match *common {
            CommonCmd::Exec(args) => return exec::run(root, &global, args),
            CommonCmd::Features(_) => features::run(),
            CommonCmd::Ps(args) => ps::run(root, args),
            other => Err(Error::Unsupported {
                what: format!("`{}`", subcommand_name(&other)),
            }),
        },
        Command::Monitor(args) => return crate::monitor::run(root, &Log::new(&global), args),
        Command::ExecChild(args) => return exec::run_child(root, &Log::new(&global), args),
    };
    done.map(|()| 0)
}

/// Runs `future` on a runtime of this thread.
///
/// The runtime is shut down without waiting for its blocking threads: one
/// of them may be reading a stdin that never ends (the shim keeps its pipe
/// open), and the process is done once `future` is.
fn block_on<T, F: Future<Output = Result<T, Error>>>(future: F) -> Result<T, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let result = runtime.block_on(future);
    runtime.shutdown_background();
    result
}

/// The name the caller typed, for the error of a subcommand left out.
fn subcommand_name(command: &CommonCmd) -> &'static str {
    match command {
        CommonCmd::Checkpointt(_) => "checkpoint",
        CommonCmd::Events(_) => "events",
        CommonCmd::Exec(_) => "exec",
        CommonCmd::Features(_) => "features",
        CommonCmd::List(_) => "list",
        CommonCmd::Pause(_) => "pause",
        CommonCmd::Ps(_) => "ps",
        CommonCmd::Resume(_) => "resume",
        CommonCmd::Run(_) => "run",
        CommonCmd::Update(_) => "update",
        CommonCmd::Spec(_) => "spec",
    }
}

/// Starts this executable again with the global flags, then `args`, then
/// `fd_flag N` for `fd`, which the child inherits open. The monitor and a
/// detached exec's child start this way. Stdio is inherited and the child
/// leaves the caller's process group (a ^C there is for the caller); or,
/// with a `console` (the slave of [`crate::console::open`]), the console
/// is its stdio and it is told `--console`, to make it its terminal in a
/// session of its own ([`crate::console::attach`]).
pub(super) fn spawn_self<I, S>(
    global: &GlobalOpts,
    args: I,
    (fd_flag, fd): (&str, impl AsFd),
    console: Option<OwnedFd>,
) -> Result<std::process::Child, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
        .map_err(|errno| Error::SpawnSelf(errno.into()))?;
    let exe = std::env::current_exe().map_err(Error::SpawnSelf)?;
    let mut command = std::process::Command::new(exe);
    command
        .args(global_args(global))
        .args(args)
        .arg(fd_flag)
        .arg(fd.as_fd().as_raw_fd().to_string());
    match console {
        Some(console) => {
            let stdio = |fd: &OwnedFd| fd.try_clone().map_err(Error::SpawnSelf);
            command
                .arg("--console")
                .stdin(stdio(&console)?)
                .stdout(stdio(&console)?)
                .stderr(console);
        }
        // With a console, setsid() in the child makes the new group.
        None => {
            command.process_group(0);
        }
    }
    command.spawn().map_err(Error::SpawnSelf)
}

/// The global flags again, for a process this one starts; `--root` made
/// absolute.
fn global_args(global: &GlobalOpts) -> Vec<OsString> {
    let mut args = Vec::new();
    if let Some(root) = &global.root {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.clone());
        args.extend(["--root".into(), root.into_os_string()]);
    }
    if let Some(log) = &global.log {
        args.extend(["--log".into(), log.clone().into_os_string()]);
    }
    if let Some(format) = &global.log_format {
        args.extend(["--log-format".into(), format.into()]);
    }
    args
}

/// Writes `pid` to `path` whole (a temporary file renamed over it), as
/// the caller may read it as soon as it exists.
pub(super) fn write_pid_file(path: &Path, pid: u32) -> Result<(), Error> {
    let error = |source| Error::PidFile {
        path: path.to_owned(),
        source,
    };
    let mut temp = PathBuf::from(path);
    temp.set_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&temp, pid.to_string())
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(error)
}
