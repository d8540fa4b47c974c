//! One lab run: check the host, build the initramfs, boot, collect.

use std::env;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::host::{HostPaths, KVM_MODULES};
use crate::init_script::{InitScript, MODULES_DIR};
use crate::initramfs::{Layout, Node, Stager};
use crate::kernel;
use crate::qemu::{Channels, Qemu};
use crate::rootfs::{self, TEST_ROOTFS};
use crate::{LabError, LabRun, LabSpec};

/// Where libkrunfw goes in the lab: a directory the dynamic loader searches,
/// under the name libkrun `dlopen`s.
/// Directory, next to the runs' work dirs, caching extracted kernels.
const KERNEL_CACHE: &str = "krunbox-lab-kernels";

pub(crate) const LIBKRUNFW_LAB_PATH: &str = "/usr/lib/x86_64-linux-gnu/libkrunfw.so.5";

pub(crate) fn run(spec: &LabSpec) -> Result<LabRun, LabError> {
    let started = Instant::now();
    spec.validate()?;
    let files = spec.file_targets()?;
    let host = match &spec.host {
        Some(host) => {
            host.check()?;
            host.clone()
        }
        None => HostPaths::discover()?,
    };

    let parent = spec.work_dir.clone().unwrap_or_else(env::temp_dir);
    let work_err = |source| LabError::WorkDir {
        path: parent.clone(),
        source,
    };
    fs::create_dir_all(&parent).map_err(work_err)?;
    // Removed when dropped, at the end of this function whatever happens.
    let work = tempfile::Builder::new()
        .prefix("krunbox-lab-")
        .tempdir_in(&parent)
        .map_err(work_err)?;
    let staging = work.path().join("staged");
    fs::create_dir(&staging).map_err(work_err)?;

    let layout = build_layout(spec, &host, &files, &staging)?;
    let initramfs = work.path().join("initramfs.cpio");
    layout.write(&initramfs)?;
    let initramfs_bytes = fs::metadata(&initramfs).map_or(0, |m| m.len());

    let kernel_image = kernel::boot_image(&host.kernel, &parent.join(KERNEL_CACHE));
    let prepare_time = started.elapsed();

    let channels = Channels::in_dir(work.path());
    let qemu = Qemu {
        host: &host,
        kernel: &kernel_image,
        initramfs: &initramfs,
        memory_mib: spec.memory_mib,
        cpus: spec.cpus,
        channels: &channels,
    };
    let remaining = spec.timeout.saturating_sub(prepare_time);
    let outcome = qemu
        .run(remaining, spec.silence_limit, spec.stream_output)
        .map_err(|e| match e {
            LabError::Timeout { console_tail, .. } => LabError::Timeout {
                after: spec.timeout,
                console_tail,
            },
            other => other,
        })?;
    Ok(LabRun {
        exit_code: outcome.exit_code,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        console_log: outcome.console,
        boot_time: outcome.boot_time.unwrap_or(outcome.total_time),
        guest_uptime_at_start: outcome
            .guest_uptime_at_start
            .and_then(|s| s.parse::<f64>().ok())
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok()),
        prepare_time,
        run_time: outcome.total_time,
        initramfs_bytes,
        kernel_image,
        notes: outcome.notes,
    })
}

/// Everything the lab holds: busybox userland, init, modules, libkrunfw,
/// the guest test rootfs and the caller's files.
fn build_layout(
    spec: &LabSpec,
    host: &HostPaths,
    files: &[(std::path::PathBuf, String)],
    staging: &Path,
) -> Result<Layout, LabError> {
    let mut layout = Layout::default();
    rootfs::add_skeleton(&mut layout, "/")?;
    layout.add(
        "/dev/console",
        Node::CharDev {
            major: 5,
            minor: 1,
            mode: 0o600,
        },
    )?;
    let applets = rootfs::applets(&host.busybox)?;
    rootfs::add_busybox_bin(&mut layout, "/", &host.busybox, &applets)?;
    rootfs::add_test_rootfs(&mut layout, &host.busybox, &applets)?;
    layout.add(crate::LAB_BIN, Node::Dir { mode: 0o755 })?;
    for (module, _) in KVM_MODULES {
        layout.add(
            &format!("{MODULES_DIR}/{module}.ko"),
            Node::HostFile {
                path: host.module(module),
                mode: 0o644,
            },
        )?;
    }

    let env = lab_env(spec);
    let script = InitScript {
        env: &env,
        argv: &spec.argv,
    }
    .render();
    layout.add(
        "/init",
        Node::Bytes {
            data: script.into_bytes(),
            mode: 0o755,
        },
    )?;

    let mut stager = Stager::new(&mut layout, staging);
    stager.add(&host.libkrunfw_file()?, LIBKRUNFW_LAB_PATH)?;
    for (host_path, lab_path) in files {
        stager.add(host_path, lab_path)?;
    }
    Ok(layout)
}

/// The lab's variables, then the caller's (later exports win).
fn lab_env(spec: &LabSpec) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("KRUNBOX_LAB", "1"),
        (crate::note::NOTES_VAR, crate::init_script::STATUS_TTY),
        ("KRUNBOX_TEST_ROOTFS", TEST_ROOTFS),
        ("HOME", "/root"),
        ("TMPDIR", "/tmp"),
        (
            "LD_LIBRARY_PATH",
            "/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu",
        ),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    env.extend(spec.env.iter().cloned());
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_env_comes_after_the_labs() {
        let spec = LabSpec::new(["true"]).env("HOME", "/tmp/home");
        let env = lab_env(&spec);
        let home: Vec<&str> = env
            .iter()
            .filter(|(k, _)| k == "HOME")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(home, ["/root", "/tmp/home"]);
        assert!(env.contains(&("KRUNBOX_TEST_ROOTFS".into(), "/lab/rootfs".into())));
    }

    #[test]
    fn full_layout_on_this_host() {
        let Ok(host) = HostPaths::discover() else {
            eprintln!("lab prerequisites missing; skipping");
            return;
        };
        let work = tempfile::tempdir().unwrap();
        let spec = LabSpec::new(["sh", "-c", "true"]);
        let layout = build_layout(&spec, &host, &[], work.path()).unwrap();
        for path in [
            "/init",
            "/bin/busybox",
            "/bin/sh",
            "/dev/console",
            "/lab/modules/irqbypass.ko",
            "/lab/modules/kvm-amd.ko",
            LIBKRUNFW_LAB_PATH,
            "/lab/rootfs/bin/busybox",
            "/lab/rootfs/bin/sh",
            "/lab/rootfs/tmp",
        ] {
            assert!(layout.get(path).is_some(), "{path} missing");
        }
    }
}
