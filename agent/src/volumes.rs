//! Volumes: the host's extra virtio-fs shares, mounted in the guest before
//! anything else runs, and the one-shot wrapper that mounts them and then
//! becomes the user's command.
//!
//! libkrun's init mounts only the root filesystem, so the agent mounts the
//! others. The host passes them on the agent's command line:
//!
//! ```text
//! krunbox-agent [--root TAG] --mount TAG GUEST_PATH ro|rw … [--nameserver ADDR] [--chdir DIR] --exec PROGRAM ARGS…
//! krunbox-agent --mount TAG GUEST_PATH ro|rw … --vsock 1024,1025
//! ```
//!
//! `--root TAG` first makes the image share `TAG` the root, under a
//! writable layer (see `image_root`). With `--exec` the agent mounts, changes to `DIR`, and executes `PROGRAM`
//! in its own process (the exit code is then the command's, as without
//! volumes). Without it, it mounts and serves as usual.

use std::ffi::{CString, NulError};
use std::io;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

/// The exit code of a wrapper that could not set the guest up (as
/// `krunbox run` exits with when krunbox itself fails).
pub const SETUP_FAILED_EXIT: i32 = 125;

/// One virtio-fs share to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The virtio-fs tag the host gave the share.
    pub tag: String,
    /// Where it appears in the guest.
    pub path: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What to do before serving or executing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GuestSetup {
    /// The image share to make the root of, before anything else.
    pub root: Option<String>,
    /// Shares to mount, in order.
    pub mounts: Vec<Mount>,
    /// The user every command runs as unless its request names one
    /// (an image's `User`).
    pub user: Option<(u32, u32)>,
    /// The name server the guest's `/etc/resolv.conf` names instead of
    /// the root filesystem's (the egress mode's).
    pub nameserver: Option<String>,
    /// Directory to change to after mounting (a workdir may be inside a
    /// volume, which did not exist when init changed to it).
    pub chdir: Option<PathBuf>,
    /// The command to become, program first; `None`: serve.
    pub exec: Option<Vec<String>>,
}

/// Why the guest could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The mount point could not be created.
    #[error("cannot create the mount point {}", .0.display())]
    MountPoint(PathBuf, #[source] io::Error),
    /// mount(2) failed.
    #[error("cannot mount the share {tag:?} at {}", path.display())]
    Mount {
        /// The share's tag.
        tag: String,
        /// The mount point.
        path: PathBuf,
        /// Why.
        #[source]
        errno: Errno,
    },
    /// The working directory could not be entered.
    #[error("cannot change to the working directory {}", .0.display())]
    Chdir(PathBuf, #[source] Errno),
    /// The image root could not be entered.
    #[error(transparent)]
    Root(#[from] crate::image_root::RootError),
    /// The resolver configuration could not be put in place.
    #[error(transparent)]
    Resolv(#[from] crate::resolv::ResolvError),
    /// An argument cannot be passed to execve.
    #[error("the command holds a NUL byte")]
    Nul(#[source] NulError),
}

/// Takes the setup arguments (`--mount`, `--chdir`, `--exec …`) out of
/// `args` and returns them with the arguments left for the server.
pub fn split_args(args: Vec<String>) -> Result<(GuestSetup, Vec<String>), String> {
    let mut setup = GuestSetup::default();
    let mut rest = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mount" => {
                let mut value = || {
                    args.next()
                        .ok_or("--mount wants TAG GUEST_PATH ro|rw".to_owned())
                };
                let (tag, path, mode) = (value()?, value()?, value()?);
                let read_only = match mode.as_str() {
                    "ro" => true,
                    "rw" => false,
                    other => return Err(format!("--mount mode must be ro or rw, not {other:?}")),
                };
                if !path.starts_with('/') {
                    return Err(format!(
                        "--mount wants an absolute guest path, not {path:?}"
                    ));
                }
                setup.mounts.push(Mount {
                    tag,
                    path: path.into(),
                    read_only,
                });
            }
            "--root" => {
                let tag = args.next().ok_or("--root needs a share tag".to_owned())?;
                setup.root = Some(tag);
            }
            "--user" => {
                let spec = args.next().ok_or("--user needs UID:GID".to_owned())?;
                setup.user = Some(parse_user(&spec)?);
            }
            "--nameserver" => {
                let addr = args
                    .next()
                    .ok_or("--nameserver needs an address".to_owned())?;
                if addr.parse::<std::net::IpAddr>().is_err() {
                    return Err(format!("--nameserver wants an IP address, not {addr:?}"));
                }
                setup.nameserver = Some(addr);
            }
            "--chdir" => {
                let dir = args.next().ok_or("--chdir needs a directory".to_owned())?;
                setup.chdir = Some(dir.into());
            }
            "--exec" => {
                let argv: Vec<String> = args.by_ref().collect();
                if argv.is_empty() {
                    return Err("--exec needs a program".into());
                }
                setup.exec = Some(argv);
            }
            _ => rest.push(arg),
        }
    }
    Ok((setup, rest))
}

/// `UID:GID`, both numbers.
fn parse_user(spec: &str) -> Result<(u32, u32), String> {
    let bad = || format!("--user wants UID:GID, not {spec:?}");
    let (uid, gid) = spec.split_once(':').ok_or_else(bad)?;
    Ok((
        uid.parse().map_err(|_| bad())?,
        gid.parse().map_err(|_| bad())?,
    ))
}

impl GuestSetup {
    /// Mounts every share (creating missing mount points) and changes
    /// directory.
    pub fn apply(&self) -> Result<(), SetupError> {
        if let Some(tag) = &self.root {
            crate::image_root::enter(tag)?;
        }
        for m in &self.mounts {
            std::fs::create_dir_all(&m.path)
                .map_err(|e| SetupError::MountPoint(m.path.clone(), e))?;
            let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            if m.read_only {
                flags |= MsFlags::MS_RDONLY;
            }
            mount(
                Some(m.tag.as_str()),
                &m.path,
                Some("virtiofs"),
                flags,
                None::<&str>,
            )
            .map_err(|errno| SetupError::Mount {
                tag: m.tag.clone(),
                path: m.path.clone(),
                errno,
            })?;
        }
        if let Some(addr) = &self.nameserver {
            crate::resolv::point_at(addr)?;
        }
        if let Some(dir) = &self.chdir {
            if self.root.is_some() {
                // An image's WorkingDir need not exist in it: docker makes
                // it (here in the VM's own layer).
                std::fs::create_dir_all(dir).map_err(|e| SetupError::MountPoint(dir.clone(), e))?;
            }
            nix::unistd::chdir(dir).map_err(|e| SetupError::Chdir(dir.clone(), e))?;
        } else if !self.mounts.is_empty() {
            // A working directory at or under a mount point still names
            // the directory underneath: enter it again, now on the share.
            if let Ok(cwd) = std::env::current_dir() {
                let _ = nix::unistd::chdir(&cwd);
            }
        }
        Ok(())
    }
}

/// Becomes `argv` (found on `PATH`) as `user`, if given, as libkrun's
/// init would have: on failure it says why and exits with 127 (not found)
/// or 126.
pub fn exec(argv: &[String], user: Option<(u32, u32)>) -> ! {
    if let Some((uid, gid)) = user {
        let switched = nix::unistd::setgroups(&[])
            .and_then(|()| nix::unistd::setgid(gid.into()))
            .and_then(|()| nix::unistd::setuid(uid.into()));
        if let Err(errno) = switched {
            eprintln!(
                "krunbox-agent: cannot become user {uid}:{gid}: {}",
                errno.desc()
            );
            std::process::exit(SETUP_FAILED_EXIT);
        }
    }
    let result = argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SetupError::Nul);
    let argv_c = match result {
        Ok(argv_c) => argv_c,
        Err(e) => {
            eprintln!("krunbox-agent: {}", crate::files::chain(&e));
            std::process::exit(SETUP_FAILED_EXIT);
        }
    };
    let errno = match nix::unistd::execvp(&argv_c[0], &argv_c) {
        Err(errno) => errno,
        Ok(never) => match never {},
    };
    println!(
        "Couldn't execute '{}' inside the vm: {}",
        argv[0],
        errno.desc()
    );
    std::process::exit(if errno == Errno::ENOENT { 127 } else { 126 });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn setup_arguments_are_taken_out() {
        let (setup, rest) = split_args(strings(&[
            "--mount",
            "v0",
            "/data",
            "rw",
            "--persist",
            "--mount",
            "v1",
            "/etc/x",
            "ro",
            "--vsock",
            "1024,1025",
        ]))
        .unwrap();
        assert_eq!(rest, strings(&["--persist", "--vsock", "1024,1025"]));
        assert_eq!(setup.mounts.len(), 2);
        assert!(!setup.mounts[0].read_only);
        assert!(setup.mounts[1].read_only);
        assert_eq!(setup.mounts[1].path, PathBuf::from("/etc/x"));
        assert_eq!(setup.exec, None);
    }

    #[test]
    fn exec_takes_the_rest_even_lookalikes() {
        let (setup, rest) = split_args(strings(&[
            "--root", "img", "--user", "1000:100", "--chdir", "/w", "--exec", "sh", "-c", "echo",
            "--mount",
        ]))
        .unwrap();
        assert!(rest.is_empty());
        assert_eq!(setup.root.as_deref(), Some("img"));
        assert_eq!(setup.user, Some((1000, 100)));
        assert_eq!(setup.chdir, Some(PathBuf::from("/w")));
        assert_eq!(setup.exec, Some(strings(&["sh", "-c", "echo", "--mount"])));
    }

    #[test]
    fn bad_mounts_are_refused() {
        assert!(split_args(strings(&["--mount", "v0", "/d"])).is_err());
        assert!(split_args(strings(&["--mount", "v0", "/d", "rx"])).is_err());
        assert!(split_args(strings(&["--mount", "v0", "rel", "rw"])).is_err());
        assert!(split_args(strings(&["--exec"])).is_err());
        assert!(split_args(strings(&["--user", "app"])).is_err());
        assert!(split_args(strings(&["--user", "1:x"])).is_err());
    }
}
