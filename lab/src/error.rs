//! The one error type of the lab: what failed, with the cause as its source.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// How to fix a missing host prerequisite; appended to those errors.
const SETUP_HINT: &str = "run `cargo xtask setup`";

/// Everything that can stop a lab run before the command's exit code is known.
///
/// A command that runs and exits non-zero is not an error: see
/// [`LabRun::exit_code`](crate::LabRun::exit_code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// `qemu-system-x86_64` is not on `PATH`.
    #[error("qemu-system-x86_64 not found on PATH (package qemu-system-x86); {SETUP_HINT}")]
    QemuMissing,

    /// No kernel under `/boot` has the kvm modules the lab loads.
    #[error(
        "no kernel in {boot_dir} with kvm modules under {modules_dir} \
         (package linux-image-amd64); {SETUP_HINT}"
    )]
    KernelMissing {
        /// Where kernels were looked for.
        boot_dir: PathBuf,
        /// Where their modules were looked for.
        modules_dir: PathBuf,
    },

    /// A kernel module the lab loads is not where it should be.
    #[error(
        "kernel module {module} not found at {path} (package linux-image-amd64; \
         only uncompressed .ko files are supported); {SETUP_HINT}"
    )]
    ModuleMissing {
        /// Module name, e.g. `kvm-amd`.
        module: &'static str,
        /// The path that was expected.
        path: PathBuf,
    },

    /// `libkrunfw.so.5` (the libkrun guest kernel) is not installed.
    #[error("libkrunfw not found at {path} (package libkrunfw5); {SETUP_HINT}")]
    LibkrunfwMissing {
        /// The path that was tried.
        path: PathBuf,
        /// Why it could not be resolved.
        #[source]
        source: io::Error,
    },

    /// The static busybox the lab uses as its userland is not installed.
    #[error("static busybox not found at {path} (package busybox-static); {SETUP_HINT}")]
    BusyboxMissing {
        /// The path that was tried.
        path: PathBuf,
    },

    /// Listing busybox's applets failed.
    #[error("could not list the applets of {path}")]
    BusyboxApplets {
        /// The busybox binary.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// The [`LabSpec`](crate::LabSpec) cannot be run as given.
    #[error("invalid lab spec: {reason}")]
    InvalidSpec {
        /// What is wrong with it.
        reason: String,
    },

    /// A host file given to the lab could not be read.
    #[error("could not read {path} to put it into the lab")]
    ReadInput {
        /// The host file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },

    /// `ldd` could not be run on an executable.
    #[error("could not run ldd on {path}")]
    Ldd {
        /// The executable.
        path: PathBuf,
        /// Why it could not be run or what it reported.
        #[source]
        source: io::Error,
    },

    /// An executable needs a shared library that `ldd` cannot find.
    #[error("{binary} needs {library}, which ldd cannot find on this host")]
    LibraryNotFound {
        /// The executable.
        binary: PathBuf,
        /// The library's soname.
        library: String,
    },

    /// `strip` ran but failed on a file.
    #[error("strip --strip-debug failed on {path}")]
    Strip {
        /// The file being stripped.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },

    /// The work directory (staged files, initramfs, logs) could not be made.
    #[error("could not prepare the lab work directory under {path}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// Writing the initramfs failed.
    #[error("could not write the lab initramfs {path}")]
    Initramfs {
        /// The initramfs file being written.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// A guest rootfs directory could not be built on the host.
    #[error("could not build the guest rootfs directory {path}")]
    RootfsDir {
        /// The file or directory being written.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// QEMU could not be started.
    #[error("could not start {program}")]
    QemuSpawn {
        /// The QEMU binary.
        program: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// Reading a lab output channel or waiting for QEMU failed.
    #[error("lab I/O failed while {doing}")]
    Io {
        /// What the lab was doing.
        doing: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// The lab did not finish within the timeout; QEMU was killed.
    #[error(
        "lab timed out after {after:?}; QEMU was killed. Kernel console tail:\n{console_tail}"
    )]
    Timeout {
        /// The timeout that elapsed.
        after: Duration,
        /// The last lines of the L1 kernel console.
        console_tail: String,
    },

    /// The command had sent notes, then none came for the
    /// [`silence_limit`](crate::LabSpec::silence_limit): the lab is taken
    /// to hang, and QEMU was killed.
    #[error(
        "the lab sent no note for {silent_for:?} (it hangs); QEMU was killed. Kernel console \
         tail:\n{console_tail}"
    )]
    Silent {
        /// How long no note came.
        silent_for: Duration,
        /// The last lines of the L1 kernel console.
        console_tail: String,
        /// The notes the command sent before it fell silent.
        notes: Vec<String>,
    },

    /// The lab's init could not prepare the environment (e.g. no `/dev/kvm`).
    #[error("lab setup failed: {reason}. Kernel console tail:\n{console_tail}")]
    Setup {
        /// The reason init reported.
        reason: String,
        /// The last lines of the L1 kernel console.
        console_tail: String,
    },

    /// QEMU ended without the lab reporting the command's exit status
    /// (QEMU error, kernel panic, init crash, or a reset of the lab's
    /// kernel: `-no-reboot` turns a reset into QEMU exiting with status 0).
    #[error(
        "lab ended ({status}{how}) without reporting an exit status. QEMU said:\n{qemu_log}\n\
         Kernel console tail:\n{console_tail}",
        how = if status.success() { ": the lab's kernel reset or powered off" } else { "" }
    )]
    NoExitStatus {
        /// How QEMU exited.
        status: ExitStatus,
        /// QEMU's own stderr.
        qemu_log: String,
        /// The last lines of the L1 kernel console.
        console_tail: String,
        /// The notes the command sent before the lab ended
        /// (see [`note`](crate::note)).
        notes: Vec<String>,
    },
}
