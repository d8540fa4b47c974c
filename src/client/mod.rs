//! The host side of the guest-agent protocol.
//!
//! An [`AgentClient`] is built from the announce connection the agent opened
//! when it started (see [`AgentClient::accept`]) and the path of the ops
//! socket. Each operation opens its own ops connection, so operations run
//! concurrently, a slow one never blocks another, and a failed one cannot
//! desynchronize the rest.
//!
//! The guest is untrusted: every frame is size-checked before allocation,
//! every wait is bounded by a [`ClientConfig`] timeout, collected output is
//! capped, and trees copied out of the guest are received by
//! [`krunbox_proto::tree::TreeReceiver`], which never writes outside the
//! destination.
//!
//! ```no_run
//! # async fn demo() -> Result<(), krunbox::client::ClientError> {
//! use krunbox::client::{AgentClient, ClientConfig, GuestCommand};
//! let listener = tokio::net::UnixListener::bind("/run/vm/announce.sock").unwrap();
//! // … start the VM, whose agent connects to the announce socket …
//! let agent = AgentClient::accept(&listener, "/run/vm/ops.sock", ClientConfig::default()).await?;
//! let out = agent.exec(&GuestCommand::new("echo").arg("hi")).await?;
//! assert_eq!(out.stdout, b"hi\n");
//! # Ok(()) }
//! ```

mod background;
mod clock;
mod connection;
mod copy_options;
mod exec;
mod files;
mod liveness;
mod session;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use krunbox_proto::tree::TreeError;
use krunbox_proto::{
    EncodeError, ErrorReply, FrameError, FrameType, Hello, HelloAck, PayloadError, Reply, Request,
    VERSION,
};
use tokio::net::{UnixListener, UnixStream};

pub use background::{BackgroundProcess, ProcessOutput};
pub use clock::GuestClock;
pub use copy_options::{CopyOptions, OnSpecial, SkipReason, SkippedPath};
pub use exec::{ExecOutput, GuestCommand, NO_TIMEOUT};
pub use files::{CopyStats, Provision};
pub use krunbox_proto::{ExecStatus, FileKind, FileStat, OutputRange, ProcessInfo, WinSize};
pub use liveness::GoneReason;
pub use session::{ExecControl, ExecEvent, ExecSession, OUTPUT_WINDOW, STDIN_WINDOW};

use connection::OpsConn;
use liveness::Liveness;

/// Timeouts and limits of an [`AgentClient`]. Every wait on the agent is
/// bounded by one of these.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Connecting to the ops socket.
    pub connect_timeout: Duration,
    /// Waiting for the agent's announce connection and its hello.
    pub hello_timeout: Duration,
    /// Longest the agent may go without a sign of life (it pings every
    /// [`krunbox_proto::PING_INTERVAL`]) before it counts as gone: a guest
    /// that halted or hung keeps its connections open but falls silent.
    pub liveness_timeout: Duration,
    /// Waiting for the reply to a short request (stat, mkdir, list, kill…).
    pub request_timeout: Duration,
    /// Longest silence allowed between frames of a file transfer.
    pub idle_timeout: Duration,
    /// Longest a whole copy in or out may take, however lively.
    pub transfer_timeout: Duration,
    /// Timeout given to execs that set none (the agent kills them then).
    pub default_exec_timeout: Duration,
    /// Extra time allowed past an exec's own timeout for the agent to kill
    /// it and report its status.
    pub exec_grace: Duration,
    /// Most bytes of stdout plus stderr collected by [`AgentClient::exec`]
    /// or read back from a background process.
    pub max_output: usize,
    /// Most entries in a tree copied out of the guest.
    pub max_copy_entries: u64,
    /// Most file bytes in a tree copied out of the guest.
    pub max_copy_bytes: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(30),
            liveness_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            transfer_timeout: Duration::from_secs(3600),
            default_exec_timeout: Duration::from_secs(600),
            exec_grace: Duration::from_secs(10),
            max_output: 64 << 20,
            max_copy_entries: 1_000_000,
            max_copy_bytes: u64::MAX,
        }
    }
}

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No announce connection or hello arrived in time.
    #[error("the agent did not announce itself within {0:?}")]
    HelloTimeout(Duration),
    /// The agent speaks another protocol version.
    #[error("the agent speaks protocol version {found}, this host {VERSION}")]
    Version {
        /// The agent's version.
        found: u8,
    },
    /// Connecting to the ops socket failed.
    #[error("connecting to the agent's ops socket {path:?}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the connection failed.
    #[error("I/O with the agent during {op}")]
    Io {
        /// The operation.
        op: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The agent sent bytes that are not a valid frame.
    #[error("the agent sent an invalid frame during {op}")]
    Frame {
        /// The operation.
        op: &'static str,
        /// Why.
        #[source]
        source: FrameError,
    },
    /// The agent sent a control message that does not parse.
    #[error("the agent sent an invalid message during {op}")]
    Payload {
        /// The operation.
        op: &'static str,
        /// Why.
        #[source]
        source: PayloadError,
    },
    /// The agent sent a valid frame that makes no sense at this point.
    #[error("unexpected {got} from the agent during {op}")]
    Unexpected {
        /// The operation.
        op: &'static str,
        /// What arrived.
        got: String,
    },
    /// The agent closed the connection before the operation ended.
    #[error("the agent closed the connection during {op}")]
    Closed {
        /// The operation.
        op: &'static str,
    },
    /// The agent is gone while the operation ran: it exited, or it fell
    /// silent for longer than [`ClientConfig::liveness_timeout`] (e.g. its
    /// guest halted).
    #[error("the agent is gone during {op}: {reason}")]
    Gone {
        /// The operation.
        op: &'static str,
        /// Why it counts as gone.
        reason: GoneReason,
    },
    /// A [`BackgroundProcess`] handle was used after every
    /// [`AgentClient`] was dropped: the connection to the agent is closed,
    /// and the agent has ended its processes.
    #[error("{op}: every client of this agent was dropped, which ended its processes")]
    Disconnected {
        /// The operation.
        op: &'static str,
    },
    /// The agent did not answer in time.
    #[error("no answer from the agent within {after:?} during {op}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The bound that ran out.
        after: Duration,
    },
    /// The agent reported that the operation failed.
    #[error("the agent failed {op}")]
    Agent {
        /// The operation.
        op: &'static str,
        /// The agent's error.
        #[source]
        source: ErrorReply,
    },
    /// A local part of a tree copy failed (or the guest's tree was rejected).
    #[error("copying a tree during {op}")]
    Tree {
        /// The operation.
        op: &'static str,
        /// Why.
        #[source]
        source: TreeError,
    },
    /// A message could not be encoded (e.g. larger than a frame).
    #[error("encoding a request for {op}")]
    Encode {
        /// The operation.
        op: &'static str,
        /// Why.
        #[source]
        source: EncodeError,
    },
    /// A copy with [`OnSpecial::Fail`] met device nodes or sockets; nothing
    /// was written at the destination.
    #[error("{op}: {}", uncopyable(skipped))]
    Uncopyable {
        /// The operation.
        op: &'static str,
        /// Every path that cannot be copied, in tree order.
        skipped: Vec<SkippedPath>,
    },
    /// An output stream ended with fewer (or more) bytes than the agent
    /// declared it sent: bytes were lost on the way, and the output is not
    /// what the process wrote.
    #[error(
        "{op}: the output was cut: the agent sent {sent} bytes on {stream}, {received} arrived"
    )]
    OutputCut {
        /// The operation.
        op: &'static str,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// Bytes the agent declared.
        sent: u64,
        /// Bytes that arrived.
        received: u64,
    },
    /// More output than [`ClientConfig::max_output`].
    #[error("output of {op} exceeded {limit} bytes")]
    OutputLimit {
        /// The operation.
        op: &'static str,
        /// The limit.
        limit: usize,
    },
}

/// "N paths cannot be copied, the first P (a socket)".
fn uncopyable(skipped: &[SkippedPath]) -> String {
    match skipped {
        [] => "special files cannot be copied".into(),
        [only] => format!("{:?} ({}) cannot be copied", only.path, only.reason),
        [first, ..] => format!(
            "{} paths cannot be copied, the first {:?} ({})",
            skipped.len(),
            first.path,
            first.reason
        ),
    }
}

impl ClientError {
    /// The closest [`io::ErrorKind`], e.g. `NotFound` for a missing guest path.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Self::HelloTimeout(_) | Self::Timeout { .. } => io::ErrorKind::TimedOut,
            Self::Connect { source, .. } | Self::Io { source, .. } => source.kind(),
            Self::Closed { .. } => io::ErrorKind::UnexpectedEof,
            Self::Gone { .. } => io::ErrorKind::ConnectionAborted,
            Self::Disconnected { .. } => io::ErrorKind::NotConnected,
            Self::Agent { source, .. } => source.kind.to_io(),
            Self::Tree { source, .. } => source.io_kind(),
            Self::Encode { .. } => io::ErrorKind::InvalidInput,
            Self::Uncopyable { .. } => io::ErrorKind::Unsupported,
            Self::Version { .. }
            | Self::Frame { .. }
            | Self::Payload { .. }
            | Self::Unexpected { .. }
            | Self::OutputCut { .. }
            | Self::OutputLimit { .. } => io::ErrorKind::InvalidData,
        }
    }
}

/// A connected guest agent. Cheap to clone; all clones share the liveness
/// channel. Dropping the last clone closes the announce connection, which
/// tells the agent the host is gone (it then kills its processes and exits).
#[derive(Debug, Clone)]
pub struct AgentClient {
    inner: Arc<Inner>,
}

/// A reference to an [`AgentClient`] that does not keep the agent
/// connected (a background process's handle holds one).
#[derive(Debug, Clone)]
pub(crate) struct WeakClient(std::sync::Weak<Inner>);

impl WeakClient {
    /// A weak reference to `client`.
    pub(crate) fn new(client: &AgentClient) -> Self {
        Self(Arc::downgrade(&client.inner))
    }

    /// The client, unless every clone of it was dropped.
    pub(crate) fn upgrade(&self, op: &'static str) -> Result<AgentClient, ClientError> {
        self.0
            .upgrade()
            .map(|inner| AgentClient { inner })
            .ok_or(ClientError::Disconnected { op })
    }
}

#[derive(Debug)]
struct Inner {
    ops_path: PathBuf,
    hello: Hello,
    config: ClientConfig,
    liveness: Liveness,
    /// When the first exec through this client ended (CLOCK_MONOTONIC,
    /// microseconds), for the boot timeline.
    first_exec_done_us: Arc<OnceLock<u64>>,
}

impl AgentClient {
    /// Accepts the agent's announce connection on `listener` and completes
    /// the hello, all within [`ClientConfig::hello_timeout`].
    pub async fn accept(
        listener: &UnixListener,
        ops_path: impl Into<PathBuf>,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let limit = config.hello_timeout;
        let (stream, _) = tokio::time::timeout(limit, listener.accept())
            .await
            .map_err(|_| ClientError::HelloTimeout(limit))?
            .map_err(|source| ClientError::Io {
                op: "accepting the announce connection",
                source,
            })?;
        Self::from_announce(stream, ops_path, config).await
    }

    /// Completes the hello on an accepted announce connection.
    pub async fn from_announce(
        stream: UnixStream,
        ops_path: impl Into<PathBuf>,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        const OP: &str = "hello";
        let mut conn = OpsConn::from_stream(stream, OP, None);
        let frame = conn
            .recv
            .recv(config.hello_timeout)
            .await
            .map_err(|e| match e {
                ClientError::Timeout { after, .. } => ClientError::HelloTimeout(after),
                other => other,
            })?;
        if frame.frame_type != FrameType::Hello {
            return Err(connection::unexpected(OP, &frame));
        }
        let hello: Hello = frame
            .parse_json()
            .map_err(|source| ClientError::Payload { op: OP, source })?;
        if hello.protocol != VERSION {
            return Err(ClientError::Version {
                found: hello.protocol,
            });
        }
        let ack = HelloAck { protocol: VERSION };
        conn.send
            .send(&connection::json(OP, FrameType::HelloAck, &ack)?)
            .await?;
        let liveness = Liveness::announced(conn, config.liveness_timeout);
        Ok(Self {
            inner: Arc::new(Inner {
                ops_path: ops_path.into(),
                hello,
                config,
                liveness,
                first_exec_done_us: Arc::default(),
            }),
        })
    }

    /// A client for an agent that announced itself to another process (a
    /// named VM started by an earlier `krunbox start`): operations go to
    /// `ops_path`; `hello` is what the agent said then. With its first
    /// operation the client opens a watch connection on which the agent
    /// pings, so it notices within [`ClientConfig::liveness_timeout`] that
    /// the agent went away, its guest froze or powered off
    /// ([`AgentClient::gone_reason`] says which), and every wait ends with
    /// [`ClientError::Gone`]. [`AgentClient::shutdown`] returns once the
    /// agent has answered.
    pub fn attach(ops_path: impl Into<PathBuf>, hello: Hello, config: ClientConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                ops_path: ops_path.into(),
                hello,
                config,
                liveness: Liveness::attached(),
                first_exec_done_us: Arc::default(),
            }),
        }
    }

    /// Why the agent counts as gone, once it does.
    pub fn gone_reason(&self) -> Option<GoneReason> {
        self.inner.liveness.reason()
    }

    /// The agent's hello: versions, pid and guest uptimes at start.
    pub fn hello(&self) -> &Hello {
        &self.inner.hello
    }

    /// When the first exec through this client (or a clone) ended, on
    /// CLOCK_MONOTONIC in microseconds ([`crate::runner::monotonic_us`]).
    pub fn first_exec_done_us(&self) -> Option<u64> {
        self.inner.first_exec_done_us.get().copied()
    }

    /// The timeouts and limits in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Whether the agent is alive: its announce connection is open and it
    /// pinged within [`ClientConfig::liveness_timeout`].
    pub fn is_alive(&self) -> bool {
        self.gone_reason().is_none()
    }

    /// Resolves when the agent is gone: it closed the announce connection
    /// (it exited) or fell silent past the liveness timeout. An attached
    /// client opens its watch connection here if no operation has yet.
    pub async fn closed(&self) {
        let inner = &self.inner;
        inner.liveness.ensure_watch(&inner.ops_path, &inner.config);
        liveness::gone(&mut Some(self.liveness())).await;
    }

    /// The liveness channel: `None` while the agent lives.
    pub(crate) fn liveness(&self) -> liveness::Alive {
        self.inner.liveness.subscribe()
    }

    pub(crate) async fn open(&self, op: &'static str) -> Result<OpsConn, ClientError> {
        let inner = &self.inner;
        inner.liveness.ensure_watch(&inner.ops_path, &inner.config);
        OpsConn::connect(
            &inner.ops_path,
            inner.config.connect_timeout,
            op,
            Some(self.liveness()),
        )
        .await
    }

    /// Opens a connection and sends `request` on it.
    pub(crate) async fn start(
        &self,
        op: &'static str,
        request: &Request,
    ) -> Result<OpsConn, ClientError> {
        let mut conn = self.open(op).await?;
        conn.send
            .send(&connection::json(op, FrameType::Request, request)?)
            .await?;
        Ok(conn)
    }

    /// Sends `request` and waits for its single reply.
    pub(crate) async fn call(
        &self,
        op: &'static str,
        request: &Request,
    ) -> Result<Reply, ClientError> {
        let mut conn = self.start(op, request).await?;
        let timeout = self.inner.config.request_timeout;
        connection::expect_reply(op, conn.recv.recv(timeout).await?)
    }

    /// Asks the agent to sync the guest's filesystems and exit with `code`
    /// (libkrun then powers the VM off), and waits until it has gone (for
    /// an [attached](AgentClient::attach) client: until it has answered).
    pub async fn shutdown(&self, code: i32) -> Result<(), ClientError> {
        const OP: &str = "shutdown";
        match self.call(OP, &Request::Shutdown { code }).await {
            // The agent may be gone before its answer is read.
            Ok(Reply::Ok) | Err(ClientError::Closed { .. } | ClientError::Gone { .. }) => {}
            Ok(other) => return Err(connection::unexpected_reply(OP, &other)),
            Err(e) => return Err(e),
        }
        if self.inner.liveness.is_attached() {
            return Ok(());
        }
        let limit = self.inner.config.request_timeout;
        tokio::time::timeout(limit, self.closed())
            .await
            .map_err(|_| ClientError::Timeout {
                op: OP,
                after: limit,
            })
    }

    /// The ops socket path.
    pub fn ops_path(&self) -> &Path {
        &self.inner.ops_path
    }
}
