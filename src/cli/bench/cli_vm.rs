//! A named VM driven through the `krunbox` CLI the way a shell-out
//! program drives it: one process per call, in a private state directory.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};

use tempfile::TempDir;

use super::error::BenchError;

/// A named VM of the `krunbox` CLI, in a state directory of its own;
/// stopped on drop if it runs.
pub struct NamedVmCli {
    case: &'static str,
    exe: PathBuf,
    state: TempDir,
    name: String,
    running: bool,
}

impl NamedVmCli {
    /// A VM called `name`, not started yet.
    pub fn new(case: &'static str, name: impl Into<String>) -> Result<Self, BenchError> {
        let exe = std::env::current_exe()
            .map_err(BenchError::io(case, "finding the krunbox executable"))?;
        let state = tempfile::Builder::new()
            .prefix("krunbox-bench-state-")
            .tempdir()
            .map_err(BenchError::io(case, "creating a state directory"))?;
        Ok(Self {
            case,
            exe,
            state,
            name: name.into(),
            running: false,
        })
    }

    /// A VM booted from `rootfs`, named after this process.
    pub fn start(case: &'static str, rootfs: &Path) -> Result<Self, BenchError> {
        let mut named = Self::new(case, format!("bench-{}", std::process::id()))?;
        named.boot(rootfs, None)?;
        Ok(named)
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `krunbox start --name NAME --rootfs ROOTFS` (512 MiB, 1 vCPU: the
    /// CLI's defaults); with `loader_dir`, its runner finds libkrunfw
    /// there first (`LD_LIBRARY_PATH`).
    pub fn boot(&mut self, rootfs: &Path, loader_dir: Option<&Path>) -> Result<(), BenchError> {
        let args = [
            OsStr::new("start"),
            OsStr::new("--name"),
            OsStr::new(&self.name),
            OsStr::new("--rootfs"),
            rootfs.as_os_str(),
        ];
        let env = loader_dir.map(|dir| ("LD_LIBRARY_PATH", loader_path_with(dir)));
        self.run(args, env)?;
        self.running = true;
        Ok(())
    }

    /// The library's client for the VM's agent, as a program that started
    /// the VM with the CLI would attach to it.
    pub fn agent(&self) -> Result<krunbox::client::AgentClient, BenchError> {
        use krunbox::state::{NamedVm, StateDir, VmName};
        let state = StateDir::at(self.state.path().join("state"));
        let name = self.name.parse::<VmName>();
        state
            .and_then(|state| NamedVm::open(&state, &name?))
            .and_then(|vm| vm.agent(krunbox::client::ClientConfig::default()))
            .map_err(BenchError::state(self.case))
    }

    /// `krunbox stop NAME`.
    pub fn stop(&mut self) -> Result<(), BenchError> {
        self.running = false;
        self.cli(["stop", "--time", "10", &self.name]).map(drop)
    }

    /// `krunbox exec NAME -- ARGV…`.
    pub fn exec<'a>(&self, argv: impl IntoIterator<Item = &'a str>) -> Result<Output, BenchError> {
        let head = ["exec", self.name.as_str(), "--"].map(str::to_owned);
        self.cli(head.into_iter().chain(argv.into_iter().map(str::to_owned)))
    }

    /// `krunbox cp FROM TO`; a guest path is written `NAME:PATH`.
    pub fn cp(&self, from: &OsStr, to: &OsStr) -> Result<Output, BenchError> {
        self.cli([OsStr::new("cp"), from, to])
    }

    /// One `krunbox` process; it must exit 0.
    pub fn cli<I, S>(&self, args: I) -> Result<Output, BenchError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(args, None)
    }

    fn run<I, S>(&self, args: I, env: Option<(&str, OsString)>) -> Result<Output, BenchError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut process = Process::new(&self.exe);
        process
            .args(&args)
            // The CLI makes it, private to this user.
            .env(
                krunbox::state::STATE_DIR_ENV,
                self.state.path().join("state"),
            )
            .stdin(Stdio::null());
        if let Some((key, value)) = env {
            process.env(key, value);
        }
        let out = process.output().map_err(BenchError::io(
            self.case,
            format!("running {}", self.exe.display()),
        ))?;
        check_exit(self.case, "krunbox", &args, &out)?;
        Ok(out)
    }
}

impl Drop for NamedVmCli {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop();
        }
    }
}

/// `dir` before the loader path this process was given.
pub fn loader_path_with(dir: &Path) -> OsString {
    let mut path = dir.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    path
}

/// A [`BenchError::Wrong`] unless `out` says the command exited 0.
pub fn check_exit(
    case: &'static str,
    program: &str,
    args: &[OsString],
    out: &Output,
) -> Result<(), BenchError> {
    if out.status.success() {
        return Ok(());
    }
    Err(BenchError::wrong(
        case,
        format!(
            "`{program} {}` failed ({}): {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ),
    ))
}
