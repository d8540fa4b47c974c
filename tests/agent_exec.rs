//! Exec over the agent protocol, with the agent as a host process.

mod agent_support;

use std::time::{Duration, Instant};

use agent_support::TestAgent;
use krunbox::client::{ClientError, ExecEvent, GuestCommand};

#[tokio::test]
async fn hello_reports_versions_and_uptime() {
    let agent = TestAgent::start().await;
    let hello = agent.client.hello();
    assert_eq!(hello.protocol, krunbox_proto::VERSION);
    assert_eq!(hello.pid, agent.child.id());
    assert!(hello.started_uptime_ns > 0);
    assert!(hello.hello_uptime_ns >= hello.started_uptime_ns);
    assert!(agent.client.is_alive());
}

#[tokio::test]
async fn echo_and_exit_codes() {
    let agent = TestAgent::start().await;
    let out = agent
        .client
        .exec(&GuestCommand::new("echo").arg("hi"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(out.status.code, Some(0));
    assert!(out.status.success());

    let out = agent
        .client
        .exec(&GuestCommand::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]))
        .await
        .unwrap();
    assert_eq!(out.status.code, Some(3));
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");

    let out = agent
        .client
        .exec(&GuestCommand::new("definitely-not-a-command-krunbox"))
        .await
        .unwrap();
    assert_eq!(out.status.code, Some(127));
    assert!(out.stderr_text().contains("command not found"));
}

#[tokio::test]
async fn env_cwd_and_clear_env() {
    let agent = TestAgent::start().await;
    let out = agent
        .client
        .exec(
            &GuestCommand::new("sh")
                .args(["-c", "echo $KB_A-$KB_B; pwd"])
                .env("KB_A", "one")
                .env("KB_B", "two")
                .cwd("/tmp"),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "one-two\n/tmp\n");

    let out = agent
        .client
        .exec(
            &GuestCommand::new("/usr/bin/env")
                .env_clear()
                .env("ONLY", "1"),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "ONLY=1\n");

    let err = agent
        .client
        .exec(&GuestCommand::new("true").cwd("/no/such/dir"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Agent { .. }), "{err:?}");
    assert_eq!(err.io_kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test]
async fn uid_and_gid() {
    let agent = TestAgent::start().await;
    assert_eq!(
        nix::unistd::getuid().as_raw(),
        0,
        "this test switches users, which needs root (as the tests run in CI)"
    );
    let out = agent
        .client
        .exec(
            &GuestCommand::new("sh")
                .args(["-c", "id -u; id -g"])
                .uid(65534)
                .gid(65534),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "65534\n65534\n");
}

#[tokio::test]
async fn stdin_given_and_streamed() {
    let agent = TestAgent::start().await;
    let out = agent
        .client
        .exec(&GuestCommand::new("cat").stdin(&b"from stdin"[..]))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"from stdin");

    // Larger than any pipe buffer: stdin is fed while output is read.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let out = agent
        .client
        .exec(&GuestCommand::new("cat").stdin(big.clone()))
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), big.len());
    assert!(out.stdout == big);

    // Streamed: each line comes back before the next is written.
    let mut session = agent
        .client
        .exec_streaming(&GuestCommand::new("cat").stream_stdin())
        .await
        .unwrap();
    let control = session.control();
    for line in ["one\n", "two\n"] {
        control.write_stdin(line.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while got.len() < line.len() {
            match session.next_event().await.unwrap().unwrap() {
                ExecEvent::Stdout(b) => got.extend_from_slice(&b),
                ExecEvent::Started(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, line.as_bytes());
    }
    control.close_stdin().await.unwrap();
    loop {
        match session.next_event().await.unwrap() {
            Some(ExecEvent::Exit(status)) => {
                assert_eq!(status.code, Some(0));
                break;
            }
            Some(_) => {}
            None => panic!("no exit"),
        }
    }
    assert_eq!(session.next_event().await.unwrap(), None);

    // A reader relayed to the end, then stdin closed: `cat` exits.
    let session = agent
        .client
        .exec_streaming(&GuestCommand::new("cat").stream_stdin())
        .await
        .unwrap();
    let control = session.control();
    let (relayed, out) = tokio::join!(
        control.copy_stdin_from(&big[..]),
        session.collect(big.len() + 1)
    );
    assert_eq!(relayed.unwrap(), big.len() as u64);
    let out = out.unwrap();
    assert!(out.status.success() && out.stdout == big);
}

#[tokio::test]
async fn timeout_kills_the_process_group() {
    let agent = TestAgent::start().await;
    let start = Instant::now();
    let out = agent
        .client
        .exec(
            &GuestCommand::new("sh")
                .args(["-c", "sleep 30 & sleep 30; echo never"])
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(out.status.timed_out);
    assert_eq!(out.status.signal, Some(9));
    assert_eq!(out.stdout, b"");
}

#[tokio::test]
async fn signal_a_running_exec() {
    let agent = TestAgent::start().await;
    let mut session = agent
        .client
        .exec_streaming(&GuestCommand::new("sh").args(["-c", "echo ready; sleep 30"]))
        .await
        .unwrap();
    loop {
        if let ExecEvent::Stdout(_) = session.next_event().await.unwrap().unwrap() {
            break;
        }
    }
    session.control().signal(15).await.unwrap();
    loop {
        if let ExecEvent::Exit(status) = session.next_event().await.unwrap().unwrap() {
            assert_eq!(status.signal, Some(15));
            assert!(!status.timed_out);
            break;
        }
    }
}

#[tokio::test]
async fn dropping_a_session_kills_the_process() {
    let agent = TestAgent::start().await;
    let marker = agent.guest("pid");
    let mut session = agent
        .client
        .exec_streaming(
            &GuestCommand::new("sh").args(["-c", &format!("echo $$ > {marker}; echo x; sleep 30")]),
        )
        .await
        .unwrap();
    while !matches!(
        session.next_event().await.unwrap(),
        Some(ExecEvent::Stdout(_))
    ) {}
    let pid: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    drop(session);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "process {pid} survived its session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn output_limit_is_enforced() {
    let config = krunbox::client::ClientConfig {
        max_output: 1000,
        ..Default::default()
    };
    let agent = TestAgent::start_with(config).await;
    let err = agent
        .client
        .exec(&GuestCommand::new("head").args(["-c", "5000", "/dev/zero"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::OutputLimit { limit: 1000, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn shutdown_exits_with_the_code() {
    let mut agent = TestAgent::start().await;
    agent.client.shutdown(7).await.unwrap();
    assert!(!agent.client.is_alive());
    let status = agent.child.wait().unwrap();
    assert_eq!(status.code(), Some(7));
}

#[tokio::test]
async fn a_dead_agent_gives_typed_errors() {
    let mut agent = TestAgent::start().await;
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    tokio::time::timeout(Duration::from_secs(5), agent.client.closed())
        .await
        .unwrap();
    let err = agent
        .client
        .exec(&GuestCommand::new("true"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Gone { .. }), "{err:?}");
}

/// Stdin frames that arrive in the same read as the request are not lost.
#[tokio::test]
async fn stdin_sent_with_the_request_in_one_write() {
    use std::io::{Read, Write};

    use krunbox_proto::{stream, ExecRequest, Frame, FrameType, Request};
    let agent = TestAgent::start().await;
    let request = Request::Exec(ExecRequest {
        argv: vec!["cat".into()],
        stdin: true,
        timeout_ms: Some(5000),
        ..ExecRequest::default()
    });
    let mut wire = Vec::new();
    wire.extend_from_slice(
        &Frame::json(FrameType::Request, &request)
            .unwrap()
            .to_bytes(),
    );
    wire.extend_from_slice(
        &Frame::data(stream::STDIN, &b"early"[..])
            .unwrap()
            .to_bytes(),
    );
    wire.extend_from_slice(&Frame::eof(stream::STDIN).to_bytes());
    let ops = agent.ops_path.clone();
    // Not half-closed: the agent takes the end of its input as the host
    // going away (and kills the process).
    let (stdout, exited) = tokio::task::spawn_blocking(move || {
        let mut sock = std::os::unix::net::UnixStream::connect(ops).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.write_all(&wire).unwrap();
        let mut buf = bytes::BytesMut::new();
        let mut decoder = krunbox_proto::FrameDecoder::new();
        let mut stdout = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                match frame.frame_type {
                    FrameType::Data => stdout.extend_from_slice(&frame.payload),
                    FrameType::Reply => {
                        let reply: krunbox_proto::Reply = frame.parse_json().unwrap();
                        if let krunbox_proto::Reply::Exited(status) = reply {
                            return (stdout, status);
                        }
                    }
                    _ => {}
                }
            }
            let n = sock.read(&mut chunk).unwrap();
            assert!(n > 0, "closed before the exit status");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap();
    assert_eq!(stdout, b"early");
    assert_eq!(exited.code, Some(0));
}

/// The timeout fires even while the host is not reading the output.
#[tokio::test]
async fn timeout_fires_while_the_host_does_not_read() {
    let agent = TestAgent::start().await;
    let mut session = agent
        .client
        .exec_streaming(&GuestCommand::new("yes").timeout(Duration::from_millis(300)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = loop {
        match session.next_event().await.unwrap() {
            Some(ExecEvent::Exit(status)) => break status,
            Some(_) => {}
            None => panic!("no exit"),
        }
    };
    assert!(status.timed_out);
}

/// The clock round trip: an agent on the host reads the host's own
/// `CLOCK_BOOTTIME`, which is `CLOCK_MONOTONIC` plus any suspended time,
/// so its zero lands at (or saturates to) the host's monotonic zero,
/// within the round trip's error.
#[tokio::test]
async fn a_host_agents_clock_starts_with_the_hosts() {
    let agent = TestAgent::start().await;
    let clock = agent.client.guest_clock().await.unwrap();
    let slack_us = 1_000;
    assert!(
        clock.zero_us <= clock.error.as_micros() as u64 + slack_us,
        "{clock:?}"
    );
    assert!(clock.error < std::time::Duration::from_secs(1), "{clock:?}");
}

/// A session outlives the caller's clients: it keeps one, so the agent
/// stays connected and its liveness watched until the exec ends.
#[tokio::test]
async fn a_session_outlives_the_callers_clients() {
    let (client, mut child, _dir, _ops) = agent_support::launch(Default::default()).await;
    let script = ["-c", "sleep 0.2; echo late"];
    let mut session = client
        .exec_streaming(&GuestCommand::new("sh").args(script))
        .await
        .unwrap();
    drop(client);
    let mut got = Vec::new();
    loop {
        match session.next_event().await.unwrap() {
            Some(ExecEvent::Stdout(b)) => got.extend_from_slice(&b),
            Some(ExecEvent::Exit(status)) => {
                assert!(status.success(), "{status:?}");
                break;
            }
            Some(_) => {}
            None => panic!("no exit"),
        }
    }
    assert_eq!(got, b"late\n");
    // With the session, the last client goes: the agent exits.
    drop(session);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
