//! `bench --peer smolvm`, its JSON's shape, with a stand-in for smolvm's
//! CLI that drives krunbox's own (the real smolvm runs in the lab run the
//! README names: `cargo xtask lab --smolvm`). The stand-in has a
//! libkrunfw beside it, a link to the one krunbox boots, so that the
//! same-kernel boot goes through the loader path the real peer's does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::cases::{check, text};
use crate::support::{cli, rootfs, runner};
use krunbox_suite::trial;

/// The cases, by name.
pub fn all() -> Vec<Trial> {
    vec![trial(
        "cli::bench_peer_json_with_a_stand_in_for_smolvm",
        bench_peer_json_with_a_stand_in_for_smolvm,
    )]
}

/// smolvm's CLI as the bench calls it, carried out by `krunbox`.
const STAND_IN: &str = r#"#!/bin/sh
set -e
if [ "$1" = --version ]; then echo "smolvm 0.0.0-stand-in"; exit 0; fi
shift
sub=$1
shift
while :; do
  case "$1" in
    --state-dir) state=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --cpus|--mem|--mode) shift 2 ;;
    --force) shift ;;
    *) break ;;
  esac
done
export KRUNBOX_STATE_DIR="$state/krunbox"
case $sub in
  create) echo "$image" > "$state/$name.image" ;;
  start) exec "$KRUNBOX" start --name "$name" --rootfs "$(cat "$state/$name.image")" ;;
  exec) shift; exec "$KRUNBOX" exec "$name" -- "$@" ;;
  cp) exec "$KRUNBOX" cp "$1" "$2" ;;
  stop) exec "$KRUNBOX" stop "$name" ;;
  delete) rm "$state/$name.image" ;;
  *) echo "stand-in: no $sub" >&2; exit 2 ;;
esac
"#;

/// The libkrunfw krunbox boots here: on the loader path or in the
/// system's library directory.
fn libkrunfw() -> Result<PathBuf, Failed> {
    let loader = std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default();
    std::env::split_paths(&loader)
        .chain([PathBuf::from("/usr/lib/x86_64-linux-gnu")])
        .map(|dir| dir.join("libkrunfw.so.5"))
        .find(|lib| lib.is_file())
        .ok_or_else(|| "no libkrunfw.so.5 on the loader path".into())
}

fn stand_in(dir: &Path) -> Result<PathBuf, Failed> {
    let bin = dir.join("smolvm");
    std::fs::write(&bin, STAND_IN)?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    std::os::unix::fs::symlink(libkrunfw()?, dir.join("libkrunfw.so.5"))?;
    Ok(bin)
}

const FIGURES: [&str; 18] = [
    "peer.krunbox_cli_start",
    "peer.smolvm_start",
    "peer.krunbox_cli_first_exec",
    "peer.smolvm_first_exec",
    "peer.krunbox_cli_exec_true",
    "peer.smolvm_exec_true",
    "peer.krunbox_cli_exec_1mib",
    "peer.smolvm_exec_1mib",
    "peer.krunbox_cli_cp_in_4k",
    "peer.smolvm_cp_in_4k",
    "peer.krunbox_cli_cp_out_4k",
    "peer.smolvm_cp_out_4k",
    "peer.krunbox_lib_provision",
    "peer.smolvm_provision",
    "peer.krunbox_cli_stop",
    "peer.smolvm_stop",
    "peer.krunbox_lib_exec_true",
    "peer.krunbox_cli_start_peer_libkrunfw",
];

const COMPARISONS: [&str; 10] = [
    "peer_start",
    "peer_start_same_kernel",
    "peer_first_exec",
    "peer_exec_true_lib",
    "peer_exec_true_cli",
    "peer_exec_1mib_cli",
    "peer_cp_in",
    "peer_cp_out",
    "peer_provision",
    "peer_stop",
];

fn bench_peer_json_with_a_stand_in_for_smolvm() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let bin = stand_in(dir.path())?;
    let json = dir.path().join("bench.json");
    let out = cli()
        .args(["bench", "--peer", "smolvm", "--cases", "peer"])
        .args(["--runs", "1", "--warmup", "0", "--smolvm"])
        .arg(&bin)
        .arg("--rootfs")
        .arg(rootfs())
        .arg("--json")
        .arg(&json)
        .env("KRUNBOX", runner())
        .env_remove("KRUNBOX_BENCH_SMOLVM_STATE")
        .output()?;
    let described = || {
        format!(
            "{:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        )
    };
    check(out.status.success(), described)?;
    let doc: Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let peer = &doc["peer"];
    check(
        peer["name"] == "smolvm"
            && peer["version"] == "smolvm 0.0.0-stand-in"
            && peer["binary"] == Value::from(bin.canonicalize()?.to_string_lossy()),
        || format!("peer: {peer}"),
    )?;
    // What smolvm cannot do is stated, not left out; its libkrunfw was
    // found beside it.
    let cannot: Vec<&str> = peer["cannot"]
        .as_array()
        .ok_or("no peer.cannot")?
        .iter()
        .filter_map(|g| g["operation"].as_str())
        .collect();
    check(
        cannot == ["copy a directory tree", "provision in one request"],
        || format!("cannot: {cannot:?}"),
    )?;
    let figures = doc["figures"].as_array().ok_or("no figures")?;
    let ids: Vec<&str> = figures.iter().filter_map(|f| f["id"].as_str()).collect();
    check(ids == FIGURES, || format!("figures {ids:?}"))?;
    for figure in figures {
        check(
            figure["samples_ms"].as_array().map_or(0, Vec::len) == 1,
            || format!("{figure}"),
        )?;
    }
    let measured: Vec<&str> = doc["comparisons"]
        .as_array()
        .ok_or("no comparisons")?
        .iter()
        .filter(|c| c["ratio"].as_f64().is_some_and(|r| r > 0.0))
        .filter_map(|c| c["id"].as_str())
        .filter(|id| id.starts_with("peer_"))
        .collect();
    check(measured == COMPARISONS, || {
        format!("comparisons {measured:?}")
    })?;
    let table = text(&out.stdout);
    check(
        table.contains("peer: smolvm 0.0.0-stand-in")
            && table.contains("copy a directory tree: smolvm cannot:")
            && table.contains("exec `true`: krunbox library / smolvm CLI"),
        described,
    )?;
    check(doc["failed"].as_array().is_some_and(Vec::is_empty), || {
        format!("failed: {}", doc["failed"])
    })
}
