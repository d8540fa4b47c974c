//! Runs the Python package's tests (pytest, then `mypy --strict`) on the
//! package as built from this checkout, with the agent as a host process.
//!
//! The interpreter is `$KRUNBOX_PYTHON`, or the virtual environment that
//! `cargo xtask setup` makes at `target/python-env` (pytest,
//! pytest-asyncio, mypy). The native module and the agent are built with
//! cargo into the running test's target directory, and the package is laid
//! out in a temporary directory as a wheel installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// This crate's folder (`python/`).
const PACKAGE_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// `target/<profile>` of the running test.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_owned()
}

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("KRUNBOX_PYTHON") {
        return python.into();
    }
    let python = Path::new(PACKAGE_DIR).join("../target/python-env/bin/python");
    assert!(
        python.exists(),
        "no Python environment for the package's tests at {}: run `cargo xtask setup` \
         (or set KRUNBOX_PYTHON to a Python with pytest, pytest-asyncio and mypy)",
        python.display()
    );
    python
}

/// Builds the native module and the agent; returns the profile directory.
fn build() -> PathBuf {
    let profile = profile_dir();
    let target = profile.parent().expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--quiet",
            "-p",
            "krunbox-python",
            "-p",
            "krunbox-agent",
        ])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(PACKAGE_DIR);
    if profile.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("running cargo build");
    assert!(
        status.success(),
        "building the native module and the agent failed"
    );
    profile
}

/// The package as a wheel lays it out: the Python files and the module.
fn stage(profile: &Path, into: &Path) -> PathBuf {
    let package = into.join("krunbox");
    std::fs::create_dir(&package).unwrap();
    for entry in std::fs::read_dir(Path::new(PACKAGE_DIR).join("krunbox")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, package.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(
        profile.join("lib_krunbox.so"),
        package.join("_krunbox.abi3.so"),
    )
    .unwrap();
    package
}

/// Runs `python -P -m MODULE ARGS` on the staged package.
fn run(python: &Path, staged: &Path, profile: &Path, module: &str, args: &[&str]) {
    let status = Command::new(python)
        .args(["-P", "-m", module])
        .args(args)
        .env("PYTHONPATH", staged)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("MYPYPATH", staged)
        .env("KRUNBOX_AGENT_BIN", profile.join("krunbox-agent"))
        .current_dir(PACKAGE_DIR)
        .status()
        .unwrap_or_else(|e| panic!("running {} -m {module}: {e}", python.display()));
    assert!(
        status.success(),
        "{module} failed ({status}): see its output above"
    );
}

#[test]
fn pytest_then_mypy_strict() {
    let python = python();
    let profile = build();
    let dir = tempfile::tempdir().unwrap();
    let package = stage(&profile, dir.path());
    run(
        &python,
        dir.path(),
        &profile,
        "pytest",
        &["-q", "-p", "no:cacheprovider", "tests"],
    );
    let cache = dir.path().join("mypy-cache");
    run(
        &python,
        dir.path(),
        &profile,
        "mypy",
        &[
            "--strict",
            "--cache-dir",
            cache.to_str().unwrap(),
            package.to_str().unwrap(),
            "tests",
            "examples",
        ],
    );
}
