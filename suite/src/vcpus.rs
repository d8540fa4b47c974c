//! What the live VMs' vCPUs are doing, seen from the lab's kernel: the
//! evidence of a nested guest that the lab's emulation froze without a
//! triple fault.
//!
//! Under heavy I/O the lab's emulated AMD-V sometimes leaves a nested
//! guest that neither triple-faults nor answers: its agent's pings stop
//! while the runner runs (docs/reliability.md, "The lab's own faults").
//! When a case fails with no other evidence, [`sample`] watches every live
//! runner's vCPU threads for a few seconds, through their CPU time and
//! state in `/proc` and the lab kernel's `kvm:kvm_exit` tracepoint (in a
//! trace instance of its own, filtered on those threads). Two patterns
//! are the emulation's, and only those count:
//!
//! - **frozen**: the vCPU thread runs (state `R` at every look) and burns
//!   CPU the whole window, yet the guest makes no exit to the lab's KVM at
//!   all. A live guest exits at least for the host's timer interrupts; an
//!   idle one halts (the thread sleeps), and a guest whose agent was
//!   stopped or whose kernel halted sleeps too.
//! - **stuck in place**: every exit of the window, a thousand or more, is
//!   one and the same, at one guest instruction, and it is one of two:
//!   - a nested page fault at one guest-physical address: KVM maps the
//!     page on the first; the same fault again means the emulated nested
//!     paging did not take the mapping;
//!   - an interrupt window (`vintr`): KVM asks for one to inject a pending
//!     interrupt, injects it on the exit, and the guest runs its handler;
//!     the same exit again and again at one instruction means the emulated
//!     AMD-V never delivers the event (seen in the lab: 21239 in 3 s).
//!
//!   A guest's own deadlock exits otherwise: a spinning lock takes
//!   `pause` exits and its timer interrupts elsewhere.
//!
//! Anything else (a sleeping vCPU, varied exits) is no evidence: the case
//! fails, and the sample's description goes with its reason.
//!
//! A case that boots a VM of its own drops it, and so kills its runner,
//! before the rerun policy looks. Such a case calls [`watch_before_drop`]
//! when it fails while it still holds the VM (the suite's `explained`
//! does); the policy then judges that sample instead of taking its own.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::evidence::{FaultKind, LabFault, TRACEFS};
use crate::procfs::{clock_ticks, Stat, RUNNER_COMM, VCPU_PREFIX};

/// How long a sample watches.
pub const WINDOW: Duration = Duration::from_secs(3);

/// How often a thread's state is looked at during the window.
const LOOKS: u32 = 12;

/// The trace instance the sample uses, under tracefs.
const INSTANCE: &str = "instances/krunbox-vcpus";

/// The share of the window a frozen vCPU must have spent on a CPU.
const BUSY_SHARE: f64 = 0.8;

/// The fewest exits, all one, that count as stuck in place.
const EXITS_IN_PLACE: usize = 1000;

/// One vCPU thread over the window.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VcpuWatch {
    /// The runner's pid.
    pub runner: u32,
    /// The thread's id.
    pub tid: u32,
    /// Its name (`fc_vcpu 0`).
    pub name: String,
    /// Its state at each look.
    pub states: String,
    /// CPU time used during the window, in clock ticks.
    pub cpu_ticks: u64,
    /// Its exits to the lab's KVM, by `(reason, rip, info2)`.
    pub exits: BTreeMap<(String, String, String), usize>,
}

impl VcpuWatch {
    /// Exits in all.
    pub fn exit_count(&self) -> usize {
        self.exits.values().sum()
    }

    /// What this thread shows of the emulation, if anything.
    pub fn judge(&self, window: Duration, ticks_per_s: f64) -> Option<String> {
        let busy = self.cpu_ticks as f64 / ticks_per_s;
        let running = !self.states.is_empty() && self.states.chars().all(|s| s == 'R');
        if running && busy >= window.as_secs_f64() * BUSY_SHARE && self.exits.is_empty() {
            return Some(format!(
                "ran {busy:.1} s of {:.1} s with no exit to the lab's KVM",
                window.as_secs_f64()
            ));
        }
        // The lab's own interrupts (`interrupt` exits) come whatever the
        // guest does; what counts is every other exit, and that the guest
        // did not move from one instruction.
        let rips: std::collections::BTreeSet<&String> =
            self.exits.keys().map(|(_, rip, _)| rip).collect();
        let mut guest = self.exits.iter().filter(|((r, _, _), _)| r != "interrupt");
        match (guest.next(), guest.next(), rips.len()) {
            (Some(((reason, rip, gpa), &n)), None, 1) if n >= EXITS_IN_PLACE => {
                match reason.as_str() {
                    "npf" => Some(format!(
                        "took the same nested page fault {n} times and nothing else \
                         (rip {rip}, address {gpa})"
                    )),
                    "vintr" => Some(format!(
                        "exited for an interrupt window {n} times at one instruction and \
                         nothing else (rip {rip}): the interrupt KVM injects never lands"
                    )),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// One line for a failure's report.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "runner {} thread {} ({}): states {}, {} ticks of CPU, {} exits",
            self.runner,
            self.tid,
            self.name,
            self.states,
            self.cpu_ticks,
            self.exit_count()
        );
        let mut top: Vec<_> = self.exits.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        for ((reason, rip, info2), n) in top.into_iter().take(4) {
            let _ = write!(line, "; {n}× {reason} rip {rip} info2 {info2}");
        }
        line
    }
}

/// A sample of every live runner's vCPUs.
#[derive(Debug, Default)]
pub struct Sample {
    /// Each vCPU thread.
    pub vcpus: Vec<VcpuWatch>,
    /// Why the exits could not be traced, if they could not.
    pub trace_error: Option<String>,
}

impl Sample {
    /// The evidence it holds: one fault per vCPU the emulation froze.
    pub fn faults(&self) -> Vec<LabFault> {
        if self.trace_error.is_some() {
            return Vec::new();
        }
        let ticks = clock_ticks();
        self.vcpus
            .iter()
            .filter_map(|v| {
                let why = v.judge(WINDOW, ticks)?;
                Some(LabFault {
                    kind: FaultKind::FrozenVcpu,
                    log: instance().join("trace"),
                    line: format!("runner {} {} (thread {}): {why}", v.runner, v.name, v.tid),
                })
            })
            .collect()
    }

    /// Every vCPU, a line each, for a failure's report.
    pub fn describe(&self) -> String {
        let mut text = match &self.trace_error {
            Some(e) => format!("(KVM exits not traced: {e})\n"),
            None => String::new(),
        };
        if self.vcpus.is_empty() {
            text.push_str("(no VM runner was running)");
        }
        let lines: Vec<String> = self.vcpus.iter().map(VcpuWatch::describe).collect();
        text.push_str(&lines.join("\n"));
        text
    }
}

thread_local! {
    /// Whether a rerun policy that watches vCPUs runs the case on this
    /// thread.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// The sample [`watch_before_drop`] took for that case.
    static EARLY: RefCell<Option<Sample>> = const { RefCell::new(None) };
}

/// Watches the live runners now, while the failing case on this thread
/// still holds its VMs, for the rerun policy to judge. Does nothing unless
/// a policy that watches vCPUs runs the case (in the lab).
pub fn watch_before_drop() {
    if !ARMED.get() {
        return;
    }
    let sample = sample();
    if !sample.vcpus.is_empty() {
        EARLY.replace(Some(sample));
    }
}

/// Arms [`watch_before_drop`] on this thread until the guard drops, and
/// forgets any sample an earlier run left.
pub(crate) fn arm() -> Armed {
    ARMED.set(true);
    EARLY.take();
    Armed
}

/// Keeps [`watch_before_drop`] armed on this thread while it lives.
pub(crate) struct Armed;

impl Armed {
    /// The sample the case took before it dropped its VMs, if it did.
    pub(crate) fn take_early(&self) -> Option<Sample> {
        EARLY.take()
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        ARMED.set(false);
        EARLY.take();
    }
}

fn instance() -> PathBuf {
    Path::new(TRACEFS).join(INSTANCE)
}

/// Watches every live runner's vCPU threads for [`WINDOW`].
pub fn sample() -> Sample {
    let mut vcpus = vcpu_threads();
    if vcpus.is_empty() {
        return Sample::default();
    }
    let trace_error = start_trace(&vcpus).err().map(|e| e.to_string());
    let before: Vec<u64> = vcpus
        .iter()
        .map(|v| stat_of(v).map_or(0, |s| s.cpu))
        .collect();
    for _ in 0..LOOKS {
        std::thread::sleep(WINDOW / LOOKS);
        for v in &mut vcpus {
            let state = stat_of(v).and_then(|s| s.state.chars().next());
            v.states.push(state.unwrap_or('?'));
        }
    }
    for (v, before) in vcpus.iter_mut().zip(before) {
        v.cpu_ticks = stat_of(v).map_or(before, |s| s.cpu).saturating_sub(before);
    }
    let _ = std::fs::write(instance().join("events/kvm/kvm_exit/enable"), "0");
    if trace_error.is_none() {
        let trace = std::fs::read_to_string(instance().join("trace")).unwrap_or_default();
        for line in trace.lines() {
            if let Some((tid, key)) = parse_exit(line) {
                if let Some(v) = vcpus.iter_mut().find(|v| v.tid == tid) {
                    *v.exits.entry(key).or_default() += 1;
                }
            }
        }
    }
    Sample { vcpus, trace_error }
}

/// The vCPU threads of every process named like a runner.
fn vcpu_threads() -> Vec<VcpuWatch> {
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let Some(runner) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != RUNNER_COMM {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(entry.path().join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let tid = task.file_name().to_str().and_then(|t| t.parse().ok());
            if let (true, Some(tid)) = (name.starts_with(VCPU_PREFIX), tid) {
                found.push(VcpuWatch {
                    runner,
                    tid,
                    name: name.trim_end().to_owned(),
                    ..VcpuWatch::default()
                });
            }
        }
    }
    found
}

/// Sets up the instance: `kvm_exit` of these threads only, from now on.
fn start_trace(vcpus: &[VcpuWatch]) -> std::io::Result<()> {
    let root = instance();
    if !root.exists() {
        std::fs::create_dir(&root)?;
    }
    let event = root.join("events/kvm/kvm_exit");
    let filter: Vec<String> = vcpus
        .iter()
        .map(|v| format!("common_pid == {}", v.tid))
        .collect();
    std::fs::write(event.join("enable"), "0")?;
    std::fs::write(event.join("filter"), filter.join(" || "))?;
    std::fs::write(root.join("trace"), "")?;
    std::fs::write(event.join("enable"), "1")
}

/// `TASK-TID [CPU] FLAGS STAMP: kvm_exit: vcpu N reason R rip 0x… info1
/// 0x… info2 0x… …` as the thread and `(reason, rip, info2)`.
pub fn parse_exit(line: &str) -> Option<(u32, (String, String, String))> {
    let (head, detail) = line.split_once(": kvm_exit: ")?;
    // The trace pads its columns: `   fc_vcpu 0-116     [000]`.
    let task = head.trim_start().split(" [").next()?.trim_end();
    let tid = task.rsplit_once('-')?.1.parse().ok()?;
    let words: Vec<&str> = detail.split_whitespace().collect();
    let after = |key: &str| {
        let at = words.iter().position(|w| *w == key)?;
        words.get(at + 1).map(|w| (*w).to_owned())
    };
    Some((
        tid,
        (
            after("reason")?,
            after("rip")?,
            after("info2").unwrap_or_default(),
        ),
    ))
}

fn stat_of(v: &VcpuWatch) -> Option<Stat> {
    Stat::read(Path::new(&format!("/proc/{}/task/{}", v.runner, v.tid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vcpu(states: &str, cpu_ticks: u64, exits: &[(&str, &str, &str, usize)]) -> VcpuWatch {
        VcpuWatch {
            runner: 1,
            tid: 2,
            name: "fc_vcpu 0".into(),
            states: states.into(),
            cpu_ticks,
            exits: exits
                .iter()
                .map(|(r, rip, a, n)| (((*r).into(), (*rip).into(), (*a).into()), *n))
                .collect(),
        }
    }

    #[test]
    fn exit_lines_are_parsed() {
        let line =
            "       fc_vcpu 0-234     [001] d....   131.405530: kvm_exit: vcpu 0 reason npf \
                    rip 0xffffffff81a0 info1 0x0000000100000014 info2 0x00000000010a0000 \
                    intr_info 0x00000000 error_code 0x00000000";
        let (tid, (reason, rip, info2)) = parse_exit(line).expect("parsed");
        assert_eq!(tid, 234);
        assert_eq!(reason, "npf");
        assert_eq!(rip, "0xffffffff81a0");
        assert_eq!(info2, "0x00000000010a0000");
        assert!(parse_exit("# tracer: nop").is_none());
        assert!(parse_exit(" x-1 [000] d.... 1.0: kvm_entry: vcpu 0, rip 0x1").is_none());
    }

    #[test]
    fn only_the_emulations_patterns_count() {
        let w = WINDOW;
        let frozen = vcpu("RRRRRRRRRRRR", 290, &[]);
        assert!(frozen.judge(w, 100.0).is_some());
        // Sleeping (halted guest, stopped agent): no evidence.
        assert!(vcpu("SSSSSSSSSSSS", 0, &[]).judge(w, 100.0).is_none());
        // Running but not the whole window.
        assert!(vcpu("RRRRRRSSSSSS", 150, &[]).judge(w, 100.0).is_none());
        // A live guest exits for its interrupts.
        let live = vcpu(
            "RRRRRRRRRRRR",
            290,
            &[("intr", "0xffffffff8100", "0x0", 300)],
        );
        assert!(live.judge(w, 100.0).is_none());
        let in_place = vcpu(
            "RRRRRRRRRRRR",
            290,
            &[("npf", "0xffffffff81a0", "0x10a000", 5000)],
        );
        assert!(in_place.judge(w, 100.0).is_some());
        // A few faults, or faults at several places, are a guest's paging.
        let few = vcpu(
            "RRRRRRRRRRRR",
            290,
            &[("npf", "0xffffffff81a0", "0x10a000", 20)],
        );
        assert!(few.judge(w, 100.0).is_none());
        let no_window = vcpu(
            "RRRRRRRRRRRR",
            35,
            &[("vintr", "0xffffffffc035320c", "0x0", 21239)],
        );
        assert!(no_window.judge(w, 100.0).is_some());
        // Seen in CI: the lab's own interrupts at the same instruction too.
        let with_host_irqs = vcpu(
            "RRRRRRRRRRRR",
            303,
            &[
                ("vintr", "0xffffffffc035120c", "0x0", 21038),
                ("interrupt", "0xffffffffc035120c", "0x0", 143),
            ],
        );
        assert!(with_host_irqs.judge(w, 100.0).is_some());
        // Host interrupts elsewhere: the guest moved.
        let moved = vcpu(
            "RRRRRRRRRRRR",
            303,
            &[
                ("vintr", "0xffffffffc035120c", "0x0", 21038),
                ("interrupt", "0x4011a0", "0x0", 143),
            ],
        );
        assert!(moved.judge(w, 100.0).is_none());
        // A guest spinning on a lock: pause exits at one place are its own.
        let spin = vcpu(
            "RRRRRRRRRRRR",
            290,
            &[("pause", "0xffffffff81a0", "0x0", 5000)],
        );
        assert!(spin.judge(w, 100.0).is_none());
        let varied = vcpu(
            "RRRRRRRRRRRR",
            290,
            &[
                ("npf", "0x1", "0x10a000", 3000),
                ("npf", "0x2", "0x20b000", 3000),
            ],
        );
        assert!(varied.judge(w, 100.0).is_none());
    }
}
