//! The egress process: the host-side half of the egress mode, forked by
//! the runner before it walls itself in.
//!
//! ```text
//!  runner (single-threaded) ─fork─► egress process (host namespace)
//!    │ unshare: netns with only lo           │ waits on the pair
//!    │ listeners at 198.18.0.1 ─SCM_RIGHTS──►│ serves proxy (3128) + DNS (53)
//!    │ libkrun, TSI: guest sockets here      │ dials allowed hosts from the host
//!    ▼ exits ── PR_SET_PDEATHSIG ──────────► dies with it
//! ```
//!
//! The egress process lives exactly as long as its runner (a named VM's
//! wall outlives the `krunbox start` that made it), writes its
//! [`EgressEvent`](super::EgressEvent)s as JSON lines to the files [`EgressSetup::logs`]
//! names, and holds nothing of the runner's but the pair: its standard
//! streams are `/dev/null` (the runner's are the guest's), every other
//! inherited descriptor is closed.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::dns::{DnsServer, FakeNames};
use super::factory::Factory;
use super::handover;
use super::netns::{self, Listeners, NetnsError};
use super::policy::{Policy, Rule, RuleError};
use super::proxy::{EgressProxy, Resolver};
use super::transparent::Transparent;

/// What the runner's egress process applies: part of the runner config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EgressSetup {
    /// The allow-list, one rule each as written (`pypi.org:443`).
    pub allow: Vec<String>,
    /// Names resolved to these addresses instead of by the host's
    /// resolver (as `docker --add-host` pins them).
    pub hosts: Vec<(String, IpAddr)>,
    /// The files each attempt is appended to as a JSON line (the VM's
    /// own, a caller's); none: nowhere.
    #[serde(default)]
    pub logs: Vec<PathBuf>,
    /// Published host ports: each carried in to the same port inside
    /// the wall, where libkrun binds it for the guest.
    #[serde(default)]
    pub published: Vec<u16>,
}

impl EgressSetup {
    /// The policy its rules make.
    pub fn policy(&self) -> Result<Policy, RuleError> {
        let rules = self.allow.iter().map(|text| text.parse::<Rule>());
        Ok(Policy::new(rules.collect::<Result<Vec<_>, _>>()?))
    }

    fn resolver(&self) -> Resolver {
        let mut pinned: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, addr) in &self.hosts {
            pinned.entry(name.to_lowercase()).or_default().push(*addr);
        }
        Resolver::Pinned(pinned)
    }
}

/// The wall could not be put up.
#[derive(Debug, thiserror::Error)]
pub enum WallError {
    /// A rule of the allow-list is not one.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The pair to the egress process could not be made.
    #[error("cannot make the egress process's socket pair")]
    Pair(#[source] io::Error),
    /// The egress process could not be forked.
    #[error("cannot fork the egress process")]
    Fork(#[source] nix::Error),
    /// The namespace could not be made or its listeners opened.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The listeners could not be handed over.
    #[error("cannot hand the listeners to the egress process")]
    Handover(#[source] io::Error),
    /// An egress log cannot be opened for appending.
    #[error("cannot open the egress log {}", path.display())]
    Log {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A published host port cannot be listened on.
    #[error("cannot listen on the published host port {port}")]
    Publish {
        /// The port.
        port: u16,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// In the runner, while it is single-threaded: forks the egress process,
/// moves the runner into a network namespace of its own, and hands the
/// egress process the listeners made there. Returns in the runner only,
/// with the pair, on which the runner's [`factory`](super::factory)
/// thread then serves the egress process.
pub fn wall_in(setup: &EgressSetup) -> Result<UnixStream, WallError> {
    let policy = setup.policy()?;
    // Published ports are the host's: bound here, before the wall, and
    // inherited by the egress process.
    let published = setup
        .published
        .iter()
        .map(|&port| {
            let listener = std::net::TcpListener::bind(("0.0.0.0", port));
            listener
                .map(|l| (port, l))
                .map_err(|source| WallError::Publish { port, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Opened here, where a failure is the runner's to report.
    let logs = setup
        .logs
        .iter()
        .map(|path| {
            let opened = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path);
            opened.map_err(|source| WallError::Log {
                path: path.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (runner_end, egress_end) = UnixStream::pair().map_err(WallError::Pair)?;
    let runner = nix::unistd::getpid();
    // SAFETY: the runner is single-threaded here (the caller's promise),
    // so the child may allocate and run anything.
    match unsafe { nix::unistd::fork() }.map_err(WallError::Fork)? {
        nix::unistd::ForkResult::Child => {
            drop(runner_end);
            egress_process(egress_end, runner, policy, setup, (published, logs))
        }
        nix::unistd::ForkResult::Parent { .. } => {
            drop(egress_end);
            drop(published);
            drop(logs);
        }
    }
    netns::enter()?;
    let listeners = Listeners::open()?;
    handover::send(&runner_end, &listeners).map_err(WallError::Handover)?;
    // The egress process holds them now; if it dies, they close, and the
    // guest's connections are refused rather than left waiting.
    drop(listeners);
    Ok(runner_end)
}

/// Published ports: the host port and its listener.
type Published = Vec<(u16, std::net::TcpListener)>;
/// What the egress process inherits: the published ports' listeners and
/// the logs, open.
type Inherited = (Published, Vec<std::fs::File>);

/// The egress process's life; it never returns.
fn egress_process(
    channel: UnixStream,
    runner: nix::unistd::Pid,
    policy: Policy,
    setup: &EgressSetup,
    inherited: Inherited,
) -> ! {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if nix::unistd::getppid() != runner {
        std::process::exit(0);
    }
    let (published, logs) = &inherited;
    let kept: Vec<i32> = (published.iter().map(|(_, l)| l.as_raw_fd()))
        .chain(logs.iter().map(|f| f.as_raw_fd()))
        .collect();
    let channel = match keep_only(channel, &kept) {
        Ok(channel) => channel,
        Err(_) => std::process::exit(1),
    };
    match serve(channel, policy, setup, inherited) {
        Ok(()) => std::process::exit(0),
        Err(_) => std::process::exit(1),
    }
}

/// Standard streams to `/dev/null`, the pair to fd 3, every other
/// descriptor closed but `kept`.
fn keep_only(channel: UnixStream, kept: &[i32]) -> io::Result<UnixStream> {
    let dup2 = |from: i32, to: i32| {
        // SAFETY: dup2 takes integers; it replaces fd 3 (the runner's
        // event pipe) and the standard streams, which nothing here holds.
        match unsafe { libc::dup2(from, to) } {
            -1 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        }
    };
    if kept.contains(&3) {
        return Err(io::Error::other("a kept descriptor is at fd 3"));
    }
    dup2(channel.as_raw_fd(), 3)?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        dup2(null.as_raw_fd(), fd)?;
    }
    drop(null);
    // The pair's old descriptor is closed below with the rest.
    std::mem::forget(channel);
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| *fd > 3 && !kept.contains(fd)) {
        // SAFETY: nothing in this process holds these as owned handles
        // (inherited from the runner, or the listing's own, now closed).
        unsafe { libc::close(fd) };
    }
    // SAFETY: fd 3 is the pair, owned only here.
    Ok(unsafe { UnixStream::from_raw_fd(3) })
}

/// Receives the listeners and serves them until the process is killed.
fn serve(
    channel: UnixStream,
    policy: Policy,
    setup: &EgressSetup,
    (published, mut logs): Inherited,
) -> io::Result<()> {
    let listeners = handover::receive(&channel)?;
    let factory = Arc::new(Factory::new(channel));
    let policy = policy.with_host_addresses(host_addresses());
    // Few blocking threads (name lookups, the factory's requests): they
    // count against the VM's cgroup pids limit.
    // Everything it opens for good is open: from here on, only what the
    // resolver reads. (A kernel without Landlock: not fenced.)
    let _ = super::fence::restrict();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()?;
    runtime.block_on(async move {
        listeners.proxy.set_nonblocking(true)?;
        listeners.dns.set_nonblocking(true)?;
        let proxy_listener = tokio::net::TcpListener::from_std(listeners.proxy)?;
        let dns_socket = tokio::net::UdpSocket::from_std(listeners.dns)?;
        let names = Arc::new(Mutex::new(FakeNames::default()));
        let (proxy, mut events) = EgressProxy::new(policy.clone(), setup.resolver());
        let policy = Arc::new(policy);
        let transparent = Transparent::new(proxy.clone(), policy.clone(), factory.clone());
        let dns =
            DnsServer::new(policy, names, proxy.events()).with_transparent(Arc::new(transparent));
        for (port, listener) in published {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(super::published::forward(listener, port, factory.clone()));
        }
        tokio::spawn(proxy.serve(proxy_listener));
        tokio::spawn(dns.serve(dns_socket));
        while let Some(event) = events.recv().await {
            let line = event.to_line();
            for log in &mut logs {
                // A full disk loses the record, not the connection.
                let _ = log.write_all(line.as_bytes());
            }
        }
        Ok(())
    })
}

/// The addresses of the host's own interfaces (in the namespace the
/// egress process dials from), which no rule but one naming them opens.
fn host_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|interface| {
            let addr = interface.address?;
            match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
                (Some(v4), _) => Some(IpAddr::V4(v4.ip())),
                (_, Some(v6)) => Some(IpAddr::V6(v6.ip())),
                _ => None,
            }
        })
        .collect()
}
