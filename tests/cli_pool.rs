//! `krunbox pool` and `start --from-pool` before any VM boots: what is
//! refused, with what words, and that a refused pool leaves nothing in
//! the state directory. (Booted pools: `tests/vm/pool_cli_cases.rs`.)

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn krunbox(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_krunbox"))
        .env("KRUNBOX_STATE_DIR", state)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `krunbox ARGS…` exits 125 and says each of `expected` on stderr.
fn refused(state: &Path, args: &[&str], expected: &[&str]) {
    let out = krunbox(state, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(125) && expected.iter().all(|e| stderr.contains(e)),
        "{args:?}: {:?}, stderr {stderr:?}",
        out.status
    );
}

fn pools(state: &Path) -> String {
    let out = krunbox(state, &["pool", "ls", "--json"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn bad_pools_are_refused_and_leave_nothing() {
    let base = tempfile::tempdir().unwrap();
    let state = &base.path().join("state");
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_str().unwrap();
    refused(
        state,
        &["pool", "create", "p", "--size", "2"],
        &["START_OPTIONS"],
    );
    refused(
        state,
        &[
            "pool", "create", "p", "--size", "2", "--rootfs", root, "--bogus",
        ],
        &["not `krunbox start`'s", "--bogus"],
    );
    refused(
        state,
        &[
            "pool", "create", "p", "--size", "2", "--rootfs", root, "-p", "8080:80",
        ],
        &["--publish cannot be given to a pool"],
    );
    refused(
        state,
        &["pool", "create", "p", "--size", "0", "--rootfs", root],
        &["1 to 64 VMs, not 0"],
    );
    refused(
        state,
        &["pool", "create", "a/b", "--size", "1", "--rootfs", root],
        &["invalid VM name"],
    );
    assert_eq!(pools(state), "[]");
}

#[test]
fn from_pool_takes_no_vm_options_and_needs_a_pool() {
    let base = tempfile::tempdir().unwrap();
    let state = &base.path().join("state");
    refused(
        state,
        &["start", "--name", "a", "--from-pool", "p", "--mem", "256"],
        &["--from-pool", "--mem"],
    );
    refused(
        state,
        &["start", "--name", "a", "--from-pool", "p"],
        &["no pool named \"p\"", "krunbox pool ls"],
    );
    // Without --from-pool, a root is still required.
    refused(state, &["start", "--name", "a"], &["--rootfs <DIR>"]);
    refused(state, &["pool", "rm", "p"], &["no pool named \"p\""]);
}
