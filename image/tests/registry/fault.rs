//! A registry that misbehaves on purpose: a std `TcpListener` thread on
//! loopback answering `/v2/` manifest and blob requests from a fixed
//! table, which may hold content that does not match its digest, or a
//! blob that stalls halfway. One request a connection (`Connection:
//! close`); it stops when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What a fault server answers.
#[derive(Clone, Default)]
pub struct Content {
    /// Manifests by tag or digest: media type and body.
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    /// Blobs by digest.
    pub blobs: HashMap<String, Vec<u8>>,
    /// Blobs (by digest) of which only the first half is sent, then
    /// nothing for a while.
    pub stalled: Vec<String>,
}

/// How long a stalled blob hangs before the connection is closed.
const STALL: Duration = Duration::from_secs(4);

/// A running fault server.
pub struct FaultServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Serves `content` on a free loopback port.
    pub fn start(content: Content) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let content = Arc::new(content);
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let content = content.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &content);
                    });
                }
            })
        };
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up.
        let _ = TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request.
fn serve(stream: TcpStream, content: &Content) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head = method == "HEAD";
    let mut out = stream;
    if path == "/v2/" {
        return respond(&mut out, "200 OK", "application/json", b"{}", head);
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found(&mut out, "NAME_UNKNOWN", head);
    };
    if let Some((_, reference)) = rest.rsplit_once("/manifests/") {
        return match content.manifests.get(reference) {
            Some((media_type, body)) => respond(&mut out, "200 OK", media_type, body, head),
            None => not_found(&mut out, "MANIFEST_UNKNOWN", head),
        };
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        let Some(body) = content.blobs.get(digest) else {
            return not_found(&mut out, "BLOB_UNKNOWN", head);
        };
        if content.stalled.iter().any(|d| d == digest) {
            write_head(&mut out, "200 OK", "application/octet-stream", body.len())?;
            out.write_all(&body[..body.len() / 2])?;
            out.flush()?;
            std::thread::sleep(STALL);
            return Ok(());
        }
        return respond(&mut out, "200 OK", "application/octet-stream", body, head);
    }
    not_found(&mut out, "NAME_UNKNOWN", head)
}

fn write_head(
    out: &mut TcpStream,
    status: &str,
    content_type: &str,
    len: usize,
) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         Docker-Distribution-Api-Version: registry/2.0\r\nConnection: close\r\n\r\n"
    )
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    write_head(out, status, content_type, body.len())?;
    if !head {
        out.write_all(body)?;
    }
    out.flush()
}

fn not_found(out: &mut TcpStream, code: &str, head: bool) -> std::io::Result<()> {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"not here"}}]}}"#);
    respond(
        out,
        "404 Not Found",
        "application/json",
        body.as_bytes(),
        head,
    )
}
