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
    /// Runner started → libkrun's first vCPU thread started, from the
    /// threads' start times in `/proc` (clock ticks: 10 ms resolution).
    pub vcpu_started: Option<Duration>,
    /// Runner spawned → the host accepted the agent's hello.
    pub ready: Option<Duration>,
    /// Runner spawned → the first exec through the agent ended (`None`
    /// until one has).
    pub first_exec: Option<Duration>,
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

    pub(crate) fn first_exec_done(&mut self, at_us: Option<u64>) {
        self.first_exec = at_us.map(|at| self.since(at));
    }

    /// The agent's start on the host's time line, estimated as
    /// `entered + agent_started_uptime` (the guest's clock starts with its
    /// kernel, just after `krun_start_enter`), at most `ready`.
    pub fn agent_started_estimate(&self) -> Option<Duration> {
        let at = self.entered? + self.agent_started_uptime?;
        Some(self.ready.map_or(at, |ready| at.min(ready)))
    }

    /// When the runner was spawned, in µs of the host's `CLOCK_MONOTONIC`.
    pub(crate) fn spawned_us(&self) -> u64 {
        self.spawned_us
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
        writeln!(f, "first vCPU thread        {}", ms(self.vcpu_started))?;
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
        writeln!(f, "agent ready on host      {}", ms(self.ready))?;
        write!(f, "first exec done          {}", ms(self.first_exec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(started_ms: u64) -> Hello {
        Hello {
            protocol: krunbox_proto::VERSION,
            agent_version: "test".into(),
            pid: 1,
            started_uptime_ns: started_ms * 1_000_000,
            hello_uptime_ns: (started_ms + 1) * 1_000_000,
        }
    }

    #[test]
    fn phases_are_offsets_from_spawn() {
        let mut t = BootTimeline::spawned(1_000_000);
        t.runner_started((1_002_000, 1_003_000));
        t.agent_ready(1_050_000, &hello(30));
        t.first_exec_done(Some(1_051_500));
        assert_eq!(t.configured, Some(Duration::from_millis(2)));
        assert_eq!(t.entered, Some(Duration::from_millis(3)));
        assert_eq!(t.ready, Some(Duration::from_millis(50)));
        assert_eq!(t.first_exec, Some(Duration::from_micros(51_500)));
        assert_eq!(t.agent_started_estimate(), Some(Duration::from_millis(33)));
        assert!(t.to_string().contains("first exec done          51.5 ms"));
    }

    #[test]
    fn agent_start_estimate_never_passes_ready() {
        let mut t = BootTimeline::spawned(0);
        t.runner_started((1_000, 2_000));
        t.agent_ready(10_000, &hello(40));
        assert_eq!(t.agent_started_estimate(), t.ready);
        t.first_exec_done(None);
        assert_eq!(t.first_exec, None);
    }
}
