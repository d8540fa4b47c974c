//! A hostile agent double: a host task that speaks the real protocol
//! (`krunbox-proto` frames over unix sockets, like the agent run as a host
//! process) and answers each operation with a scripted misbehaviour.
//!
//! The announce connection is a socket pair whose agent end the double
//! keeps (it can close it or flood it); operations come on an ops listener
//! in a temporary directory. For each request the script gives a list of
//! [`Act`]s; when they are done the connection closes.
//!
//! The double runs on a runtime of its own, on its own thread, as the real
//! agent runs in a process of its own: when the test's thread stalls (a
//! loaded CI machine), the double's pings still go out and wait in the
//! socket, so the client's liveness timer never races a ping that its own
//! stalled thread had not yet let the double write.

#![allow(dead_code)]

pub mod cases;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use krunbox::client::{AgentClient, ClientConfig};
use krunbox_proto::{
    stream, FileKind, FileStat, Frame, FrameDecoder, FrameType, Hello, Reply, Request, TreeEntry,
    MAGIC, VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// One step of the double's answer to a request.
#[derive(Debug, Clone)]
pub enum Act {
    /// Writes raw bytes.
    Bytes(Vec<u8>),
    /// Writes frames.
    Frames(Vec<Frame>),
    /// Writes this frame over and over until the host stops reading.
    Repeat(Frame),
    /// Writes frame `f(0)`, `f(1)`, … until the host stops reading.
    Endless(fn(u64) -> Frame),
    /// Reads what the host sends until its tree's `End` entry.
    ReadTree,
    /// Reads and drops this many bytes of what the host sends.
    ReadBytes(usize),
    /// Waits, the connection open and unread.
    Sleep(Duration),
    /// Holds the connection open, unread, until the host closes it.
    Silence,
}

/// How often the double pings (faster than the real agent, so that tests
/// can use short liveness timeouts).
const PING_EVERY: Duration = Duration::from_millis(100);

/// What the double does for a request.
pub type Script = Arc<dyn Fn(&Request) -> Vec<Act> + Send + Sync>;

/// A running double and a client connected to it.
pub struct HostileAgent {
    /// The client under test.
    pub client: AgentClient,
    /// Holds the ops socket; a scratch area for copies.
    pub dir: tempfile::TempDir,
    /// The ops socket.
    pub ops_path: PathBuf,
    /// Bytes written by [`Act::Repeat`] so far.
    pub flooded: Arc<AtomicU64>,
    announce: watch::Sender<AnnounceMode>,
    listener: tokio::task::JoinHandle<()>,
    /// The double's own runtime; shut down on drop.
    runtime: Option<tokio::runtime::Runtime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnnounceMode {
    Open,
    Flood,
    Garbage,
    Frozen,
    Closed,
}

impl HostileAgent {
    /// Starts a double answering with `script`.
    pub async fn start(
        config: ClientConfig,
        script: impl Fn(&Request) -> Vec<Act> + Send + Sync + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ops_path = dir.path().join("ops.sock");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hostile-agent")
            .enable_all()
            .build()
            .unwrap();
        let flooded = Arc::new(AtomicU64::new(0));
        let script: Script = Arc::new(script);
        let served = flooded.clone();
        // Bound here so that the client can connect at once; registered
        // with the double's runtime inside its task.
        let listener = std::os::unix::net::UnixListener::bind(&ops_path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = runtime.spawn(async move {
            let listener = UnixListener::from_std(listener).unwrap();
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, script.clone(), served.clone()));
            }
        });
        let (host_end, agent_end) = std::os::unix::net::UnixStream::pair().unwrap();
        host_end.set_nonblocking(true).unwrap();
        agent_end.set_nonblocking(true).unwrap();
        let (announce, mode) = watch::channel(AnnounceMode::Open);
        let pinged = flooded.clone();
        runtime.spawn(async move {
            let agent_end = UnixStream::from_std(agent_end).unwrap();
            announce_side(agent_end, mode, pinged).await;
        });
        let host_end = UnixStream::from_std(host_end).unwrap();
        let client = AgentClient::from_announce(host_end, &ops_path, config)
            .await
            .unwrap();
        Self {
            client,
            dir,
            ops_path,
            flooded,
            announce,
            listener,
            runtime: Some(runtime),
        }
    }

    /// Like [`HostileAgent::start`], with the default client config.
    pub async fn with_script(
        script: impl Fn(&Request) -> Vec<Act> + Send + Sync + 'static,
    ) -> Self {
        Self::start(ClientConfig::default(), script).await
    }

    /// The agent "dies": its announce connection closes, its ops listener
    /// stops and its socket goes away.
    pub fn die(&self) {
        let _ = self.announce.send(AnnounceMode::Closed);
        self.listener.abort();
        let _ = std::fs::remove_file(&self.ops_path);
    }

    /// Sends valid frames on the announce connection without end.
    pub fn flood_announce(&self) {
        let _ = self.announce.send(AnnounceMode::Flood);
    }

    /// The guest "halts": connections stay open, pings stop.
    pub fn freeze(&self) {
        let _ = self.announce.send(AnnounceMode::Frozen);
    }

    /// Sends bytes that are not a frame on the announce connection.
    pub fn garble_announce(&self) {
        let _ = self.announce.send(AnnounceMode::Garbage);
    }
}

impl Drop for HostileAgent {
    fn drop(&mut self) {
        self.die();
        if let Some(runtime) = self.runtime.take() {
            // Without blocking: the test's runtime may be dropping us.
            runtime.shutdown_background();
        }
    }
}

async fn announce_side(
    mut conn: UnixStream,
    mut mode: watch::Receiver<AnnounceMode>,
    flooded: Arc<AtomicU64>,
) {
    let hello = Hello {
        protocol: VERSION,
        agent_version: "hostile".into(),
        pid: 1,
        started_uptime_ns: 1,
        hello_uptime_ns: 2,
    };
    let frame = Frame::json(FrameType::Hello, &hello).unwrap();
    if conn.write_all(&frame.to_bytes()).await.is_err() {
        return;
    }
    let noise = Frame::data(stream::STDOUT, vec![b'!'; 64 * 1024])
        .unwrap()
        .to_bytes();
    let ping = Frame::ping().to_bytes();
    let mut sink = vec![0u8; 4096];
    loop {
        let now = *mode.borrow_and_update();
        match now {
            AnnounceMode::Closed => return,
            AnnounceMode::Garbage | AnnounceMode::Frozen => {
                if now == AnnounceMode::Garbage {
                    let _ = conn.write_all(b"not a frame at all").await;
                }
                // Then holds the connection, silent, until told otherwise.
                if mode.changed().await.is_err() {
                    return;
                }
            }
            AnnounceMode::Flood => {
                tokio::select! {
                    sent = conn.write_all(&noise) => {
                        if sent.is_err() { return; }
                        flooded.fetch_add(noise.len() as u64, Ordering::Relaxed);
                    }
                    _ = mode.changed() => {}
                }
            }
            AnnounceMode::Open => {
                tokio::select! {
                    read = conn.read(&mut sink) => {
                        if matches!(read, Ok(0) | Err(_)) { return; }
                    }
                    changed = mode.changed() => {
                        if changed.is_err() { return; }
                    }
                    () = tokio::time::sleep(PING_EVERY) => {
                        if conn.write_all(&ping).await.is_err() { return; }
                    }
                }
            }
        }
    }
}

/// Reads frames from the host until `done` says stop (or it closes).
async fn read_frames(
    conn: &mut UnixStream,
    buf: &mut BytesMut,
    decoder: &mut FrameDecoder,
    mut done: impl FnMut(&Frame) -> bool,
) -> Option<()> {
    loop {
        while let Some(frame) = decoder.decode(buf).ok()? {
            if done(&frame) {
                return Some(());
            }
        }
        if conn.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

async fn serve(mut conn: UnixStream, script: Script, flooded: Arc<AtomicU64>) {
    let mut buf = BytesMut::new();
    let mut decoder = FrameDecoder::new();
    let mut request = None;
    let got = read_frames(&mut conn, &mut buf, &mut decoder, |frame| {
        request = frame.parse_json::<Request>().ok();
        true
    })
    .await;
    let (Some(()), Some(request)) = (got, request) else {
        return;
    };
    for act in script(&request) {
        let ok = match act {
            Act::Bytes(bytes) => conn.write_all(&bytes).await.is_ok(),
            Act::Frames(list) => conn.write_all(&encode(&list)).await.is_ok(),
            Act::Repeat(frame) => {
                let bytes = frame.to_bytes();
                while conn.write_all(&bytes).await.is_ok() {
                    flooded.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                false
            }
            Act::Endless(make) => {
                let mut n = 0;
                loop {
                    let bytes = make(n).to_bytes();
                    if conn.write_all(&bytes).await.is_err() {
                        break;
                    }
                    flooded.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    n += 1;
                }
                false
            }
            Act::ReadTree => read_frames(&mut conn, &mut buf, &mut decoder, |frame| {
                frame.frame_type == FrameType::Entry
                    && matches!(frame.parse_json(), Ok(TreeEntry::End))
            })
            .await
            .is_some(),
            Act::ReadBytes(mut n) => {
                let mut chunk = vec![0u8; 64 * 1024];
                n = n.saturating_sub(buf.len());
                while n > 0 {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(got) => n = n.saturating_sub(got),
                    }
                }
                true
            }
            Act::Sleep(d) => {
                tokio::time::sleep(d).await;
                true
            }
            Act::Silence => {
                // Until the double is dropped (its runtime shuts down).
                tokio::time::sleep(Duration::from_secs(3600)).await;
                false
            }
        };
        if !ok {
            return;
        }
    }
}

/// Frames encoded back to back.
pub fn encode(list: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for f in list {
        f.encode(&mut out);
    }
    out.to_vec()
}

/// A frame header with any type and claimed length (no payload).
pub fn raw_header(frame_type: u8, stream: u32, len: u32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_slice(&MAGIC);
    b.put_u8(VERSION);
    b.put_u8(frame_type);
    b.put_u16(0);
    b.put_u16(0);
    b.put_u32(stream);
    b.put_u32(len);
    b
}

/// A reply frame.
pub fn reply(r: &Reply) -> Frame {
    Frame::json(FrameType::Reply, r).unwrap()
}

/// An entry frame.
pub fn entry(e: &TreeEntry) -> Frame {
    Frame::json(FrameType::Entry, e).unwrap()
}

/// A directory entry.
pub fn dir(path: &str) -> Frame {
    entry(&TreeEntry::Dir {
        path: path.into(),
        mode: 0o755,
    })
}

/// A file entry (setuid bit set, which the host must drop).
pub fn file(path: &str, size: u64) -> Frame {
    entry(&TreeEntry::File {
        path: path.into(),
        mode: 0o4755,
        size,
    })
}

/// A symlink entry.
pub fn symlink(path: &str, target: &str) -> Frame {
    entry(&TreeEntry::Symlink {
        path: path.into(),
        target: target.into(),
    })
}

/// File data.
pub fn data(bytes: &[u8]) -> Frame {
    Frame::data(stream::FILE, bytes.to_vec()).unwrap()
}

/// The end of a tree and the copy's final reply.
pub fn end_and_done() -> Vec<Frame> {
    vec![
        entry(&TreeEntry::End),
        reply(&Reply::CopyDone {
            entries: 1,
            bytes: 1,
        }),
    ]
}

/// An honest answer to the requests a check of "still usable" makes
/// (`stat`), for scripts that misbehave only on other requests.
pub fn honest(request: &Request) -> Option<Vec<Act>> {
    match request {
        Request::Stat { .. } => Some(vec![Act::Frames(vec![reply(&Reply::Stat(FileStat {
            kind: FileKind::File,
            mode: 0o644,
            size: 1,
            uid: 0,
            gid: 0,
            mtime: 0,
            symlink_target: None,
        }))])]),
        _ => None,
    }
}
