//! Local security of a booted VM: its private socket directory is 0700,
//! the sockets and log in it 0600, and another user cannot connect to the
//! agent's ops socket; its runner keeps none of its caller's variables
//! or descriptors, and cannot gain privileges; once confined it cannot
//! read, write, connect or exec beyond what its VM needs.

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
use krunbox::runner::Probe;
use krunbox::vm::{Applied, Confinement, NetMode, Volume};
use krunbox_suite::trial;

/// The security cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial("security::vm_sockets_are_private", vm_sockets_are_private),
        trial(
            "security::the_runner_keeps_nothing_of_its_callers",
            the_runner_keeps_nothing_of_its_callers,
        ),
        trial(
            "security::a_confined_runner_is_denied_what_its_vm_does_not_need",
            a_confined_runner_is_denied_what_its_vm_does_not_need,
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
        for want in [["NoNewPrivs:", "1"], ["Seccomp:", "2"]] {
            check(
                status.lines().any(|l| l.split_whitespace().eq(want)),
                || format!("no {want:?} in\n{status}"),
            )?;
        }
        // Landlock in full, or in part on a kernel with an older ABI (the
        // lab's 6.1 has ABI 2); the seccomp filter in full.
        let report = vm.confinement().cloned();
        check(
            report.as_ref().is_some_and(|r| {
                r.no_new_privs && r.landlock.enforced() && r.seccomp == Applied::Full
            }),
            || format!("the runner reported {report:?}"),
        )?;
        shut_down_cleanly(vm).await
    });
    // SAFETY: closes the descriptor dup made above, once.
    unsafe { libc::close(leaked) };
    result
}

/// A runner that, once confined, tries what its VM does not need (the
/// `confinement-probe` hook): read a host file outside its rules, write
/// into a read-only volume, connect to a host port under `--net none`,
/// exec a program. Each is denied, the exec ends the runner, and the boot
/// fails saying the seccomp filter stopped `execve`. The same probe in an
/// unconfined runner is allowed each time, so the denials are the
/// confinement's.
fn a_confined_runner_is_denied_what_its_vm_does_not_need() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "the caller's")?;
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro)?;
    std::fs::write(ro.join("file"), "read-only")?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let probe = Probe {
        read: secret.clone(),
        write: ro.join("file"),
        connect: listener.local_addr()?,
        exec: "/bin/true".into(),
    };
    let boot = |confinement: Confinement| {
        let config = agent_vm()
            .net(NetMode::None)
            .volume(Volume::new(&ro, "/mnt/ro").read_only())
            .confinement(Confinement {
                probe: Some(probe.clone()),
                ..confinement
            });
        Runtime::new()?.block_on(async move {
            match config.boot().await {
                Ok(_vm) => Err(Failed::from(
                    "the VM booted: the probe's exec did not end the runner",
                )),
                Err(e) => Ok(chain(e).message().unwrap_or_default().to_owned()),
            }
        })
    };
    let confined = boot(Confinement::default())?;
    let denied = |what: &str, target: &Path| {
        format!(
            "krunbox probe: {what} {}: denied (Permission denied",
            target.display()
        )
    };
    for want in [
        denied("read", &secret),
        denied("write", &ro.join("file")),
        format!(
            "krunbox probe: connect {}: denied (Permission denied",
            probe.connect
        ),
        "seccomp stopped the runner: it called execve (system call 59)".to_owned(),
    ] {
        check(confined.contains(&want), || {
            format!("the confined runner's boot error lacks {want:?}:\n{confined}")
        })?;
    }
    check(listener.accept().is_err(), || {
        "the confined runner connected to the host port".into()
    })?;

    let unconfined = boot(Confinement::none())?;
    for want in ["read", "write", "connect"] {
        check(
            unconfined.contains(&format!("krunbox probe: {want} ")),
            || format!("unconfined, {want} was not tried:\n{unconfined}"),
        )?;
    }
    check(
        !unconfined.contains("denied") && !unconfined.contains("seccomp"),
        || format!("an unconfined runner was denied something:\n{unconfined}"),
    )
}
