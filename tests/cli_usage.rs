//! The CLI's own failures before any VM boots: usage errors and invalid
//! VM options exit 125 (docker's code for its own failures), never 2,
//! which a guest command may return too; help exits 0. No VM is needed:
//! all of this is decided before `run` looks at the host's KVM.

use std::process::{Command, Output, Stdio};

fn krunbox(args: &[&str]) -> Output {
    let state = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_krunbox"))
        .env("KRUNBOX_STATE_DIR", state.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    format!(
        "{:?}, stdout {:?}, stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `krunbox ARGS…` exits 125 and says `expected` on stderr.
fn refused(args: &[&str], expected: &str) {
    let out = krunbox(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(125) && stderr.contains(expected),
        "{args:?}: {}",
        said(&out)
    );
}

#[test]
fn usage_errors_exit_125() {
    let rootfs = tempfile::tempdir().unwrap();
    let rootfs = rootfs.path().to_str().unwrap();
    refused(&["run", "--", "true"], "--rootfs <DIR>");
    refused(
        &["run", "-e", "NOEQ", "--rootfs", rootfs, "--", "true"],
        "expected KEY=VALUE",
    );
    refused(
        &["run", "-p", "99999:1", "--rootfs", rootfs, "--", "true"],
        "99999",
    );
    refused(
        &["run", "-p", "80", "--rootfs", rootfs, "--", "true"],
        "expected HOST_PORT:GUEST_PORT",
    );
    refused(&["no-such-command"], "unrecognized subcommand");
    refused(&["exec"], "<NAME>");
    // A missing command: the same words from run and exec.
    refused(
        &["run", "--rootfs", rootfs],
        "no command to run: none was given",
    );
    refused(&["exec", "a"], "no command to run: none was given");
}

#[test]
fn bad_ports_and_volumes_exit_125() {
    let rootfs = tempfile::tempdir().unwrap();
    let rootfs = rootfs.path().to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["-p", "18080:80", "-p", "18080:81"],
            "host port 18080 is published twice",
        ),
        (
            &["-p", "18080:80", "-p", "18081:80"],
            "guest port 80 is published twice",
        ),
        (&["--net", "none", "-p", "18080:80"], "needs TSI networking"),
        (&["-v", "/no/such/dir:/data"], "/no/such/dir does not exist"),
        (&["-v", "/tmp:data"], "must be an absolute guest path"),
    ];
    for (options, expected) in cases {
        let mut args = vec!["run"];
        args.extend(options);
        args.extend(["--rootfs", rootfs, "--", "true"]);
        refused(&args, expected);
    }
}

#[test]
fn help_and_version_exit_0() {
    for args in [&["--help"][..], &["run", "--help"], &["--version"]] {
        let out = krunbox(args);
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "{args:?}: {}",
            said(&out)
        );
    }
}
