//! A bundle's `config.json` as a krunbox VM and a guest command.
//!
//! Honoured: `root.path` (the VM's root filesystem, shared as krunbox
//! shares any rootfs); `process.args`, `env`, `cwd`, `user.uid`/`gid`,
//! `rlimits`, `terminal` (with `--console-socket`: [`crate::console`]);
//! `hostname`; a `network` namespace's `path` (the runner joins it, so
//! the guest's TSI network is the pod's); bind mounts of directories
//! (volumes, `ro` kept) and of files (copied into the guest by `create`:
//! a snapshot, not a live bind); CPU and memory limits from
//! `linux.resources`, or the annotations [`CPUS_ANNOTATION`] and
//! [`MEMORY_ANNOTATION`].
//!
//! Ignored, because the guest kernel provides them or the VM is the
//! boundary: the kernel filesystems (`proc`, `sysfs`, `devpts`, `mqueue`,
//! `cgroup`), `tmpfs` mounts, the other namespaces (and a network one
//! without a path), capabilities, seccomp, AppArmor/SELinux labels,
//! `noNewPrivileges`, `root.readonly`.
//!
//! Refused with an error: hooks (they are not run), mounts of other
//! types.

use std::path::{Path, PathBuf};

use krunbox::client::{GuestCommand, NO_TIMEOUT};
use krunbox::vm::{Rlimit, RlimitError, VmConfig, Volume};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Process, Spec};

/// Annotation overriding the VM's vCPU count.
pub(crate) const CPUS_ANNOTATION: &str = "io.krunbox.cpus";
/// Annotation overriding the VM's memory, in MiB.
pub(crate) const MEMORY_ANNOTATION: &str = "io.krunbox.memory_mib";
/// The least memory a container's VM gets, whatever its limit says.
const MIN_MEMORY_MIB: u32 = 128;

/// Kernel filesystems the guest mounts itself.
const KERNEL_FS: &[&str] = &[
    "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "tmpfs",
];

/// Why a bundle cannot run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpecError {
    /// `config.json` is missing or not a runtime spec.
    #[error("config.json cannot be read")]
    Load(#[source] oci_spec::OciSpecError),
    /// No `root` (a VM needs a root filesystem).
    #[error("config.json has no root")]
    NoRoot,
    /// No `process.args`.
    #[error("config.json has no process.args")]
    NoArgs,
    /// A feature that is refused, with why.
    #[error("{what}: {why}")]
    Refused { what: String, why: &'static str },
    /// A bind mount whose source is not there.
    #[error("mount {}: its source {} is missing", destination.display(), source_path.display())]
    MissingSource {
        destination: PathBuf,
        source_path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An rlimit krunbox does not know.
    #[error("rlimit {name}")]
    Rlimit {
        name: String,
        #[source]
        source: RlimitError,
    },
    /// An annotation that is not a number in range.
    #[error("annotation {key}={value:?} is not a number in range")]
    Annotation { key: &'static str, value: String },
}

/// A file bind mount: copied into the guest before the process starts.
#[derive(Debug, Clone)]
pub(crate) struct FileCopy {
    pub(crate) host: PathBuf,
    pub(crate) guest: String,
    pub(crate) mode: u32,
}

/// What a bundle becomes.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) spec: Spec,
    pub(crate) rootfs: PathBuf,
    pub(crate) vm: VmConfig,
    pub(crate) files: Vec<FileCopy>,
}

/// Reads `bundle/config.json`.
pub(crate) fn load(bundle: &Path) -> Result<Spec, SpecError> {
    Spec::load(bundle.join("config.json")).map_err(SpecError::Load)
}

/// The VM and the files for `bundle`.
pub(crate) fn plan(bundle: &Path) -> Result<Plan, SpecError> {
    let spec = load(bundle)?;
    if spec.hooks().is_some() {
        return Err(refused("hooks", "krunbox-oci does not run them"));
    }
    let root = spec.root().as_ref().ok_or(SpecError::NoRoot)?;
    let rootfs = bundle.join(root.path());
    let mut vm = VmConfig::new(&rootfs);
    if let Some(hostname) = spec.hostname() {
        vm = vm.hostname(hostname.clone());
    }
    let (cpus, memory) = resources(&spec)?;
    if let Some(cpus) = cpus {
        vm = vm.cpus(cpus);
    }
    if let Some(mib) = memory {
        vm = vm.memory_mib(mib.max(MIN_MEMORY_MIB));
    }
    if let Some(process) = spec.process() {
        for limit in process.rlimits().iter().flatten() {
            let name = limit.typ().to_string();
            let resource = name.parse().map_err(|source| SpecError::Rlimit {
                name: name.clone(),
                source,
            })?;
            vm = vm.rlimit(Rlimit::new(resource, limit.soft(), limit.hard()));
        }
    }
    if let Some(path) = net_namespace(&spec) {
        vm = vm.net_namespace(path);
    }
    let mut files = Vec::new();
    for mount in spec.mounts().iter().flatten() {
        match mapped(mount)? {
            Mapped::Ignored => {}
            Mapped::Volume(volume) => vm = vm.volume(volume),
            Mapped::File(file) => files.push(file),
        }
    }
    Ok(Plan {
        spec,
        rootfs,
        vm,
        files,
    })
}

/// The network namespace to join: a `network` namespace with a path
/// (a pod's, which CRI hands its containers). One without a path asks
/// for a new namespace, which the VM is already: ignored.
fn net_namespace(spec: &Spec) -> Option<PathBuf> {
    let linux = spec.linux().as_ref()?;
    linux
        .namespaces()
        .iter()
        .flatten()
        .find(|ns| ns.typ() == LinuxNamespaceType::Network)
        .and_then(|ns| ns.path().clone())
}

/// The container's process as a guest command.
pub(crate) fn process(spec: &Spec) -> Result<GuestCommand, SpecError> {
    command(spec.process().as_ref().ok_or(SpecError::NoArgs)?)
}

/// A process (the container's, or an `exec`'s) as a guest command.
pub(crate) fn command(process: &Process) -> Result<GuestCommand, SpecError> {
    let args = process.args().as_deref().unwrap_or_default();
    let (program, rest) = args.split_first().ok_or(SpecError::NoArgs)?;
    let mut cmd = GuestCommand::new(program.clone())
        .args(rest.iter().cloned())
        .env_clear()
        .cwd(process.cwd().to_string_lossy())
        .uid(process.user().uid())
        .gid(process.user().gid())
        .stream_stdin()
        .timeout(NO_TIMEOUT);
    for pair in process.env().iter().flatten() {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        cmd = cmd.env(key, value);
    }
    Ok(cmd)
}

/// Whether the process runs on a terminal (a console, see
/// [`crate::console`]).
pub(crate) fn terminal(process: &Process) -> bool {
    process.terminal() == Some(true)
}

fn refused(what: &str, why: &'static str) -> SpecError {
    SpecError::Refused {
        what: what.to_owned(),
        why,
    }
}

/// What one mount becomes.
enum Mapped {
    Ignored,
    Volume(Volume),
    File(FileCopy),
}

fn mapped(mount: &Mount) -> Result<Mapped, SpecError> {
    let options = mount.options().as_deref().unwrap_or_default();
    let typ = mount.typ().as_deref().unwrap_or("");
    let bind = typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
    if !bind {
        if KERNEL_FS.contains(&typ) {
            return Ok(Mapped::Ignored);
        }
        let what = format!("mount {} of type {typ:?}", mount.destination().display());
        return Err(SpecError::Refused {
            what,
            why: "only bind mounts and the kernel's filesystems are supported",
        });
    }
    let destination = mount.destination().clone();
    let source_path = mount.source().clone().unwrap_or_default();
    let meta = std::fs::metadata(&source_path).map_err(|source| SpecError::MissingSource {
        destination: destination.clone(),
        source_path: source_path.clone(),
        source,
    })?;
    let guest = destination.to_string_lossy().into_owned();
    if meta.is_dir() {
        let volume = Volume::new(source_path, guest);
        let read_only = options.iter().any(|o| o == "ro");
        return Ok(Mapped::Volume(if read_only {
            volume.read_only()
        } else {
            volume
        }));
    }
    use std::os::unix::fs::PermissionsExt;
    Ok(Mapped::File(FileCopy {
        host: source_path,
        guest,
        mode: meta.permissions().mode() & 0o7777,
    }))
}

/// vCPUs and MiB from the annotations, else from `linux.resources`.
fn resources(spec: &Spec) -> Result<(Option<u8>, Option<u32>), SpecError> {
    let annotated = |key: &'static str| -> Result<Option<u32>, SpecError> {
        let Some(value) = spec.annotations().as_ref().and_then(|a| a.get(key)) else {
            return Ok(None);
        };
        match value.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(SpecError::Annotation {
                key,
                value: value.clone(),
            }),
        }
    };
    let limits = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let cpu = limits.and_then(|r| r.cpu().as_ref());
    let from_quota = cpu.and_then(|c| match (c.quota(), c.period()) {
        (Some(quota), Some(period)) if quota > 0 && period > 0 => {
            Some((quota as u64).div_ceil(period))
        }
        _ => None,
    });
    let from_set = cpu
        .and_then(|c| c.cpus().as_deref())
        .map(cpuset_len)
        .filter(|n| *n > 0);
    let cpus = match annotated(CPUS_ANNOTATION)? {
        Some(n) => Some(n as u64),
        None => from_quota.or(from_set),
    };
    let memory = match annotated(MEMORY_ANNOTATION)? {
        Some(n) => Some(n),
        None => limits
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
            .map(|bytes| (bytes as u64).div_ceil(1 << 20).min(u64::from(u32::MAX)) as u32),
    };
    let cpus = cpus.map(|n| n.clamp(1, u64::from(u8::MAX)) as u8);
    Ok((cpus, memory))
}

/// The number of CPUs in a cpuset list such as `0-3,6`.
fn cpuset_len(list: &str) -> u64 {
    list.split(',')
        .filter_map(|part| match part.trim().split_once('-') {
            Some((a, b)) => Some(b.parse::<u64>().ok()? + 1 - a.parse::<u64>().ok()?),
            None => part.trim().parse::<u64>().ok().map(|_| 1),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(config: serde_json::Value) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        dir
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh", "-c", "echo hi"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                        "env": ["PATH=/bin", "A=b=c"]},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts"}
            ]
        })
    }

    #[test]
    fn cpusets_count() {
        assert_eq!(cpuset_len("0-3,6"), 5);
        assert_eq!(cpuset_len("2"), 1);
        assert_eq!(cpuset_len(""), 0);
    }

    #[test]
    fn a_plain_bundle_maps_and_kernel_mounts_are_ignored() {
        let dir = bundle(base());
        let plan = plan(dir.path()).unwrap();
        assert_eq!(plan.rootfs, dir.path().join("rootfs"));
        assert!(plan.files.is_empty());
        let cmd = process(&plan.spec).unwrap();
        let req = cmd.request();
        assert_eq!(req.argv, ["sh", "-c", "echo hi"]);
        assert!(
            req.env.iter().any(|(k, v)| k == "A" && v == "b=c"),
            "{:?}",
            req.env
        );
    }

    #[test]
    fn a_network_namespace_path_is_joined_and_a_new_one_ignored() {
        let mut config = base();
        let ns = |path: Option<&str>| {
            let mut ns = serde_json::json!({"type": "network"});
            if let Some(path) = path {
                ns["path"] = path.into();
            }
            serde_json::json!({"namespaces": [{"type": "mount"}, ns]})
        };
        config["linux"] = ns(Some("/var/run/netns/pod"));
        let joined = plan(bundle(config.clone()).path()).unwrap();
        assert_eq!(
            net_namespace(&joined.spec),
            Some("/var/run/netns/pod".into())
        );
        config["linux"] = ns(None);
        let new = plan(bundle(config).path()).unwrap();
        assert_eq!(net_namespace(&new.spec), None);
    }

    #[test]
    fn binds_become_volumes_or_copies_and_missing_sources_fail() {
        let dir = bundle(serde_json::json!({}));
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let file = dir.path().join("resolv.conf");
        std::fs::write(&file, "nameserver 10.0.0.1\n").unwrap();
        let mut config = base();
        config["mounts"] = serde_json::json!([
            {"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "ro"]},
            {"destination": "/etc/resolv.conf", "type": "bind", "source": file, "options": ["bind"]}
        ]);
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let plan = plan(dir.path()).unwrap();
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.files[0].guest, "/etc/resolv.conf");

        config["mounts"] = serde_json::json!([
            {"destination": "/gone", "type": "bind", "source": dir.path().join("nope")}
        ]);
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let err = super::plan(dir.path()).unwrap_err();
        assert!(matches!(err, SpecError::MissingSource { .. }), "{err:?}");
    }

    #[test]
    fn refused_features_say_why() {
        let mut config = base();
        config["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/true"}]});
        let dir = bundle(config);
        assert!(super::plan(dir.path())
            .unwrap_err()
            .to_string()
            .contains("hooks"));

        let mut config = base();
        config["mounts"] = serde_json::json!([{"destination": "/n", "type": "nfs", "source": "x"}]);
        let dir = bundle(config);
        assert!(super::plan(dir.path())
            .unwrap_err()
            .to_string()
            .contains("nfs"));
    }

    #[test]
    fn resources_and_annotations_size_the_vm() {
        let mut config = base();
        config["linux"] = serde_json::json!({"resources": {
            "cpu": {"quota": 150000, "period": 100000},
            "memory": {"limit": 268435456}
        }});
        let dir = bundle(config.clone());
        let spec = load(dir.path()).unwrap();
        assert_eq!(resources(&spec).unwrap(), (Some(2), Some(256)));

        config["annotations"] = serde_json::json!({CPUS_ANNOTATION: "1", MEMORY_ANNOTATION: "512"});
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let spec = load(dir.path()).unwrap();
        assert_eq!(resources(&spec).unwrap(), (Some(1), Some(512)));

        config["annotations"] = serde_json::json!({CPUS_ANNOTATION: "many"});
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let spec = load(dir.path()).unwrap();
        assert!(matches!(
            resources(&spec),
            Err(SpecError::Annotation { .. })
        ));
    }
}
