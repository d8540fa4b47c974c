//! Where the agent's connections come from: AF_VSOCK in the guest, unix
//! sockets when it runs as a host process for tests. Both are plain stream
//! sockets, so a connection is a [`Conn`] over its file descriptor, and
//! frames are read and written the same way on both.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use krunbox_proto::Frame;
use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, VsockAddr};

/// The host's CID as seen from the guest.
pub const HOST_CID: u32 = 2;
/// Pending connections the ops listener queues before refusing more.
const LISTEN_BACKLOG: i32 = 4096;

/// Transport failures.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Setting up the listener failed.
    #[error("listening for operations on {0}")]
    Listen(String, #[source] io::Error),
    /// Connecting to the host's announce socket failed.
    #[error("connecting to the announce socket {0}")]
    Announce(String, #[source] io::Error),
}

/// Which transport the agent uses, from its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `--vsock ANNOUNCE,LISTEN`: connect to the host (CID 2) on the
    /// announce port, listen on any CID on the ops port.
    Vsock {
        /// Port to connect to for the hello.
        announce_port: u32,
        /// Port to listen on for operations.
        listen_port: u32,
    },
    /// `--unix-announce PATH --unix-listen PATH`.
    Unix {
        /// Socket to connect to for the hello.
        announce: PathBuf,
        /// Socket path to create and listen on.
        listen: PathBuf,
    },
}

fn nix_io(err: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(err as i32)
}

impl Transport {
    /// Binds the ops listener (before the hello, so the host can connect as
    /// soon as it hears from us).
    pub fn listen(&self) -> Result<Listener, TransportError> {
        match self {
            Self::Unix { listen, .. } => UnixListener::bind(listen)
                .map(Listener::Unix)
                .map_err(|e| TransportError::Listen(listen.display().to_string(), e)),
            Self::Vsock { listen_port, .. } => {
                let what = format!("vsock port {listen_port}");
                let fd = socket::socket(
                    AddressFamily::Vsock,
                    SockType::Stream,
                    SockFlag::SOCK_CLOEXEC,
                    None,
                )
                .map_err(|e| TransportError::Listen(what.clone(), nix_io(e)))?;
                let addr = VsockAddr::new(libc::VMADDR_CID_ANY, *listen_port);
                socket::bind(fd.as_raw_fd(), &addr)
                    .map_err(|e| TransportError::Listen(what.clone(), nix_io(e)))?;
                // Deep enough for bursts of connections (each operation
                // opens one) while accepting lags, as it does on emulated
                // CPUs: a full backlog resets new connections. The kernel
                // caps it at net.core.somaxconn.
                let backlog = Backlog::new(LISTEN_BACKLOG).expect("a valid backlog");
                socket::listen(&fd, backlog)
                    .map_err(|e| TransportError::Listen(what, nix_io(e)))?;
                Ok(Listener::Vsock(fd))
            }
        }
    }

    /// Connects to the host's announce socket, retrying briefly.
    pub fn connect_announce(&self) -> Result<Conn, TransportError> {
        let mut attempt = 0;
        loop {
            let result = match self {
                Self::Unix { announce, .. } => UnixStream::connect(announce).map(Conn::from),
                Self::Vsock { announce_port, .. } => connect_vsock(*announce_port),
            };
            match result {
                Ok(conn) => return Ok(conn),
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    let what = match self {
                        Self::Unix { announce, .. } => announce.display().to_string(),
                        Self::Vsock { announce_port, .. } => {
                            format!("vsock {HOST_CID}:{announce_port}")
                        }
                    };
                    return Err(TransportError::Announce(what, e));
                }
            }
        }
    }
}

fn connect_vsock(port: u32) -> io::Result<Conn> {
    let fd = socket::socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(nix_io)?;
    socket::connect(fd.as_raw_fd(), &VsockAddr::new(HOST_CID, port)).map_err(nix_io)?;
    Ok(Conn(File::from(fd)))
}

/// The ops listener.
#[derive(Debug)]
pub enum Listener {
    /// A unix socket listener.
    Unix(UnixListener),
    /// A listening AF_VSOCK socket.
    Vsock(OwnedFd),
}

impl Listener {
    /// Waits for the next connection.
    pub fn accept(&self) -> io::Result<Conn> {
        match self {
            Self::Unix(l) => l.accept().map(|(s, _)| Conn::from(s)),
            Self::Vsock(fd) => {
                let raw: RawFd =
                    socket::accept4(fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC).map_err(nix_io)?;
                // SAFETY: accept4 just returned this descriptor; nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                Ok(Conn(File::from(owned)))
            }
        }
    }
}

/// One stream connection (unix or vsock): reads and writes go straight to
/// the socket's descriptor.
#[derive(Debug)]
pub struct Conn(File);

impl From<UnixStream> for Conn {
    fn from(s: UnixStream) -> Self {
        Self(File::from(OwnedFd::from(s)))
    }
}

impl Conn {
    /// A second handle on the same socket.
    pub fn try_clone(&self) -> io::Result<Self> {
        self.0.try_clone().map(Self)
    }

    /// Sets or clears a receive timeout.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        socket::setsockopt(&self.0, socket::sockopt::ReceiveTimeout, &timeval(timeout))
            .map_err(nix_io)
    }

    /// Sets or clears a send timeout (writes then fail with `WouldBlock`).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        socket::setsockopt(&self.0, socket::sockopt::SendTimeout, &timeval(timeout)).map_err(nix_io)
    }
}

fn timeval(timeout: Option<Duration>) -> nix::sys::time::TimeVal {
    match timeout {
        Some(d) => nix::sys::time::TimeVal::new(
            d.as_secs() as libc::time_t,
            d.subsec_micros() as libc::suseconds_t,
        ),
        None => nix::sys::time::TimeVal::new(0, 0),
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads frames from a connection (the protocol crate's reader).
pub type FrameReader = krunbox_proto::FrameReader<Conn>;

/// Writes whole frames to a connection; cheap to clone and share between
/// the threads of one operation.
#[derive(Debug, Clone)]
pub struct FrameWriter(Arc<Mutex<Conn>>);

impl FrameWriter {
    /// Writes to `conn`.
    pub fn new(conn: Conn) -> Self {
        Self(Arc::new(Mutex::new(conn)))
    }

    /// Sends one frame.
    pub fn send(&self, frame: &Frame) -> io::Result<()> {
        let bytes = frame.to_bytes();
        let mut conn = self.0.lock().unwrap_or_else(|p| p.into_inner());
        conn.write_all(&bytes)
    }

    /// Sends one frame on a connection with a send timeout, calling
    /// `on_stall` each time the timeout runs out with the peer not reading.
    pub fn send_stalling(&self, frame: &Frame, on_stall: &mut dyn FnMut()) -> io::Result<()> {
        let bytes = frame.to_bytes();
        let mut conn = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut sent = 0;
        while sent < bytes.len() {
            match conn.write(&bytes[sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    on_stall()
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Splits a connection into a frame reader and a shareable frame writer.
pub fn split(conn: Conn) -> io::Result<(FrameReader, FrameWriter)> {
    let write = conn.try_clone()?;
    Ok((FrameReader::new(conn), FrameWriter::new(write)))
}
