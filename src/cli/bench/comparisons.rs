//! Every comparison `bench` can make: two figures of the same run and,
//! where the project has one, a target for their ratio (stated in
//! `docs/bench.md`).

use std::borrow::Cow;

use super::stats::{ComparisonSpec, Target};
use super::{copy, host, image, launch, net, peer, provision, pull, python, vm_cases};

/// Every comparison `bench` can make; those whose figures were measured
/// are reported.
pub const COMPARISONS: &[ComparisonSpec] = &[
    ComparisonSpec {
        id: "boot_vs_floor",
        label: "boot to agent ready / bare libkrun boot+exit of /bin/true",
        krunbox: vm_cases::BOOT_READY,
        baseline: vm_cases::BOOT_FLOOR,
        target: Some(Target {
            max_ratio: 1.1,
            text: Cow::Borrowed("boot to agent ready <= 1.1x the floor"),
        }),
    },
    ComparisonSpec {
        id: "boot_confined_vs_unconfined",
        label: "boot to agent ready / the same with the runner not confined",
        krunbox: vm_cases::BOOT_READY,
        baseline: vm_cases::BOOT_UNCONFINED,
        target: Some(Target {
            max_ratio: 1.02,
            text: Cow::Borrowed("Landlock + seccomp cost <= 1.02x of boot"),
        }),
    },
    ComparisonSpec {
        id: "exec_true_vs_fresh_vm",
        label: "exec `true` on a running VM / a fresh VM for it",
        krunbox: vm_cases::EXEC_TRUE,
        baseline: vm_cases::FRESH_TRUE,
        target: None,
    },
    ComparisonSpec {
        id: "exec_true_vs_guest_floor",
        label: "exec `true` on a running VM / `true` spawned inside the guest",
        krunbox: vm_cases::EXEC_TRUE,
        baseline: vm_cases::GUEST_FLOOR_TRUE,
        target: Some(Target {
            max_ratio: 1.2,
            text: Cow::Borrowed("exec overhead <= 1.2x the guest's own spawn"),
        }),
    },
    ComparisonSpec {
        id: "exec_true_vs_round_trip",
        label: "exec `true` on a running VM / a request spawning nothing (the round trip)",
        krunbox: vm_cases::EXEC_TRUE,
        baseline: vm_cases::ROUND_TRIP,
        target: None,
    },
    ComparisonSpec {
        id: "exec_1mib_vs_fresh_vm",
        label: "exec printing 1 MiB on a running VM / a fresh VM for it",
        krunbox: vm_cases::EXEC_1MIB,
        baseline: vm_cases::FRESH_1MIB,
        target: None,
    },
    ComparisonSpec {
        id: "provision_vs_shell_out",
        label: "provision prompt + 10 skills in one request / one CLI process per operation",
        krunbox: provision::BATCHED,
        baseline: provision::SHELL_OUT,
        target: Some(Target {
            max_ratio: 1.0 / 20.0,
            text: Cow::Borrowed("provisioning >= 20x faster than one CLI process per copy"),
        }),
    },
    ComparisonSpec {
        id: "provision_rootfs_vs_tmpfs",
        label: "provision prompt + 10 skills into the rootfs (virtio-fs) / into a tmpfs",
        krunbox: provision::BATCHED_ROOTFS,
        baseline: provision::BATCHED,
        target: None,
    },
    ComparisonSpec {
        id: "copy_in_vs_virtiofs",
        label: "copy 64 MiB in / through a virtio-fs shared directory",
        krunbox: copy::COPY_IN,
        baseline: copy::VIRTIOFS_IN,
        target: Some(Target {
            max_ratio: 1.0,
            text: Cow::Borrowed("copy in at least as fast as virtio-fs"),
        }),
    },
    ComparisonSpec {
        id: "copy_out_vs_virtiofs",
        label: "copy 64 MiB out / through a virtio-fs shared directory",
        krunbox: copy::COPY_OUT,
        baseline: copy::VIRTIOFS_OUT,
        target: Some(Target {
            max_ratio: 1.0,
            text: Cow::Borrowed("copy out at least as fast as virtio-fs"),
        }),
    },
    ComparisonSpec {
        id: "host_exec_vs_fork_exec",
        label: "exec `true` via the agent on the host / local fork+exec",
        krunbox: host::AGENT_TRUE,
        baseline: host::LOCAL_TRUE,
        target: Some(Target {
            max_ratio: 1.3,
            text: Cow::Borrowed("exec round trip <= 1.3x a local fork/exec"),
        }),
    },
    ComparisonSpec {
        id: "image_boot_vs_rootfs",
        label: "image-style boot to first exec / --rootfs boot of the same tree",
        krunbox: image::OVERLAY_FIRST_EXEC,
        baseline: image::ROOTFS_FIRST_EXEC,
        target: Some(Target {
            max_ratio: 1.05,
            text: Cow::Borrowed("a cached image boots within 1.05x of --rootfs"),
        }),
    },
    ComparisonSpec {
        id: "image_host_work_vs_rootfs",
        label: "image-style boot / --rootfs boot: host work before krun_start_enter",
        krunbox: image::OVERLAY_ENTERED,
        baseline: image::ROOTFS_ENTERED,
        target: Some(Target {
            max_ratio: 1.1,
            text: Cow::Borrowed("no host work that grows with the image (<= 1.1x)"),
        }),
    },
    ComparisonSpec {
        id: "pull_vs_skopeo_umoci",
        label: "pull + unpack into an empty store / skopeo copy + umoci unpack",
        krunbox: pull::KRUNBOX_PULL,
        baseline: pull::SKOPEO_UMOCI,
        target: Some(Target {
            max_ratio: 1.0,
            text: Cow::Borrowed("pull + unpack at least as fast as skopeo + umoci"),
        }),
    },
    ComparisonSpec {
        id: "egress_setup_vs_tsi",
        label: "10 connections + first byte through the egress mode / plain TSI",
        krunbox: net::SETUP_EGRESS,
        baseline: net::SETUP_TSI,
        target: Some(Target {
            max_ratio: 1.5,
            text: Cow::Borrowed("egress connection setup <= 1.5x tsi"),
        }),
    },
    ComparisonSpec {
        id: "egress_download_vs_tsi",
        label: "64 MiB download through the egress mode / plain TSI",
        krunbox: net::DOWNLOAD_EGRESS,
        baseline: net::DOWNLOAD_TSI,
        target: Some(Target {
            max_ratio: 1.25,
            text: Cow::Borrowed("egress download throughput >= 0.8x tsi"),
        }),
    },
    ComparisonSpec {
        id: "launch_warm_vs_cold",
        label: "pool acquire -> first exec / cold boot -> first exec",
        krunbox: launch::WARM,
        baseline: launch::COLD,
        target: Some(Target {
            max_ratio: 0.01,
            text: Cow::Borrowed("a warm launch <= 0.01x a cold one"),
        }),
    },
    ComparisonSpec {
        id: "launch_burst_vs_cold",
        label: "acquire -> first exec, 20 at once from a pool of 3 / one cold boot alone",
        krunbox: launch::BURST_FIRST_EXEC,
        baseline: launch::COLD,
        target: None,
    },
    ComparisonSpec {
        id: "exec_true_vs_host_agent",
        label: "exec `true` on a running VM / the agent as a host process",
        krunbox: vm_cases::EXEC_TRUE,
        baseline: host::AGENT_TRUE,
        target: None,
    },
    ComparisonSpec {
        id: "python_exec_vs_rust",
        label: "exec `true` from the Python package / from the Rust library, same VM",
        krunbox: python::PYTHON,
        baseline: python::RUST,
        target: Some(Target {
            max_ratio: 1.2,
            text: Cow::Borrowed("the Python package's exec <= 1.2x the Rust library's"),
        }),
    },
    ComparisonSpec {
        id: "python_exec_vs_shell_out",
        label: "exec `true` from the Python package / subprocess.run(krunbox exec) per call",
        krunbox: python::PYTHON,
        baseline: python::SHELL_OUT,
        target: None,
    },
    ComparisonSpec {
        id: "peer_start",
        label: "start -> ready: krunbox CLI / smolvm CLI, each with its own kernel",
        krunbox: peer::KRUNBOX_START,
        baseline: peer::SMOLVM_START,
        target: None,
    },
    ComparisonSpec {
        id: "peer_start_same_kernel",
        label: "start -> ready: krunbox CLI with smolvm's libkrunfw / smolvm CLI",
        krunbox: peer::KRUNBOX_START_PEER_KERNEL,
        baseline: peer::SMOLVM_START,
        target: Some(Target {
            max_ratio: 0.9,
            text: Cow::Borrowed("start -> ready <= 0.9x smolvm, same libkrunfw"),
        }),
    },
    ComparisonSpec {
        id: "peer_first_exec",
        label: "first exec `true` after start: krunbox CLI / smolvm CLI",
        krunbox: peer::KRUNBOX_FIRST_EXEC,
        baseline: peer::SMOLVM_FIRST_EXEC,
        target: None,
    },
    ComparisonSpec {
        id: "peer_exec_true_lib",
        label: "exec `true`: krunbox library / smolvm CLI",
        krunbox: peer::KRUNBOX_LIB_TRUE,
        baseline: peer::SMOLVM_TRUE,
        target: Some(Target {
            max_ratio: 0.5,
            text: Cow::Borrowed("exec `true` from the library <= 0.5x smolvm's CLI"),
        }),
    },
    ComparisonSpec {
        id: "peer_exec_true_cli",
        label: "exec `true`: krunbox CLI / smolvm CLI",
        krunbox: peer::KRUNBOX_CLI_TRUE,
        baseline: peer::SMOLVM_TRUE,
        target: Some(Target {
            max_ratio: 0.8,
            text: Cow::Borrowed("exec `true` from the CLI <= 0.8x smolvm's CLI"),
        }),
    },
    ComparisonSpec {
        id: "peer_exec_1mib_cli",
        label: "exec printing 1 MiB: krunbox CLI / smolvm CLI",
        krunbox: peer::KRUNBOX_CLI_1MIB,
        baseline: peer::SMOLVM_1MIB,
        target: None,
    },
    ComparisonSpec {
        id: "peer_cp_in",
        label: "cp 4 KiB in: krunbox CLI / smolvm CLI",
        krunbox: peer::KRUNBOX_CP_IN,
        baseline: peer::SMOLVM_CP_IN,
        target: Some(Target {
            max_ratio: 0.7,
            text: Cow::Borrowed("cp 4 KiB in <= 0.7x smolvm"),
        }),
    },
    ComparisonSpec {
        id: "peer_cp_out",
        label: "cp 4 KiB out: krunbox CLI / smolvm CLI",
        krunbox: peer::KRUNBOX_CP_OUT,
        baseline: peer::SMOLVM_CP_OUT,
        target: Some(Target {
            max_ratio: 0.7,
            text: Cow::Borrowed("cp 4 KiB out <= 0.7x smolvm"),
        }),
    },
    ComparisonSpec {
        id: "peer_provision",
        label: "prompt + 10 skills: krunbox library, one request / smolvm CLI, a process per op",
        krunbox: peer::KRUNBOX_PROVISION,
        baseline: peer::SMOLVM_PROVISION,
        target: Some(Target {
            max_ratio: 0.05,
            text: Cow::Borrowed("provisioning <= 0.05x smolvm's process per operation"),
        }),
    },
    ComparisonSpec {
        id: "peer_stop",
        label: "stop: krunbox CLI / smolvm CLI",
        krunbox: peer::KRUNBOX_STOP,
        baseline: peer::SMOLVM_STOP,
        target: None,
    },
];

#[cfg(test)]
mod tests {
    use super::COMPARISONS;

    /// docs/bench.md states every target with the text the report prints,
    /// and states no target the code lacks.
    #[test]
    fn the_docs_state_the_targets_the_report_prints() {
        let docs = include_str!("../../../docs/bench.md");
        let rows: Vec<&str> = docs.lines().filter(|l| l.starts_with("| `")).collect();
        for spec in COMPARISONS {
            let row = rows
                .iter()
                .find(|r| r.starts_with(&format!("| `{}` |", spec.id)));
            match (&spec.target, row) {
                (Some(target), Some(row)) => assert!(
                    row.contains(&format!("| {} |", target.text)),
                    "docs/bench.md states {} otherwise: {row}",
                    spec.id
                ),
                (Some(_), None) => panic!("docs/bench.md lacks the target of {}", spec.id),
                (None, Some(row)) => panic!("docs/bench.md states a target the code lacks: {row}"),
                (None, None) => {}
            }
        }
        assert_eq!(
            rows.len(),
            COMPARISONS.iter().filter(|s| s.target.is_some()).count(),
            "docs/bench.md has rows for comparisons the code does not make"
        );
    }
}
