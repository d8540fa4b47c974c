//! The monitor: the process `create` leaves behind, whose pid the caller
//! waits on. It holds the container's stdio, waits on `ctl.sock` for
//! `start`, runs the process through the agent, forwards `kill` requests
//! and the signals it gets itself to it, and exits with its exit status
//! (a signal's death as 128 + the signal, as a shell reports it). The VM
//! is powered off first; `delete` removes what is left.

use std::os::fd::{FromRawFd, RawFd};
use std::path::Path;
use std::time::Duration;

use krunbox::client::{AgentClient, ClientConfig, ExecControl, ExecSession};
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use crate::console;
use crate::container::{self, Container, Record};
use crate::ctl::{self, Reply, Request};
use crate::error::Error;
use crate::log::Log;
use crate::pump::{self, VM_GONE_STATUS};
use crate::spec;

/// How long the monitor waits for the VM to power off after the process.
const POWER_OFF_WAIT: Duration = Duration::from_secs(10);

/// The monitor's arguments (`krunbox-oci monitor`, started by `create`).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The container.
    pub(crate) container_id: String,
    /// The control socket, bound by `create` and inherited open.
    #[arg(long)]
    pub(crate) listen_fd: RawFd,
    /// Stdio is the container's console (`process.terminal`).
    #[arg(long)]
    pub(crate) console: bool,
}

/// Runs the monitor: its exit code.
pub(crate) fn run(root: Option<&Path>, log: &Log, args: Args) -> Result<i32, Error> {
    if args.console {
        console::attach()?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let code = runtime.block_on(async {
        // SAFETY: `create` bound this socket and left its descriptor open
        // for this process; nothing else here owns or closes it.
        let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(args.listen_fd) };
        let listener = listener
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(listener))
            .map_err(|source| Error::State {
                path: format!("fd {}", args.listen_fd).into(),
                source,
            })?;
        let state = container::state_dir(root)?;
        let container = Container::open(&state, &args.container_id)?;
        let mut record = container.record()?.clone();
        // `create` records this pid once it has it; from here on the
        // monitor writes the record, with it.
        record.monitor = krunbox::state::ProcessId::current();
        let agent = container
            .vm()?
            .agent(ClientConfig::default())
            .map_err(Error::Vm)?;
        let monitor = Monitor {
            dir: container.dir.clone(),
            record,
            agent,
            listener,
            signals: pump::forwarded_signals(args.console),
        };
        monitor.run(log).await
    });
    // The stdin reader may sit in a blocking read: do not wait for it.
    runtime.shutdown_background();
    code
}

struct Monitor {
    dir: std::path::PathBuf,
    record: Record,
    agent: AgentClient,
    listener: UnixListener,
    signals: mpsc::UnboundedReceiver<i32>,
}

/// How the wait for `start` ended.
enum Before {
    Started(ExecSession),
    /// Killed with this signal before it started.
    Killed(i32),
}

impl Monitor {
    async fn run(mut self, log: &Log) -> Result<i32, Error> {
        let code = match self.until_started().await {
            Ok(Before::Started(session)) => self.until_exit(session, log).await,
            Ok(Before::Killed(signal)) => 128 + signal,
            Err(error) => {
                log.error(&error);
                VM_GONE_STATUS
            }
        };
        self.finish(code).await
    }

    /// Serves requests until `start` or a kill.
    async fn until_started(&mut self) -> Result<Before, Error> {
        loop {
            let mut stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                Some(signal) = self.signals.recv() => return Ok(Before::Killed(signal)),
                () = self.agent.closed() => return Err(self.gone("waiting for start")),
            };
            let Ok(request) = ctl::read_request(&mut stream).await else {
                continue;
            };
            match request {
                Request::Start => match self.start().await {
                    Ok(session) => {
                        let _ = ctl::write_reply(&mut stream, &Reply::Ok).await;
                        return Ok(Before::Started(session));
                    }
                    Err(error) => {
                        let why = krunbox::error_chain(&error);
                        let _ = ctl::write_reply(&mut stream, &Reply::Error(why)).await;
                    }
                },
                Request::Kill { signal } => {
                    let _ = ctl::write_reply(&mut stream, &Reply::Ok).await;
                    return Ok(Before::Killed(signal));
                }
            }
        }
    }

    /// Starts the container's process and records that it runs.
    async fn start(&mut self) -> Result<ExecSession, Error> {
        let bundle = self.record.bundle.clone();
        let spec_error = |source| Error::Spec {
            bundle: bundle.clone(),
            source,
        };
        let spec = spec::load(&bundle).map_err(spec_error)?;
        let command = spec::process(&spec).map_err(spec_error)?;
        let terminal = spec.process().as_ref().is_some_and(spec::terminal);
        let session = pump::start(&self.agent, &command, terminal)
            .await
            .map_err(Error::Agent)?;
        self.record.started = true;
        container::write_record(&self.dir, &self.record)?;
        Ok(session)
    }

    /// Pumps the process's output and stdin and forwards kills until it
    /// exits: its exit status.
    async fn until_exit(&mut self, session: ExecSession, log: &Log) -> i32 {
        let control = session.control();
        let listener = &self.listener;
        let serve = || async {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_running(stream, control.clone()));
            }
        };
        pump::until_exit(session, &mut self.signals, serve, log).await
    }

    /// Records the exit status, powers the VM off and returns `code`.
    async fn finish(mut self, code: i32) -> Result<i32, Error> {
        self.record.exit_code = Some(code);
        let recorded = container::write_record(&self.dir, &self.record);
        let _ = tokio::time::timeout(POWER_OFF_WAIT, self.agent.shutdown(0)).await;
        recorded.map(|()| code)
    }

    fn gone(&self, op: &'static str) -> Error {
        let reason = self
            .agent
            .gone_reason()
            .unwrap_or(krunbox::client::GoneReason::Closed);
        Error::Agent(krunbox::client::ClientError::Gone { op, reason })
    }
}

/// Answers one request while the process runs.
async fn serve_running(mut stream: tokio::net::UnixStream, control: ExecControl) {
    let reply = match ctl::read_request(&mut stream).await {
        Ok(Request::Kill { signal }) => match control.signal(signal).await {
            Ok(()) => Reply::Ok,
            Err(error) => Reply::Error(krunbox::error_chain(&error)),
        },
        Ok(Request::Start) => Reply::Error("the container was started already".into()),
        Err(_) => return,
    };
    let _ = ctl::write_reply(&mut stream, &reply).await;
}
