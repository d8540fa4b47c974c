//! What to run in the lab: [`LabSpec`] and its builder methods.

use std::path::PathBuf;
use std::time::Duration;

use crate::host::HostPaths;
use crate::{LabError, LabRun};

/// Where [`LabSpec::executable`] puts binaries; first on the lab's `PATH`.
pub const LAB_BIN: &str = "/lab/bin";

/// One command to run in a fresh lab VM, and what the lab holds for it.
///
/// Built with chained methods, run with [`LabSpec::run`]:
///
/// ```no_run
/// use std::time::Duration;
/// use krunbox_lab::LabSpec;
///
/// let run = LabSpec::new(["sh", "-c", "echo hi; exit 3"])
///     .timeout(Duration::from_secs(120))
///     .run()?;
/// assert_eq!(run.exit_code, 3);
/// assert_eq!(run.stdout, b"hi\n");
/// # Ok::<(), krunbox_lab::LabError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LabSpec {
    pub(crate) argv: Vec<String>,
    pub(crate) files: Vec<(PathBuf, Option<String>)>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) memory_mib: u32,
    pub(crate) cpus: u32,
    pub(crate) work_dir: Option<PathBuf>,
    pub(crate) stream_output: bool,
    pub(crate) host: Option<HostPaths>,
    pub(crate) silence_limit: Option<Duration>,
}

impl LabSpec {
    /// Default [`LabSpec::timeout`]: generous, since everything in the lab
    /// runs on an emulated CPU.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
    /// Default [`LabSpec::memory_mib`].
    pub const DEFAULT_MEMORY_MIB: u32 = 2048;
    /// Default [`LabSpec::cpus`].
    pub const DEFAULT_CPUS: u32 = 2;

    /// A lab that runs `argv` (looked up on the lab's `PATH`:
    /// [`LAB_BIN`], then busybox's `/bin`).
    pub fn new<I, S>(argv: I) -> LabSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        LabSpec {
            argv: argv.into_iter().map(Into::into).collect(),
            files: Vec::new(),
            env: Vec::new(),
            timeout: Self::DEFAULT_TIMEOUT,
            memory_mib: Self::DEFAULT_MEMORY_MIB,
            cpus: Self::DEFAULT_CPUS,
            work_dir: None,
            stream_output: true,
            host: None,
            silence_limit: None,
        }
    }

    /// Puts the host file or directory `host` at the absolute `lab_path`.
    ///
    /// ELF files are stripped of debug info and bring the shared libraries
    /// `ldd` lists, at the paths it names. Directories are copied
    /// recursively, symlinks in them kept as symlinks.
    pub fn file(mut self, host: impl Into<PathBuf>, lab_path: impl Into<String>) -> LabSpec {
        self.files.push((host.into(), Some(lab_path.into())));
        self
    }

    /// Puts the executable `host` at `/lab/bin/<its file name>`, on `PATH`.
    pub fn executable(mut self, host: impl Into<PathBuf>) -> LabSpec {
        self.files.push((host.into(), None));
        self
    }

    /// Sets an environment variable for the command (after the lab's own:
    /// `KRUNBOX_LAB=1`, `KRUNBOX_TEST_ROOTFS`, `HOME`, `TMPDIR`,
    /// `LD_LIBRARY_PATH`, which it can override).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> LabSpec {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Bounds the whole run, from preparing the initramfs to QEMU's exit.
    /// Defaults to [`LabSpec::DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> LabSpec {
        self.timeout = timeout;
        self
    }

    /// Gives the lab up when, after the command's first [`note`], no note
    /// has come for `limit`: for a command that sends notes regularly (a
    /// heartbeat), so that a lab whose kernel hangs is not waited for
    /// until [`LabSpec::timeout`]. Off by default.
    ///
    /// [`note`]: crate::note
    pub fn silence_limit(mut self, limit: Duration) -> LabSpec {
        self.silence_limit = Some(limit);
        self
    }

    /// The L1 VM's memory in MiB (libkrun guests come out of it).
    pub fn memory_mib(mut self, memory_mib: u32) -> LabSpec {
        self.memory_mib = memory_mib;
        self
    }

    /// The L1 VM's vCPUs (QEMU threads under multi-threaded TCG).
    pub fn cpus(mut self, cpus: u32) -> LabSpec {
        self.cpus = cpus;
        self
    }

    /// Where the run's temporary directory (staged files, initramfs, serial
    /// port logs) is created; removed when the run ends. Defaults to the
    /// system temp dir; integration tests can pass
    /// `env!("CARGO_TARGET_TMPDIR")`, the xtask passes `target/lab`.
    pub fn work_dir(mut self, dir: impl Into<PathBuf>) -> LabSpec {
        self.work_dir = Some(dir.into());
        self
    }

    /// Whether the command's stdout and stderr are copied to this
    /// process' stdout and stderr as they arrive (default: yes). They are
    /// captured in [`LabRun`] either way.
    pub fn stream_output(mut self, stream: bool) -> LabSpec {
        self.stream_output = stream;
        self
    }

    /// Uses these host files instead of [`HostPaths::discover`]ing them.
    pub fn host_paths(mut self, host: HostPaths) -> LabSpec {
        self.host = Some(host);
        self
    }

    /// Boots a lab VM, runs the command, and returns how it ended.
    ///
    /// A command that exits non-zero is an `Ok` with that
    /// [`LabRun::exit_code`]; errors are for the lab itself (missing host
    /// packages, timeout, no `/dev/kvm` in the lab, QEMU failures).
    pub fn run(&self) -> Result<LabRun, LabError> {
        crate::run::run(self)
    }

    /// Checks what can be checked without touching the host.
    pub(crate) fn validate(&self) -> Result<(), LabError> {
        let invalid = |reason: String| Err(LabError::InvalidSpec { reason });
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return invalid("the command is empty".into());
        }
        if let Some((name, _)) = self.env.iter().find(|(name, _)| !is_env_name(name)) {
            return invalid(format!(
                "{name:?} is not a shell variable name ([A-Za-z_][A-Za-z0-9_]*)"
            ));
        }
        if self.cpus == 0 || self.memory_mib < 256 {
            return invalid(format!(
                "{} vCPUs and {} MiB are too few (need 1 and 256)",
                self.cpus, self.memory_mib
            ));
        }
        Ok(())
    }

    /// The lab path of each file: the explicit one, or `/lab/bin/<name>`.
    pub(crate) fn file_targets(&self) -> Result<Vec<(PathBuf, String)>, LabError> {
        self.files
            .iter()
            .map(|(host, lab)| match lab {
                Some(lab) => Ok((host.clone(), lab.clone())),
                None => match host.file_name().and_then(|n| n.to_str()) {
                    Some(name) => Ok((host.clone(), format!("{LAB_BIN}/{name}"))),
                    None => Err(LabError::InvalidSpec {
                        reason: format!("{} has no UTF-8 file name for /lab/bin", host.display()),
                    }),
                },
            })
            .collect()
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let spec = LabSpec::new(["true"]);
        assert_eq!(spec.timeout, Duration::from_secs(900));
        assert_eq!((spec.memory_mib, spec.cpus), (2048, 2));
        assert!(spec.stream_output);
        spec.validate().unwrap();
    }

    #[test]
    fn executables_land_in_lab_bin() {
        let spec = LabSpec::new(["krunbox"])
            .executable("/work/target/debug/krunbox")
            .file("/etc/hosts", "/data/hosts");
        assert_eq!(
            spec.file_targets().unwrap(),
            vec![
                (
                    PathBuf::from("/work/target/debug/krunbox"),
                    "/lab/bin/krunbox".to_owned()
                ),
                (PathBuf::from("/etc/hosts"), "/data/hosts".to_owned()),
            ]
        );
        assert!(LabSpec::new(["x"]).executable("/").file_targets().is_err());
    }

    #[test]
    fn invalid_specs_are_refused() {
        assert!(LabSpec::new(Vec::<String>::new()).validate().is_err());
        assert!(LabSpec::new(["true"]).env("A-B", "1").validate().is_err());
        assert!(LabSpec::new(["true"]).env("1A", "1").validate().is_err());
        assert!(LabSpec::new(["true"]).env("_A1", "1").validate().is_ok());
        assert!(LabSpec::new(["true"]).cpus(0).validate().is_err());
    }
}
