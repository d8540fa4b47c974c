//! The host side of the network cases: a one-connection server on the host
//! loopback, and a client for a published port. Every wait is bounded.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one exchange may take once connected.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A TCP server on 127.0.0.1 that takes one connection.
pub struct LoopbackServer {
    listener: TcpListener,
    /// Its port.
    pub port: u16,
}

impl LoopbackServer {
    /// Listens on an ephemeral port of the host loopback.
    pub fn bind() -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        Ok(Self { listener, port })
    }

    /// On a thread: waits (at most `within`) for one connection, reads one
    /// line from it, answers `reply` and a newline, and returns the line.
    pub fn serve_once(
        self,
        reply: &'static str,
        within: Duration,
    ) -> JoinHandle<Result<String, String>> {
        std::thread::spawn(move || {
            let deadline = Instant::now() + within;
            let mut stream = loop {
                match self.listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err(format!("no connection within {within:?}"));
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => return Err(format!("accept: {e}")),
                }
            };
            let io = |e: io::Error| e.to_string();
            stream.set_nonblocking(false).map_err(io)?;
            stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).map_err(io)?;
            stream
                .write_all(format!("{reply}\n").as_bytes())
                .map_err(io)?;
            Ok(line)
        })
    }

    /// Whether a connection is waiting to be accepted.
    pub fn has_pending_connection(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

/// A port that nothing on the host listens on right now.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Connects to `127.0.0.1:port`, retrying while nothing listens there (a
/// published port is bound only once the guest server listens) for at
/// most `within`; then sends `line`, closes its sending side and returns
/// everything the server sent until it closed.
pub fn exchange_when_listening(port: u16, line: &str, within: Duration) -> Result<String, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + within;
    let mut stream = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(stream) => break stream,
            Err(e) if Instant::now() > deadline => {
                return Err(format!("nothing answered on {addr} within {within:?}: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let io = |e: io::Error| e.to_string();
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(io)?;
    stream.shutdown(Shutdown::Write).map_err(io)?;
    let mut got = String::new();
    stream.read_to_string(&mut got).map_err(io)?;
    Ok(got)
}
