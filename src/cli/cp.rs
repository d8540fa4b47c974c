//! `krunbox cp`: copy files and directories between the host and a named
//! VM, as `docker cp` does: `cp SRC NAME:DST` copies in, `cp NAME:SRC DST`
//! copies out. A destination that is an existing directory receives the
//! source under its own name; otherwise the source is copied to that path,
//! whose parent must exist.

use std::path::{Path, PathBuf};

use clap::Args;
use krunbox::client::{AgentClient, FileKind};
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
    report::block_on(async move {
        match run(args).await {
            Ok(()) => 0,
            Err(e) => report::fail(&e),
        }
    })
}

async fn run(args: CpArgs) -> Result<(), CliError> {
    match (Location::parse(&args.src), Location::parse(&args.dst)) {
        (Location::Host(src), Location::Guest { vm, path }) => copy_in(&src, &vm, &path).await,
        (Location::Guest { vm, path }, Location::Host(dst)) => copy_out(&vm, &path, &dst).await,
        (Location::Host(_), Location::Host(_)) => Err(CliError::CpSides("neither side names a VM")),
        (Location::Guest { .. }, Location::Guest { .. }) => Err(CliError::CpSides(
            "both sides name a VM; copy through the host",
        )),
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

async fn copy_in(src: &Path, vm: &VmName, dst: &str) -> Result<(), CliError> {
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
        .copy_in(src, &dest)
        .await
        .map_err(|e| agent_error(name, "copy in", &dest, e))?;
    Ok(())
}

async fn copy_out(vm: &VmName, src: &str, dst: &Path) -> Result<(), CliError> {
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
        .copy_out(src, &dest)
        .await
        .map_err(|e| agent_error(name, "copy out", src, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
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
    fn base_names() {
        assert_eq!(base_name("/tmp/h"), Some("h"));
        assert_eq!(base_name("/tmp/dir/"), Some("dir"));
        assert_eq!(base_name("/"), None);
        assert_eq!(base_name("/a/.."), None);
    }
}
