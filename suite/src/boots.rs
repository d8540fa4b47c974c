//! Running the cases in the nested lab, booting it again if it dies.
//!
//! The lab's own kernel runs on an emulated CPU, and under heavy nested
//! I/O that emulation has reset it mid-suite (QEMU exits 0 without the
//! lab reporting an exit status; CI saw it during
//! `agent::copy_64mib_in_and_out`, since cut to 16 MiB), or hung it (both its CPUs stuck, seen
//! under copy stress). So each case tells the host, with a lab note, when
//! it starts and how it ended, and a heartbeat note goes out every
//! [`HEARTBEAT`](crate::notes::HEARTBEAT); when the lab dies, or sends nothing for
//! [`SILENCE_LIMIT`], the host boots it again for the cases that have not
//! ended, at most [`LAB_BOOTS`] boots in all (so at most two reboots: a
//! lab that dies three times in one run has got worse, and the suite
//! fails), saying so. Cases that ended are not run again, and their
//! failures still fail the suite. The notes ([`crate::notes`]) also carry
//! the reruns ([`crate::rerun`]); the host prints them and the reboots on
//! the suite's last line ([`crate::summary`]).
//!
//! To see it happen: `KRUNBOX_VM_TESTS_RESET_LAB_IN=<case> cargo test
//! --test vm` resets the lab's kernel as that case starts, in the first
//! lab boot only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use krunbox_lab::{LabError, LabSpec};

use crate::notes::{BOOT_VAR, ENDED_VAR, RESET_VAR};
use crate::rerun::{Budget, LOSE_VM_VAR, SPENT_VAR};
use crate::summary::{LabReboot, RebootCause, RunSummary};
use crate::SUITE;

/// How many of the slowest cases the end of a run names.
const SLOWEST: usize = 20;

/// Most lab boots for one run of the suite.
pub const LAB_BOOTS: usize = 3;

/// Time for all lab boots together.
const TIME_BUDGET: Duration = Duration::from_secs(40 * 60);

/// How long the host waits for any note before taking the lab to hang:
/// many heartbeats ([`crate::notes::HEARTBEAT`]), as a busy lab's emulated
/// CPUs can be slow to run them.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(4 * 60);

/// What the suite's binary needs in the lab besides itself: files,
/// programs, environment. The runner adds its own arguments, the cases
/// already ended, and the time limits.
pub struct LabPlan {
    /// Where the lab's scratch files go (the test's `CARGO_TARGET_TMPDIR`).
    work_dir: PathBuf,
    /// Variables passed from the host's environment, when set there.
    passed_vars: Vec<&'static str>,
    /// Adds the suite's own files and variables to a lab boot's spec.
    extend: Box<dyn Fn(LabSpec) -> LabSpec>,
}

impl LabPlan {
    /// A plan that puts only the test binary into the lab.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        Self {
            work_dir: work_dir.into(),
            passed_vars: Vec::new(),
            extend: Box::new(|spec| spec),
        }
    }

    /// Passes variable `name` from the host's environment, when set.
    pub fn pass_var(mut self, name: &'static str) -> Self {
        self.passed_vars.push(name);
        self
    }

    /// Adds files, programs or variables to every lab boot's spec.
    pub fn with(mut self, extend: impl Fn(LabSpec) -> LabSpec + 'static) -> Self {
        self.extend = Box::new(extend);
        self
    }
}

/// What the notes of the lab boots so far say.
#[derive(Debug, Default, PartialEq, Eq)]
struct Progress {
    /// Each ended case and whether it passed.
    ended: BTreeMap<String, bool>,
    /// How long each ended case took, as its note says.
    took: BTreeMap<String, Duration>,
    /// The case that had started and not ended when the notes stop.
    running: Option<String>,
    /// The reruns the notes tell of, and the lab reboots.
    summary: RunSummary,
}

impl Progress {
    /// Reads one lab boot's notes.
    fn read(&mut self, notes: &[String]) {
        self.running = None;
        for note in notes {
            let mut words = note.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("case-start"), Some(name), None) => self.running = Some(name.to_owned()),
                (Some("case-end"), Some(name), Some(outcome)) => {
                    self.ended.insert(name.to_owned(), outcome == "ok");
                    if let Some(secs) = words.next().and_then(|w| w.parse::<f64>().ok()) {
                        let took = Duration::try_from_secs_f64(secs).unwrap_or_default();
                        self.took.insert(name.to_owned(), took);
                    }
                    self.running = None;
                }
                _ => self.summary.read_note(note),
            }
        }
    }

    fn failed(&self) -> Vec<&str> {
        self.ended
            .iter()
            .filter(|(_, passed)| !**passed)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The [`SLOWEST`] cases and their times, slowest first.
    fn slowest(&self) -> String {
        let mut took: Vec<(&String, &Duration)> = self.took.iter().collect();
        took.sort_by(|a, b| b.1.cmp(a.1));
        let total: Duration = took.iter().map(|(_, d)| **d).sum();
        let listed: Vec<String> = took
            .iter()
            .take(SLOWEST)
            .map(|(name, d)| format!("{name} {:.0} s", d.as_secs_f64()))
            .collect();
        format!(
            "{:.0} s in cases; slowest: {}",
            total.as_secs_f64(),
            listed.join(", ")
        )
    }

    fn ended_list(&self) -> String {
        let names: Vec<&str> = self.ended.keys().map(String::as_str).collect();
        names.join(",")
    }
}

/// Runs this very binary inside the lab, passing our arguments through,
/// booting the lab again (for the cases not ended) when it dies.
pub fn run_in_lab(plan: &LabPlan, budget: Budget) -> ExitCode {
    println!("{SUITE}: /dev/kvm is paravirtual here; booting the nested lab once for all cases");
    let started = Instant::now();
    let mut progress = Progress::default();
    for boot in 1..=LAB_BOOTS {
        let timeout = TIME_BUDGET.saturating_sub(started.elapsed());
        let err = match spec(plan, &progress, boot, timeout).run() {
            Ok(run) => {
                progress.read(&run.notes);
                println!(
                    "{SUITE}: lab booted in {:.1} s, ran for {:.1} s in all",
                    run.boot_time.as_secs_f64(),
                    run.run_time.as_secs_f64()
                );
                return finish(&progress, boot, run.exit_code, budget);
            }
            Err(e) => e,
        };
        let chain = crate::error_chain(&err);
        let (LabError::NoExitStatus { notes, .. } | LabError::Silent { notes, .. }) = &err else {
            eprintln!("{SUITE}: FAILED: the nested lab could not run: {chain}");
            eprintln!("{SUITE}: hint: cargo xtask setup installs what the lab needs");
            return ExitCode::FAILURE;
        };
        progress.read(notes);
        let reboot = LabReboot {
            cause: match &err {
                LabError::Silent { .. } => RebootCause::Hang,
                _ => RebootCause::Reset,
            },
            during: progress.running.clone(),
        };
        if boot == LAB_BOOTS {
            eprintln!(
                "{SUITE}: FAILED: the nested lab died in all {LAB_BOOTS} boots, the \
                 last time ({reboot}): {chain}"
            );
            break;
        }
        eprintln!("\n{SUITE}: the nested lab died ({reboot}): {chain}");
        progress.summary.reboots.push(reboot);
        println!(
            "{SUITE}: lab boot {boot} of at most {LAB_BOOTS} died; {} cases had \
             ended; booting the lab again for the rest",
            progress.ended.len()
        );
    }
    eprintln!(
        "{SUITE}: hint: the lab's emulated CPU loses guests under heavy nested I/O \
         (docs/reliability.md, \"The lab's own faults\"); hardware KVM runs the cases directly"
    );
    println!("{}", progress.summary);
    ExitCode::FAILURE
}

/// Lab boot number `boot`: our arguments, the cases already ended,
/// `timeout`.
fn spec(plan: &LabPlan, progress: &Progress, boot: usize, timeout: Duration) -> LabSpec {
    let me = std::env::current_exe().expect("the test binary knows its path");
    let name = me
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let mut argv = vec![name];
    argv.extend(std::env::args().skip(1));
    let mut spec = LabSpec::new(argv);
    let own = [RESET_VAR, LOSE_VM_VAR];
    for name in own.iter().chain(&plan.passed_vars) {
        if let Ok(value) = std::env::var(name) {
            spec = spec.env(*name, value);
        }
    }
    (plan.extend)(spec)
        .executable(&me)
        .env(ENDED_VAR, progress.ended_list())
        .env(SPENT_VAR, progress.summary.reruns.len().to_string())
        .env(BOOT_VAR, boot.to_string())
        .env("RUST_BACKTRACE", "1")
        .timeout(timeout)
        .silence_limit(SILENCE_LIMIT)
        .work_dir(&plan.work_dir)
}

/// The suite's exit code after `boots` lab boots, the last exiting with
/// `last_code`: failures of earlier boots count too.
fn finish(progress: &Progress, boots: usize, last_code: i32, budget: Budget) -> ExitCode {
    let failed = progress.failed();
    if boots > 1 {
        println!(
            "{SUITE}: in {boots} lab boots, {} cases ended, {} failed{}",
            progress.ended.len(),
            failed.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(": {}", failed.join(", "))
            }
        );
    }
    if !progress.took.is_empty() {
        println!("{SUITE}: {}", progress.slowest());
    }
    println!("{}", progress.summary);
    if last_code == 0 && (!failed.is_empty() || progress.summary.over_budget(budget)) {
        return ExitCode::FAILURE;
    }
    ExitCode::from(u8::try_from(last_code).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::FaultKind;

    /// Reading notes back: what ended, what was running when they stop.
    #[test]
    fn notes_are_read_back() {
        let notes = |lines: &[&str]| lines.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut progress = Progress::default();
        progress.read(&notes(&[
            "case-start a::one",
            "case-end a::one ok 12.4",
            "case-start a::two",
            "case-end a::two failed",
            "case-start a::three",
            "rerun a::three triple-fault",
            "rerun-refused a::four lockup",
            "rerun a::five no-such-kind",
            "something else",
        ]));
        assert_eq!(progress.running.as_deref(), Some("a::three"));
        assert_eq!(progress.ended_list(), "a::one,a::two");
        assert_eq!(progress.failed(), ["a::two"]);
        assert_eq!(progress.slowest(), "12 s in cases; slowest: a::one 12 s");
        assert_eq!(
            progress.summary.reruns,
            [("a::three".to_owned(), FaultKind::TripleFault)]
        );
        assert_eq!(
            progress.summary.refused,
            [("a::four".to_owned(), FaultKind::Lockup)]
        );
        progress.read(&notes(&["case-start a::three", "case-end a::three ok"]));
        assert_eq!(progress.running, None);
        assert_eq!(progress.ended_list(), "a::one,a::three,a::two");
        assert_eq!(
            progress.summary.reruns.len(),
            1,
            "reruns of all boots are kept"
        );
    }
}
