//! Sockets made inside the runner's namespace, on the egress process's
//! request, after the hand-over.
//!
//! A socket belongs to the network namespace it was created in, whoever
//! uses it later. The egress process, outside, needs two kinds from
//! inside while the VM runs: an unconnected TCP socket to reach a guest
//! server that libkrun bound there (a published port), and a listener on
//! a fake address the DNS server just gave a name (transparent TCP). A
//! thread of the runner makes them and sends them back over the pair.
//!
//! Requests and replies, on the pair the listeners came over:
//!
//! ```text
//! request:  b'C'                              an unconnected TCP/IPv4 socket
//!           b'L' addr(4, network order) port(2, big endian)   a listener there
//! reply:    b'K' with the descriptor (SCM_RIGHTS)
//!           b'E' errno(4, big endian)
//! ```

use std::io::{self, IoSlice, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

const CONNECT: u8 = b'C';
const LISTEN: u8 = b'L';
const OK: u8 = b'K';
const FAILED: u8 = b'E';

/// In the runner: answers requests on `channel` until it closes. Runs on
/// a thread of its own.
pub fn serve(mut channel: UnixStream) {
    let mut kind = [0u8; 1];
    while channel.read_exact(&mut kind).is_ok() {
        let made = match kind[0] {
            CONNECT => stream_socket(),
            LISTEN => {
                let mut at = [0u8; 6];
                if channel.read_exact(&mut at).is_err() {
                    return;
                }
                let addr = Ipv4Addr::new(at[0], at[1], at[2], at[3]);
                let port = u16::from_be_bytes([at[4], at[5]]);
                TcpListener::bind(SocketAddrV4::new(addr, port)).map(OwnedFd::from)
            }
            _ => return,
        };
        let sent = match made {
            Ok(fd) => send_fd(&channel, &fd),
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                let mut reply = vec![FAILED];
                reply.extend_from_slice(&errno.to_be_bytes());
                channel.write_all(&reply)
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

fn stream_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes plain values; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket and is owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn send_fd(channel: &UnixStream, fd: &OwnedFd) -> io::Result<()> {
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        channel.as_raw_fd(),
        &[IoSlice::new(&[OK])],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// In the egress process: asks the runner for sockets, one request at a
/// time. Blocking: call it from a blocking task.
#[derive(Debug)]
pub struct Factory {
    channel: Mutex<UnixStream>,
}

impl Factory {
    /// A client on the pair (after the hand-over).
    pub fn new(channel: UnixStream) -> Self {
        Self {
            channel: Mutex::new(channel),
        }
    }

    /// An unconnected TCP/IPv4 socket of the runner's namespace.
    pub fn stream_socket(&self) -> io::Result<std::net::TcpStream> {
        self.request(&[CONNECT]).map(std::net::TcpStream::from)
    }

    /// A listener at `addr` in the runner's namespace.
    pub fn listener(&self, addr: SocketAddrV4) -> io::Result<TcpListener> {
        let mut request = vec![LISTEN];
        request.extend_from_slice(&addr.ip().octets());
        request.extend_from_slice(&addr.port().to_be_bytes());
        self.request(&request).map(TcpListener::from)
    }

    fn request(&self, request: &[u8]) -> io::Result<OwnedFd> {
        let mut channel = self.channel.lock().expect("factory lock");
        channel.write_all(request)?;
        let (kind, mut fds, _) = super::handover::receive_tag(&channel)?;
        let fd = fds.pop().filter(|_| fds.is_empty());
        match (kind, fd) {
            (OK, Some(fd)) => Ok(fd),
            (FAILED, None) => {
                let mut errno = [0u8; 4];
                channel.read_exact(&mut errno)?;
                Err(io::Error::from_raw_os_error(i32::from_be_bytes(errno)))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the runner's socket factory answered out of protocol",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_and_listeners_come_back_and_errors_say_why() {
        let (runner, egress) = UnixStream::pair().unwrap();
        let thread = std::thread::spawn(move || serve(runner));
        let factory = Factory::new(egress);
        let listener = factory
            .listener(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let socket = factory.stream_socket().unwrap();
        let socket = socket2_connect(socket, addr);
        assert!(socket.is_ok(), "{socket:?}");
        // A second listener on the same port: the bind's own error.
        let err = factory
            .listener(SocketAddrV4::new(Ipv4Addr::LOCALHOST, addr.port()))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        drop(factory);
        thread.join().unwrap();
    }

    /// Connects an unconnected socket (tokio does it the same way).
    fn socket2_connect(
        socket: std::net::TcpStream,
        addr: std::net::SocketAddr,
    ) -> io::Result<tokio::net::TcpStream> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            socket.set_nonblocking(true)?;
            tokio::net::TcpSocket::from_std_stream(socket)
                .connect(addr)
                .await
        })
    }
}
