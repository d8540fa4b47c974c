//! Concurrency, and hostile input in both directions: malformed frames sent
//! to a real agent, and a fake agent that sends the host malicious trees,
//! oversized frames or nothing at all.

mod agent_support;
mod hostile_agent;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use agent_support::TestAgent;
use bytes::{BufMut, BytesMut};
use hostile_agent::{
    dir, encode as frames, end_and_done, entry, file, raw_header, Act, HostileAgent,
};
use krunbox::client::{AgentClient, ClientConfig, ClientError, Command};
use krunbox_proto::{
    stream, ErrorKind, ErrorReply, Frame, FrameDecoder, FrameError, FrameType, Hello, Reply,
    TreeEntry, MAGIC,
};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_execs() {
    let agent = TestAgent::start().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let client = agent.client.clone();
        tasks.spawn(async move {
            let cmd = Command::new("sh").args(["-c", &format!("sleep 0.2; echo {i}")]);
            (i, client.exec(&cmd).await.unwrap())
        });
    }
    let mut seen = 0;
    while let Some(done) = tasks.join_next().await {
        let (i, out) = done.unwrap();
        assert_eq!(out.stdout_text(), format!("{i}\n"));
        assert!(out.status.success());
        seen += 1;
    }
    assert_eq!(seen, 50);
}

/// Sends raw bytes to the agent's ops socket and returns the first frame of
/// its answer (the agent then closes).
fn raw_exchange(ops: &Path, bytes: &[u8]) -> Frame {
    let mut sock = std::os::unix::net::UnixStream::connect(ops).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The agent may answer and close before reading everything we send.
    let _ = sock.write_all(bytes);
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    let mut buf = BytesMut::from(&answer[..]);
    FrameDecoder::new()
        .decode(&mut buf)
        .unwrap()
        .expect("an answer frame")
}

fn assert_protocol_error(frame: Frame) {
    assert_eq!(frame.frame_type, FrameType::Error, "{frame:?}");
    let err: ErrorReply = frame.parse_json().unwrap();
    assert_eq!(err.kind, ErrorKind::Protocol, "{err:?}");
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_agent_lives_on() {
    let agent = TestAgent::start().await;
    let ops = agent.ops_path.clone();
    let garbage = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let oversized = raw_header(FrameType::Request as u8, 0, u32::MAX).to_vec();
    let mut unknown = raw_header(200, 0, 3);
    unknown.put_slice(b"abc");
    let data_first = Frame::data(stream::STDIN, &b"x"[..])
        .unwrap()
        .to_bytes()
        .to_vec();
    let bad_json = Frame::new(FrameType::Request, 0, &b"{\"op\":\"nope\"}"[..])
        .unwrap()
        .to_bytes()
        .to_vec();
    let mut bad_version = raw_header(FrameType::Request as u8, 0, 0);
    bad_version[2] = 99;
    for bytes in [
        garbage,
        oversized,
        unknown.to_vec(),
        data_first,
        bad_json,
        bad_version.to_vec(),
    ] {
        let ops = ops.clone();
        let frame = tokio::task::spawn_blocking(move || raw_exchange(&ops, &bytes))
            .await
            .unwrap();
        assert_protocol_error(frame);
    }
    // A connection that closes at once, or mid-header, is just dropped.
    drop(std::os::unix::net::UnixStream::connect(&ops).unwrap());
    let mut half = std::os::unix::net::UnixStream::connect(&ops).unwrap();
    half.write_all(&MAGIC).unwrap();
    drop(half);

    let out = agent
        .client
        .exec(&Command::new("echo").arg("alive"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"alive\n");
    assert!(agent.client.is_alive());
}

/// A hostile double that answers every request with `answer`, then holds
/// the connection open for `hold`.
async fn fake_agent(answer: Vec<u8>, hold: Duration, config: ClientConfig) -> HostileAgent {
    HostileAgent::start(config, move |_| {
        vec![Act::Bytes(answer.clone()), Act::Sleep(hold)]
    })
    .await
}

/// Copies out from a fake agent sending `script`; returns the error and
/// checks that nothing but `dest`'s parent's prior contents exist.
async fn hostile_copy_out(script: Vec<Frame>) -> ClientError {
    let fake = fake_agent(frames(&script), Duration::ZERO, ClientConfig::default()).await;
    let out = fake.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let err = fake
        .client
        .copy_out("/anything", &out.join("dest"))
        .await
        .unwrap_err();
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let outside: Vec<_> = std::fs::read_dir(fake.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut outside_sorted = outside.clone();
    outside_sorted.sort();
    assert_eq!(
        outside_sorted,
        ["ops.sock", "out"],
        "wrote outside the destination"
    );
    err
}

#[tokio::test]
async fn guest_trees_cannot_escape_the_destination() {
    let escapes = [
        vec![dir(""), file("../escaped", 0)],
        vec![dir(""), file("/tmp/escaped-abs", 0)],
        vec![dir(""), dir("a"), file("a/../../escaped", 0)],
        vec![file("../escaped", 0)],
        // A symlink out of the tree, then a write through it.
        vec![
            dir(""),
            entry(&TreeEntry::Symlink {
                path: "l".into(),
                target: "..".into(),
            }),
            file("l/escaped", 0),
        ],
        vec![
            dir(""),
            entry(&TreeEntry::Symlink {
                path: "l".into(),
                target: "/tmp".into(),
            }),
            dir("l"),
        ],
    ];
    for mut script in escapes {
        script.extend(end_and_done());
        let err = hostile_copy_out(script).await;
        assert!(matches!(err, ClientError::Tree { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn lying_sizes_and_broken_off_copies_leave_nothing() {
    // More data than declared.
    let mut script = vec![
        file("", 4),
        Frame::data(stream::FILE, &b"123456"[..]).unwrap(),
    ];
    script.extend(end_and_done());
    let err = hostile_copy_out(script).await;
    assert!(matches!(err, ClientError::Tree { .. }), "{err:?}");

    // Less data than declared.
    let mut script = vec![
        file("", 10),
        Frame::data(stream::FILE, &b"12"[..]).unwrap(),
        Frame::eof(stream::FILE),
    ];
    script.extend(end_and_done());
    let err = hostile_copy_out(script).await;
    assert!(matches!(err, ClientError::Tree { .. }), "{err:?}");

    // Breaks off in the middle of a file of a tree.
    let script = vec![
        dir(""),
        file("f", 1000),
        Frame::data(stream::FILE, vec![1u8; 100]).unwrap(),
    ];
    let err = hostile_copy_out(script).await;
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");

    // Sends the whole tree but then an error instead of the final reply.
    let mut script = vec![file("", 1), Frame::data(stream::FILE, &b"x"[..]).unwrap()];
    script.push(Frame::eof(stream::FILE));
    script.push(entry(&TreeEntry::End));
    let reply = ErrorReply::new(ErrorKind::Io, "disk on fire");
    script.push(Frame::json(FrameType::Error, &reply).unwrap());
    let err = hostile_copy_out(script).await;
    assert!(matches!(err, ClientError::Agent { .. }), "{err:?}");
}

#[tokio::test]
async fn setuid_bits_from_the_guest_are_dropped() {
    let mut script = vec![file("", 1), Frame::data(stream::FILE, &b"x"[..]).unwrap()];
    script.push(Frame::eof(stream::FILE));
    script.extend(end_and_done());
    let fake = fake_agent(frames(&script), Duration::ZERO, ClientConfig::default()).await;
    let dest = fake.dir.path().join("f");
    fake.client.copy_out("/x", &dest).await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
}

#[tokio::test]
async fn oversized_and_garbage_frames_from_the_guest_are_errors() {
    let oversized = raw_header(FrameType::Reply as u8, 0, u32::MAX).to_vec();
    let fake = fake_agent(oversized, Duration::from_secs(30), ClientConfig::default()).await;
    let err = fake.client.stat("/x").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Frame {
                source: FrameError::Oversized { .. },
                ..
            }
        ),
        "{err:?}"
    );

    let fake = fake_agent(
        b"garbage!".repeat(4),
        Duration::ZERO,
        ClientConfig::default(),
    )
    .await;
    let err = fake.client.exec(&Command::new("true")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Frame {
                source: FrameError::BadMagic { .. },
                ..
            }
        ),
        "{err:?}"
    );

    let unknown = {
        let mut b = raw_header(77, 0, 0);
        b.put_slice(b"");
        b.to_vec()
    };
    let fake = fake_agent(unknown, Duration::ZERO, ClientConfig::default()).await;
    let err = fake.client.list_processes().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Frame {
                source: FrameError::UnknownType { .. },
                ..
            }
        ),
        "{err:?}"
    );

    // Wrong message type for the request.
    let wrong = frames(&[Frame::json(FrameType::Reply, &Reply::Ok).unwrap()]);
    let fake = fake_agent(wrong, Duration::ZERO, ClientConfig::default()).await;
    let err = fake.client.stat("/x").await.unwrap_err();
    assert!(matches!(err, ClientError::Unexpected { .. }), "{err:?}");
}

#[tokio::test]
async fn a_silent_guest_times_out() {
    let config = ClientConfig {
        request_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(200),
        default_exec_timeout: Duration::from_millis(100),
        exec_grace: Duration::from_millis(100),
        ..ClientConfig::default()
    };
    let fake = fake_agent(Vec::new(), Duration::from_secs(30), config).await;
    let started = std::time::Instant::now();
    let err = fake.client.stat("/x").await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    let err = fake.client.exec(&Command::new("true")).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    let err = fake
        .client
        .copy_out("/x", &fake.dir.path().join("d"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn bad_hellos_are_rejected() {
    let config = ClientConfig {
        hello_timeout: Duration::from_millis(200),
        ..ClientConfig::default()
    };
    // Silence.
    let (host_end, _agent_end) = UnixStream::pair().unwrap();
    let err = AgentClient::from_announce(host_end, "/nonexistent", config.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::HelloTimeout(_)), "{err:?}");
    // Garbage.
    let (host_end, mut agent_end) = UnixStream::pair().unwrap();
    agent_end.write_all(b"not a frame at all").await.unwrap();
    let err = AgentClient::from_announce(host_end, "/nonexistent", config.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Frame { .. }), "{err:?}");
    // Another protocol version inside the hello.
    let (host_end, mut agent_end) = UnixStream::pair().unwrap();
    let hello = Hello {
        protocol: 9,
        agent_version: "future".into(),
        pid: 1,
        started_uptime_ns: 0,
        hello_uptime_ns: 0,
    };
    agent_end
        .write_all(&Frame::json(FrameType::Hello, &hello).unwrap().to_bytes())
        .await
        .unwrap();
    let err = AgentClient::from_announce(host_end, "/nonexistent", config)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Version { found: 9 }), "{err:?}");
}
