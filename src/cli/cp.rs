//! `krunbox cp`: copy files and directories between the host and a named
//! VM, as `docker cp` does: `cp SRC NAME:DST` copies in, `cp NAME:SRC DST`
//! copies out. A destination that is an existing directory receives the
//! source under its own name; otherwise the source is copied to that path,
//! whose parent must exist. Fifos and hard links are kept; device nodes and
//! sockets are skipped with a `krunbox: skipped PATH: REASON` line on
//! stderr each, or with `--strict` fail the copy, naming every one.

use std::path::{Path, PathBuf};

use clap::Args;
use krunbox::client::{AgentClient, ClientError, CopyOptions, CopyStats, FileKind, SkippedPath};
use krunbox::state::{NamedVm, StateDir, VmName};

use super::error::{agent_error, CliError};
use super::report;

#[derive(Debug, Args)]
pub struct CpArgs {
    /// What to copy: a host path, or NAME:PATH in a VM.
    #[arg(value_name = "SRC")]
    src: String,
    /// Where to: NAME:PATH in a VM, or a host path.
    #[arg(value_name = "DST")]
    dst: String,
    /// Fail, naming each one, if the tree holds device nodes or sockets
    /// (which cannot be copied), instead of skipping them; nothing is left
    /// at the destination.
    #[arg(long)]
    strict: bool,
}

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Host(PathBuf),
    Guest { vm: VmName, path: String },
}

impl Location {
    /// `NAME:PATH` is in the VM NAME when NAME is a valid VM name; anything
    /// else (no colon, or a '/' before it) is a host path.
    fn parse(text: &str) -> Self {
        if let Some((name, path)) = text.split_once(':') {
            if let Ok(vm) = name.parse() {
                return Location::Guest {
                    vm,
                    path: path.to_owned(),
                };
            }
        }
        Location::Host(text.into())
    }
}

pub fn cp(args: CpArgs) -> i32 {
    report::exit_code(run(args))
}

async fn run(args: CpArgs) -> Result<(), CliError> {
    let options = if args.strict {
        CopyOptions::strict()
    } else {
        CopyOptions::default()
    };
    let copied = match (Location::parse(&args.src), Location::parse(&args.dst)) {
        (Location::Host(src), Location::Guest { vm, path }) => {
            copy_in(&src, &vm, &path, &options).await
        }
        (Location::Guest { vm, path }, Location::Host(dst)) => {
            copy_out(&vm, &path, &dst, &options).await
        }
        (Location::Host(_), Location::Host(_)) => Err(CliError::CpSides("neither side names a VM")),
        (Location::Guest { .. }, Location::Guest { .. }) => Err(CliError::CpSides(
            "both sides name a VM; copy through the host",
        )),
    };
    match &copied {
        Ok(stats) => report_paths("skipped", &stats.skipped),
        Err(CliError::Agent {
            source: ClientError::Uncopyable { skipped, .. },
            ..
        }) => report_paths("cannot copy", skipped),
        Err(_) => {}
    }
    copied.map(drop)
}

/// One `krunbox: WHAT PATH: REASON` line on stderr for each path.
fn report_paths(what: &str, paths: &[SkippedPath]) {
    for skipped in paths {
        eprintln!(
            "krunbox: {what} {}: {}",
            printable(&skipped.path),
            skipped.reason
        );
    }
}

/// `path` as it is when it is plain UTF-8 text; otherwise quoted, with
/// control characters and bytes that are not UTF-8 escaped (a guest
/// chooses these names, and they go to a terminal).
fn printable(path: &Path) -> String {
    match path.to_str() {
        Some(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => format!("{:?}", path.as_os_str()),
    }
}

fn agent(vm: &VmName) -> Result<AgentClient, CliError> {
    let named = NamedVm::open(&StateDir::open()?, vm)?;
    Ok(named.agent(super::error::client_config())?)
}

fn absolute(vm: &VmName, path: &str) -> Result<(), CliError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(CliError::GuestRelative {
            vm: vm.to_string(),
            path: path.to_owned(),
        })
    }
}

/// The last component of `path`, for copying into a directory.
fn base_name(path: &str) -> Option<&str> {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty() && *b != "." && *b != "..")
}

async fn copy_in(
    src: &Path,
    vm: &VmName,
    dst: &str,
    options: &CopyOptions,
) -> Result<CopyStats, CliError> {
    absolute(vm, dst)?;
    std::fs::symlink_metadata(src).map_err(|source| CliError::HostPath {
        path: src.to_owned(),
        source,
    })?;
    let agent = agent(vm)?;
    let name = vm.as_str();
    let dest = match agent.stat(dst).await {
        Ok(stat) if stat.kind == FileKind::Dir => {
            let base = src
                .file_name()
                .and_then(|b| b.to_str())
                .ok_or(CliError::CpSides("the source has no usable file name"))?;
            format!("{}/{base}", dst.trim_end_matches('/'))
        }
        Ok(_) => dst.to_owned(),
        Err(e) if dst.ends_with('/') => return Err(agent_error(name, "stat", dst, e)),
        Err(_) => {
            let parent = match dst.trim_end_matches('/').rsplit_once('/') {
                Some(("", _)) | None => "/",
                Some((parent, _)) => parent,
            };
            agent
                .stat(parent)
                .await
                .map_err(|e| agent_error(name, "stat", parent, e))?;
            dst.to_owned()
        }
    };
    agent
        .copy_in_with(src, &dest, options)
        .await
        .map_err(|e| agent_error(name, "copy in", &dest, e))
}

async fn copy_out(
    vm: &VmName,
    src: &str,
    dst: &Path,
    options: &CopyOptions,
) -> Result<CopyStats, CliError> {
    absolute(vm, src)?;
    let agent = agent(vm)?;
    let name = vm.as_str();
    agent
        .stat(src)
        .await
        .map_err(|e| agent_error(name, "stat", src, e))?;
    let dest = if dst.is_dir() {
        let base = base_name(src).ok_or(CliError::CpSides("the source has no file name"))?;
        dst.join(base)
    } else {
        let parent = match dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !parent.is_dir() {
            return Err(CliError::HostPath {
                path: parent.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        dst.to_owned()
    };
    agent
        .copy_out_with(src, &dest, options)
        .await
        .map_err(|e| agent_error(name, "copy out", src, e))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn locations_parse_like_docker_cp() {
        let guest = |vm: &str, path: &str| Location::Guest {
            vm: vm.parse().unwrap(),
            path: path.into(),
        };
        assert_eq!(Location::parse("a:/tmp/x"), guest("a", "/tmp/x"));
        assert_eq!(Location::parse("web-1:/"), guest("web-1", "/"));
        assert_eq!(Location::parse("/tmp/x"), Location::Host("/tmp/x".into()));
        assert_eq!(Location::parse("./a:b"), Location::Host("./a:b".into()));
        assert_eq!(Location::parse("x"), Location::Host("x".into()));
    }

    #[test]
    fn printed_paths_escape_what_a_guest_could_abuse() {
        assert_eq!(printable(Path::new("/tmp/a b")), "/tmp/a b");
        assert_eq!(
            printable(Path::new("/tmp/\x1b[2Jx\n")),
            "\"/tmp/\\u{1b}[2Jx\\n\""
        );
        let raw = Path::new(OsStr::from_bytes(b"/tmp/a\xffb"));
        assert_eq!(printable(raw), "\"/tmp/a\\xFFb\"");
    }

    #[test]
    fn base_names() {
        assert_eq!(base_name("/tmp/h"), Some("h"));
        assert_eq!(base_name("/tmp/dir/"), Some("dir"));
        assert_eq!(base_name("/"), None);
        assert_eq!(base_name("/a/.."), None);
    }
}
