//! `cargo xtask lab --python PY`: a Python with krunbox installed, in the
//! lab. The interpreter and its standard library go in at their host paths
//! (the package starts its VMs' runners with the same interpreter, which
//! must find its library without the caller's environment), the installed
//! `krunbox` package in [`PACKAGE_DIR`], on `PYTHONPATH` (the lab mounts a
//! tmpfs on `/tmp`, where a virtual environment may live), and `python` on
//! the lab's `PATH` runs the interpreter.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use krunbox_lab::LabSpec;

/// Where the package goes in the lab, on `PYTHONPATH`.
const PACKAGE_DIR: &str = "/opt/krunbox-python";

/// Why the Python could not be put into the lab.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LabPythonError {
    #[error("could not run {python}")]
    Spawn {
        python: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{python} cannot import krunbox (install it with `pip install ./python`): {stderr}")]
    NoPackage { python: PathBuf, stderr: String },
    #[error("staging the standard library failed: {0}")]
    Stdlib(String),
    #[error("could not write the lab's python wrapper")]
    Wrapper(#[source] io::Error),
}

/// Where `python` finds things: the interpreter's real path, its standard
/// library, and the directory holding the installed `krunbox` package.
const PROBE: &str = "import krunbox, os, sys, sysconfig\n\
print(os.path.realpath(sys.executable))\n\
print(sysconfig.get_path('stdlib'))\n\
print(os.path.dirname(os.path.dirname(os.path.realpath(krunbox.__file__))))";

/// `spec` with `python`, its library and its krunbox package in it;
/// `staging` is a scratch directory that lives until the lab ran.
pub(crate) fn put_in(
    spec: LabSpec,
    python: &Path,
    root: &Path,
    staging: &Path,
) -> Result<LabSpec, LabPythonError> {
    let spawn = |source| LabPythonError::Spawn {
        python: python.to_owned(),
        source,
    };
    let out = Command::new(python)
        .args(["-c", PROBE])
        .output()
        .map_err(spawn)?;
    if !out.status.success() {
        return Err(LabPythonError::NoPackage {
            python: python.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = printed.lines();
    let (Some(real), Some(stdlib), Some(site)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(LabPythonError::Stdlib(format!(
            "the probe printed {printed:?}"
        )));
    };
    let stdlib_copy = staging.join("stdlib");
    let staged = Command::new(python)
        .arg(root.join("python/tests/stage_stdlib.py"))
        .arg(&stdlib_copy)
        .output()
        .map_err(spawn)?;
    if !staged.status.success() {
        return Err(LabPythonError::Stdlib(
            String::from_utf8_lossy(&staged.stderr).trim().to_owned(),
        ));
    }
    let wrapper = staging.join("python");
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec {real} \"$@\"\n"))
        .and_then(|()| std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)))
        .map_err(LabPythonError::Wrapper)?;
    let package = Path::new(site).join("krunbox");
    eprintln!("lab: Python {real}, krunbox from {}", package.display());
    Ok(spec
        .file(real, real)
        .file(&stdlib_copy, stdlib)
        .file(&package, format!("{PACKAGE_DIR}/krunbox"))
        .executable(&wrapper)
        .env("PYTHONPATH", PACKAGE_DIR))
}
