//! The bench report: the table printed at the end, the JSON file with
//! every sample, and output files written whole or not at all.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::error::BenchError;
use super::peer::PeerInfo;
use super::stats::{Comparison, ComparisonSpec, Figure, Summary, Text};
use super::vm_cases::TimelineSample;
use super::{host, Ctx};

/// Where and when the numbers were taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// krunbox's version.
    pub krunbox_version: Text,
    /// When the run ended (RFC 3339, UTC).
    pub date: String,
    /// Recorded runs per case.
    pub runs: usize,
    /// Unrecorded runs per case before them.
    pub warmup: usize,
    /// Samples per run of the host-exec figures.
    pub host_exec_samples_per_run: usize,
    /// The cases run.
    pub cases: Vec<Text>,
    /// The machine.
    pub machine: Machine,
    /// The libkrunfw krunbox's VMs booted, when `--libkrunfw` chose it
    /// (otherwise the one on the loader path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libkrunfw: Option<String>,
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// What provides /dev/kvm.
    pub kvm: String,
    /// Whether this ran inside the nested QEMU lab (emulated CPU).
    pub lab: bool,
}

/// One figure with its summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FigureReport {
    /// The figure and its samples.
    #[serde(flatten)]
    pub figure: Figure,
    /// min / p50 / p90 / max.
    pub summary: Option<Summary>,
    /// Throughput at the median, for transfers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mib_per_s: Option<f64>,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Where and when.
    pub meta: Meta,
    /// Every figure measured.
    pub figures: Vec<FigureReport>,
    /// Every comparison whose two figures were measured.
    pub comparisons: Vec<Comparison>,
    /// Comparisons left out because a case was not run.
    pub not_measured: Vec<Text>,
    /// Each recorded boot's phases.
    pub timelines: Vec<TimelineSample>,
    /// The cases that failed, and why (none in reports saved before
    /// failures were kept).
    #[serde(default)]
    pub failed: Vec<CaseFailure>,
    /// The peer measured side by side, when the `peer` case ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerInfo>,
}

/// A case that failed; the run went on without it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseFailure {
    /// The case.
    pub case: Text,
    /// What failed, with its causes.
    pub error: String,
    /// What to do about it, when something can be done.
    pub advice: Option<String>,
}

impl CaseFailure {
    /// Case `case` failed with `error`.
    pub fn new(case: &'static str, error: &BenchError) -> Self {
        use crate::cli::report::Advised;
        Self {
            case: Text::Borrowed(case),
            error: krunbox::error_chain(error),
            advice: error.advice(),
        }
    }
}

impl Report {
    /// The report of a finished run.
    pub fn new(ctx: &Ctx, cases: Vec<Text>, specs: &[ComparisonSpec]) -> Self {
        let comparisons: Vec<Comparison> = specs
            .iter()
            .filter_map(|s| s.evaluate(&ctx.figures))
            .collect();
        let not_measured = specs
            .iter()
            .filter(|s| !comparisons.iter().any(|c| c.id == s.id))
            .map(|s| Text::Borrowed(s.id))
            .collect();
        Self {
            meta: Meta {
                krunbox_version: Text::Borrowed(env!("CARGO_PKG_VERSION")),
                date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                runs: ctx.runs,
                warmup: ctx.warmup,
                host_exec_samples_per_run: host::SAMPLES_PER_RUN,
                cases,
                machine: Machine::probe(),
                libkrunfw: None,
            },
            figures: ctx
                .figures
                .iter()
                .map(|f| FigureReport {
                    figure: f.clone(),
                    summary: f.summary(),
                    mib_per_s: f.mib_per_s(),
                })
                .collect(),
            comparisons,
            not_measured,
            timelines: ctx.timelines.clone(),
            failed: Vec::new(),
            peer: ctx.peer.clone(),
        }
    }

    /// Reads a report written by [`Report::json`].
    pub fn read(path: &Path) -> Result<Self, BenchError> {
        let bytes = std::fs::read(path).map_err(|source| BenchError::ReportRead {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| BenchError::ReportParse {
            path: path.to_owned(),
            source,
        })
    }

    /// The JSON document.
    pub fn json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).expect("the report serializes");
        json.push(b'\n');
        json
    }

    /// The peer's name, for the table.
    fn peer_name(&self) -> &str {
        self.peer.as_ref().map_or("the peer", |p| &p.name)
    }

    /// The median of one timeline phase over the recorded boots.
    pub fn timeline_p50(&self, phase: fn(&TimelineSample) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.timelines.iter().filter_map(phase).collect();
        Summary::of(&values).map(|s| s.p50)
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let m = &self.meta;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "krunbox bench: {} recorded runs per case after {} warm-up; {}",
            m.runs, m.warmup, m.date
        );
        let _ = writeln!(out, "machine: {}", m.machine.describe());
        if let Some(libkrunfw) = &m.libkrunfw {
            let _ = writeln!(out, "krunbox's guest kernel: {libkrunfw}");
        }
        if let Some(peer) = &self.peer {
            let _ = writeln!(
                out,
                "peer: {} ({}), one CLI process per operation; krunbox / {} in the comparisons",
                peer.version,
                peer.binary.display(),
                peer.name
            );
        }
        if m.machine.lab {
            let _ = writeln!(
                out,
                "note: in the nested lab QEMU emulates the CPU: absolute times are slow; \
                 only the ratios carry over to hardware KVM"
            );
        }
        let _ = writeln!(
            out,
            "\n{:<58} {:>9} {:>9} {:>9} {:>9}  (ms)",
            "figure", "min", "p50", "p90", "max"
        );
        for f in &self.figures {
            let Some(s) = f.summary else { continue };
            let _ = write!(
                out,
                "{:<58} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                f.figure.label, s.min, s.p50, s.p90, s.max
            );
            if let Some(rate) = f.mib_per_s {
                let _ = write!(out, "  {rate:.1} MiB/s");
            }
            out.push('\n');
        }
        if !self.timelines.is_empty() {
            let p = |phase| {
                self.timeline_p50(phase)
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
            };
            let _ = writeln!(
                out,
                "\nboot timeline (median of {} boots, ms after spawning the runner): \
                 libkrun configured {}, krun_start_enter {}, agent started ~{}, \
                 agent ready {}, first exec done {}",
                self.timelines.len(),
                p(|t| t.configured_ms),
                p(|t| t.entered_ms),
                p(|t| t.agent_started_ms),
                p(|t| t.ready_ms),
                p(|t| t.first_exec_ms),
            );
            out.push_str(&super::phases::table(&self.timelines));
        }
        let _ = writeln!(
            out,
            "\n{:<82} {:>9} {:>9} {:>8} {:>13}  target",
            "comparison (ratio of medians, same run)", "krunbox", "baseline", "ratio", "spread"
        );
        for c in &self.comparisons {
            let spread = c
                .ratio_spread
                .map_or_else(|| "-".to_owned(), |[lo, hi]| format!("{lo:.2}-{hi:.2}x"));
            let _ = write!(
                out,
                "{:<82} {:>9.2} {:>9.2} {:>7.3}x {spread:>13}",
                c.label, c.krunbox_p50_ms, c.baseline_p50_ms, c.ratio
            );
            if let Some(plain) = plainly(c.ratio) {
                let _ = write!(out, " ({plain})");
            }
            if let (Some(t), Some(verdict)) = (&c.target, c.verdict()) {
                let _ = write!(out, "  {}: {}", t.text, verdict.says());
            }
            out.push('\n');
        }
        for id in &self.not_measured {
            let _ = writeln!(
                out,
                "{id}: not measured (its cases were not run, or failed)"
            );
        }
        for gap in self.peer.iter().flat_map(|p| &p.cannot) {
            let _ = writeln!(
                out,
                "{}: {} cannot: {}",
                gap.operation,
                self.peer_name(),
                gap.why
            );
        }
        for f in &self.failed {
            let _ = writeln!(
                out,
                "case {} FAILED: {} (its figures hold the samples taken before)",
                f.case, f.error
            );
        }
        out
    }
}

/// "2.1x faster" or "1.5x slower" for a ratio of medians more than a
/// tenth away from 1; `None` closer to 1.
pub fn plainly(ratio: f64) -> Option<String> {
    if ratio > 0.0 && ratio < 0.9 {
        Some(format!("{:.1}x faster", 1.0 / ratio))
    } else if ratio > 1.1 && ratio.is_finite() {
        Some(format!("{ratio:.1}x slower"))
    } else {
        None
    }
}

impl Machine {
    /// Looks at this machine.
    pub fn probe() -> Self {
        let read = |path| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown CPU".to_owned(), |(_, v)| v.trim().to_owned());
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        Self {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_mib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            kvm: krunbox::host::Kvm::probe().describe(),
            lab: std::env::var_os("KRUNBOX_LAB").is_some_and(|v| v == "1"),
        }
    }

    /// One line for the table.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} CPUs, {} MiB, Linux {}{}; {}",
            self.cpu,
            self.cpus,
            self.memory_mib,
            self.kernel,
            if self.lab {
                " (nested QEMU lab, emulated CPU)"
            } else {
                ""
            },
            self.kvm
        )
    }
}

/// An output file, written under a temporary name beside it and renamed
/// into place, so a failed run leaves no half-written file; or standard
/// output (`-`).
pub enum OutputFile {
    /// `-`.
    Stdout,
    /// A file.
    File {
        /// The final path.
        path: PathBuf,
        /// The file being written.
        temp: tempfile::NamedTempFile,
    },
}

impl OutputFile {
    /// Checks now that `path` can be written (before a long run).
    pub fn create(path: &Path) -> Result<Self, BenchError> {
        if path == Path::new("-") {
            return Ok(OutputFile::Stdout);
        }
        let failed = |source| BenchError::Output {
            path: path.to_owned(),
            source,
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if path.is_dir() {
            return Err(failed(std::io::Error::other("it is a directory")));
        }
        let temp = tempfile::Builder::new()
            .prefix(".krunbox-bench-")
            .tempfile_in(parent)
            .map_err(failed)?;
        Ok(OutputFile::File {
            path: path.to_owned(),
            temp,
        })
    }

    /// Whether this is standard output.
    pub fn is_stdout(&self) -> bool {
        matches!(self, OutputFile::Stdout)
    }

    /// Writes `bytes` (and renames the file into place); returns the
    /// file's path, `None` for standard output.
    pub fn write(self, bytes: &[u8]) -> Result<Option<PathBuf>, BenchError> {
        let (path, mut temp) = match self {
            OutputFile::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)
                    .and_then(|()| out.flush())
                    .map_err(|source| BenchError::Output {
                        path: "-".into(),
                        source,
                    })?;
                return Ok(None);
            }
            OutputFile::File { path, temp } => (path, temp),
        };
        let failed = |path: &Path| {
            let path = path.to_owned();
            move |source| BenchError::Output { path, source }
        };
        temp.write_all(bytes)
            .and_then(|()| temp.as_file().sync_all())
            .map_err(failed(&path))?;
        // Readable like any file the user writes, not 0600.
        let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
        let _ = temp.as_file().set_permissions(mode);
        temp.persist(&path)
            .map_err(|e| e.error)
            .map_err(failed(&path))?;
        Ok(Some(path))
    }
}
