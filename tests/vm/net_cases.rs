//! Networking, volumes and VM configuration, end to end. The "host" is
//! the machine this binary runs on (the lab, when KVM is paravirtual): its
//! loopback is what TSI guests reach.
//!
//! The cases on [`NetVm`] share one agent VM booted with TSI, a published
//! port, a read-write and a read-only volume, a host name, a limit and a
//! console log. The one-shot and failure cases are in
//! [`crate::net_oneshot_cases`].

use std::path::PathBuf;
use std::time::Duration;

use krunbox::client::GuestCommand;
use krunbox::vm::{NetMode, PublishedPort, Resource, Rlimit, Vm, Volume};
use libtest_mimic::{Failed, Trial};

use crate::cases::{chain, check};
use crate::loopback::{exchange_when_listening, free_port, LoopbackServer};
use crate::shared_vm::{self, runtime};
use crate::support::agent_vm;
use krunbox_suite::{group_trial, Shared};

/// The guest port the shared VM publishes.
const GUEST_PORT: u16 = 8080;
/// How long a guest or host peer may wait for the other.
const PEER_WAIT: Duration = Duration::from_secs(60);

/// The VM the network, volume and config cases share, powered off after
/// the last of them.
pub static SHARED: Shared<NetVm> = Shared::new("network");

/// The cases on the shared VM, by name.
pub fn all() -> Vec<Trial> {
    let shared = |name, case| group_trial(name, &SHARED, case);
    vec![
        shared("net::tsi_reaches_host_loopback", tsi_reaches_host_loopback),
        shared(
            "net::published_port_reaches_guest_server",
            published_port_reaches_guest_server,
        ),
        shared("volume::rw_shares_both_ways", rw_shares_both_ways),
        shared("volume::ro_refuses_guest_writes", ro_refuses_guest_writes),
        shared(
            "config::hostname_and_rlimit_reach_guest",
            hostname_and_rlimit_reach_guest,
        ),
        shared(
            "console::agent_vm_console_goes_to_log",
            agent_vm_console_goes_to_log,
        ),
    ]
}

/// The shared VM and the host side of its configuration.
pub struct NetVm {
    pub vm: Vm,
    host_port: u16,
    rw: PathBuf,
    ro: PathBuf,
    console: PathBuf,
    _dir: tempfile::TempDir,
}

impl krunbox_suite::Resource for NetVm {
    fn set_up(group: &str) -> Result<&'static Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (rw, ro) = (dir.path().join("rw"), dir.path().join("ro"));
        for d in [&rw, &ro] {
            std::fs::create_dir(d).map_err(|e| e.to_string())?;
        }
        std::fs::write(ro.join("seed.txt"), b"seed\n").map_err(|e| e.to_string())?;
        let console = dir.path().join("console.log");
        let host_port = free_port().map_err(|e| format!("{group}: no free host port: {e:?}"))?;
        let config = agent_vm()
            .memory_mib(512)
            .net(NetMode::Tsi)
            .publish(PublishedPort::new(host_port, GUEST_PORT))
            .volume(Volume::new(&rw, "/mnt/rw"))
            .volume(Volume::new(&ro, "/mnt/ro").read_only())
            .hostname("krunbox-net")
            .rlimit(Rlimit::new(Resource::Nofile, 256, 512))
            .console_log(&console);
        let vm = runtime()
            .block_on(config.boot())
            .map_err(|e| krunbox::error_chain(&e))?;
        Ok(Box::leak(Box::new(NetVm {
            vm,
            host_port,
            rw,
            ro,
            console,
            _dir: dir,
        })))
    }

    fn alive(&self) -> bool {
        shared_vm::alive(&self.vm)
    }

    fn tear_down(&'static self, group: &str) -> Result<(), String> {
        shared_vm::power_off(&self.vm, group)
    }

    fn pids(&self) -> Vec<u32> {
        vec![self.vm.runner_pid()]
    }
}

/// Runs `body` against the shared VM.
fn with_net_vm<F, Fut>(body: F) -> Result<(), Failed>
where
    F: FnOnce(&'static NetVm, &'static Vm) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failed>>,
{
    let shared = SHARED
        .get()
        .map_err(|e| Failed::from(format!("the network VM did not boot: {e}")))?;
    // A failure says how the VM ended, if it did (a post mortem).
    runtime().block_on(crate::post_mortem::explained(
        &shared.vm,
        body(shared, &shared.vm),
    ))
}

fn sh(script: impl Into<String>) -> GuestCommand {
    GuestCommand::new("sh").arg("-c").arg(script)
}

fn tsi_reaches_host_loopback() -> Result<(), Failed> {
    with_net_vm(|_, vm| async move {
        let server = LoopbackServer::bind()?;
        let port = server.port;
        let host = server.serve_once("from-host", PEER_WAIT);
        let out = vm
            .agent()
            .exec(&sh(format!(
                "echo from-guest | timeout 60 nc -w 10 127.0.0.1 {port}"
            )))
            .await
            .map_err(chain)?;
        let got = host.join().map_err(|_| "server thread panicked")??;
        check(got == "from-guest\n", || format!("host got {got:?}"))?;
        check(out.stdout_text() == "from-host\n", || {
            format!(
                "guest got {:?}, stderr {:?}, {:?}",
                out.stdout_text(),
                out.stderr_text(),
                out.status
            )
        })
    })
}

fn published_port_reaches_guest_server() -> Result<(), Failed> {
    with_net_vm(|net, vm| async move {
        let host_port = net.host_port;
        let server = sh(format!(
            "echo from-guest | timeout 60 nc -l -p {GUEST_PORT}"
        ));
        let guest = vm.agent().exec(&server);
        let host = tokio::task::spawn_blocking(move || {
            exchange_when_listening(host_port, "from-host", PEER_WAIT)
        });
        let (guest, host) = tokio::join!(guest, host);
        let guest = guest.map_err(chain)?;
        let host = host.map_err(|e| e.to_string())??;
        check(host == "from-guest\n", || format!("host got {host:?}"))?;
        check(guest.stdout_text() == "from-host\n", || {
            format!(
                "guest server got {:?}, stderr {:?}",
                guest.stdout_text(),
                guest.stderr_text()
            )
        })
    })
}

fn rw_shares_both_ways() -> Result<(), Failed> {
    with_net_vm(|net, vm| async move {
        std::fs::write(net.rw.join("from-host.txt"), b"written by the host\n")?;
        let out = vm
            .agent()
            .exec(&sh(
                "cat /mnt/rw/from-host.txt && echo written by the guest > /mnt/rw/from-guest.txt",
            ))
            .await
            .map_err(chain)?;
        check(out.status.code == Some(0), || {
            format!("{:?}: {}", out.status, out.stderr_text())
        })?;
        check(out.stdout_text() == "written by the host\n", || {
            out.stdout_text()
        })?;
        let got = std::fs::read_to_string(net.rw.join("from-guest.txt"))?;
        check(got == "written by the guest\n", || {
            format!("host read {got:?}")
        })
    })
}

fn ro_refuses_guest_writes() -> Result<(), Failed> {
    with_net_vm(|net, vm| async move {
        // Refused by the guest's read-only mount, and after the guest
        // remounts it read-write, by libkrun's read-only file server.
        let out =
            vm.agent()
                .exec(&sh("cat /mnt/ro/seed.txt; \
                 if echo x > /mnt/ro/new.txt; then echo WROTE; fi; \
                 mount -o remount,rw /mnt/ro; \
                 if echo x > /mnt/ro/seed.txt; then echo WROTE AFTER REMOUNT; fi"))
                .await
                .map_err(chain)?;
        let (stdout, stderr) = (out.stdout_text(), out.stderr_text());
        check(stdout == "seed\n", || {
            format!("stdout {stdout:?}, stderr {stderr:?}")
        })?;
        check(stderr.matches("Read-only file system").count() == 2, || {
            format!("stderr {stderr:?}")
        })?;
        let seed = std::fs::read_to_string(net.ro.join("seed.txt"))?;
        check(seed == "seed\n" && !net.ro.join("new.txt").exists(), || {
            format!("the host directory changed: seed.txt {seed:?}")
        })
    })
}

fn hostname_and_rlimit_reach_guest() -> Result<(), Failed> {
    with_net_vm(|_, vm| async move {
        let out = vm
            .agent()
            .exec(&sh("hostname; ulimit -n; ulimit -Hn"))
            .await
            .map_err(chain)?;
        check(out.stdout_text() == "krunbox-net\n256\n512\n", || {
            format!("{:?} {:?}", out.stdout_text(), out.stderr_text())
        })
    })
}

fn agent_vm_console_goes_to_log() -> Result<(), Failed> {
    with_net_vm(|net, vm| async move {
        check(vm.log_path() == net.console, || {
            format!("log_path {:?}", vm.log_path())
        })?;
        let out = vm
            .agent()
            .exec(&sh("echo console-marker > /dev/console; echo on-stdout"))
            .await
            .map_err(chain)?;
        check(out.stdout_text() == "on-stdout\n", || out.stdout_text())?;
        // libkrun writes the console from its own thread: give it a
        // moment, bounded.
        let mut log = String::new();
        for _ in 0..100 {
            log = std::fs::read_to_string(&net.console)?;
            if log.contains("console-marker") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        check(
            log.contains("console-marker") && !log.contains("on-stdout"),
            || format!("console log {log:?}"),
        )
    })
}
