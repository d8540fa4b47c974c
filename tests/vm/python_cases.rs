//! The Python package on a booted VM: `python/examples/seed.py` boots a
//! VM, provisions a prompt and ten skill folders in one request, streams a
//! command that reads them, copies a result out and prints the boot
//! timeline. The VM's runner is the interpreter itself (the package starts
//! `python -I -S -c … enter_runner()`), as for any user of the package.
//!
//! Where the lab runs the cases, the host stages what the case needs
//! before booting the lab (only when the run selects this case): the
//! native module built by cargo, the package's Python files and the
//! example, the interpreter and its standard library
//! (`python/tests/stage_stdlib.py`) at their host paths. A staging that
//! fails fails the case with its reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use krunbox_lab::LabSpec;
use libtest_mimic::{Failed, Trial};
use tempfile::TempDir;

use crate::cases::{check, text};
use crate::support::{in_lab, rootfs};
use krunbox_suite::trial;

/// The cases; either selected stages the package.
const CASE: &str = "python::the_example_boots_provisions_and_copies_out";
const LIFECYCLE_CASE: &str = "python::no_runner_outlives_its_vm_object";

/// Why the host could not stage the package, passed into the lab.
const STAGE_ERROR_VAR: &str = "KRUNBOX_VM_TESTS_PYTHON_ERROR";
/// The interpreter's path, passed into the lab.
const PYTHON_VAR: &str = "KRUNBOX_VM_TESTS_PYTHON";
/// Where the package and the example go in the lab.
const PACKAGE_IN_LAB: &str = "/opt/krunbox-python";

/// This checkout.
const CHECKOUT: &str = env!("CARGO_MANIFEST_DIR");

pub fn all() -> Vec<Trial> {
    vec![
        trial(CASE, the_example_boots_provisions_and_copies_out),
        trial(LIFECYCLE_CASE, no_runner_outlives_its_vm_object),
    ]
}

/// What the host staged: the interpreter, its library and the package.
struct Staged {
    python: PathBuf,
    stdlib: PathBuf,
    stdlib_copy: PathBuf,
    package: PathBuf,
    _dir: TempDir,
}

fn staged() -> &'static Result<Staged, String> {
    static STAGED: OnceLock<Result<Staged, String>> = OnceLock::new();
    STAGED.get_or_init(stage)
}

/// Adds the interpreter and the package to a lab boot, when the run
/// selects the case; or, when staging failed, why.
pub fn put_in_lab(spec: LabSpec) -> LabSpec {
    if !crate::support::selects_any(&[CASE, LIFECYCLE_CASE]) {
        return spec;
    }
    match staged() {
        Ok(s) => spec
            .file(&s.python, s.python.to_string_lossy())
            .file(&s.stdlib_copy, s.stdlib.to_string_lossy())
            .file(&s.package, PACKAGE_IN_LAB)
            .env(PYTHON_VAR, s.python.to_string_lossy()),
        Err(why) => spec.env(STAGE_ERROR_VAR, why.clone()),
    }
}

/// The interpreter with the package's test tools (`cargo xtask setup`
/// makes it), or `$KRUNBOX_PYTHON`.
fn host_python() -> PathBuf {
    std::env::var_os("KRUNBOX_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(CHECKOUT).join("target/python-env/bin/python"))
}

fn stage() -> Result<Staged, String> {
    let python = host_python();
    if !python.exists() {
        return Err(format!(
            "no Python at {}: run `cargo xtask setup`, or set KRUNBOX_PYTHON",
            python.display()
        ));
    }
    let profile = build_module()?;
    let dir = tempfile::tempdir().map_err(|e| format!("no scratch directory: {e}"))?;
    let stdlib_copy = dir.path().join("stdlib");
    let out = Command::new(&python)
        .arg(Path::new(CHECKOUT).join("python/tests/stage_stdlib.py"))
        .arg(&stdlib_copy)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "staging the standard library failed: {}",
            text(&out.stderr)
        ));
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let mut lines = printed.lines();
    let (Some(real_python), Some(stdlib)) = (lines.next(), lines.next()) else {
        return Err(format!("stage_stdlib.py printed {printed:?}"));
    };
    let package = dir.path().join("package");
    copy_package(&profile, &package).map_err(|e| format!("staging the package: {e}"))?;
    Ok(Staged {
        python: real_python.into(),
        stdlib: stdlib.into(),
        stdlib_copy,
        package,
        _dir: dir,
    })
}

/// Builds the native module into this build's target directory; the
/// profile directory it is in.
fn build_module() -> Result<PathBuf, String> {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .ok_or("CARGO_TARGET_TMPDIR has no parent")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "krunbox-python"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(CHECKOUT)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the Python module failed ({status}); cargo's errors are in the output above"
        ));
    }
    Ok(target.join("debug"))
}

/// `krunbox/` (Python files and the module) and `seed.py` into `to`.
fn copy_package(profile: &Path, to: &Path) -> std::io::Result<()> {
    let package = to.join("krunbox");
    std::fs::create_dir_all(&package)?;
    for entry in std::fs::read_dir(Path::new(CHECKOUT).join("python/krunbox"))? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::copy(&path, package.join(path.file_name().unwrap_or_default()))?;
        }
    }
    std::fs::copy(
        profile.join("lib_krunbox.so"),
        package.join("_krunbox.abi3.so"),
    )?;
    for script in ["examples/seed.py", "tests/vm_lifecycle.py"] {
        let from = Path::new(CHECKOUT).join("python").join(script);
        std::fs::copy(&from, to.join(from.file_name().unwrap_or_default()))?;
    }
    Ok(())
}

/// Runs `script` (staged beside the package) with the rootfs: its output.
fn run_script(script: &str) -> Result<std::process::Output, Failed> {
    let (python, package) = if in_lab() {
        if let Ok(why) = std::env::var(STAGE_ERROR_VAR) {
            return Err(why.into());
        }
        let python = std::env::var(PYTHON_VAR).map_err(|_| format!("{PYTHON_VAR} is not set"))?;
        (PathBuf::from(python), PathBuf::from(PACKAGE_IN_LAB))
    } else {
        let staged = staged().as_ref().map_err(Clone::clone)?;
        (staged.python.clone(), staged.package.clone())
    };
    Command::new(&python)
        .arg("-P")
        .arg(package.join(script))
        .arg(rootfs())
        .env("PYTHONPATH", &package)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // The package starts its runner with this interpreter.
        .env_remove("KRUNBOX_RUNNER")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()).into())
}

/// Whether `out` succeeded and printed every one of `expected`.
fn printed_all(script: &str, out: &std::process::Output, expected: &[&str]) -> Result<(), Failed> {
    let stdout = text(&out.stdout);
    // The timeline and the checks go to the suite's log.
    println!("{stdout}");
    check(
        out.status.success() && expected.iter().all(|line| stdout.contains(line)),
        || {
            format!(
                "python {script}: {:?}, stdout {stdout:?}, stderr {:?}",
                out.status,
                text(&out.stderr)
            )
        },
    )
}

fn the_example_boots_provisions_and_copies_out() -> Result<(), Failed> {
    let out = run_script("seed.py")?;
    printed_all(
        "seed.py",
        &out,
        &[
            "Summarise the skills you were given.",
            "# Skill 0",
            "# Skill 9",
            "skills counted in the guest: 10",
            "boot: ready after",
        ],
    )
}

fn no_runner_outlives_its_vm_object() -> Result<(), Failed> {
    let out = run_script("vm_lifecycle.py")?;
    printed_all(
        "vm_lifecycle.py",
        &out,
        &[
            "dropped: runner gone",
            "exception: runner gone",
            "program exit: runner gone",
        ],
    )
}
