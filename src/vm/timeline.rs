//! [`BootTimeline`]: where the time of a boot went.

use std::time::Duration;

use krunbox_proto::Hello;

/// The phases of one boot, as offsets from spawning the runner.
///
/// Host stamps use CLOCK_MONOTONIC (shared by the host's processes); the
/// guest's stamps are its uptime, which starts when the guest kernel
/// starts, so they are reported as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootTimeline {
    spawned_us: u64,
    /// Runner spawned → libkrun configured.
    pub configured: Option<Duration>,
    /// Runner spawned → `krun_start_enter` called.
    pub entered: Option<Duration>,
    /// Guest uptime when the agent process started (kernel + init).
    pub agent_started_uptime: Option<Duration>,
    /// Guest uptime when the agent sent its hello.
    pub agent_hello_uptime: Option<Duration>,
    /// Runner spawned → the host accepted the agent's hello.
    pub ready: Option<Duration>,
}

impl BootTimeline {
    pub(crate) fn spawned(at_us: u64) -> Self {
        Self {
            spawned_us: at_us,
            ..Self::default()
        }
    }

    pub(crate) fn runner_started(&mut self, (configured_us, entering_us): (u64, u64)) {
        self.configured = Some(self.since(configured_us));
        self.entered = Some(self.since(entering_us));
    }

    pub(crate) fn agent_ready(&mut self, at_us: u64, hello: &Hello) {
        self.ready = Some(self.since(at_us));
        self.agent_started_uptime = Some(Duration::from_nanos(hello.started_uptime_ns));
        self.agent_hello_uptime = Some(Duration::from_nanos(hello.hello_uptime_ns));
    }

    fn since(&self, at_us: u64) -> Duration {
        Duration::from_micros(at_us.saturating_sub(self.spawned_us))
    }
}

impl std::fmt::Display for BootTimeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Option<Duration>| match d {
            Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1e3),
            None => "-".to_owned(),
        };
        writeln!(f, "runner spawned           0.0 ms")?;
        writeln!(f, "libkrun configured       {}", ms(self.configured))?;
        writeln!(f, "krun_start_enter         {}", ms(self.entered))?;
        writeln!(
            f,
            "agent started (uptime)   {}",
            ms(self.agent_started_uptime)
        )?;
        writeln!(
            f,
            "agent hello (uptime)     {}",
            ms(self.agent_hello_uptime)
        )?;
        write!(f, "agent ready on host      {}", ms(self.ready))
    }
}
