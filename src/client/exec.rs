//! Execs: one-shot with collected output, streamed, and interactive on a pty.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use krunbox_proto::{
    stream, Control, ExecRequest, ExitStatus, Frame, FrameType, Reply, Request, WinSize, CHUNK_SIZE,
};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::connection::{self, FrameRecv, FrameSend};
use super::{AgentClient, ClientError};

/// What to run in the guest, built like `std::process::Command`.
#[derive(Debug, Clone)]
pub struct Command {
    req: ExecRequest,
    stdin: Option<Bytes>,
    timeout: Option<Duration>,
}

impl Command {
    /// Runs `program`, looked up in the guest's `PATH`.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            req: ExecRequest {
                argv: vec![program.into()],
                ..ExecRequest::default()
            },
            stdin: None,
            timeout: None,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.req.argv.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.req.argv.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.req.env.push((key.into(), value.into()));
        self
    }

    /// Starts from an empty environment.
    pub fn env_clear(mut self) -> Self {
        self.req.clear_env = true;
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.req.cwd = Some(dir.into());
        self
    }

    /// Runs as this user id.
    pub fn uid(mut self, uid: u32) -> Self {
        self.req.uid = Some(uid);
        self
    }

    /// Runs as this group id.
    pub fn gid(mut self, gid: u32) -> Self {
        self.req.gid = Some(gid);
        self
    }

    /// Gives these bytes as stdin, then end of file.
    pub fn stdin(mut self, bytes: impl Into<Bytes>) -> Self {
        self.stdin = Some(bytes.into());
        self.req.stdin = true;
        self
    }

    /// Keeps stdin open for [`ExecControl::write_stdin`] (streamed execs).
    pub fn stream_stdin(mut self) -> Self {
        self.req.stdin = true;
        self
    }

    /// Kills the process group after `timeout` (reported as
    /// [`ExitStatus::timed_out`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The request as sent to the agent.
    pub fn request(&self) -> &ExecRequest {
        &self.req
    }
}

/// A finished exec with its collected output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// What a running exec produced next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// The process started with this pid (not sent if it could not start).
    Started(u32),
    /// Bytes on stdout (or the pty).
    Stdout(Bytes),
    /// Bytes on stderr.
    Stderr(Bytes),
    /// It ended; this is the last event.
    Exit(ExitStatus),
}

/// Sends stdin, signals and window sizes to a running exec. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ExecControl {
    send: Arc<Mutex<FrameSend>>,
}

impl ExecControl {
    /// Writes bytes to the process's stdin (or the pty).
    pub async fn write_stdin(&self, bytes: &[u8]) -> Result<(), ClientError> {
        let mut send = self.send.lock().await;
        for chunk in bytes.chunks(CHUNK_SIZE) {
            let frame = Frame::data(stream::STDIN, chunk.to_vec()).expect("one chunk");
            send.send(&frame).await?;
        }
        Ok(())
    }

    /// Closes the process's stdin.
    pub async fn close_stdin(&self) -> Result<(), ClientError> {
        self.send
            .lock()
            .await
            .send(&Frame::eof(stream::STDIN))
            .await
    }

    /// Sends a signal to the process's group.
    pub async fn signal(&self, signal: i32) -> Result<(), ClientError> {
        self.control(&Control::Signal { signal }).await
    }

    /// Changes the pty's window size.
    pub async fn resize(&self, size: WinSize) -> Result<(), ClientError> {
        self.control(&Control::Resize(size)).await
    }

    async fn control(&self, control: &Control) -> Result<(), ClientError> {
        let frame = connection::json("exec control", FrameType::Control, control)?;
        self.send.lock().await.send(&frame).await
    }
}

/// A running exec whose output arrives as [`ExecEvent`]s. Dropping it
/// closes the connection, and the agent kills the process group.
#[derive(Debug)]
pub struct ExecSession {
    recv: FrameRecv,
    control: ExecControl,
    deadline: Instant,
    limit: Duration,
    done: bool,
    /// The client's "first exec done" stamp, set by the first exit seen.
    first_exit: Arc<OnceLock<u64>>,
}

const EXEC_OP: &str = "exec";

impl ExecSession {
    /// A handle for stdin, signals and resizes.
    pub fn control(&self) -> ExecControl {
        self.control.clone()
    }

    /// The next event, or `None` after [`ExecEvent::Exit`].
    pub async fn next_event(&mut self) -> Result<Option<ExecEvent>, ClientError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let frame = self.recv.recv_until(self.deadline, self.limit).await?;
            match (frame.frame_type, frame.stream) {
                (FrameType::Data, stream::STDOUT) => {
                    return Ok(Some(ExecEvent::Stdout(frame.payload)))
                }
                (FrameType::Data, stream::STDERR) => {
                    return Ok(Some(ExecEvent::Stderr(frame.payload)))
                }
                (FrameType::Eof, stream::STDOUT | stream::STDERR) => continue,
                (FrameType::Reply, _) => match connection::expect_reply(EXEC_OP, frame)? {
                    Reply::Started { pid } => return Ok(Some(ExecEvent::Started(pid))),
                    Reply::Exited(status) => {
                        self.done = true;
                        self.first_exit.get_or_init(crate::runner::monotonic_us);
                        return Ok(Some(ExecEvent::Exit(status)));
                    }
                    other => return Err(connection::unexpected_reply(EXEC_OP, &other)),
                },
                _ => return Err(connection::unexpected(EXEC_OP, &frame)),
            }
        }
    }

    /// Collects the remaining output until exit, at most `max_output` bytes.
    pub async fn collect(mut self, max_output: usize) -> Result<ExecOutput, ClientError> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        loop {
            let event = self.next_event().await?;
            let (to_stdout, bytes) = match event {
                Some(ExecEvent::Stdout(b)) => (true, b),
                Some(ExecEvent::Stderr(b)) => (false, b),
                Some(ExecEvent::Started(_)) => continue,
                Some(ExecEvent::Exit(status)) => {
                    return Ok(ExecOutput {
                        status,
                        stdout,
                        stderr,
                    })
                }
                None => return Err(ClientError::Closed { op: EXEC_OP }),
            };
            if stdout.len() + stderr.len() + bytes.len() > max_output {
                return Err(ClientError::OutputLimit {
                    op: EXEC_OP,
                    limit: max_output,
                });
            }
            let buf = if to_stdout { &mut stdout } else { &mut stderr };
            buf.extend_from_slice(&bytes);
        }
    }
}

impl AgentClient {
    async fn start_exec(
        &self,
        cmd: &Command,
        pty: Option<WinSize>,
    ) -> Result<ExecSession, ClientError> {
        let config = self.config();
        let timeout = cmd.timeout.unwrap_or(config.default_exec_timeout);
        let mut req = cmd.req.clone();
        req.timeout_ms = Some(timeout.as_millis().min(u128::from(u64::MAX)) as u64);
        req.pty = pty;
        if pty.is_some() {
            req.stdin = true;
        }
        let conn = self.start(EXEC_OP, &Request::Exec(req)).await?;
        let limit = timeout + config.exec_grace;
        Ok(ExecSession {
            recv: conn.recv,
            control: ExecControl {
                send: Arc::new(Mutex::new(conn.send)),
            },
            deadline: Instant::now() + limit,
            limit,
            done: false,
            first_exit: self.inner.first_exec_done_us.clone(),
        })
    }

    /// Runs `cmd` to completion and collects its output (at most
    /// [`ClientConfig::max_output`](super::ClientConfig::max_output) bytes).
    /// Stdin given with [`Command::stdin`] is sent while output is read.
    pub async fn exec(&self, cmd: &Command) -> Result<ExecOutput, ClientError> {
        let session = self.start_exec(cmd, None).await?;
        let control = session.control();
        let feed = async {
            if let Some(bytes) = &cmd.stdin {
                control.write_stdin(bytes).await?;
                control.close_stdin().await?;
            }
            Ok::<(), ClientError>(())
        };
        // A failed stdin send shows up as the session's own error.
        let (_fed, output) = tokio::join!(feed, session.collect(self.config().max_output));
        output
    }

    /// Starts `cmd` and returns its events as they come. Stdin given with
    /// [`Command::stdin`] is sent first; with [`Command::stream_stdin`] it
    /// stays open for [`ExecControl::write_stdin`].
    pub async fn exec_streaming(&self, cmd: &Command) -> Result<ExecSession, ClientError> {
        let session = self.start_exec(cmd, None).await?;
        if let Some(bytes) = &cmd.stdin {
            let control = session.control();
            let bytes = bytes.clone();
            // Sent concurrently so a process that writes before it reads
            // cannot deadlock against this send.
            tokio::spawn(async move {
                if control.write_stdin(&bytes).await.is_ok() {
                    let _ = control.close_stdin().await;
                }
            });
        }
        Ok(session)
    }

    /// Starts `cmd` on a new pty of `size`: raw bytes in through
    /// [`ExecControl::write_stdin`], terminal output as
    /// [`ExecEvent::Stdout`], [`ExecControl::resize`] for window changes.
    pub async fn exec_pty(&self, cmd: &Command, size: WinSize) -> Result<ExecSession, ClientError> {
        self.start_exec(cmd, Some(size)).await
    }
}
