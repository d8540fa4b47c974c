//! The egress mode on a booted VM: what its allow-list lets out, what it
//! keeps in, and the record of both. The "internet" is two HTTP servers
//! on the host's loopback (the lab's): one a rule names, one no rule
//! names; a pinned name points at the first.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use krunbox::client::GuestCommand;
use krunbox::egress::{EgressEvent, Policy, Via};
use krunbox::vm::PublishedPort;
use libtest_mimic::{Failed, Trial};

use crate::cases::{chain, check};
use crate::loopback::{exchange_when_listening, free_port};
use crate::shared_vm::runtime;
use crate::support::agent_vm;
use krunbox_suite::trial;

/// The cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial(
            "egress::allow_list_holds_on_a_booted_vm",
            allow_list_holds_on_a_booted_vm,
        ),
        trial(
            "egress::cli_named_vm_keeps_its_list_and_logs_it",
            cli_named_vm_keeps_its_list_and_logs_it,
        ),
    ]
}

/// The guest port the VM publishes.
const GUEST_PORT: u16 = 8080;

/// An HTTP server on the host's loopback answering every request with
/// `body`; counts its connections.
struct Upstream {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    fn start(body: &'static str) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let reply = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Ok(Self { port, connections })
    }
}

fn allow_list_holds_on_a_booted_vm() -> Result<(), Failed> {
    let allowed = Upstream::start("hello from upstream")?;
    let closed = Upstream::start("this must not be reached")?;
    let (open, shut) = (allowed.port, closed.port);
    let policy = Policy::new([
        format!("upstream.test:{open}").parse().map_err(chain)?,
        format!("127.0.0.1/32:{open}").parse().map_err(chain)?,
    ]);
    let host_port = free_port()?;
    let config = agent_vm()
        .egress(policy)
        .egress_host("upstream.test", Ipv4Addr::LOCALHOST.into())
        .publish(PublishedPort::new(host_port, GUEST_PORT));
    // Each line: what was tried, its exit code, what it printed.
    let script = format!(
        "try() {{ out=$(\"$@\" 2>&1); rc=$?; echo \"$* => $rc $out\" | tr '\\n' ' '; echo; }}
         grep nameserver /etc/resolv.conf
         try nslookup upstream.test
         try nslookup example.com
         try wget -q -O- http://upstream.test:{open}/
         try wget -q -O- http://127.0.0.1:{open}/
         try wget -q -O- http://127.0.0.1:{shut}/
         try wget -q -O- http://169.254.169.254/
         try wget -q -O- http://denied.test:{open}/
         try sh -c 'printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | nc -w 3 upstream.test {open}'
         try nc -w 5 127.0.0.1 {shut} </dev/null
         try nc -w 5 192.0.2.1 80 </dev/null"
    );
    let (out, events) = runtime().block_on(async {
        let vm = config.boot().await.map_err(chain)?;
        let mut stdout = String::new();
        let run = crate::post_mortem::explained(&vm, async {
            let out = vm
                .agent()
                .exec(&GuestCommand::new("sh").arg("-c").arg(&script))
                .await
                .map_err(chain)?;
            stdout = out.stdout_text();
            let server = GuestCommand::new("sh").arg("-c").arg(format!(
                "echo from-guest | timeout 60 nc -l -p {GUEST_PORT}"
            ));
            let guest = vm.agent().exec(&server);
            let host = tokio::task::spawn_blocking(move || exchange_when_served(host_port));
            let (guest, host) = tokio::join!(guest, host);
            let (guest, host) = (guest.map_err(chain)?, host.map_err(|e| e.to_string())??);
            check(host == "from-guest\n", || format!("the host got {host:?}"))?;
            check(guest.stdout_text() == "from-host\n", || {
                format!("the guest server got {:?}", guest.stdout_text())
            })
        })
        .await;
        // Followed as a stream until every expected attempt is in (a
        // tunnel's event is written when its connection closes).
        let mut events = Vec::new();
        if let Some(mut tail) = vm.egress_tail() {
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while check_events(&events, open, shut).is_err() {
                    events.push(tail.next().await?);
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
        }
        let _ = vm.shutdown(Duration::from_secs(10)).await;
        run?;
        Ok::<_, Failed>((stdout, events))
    })?;
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.contains(prefix))
            .unwrap_or("")
            .to_owned()
    };
    let expect = |prefix: &str, want: &[&str]| {
        let got = line(prefix);
        check(want.iter().all(|w| got.contains(w)), || {
            format!("{prefix}: wanted {want:?} in {got:?}; the whole output:\n{out}")
        })
    };
    expect("nameserver", &["198.18.0.1"])?;
    expect("nslookup upstream.test", &["=> 0", "198.18.1.0"])?;
    expect("nslookup example.com", &["NXDOMAIN"])?;
    expect(
        &format!("http://upstream.test:{open}/"),
        &["=> 0", "hello from upstream"],
    )?;
    expect(
        &format!("http://127.0.0.1:{open}/"),
        &["=> 0", "hello from upstream"],
    )?;
    expect(&format!("http://127.0.0.1:{shut}/"), &["=> 1", "403"])?;
    expect("http://169.254.169.254/", &["=> 1", "403"])?;
    expect(&format!("http://denied.test:{open}/"), &["=> 1", "403"])?;
    expect("nc -w 3 upstream.test", &["=> 0", "hello from upstream"])?;
    expect("nc -w 5 127.0.0.1", &["=> 1", "refused"])?;
    expect("nc -w 5 192.0.2.1", &["=> 1", "unreachable"])?;
    check(closed.connections.load(Ordering::SeqCst) == 0, || {
        "the server no rule names was reached".into()
    })?;
    check(allowed.connections.load(Ordering::SeqCst) == 3, || {
        format!(
            "the allowed server had {} connections",
            allowed.connections.load(Ordering::SeqCst)
        )
    })?;
    check_events(&events, open, shut)
}

/// The record holds each attempt through the host side, as it went.
fn check_events(events: &[EgressEvent], open: u16, shut: u16) -> Result<(), Failed> {
    let find = |via: Via, name: Option<&str>, port: u16, allowed: bool| {
        events.iter().find(|e| {
            e.via == via
                && (e.name.as_deref() == name || e.addr.map(|a| a.to_string()).as_deref() == name)
                && (via == Via::Dns || e.port == port)
                && e.allowed == allowed
        })
    };
    let wanted = [
        (Via::Dns, Some("upstream.test"), 0, true),
        (Via::Dns, Some("example.com"), 0, false),
        (Via::Http, Some("upstream.test"), open, true),
        (Via::Http, Some("127.0.0.1"), open, true),
        (Via::Http, Some("127.0.0.1"), shut, false),
        (Via::Http, Some("169.254.169.254"), 80, false),
        (Via::Http, Some("denied.test"), open, false),
        (Via::Tcp, Some("upstream.test"), open, true),
    ];
    for (via, name, port, allowed) in wanted {
        check(find(via, name, port, allowed).is_some(), || {
            format!("no {via} event for {name:?}:{port} allowed={allowed} in {events:#?}")
        })?;
    }
    let fetched = find(Via::Http, Some("upstream.test"), open, true).expect("found above");
    check(fetched.bytes_in > 19 && fetched.bytes_out > 0, || {
        format!("the allowed fetch moved no bytes: {fetched:?}")
    })
}

/// Like [`exchange_when_listening`], for a port the egress process holds
/// open from the start: until the guest server listens, a connection is
/// accepted and closed at once (empty, or reset); it retries then too.
fn exchange_when_served(port: u16) -> Result<String, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = exchange_when_listening(port, "from-host", Duration::from_secs(10));
        match got {
            Ok(text) if !text.is_empty() => return Ok(text),
            _ if std::time::Instant::now() > deadline => return got,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The CLI: `start --allow` on a named VM, whose list holds for every
/// later `exec`; `logs --egress` prints what was tried, `--json` as
/// JSON lines.
fn cli_named_vm_keeps_its_list_and_logs_it() -> Result<(), Failed> {
    let upstream = Upstream::start("hello from upstream")?;
    let port = upstream.port.to_string();
    let state = crate::named_cases::State::new()?;
    let root = crate::support::rootfs();
    let root = root.to_str().ok_or("rootfs path is not UTF-8")?;
    let rule = format!("127.0.0.1/32:{port}");
    state.expect(
        0,
        &[
            "start", "--name", "walled", "--rootfs", root, "--allow", &rule,
        ],
    )?;
    let result = (|| {
        let url = format!("http://127.0.0.1:{port}/");
        let out = state.expect(0, &["exec", "walled", "wget", "-q", "-O-", &url])?;
        check(out.stdout == b"hello from upstream", || {
            format!(
                "the allowed fetch printed {:?}",
                crate::cases::text(&out.stdout)
            )
        })?;
        let out = state.expect(
            1,
            &["exec", "walled", "wget", "-q", "-O-", "http://192.0.2.7/"],
        )?;
        check(crate::cases::text(&out.stderr).contains("403"), || {
            format!(
                "the denied fetch said {:?}",
                crate::cases::text(&out.stderr)
            )
        })?;
        let ls = state.expect(0, &["ls", "--json"])?;
        check(
            crate::cases::text(&ls.stdout).contains("\"egress\""),
            || {
                format!(
                    "ls does not show the mode: {}",
                    crate::cases::text(&ls.stdout)
                )
            },
        )?;
        let logs = crate::cases::text(&state.expect(0, &["logs", "--egress", "walled"])?.stdout);
        let allowed = format!("ALLOW http 127.0.0.1:{port}");
        check(
            logs.contains(&allowed) && logs.contains("DENY  http 192.0.2.7:80"),
            || format!("logs --egress printed:\n{logs}"),
        )?;
        let json = state.expect(0, &["logs", "--egress", "--json", "walled"])?;
        let events: Vec<EgressEvent> = crate::cases::text(&json.stdout)
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(chain)?;
        check(
            events.len() == 2 && events[0].allowed && !events[1].allowed,
            || format!("logs --egress --json: {events:#?}"),
        )
    })();
    let stopped = state.expect(0, &["stop", "walled"]);
    result.and(stopped.map(drop))?;
    one_shot_keeps_its_log_where_asked(&state, root, &rule, &port)
}

/// `run --egress-log FILE`: a one-shot command's attempts, in FILE; a
/// FILE that cannot be opened stops the VM before it boots, saying so.
fn one_shot_keeps_its_log_where_asked(
    state: &crate::named_cases::State,
    root: &str,
    rule: &str,
    port: &str,
) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(chain)?;
    let log = dir.path().join("attempts.jsonl");
    let log = log.to_str().ok_or("temporary path is not UTF-8")?;
    let url = format!("http://127.0.0.1:{port}/");
    let run = ["run", "--rootfs", root, "--allow", rule, "--egress-log"];
    let out = state.expect(
        0,
        &[&run[..], &[log, "--", "wget", "-q", "-O-", &url]].concat(),
    )?;
    check(out.stdout == b"hello from upstream", || {
        format!(
            "the one-shot fetch printed {:?}",
            crate::cases::text(&out.stdout)
        )
    })?;
    let events = krunbox::egress::events::read_log(std::path::Path::new(log)).map_err(chain)?;
    check(events.len() == 1 && events[0].allowed, || {
        format!("--egress-log holds {events:#?}")
    })?;
    let out = state.expect(
        125,
        &[&run[..], &["/nonexistent/dir/x.jsonl", "--", "true"]].concat(),
    )?;
    let stderr = crate::cases::text(&out.stderr);
    check(
        stderr.contains("cannot open the egress log /nonexistent/dir/x.jsonl"),
        || format!("a bad --egress-log said {stderr:?}"),
    )
}
