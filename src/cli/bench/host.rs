//! The host-process case: the embedded agent runs on this host over unix
//! sockets (no VM), so an exec round trip through it, against a local
//! fork/exec of the same command, is the protocol's own overhead.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use krunbox::client::{AgentClient, ClientConfig, GuestCommand};
use tempfile::TempDir;
use tokio::net::UnixListener;

use super::error::BenchError;
use super::stats::Figure;
use super::Ctx;

/// Exec `true` through the agent running as a host process.
pub const AGENT_TRUE: &str = "host.exec_true_agent";
/// `true` run locally with fork/exec (`std::process::Command::output`).
pub const LOCAL_TRUE: &str = "host.exec_true_local";

/// Samples of each figure per run: one is about a millisecond.
pub const SAMPLES_PER_RUN: usize = 20;

const CASE: &str = "host-exec";

/// The agent binary written to a temporary file and running from it.
struct HostAgent {
    client: AgentClient,
    child: Child,
    _dir: TempDir,
}

impl HostAgent {
    async fn start() -> Result<Self, BenchError> {
        let bytes = krunbox::agent_image::bytes().ok_or(BenchError::NoAgent)?;
        let dir = tempfile::Builder::new()
            .prefix("krunbox-bench-")
            .tempdir()
            .map_err(BenchError::io(CASE, "creating a temporary directory"))?;
        let bin = dir.path().join("krunbox-agent");
        // Written and closed before it runs (an open writer: ETXTBSY).
        std::fs::write(&bin, bytes)
            .and_then(|()| std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)))
            .map_err(BenchError::io(CASE, format!("writing {}", bin.display())))?;
        let announce = dir.path().join("announce.sock");
        let ops: PathBuf = dir.path().join("ops.sock");
        let listener = UnixListener::bind(&announce)
            .map_err(BenchError::io(CASE, "binding the announce socket"))?;
        let mut child = std::process::Command::new(&bin)
            .arg("--unix-announce")
            .arg(&announce)
            .arg("--unix-listen")
            .arg(&ops)
            .stdin(Stdio::null())
            .spawn()
            .map_err(BenchError::io(CASE, format!("starting {}", bin.display())))?;
        let config = ClientConfig {
            hello_timeout: Duration::from_secs(30),
            ..ClientConfig::default()
        };
        match AgentClient::accept(&listener, ops, config).await {
            Ok(client) => Ok(Self {
                client,
                child,
                _dir: dir,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(BenchError::agent(CASE, "connecting to the agent")(e))
            }
        }
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn host_exec(ctx: &mut Ctx) -> Result<(), BenchError> {
    let agent = HostAgent::start().await?;
    let through_agent = ctx.figure(Figure::new(
        AGENT_TRUE,
        "exec `true` via the agent as a host process (unix socket)",
    ));
    let local = ctx.figure(Figure::new(LOCAL_TRUE, "local fork/exec of `true`"));
    let command = GuestCommand::new("true");
    for run in ctx.all_runs() {
        for _ in 0..SAMPLES_PER_RUN {
            let t = Instant::now();
            let out = agent
                .client
                .exec(&command)
                .await
                .map_err(BenchError::agent(CASE, "exec"))?;
            let elapsed = t.elapsed();
            if !out.status.success() {
                return Err(BenchError::wrong(
                    CASE,
                    format!("`true` via the agent: {:?}", out.status),
                ));
            }
            ctx.sample(run, through_agent, elapsed);

            let t = Instant::now();
            let status = std::process::Command::new("true")
                .output()
                .map_err(BenchError::io(CASE, "running `true`"))?
                .status;
            let elapsed = t.elapsed();
            if !status.success() {
                return Err(BenchError::wrong(CASE, format!("local `true`: {status}")));
            }
            ctx.sample(run, local, elapsed);
        }
    }
    Ok(())
}
