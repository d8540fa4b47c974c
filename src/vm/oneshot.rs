//! A VM that runs one command as its workload and exits with its code,
//! like `std::process::Command` for a guest.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};

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
        let program = self.config.runner.resolve()?;
        let runner = RunnerProcess::spawn(
            &program,
            &runner_config,
            self.stdin,
            self.stdout,
            self.stderr,
        )?;
        Ok(OneShotChild { runner })
    }

    /// Boots the VM and waits for the workload, sharing this process's
    /// standard streams.
    pub fn status(self) -> Result<ExitStatus, Error> {
        self.spawn()?.wait()
    }

    /// Boots the VM and waits for the workload, collecting its output.
    /// Standard input is empty unless set otherwise.
    pub fn output(mut self) -> Result<OneShotOutput, Error> {
        if matches!(self.stdin, StdioSpec::Inherit) {
            self.stdin = StdioSpec::Null;
        }
        self.stdout = StdioSpec::Piped;
        self.stderr = StdioSpec::Piped;
        self.spawn()?.wait_with_output()
    }
}

/// A running one-shot VM.
#[derive(Debug)]
pub struct OneShotChild {
    runner: RunnerProcess,
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
