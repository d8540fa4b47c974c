//! Flow control and complete output on the exec path, with the agent as a
//! host process: a reader that starts late or reads slowly gets every
//! byte, stdin keeps flowing while output is held back, and a session
//! whose caller stopped reading leaves the other operations untouched.

mod agent_support;

use std::time::Duration;

use agent_support::TestAgent;
use krunbox::client::{ExecEvent, ExecSession, GuestCommand, OUTPUT_WINDOW};

/// Reads `session` to its end, pausing `pause` after every event; returns
/// stdout, stderr and the exit code.
async fn drain(mut session: ExecSession, pause: Duration) -> (Vec<u8>, Vec<u8>, Option<i32>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        match session.next_event().await.unwrap() {
            Some(ExecEvent::Stdout(b)) => out.extend_from_slice(&b),
            Some(ExecEvent::Stderr(b)) => err.extend_from_slice(&b),
            Some(ExecEvent::Started(_)) => {}
            Some(ExecEvent::Exit(status)) => return (out, err, status.code),
            None => panic!("no exit"),
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

#[tokio::test]
async fn a_reader_that_starts_late_gets_every_byte() {
    let agent = TestAgent::start().await;
    let script = "head -c 8388608 /dev/zero; echo done >&2";
    let session = agent
        .client
        .exec_streaming(&GuestCommand::new("sh").args(["-c", script]))
        .await
        .unwrap();
    // The caller does not read for a while: the process must wait, and
    // the other operations must go on meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let echo = GuestCommand::new("echo").arg("meanwhile");
    let other = tokio::time::timeout(Duration::from_secs(20), agent.client.exec(&echo))
        .await
        .expect("an exec beside a stalled one finishes")
        .unwrap();
    assert_eq!(other.stdout, b"meanwhile\n");
    let (out, err, code) = drain(session, Duration::ZERO).await;
    assert_eq!(out.len(), 8 << 20);
    assert!(out.iter().all(|b| *b == 0));
    assert_eq!(err, b"done\n");
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_slow_reader_holds_the_process_back_without_losing_bytes() {
    let agent = TestAgent::start().await;
    // The process reports how far it got when it is done writing; with
    // output held to the window it cannot finish before the reader does.
    let script = "i=0; while [ $i -lt 64 ]; do head -c 16384 /dev/zero; i=$((i+1)); done; echo end";
    let session = agent
        .client
        .exec_streaming(&GuestCommand::new("sh").args(["-c", script]))
        .await
        .unwrap();
    let (out, _, code) = drain(session, Duration::from_millis(2)).await;
    assert_eq!(out.len(), 64 * 16384 + 4);
    assert!(out.ends_with(b"end\n"));
    assert_eq!(code, Some(0));
    assert!(
        out.len() as u64 > u64::from(OUTPUT_WINDOW),
        "the window was crossed"
    );
}

#[tokio::test]
async fn stdin_flows_while_output_is_held_back() {
    let agent = TestAgent::start().await;
    // cat echoes 4 MiB of stdin while the caller reads nothing at first:
    // its output fills the window, it stops reading stdin, and the stdin
    // credits still reach the host (no deadlock between the two windows).
    let input: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let session = agent
        .client
        .exec_streaming(&GuestCommand::new("cat").stream_stdin())
        .await
        .unwrap();
    let control = session.control();
    let feed = {
        let input = input.clone();
        tokio::spawn(async move {
            control.write_stdin(&input).await.unwrap();
            control.close_stdin().await.unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (out, _, code) =
        tokio::time::timeout(Duration::from_secs(60), drain(session, Duration::ZERO))
            .await
            .expect("cat with 4 MiB of stdin finishes");
    feed.await.unwrap();
    assert_eq!(code, Some(0));
    assert!(out == input, "{} bytes back of {}", out.len(), input.len());
}

#[tokio::test]
async fn output_sizes_come_back_exactly_on_both_streams() {
    let agent = TestAgent::start().await;
    for size in [0usize, 1, 4095, 4096, 65537, 1 << 20] {
        let script = format!("head -c {size} /dev/urandom | tee /dev/stderr");
        let out = agent
            .client
            .exec(&GuestCommand::new("sh").args(["-c", &script]))
            .await
            .unwrap();
        assert_eq!(out.stdout.len(), size, "stdout of {size}");
        assert!(out.stdout == out.stderr, "stderr of {size}");
        assert!(out.status.success());
    }
}
