//! Where a connection says it goes, read from its first bytes: an HTTP
//! proxy request (`CONNECT host:port`, or `GET http://host/…` with its
//! `Host` header), or a TLS ClientHello's server name (SNI).
//!
//! Both parsers read a bounded prefix ([`MAX_HEAD`]) and check every
//! length against what is there before reading past it; they allocate only
//! the name they return. `Ok(None)` means "not enough bytes yet".

use std::str;

/// The most bytes read before deciding: an HTTP request head or a TLS
/// ClientHello longer than this is refused.
pub const MAX_HEAD: usize = 16 * 1024;

/// What the head of an HTTP proxy request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    /// `CONNECT` (a tunnel) rather than a plain request to forward.
    pub tunnel: bool,
    /// The host name or address, lower case, without brackets.
    pub host: String,
    /// The port (the scheme's default when the request names none).
    pub port: u16,
    /// The head's length in bytes, through the blank line.
    pub head_len: usize,
}

/// Why a connection's head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    /// Longer than [`MAX_HEAD`] without its end.
    #[error("the request head is longer than {MAX_HEAD} bytes")]
    TooLong,
    /// Not an HTTP/1 request, or one without a usable target.
    #[error("not an HTTP proxy request: {0}")]
    BadRequest(&'static str),
    /// `Host` names another host than the request's target.
    #[error("the Host header ({header}) differs from the request's target ({target})")]
    HostMismatch {
        /// What `Host` said.
        header: String,
        /// The target's host.
        target: String,
    },
    /// A TLS record that is not a well-formed ClientHello.
    #[error("not a TLS ClientHello: {0}")]
    BadHello(&'static str),
}

/// Parses the head of an HTTP/1 request sent to a proxy.
pub fn proxy_request(buf: &[u8]) -> Result<Option<ProxyRequest>, SniffError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let Some(end) = find(window, b"\r\n\r\n") else {
        return if buf.len() >= MAX_HEAD {
            Err(SniffError::TooLong)
        } else {
            Ok(None)
        };
    };
    let head = str::from_utf8(&window[..end]).map_err(|_| SniffError::BadRequest("not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or_default();
    let mut parts = request.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SniffError::BadRequest(
            "the request line is not METHOD TARGET VERSION",
        ));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(SniffError::BadRequest("not HTTP/1"));
    }
    let tunnel = method == "CONNECT";
    let (host, port) = if tunnel {
        authority(target, None).ok_or(SniffError::BadRequest("CONNECT needs host:port"))?
    } else {
        let rest = target
            .strip_prefix("http://")
            .ok_or(SniffError::BadRequest(
                "a proxied request needs an http:// target",
            ))?;
        let auth = rest.split(['/', '?', '#']).next().unwrap_or_default();
        authority(auth, Some(80)).ok_or(SniffError::BadRequest("the target has no host"))?
    };
    let header = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("host")
            .then(|| value.trim())
    });
    if let Some(header) = header {
        let named = authority(header, Some(port)).map(|(h, _)| h);
        if named.as_deref() != Some(host.as_str()) {
            return Err(SniffError::HostMismatch {
                header: header.to_owned(),
                target: host,
            });
        }
    }
    Ok(Some(ProxyRequest {
        tunnel,
        host,
        port,
        head_len: end + 4,
    }))
}

/// `host[:port]` or `[v6][:port]`: the host in lower case and the port
/// (`default` when absent; required when `default` is `None`).
fn authority(text: &str, default: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok().filter(|p| *p != 0)?,
        None => default?,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The server name a TLS ClientHello asks for, `None` if it names none
/// (or more bytes are needed: see [`Hello`]).
pub fn tls_server_name(buf: &[u8]) -> Result<Hello, SniffError> {
    let mut r = Reader(buf);
    let Some(header) = r.take(5) else {
        return Ok(Hello::Incomplete);
    };
    if header[0] != 0x16 {
        return Err(SniffError::BadHello("not a handshake record"));
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if len > MAX_HEAD {
        return Err(SniffError::BadHello("the record is too long"));
    }
    let Some(record) = r.take(len) else {
        return Ok(Hello::Incomplete);
    };
    let mut r = Reader(record);
    let bad = SniffError::BadHello("a length runs past the record");
    let kind = r.u8().ok_or(bad.clone())?;
    if kind != 0x01 {
        return Err(SniffError::BadHello("not a ClientHello"));
    }
    let body_len = r.u24().ok_or(bad.clone())?;
    let mut r = Reader(r.take(body_len).ok_or(SniffError::BadHello(
        "the ClientHello spans several records",
    ))?);
    r.take(2 + 32).ok_or(bad.clone())?; // version, random
    let session = usize::from(r.u8().ok_or(bad.clone())?);
    r.take(session).ok_or(bad.clone())?;
    let suites = r.u16().ok_or(bad.clone())?;
    r.take(suites).ok_or(bad.clone())?;
    let compression = usize::from(r.u8().ok_or(bad.clone())?);
    r.take(compression).ok_or(bad.clone())?;
    if r.0.is_empty() {
        return Ok(Hello::NoName);
    }
    let ext_len = r.u16().ok_or(bad.clone())?;
    let mut exts = Reader(r.take(ext_len).ok_or(bad.clone())?);
    while !exts.0.is_empty() {
        let kind = exts.u16().ok_or(bad.clone())?;
        let len = exts.u16().ok_or(bad.clone())?;
        let data = exts.take(len).ok_or(bad.clone())?;
        if kind != 0 {
            continue;
        }
        let mut list = Reader(data);
        let list_len = list.u16().ok_or(bad.clone())?;
        let mut names = Reader(list.take(list_len).ok_or(bad.clone())?);
        while !names.0.is_empty() {
            let name_type = names.u8().ok_or(bad.clone())?;
            let len = names.u16().ok_or(bad.clone())?;
            let name = names.take(len).ok_or(bad.clone())?;
            if name_type == 0 {
                let name = str::from_utf8(name)
                    .map_err(|_| SniffError::BadHello("the server name is not text"))?;
                return Ok(Hello::Name(name.to_ascii_lowercase()));
            }
        }
    }
    Ok(Hello::NoName)
}

/// What a ClientHello says of its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// More bytes are needed.
    Incomplete,
    /// A ClientHello without a server name.
    NoName,
    /// Its server name, lower case.
    Name(String),
}

/// A cursor over bytes whose reads fail, rather than panic, past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn proxy_requests_name_their_target() {
        let connect = b"CONNECT PyPI.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\nrest";
        let req = proxy_request(connect).unwrap().unwrap();
        assert_eq!(
            (req.tunnel, req.host.as_str(), req.port),
            (true, "pypi.org", 443)
        );
        assert_eq!(&connect[req.head_len..], b"rest");
        let get = b"GET http://[2001:db8::1]:8080/x?y HTTP/1.1\r\nhost: [2001:db8::1]:8080\r\n\r\n";
        let req = proxy_request(get).unwrap().unwrap();
        assert_eq!(
            (req.tunnel, req.host.as_str(), req.port),
            (false, "2001:db8::1", 8080)
        );
        let plain = b"GET http://example.com/ HTTP/1.0\r\n\r\n";
        assert_eq!(proxy_request(plain).unwrap().unwrap().port, 80);
        assert_eq!(proxy_request(b"CONNECT a:1 HTTP/1.1\r\n").unwrap(), None);
    }

    #[test]
    fn lying_or_malformed_heads_are_refused() {
        let lying = b"GET http://allowed.example/ HTTP/1.1\r\nHost: denied.example\r\n\r\n";
        assert!(matches!(
            proxy_request(lying),
            Err(SniffError::HostMismatch { .. })
        ));
        for bad in [
            &b"CONNECT example.com HTTP/1.1\r\n\r\n"[..],
            b"GET /relative HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT a:443 HTTP/2\r\n\r\n",
            b"CONNECT a:0 HTTP/1.1\r\n\r\n",
            b"GET  http://a/ HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                proxy_request(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let endless = vec![b'a'; MAX_HEAD + 1];
        assert_eq!(proxy_request(&endless), Err(SniffError::TooLong));
    }

    /// A ClientHello with `name` in its SNI extension, as clients send it.
    pub(crate) fn client_hello(name: &str) -> Vec<u8> {
        let mut sni = Vec::new();
        let entry_len = 3 + name.len();
        sni.extend((entry_len as u16).to_be_bytes());
        sni.push(0);
        sni.extend((name.len() as u16).to_be_bytes());
        sni.extend(name.as_bytes());
        let mut exts = vec![0xff, 0x01, 0, 1, 0]; // renegotiation_info
        exts.extend([0, 0]);
        exts.extend((sni.len() as u16).to_be_bytes());
        exts.extend(&sni);
        let mut body = vec![3, 3];
        body.extend([7; 32]);
        body.extend([0]); // no session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // null compression
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(&exts);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(&body);
        let mut record = vec![0x16, 3, 1];
        record.extend((hs.len() as u16).to_be_bytes());
        record.extend(&hs);
        record
    }

    #[test]
    fn a_client_hello_names_its_server() {
        let hello = client_hello("Files.PythonHosted.org");
        assert_eq!(
            tls_server_name(&hello),
            Ok(Hello::Name("files.pythonhosted.org".into()))
        );
        for cut in [0, 4, 5, 40, hello.len() - 1] {
            assert_eq!(
                tls_server_name(&hello[..cut]),
                Ok(Hello::Incomplete),
                "{cut}"
            );
        }
        // Lengths that run past what is there are errors, not panics.
        let mut lying = hello.clone();
        lying[6] = 0xff; // the ClientHello's length, past its record
        assert!(tls_server_name(&lying).is_err());
        assert!(tls_server_name(b"GET / HTTP/1.1\r\n\r\n").is_err());
    }
}
