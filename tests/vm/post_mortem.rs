//! What a failed case prints about its VM, so that a failure seen once (in
//! CI, say) can be explained without a rerun: whether the runner still
//! runs and how it ended, the tails of its logs, and what the kernel of
//! the machine running the cases said about killed processes.

use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use krunbox::vm::Vm;
use libtest_mimic::Failed;

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

/// Runs `body`; on failure adds [`report`] on `vm` to the message.
pub async fn explained<F>(vm: &Vm, body: F) -> Result<(), Failed>
where
    F: Future<Output = Result<(), Failed>>,
{
    explained_all(&[vm], body).await
}

/// Runs `body`; on failure adds a [`report`] on each of `vms`.
pub async fn explained_all<F>(vms: &[&Vm], body: F) -> Result<(), Failed>
where
    F: Future<Output = Result<(), Failed>>,
{
    body.await.map_err(|failed| {
        let mut message = failed.message().unwrap_or("failed").to_owned();
        for vm in vms {
            message.push('\n');
            message.push_str(&report(vm));
        }
        Failed::from(message)
    })
}

/// The state of `vm` and the tails of its logs, as text.
pub fn report(vm: &Vm) -> String {
    let state = if vm.is_running() {
        format!("runner {} still running", vm.runner_pid())
    } else {
        format!("runner {} exited: {:?}", vm.runner_pid(), vm.exit_status())
    };
    format!(
        "--- post mortem: {state}\n--- runner log {}:\n{}\n--- console log {}:\n{}\n--- kernel:\n{}\n--- processes:\n{}",
        vm.runner_log_path().display(),
        tail(vm.runner_log_path()),
        vm.log_path().display(),
        tail(vm.log_path()),
        kernel_messages(),
        processes(),
    )
}

/// Every process of the machine running the cases with its CPU time, to
/// show what else was running (VMs left over by earlier cases, say).
fn processes() -> String {
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
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid … utime(14) stime(15)": comm may hold spaces.
        let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
        else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let cpu: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        let args = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if args.is_empty() {
            continue; // a kernel thread
        }
        lines.push(format!(
            "{pid:>6} {} {:>7.1}s {comm} {}",
            fields.first().unwrap_or(&"?"),
            cpu as f64 / ticks,
            args.chars().take(100).collect::<String>()
        ));
    }
    lines.join("\n")
}

/// Clock ticks per second, the unit of CPU times in `/proc/PID/stat`.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn tail(path: &Path) -> String {
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
fn kernel_messages() -> String {
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
