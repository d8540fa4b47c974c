//! The library's results as Python values: tuples and dicts that the
//! Python layer turns into its dataclasses.

use std::borrow::Cow;
use std::time::Duration;

use krunbox::client::{CopyStats, ExecStatus, FileStat, ProcessInfo, ProcessOutput};
use krunbox::vm::BootTimeline;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Bytes for Python (a `Vec<u8>` would become a list of ints).
pub(crate) type PyBytesOut = Cow<'static, [u8]>;

/// `(code, signal, timed_out)`.
pub(crate) type Status = (Option<i32>, Option<i32>, bool);

/// An exit status as a tuple.
pub(crate) fn status(status: &ExecStatus) -> Status {
    (status.code, status.signal, status.timed_out)
}

/// `(entries, bytes, [(path, reason)])`.
pub(crate) fn copy_stats(stats: CopyStats) -> (u64, u64, Vec<(String, String)>) {
    let skipped = stats
        .skipped
        .into_iter()
        .map(|s| (s.path.display().to_string(), s.reason.to_string()))
        .collect();
    (stats.entries, stats.bytes, skipped)
}

/// `(kind, mode, size, uid, gid, mtime, symlink_target)`.
pub(crate) type Stat = (String, u32, u64, u32, u32, i64, Option<String>);

/// A stat as a tuple.
pub(crate) fn stat(stat: FileStat) -> Stat {
    let kind = serde_json::to_value(stat.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    (
        kind,
        stat.mode,
        stat.size,
        stat.uid,
        stat.gid,
        stat.mtime,
        stat.symlink_target,
    )
}

/// `(id, pid, argv, status)`.
pub(crate) fn process_info(info: ProcessInfo) -> (u64, u32, Vec<String>, Option<Status>) {
    (
        info.id,
        info.pid,
        info.argv,
        info.status.as_ref().map(status),
    )
}

/// `(stdout, (start, end), stderr, (start, end), status)`.
pub(crate) type Output = (
    PyBytesOut,
    (u64, u64),
    PyBytesOut,
    (u64, u64),
    Option<Status>,
);

/// A background process's output as a tuple.
pub(crate) fn output(out: ProcessOutput) -> Output {
    (
        Cow::Owned(out.stdout),
        (out.stdout_range.start, out.stdout_range.end),
        Cow::Owned(out.stderr),
        (out.stderr_range.start, out.stderr_range.end),
        out.status.as_ref().map(status),
    )
}

/// The boot timeline as a dict of milliseconds (`None` where unknown).
pub(crate) fn timeline<'py>(
    py: Python<'py>,
    timeline: &BootTimeline,
) -> PyResult<Bound<'py, PyDict>> {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let dict = PyDict::new(py);
    dict.set_item("configured_ms", ms(timeline.configured))?;
    dict.set_item("entered_ms", ms(timeline.entered))?;
    dict.set_item("vcpu_started_ms", ms(timeline.vcpu_started))?;
    dict.set_item("agent_started_ms", ms(timeline.agent_started_estimate()))?;
    dict.set_item("ready_ms", ms(timeline.ready))?;
    dict.set_item("first_exec_ms", ms(timeline.first_exec))?;
    Ok(dict)
}
