//! The runner's system calls, fenced with seccomp: after [`install`] every
//! thread of the runner may make only the calls in [`ALLOWED`]; any other
//! ends the runner with a report ([`super::sigsys`]), or, in
//! [`SeccompMode::Log`], is let through and logged by the kernel.
//!
//! Two filters, both on every thread (`SECCOMP_FILTER_FLAG_TSYNC`):
//!
//! 1. **refusals**: `socket` for a family the VM does not need fails with
//!    `EACCES` (under `--net none` only `AF_UNIX`, the agent's; with TSI
//!    also `AF_INET` and `AF_INET6`, the guest's connections), and so do
//!    the terminal `ioctl`s of [`REFUSED_IOCTLS`] (`TIOCSTI` would push
//!    input into the caller's terminal);
//! 2. **the allow-list**: [`ALLOWED`], measured (docs/security.md, "What a
//!    runner calls"), and `kill`/`tgkill` aimed at the runner itself;
//!    anything else traps.
//!
//! The list is x86_64's; on another architecture no filter is installed
//! and the report says so.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::{Applied, SeccompMode};
use crate::runner::config::{NetMode, RunnerConfig};

/// Why the filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SeccompError {
    /// The filter could not be compiled.
    #[error("the filter does not compile")]
    Build(#[source] seccompiler::BackendError),
    /// The kernel refused the filter.
    #[error("the kernel refused the filter")]
    Install(#[source] seccompiler::Error),
    /// The SIGSYS handler could not be installed.
    #[error("cannot install the SIGSYS handler that reports a violation")]
    Handler(#[source] std::io::Error),
}

/// The calls a runner makes from `krun_start_enter` on: libkrun's VMM and
/// devices, the Rust runtime under them, and glibc's own.
#[cfg(target_arch = "x86_64")]
pub(super) const ALLOWED: &[i64] = {
    use libc::*;
    &[
        // Memory.
        SYS_brk,
        SYS_mmap,
        SYS_mprotect,
        SYS_munmap,
        SYS_mremap,
        SYS_madvise,
        SYS_memfd_create,
        // Threads, processes, time.
        SYS_clone,
        SYS_clone3,
        SYS_exit,
        SYS_exit_group,
        SYS_futex,
        SYS_set_robust_list,
        SYS_rseq,
        SYS_sched_yield,
        SYS_sched_getaffinity,
        SYS_sched_setaffinity,
        SYS_gettid,
        SYS_getpid,
        SYS_getppid,
        SYS_getuid,
        SYS_geteuid,
        SYS_getgid,
        SYS_getegid,
        SYS_getresuid,
        SYS_getresgid,
        // virtio-fs run as root: each request under the guest's ids
        // (per thread), and CAP_FSETID dropped around writes.
        SYS_setresuid,
        SYS_setresgid,
        SYS_capget,
        SYS_capset,
        SYS_prctl,
        SYS_prlimit64,
        SYS_getrlimit,
        SYS_uname,
        SYS_wait4,
        SYS_clock_gettime,
        SYS_clock_getres,
        SYS_gettimeofday,
        SYS_clock_nanosleep,
        SYS_nanosleep,
        SYS_restart_syscall,
        SYS_membarrier,
        SYS_getrandom,
        SYS_arch_prctl,
        SYS_set_tid_address,
        // Signals.
        SYS_rt_sigaction,
        SYS_rt_sigprocmask,
        SYS_rt_sigreturn,
        SYS_rt_sigtimedwait,
        SYS_sigaltstack,
        // Descriptors and waiting.
        SYS_close,
        SYS_close_range,
        SYS_dup,
        SYS_dup2,
        SYS_dup3,
        SYS_fcntl,
        SYS_ioctl,
        SYS_pipe2,
        SYS_eventfd2,
        SYS_timerfd_create,
        SYS_timerfd_settime,
        SYS_timerfd_gettime,
        SYS_epoll_create1,
        SYS_epoll_ctl,
        SYS_epoll_wait,
        SYS_epoll_pwait,
        SYS_poll,
        SYS_ppoll,
        // I/O.
        SYS_read,
        SYS_write,
        SYS_readv,
        SYS_writev,
        SYS_pread64,
        SYS_pwrite64,
        SYS_preadv,
        SYS_pwritev,
        SYS_preadv2,
        SYS_pwritev2,
        SYS_lseek,
        SYS_sendfile,
        SYS_copy_file_range,
        SYS_fsync,
        SYS_fdatasync,
        SYS_syncfs,
        SYS_fallocate,
        SYS_ftruncate,
        // Files, beneath the shares (virtio-fs), by descriptor.
        SYS_openat,
        SYS_open_by_handle_at,
        SYS_name_to_handle_at,
        SYS_newfstatat,
        SYS_fstat,
        SYS_statx,
        SYS_fstatfs,
        SYS_statfs,
        SYS_getdents64,
        SYS_readlinkat,
        SYS_readlink,
        SYS_access,
        SYS_faccessat,
        SYS_faccessat2,
        SYS_mkdirat,
        SYS_mkdir,
        SYS_mknodat,
        SYS_symlinkat,
        SYS_linkat,
        SYS_unlinkat,
        SYS_unlink,
        SYS_rename,
        SYS_renameat,
        SYS_renameat2,
        SYS_fchmod,
        SYS_fchmodat,
        SYS_fchown,
        SYS_fchownat,
        SYS_utimensat,
        SYS_umask,
        SYS_fchdir,
        SYS_getcwd,
        SYS_fgetxattr,
        SYS_fsetxattr,
        SYS_flistxattr,
        SYS_fremovexattr,
        SYS_getxattr,
        SYS_lgetxattr,
        SYS_setxattr,
        SYS_lsetxattr,
        SYS_listxattr,
        SYS_llistxattr,
        SYS_removexattr,
        SYS_lremovexattr,
        SYS_flock,
        // Sockets: the agent's unix sockets, TSI's, published ports.
        SYS_socket,
        SYS_socketpair,
        SYS_bind,
        SYS_listen,
        SYS_accept,
        SYS_accept4,
        SYS_connect,
        SYS_getsockname,
        SYS_getpeername,
        SYS_getsockopt,
        SYS_setsockopt,
        SYS_sendto,
        SYS_recvfrom,
        SYS_sendmsg,
        SYS_recvmsg,
        SYS_sendmmsg,
        SYS_shutdown,
    ]
};

/// Calls allowed only on the runner itself (their first argument is its
/// pid): a signal to one of its own threads, or to itself.
#[cfg(target_arch = "x86_64")]
const OWN_PROCESS_ONLY: &[i64] = &[libc::SYS_kill, libc::SYS_tgkill];

/// `ioctl` requests refused whatever the descriptor: those that act on a
/// terminal the runner may hold (the caller's, under `run -t`) beyond
/// its own I/O: pushing input into it, and the console's own requests.
const REFUSED_IOCTLS: &[u64] = &[libc::TIOCSTI, libc::TIOCLINUX];

/// Installs the filters `config` asks for on every thread, with the
/// handler that reports a violation.
#[cfg(target_arch = "x86_64")]
pub(super) fn install(config: &RunnerConfig) -> Result<Applied, SeccompError> {
    let mode = config.confinement.seccomp;
    let mismatch = match mode {
        SeccompMode::Off => return Ok(Applied::Off),
        SeccompMode::Enforce => SeccompAction::Trap,
        SeccompMode::Log => SeccompAction::Log,
    };
    let refused = refusals(config.net)?;
    let allowed = allow_list(mismatch, std::process::id())?;
    super::sigsys::install_handler().map_err(SeccompError::Handler)?;
    // The refusals first: once the allow-list is in, `seccomp` itself is
    // outside it.
    for program in [refused, allowed] {
        seccompiler::apply_filter_all_threads(&program).map_err(SeccompError::Install)?;
    }
    Ok(match mode {
        SeccompMode::Log => Applied::Logging,
        _ => Applied::Full,
    })
}

/// No allow-list for this architecture.
#[cfg(not(target_arch = "x86_64"))]
pub(super) fn install(config: &RunnerConfig) -> Result<Applied, SeccompError> {
    Ok(match config.confinement.seccomp {
        SeccompMode::Off => Applied::Off,
        _ => Applied::Unavailable(format!(
            "krunbox has no system call list for {}",
            std::env::consts::ARCH
        )),
    })
}

/// [`ALLOWED`] let through, and [`OWN_PROCESS_ONLY`] on process `pid`;
/// anything else `mismatch`.
#[cfg(target_arch = "x86_64")]
fn allow_list(mismatch: SeccompAction, pid: u32) -> Result<BpfProgram, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED.iter().map(|&call| (call, Vec::new())).collect();
    for &call in OWN_PROCESS_ONLY {
        let own = rule(&[(0, SeccompCmpOp::Eq, u64::from(pid))])?;
        rules.insert(call, vec![own]);
    }
    compile(rules, mismatch, SeccompAction::Allow)
}

/// One rule: all of `(argument, operator, value)` hold.
fn rule(conditions: &[(u8, SeccompCmpOp, u64)]) -> Result<SeccompRule, SeccompError> {
    conditions
        .iter()
        .map(|(arg, op, value)| {
            SeccompCondition::new(*arg, SeccompCmpArgLen::Dword, op.clone(), *value)
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(SeccompRule::new)
        .map_err(SeccompError::Build)
}

/// What fails with `EACCES` instead of running: `socket` for a family
/// outside those `net` needs, and the [`REFUSED_IOCTLS`].
fn refusals(net: NetMode) -> Result<BpfProgram, SeccompError> {
    let families: &[i32] = match net {
        NetMode::None => &[libc::AF_UNIX],
        NetMode::Tsi | NetMode::Egress => &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6],
    };
    // The family is none of these.
    let outside: Vec<_> = families
        .iter()
        .map(|&family| (0, SeccompCmpOp::Ne, family as u64))
        .collect();
    let ioctls = REFUSED_IOCTLS
        .iter()
        .map(|&request| rule(&[(1, SeccompCmpOp::Eq, request)]))
        .collect::<Result<Vec<_>, _>>()?;
    let rules = BTreeMap::from([
        (libc::SYS_socket, vec![rule(&outside)?]),
        (libc::SYS_ioctl, ioctls),
    ]);
    compile(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
    )
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SeccompError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(SeccompError::Build)?;
    SeccompFilter::new(rules, mismatch, matched, arch)
        .and_then(BpfProgram::try_from)
        .map_err(SeccompError::Build)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_list_compiles_and_keeps_out_what_a_runner_never_needs() {
        assert!(allow_list(SeccompAction::Trap, std::process::id()).is_ok());
        assert!(refusals(NetMode::None).is_ok());
        assert!(refusals(NetMode::Tsi).is_ok());
        for never in [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_chroot,
            libc::SYS_setns,
            libc::SYS_unshare,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_kexec_load,
            libc::SYS_reboot,
            libc::SYS_setuid,
            libc::SYS_setgid,
            libc::SYS_userfaultfd,
            libc::SYS_io_uring_setup,
            libc::SYS_kill,
            libc::SYS_tgkill,
            libc::SYS_tkill,
        ] {
            assert!(!ALLOWED.contains(&never), "system call {never} is allowed");
        }
        let mut sorted = ALLOWED.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ALLOWED.len(), "a call is listed twice");
    }

    /// Runs `body` in a forked child under the refusals and the
    /// allow-list (trapping, no handler: SIGSYS ends the child); its end.
    fn under_filters(body: fn() -> i32) -> nix::sys::wait::WaitStatus {
        use nix::sys::wait::waitpid;
        use nix::unistd::{fork, ForkResult};
        // SAFETY: the child makes system calls only (prctl, seccomp, the
        // body's) on data built before the fork, then leaves with _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let refused = refusals(NetMode::None).expect("refusals");
                let allowed =
                    allow_list(SeccompAction::Trap, std::process::id()).expect("allow-list");
                let code = match (
                    no_new_privs_raw(),
                    seccompiler::apply_filter(&refused),
                    seccompiler::apply_filter(&allowed),
                ) {
                    (true, Ok(()), Ok(())) => body(),
                    _ => 100,
                };
                // SAFETY: ends the child without running the parent's atexit.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
        }
    }

    fn no_new_privs_raw() -> bool {
        // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes integers only.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 }
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    #[test]
    fn the_filters_refuse_and_trap_on_a_real_kernel() {
        use nix::sys::wait::WaitStatus;
        // Pushing input into a terminal: refused, whatever fd 0 is.
        let tiocsti = under_filters(|| {
            let byte = b'x';
            // SAFETY: TIOCSTI reads one byte from the pointer given.
            let rc = unsafe { libc::ioctl(0, libc::TIOCSTI, &byte) };
            if rc < 0 && errno() == libc::EACCES {
                0
            } else {
                1
            }
        });
        assert!(matches!(tiocsti, WaitStatus::Exited(_, 0)), "{tiocsti:?}");
        // An IP socket under --net none: refused; a unix one: allowed.
        let inet = under_filters(|| {
            // SAFETY: socket takes integers only.
            let inet = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            let inet_errno = errno();
            // SAFETY: as above.
            let unix = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
            if inet < 0 && inet_errno == libc::EACCES && unix >= 0 {
                0
            } else {
                1
            }
        });
        assert!(matches!(inet, WaitStatus::Exited(_, 0)), "{inet:?}");
        // A signal to itself: allowed; to another process: the trap.
        let own = under_filters(|| {
            // SAFETY: signal 0 to this process only checks it exists.
            unsafe { libc::kill(libc::getpid(), 0) }
        });
        assert!(matches!(own, WaitStatus::Exited(_, 0)), "{own:?}");
        let other = under_filters(|| {
            // SAFETY: signal 0 sends nothing; the filter traps first.
            unsafe { libc::kill(1, 0) }
        });
        assert!(
            matches!(
                other,
                WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _)
            ),
            "{other:?}"
        );
    }
}
