//! The lab side of the lab's notes: each case's start and end, a
//! heartbeat, the reruns, sent to the host ([`krunbox_lab::note`]), which
//! reads them back in [`crate::boots`].
//!
//! | note | sent when |
//! |---|---|
//! | `case-start NAME` | a case starts |
//! | `case-end NAME ok\|failed SECS` | its last run ended (reruns included) |
//! | `alive` | every [`HEARTBEAT`] |
//! | `rerun NAME KIND`, `rerun-refused NAME KIND` | see [`crate::summary`] |

use std::time::Duration;

use crate::rerun::Rerun;
use crate::summary::RunSummary;

/// How often the suite in the lab tells the host it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(20);

/// Names of cases that ended in earlier lab boots, comma-separated: the
/// lab does not run them again.
pub(crate) const ENDED_VAR: &str = "KRUNBOX_VM_TESTS_ENDED";

/// Which lab boot this is (1, 2, ...), set in the lab.
pub(crate) const BOOT_VAR: &str = "KRUNBOX_VM_TESTS_LAB_BOOT";

/// A case in which the first lab boot resets, to show the lab booted
/// again: `KRUNBOX_VM_TESTS_RESET_LAB_IN=<case> cargo test --test vm`.
pub const RESET_VAR: &str = "KRUNBOX_VM_TESTS_RESET_LAB_IN";

/// Tells the host (inside the lab) that case `name` starts; resets the
/// lab here if [`RESET_VAR`] names the case and this is the first boot.
pub fn case_started(name: &str) {
    send(&format!("case-start {name}"));
    let first_boot = std::env::var(BOOT_VAR).is_ok_and(|b| b == "1");
    if crate::in_lab() && first_boot && std::env::var(RESET_VAR).is_ok_and(|c| c == name) {
        println!("\n{name}: resetting the lab, as {RESET_VAR} asks");
        // What the emulation fault does: an immediate reset, no clean-up.
        if let Err(e) = std::fs::write("/proc/sysrq-trigger", "b") {
            eprintln!("{}: could not reset the lab: {e}", crate::SUITE);
        }
    }
}

/// Tells the host (inside the lab) that case `name` ended after `took`
/// (its reruns included).
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
        eprintln!(
            "{}: could not send the lab note {note:?}: {e}",
            crate::SUITE
        );
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
