//! The host API against a hostile agent double that falls silent or stops
//! reading its connection: every call ends, with a typed error, and the
//! client serves the next operation.

mod hostile_agent;

use std::time::Duration;

use hostile_agent::cases::{copy_out, double, exec_err, guarded, started, stdout, still_usable};
use hostile_agent::{data, dir, file, Act};
use krunbox::client::{ClientError, GuestCommand, Provision};
use krunbox_proto::{Control, Frame, FrameType};

#[tokio::test]
async fn silence_mid_stream_times_out() {
    // Silent from the start.
    let agent = double(vec![Act::Silence]).await;
    let err = guarded(agent.client.list_processes()).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    let err = exec_err(&agent).await;
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    let err = copy_out(&agent).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");

    let agent = double(vec![
        Act::Frames(vec![started(), stdout(b"partial")]),
        Act::Silence,
    ])
    .await;
    let err = exec_err(&agent).await;
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    still_usable(&agent).await;

    let agent = double(vec![
        Act::Frames(vec![dir(""), file("f", 100), data(&[1; 10])]),
        Act::Silence,
    ])
    .await;
    let err = copy_out(&agent).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    still_usable(&agent).await;

    // An agent that stops reading: a copy in or a provision of more than
    // the socket buffers hold stalls, and the stall limit ends it.
    let agent = double(vec![Act::Silence]).await;
    let src = agent.dir.path().join("big.bin");
    std::fs::write(&src, vec![7u8; 16 << 20]).unwrap();
    let err = guarded(agent.client.copy_in(&src, "/dest"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    let mut plan = Provision::new();
    plan.write_file("/big", vec![7u8; 16 << 20], 0o644);
    let err = guarded(agent.client.provision(&plan)).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    still_usable(&agent).await;
}

/// An exec whose agent grants stdin credit but never reads: the caller's
/// stdin fills the socket and waits there. When the agent then breaks the
/// protocol, the session ends with the frame error and the waiting write
/// ends with it, instead of waiting on the socket for good.
#[tokio::test]
async fn an_agent_that_stops_reading_cannot_hold_an_exec() {
    let credit = Frame::json(FrameType::Control, &Control::Credit { bytes: 1 << 30 }).unwrap();
    let agent = double(vec![
        Act::Frames(vec![started(), credit]),
        Act::Sleep(Duration::from_millis(300)),
        Act::Bytes(b"garbage!".repeat(4)),
        Act::Silence,
    ])
    .await;
    let mut session = guarded(agent.client.exec_streaming(&GuestCommand::new("cat")))
        .await
        .unwrap();
    let control = session.control();
    let writer = tokio::spawn(async move { control.write_stdin(&vec![0u8; 32 << 20]).await });
    let err = loop {
        match guarded(session.next_event()).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the session ended without the agent's error"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, ClientError::Frame { .. }), "{err:?}");
    let written = guarded(writer).await.unwrap();
    assert!(
        matches!(written, Err(ClientError::Closed { .. })),
        "{written:?}"
    );
    still_usable(&agent).await;
}
