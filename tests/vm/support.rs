//! What the cases need: a guest rootfs, the runner, a VM config.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use krunbox::runner::RunnerProgram;
use krunbox::vm::VmConfig;

pub use krunbox_suite::in_lab;

/// The krunbox CLI binary built alongside these tests.
pub fn host_runner() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_krunbox"))
}

/// The runner program: the lab's copy inside the lab, else the host's.
pub fn runner() -> PathBuf {
    match std::env::var_os("KRUNBOX_RUNNER") {
        Some(path) if in_lab() => PathBuf::from(path),
        _ => host_runner(),
    }
}

/// The krunbox CLI, for cases that drive it as a user would.
pub fn cli() -> Command {
    Command::new(runner())
}

/// A busybox guest rootfs: the lab's, `$KRUNBOX_TEST_ROOTFS`, or one
/// built once from the host's static busybox.
pub fn rootfs() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| match std::env::var_os("KRUNBOX_TEST_ROOTFS") {
            Some(dir) => PathBuf::from(dir),
            None => build_busybox_rootfs(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("rootfs")),
        })
        .clone()
}

/// A VM config on the test rootfs with the test runner.
pub fn vm() -> VmConfig {
    vm_on(&rootfs())
}

/// A VM config on `rootfs` with the test runner.
fn vm_on(rootfs: &Path) -> VmConfig {
    VmConfig::new(rootfs)
        .memory_mib(256)
        .runner(RunnerProgram::Path(runner()))
}

/// A config for a VM booted with the agent: like [`vm`], with libkrun
/// logging into the runner's log (quoted when a case fails). One-shot VMs
/// do not log: their runner's standard error is the command's.
pub fn agent_vm() -> VmConfig {
    agent_vm_on(&rootfs())
}

/// Like [`agent_vm`], on another rootfs (a private copy, say). Inside the
/// lab its console goes where the harness reads it after the VM is gone
/// ([`krunbox_suite::guest_console`]: a guest kernel that faulted in its
/// entry code is evidence of a lab fault); a case may still set its own.
pub fn agent_vm_on(rootfs: &Path) -> VmConfig {
    let config = vm_on(rootfs).log_level(libkrun_log_level());
    if !in_lab() {
        return config;
    }
    match krunbox_suite::guest_console::next_path() {
        Ok(path) => config.console_log(path),
        Err(e) => panic!(
            "cannot make a console path in {}: {e}",
            krunbox_suite::guest_console::dir().display()
        ),
    }
}

/// libkrun's log level for the cases' VMs (into each runner's log, quoted
/// when a case fails): `$KRUNBOX_TEST_LIBKRUN_LOG`, else 3 (info: how
/// and why the VM stopped, e.g. `KVM_EXIT_SHUTDOWN`).
pub fn libkrun_log_level() -> u32 {
    std::env::var(LIBKRUN_LOG_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Names the libkrun log level of the cases' VMs; passed into the lab.
pub const LIBKRUN_LOG_VAR: &str = "KRUNBOX_TEST_LIBKRUN_LOG";

fn build_busybox_rootfs(dir: &Path) -> PathBuf {
    // The lab's own rootfs builder, writing a host directory.
    krunbox_lab::build_busybox_rootfs(Path::new("/bin/busybox"), dir).unwrap_or_else(|e| {
        panic!(
            "cannot build a guest rootfs at {}: {} (install busybox-static with \
             cargo xtask setup, or set KRUNBOX_TEST_ROOTFS)",
            dir.display(),
            krunbox::error_chain(&e)
        )
    });
    dir.to_owned()
}

/// Whether this run selects any of `cases` (by the test binary's own
/// arguments): what the lab staging of a case's extra files asks before
/// building or copying them.
pub fn selects_any(cases: &[&str]) -> bool {
    let args = libtest_mimic::Arguments::from_args();
    cases
        .iter()
        .any(|case| !args.is_filtered_out(&libtest_mimic::Trial::test(*case, || Ok(()))))
}
