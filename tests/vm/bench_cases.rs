//! The timing commands on booted VMs: `run --timings`, `demo`, and the
//! shape of `bench --json` for a VM case. No case asserts on how long
//! anything took; only that each phase was stamped, in order.

use std::io::Write;
use std::process::{Output, Stdio};

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::cases::{check, text};
use crate::support::{cli, rootfs};
use krunbox_suite::trial;

/// The cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial(
            "cli::run_timings_prints_the_boot_timeline",
            run_timings_prints_the_boot_timeline,
        ),
        trial(
            "cli::demo_provisions_runs_and_prints_timings",
            demo_provisions_runs_and_prints_timings,
        ),
        trial(
            "cli::run_timings_and_demo_print_json",
            run_timings_and_demo_print_json,
        ),
        trial(
            "cli::bench_boot_json_has_samples_and_timeline",
            bench_boot_json_has_samples_and_timeline,
        ),
        trial(
            "cli::bench_image_compares_with_rootfs",
            bench_image_compares_with_rootfs,
        ),
    ]
}

fn described(out: &Output) -> String {
    format!(
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn run_timings_prints_the_boot_timeline() -> Result<(), Failed> {
    let mut child = cli()
        .args(["run", "--timings", "--mem", "256", "--rootfs"])
        .arg(rootfs())
        .args(["--", "sh", "-c", "echo hi; read x; echo got $x >&2; exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("no stdin pipe")?
        .write_all(b"yo\n")?;
    let out = child.wait_with_output()?;
    check(out.status.code() == Some(3), || described(&out))?;
    check(out.stdout == b"hi\n", || described(&out))?;
    let stderr = text(&out.stderr);
    check(stderr.starts_with("got yo\n"), || described(&out))?;
    for phase in [
        "libkrun configured",
        "krun_start_enter",
        "agent started (uptime)",
        "agent ready on host",
        "first exec done",
    ] {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(phase))
            .ok_or_else(|| format!("no {phase:?} line: {}", described(&out)))?;
        check(line.trim_end().ends_with(" ms"), || {
            format!("{phase} was not stamped: {line:?}")
        })?;
    }
    Ok(())
}

fn demo_provisions_runs_and_prints_timings() -> Result<(), Failed> {
    let out = cli()
        .args(["demo", "--execs", "2", "--rootfs"])
        .arg(rootfs())
        .output()?;
    check(out.status.success(), || described(&out))?;
    let stdout = text(&out.stdout);
    for expected in [
        "prompt + 10 skills (61 files",
        "You are a careful agent",
        "10 skills, 60 files",
        "skill 7 ok",
        "exec round trip (`true`, 2 runs)",
        "first exec done",
        "== total:",
    ] {
        check(stdout.contains(expected), || {
            format!("no {expected:?} in: {}", described(&out))
        })?;
    }
    // The sample was removed from the guest.
    check(!rootfs().join("tmp/krunbox-demo").exists(), || {
        "the demo left /tmp/krunbox-demo in the rootfs".into()
    })
}

/// `run --timings=json` (one object on standard error, after the
/// command's own) and `demo --json` (one object on standard output).
fn run_timings_and_demo_print_json() -> Result<(), Failed> {
    let out = cli()
        .args(["run", "--timings=json", "--mem", "256", "--rootfs"])
        .arg(rootfs())
        .args(["--", "sh", "-c", "echo hi; echo err >&2"])
        .stdin(Stdio::null())
        .output()?;
    check(out.status.success() && out.stdout == b"hi\n", || {
        described(&out)
    })?;
    let stderr = text(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    check(stderr.starts_with("err\n"), || described(&out))?;
    let timeline: Value = serde_json::from_str(last)
        .map_err(|e| format!("the last line is not JSON ({e}): {}", described(&out)))?;
    for phase in [
        "configured_ms",
        "krun_start_enter_ms",
        "ready_ms",
        "first_exec_ms",
    ] {
        check(timeline[phase].as_f64().is_some_and(|ms| ms > 0.0), || {
            format!("{phase} was not stamped: {timeline}")
        })?;
    }

    let out = cli()
        .args(["demo", "--json", "--execs", "2", "--rootfs"])
        .arg(rootfs())
        .output()?;
    check(out.status.success(), || described(&out))?;
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "demo --json printed no JSON object ({e}): {}",
            described(&out)
        )
    })?;
    check(
        report["provision"]["files"] == 61
            && report["output"]["stdout"]
                .as_str()
                .is_some_and(|s| s.contains("10 skills, 60 files") && s.contains("skill 7 ok"))
            && report["exec_round_trip_ms"].as_array().map(Vec::len) == Some(2)
            && report["timeline"]["ready_ms"]
                .as_f64()
                .is_some_and(|ms| ms > 0.0)
            && report["exit_code"] == 0,
        || format!("demo --json: {report}"),
    )
}

fn bench_boot_json_has_samples_and_timeline() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("bench.json");
    let out = cli()
        .args([
            "bench", "--cases", "boot", "--runs", "1", "--warmup", "0", "--rootfs",
        ])
        .arg(rootfs())
        .arg("--json")
        .arg(&json)
        .output()?;
    check(out.status.success(), || described(&out))?;
    let doc: Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let ids = figure_ids(&doc)?;
    check(
        ids == [
            "boot.agent_ready",
            "boot.floor_true",
            "boot.agent_ready_unconfined",
            "boot.runner_confinement",
        ],
        || format!("figures {ids:?}"),
    )?;
    for figure in doc["figures"].as_array().into_iter().flatten() {
        let samples = figure["samples_ms"].as_array().map_or(0, Vec::len);
        check(samples == 1 && figure["summary"]["n"] == 1, || {
            format!("{figure}")
        })?;
    }
    // Against bare libkrun, and confined against unconfined runners.
    for (i, id) in ["boot_vs_floor", "boot_confined_vs_unconfined"]
        .into_iter()
        .enumerate()
    {
        let comparison = &doc["comparisons"][i];
        check(comparison["id"] == id, || format!("{doc}"))?;
        check(
            comparison["ratio"].as_f64().is_some_and(|r| r > 0.0),
            || format!("{comparison}"),
        )?;
    }
    let timelines = doc["timelines"].as_array().ok_or("no timelines")?;
    check(timelines.len() == 1, || format!("{timelines:?}"))?;
    let t = &timelines[0];
    let phase = |key: &str| t[key].as_f64().ok_or(format!("{key} missing: {t}"));
    let (entered, ready, first) = (
        phase("entered_ms")?,
        phase("ready_ms")?,
        phase("first_exec_ms")?,
    );
    check(
        phase("configured_ms")? <= entered && entered < ready && ready < first,
        || format!("phases out of order: {t}"),
    )
}

/// `bench --cases image`: image-style and `--rootfs` boots of one tree,
/// both to the first exec and to `krun_start_enter`, and their ratios.
fn bench_image_compares_with_rootfs() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("bench.json");
    let out = cli()
        .args(["bench", "--cases", "image", "--runs", "1", "--warmup", "0"])
        .arg("--rootfs")
        .arg(rootfs())
        .arg("--json")
        .arg(&json)
        .output()?;
    check(out.status.success(), || described(&out))?;
    let doc: Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let ids = figure_ids(&doc)?;
    let expected = [
        "image.overlay_first_exec",
        "image.rootfs_first_exec",
        "image.overlay_host_work",
        "image.rootfs_host_work",
    ];
    check(ids == expected, || format!("figures {ids:?}"))?;
    let comparisons: Vec<&str> = doc["comparisons"]
        .as_array()
        .ok_or("no comparisons")?
        .iter()
        .filter(|c| c["ratio"].as_f64().is_some_and(|r| r > 0.0))
        .filter_map(|c| c["id"].as_str())
        .collect();
    check(
        comparisons == ["image_boot_vs_rootfs", "image_host_work_vs_rootfs"],
        || format!("comparisons {comparisons:?} in {doc}"),
    )
}

/// The ids of a `bench --json` report's figures, in order.
fn figure_ids(doc: &Value) -> Result<Vec<&str>, Failed> {
    Ok(doc["figures"]
        .as_array()
        .ok_or("no figures")?
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect())
}
