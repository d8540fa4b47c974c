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
//!   inner run's;
//! - anywhere else (no KVM, no lab tools): every case fails with the
//!   reason. Nothing is skipped.

mod agent_cases;
mod bench_cases;
mod cases;
mod fault_cases;
mod fault_support;
mod lab_faults;
mod load_cases;
mod loopback;
mod named_cases;
mod net_cases;
mod net_oneshot_cases;
mod post_mortem;
mod security_cases;
mod support;

use std::process::ExitCode;
use std::time::Duration;

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
    if args.list || support::in_lab() {
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let kvm = Kvm::probe();
    if kvm.can_boot() {
        return libtest_mimic::run(&args, trials).exit_code();
    }
    match kvm {
        Kvm::Paravirtual => run_in_lab(),
        other => fail_all(&args, trials, &other.describe()),
    }
}

/// Runs this very binary inside the lab, passing our arguments through.
fn run_in_lab() -> ExitCode {
    let me = std::env::current_exe().expect("the test binary knows its path");
    let runner = support::host_runner();
    let name = me
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let mut argv = vec![name];
    argv.extend(std::env::args().skip(1));
    println!(
        "krunbox vm tests: /dev/kvm is paravirtual here; booting the nested lab once for all cases"
    );
    let mut spec = krunbox_lab::LabSpec::new(argv);
    for name in [support::LIBKRUN_LOG_VAR, load_cases::BIG_MIB_VAR] {
        if let Ok(value) = std::env::var(name) {
            spec = spec.env(name, value);
        }
    }
    let spec = spec
        .executable(&me)
        .executable(&runner)
        .env(
            "KRUNBOX_RUNNER",
            format!("{}/krunbox", krunbox_lab::LAB_BIN),
        )
        .env("RUST_BACKTRACE", "1")
        .memory_mib(8192)
        .timeout(Duration::from_secs(30 * 60))
        .work_dir(env!("CARGO_TARGET_TMPDIR"));
    match spec.run() {
        Ok(run) => {
            println!(
                "krunbox vm tests: lab booted in {:.1} s, ran for {:.1} s in all",
                run.boot_time.as_secs_f64(),
                run.run_time.as_secs_f64()
            );
            ExitCode::from(u8::try_from(run.exit_code).unwrap_or(1))
        }
        Err(e) => {
            eprintln!(
                "krunbox vm tests: FAILED: the nested lab could not run: {}",
                krunbox::error_chain(&e)
            );
            eprintln!("krunbox vm tests: hint: cargo xtask setup installs what the lab needs");
            ExitCode::FAILURE
        }
    }
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
