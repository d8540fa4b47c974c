//! The Python environment the package's tests run in: a virtual
//! environment at `target/python-env` with pytest, pytest-asyncio and mypy
//! (`python/tests/pytest.rs` uses it), and maturin for building wheels.
//! Made with the machine's `python3`; packages from its pip index.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What goes into the environment. A change here re-runs the install.
const REQUIREMENTS: &[&str] = &[
    "pytest>=8,<10",
    "pytest-asyncio>=0.24,<2",
    "mypy>=1.10,<2",
    "maturin>=1.5,<2",
];

/// Written once the requirements are installed: their list.
const STAMP: &str = "krunbox-requirements.txt";

/// Why the environment could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PythonEnvError {
    #[error("could not run `{command}` (is python3 installed, with its venv module?)")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status})")]
    Failed { command: String, status: String },
    #[error("could not write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `target/python-env` in this workspace.
pub(crate) fn env_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."));
    root.join("target/python-env")
}

/// Makes the environment, or brings it up to date; does nothing when it
/// already holds the requirements.
pub(crate) fn prepare(dry_run: bool) -> Result<(), PythonEnvError> {
    let dir = env_dir();
    let stamp = dir.join(STAMP);
    let wanted = REQUIREMENTS.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|have| have == wanted) {
        eprintln!(
            "setup: Python test environment: {} (up to date)",
            dir.display()
        );
        return Ok(());
    }
    if dry_run {
        eprintln!(
            "setup: would make the Python test environment at {}",
            dir.display()
        );
        return Ok(());
    }
    let dir_arg = dir.to_string_lossy().into_owned();
    run(Command::new("python3").args(["-m", "venv", &dir_arg]))?;
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(REQUIREMENTS))?;
    std::fs::write(&stamp, wanted).map_err(|source| PythonEnvError::Write {
        path: stamp,
        source,
    })?;
    eprintln!(
        "setup: made the Python test environment at {}",
        dir.display()
    );
    Ok(())
}

fn run(command: &mut Command) -> Result<(), PythonEnvError> {
    let text = format!("{command:?}");
    let status = command.status().map_err(|source| PythonEnvError::Spawn {
        command: text.clone(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(PythonEnvError::Failed {
            command: text,
            status: status.to_string(),
        })
    }
}
