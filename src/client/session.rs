//! A running exec: its events, and the stdin, signals and resizes sent to
//! it, with flow control both ways.
//!
//! A task reads the exec's connection as frames arrive, so the host never
//! leaves bytes unread in libkrun's socket: libkrun's vsock device writes
//! to that socket with a blocking `send()`, and one exec whose reader
//! stalls would stall every connection of the VM. The agent sends at most
//! [`OUTPUT_WINDOW`] bytes of output beyond what this side has handed to
//! the caller ([`ExecSession::next_event`] grants them back), so a slow
//! caller slows the guest process down and the bytes held here stay
//! bounded. Stdin is windowed the same way, credited by the agent as it
//! writes to the process, so the agent can always read this side's frames.
//!
//! Each output stream ends with a frame declaring how many bytes the agent
//! sent on it; a stream that arrives shorter or longer fails the exec with
//! [`ClientError::OutputCut`] instead of passing for complete.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use krunbox_proto::{stream, Control, ExecStatus, Frame, FrameType, Reply, WinSize, CHUNK_SIZE};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::connection::{self, FrameRecv, FrameSend};
use super::ClientError;

/// Output bytes the agent may have in flight beyond what the caller took.
/// Below what a unix socket buffers by default (about 200 KiB), so that
/// libkrun's writes to the socket never block.
pub const OUTPUT_WINDOW: u32 = 128 * 1024;
/// Stdin bytes this side may have in flight beyond the agent's credit.
pub const STDIN_WINDOW: u32 = 256 * 1024;
/// Output taken by the caller before it is granted back to the agent.
const GRANT_STEP: u64 = OUTPUT_WINDOW as u64 / 4;

pub(crate) const EXEC_OP: &str = "exec";

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
    Exit(ExecStatus),
}

/// Sends stdin, signals and window sizes to a running exec. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ExecControl {
    send: Arc<Mutex<Sender>>,
    /// Held across one whole [`ExecControl::write_stdin`], so concurrent
    /// writes do not interleave.
    stdin: Arc<Mutex<StdinWindow>>,
    /// Total stdin bytes the agent has allowed so far.
    stdin_granted: watch::Receiver<u64>,
}

#[derive(Debug, Default)]
struct StdinWindow {
    sent: u64,
}

/// The connection's writing half, and whether a frame on it was cut short.
#[derive(Debug)]
struct Sender {
    frames: FrameSend,
    cut: bool,
}

impl ExecControl {
    /// Writes bytes to the process's stdin (or the pty). Waits while the
    /// agent has not taken earlier bytes (the process is not reading).
    pub async fn write_stdin(&self, bytes: &[u8]) -> Result<(), ClientError> {
        let mut window = self.stdin.lock().await;
        let mut granted = self.stdin_granted.clone();
        for chunk in bytes.chunks(CHUNK_SIZE) {
            let need = window.sent + chunk.len() as u64;
            if granted.wait_for(|g| *g >= need).await.is_err() {
                // The connection's reader ended (exit, error or gone): the
                // frame would go nowhere; the session reports why.
                return Err(ClientError::Closed { op: EXEC_OP });
            }
            let frame = Frame::data(stream::STDIN, chunk.to_vec()).expect("one chunk");
            self.send(&frame).await?;
            window.sent = need;
        }
        Ok(())
    }

    /// Copies `reader` to the process's stdin until `reader` ends, then
    /// closes stdin: what a caller that relays its own standard input (or
    /// a pipe) does. Returns the bytes copied; a failed read closes stdin
    /// too and is returned as [`ClientError::Io`].
    pub async fn copy_stdin_from<R>(&self, mut reader: R) -> Result<u64, ClientError>
    where
        R: tokio::io::AsyncRead + Unpin,
    {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        let mut copied = 0u64;
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    self.write_stdin(&buf[..n]).await?;
                    copied += n as u64;
                }
                Err(source) => {
                    let _ = self.close_stdin().await;
                    return Err(ClientError::Io {
                        op: "exec stdin",
                        source,
                    });
                }
            }
        }
        self.close_stdin().await?;
        Ok(copied)
    }

    /// Closes the process's stdin (after what was written).
    pub async fn close_stdin(&self) -> Result<(), ClientError> {
        let _window = self.stdin.lock().await;
        self.send(&Frame::eof(stream::STDIN)).await
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
        self.send(&frame).await
    }

    /// Sends one frame, unless the connection's reader ends first (the exec
    /// ended, or the agent broke the protocol): an agent that stops reading
    /// its connection cannot hold this side. A frame cut short that way
    /// ends the connection's use for sending.
    async fn send(&self, frame: &Frame) -> Result<(), ClientError> {
        let mut sender = self.send.lock().await;
        if sender.cut {
            return Err(ClientError::Closed { op: EXEC_OP });
        }
        let mut ended = self.stdin_granted.clone();
        tokio::select! {
            biased;
            sent = sender.frames.send(frame) => sent,
            () = reader_ended(&mut ended) => {
                sender.cut = true;
                Err(ClientError::Closed { op: EXEC_OP })
            }
        }
    }
}

/// Resolves once the connection's reader has ended (it drops the sending
/// side of the stdin credit).
async fn reader_ended(granted: &mut watch::Receiver<u64>) {
    while granted.changed().await.is_ok() {}
}

/// A running exec whose output arrives as [`ExecEvent`]s. Dropping it
/// stops reading; once every [`ExecControl`] is dropped too the
/// connection closes, and the agent kills the process group.
///
/// It holds a clone of the [`AgentClient`](super::AgentClient) that
/// started it: the client's liveness watch (which ends the session's waits
/// when the agent dies) lasts as long as the session, even if the caller
/// drops its own clients first.
#[derive(Debug)]
pub struct ExecSession {
    _client: super::AgentClient,
    events: mpsc::UnboundedReceiver<Result<ExecEvent, ClientError>>,
    reader: JoinHandle<()>,
    control: ExecControl,
    /// Output bytes granted to the agent so far (the reader checks it).
    granted: Arc<AtomicU64>,
    /// Output taken by the caller and not yet granted back.
    owed: u64,
    done: bool,
    /// The client's "first exec done" stamp, set by the first exit seen.
    first_exit: Arc<OnceLock<u64>>,
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl ExecSession {
    /// Starts reading `recv` until the exec ends or `limit` (from now) runs
    /// out.
    pub(crate) fn new(
        client: super::AgentClient,
        (recv, send): (FrameRecv, FrameSend),
        limit: Duration,
        first_exit: Arc<OnceLock<u64>>,
    ) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stdin_tx, stdin_granted) = watch::channel(u64::from(STDIN_WINDOW));
        let granted = Arc::new(AtomicU64::new(u64::from(OUTPUT_WINDOW)));
        let reader = ReadLoop {
            recv,
            events: events_tx,
            stdin_granted: stdin_tx,
            granted: granted.clone(),
            received: [0; 2],
            deadline: Instant::now() + limit,
            limit,
        };
        Self {
            _client: client,
            events,
            reader: tokio::spawn(reader.run()),
            control: ExecControl {
                send: Arc::new(Mutex::new(Sender {
                    frames: send,
                    cut: false,
                })),
                stdin: Arc::default(),
                stdin_granted,
            },
            granted,
            owed: 0,
            done: false,
            first_exit,
        }
    }

    /// A handle for stdin, signals and resizes.
    pub fn control(&self) -> ExecControl {
        self.control.clone()
    }

    /// The next event, or `None` after [`ExecEvent::Exit`]. Output that
    /// was handed out is granted back to the agent here, so an exec whose
    /// caller stops calling this pauses (the guest process blocks on its
    /// output) instead of piling output up.
    pub async fn next_event(&mut self) -> Result<Option<ExecEvent>, ClientError> {
        if self.done {
            return Ok(None);
        }
        if self.owed >= GRANT_STEP {
            let credit = Control::Credit { bytes: self.owed };
            let frame = connection::json(EXEC_OP, FrameType::Control, &credit)?;
            // Raised before sending, so output that the credit lets through
            // is never taken for output beyond the window.
            self.granted.fetch_add(self.owed, Ordering::SeqCst);
            self.owed = 0;
            // A credit that cannot be sent is not this call's failure: the
            // reader sees the connection end (or has seen why the agent
            // stopped reading) and its events say so below.
            let _ = self.control.send(&frame).await;
        }
        let event = match self.events.recv().await {
            Some(Ok(event)) => event,
            Some(Err(e)) => {
                self.done = true;
                return Err(e);
            }
            None => {
                self.done = true;
                return Err(ClientError::Closed { op: EXEC_OP });
            }
        };
        match &event {
            ExecEvent::Stdout(b) | ExecEvent::Stderr(b) => self.owed += b.len() as u64,
            ExecEvent::Exit(_) => {
                self.done = true;
                self.first_exit.get_or_init(crate::runner::monotonic_us);
            }
            ExecEvent::Started(_) => {}
        }
        Ok(Some(event))
    }

    /// Collects the remaining output until exit, at most `max_output` bytes.
    pub async fn collect(mut self, max_output: usize) -> Result<super::ExecOutput, ClientError> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        loop {
            let (to_stdout, bytes) = match self.next_event().await? {
                Some(ExecEvent::Stdout(b)) => (true, b),
                Some(ExecEvent::Stderr(b)) => (false, b),
                Some(ExecEvent::Started(_)) => continue,
                Some(ExecEvent::Exit(status)) => {
                    return Ok(super::ExecOutput {
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

/// The task reading one exec's connection.
struct ReadLoop {
    recv: FrameRecv,
    events: mpsc::UnboundedSender<Result<ExecEvent, ClientError>>,
    stdin_granted: watch::Sender<u64>,
    granted: Arc<AtomicU64>,
    /// Data bytes received on stdout and stderr.
    received: [u64; 2],
    deadline: Instant,
    limit: Duration,
}

impl ReadLoop {
    async fn run(mut self) {
        loop {
            let next = match self.recv.recv_until(self.deadline, self.limit).await {
                Ok(frame) => self.handle(frame),
                Err(e) => Err(e),
            };
            let end = match &next {
                Ok(Some(ExecEvent::Exit(_))) | Err(_) => true,
                Ok(_) => false,
            };
            if let Some(event) = next.transpose() {
                if self.events.send(event).is_err() {
                    return; // the session is gone
                }
            }
            if end {
                return;
            }
        }
    }

    /// The event in `frame`, if it makes one.
    fn handle(&mut self, frame: Frame) -> Result<Option<ExecEvent>, ClientError> {
        match (frame.frame_type, frame.stream) {
            (FrameType::Data, id @ (stream::STDOUT | stream::STDERR)) => {
                self.received[output_index(id)] += frame.payload.len() as u64;
                let in_flight = self.received.iter().sum::<u64>();
                if in_flight > self.granted.load(Ordering::SeqCst) {
                    return Err(ClientError::Unexpected {
                        op: EXEC_OP,
                        got: format!("output beyond the {OUTPUT_WINDOW}-byte window granted"),
                    });
                }
                Ok(Some(if id == stream::STDOUT {
                    ExecEvent::Stdout(frame.payload)
                } else {
                    ExecEvent::Stderr(frame.payload)
                }))
            }
            (FrameType::Eof, id @ (stream::STDOUT | stream::STDERR)) => {
                let received = self.received[output_index(id)];
                match frame.eof_total() {
                    Some(sent) if sent != received => Err(ClientError::OutputCut {
                        op: EXEC_OP,
                        stream: if id == stream::STDOUT {
                            "stdout"
                        } else {
                            "stderr"
                        },
                        sent,
                        received,
                    }),
                    _ => Ok(None),
                }
            }
            (FrameType::Control, _) => match frame.parse_json::<Control>() {
                Ok(Control::Credit { bytes }) => {
                    self.stdin_granted
                        .send_modify(|g| *g = g.saturating_add(bytes));
                    Ok(None)
                }
                _ => Err(connection::unexpected(EXEC_OP, &frame)),
            },
            (FrameType::Reply, _) => match connection::expect_reply(EXEC_OP, frame)? {
                Reply::Started { pid } => Ok(Some(ExecEvent::Started(pid))),
                Reply::Exited(status) => Ok(Some(ExecEvent::Exit(status))),
                other => Err(connection::unexpected_reply(EXEC_OP, &other)),
            },
            _ => Err(connection::unexpected(EXEC_OP, &frame)),
        }
    }
}

fn output_index(id: u32) -> usize {
    usize::from(id == stream::STDERR)
}
