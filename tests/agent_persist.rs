//! Named VMs: an agent started with `--persist` keeps serving after the
//! process that received its hello goes away, and a client attached to its
//! ops socket alone can exec and shut it down.

mod agent_support;

use std::time::Duration;

use krunbox::client::{AgentClient, ClientConfig, GuestCommand};

/// Runs the agent as `sh -c 'exec AGENT --persist ARGS…'`.
const PERSIST: [&str; 3] = ["sh", "-c", "exec \"$0\" --persist \"$@\""];

#[tokio::test]
async fn persistent_agent_outlives_its_announce_connection() {
    let (client, mut child, _dir, ops) =
        agent_support::launch_wrapped(&PERSIST, ClientConfig::default()).await;
    let hello = client.hello().clone();
    // The starting process goes away: its client (and announce
    // connection) with it.
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.try_wait().unwrap().is_none(), "the agent exited");

    let attached = AgentClient::attach(&ops, hello, ClientConfig::default());
    let out = attached
        .exec(&GuestCommand::new("echo").arg("still here"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"still here\n");
    assert!(attached.is_alive());

    attached.shutdown(0).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn agent_without_persist_stops_with_its_announce_connection() {
    let (client, mut child, _dir, _ops) = agent_support::launch(ClientConfig::default()).await;
    drop(client);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent kept running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_attached_clients_closed_watches_without_an_operation() {
    let (client, mut child, _dir, ops) =
        agent_support::launch_wrapped(&PERSIST, ClientConfig::default()).await;
    let hello = client.hello().clone();
    drop(client);
    let attached = AgentClient::attach(&ops, hello, ClientConfig::default());
    let closed = tokio::spawn({
        let attached = attached.clone();
        async move { attached.closed().await }
    });
    // Give the watch time to open before the agent goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !closed.is_finished(),
        "closed() resolved while the agent lives"
    );
    child.kill().unwrap();
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("closed() did not resolve after the agent was killed")
        .unwrap();
    assert!(!attached.is_alive());
}
