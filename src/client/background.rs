//! Background processes: started detached, listed, waited for, signalled,
//! their retained output read by offset.

use std::time::Duration;

use krunbox_proto::{stream, ExecStatus, FrameType, OutputRange, ProcessInfo, Reply, Request};

use super::connection::{self, unexpected_reply};
use super::exec::GuestCommand;
use super::{AgentClient, ClientError, WeakClient};

/// A background process started by [`AgentClient::spawn_background`]: a
/// handle to wait for it, signal it, read its output and forget it. It
/// does not keep the agent connected: once every [`AgentClient`] is
/// dropped the agent ends its processes, and the handle's calls fail with
/// [`ClientError::Disconnected`]. The same calls by id are on
/// [`AgentClient`], for processes found with
/// [`AgentClient::list_processes`].
#[derive(Debug, Clone)]
pub struct BackgroundProcess {
    /// The agent's id for it.
    pub id: u64,
    /// Its pid in the guest.
    pub pid: u32,
    client: WeakClient,
}

impl BackgroundProcess {
    /// [`AgentClient::wait_process`]: its status, or `None` if it still
    /// runs after `timeout`.
    pub async fn wait(&self, timeout: Duration) -> Result<Option<ExecStatus>, ClientError> {
        self.client
            .upgrade("wait for process")?
            .wait_process(self.id, timeout)
            .await
    }

    /// [`AgentClient::kill_process`]: `signal` to its process group.
    pub async fn kill(&self, signal: i32) -> Result<(), ClientError> {
        self.client
            .upgrade("kill process")?
            .kill_process(self.id, signal)
            .await
    }

    /// [`AgentClient::read_output`]: its retained output from these
    /// offsets.
    pub async fn output(
        &self,
        stdout_offset: u64,
        stderr_offset: u64,
    ) -> Result<ProcessOutput, ClientError> {
        self.client
            .upgrade("read process output")?
            .read_output(self.id, stdout_offset, stderr_offset)
            .await
    }

    /// [`AgentClient::remove_process`]: forgets it once it has exited.
    pub async fn remove(&self) -> Result<(), ClientError> {
        self.client
            .upgrade("remove process")?
            .remove_process(self.id)
            .await
    }
}

/// Output of a background process read back from the agent's ring buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutput {
    /// Stdout bytes from `stdout_range.start` to `stdout_range.end`.
    pub stdout: Vec<u8>,
    /// Where the stdout bytes sit in the whole stream (`start` is later than
    /// asked if older bytes were dropped; ask from `end` next time).
    pub stdout_range: OutputRange,
    /// Stderr bytes.
    pub stderr: Vec<u8>,
    /// Where the stderr bytes sit in the whole stream.
    pub stderr_range: OutputRange,
    /// How it ended, if it has.
    pub status: Option<ExecStatus>,
}

impl AgentClient {
    /// Starts `cmd` detached from this connection (stdin is `/dev/null`);
    /// the agent keeps the last 1 MiB of its stdout and of its stderr.
    pub async fn spawn_background(
        &self,
        cmd: &GuestCommand,
    ) -> Result<BackgroundProcess, ClientError> {
        const OP: &str = "spawn background";
        let request = Request::Spawn {
            command: cmd.request().clone(),
        };
        match self.call(OP, &request).await? {
            Reply::Spawned { id, pid } => Ok(BackgroundProcess {
                id,
                pid,
                client: WeakClient::new(self),
            }),
            other => Err(unexpected_reply(OP, &other)),
        }
    }

    /// Lists the background processes.
    pub async fn list_processes(&self) -> Result<Vec<ProcessInfo>, ClientError> {
        const OP: &str = "list processes";
        match self.call(OP, &Request::ListProcesses).await? {
            Reply::Processes { processes } => Ok(processes),
            other => Err(unexpected_reply(OP, &other)),
        }
    }

    /// Waits up to `timeout` for process `id`; `None` if it still runs.
    pub async fn wait_process(
        &self,
        id: u64,
        timeout: Duration,
    ) -> Result<Option<ExecStatus>, ClientError> {
        const OP: &str = "wait for process";
        let timeout_ms = timeout.as_millis().min(u128::from(u64::MAX)) as u64;
        let mut conn = self
            .start(OP, &Request::WaitProcess { id, timeout_ms })
            .await?;
        let limit = timeout + self.config().request_timeout;
        match connection::expect_reply(OP, conn.recv.recv(limit).await?)? {
            Reply::Waited { status } => Ok(status),
            other => Err(unexpected_reply(OP, &other)),
        }
    }

    /// Sends `signal` to the process group of background process `id`.
    pub async fn kill_process(&self, id: u64, signal: i32) -> Result<(), ClientError> {
        const OP: &str = "kill process";
        match self.call(OP, &Request::KillProcess { id, signal }).await? {
            Reply::Ok => Ok(()),
            other => Err(unexpected_reply(OP, &other)),
        }
    }

    /// Forgets an exited background process.
    pub async fn remove_process(&self, id: u64) -> Result<(), ClientError> {
        const OP: &str = "remove process";
        match self.call(OP, &Request::RemoveProcess { id }).await? {
            Reply::Ok => Ok(()),
            other => Err(unexpected_reply(OP, &other)),
        }
    }

    /// Reads the retained output of process `id` from the given offsets.
    pub async fn read_output(
        &self,
        id: u64,
        stdout_offset: u64,
        stderr_offset: u64,
    ) -> Result<ProcessOutput, ClientError> {
        const OP: &str = "read process output";
        let request = Request::ReadOutput {
            id,
            stdout_offset,
            stderr_offset,
        };
        let mut conn = self.start(OP, &request).await?;
        let timeout = self.config().request_timeout;
        let (stdout_range, stderr_range, status) =
            match connection::expect_reply(OP, conn.recv.recv(timeout).await?)? {
                Reply::Output {
                    stdout,
                    stderr,
                    status,
                } => (stdout, stderr, status),
                other => return Err(unexpected_reply(OP, &other)),
            };
        let limit = self.config().max_output;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = [Vec::new(), Vec::new()];
        for (i, want) in [stream::STDOUT, stream::STDERR].into_iter().enumerate() {
            loop {
                let frame = conn.recv.recv_until(deadline, timeout).await?;
                match frame.frame_type {
                    FrameType::Data if frame.stream == want => {
                        if out[0].len() + out[1].len() + frame.payload.len() > limit {
                            return Err(ClientError::OutputLimit { op: OP, limit });
                        }
                        out[i].extend_from_slice(&frame.payload);
                    }
                    FrameType::Eof if frame.stream == want => break,
                    _ => return Err(connection::unexpected(OP, &frame)),
                }
            }
        }
        for (bytes, range) in out.iter().zip([stdout_range, stderr_range]) {
            if range.end.checked_sub(range.start) != Some(bytes.len() as u64) {
                return Err(ClientError::Unexpected {
                    op: OP,
                    got: format!(
                        "{} bytes of output for the range {}..{}",
                        bytes.len(),
                        range.start,
                        range.end
                    ),
                });
            }
        }
        let [stdout, stderr] = out;
        Ok(ProcessOutput {
            stdout,
            stdout_range,
            stderr,
            stderr_range,
            status,
        })
    }
}
