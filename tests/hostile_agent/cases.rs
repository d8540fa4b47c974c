//! What the hostile-agent cases share: short limits, a guard against
//! hangs, a double answering `stat` honestly, and frame builders.

use std::path::Path;
use std::time::Duration;

use krunbox::client::{ClientConfig, ClientError, GuestCommand};
use krunbox_proto::{stream, ExecStatus, Frame, FrameError, Reply};

use super::{honest, reply, Act, HostileAgent};

/// Short limits, so that every bounded wait ends quickly.
pub fn short() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(500),
        default_exec_timeout: Duration::from_millis(500),
        exec_grace: Duration::from_millis(500),
        max_output: 1 << 20,
        max_copy_entries: 10_000,
        max_copy_bytes: 8 << 20,
        liveness_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

/// A double that answers `stat` honestly and everything else with `acts`.
pub async fn double(acts: Vec<Act>) -> HostileAgent {
    HostileAgent::start(short(), move |req| {
        honest(req).unwrap_or_else(|| acts.clone())
    })
    .await
}

/// Fails the test if `fut` has not finished after 30 s.
pub async fn guarded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("the call hung")
}

/// The client still works after the hostile operation.
pub async fn still_usable(agent: &HostileAgent) {
    let stat = guarded(agent.client.stat("/x")).await;
    assert!(stat.is_ok(), "the next operation failed: {stat:?}");
    assert!(agent.client.is_alive());
}

pub fn started() -> Frame {
    reply(&Reply::Started { pid: 7 })
}

pub fn stdout(bytes: &[u8]) -> Frame {
    Frame::data(stream::STDOUT, bytes.to_vec()).unwrap()
}

pub fn exited() -> Frame {
    reply(&Reply::Exited(ExecStatus {
        code: Some(0),
        signal: None,
        timed_out: false,
    }))
}

/// The frame error inside `err`, if that is what it is.
pub fn frame_error(err: &ClientError) -> Option<&FrameError> {
    match err {
        ClientError::Frame { source, .. } => Some(source),
        _ => None,
    }
}

/// Runs an exec that must fail, and its error.
pub async fn exec_err(agent: &HostileAgent) -> ClientError {
    guarded(agent.client.exec(&GuestCommand::new("x")))
        .await
        .expect_err("a hostile exec must fail")
}

/// Copies out of the double into `<dir>/out/dest`; returns the result and
/// checks that nothing appeared outside `out` and, on failure, nothing in it.
pub async fn copy_out(agent: &HostileAgent) -> Result<(), ClientError> {
    let out = agent.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let result = guarded(agent.client.copy_out("/src", &out.join("dest"))).await;
    assert_eq!(
        names(agent.dir.path()),
        ["ops.sock", "out"],
        "wrote outside"
    );
    if result.is_err() {
        assert!(names(&out).is_empty(), "left behind: {:?}", names(&out));
    }
    result.map(|_| ())
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}
