//! Background processes over the agent protocol.

mod agent_support;

use std::time::Duration;

use agent_support::TestAgent;
use krunbox::client::{ClientError, GuestCommand};

#[tokio::test]
async fn background_lifecycle() {
    let agent = TestAgent::start().await;
    let proc_ = agent
        .client
        .spawn_background(
            &GuestCommand::new("sh").args(["-c", "echo started; echo warn >&2; sleep 30"]),
        )
        .await
        .unwrap();
    let listed = agent.client.list_processes().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, proc_.id);
    assert_eq!(listed[0].pid, proc_.pid);
    assert_eq!(listed[0].status, None);

    // Other execs run while it does.
    let out = agent
        .client
        .exec(&GuestCommand::new("echo").arg("meanwhile"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"meanwhile\n");

    let mut output = proc_.output(0, 0).await.unwrap();
    for _ in 0..250 {
        if output.stdout == b"started\n" && output.stderr == b"warn\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        output = proc_.output(0, 0).await.unwrap();
    }
    assert_eq!(output.stdout, b"started\n");
    assert_eq!(output.stderr, b"warn\n");
    assert_eq!(output.stdout_range.end, 8);
    assert_eq!(output.status, None);

    // Still running: a short wait times out, removal is refused.
    let waited = proc_.wait(Duration::from_millis(100)).await.unwrap();
    assert_eq!(waited, None);
    let err = proc_.remove().await.unwrap_err();
    assert_eq!(err.io_kind(), std::io::ErrorKind::InvalidInput);

    proc_.kill(15).await.unwrap();
    let status = proc_
        .wait(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("exited");
    assert_eq!(status.signal, Some(15));
    // Output stays readable after exit, then the process can be removed.
    let output = proc_.output(8, 0).await.unwrap();
    assert_eq!(output.stdout, b"");
    assert_eq!(output.status, Some(status));
    proc_.remove().await.unwrap();
    assert!(agent.client.list_processes().await.unwrap().is_empty());
    let err = proc_.output(0, 0).await.unwrap_err();
    assert_eq!(err.io_kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test]
async fn exit_codes_offsets_and_ring_overflow() {
    let agent = TestAgent::start().await;
    let counted = agent
        .client
        .spawn_background(&GuestCommand::new("sh").args(["-c", "echo 1; echo 2; echo 3; exit 4"]))
        .await
        .unwrap();
    let status = agent
        .client
        .wait_process(counted.id, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code, Some(4));
    // Output pumps may finish just after the exit is seen.
    let mut out = agent.client.read_output(counted.id, 2, 0).await.unwrap();
    for _ in 0..250 {
        if out.stdout_range.end == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        out = agent.client.read_output(counted.id, 2, 0).await.unwrap();
    }
    assert_eq!(out.stdout, b"2\n3\n");
    assert_eq!(out.stdout_range.start, 2);

    // More than the 1 MiB ring: only the tail is kept, offsets say so.
    let flood = agent
        .client
        .spawn_background(&GuestCommand::new("head").args(["-c", "3000000", "/dev/zero"]))
        .await
        .unwrap();
    agent
        .client
        .wait_process(flood.id, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    let mut out = agent.client.read_output(flood.id, 0, 0).await.unwrap();
    for _ in 0..250 {
        if out.stdout_range.end == 3_000_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        out = agent.client.read_output(flood.id, 0, 0).await.unwrap();
    }
    assert_eq!(out.stdout_range.end, 3_000_000);
    assert_eq!(out.stdout_range.start, 3_000_000 - (1 << 20));
    assert_eq!(out.stdout.len(), 1 << 20);

    let err = agent
        .client
        .wait_process(999, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert_eq!(err.io_kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test]
async fn background_processes_die_with_the_announce_connection() {
    let (client, mut child, _dir, _ops) = agent_support::launch(Default::default()).await;
    let proc_ = client
        .spawn_background(&GuestCommand::new("sleep").arg("30"))
        .await
        .unwrap();
    let pid = proc_.pid;
    // The host goes away (the handle does not keep it): the agent kills
    // its process groups and exits, and the handle says why it can't ask.
    drop(client);
    let err = proc_.wait(Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, ClientError::Disconnected { .. }), "{err:?}");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    for _ in 0..250 {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false);
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("background process {pid} outlived its agent");
}

/// A status is reported only once the output the process wrote has been
/// read: `wait` returning an end, then `output`, never loses its tail.
#[tokio::test]
async fn the_output_is_whole_once_wait_reports_the_end() {
    let agent = TestAgent::start().await;
    for round in 0..30 {
        let proc_ = agent
            .client
            .spawn_background(&GuestCommand::new("sh").args(["-c", "echo out; echo err >&2"]))
            .await
            .unwrap();
        let status = proc_.wait(Duration::from_secs(10)).await.unwrap();
        assert_eq!(status.and_then(|s| s.code), Some(0), "round {round}");
        let output = proc_.output(0, 0).await.unwrap();
        assert_eq!(
            (output.stdout.as_slice(), output.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..]),
            "round {round}: the status came before the output"
        );
        proc_.remove().await.unwrap();
    }
}

/// A process that leaves a child holding its pipes still gets its status
/// (after a bounded wait for the pipes' end).
#[tokio::test]
async fn a_left_child_holding_the_pipes_does_not_hold_the_status() {
    let agent = TestAgent::start().await;
    let proc_ = agent
        .client
        .spawn_background(&GuestCommand::new("sh").args(["-c", "sleep 30 & echo parent"]))
        .await
        .unwrap();
    let status = proc_.wait(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.and_then(|s| s.code), Some(0));
    assert_eq!(proc_.output(0, 0).await.unwrap().stdout, b"parent\n");
}
