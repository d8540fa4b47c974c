//! The real agent under concurrency and hostile input from the host side:
//! malformed frames sent to its ops socket. (The host against a hostile
//! agent: tests/hostile_guest.rs.)

mod agent_support;
mod hostile_agent;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use agent_support::TestAgent;
use bytes::{BufMut, BytesMut};
use hostile_agent::raw_header;
use krunbox::client::GuestCommand;
use krunbox_proto::{stream, ErrorKind, ErrorReply, Frame, FrameDecoder, FrameType, MAGIC};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_execs() {
    let agent = TestAgent::start().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let client = agent.client.clone();
        tasks.spawn(async move {
            let cmd = GuestCommand::new("sh").args(["-c", &format!("sleep 0.2; echo {i}")]);
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
        .exec(&GuestCommand::new("echo").arg("alive"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"alive\n");
    assert!(agent.client.is_alive());
}
