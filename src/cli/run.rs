//! `krunbox run`: one command in a fresh VM.

use std::io::Read;
use std::time::Duration;

use clap::Args;
use krunbox::client::{GuestCommand, NO_TIMEOUT};
use krunbox::vm::Error;
use tokio::sync::mpsc;

use krunbox::image::store::Image;

use super::error::CliError;
use super::exec::{PumpError, Pumped};
use super::image::ImageError;
use super::output::{WriteEnd, EXIT_BROKEN_PIPE};
use super::report;
use super::vm_args::VmArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    vm: VmArgs,
    /// Print the boot timeline on standard error when the command ends:
    /// as a table, or with `--timings=json` as one JSON object.
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "text"
    )]
    timings: Option<TimingsFormat>,
    /// With --image: replaces the image's Entrypoint ("" clears it).
    #[arg(long, value_name = "PROGRAM", requires = "image")]
    entrypoint: Option<String>,
    /// The command to run in the guest, and its arguments (with --image:
    /// they replace the image's Cmd, after its Entrypoint).
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// How `--timings` prints the boot timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimingsFormat {
    /// A table.
    Text,
    /// One JSON object (milliseconds; `null` for a phase not reached).
    Json,
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
            Err(RunError::Image(e)) => report::fail(&e),
            Err(RunError::Output(source)) => report::fail(&CliError::Output {
                vm: "started by run".to_owned(),
                source,
            }),
        }
    })
}

/// Why `run` failed: the image, the VM, or writing its output here.
enum RunError {
    Image(ImageError),
    Vm(Error),
    Output(WriteEnd),
}

impl From<ImageError> for RunError {
    fn from(e: ImageError) -> Self {
        Self::Image(e)
    }
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        Self::Vm(e)
    }
}

async fn exec_in_vm(args: RunArgs) -> Result<i32, RunError> {
    let boot = args.vm.boot().await?;
    let command = command(&args, boot.image.as_ref())?;
    let vm = boot.config.boot().await?;
    let agent_error = |source| Error::Agent {
        source,
        log_tail: String::new(),
    };
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
    match args.timings {
        Some(TimingsFormat::Text) => eprintln!("{}", vm.timeline()),
        Some(TimingsFormat::Json) => eprintln!("{}", super::timings::timeline(&vm.timeline())),
        None => {}
    }
    vm.shutdown(Duration::from_secs(30)).await?;
    Ok(code)
}

/// The command line: with --image, the image's Entrypoint and Cmd by
/// docker's rules (its User is the VM's default).
fn command(args: &RunArgs, image: Option<&Image>) -> Result<GuestCommand, ImageError> {
    let argv = match image {
        Some(image) => {
            let entrypoint = args.entrypoint.clone().map(|e| match e.is_empty() {
                true => Vec::new(),
                false => vec![e],
            });
            image.config.command(entrypoint, args.command.clone())
        }
        None => args.command.clone(),
    };
    let Some((program, rest)) = argv.split_first() else {
        return Err(match image {
            Some(_) => ImageError::NoCommand,
            None => ImageError::NoCommandGiven,
        });
    };
    Ok(GuestCommand::new(program.clone())
        .args(rest.iter().cloned())
        .timeout(NO_TIMEOUT)
        .stream_stdin())
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
