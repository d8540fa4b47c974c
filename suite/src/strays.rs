//! VM processes a case left running (inside the lab, when cases run one
//! at a time, as they do there by default): named and killed after the
//! case, so that they cannot starve the cases after it
//! (a stray VM busy in the background once cost a later case its agent's
//! pings). The shared VMs ([`crate::fixture`]), which outlive each case
//! of their groups, are not strays.

use std::time::Duration;

/// The name libkrun gives a VM's process.
const VM_COMM: &str = "libkrun VM";

/// How long a killed or dropped VM gets to end before it counts.
const GRACE: Duration = Duration::from_secs(3);

/// After case `case`: kills the VM processes still running, but those
/// in `spared` (the shared VMs), and says which they were.
pub fn sweep(case: &str, spared: &[u32]) {
    let shared: Vec<i32> = spared
        .iter()
        .filter_map(|&p| i32::try_from(p).ok())
        .collect();
    let deadline = std::time::Instant::now() + GRACE;
    let mut strays = running_vms(&shared);
    while !strays.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        strays = running_vms(&shared);
    }
    for (pid, args) in strays {
        println!("\n{case}: left a VM process running (pid {pid}: {args}); killing it");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The VM processes running now (zombies excluded), but `except`, with
/// their command lines.
pub fn running_vms(except: &[i32]) -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !except.contains(pid))
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state follows the parenthesized name: "pid (comm) S …".
            let zombie = stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'));
            comm.trim_end() == VM_COMM && !zombie
        })
        .map(|pid| {
            let args = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args = String::from_utf8_lossy(&args).replace('\0', " ");
            (pid, args.trim_end().to_owned())
        })
        .collect()
}
