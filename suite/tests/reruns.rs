//! The runner's own tests, without a VM or the lab: when a failed case
//! runs again, the budget, the summary line. They drive [`RerunPolicy`]
//! with fake cases and evidence planted in files of the lab kernel's
//! formats; `lab::a_guest_triple_fault_is_evidence` (in `tests/vm`) checks
//! the real sources, in the lab.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use krunbox_suite::evidence::{monotonic_now, EvidenceSources, FaultKind, LabFault, Watch};
use krunbox_suite::rerun::{Budget, Rerun, RerunPolicy};
use krunbox_suite::summary::{LabReboot, RebootCause, RunSummary};
use krunbox_suite::Failed;

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(why().into())
    }
}

/// What a case prints when its agent stops answering: the same text
/// whether the lab or krunbox is at fault.
const SILENT_AGENT: &str =
    "exec failed: no answer from the agent within 60s during exec\n--- post mortem: runner 42 \
     still running";

/// A directory of fake evidence sources.
struct Planted {
    dir: tempfile::TempDir,
}

impl Planted {
    fn new() -> Result<Self, Failed> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("trace"), "# tracer: nop\n#\n")?;
        std::fs::write(dir.path().join("kmsg"), "6,1,10,-;Linux version 6.1\n")?;
        std::fs::create_dir(dir.path().join("consoles"))?;
        Ok(Self { dir })
    }

    fn sources(&self) -> EvidenceSources {
        EvidenceSources {
            kvm_exits: self.dir.path().join("trace"),
            kernel_log: self.dir.path().join("kmsg"),
            watch_vcpus: false,
            guest_consoles: Some(self.dir.path().join("consoles")),
        }
    }

    /// A triple fault, stamped now, as the lab's trace shows it.
    fn triple_fault(&self) {
        let now = monotonic_now();
        let line = format!(
            "       fc_vcpu 0-4242    [001] .....  {}.{:06}: kvm_userspace_exit: reason \
             KVM_EXIT_SHUTDOWN (8)\n",
            now.as_secs(),
            now.subsec_micros()
        );
        append(&self.dir.path().join("trace"), &line);
    }

    /// A soft lockup, as the lab kernel logs it.
    fn soft_lockup(&self) {
        let record =
            "0,700,5000000,-;watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [krunbox:7]\n";
        append(&self.dir.path().join("kmsg"), record);
    }
}

impl Planted {
    /// A guest console, written during the run, whose kernel faulted in
    /// its entry code (as the lab's emulation made one do in CI).
    fn guest_entry_fault(&self) {
        let console = "[    0.000000] Linux version 6.12\n\
                       [   41.2] BUG: unable to handle page fault for address: fffffe0000001ff8\n\
                       [   41.2] RIP: 0010:error_entry+0x20/0x130\n\
                       [   41.3] Kernel panic - not syncing: Fatal exception in interrupt\n";
        std::fs::write(self.dir.path().join("consoles/7-0.log"), console)
            .expect("planting a console");
    }

    /// A guest console whose kernel panicked elsewhere: not the sign.
    fn guest_panic(&self) {
        let console = "[   41.2] RIP: 0010:virtqueue_add_split+0x1/0x2\n\
                       [   41.3] Kernel panic - not syncing: Fatal exception\n";
        std::fs::write(self.dir.path().join("consoles/7-1.log"), console)
            .expect("planting a console");
    }
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .expect("a planted source");
    file.write_all(text.as_bytes()).expect("planting evidence");
}

/// A policy on `planted`, telling nobody.
fn policy(planted: &Planted, budget: Budget) -> RerunPolicy {
    RerunPolicy::new(
        budget,
        planted.sources(),
        0,
        |_: &Rerun, _: Option<&str>| {},
    )
}

#[test]
fn lost_with_evidence_is_rerun() -> Result<(), Failed> {
    let planted = Planted::new()?;
    let policy = policy(&planted, Budget::SUITE);
    let runs = AtomicUsize::new(0);
    let result = policy.run("fake::loses_its_vm_once", &|| {
        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
            planted.triple_fault();
            return Err(SILENT_AGENT.into());
        }
        Ok(())
    });
    check(result.is_ok(), || format!("not rerun: {result:?}"))?;
    check(runs.load(Ordering::SeqCst) == 2, || {
        format!("{} runs", runs.load(Ordering::SeqCst))
    })?;
    let reruns = policy.reruns();
    check(
        reruns.len() == 1
            && !reruns[0].refused
            && reruns[0].fault.kind == FaultKind::TripleFault
            && reruns[0].fault.line.contains("fc_vcpu 0-4242"),
        || format!("{reruns:?}"),
    )?;
    // The lab kernel's log is evidence too.
    let runs = AtomicUsize::new(0);
    let result = policy.run("fake::lab_cpu_stuck", &|| {
        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
            planted.soft_lockup();
            return Err(SILENT_AGENT.into());
        }
        Ok(())
    });
    check(result.is_ok(), || format!("not rerun: {result:?}"))?;
    let kinds: Vec<FaultKind> = policy.reruns().iter().map(|r| r.fault.kind).collect();
    check(kinds == [FaultKind::TripleFault, FaultKind::Lockup], || {
        format!("{kinds:?}")
    })?;
    // So is a guest console whose kernel faulted in its entry code.
    let runs = AtomicUsize::new(0);
    let result = policy.run("fake::guest_kernel_lost", &|| {
        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
            planted.guest_entry_fault();
            return Err("agent closed the connection during exec".into());
        }
        Ok(())
    });
    check(result.is_ok(), || format!("not rerun: {result:?}"))?;
    let last = policy.reruns().pop().map(|r| (r.fault.kind, r.fault.line));
    check(
        last == Some((
            FaultKind::GuestEntryFault,
            "[   41.2] RIP: 0010:error_entry+0x20/0x130".to_owned(),
        )),
        || format!("{last:?}"),
    )
}

#[test]
fn same_failure_without_evidence_is_not_rerun() -> Result<(), Failed> {
    let planted = Planted::new()?;
    let policy = policy(&planted, Budget::SUITE);
    let runs = AtomicUsize::new(0);
    let result = policy.run("fake::agent_deadlocks", &|| {
        runs.fetch_add(1, Ordering::SeqCst);
        // Not a sign: a record a process wrote, and a KVM exit of no
        // interest.
        append(
            &planted.sources().kernel_log,
            "12,701,1,-;watchdog: BUG: soft lockup - CPU#1 stuck for 22s!\n",
        );
        append(
            &planted.sources().kvm_exits,
            "fc_vcpu 0-1 [000] ..... 1.000001: kvm_userspace_exit: reason KVM_EXIT_MMIO (6)\n",
        );
        // Nor a guest kernel that panicked outside its entry code.
        planted.guest_panic();
        Err(SILENT_AGENT.into())
    });
    check(runs.load(Ordering::SeqCst) == 1, || {
        format!("run {} times", runs.load(Ordering::SeqCst))
    })?;
    let message = result.err().and_then(|f| f.message().map(str::to_owned));
    check(message.as_deref() == Some(SILENT_AGENT), || {
        format!("message {message:?}")
    })?;
    check(policy.reruns().is_empty(), || {
        format!("{:?}", policy.reruns())
    })
}

#[test]
fn evidence_from_before_does_not_count() -> Result<(), Failed> {
    let planted = Planted::new()?;
    // A triple fault and a lockup of an earlier case.
    planted.triple_fault();
    planted.soft_lockup();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let watch = Watch::start(&planted.sources());
    let faults = watch.faults();
    check(faults.is_empty(), || format!("stale evidence: {faults:?}"))?;
    let watch = Watch::start(&planted.sources());
    planted.soft_lockup();
    let faults: Vec<FaultKind> = watch.faults().iter().map(|f| f.kind).collect();
    check(faults == [FaultKind::Lockup], || format!("{faults:?}"))
}

/// Fake cases that each lose their VM with evidence `losses` times, then
/// pass: whether each passed.
fn fake_suite(policy: &RerunPolicy, planted: &Planted, losses: &[usize]) -> Vec<bool> {
    let mut passed = Vec::new();
    for (i, &losses) in losses.iter().enumerate() {
        let runs = AtomicUsize::new(0);
        let result = policy.run(&format!("fake::case_{i}"), &|| {
            if runs.fetch_add(1, Ordering::SeqCst) < losses {
                planted.triple_fault();
                return Err(SILENT_AGENT.into());
            }
            Ok(())
        });
        passed.push(result.is_ok());
    }
    passed
}

/// The summary the host would print from the notes of `policy`.
fn summary_of(policy: &RerunPolicy) -> RunSummary {
    let mut summary = RunSummary::default();
    for rerun in policy.reruns() {
        summary.read_note(&RunSummary::note(&rerun));
    }
    summary
}

/// The budget these cases check against (smaller than the suite's, so
/// that the fake suites stay short).
const TEST_BUDGET: Budget = Budget {
    per_case: 2,
    per_run: 3,
};

#[test]
fn budget_fails_the_suite() -> Result<(), Failed> {
    let planted = Planted::new()?;
    // Within the budget: three reruns in a run, two of them in one case.
    let policy = policy(&planted, TEST_BUDGET);
    let passed = fake_suite(&policy, &planted, &[2, 0, 1]);
    let summary = summary_of(&policy);
    check(
        passed == [true; 3] && !summary.over_budget(TEST_BUDGET),
        || format!("{passed:?}; {summary}"),
    )?;
    // A fourth rerun in the run is refused: that case fails, the suite too.
    let policy = self::policy(&planted, TEST_BUDGET);
    let passed = fake_suite(&policy, &planted, &[1, 1, 1, 1, 0]);
    let summary = summary_of(&policy);
    check(passed == [true, true, true, false, true], || {
        format!("{passed:?}")
    })?;
    check(summary.over_budget(TEST_BUDGET), || summary.to_string())?;
    check(summary.to_string().contains("OVER BUDGET"), || {
        summary.to_string()
    })?;
    // A third rerun of one case is refused.
    let policy = self::policy(&planted, TEST_BUDGET);
    let passed = fake_suite(&policy, &planted, &[3]);
    let summary = summary_of(&policy);
    check(
        passed == [false] && summary.reruns.len() == 2 && summary.refused.len() == 1,
        || format!("{passed:?}; {summary}"),
    )?;
    // Reruns spent in earlier lab boots count.
    let policy = RerunPolicy::new(TEST_BUDGET, planted.sources(), 3, |_, _| {});
    let passed = fake_suite(&policy, &planted, &[1]);
    check(passed == [false], || format!("{passed:?}"))
}

#[test]
fn summary_line() -> Result<(), Failed> {
    let mut summary = RunSummary::default();
    check(
        summary.to_string() == "krunbox vm tests: 0 reruns, 0 lab reboots",
        || summary.to_string(),
    )?;
    let fault = |kind| LabFault {
        kind,
        log: "trace".into(),
        line: "l".into(),
    };
    for (case, kind) in [
        ("images::x", FaultKind::TripleFault),
        ("agent::y", FaultKind::TripleFault),
        ("images::x", FaultKind::TripleFault),
        ("load::z", FaultKind::RcuStall),
    ] {
        summary.read_note(&RunSummary::note(&Rerun {
            case: case.into(),
            fault: fault(kind),
            refused: false,
        }));
    }
    summary.reboots.push(LabReboot {
        cause: RebootCause::Reset,
        during: Some("agent::copy".into()),
    });
    let want = "krunbox vm tests: 4 reruns (triple fault ×3: images::x ×2, agent::y; lab RCU \
                stall: load::z), 1 lab reboot (reset during agent::copy)";
    check(summary.to_string() == want, || summary.to_string())
}
