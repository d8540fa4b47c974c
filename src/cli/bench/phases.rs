//! The boot case's phases in host time (`Vm::boot_phases`): one sample
//! per recorded boot, and their P50/P95/P99 table.

use std::fmt::Write;

use krunbox::vm::BootPhases;
use serde::{Deserialize, Serialize};

use super::stats::Summary;
use super::vm_cases::TimelineSample;

/// One boot's phases, in ms, consecutive: they sum to `total_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhasesSample {
    /// Runner spawned → libkrun configured.
    pub configure_ms: f64,
    /// libkrun configured → `krun_start_enter`.
    pub enter_ms: f64,
    /// `krun_start_enter` → the guest's clock starts.
    pub before_guest_clock_ms: f64,
    /// Of it, until libkrun's first vCPU thread started (10 ms
    /// resolution; absent where `/proc` did not say, and in reports saved
    /// before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_vcpu_ms: Option<f64>,
    /// The guest's clock starts → the agent started.
    pub kernel_and_init_ms: f64,
    /// The agent started → its hello sent.
    pub agent_ms: f64,
    /// The hello sent → accepted by the host.
    pub hello_ms: f64,
    /// Runner spawned → the hello accepted.
    pub total_ms: f64,
    /// How far the guest's clock may be placed off (± ms).
    pub error_ms: f64,
}

impl From<&BootPhases> for PhasesSample {
    fn from(p: &BootPhases) -> Self {
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        Self {
            configure_ms: ms(p.configure),
            enter_ms: ms(p.enter),
            before_guest_clock_ms: ms(p.before_guest_clock),
            before_vcpu_ms: p.before_vcpu.map(ms),
            kernel_and_init_ms: ms(p.kernel_and_init),
            agent_ms: ms(p.agent),
            hello_ms: ms(p.hello),
            total_ms: ms(p.total),
            error_ms: ms(p.error),
        }
    }
}

/// The rows of the table: a label and the phase (`None` where a boot
/// lacks it).
type Row = (&'static str, fn(&PhasesSample) -> Option<f64>);

const ROWS: [Row; 9] = [
    ("runner spawned -> libkrun configured", |p| {
        Some(p.configure_ms)
    }),
    ("libkrun configured -> krun_start_enter", |p| {
        Some(p.enter_ms)
    }),
    ("krun_start_enter -> guest clock starts", |p| {
        Some(p.before_guest_clock_ms)
    }),
    ("  of which: before the first vCPU", |p| p.before_vcpu_ms),
    ("  of which: the vCPU, kernel's earliest", |p| {
        p.before_vcpu_ms.map(|b| p.before_guest_clock_ms - b)
    }),
    ("guest kernel and init -> agent started", |p| {
        Some(p.kernel_and_init_ms)
    }),
    ("agent started -> hello sent", |p| Some(p.agent_ms)),
    ("hello sent -> accepted by the host", |p| Some(p.hello_ms)),
    ("total: runner spawned -> agent ready", |p| Some(p.total_ms)),
];

/// The P50/P95/P99 of each phase over the boots that have phases; empty
/// when none has.
pub fn table(timelines: &[TimelineSample]) -> String {
    let samples: Vec<&PhasesSample> = timelines.iter().filter_map(|t| t.phases.as_ref()).collect();
    let mut out = String::new();
    if samples.is_empty() {
        return out;
    }
    let errors: Vec<f64> = samples.iter().map(|p| p.error_ms).collect();
    let error = Summary::of(&errors).map_or(0.0, |s| s.max);
    let _ = writeln!(
        out,
        "\nboot phases in host time ({} boots; the guest's clock placed within ±{error:.1} ms)",
        samples.len()
    );
    let _ = writeln!(
        out,
        "{:<42} {:>9} {:>9} {:>9}  (ms)",
        "phase", "p50", "p95", "p99"
    );
    for (label, phase) in ROWS {
        let values: Vec<f64> = samples.iter().filter_map(|p| phase(p)).collect();
        if let Some(s) = Summary::of(&values) {
            let _ = writeln!(
                out,
                "{label:<42} {:>9.1} {:>9.1} {:>9.1}",
                s.p50, s.p95, s.p99
            );
        }
    }
    out
}
