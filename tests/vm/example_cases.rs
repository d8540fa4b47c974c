//! The crate's examples as users run them: `examples/sandbox.rs` (boot,
//! provision, exec, copy out, power off) runs on a booted VM, its own
//! binary serving as its VMs' runner, as a program depending on krunbox
//! does. `cargo test` builds the examples; the harness puts this one into
//! the lab.

use std::path::PathBuf;
use std::process::Command;

use libtest_mimic::{Failed, Trial};

use crate::cases::{check, text};
use crate::support::{in_lab, rootfs};
use krunbox_suite::trial;

/// The example this suite runs.
const SANDBOX: &str = "sandbox";

pub fn all() -> Vec<Trial> {
    vec![trial("examples::sandbox_runs", sandbox_runs)]
}

/// Where `cargo test` put the example: `target/<profile>/examples/`,
/// beside this binary's `deps/`.
pub fn host_path() -> PathBuf {
    let me = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = me
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    profile_dir.join("examples").join(SANDBOX)
}

fn sandbox_runs() -> Result<(), Failed> {
    let program = if in_lab() {
        PathBuf::from(krunbox_lab::LAB_BIN).join(SANDBOX)
    } else {
        host_path()
    };
    if !program.exists() {
        return Err(format!(
            "{} is not built: `cargo test` builds the examples (alone: `cargo build \
             --example {SANDBOX}`)",
            program.display()
        )
        .into());
    }
    let out = Command::new(&program)
        .arg(rootfs())
        // The example is its own VMs' runner, as in a user's program.
        .env_remove("KRUNBOX_RUNNER")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let stdout = text(&out.stdout);
    check(
        out.status.success()
            && stdout.starts_with("2 lines (ready after Some(")
            && stdout.contains("Summarize the repo.\nRead the diff first.\n")
            && stdout.ends_with("powered off: exit status: 0\n"),
        || {
            format!(
                "{}: {:?}, stdout {stdout:?}, stderr {:?}",
                program.display(),
                out.status,
                text(&out.stderr)
            )
        },
    )
}
