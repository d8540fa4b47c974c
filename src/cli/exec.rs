//! `krunbox exec`: run a command in a named VM, with its output streamed
//! as it comes, stdin with `-i`, a terminal with `-t`.

use std::time::Duration;

use clap::Args;
use krunbox::client::{
    ClientError, ExecControl, ExecEvent, ExecSession, ExecStatus, GuestCommand, NO_TIMEOUT,
};
use krunbox::state::{NamedVm, StateDir, VmName};

use super::error::{self, CliError};
use super::output::{self, Stream, WriteEnd, EXIT_BROKEN_PIPE};
use super::{report, tty};

/// Exit code of a command killed by `--timeout` (as timeout(1) uses).
const EXIT_TIMED_OUT: i32 = 124;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep standard input open and send it to the command.
    #[arg(short, long)]
    interactive: bool,
    /// Run the command on a terminal (a PTY in the guest).
    #[arg(short, long)]
    tty: bool,
    /// Set an environment variable (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = super::vm_args::parse_env)]
    env: Vec<(String, String)>,
    /// Working directory in the guest.
    #[arg(short, long, value_name = "PATH")]
    workdir: Option<String>,
    /// Run as this user: UID or UID:GID.
    #[arg(short, long, value_name = "UID[:GID]", value_parser = parse_user)]
    user: Option<(u32, Option<u32>)>,
    /// Kill the command after this many seconds (exit code 124).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// The VM.
    #[arg(value_name = "NAME")]
    name: String,
    /// The command and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<String>,
}

pub(super) fn parse_user(text: &str) -> Result<(u32, Option<u32>), String> {
    let number = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("expected UID[:GID], got {text:?}"))
    };
    match text.split_once(':') {
        Some((uid, gid)) => Ok((number(uid)?, Some(number(gid)?))),
        None => Ok((number(text)?, None)),
    }
}

pub fn exec(args: ExecArgs) -> i32 {
    report::block_on(async move {
        match run(args).await {
            Ok(code) => code,
            Err(e) => report::fail(&e),
        }
    })
}

async fn run(args: ExecArgs) -> Result<i32, CliError> {
    let name: VmName = args.name.parse()?;
    if args.command.is_empty() {
        return Err(CliError::NoCommand { vm: args.name });
    }
    let vm = NamedVm::open(&StateDir::open()?, &name)?;
    let agent = vm.agent(error::client_config())?;
    let cmd = command(&args);
    let failed = |source| error::gone_or_agent(&vm, "exec", source);
    let pumped = if args.tty {
        let _raw = tty::RawMode::enter()?;
        let session = agent
            .exec_pty(&cmd, tty::window_size())
            .await
            .map_err(failed)?;
        follow_resizes(session.control());
        pump(session, args.interactive).await
    } else {
        let session = agent.exec_streaming(&cmd).await.map_err(failed)?;
        pump(session, args.interactive).await
    };
    match pumped {
        Ok(Pumped::Exited(status)) => Ok(exit_code(&status, args.timeout)),
        Ok(Pumped::ReaderGone) => Ok(EXIT_BROKEN_PIPE),
        Err(PumpError::Agent(source)) => Err(failed(source)),
        Err(PumpError::Output(source)) => Err(CliError::Output {
            vm: name.to_string(),
            source,
        }),
    }
}

fn command(args: &ExecArgs) -> GuestCommand {
    let mut cmd = GuestCommand::new(&args.command[0])
        .args(&args.command[1..])
        .timeout(args.timeout.map_or(NO_TIMEOUT, Duration::from_secs));
    if args.tty {
        if let Ok(term) = std::env::var("TERM") {
            cmd = cmd.env("TERM", term);
        }
    }
    for (key, value) in &args.env {
        cmd = cmd.env(key, value);
    }
    if let Some(dir) = &args.workdir {
        cmd = cmd.cwd(dir);
    }
    if let Some((uid, gid)) = args.user {
        cmd = cmd.uid(uid);
        if let Some(gid) = gid {
            cmd = cmd.gid(gid);
        }
    }
    if args.interactive && !args.tty {
        cmd = cmd.stream_stdin();
    }
    cmd
}

/// How a streamed exec ended, seen from here.
pub(crate) enum Pumped {
    /// The command exited.
    Exited(ExecStatus),
    /// The reader of this process's output went away; the command was
    /// sent SIGPIPE (and is killed when the connection closes).
    ReaderGone,
}

/// Forwards standard input (if `interactive`) and writes the command's
/// output as it arrives, until it exits or its reader goes away. Output is
/// taken from the session only as fast as it is written here, so a slow
/// reader slows the guest process down.
pub(crate) async fn pump(mut session: ExecSession, interactive: bool) -> Result<Pumped, PumpError> {
    if interactive {
        let control = session.control();
        tokio::spawn(async move { control.copy_stdin_from(tokio::io::stdin()).await });
    }
    loop {
        let (stream, bytes) = match session.next_event().await? {
            Some(ExecEvent::Stdout(bytes)) => (Stream::Stdout, bytes),
            Some(ExecEvent::Stderr(bytes)) => (Stream::Stderr, bytes),
            Some(ExecEvent::Started(_)) => continue,
            Some(ExecEvent::Exit(status)) => return Ok(Pumped::Exited(status)),
            None => return Err(ClientError::Closed { op: "exec" }.into()),
        };
        // A blocking write, on purpose: waiting for the reader here is the
        // backpressure. It holds the (single-threaded) runtime meanwhile,
        // which costs nothing: the agent keeps at most a window of output
        // in flight, so libkrun never waits on the unread socket.
        match output::write_all(stream, &bytes) {
            Ok(()) => {}
            Err(WriteEnd::ReaderGone(_)) => {
                let _ = session.control().signal(libc::SIGPIPE).await;
                return Ok(Pumped::ReaderGone);
            }
            Err(e) => return Err(PumpError::Output(e)),
        }
    }
}

/// Why [`pump`] failed.
#[derive(Debug)]
pub(crate) enum PumpError {
    /// The agent operation failed.
    Agent(ClientError),
    /// Writing the output here failed.
    Output(WriteEnd),
}

impl From<ClientError> for PumpError {
    fn from(e: ClientError) -> Self {
        Self::Agent(e)
    }
}

/// Sends the host terminal's new size on every SIGWINCH.
fn follow_resizes(control: ExecControl) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut changes) = signal(SignalKind::window_change()) else {
        return;
    };
    tokio::spawn(async move {
        while changes.recv().await.is_some() {
            if control.resize(tty::window_size()).await.is_err() {
                break;
            }
        }
    });
}

fn exit_code(status: &ExecStatus, timeout: Option<u64>) -> i32 {
    if status.timed_out {
        eprintln!(
            "krunbox: the command was killed after its timeout of {} s",
            timeout.unwrap_or(NO_TIMEOUT.as_secs())
        );
        return EXIT_TIMED_OUT;
    }
    match (status.code, status.signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => super::EXIT_KRUNBOX_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_is_uid_or_uid_gid() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, Some(100)));
        assert!(parse_user("root").is_err());
        assert!(parse_user("1:").is_err());
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        let st = |code, signal, timed_out| ExecStatus {
            code,
            signal,
            timed_out,
        };
        assert_eq!(exit_code(&st(Some(3), None, false), None), 3);
        assert_eq!(exit_code(&st(None, Some(9), false), None), 137);
        assert_eq!(exit_code(&st(None, Some(9), true), Some(1)), 124);
    }
}
