//! One ops connection: frames in and out over a unix socket, every read
//! bounded by a timeout and by the frame size limit.

use std::path::Path;
use std::time::Duration;

use krunbox_proto::{ErrorReply, Frame, FrameError, FrameReader, FrameType, ReadError, Reply};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::liveness::{gone, Alive};
use super::ClientError;

/// How long an operation whose connection broke waits for the liveness
/// watcher to tell whether the agent is gone. The watcher reads a
/// connection of its own, so it learns of an agent's death a moment after
/// an operation's connection breaks, usually within one scheduling round.
const LOSS_GRACE: Duration = Duration::from_millis(500);

/// `lost`, the error of a connection that broke, as [`ClientError::Gone`]
/// with the reason when the liveness watcher finds the agent gone within
/// [`LOSS_GRACE`]: so the error says why, and a caller that then asks
/// [`super::AgentClient::is_alive`] gets the same answer. Without a
/// liveness channel (the liveness connections themselves), `lost` as is.
pub(crate) async fn explain_loss(
    alive: &mut Option<Alive>,
    op: &'static str,
    lost: ClientError,
) -> ClientError {
    if alive.is_none() {
        return lost;
    }
    match tokio::time::timeout(LOSS_GRACE, gone(alive)).await {
        Ok(reason) => ClientError::Gone { op, reason },
        Err(_) => lost,
    }
}

/// Builds a JSON control frame.
pub(crate) fn json<T: Serialize>(
    op: &'static str,
    frame_type: FrameType,
    message: &T,
) -> Result<Frame, ClientError> {
    Frame::json(frame_type, message).map_err(|source| ClientError::Encode { op, source })
}

/// The error for a frame that makes no sense at this point.
pub(crate) fn unexpected(op: &'static str, frame: &Frame) -> ClientError {
    if frame.frame_type == FrameType::Error {
        return match frame.parse_json::<ErrorReply>() {
            Ok(source) => ClientError::Agent { op, source },
            Err(source) => ClientError::Payload { op, source },
        };
    }
    ClientError::Unexpected {
        op,
        got: format!("{:?} frame on stream {}", frame.frame_type, frame.stream),
    }
}

/// The error for a reply of the wrong kind.
pub(crate) fn unexpected_reply(op: &'static str, reply: &Reply) -> ClientError {
    ClientError::Unexpected {
        op,
        got: format!("reply {reply:?}"),
    }
}

/// The reply in `frame`, or the agent's error.
pub(crate) fn expect_reply(op: &'static str, frame: Frame) -> Result<Reply, ClientError> {
    match frame.frame_type {
        FrameType::Reply => frame
            .parse_json()
            .map_err(|source| ClientError::Payload { op, source }),
        _ => Err(unexpected(op, &frame)),
    }
}

/// The reading half: the protocol crate's frame reader over the socket.
#[derive(Debug)]
pub(crate) struct FrameRecv {
    reader: FrameReader<OwnedReadHalf>,
    op: &'static str,
    alive: Option<Alive>,
}

impl FrameRecv {
    /// The next frame, `None` on a clean close, [`ClientError::Gone`] once
    /// the agent is; no timeout. Frames already sent are read first.
    pub(crate) async fn recv_opt(&mut self) -> Result<Option<Frame>, ClientError> {
        let op = self.op;
        let read = tokio::select! {
            biased;
            read = self.reader.read_frame_async() => read,
            reason = gone(&mut self.alive) => return Err(ClientError::Gone { op, reason }),
        };
        match read {
            Ok(frame) => Ok(frame),
            Err(ReadError::Io(source)) => {
                let lost = ClientError::Io { op, source };
                Err(explain_loss(&mut self.alive, op, lost).await)
            }
            // Cut inside a frame: the connection broke as much as a close.
            Err(ReadError::Frame(source @ FrameError::Truncated { .. })) => {
                let lost = ClientError::Frame { op, source };
                Err(explain_loss(&mut self.alive, op, lost).await)
            }
            Err(ReadError::Frame(source)) => Err(ClientError::Frame { op, source }),
        }
    }

    /// A close, explained: [`ClientError::Gone`] if the agent is.
    async fn closed(&mut self) -> ClientError {
        let op = self.op;
        explain_loss(&mut self.alive, op, ClientError::Closed { op }).await
    }

    /// The next frame within `timeout`; a close is [`ClientError::Closed`].
    pub(crate) async fn recv(&mut self, timeout: Duration) -> Result<Frame, ClientError> {
        let op = self.op;
        match tokio::time::timeout(timeout, self.recv_opt()).await {
            Err(_) => Err(ClientError::Timeout { op, after: timeout }),
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) => Err(self.closed().await),
            Ok(Err(e)) => Err(e),
        }
    }

    /// The next frame within `idle`, and before `deadline` (which ends a
    /// whole transfer of `total`).
    pub(crate) async fn recv_within(
        &mut self,
        idle: Duration,
        deadline: tokio::time::Instant,
        total: Duration,
    ) -> Result<Frame, ClientError> {
        let idle_deadline = tokio::time::Instant::now() + idle;
        if idle_deadline < deadline {
            self.recv(idle).await
        } else {
            self.recv_until(deadline, total).await
        }
    }

    /// Like [`FrameRecv::recv`], with an absolute deadline.
    pub(crate) async fn recv_until(
        &mut self,
        deadline: tokio::time::Instant,
        limit: Duration,
    ) -> Result<Frame, ClientError> {
        let op = self.op;
        match tokio::time::timeout_at(deadline, self.recv_opt()).await {
            Err(_) => Err(ClientError::Timeout { op, after: limit }),
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) => Err(self.closed().await),
            Ok(Err(e)) => Err(e),
        }
    }
}

/// The writing half.
#[derive(Debug)]
pub(crate) struct FrameSend {
    write: OwnedWriteHalf,
    op: &'static str,
    stall_limit: Option<Duration>,
    alive: Option<Alive>,
}

impl FrameSend {
    /// From now on, a frame that the agent does not take within `limit`
    /// (it stopped reading) fails the send with [`ClientError::Timeout`].
    /// For transfers; an exec's stdin may wait on its process for as long
    /// as the exec runs.
    pub(crate) fn limit_stalls(&mut self, limit: Duration) {
        self.stall_limit = Some(limit);
    }

    /// Sends one frame; fails with [`ClientError::Gone`] if the agent goes
    /// while the frame waits for room.
    pub(crate) async fn send(&mut self, frame: &Frame) -> Result<(), ClientError> {
        let op = self.op;
        let bytes = frame.to_bytes();
        let write = async {
            match self.stall_limit {
                Some(after) => tokio::time::timeout(after, self.write.write_all(&bytes))
                    .await
                    .map_err(|_| ClientError::Timeout { op, after })?,
                None => self.write.write_all(&bytes).await,
            }
            .map_err(|source| ClientError::Io { op, source })
        };
        let written = tokio::select! {
            biased;
            written = write => written,
            reason = gone(&mut self.alive) => return Err(ClientError::Gone { op, reason }),
        };
        match written {
            Err(lost @ ClientError::Io { .. }) => {
                Err(explain_loss(&mut self.alive, op, lost).await)
            }
            other => other,
        }
    }
}

/// One connection to the agent, split into halves.
#[derive(Debug)]
pub(crate) struct OpsConn {
    pub(crate) recv: FrameRecv,
    pub(crate) send: FrameSend,
}

impl OpsConn {
    /// Wraps a connected stream; with `alive`, its waits end when the agent
    /// is gone.
    pub(crate) fn from_stream(stream: UnixStream, op: &'static str, alive: Option<Alive>) -> Self {
        let (read, write) = stream.into_split();
        Self {
            recv: FrameRecv {
                reader: FrameReader::new(read),
                op,
                alive: alive.clone(),
            },
            send: FrameSend {
                write,
                op,
                stall_limit: None,
                alive,
            },
        }
    }

    /// Connects to the ops socket within `timeout`; with `alive`, a refused
    /// connection is explained as [`ClientError::Gone`] if the agent is.
    pub(crate) async fn connect(
        path: &Path,
        timeout: Duration,
        op: &'static str,
        mut alive: Option<Alive>,
    ) -> Result<Self, ClientError> {
        let connected = tokio::time::timeout(timeout, connect_retrying(path))
            .await
            .map_err(|_| ClientError::Timeout { op, after: timeout })?;
        match connected {
            Ok(stream) => Ok(Self::from_stream(stream, op, alive)),
            Err(source) => {
                let path = path.to_owned();
                let lost = ClientError::Connect { path, source };
                Err(explain_loss(&mut alive, op, lost).await)
            }
        }
    }

    /// When a send failed because the agent gave up and closed, the reason
    /// is usually its error frame, already waiting to be read: prefer it.
    pub(crate) async fn explain(&mut self, send_error: ClientError) -> ClientError {
        match self.recv.recv(Duration::from_secs(1)).await {
            Ok(frame) if frame.frame_type == FrameType::Error => unexpected(self.recv.op, &frame),
            _ => send_error,
        }
    }
}

/// Connects, retrying while the listener's backlog is full: libkrun's
/// listening socket has a short backlog, and a burst of concurrent
/// operations overflows it (`EAGAIN` on a unix socket). The caller bounds
/// the whole attempt with its connect timeout.
async fn connect_retrying(path: &Path) -> std::io::Result<UnixStream> {
    let mut pause = Duration::from_millis(1);
    loop {
        match UnixStream::connect(path).await {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
