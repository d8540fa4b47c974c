//! Volumes: host directories shared with the guest (extra virtio-fs
//! devices), mounted by the embedded agent before the workload starts.

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::runner::Workload;

/// Prefix of the virtio-fs tags krunbox gives volumes (`krunbox-vol0`, …).
const TAG_PREFIX: &str = "krunbox-vol";

/// A host directory shared with the guest at `guest`. Written
/// `HOST_DIR:GUEST_PATH[:ro]`, as `docker -v`.
///
/// A read-only volume is refused writes twice: the guest mounts it
/// read-only, and libkrun's file server for it refuses every write, so
/// even a guest that remounts it cannot change the host directory.
///
/// ```
/// use krunbox::vm::Volume;
///
/// let v: Volume = "/srv/data:/data:ro".parse()?;
/// assert_eq!(v, Volume::new("/srv/data", "/data").read_only());
/// # Ok::<(), krunbox::vm::VolumeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The host directory.
    pub host: PathBuf,
    /// The absolute guest path it is mounted at (created if missing).
    pub guest: String,
    /// Whether the guest may only read it.
    pub read_only: bool,
}

/// A volume that cannot be shared, found before boot.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Not `HOST_DIR:GUEST_PATH[:ro|:rw]`.
    #[error("expected HOST_DIR:GUEST_PATH[:ro], got {0:?}")]
    Syntax(String),
    /// The host directory is missing or not a directory.
    #[error("volume source {} {problem}", path.display())]
    Host {
        /// The host path.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The host directory could not be resolved to an absolute path.
    #[error("cannot resolve the volume source {}", .0.display())]
    Resolve(PathBuf, #[source] std::io::Error),
    /// The guest path is not a clean absolute path below `/`.
    #[error(
        "volume target {0:?} must be an absolute guest path below / without '.' or '..' parts"
    )]
    Guest(String),
    /// Two volumes at one guest path.
    #[error("two volumes are mounted at {0}")]
    GuestTwice(String),
}

impl Volume {
    /// Shares `host` read-write at the guest path `guest`.
    pub fn new(host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            guest: guest.into(),
            read_only: false,
        }
    }

    /// Makes the volume read-only.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The absolute host directory, checked to exist and to be a
    /// directory whose path libkrun can take (UTF-8).
    pub(crate) fn host_dir(&self) -> Result<PathBuf, VolumeError> {
        let problem = |problem| VolumeError::Host {
            path: self.host.clone(),
            problem,
        };
        match std::fs::metadata(&self.host) {
            Err(_) => return Err(problem("does not exist")),
            Ok(m) if !m.is_dir() => return Err(problem("is not a directory")),
            Ok(_) => {}
        }
        let dir = self
            .host
            .canonicalize()
            .map_err(|e| VolumeError::Resolve(self.host.clone(), e))?;
        if dir.to_str().is_none() {
            return Err(problem("is not a UTF-8 path"));
        }
        Ok(dir)
    }

    /// The virtio-fs tag of the volume at `index`.
    pub(crate) fn tag(index: usize) -> String {
        format!("{TAG_PREFIX}{index}")
    }

    /// The agent's arguments that mount the volume at `index`.
    pub(crate) fn agent_args(&self, index: usize) -> [String; 4] {
        let mode = if self.read_only { "ro" } else { "rw" };
        [
            "--mount".into(),
            Self::tag(index),
            self.guest.clone(),
            mode.into(),
        ]
    }
}

impl FromStr for Volume {
    type Err = VolumeError;

    fn from_str(text: &str) -> Result<Self, VolumeError> {
        let syntax = || VolumeError::Syntax(text.to_owned());
        let (rest, read_only) = match text.rsplit_once(':') {
            Some((rest, "ro")) => (rest, true),
            Some((rest, "rw")) => (rest, false),
            _ => (text, false),
        };
        // The guest path is absolute and has no ':'; the host path may.
        let (host, guest) = rest.rsplit_once(':').ok_or_else(syntax)?;
        if host.is_empty() || guest.is_empty() {
            return Err(syntax());
        }
        Ok(Self {
            host: host.into(),
            guest: guest.into(),
            read_only,
        })
    }
}

/// What the agent sets up in the guest before its workload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuestSetup<'a> {
    /// The read-only root's share tag, if the root is an image's.
    pub root_share: Option<&'a str>,
    /// The default user of every command.
    pub user: Option<(u32, u32)>,
    /// Shares to mount.
    pub volumes: &'a [Volume],
    /// The name server `/etc/resolv.conf` names (the egress mode's).
    pub nameserver: Option<&'a str>,
    /// The workload's working directory.
    pub workdir: Option<&'a str>,
}

/// `workload`, wrapped so that the agent first enters the read-only root
/// shared as `root_share` (`--root TAG`), if any, takes `user` as the
/// default of every command (`--user UID:GID`), points the guest's
/// resolver at `nameserver` (`--nameserver ADDR`), and mounts `volumes`: the
/// agent's own arguments get `--mount`s and `--chdir WORKDIR` (its execs
/// then start there); a command becomes
/// `agent --mount … [--chdir WORKDIR] --exec PROGRAM ARGS…` (a workdir
/// inside a volume exists only once it is mounted).
pub(crate) fn mounting(setup: GuestSetup<'_>, workload: Workload) -> Workload {
    let GuestSetup {
        root_share,
        user,
        volumes,
        nameserver,
        workdir,
    } = setup;
    if volumes.is_empty() && root_share.is_none() && user.is_none() && nameserver.is_none() {
        return workload;
    }
    let mut args: Vec<String> = root_share
        .map(|tag| ["--root".to_owned(), tag.to_owned()])
        .into_iter()
        .flatten()
        .collect();
    if let Some((uid, gid)) = user {
        args.extend(["--user".to_owned(), format!("{uid}:{gid}")]);
    }
    if let Some(addr) = nameserver {
        args.extend(["--nameserver".to_owned(), addr.to_owned()]);
    }
    args.extend(
        volumes
            .iter()
            .enumerate()
            .flat_map(|(i, v)| v.agent_args(i)),
    );
    if let Some(dir) = workdir {
        args.extend(["--chdir".to_owned(), dir.to_owned()]);
    }
    match workload {
        Workload::Agent { args: rest } => args.extend(rest),
        Workload::Exec {
            program,
            args: rest,
        } => {
            args.push("--exec".to_owned());
            args.push(program);
            args.extend(rest);
        }
    }
    Workload::Agent { args }
}

/// Checks every volume's guest path, and that no two share one. (Host
/// directories are checked when the runner config is made.)
pub(crate) fn check(volumes: &[Volume]) -> Result<(), VolumeError> {
    let mut seen: Vec<PathBuf> = Vec::new();
    for v in volumes {
        let path = Path::new(&v.guest);
        let clean = path.is_absolute()
            && path.components().count() > 1
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !clean {
            return Err(VolumeError::Guest(v.guest.clone()));
        }
        // `components` drops trailing and doubled slashes: compare those.
        let normal: PathBuf = path.components().collect();
        if seen.contains(&normal) {
            return Err(VolumeError::GuestTwice(v.guest.clone()));
        }
        seen.push(normal);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_like_docker() {
        let v: Volume = "/srv/data:/data".parse().unwrap();
        assert_eq!(v, Volume::new("/srv/data", "/data"));
        let v: Volume = "./rel:/data:ro".parse().unwrap();
        assert_eq!(v, Volume::new("./rel", "/data").read_only());
        let v: Volume = "/a:b/c:/data:rw".parse().unwrap();
        assert_eq!(v, Volume::new("/a:b/c", "/data"));
        for bad in ["/srv/data", ":/data", "/srv:", "/srv:ro"] {
            assert!(bad.parse::<Volume>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn guest_paths_must_be_clean_and_distinct() {
        let ok = [Volume::new("/h", "/data"), Volume::new("/h", "/work/in")];
        assert!(check(&ok).is_ok());
        for bad in ["data", "/", "/data/../etc", "//"] {
            let err = check(&[Volume::new("/h", bad)]).unwrap_err();
            assert!(matches!(err, VolumeError::Guest(_)), "{bad}: {err}");
        }
        let twice = [Volume::new("/h", "/data"), Volume::new("/g", "/data/")];
        assert!(matches!(
            check(&twice).unwrap_err(),
            VolumeError::GuestTwice(_)
        ));
    }

    #[test]
    fn host_dir_must_exist_and_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let v = Volume::new(dir.path(), "/data");
        assert_eq!(v.host_dir().unwrap(), dir.path().canonicalize().unwrap());
        let err = Volume::new(dir.path().join("nope"), "/d")
            .host_dir()
            .unwrap_err();
        assert!(err.to_string().ends_with("does not exist"), "{err}");
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let err = Volume::new(&file, "/d").host_dir().unwrap_err();
        assert!(err.to_string().ends_with("is not a directory"), "{err}");
    }

    #[test]
    fn agent_arguments_name_tag_path_and_mode() {
        let v = Volume::new("/h", "/data").read_only();
        assert_eq!(v.agent_args(2), ["--mount", "krunbox-vol2", "/data", "ro"]);
    }
}
