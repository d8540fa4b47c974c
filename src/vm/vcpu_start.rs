//! When libkrun started a VM's first vCPU thread, read from `/proc`: the
//! boundary inside [`BootPhases::before_guest_clock`](super::BootPhases)
//! between libkrun building the VM and the guest kernel's earliest boot.
//!
//! Threads' start times are kept in clock ticks after the host's boot
//! (`starttime` in `/proc/PID/task/TID/stat`), 10 ms on Linux; the vCPU
//! thread's is taken against the runner process's own, so the offset
//! needs no clock but the kernel's. libkrun names its vCPU threads
//! `fc_vcpu N`; a detached runner's VM runs in the runner's child.

use std::path::Path;
use std::time::Duration;

use crate::state::start_ticks;

/// The prefix of libkrun's vCPU thread names.
const VCPU_PREFIX: &str = "fc_vcpu";

/// The runner `runner` started → its VM's first vCPU thread started; `None`
/// when `/proc` does not say (the runner gone, no vCPU thread found).
pub(crate) fn after_runner_start(runner: u32) -> Option<Duration> {
    let proc = Path::new("/proc");
    let runner_start = start_ticks(&proc.join(runner.to_string()).join("stat"))?;
    let children = std::fs::read_to_string(proc.join(format!("{runner}/task/{runner}/children")))
        .unwrap_or_default();
    let processes = std::iter::once(runner).chain(
        children
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok()),
    );
    let first = processes
        .filter_map(|pid| first_vcpu_start(&proc.join(pid.to_string())))
        .min()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&hz| hz > 0)? as u64;
    let ticks = first.checked_sub(runner_start)?;
    Some(Duration::from_millis(ticks * 1000 / hz))
}

/// The earliest start of a vCPU thread of the process at `process`.
fn first_vcpu_start(process: &Path) -> Option<u64> {
    std::fs::read_dir(process.join("task"))
        .ok()?
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.starts_with(VCPU_PREFIX))
        })
        .filter_map(|task| start_ticks(&task.path().join("stat")))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process plays a runner with a vCPU thread: the offset is
    /// found, and bounded by how long this process has lived.
    #[test]
    fn a_vcpu_thread_is_found_after_its_process_start() {
        let (running, started) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let vcpu = std::thread::Builder::new()
            .name("fc_vcpu 0".into())
            .spawn(move || {
                let _ = running.send(());
                let _ = stopped.recv();
            })
            .unwrap();
        started.recv().unwrap();
        let found = after_runner_start(std::process::id());
        drop(stop);
        vcpu.join().unwrap();
        let found = found.expect("the vCPU thread");
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(found.as_secs_f64() <= uptime, "{found:?}");
        assert_eq!(after_runner_start(u32::MAX), None);
    }
}
