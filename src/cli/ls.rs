//! `krunbox ls`: the named VMs and what they are doing.

use clap::Args;
use krunbox::runner::{ConfinementReport, RunnerEnd};
use krunbox::state::{NamedVm, StateDir, VmStatus};
use serde::Serialize;

use super::report;

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print JSON, one object per VM, in an array.
    #[arg(long)]
    json: bool,
    /// Print only the names.
    #[arg(short, long)]
    quiet: bool,
}

/// One VM, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Row<'a> {
    name: &'a str,
    status: VmStatus,
    pid: Option<u32>,
    cpus: u8,
    memory_mib: u32,
    net: String,
    rootfs: &'a std::path::Path,
    created_unix: u64,
    ready_ms: Option<u64>,
    /// How a dead VM ended, if its monitor recorded it.
    ended: Option<RunnerEnd>,
    /// What its runner applied to itself: no_new_privs, Landlock, seccomp.
    confinement: Option<&'a ConfinementReport>,
}

pub fn ls(args: LsArgs) -> i32 {
    let vms = match StateDir::open().and_then(|state| NamedVm::list(&state)) {
        Ok(vms) => vms,
        Err(e) => return report::fail(&e),
    };
    let rows: Vec<Row> = vms.iter().map(row).collect();
    if args.quiet {
        rows.iter().for_each(|r| println!("{}", r.name));
    } else if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
    } else {
        println!(
            "{:<20} {:<16} {:>8} {:>4} {:>6} {:<5} ROOTFS",
            "NAME", "STATUS", "PID", "CPUS", "MEM", "NET"
        );
        for r in &rows {
            let status = match (r.status, &r.ended) {
                (VmStatus::Dead, Some(end)) => match (end.code, end.signal) {
                    (Some(code), _) => format!("dead (exit {code})"),
                    (None, Some(signal)) => format!("dead (signal {signal})"),
                    (None, None) => "dead".to_owned(),
                },
                (VmStatus::Dead, None) => "dead".to_owned(),
                (VmStatus::Running, _) => "running".to_owned(),
                (VmStatus::Starting, _) => "starting".to_owned(),
            };
            let pid = r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
            println!(
                "{:<20} {:<16} {:>8} {:>4} {:>6} {:<5} {}",
                r.name,
                status,
                pid,
                r.cpus,
                format!("{}M", r.memory_mib),
                r.net,
                r.rootfs.display()
            );
        }
    }
    0
}

fn row(vm: &NamedVm) -> Row<'_> {
    let record = vm.record();
    Row {
        name: vm.name().as_str(),
        status: vm.status(),
        pid: record.runner.map(|r| r.pid),
        cpus: record.cpus,
        memory_mib: record.memory_mib,
        net: format!("{:?}", record.net).to_lowercase(),
        rootfs: &record.rootfs,
        created_unix: record.created_unix,
        ready_ms: record.ready_ms,
        ended: vm.end(),
        confinement: record.confinement.as_ref(),
    }
}
