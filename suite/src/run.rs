//! Where the cases run: here, in the nested lab, or nowhere (every case
//! failing with the reason). Nothing is skipped.

use std::process::ExitCode;
use std::sync::OnceLock;

pub use libtest_mimic::Arguments;
use libtest_mimic::{ColorSetting, Trial};

pub use crate::boots::LabPlan;
use crate::rerun::Budget;
use crate::summary::RunSummary;
use crate::{boots, evidence, fixture, in_lab, notes, SUITE};

/// Boots a VM that the lab's KVM sees triple-fault (for
/// [`LOSE_VM_VAR`](crate::rerun::LOSE_VM_VAR)); what happened to it.
pub type LoseAVm = fn() -> String;

/// What this host can do with the suite's VMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Its KVM boots libkrun guests: the cases run here.
    Boots,
    /// Its KVM is paravirtual (`kvm_pvm`): the cases run in the nested
    /// lab, booted once for all of them.
    Paravirtual,
    /// No VM can boot here, for this reason: every case fails, saying so.
    Cannot(String),
}

/// The suite: its cases, what they need in the lab, their rerun budget.
pub struct Suite {
    trials: Vec<Trial>,
    plan: LabPlan,
    settings: Settings,
}

/// What the cases' wrappers read while they run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub budget: Budget,
    pub lose_a_vm: Option<LoseAVm>,
    /// Whether VMs left running after a case are killed: only when cases
    /// run one at a time (else they would be another case's VMs).
    pub sweep_strays: bool,
}

impl Settings {
    /// The suite's budget, no way to lose a VM, no sweep.
    const DEFAULT: Self = Self {
        budget: Budget::SUITE,
        lose_a_vm: None,
        sweep_strays: false,
    };
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The running suite's settings (the default budget when no suite runs).
pub(crate) fn settings() -> Settings {
    *SETTINGS.get_or_init(|| Settings::DEFAULT)
}

impl Suite {
    /// The suite of `trials` (made by [`crate::trial`] and
    /// [`crate::group_trial`]), which need `plan` in the lab.
    pub fn new(trials: Vec<Trial>, plan: LabPlan) -> Self {
        Self {
            trials,
            plan,
            settings: Settings::DEFAULT,
        }
    }

    /// How a case loses a VM on purpose, when
    /// [`LOSE_VM_VAR`](crate::rerun::LOSE_VM_VAR) names it.
    pub fn losing_a_vm_with(mut self, how: LoseAVm) -> Self {
        self.settings.lose_a_vm = Some(how);
        self
    }

    /// Runs the cases selected by the command line, where `host` allows;
    /// the run's exit code.
    pub fn run(self, host: Host) -> ExitCode {
        self.run_with_args(Arguments::from_args(), host)
    }

    /// [`Suite::run`], with `args` instead of the command line's.
    pub fn run_with_args(self, mut args: Arguments, host: Host) -> ExitCode {
        let mut trials = self.trials;
        if in_lab() {
            if !args.list {
                prepare_lab_run(&mut trials);
            }
            // The lab's serial port looks like a terminal; the host
            // reading it is not one.
            args.color.get_or_insert(ColorSetting::Never);
            // Every CPU in the lab is emulated, and nested guests running
            // side by side on its 2 vCPUs have been seen to go down early.
            // One case at a time, beside the shared VMs.
            args.test_threads.get_or_insert(1);
        }
        let _ = SETTINGS.set(Settings {
            sweep_strays: in_lab() && args.test_threads == Some(1),
            ..self.settings
        });
        if args.list || in_lab() {
            expect_group_cases(&args, &trials);
            let code = libtest_mimic::run(&args, trials).exit_code();
            if in_lab() && !args.list {
                crate::audit::report();
            }
            return code;
        }
        match host {
            Host::Boots => {
                expect_group_cases(&args, &trials);
                let code = libtest_mimic::run(&args, trials).exit_code();
                // No lab: nothing is run again, nothing rebooted.
                println!("{}", RunSummary::default());
                code
            }
            Host::Paravirtual => boots::run_in_lab(&self.plan, self.settings.budget),
            Host::Cannot(reason) => fail_all(&args, trials, &reason),
        }
    }
}

/// Inside the lab: the heartbeat, the KVM exit trace, and only the cases
/// that earlier lab boots did not end.
fn prepare_lab_run(trials: &mut Vec<Trial>) {
    notes::start_heartbeat();
    crate::audit::lift_printk_limit();
    if let Err(e) = evidence::enable_kvm_exit_trace() {
        eprintln!(
            "{SUITE}: {}; no triple fault can be evidenced in this run, so a case whose VM \
             the lab loses that way fails",
            crate::error_chain(&e)
        );
    }
    let ended = notes::ended_before();
    trials.retain(|t| !ended.iter().any(|name| name == t.name()));
}

/// Tells each fixture how many of its group's cases this run selected, so
/// that it is torn down after the last of them.
fn expect_group_cases(args: &Arguments, trials: &[Trial]) {
    for group in fixture::groups() {
        let selected = trials
            .iter()
            .filter(|t| !args.is_filtered_out(t) && group.has_member(t.name()))
            .count();
        group.expect(selected);
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
