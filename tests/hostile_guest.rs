//! The host API against a hostile agent double (tests/hostile_agent):
//! oversized frames, lengths that lie, unknown types, escaping copy-out
//! entries, endless output and disconnects mid-stream (silence and
//! agents that stop reading: tests/hostile_stalls.rs). Each case
//! checks that the call fails with a typed error (never hangs: every call
//! runs under a guard that fails the test if it does), that nothing is
//! written outside the destination, and that the client still serves the
//! next operation — or, when the agent is gone, says so.

mod hostile_agent;

use std::path::Path;
use std::time::Duration;

use std::os::unix::fs::PermissionsExt;

use hostile_agent::cases::{
    copy_out, double, exec_err, exited, frame_error, guarded, names, short, started, stdout,
    still_usable,
};
use hostile_agent::{
    data, dir, end_and_done, entry, file, raw_header, reply, symlink, Act, HostileAgent,
};
use krunbox::client::{AgentClient, ClientConfig, ClientError, GuestCommand};
use krunbox_proto::{
    stream, ErrorKind, ErrorReply, Frame, FrameError, FrameType, Hello, OutputRange, Reply,
    Request, TreeEntry, MAX_PAYLOAD,
};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

#[tokio::test]
async fn garbage_is_not_a_frame() {
    let agent = double(vec![Act::Bytes(b"garbage!".repeat(4))]).await;
    let err = exec_err(&agent).await;
    assert!(
        matches!(frame_error(&err), Some(FrameError::BadMagic { .. })),
        "{err:?}"
    );
    still_usable(&agent).await;
}

#[tokio::test]
async fn oversized_frames_are_refused_before_allocation() {
    for len in [MAX_PAYLOAD as u32 + 1, u32::MAX] {
        let head = raw_header(FrameType::Data as u8, stream::STDOUT, len).to_vec();
        let agent = double(vec![Act::Frames(vec![started()]), Act::Bytes(head)]).await;
        let err = exec_err(&agent).await;
        assert!(
            matches!(frame_error(&err), Some(FrameError::Oversized { .. })),
            "{err:?}"
        );
        still_usable(&agent).await;
    }
}

#[tokio::test]
async fn lengths_that_lie() {
    // Claims 1000 bytes, sends 10 and closes.
    let mut short_body = raw_header(FrameType::Reply as u8, 0, 1000).to_vec();
    short_body.extend_from_slice(b"{\"reply\":\"");
    let agent = double(vec![Act::Bytes(short_body.clone())]).await;
    let err = exec_err(&agent).await;
    assert!(
        matches!(frame_error(&err), Some(FrameError::Truncated { .. })),
        "{err:?}"
    );
    still_usable(&agent).await;

    // The same, then silence: the exec's deadline ends it.
    let agent = double(vec![Act::Bytes(short_body), Act::Silence]).await;
    let err = exec_err(&agent).await;
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    still_usable(&agent).await;

    // A data frame claiming more than it holds swallows the next frame's
    // head; what follows is not a frame.
    let mut swallow = raw_header(FrameType::Data as u8, stream::STDOUT, 40).to_vec();
    swallow.extend_from_slice(&[b'a'; 20]);
    swallow.extend_from_slice(&exited().to_bytes());
    let agent = double(vec![Act::Frames(vec![started()]), Act::Bytes(swallow)]).await;
    let err = exec_err(&agent).await;
    assert!(
        matches!(frame_error(&err), Some(FrameError::BadMagic { .. })),
        "{err:?}"
    );

    // Background output whose ranges do not match the bytes sent.
    let lying_range = Reply::Output {
        stdout: OutputRange { start: 0, end: 100 },
        stderr: OutputRange { start: 0, end: 0 },
        status: None,
    };
    let agent = double(vec![Act::Frames(vec![
        reply(&lying_range),
        stdout(b"abc"),
        Frame::eof(stream::STDOUT),
        Frame::eof(stream::STDERR),
    ])])
    .await;
    let err = guarded(agent.client.read_output(1, 0, 0))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unexpected { .. }), "{err:?}");

    // A copy in acknowledged with counts other than what was sent.
    let agent = double(vec![
        Act::ReadTree,
        Act::Frames(vec![reply(&Reply::CopyDone {
            entries: 1,
            bytes: 999,
        })]),
    ])
    .await;
    let src = agent.dir.path().join("src.txt");
    std::fs::write(&src, b"hello").unwrap();
    let err = guarded(agent.client.copy_in(&src, "/dest"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unexpected { .. }), "{err:?}");
    still_usable(&agent).await;
}

#[tokio::test]
async fn unknown_frame_types_mid_stream() {
    let mut unknown = raw_header(0xee, stream::STDOUT, 3).to_vec();
    unknown.extend_from_slice(b"???");
    let agent = double(vec![
        Act::Frames(vec![started(), stdout(b"ok")]),
        Act::Bytes(unknown.clone()),
        Act::Frames(vec![exited()]),
    ])
    .await;
    let err = exec_err(&agent).await;
    assert!(
        matches!(
            frame_error(&err),
            Some(FrameError::UnknownType {
                frame_type: 0xee,
                ..
            })
        ),
        "{err:?}"
    );
    still_usable(&agent).await;

    let agent = double(vec![Act::Frames(vec![dir("")]), Act::Bytes(unknown)]).await;
    let err = copy_out(&agent).await.unwrap_err();
    assert!(matches!(err, ClientError::Frame { .. }), "{err:?}");
    still_usable(&agent).await;

    let agent = double(vec![Act::Bytes(raw_header(77, 0, 0).to_vec())]).await;
    let err = guarded(agent.client.list_processes()).await.unwrap_err();
    assert!(matches!(err, ClientError::Frame { .. }), "{err:?}");
    // The wrong reply for the request.
    let agent = double(vec![Act::Frames(vec![reply(&Reply::Ok)])]).await;
    let err = guarded(agent.client.list_processes()).await.unwrap_err();
    assert!(matches!(err, ClientError::Unexpected { .. }), "{err:?}");

    // Known types in the wrong place: a request frame, stdin data.
    for wrong in [
        Frame::json(FrameType::Request, &Request::ListProcesses).unwrap(),
        Frame::data(stream::STDIN, &b"x"[..]).unwrap(),
    ] {
        let agent = double(vec![Act::Frames(vec![started(), wrong])]).await;
        let err = exec_err(&agent).await;
        assert!(matches!(err, ClientError::Unexpected { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn copy_out_entries_cannot_escape() {
    let long_name = "n".repeat(300);
    let escapes: Vec<Vec<Frame>> = vec![
        vec![file("../up", 0)],
        vec![dir(""), file("../up", 0)],
        vec![dir(""), file("/tmp/krunbox-hostile-abs", 0)],
        vec![dir(""), dir("a"), file("a/../../up", 0)],
        vec![dir(""), file("a/./b", 0)],
        vec![dir(""), file("nul\0byte", 0)],
        vec![dir(""), file(&long_name, 0)],
        vec![dir(""), symlink("l", ".."), file("l/up", 0)],
        vec![dir(""), symlink("l", "/"), dir("l/etc")],
        // A root that is a symlink, then entries below it.
        vec![symlink("", "/etc"), file("passwd", 0)],
        // A file, then a directory of the same name.
        vec![dir(""), file("x", 0), Frame::eof(stream::FILE), dir("x")],
    ];
    for mut script in escapes {
        script.extend(end_and_done());
        let agent = double(vec![Act::Frames(script.clone())]).await;
        let err = copy_out(&agent).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Tree { .. }),
            "{script:?}: {err:?}"
        );
        still_usable(&agent).await;
    }
}

#[tokio::test]
async fn lying_file_sizes_leave_nothing() {
    let scripts = [
        // More data than declared.
        vec![file("", 4), data(b"123456")],
        // Less data than declared.
        vec![file("", 10), data(b"12"), Frame::eof(stream::FILE)],
    ];
    for mut script in scripts {
        script.extend(end_and_done());
        let agent = double(vec![Act::Frames(script)]).await;
        let err = copy_out(&agent).await.unwrap_err();
        assert!(matches!(err, ClientError::Tree { .. }), "{err:?}");
        still_usable(&agent).await;
    }
    // The whole tree, then an error instead of the final reply.
    let failure = ErrorReply::new(ErrorKind::Io, "disk on fire");
    let script = vec![
        file("", 1),
        data(b"x"),
        Frame::eof(stream::FILE),
        entry(&TreeEntry::End),
        Frame::json(FrameType::Error, &failure).unwrap(),
    ];
    let agent = double(vec![Act::Frames(script)]).await;
    let err = copy_out(&agent).await.unwrap_err();
    assert!(matches!(err, ClientError::Agent { .. }), "{err:?}");
}

#[tokio::test]
async fn setuid_bits_from_the_guest_are_dropped() {
    let mut script = vec![file("", 1), data(b"x"), Frame::eof(stream::FILE)];
    script.extend(end_and_done());
    let agent = double(vec![Act::Frames(script)]).await;
    copy_out(&agent).await.unwrap();
    let dest = agent.dir.path().join("out/dest");
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
}

/// Copies out twice to the same destination: first `plant` (which puts a
/// symlink to an outside directory there), then `tree`; checks that the
/// outside directory stayed empty and returns the destination.
async fn plant_then_copy(
    plant: Vec<Frame>,
    tree: Vec<Frame>,
    outside: &Path,
) -> (HostileAgent, std::path::PathBuf) {
    let agent = HostileAgent::start(short(), move |req| match req {
        Request::CopyOut { path } if path == "plant" => vec![Act::Frames(plant.clone())],
        _ => vec![Act::Frames(tree.clone())],
    })
    .await;
    let dest = agent.dir.path().join("dest");
    guarded(agent.client.copy_out("plant", &dest))
        .await
        .unwrap();
    guarded(agent.client.copy_out("tree", &dest)).await.unwrap();
    assert!(names(outside).is_empty(), "wrote through the symlink");
    (agent, dest)
}

#[tokio::test]
async fn planted_symlinks_are_replaced_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_owned();
    let evil = |path: &str| vec![file(path, 1), data(b"x"), Frame::eof(stream::FILE)];

    // The destination itself made a symlink, then a tree sent there.
    let mut plant = vec![symlink("", &target)];
    plant.extend(end_and_done());
    let mut tree = vec![dir("")];
    tree.extend(evil("evil"));
    tree.extend(end_and_done());
    let (_agent, dest) = plant_then_copy(plant, tree, outside.path()).await;
    assert!(dest.symlink_metadata().unwrap().is_dir());
    assert!(dest.join("evil").is_file());

    // A child of a destination directory made a symlink, then a tree with
    // a directory of that name merged in.
    let mut plant = vec![dir(""), symlink("sub", &target)];
    plant.extend(end_and_done());
    let mut tree = vec![dir(""), dir("sub")];
    tree.extend(evil("sub/evil"));
    tree.extend(end_and_done());
    let (_agent, dest) = plant_then_copy(plant, tree, outside.path()).await;
    assert!(dest.join("sub").symlink_metadata().unwrap().is_dir());
    assert!(dest.join("sub/evil").is_file());
}

#[tokio::test]
async fn output_shorter_than_declared_is_an_error() {
    // The stream's end says 10 bytes were sent; 4 arrived.
    let agent = double(vec![Act::Frames(vec![
        started(),
        stdout(b"four"),
        Frame::eof_counted(stream::STDOUT, 10),
        Frame::eof_counted(stream::STDERR, 0),
        exited(),
    ])])
    .await;
    let err = exec_err(&agent).await;
    assert!(
        matches!(
            err,
            ClientError::OutputCut {
                sent: 10,
                received: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("output was cut"), "{err}");
    still_usable(&agent).await;
}

#[tokio::test]
async fn endless_output_hits_the_limits() {
    let chunk = stdout(&vec![b'y'; 64 * 1024]);
    let agent = double(vec![Act::Frames(vec![started()]), Act::Repeat(chunk)]).await;
    let err = exec_err(&agent).await;
    // Either bound ends it: the collect limit, or output past the
    // flow-control window the host granted (the double ignores credits).
    assert!(
        matches!(&err, ClientError::OutputLimit { limit, .. } if *limit == 1 << 20)
            || matches!(&err, ClientError::Unexpected { got, .. } if got.contains("beyond the")),
        "{err:?}"
    );
    still_usable(&agent).await;

    // Background output without end.
    let output = Reply::Output {
        stdout: OutputRange { start: 0, end: 1 },
        stderr: OutputRange { start: 0, end: 0 },
        status: None,
    };
    let agent = double(vec![
        Act::Frames(vec![reply(&output)]),
        Act::Repeat(stdout(&vec![b'z'; 64 * 1024])),
    ])
    .await;
    let err = guarded(agent.client.read_output(1, 0, 0))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::OutputLimit { .. }), "{err:?}");

    // A file that never ends, a file bigger than allowed, entries without end.
    let endless_file = vec![
        Act::Frames(vec![file("", 4 << 20)]),
        Act::Repeat(data(&vec![0u8; 64 * 1024])),
    ];
    let too_big = vec![Act::Frames(vec![file("", u64::MAX)])];
    let endless_entries = vec![
        Act::Frames(vec![dir("")]),
        Act::Endless(|n| dir(&format!("d{n}"))),
    ];
    for acts in [endless_file, too_big, endless_entries] {
        let agent = double(acts).await;
        let err = copy_out(&agent).await.unwrap_err();
        assert!(matches!(err, ClientError::Tree { .. }), "{err:?}");
        still_usable(&agent).await;
    }

    // Replies that keep the exec busy without output: its deadline ends it.
    for noise in [started(), Frame::eof(stream::STDOUT)] {
        let agent = double(vec![Act::Repeat(noise)]).await;
        let err = exec_err(&agent).await;
        assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
        still_usable(&agent).await;
    }
}

#[tokio::test]
async fn disconnects_mid_stream_are_errors() {
    let agent = double(vec![Act::Frames(vec![started(), stdout(b"partial")])]).await;
    let err = exec_err(&agent).await;
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
    still_usable(&agent).await;

    let agent = double(vec![Act::Frames(vec![
        dir(""),
        file("f", 100),
        data(&[1; 10]),
    ])])
    .await;
    let err = copy_out(&agent).await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");

    let agent = double(vec![Act::ReadBytes(256 * 1024)]).await;
    let src = agent.dir.path().join("big.bin");
    std::fs::write(&src, vec![7u8; 16 << 20]).unwrap();
    let err = guarded(agent.client.copy_in(&src, "/dest"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Io { .. } | ClientError::Closed { .. }),
        "{err:?}"
    );
    still_usable(&agent).await;

    let output = Reply::Output {
        stdout: OutputRange { start: 0, end: 10 },
        stderr: OutputRange { start: 0, end: 0 },
        status: None,
    };
    let agent = double(vec![Act::Frames(vec![reply(&output), stdout(b"abc")])]).await;
    let err = guarded(agent.client.read_output(1, 0, 0))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
    let err = guarded(agent.client.wait_process(1, Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Closed { .. } | ClientError::Unexpected { .. }
        ),
        "{err:?}"
    );
    still_usable(&agent).await;
}

#[tokio::test]
async fn a_dead_agent_is_reported() {
    let agent = double(vec![Act::Silence]).await;
    let session = guarded(agent.client.exec_streaming(&GuestCommand::new("sleep")))
        .await
        .unwrap();
    agent.die();
    guarded(agent.client.closed()).await;
    assert!(!agent.client.is_alive());
    let err = guarded(agent.client.stat("/x")).await.unwrap_err();
    assert!(matches!(err, ClientError::Gone { .. }), "{err:?}");
    drop(session);

    // An agent whose liveness channel carries garbage counts as dead too.
    let agent = double(vec![]).await;
    agent.garble_announce();
    guarded(agent.client.closed()).await;
    assert!(!agent.client.is_alive());
}

#[tokio::test]
async fn a_halted_guest_is_noticed_and_ends_waits() {
    // Connections stay open, but the pings stop: every wait ends.
    let agent = double(vec![Act::Silence]).await;
    let session = guarded(
        agent
            .client
            .exec_streaming(&GuestCommand::new("sleep").timeout(Duration::from_secs(3600))),
    )
    .await
    .unwrap();
    let src = agent.dir.path().join("big.bin");
    std::fs::write(&src, vec![7u8; 16 << 20]).unwrap();
    let client = agent.client.clone();
    let copy = tokio::spawn(async move { client.copy_in(&src, "/dest").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.freeze();
    guarded(agent.client.closed()).await;
    assert!(!agent.client.is_alive());
    let err = guarded(session.collect(1 << 20)).await.unwrap_err();
    assert!(matches!(err, ClientError::Gone { .. }), "{err:?}");
    let err = guarded(copy).await.unwrap().unwrap_err();
    assert!(
        matches!(err, ClientError::Gone { .. } | ClientError::Timeout { .. }),
        "{err:?}"
    );
    // New operations fail at once.
    let err = guarded(agent.client.stat("/x")).await.unwrap_err();
    assert!(matches!(err, ClientError::Gone { .. }), "{err:?}");
}

#[tokio::test]
async fn a_flooded_liveness_channel_changes_nothing() {
    let agent = double(vec![]).await;
    agent.flood_announce();
    while agent.flooded.load(std::sync::atomic::Ordering::Relaxed) < 64 << 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    still_usable(&agent).await;
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
