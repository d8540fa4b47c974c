//! End-to-end tests on booted libkrun VMs.
//!
//! A custom harness (libtest-mimic), so that the binary decides where its
//! cases run:
//!
//! - on a host whose KVM boots libkrun guests, or inside the lab
//!   (`KRUNBOX_LAB=1`): the cases run here, each booting real VMs;
//! - on a host with a paravirtual KVM (this project's machines): the binary
//!   boots the nested QEMU lab ONCE and runs itself inside it, with the
//!   same arguments, so all cases share one lab boot; its exit code is the
//!   inner run's (if the lab itself dies, it is booted again for the cases
//!   that had not ended: see `lab_boots`);
//! - anywhere else (no KVM, no lab tools): every case fails with the
//!   reason. Nothing is skipped.
//!
//! The `harness::` cases test this harness (`lab_faults`, `lab_boots`,
//! `run_summary`) without any VM: when a run selects only them, they run
//! here, without the lab.
//!
//! Inside the lab, a failed case runs again only on evidence the harness
//! reads from the lab's kernel (`lab_evidence`), within a budget; the last
//! line of the run counts the reruns and lab reboots (`run_summary`).

mod agent_cases;
mod bench_cases;
mod cases;
mod debian;
mod example_cases;
mod fault_cases;
mod fault_support;
mod fixture;
mod harness_cases;
mod image_archive;
mod image_cases;
mod image_user_cases;
mod lab_boots;
mod lab_evidence;
mod lab_faults;
mod load_cases;
mod loopback;
mod named_cases;
mod net_cases;
mod net_oneshot_cases;
mod post_mortem;
mod registry;
mod run_summary;
mod security_cases;
mod stray_vms;
mod stream_cases;
mod support;

use std::process::ExitCode;

use krunbox::host::Kvm;
use libtest_mimic::{Arguments, Trial};

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    let mut trials = cases::all();
    trials.extend(agent_cases::all());
    trials.extend(named_cases::all());
    trials.extend(net_cases::all().into_iter().chain(net_oneshot_cases::all()));
    trials.extend(bench_cases::all());
    trials.extend(fault_cases::all());
    trials.extend(load_cases::all());
    trials.extend(security_cases::all());
    trials.extend(stream_cases::all());
    trials.extend(image_cases::all());
    trials.extend(image_user_cases::all());
    trials.extend(example_cases::all());
    trials.extend(harness_cases::all());
    if support::in_lab() && !args.list {
        lab_boots::start_heartbeat();
        if let Err(e) = lab_evidence::enable_kvm_exit_trace() {
            eprintln!(
                "krunbox vm tests: {}; no triple fault can be evidenced in this run, so a \
                 case whose VM the lab loses that way fails",
                krunbox::error_chain(&e)
            );
        }
        let ended = lab_boots::ended_before();
        trials.retain(|t| !ended.iter().any(|name| name == t.name()));
    }
    if support::in_lab() && args.color.is_none() {
        // The lab's serial port looks like a terminal; the host reading it
        // is not one.
        args.color = Some(libtest_mimic::ColorSetting::Never);
    }
    if support::in_lab() && args.test_threads.is_none() {
        // Every CPU in the lab is emulated, and nested guests running side
        // by side on its 2 vCPUs have been seen to go down early (a reboot
        // before the workload set its exit code). One case at a time,
        // beside the shared agent VM.
        args.test_threads = Some(1);
    }
    if args.list || support::in_lab() || only_harness(&args, &trials) {
        expect_group_cases(&args, &trials);
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let kvm = Kvm::probe();
    if kvm.can_boot() {
        expect_group_cases(&args, &trials);
        let code = libtest_mimic::run(&args, trials).exit_code();
        // No lab: nothing is run again, nothing rebooted.
        println!("{}", run_summary::RunSummary::default());
        return code;
    }
    match kvm {
        Kvm::Paravirtual => lab_boots::run_in_lab(),
        other => fail_all(&args, trials, &other.describe()),
    }
}

/// Tells each shared VM how many of its group's cases this run selected,
/// so that it powers off after the last of them.
fn expect_group_cases(args: &Arguments, trials: &[Trial]) {
    let selected = |is_member: &dyn Fn(&str) -> bool| {
        trials
            .iter()
            .filter(|t| !args.is_filtered_out(t) && is_member(t.name()))
            .count()
    };
    agent_cases::SHARED.expect(selected(&|name| agent_cases::SHARED.has_member(name)));
    net_cases::SHARED.expect(selected(&|name| net_cases::SHARED.has_member(name)));
}

/// Whether the run selects no case that needs a VM.
fn only_harness(args: &Arguments, trials: &[Trial]) -> bool {
    trials
        .iter()
        .filter(|t| !args.is_filtered_out(t))
        .all(|t| t.name().starts_with(harness_cases::HARNESS))
}

/// No way to boot a VM: every case fails, saying why.
fn fail_all(args: &Arguments, trials: Vec<Trial>, reason: &str) -> ExitCode {
    let reason = format!(
        "no VM can boot here: {reason}; and the nested lab runs only where KVM is \
         paravirtual (kvm_pvm). Run on a host with hardware KVM."
    );
    let failing = trials
        .into_iter()
        .map(|t| {
            let reason = reason.clone();
            Trial::test(t.name().to_owned(), move || Err(reason.into()))
        })
        .collect();
    libtest_mimic::run(args, failing).exit_code()
}
