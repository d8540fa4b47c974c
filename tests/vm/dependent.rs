//! krunbox as a dependency: a program outside the workspace
//! (`tests/dependent-crate`, copied out of the checkout) that depends on
//! the library as a git dependency (`git = "file://<checkout>"`, `rev` =
//! its HEAD: committed work only), with the library's default features
//! off, as the README tells users to. Cargo builds krunbox from its own
//! checkout of that commit, so the sources are found the way a user's git
//! dependency finds them, not through the workspace. It is built with cargo, its agent built by
//! krunbox's build script from the `krunbox-agent` build-dependency, and it
//! boots a VM and runs a command through the agent, its own binary serving
//! as its VMs' runner.
//!
//! Where the lab runs the cases, the host builds the program before
//! booting the lab (only when the run selects this case) and puts it in;
//! a build that fails fails the case with cargo's words.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use krunbox_lab::LabSpec;
use libtest_mimic::{Failed, Trial};

use crate::cases::{check, text};
use crate::support::{in_lab, rootfs};
use krunbox_suite::trial;

/// The case.
const CASE: &str = "dependency::a_crate_outside_the_workspace_boots";

/// The program's name, in its Cargo.toml.
const PROGRAM: &str = "krunbox-dependent";

/// Why the host could not build the program, passed into the lab.
const BUILD_ERROR_VAR: &str = "KRUNBOX_VM_TESTS_DEPENDENT_ERROR";

/// Longest a build may take (a first build compiles libkrun).
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

pub fn all() -> Vec<Trial> {
    vec![trial(CASE, a_crate_outside_the_workspace_boots)]
}

/// Adds the program to a lab boot, built once, when the run selects the
/// case; or, when the build failed, why.
pub fn put_in_lab(spec: LabSpec) -> LabSpec {
    if !crate::support::selects_any(&[CASE]) {
        return spec;
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(program) => spec.executable(program),
        Err(why) => spec.env(BUILD_ERROR_VAR, why.clone()),
    }
}

/// Builds the program outside the workspace; its path.
fn build() -> Result<PathBuf, String> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    // CARGO_TARGET_TMPDIR is <target>/tmp: the program shares the target
    // directory, and so the dependencies this build already compiled.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .ok_or("CARGO_TARGET_TMPDIR has no parent")?;
    let dir = tempfile::tempdir().map_err(|e| format!("no scratch directory: {e}"))?;
    copy_template(
        &checkout.join("tests/dependent-crate"),
        dir.path(),
        checkout,
    )?;
    println!("krunbox vm tests: building {PROGRAM} outside the workspace for {CASE}");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Not --offline: cargo does not fetch a git source offline, even from
    // a file:// URL. The lock file pins every other package, so only the
    // git source is read.
    let mut child = Command::new(cargo)
        .args(["build", "--quiet", "--manifest-path"])
        .arg(dir.path().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > BUILD_LIMIT => {
                let _ = child.kill();
                return Err(format!("building {PROGRAM} took over {BUILD_LIMIT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(format!("waiting for cargo: {e}")),
        }
    };
    if !status.success() {
        return Err(format!(
            "building {PROGRAM} outside the workspace failed ({status}); cargo's errors are \
             in the output above"
        ));
    }
    Ok(target.join("debug").join(PROGRAM))
}

/// Copies the program's template into `to`, its dependency pointed at
/// `checkout`'s repository and HEAD, with the workspace's lock file (the
/// same versions).
fn copy_template(from: &Path, to: &Path, checkout: &Path) -> Result<(), String> {
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let manifest = std::fs::read_to_string(from.join("Cargo.toml"))
        .map_err(|e| io("reading the template", e))?;
    let manifest = manifest
        .replace("KRUNBOX_GIT_URL", &format!("file://{}", checkout.display()))
        .replace("KRUNBOX_GIT_REV", &head(checkout)?);
    std::fs::write(to.join("Cargo.toml"), manifest).map_err(|e| io("writing Cargo.toml", e))?;
    std::fs::create_dir(to.join("src")).map_err(|e| io("making src", e))?;
    std::fs::copy(from.join("src/main.rs"), to.join("src/main.rs"))
        .map_err(|e| io("copying main.rs", e))?;
    std::fs::copy(checkout.join("Cargo.lock"), to.join("Cargo.lock"))
        .map_err(|e| io("copying Cargo.lock", e))?;
    Ok(())
}

/// The commit `checkout` has checked out.
fn head(checkout: &Path) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(checkout)
        .args(["rev-parse", "HEAD"])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} is not a git checkout ({}): the case depends on krunbox from git",
            checkout.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn a_crate_outside_the_workspace_boots() -> Result<(), Failed> {
    let program = if in_lab() {
        if let Ok(why) = std::env::var(BUILD_ERROR_VAR) {
            return Err(why.into());
        }
        PathBuf::from(krunbox_lab::LAB_BIN).join(PROGRAM)
    } else {
        build()?
    };
    let out = Command::new(&program)
        .arg(rootfs())
        // The program is its own VMs' runner, as a user's is.
        .env_remove("KRUNBOX_RUNNER")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    check(
        out.status.success() && out.stdout == b"hello from a crate that depends on krunbox\n",
        || {
            format!(
                "{}: {:?}, stdout {:?}, stderr {:?}",
                program.display(),
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            )
        },
    )
}
