//! Execs: one-shot with collected output, streamed, and interactive on a pty.

use std::time::Duration;

use bytes::Bytes;
use krunbox_proto::{ExecRequest, ExecStatus, Request, WinSize};

use super::session::{ExecSession, EXEC_OP, OUTPUT_WINDOW, STDIN_WINDOW};
use super::{AgentClient, ClientError};

/// A timeout long enough to be none (a year), for commands that run as
/// long as they take: a one-shot VM's command, `krunbox run` and `exec`
/// without `--timeout`.
pub const NO_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// What to run in the guest, built like `std::process::Command`.
#[derive(Debug, Clone)]
pub struct GuestCommand {
    req: ExecRequest,
    stdin: Option<Bytes>,
    timeout: Option<Duration>,
}

impl GuestCommand {
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

    /// Keeps stdin open for [`ExecControl::write_stdin`](super::ExecControl::write_stdin) (streamed execs).
    pub fn stream_stdin(mut self) -> Self {
        self.req.stdin = true;
        self
    }

    /// Kills the process group after `timeout` (reported as
    /// [`ExecStatus::timed_out`]).
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
    pub status: ExecStatus,
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

impl AgentClient {
    async fn start_exec(
        &self,
        cmd: &GuestCommand,
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
        req.output_window = Some(OUTPUT_WINDOW);
        req.stdin_window = Some(STDIN_WINDOW);
        let conn = self.start(EXEC_OP, &Request::Exec(req)).await?;
        let limit = timeout + config.exec_grace;
        let first_exit = self.inner.first_exec_done_us.clone();
        let halves = (conn.recv, conn.send);
        Ok(ExecSession::new(self.clone(), halves, limit, first_exit))
    }

    /// Runs `cmd` to completion and collects its output (at most
    /// [`ClientConfig::max_output`](super::ClientConfig::max_output) bytes).
    /// Stdin given with [`GuestCommand::stdin`] is sent while output is read.
    pub async fn exec(&self, cmd: &GuestCommand) -> Result<ExecOutput, ClientError> {
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
    /// [`GuestCommand::stdin`] is sent first; with [`GuestCommand::stream_stdin`] it
    /// stays open for [`ExecControl::write_stdin`](super::ExecControl::write_stdin).
    pub async fn exec_streaming(&self, cmd: &GuestCommand) -> Result<ExecSession, ClientError> {
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
    /// [`ExecControl::write_stdin`](super::ExecControl::write_stdin), terminal output as
    /// [`ExecEvent::Stdout`](super::ExecEvent::Stdout), [`ExecControl::resize`](super::ExecControl::resize) for window changes.
    pub async fn exec_pty(
        &self,
        cmd: &GuestCommand,
        size: WinSize,
    ) -> Result<ExecSession, ClientError> {
        self.start_exec(cmd, Some(size)).await
    }
}
