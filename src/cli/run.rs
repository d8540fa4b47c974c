//! `krunbox run`: one command in a fresh VM.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use clap::Args;
use krunbox::client::{Command, ExecEvent};
use krunbox::vm::Error;
use tokio::sync::mpsc;

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

pub fn run(args: RunArgs) -> i32 {
    if args.timings {
        return super::report::block_on(run_timed(args));
    }
    match args.vm.config().command(args.command).status() {
        Ok(status) => status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Err(e) => report::fail(&e),
    }
}

/// `run --timings`: the same command as an exec through the agent, so
/// that every phase of the boot, first exec included, is stamped.
async fn run_timed(args: RunArgs) -> i32 {
    match exec_timed(args).await {
        Ok(code) => code,
        Err(e) => report::fail(&e),
    }
}

async fn exec_timed(args: RunArgs) -> Result<i32, Error> {
    let vm = args.vm.config().boot().await?;
    let agent_error = |source| Error::Agent {
        source,
        log_tail: String::new(),
    };
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let command = Command::new(program.clone())
        .args(rest.iter().cloned())
        .stream_stdin();
    let mut session = vm
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
    let mut code = 0;
    while let Some(event) = session.next_event().await.map_err(agent_error)? {
        match event {
            ExecEvent::Started(_) => {}
            ExecEvent::Stdout(bytes) => write_all(&mut std::io::stdout(), &bytes),
            ExecEvent::Stderr(bytes) => write_all(&mut std::io::stderr(), &bytes),
            ExecEvent::Exit(status) => {
                code = status
                    .code
                    .unwrap_or_else(|| 128 + status.signal.unwrap_or(0))
            }
        }
    }
    eprintln!("{}", vm.timeline());
    vm.shutdown(Duration::from_secs(30)).await?;
    Ok(code)
}

fn write_all(out: &mut impl Write, bytes: &[u8]) {
    // A closed stdout (a pipe into `head`) is not krunbox's failure.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
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
