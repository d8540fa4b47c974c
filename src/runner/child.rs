//! The runner side: configure libkrun from a [`RunnerConfig`] and enter
//! the VM.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use krunbox_sys as sys;

use super::config::{NetMode, RunnerConfig, Workload};
use super::confine;
use super::event::{monotonic_us, RunnerEvent, RunnerFailure};
use super::{CONFIG_ENV, EVENT_FD};
use crate::krun::{self, Context, ROOT_FS_TAG};

/// The exit code of a runner that could not start its VM (the reason is
/// sent as a [`RunnerEvent::Failed`]).
pub const RUNNER_FAILED_EXIT: i32 = 125;

/// Set once the current executable has called [`enter_if_requested`]:
/// it can then serve as its own runner.
static IS_RUNNER_CAPABLE: AtomicBool = AtomicBool::new(false);

/// Whether this executable can act as a runner.
pub(crate) fn current_exe_is_runner() -> bool {
    IS_RUNNER_CAPABLE.load(Ordering::Relaxed)
}

/// Call this first thing in `main` of any program that boots VMs.
///
/// In a runner process (the parent set [`CONFIG_ENV`]) it configures
/// libkrun and starts the VM, and never returns: the process ends with the
/// guest workload's exit code, or with 125 after reporting why the VM
/// could not start. Elsewhere it returns at once, and marks the current
/// executable as usable as a runner.
///
/// ```no_run
/// // First statement of `main`:
/// krunbox::runner::enter_if_requested();
/// ```
pub fn enter_if_requested() {
    IS_RUNNER_CAPABLE.store(true, Ordering::Relaxed);
    let Some(json) = std::env::var_os(CONFIG_ENV) else {
        return;
    };
    // Not for the guest, nor for anything libkrun spawns.
    std::env::remove_var(CONFIG_ENV);
    let closed = confine::close_inherited_fds();
    let config = serde_json::from_slice::<RunnerConfig>(json.as_encoded_bytes());
    if let Ok(RunnerConfig {
        detached: true,
        exit_record: Some(record),
        cgroup_dir,
        ..
    }) = &config
    {
        // Returns in the VM's process only.
        super::monitor::split_off_vm(record, cgroup_dir.as_deref());
    }
    let mut events = EventSink::open();
    let failure = match (config, closed) {
        (_, Err(e)) => RunnerFailure {
            message: format!("could not close the descriptors the runner inherited: {e}"),
            errno: e.raw_os_error(),
        },
        (Ok(config), Ok(())) => match run(&config, &mut events) {
            Err(failure) => failure,
            Ok(never) => match never {},
        },
        (Err(e), Ok(())) => RunnerFailure {
            message: format!("bad runner config: {e}"),
            errno: None,
        },
    };
    events.send(&RunnerEvent::Failed(failure.clone()));
    eprintln!("krunbox runner: {failure}");
    std::process::exit(RUNNER_FAILED_EXIT);
}

fn run(config: &RunnerConfig, events: &mut EventSink) -> Result<Infallible, RunnerFailure> {
    // Before the runner's first thread: no_new_privs and Landlock bind
    // the calling thread and those it starts afterwards.
    let started = monotonic_us();
    // First: joining needs the privileges that confinement drops.
    if let Some(path) = &config.net_namespace {
        join_net_namespace(path)?;
    }
    let mut confined = confine::identity(config).map_err(confine_failure)?;
    // Forks the egress process, which shares the steps above (the
    // cgroup, the user); before any thread, Landlock or seccomp.
    let factory = match config.net {
        NetMode::Egress => Some(wall_in(config)?),
        _ => None,
    };
    confine::fences(config, &mut confined).map_err(confine_failure)?;
    if let Some(channel) = factory {
        // Under Landlock, as every later thread is.
        std::thread::spawn(move || crate::egress::factory::serve(channel));
    }
    let first_steps = monotonic_us() - started;
    if !config.detached {
        watch_parent();
    }
    let ctx = configure(config).map_err(failure)?;
    events.send(&RunnerEvent::Configured {
        at_us: monotonic_us(),
    });
    // Last: libkrun's set-up above makes calls its devices never do.
    let started = monotonic_us();
    confine::before_start(config, &mut confined).map_err(confine_failure)?;
    confined.took_us = first_steps + (monotonic_us() - started);
    events.send(&RunnerEvent::Confined(confined));
    #[cfg(feature = "confinement-probe")]
    if let Some(probe) = &config.confinement.probe {
        confine::probe::run(probe);
    }
    events.send(&RunnerEvent::Entering {
        at_us: monotonic_us(),
    });
    Err(failure(ctx.start_enter()))
}

/// Joins the network namespace at `path` (the runner has one thread yet,
/// so the whole process is in it).
fn join_net_namespace(path: &std::path::Path) -> Result<(), RunnerFailure> {
    let fail = |e: std::io::Error| RunnerFailure {
        message: format!(
            "could not join the network namespace {}: {e}",
            path.display()
        ),
        errno: e.raw_os_error(),
    };
    let namespace = std::fs::File::open(path).map_err(fail)?;
    nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|errno| fail(errno.into()))
}

/// The egress mode's wall (see `egress::service`); the pair on which the
/// runner's socket factory serves the egress process.
fn wall_in(config: &RunnerConfig) -> Result<std::os::unix::net::UnixStream, RunnerFailure> {
    let setup = config.egress.clone().unwrap_or_default();
    crate::egress::service::wall_in(&setup).map_err(|e| RunnerFailure {
        message: format!(
            "could not wall the VM's network in: {}",
            crate::error_chain(&e)
        ),
        errno: std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .find_map(|e| e.downcast_ref::<std::io::Error>()?.raw_os_error()),
    })
}

/// Applies `config` to a new libkrun context.
pub(crate) fn configure(config: &RunnerConfig) -> Result<Context, krun::Error> {
    let mut ctx = Context::new()?;
    krun::set_log_level(config.log_level)?;
    ctx.set_vm_config(config.vcpus, config.memory_mib)?;
    ctx.set_root(&config.rootfs)?;
    for (tag, dir, read_only) in &config.shares {
        ctx.add_virtiofs(tag, dir, *read_only)?;
    }
    // One explicit vsock device either way (the agent's ports need it);
    // only its TSI features differ. Without TSI the guest kernel does not
    // hijack sockets and its init sets up no interface but loopback.
    ctx.set_vsock_tsi(match config.net {
        NetMode::None => 0,
        NetMode::Tsi | NetMode::Egress => sys::KRUN_TSI_HIJACK_INET as u32,
    })?;
    if !config.ports.is_empty() {
        ctx.set_port_map(&config.ports)?;
    }
    for port in &config.vsock_ports {
        ctx.add_vsock_port(port.port, &port.path, port.listen)?;
    }
    if let Some(path) = &config.console_log {
        // The console (hvc0) then has one port, writing to the file; the
        // workload's streams need ports of their own.
        ctx.set_console_output(path)?;
        if config.stdio_ports {
            ctx.add_stdio_console()?;
        }
    }
    if !config.rlimits.is_empty() {
        ctx.set_rlimits(&config.rlimits)?;
    }
    match &config.workload {
        Workload::Exec { program, args } => ctx.set_exec(program, args, &config.env)?,
        Workload::Agent { args } => {
            let image = crate::agent_image::bytes().ok_or(krun::Error::Unavailable {
                what: "the krunbox agent (this build embeds none)",
            })?;
            ctx.add_overlay_file(ROOT_FS_TAG, crate::agent_image::GUEST_PATH, image, 0o755)?;
            ctx.set_exec(crate::agent_image::GUEST_PATH, args, &config.env)?;
        }
    }
    if let Some(dir) = &config.workdir {
        ctx.set_workdir(dir)?;
    }
    Ok(ctx)
}

fn confine_failure(error: confine::ConfineError) -> RunnerFailure {
    let errno = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
        .find_map(|e| e.downcast_ref::<std::io::Error>()?.raw_os_error());
    RunnerFailure {
        message: format!(
            "could not confine the runner: {}",
            crate::error_chain(&error)
        ),
        errno,
    }
}

fn failure(error: krun::Error) -> RunnerFailure {
    RunnerFailure {
        message: crate::error_chain(&error),
        errno: error.errno().map(|e| e as i32),
    }
}

/// Ends the runner when the process that spawned it goes away, so a VM
/// never outlives its owner. (PR_SET_PDEATHSIG would fire when the
/// spawning *thread* exits, which in a thread pool is any time.)
fn watch_parent() {
    let parent = nix::unistd::getppid();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        if nix::unistd::getppid() != parent {
            std::process::exit(RUNNER_FAILED_EXIT);
        }
    });
}

/// The write end of the event pipe, if the parent gave one.
struct EventSink(Option<File>);

impl EventSink {
    fn open() -> Self {
        // fd 3 is ours only if it is open (the parent dup2'ed it there).
        // SAFETY: F_GETFD only reads the descriptor's flags; on a closed
        // descriptor it fails with EBADF.
        if unsafe { libc::fcntl(EVENT_FD, libc::F_GETFD) } < 0 {
            return Self(None);
        }
        // SAFETY: fd 3 is open and was handed to this process for this
        // purpose; nothing else in the runner uses it.
        let file = unsafe { File::from_raw_fd(EVENT_FD) };
        // Keep it out of anything libkrun might exec.
        let _ = nix::fcntl::fcntl(
            &file,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        Self(Some(file))
    }

    fn send(&mut self, event: &RunnerEvent) {
        if let Some(file) = &mut self.0 {
            let mut line = serde_json::to_vec(event).expect("events serialize");
            line.push(b'\n');
            // The parent may be gone; nothing useful to do then.
            let _ = file.write_all(&line);
        }
    }
}
