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
    /// libkrun's log level (0 = off … 5 = trace).
    pub log_level: u32,
    /// Whether the VM outlives the process that spawned it (a named VM):
    /// the runner then starts its own session and does not watch its
    /// parent.
    #[serde(default)]
    pub detached: bool,
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

/// Guest networking.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum NetMode {
    /// No network: TSI off, the guest has only loopback.
    #[default]
    None,
    /// TSI: guest AF_INET sockets go through host sockets.
    Tsi,
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
            log_level: 0,
            detached: false,
        };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<RunnerConfig>(&json).unwrap(), config);
    }
}
