//! `krunbox bench --json`: the document's shape, from a tiny run of the
//! case that needs no VM (the agent as a host process). The VM cases'
//! shape is checked in tests/vm. Timings themselves are never asserted.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn krunbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_krunbox"))
}

/// `krunbox bench` with one run of the host-process case, no warm-up.
fn tiny_bench() -> Command {
    let mut command = krunbox();
    command.args([
        "bench",
        "--cases",
        "host-exec",
        "--runs",
        "1",
        "--warmup",
        "0",
    ]);
    command
}

fn number(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// Checks one figure: id, label, samples and an ordered summary.
fn check_figure(figure: &Value, samples: usize) {
    let id = figure["id"].as_str().expect("figure id");
    assert!(figure["label"].as_str().is_some_and(|l| !l.is_empty()));
    let values = figure["samples_ms"].as_array().expect("samples_ms");
    assert_eq!(values.len(), samples, "{id}");
    assert!(
        values.iter().all(|v| number(v, id) > 0.0),
        "{id}: {values:?}"
    );
    let s = &figure["summary"];
    assert_eq!(s["n"].as_u64(), Some(samples as u64));
    let [min, p50, p90, max] = ["min", "p50", "p90", "max"].map(|k| number(&s[k], k));
    assert!(min <= p50 && p50 <= p90 && p90 <= max, "{id}: {s}");
}

#[test]
fn host_exec_json_has_samples_summary_and_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = tiny_bench().arg("--json").arg(&json).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("local fork/exec"), "{stdout}");
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();

    let meta = &doc["meta"];
    assert_eq!(meta["runs"].as_u64(), Some(1));
    assert_eq!(meta["warmup"].as_u64(), Some(0));
    assert_eq!(meta["cases"], serde_json::json!(["host-exec"]));
    assert!(meta["date"].as_str().is_some_and(|d| d.ends_with('Z')));
    for key in ["cpu", "kernel", "kvm"] {
        assert!(meta["machine"][key].is_string(), "machine.{key}");
    }
    assert!(meta["machine"]["lab"].is_boolean());
    let per_run = meta["host_exec_samples_per_run"].as_u64().unwrap() as usize;

    let figures = doc["figures"].as_array().unwrap();
    let ids: Vec<&str> = figures.iter().filter_map(|f| f["id"].as_str()).collect();
    assert_eq!(ids, ["host.exec_true_agent", "host.exec_true_local"]);
    for figure in figures {
        check_figure(figure, per_run);
    }

    let comparisons = doc["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 1, "{comparisons:?}");
    let c = &comparisons[0];
    assert_eq!(c["id"], "host_exec_vs_fork_exec");
    assert_eq!(c["krunbox"], "host.exec_true_agent");
    assert_eq!(c["baseline"], "host.exec_true_local");
    let ratio = number(&c["ratio"], "ratio");
    let expected = number(&c["krunbox_p50_ms"], "k") / number(&c["baseline_p50_ms"], "b");
    assert!((ratio - expected).abs() < 1e-9, "{c}");
    assert_eq!(number(&c["target"]["max_ratio"], "max_ratio"), 1.3);
    // A verdict always; `met` only where the spread allows one.
    let verdict = c["verdict"].as_str().expect("a verdict");
    match verdict {
        "met" | "not_met" => assert!(c["met"].is_boolean(), "{c}"),
        "within_noise" => assert!(c["met"].is_null(), "{c}"),
        other => panic!("verdict {other:?}"),
    }
    let spread = c["ratio_spread"].as_array().expect("ratio_spread");
    let [lo, hi] = [&spread[0], &spread[1]].map(|v| number(v, "spread"));
    assert!(lo <= ratio && ratio <= hi, "{c}");
    let not_measured = doc["not_measured"].as_array().unwrap();
    assert!(not_measured.iter().any(|v| v == "boot_vs_floor"));
    assert_eq!(doc["timelines"], serde_json::json!([]));

    // The saved report renders again, table and chart, without measuring.
    let svg = dir.path().join("bench.svg");
    let out = krunbox()
        .arg("bench")
        .arg("--report")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("local fork/exec"));
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg"), "{chart}");
    assert!(chart.contains("local fork+exec"), "{chart}");
}

#[test]
fn json_to_stdout_keeps_the_table_on_stderr() {
    let out = tiny_bench().args(["--json", "-"]).output().unwrap();
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON alone");
    assert_eq!(doc["figures"].as_array().map(Vec::len), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("comparison"));
    // Not a terminal: no progress bar, no escape sequences.
    assert!(!stderr.contains('\x1b'), "escape sequences in {stderr:?}");
}

#[test]
fn unwritable_json_path_fails_before_measuring() {
    let out = krunbox()
        .args(["bench", "--cases", "host-exec", "--runs", "1"])
        .args(["--json", "/nonexistent-dir/b.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write /nonexistent-dir/b.json"),
        "{stderr}"
    );
    assert!(!Path::new("/nonexistent-dir").exists());
    assert!(out.stdout.is_empty(), "nothing was measured");
}

/// A case that fails does not cost the run: the next case is measured,
/// the table and the JSON say which case failed and why, and the exit
/// status says the run was not whole. (The pull case fails here: nothing
/// listens at its registry.)
#[test]
fn a_failed_case_is_reported_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = krunbox()
        .args([
            "bench",
            "--cases",
            "pull,host-exec",
            "--runs",
            "1",
            "--warmup",
            "0",
        ])
        .args(["--image", "127.0.0.1:9/nothing:here", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stdout}{stderr}");
    assert!(stdout.contains("case pull FAILED"), "{stdout}");
    assert!(stderr.contains("1 of 2 cases failed: pull"), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let failed = report["failed"].as_array().expect("failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["case"], "pull");
    assert!(failed[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
    let figures = report["figures"].as_array().expect("figures");
    let host = figures
        .iter()
        .find(|f| f["id"] == "host.exec_true_agent")
        .expect("the host-exec case ran after the failed one");
    check_figure(host, 20);
}
