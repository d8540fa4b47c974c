//! The seccomp records the lab kernel logged during a run: a runner whose
//! filter only logs (`KRUNBOX_SECCOMP=log`) has each call outside its
//! list recorded by the kernel (audit record type 1326); one whose filter
//! traps has the trap recorded. Printed at the end of a lab run, so that
//! a run measures what the VM suite needs beyond the list.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;

use crate::evidence::{read_records, KERNEL_LOG};

/// The audit type of a seccomp record.
const SECCOMP_RECORD: &str = "type=1326";

/// Lets the kernel print every audit record: without an audit daemon it
/// prints them itself, at most 10 in 5 s unless this is lifted. Lab only.
pub(crate) fn lift_printk_limit() {
    let _ = std::fs::write("/proc/sys/kernel/printk_ratelimit", "0");
}

/// Each system call number in `records`' seccomp records, with the
/// programs (`comm`) that made it and how often.
pub fn calls_in(records: &[String]) -> BTreeMap<u32, (usize, Vec<String>)> {
    let mut calls: BTreeMap<u32, (usize, Vec<String>)> = BTreeMap::new();
    for record in records.iter().filter(|r| r.contains(SECCOMP_RECORD)) {
        let Some(nr) = field(record, "syscall=").and_then(|v| v.parse().ok()) else {
            continue;
        };
        let comm = field(record, "comm=").unwrap_or("?").to_owned();
        let entry = calls.entry(nr).or_default();
        entry.0 += 1;
        if !entry.1.contains(&comm) {
            entry.1.push(comm);
        }
    }
    calls
}

/// The value after `key`: up to the closing quote if it is quoted, else
/// up to the next space.
fn field<'a>(record: &'a str, key: &str) -> Option<&'a str> {
    let rest = &record[record.find(key)? + key.len()..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(' ').next(),
    }
}

/// Prints the run's seccomp records, if there are any.
pub(crate) fn report() {
    let Ok(mut log) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(KERNEL_LOG)
    else {
        return;
    };
    let calls = calls_in(&read_records(&mut log));
    if calls.is_empty() {
        return;
    }
    let list: Vec<String> = calls
        .iter()
        .map(|(nr, (n, comms))| format!("{nr} ×{n} ({})", comms.join(", ")))
        .collect();
    println!(
        "{}: the lab kernel logged seccomp records for system calls {}",
        crate::SUITE,
        list.join("; ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_counted_by_call() {
        let records = [
            "5,100,2000,-;audit: type=1326 audit(1.2:3): auid=4294967295 uid=0 gid=0 ses=4294967295 \
             pid=7 comm=\"fc_vcpu 0\" exe=\"/lab/bin/krunbox\" sig=0 arch=c000003e syscall=59 \
             compat=0 ip=0x7f code=0x7ffc0000",
            "5,101,2001,-;audit: type=1326 audit(1.3:4): pid=8 comm=\"libkrun VM\" syscall=59 \
             code=0x7ffc0000",
            "6,102,2002,-;audit: type=1400 something else syscall=1",
        ]
        .map(str::to_owned);
        let calls = calls_in(&records);
        assert_eq!(calls.len(), 1);
        let (n, comms) = &calls[&59];
        assert_eq!(*n, 2);
        assert_eq!(comms, &["fc_vcpu 0", "libkrun VM"]);
    }
}
