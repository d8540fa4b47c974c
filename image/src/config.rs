//! [`RunConfig`]: what an image says to run (entrypoint, command,
//! environment, working directory, user), the command line docker's rules
//! make of it and of the user's arguments, and the user resolved to
//! numeric ids through the image's own `etc/passwd` and `etc/group`.
//!
//! The unpacked image is hostile: its `etc/passwd` is read without
//! following a symbolic link at any step below the root, so that an image
//! cannot make the host read one of its own files.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

/// Largest `etc/passwd` or `etc/group` read.
pub const MAX_ACCOUNT_FILE: u64 = 4 << 20;

/// The execution parameters of an image (the `config` object of its OCI
/// image configuration). Empty lists mean "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The executable and its first arguments.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Default arguments (or the whole command when there is no entrypoint).
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Environment, `KEY=VALUE` each.
    #[serde(default)]
    pub env: Vec<String>,
    /// The working directory of the command.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// The user as the image gives it: `name`, `uid`, `name:group`,
    /// `uid:gid` (and the mixed forms).
    #[serde(default)]
    pub user: Option<String>,
}

/// An image user that cannot be resolved, or an account file that cannot
/// be read safely.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The user string has an empty user or group part (e.g. `:100`).
    #[error("image user {user:?} is malformed")]
    InvalidUser {
        /// The user string.
        user: String,
    },
    /// A user name that the image's passwd file does not list.
    #[error("user {user:?} is not in the image's {}", path.display())]
    UserNotFound {
        /// The user name.
        user: String,
        /// The passwd file looked in (it may not exist).
        path: PathBuf,
    },
    /// A group name that the image's group file does not list.
    #[error("group {group:?} is not in the image's {}", path.display())]
    GroupNotFound {
        /// The group name.
        group: String,
        /// The group file looked in (it may not exist).
        path: PathBuf,
    },
    /// A path component is a symbolic link, which is not followed.
    #[error("refusing to read {}: it is a symbolic link, which could lead out of the image", path.display())]
    Symlink {
        /// The path, within the image root.
        path: PathBuf,
    },
    /// An account file, or a directory on its way, is of the wrong type.
    #[error("refusing to read {}: not a {expected}", path.display())]
    WrongType {
        /// The path, within the image root.
        path: PathBuf,
        /// What it should have been ("regular file", "directory").
        expected: &'static str,
    },
    /// An account file is larger than [`MAX_ACCOUNT_FILE`].
    #[error("refusing to read {}: larger than {limit} bytes", path.display())]
    TooLarge {
        /// The path, within the image root.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// An account file could not be opened or read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The path (the root itself, or a path within it).
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl RunConfig {
    /// The run configuration of an OCI image configuration.
    pub fn from_image_config(image: &ImageConfiguration) -> Self {
        let Some(config) = image.config() else {
            return Self::default();
        };
        Self {
            entrypoint: config.entrypoint().clone().unwrap_or_default(),
            cmd: config.cmd().clone().unwrap_or_default(),
            env: config.env().clone().unwrap_or_default(),
            working_dir: config.working_dir().clone().filter(|d| !d.is_empty()),
            user: config.user().clone().filter(|u| !u.is_empty()),
        }
    }

    /// The command line to run, by docker's rules:
    ///
    /// - `args`, when given, replace the image's `Cmd`;
    /// - a non-empty `entrypoint_override` replaces the image's
    ///   `Entrypoint` and drops its `Cmd` (only `args` follow it);
    /// - an empty override (`--entrypoint ""`) clears the `Entrypoint` and
    ///   keeps the `Cmd` unless `args` are given.
    pub fn command(
        &self,
        entrypoint_override: Option<Vec<String>>,
        args: Vec<String>,
    ) -> Vec<String> {
        let (mut command, image_cmd) = match entrypoint_override {
            Some(entrypoint) if !entrypoint.is_empty() => (entrypoint, &[][..]),
            Some(_) => (Vec::new(), &self.cmd[..]),
            None => (self.entrypoint.clone(), &self.cmd[..]),
        };
        if args.is_empty() {
            command.extend_from_slice(image_cmd);
        } else {
            command.extend(args);
        }
        command
    }

    /// Resolves [`user`](Self::user) to `(uid, gid)` through the image's
    /// `etc/passwd` and `etc/group` under `root`; `None` when the image
    /// sets no user.
    ///
    /// A numeric user needs no passwd entry (its group is then the entry's
    /// group if there is one, else 0); a named user or group must be
    /// listed. Symbolic links under `root` are never followed.
    pub fn resolve_user(&self, root: &Path) -> Result<Option<(u32, u32)>, ConfigError> {
        let Some(spec) = self.user.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let (user, group) = match spec.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (spec, None),
        };
        if user.is_empty() || group == Some("") {
            return Err(ConfigError::InvalidUser {
                user: spec.to_owned(),
            });
        }
        let uid_gid = match (user.parse::<u32>(), group) {
            // Both numeric: no account file is read at all.
            (Ok(uid), Some(group)) => (uid, resolve_gid(root, group)?),
            (_, None) => resolve_uid(root, user)?,
            (Err(_), Some(group)) => (resolve_uid(root, user)?.0, resolve_gid(root, group)?),
        };
        Ok(Some(uid_gid))
    }
}

const PASSWD: &str = "etc/passwd";
const GROUP: &str = "etc/group";

/// The uid of `user` and the group of its passwd entry (0 for a numeric
/// user without one).
fn resolve_uid(root: &Path, user: &str) -> Result<(u32, u32), ConfigError> {
    let passwd = read_image_file(root, PASSWD)?.unwrap_or_default();
    let numeric = user.parse::<u32>().ok();
    let entry = account_entries(&passwd).find(|fields| match numeric {
        Some(uid) => fields.get(2).and_then(|f| f.parse::<u32>().ok()) == Some(uid),
        None => fields.first() == Some(&user),
    });
    let gid = entry.as_ref().and_then(|f| f.get(3)?.parse::<u32>().ok());
    match (numeric, entry) {
        (Some(uid), _) => Ok((uid, gid.unwrap_or(0))),
        (None, Some(fields)) => match (fields.get(2).and_then(|f| f.parse().ok()), gid) {
            (Some(uid), Some(gid)) => Ok((uid, gid)),
            _ => Err(ConfigError::UserNotFound {
                user: user.to_owned(),
                path: PASSWD.into(),
            }),
        },
        (None, None) => Err(ConfigError::UserNotFound {
            user: user.to_owned(),
            path: PASSWD.into(),
        }),
    }
}

/// The gid of `group`: a number as it is, a name through `etc/group`.
fn resolve_gid(root: &Path, group: &str) -> Result<u32, ConfigError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let groups = read_image_file(root, GROUP)?.unwrap_or_default();
    let gid = account_entries(&groups)
        .find(|fields| fields.first() == Some(&group))
        .and_then(|fields| fields.get(2)?.parse().ok());
    gid.ok_or_else(|| ConfigError::GroupNotFound {
        group: group.to_owned(),
        path: GROUP.into(),
    })
}

/// The `:`-separated fields of each entry of a passwd or group file
/// (comments and blank lines skipped).
fn account_entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split(':').collect())
}

/// Reads `relative` (e.g. `etc/passwd`) under `root`, checking each
/// component with `lstat` and opening it with `O_NOFOLLOW`: a symbolic
/// link anywhere below `root` is an error. `None` when it does not exist.
pub(crate) fn read_image_file(root: &Path, relative: &str) -> Result<Option<String>, ConfigError> {
    let read_err = |path: &Path, errno: Errno| ConfigError::Read {
        path: path.to_owned(),
        source: io::Error::from(errno),
    };
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_DIRECTORY;
    let mut dir: OwnedFd =
        nix::fcntl::open(root, flags, Mode::empty()).map_err(|e| read_err(root, e))?;
    let components: Vec<&str> = relative.split('/').collect();
    let mut path = PathBuf::new();
    for (i, component) in components.iter().enumerate() {
        path.push(component);
        let last = i + 1 == components.len();
        let (kind, expected) = if last {
            (SFlag::S_IFREG, "regular file")
        } else {
            (SFlag::S_IFDIR, "directory")
        };
        let stat = match fstatat(dir.as_fd(), *component, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(read_err(&path, e)),
        };
        let file_type = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        if file_type == SFlag::S_IFLNK {
            return Err(ConfigError::Symlink { path });
        }
        if file_type != kind {
            return Err(ConfigError::WrongType { path, expected });
        }
        let mut flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        if !last {
            flags |= OFlag::O_DIRECTORY;
        }
        dir = match nix::fcntl::openat(dir.as_fd(), *component, flags, Mode::empty()) {
            Ok(fd) => fd,
            // Replaced by a link since the lstat.
            Err(Errno::ELOOP) => return Err(ConfigError::Symlink { path }),
            Err(e) => return Err(read_err(&path, e)),
        };
    }
    read_bounded(File::from(dir), &path).map(Some)
}

fn read_bounded(file: File, path: &Path) -> Result<String, ConfigError> {
    let mut bytes = Vec::new();
    file.take(MAX_ACCOUNT_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_ACCOUNT_FILE {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            limit: MAX_ACCOUNT_FILE,
        });
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn config(entrypoint: &[&str], cmd: &[&str]) -> RunConfig {
        RunConfig {
            entrypoint: strings(entrypoint),
            cmd: strings(cmd),
            ..RunConfig::default()
        }
    }

    #[test]
    fn command_follows_docker_rules() {
        let c = config(&["/entry", "-x"], &["serve", "--port=1"]);
        assert_eq!(
            c.command(None, vec![]),
            strings(&["/entry", "-x", "serve", "--port=1"])
        );
        assert_eq!(
            c.command(None, strings(&["other"])),
            strings(&["/entry", "-x", "other"])
        );
        assert_eq!(
            c.command(Some(strings(&["/bin/sh"])), vec![]),
            strings(&["/bin/sh"])
        );
        assert_eq!(
            c.command(Some(strings(&["/bin/sh"])), strings(&["-c", "true"])),
            strings(&["/bin/sh", "-c", "true"])
        );
        assert_eq!(
            c.command(Some(vec![]), vec![]),
            strings(&["serve", "--port=1"])
        );
        let only_cmd = config(&[], &["/bin/sh"]);
        assert_eq!(only_cmd.command(None, vec![]), strings(&["/bin/sh"]));
        assert_eq!(
            only_cmd.command(None, strings(&["/bin/ls"])),
            strings(&["/bin/ls"])
        );
    }

    #[test]
    fn from_image_config() {
        let json = r#"{"architecture":"amd64","os":"linux",
            "config":{"Entrypoint":["/e"],"Cmd":["c"],"Env":["A=1"],
            "WorkingDir":"/w","User":"app"},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let image: ImageConfiguration = serde_json::from_str(json).unwrap();
        let run = RunConfig::from_image_config(&image);
        assert_eq!(run.entrypoint, strings(&["/e"]));
        assert_eq!(run.cmd, strings(&["c"]));
        assert_eq!(run.env, strings(&["A=1"]));
        assert_eq!(run.working_dir.as_deref(), Some("/w"));
        assert_eq!(run.user.as_deref(), Some("app"));
    }

    fn image_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(root.path().join("etc/group"), "root:x:0:\nstaff:x:50:app\n").unwrap();
        root
    }

    fn user(spec: &str) -> RunConfig {
        RunConfig {
            user: Some(spec.to_owned()),
            ..RunConfig::default()
        }
    }

    #[test]
    fn resolves_users_and_groups() {
        let root = image_root();
        let r = root.path();
        assert_eq!(RunConfig::default().resolve_user(r).unwrap(), None);
        assert_eq!(user("app").resolve_user(r).unwrap(), Some((1000, 1001)));
        assert_eq!(user("1000").resolve_user(r).unwrap(), Some((1000, 1001)));
        assert_eq!(user("4242").resolve_user(r).unwrap(), Some((4242, 0)));
        assert_eq!(user("app:staff").resolve_user(r).unwrap(), Some((1000, 50)));
        assert_eq!(user("7:8").resolve_user(r).unwrap(), Some((7, 8)));
        assert!(matches!(
            user("nobody").resolve_user(r),
            Err(ConfigError::UserNotFound { .. })
        ));
        assert!(matches!(
            user("app:wheel").resolve_user(r),
            Err(ConfigError::GroupNotFound { .. })
        ));
        assert!(matches!(
            user(":5").resolve_user(r),
            Err(ConfigError::InvalidUser { .. })
        ));
    }

    #[test]
    fn numeric_users_need_no_passwd() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            user("10:20").resolve_user(root.path()).unwrap(),
            Some((10, 20))
        );
        assert!(matches!(
            user("app").resolve_user(root.path()),
            Err(ConfigError::UserNotFound { .. })
        ));
    }

    #[test]
    fn refuses_symlinked_passwd() {
        let outside = image_root();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        symlink(
            outside.path().join("etc/passwd"),
            root.path().join("etc/passwd"),
        )
        .unwrap();
        let err = user("app").resolve_user(root.path()).unwrap_err();
        assert!(matches!(err, ConfigError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("symbolic link"));
    }

    #[test]
    fn refuses_symlinked_etc() {
        let outside = image_root();
        let root = tempfile::tempdir().unwrap();
        symlink(outside.path().join("etc"), root.path().join("etc")).unwrap();
        let err = user("0").resolve_user(root.path()).unwrap_err();
        assert!(matches!(err, ConfigError::Symlink { .. }), "{err}");
    }

    #[test]
    fn refuses_non_regular_passwd() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc/passwd")).unwrap();
        let err = user("app").resolve_user(root.path()).unwrap_err();
        assert!(matches!(err, ConfigError::WrongType { .. }), "{err}");
    }
}
