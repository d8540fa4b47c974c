//! Local security of a booted VM: its private socket directory is 0700,
//! the sockets and log in it 0600, and another user cannot connect to the
//! agent's ops socket; its runner keeps none of its caller's variables
//! or descriptors, and cannot gain privileges.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use libtest_mimic::{Failed, Trial};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Uid};
use tokio::runtime::Runtime;

use crate::cases::{chain, check};
use crate::fault_support::{shut_down_cleanly, Leftovers};
use crate::support::agent_vm;
use krunbox_suite::trial;

/// The security cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial("security::vm_sockets_are_private", vm_sockets_are_private),
        trial(
            "security::the_runner_keeps_nothing_of_its_callers",
            the_runner_keeps_nothing_of_its_callers,
        ),
    ]
}

/// The unprivileged user the connection attempt runs as.
const NOBODY: u32 = 65534;
/// Exit code of the child when it could not become [`NOBODY`].
const SETUID_FAILED: i32 = 200;

/// Tries to connect to the unix socket at `path` from a child process
/// running as `uid`; returns 0 if it connected, else the `errno`.
fn connect_as(uid: u32, path: &Path) -> Result<i32, Failed> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a zeroed sockaddr_un is a valid (empty) address.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes_with_nul();
    check(bytes.len() <= addr.sun_path.len(), || {
        "path too long".into()
    })?;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the child only makes async-signal-safe system calls on data
    // prepared before the fork, then leaves with _exit.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            // SAFETY: plain system calls on valid arguments; _exit never returns.
            unsafe {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid) != 0
                    || libc::setuid(uid) != 0
                {
                    libc::_exit(SETUID_FAILED);
                }
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
                let rc = libc::connect(fd, (&raw const addr).cast(), len);
                let errno = *libc::__errno_location();
                libc::_exit(if rc == 0 { 0 } else { errno & 0xff });
            }
        }
        ForkResult::Parent { child } => match waitpid(child, None)? {
            WaitStatus::Exited(_, SETUID_FAILED) => {
                Err(format!("cannot switch to uid {uid}: these cases run as root").into())
            }
            WaitStatus::Exited(_, code) => Ok(code),
            other => Err(format!("the connecting child ended with {other:?}").into()),
        },
    }
}

fn mode(path: &Path) -> Result<u32, Failed> {
    Ok(std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777)
}

fn vm_sockets_are_private() -> Result<(), Failed> {
    Runtime::new()?.block_on(async {
        let vm = agent_vm().boot().await.map_err(chain)?;
        let left = Leftovers::of(&vm);
        let dir = left.dir().to_owned();
        let meta = std::fs::metadata(&dir)?;
        check(meta.uid() == Uid::current().as_raw(), || {
            format!("{dir:?} belongs to uid {}", meta.uid())
        })?;
        check(mode(&dir)? == 0o700, || {
            format!("{dir:?} mode {:o}", meta.mode())
        })?;
        for name in ["ops.sock", "vm.log"] {
            let m = mode(&dir.join(name))?;
            check(m == 0o600, || format!("{name} mode {m:o}"))?;
        }
        // The announce socket (0600 while it waited) is removed once the
        // agent's hello has arrived.
        check(!dir.join("announce.sock").exists(), || {
            "announce.sock outlived the hello".into()
        })?;
        let ops = dir.join("ops.sock");
        check(connect_as(0, &ops)? == 0, || {
            "root cannot connect to its own VM's ops socket".into()
        })?;
        let errno = connect_as(NOBODY, &ops)?;
        check(errno == libc::EACCES, || {
            format!("uid {NOBODY} connecting to ops.sock: errno {errno}, want EACCES")
        })?;
        // The VM is unharmed by the attempts.
        let out = vm
            .agent()
            .exec(&krunbox::client::Command::new("true"))
            .await
            .map_err(chain)?;
        check(out.status.success(), || format!("{:?}", out.status))?;
        shut_down_cleanly(vm).await
    })
}

/// The runner of a booted VM: its environment holds only what it needs
/// (`krunbox::runner::KEPT_ENV` and its config), a descriptor the caller
/// left inheritable is not among its own, and `NoNewPrivs` is set.
fn the_runner_keeps_nothing_of_its_callers() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let planted = dir.path().join("a-descriptor-the-caller-leaked");
    std::fs::write(&planted, "secret")?;
    let file = std::fs::File::open(&planted)?;
    // SAFETY: dup of a descriptor this function owns; the copy (without
    // FD_CLOEXEC, as a careless caller's would be) is closed below.
    let leaked = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&file)) };
    check(leaked >= 0, || "dup failed".into())?;
    let result = Runtime::new()?.block_on(async {
        let vm = agent_vm().boot().await.map_err(chain)?;
        let proc_dir = Path::new("/proc").join(vm.runner_pid().to_string());
        let environ = std::fs::read(proc_dir.join("environ"))?;
        let keys: Vec<String> = environ
            .split(|&b| b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| {
                let v = String::from_utf8_lossy(v);
                v.split_once('=').map_or(&*v, |(k, _)| k).to_owned()
            })
            .collect();
        let allowed = |k: &String| {
            krunbox::runner::KEPT_ENV.contains(&k.as_str()) || k == krunbox::runner::CONFIG_ENV
        };
        check(keys.iter().all(allowed), || {
            format!("the runner's environment has the caller's variables: {keys:?}")
        })?;
        let mut targets = Vec::new();
        for fd in std::fs::read_dir(proc_dir.join("fd"))? {
            targets.push(std::fs::read_link(fd?.path())?);
        }
        check(!targets.contains(&planted), || {
            format!("the caller's descriptor reached the runner: {targets:?}")
        })?;
        let status = std::fs::read_to_string(proc_dir.join("status"))?;
        check(
            status
                .lines()
                .any(|l| l.split_whitespace().eq(["NoNewPrivs:", "1"])),
            || format!("no NoNewPrivs: 1 in\n{status}"),
        )?;
        shut_down_cleanly(vm).await
    });
    // SAFETY: closes the descriptor dup made above, once.
    unsafe { libc::close(leaked) };
    result
}
