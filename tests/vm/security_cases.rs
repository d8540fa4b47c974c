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
use krunbox::vm::{
    Applied, CgroupLimits, Confinement, ConfinementReport, NetMode, RunAs, Vm, VmConfig, Volume,
};
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
        trial(
            "security::a_runner_in_its_own_cgroup_is_limited",
            a_runner_in_its_own_cgroup_is_limited,
        ),
        trial(
            "security::a_root_runner_drops_to_an_unprivileged_uid",
            a_root_runner_drops_to_an_unprivileged_uid,
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

/// `true` runs in `vm` and exits 0.
async fn runs_true(vm: &Vm) -> Result<(), Failed> {
    let out = vm
        .agent()
        .exec(&krunbox::client::GuestCommand::new("true"))
        .await
        .map_err(chain)?;
    check(out.status.success(), || format!("{:?}", out.status))
}

/// Boots `config` and checks what its runner reported applying.
async fn boot_confined(
    config: VmConfig,
    applied: impl Fn(&ConfinementReport) -> bool,
) -> Result<Vm, Failed> {
    let vm = config.boot().await.map_err(chain)?;
    let report = vm.confinement().cloned();
    check(report.as_ref().is_some_and(applied), || {
        format!("the runner reported {report:?}")
    })?;
    Ok(vm)
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
        runs_true(&vm).await?;
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
        // Landlock in full, or in part on a kernel with an older ABI (the
        // lab's 6.1 has ABI 2); the seccomp filter in full.
        let vm = boot_confined(agent_vm(), |r| {
            r.no_new_privs && r.landlock.enforced() && r.seccomp == Applied::Full
        })
        .await?;
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

/// The lab's cgroup v2 root: the one at /sys/fs/cgroup if it is v2, else
/// a cgroup2 mount of the test's own; with the memory, cpu and pids
/// controllers handed down to its children (the delegation an
/// administrator does once).
fn cgroup2_root(scratch: &Path) -> Result<std::path::PathBuf, Failed> {
    let system = Path::new("/sys/fs/cgroup");
    let root = if system.join("cgroup.controllers").is_file() {
        system.to_owned()
    } else {
        let mnt = scratch.join("cgroup2");
        std::fs::create_dir_all(&mnt)?;
        let out = std::process::Command::new("mount")
            .args(["-t", "cgroup2", "none"])
            .arg(&mnt)
            .output()?;
        check(out.status.success(), || {
            format!("mount -t cgroup2: {}", String::from_utf8_lossy(&out.stderr))
        })?;
        mnt
    };
    std::fs::write(root.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
    Ok(root)
}

/// A VM asked to run in a cgroup of its own: its runner is in a new
/// cgroup under the given parent, with the limits written, its threads
/// counted; a pids limit below what libkrun needs stops the boot; and the
/// cgroup is gone once the runner is.
fn a_runner_in_its_own_cgroup_is_limited() -> Result<(), Failed> {
    let scratch = tempfile::tempdir()?;
    let root = cgroup2_root(scratch.path())?;
    let parent = root.join(format!("krunbox-test-{}", std::process::id()));
    std::fs::create_dir(&parent)?;
    let limits = CgroupLimits {
        parent: parent.clone(),
        memory_max_mib: Some(2048),
        cpus: Some(1.5),
        pids_max: Some(512),
    };
    let result = Runtime::new()?.block_on(async {
        let config = agent_vm().confinement(Confinement {
            cgroup: Some(limits.clone()),
            ..Confinement::default()
        });
        let vm = boot_confined(config, |r| r.cgroup == Applied::Full).await?;
        let membership = std::fs::read_to_string(format!("/proc/{}/cgroup", vm.runner_pid()))?;
        let rel = membership
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| format!("no cgroup v2 line in {membership:?}"))?;
        let dir = root.join(rel.trim_start_matches('/'));
        check(dir.parent() == Some(parent.as_path()), || {
            format!("the runner is in {rel}, not under {}", parent.display())
        })?;
        let read = |file: &str| -> Result<String, Failed> {
            Ok(std::fs::read_to_string(dir.join(file))?.trim().to_owned())
        };
        check(read("memory.max")? == (2048u64 << 20).to_string(), || {
            "memory.max".into()
        })?;
        check(read("cpu.max")? == "150000 100000", || "cpu.max".into())?;
        check(read("pids.max")? == "512", || "pids.max".into())?;
        let threads: u64 = read("pids.current")?.parse()?;
        check(threads > 1, || format!("pids.current {threads}"))?;
        runs_true(&vm).await?;
        shut_down_cleanly(vm).await?;
        check(!dir.exists(), || {
            format!("{} outlived its VM", dir.display())
        })?;

        // Too few pids for libkrun's threads: the boot fails, and the
        // cgroup goes with the runner.
        let starved = agent_vm()
            .confinement(Confinement {
                cgroup: Some(CgroupLimits {
                    pids_max: Some(2),
                    ..limits.clone()
                }),
                ..Confinement::default()
            })
            .boot()
            .await;
        check(starved.is_err(), || {
            "a runner limited to 2 pids booted its VM".into()
        })?;
        let left: Vec<_> = std::fs::read_dir(&parent)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name())
            .collect();
        check(left.is_empty(), || format!("cgroups left behind: {left:?}"))
    });
    let _ = std::fs::remove_dir(&parent);
    result
}

/// The group the case gives `/dev/kvm`, as Debian's udev rule gives it
/// group `kvm` (the lab has no udev: its `/dev/kvm` is root's alone).
const KVM_GROUP: u32 = 36;

/// `/dev/kvm` as root:[`KVM_GROUP`] 0660 while it lives, as it was after.
struct KvmForGroup(std::fs::Metadata);

impl KvmForGroup {
    fn set() -> Result<Self, Failed> {
        let before = std::fs::metadata("/dev/kvm")?;
        std::os::unix::fs::chown("/dev/kvm", None, Some(KVM_GROUP))?;
        std::fs::set_permissions("/dev/kvm", std::fs::Permissions::from_mode(0o660))?;
        Ok(Self(before))
    }
}

impl Drop for KvmForGroup {
    fn drop(&mut self) {
        let _ = std::os::unix::fs::chown("/dev/kvm", None, Some(self.0.gid()));
        let _ = std::fs::set_permissions("/dev/kvm", self.0.permissions());
    }
}

/// A runner started as root and asked to drop to `nobody`: it runs as
/// that uid (all four ids), keeps `/dev/kvm` through its group, and
/// serves an image-style VM (its tree read-only, the VM's writes in
/// memory) that execs and takes a copy.
fn a_root_runner_drops_to_an_unprivileged_uid() -> Result<(), Failed> {
    check(Uid::effective().is_root(), || {
        "these cases run as root".into()
    })?;
    let _kvm = KvmForGroup::set()?;
    Runtime::new()?.block_on(async {
        let config = agent_vm().overlay_root(true).confinement(Confinement {
            user: Some(RunAs {
                uid: NOBODY,
                gid: NOBODY,
            }),
            ..Confinement::default()
        });
        let vm = boot_confined(config, |r| r.user == Applied::Full).await?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", vm.runner_pid()))?;
        for key in ["Uid:", "Gid:"] {
            let ids: Vec<u32> = status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|id| id.parse().ok())
                .collect();
            check(ids == [NOBODY; 4], || format!("{key} {ids:?} in\n{status}"))?;
        }
        let groups = status.lines().find(|l| l.starts_with("Groups:"));
        check(
            groups.is_some_and(|g| g.split_whitespace().eq(["Groups:", &KVM_GROUP.to_string()])),
            || format!("{groups:?}: only the group of /dev/kvm"),
        )?;
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("in.txt");
        std::fs::write(&src, "to the unprivileged runner's VM\n")?;
        vm.agent()
            .copy_in(&src, "/tmp/in.txt")
            .await
            .map_err(chain)?;
        let out = vm
            .agent()
            .exec(&krunbox::client::GuestCommand::new("cat").arg("/tmp/in.txt"))
            .await
            .map_err(chain)?;
        check(out.stdout == b"to the unprivileged runner's VM\n", || {
            format!("{:?}", String::from_utf8_lossy(&out.stdout))
        })?;
        shut_down_cleanly(vm).await
    })
}
