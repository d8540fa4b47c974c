//! Evidence, read by the harness itself, that the lab's emulation lost a
//! VM: the only thing that lets a failed case run again ([`crate::rerun`]).
//!
//! Two sources, both the lab's own kernel, both read directly:
//!
//! - **KVM's exits to the VMs' runners**: the lab kernel's tracepoint
//!   `kvm:kvm_userspace_exit`, enabled by [`enable_kvm_exit_trace`] with
//!   a filter that keeps only `KVM_EXIT_SHUTDOWN` (8: the nested guest
//!   triple-faulted) and `KVM_EXIT_INTERNAL_ERROR` (17: KVM could not
//!   emulate what the guest did), on the `mono` clock, read from tracefs'
//!   `trace`. It records every VM, the one-shot ones too (which do not
//!   log), and outlives the VM's private directory, which its handle
//!   removes with the runner's log before the harness gets control back.
//!   A guest that reboots, powers off, panics or whose agent is killed
//!   ends through libkrun's reset or exit paths, not these exits (checked
//!   in the lab).
//! - **the lab kernel's log** (`/dev/kmsg`), records of the kernel facility
//!   only: a soft or hard lockup, an RCU stall, an oops. Nothing krunbox
//!   runs can write those; a userspace process that writes `/dev/kmsg`
//!   gets the user facility.
//!
//! A [`Watch`] covers one run of a case: trace lines stamped after it
//! started, kernel records logged after it started. Nothing here looks at
//! a failure's message: a case that fails with "no answer from the agent"
//! and no evidence fails.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::guest_console::Marks;

/// Where the lab's tracefs is mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// The lab kernel's log.
pub const KERNEL_LOG: &str = "/dev/kmsg";

/// The tracepoint of KVM's exits to userspace, under tracefs' `events`.
const EXIT_EVENT: &str = "events/kvm/kvm_userspace_exit";

/// The tracepoint's filter: the two exits below, not failed `KVM_RUN`s.
const EXIT_FILTER: &str = "(reason == 8 || reason == 17) && errno == 0";

/// KVM's `exit_reason` for a triple fault (`KVM_EXIT_SHUTDOWN`).
const EXIT_SHUTDOWN: u32 = 8;

/// KVM's `exit_reason` for an instruction it could not emulate
/// (`KVM_EXIT_INTERNAL_ERROR`).
const EXIT_INTERNAL_ERROR: u32 = 17;

/// What the lab's emulation did to a VM, as its evidence shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// The lab's KVM returned `KVM_EXIT_SHUTDOWN` to a runner.
    TripleFault,
    /// The lab's KVM returned `KVM_EXIT_INTERNAL_ERROR` to a runner.
    EmulationFailure,
    /// The lab's kernel found a CPU stuck (soft or hard lockup).
    Lockup,
    /// The lab's kernel found an RCU grace period stalled.
    RcuStall,
    /// The lab's kernel oopsed.
    KernelOops,
    /// A live VM's vCPU ran without exits, or took one nested page fault
    /// or one interrupt window over and over at one instruction, as the
    /// lab's kernel saw it ([`crate::vcpus`]).
    FrozenVcpu,
    /// The guest's kernel faulted inside its own exception entry code, as
    /// its console shows ([`crate::guest_console`]).
    GuestEntryFault,
}

impl FaultKind {
    /// Every kind, for parsing tags.
    const ALL: [Self; 7] = [
        Self::TripleFault,
        Self::EmulationFailure,
        Self::Lockup,
        Self::RcuStall,
        Self::KernelOops,
        Self::FrozenVcpu,
        Self::GuestEntryFault,
    ];

    /// One word, for lab notes.
    pub fn tag(self) -> &'static str {
        match self {
            Self::TripleFault => "triple-fault",
            Self::EmulationFailure => "emulation-failure",
            Self::Lockup => "lockup",
            Self::RcuStall => "rcu-stall",
            Self::KernelOops => "kernel-oops",
            Self::FrozenVcpu => "frozen-vcpu",
            Self::GuestEntryFault => "guest-entry-fault",
        }
    }

    /// The kind a [`tag`](Self::tag) names.
    pub fn from_tag(tag: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag() == tag)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TripleFault => "triple fault",
            Self::EmulationFailure => "KVM emulation failure",
            Self::Lockup => "lab CPU lockup",
            Self::RcuStall => "lab RCU stall",
            Self::KernelOops => "lab kernel oops",
            Self::FrozenVcpu => "vCPU frozen by the emulation",
            Self::GuestEntryFault => "guest kernel faulted in its entry code",
        })
    }
}

/// One piece of evidence: what it shows, where it was read, the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabFault {
    /// What it shows.
    pub kind: FaultKind,
    /// The file it was read from.
    pub log: PathBuf,
    /// The line as read.
    pub line: String,
}

impl fmt::Display for LabFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}: {})", self.kind, self.log.display(), self.line)
    }
}

/// Where the evidence is read: the lab's, or files a test plants.
#[derive(Debug, Clone)]
pub struct EvidenceSources {
    /// tracefs' `trace`, holding the filtered KVM exits.
    pub kvm_exits: PathBuf,
    /// The kernel log: `/dev/kmsg`, or a file of records in its format.
    pub kernel_log: PathBuf,
    /// Whether a failure with no evidence in the two files above has the
    /// live VMs' vCPUs watched ([`crate::vcpus`]): the lab's, not a test's.
    pub watch_vcpus: bool,
    /// The directory of the cases' guest consoles
    /// ([`crate::guest_console`]), if they keep them there.
    pub guest_consoles: Option<PathBuf>,
}

impl EvidenceSources {
    /// The lab kernel's own.
    pub fn lab() -> Self {
        Self {
            kvm_exits: Path::new(TRACEFS).join("trace"),
            kernel_log: PathBuf::from(KERNEL_LOG),
            watch_vcpus: true,
            guest_consoles: Some(crate::guest_console::dir()),
        }
    }
}

/// Why the KVM exit trace could not be enabled.
#[derive(Debug, thiserror::Error)]
pub enum TraceSetupError {
    /// tracefs was not mounted and could not be.
    #[error("could not mount tracefs at {TRACEFS}")]
    Mount(#[source] io::Error),
    /// A tracefs file refused its setting.
    #[error("could not write {value:?} to {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: &'static str,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

/// Enables the trace of KVM's triple-fault and internal-error exits on
/// the `mono` clock (inside the lab, as root), mounting tracefs if needed.
pub fn enable_kvm_exit_trace() -> Result<(), TraceSetupError> {
    let root = Path::new(TRACEFS);
    if !root.join("trace").exists() {
        mount_tracefs().map_err(TraceSetupError::Mount)?;
    }
    let event = root.join(EXIT_EVENT);
    for (path, value) in [
        (root.join("trace_clock"), "mono"),
        (event.join("filter"), EXIT_FILTER),
        (event.join("enable"), "1"),
    ] {
        std::fs::write(&path, value).map_err(|source| TraceSetupError::Write {
            path,
            value,
            source,
        })?;
    }
    // Reading `trace` pauses the ring buffer by default: an exit at that
    // moment would be lost. (Kernels before 5.11 have no such option.)
    let _ = std::fs::write(root.join("options/pause-on-trace"), "0");
    Ok(())
}

fn mount_tracefs() -> io::Result<()> {
    let none = c"nodev";
    let target = c"/sys/kernel/tracing";
    let fstype = c"tracefs";
    // SAFETY: every pointer is a NUL-terminated string that outlives the
    // call; no data argument.
    let rc = unsafe {
        libc::mount(
            none.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The time on `CLOCK_MONOTONIC`, the clock of the trace's stamps.
pub fn monotonic_now() -> Duration {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable");
    Duration::new(
        u64::try_from(now.tv_sec()).unwrap_or(0),
        u32::try_from(now.tv_nsec()).unwrap_or(0),
    )
}

/// Evidence produced from now on, until [`Watch::faults`].
#[derive(Debug)]
pub struct Watch {
    sources: EvidenceSources,
    since: Duration,
    /// The kernel log, positioned after its last record at the start.
    kernel_log: Option<File>,
    /// How long each guest console was at the start.
    consoles: Marks,
}

impl Watch {
    /// Starts watching `sources`. A source that cannot be read yields no
    /// evidence: the case then fails on its first run.
    pub fn start(sources: &EvidenceSources) -> Self {
        let kernel_log = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&sources.kernel_log)
            .and_then(|mut file| file.seek(SeekFrom::End(0)).map(|_| file))
            .ok();
        // The trace's stamps have microseconds.
        let now = monotonic_now();
        Self {
            sources: sources.clone(),
            since: Duration::new(now.as_secs(), now.subsec_micros() * 1000),
            kernel_log,
            consoles: Marks::take(sources.guest_consoles.as_deref()),
        }
    }

    /// The evidence produced since [`Watch::start`].
    pub fn faults(self) -> Vec<LabFault> {
        let mut faults = Vec::new();
        if let Ok(trace) = std::fs::read_to_string(&self.sources.kvm_exits) {
            faults.extend(
                trace
                    .lines()
                    .filter_map(KvmExit::parse)
                    .filter(|exit| exit.stamp >= self.since)
                    .filter_map(|exit| exit.fault(&self.sources.kvm_exits)),
            );
        }
        if let Some(mut log) = self.kernel_log {
            faults.extend(read_records(&mut log).iter().filter_map(|record| {
                kernel_sign(record).map(|(kind, line)| LabFault {
                    kind,
                    log: self.sources.kernel_log.clone(),
                    line: line.to_owned(),
                })
            }));
        }
        faults.extend(self.consoles.faults());
        faults
    }

    /// Every kernel log record since [`Watch::start`], of any facility
    /// (for checking the reading itself).
    pub fn kernel_records(self) -> Vec<String> {
        self.kernel_log
            .map(|mut log| read_records(&mut log))
            .unwrap_or_default()
    }
}

/// One line of the KVM exit trace.
#[derive(Debug, PartialEq, Eq)]
struct KvmExit<'a> {
    line: &'a str,
    stamp: Duration,
    reason: u32,
}

impl<'a> KvmExit<'a> {
    /// Parses `TASK-PID [CPU] FLAGS SECS.MICROS: kvm_userspace_exit:
    /// reason NAME (N)`; comments and other events are `None`.
    fn parse(line: &'a str) -> Option<Self> {
        let (head, detail) = line.split_once(": kvm_userspace_exit: reason ")?;
        let stamp = head.split_whitespace().next_back()?;
        let (secs, fraction) = stamp.split_once('.')?;
        // Microseconds on the `mono` clock; any number of digits taken.
        let digits = fraction.len().min(9);
        let nanos: u32 = fraction.get(..digits)?.parse().ok()?;
        let stamp = Duration::new(secs.parse().ok()?, nanos * 10u32.pow(9 - digits as u32));
        // `NAME (N)`: with an error, NAME is "error" or "restart" and N
        // the errno; the filter keeps those out, and so does this.
        let (name, code) = detail.trim_end().split_once(" (")?;
        let reason = code.strip_suffix(')')?.parse().ok()?;
        name.starts_with("KVM_EXIT_").then_some(Self {
            line: line.trim(),
            stamp,
            reason,
        })
    }

    fn fault(&self, log: &Path) -> Option<LabFault> {
        let kind = match self.reason {
            EXIT_SHUTDOWN => FaultKind::TripleFault,
            EXIT_INTERNAL_ERROR => FaultKind::EmulationFailure,
            _ => return None,
        };
        Some(LabFault {
            kind,
            log: log.to_owned(),
            // The trace pads its columns.
            line: self.line.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }
}

/// Which sign of a lost VM a kernel log record shows, with its message:
/// records of the kernel facility only (`prio,seq,usec,flags;message`,
/// facility 0 when `prio` < 8).
fn kernel_sign(record: &str) -> Option<(FaultKind, &str)> {
    let (fields, message) = record.split_once(';')?;
    let prio: u32 = fields.split(',').next()?.parse().ok()?;
    if prio >= 8 {
        return None;
    }
    let message = message.trim();
    let kind = if message.contains("soft lockup") || message.contains("hard LOCKUP") {
        FaultKind::Lockup
    } else if message.starts_with("rcu: INFO:") && message.contains("detected") {
        FaultKind::RcuStall
    } else if [
        "Oops:",
        "BUG: ",
        "general protection fault",
        "kernel BUG at",
    ]
    .iter()
    .any(|start| message.starts_with(start))
    {
        FaultKind::KernelOops
    } else {
        return None;
    };
    Some((kind, message))
}

/// The records readable from `log` now: one per read on `/dev/kmsg`, one
/// per line in a plain file; continuation lines (` KEY=value`) dropped.
pub fn read_records(log: &mut File) -> Vec<String> {
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    loop {
        match log.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            // A record overwritten while we read: go on with the next one.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            // EAGAIN: no more records.
            Err(_) => break,
        }
    }
    text.lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trace lines: exits of interest, others, comments, errors.
    fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(why())
        }
    }

    #[test]
    fn kvm_exit_lines_are_parsed() -> Result<(), String> {
        let shutdown =
            "  fc_vcpu 0-119  [000] .....    13.954806: kvm_userspace_exit: reason KVM_EXIT_SHUTDOWN (8)";
        let exit = KvmExit::parse(shutdown).ok_or("the triple fault line did not parse")?;
        check(exit.stamp == Duration::from_micros(13_954_806), || {
            format!("stamp {:?}", exit.stamp)
        })?;
        let nanos = "x-1 [000] ..... 2.500000001: kvm_userspace_exit: reason KVM_EXIT_SHUTDOWN (8)";
        let stamp = KvmExit::parse(nanos).map(|e| e.stamp);
        check(stamp == Some(Duration::new(2, 500_000_001)), || {
            format!("stamp {stamp:?}")
        })?;
        let fault = exit.fault(Path::new("trace")).ok_or("no fault")?;
        check(fault.kind == FaultKind::TripleFault, || format!("{fault}"))?;
        let internal =
            "x-1 [001] d.... 2.5: kvm_userspace_exit: reason KVM_EXIT_INTERNAL_ERROR (17)";
        let kind = KvmExit::parse(internal).and_then(|e| e.fault(Path::new("t")));
        check(
            kind.as_ref().map(|f| f.kind) == Some(FaultKind::EmulationFailure),
            || format!("{kind:?}"),
        )?;
        for other in [
            "# tracer: nop",
            "x-1 [000] ..... 2.5: kvm_userspace_exit: reason KVM_EXIT_MMIO (6)",
            "x-1 [000] ..... 2.5: kvm_userspace_exit: reason error (8)",
            "x-1 [000] ..... 2.5: kvm_exit: reason KVM_EXIT_SHUTDOWN (8)",
        ] {
            let fault = KvmExit::parse(other).and_then(|e| e.fault(Path::new("t")));
            check(fault.is_none(), || format!("{other:?} taken for {fault:?}"))?;
        }
        Ok(())
    }

    /// Kernel records: the signs, of the kernel facility only.
    #[test]
    fn kernel_records_are_classified() -> Result<(), String> {
        let cases = [
            (
                "0,812,9000,-;watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [krunbox:301]",
                Some(FaultKind::Lockup),
            ),
            (
                "3,813,9100,-;rcu: INFO: rcu_preempt self-detected stall on CPU",
                Some(FaultKind::RcuStall),
            ),
            (
                "4,814,9200,-;BUG: unable to handle page fault for address: 0000",
                Some(FaultKind::KernelOops),
            ),
            (
                "4,815,9300,-;kvm [116]: vcpu0, guest rIP: 0xffffffff81004b5c Unhandled WRMSR(0xc0010007) = 0xffff",
                None,
            ),
            // Written to /dev/kmsg by a process: the user facility.
            ("12,816,9400,-;watchdog: BUG: soft lockup - CPU#1", None),
            ("garbage", None),
        ];
        for (record, want) in cases {
            let got = kernel_sign(record).map(|(kind, _)| kind);
            check(got == want, || {
                format!("{record:?}: {got:?}, wanted {want:?}")
            })?;
        }
        Ok(())
    }
}
