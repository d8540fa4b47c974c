//! A failed case runs again only on evidence, read by the harness itself,
//! that the lab's emulation lost its VM; never on what the failure says.
//!
//! In the nested lab every CPU is emulated (TCG with an emulated AMD-V),
//! and under heavy guest I/O that emulation breaks nested guests now and
//! then, whatever runs in them (docs/reliability.md, "The lab's own
//! faults"). So, inside the lab only, each run of a case is watched
//! ([`Watch`]): a run that fails while the lab's KVM reports a
//! triple fault or an emulation failure to a runner, or while the lab's
//! kernel logs a lockup, an RCU stall or an oops, or while a guest's
//! console shows its kernel faulting inside its own exception entry code
//! ([`crate::guest_console`]), or whose failure finds
//! a live VM's vCPU frozen by the emulation ([`crate::vcpus`]: running
//! without a single exit, or taking one nested page fault or interrupt
//! window over and over at one instruction),
//! is run again, saying so with the evidence. A run must pass on its own.
//! A failure without such evidence fails at once, whatever its message
//! says: an agent that stops answering while its vCPUs sleep or exit as a
//! live guest's do is a failure, as it would be for a user.
//! Outside the lab nothing is run again.
//!
//! Every rerun is counted, sent to the host as a lab note (`rerun CASE
//! KIND`) and shown in the suite's summary line ([`crate::summary`]), and they
//! have a budget, [`Budget::SUITE`]:
//!
//! - at most [`RERUNS_PER_CASE`] reruns of one case: a case that loses
//!   its VM four runs in a row is too heavy for the lab, or the fault is
//!   ours; either way someone must look. (The 64 MiB copy case has lost
//!   its VM to real triple faults in two runs of three: about half of
//!   such VMs are lost, measured in docs/reliability.md.)
//! - at most [`RERUNS_PER_RUN`] reruns in one run of the suite, lab boots
//!   together: a full run needs none to three (the faults hit the few
//!   cases that move many bytes); more means the lab got worse, or a fault
//!   that looks like the lab's is ours, and the suite should say so instead
//!   of absorbing it.
//!
//! A lost VM past the budget fails its case (and so the suite), with every
//! run's reason and evidence; the summary names it.
//!
//! To see a rerun happen: `KRUNBOX_VM_TESTS_LOSE_VM_IN=<case> cargo test
//! --test vm -- <filter>` makes that case's first run, in the lab, boot a
//! VM that triple-faults for real (its kernel told to reset that way) and
//! fail; the lab's KVM trace shows it, the case runs again, and the summary
//! line counts the rerun.

use std::sync::{Mutex, OnceLock};

use libtest_mimic::Failed;

use crate::evidence::{EvidenceSources, LabFault, Watch};
use crate::{notes, vcpus};

/// Most reruns of one case.
pub const RERUNS_PER_CASE: usize = 3;

/// Most reruns in one run of the suite, all lab boots together.
pub const RERUNS_PER_RUN: usize = 5;

/// Reruns spent in the run's earlier lab boots, passed in by the host.
pub const SPENT_VAR: &str = "KRUNBOX_VM_TESTS_RERUNS_SPENT";

/// A case whose first run in the lab loses a VM to a real triple fault.
pub const LOSE_VM_VAR: &str = "KRUNBOX_VM_TESTS_LOSE_VM_IN";

/// How many reruns are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most reruns of one case.
    pub per_case: usize,
    /// Most reruns in one run of the suite.
    pub per_run: usize,
}

impl Budget {
    /// The suite's: [`RERUNS_PER_CASE`] and [`RERUNS_PER_RUN`].
    pub const SUITE: Self = Self {
        per_case: RERUNS_PER_CASE,
        per_run: RERUNS_PER_RUN,
    };
}

/// A run of a case lost to the lab: run again, or refused by the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rerun {
    /// The case's name.
    pub case: String,
    /// The evidence that counts (the first kind in [`FaultKind`] order).
    ///
    /// [`FaultKind`]: crate::evidence::FaultKind
    pub fault: LabFault,
    /// Whether the budget refused it (the case then failed).
    pub refused: bool,
}

/// Runs cases, again when their VM was lost to the lab, within a budget.
pub struct RerunPolicy {
    budget: Budget,
    sources: EvidenceSources,
    /// Reruns granted in earlier lab boots of this run.
    spent_before: usize,
    /// Every rerun granted or refused here.
    ledger: Mutex<Vec<Rerun>>,
    /// Told of each as it is decided, with a line saying so when granted.
    announce: fn(&Rerun, Option<&str>),
}

impl RerunPolicy {
    /// A policy that reads `sources`, allows `budget` less the
    /// `spent_before` reruns of earlier lab boots, and tells `announce` of
    /// each rerun.
    pub fn new(
        budget: Budget,
        sources: EvidenceSources,
        spent_before: usize,
        announce: fn(&Rerun, Option<&str>),
    ) -> Self {
        Self {
            budget,
            sources,
            spent_before,
            ledger: Mutex::new(Vec::new()),
            announce,
        }
    }

    /// The reruns granted and refused so far.
    pub fn reruns(&self) -> Vec<Rerun> {
        self.ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `case` until it passes, fails without evidence of a lab fault,
    /// or loses its VM past the budget.
    pub fn run(&self, name: &str, case: &dyn Fn() -> Result<(), Failed>) -> Result<(), Failed> {
        let mut lost = Vec::new();
        loop {
            let watch = Watch::start(&self.sources);
            let armed = self.sources.watch_vcpus.then(vcpus::arm);
            let Err(failed) = case() else {
                return Ok(());
            };
            let early = armed.and_then(|a| a.take_early());
            let mut reason = failed.message().unwrap_or("failed").to_owned();
            let mut faults = watch.faults();
            if faults.is_empty() && self.sources.watch_vcpus {
                let sample = early.unwrap_or_else(vcpus::sample);
                faults = sample.faults();
                reason.push_str(&format!(
                    "\n--- the live VMs' vCPUs over {} s, as the lab's kernel saw them:\n{}",
                    vcpus::WINDOW.as_secs(),
                    sample.describe()
                ));
            }
            faults.sort_by_key(|f| f.kind);
            let Some(fault) = faults.first().cloned() else {
                return Err(with_earlier(&lost, &reason));
            };
            let evidence: Vec<String> = faults.iter().map(ToString::to_string).collect();
            lost.push(format!(
                "run {} lost its VM to the lab's emulation; evidence:\n  {}\n{reason}",
                lost.len() + 1,
                evidence.join("\n  ")
            ));
            if let Err(refusal) = self.grant(name, fault, lost.len() - 1) {
                return Err(Failed::from(format!("{refusal}:\n{}", lost.join("\n"))));
            }
        }
    }

    /// Grants the rerun of `case` after `fault`, its rerun number
    /// `before + 1`, or says why the budget refuses it.
    fn grant(&self, case: &str, fault: LabFault, before: usize) -> Result<(), Refusal> {
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        let granted = ledger.iter().filter(|r| !r.refused).count() + self.spent_before;
        let Budget { per_case, per_run } = self.budget;
        let refusal = if before >= per_case {
            Some(Refusal::Case {
                runs: before + 1,
                per_case,
            })
        } else if granted >= per_run {
            Some(Refusal::Run { per_run })
        } else {
            None
        };
        let rerun = Rerun {
            case: case.to_owned(),
            fault,
            refused: refusal.is_some(),
        };
        let line = format!(
            "{case}: lost its VM to the lab's emulation: {}; running it again (rerun {} of at \
             most {per_case} for this case, {} of at most {per_run} for the run)",
            rerun.fault,
            before + 1,
            granted + 1
        );
        (self.announce)(&rerun, refusal.is_none().then_some(line.as_str()));
        ledger.push(rerun);
        refusal.map_or(Ok(()), Err)
    }
}

/// Why the budget refuses a rerun.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("lost its VM to the lab's emulation in {runs} runs, past the {per_case} reruns a case may have")]
    Case { runs: usize, per_case: usize },
    #[error("lost its VM to the lab's emulation, but the run's {per_run} reruns are spent")]
    Run { per_run: usize },
}

/// A failure, after the lost runs before it.
fn with_earlier(lost: &[String], reason: &str) -> Failed {
    if lost.is_empty() {
        return Failed::from(reason);
    }
    Failed::from(format!("{reason}\nearlier runs:\n{}", lost.join("\n")))
}

/// The suite's policy in the lab: the lab kernel's evidence, `budget`
/// less what earlier lab boots spent, each rerun sent as a note.
pub(crate) fn lab_policy(budget: Budget) -> &'static RerunPolicy {
    static POLICY: OnceLock<RerunPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let spent = std::env::var(SPENT_VAR)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        RerunPolicy::new(budget, EvidenceSources::lab(), spent, announce)
    })
}

/// Tells the host of `rerun`, and the output when it is granted.
fn announce(rerun: &Rerun, granted: Option<&str>) {
    notes::rerun_decided(rerun);
    if let Some(line) = granted {
        println!("\n{line}");
    }
}
