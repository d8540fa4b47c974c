//! One-shot and interactive execs: start a process (on pipes or on a pty),
//! stream its output as data frames, feed it stdin, apply signals, resizes
//! and the timeout, and report how it ended.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use krunbox_proto::{
    stream, Control, ErrorKind, ErrorReply, ExecRequest, ExitStatus, Frame, FrameType, Reply,
    CHUNK_SIZE,
};

use crate::children;
use crate::pty::{self, Pty};
use crate::transport::{FrameReader, FrameWriter};

/// How long output pumps may run on after the process exited (a daemon it
/// left behind may hold its stdout open).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

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
}

impl ExecError {
    /// The error frame payload for this failure.
    pub fn to_reply(&self) -> ErrorReply {
        match self {
            Self::EmptyArgv => ErrorReply::new(ErrorKind::InvalidInput, self.to_string()),
            Self::Cwd(_, e) | Self::Pty(e) | Self::Spawn(_, e) | Self::Send(e) => {
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
    if let Some(gid) = req.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = req.uid {
        cmd.uid(uid);
    }
    Ok(cmd)
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
    let data = Frame::data(stream::STDERR, message.into_bytes()).expect("short message");
    send(writer, &data)?;
    send(writer, &Frame::eof(stream::STDOUT))?;
    send(writer, &Frame::eof(stream::STDERR))?;
    let status = ExitStatus {
        code: Some(code),
        signal: None,
        timed_out: false,
    };
    reply(writer, &Reply::Exited(status))
}

/// Copies `source` to the host as data frames on `stream_id`, then an end
/// of stream. Signals `done` when finished.
fn pump(
    mut source: impl Read + Send + 'static,
    stream_id: u32,
    writer: FrameWriter,
) -> mpsc::Receiver<()> {
    let (done, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK_SIZE];
        loop {
            match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let frame = Frame::data(stream_id, buf[..n].to_vec()).expect("one chunk");
                    if writer.send(&frame).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A pty master reads EIO once the child side has closed.
                Err(_) => break,
            }
        }
        let _ = writer.send(&Frame::eof(stream_id));
        let _ = done.send(());
    });
    rx
}

/// Reads the host's frames during the exec: stdin data, its end, signals and
/// resizes. If the host goes away, the process group is killed.
fn control_loop(
    mut reader: FrameReader,
    mut stdin: Option<Box<dyn Write + Send>>,
    pid: i32,
    master: Option<File>,
    exited: Arc<AtomicBool>,
) {
    loop {
        let frame = match reader.read_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => {
                if !exited.load(Ordering::SeqCst) {
                    let _ = children::signal_group(pid, libc::SIGKILL);
                }
                return;
            }
        };
        match (frame.frame_type, frame.stream) {
            (FrameType::Data, stream::STDIN) => {
                if let Some(sink) = stdin.as_mut() {
                    if sink.write_all(&frame.payload).is_err() {
                        stdin = None;
                    }
                }
            }
            (FrameType::Eof, stream::STDIN) => stdin = None,
            (FrameType::Control, _) => match frame.parse_json::<Control>() {
                Ok(Control::Signal { signal }) => {
                    let _ = children::signal_group(pid, signal);
                }
                Ok(Control::Resize(ws)) => {
                    if let Some(master) = &master {
                        let _ = pty::resize(master, ws);
                    }
                }
                Err(_) => {}
            },
            _ => {}
        }
    }
}

/// Runs `req` to completion, streaming over the operation's connection.
pub fn run(req: ExecRequest, reader: FrameReader, writer: FrameWriter) -> Result<(), ExecError> {
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

    let mut pumps = Vec::new();
    let (stdin, master): (Option<Box<dyn Write + Send>>, Option<File>) = match pty {
        Some(pty) => {
            let master = pty.close_slave();
            let reader = master.try_clone().map_err(ExecError::Pty)?;
            pumps.push(pump(reader, stream::STDOUT, writer.clone()));
            let input = master.try_clone().map_err(ExecError::Pty)?;
            (Some(Box::new(input)), Some(master))
        }
        None => {
            if let Some(out) = child.stdout.take() {
                pumps.push(pump(out, stream::STDOUT, writer.clone()));
            }
            if let Some(err) = child.stderr.take() {
                pumps.push(pump(err, stream::STDERR, writer.clone()));
            }
            let stdin = child
                .stdin
                .take()
                .map(|s| Box::new(s) as Box<dyn Write + Send>);
            (stdin, None)
        }
    };
    let exited = Arc::new(AtomicBool::new(false));
    {
        let exited = exited.clone();
        thread::spawn(move || control_loop(reader, stdin, pid, master, exited));
    }

    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let mut timed_out = false;
    let waited = match req.timeout_ms {
        Some(ms) => match rx.recv_timeout(Duration::from_millis(ms)) {
            Ok(status) => Some(status),
            Err(_) => {
                timed_out = true;
                let _ = children::signal_group(pid, libc::SIGKILL);
                rx.recv().ok()
            }
        },
        None => rx.recv().ok(),
    };
    exited.store(true, Ordering::SeqCst);
    children::untrack(pid);
    let status = match waited {
        Some(Ok(status)) => status,
        Some(Err(e)) => return Err(ExecError::Spawn(program, e)),
        None => return Err(ExecError::Spawn(program, io::ErrorKind::Other.into())),
    };
    let deadline = Instant::now() + OUTPUT_GRACE;
    for done in pumps {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = done.recv_timeout(left);
    }
    let status = ExitStatus {
        code: status.code(),
        signal: status.signal(),
        timed_out,
    };
    reply(&writer, &Reply::Exited(status))
}
