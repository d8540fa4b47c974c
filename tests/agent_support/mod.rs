//! Shared by the `agent_*` tests: runs krunbox-agent as a host process on
//! unix sockets in a temporary directory and connects an `AgentClient`.
//!
//! The agent binary is found, in order: `$KRUNBOX_AGENT_BIN`; otherwise it
//! is built once per test process with `cargo build -p krunbox-agent` into
//! the same target directory and profile as the running test (a no-op when
//! it is up to date) and taken from there.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use krunbox::client::{AgentClient, ClientConfig};
use tempfile::TempDir;
use tokio::net::UnixListener;

/// The agent binary to run.
pub fn agent_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("KRUNBOX_AGENT_BIN") {
            return PathBuf::from(bin);
        }
        // .../target/<profile>/deps/agent_x-HASH
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let target_dir = profile_dir.parent().expect("target dir");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "-p", "krunbox-agent"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("running cargo build -p krunbox-agent");
        assert!(status.success(), "cargo build -p krunbox-agent failed");
        let bin = profile_dir.join("krunbox-agent");
        assert!(bin.exists(), "{bin:?} missing after the build");
        bin
    })
}

/// An agent process and a client connected to it; killed on drop.
pub struct TestAgent {
    pub client: AgentClient,
    pub child: Child,
    pub dir: TempDir,
    pub ops_path: PathBuf,
}

impl TestAgent {
    pub async fn start() -> Self {
        Self::start_with(ClientConfig::default()).await
    }

    pub async fn start_with(config: ClientConfig) -> Self {
        let (client, child, dir, ops_path) = launch(config).await;
        Self {
            client,
            child,
            dir,
            ops_path,
        }
    }

    /// A path inside the test's temporary directory (used as "guest" paths:
    /// the agent runs on this host).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn guest(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_owned()
    }

    /// Peak resident memory of the agent process, in KiB.
    pub fn agent_peak_rss_kib(&self) -> u64 {
        peak_rss_kib(&format!("/proc/{}/status", self.child.id()))
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an agent process on sockets in a new temporary directory and
/// connects to it: the client, the process, the directory, the ops socket.
pub async fn launch(config: ClientConfig) -> (AgentClient, Child, TempDir, PathBuf) {
    launch_wrapped(&[], config).await
}

/// Like [`launch`], with the agent started through `wrapper` (a command
/// and its arguments that end by running the agent, e.g. `unshare …`).
pub async fn launch_wrapped(
    wrapper: &[&str],
    config: ClientConfig,
) -> (AgentClient, Child, TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let announce = dir.path().join("announce.sock");
    let ops_path = dir.path().join("ops.sock");
    let listener = UnixListener::bind(&announce).unwrap();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(agent_bin());
            c
        }
        None => Command::new(agent_bin()),
    };
    let child = command
        .arg("--unix-announce")
        .arg(&announce)
        .arg("--unix-listen")
        .arg(&ops_path)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let client = AgentClient::accept(&listener, &ops_path, config)
        .await
        .unwrap();
    (client, child, dir, ops_path)
}

/// `VmHWM` from a /proc status file, in KiB.
pub fn peak_rss_kib(status_path: &str) -> u64 {
    let status = std::fs::read_to_string(status_path).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in status")
}

/// Relative path (bytes escaped), kind, mode and contents of every item: hard links
/// show as `HardLink(first)`, so equal listings mean equal link structure.
pub fn listing(dir: &Path) -> Vec<String> {
    krunbox_proto::tree::CopyPlan::walk(dir)
        .unwrap()
        .items
        .into_iter()
        .map(|item| {
            let meta = std::fs::symlink_metadata(&item.source).unwrap();
            let contents = if meta.is_file() {
                std::fs::read(&item.source).unwrap()
            } else {
                Vec::new()
            };
            let mode = std::os::unix::fs::MetadataExt::mode(&meta) & 0o7777;
            format!("{:?} {:?} {mode:o} {contents:?}", item.rel, item.kind)
        })
        .collect()
}
