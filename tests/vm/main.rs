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
//!   that had not ended: see `krunbox_suite::boots`);
//! - anywhere else (no KVM, no lab tools): every case fails with the
//!   reason. Nothing is skipped.
//!
//! The runner around the cases (lab boots, shared VMs, reruns only on
//! evidence of a lab fault, the summary line) is the `krunbox-suite`
//! crate, which has its own tests; this binary declares the cases and
//! what they need in the lab.

#[cfg(not(feature = "confinement-probe"))]
compile_error!(
    "the VM suite needs krunbox's test-only features: run `cargo test --workspace --all-features`"
);

mod agent_cases;
mod bench_cases;
mod bench_peer;
mod cases;
mod debian;
mod dependent;
mod egress_cases;
mod example_cases;
mod fault_cases;
mod fault_support;
mod image_archive;
mod image_cases;
mod image_user_cases;
mod lab_cases;
mod load_cases;
mod loopback;
mod named_cases;
mod net_cases;
mod net_oneshot_cases;
mod oci_cases;
mod oci_clients;
mod pool_cases;
mod pool_cli_cases;
mod post_mortem;
mod python_cases;
mod registry;
mod security_cases;
mod shared_vm;
mod stream_cases;
mod support;

use std::process::ExitCode;

use krunbox::host::Kvm;
use krunbox_suite::{Host, LabPlan, Suite};

fn main() -> ExitCode {
    if let Some(code) = oci_cases::shim_if_requested() {
        return code;
    }
    let mut cases = cases::all();
    cases.extend(agent_cases::all());
    cases.extend(named_cases::all());
    cases.extend(net_cases::all().into_iter().chain(net_oneshot_cases::all()));
    cases.extend(bench_cases::all());
    cases.extend(bench_peer::all());
    cases.extend(fault_cases::all());
    cases.extend(load_cases::all());
    cases.extend(security_cases::all());
    cases.extend(stream_cases::all());
    cases.extend(image_cases::all());
    cases.extend(image_user_cases::all());
    cases.extend(example_cases::all());
    cases.extend(dependent::all());
    cases.extend(python_cases::all());
    cases.extend(oci_cases::all());
    cases.extend(oci_clients::all());
    cases.extend(egress_cases::all());
    cases.extend(pool_cases::all());
    cases.extend(pool_cli_cases::all());
    cases.extend(lab_cases::all());
    Suite::new(cases, lab_plan())
        .losing_a_vm_with(lab_cases::lose_a_vm)
        .run(host())
}

/// Where this host can boot the cases' VMs.
fn host() -> Host {
    match Kvm::probe() {
        kvm if kvm.can_boot() => Host::Boots,
        Kvm::Paravirtual => Host::Paravirtual,
        other => Host::Cannot(other.describe()),
    }
}

/// Debian's docker-registry (`cargo xtask setup` installs it), put into
/// the lab for the image cases.
const REGISTRY: &str = "/usr/bin/docker-registry";
/// Debian's CA bundle (package ca-certificates).
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the cases need in the lab: the runner, the registry and CA
/// certificates of the image cases, the Debian test layer, the example
/// program.
fn lab_plan() -> LabPlan {
    LabPlan::new(env!("CARGO_TARGET_TMPDIR"))
        .pass_var(support::LIBKRUN_LOG_VAR)
        .pass_var(load_cases::BIG_MIB_VAR)
        .pass_var(krunbox::vm::SECCOMP_ENV)
        .with(|mut spec| {
            for (host, lab) in debian::lab_files() {
                spec = spec.file(host, lab);
            }
            // `cargo test` builds the examples; a case runs this one (and
            // fails, saying so, if it is missing).
            let example = example_cases::host_path();
            if example.exists() {
                spec = spec.executable(example);
            }
            spec = dependent::put_in_lab(spec);
            spec = python_cases::put_in_lab(spec);
            spec = oci_cases::put_in_lab(spec);
            spec = oci_clients::put_in_lab(spec);
            spec.executable(support::host_runner())
                // The image cases pull from a real registry on the lab's
                // loopback; a pulling client wants the system's CA
                // certificates, as on any host.
                .executable(REGISTRY)
                .file(CA_BUNDLE, CA_BUNDLE)
                .env(
                    "KRUNBOX_RUNNER",
                    format!("{}/krunbox", krunbox_lab::LAB_BIN),
                )
                .memory_mib(8192)
        })
}
