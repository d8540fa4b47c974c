//! Running the cases in the nested lab, booting it again if it dies.
//!
//! The lab's own kernel runs on an emulated CPU, and under heavy nested
//! I/O that emulation has reset it mid-suite (QEMU exits 0 without the
//! lab reporting an exit status; CI saw it during
//! `agent::copy_64mib_in_and_out`), or hung it (both its CPUs stuck, seen
//! under copy stress). So each case tells the host, with a lab note, when
//! it starts and how it ended, and a heartbeat note goes out every
//! [`HEARTBEAT`]; when the lab dies, or sends nothing for
//! [`SILENCE_LIMIT`], the host boots it again for the cases that have not
//! ended, at most [`LAB_BOOTS`] boots in all (so at most two reboots: a
//! lab that dies three times in one run has got worse, and the suite
//! fails), saying so. Cases that ended are not run again, and their
//! failures still fail the suite. The notes also carry the reruns
//! (`lab_faults`); the host prints them and the reboots on the suite's last
//! line (`run_summary`).
//!
//! To see it happen: `KRUNBOX_VM_TESTS_RESET_LAB_IN=<case> cargo test
//! --test vm` resets the lab's kernel as that case starts, in the first
//! lab boot only.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use krunbox_lab::{LabError, LabSpec};

use crate::lab_faults::{Budget, Rerun, SPENT_VAR};
use crate::run_summary::{LabReboot, RebootCause, RunSummary};
use crate::support;

/// How many of the slowest cases the end of a run names.
const SLOWEST: usize = 8;

/// Most lab boots for one run of the suite.
const LAB_BOOTS: usize = 3;

/// Time for all lab boots together.
const BUDGET: Duration = Duration::from_secs(40 * 60);

/// How often the suite in the lab tells the host it is alive.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// How long the host waits for any note before taking the lab to hang:
/// many heartbeats, as a busy lab's emulated CPUs can be slow to run them.
const SILENCE_LIMIT: Duration = Duration::from_secs(4 * 60);

/// Names of cases that ended in earlier lab boots, comma-separated: the
/// lab does not run them again.
const ENDED_VAR: &str = "KRUNBOX_VM_TESTS_ENDED";

/// Which lab boot this is (1, 2, ...), set in the lab.
const BOOT_VAR: &str = "KRUNBOX_VM_TESTS_LAB_BOOT";

/// A case in which the first lab boot resets, to show the lab booted again.
const RESET_VAR: &str = "KRUNBOX_VM_TESTS_RESET_LAB_IN";

/// Variables passed from the host's environment into the lab.
const PASSED_VARS: [&str; 4] = [
    support::LIBKRUN_LOG_VAR,
    crate::load_cases::BIG_MIB_VAR,
    RESET_VAR,
    crate::lab_faults::LOSE_VM_VAR,
];

/// Tells the host (inside the lab) that case `name` starts; resets the
/// lab here if [`RESET_VAR`] names the case and this is the first boot.
pub fn case_started(name: &str) {
    send(&format!("case-start {name}"));
    let first_boot = std::env::var(BOOT_VAR).is_ok_and(|b| b == "1");
    if support::in_lab() && first_boot && std::env::var(RESET_VAR).is_ok_and(|c| c == name) {
        println!("\n{name}: resetting the lab, as {RESET_VAR} asks");
        // What the emulation fault does: an immediate reset, no clean-up.
        if let Err(e) = std::fs::write("/proc/sysrq-trigger", "b") {
            eprintln!("krunbox vm tests: could not reset the lab: {e}");
        }
    }
}

/// Tells the host (inside the lab) that case `name` ended after
/// `took` (its reruns included).
pub fn case_ended(name: &str, passed: bool, took: Duration) {
    let outcome = if passed { "ok" } else { "failed" };
    send(&format!(
        "case-end {name} {outcome} {:.1}",
        took.as_secs_f64()
    ));
}

/// Starts the heartbeat (inside the lab): a note every [`HEARTBEAT`]
/// while the suite runs.
pub fn start_heartbeat() {
    std::thread::spawn(|| loop {
        send("alive");
        std::thread::sleep(HEARTBEAT);
    });
}

/// Tells the host (inside the lab) of a rerun granted or refused.
pub fn rerun_decided(rerun: &Rerun) {
    send(&RunSummary::note(rerun));
}

fn send(note: &str) {
    if let Err(e) = krunbox_lab::note(note) {
        eprintln!("krunbox vm tests: could not send the lab note {note:?}: {e}");
    }
}

/// The cases that ended in earlier lab boots (inside the lab).
pub fn ended_before() -> Vec<String> {
    std::env::var(ENDED_VAR)
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
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
pub fn run_in_lab() -> ExitCode {
    println!(
        "krunbox vm tests: /dev/kvm is paravirtual here; booting the nested lab once for all cases"
    );
    let started = Instant::now();
    let mut progress = Progress::default();
    for boot in 1..=LAB_BOOTS {
        let timeout = BUDGET.saturating_sub(started.elapsed());
        let err = match spec(&progress, boot, timeout).run() {
            Ok(run) => {
                progress.read(&run.notes);
                println!(
                    "krunbox vm tests: lab booted in {:.1} s, ran for {:.1} s in all",
                    run.boot_time.as_secs_f64(),
                    run.run_time.as_secs_f64()
                );
                return finish(&progress, boot, run.exit_code);
            }
            Err(e) => e,
        };
        let chain = krunbox::error_chain(&err);
        let (LabError::NoExitStatus { notes, .. } | LabError::Silent { notes, .. }) = &err else {
            eprintln!("krunbox vm tests: FAILED: the nested lab could not run: {chain}");
            eprintln!("krunbox vm tests: hint: cargo xtask setup installs what the lab needs");
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
                "krunbox vm tests: FAILED: the nested lab died in all {LAB_BOOTS} boots, the \
                 last time ({reboot}): {chain}"
            );
            break;
        }
        eprintln!("\nkrunbox vm tests: the nested lab died ({reboot}): {chain}");
        progress.summary.reboots.push(reboot);
        println!(
            "krunbox vm tests: lab boot {boot} of at most {LAB_BOOTS} died; {} cases had \
             ended; booting the lab again for the rest",
            progress.ended.len()
        );
    }
    eprintln!(
        "krunbox vm tests: hint: the lab's emulated CPU loses guests under heavy nested I/O \
         (docs/reliability.md, \"The lab's own faults\"); hardware KVM runs the cases directly"
    );
    println!("{}", progress.summary);
    ExitCode::FAILURE
}

/// Debian's docker-registry (`cargo xtask setup` installs it), put into
/// the lab for the image cases.
const REGISTRY: &str = "/usr/bin/docker-registry";
/// Debian's CA bundle (package ca-certificates).
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Lab boot number `boot`: our arguments, the cases already ended,
/// `timeout`.
fn spec(progress: &Progress, boot: usize, timeout: Duration) -> LabSpec {
    let me = std::env::current_exe().expect("the test binary knows its path");
    let name = me
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let mut argv = vec![name];
    argv.extend(std::env::args().skip(1));
    let mut spec = LabSpec::new(argv);
    for name in PASSED_VARS {
        if let Ok(value) = std::env::var(name) {
            spec = spec.env(name, value);
        }
    }
    for (host, lab) in crate::debian::lab_files() {
        spec = spec.file(host, lab);
    }
    // `cargo test` builds the examples; a case runs this one (and fails,
    // saying so, if it is missing).
    let example = crate::example_cases::host_path();
    if example.exists() {
        spec = spec.executable(example);
    }
    spec.executable(&me)
        .executable(support::host_runner())
        // The image cases pull from a real registry on the lab's loopback;
        // a pulling client wants the system's CA certificates, as on any
        // host (krunbox reports their absence as an error).
        .executable(REGISTRY)
        .file(CA_BUNDLE, CA_BUNDLE)
        .env(
            "KRUNBOX_RUNNER",
            format!("{}/krunbox", krunbox_lab::LAB_BIN),
        )
        .env(ENDED_VAR, progress.ended_list())
        .env(SPENT_VAR, progress.summary.reruns.len().to_string())
        .env(BOOT_VAR, boot.to_string())
        .env("RUST_BACKTRACE", "1")
        .memory_mib(8192)
        .timeout(timeout)
        .silence_limit(SILENCE_LIMIT)
        .work_dir(env!("CARGO_TARGET_TMPDIR"))
}

/// The suite's exit code after `boots` lab boots, the last exiting with
/// `last_code`: failures of earlier boots count too.
fn finish(progress: &Progress, boots: usize, last_code: i32) -> ExitCode {
    let failed = progress.failed();
    if boots > 1 {
        println!(
            "krunbox vm tests: in {boots} lab boots, {} cases ended, {} failed{}",
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
        println!("krunbox vm tests: {}", progress.slowest());
    }
    println!("{}", progress.summary);
    if last_code == 0 && (!failed.is_empty() || progress.summary.over_budget(Budget::SUITE)) {
        return ExitCode::FAILURE;
    }
    ExitCode::from(u8::try_from(last_code).unwrap_or(1))
}

/// Reading notes back: what ended, what was running when they stop.
pub fn notes_are_read_back() -> Result<(), libtest_mimic::Failed> {
    use crate::lab_evidence::FaultKind;
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
    Ok(())
}
