//! The runtime command line without a VM: what it refuses, where its
//! errors go, and that a refused `create` leaves nothing in `--root`.
//! The lifecycle on booted VMs is in the VM suite (`tests/vm/oci_cases.rs`).

use std::path::Path;
use std::process::{Command, Output};

const PROGRAM: &str = env!("CARGO_BIN_EXE_krunbox-oci");

/// Runs the runtime as containerd's shim does: `--root`, a JSON log.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(PROGRAM)
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--log")
        .arg(dir.join("log.json"))
        .args(["--log-format", "json"])
        .args(args)
        .output()
        .expect("the runtime runs")
}

/// The last error line of the JSON log.
fn last_error(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("log.json")).unwrap_or_default();
    let line = log.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(json["level"], "error", "{line}");
    assert!(json["time"].is_string(), "{line}");
    json["msg"].as_str().unwrap_or_default().to_owned()
}

fn fails_saying(dir: &Path, args: &[&str], says: &str) {
    let out = run(dir, args);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
    assert!(out.stdout.is_empty(), "{args:?} printed {out:?}");
    let error = last_error(dir);
    assert!(
        error.contains(says),
        "{args:?}: {error:?} does not say {says:?}"
    );
}

/// What the root holds besides the state directory's lock.
fn left_in_root(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir.join("root")) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != ".lock")
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn bundle(dir: &Path, config: serde_json::Value) -> String {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    bundle.to_string_lossy().into_owned()
}

fn config() -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
    })
}

#[test]
fn features_are_the_runtime_specs_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["features"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ociVersionMin"], "1.0.0");
    assert!(json["annotations"]["io.krunbox.cpus"].is_string(), "{json}");
}

#[test]
fn unknown_containers_and_subcommands_are_errors_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for op in [
        &["state", "nope"][..],
        &["start", "nope"],
        &["delete", "nope"],
        &["kill", "nope", "9"],
    ] {
        fails_saying(d, op, "container \"nope\" does not exist");
    }
    fails_saying(
        d,
        &["pause", "nope"],
        "`pause` is not supported by krunbox-oci",
    );
    fails_saying(
        d,
        &["kill", "nope", "SIGNOPE"],
        "unknown signal \"SIGNOPE\"",
    );
}

#[test]
fn refused_bundles_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut terminal = config();
    terminal["process"]["terminal"] = true.into();
    let cases = [
        (terminal, "process.terminal"),
        (
            serde_json::json!({"ociVersion": "1.2.0"}),
            "config.json has no root",
        ),
        (
            {
                let mut c = config();
                c["hooks"] = serde_json::json!({"poststart": [{"path": "/bin/true"}]});
                c
            },
            "hooks",
        ),
        (
            {
                let mut c = config();
                c["mounts"] = serde_json::json!([{"destination": "/x", "type": "bind", "source": "/no/such/dir"}]);
                c
            },
            "/no/such/dir is missing",
        ),
    ];
    for (config, says) in cases {
        let bundle = bundle(d, config);
        fails_saying(d, &["create", "--bundle", &bundle, "c1"], says);
        assert!(left_in_root(d).is_empty(), "{says}: {:?}", left_in_root(d));
    }
    // No config.json at all.
    fails_saying(
        d,
        &["create", "--bundle", "/nonexistent", "c1"],
        "config.json cannot be read",
    );
    assert!(left_in_root(d).is_empty());
}

#[test]
fn a_missing_rootfs_fails_create_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = config();
    c["root"]["path"] = "no-rootfs".into();
    let bundle = bundle(d, c);
    fails_saying(d, &["create", "--bundle", &bundle, "c1"], "no-rootfs");
    assert!(left_in_root(d).is_empty(), "{:?}", left_in_root(d));
}

#[test]
fn without_a_log_file_errors_go_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(PROGRAM)
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(["state", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
}
