//! A guest process's stdio and signals through this process: its output
//! to this process's stdout and stderr, this process's stdin to it, the
//! signals this process gets passed on to it. The monitor runs the
//! container's process this way, and `exec` its other processes.

use std::future::Future;
use std::io::Write;

use krunbox::client::{AgentClient, ClientError, ExecEvent, ExecSession, ExecStatus, GuestCommand};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::log::Log;

/// The exit status reported when the VM died under the process: as if
/// it had been killed (128 + SIGKILL).
pub(crate) const VM_GONE_STATUS: i32 = 128 + 9;

/// Pumps `session` until its process exits: its exit status. `serve`
/// runs meanwhile, again each time it returns (the monitor answers its
/// control socket there). A `SIGWINCH` among `signals` resizes the
/// guest's pty to this process's console.
pub(crate) async fn until_exit<F, Fut>(
    mut session: ExecSession,
    signals: &mut mpsc::UnboundedReceiver<i32>,
    mut serve: F,
    log: &Log,
) -> i32
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let control = session.control();
    let stdin = control.clone();
    tokio::spawn(async move { stdin.copy_stdin_from(tokio::io::stdin()).await });
    let mut output = Output::default();
    loop {
        tokio::select! {
            event = session.next_event() => match event {
                Ok(Some(ExecEvent::Stdout(bytes))) => output.write(1, &bytes),
                Ok(Some(ExecEvent::Stderr(bytes))) => output.write(2, &bytes),
                Ok(Some(ExecEvent::Started(_))) => {}
                Ok(Some(ExecEvent::Exit(status))) => return exit_code(status),
                Ok(None) => return VM_GONE_STATUS,
                Err(error) => {
                    log.error(&Error::Agent(error));
                    return VM_GONE_STATUS;
                }
            },
            () = serve() => {}
            Some(signal) = signals.recv() => {
                if signal == sigwinch() {
                    let _ = control.resize(crate::console::size()).await;
                } else {
                    let _ = control.signal(signal).await;
                }
            }
        }
    }
}

/// Starts `command`: on a pty of the console's size when it has a
/// `terminal`, else with its stdout and stderr apart.
pub(crate) async fn start(
    agent: &AgentClient,
    command: &GuestCommand,
    terminal: bool,
) -> Result<ExecSession, ClientError> {
    if terminal {
        agent.exec_pty(command, crate::console::size()).await
    } else {
        agent.exec_streaming(command).await
    }
}

/// The shell's convention: the code, or 128 + the signal.
pub(crate) fn exit_code(status: ExecStatus) -> i32 {
    match (status.code, status.signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => VM_GONE_STATUS,
    }
}

/// This process's stdout and stderr: the container's (or the exec's). A reader that went
/// away is not the process's concern: its output is then dropped.
#[derive(Default)]
struct Output {
    closed: [bool; 2],
}

impl Output {
    fn write(&mut self, fd: usize, bytes: &[u8]) {
        let index = fd - 1;
        if self.closed[index] {
            return;
        }
        let written = if fd == 1 {
            std::io::stdout().lock().write_all(bytes)
        } else {
            std::io::stderr().lock().write_all(bytes)
        };
        self.closed[index] = written.is_err();
    }
}

/// `SIGWINCH`'s number: on a console, a resize to pass on, not a signal.
fn sigwinch() -> i32 {
    SignalKind::window_change().as_raw_value()
}

/// The signals this process passes on to the container's process instead of
/// dying of them; on a `console`, also `SIGWINCH` (see [`until_exit`]).
pub(crate) fn forwarded_signals(console: bool) -> mpsc::UnboundedReceiver<i32> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut kinds = vec![
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
        SignalKind::quit(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
    ];
    if console {
        kinds.push(SignalKind::window_change());
    }
    for kind in kinds {
        let Ok(mut stream) = signal(kind) else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(kind.as_raw_value()).is_err() {
                    return;
                }
            }
        });
    }
    rx
}
