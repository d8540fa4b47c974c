//! A VM that runs one command as its workload and exits with its code,
//! like `std::process::Command` for a guest.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};

use std::time::Duration;

use crate::client::{ClientConfig, GuestCommand, NO_TIMEOUT};
use crate::runner::child::RUNNER_FAILED_EXIT;
use crate::runner::{RunnerExit, RunnerProcess, StdioSpec, Workload};

use super::config::{ConfigError, VmConfig};
use super::error::Error;
use super::preflight;

/// A command to run as a VM's workload. Made by [`VmConfig::command`].
#[derive(Debug)]
pub struct OneShot {
    config: VmConfig,
    program: String,
    args: Vec<String>,
    stdin: StdioSpec,
    stdout: StdioSpec,
    stderr: StdioSpec,
}

/// The finished workload's status and collected output.
#[derive(Debug, Clone)]
pub struct OneShotOutput {
    /// The workload's exit status (127: not found in the guest; 126: not
    /// executable; 128+N: killed by signal N).
    pub status: ExitStatus,
    /// What it wrote to standard output.
    pub stdout: Vec<u8>,
    /// What it wrote to standard error.
    pub stderr: Vec<u8>,
}

impl VmConfig {
    /// A VM running `argv` (program first) as its workload. By default the
    /// guest's standard streams are this process's.
    pub fn command<I, S>(&self, argv: I) -> OneShot
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut argv = argv.into_iter().map(Into::into);
        OneShot {
            config: self.clone(),
            program: argv.next().unwrap_or_default(),
            args: argv.collect(),
            stdin: StdioSpec::Inherit,
            stdout: StdioSpec::Inherit,
            stderr: StdioSpec::Inherit,
        }
    }
}

impl OneShot {
    /// Connects the guest's standard input.
    pub fn stdin(mut self, spec: StdioSpec) -> Self {
        self.stdin = spec;
        self
    }

    /// Connects the guest's standard output.
    pub fn stdout(mut self, spec: StdioSpec) -> Self {
        self.stdout = spec;
        self
    }

    /// Connects the guest's standard error.
    pub fn stderr(mut self, spec: StdioSpec) -> Self {
        self.stderr = spec;
        self
    }

    /// Boots the VM; the workload runs while this returns.
    pub fn spawn(self) -> Result<OneShotChild, Error> {
        if self.program.is_empty() {
            return Err(ConfigError::EmptyCommand.into());
        }
        self.config.validate()?;
        preflight()?;
        let workload = Workload::Exec {
            program: self.program,
            args: self.args,
        };
        let mut runner_config = self.config.runner_config(workload, Vec::new())?;
        // The command's streams are the caller's, console log or not.
        runner_config.stdio_ports = true;
        let scratch = match self.config.has_overlay_root() {
            true => {
                let dir = super::machine::private_dir().map_err(Error::StateDir)?;
                self.config
                    .place_boot_root(&mut runner_config, dir.path())
                    .map_err(Error::StateDir)?;
                Some(dir)
            }
            false => None,
        };
        let program = self.config.runner.resolve()?;
        let runner = RunnerProcess::spawn(
            &program,
            self.config.runner.args(),
            &runner_config,
            self.stdin,
            self.stdout,
            self.stderr,
        )?;
        Ok(OneShotChild {
            runner,
            _scratch: scratch,
        })
    }

    /// Boots the VM and waits for the workload, sharing this process's
    /// standard streams.
    pub fn status(self) -> Result<ExitStatus, Error> {
        self.spawn()?.wait()
    }

    /// Boots the VM and waits for the command, collecting its output.
    /// Standard input is empty.
    ///
    /// Unlike [`OneShot::spawn`] and [`OneShot::status`], which hand the
    /// guest the caller's descriptors through libkrun's console ports, this
    /// runs the command through the guest agent: every output stream ends
    /// with the length the agent sent, so the output is complete or the
    /// call fails with [`ClientError::OutputCut`](crate::client::ClientError::OutputCut).
    /// The status follows the shell (127: not found; 126: not executable;
    /// 128+N: killed by signal N).
    pub fn output(self) -> Result<OneShotOutput, Error> {
        if self.program.is_empty() {
            return Err(ConfigError::EmptyCommand.into());
        }
        let command = GuestCommand::new(self.program)
            .args(self.args)
            .timeout(NO_TIMEOUT);
        let config = self.config;
        // Its own thread and runtime: this call is blocking, and may be
        // made from inside another runtime.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(Error::Output)?
                        .block_on(output_through_agent(&config, &command))
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

async fn output_through_agent(
    config: &VmConfig,
    command: &GuestCommand,
) -> Result<OneShotOutput, Error> {
    let vm = config
        .boot_with(ClientConfig {
            hello_timeout: Duration::from_secs(60),
            max_output: usize::MAX,
            ..ClientConfig::default()
        })
        .await?;
    let out = match vm.agent().exec(command).await {
        Ok(out) => out,
        Err(source) => {
            let log_tail = vm.log_tail();
            vm.kill().await;
            return Err(Error::Agent { source, log_tail });
        }
    };
    vm.shutdown(Duration::from_secs(30)).await?;
    let code = match (out.status.code, out.status.signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => RUNNER_FAILED_EXIT,
    };
    Ok(OneShotOutput {
        status: ExitStatus::from_raw((code & 0xff) << 8),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// A running one-shot VM.
#[derive(Debug)]
pub struct OneShotChild {
    runner: RunnerProcess,
    /// The boot root of a read-only root, removed once the child is.
    _scratch: Option<tempfile::TempDir>,
}

impl OneShotChild {
    /// The runner's process id.
    pub fn id(&self) -> u32 {
        self.runner.id()
    }

    /// The guest's standard input, when piped.
    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.runner.child_mut().stdin.take()
    }

    /// The guest's standard output, when piped.
    pub fn stdout(&mut self) -> Option<ChildStdout> {
        self.runner.child_mut().stdout.take()
    }

    /// The guest's standard error, when piped.
    pub fn stderr(&mut self) -> Option<ChildStderr> {
        self.runner.child_mut().stderr.take()
    }

    /// Waits for the workload to finish.
    pub fn wait(mut self) -> Result<ExitStatus, Error> {
        drop(self.stdin());
        let exit = self.runner.wait()?;
        into_status(exit)
    }

    /// Waits for the workload, collecting the piped output.
    pub fn wait_with_output(mut self) -> Result<OneShotOutput, Error> {
        drop(self.stdin());
        let stdout = self.stdout();
        let stderr = self.stderr();
        // Read both pipes at once so neither fills up and blocks the guest.
        let err_reader = std::thread::spawn(move || read_all(stderr));
        let stdout = read_all(stdout).map_err(Error::Output)?;
        let stderr = err_reader
            .join()
            .unwrap_or_else(|_| Ok(Vec::new()))
            .map_err(Error::Output)?;
        let status = into_status(self.runner.wait()?)?;
        Ok(OneShotOutput {
            status,
            stdout,
            stderr,
        })
    }

    /// Kills the VM.
    pub fn kill(&mut self) -> Result<(), Error> {
        Ok(self.runner.kill()?)
    }
}

fn read_all(stream: Option<impl Read>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut stream) = stream {
        stream.read_to_end(&mut buf)?;
    }
    Ok(buf)
}

fn into_status(exit: RunnerExit) -> Result<ExitStatus, Error> {
    if let Some(failure) = exit.failure {
        return Err(Error::Runner(failure));
    }
    if let Some(signal) = exit.status.signal() {
        return Err(Error::RunnerKilled { signal });
    }
    Ok(exit.status)
}
