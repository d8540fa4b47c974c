//! What the cases need: a guest rootfs, the runner, a VM config.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use krunbox::runner::RunnerProgram;
use krunbox::vm::VmConfig;

/// Whether this process runs inside the nested lab.
pub fn in_lab() -> bool {
    std::env::var_os("KRUNBOX_LAB").is_some_and(|v| v == "1")
}

/// The krunbox CLI binary built alongside these tests.
pub fn host_runner() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_krunbox"))
}

/// The runner program: the lab's copy inside the lab, else the host's.
pub fn runner() -> PathBuf {
    match std::env::var_os("KRUNBOX_RUNNER") {
        Some(path) if in_lab() => PathBuf::from(path),
        _ => host_runner(),
    }
}

/// The krunbox CLI, for cases that drive it as a user would.
pub fn cli() -> Command {
    Command::new(runner())
}

/// A busybox guest rootfs: the lab's, `$KRUNBOX_TEST_ROOTFS`, or one
/// built once from the host's static busybox.
pub fn rootfs() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| match std::env::var_os("KRUNBOX_TEST_ROOTFS") {
            Some(dir) => PathBuf::from(dir),
            None => build_busybox_rootfs(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("rootfs")),
        })
        .clone()
}

/// A VM config on the test rootfs with the test runner.
pub fn vm() -> VmConfig {
    VmConfig::new(rootfs())
        .memory_mib(256)
        .runner(RunnerProgram::Path(runner()))
}

fn build_busybox_rootfs(dir: &Path) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "no /bin/busybox to build a guest rootfs from: install busybox-static \
         (cargo xtask setup) or set KRUNBOX_TEST_ROOTFS"
    );
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("create rootfs/bin");
    for sub in ["tmp", "proc", "sys", "dev", "etc", "root"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create rootfs dirs");
    }
    std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = bin.join(applet);
        if applet != "busybox" && !link.exists() {
            std::os::unix::fs::symlink("busybox", link).expect("applet symlink");
        }
    }
    dir.to_owned()
}
