//! [`VmConfig`]: what a VM is made of, checked before anything boots.

use std::path::{Path, PathBuf};

use crate::runner::{NetMode, RunnerConfig, RunnerProgram, VsockPort, Workload};

/// `PATH` given to the guest when the caller sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// libkrun passes the workload's program, arguments and environment on the
/// guest kernel command line, each value in double quotes; x86's limit for
/// the whole line is 2048 bytes, of which libkrun's own part takes about
/// 300.
const MAX_KERNEL_CMDLINE_PAYLOAD: usize = 1700;

/// A microVM's configuration. Build it with the methods, then boot it with
/// [`VmConfig::command`].
///
/// ```no_run
/// use krunbox::vm::VmConfig;
///
/// let out = VmConfig::new("/srv/rootfs")
///     .cpus(2)
///     .memory_mib(512)
///     .env("GREETING", "hello")
///     .command(["/bin/sh", "-c", "echo $GREETING"])
///     .output()?;
/// assert_eq!(out.stdout, b"hello\n");
/// # Ok::<(), krunbox::vm::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub(crate) rootfs: PathBuf,
    pub(crate) cpus: u8,
    pub(crate) memory_mib: u32,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) workdir: Option<String>,
    pub(crate) net: NetMode,
    pub(crate) console_log: Option<PathBuf>,
    pub(crate) runner: RunnerProgram,
    pub(crate) log_level: u32,
}

/// A configuration that cannot boot, found before anything started.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The root filesystem directory is missing or not a directory.
    #[error("rootfs {} {problem}", path.display())]
    Rootfs {
        /// The path given.
        path: PathBuf,
        /// "does not exist" or "is not a directory".
        problem: &'static str,
    },
    /// No command was given.
    #[error("no command given for the guest")]
    EmptyCommand,
    /// A value cannot travel on the kernel command line.
    #[error("{what} {value:?} cannot be passed to the guest: it contains {problem}")]
    Unpassable {
        /// What it is ("argument", "environment variable", …).
        what: &'static str,
        /// The value.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The command and environment are too long for the kernel command line.
    #[error(
        "the command and environment take {len} bytes; at most {max} fit on the \
         guest kernel command line"
    )]
    TooLong {
        /// Their length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A number out of range.
    #[error("{what} must be {range}, not {value}")]
    OutOfRange {
        /// What it is.
        what: &'static str,
        /// The accepted range.
        range: &'static str,
        /// The value given.
        value: u64,
    },
}

impl VmConfig {
    /// A VM whose root filesystem is the host directory `rootfs`, with 1
    /// vCPU, 512 MiB, TSI networking and `PATH` set.
    pub fn new(rootfs: impl Into<PathBuf>) -> Self {
        Self {
            rootfs: rootfs.into(),
            cpus: 1,
            memory_mib: 512,
            env: Vec::new(),
            workdir: None,
            net: NetMode::Tsi,
            console_log: None,
            runner: RunnerProgram::Auto,
            log_level: 0,
        }
    }

    /// Sets the number of vCPUs (1–255).
    pub fn cpus(mut self, cpus: u8) -> Self {
        self.cpus = cpus;
        self
    }

    /// Sets the guest memory in MiB (at least 64).
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Adds an environment variable for the guest workload. The host's
    /// environment is never passed on.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the guest working directory of the workload.
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// Chooses the guest network ([`NetMode::Tsi`] by default).
    pub fn net(mut self, net: NetMode) -> Self {
        self.net = net;
        self
    }

    /// Writes the guest console (kernel and init messages) to `path`.
    pub fn console_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.console_log = Some(path.into());
        self
    }

    /// Chooses the runner program (see [`RunnerProgram`]).
    pub fn runner(mut self, runner: RunnerProgram) -> Self {
        self.runner = runner;
        self
    }

    /// Sets libkrun's log level (0 = off … 5 = trace), logged to the
    /// runner's standard error.
    pub fn log_level(mut self, level: u32) -> Self {
        self.log_level = level;
        self
    }

    /// The root filesystem directory.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// Checks everything that can be checked without booting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match std::fs::metadata(&self.rootfs) {
            Err(_) => return Err(self.rootfs_error("does not exist")),
            Ok(m) if !m.is_dir() => return Err(self.rootfs_error("is not a directory")),
            Ok(_) => {}
        }
        if self.cpus == 0 {
            return Err(ConfigError::OutOfRange {
                what: "the vCPU count",
                range: "1 to 255",
                value: 0,
            });
        }
        if self.memory_mib < 64 {
            return Err(ConfigError::OutOfRange {
                what: "guest memory (MiB)",
                range: "at least 64",
                value: self.memory_mib.into(),
            });
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') {
                return Err(ConfigError::Unpassable {
                    what: "environment variable name",
                    value: key.clone(),
                    problem: "'=' or nothing",
                });
            }
            check_passable("environment variable", key)?;
            check_passable("environment variable", value)?;
        }
        if let Some(dir) = &self.workdir {
            check_passable("working directory", dir)?;
        }
        Ok(())
    }

    fn rootfs_error(&self, problem: &'static str) -> ConfigError {
        ConfigError::Rootfs {
            path: self.rootfs.clone(),
            problem,
        }
    }

    /// The guest environment as `KEY=VALUE`, with `PATH` added if unset.
    pub(crate) fn env_strings(&self) -> Vec<String> {
        let mut env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !self.env.iter().any(|(k, _)| k == "PATH") {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        env
    }

    /// The runner's configuration for `workload`, checking that it fits on
    /// the kernel command line.
    pub(crate) fn runner_config(
        &self,
        workload: Workload,
        vsock_ports: Vec<VsockPort>,
    ) -> Result<RunnerConfig, ConfigError> {
        let env = self.env_strings();
        let (program, args) = match &workload {
            Workload::Exec { program, args } => (program.as_str(), args.as_slice()),
            Workload::Agent { args } => ("", args.as_slice()),
        };
        check_passable("program", program)?;
        for arg in args {
            check_passable("argument", arg)?;
        }
        // Each value travels as ` "value"`.
        let len: usize = std::iter::once(program)
            .chain(args.iter().map(String::as_str))
            .chain(env.iter().map(String::as_str))
            .chain(self.workdir.as_deref())
            .map(|s| s.len() + 3)
            .sum();
        if len > MAX_KERNEL_CMDLINE_PAYLOAD {
            return Err(ConfigError::TooLong {
                len,
                max: MAX_KERNEL_CMDLINE_PAYLOAD,
            });
        }
        Ok(RunnerConfig {
            rootfs: self.rootfs.clone(),
            vcpus: self.cpus,
            memory_mib: self.memory_mib,
            workload,
            env,
            workdir: self.workdir.clone(),
            rlimits: Vec::new(),
            net: self.net,
            ports: Vec::new(),
            shares: Vec::new(),
            vsock_ports,
            console_log: self.console_log.clone(),
            log_level: self.log_level,
            detached: false,
        })
    }
}

/// Values travel in double quotes on the kernel command line, which has no
/// escapes: a double quote or a line break cannot be carried.
fn check_passable(what: &'static str, value: &str) -> Result<(), ConfigError> {
    let problem = if value.contains('"') {
        Some("a double quote")
    } else if value.contains(['\n', '\r']) {
        Some("a line break")
    } else if value.contains('\0') {
        Some("a NUL byte")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ConfigError::Unpassable {
            what,
            value: value.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(args: &[&str]) -> Workload {
        Workload::Exec {
            program: "/bin/echo".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn missing_rootfs_is_named() {
        let err = VmConfig::new("/nonexistent/rootfs").validate().unwrap_err();
        assert_eq!(err.to_string(), "rootfs /nonexistent/rootfs does not exist");
    }

    #[test]
    fn file_as_rootfs_is_rejected() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = VmConfig::new(file.path()).validate().unwrap_err();
        assert!(err.to_string().ends_with("is not a directory"), "{err}");
    }

    #[test]
    fn zero_cpus_and_tiny_memory_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        assert!(VmConfig::new(dir.path()).cpus(0).validate().is_err());
        assert!(VmConfig::new(dir.path()).memory_mib(16).validate().is_err());
        assert!(VmConfig::new(dir.path()).validate().is_ok());
    }

    #[test]
    fn quotes_and_newlines_cannot_be_passed() {
        let dir = tempfile::tempdir().unwrap();
        let config = VmConfig::new(dir.path());
        let err = config
            .runner_config(exec(&["say \"hi\""]), vec![])
            .unwrap_err();
        assert!(err.to_string().contains("double quote"), "{err}");
        let err = config.runner_config(exec(&["a\nb"]), vec![]).unwrap_err();
        assert!(err.to_string().contains("line break"), "{err}");
        let bad_env = VmConfig::new(dir.path()).env("A=B", "c");
        assert!(bad_env.validate().is_err());
    }

    #[test]
    fn overlong_command_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(4000);
        let err = VmConfig::new(dir.path())
            .runner_config(exec(&[&long]), vec![])
            .unwrap_err();
        assert!(matches!(err, ConfigError::TooLong { .. }));
    }

    #[test]
    fn path_is_added_unless_given() {
        let dir = tempfile::tempdir().unwrap();
        let env = VmConfig::new(dir.path()).env("A", "1").env_strings();
        assert_eq!(env, vec!["A=1".to_owned(), format!("PATH={DEFAULT_PATH}")]);
        let env = VmConfig::new(dir.path()).env("PATH", "/bin").env_strings();
        assert_eq!(env, vec!["PATH=/bin".to_owned()]);
    }
}
