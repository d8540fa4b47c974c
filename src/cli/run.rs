//! `krunbox run`: one command in a fresh VM.

use std::io::Read;
use std::time::Duration;

use clap::Args;
use krunbox::client::{Command, NO_TIMEOUT};
use krunbox::vm::Error;
use tokio::sync::mpsc;

use super::error::CliError;
use super::exec::{PumpError, Pumped};
use super::output::{WriteEnd, EXIT_BROKEN_PIPE};
use super::report;
use super::vm_args::VmArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    vm: VmArgs,
    /// Boot with the agent, run the command through it, and print the boot
    /// timeline on standard error when it ends.
    #[arg(long)]
    timings: bool,
    /// The command to run in the guest, and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Both modes run the command through the agent, not as libkrun's own
/// workload: the agent's exec path declares every stream's length (a cut
/// stream is an error, not a short output with exit status 0), holds the
/// guest process back while this process's output is not read, and ends
/// it with SIGPIPE when the reader goes away (`krunbox run … | head`);
/// libkrun's console ports do neither.
pub fn run(args: RunArgs) -> i32 {
    super::report::block_on(async move {
        match exec_in_vm(args).await {
            Ok(code) => code,
            Err(RunError::Vm(e)) => report::fail(&e),
            Err(RunError::Output(source)) => report::fail(&CliError::Output {
                vm: "started by run".to_owned(),
                source,
            }),
        }
    })
}

/// Why `run` failed: the VM, or writing its output here.
enum RunError {
    Vm(Error),
    Output(WriteEnd),
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        Self::Vm(e)
    }
}

async fn exec_in_vm(args: RunArgs) -> Result<i32, RunError> {
    let vm = args.vm.config().boot().await?;
    let agent_error = |source| Error::Agent {
        source,
        log_tail: String::new(),
    };
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let command = Command::new(program.clone())
        .args(rest.iter().cloned())
        .timeout(NO_TIMEOUT)
        .stream_stdin();
    let session = vm
        .agent()
        .exec_streaming(&command)
        .await
        .map_err(agent_error)?;
    let control = session.control();
    let mut stdin = stdin_chunks();
    tokio::spawn(async move {
        while let Some(chunk) = stdin.recv().await {
            if control.write_stdin(&chunk).await.is_err() {
                return;
            }
        }
        let _ = control.close_stdin().await;
    });
    let code = match super::exec::pump(session, false).await {
        Ok(Pumped::Exited(status)) => status
            .code
            .unwrap_or_else(|| 128 + status.signal.unwrap_or(0)),
        Ok(Pumped::ReaderGone) => EXIT_BROKEN_PIPE,
        Err(PumpError::Agent(source)) => return Err(agent_error(source).into()),
        Err(PumpError::Output(source)) => return Err(RunError::Output(source)),
    };
    if args.timings {
        eprintln!("{}", vm.timeline());
    }
    vm.shutdown(Duration::from_secs(30)).await?;
    Ok(code)
}

/// This process's standard input, read on its own thread (it may block
/// forever on a terminal; the process exits without waiting for it).
fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0; 64 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}
