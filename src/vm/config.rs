//! [`VmConfig`]: what a VM is made of, checked before anything boots.

use std::path::{Path, PathBuf};

pub use super::config_error::ConfigError;
use super::publish::{self, PublishedPort};
use super::rlimit::Rlimit;
use super::volume::{self, Volume};
use crate::runner::{Confinement, NetMode, RunnerConfig, RunnerProgram, VsockPort, Workload};

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
    pub(crate) ports: Vec<PublishedPort>,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) rlimits: Vec<Rlimit>,
    pub(crate) hostname: Option<String>,
    pub(crate) console_log: Option<PathBuf>,
    pub(crate) runner: RunnerProgram,
    pub(crate) log_level: u32,
    pub(crate) overlay_root: bool,
    pub(crate) user: Option<(u32, u32)>,
    pub(crate) confinement: Confinement,
    pub(crate) egress: super::egress::EgressOptions,
    pub(crate) net_namespace: Option<PathBuf>,
}

impl VmConfig {
    /// A VM whose root filesystem is the host directory `rootfs`, with 1
    /// vCPU, 512 MiB, TSI networking ([`NetMode::Tsi`]: the guest reaches
    /// whatever the host reaches) and `PATH` set.
    pub fn new(rootfs: impl Into<PathBuf>) -> Self {
        Self {
            rootfs: rootfs.into(),
            cpus: 1,
            memory_mib: 512,
            env: Vec::new(),
            workdir: None,
            net: NetMode::Tsi,
            ports: Vec::new(),
            volumes: Vec::new(),
            rlimits: Vec::new(),
            hostname: None,
            console_log: None,
            runner: RunnerProgram::Auto,
            log_level: 0,
            overlay_root: false,
            confinement: Confinement::default(),
            user: None,
            egress: Default::default(),
            net_namespace: None,
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

    /// Sets an environment variable for the guest workload (a key set
    /// before gets the new value). The host's environment is never passed
    /// on.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(pair) => pair.1 = value,
            None => self.env.push((key, value)),
        }
        self
    }

    /// Sets the guest working directory of the workload.
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// Chooses the guest network ([`NetMode::Tsi`] by default):
    /// [`NetMode::None`] leaves the guest only its loopback;
    /// [`NetMode::Tsi`] sends its IPv4/IPv6 sockets through the host's, so
    /// the guest reaches whatever the host reaches, host loopback
    /// included, with no filtering.
    pub fn net(mut self, net: NetMode) -> Self {
        self.net = net;
        self
    }

    /// Runs the guest's TSI network in the network namespace at `path`
    /// (`/proc/PID/ns/net`, `/var/run/netns/NAME`): the runner joins it
    /// before it configures the VM, so the guest's connections and its
    /// published ports are that namespace's, as a pod's containers share
    /// the pod's. Joining needs `CAP_SYS_ADMIN` over the namespace. Not
    /// with [`NetMode::Egress`], which walls the guest into a namespace
    /// of its own.
    pub fn net_namespace(mut self, path: impl Into<PathBuf>) -> Self {
        self.net_namespace = Some(path.into());
        self
    }

    /// Publishes a guest TCP port on the host (needs [`NetMode::Tsi`]):
    /// connections to host port `port.host` reach the guest program
    /// listening on `port.guest`.
    pub fn publish(mut self, port: PublishedPort) -> Self {
        self.ports.push(port);
        self
    }

    /// Shares a host directory with the guest, mounted at its guest path
    /// before the workload (or the agent) starts.
    pub fn volume(mut self, volume: Volume) -> Self {
        self.volumes.push(volume);
        self
    }

    /// Sets a resource limit of the guest workload.
    pub fn rlimit(mut self, limit: Rlimit) -> Self {
        self.rlimits.push(limit);
        self
    }

    /// Sets the guest's host name (`localhost` by default). libkrun's init
    /// takes it from the `HOSTNAME` variable, which the workload also
    /// sees.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    /// Writes the guest console to `path` (created or truncated at boot):
    /// the kernel's messages, libkrun's init's, and anything written to
    /// `/dev/console`, so that a VM that does not boot can be diagnosed.
    /// A one-shot command's standard streams stay separate; a booted
    /// [`super::Vm`]'s agent writes its own messages there too.
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
        if let Some(name) = &self.hostname {
            if !is_hostname(name) {
                return Err(ConfigError::Hostname(name.clone()));
            }
        }
        if let Some(path) = &self.console_log {
            check_console_log(path)?;
        }
        for limit in &self.rlimits {
            limit.check()?;
        }
        volume::check(&self.volumes)?;
        for v in &self.volumes {
            check_passable("volume target", &v.guest)?;
            v.host_dir()?;
        }
        publish::check(&self.ports, self.net)?;
        self.check_egress()?;
        if let Some(path) = &self.net_namespace {
            let problem = if self.net == NetMode::Egress {
                Some("cannot be joined in the egress mode, which makes a namespace of its own")
            } else if !path.exists() {
                Some("does not exist")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ConfigError::NetNamespace {
                    path: path.clone(),
                    problem,
                });
            }
        }
        Ok(())
    }

    fn rootfs_error(&self, problem: &'static str) -> ConfigError {
        ConfigError::Rootfs {
            path: self.rootfs.clone(),
            problem,
        }
    }

    /// The guest environment as `KEY=VALUE`, with `PATH` added if unset,
    /// and `HOSTNAME` if a host name is set.
    pub(crate) fn env_strings(&self) -> Vec<String> {
        let mut env: Vec<String> = self
            .env
            .iter()
            .filter(|(k, _)| self.hostname.is_none() || k != "HOSTNAME")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !self.env.iter().any(|(k, _)| k == "PATH") {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        if let Some(name) = &self.hostname {
            env.push(format!("HOSTNAME={name}"));
        }
        env.extend(self.egress_env());
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
        let root_share = self.overlay_root.then_some(super::root::ROOT_SHARE_TAG);
        let nameserver = self.egress_nameserver();
        let workload = volume::mounting(
            volume::GuestSetup {
                root_share,
                user: self.user,
                volumes: &self.volumes,
                nameserver: nameserver.as_deref(),
                workdir: self.workdir.as_deref(),
            },
            workload,
        );
        let rlimits: Vec<String> = self.rlimits.iter().map(|l| l.to_libkrun()).collect();
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
            .sum::<usize>()
            + rlimits.iter().map(|l| l.len() + 1).sum::<usize>();
        if len > MAX_KERNEL_CMDLINE_PAYLOAD {
            return Err(ConfigError::TooLong {
                len,
                max: MAX_KERNEL_CMDLINE_PAYLOAD,
            });
        }
        let mut shares: Vec<_> = root_share
            .map(|tag| (tag.to_owned(), self.rootfs.clone(), true))
            .into_iter()
            .collect();
        for (i, v) in self.volumes.iter().enumerate() {
            shares.push((Volume::tag(i), v.host_dir()?, v.read_only));
        }
        let console_log = match &self.console_log {
            Some(path) => Some(
                std::path::absolute(path).map_err(|_| ConfigError::ConsoleLog {
                    path: path.clone(),
                    problem: "cannot be made absolute",
                })?,
            ),
            None => None,
        };
        Ok(RunnerConfig {
            rootfs: self.rootfs.clone(),
            vcpus: self.cpus,
            memory_mib: self.memory_mib,
            workload,
            env,
            // A read-only root's workdir is in the tree: the agent enters it.
            workdir: self.workdir.clone().filter(|_| !self.overlay_root),
            rlimits,
            net: self.net,
            ports: self.ports.iter().map(PublishedPort::to_string).collect(),
            shares,
            vsock_ports,
            console_log,
            stdio_ports: false,
            log_level: self.log_level,
            detached: false,
            exit_record: None,
            // An image's tree unpacked without root is the caller's on
            // disk; the guest should see it as root's.
            own_user_namespace: self.overlay_root && !nix::unistd::geteuid().is_root(),
            confinement: self.runner_confinement(),
            cgroup_dir: self.cgroup_dir(),
            egress: self.egress_setup(),
            net_namespace: self.net_namespace.clone(),
        })
    }
}

/// Whether `name` is a host name Linux and resolvers accept: at most 64
/// bytes of dot-separated labels of letters, digits and inner hyphens.
fn is_hostname(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && crate::dns_name::labels_ok(name, false)
}

/// The console log is created at boot: its directory must exist and the
/// path must not be a directory.
fn check_console_log(path: &Path) -> Result<(), ConfigError> {
    let problem = |problem| ConfigError::ConsoleLog {
        path: path.to_owned(),
        problem,
    };
    if path.is_dir() {
        return Err(problem("is a directory"));
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(problem("its directory does not exist")),
        _ => Ok(()),
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
    fn a_net_namespace_must_exist_and_not_be_egress() {
        let dir = tempfile::tempdir().unwrap();
        let vm = || VmConfig::new(dir.path());
        let err = vm()
            .net_namespace("/nonexistent/ns")
            .validate()
            .unwrap_err();
        assert!(err.to_string().ends_with("does not exist"), "{err}");
        let egress = vm().net(NetMode::Egress).net_namespace("/proc/self/ns/net");
        let err = egress.validate().unwrap_err();
        assert!(err.to_string().contains("egress mode"), "{err}");
        vm().net_namespace("/proc/self/ns/net").validate().unwrap();
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
    fn volumes_wrap_the_command_in_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let config = VmConfig::new(dir.path())
            .workdir("/data")
            .volume(Volume::new(dir.path(), "/data").read_only())
            .rlimit("nofile=10:20".parse().unwrap());
        let runner = config.runner_config(exec(&["hi"]), vec![]).unwrap();
        let expected: Vec<String> = [
            "--mount",
            "krunbox-vol0",
            "/data",
            "ro",
            "--chdir",
            "/data",
            "--exec",
            "/bin/echo",
            "hi",
        ]
        .map(String::from)
        .into();
        assert_eq!(runner.workload, Workload::Agent { args: expected });
        let host = dir.path().canonicalize().unwrap();
        assert_eq!(runner.shares, vec![("krunbox-vol0".into(), host, true)]);
        assert_eq!(runner.rlimits, vec!["7=10:20".to_owned()]);
        let agent = config
            .runner_config(
                Workload::Agent {
                    args: vec!["--vsock".into()],
                },
                vec![],
            )
            .unwrap();
        let Workload::Agent { args } = agent.workload else {
            panic!("not the agent")
        };
        assert_eq!(args.first().map(String::as_str), Some("--mount"));
        assert_eq!(args.last().map(String::as_str), Some("--vsock"));
        // A workdir inside a volume exists once mounted: the serving agent
        // enters it too, so its execs start there.
        assert_eq!(args[4..6], ["--chdir", "/data"]);
    }

    #[test]
    fn hostname_is_checked_and_passed_as_hostname() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "-a", "a b", "a..b", &"x".repeat(65)] {
            let err = VmConfig::new(dir.path()).hostname(bad).validate();
            assert!(matches!(err, Err(ConfigError::Hostname(_))), "{bad:?}");
        }
        let config = VmConfig::new(dir.path())
            .env("HOSTNAME", "ignored")
            .hostname("box-1.local");
        assert!(config.validate().is_ok());
        let env = config.env_strings();
        assert_eq!(env.iter().filter(|e| e.starts_with("HOSTNAME=")).count(), 1);
        assert!(env.contains(&"HOSTNAME=box-1.local".to_owned()));
    }

    #[test]
    fn console_log_needs_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ok = VmConfig::new(dir.path()).console_log(dir.path().join("c.log"));
        assert!(ok.validate().is_ok());
        for bad in [dir.path().to_owned(), dir.path().join("no/c.log")] {
            let err = VmConfig::new(dir.path()).console_log(bad).validate();
            assert!(
                matches!(err, Err(ConfigError::ConsoleLog { .. })),
                "{err:?}"
            );
        }
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
