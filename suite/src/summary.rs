//! The suite's last line: the reruns and lab reboots a run needed, with
//! their evidence, and whether they passed the budget.
//!
//! ```text
//! krunbox vm tests: 2 reruns (triple fault ×2: images::x, agent::y), 1 lab reboot (reset during load::z)
//! ```
//!
//! The host builds it from the lab's notes (`rerun CASE KIND`, `rerun-refused
//! CASE KIND`, sent by [`crate::rerun`]) and from the lab boots it saw end.

use std::collections::BTreeMap;
use std::fmt;

use crate::evidence::FaultKind;
use crate::rerun::{Budget, Rerun};
use crate::SUITE;

/// Why the host booted the lab again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootCause {
    /// QEMU exited without the lab's exit status: its kernel reset.
    Reset,
    /// No note for the silence limit: the lab hung.
    Hang,
}

/// One lab boot that died, and the case it died in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabReboot {
    /// How the lab died.
    pub cause: RebootCause,
    /// The case that had started and not ended, if any.
    pub during: Option<String>,
}

/// The reruns and lab reboots of one run of the suite.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Reruns granted: the case and what the evidence showed.
    pub reruns: Vec<(String, FaultKind)>,
    /// Reruns the budget refused (their cases failed).
    pub refused: Vec<(String, FaultKind)>,
    /// The lab boots that died before the last.
    pub reboots: Vec<LabReboot>,
}

impl RunSummary {
    /// The note that tells the host of `rerun`.
    pub fn note(rerun: &Rerun) -> String {
        let word = if rerun.refused {
            "rerun-refused"
        } else {
            "rerun"
        };
        format!("{word} {} {}", rerun.case, rerun.fault.kind.tag())
    }

    /// Takes in one note, if it is about a rerun.
    pub fn read_note(&mut self, note: &str) {
        let mut words = note.split(' ');
        let list = match words.next() {
            Some("rerun") => &mut self.reruns,
            Some("rerun-refused") => &mut self.refused,
            _ => return,
        };
        if let (Some(case), Some(kind), None) = (
            words.next(),
            words.next().and_then(FaultKind::from_tag),
            words.next(),
        ) {
            list.push((case.to_owned(), kind));
        }
    }

    /// Whether the run needed more reruns than `budget` allows.
    pub fn over_budget(&self, budget: Budget) -> bool {
        !self.refused.is_empty() || self.reruns.len() > budget.per_run
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.reruns.len();
        write!(f, "{SUITE}: {n} rerun{}", plural(n))?;
        if n > 0 {
            write!(f, " ({})", by_kind(&self.reruns))?;
        }
        let n = self.reboots.len();
        write!(f, ", {n} lab reboot{}", plural(n))?;
        if n > 0 {
            let reboots: Vec<String> = self.reboots.iter().map(ToString::to_string).collect();
            write!(f, " ({})", reboots.join(", "))?;
        }
        if !self.refused.is_empty() {
            let Budget { per_case, per_run } = crate::run::settings().budget;
            write!(
                f,
                "; OVER BUDGET (at most {per_run} reruns a run, {per_case} a case), not \
                 rerun: {}",
                by_kind(&self.refused)
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for LabReboot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = match self.cause {
            RebootCause::Reset => "reset",
            RebootCause::Hang => "hung",
        };
        match &self.during {
            Some(case) => write!(f, "{cause} during {case}"),
            None => write!(f, "{cause} between cases"),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `triple fault ×3: a ×2, b; lab CPU lockup: c`, cases in the order
/// they were first named.
fn by_kind(list: &[(String, FaultKind)]) -> String {
    let mut kinds: BTreeMap<FaultKind, Vec<(&str, usize)>> = BTreeMap::new();
    for (case, kind) in list {
        let cases = kinds.entry(*kind).or_default();
        match cases.iter_mut().find(|(name, _)| name == case) {
            Some((_, n)) => *n += 1,
            None => cases.push((case, 1)),
        }
    }
    let parts: Vec<String> = kinds
        .into_iter()
        .map(|(kind, cases)| {
            let total: usize = cases.iter().map(|(_, n)| n).sum();
            let cases: Vec<String> = cases
                .into_iter()
                .map(|(name, n)| format!("{name}{}", times(n)))
                .collect();
            format!("{kind}{}: {}", times(total), cases.join(", "))
        })
        .collect();
    parts.join("; ")
}

/// ` ×n` when `n` is more than one.
fn times(n: usize) -> String {
    if n > 1 {
        format!(" ×{n}")
    } else {
        String::new()
    }
}
