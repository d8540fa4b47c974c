//! The parent side: spawn a runner and follow it.

use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::config::RunnerConfig;
use super::event::{monotonic_us, RunnerEvent, RunnerFailure};
use super::{CONFIG_ENV, EVENT_FD, KEPT_ENV};

/// How one of the runner's standard streams is connected. The guest
/// workload reads and writes through them.
#[derive(Debug)]
pub enum StdioSpec {
    /// Shared with this process.
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe this process reads or writes.
    Piped,
    /// This open file (e.g. a log).
    File(std::fs::File),
}

impl StdioSpec {
    fn into_stdio(self) -> Stdio {
        match self {
            StdioSpec::File(file) => Stdio::from(file),
            StdioSpec::Inherit => Stdio::inherit(),
            StdioSpec::Null => Stdio::null(),
            StdioSpec::Piped => Stdio::piped(),
        }
    }
}

/// The runner could not be started or followed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The event pipe could not be made.
    #[error("cannot create the runner's event pipe")]
    Pipe(#[source] nix::Error),
    /// The config could not be serialized.
    #[error("cannot serialize the runner config")]
    Config(#[source] serde_json::Error),
    /// The runner program could not be executed.
    #[error("cannot execute the runner {}", program.display())]
    Exec {
        /// The runner program.
        program: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The runner could not be started in a user namespace of its own (an
    /// image root booted without root), or not executed.
    #[error(
        "cannot start the runner {} as root of a user namespace of its own (an image \
         boots so when the caller is not root; user namespaces may be disabled here: \
         sysctl kernel.unprivileged_userns_clone, user.max_user_namespaces)",
        program.display()
    )]
    UserNamespace {
        /// The runner program.
        program: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Waiting for the runner failed.
    #[error("cannot wait for the runner process")]
    Wait(#[source] io::Error),
}

/// A spawned runner process.
#[derive(Debug)]
pub struct RunnerProcess {
    child: Child,
    spawned_at_us: u64,
    events: mpsc::Receiver<RunnerEvent>,
    reader: Option<JoinHandle<()>>,
    /// The VM's cgroup, removed once the runner is reaped.
    cgroup_dir: Option<PathBuf>,
}

impl RunnerProcess {
    /// Starts `program` with `args` as a runner for `config`.
    pub fn spawn(
        program: &Path,
        args: &[std::ffi::OsString],
        config: &RunnerConfig,
        stdin: StdioSpec,
        stdout: StdioSpec,
        stderr: StdioSpec,
    ) -> Result<Self, SpawnError> {
        let json = serde_json::to_string(config).map_err(SpawnError::Config)?;
        let (read_end, write_end) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)?;
        let mut command = Command::new(program);
        command.args(args);
        // The caller's environment stays with the caller (runner::confine).
        command.env_clear();
        for key in KEPT_ENV {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .env(CONFIG_ENV, json)
            .stdin(stdin.into_stdio())
            .stdout(stdout.into_stdio())
            .stderr(stderr.into_stdio());
        let write_fd = write_end.as_raw_fd();
        let detached = config.detached;
        let user_ns = config
            .own_user_namespace
            .then(super::user_ns::RootMapping::for_caller);
        let in_user_ns = user_ns.is_some();
        // SAFETY: the closure runs between fork and exec and calls only
        // dup2, setsid and what `RootMapping::enter` calls (unshare, open,
        // write, close on buffers made before the fork), all
        // async-signal-safe. dup2 clears FD_CLOEXEC on the new descriptor,
        // so fd 3 survives the exec while `write_fd` does not. setsid makes
        // a detached runner the leader of a new session, out of reach of
        // its caller's terminal signals.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(write_fd, EVENT_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                if detached && libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(mapping) = &user_ns {
                    mapping.enter()?;
                }
                Ok(())
            });
        }
        let spawned_at_us = monotonic_us();
        let child = command.spawn().map_err(|source| {
            let program = program.to_owned();
            match in_user_ns {
                true => SpawnError::UserNamespace { program, source },
                false => SpawnError::Exec { program, source },
            }
        })?;
        drop(write_end);
        let (sender, events) = mpsc::channel();
        let reader = std::thread::spawn(move || read_events(read_end, sender));
        Ok(Self {
            child,
            spawned_at_us,
            events,
            reader: Some(reader),
            cgroup_dir: config.cgroup_dir.clone(),
        })
    }

    /// The runner's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// When it was spawned, on CLOCK_MONOTONIC in microseconds.
    pub fn spawned_at_us(&self) -> u64 {
        self.spawned_at_us
    }

    /// The process, for its piped streams.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Blocks until the runner reports its next event; `None` once it has
    /// exited and said nothing more.
    pub fn next_event(&self) -> Option<RunnerEvent> {
        self.events.recv().ok()
    }

    /// Waits for the runner to exit. Returns its exit status (the guest
    /// workload's exit code) and every event it sent, or the failure it
    /// reported.
    pub fn wait(&mut self) -> Result<RunnerExit, SpawnError> {
        let status = self.child.wait().map_err(SpawnError::Wait)?;
        self.reaped();
        if let Some(reader) = self.reader.take() {
            // The pipe closes when the runner exits, so this returns.
            let _ = reader.join();
        }
        let events: Vec<RunnerEvent> = self.events.try_iter().collect();
        let failure = events.iter().find_map(|e| match e {
            RunnerEvent::Failed(f) => Some(f.clone()),
            _ => None,
        });
        Ok(RunnerExit {
            status,
            events,
            failure,
        })
    }

    /// Kills the runner (and so the VM) and reaps it.
    pub fn kill(&mut self) -> Result<(), SpawnError> {
        match self.child.kill() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            Err(e) => return Err(SpawnError::Wait(e)),
        }
        self.child.wait().map_err(SpawnError::Wait)?;
        self.reaped();
        Ok(())
    }

    /// After the runner is reaped: its cgroup, now empty, goes too. (A
    /// detached runner's monitor removes it when the VM ends; this then
    /// finds it gone.)
    fn reaped(&self) {
        if let Some(dir) = &self.cgroup_dir {
            super::confine::cgroup::remove(dir);
        }
    }
}

/// How a runner ended.
#[derive(Debug)]
pub struct RunnerExit {
    /// The runner's exit status: the guest workload's exit code, unless
    /// `failure` is set.
    pub status: ExitStatus,
    /// Every event the runner sent, in order.
    pub events: Vec<RunnerEvent>,
    /// Why the VM could not start, if the runner said so.
    pub failure: Option<RunnerFailure>,
}

fn read_events(read_end: OwnedFd, sender: mpsc::Sender<RunnerEvent>) {
    let reader = BufReader::new(std::fs::File::from(read_end));
    for line in reader.lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str(&line) {
            Ok(event) => {
                if sender.send(event).is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = sender.send(RunnerEvent::Failed(RunnerFailure {
                    message: format!("unreadable runner event {line:?}: {e}"),
                    errno: None,
                }));
            }
        }
    }
}
