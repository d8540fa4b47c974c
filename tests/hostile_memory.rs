//! Host memory stays bounded whatever a hostile agent streams: endless
//! exec output read as it comes, a flood on the liveness channel, frames
//! claiming 4 GiB, endless tree entries. In its own test binary so that
//! the process's peak memory is this test's alone.

mod agent_support;
mod hostile_agent;

use std::sync::atomic::Ordering;
use std::time::Duration;

use agent_support::peak_rss_kib;
use hostile_agent::{dir, raw_header, reply, Act, HostileAgent};
use krunbox::client::{ClientConfig, ClientError, ExecEvent, GuestCommand};
use krunbox_proto::{stream, Frame, FrameType, Reply};

/// What each hostile stream pushes at the host.
const PUSHED: u64 = 1 << 30;
/// How much the host's peak memory may grow over all of them: streams take
/// next to nothing; an endless tree takes what the receiver's default limit
/// on directory bookkeeping (64 MiB) allows, plus allocator slack.
const BOUND_KIB: u64 = 96 << 10;

fn shm_or_tmp() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// Prints how far the host's peak memory has grown since `before`.
fn report(phase: &str, before: u64) {
    let growth = peak_rss_kib("/proc/self/status").saturating_sub(before);
    eprintln!("after {phase}: host peak RSS +{growth} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_streams_keep_host_memory_bounded() {
    // A guard, not a timing: each phase takes seconds; one that hangs
    // fails the test instead of the whole run.
    tokio::time::timeout(Duration::from_secs(600), streams())
        .await
        .expect("a hostile stream hung the host");
}

async fn streams() {
    let before = peak_rss_kib("/proc/self/status");

    // 1 GiB of exec output, consumed as it arrives.
    let chunk = Frame::data(stream::STDOUT, vec![b'o'; 64 * 1024]).unwrap();
    let agent = HostileAgent::with_script(move |_| {
        vec![
            Act::Frames(vec![reply(&Reply::Started { pid: 1 })]),
            Act::Repeat(chunk.clone()),
        ]
    })
    .await;
    let mut session = agent
        .client
        .exec_streaming(&GuestCommand::new("yes"))
        .await
        .unwrap();
    // 1 GiB consumed as it arrives; an agent that sends past the window
    // the host granted is refused first, whichever comes.
    let mut got = 0u64;
    while got < PUSHED {
        match session.next_event().await {
            Ok(Some(ExecEvent::Stdout(bytes))) => got += bytes.len() as u64,
            Ok(Some(ExecEvent::Started(_))) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => {
                assert!(e.to_string().contains("beyond the"), "{e}");
                break;
            }
        }
    }
    drop(session);
    report("1 GiB of exec output (or until past its window)", before);

    // 1 GiB of noise on the liveness channel (the counter also holds the
    // exec output above).
    agent.flood_announce();
    while agent.flooded.load(Ordering::Relaxed) < 2 * PUSHED {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(agent.client.is_alive());
    drop(agent);
    report("1 GiB more on the liveness channel", before);

    // Frames claiming 4 GiB, many times over.
    let huge = raw_header(FrameType::Data as u8, stream::STDOUT, u32::MAX).to_vec();
    let agent = HostileAgent::with_script(move |_| vec![Act::Bytes(huge.clone())]).await;
    for _ in 0..1000 {
        let err = agent
            .client
            .exec(&GuestCommand::new("x"))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Frame { .. }), "{err:?}");
    }
    report("1000 frames claiming 4 GiB", before);

    // Directory entries without end, with the default limits.
    let agent = HostileAgent::start(ClientConfig::default(), |_| {
        vec![
            Act::Frames(vec![dir("")]),
            Act::Endless(|n| dir(&format!("d{n:09}"))),
        ]
    })
    .await;
    // In memory where there is a tmpfs: the entries become directories.
    let scratch = tempfile::tempdir_in(shm_or_tmp()).unwrap();
    let dest = scratch.path().join("dest");
    let err = agent.client.copy_out("/src", &dest).await.unwrap_err();
    assert!(matches!(err, ClientError::Tree { .. }), "{err:?}");
    let entries = agent.flooded.load(Ordering::Relaxed);

    let growth = peak_rss_kib("/proc/self/status").saturating_sub(before);
    eprintln!("host peak RSS grew by {growth} KiB (endless tree: {entries} bytes of entries)");
    assert!(growth < BOUND_KIB, "host peak RSS grew by {growth} KiB");
}
