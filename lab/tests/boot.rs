//! Boots a real lab (about 10–20 s under emulation) and checks what comes
//! back: stdout and stderr apart and unmangled, the exit code, `/dev/kvm`,
//! the guest test rootfs and a staged file.

use std::time::Duration;

use krunbox_lab::{HostPaths, LabError, LabSpec, KVM_MODULES, TEST_ROOTFS};

#[test]
fn boots_runs_a_command_and_reports_its_exit_code() {
    let script = r#"
        echo hi
        echo oops >&2
        [ -c /dev/kvm ] && echo "kvm ok"
        [ -x "$KRUNBOX_TEST_ROOTFS/bin/busybox" ] && echo "rootfs $KRUNBOX_TEST_ROOTFS"
        [ -e /usr/lib/x86_64-linux-gnu/libkrunfw.so.5 ] && echo "libkrunfw ok"
        cat /data/greeting
        printf 'a\tb\r\n'
        echo "note from the command" > "$KRUNBOX_LAB_NOTES"
        exit 3
    "#;
    let greeting = std::env::temp_dir().join(format!("lab-greeting-{}", std::process::id()));
    std::fs::write(&greeting, "hello from the host\n").unwrap();
    let result = LabSpec::new(["sh", "-c", script])
        .file(&greeting, "/data/greeting")
        .env("LAB_TEST", "it's set")
        .timeout(Duration::from_secs(300))
        .work_dir(env!("CARGO_TARGET_TMPDIR"))
        .run();
    let _ = std::fs::remove_file(&greeting);
    let run = result.unwrap_or_else(|e| panic!("lab failed: {e}"));

    assert_eq!(run.exit_code, 3, "console:\n{}", run.console_log);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        format!("hi\nkvm ok\nrootfs {TEST_ROOTFS}\nlibkrunfw ok\nhello from the host\na\tb\r\n")
    );
    assert_eq!(run.stderr, b"oops\n");
    assert_eq!(run.notes, ["from the command"]);
    assert!(run.boot_time > Duration::ZERO && run.boot_time <= run.run_time);
    eprintln!(
        "lab: prepare {:?}, boot {:?} (guest uptime {:?}), run {:?}, initramfs {} MiB",
        run.prepare_time,
        run.boot_time,
        run.guest_uptime_at_start,
        run.run_time,
        run.initramfs_bytes >> 20
    );
}

#[test]
fn a_lab_without_dev_kvm_fails_with_the_reason() {
    // kvm-intel in place of kvm-amd: it refuses to load on the emulated
    // AMD CPU, so init must stop and say why instead of running the command.
    let mut host = HostPaths::discover().unwrap_or_else(|e| panic!("{e}"));
    let modules = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for (name, relative) in KVM_MODULES {
        let source = match name {
            "kvm-amd" => host.modules_dir.join("kernel/arch/x86/kvm/kvm-intel.ko"),
            _ => host.module(name),
        };
        let target = modules.path().join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(source, target).unwrap();
    }
    host.modules_dir = modules.path().to_owned();
    let err = lab_error(LabSpec::new(["echo", "must not run"]).host_paths(host));
    match &err {
        LabError::Setup { reason, .. } => assert_eq!(reason, "insmod kvm-amd failed"),
        other => panic!("expected a setup error, got {other}"),
    }
}

#[test]
fn notes_come_back_when_the_lab_dies() {
    // A reset of the lab's kernel (how an emulation fault ends it): QEMU
    // exits 0, no exit status is reported, the notes sent before survive.
    let script = r#"
        echo "note case-end one ok" > "$KRUNBOX_LAB_NOTES"
        echo "note case-start two" > "$KRUNBOX_LAB_NOTES"
        echo b > /proc/sysrq-trigger
        sleep 60
    "#;
    let err = lab_error(LabSpec::new(["sh", "-c", script]));
    match &err {
        LabError::NoExitStatus { status, notes, .. } => {
            assert!(status.success(), "{err}");
            assert_eq!(notes, &["case-end one ok", "case-start two"]);
            assert!(err.to_string().contains("the lab's kernel reset"), "{err}");
        }
        other => panic!("expected the lab to end without an exit status, got {other}"),
    }
}

#[test]
fn a_lab_silent_past_its_limit_is_given_up() {
    // Notes, then none (as when the lab's kernel hangs): the host kills
    // QEMU after the silence limit, long before the timeout.
    let script = r#"
        echo "note alive" > "$KRUNBOX_LAB_NOTES"
        echo "note alive" > "$KRUNBOX_LAB_NOTES"
        sleep 600
    "#;
    let err = lab_error(LabSpec::new(["sh", "-c", script]).silence_limit(Duration::from_secs(5)));
    match &err {
        LabError::Silent {
            silent_for, notes, ..
        } => {
            assert!(*silent_for >= Duration::from_secs(5), "{err}");
            assert_eq!(notes, &["alive", "alive"]);
        }
        other => panic!("expected the lab to be given up as silent, got {other}"),
    }
}

/// Runs `spec` (5 min at most, in the target's temp dir), which must fail.
fn lab_error(spec: LabSpec) -> LabError {
    spec.timeout(Duration::from_secs(300))
        .work_dir(env!("CARGO_TARGET_TMPDIR"))
        .run()
        .expect_err("the lab run should fail")
}
