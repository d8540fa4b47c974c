//! The nested QEMU lab: run a command (typically a test binary that boots
//! libkrun guests) inside an L1 VM that has a working `/dev/kvm`.
//!
//! This project's machines have a paravirtual KVM (`kvm_pvm`) that cannot
//! run libkrun's guest kernel (`krunbox::host::Kvm` tells). The lab boots a Debian
//! kernel under QEMU with software emulation and `-cpu max`, whose emulated
//! AMD-V lets the L1 kernel load `kvm` and `kvm-amd`; inside, libkrun
//! works. One lab boot can run many VM test cases: the command is the
//! whole test binary.
//!
//! What the lab holds (an uncompressed newc initramfs, built per run):
//!
//! - busybox as `/bin`, an `/init` script (see the `init_script` module)
//!   that mounts the usual filesystems, loads the kvm modules, checks
//!   `/dev/kvm`, runs the command and powers off;
//! - `libkrunfw.so.5` where the dynamic loader finds it;
//! - a guest test rootfs (static busybox) at [`TEST_ROOTFS`], exported to
//!   the command as `KRUNBOX_TEST_ROOTFS`;
//! - the caller's files ([`LabSpec::file`], [`LabSpec::executable`] into
//!   [`LAB_BIN`], first on `PATH`), stripped, with their shared libraries.
//!
//! The command's stdout and stderr come out on their own serial ports,
//! raw, and are streamed to this process as they arrive; its exit status
//! comes back on a third; the kernel console goes to a log returned in
//! [`LabRun::console_log`] and quoted in errors. The command can send
//! the host notes with [`note`] (e.g. which test cases finished), which
//! come back even when the lab dies before the command ends.
//!
//! Host packages: `cargo xtask setup` installs them.

mod cpio;
mod error;
mod host;
mod init_script;
mod initramfs;
mod kernel;
mod ldd;
mod note;
mod qemu;
mod rootfs;
mod run;
mod spec;

use std::path::PathBuf;
use std::time::Duration;

pub use error::LabError;
pub use host::{HostPaths, KVM_MODULES};
pub use note::{note, NOTES_VAR};
pub use rootfs::{build_busybox_rootfs, TEST_ROOTFS};
pub use spec::{LabSpec, LAB_BIN};

/// How a lab run ended: the command ran and exited with [`exit_code`].
///
/// [`exit_code`]: LabRun::exit_code
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LabRun {
    /// The command's exit code as the lab's shell saw it (`128 + n` when
    /// killed by signal `n`, 127 when not found).
    pub exit_code: i32,
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
    /// The L1 kernel console (kernel messages and init's own), `\n` line ends.
    pub console_log: String,
    /// From starting QEMU to the command starting, as seen by the host
    /// (polled every 20 ms).
    pub boot_time: Duration,
    /// The L1 kernel's uptime when the command started (excludes QEMU's
    /// and the firmware's start-up).
    pub guest_uptime_at_start: Option<Duration>,
    /// Checking the host and building the initramfs.
    pub prepare_time: Duration,
    /// From starting QEMU to its exit.
    pub run_time: Duration,
    /// Size of the initramfs.
    pub initramfs_bytes: u64,
    /// The kernel QEMU booted: a cached `vmlinux` extracted from the
    /// host's bzImage (PVH boot, skipping ~4 s of decompression under
    /// emulation), or the bzImage itself when that is not possible.
    pub kernel_image: PathBuf,
    /// The lines the command sent with [`note`], in order.
    pub notes: Vec<String>,
}

impl LabRun {
    /// Whether the command exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}
