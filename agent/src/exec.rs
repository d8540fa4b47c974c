//! One-shot and interactive execs: start a process (on pipes or on a pty),
//! stream its output as data frames, feed it stdin, apply signals, resizes
//! and the timeout, and report how it ended.

use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use krunbox_proto::{
    stream, ErrorKind, ErrorReply, ExecRequest, ExecStatus, Frame, FrameType, Reply,
};

use crate::children;
use crate::flow::{OutputFlow, StdinFlow};
use crate::pty::Pty;
use crate::supervise::{supervise, ExecIo, Outcome, SuperviseError};
use crate::transport::{FrameReader, FrameWriter};

/// How long to wait for the host to close after the exit status was sent.
const LINGER: Duration = Duration::from_secs(2);

/// Exec failures reported to the host as an error frame.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// `argv` was empty.
    #[error("argv is empty")]
    EmptyArgv,
    /// The working directory is unusable.
    #[error("working directory {0:?}")]
    Cwd(String, #[source] io::Error),
    /// The pty could not be set up.
    #[error("setting up a pty")]
    Pty(#[source] io::Error),
    /// The process could not be started for a reason other than a missing
    /// or non-executable program (those become exit codes 127 and 126).
    #[error("starting {0:?}")]
    Spawn(String, #[source] io::Error),
    /// The host connection failed.
    #[error("sending to the host")]
    Send(#[source] io::Error),
    /// Supervising the running process failed.
    #[error("running the process")]
    Supervise(#[source] SuperviseError),
}

impl ExecError {
    /// The error frame payload for this failure.
    pub fn to_reply(&self) -> ErrorReply {
        match self {
            Self::EmptyArgv => ErrorReply::new(ErrorKind::InvalidInput, self.to_string()),
            Self::Cwd(_, e) | Self::Pty(e) | Self::Spawn(_, e) | Self::Send(e) => {
                ErrorReply::from_io(self, e)
            }
            Self::Supervise(SuperviseError::Io(e) | SuperviseError::Send(e)) => {
                ErrorReply::from_io(self, e)
            }
        }
    }
}

/// A `Command` for `req`, without stdio (shared with background processes).
pub fn command(req: &ExecRequest) -> Result<Command, ExecError> {
    let (program, args) = req.argv.split_first().ok_or(ExecError::EmptyArgv)?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    if req.clear_env {
        cmd.env_clear();
    }
    cmd.envs(req.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &req.cwd {
        match fs::metadata(cwd) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                let e = io::Error::from_raw_os_error(libc::ENOTDIR);
                return Err(ExecError::Cwd(cwd.clone(), e));
            }
            Err(e) => return Err(ExecError::Cwd(cwd.clone(), e)),
        }
        cmd.current_dir(cwd);
    }
    let (uid, gid) = match (req.uid, req.gid, DEFAULT_USER.get()) {
        (None, None, Some(&(uid, gid))) => (Some(uid), Some(gid)),
        (uid, gid, _) => (uid, gid),
    };
    if let Some(gid) = gid {
        cmd.gid(gid);
    }
    if let Some(uid) = uid {
        cmd.uid(uid);
    }
    Ok(cmd)
}

/// The user of requests that name none (`--user`: an image's `User`).
static DEFAULT_USER: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();

/// Sets the user of requests that name none; once, at startup.
pub fn set_default_user(user: Option<(u32, u32)>) {
    if let Some(user) = user {
        let _ = DEFAULT_USER.set(user);
    }
}

fn send(writer: &FrameWriter, frame: &Frame) -> Result<(), ExecError> {
    writer.send(frame).map_err(ExecError::Send)
}

fn reply(writer: &FrameWriter, reply: &Reply) -> Result<(), ExecError> {
    let frame = Frame::json(FrameType::Reply, reply).expect("replies are small");
    send(writer, &frame)
}

/// The shell's answer to a program that cannot be started: a message on
/// stderr and exit code 127 (not found) or 126 (not executable).
fn not_started(program: &str, err: io::Error, writer: &FrameWriter) -> Result<(), ExecError> {
    let code = match err.kind() {
        io::ErrorKind::NotFound => 127,
        io::ErrorKind::PermissionDenied => 126,
        _ => return Err(ExecError::Spawn(program.to_owned(), err)),
    };
    let message = if code == 127 {
        format!("krunbox-agent: {program}: command not found\n")
    } else {
        format!("krunbox-agent: {program}: {err}\n")
    };
    let len = message.len() as u64;
    let data = Frame::data(stream::STDERR, message.into_bytes()).expect("short message");
    send(writer, &data)?;
    send(writer, &Frame::eof_counted(stream::STDOUT, 0))?;
    send(writer, &Frame::eof_counted(stream::STDERR, len))?;
    let status = ExecStatus {
        code: Some(code),
        signal: None,
        timed_out: false,
    };
    reply(writer, &Reply::Exited(status))
}

/// Runs `req` to completion, streaming over the operation's connection.
pub fn run(
    req: ExecRequest,
    mut reader: FrameReader,
    writer: FrameWriter,
) -> Result<(), ExecError> {
    let mut cmd = command(&req)?;
    let program = req.argv[0].clone();
    let pty = match req.pty {
        Some(ws) => {
            let pty = Pty::open(ws).map_err(ExecError::Pty)?;
            pty.attach(&mut cmd).map_err(ExecError::Pty)?;
            if !req.env.iter().any(|(k, _)| k == "TERM") {
                cmd.env("TERM", "xterm-256color");
            }
            Some(pty)
        }
        None => {
            cmd.process_group(0)
                .stdin(if req.stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            None
        }
    };
    let spawned = children::spawn_tracked(&mut cmd);
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return not_started(&program, e, &writer),
    };
    let pid = child.id() as i32;
    if let Err(e) = reply(&writer, &Reply::Started { pid: pid as u32 }) {
        // Nobody is listening any more: do not leave the process running.
        let _ = children::signal_group(pid, libc::SIGKILL);
        let _ = child.wait();
        children::untrack(pid);
        return Err(e);
    }

    let io = match pty {
        Some(pty) => {
            let master = pty.close_slave();
            let output = master.try_clone().map_err(ExecError::Pty)?;
            let input = master.try_clone().map_err(ExecError::Pty)?;
            ExecIo {
                outputs: vec![(stream::STDOUT, output)],
                stdin: Some(input),
                master: Some(master),
            }
        }
        None => {
            let mut outputs = Vec::new();
            if let Some(out) = child.stdout.take() {
                outputs.push((stream::STDOUT, File::from(OwnedFd::from(out))));
            }
            if let Some(err) = child.stderr.take() {
                outputs.push((stream::STDERR, File::from(OwnedFd::from(err))));
            }
            let stdin = child.stdin.take().map(|s| File::from(OwnedFd::from(s)));
            ExecIo {
                outputs,
                stdin,
                master: None,
            }
        }
    };
    let timeout = req.timeout_ms.map(Duration::from_millis);
    let mut flow = OutputFlow::new(req.output_window);
    let mut stdin_flow = StdinFlow::new(req.stdin_window);
    let outcome = supervise(
        &mut child,
        io,
        &mut reader,
        &writer,
        timeout,
        &mut flow,
        &mut stdin_flow,
    );
    children::untrack(pid);
    let Outcome { status, timed_out } = outcome.map_err(ExecError::Supervise)?;
    let status = ExecStatus {
        code: status.code(),
        signal: status.signal(),
        timed_out,
    };
    reply(&writer, &Reply::Exited(status))?;
    // Let the host read everything before the connection closes (closing
    // with its frames unread could reset the connection under the reply).
    let _ = reader.get_ref().set_read_timeout(Some(LINGER));
    while let Ok(Some(_)) = reader.read_frame() {}
    Ok(())
}
