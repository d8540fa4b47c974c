//! The VM options shared by `krunbox run` and `krunbox start`, mapped one
//! to one onto [`VmConfig`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use krunbox::egress::{Policy, Rule};
use krunbox::image::store::Image;
use krunbox::runner::NetMode;
use krunbox::vm::{CgroupLimits, Confinement, PublishedPort, Rlimit, RunAs, VmConfig, Volume};

use super::image::pull::{self, PullPolicy, RegistryArgs};
use super::image::ImageError;

/// How to boot a VM: root filesystem, resources, environment, network,
/// volumes.
#[derive(Debug, Args)]
pub struct VmArgs {
    /// Host directory to use as the guest's root filesystem (the guest
    /// writes to it).
    #[arg(long, value_name = "DIR", required_unless_present = "image")]
    pub rootfs: Option<PathBuf>,
    /// Boot from an image in the store (`krunbox load`, `krunbox images`):
    /// its tree read-only under a writable layer of this VM's own, and its
    /// Env, WorkingDir, Entrypoint, Cmd and User as the defaults.
    #[arg(long, value_name = "IMAGE", conflicts_with = "rootfs")]
    pub image: Option<String>,
    /// With --image: when to fetch it from its registry.
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing, requires = "image")]
    pub pull: PullPolicy,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub cpus: u8,
    /// Guest memory in MiB.
    #[arg(long = "mem", default_value_t = 512, value_name = "MIB")]
    pub memory_mib: u32,
    /// Set an environment variable in the guest (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Working directory in the guest: the command's (`run`), or every
    /// exec's unless it gives its own (`start`).
    #[arg(short, long, value_name = "PATH")]
    pub workdir: Option<String>,
    /// Guest network: none (loopback only); tsi (guest sockets go through
    /// the host's: the guest reaches whatever the host reaches, host
    /// loopback included, unfiltered); egress (only what --allow names,
    /// through a host-side proxy and DNS, each attempt recorded: `krunbox
    /// logs --egress`). Default: tsi, or egress when --allow is given.
    #[arg(long, value_enum)]
    pub net: Option<Net>,
    /// With --net egress: a destination the guest may reach (repeatable):
    /// NAME[:PORT], *.DOMAIN[:PORT], ADDR[/LEN][:PORT], [V6][/LEN]:PORT,
    /// or * (any name or public address). The host's loopback, private
    /// and link-local ranges and its own addresses stay closed unless a
    /// rule names the address.
    #[arg(long = "allow", value_name = "RULE")]
    pub allow: Vec<Rule>,
    /// With --net egress: resolve NAME to ADDR on the host instead of
    /// asking the host's resolver (repeatable).
    #[arg(long = "egress-host", value_name = "NAME=ADDR", value_parser = parse_host)]
    pub egress_host: Vec<(String, IpAddr)>,
    /// With --net egress: append each attempt to FILE as a JSON line (a
    /// named VM also keeps them for `krunbox logs --egress`).
    #[arg(long, value_name = "FILE")]
    pub egress_log: Option<PathBuf>,
    /// Publish a guest TCP port on the host (repeatable; needs --net tsi
    /// or egress).
    #[arg(short, long = "publish", value_name = "HOST:GUEST")]
    pub publish: Vec<PublishedPort>,
    /// Share a host directory at a guest path, read-only with :ro
    /// (repeatable).
    #[arg(short, long = "volume", value_name = "HOST_DIR:GUEST_PATH[:ro]")]
    pub volume: Vec<Volume>,
    /// Limit a resource of the guest command, e.g. nofile=1024:4096
    /// (repeatable).
    #[arg(long = "rlimit", value_name = "NAME=SOFT[:HARD]")]
    pub rlimit: Vec<Rlimit>,
    /// The guest's host name.
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Write the guest console (kernel and init messages) to this file.
    #[arg(long, value_name = "PATH")]
    pub console_log: Option<PathBuf>,
    /// libkrun log level, 0 (off) to 5 (trace), on standard error.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub log_level: u32,
    /// Refuse to boot unless the runner can fence itself with both
    /// Landlock and seccomp (by default it boots with what the kernel has;
    /// `krunbox doctor` says what that is).
    #[arg(long)]
    pub require_confinement: bool,
    /// Run the VM's runner in a cgroup v2 of its own, made under this
    /// (writable, delegated) cgroup directory and removed with the VM.
    #[arg(long, value_name = "DIR")]
    pub cgroup_parent: Option<PathBuf>,
    /// The runner's cgroup memory limit (memory.max): guest memory and
    /// libkrun's together; the kernel kills the VM past it.
    #[arg(long, value_name = "MIB", requires = "cgroup_parent")]
    pub memory_limit: Option<u64>,
    /// The runner's cgroup CPU limit (cpu.max), in CPUs, e.g. 1.5.
    #[arg(long, value_name = "CPUS", requires = "cgroup_parent")]
    pub cpu_limit: Option<f64>,
    /// The runner's cgroup pids limit (pids.max): its threads count.
    #[arg(long, value_name = "N", requires = "cgroup_parent")]
    pub pids_limit: Option<u64>,
    /// When krunbox runs as root: the unprivileged user the VM's runner
    /// drops to (GID defaults to UID). The VM's files must be theirs to
    /// serve; an --image boot's tree only needs to be readable.
    #[arg(long, value_name = "UID[:GID]", value_parser = super::exec::parse_user)]
    pub runner_user: Option<(u32, Option<u32>)>,
}

/// `--net`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Net {
    /// No network: the guest has only loopback.
    None,
    /// libkrun's transparent socket impersonation.
    Tsi,
    /// TSI walled in: only what --allow names.
    Egress,
}

/// What a VM boots from: the library configuration, and the image it
/// came from, if any.
pub struct Boot {
    /// The configuration.
    pub config: VmConfig,
    /// The image, with `--image`.
    pub image: Option<Image>,
}

impl VmArgs {
    /// These options with their relative host paths (the rootfs, volume
    /// sources) read from `base` rather than the working directory: a
    /// pool's options, stored as given, are read from where it was made.
    pub fn anchored_at(mut self, base: &Path) -> Self {
        if let Some(rootfs) = self.rootfs.as_mut().filter(|r| r.is_relative()) {
            *rootfs = base.join(&*rootfs);
        }
        for volume in self.volume.iter_mut().filter(|v| v.host.is_relative()) {
            volume.host = base.join(&volume.host);
        }
        self
    }

    /// The image (looked up in the store) and the library configuration
    /// these options describe.
    pub async fn boot(&self) -> Result<Boot, ImageError> {
        let image = match &self.image {
            Some(reference) => Some(pull::image(reference, self.pull, &self.registry).await?),
            None => None,
        };
        let base = match (&image, &self.rootfs) {
            (Some(image), _) => VmConfig::from_image(image).map_err(|source| ImageError::User {
                image: super::image::display_name(image),
                source,
            })?,
            (None, Some(rootfs)) => VmConfig::new(rootfs),
            // clap requires one of them; a caller building VmArgs by hand
            // gets the error instead of a panic.
            (None, None) => return Err(ImageError::NoRoot),
        };
        Ok(Boot {
            config: self.configure(base),
            image,
        })
    }

    /// `base` with these options applied over it.
    fn configure(&self, base: VmConfig) -> VmConfig {
        let mut config = base
            .cpus(self.cpus)
            .memory_mib(self.memory_mib)
            .log_level(self.log_level)
            .confinement(Confinement {
                required: self.require_confinement,
                cgroup: self.cgroup_parent.clone().map(|parent| CgroupLimits {
                    parent,
                    memory_max_mib: self.memory_limit,
                    cpus: self.cpu_limit,
                    pids_max: self.pids_limit,
                }),
                user: self.runner_user.map(|(uid, gid)| RunAs {
                    uid,
                    gid: gid.unwrap_or(uid),
                }),
                ..Confinement::default()
            })
            .egress(Policy::new(self.allow.iter().cloned()));
        // The allow-list chose the mode unless --net did; a list with
        // another mode is refused when the VM is checked.
        config = config.net(match (self.net, self.allow.is_empty()) {
            (Some(Net::None), _) => NetMode::None,
            (Some(Net::Tsi), _) | (None, true) => NetMode::Tsi,
            (Some(Net::Egress), _) | (None, false) => NetMode::Egress,
        });
        for (name, addr) in &self.egress_host {
            config = config.egress_host(name, *addr);
        }
        if let Some(path) = &self.egress_log {
            config = config.egress_log(path);
        }
        for (key, value) in &self.env {
            config = config.env(key, value);
        }
        if let Some(dir) = &self.workdir {
            config = config.workdir(dir);
        }
        for port in &self.publish {
            config = config.publish(*port);
        }
        for volume in &self.volume {
            config = config.volume(volume.clone());
        }
        for limit in &self.rlimit {
            config = config.rlimit(*limit);
        }
        if let Some(name) = &self.hostname {
            config = config.hostname(name);
        }
        if let Some(path) = &self.console_log {
            config = config.console_log(path);
        }
        config
    }
}

/// `NAME=ADDR`.
fn parse_host(text: &str) -> Result<(String, IpAddr), String> {
    let bad = || format!("expected NAME=ADDR, got {text:?}");
    let (name, addr) = text.split_once('=').ok_or_else(bad)?;
    let addr = addr.parse().map_err(|_| bad())?;
    match name.is_empty() {
        true => Err(bad()),
        false => Ok((name.to_owned(), addr)),
    }
}

pub fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        vm: VmArgs,
    }

    #[test]
    fn repeatable_options_parse_into_library_types() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "t",
            "--rootfs",
            "/r",
            "-p",
            "8080:80",
            "-p",
            "8443:443",
            "-v",
            "/a:/b:ro",
            "--rlimit",
            "nofile=1:2",
            "--hostname",
            "h",
        ])
        .unwrap();
        assert_eq!(
            cli.vm.publish,
            [PublishedPort::new(8080, 80), PublishedPort::new(8443, 443)]
        );
        assert_eq!(cli.vm.volume, [Volume::new("/a", "/b").read_only()]);
        assert_eq!((cli.vm.rlimit[0].soft, cli.vm.rlimit[0].hard), (1, 2));
        let err = Cli::try_parse_from(["t", "--rootfs", "/r", "-p", "80"]).unwrap_err();
        assert!(err.to_string().contains("HOST_PORT:GUEST_PORT"), "{err}");
    }

    #[test]
    fn anchoring_reads_relative_host_paths_from_the_base() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["t", "--rootfs", "r", "-v", "a:/b", "-v", "/c:/d"]).unwrap();
        let vm = cli.vm.anchored_at(Path::new("/made/here"));
        assert_eq!(vm.rootfs.as_deref(), Some(Path::new("/made/here/r")));
        assert_eq!(
            vm.volume,
            [Volume::new("/made/here/a", "/b"), Volume::new("/c", "/d")]
        );
    }

    #[test]
    fn env_needs_key_and_equals() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=").unwrap(), ("A".into(), String::new()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("A").is_err());
    }
}
