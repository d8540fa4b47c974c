//! The egress proxy on real sockets, without a VM: a guest's requests
//! come from this test over loopback, the "internet" is servers this
//! test starts on loopback, reached by names a static resolver maps to
//! them. Loopback is a reserved range, so a destination there is allowed
//! only by a rule naming its address, as these policies do.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use krunbox::egress::{EgressEvent, EgressProxy, Policy, Resolver, Rule};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A server that answers every connection with "hello from <name>\n"
/// after reading whatever came first.
async fn server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(format!("hello from {name}\n").as_bytes())
                    .await;
            });
        }
    });
    addr
}

async fn proxy(
    rules: &[String],
    names: &[(&str, IpAddr)],
) -> (SocketAddr, UnboundedReceiver<EgressEvent>) {
    let policy = Policy::new(rules.iter().map(|r| r.parse::<Rule>().unwrap()));
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for (name, addr) in names {
        map.entry((*name).to_owned()).or_default().push(*addr);
    }
    let (proxy, events) = EgressProxy::new(policy, Resolver::Static(map));
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.serve(listener));
    (addr, events)
}

/// Sends `request` to the proxy, then `then`; everything it answers.
async fn ask(proxy: SocketAddr, request: &str, then: &[u8]) -> String {
    let mut conn = TcpStream::connect(proxy).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    conn.write_all(then).await.unwrap();
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn allowed_names_pass_and_everything_else_is_refused_at_once() {
    let allowed = server("allowed").await;
    let other = server("other").await;
    let (proxy, mut events) = proxy(
        &[
            format!("allowed.test:{}", allowed.port()),
            // Loopback is reserved: the address must be named too.
            format!("127.0.0.1:{}", allowed.port()),
            "sneaky.test".to_owned(),
        ],
        &[
            ("allowed.test", LOCALHOST),
            ("sneaky.test", LOCALHOST),
            ("denied.test", LOCALHOST),
        ],
    )
    .await;

    // A tunnel to an allowed name: 200, then the server's bytes.
    let port = allowed.port();
    let out = ask(
        proxy,
        &format!("CONNECT allowed.test:{port} HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n"),
        b"hi",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("hello from allowed\n"),
        "{out:?}"
    );
    // Plain HTTP to it: forwarded, answered.
    let out = ask(
        proxy,
        &format!("GET http://allowed.test:{port}/x HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n"),
        b"",
    )
    .await;
    assert_eq!(out, "hello from allowed\n");

    // A name no rule allows, an allowed name resolving to loopback, a
    // server no rule names by address, a lying Host header.
    let other_port = other.port();
    for (request, want) in [
        (
            format!("CONNECT denied.test:{port} HTTP/1.1\r\n\r\n"),
            "403",
        ),
        (
            format!("CONNECT sneaky.test:{other_port} HTTP/1.1\r\n\r\n"),
            "403",
        ),
        (
            format!("CONNECT 127.0.0.1:{other_port} HTTP/1.1\r\n\r\n"),
            "403",
        ),
        (
            format!("GET http://allowed.test:{port}/ HTTP/1.1\r\nHost: denied.test\r\n\r\n"),
            "400",
        ),
    ] {
        let out = ask(proxy, &request, b"").await;
        assert!(
            out.starts_with(&format!("HTTP/1.1 {want}")) && !out.contains("hello"),
            "{request:?}: {out:?}"
        );
    }

    // The events say what was tried: the denials in order (each is sent
    // before its answer), the tunnels' when they end.
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), events.recv()).await;
        seen.push(next.expect("an event per attempt").expect("the proxy runs"));
    }
    let allowed_events = seen.iter().filter(|e| e.allowed).count();
    assert_eq!(allowed_events, 2, "{seen:#?}");
    let denied: Vec<String> = seen
        .iter()
        .filter(|e| !e.allowed)
        .map(|e| e.reason.clone())
        .collect();
    assert_eq!(
        denied,
        [
            "denied: no rule allows it",
            "denied: it reaches the host's loopback, which no rule names",
            "denied: no rule allows it",
            "refused: the Host header (denied.test) differs from the request's target (allowed.test)",
        ],
        "{seen:#?}"
    );
    assert!(
        seen.iter().filter(|e| e.allowed).all(|e| e.bytes_in > 0),
        "{seen:#?}"
    );
}
