//! [`BootPhases`]: a boot's phases, every one in host time, that add up.
//!
//! A [`BootTimeline`] mixes two clocks: the host's (runner spawned,
//! libkrun configured, `krun_start_enter`, hello accepted) and the
//! guest's uptime (agent started, hello sent), which starts only when the
//! guest kernel sets up its clock. The time between `krun_start_enter`
//! and the guest's clock zero (libkrun building the VM, loading the
//! kernel, the kernel's earliest boot) was in no phase. With the guest's
//! clock placed on the host's ([`GuestClock`]), every boundary is a host
//! time and the phases are consecutive: they sum to the total.

use std::fmt;
use std::time::Duration;

use super::timeline::BootTimeline;
use crate::client::GuestClock;

/// The phases of one boot, consecutive, in host time: they sum to
/// [`BootPhases::total`] (runner spawned → hello accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootPhases {
    /// Runner spawned → libkrun configured: the process starting, its
    /// configuration, libkrun's context and devices.
    pub configure: Duration,
    /// libkrun configured → `krun_start_enter` called: the runner fencing
    /// itself in (cgroup, user, Landlock, seccomp).
    pub enter: Duration,
    /// `krun_start_enter` → the guest's clock starts: libkrun creating the
    /// VM (memory, vCPUs, devices, the kernel loaded) and the kernel's
    /// earliest boot, before its timekeeping.
    pub before_guest_clock: Duration,
    /// Of [`Self::before_guest_clock`], the part until libkrun started the
    /// first vCPU thread (building the VM: memory, devices, the kernel
    /// loaded); the rest is that vCPU running the kernel's earliest boot.
    /// From `/proc`'s thread start times, to 10 ms; `None` where they
    /// could not be read.
    pub before_vcpu: Option<Duration>,
    /// The guest's clock starts → the agent process started: the kernel's
    /// boot and libkrun's init.
    pub kernel_and_init: Duration,
    /// The agent started → it sent its hello (listening, announcing).
    pub agent: Duration,
    /// The hello sent → the host accepted it (vsock to the host's socket).
    pub hello: Duration,
    /// Runner spawned → the hello accepted: the sum of the phases.
    pub total: Duration,
    /// How far a boundary placed by the guest's clock may be off: half
    /// the round trip that placed it.
    pub error: Duration,
    /// The most a boundary was moved to keep the phases in order (a
    /// guest-clock boundary that fell, within the error, before the one
    /// before it or after the hello's acceptance). Beyond [`Self::error`]
    /// the clocks disagree.
    pub adjusted: Duration,
}

impl BootPhases {
    /// The phases of `timeline`, with the guest's clock at `clock`; `None`
    /// when the timeline lacks a stamp (a VM this process attached to).
    pub(crate) fn of(timeline: &BootTimeline, clock: &GuestClock) -> Option<Self> {
        let configured = timeline.configured?;
        let entered = timeline.entered?.max(configured);
        let ready = timeline.ready?;
        let zero = Duration::from_micros(clock.zero_us.checked_sub(timeline.spawned_us())?);
        let mut adjusted = Duration::ZERO;
        let mut place = |at: Duration, after: Duration| {
            let placed = at.clamp(after, ready.max(after));
            adjusted = adjusted.max(placed.abs_diff(at));
            placed
        };
        let zero = place(zero, entered);
        let started = place(zero + timeline.agent_started_uptime?, zero);
        let hello = place(zero + timeline.agent_hello_uptime?, started);
        let before_guest_clock = zero - entered;
        Some(Self {
            configure: configured,
            enter: entered - configured,
            before_guest_clock,
            before_vcpu: timeline
                .vcpu_started
                .map(|at| at.saturating_sub(entered).min(before_guest_clock)),
            kernel_and_init: started - zero,
            agent: hello - started,
            hello: ready.saturating_sub(hello),
            total: ready,
            error: clock.error,
            adjusted,
        })
    }

    /// The phases with their names, in order.
    pub fn named(&self) -> [(&'static str, Duration); 6] {
        [
            ("configure", self.configure),
            ("enter", self.enter),
            ("before_guest_clock", self.before_guest_clock),
            ("kernel_and_init", self.kernel_and_init),
            ("agent", self.agent),
            ("hello", self.hello),
        ]
    }
}

/// One phase's percentiles over many boots ([`BootPhases::percentiles`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhasePercentiles {
    /// The phase's name, as [`BootPhases::named`] gives it, or
    /// `before_vcpu` or `total`.
    pub phase: &'static str,
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl BootPhases {
    /// P50, P95 and P99 (nearest rank) of each phase and of the total over
    /// `boots`, in phase order; empty without boots. `before_vcpu` follows
    /// `before_guest_clock` when every boot has it.
    pub fn percentiles(boots: &[BootPhases]) -> Vec<PhasePercentiles> {
        let Some(first) = boots.first() else {
            return Vec::new();
        };
        let mut rows: Vec<(&'static str, Vec<Duration>)> = Vec::new();
        for (i, (phase, _)) in first.named().iter().enumerate() {
            rows.push((phase, boots.iter().map(|b| b.named()[i].1).collect()));
            let vcpu: Option<Vec<Duration>> = boots.iter().map(|b| b.before_vcpu).collect();
            if let (&"before_guest_clock", Some(vcpu)) = (phase, vcpu) {
                rows.push(("before_vcpu", vcpu));
            }
        }
        rows.push(("total", boots.iter().map(|b| b.total).collect()));
        rows.into_iter()
            .map(|(phase, mut values)| {
                values.sort();
                let rank = |q| nearest_rank(&values, q).unwrap_or_default();
                PhasePercentiles {
                    phase,
                    p50: rank(0.5),
                    p95: rank(0.95),
                    p99: rank(0.99),
                }
            })
            .collect()
    }
}

impl fmt::Display for BootPhases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        for (name, took) in self.named() {
            writeln!(f, "{name:<20} {:>9.1} ms", ms(took))?;
            if let (true, Some(before)) = (name == "before_guest_clock", self.before_vcpu) {
                writeln!(
                    f,
                    "  before the vCPU   {:>9.1} ms (libkrun building the VM)",
                    ms(before)
                )?;
                let rest = self.before_guest_clock.saturating_sub(before);
                writeln!(
                    f,
                    "  vCPU running      {:>9.1} ms (the kernel's earliest boot)",
                    ms(rest)
                )?;
            }
        }
        write!(
            f,
            "{:<20} {:>9.1} ms (guest clock placed within ±{:.1} ms)",
            "total",
            ms(self.total),
            ms(self.error)
        )
    }
}

/// The `q` quantile (0 to 1) of `sorted` by the nearest-rank rule: the
/// smallest value with at least `q` of the values at or below it. `None`
/// when `sorted` is empty. The bench's summaries use the same rule.
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let index = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(index.clamp(1, sorted.len().max(1)) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use krunbox_proto::Hello;

    fn timeline(started_ms: u64, hello_ms: u64, ready_us: u64) -> BootTimeline {
        let mut t = BootTimeline::spawned(1_000_000);
        t.runner_started((1_002_000, 1_003_000));
        let hello = Hello {
            protocol: krunbox_proto::VERSION,
            agent_version: "test".into(),
            pid: 1,
            started_uptime_ns: started_ms * 1_000_000,
            hello_uptime_ns: hello_ms * 1_000_000,
        };
        t.agent_ready(ready_us, &hello);
        t
    }

    #[test]
    fn phases_are_consecutive_and_sum_to_the_total() {
        // Guest clock zero 40 ms after spawn; agent at +30, hello at +35,
        // accepted 77 ms after spawn.
        let t = timeline(30, 35, 1_077_000);
        let clock = GuestClock {
            zero_us: 1_040_000,
            error: Duration::from_micros(300),
        };
        let p = BootPhases::of(&t, &clock).expect("every stamp");
        let ms = Duration::from_millis;
        assert_eq!(
            p.named().map(|(_, d)| d),
            [ms(2), ms(1), ms(37), ms(30), ms(5), ms(2)]
        );
        assert_eq!(p.named().iter().map(|(_, d)| *d).sum::<Duration>(), p.total);
        assert_eq!((p.total, p.adjusted), (ms(77), Duration::ZERO));
        assert!(p.to_string().contains("before_guest_clock"));
    }

    #[test]
    fn boundaries_out_of_order_are_moved_and_say_by_how_much() {
        // The hello lands 0.2 ms after its acceptance, by the placed clock.
        let t = timeline(30, 37, 1_077_000);
        let clock = GuestClock {
            zero_us: 1_040_200,
            error: Duration::from_micros(300),
        };
        let p = BootPhases::of(&t, &clock).expect("every stamp");
        assert_eq!(p.hello, Duration::ZERO);
        assert_eq!(p.adjusted, Duration::from_micros(200));
        assert!(p.adjusted <= p.error);
        let sum: Duration = p.named().iter().map(|(_, d)| *d).sum();
        assert_eq!(sum, p.total);
    }

    #[test]
    fn percentiles_by_phase_over_boots() {
        assert!(BootPhases::percentiles(&[]).is_empty());
        let clock = GuestClock {
            zero_us: 1_040_000,
            error: Duration::ZERO,
        };
        // 100 boots whose agent phase takes 1..=100 ms.
        let boots: Vec<BootPhases> = (1..=100)
            .map(|ms| {
                let t = timeline(30, 30 + ms, 1_070_000 + ms * 1_000 + 2_000);
                BootPhases::of(&t, &clock).expect("every stamp")
            })
            .collect();
        let table = BootPhases::percentiles(&boots);
        let names: Vec<&str> = table.iter().map(|p| p.phase).collect();
        assert_eq!(
            names,
            [
                "configure",
                "enter",
                "before_guest_clock",
                "kernel_and_init",
                "agent",
                "hello",
                "total"
            ]
        );
        let agent = table[4];
        let ms = Duration::from_millis;
        assert_eq!((agent.p50, agent.p95, agent.p99), (ms(50), ms(95), ms(99)));
        assert_eq!(table[6].p99, ms(171));

        // With the vCPU's start on every boot, its row follows.
        let mut t = timeline(30, 31, 1_070_000 + 33_000);
        t.vcpu_started = Some(ms(25));
        let boot = BootPhases::of(&t, &clock).expect("every stamp");
        assert_eq!(boot.before_vcpu, Some(ms(22)), "{boot:?}");
        let table = BootPhases::percentiles(&[boot, boot]);
        assert_eq!((table[3].phase, table[3].p50), ("before_vcpu", ms(22)));
        assert!(boot.to_string().contains("before the vCPU"), "{boot}");
    }

    #[test]
    fn a_missing_stamp_is_no_phases() {
        let mut t = BootTimeline::spawned(0);
        t.runner_started((1, 2));
        let clock = GuestClock {
            zero_us: 10,
            error: Duration::ZERO,
        };
        assert_eq!(BootPhases::of(&t, &clock), None);
    }
}
