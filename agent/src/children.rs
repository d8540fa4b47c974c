//! The process groups the agent started, so that they can be killed when
//! the host goes away, and so that, running as PID 1 in the guest, the
//! agent reaps orphans without stealing its own children's exit statuses.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Spawns `cmd` and records its pid (also its process group id) while the
/// registry is locked, so the reaper never sees it untracked. The process
/// starts with every signal at its default action, as a container's
/// does: a signal the agent inherited as ignored (SIGINT and SIGQUIT
/// are, when a non-interactive shell starts it in the background) would
/// otherwise stay ignored through exec, and `^C` in a terminal session
/// would do nothing.
pub fn spawn_tracked(cmd: &mut Command) -> io::Result<Child> {
    // SAFETY: the closure runs in the forked child before exec and only
    // calls signal(2), which is async-signal-safe; it touches no memory of
    // the parent's.
    unsafe {
        cmd.pre_exec(|| {
            for signal in 1..=libc::SIGRTMAX() {
                // SIGKILL, SIGSTOP and signals the C library reserves
                // refuse; their dispositions are default anyway.
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut live = live();
    let child = cmd.spawn()?;
    live.insert(child.id() as i32);
    Ok(child)
}

/// Forgets a process once it has been waited for.
pub fn untrack(pid: i32) {
    live().remove(&pid);
}

/// Sends `signal` to the process group `pid` if it is still tracked.
pub fn signal_group(pid: i32, signal: i32) -> io::Result<()> {
    let signal = Signal::try_from(signal)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "unknown signal number"))?;
    if !live().contains(&pid) {
        return Ok(());
    }
    killpg(Pid::from_raw(pid), signal).map_err(|e| io::Error::from_raw_os_error(e as i32))
}

/// SIGKILLs every tracked process group (the host went away or asked for
/// shutdown).
pub fn kill_all() {
    for pid in live().iter() {
        let _ = killpg(Pid::from_raw(*pid), Signal::SIGKILL);
    }
}

/// As PID 1, reaps exited processes that are not the agent's own children
/// (orphans reparented to it). Runs forever on its own thread.
pub fn reap_orphans() {
    loop {
        let peek = waitid(
            Id::All,
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        );
        let pid = match peek {
            Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _)) => pid,
            _ => {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        let live = live();
        if live.contains(&pid.as_raw()) {
            drop(live);
            // One of ours: its waiter thread reaps it.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
    }
}
