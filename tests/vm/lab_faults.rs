//! Cases that lose their VM to the lab's emulation run once more, saying so.
//!
//! In the nested lab every CPU is emulated (TCG with an emulated AMD-V),
//! and under heavy guest I/O that emulation breaks nested guests now and
//! then, whatever runs in them: measured with 64 MiB copies in and out of
//! a named VM (see docs/reliability.md), about half the VMs either
//! triple-faulted (libkrun logs `Received KVM_EXIT_SHUTDOWN` and the VM
//! is gone) or stopped answering altogether (not even a new exec got an
//! answer in 6 minutes), and once the lab's own kernel died in its KVM
//! module. The same happened with `-cpu EPYC`, single-threaded TCG, the
//! 6.12 kernel and without several emulated SVM features.
//!
//! So, inside the lab only, a case whose failure shows either sign is run
//! again (at most four runs in all), and the harness prints that it did
//! and why. A run must pass on its own; a case that fails otherwise, or
//! loses its VM in every run, fails with every reason. Outside the lab
//! nothing is retried.

use std::panic;

use libtest_mimic::{Failed, Trial};

use crate::lab_boots;

use crate::post_mortem::STILL_RUNNING;
use crate::support::in_lab;

/// What libkrun logs when the guest triple-faulted (quoted by post
/// mortems and by boot failures).
const TRIPLE_FAULT: &str = "KVM_EXIT_SHUTDOWN";

/// Most runs of one case in the lab: a case is run again only while its
/// runs end in lab faults.
const RUNS: usize = 4;

/// A case that, inside the lab, runs again after a lab fault (a triple
/// fault, or an agent that stopped answering or fell silent past its
/// liveness timeout while its runner still ran), at most [`RUNS`] runs in
/// all.
///
/// In the lab, the host is told when the case starts and ends (see
/// `lab_boots`), panics included.
pub fn trial(name: &'static str, case: fn() -> Result<(), Failed>) -> Trial {
    Trial::test(name, move || {
        lab_boots::case_started(name);
        let result = panic::catch_unwind(|| runs(name, case));
        lab_boots::case_ended(name, matches!(result, Ok(Ok(()))));
        result.unwrap_or_else(|payload| panic::resume_unwind(payload))
    })
}

/// Runs `case` until it passes, fails other than by a lab fault, or has
/// run [`RUNS`] times.
fn runs(name: &str, case: fn() -> Result<(), Failed>) -> Result<(), Failed> {
    let mut lost = Vec::new();
    loop {
        let Err(failed) = case() else {
            return Ok(());
        };
        let reason = failed.message().unwrap_or("failed").to_owned();
        let Some(sign) = lab_fault(&reason) else {
            return Err(with_earlier(&lost, reason));
        };
        lost.push(format!("run {} ({sign}):\n{reason}", lost.len() + 1));
        if lost.len() == RUNS {
            return Err(Failed::from(format!(
                "lost its VM to the lab's emulation in all {RUNS} runs:\n{}",
                lost.join("\n")
            )));
        }
        println!("\n{name}: lost its VM to the lab's emulation ({sign}); running it again");
    }
}

/// A failure, after the lab faults of the runs before it.
fn with_earlier(lost: &[String], reason: String) -> Failed {
    if lost.is_empty() {
        return Failed::from(reason);
    }
    Failed::from(format!("{reason}\nearlier runs:\n{}", lost.join("\n")))
}

/// Which sign of a lab fault a failure shows, if any, inside the lab.
fn lab_fault(reason: &str) -> Option<&'static str> {
    if !in_lab() {
        return None;
    }
    if reason.contains(TRIPLE_FAULT) {
        return Some("the nested guest triple-faulted");
    }
    let silent = (reason.contains("no answer from the agent within")
        || reason.contains("the agent is gone"))
        && reason.contains(STILL_RUNNING);
    silent.then_some("the nested guest stopped answering while its runner ran")
}
