//! What `/proc` says of a process or thread, as the post mortem and the
//! vCPU watch read it.

use std::path::Path;

/// The name a VM's runner process goes by (libkrun names it so when the
/// runner has no `HOSTNAME`, which it never has).
pub(crate) const RUNNER_COMM: &str = "libkrun VM";

/// The prefix of a runner's vCPU threads' names (`fc_vcpu 0`).
pub(crate) const VCPU_PREFIX: &str = "fc_vcpu";

/// What `/proc/PID/stat` (or a thread's) says of a process.
pub(crate) struct Stat {
    /// Its name.
    pub comm: String,
    /// Its state letter (`R`, `S`, `D`, …).
    pub state: String,
    /// User and system CPU time, in clock ticks.
    pub cpu: u64,
}

impl Stat {
    /// Reads `stat` under `dir` (`/proc/PID` or `/proc/PID/task/TID`).
    pub fn read(dir: &Path) -> Option<Self> {
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // "pid (comm) state ppid … utime(14) stime(15)": comm may hold spaces.
        let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let cpu = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        Some(Self {
            comm: comm.to_owned(),
            state: fields.first()?.to_string(),
            cpu,
        })
    }
}

/// Clock ticks per second, the unit of CPU times in `/proc`.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}
