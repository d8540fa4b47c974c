//! The host side of the egress mode: an HTTP proxy that lets a guest out
//! only where its [`Policy`] allows, and records each attempt.
//!
//! One connection, one decision:
//!
//! 1. the request head ([`sniff::proxy_request`], at most
//!    [`sniff::MAX_HEAD`] bytes, within [`HEAD_TIMEOUT`]) names a host and
//!    port; a `Host` header naming another host is refused;
//! 2. a name no rule allows is denied without being resolved (no DNS
//!    query leaves for it); an allowed name is resolved, and each address
//!    it resolves to must pass too (an allowed name pointing at the
//!    host's loopback is denied);
//! 3. denied: `403 Forbidden` with the reason, at once; allowed: the
//!    proxy connects (within [`CONNECT_TIMEOUT`]) and relays;
//! 4. a `CONNECT` tunnel whose first bytes are a TLS ClientHello naming
//!    another server than the tunnel's is cut (the name must match);
//! 5. a plain HTTP request is forwarded alone, with `Connection: close`:
//!    the proxy stops reading the guest's side after its body, so a second
//!    request on the same connection cannot reach another virtual host of
//!    the same server.
//!
//! Each attempt becomes an [`EgressEvent`], sent when the connection ends
//! (with its byte counts) or when it is denied.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::events::{EgressEvent, Via};
use super::policy::{Decision, Denial, Destination, Policy};
use super::sniff::{self, Hello, ProxyRequest};

/// How long a guest has to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to an allowed destination may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the proxy resolves names.
#[derive(Debug, Clone, Default)]
pub enum Resolver {
    /// The host's resolver.
    #[default]
    System,
    /// Only these names, to these addresses (tests).
    Static(HashMap<String, Vec<IpAddr>>),
    /// These names to these addresses (as `docker --add-host` pins them),
    /// every other name by the host's resolver.
    Pinned(HashMap<String, Vec<IpAddr>>),
}

impl Resolver {
    async fn resolve(&self, name: &str, port: u16) -> io::Result<Vec<IpAddr>> {
        match self {
            Resolver::System => Ok(tokio::net::lookup_host((name, port))
                .await?
                .map(|a| a.ip())
                .collect()),
            Resolver::Static(names) => names.get(name).cloned().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{name} is not known"))
            }),
            Resolver::Pinned(names) => match names.get(name) {
                Some(addrs) => Ok(addrs.clone()),
                None => Box::pin(Resolver::System.resolve(name, port)).await,
            },
        }
    }
}

/// An egress proxy: a policy, a resolver, and where events go.
#[derive(Debug, Clone)]
pub struct EgressProxy {
    policy: Arc<Policy>,
    resolver: Arc<Resolver>,
    events: mpsc::UnboundedSender<EgressEvent>,
}

impl EgressProxy {
    /// A proxy applying `policy`; its events arrive on the receiver.
    pub fn new(policy: Policy, resolver: Resolver) -> (Self, mpsc::UnboundedReceiver<EgressEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let proxy = Self {
            policy: Arc::new(policy),
            resolver: Arc::new(resolver),
            events,
        };
        (proxy, receiver)
    }

    /// Where this proxy sends its events (for other parts of the egress
    /// process to send theirs to the same place).
    pub fn events(&self) -> mpsc::UnboundedSender<EgressEvent> {
        self.events.clone()
    }

    /// Serves `listener` until it fails, one task per connection.
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        loop {
            let (conn, _) = listener.accept().await?;
            let proxy = self.clone();
            tokio::spawn(async move { proxy.handle(conn).await });
        }
    }

    /// One guest connection.
    async fn handle(&self, mut guest: TcpStream) {
        let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut guest)).await {
            Ok(Ok(head)) => head,
            Ok(Err(why)) => {
                let _ = self.events.send(EgressEvent::refused(Via::Http, &why));
                return refuse(&mut guest, Via::Http, 400, &why).await;
            }
            Err(_) => {
                let why = "no request head in time";
                let _ = self.events.send(EgressEvent::refused(Via::Http, why));
                return refuse(&mut guest, Via::Http, 408, why).await;
            }
        };
        let (request, buffered) = head;
        let via = if request.tunnel {
            Via::Connect
        } else {
            Via::Http
        };
        let (dest, decision) = self.decide(&request).await;
        self.carry(guest, via, &request, &buffered, dest, decision)
            .await;
    }

    /// A guest connection to `name`'s fake address at `port` (transparent
    /// TCP): decided and relayed as a `CONNECT name:port` would be, with
    /// no request head and no answer to it; a denial closes it.
    pub(crate) async fn transparent(&self, guest: TcpStream, name: String, port: u16) {
        let request = ProxyRequest {
            tunnel: true,
            host: name,
            port,
            head_len: 0,
        };
        let (dest, decision) = self.decide(&request).await;
        self.carry(guest, Via::Tcp, &request, &[], dest, decision)
            .await;
    }

    /// Applies `decision` to `guest`'s connection: refused, or connected
    /// upstream and relayed; recorded either way.
    async fn carry(
        &self,
        mut guest: TcpStream,
        via: Via,
        request: &ProxyRequest,
        buffered: &[u8],
        dest: Destination,
        decision: Decision,
    ) {
        let mut event = EgressEvent::decided(via, &dest, &decision);
        let Decision::Allowed(_) = decision else {
            let _ = self.events.send(event.clone());
            return refuse(
                &mut guest,
                via,
                403,
                &format!("krunbox egress: {}", event.reason),
            )
            .await;
        };
        let Some(addr) = dest.addr else {
            return refuse(&mut guest, via, 502, "no address").await;
        };
        let upstream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect(SocketAddr::new(addr, dest.port)),
        )
        .await;
        let mut upstream = match upstream {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                event.reason = format!("{}; connecting failed: {e}", event.reason);
                let _ = self.events.send(event);
                let why = format!("cannot connect: {e}");
                return refuse(&mut guest, via, 502, &why).await;
            }
            Err(_) => {
                event.reason = format!("{}; connecting timed out", event.reason);
                let _ = self.events.send(event);
                return refuse(&mut guest, via, 504, "connecting timed out").await;
            }
        };
        let relayed = if request.tunnel {
            let answer = via == Via::Connect;
            tunnel(&mut guest, &mut upstream, request, buffered, answer).await
        } else {
            forward_one(&mut guest, &mut upstream, request, buffered).await
        };
        match relayed {
            Ok((out, inn)) => (event.bytes_out, event.bytes_in) = (out, inn),
            Err(why) => event.reason = format!("{}; cut: {why}", event.reason),
        }
        let _ = self.events.send(event);
    }

    /// The decision for `request`: by name without resolving if no rule
    /// allows the name; else by every address it resolves to.
    async fn decide(&self, request: &ProxyRequest) -> (Destination, Decision) {
        let port = request.port;
        if let Ok(addr) = request.host.parse::<IpAddr>() {
            let dest = Destination {
                name: None,
                addr: Some(addr),
                port,
            };
            let decision = self.policy.decide(&dest);
            return (dest, decision);
        }
        let named = Destination {
            name: Some(request.host.clone()),
            addr: None,
            port,
        };
        if let Decision::Denied(why) = self.policy.decide(&named) {
            return (named, Decision::Denied(why));
        }
        let addrs = match self.resolver.resolve(&request.host, port).await {
            Ok(addrs) if !addrs.is_empty() => addrs,
            _ => return (named, Decision::Denied(Denial::Unresolved)),
        };
        let at = |addr| Destination {
            addr: Some(addr),
            ..named.clone()
        };
        // Every address must pass: a name that also points at the host's
        // loopback is not half allowed. The first is the one dialled.
        for &addr in &addrs {
            let dest = at(addr);
            if let Decision::Denied(why) = self.policy.decide(&dest) {
                return (dest, Decision::Denied(why));
            }
        }
        let dest = at(addrs[0]);
        let decision = self.policy.decide(&dest);
        (dest, decision)
    }
}

/// Reads until a whole request head is in; the head and every byte read.
async fn read_head(guest: &mut TcpStream) -> Result<(ProxyRequest, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(request) = sniff::proxy_request(&buf).map_err(|e| e.to_string())? {
            return Ok((request, buf));
        }
        let n = guest.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before its request head ended".into());
        }
        // proxy_request refuses a head past MAX_HEAD, so this stays small.
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `CONNECT`: answers 200 and relays, the server's side at once (a
/// protocol whose server speaks first waits for nothing), the guest's
/// side after its first bytes are judged: a TLS ClientHello must name the
/// tunnel's host.
async fn tunnel(
    guest: &mut TcpStream,
    upstream: &mut TcpStream,
    request: &ProxyRequest,
    buffered: &[u8],
    answer: bool,
) -> Result<(u64, u64), String> {
    if answer {
        guest
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
    }
    let (mut guest_read, mut guest_write) = guest.split();
    let (mut up_read, mut up_write) = upstream.split();
    let down = async {
        let n = tokio::io::copy(&mut up_read, &mut guest_write).await?;
        guest_write.shutdown().await?;
        Ok::<u64, io::Error>(n)
    };
    let up = async {
        let first = judged_first_bytes(
            &mut guest_read,
            &request.host,
            &buffered[request.head_len..],
        )
        .await?;
        up_write
            .write_all(&first)
            .await
            .map_err(|e| e.to_string())?;
        let n = tokio::io::copy(&mut guest_read, &mut up_write)
            .await
            .map_err(|e| e.to_string())?;
        up_write.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<u64, String>(first.len() as u64 + n)
    };
    // A refused ClientHello cuts the tunnel at once; otherwise both
    // sides run to their ends.
    tokio::pin!(up, down);
    let (mut sent, mut received) = (None, None);
    loop {
        tokio::select! {
            result = &mut up, if sent.is_none() => sent = Some(result?),
            result = &mut down, if received.is_none() => {
                received = Some(result.map_err(|e| e.to_string())?);
            }
        }
        if let (Some(sent), Some(received)) = (sent, received) {
            return Ok((sent, received));
        }
    }
}

/// The guest's first bytes in a tunnel to `host`, after `already`: those
/// of a TLS ClientHello are read whole and its server name must be
/// `host`; anything else passes as it comes.
async fn judged_first_bytes(
    guest: &mut (impl AsyncReadExt + Unpin),
    host: &str,
    already: &[u8],
) -> Result<Vec<u8>, String> {
    let mut first = already.to_vec();
    let mut chunk = [0u8; 4096];
    if first.is_empty() {
        let n = guest.read(&mut chunk).await.map_err(|e| e.to_string())?;
        first.extend_from_slice(&chunk[..n]);
    }
    if first.first() != Some(&0x16) {
        return Ok(first);
    }
    loop {
        match sniff::tls_server_name(&first) {
            Ok(Hello::Incomplete) => {
                let read = tokio::time::timeout(HEAD_TIMEOUT, guest.read(&mut chunk)).await;
                match read {
                    Ok(Ok(n)) if n > 0 => first.extend_from_slice(&chunk[..n]),
                    _ => return Err("the TLS ClientHello did not arrive whole".into()),
                }
            }
            Ok(Hello::Name(name)) if name != host => {
                return Err(format!(
                    "the TLS server name {name} is not the tunnel's host {host}"
                ))
            }
            Ok(_) => return Ok(first),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A plain HTTP request: forwarded alone, origin-form, `Connection: close`.
async fn forward_one(
    guest: &mut TcpStream,
    upstream: &mut TcpStream,
    request: &ProxyRequest,
    buffered: &[u8],
) -> Result<(u64, u64), String> {
    let head = std::str::from_utf8(&buffered[..request.head_len]).map_err(|e| e.to_string())?;
    let (rewritten, body_len) = origin_form(head)?;
    upstream
        .write_all(rewritten.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut body = buffered[request.head_len..].to_vec();
    body.truncate(body_len as usize);
    let mut rest = (body_len as usize).saturating_sub(body.len()) as u64;
    upstream.write_all(&body).await.map_err(|e| e.to_string())?;
    let mut chunk = [0u8; 16 * 1024];
    while rest > 0 {
        let want = chunk.len().min(rest as usize);
        let n = guest
            .read(&mut chunk[..want])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the request body ended early".into());
        }
        upstream
            .write_all(&chunk[..n])
            .await
            .map_err(|e| e.to_string())?;
        rest -= n as u64;
    }
    let inn = tokio::io::copy(upstream, guest)
        .await
        .map_err(|e| e.to_string())?;
    Ok((rewritten.len() as u64 + body_len, inn))
}

/// `head` with an origin-form target, its hop-by-hop headers dropped and
/// `Connection: close`; and the body's length. A chunked body is refused.
fn origin_form(head: &str) -> Result<(String, u64), String> {
    let mut lines = head.trim_end_matches("\r\n").split("\r\n");
    let request = lines.next().unwrap_or_default();
    let mut parts = request.splitn(3, ' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let path = rest.find(['/', '?']).map_or("/", |i| &rest[i..]);
    let mut out = format!("{method} {path} {version}\r\n");
    let mut body_len = 0;
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("a chunked request body through the plain HTTP proxy (use HTTPS)".into());
        }
        if name.eq_ignore_ascii_case("content-length") {
            body_len = line[name.len() + 1..]
                .trim()
                .parse()
                .map_err(|_| "a bad Content-Length".to_owned())?;
        }
        if [
            "connection",
            "proxy-connection",
            "keep-alive",
            "proxy-authorization",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok((out, body_len))
}

/// Answers `status` with `why` as the body, and closes.
async fn refuse(guest: &mut TcpStream, via: Via, status: u16, why: &str) {
    if via == Via::Tcp {
        // Transparent TCP has no one to read an HTTP answer: it closes.
        let _ = guest.shutdown().await;
        return;
    }
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        502 => "Bad Gateway",
        _ => "Gateway Timeout",
    };
    let body = format!("{why}\n");
    let reply = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = guest.write_all(reply.as_bytes()).await;
    let _ = guest.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::sniff::tests::client_hello;

    /// A proxy allowing `name` at `server`'s address and port.
    async fn proxy_to(
        name: &str,
        server: SocketAddr,
    ) -> (SocketAddr, mpsc::UnboundedReceiver<EgressEvent>) {
        let rules = [
            format!("{name}:{}", server.port()),
            format!("{}:{}", server.ip(), server.port()),
        ];
        let policy = Policy::new(rules.iter().map(|r| r.parse().unwrap()));
        let names = HashMap::from([(name.to_owned(), vec![server.ip()])]);
        let (proxy, events) = EgressProxy::new(policy, Resolver::Static(names));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(proxy.serve(listener));
        (addr, events)
    }

    async fn connect_through(proxy: SocketAddr, name: &str, port: u16) -> TcpStream {
        let mut conn = TcpStream::connect(proxy).await.unwrap();
        let head = format!("CONNECT {name}:{port} HTTP/1.1\r\n\r\n");
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut reply = [0u8; 39];
        conn.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"HTTP/1.1 200 Connection Established\r\n\r\n");
        conn
    }

    #[tokio::test]
    async fn a_server_that_speaks_first_is_heard_and_a_fronted_hello_is_cut() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = server.accept().await {
                tokio::spawn(async move {
                    let _ = conn.write_all(b"220 ready\n").await;
                    let mut sink = Vec::new();
                    let _ = conn.read_to_end(&mut sink).await;
                });
            }
        });
        let (proxy, mut events) = proxy_to("mail.test", addr).await;

        // The greeting comes through though the guest has sent nothing.
        let mut conn = connect_through(proxy, "mail.test", addr.port()).await;
        let mut greeting = [0u8; 10];
        tokio::time::timeout(Duration::from_secs(30), conn.read_exact(&mut greeting))
            .await
            .expect("the greeting is relayed without the guest speaking")
            .unwrap();
        assert_eq!(&greeting, b"220 ready\n");
        drop(conn);

        // A ClientHello naming another server: the tunnel is cut.
        let mut conn = connect_through(proxy, "mail.test", addr.port()).await;
        conn.write_all(&client_hello("denied.test")).await.unwrap();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
        // At most the greeting, which the server sent before the hello.
        assert!(rest.is_empty() || rest == b"220 ready\n", "{rest:?}");
        let mut reasons = Vec::new();
        while reasons.len() < 2 {
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv()).await;
            reasons.push(event.unwrap().unwrap().reason);
        }
        assert!(
            reasons.iter().any(|r| r.contains(
                "cut: the TLS server name denied.test is not the tunnel's host mail.test"
            )),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_proxied_request_goes_out_alone_in_origin_form() {
        let head = "GET http://pypi.org/simple/?x=1 HTTP/1.1\r\nHost: pypi.org\r\nProxy-Connection: keep-alive\r\nContent-Length: 3\r\n\r\n";
        let (out, body) = origin_form(head).unwrap();
        assert_eq!(
            out,
            "GET /simple/?x=1 HTTP/1.1\r\nHost: pypi.org\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(body, 3);
        let chunked = "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(origin_form(chunked).is_err());
    }
}
