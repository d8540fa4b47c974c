//! smolvm's CLI, one process per operation, the way its users drive a
//! machine: `smolvm machine create/start/exec/cp/stop/delete`.
//!
//! The smolmachines wheel ships the CLI (`smol-vmm`) with its own libkrun
//! and libkrunfw beside it; they are put first on the loader path of
//! every call, so that smolvm runs with its own libraries wherever
//! `LD_LIBRARY_PATH` points elsewhere (as in the lab).

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};

use tempfile::TempDir;

use super::super::cli_vm::{check_exit, loader_path_with};
use super::super::error::BenchError;
use super::CASE;

/// Where smolvm keeps its state for the run.
enum State {
    /// A directory of its own, removed afterwards.
    Temporary(TempDir),
    /// One the user prepared (`--smolvm-state`), e.g. with its caches
    /// filled.
    Given(PathBuf),
}

impl State {
    fn path(&self) -> &Path {
        match self {
            State::Temporary(dir) => dir.path(),
            State::Given(path) => path,
        }
    }
}

/// One smolvm machine, created on [`Smolvm::create`] and deleted on drop.
pub struct Smolvm {
    bin: PathBuf,
    lib_dir: Option<PathBuf>,
    state: State,
    name: String,
    created: bool,
    running: bool,
}

impl Smolvm {
    /// smolvm at `bin` (a path, or a name looked up on `PATH`), keeping its
    /// state in `state` (default: a temporary directory).
    pub fn find(bin: &Path, state: Option<&Path>) -> Result<Self, BenchError> {
        let found = if bin.components().count() > 1 {
            Some(bin.to_owned())
        } else {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(bin))
                    .find(|candidate| candidate.is_file())
            })
        };
        let bin =
            found
                .and_then(|b| b.canonicalize().ok())
                .ok_or_else(|| BenchError::PeerMissing {
                    program: bin.to_owned(),
                })?;
        let lib_dir = bin
            .parent()
            .filter(|dir| dir.join(krunbox::host::krunfw::SONAME).is_file())
            .map(Path::to_owned);
        let state = match state {
            Some(dir) => State::Given(dir.to_owned()),
            None => State::Temporary(
                tempfile::Builder::new()
                    .prefix("krunbox-bench-smolvm-")
                    .tempdir()
                    .map_err(BenchError::io(CASE, "creating smolvm's state directory"))?,
            ),
        };
        Ok(Self {
            bin,
            lib_dir,
            state,
            name: format!("krunbox-bench-{}", std::process::id()),
            created: false,
            running: false,
        })
    }

    /// The binary run.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The libkrunfw shipped beside the binary, if there is one.
    pub fn libkrunfw_dir(&self) -> Option<&Path> {
        self.lib_dir.as_deref()
    }

    /// What `smolvm --version` prints.
    pub fn version(&self) -> Result<String, BenchError> {
        let out = self.run([OsStr::new("--version")])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `machine create --image ROOTFS/ --cpus 1 --mem 512`: the VM the
    /// krunbox side boots (a rootfs directory, 1 vCPU, 512 MiB).
    pub fn create(&mut self, rootfs: &Path) -> Result<(), BenchError> {
        let mut image = rootfs.as_os_str().to_owned();
        image.push("/");
        let args = ["--image".as_ref(), image.as_os_str()]
            .into_iter()
            .chain(["--cpus", "1", "--mem", "512"].map(OsStr::new));
        self.machine("create", &args.collect::<Vec<_>>())?;
        self.created = true;
        Ok(())
    }

    /// `machine start`: returns when smolvm says the machine runs.
    pub fn start(&mut self) -> Result<(), BenchError> {
        self.machine("start", &[])?;
        self.running = true;
        Ok(())
    }

    /// `machine stop`.
    pub fn stop(&mut self) -> Result<(), BenchError> {
        self.running = false;
        self.machine("stop", &[]).map(drop)
    }

    /// `machine exec -- ARGV…`; it must exit 0.
    pub fn exec<'a>(&self, argv: impl IntoIterator<Item = &'a str>) -> Result<Output, BenchError> {
        let mut args: Vec<OsString> = vec!["--".into()];
        args.extend(argv.into_iter().map(OsString::from));
        let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        self.machine("exec", &args)
    }

    /// `machine cp HOST NAME:GUEST`, with the file's mode (smolvm's upload
    /// does not keep it: a user passes `--mode`).
    pub fn cp_in(&self, host: &Path, guest: &str) -> Result<(), BenchError> {
        let mode = std::fs::metadata(host)
            .map_err(BenchError::io(CASE, format!("reading {}", host.display())))?
            .permissions()
            .mode();
        let mode = format!("{:o}", mode & 0o7777);
        let target = format!("{}:{guest}", self.name);
        self.cp(&[
            "--mode".as_ref(),
            mode.as_ref(),
            host.as_os_str(),
            target.as_ref(),
        ])
    }

    /// `machine cp NAME:GUEST HOST`.
    pub fn cp_out(&self, guest: &str, host: &Path) -> Result<(), BenchError> {
        let source = format!("{}:{guest}", self.name);
        self.cp(&[source.as_ref(), host.as_os_str()])
    }

    fn cp(&self, args: &[&OsStr]) -> Result<(), BenchError> {
        let mut all = vec![
            OsStr::new("machine"),
            OsStr::new("cp"),
            OsStr::new("--state-dir"),
            self.state.path().as_os_str(),
        ];
        all.extend_from_slice(args);
        self.run(all).map(drop)
    }

    /// `smolvm machine SUB --state-dir DIR --name NAME [ARGS…]`.
    fn machine(&self, sub: &str, args: &[&OsStr]) -> Result<Output, BenchError> {
        let mut all = vec![
            OsStr::new("machine"),
            OsStr::new(sub),
            OsStr::new("--state-dir"),
            self.state.path().as_os_str(),
            OsStr::new("--name"),
            OsStr::new(&self.name),
        ];
        all.extend_from_slice(args);
        self.run(all)
    }

    /// One smolvm process; it must exit 0.
    fn run<I, S>(&self, args: I) -> Result<Output, BenchError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut process = Process::new(&self.bin);
        process.args(&args).stdin(Stdio::null());
        if let Some(dir) = &self.lib_dir {
            process.env("LD_LIBRARY_PATH", loader_path_with(dir));
        }
        let out = process.output().map_err(|source| BenchError::PeerRun {
            program: self.bin.clone(),
            source,
        })?;
        check_exit(CASE, "smolvm", &args, &out)?;
        Ok(out)
    }
}

impl Drop for Smolvm {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop();
        }
        if self.created {
            let _ = self.machine("delete", &[OsStr::new("--force")]);
        }
    }
}
