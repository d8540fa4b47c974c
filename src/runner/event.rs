//! What the runner tells its parent, one JSON line each on fd 3.

use serde::{Deserialize, Serialize};

/// A step of the runner, stamped with the monotonic clock (shared by all
/// processes of the host, so the parent can subtract its own stamps).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunnerEvent {
    /// libkrun is configured.
    Configured {
        /// CLOCK_MONOTONIC, microseconds.
        at_us: u64,
    },
    /// `krun_start_enter` is about to be called.
    Entering {
        /// CLOCK_MONOTONIC, microseconds.
        at_us: u64,
    },
    /// What the runner applied to itself (sent before `Entering`).
    Confined(super::confine::ConfinementReport),
    /// The runner could not start the VM.
    Failed(RunnerFailure),
}

/// Why the runner could not start the VM. It crosses a process boundary,
/// so the cause travels as its parts: the failed call and its errno.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RunnerFailure {
    /// What failed, e.g. "krun_set_root failed" or "bad runner config".
    pub message: String,
    /// The errno, when a call failed with one.
    pub errno: Option<i32>,
}

/// Now on CLOCK_MONOTONIC, in microseconds.
pub fn monotonic_us() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_single_json_lines() {
        let event = RunnerEvent::Failed(RunnerFailure {
            message: "krun_set_root failed".into(),
            errno: Some(2),
        });
        let line = serde_json::to_string(&event).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<RunnerEvent>(&line).unwrap(), event);
    }

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_us();
        let b = monotonic_us();
        assert!(b >= a);
    }
}
