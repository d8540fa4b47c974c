//! Whether the agent lives, and if not, why.
//!
//! The agent pings every [`krunbox_proto::PING_INTERVAL`] on a connection
//! of its own: the announce connection for the client that started the VM,
//! a watch connection (`Request::Watch`, opened with the first operation)
//! for a client attached later, as every CLI command on a named VM is. A
//! task reads those pings; a close or a silence past the liveness timeout
//! publishes a [`GoneReason`], which ends every wait of every operation
//! with [`ClientError::Gone`].

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use krunbox_proto::{FrameType, Reply, Request};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::connection::{self, OpsConn};
use super::{ClientConfig, ClientError};

/// Why an agent counts as gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// Its liveness connection closed: the agent exited, or its VM
    /// stopped (powered off, crashed or was killed).
    Closed,
    /// It sent no sign of life for this long: the guest halted or froze,
    /// or the agent was stopped.
    Silent(Duration),
}

impl std::fmt::Display for GoneReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => {
                f.write_str("its connection closed: the agent exited or the VM stopped")
            }
            Self::Silent(after) => write!(
                f,
                "no sign of life for {} s: the guest halted or froze, or its agent was stopped",
                after.as_secs()
            ),
        }
    }
}

/// What an operation watches: `None` while the agent lives.
pub(crate) type Alive = watch::Receiver<Option<GoneReason>>;

/// Resolves with the reason once the agent is gone (or its client, with
/// the watcher, is); never without a channel.
pub(crate) async fn gone(alive: &mut Option<Alive>) -> GoneReason {
    match alive {
        Some(alive) => match alive.wait_for(Option::is_some).await {
            Ok(reason) => reason.unwrap_or(GoneReason::Closed),
            Err(_) => GoneReason::Closed,
        },
        None => std::future::pending().await,
    }
}

/// A client's liveness: the published state and the task that reads the
/// pings. Dropping it stops the task (and closes its connection).
#[derive(Debug)]
pub(crate) struct Liveness {
    state: watch::Sender<Option<GoneReason>>,
    watcher: Mutex<Option<JoinHandle<()>>>,
    attached: bool,
}

impl Drop for Liveness {
    fn drop(&mut self) {
        let watcher = self.watcher.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(watcher) = watcher.take() {
            watcher.abort();
        }
    }
}

impl Liveness {
    /// Watches the pings on the announce connection `conn`.
    pub(crate) fn announced(conn: OpsConn, liveness: Duration) -> Self {
        let state = watch::Sender::new(None);
        let watcher = tokio::spawn(watch_pings(conn, state.clone(), liveness));
        Self {
            state,
            watcher: Mutex::new(Some(watcher)),
            attached: false,
        }
    }

    /// Liveness of an attached client: the watch connection opens with
    /// [`Liveness::ensure_watch`].
    pub(crate) fn attached() -> Self {
        Self {
            state: watch::Sender::new(None),
            watcher: Mutex::new(None),
            attached: true,
        }
    }

    /// Whether the client was attached (it did not start the VM).
    pub(crate) fn is_attached(&self) -> bool {
        self.attached
    }

    /// The channel operations wait on.
    pub(crate) fn subscribe(&self) -> Alive {
        self.state.subscribe()
    }

    /// Why the agent is gone, once it is.
    pub(crate) fn reason(&self) -> Option<GoneReason> {
        *self.state.borrow()
    }

    /// Opens an attached client's watch connection, once (from inside a
    /// runtime: the first operation calls this).
    pub(crate) fn ensure_watch(&self, ops_path: &Path, config: &ClientConfig) {
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if !self.attached || watcher.is_some() {
            return;
        }
        let state = self.state.clone();
        let (path, config) = (ops_path.to_owned(), config.clone());
        *watcher = Some(tokio::spawn(async move {
            match open_watch(&path, &config).await {
                Ok(conn) => watch_pings(conn, state, config.liveness_timeout).await,
                // An agent from before the watch refuses it: liveness
                // stays unknown, as it was.
                Err(ClientError::Agent { .. }) => {}
                Err(ClientError::Timeout { .. }) => {
                    publish(&state, GoneReason::Silent(config.liveness_timeout));
                }
                Err(_) => publish(&state, GoneReason::Closed),
            }
        }));
    }
}

/// Connects, asks for a watch, and waits for its answer as long as the
/// liveness timeout allows. The connection has no liveness channel: it is
/// the one that feeds it.
async fn open_watch(path: &Path, config: &ClientConfig) -> Result<OpsConn, ClientError> {
    const OP: &str = "watch";
    let mut conn = OpsConn::connect(path, config.connect_timeout, OP, None).await?;
    let request = connection::json(OP, FrameType::Request, &Request::Watch)?;
    conn.send.send(&request).await?;
    match connection::expect_reply(OP, conn.recv.recv(config.liveness_timeout).await?)? {
        Reply::Ok => Ok(conn),
        other => Err(connection::unexpected_reply(OP, &other)),
    }
}

/// Reads a connection carrying the agent's pings until it closes or falls
/// silent for `liveness`; keeps it open meanwhile. Then publishes why, and
/// closes it, which tells an agent that is merely slow to stop.
async fn watch_pings(
    mut conn: OpsConn,
    state: watch::Sender<Option<GoneReason>>,
    liveness: Duration,
) {
    let reason = loop {
        match conn.recv.recv(liveness).await {
            Ok(_) => {}
            Err(ClientError::Timeout { .. }) => break GoneReason::Silent(liveness),
            Err(_) => break GoneReason::Closed,
        }
    };
    publish(&state, reason);
}

/// Publishes `reason`, unless one was published already.
fn publish(state: &watch::Sender<Option<GoneReason>>, reason: GoneReason) {
    state.send_if_modified(|gone| gone.is_none() && gone.replace(reason).is_none());
}
