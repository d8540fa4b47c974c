//! What the machine running the cases looked like when one failed, so
//! that a failure seen once (in CI, say) can be explained without a rerun:
//! the kernel's words about killed or crashed processes, every process
//! with its CPU time, and the tails of logs.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::procfs::{clock_ticks, Stat, RUNNER_COMM, VCPU_PREFIX};

/// Lines kept from the end of each log.
const TAIL_LINES: usize = 40;

/// Kernel messages worth quoting: the OOM killer and crashes.
const KERNEL_WORDS: [&str; 6] = [
    "oom",
    "out of memory",
    "killed process",
    "segfault",
    "panic",
    "traps:",
];

/// The kernel's words and the processes, as text.
pub fn machine() -> String {
    format!(
        "--- kernel:\n{}\n--- processes:\n{}",
        kernel_messages(),
        processes()
    )
}

/// Every process of the machine running the cases with its CPU time, to
/// show what else was running (VMs left over by earlier cases, say); a
/// VM's runner (`libkrun VM`) with its threads ([`threads`]).
pub fn processes() -> String {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return "(/proc unreadable)".into();
    };
    let ticks = clock_ticks();
    let mut lines = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Some(Stat { comm, state, cpu }) = Stat::read(&entry.path()) else {
            continue;
        };
        let args = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if args.is_empty() {
            continue; // a kernel thread
        }
        lines.push(format!(
            "{pid:>6} {state} {:>7.1}s {comm} {}",
            cpu as f64 / ticks,
            args.chars().take(100).collect::<String>()
        ));
        if comm == RUNNER_COMM {
            lines.push(threads(&entry.path()));
        }
    }
    lines.join("\n")
}

/// A process's threads: state, CPU time, where in the kernel each waits,
/// and a vCPU's kernel stack, to tell a guest that stopped answering
/// because its vCPU spins in `KVM_RUN` from one whose runner is blocked.
pub fn threads(process: &Path) -> String {
    let Ok(tasks) = std::fs::read_dir(process.join("task")) else {
        return "        (threads unreadable)".into();
    };
    let ticks = clock_ticks();
    let mut lines = Vec::new();
    for task in tasks.flatten() {
        let path = task.path();
        let Some(Stat { comm, state, cpu }) = Stat::read(&path) else {
            continue;
        };
        let wchan = std::fs::read_to_string(path.join("wchan")).unwrap_or_default();
        lines.push(format!(
            "        thread {} {state} {:>7.1}s {comm} (waits in {})",
            task.file_name().to_string_lossy(),
            cpu as f64 / ticks,
            if wchan.is_empty() || wchan == "0" {
                "-"
            } else {
                &wchan
            },
        ));
        // A running thread has no stack to show; a sleeping vCPU's says
        // where in KVM (or elsewhere) it waits.
        if comm.starts_with(VCPU_PREFIX) && state != "R" {
            if let Ok(stack) = std::fs::read_to_string(path.join("stack")) {
                for frame in stack.lines().take(12) {
                    lines.push(format!("            {frame}"));
                }
            }
        }
    }
    lines.join("\n")
}

/// The last lines of the log at `path`, but libkrun's notes of closed
/// vsock connections.
pub fn tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            // libkrun warns of every closed vsock connection; those say
            // nothing about a failure.
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains("proxy removal") && !l.contains("removing proxy"))
                .collect();
            lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(unreadable: {e})"),
    }
}

/// The kernel log's lines about killed or crashed processes (the last few),
/// read from `/dev/kmsg` without blocking.
pub fn kernel_messages() -> String {
    let mut kmsg = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    {
        Ok(file) => file,
        Err(e) => return format!("(/dev/kmsg unreadable: {e})"),
    };
    let mut hits = Vec::new();
    while let Some(record) = next_record(&mut kmsg) {
        // "prio,seq,usec,flags;message"
        let message = record.split_once(';').map_or(&*record, |(_, m)| m).trim();
        let lower = message.to_lowercase();
        if KERNEL_WORDS.iter().any(|w| lower.contains(w)) {
            hits.push(message.to_owned());
        }
    }
    if hits.is_empty() {
        return "(nothing about killed or crashed processes)".into();
    }
    hits[hits.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// One record of `/dev/kmsg` (each read returns exactly one), or `None`
/// at the end.
fn next_record(kmsg: &mut File) -> Option<String> {
    let mut buf = [0u8; 8192];
    loop {
        match kmsg.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => return Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            // A record overwritten while we read: go on with the next one.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => return None,
        }
    }
}
