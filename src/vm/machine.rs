//! [`Vm`]: a booted VM with its agent connected, for any number of execs
//! and copies over one boot.
//!
//! ```text
//!  boot():  socket dir (0700) ─ bind announce.sock ─ spawn runner ─┐
//!           runner: krun config, vsock 1024 → announce.sock (guest connects)
//!                                vsock 1025 ← ops.sock (libkrun listens)
//!           guest: libkrun init → /.krunbox-agent --vsock 1024,1025
//!           agent: listen on 1025, connect to 1024, send Hello ─► ready
//! ```
//!
//! Readiness is the agent's hello: no polling. If the runner dies first,
//! its failure (or exit status) is the error, with the tails of the guest
//! console (kernel, init and agent messages: always written to a file,
//! the caller's [`VmConfig::console_log`] or one in the socket
//! directory) and of the runner's own output.

use std::fs::{File, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::net::UnixListener;
use tokio::sync::{oneshot, watch};

use super::config::VmConfig;
use super::error::Error;
use super::phases::BootPhases;
use super::preflight;
use super::timeline::BootTimeline;
use crate::client::{AgentClient, ClientConfig, ClientError};
use crate::runner::{
    monotonic_us, ConfinementReport, RunnerEvent, RunnerExit, RunnerProcess, StdioSpec, VsockPort,
    Workload,
};

/// Guest vsock port the agent connects to when it starts.
pub const ANNOUNCE_PORT: u32 = 1024;
/// Guest vsock port the agent listens on for operations.
pub const OPS_PORT: u32 = 1025;

/// How many bytes of each log an error quotes.
const LOG_TAIL_BYTES: u64 = 2048;
/// How long a VM may run on after its agent is gone before it counts as
/// wedged (e.g. its guest halted on `poweroff`, which libkrun's guests
/// cannot do) and its runner is killed.
const WEDGED_AFTER: Duration = Duration::from_secs(30);

/// A running VM whose agent is connected.
///
/// Every operation goes through [`Vm::agent`] (exec, copies, provisioning,
/// background processes), each over its own vsock connection, so any
/// number can be in flight at once. Dropping the handle kills the VM and
/// removes its sockets.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use krunbox::client::GuestCommand;
/// use krunbox::vm::VmConfig;
///
/// let vm = VmConfig::new("/srv/rootfs").boot().await?;
/// let out = vm.agent().exec(&GuestCommand::new("uname").arg("-a")).await?;
/// println!("{}", out.stdout_text());
/// vm.shutdown(std::time::Duration::from_secs(10)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Vm {
    client: AgentClient,
    runner_pid: Pid,
    exit: watch::Receiver<Option<ExitSummary>>,
    timeline: BootTimeline,
    dir: Mutex<Option<SocketDir>>,
    log: Logs,
    /// What the runner applied to itself, as it said.
    confinement: Option<ConfinementReport>,
    watchdog: tokio::task::JoinHandle<()>,
    /// Set by [`Vm::detach`]: dropping the handle leaves the VM running.
    detached: bool,
}

/// A VM's two logs.
#[derive(Debug, Clone)]
struct Logs {
    /// The guest console.
    console: PathBuf,
    /// The runner's standard output and error (libkrun's messages).
    runner: PathBuf,
    /// The egress mode's record of attempts, one JSON line each.
    egress: Option<PathBuf>,
}

/// Where a VM's sockets and log live.
#[derive(Debug)]
pub(crate) enum SocketDir {
    /// A private temporary directory, removed with the [`Vm`].
    Private(tempfile::TempDir),
    /// A directory the caller owns and cleans up (a named VM's).
    Given(PathBuf),
}

impl SocketDir {
    fn path(&self) -> &Path {
        match self {
            Self::Private(dir) => dir.path(),
            Self::Given(path) => path,
        }
    }
}

/// What is left of a [`Vm`] handle after [`Vm::detach`]: enough to find the
/// VM again.
#[derive(Debug, Clone)]
pub(crate) struct Detached {
    pub runner_pid: u32,
    pub hello: krunbox_proto::Hello,
    pub timeline: BootTimeline,
    pub confinement: Option<ConfinementReport>,
}

/// How the runner ended, as far as the VM's owner cares.
#[derive(Debug, Clone)]
struct ExitSummary {
    status: Option<ExitStatus>,
    failure: Option<String>,
}

impl VmConfig {
    /// Boots the VM with the krunbox agent as its workload and waits until
    /// the agent announces itself (bounded by `hello_timeout`, 60 s by
    /// default: generous, for emulated CPUs).
    pub async fn boot(&self) -> Result<Vm, Error> {
        self.boot_with(ClientConfig {
            hello_timeout: Duration::from_secs(60),
            ..ClientConfig::default()
        })
        .await
    }

    /// [`VmConfig::boot`] with the agent client's timeouts and limits.
    pub async fn boot_with(&self, client_config: ClientConfig) -> Result<Vm, Error> {
        let dir = SocketDir::Private(private_dir().map_err(Error::StateDir)?);
        self.boot_in(dir, client_config, false).await
    }

    /// Boots with the sockets and log in `dir`. A `detached` VM's runner
    /// starts its own session and outlives this process, and its agent
    /// keeps serving when the announce connection closes: see
    /// [`Vm::detach`].
    pub(crate) async fn boot_in(
        &self,
        dir: SocketDir,
        client_config: ClientConfig,
        detached: bool,
    ) -> Result<Vm, Error> {
        self.validate()?;
        preflight()?;
        let program = self.runner.resolve()?;
        let announce = dir.path().join("announce.sock");
        let ops = dir.path().join("ops.sock");
        let runner_log = dir.path().join("vm.log");
        let listener = UnixListener::bind(&announce).map_err(Error::StateDir)?;
        owner_only(&announce).map_err(Error::StateDir)?;
        let mut args = vec!["--vsock".to_owned(), format!("{ANNOUNCE_PORT},{OPS_PORT}")];
        if detached {
            args.insert(0, "--persist".to_owned());
        }
        let workload = Workload::Agent { args };
        let ports = vec![
            VsockPort {
                port: ANNOUNCE_PORT,
                path: announce.clone(),
                listen: false,
            },
            VsockPort {
                port: OPS_PORT,
                path: ops.clone(),
                listen: true,
            },
        ];
        let mut config = self.runner_config(workload, ports)?;
        self.place_boot_root(&mut config, dir.path())
            .map_err(Error::StateDir)?;
        if let Some(ids) = self.confinement.user {
            super::confinement::hand_over(dir.path(), ids).map_err(Error::StateDir)?;
        }
        config.detached = detached;
        if detached {
            config.exit_record = Some(dir.path().join(crate::state::EXIT_RECORD_FILE));
        }
        let console = config
            .console_log
            .get_or_insert_with(|| dir.path().join("console.log"))
            .clone();
        let egress = config.egress.as_mut().map(|setup| {
            let path = dir.path().join(crate::state::EGRESS_LOG_FILE);
            setup.logs.push(path.clone());
            path
        });
        let log = Logs {
            console,
            runner: runner_log,
            egress,
        };
        let log_file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&log.runner)
            .map_err(Error::StateDir)?;
        let runner = RunnerProcess::spawn(
            &program,
            self.runner.args(),
            &config,
            StdioSpec::Null,
            StdioSpec::File(log_file.try_clone().map_err(Error::StateDir)?),
            StdioSpec::File(log_file),
        )?;
        let runner_pid = Pid::from_raw(runner.id() as i32);
        let mut timeline = BootTimeline::spawned(runner.spawned_at_us());
        let (started_tx, started_rx) = oneshot::channel();
        let (exit_tx, exit) = watch::channel(None);
        let sockets = [announce.clone(), ops.clone()];
        std::thread::spawn(move || follow_runner(runner, started_tx, exit_tx, sockets));
        let unfinished = UnfinishedBoot {
            runner_pid,
            exit: exit.clone(),
            armed: true,
        };

        let hello = AgentClient::accept(&listener, ops.clone(), client_config);
        let died = wait_exit(exit.clone());
        let client = tokio::select! {
            client = hello => client,
            summary = died => {
                return Err(boot_failure(summary, &log));
            }
        };
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                return Err(Error::Agent {
                    source: e,
                    log_tail: log.tail(),
                });
            }
        };
        // libkrun made the ops socket (it listens there) with the umask's
        // mode; the directory is private anyway, the socket becomes so too.
        owner_only(&ops).map_err(Error::StateDir)?;
        timeline.agent_ready(monotonic_us(), client.hello());
        let mut confinement = None;
        if let Ok((configured, entered, confined)) = started_rx.await {
            timeline.runner_started((configured, entered));
            confinement = confined;
        }
        // Only this user may connect (the directory is 0700 already); the
        // announce socket has served its purpose.
        let _ = std::fs::set_permissions(client.ops_path(), Permissions::from_mode(0o600));
        drop(listener);
        let _ = std::fs::remove_file(dir.path().join("announce.sock"));
        let watchdog = tokio::spawn(kill_when_wedged(client.clone(), exit.clone(), runner_pid));
        unfinished.booted();
        Ok(Vm {
            client,
            runner_pid,
            exit,
            timeline,
            dir: Mutex::new(Some(dir)),
            log,
            confinement,
            watchdog,
            detached: false,
        })
    }
}

impl Vm {
    /// The agent: exec, copies, provisioning, background processes.
    pub fn agent(&self) -> &AgentClient {
        &self.client
    }

    /// What the VM's runner applied to itself (no_new_privs, Landlock,
    /// seccomp), as it reported before starting the VM; `None` for a VM
    /// this handle was not the one to boot.
    pub fn confinement(&self) -> Option<&ConfinementReport> {
        self.confinement.as_ref()
    }

    /// When each boot phase ended, up to the first exec through
    /// [`Vm::agent`] once one has finished.
    pub fn timeline(&self) -> BootTimeline {
        let mut timeline = self.timeline.clone();
        timeline.first_exec_done(self.client.first_exec_done_us());
        // Read from /proc when asked, not on the boot's path: the vCPU
        // thread's start time stays as long as the runner runs.
        timeline.vcpu_started = super::vcpu_start::after_runner_start(self.runner_pid());
        timeline
    }

    /// The runner's process id.
    pub fn runner_pid(&self) -> u32 {
        self.runner_pid.as_raw() as u32
    }

    /// The file holding the guest console: kernel, init and agent
    /// messages.
    pub fn log_path(&self) -> &Path {
        &self.log.console
    }

    /// The file holding the runner's own messages (libkrun's log).
    pub fn runner_log_path(&self) -> &Path {
        &self.log.runner
    }

    /// The egress mode's record: one [`EgressEvent`] as a JSON line per
    /// attempt, appended as they happen; `None` in the other modes.
    ///
    /// [`EgressEvent`]: crate::egress::EgressEvent
    pub fn egress_log_path(&self) -> Option<&Path> {
        self.log.egress.as_deref()
    }

    /// Follows the egress attempts as they are recorded, from the first
    /// (`None` in the other modes).
    pub fn egress_tail(&self) -> Option<crate::egress::events::EventTail> {
        self.log
            .egress
            .as_ref()
            .map(crate::egress::events::EventTail::new)
    }

    /// The egress attempts recorded so far (none in the other modes).
    pub fn egress_events(&self) -> std::io::Result<Vec<crate::egress::EgressEvent>> {
        match &self.log.egress {
            Some(path) => crate::egress::events::read_log(path),
            None => Ok(Vec::new()),
        }
    }

    /// Whether the VM is still running.
    pub fn is_running(&self) -> bool {
        self.exit.borrow().is_none()
    }

    /// The boot's phases, every one in host time, summing to the time to
    /// ready: places the guest's clock on the host's (a few round trips to
    /// the agent, [`AgentClient::guest_clock`]) and the timeline's guest
    /// stamps with it. `None` when the timeline lacks a stamp.
    pub async fn boot_phases(&self) -> Result<Option<BootPhases>, ClientError> {
        let clock = self.client.guest_clock().await?;
        Ok(BootPhases::of(&self.timeline(), &clock))
    }

    /// Resolves once the VM's runner has exited (at once if it has): the
    /// VM's liveness, without polling. The future holds no borrow of the
    /// handle.
    pub fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let exit = self.exit.clone();
        async move {
            wait_exit(exit).await;
        }
    }

    /// How the runner exited, once it has (`None` while the VM runs, or
    /// when its status could not be read).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit
            .borrow()
            .as_ref()
            .and_then(|summary| summary.status)
    }

    /// Asks the guest to sync and power off, and waits for the runner to
    /// exit, at most `timeout`; kills it after that. Returns the VM's exit
    /// status (the agent exits with 0 on a requested shutdown).
    pub async fn shutdown(self, timeout: Duration) -> Result<ExitStatus, Error> {
        let asked = self.client.shutdown(0).await;
        let waited = tokio::time::timeout(timeout, wait_exit(self.exit.clone())).await;
        match (asked, waited) {
            (_, Ok(summary)) => summary.status.ok_or_else(|| Error::Lost {
                reason: summary.failure.unwrap_or_else(|| "no exit status".into()),
                log_tail: self.log.tail(),
            }),
            (Err(e), Err(_)) => Err(Error::Agent {
                source: e,
                log_tail: self.log.tail(),
            }),
            (Ok(()), Err(_)) => {
                self.kill_now();
                Err(Error::ShutdownTimeout(timeout))
            }
        }
    }

    /// The end of the VM's log, for an error that names it.
    pub(crate) fn log_tail(&self) -> String {
        self.log.tail()
    }

    /// Kills the VM at once and waits until its runner is gone.
    pub async fn kill(self) {
        self.kill_now();
        wait_exit(self.exit.clone()).await;
    }

    /// Lets the VM run on without this handle (a named VM): dropping it
    /// then neither kills the VM nor touches its directory.
    pub(crate) fn detach(mut self) -> Detached {
        self.detached = true;
        Detached {
            runner_pid: self.runner_pid(),
            hello: self.client.hello().clone(),
            timeline: self.timeline.clone(),
            confinement: self.confinement.clone(),
        }
    }

    fn kill_now(&self) {
        if self.is_running() {
            // The runner is not reaped until `exit` is set, so the pid is
            // still this VM's runner.
            let _ = kill(self.runner_pid, Signal::SIGKILL);
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.watchdog.abort();
        if self.detached {
            return;
        }
        self.kill_now();
        if let Ok(mut dir) = self.dir.lock() {
            // Removes the sockets and the log.
            drop(dir.take());
        }
    }
}

/// A runner whose boot has not finished: dropped before
/// [`UnfinishedBoot::booted`] (the boot failed, or its future was dropped
/// by a caller's timeout, an aborted task, a closing pool), it kills the
/// runner, so that no VM outlives a boot that did not return it.
struct UnfinishedBoot {
    runner_pid: Pid,
    exit: watch::Receiver<Option<ExitSummary>>,
    armed: bool,
}

impl UnfinishedBoot {
    /// The boot returned its [`Vm`], which owns the runner from now on.
    fn booted(mut self) {
        self.armed = false;
    }
}

impl Drop for UnfinishedBoot {
    fn drop(&mut self) {
        // Not reaped until `exit` is set: the pid is still the runner's.
        if self.armed && self.exit.borrow().is_none() {
            let _ = kill(self.runner_pid, Signal::SIGKILL);
        }
    }
}

/// A private directory for one VM's sockets: short paths (unix sockets
/// take at most 107 bytes), mode 0700.
pub(crate) fn private_dir() -> std::io::Result<tempfile::TempDir> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("krunbox-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
}

/// Once the agent is gone, gives the VM [`WEDGED_AFTER`] to end, then
/// kills its runner.
async fn kill_when_wedged(
    agent: AgentClient,
    exit: watch::Receiver<Option<ExitSummary>>,
    runner: Pid,
) {
    agent.closed().await;
    let ended = tokio::time::timeout(WEDGED_AFTER, wait_exit(exit.clone())).await;
    // Not reaped while `exit` is unset, so the pid is still the runner's.
    if ended.is_err() && exit.borrow().is_none() {
        let _ = kill(runner, Signal::SIGKILL);
    }
}

/// Makes `path` readable and writable by its owner only.
fn owner_only(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Runs on its own thread: reports when the runner entered the VM, then
/// reaps it, removes its (now dead) sockets and publishes how it ended.
fn follow_runner(
    mut runner: RunnerProcess,
    started: oneshot::Sender<(u64, u64, Option<ConfinementReport>)>,
    exit: watch::Sender<Option<ExitSummary>>,
    sockets: [PathBuf; 2],
) {
    let mut configured = None;
    let mut confined = None;
    let mut started = Some(started);
    while let Some(event) = runner.next_event() {
        match event {
            RunnerEvent::Configured { at_us } => configured = Some(at_us),
            RunnerEvent::Confined(report) => confined = Some(report),
            RunnerEvent::Entering { at_us } => {
                if let Some(tx) = started.take() {
                    let _ = tx.send((configured.unwrap_or(at_us), at_us, confined.take()));
                }
                break;
            }
            RunnerEvent::Failed(_) => break,
        }
    }
    let summary = match runner.wait() {
        Ok(RunnerExit {
            status, failure, ..
        }) => ExitSummary {
            status: Some(status),
            failure: failure.map(|f| crate::error_chain(&f)),
        },
        Err(e) => ExitSummary {
            status: None,
            failure: Some(crate::error_chain(&e)),
        },
    };
    for socket in &sockets {
        let _ = std::fs::remove_file(socket);
    }
    let _ = exit.send(Some(summary));
}

async fn wait_exit(mut exit: watch::Receiver<Option<ExitSummary>>) -> ExitSummary {
    match exit.wait_for(Option::is_some).await {
        Ok(summary) => summary.clone().expect("waited for Some"),
        Err(_) => ExitSummary {
            status: None,
            failure: Some("the runner's follower thread ended".into()),
        },
    }
}

fn boot_failure(summary: ExitSummary, log: &Logs) -> Error {
    let reason = match (summary.failure, summary.status) {
        (Some(failure), _) => failure,
        (None, Some(status)) => format!("the VM exited ({status}) before its agent started"),
        (None, None) => "the VM's runner vanished".into(),
    };
    Error::Lost {
        reason,
        log_tail: log.tail(),
    }
}

impl Logs {
    /// The ends of both logs, for error messages.
    fn tail(&self) -> String {
        let console = tail(&self.console);
        let runner = tail(&self.runner);
        match (console.is_empty(), runner.is_empty()) {
            (_, true) => console,
            (true, false) => runner,
            (false, false) => format!("{console}\n--- runner ---\n{runner}"),
        }
    }
}

/// The last [`LOG_TAIL_BYTES`] of a log.
fn tail(log: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = File::open(log) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut buf = Vec::new();
    let _ = file.take(LOG_TAIL_BYTES).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).trim_end().to_owned()
}
