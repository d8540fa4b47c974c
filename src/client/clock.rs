//! The guest's clock placed on the host's: round trips to the agent.

use std::time::Duration;

use krunbox_proto::{Reply, Request};

use super::connection::unexpected_reply;
use super::{AgentClient, ClientError};
use crate::runner::monotonic_us;

/// Round trips [`AgentClient::guest_clock`] takes: the narrowest counts.
const ROUND_TRIPS: usize = 3;

/// Where the guest's clock started, on the host's `CLOCK_MONOTONIC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestClock {
    /// When the guest's uptime read zero, in µs of the host's
    /// `CLOCK_MONOTONIC`: the midpoint of a round trip less the uptime the
    /// agent answered with.
    pub zero_us: u64,
    /// How far the true zero may lie from `zero_us`: half the round trip.
    pub error: Duration,
}

impl AgentClient {
    /// Places the guest's clock (`CLOCK_BOOTTIME`, which starts with its
    /// kernel) on the host's `CLOCK_MONOTONIC`, from the narrowest of a
    /// few round trips to the agent. Both clocks run at the same rate (the
    /// guest's is kvmclock, the host's), so the answer holds for the VM's
    /// life.
    pub async fn guest_clock(&self) -> Result<GuestClock, ClientError> {
        const OP: &str = "clock";
        let mut best: Option<GuestClock> = None;
        for _ in 0..ROUND_TRIPS {
            let asked = monotonic_us();
            let uptime_ns = match self.call(OP, &Request::Clock).await? {
                Reply::Clock { uptime_ns } => uptime_ns,
                other => return Err(unexpected_reply(OP, &other)),
            };
            let answered = monotonic_us();
            let half = answered.saturating_sub(asked) / 2;
            let reading = GuestClock {
                zero_us: (asked + half).saturating_sub(uptime_ns / 1_000),
                error: Duration::from_micros(half),
            };
            if best.is_none_or(|b| reading.error < b.error) {
                best = Some(reading);
            }
        }
        Ok(best.expect("at least one round trip"))
    }
}
