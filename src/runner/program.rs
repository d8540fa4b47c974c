//! Which executable serves as the runner.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::child::current_exe_is_runner;

/// The variable naming the runner program explicitly.
pub const RUNNER_ENV: &str = "KRUNBOX_RUNNER";

/// The name of the krunbox CLI binary, a runner itself.
const CLI_NAME: &str = "krunbox";

/// How to find the runner program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RunnerProgram {
    /// In order: `$KRUNBOX_RUNNER`; the current executable if it called
    /// [`super::enter_if_requested`]; a `krunbox` binary in the current
    /// executable's directory or the one above it (cargo puts test
    /// binaries in `target/*/deps/`); `krunbox` on `PATH`.
    #[default]
    Auto,
    /// This executable.
    Path(PathBuf),
    /// An interpreter that becomes the runner: `program` started with
    /// `args`, which load krunbox and call [`super::enter_if_requested`].
    /// The Python package starts its runner this way
    /// (`python -I -S -c '…; enter_runner()' MODULE`), so that its wheel
    /// carries no second binary.
    Command {
        /// The executable.
        program: PathBuf,
        /// Its arguments.
        args: Vec<OsString>,
    },
}

/// No runner program could be found.
#[derive(Debug, thiserror::Error)]
pub enum RunnerProgramError {
    /// None of the places searched holds one.
    #[error(
        "no runner program: call krunbox::runner::enter_if_requested() first in main, \
         set {RUNNER_ENV} to a krunbox binary, or put krunbox on PATH"
    )]
    NotFound,
    /// An explicit path that does not exist.
    #[error("runner program {} does not exist", .0.display())]
    Missing(PathBuf),
}

impl RunnerProgram {
    /// The arguments the runner program is started with (none but for
    /// [`RunnerProgram::Command`]).
    pub fn args(&self) -> &[OsString] {
        match self {
            RunnerProgram::Command { args, .. } => args,
            RunnerProgram::Auto | RunnerProgram::Path(_) => &[],
        }
    }

    /// Resolves to an executable path.
    pub fn resolve(&self) -> Result<PathBuf, RunnerProgramError> {
        match self {
            RunnerProgram::Path(path) | RunnerProgram::Command { program: path, .. } => {
                existing(path.clone())
            }
            RunnerProgram::Auto => {
                if let Some(path) = std::env::var_os(RUNNER_ENV).filter(|p| !p.is_empty()) {
                    return existing(PathBuf::from(path));
                }
                let exe = std::env::current_exe().ok();
                if current_exe_is_runner() {
                    if let Some(exe) = exe {
                        return Ok(exe);
                    }
                }
                exe.as_deref()
                    .and_then(sibling_cli)
                    .or_else(|| on_path(CLI_NAME))
                    .ok_or(RunnerProgramError::NotFound)
            }
        }
    }
}

fn existing(path: PathBuf) -> Result<PathBuf, RunnerProgramError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(RunnerProgramError::Missing(path))
    }
}

fn sibling_cli(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(CLI_NAME))
        .find(|p| p.is_file())
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_path_is_an_error() {
        let err = RunnerProgram::Path("/nonexistent/krunbox".into())
            .resolve()
            .unwrap_err();
        assert!(matches!(err, RunnerProgramError::Missing(_)));
    }

    #[test]
    fn sibling_is_found_in_parent_of_deps() {
        let dir = tempfile::tempdir().unwrap();
        let deps = dir.path().join("deps");
        std::fs::create_dir(&deps).unwrap();
        std::fs::write(dir.path().join(CLI_NAME), b"").unwrap();
        assert_eq!(
            sibling_cli(&deps.join("test-bin")),
            Some(dir.path().join(CLI_NAME))
        );
    }
}
