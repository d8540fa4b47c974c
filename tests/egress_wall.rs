//! The egress wall without a VM: this test process walls itself in as the
//! runner does (`egress::service::wall_in`: the egress process forked,
//! the namespace entered, the listeners handed over) and then tries, as a
//! plain process inside, every way out a guest's TSI sockets could take.
//!
//! `unshare(CLONE_NEWUSER)` needs a single-threaded caller, so this test
//! has its own `main` (no harness threads). Run as root, it runs the
//! scenario twice: as root (a network namespace alone) and, re-executed
//! as uid 65534, as a user who needs a user namespace with it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use krunbox::egress::netns::{DNS_PORT, GATEWAY, PROXY_PORT};
use krunbox::egress::{EgressSetup, Via};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};

const AS_NOBODY: &str = "KRUNBOX_EGRESS_WALL_DIR";
/// Set: the scenario drops from root to uid 65534 itself, as a runner
/// with `--runner-user` does (which leaves it not dumpable).
const DROP_IN_PROCESS: &str = "KRUNBOX_EGRESS_WALL_DROP";

fn main() {
    if let Some(dir) = std::env::var_os(AS_NOBODY) {
        if std::env::var_os(DROP_IN_PROCESS).is_some() {
            let nobody = nix::unistd::Uid::from_raw(65534);
            let nogroup = nix::unistd::Gid::from_raw(65534);
            nix::unistd::setgroups(&[]).unwrap();
            nix::unistd::setresgid(nogroup, nogroup, nogroup).unwrap();
            nix::unistd::setresuid(nobody, nobody, nobody).unwrap();
        }
        scenario(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    scenario_in_child(dir.path(), None, false);
    if nix::unistd::geteuid().is_root() {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for (name, in_process) in [("nobody", false), ("dropped", true)] {
            let unprivileged = dir.path().join(name);
            std::fs::create_dir(&unprivileged).unwrap();
            let open = std::fs::Permissions::from_mode(0o777);
            std::fs::set_permissions(&unprivileged, open).unwrap();
            scenario_in_child(&unprivileged, Some(65534), in_process);
        }
    }
    println!("egress wall: every way out checked");
}

/// Runs the scenario in a fresh process (a walled-in process cannot be
/// let out again), as `uid` if given: from its start, or `in_process`,
/// dropping to it first thing.
fn scenario_in_child(dir: &Path, uid: Option<u32>, in_process: bool) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.env(AS_NOBODY, dir);
    match (uid, in_process) {
        (Some(_), true) => _ = command.env(DROP_IN_PROCESS, "1"),
        (Some(uid), false) => _ = command.uid(uid).gid(uid),
        (None, _) => {}
    }
    let status = command.status().expect("run the scenario");
    assert!(
        status.success(),
        "the scenario as uid {uid:?} failed: {status}"
    );
}

fn scenario(dir: &Path) {
    // The "internet": a server on the host's loopback, made before the
    // wall goes up (so it stays in the host's namespace).
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = upstream.local_addr().unwrap().port();
    let events = dir.join("egress.log");
    // A published port: a host client's socket, made outside now and
    // connected once the wall is up.
    let published = TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host_client = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    let setup = EgressSetup {
        allow: vec![
            format!("upstream.test:{port}"),
            format!("localhost:{port}"),
            format!("127.0.0.1/32:{port}"),
        ],
        hosts: vec![("upstream.test".into(), "127.0.0.1".parse().unwrap())],
        logs: vec![events.clone()],
        published: vec![published],
    };
    let factory = krunbox::egress::service::wall_in(&setup).expect("wall in");
    // As the runner does, once walled in.
    std::thread::spawn(move || krunbox::egress::factory::serve(factory));
    std::thread::spawn(move || {
        for conn in upstream.incoming() {
            let mut conn = conn.unwrap();
            let mut buf = [0u8; 5];
            // A client that says nothing (a bare tunnel) is let go.
            if conn.read_exact(&mut buf).is_ok() {
                conn.write_all(b"hello from upstream").unwrap();
            }
        }
    });

    // Raw addresses: nothing routes out of the namespace.
    for target in ["192.0.2.1:80", "8.8.8.8:53", "[2001:db8::1]:443"] {
        let err = TcpStream::connect_timeout(&target.parse().unwrap(), Duration::from_secs(5))
            .expect_err(target);
        assert_eq!(err.kind(), ErrorKind::NetworkUnreachable, "{target}: {err}");
    }
    // The host's loopback is not this loopback: the upstream server on
    // 127.0.0.1 is not reached (nothing listens here), even though a
    // rule names its address: the rule opens it through the proxy only.
    let err = TcpStream::connect(("127.0.0.1", port)).expect_err("host loopback");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    // Its own DNS server out there: unreachable.
    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    let err = udp.send_to(b"x", "9.9.9.9:53").expect_err("foreign DNS");
    assert_eq!(err.kind(), ErrorKind::NetworkUnreachable, "{err}");

    // The egress DNS: allowed names get an address of 198.18/15, others
    // NXDOMAIN.
    let dns = SocketAddr::from((GATEWAY, DNS_PORT));
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (rcode, answer) = ask(&udp, dns, "upstream.test");
    assert_eq!((rcode, answer), (0, Some(Ipv4Addr::new(198, 18, 1, 0))));
    let (rcode, answer) = ask(&udp, dns, "example.com");
    assert_eq!((rcode, answer), (3, None), "NXDOMAIN");

    // The proxy: an allowed tunnel reaches upstream, a denied one is
    // refused at once.
    let reply = through_proxy(
        &format!("CONNECT upstream.test:{port} HTTP/1.1\r\n\r\n"),
        true,
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("hello from upstream"), "{reply}");
    // A name the host's resolver answers (/etc/hosts), under the egress
    // process's Landlock fence: resolved (to loopback, which the address
    // rule opens only for 127.0.0.1: ::1 may be denied), never
    // unresolved.
    let mut conn = TcpStream::connect((GATEWAY, PROXY_PORT)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!("CONNECT localhost:{port} HTTP/1.1\r\n\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    let mut reply = [0u8; 512];
    let n = conn.read(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(
        reply.starts_with("HTTP/1.1 200") || reply.contains("loopback"),
        "{reply}"
    );
    drop(conn);
    let reply = through_proxy("CONNECT example.com:443 HTTP/1.1\r\n\r\n", false);
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    let reply = through_proxy("CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n", false);
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");

    // Transparent TCP: the name's fake address, at its allowed port,
    // reaches upstream without the proxy; another port of it is refused.
    let fake = SocketAddr::from((Ipv4Addr::new(198, 18, 1, 0), port));
    let mut direct = TcpStream::connect(fake).expect("the fake address listens");
    direct
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    direct.write_all(b"hello").unwrap();
    let mut body = [0u8; 19];
    direct.read_exact(&mut body).unwrap();
    assert_eq!(&body, b"hello from upstream");
    drop(direct);
    let err = TcpStream::connect((Ipv4Addr::new(198, 18, 1, 0), 1)).expect_err("port 1");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");

    // A published port: the host's client reaches a server in here.
    let inside = TcpListener::bind(("0.0.0.0", published)).unwrap();
    connect(
        host_client.as_raw_fd(),
        &SockaddrIn::new(127, 0, 0, 1, published),
    )
    .unwrap();
    let mut host_client = TcpStream::from(host_client);
    host_client.write_all(b"ping").unwrap();
    let (mut served, _) = inside.accept().unwrap();
    let mut ping = [0u8; 4];
    served.read_exact(&mut ping).unwrap();
    served.write_all(b"pong").unwrap();
    host_client.read_exact(&mut ping).unwrap();
    assert_eq!(&ping, b"pong");

    // Every attempt recorded (a tunnel's when it closes, so the order
    // of the last three may vary).
    let recorded = wait_for_events(&events, 7);
    let mut seen: Vec<_> = recorded
        .iter()
        .filter(|e| e.name.as_deref() != Some("localhost"))
        .map(|e| {
            (
                e.via.to_string(),
                e.name.clone().unwrap_or_default(),
                e.allowed,
            )
        })
        .collect();
    seen.sort();
    let expected = [
        ("connect", "", false),
        ("connect", "example.com", false),
        ("connect", "upstream.test", true),
        ("dns", "example.com", false),
        ("dns", "upstream.test", true),
        ("tcp", "upstream.test", true),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(via, name, allowed)| (via.to_string(), name.to_string(), *allowed))
        .collect();
    assert_eq!(seen, expected, "{recorded:#?}");
    let tunnel = recorded
        .iter()
        .find(|e| e.allowed && e.via == Via::Connect)
        .unwrap();
    assert_eq!((tunnel.bytes_out, tunnel.bytes_in), (5, 19), "{tunnel:?}");
    assert!(recorded
        .iter()
        .any(|e| e.addr == Some("169.254.169.254".parse().unwrap()) && !e.allowed));
}

/// One A question; the reply's rcode and first address.
fn ask(udp: &UdpSocket, server: SocketAddr, name: &str) -> (u8, Option<Ipv4Addr>) {
    let mut query = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    udp.send_to(&query, server).unwrap();
    let mut reply = [0u8; 512];
    let len = udp.recv(&mut reply).unwrap();
    let reply = &reply[..len];
    assert_eq!(reply[..2], [0xab, 0xcd]);
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    let addr = (answers > 0).then(|| {
        let a = &reply[len - 4..];
        Ipv4Addr::new(a[0], a[1], a[2], a[3])
    });
    (reply[3] & 0x0f, addr)
}

/// Sends `head` to the proxy; with `hello`, then five bytes through the
/// tunnel. Returns everything read until the proxy or upstream closes.
fn through_proxy(head: &str, hello: bool) -> String {
    let mut conn = TcpStream::connect((GATEWAY, PROXY_PORT)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(head.as_bytes()).unwrap();
    let mut reply = Vec::new();
    if hello {
        let mut head = [0u8; 256];
        let n = conn.read(&mut head).unwrap();
        reply.extend_from_slice(&head[..n]);
        conn.write_all(b"hello").unwrap();
        let mut body = [0u8; 19];
        conn.read_exact(&mut body).unwrap();
        reply.extend_from_slice(&body);
    } else {
        let _ = conn.read_to_end(&mut reply);
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// The log once it holds `count` events (the last is written when its
/// connection closes).
fn wait_for_events(path: &Path, count: usize) -> Vec<krunbox::egress::EgressEvent> {
    for _ in 0..200 {
        let events = krunbox::egress::events::read_log(path).unwrap();
        if events.len() >= count {
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "the egress log holds {:?}",
        krunbox::egress::events::read_log(path).unwrap()
    );
}
