//! What the runner is asked to boot.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the runner needs to configure libkrun. Serialized as JSON
/// into the runner's environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunnerConfig {
    /// Host directory served as the guest's root filesystem (virtio-fs).
    pub rootfs: PathBuf,
    /// Number of vCPUs.
    pub vcpus: u8,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// What the guest runs.
    pub workload: Workload,
    /// Guest environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Guest working directory of the workload.
    pub workdir: Option<String>,
    /// Resource limits, `RESOURCE=SOFT:HARD` (libkrun's syntax).
    pub rlimits: Vec<String>,
    /// Networking.
    pub net: NetMode,
    /// Published ports, `HOST:GUEST`.
    pub ports: Vec<String>,
    /// Extra virtio-fs shares: (tag, host dir, read-only).
    pub shares: Vec<(String, PathBuf, bool)>,
    /// vsock ports bridged to host unix sockets.
    pub vsock_ports: Vec<VsockPort>,
    /// Where the guest console goes; `None` keeps libkrun's default.
    pub console_log: Option<PathBuf>,
    /// With a console log: give the workload the runner's stdin, stdout
    /// and stderr through their own virtio-console ports (`krun-stdin`,
    /// …) instead of the console. Without a console log libkrun does so by
    /// itself.
    #[serde(default)]
    pub stdio_ports: bool,
    /// libkrun's log level (0 = off … 5 = trace).
    pub log_level: u32,
    /// Whether the VM outlives the process that spawned it (a named VM):
    /// the runner then starts its own session and does not watch its
    /// parent.
    #[serde(default)]
    pub detached: bool,
    /// Where a detached runner's monitor writes how the VM ended (see
    /// [`super::RunnerEnd`]); `None`: no monitor.
    #[serde(default)]
    pub exit_record: Option<PathBuf>,
    /// Whether the runner runs as root of a user namespace of its own in
    /// which the caller's uid and gid are 0: for a caller that is not root
    /// booting an image, so that the guest sees the image's tree (the
    /// caller's on disk) as root's. See the `user_ns` module.
    #[serde(default)]
    pub own_user_namespace: bool,
    /// What the runner fences itself with before it starts the VM.
    #[serde(default)]
    pub confinement: super::confine::Confinement,
    /// The VM's own cgroup, made by the runner when
    /// `confinement.cgroup` asks for one and removed by whoever reaps it.
    #[serde(default)]
    pub cgroup_dir: Option<PathBuf>,
    /// With [`NetMode::Egress`]: what the egress process applies.
    #[serde(default)]
    pub egress: Option<crate::egress::EgressSetup>,
    /// A network namespace the runner joins first, so that the guest's
    /// TSI sockets are its (a pod's).
    #[serde(default)]
    pub net_namespace: Option<PathBuf>,
}

/// The guest's workload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Workload {
    /// Run this program with these arguments, as `krun_set_exec` does.
    Exec {
        /// Path or name of the program in the guest.
        program: String,
        /// Its arguments, without argv\[0\].
        args: Vec<String>,
    },
    /// Run the embedded krunbox agent with these arguments.
    Agent {
        /// Arguments of the agent.
        args: Vec<String>,
    },
}

/// Guest networking. Both modes keep the vsock device that the agent and
/// [`VsockPort`]s use; they differ in whether it impersonates sockets.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum NetMode {
    /// No network: TSI off, the guest has only its own loopback (and an
    /// unconfigured `dummy0`). Connections to anything else fail; a guest
    /// server is reachable only from inside the guest.
    #[default]
    None,
    /// TSI (transparent socket impersonation): the guest's IPv4 and IPv6
    /// sockets are carried out by host sockets of the runner process. The
    /// guest reaches whatever the host reaches, host loopback included
    /// (the guest's `127.0.0.1` is the host's), with no filtering; guest
    /// listeners bind host ports (published ones remapped).
    Tsi,
    /// TSI inside a wall: the runner runs in a network namespace of its
    /// own whose only way out is a krunbox egress process on the host,
    /// which lets the guest reach only what an allow-list names (HTTP(S)
    /// through a proxy the guest's `HTTP_PROXY` variables name, by host
    /// name; DNS answers for allowed names only) and records each attempt.
    /// The host's loopback, private networks and the metadata address are
    /// out of reach unless a rule names them. See `docs/egress.md`.
    Egress,
}

/// A guest vsock port bridged to a host unix socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VsockPort {
    /// The guest vsock port.
    pub port: u32,
    /// The host socket path.
    pub path: PathBuf,
    /// `true`: libkrun listens at `path` and connects to the guest;
    /// `false`: the guest connects and libkrun connects to `path`.
    pub listen: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_json() {
        let config = RunnerConfig {
            rootfs: "/srv/root".into(),
            vcpus: 2,
            memory_mib: 512,
            workload: Workload::Exec {
                program: "/bin/echo".into(),
                args: vec!["hi there".into()],
            },
            env: vec!["A=1".into()],
            workdir: Some("/tmp".into()),
            rlimits: vec![],
            net: NetMode::Tsi,
            ports: vec!["8080:80".into()],
            shares: vec![("data".into(), "/data".into(), true)],
            vsock_ports: vec![VsockPort {
                port: 1024,
                path: "/run/a.sock".into(),
                listen: false,
            }],
            console_log: None,
            stdio_ports: true,
            log_level: 0,
            detached: false,
            exit_record: None,
            own_user_namespace: true,
            confinement: Default::default(),
            cgroup_dir: None,
            egress: None,
            net_namespace: Some("/proc/1/ns/net".into()),
        };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<RunnerConfig>(&json).unwrap(), config);
    }
}
