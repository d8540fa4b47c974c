//! `krunbox doctor`: can this host boot VMs, and if not, what to do.

use std::path::Path;

use clap::Args;
use krunbox::host::{krunfw, HostConfinement, Kvm};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object: `can_boot`, and each check's `name`, `ok`,
    /// `what` and `advice`.
    #[arg(long)]
    json: bool,
}

/// One line of the report.
#[derive(serde::Serialize)]
struct Check {
    /// Which check (`libkrun`, `libkrunfw`, `kvm`, `lab`, `confinement`).
    name: &'static str,
    ok: bool,
    what: String,
    advice: Option<String>,
}

impl Check {
    fn print(&self) {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        println!("[{mark}] {}", self.what);
        if let Some(advice) = &self.advice {
            println!("       -> {advice}");
        }
    }
}

/// Exit 0 when VMs can boot here, else 125 (krunbox cannot do its job
/// on this host), with or without `--json`.
pub fn doctor(args: DoctorArgs) -> i32 {
    let kvm = Kvm::probe();
    let mut checks = vec![libkrun_check(), libkrunfw_check(), kvm_check(&kvm)];
    let can_boot = checks.iter().all(|c| c.ok);
    // The lab matters only where KVM is paravirtual.
    let lab = !can_boot && matches!(kvm, Kvm::Paravirtual);
    if lab {
        checks.push(lab_check());
    }
    checks.push(confinement_check());
    if args.json {
        let report = serde_json::json!({ "can_boot": can_boot, "checks": checks });
        println!("{report}");
    } else {
        for check in &checks {
            check.print();
        }
        println!(
            "{}",
            match (can_boot, lab) {
                (true, _) => "VMs can boot on this host.",
                (false, true) => {
                    "VMs cannot boot directly on this host: guests boot only in the nested \
                     lab (cargo xtask lab -- CMD)."
                }
                (false, false) => "VMs cannot boot on this host: see the FAIL lines above.",
            }
        );
    }
    if can_boot {
        0
    } else {
        super::EXIT_KRUNBOX_FAILED
    }
}

fn libkrun_check() -> Check {
    let (version, bundled) = krunbox::krun::library_version();
    let origin = if bundled {
        "bundled: built from the libkrun crate and linked into this binary"
    } else {
        "system library"
    };
    Check {
        name: "libkrun",
        ok: true,
        what: format!("libkrun {version} ({origin})"),
        advice: None,
    }
}

fn libkrunfw_check() -> Check {
    match krunfw::probe() {
        Ok(fw) => Check {
            name: "libkrunfw",
            ok: true,
            what: format!(
                "libkrunfw {} (ABI {}) at {}",
                fw.version.as_deref().unwrap_or("?"),
                fw.abi_version,
                fw.path.display()
            ),
            advice: None,
        },
        Err(e) => Check {
            name: "libkrunfw",
            ok: false,
            what: e.to_string(),
            advice: Some(e.advice().to_owned()),
        },
    }
}

fn kvm_check(kvm: &Kvm) -> Check {
    Check {
        name: "kvm",
        ok: kvm.can_boot(),
        what: kvm.describe(),
        advice: kvm.advice().map(str::to_owned),
    }
}

/// Whether the nested lab's tools are installed.
fn lab_check() -> Check {
    let qemu = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join("qemu-system-x86_64").is_file());
    let kernel = std::fs::read_dir("/boot")
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        })
        .unwrap_or(false);
    let modules = Path::new("/lib/modules").is_dir();
    let ok = qemu && kernel && modules;
    Check {
        name: "lab",
        ok,
        what: if ok {
            "nested lab: qemu-system-x86_64 and a lab kernel are installed".to_owned()
        } else {
            "nested lab: qemu-system-x86_64 or the lab kernel is missing".to_owned()
        },
        advice: (!ok).then(|| "cargo xtask setup".to_owned()),
    }
}

/// What the kernel offers to confine runners with. Never fails the
/// doctor: a runner boots with what there is (unless a VM requires
/// confinement), and the advice says what is missing.
fn confinement_check() -> Check {
    let host = HostConfinement::probe();
    Check {
        name: "confinement",
        ok: true,
        what: host.describe(),
        advice: host.advice(),
    }
}
