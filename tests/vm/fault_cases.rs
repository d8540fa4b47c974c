//! Faults on booted VMs: the agent killed during an exec, the guest
//! kernel panicking or powering off during a copy, the runner killed, the
//! guest out of memory. Each must give the caller a clear error without a
//! hang, leave no runner process, socket or socket directory once the `Vm`
//! is dropped, and leave no partial file where an interrupted copy was
//! going.

use std::time::Duration;

use krunbox::client::{ClientConfig, ClientError, ExecEvent, GuestCommand};
use krunbox::vm::Vm;
use libtest_mimic::{Failed, Trial};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::runtime::Runtime;

use crate::cases::{chain, check, text};
use crate::fault_support::{
    bounded, largest_starting, names_starting, private_rootfs, shut_down_cleanly, wait_until,
    write_big_file, Leftovers,
};
use crate::support::{agent_vm, agent_vm_on};
use krunbox_suite::trial;

/// The fault cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial("fault::agent_killed_during_exec", agent_killed_during_exec),
        trial(
            "fault::guest_powers_off_during_copy_in",
            guest_powers_off_during_copy_in,
        ),
        trial(
            "fault::guest_panics_during_copy_out",
            guest_panics_during_copy_out,
        ),
        trial(
            "fault::runner_killed_during_exec_and_copy",
            runner_killed_during_exec_and_copy,
        ),
        trial("fault::guest_out_of_memory", guest_out_of_memory),
    ]
}

fn sh(script: &str) -> GuestCommand {
    GuestCommand::new("sh").arg("-c").arg(script)
}

/// Runs an async case on a runtime of its own.
fn run(case: impl std::future::Future<Output = Result<(), Failed>>) -> Result<(), Failed> {
    Runtime::new()?.block_on(case)
}

/// The checks every fault ends with: the VM says it is dead, its sockets
/// are gone while the handle lives, a new operation fails at once with a
/// typed error, and dropping the handle leaves no process or directory.
async fn dead_and_clean(vm: Vm) -> Result<(), Failed> {
    let left = Leftovers::of(&vm);
    bounded("the agent's liveness channel closing", vm.agent().closed()).await?;
    check(!vm.agent().is_alive(), || {
        "the agent still looks alive".into()
    })?;
    wait_until("the runner's exit to be noticed", || !vm.is_running()).await?;
    for sock in ["ops.sock", "announce.sock"] {
        let path = left.dir().join(sock);
        wait_until("the dead VM's sockets to be removed", || !path.exists()).await?;
    }
    let after = bounded("an exec on a dead VM", vm.agent().exec(&sh("true"))).await?;
    check(matches!(after, Err(ClientError::Gone { .. })), || {
        format!("an exec on a dead VM gave {after:?}")
    })?;
    drop(vm);
    left.check_gone().await
}

fn agent_killed_during_exec() -> Result<(), Failed> {
    run(async {
        let vm = agent_vm().boot().await.map_err(chain)?;
        let agent_pid = vm.agent().hello().pid;
        let mut long = vm
            .agent()
            .exec_streaming(&sh("echo started; sleep 600"))
            .await
            .map_err(chain)?;
        loop {
            match bounded("the long exec starting", long.next_event()).await? {
                Ok(Some(ExecEvent::Stdout(bytes))) if bytes.starts_with(b"started") => break,
                Ok(Some(_)) => {}
                other => return Err(format!("the long exec failed early: {other:?}").into()),
            }
        }
        // The killing exec is the agent's child: it dies with it, so its
        // own result is not checked, only that it returns.
        let killer = sh(&format!("kill -9 {agent_pid}"));
        let _ = bounded("the killing exec", vm.agent().exec(&killer)).await?;
        let err = bounded("the interrupted exec", long.collect(1 << 20)).await?;
        check(matches!(err, Err(ClientError::Gone { .. })), || {
            format!("the interrupted exec gave {err:?}")
        })?;
        println!(
            "interrupted exec: {}",
            krunbox::error_chain(&err.unwrap_err())
        );
        dead_and_clean(vm).await
    })
}

/// Copies a 128 MiB file in and pulls the plug with `fault` (an exec) once the
/// agent is writing its staging file; checks that the copy fails, that
/// nothing is at the destination, and that the next copy there (on a new
/// VM over the same rootfs) succeeds and sweeps the dead copy's staging
/// file.
///
/// A powered-off guest says nothing: the copy ends when the agent's pings
/// stop for the liveness timeout, here [`SILENCE_BOUND`] rather than the
/// default 60 s (the pings come every second).
async fn copy_in_interrupted_by(fault: &str, name: &str) -> Result<(), Failed> {
    let (_keep, rootfs) = private_rootfs()?;
    let host = tempfile::tempdir()?;
    let src = host.path().join("big.bin");
    write_big_file(&src, 128)?;
    let vm = agent_vm_on(&rootfs)
        .boot_with(ClientConfig {
            hello_timeout: Duration::from_secs(60),
            liveness_timeout: SILENCE_BOUND,
            ..ClientConfig::default()
        })
        .await
        .map_err(chain)?;
    let guest_dest = format!("/tmp/{name}");
    let agent = vm.agent().clone();
    let (src_task, dest_task) = (src.clone(), guest_dest.clone());
    let copy = tokio::spawn(async move { agent.copy_in(&src_task, &dest_task).await });
    let tmp = rootfs.join("tmp");
    let staging = format!(".{name}.krunbox-");
    wait_until("the agent's staging file to grow", || {
        largest_starting(&tmp, &staging) > 0 || copy.is_finished()
    })
    .await?;
    check(!copy.is_finished(), || {
        "the copy ended before the fault could hit it".into()
    })?;
    let faulted = bounded("the faulting exec", vm.agent().exec(&sh(fault))).await?;
    println!("faulting exec: {faulted:?}");
    let result = bounded("the interrupted copy", copy).await??;
    check(result.is_err(), || format!("the copy survived: {result:?}"))?;
    println!(
        "interrupted copy in: {}",
        krunbox::error_chain(&result.unwrap_err())
    );
    dead_and_clean(vm).await?;
    check(!tmp.join(name).exists(), || {
        format!("a partial {name} is at the destination")
    })?;
    let stale = names_starting(&tmp, &staging);
    println!("left in the guest's /tmp by the dead copy: {stale:?}");

    let vm = agent_vm_on(&rootfs).boot().await.map_err(chain)?;
    let small = host.path().join("small.txt");
    std::fs::write(&small, b"second try\n")?;
    vm.agent()
        .copy_in(&small, &guest_dest)
        .await
        .map_err(chain)?;
    check(std::fs::read(tmp.join(name))? == b"second try\n", || {
        "the retried copy is not at the destination".into()
    })?;
    let stale = names_starting(&tmp, &staging);
    check(stale.is_empty(), || {
        format!("staging files left after the retry: {stale:?}")
    })?;
    shut_down_cleanly(vm).await
}

/// How long a silent guest's operations wait in the fault cases.
const SILENCE_BOUND: Duration = Duration::from_secs(10);

fn guest_powers_off_during_copy_in() -> Result<(), Failed> {
    run(copy_in_interrupted_by("poweroff -f", "poweroff.bin"))
}

/// Crashes the guest's init (PID 1, libkrun's `init.krun`): its code is
/// overwritten with zeros through /proc/1/mem, and an orphan's exit wakes
/// it up. The kernel panics when init dies ("Attempted to kill init") and,
/// booted with panic=-1, resets at once: libkrun's process exits. (The
/// guest kernel has no sysrq-trigger to panic it directly.)
const CRASH_INIT: &str = r#"
r=$(grep -m1 ' r-xp ' /proc/1/maps); s=${r%%-*}; e=${r#*-}; e=${e%% *}
dd if=/dev/zero of=/proc/1/mem bs=4096 seek=$((0x$s / 4096)) \
   count=$(((0x$e - 0x$s) / 4096)) conv=notrunc 2>/dev/null
(sleep 0.1 &)
sleep 60
"#;

fn guest_panics_during_copy_out() -> Result<(), Failed> {
    run(async {
        let host = tempfile::tempdir()?;
        let console = host.path().join("console.log");
        let vm = agent_vm()
            .console_log(&console)
            .boot()
            .await
            .map_err(chain)?;
        let make = sh("dd if=/dev/zero of=/tmp/panic-src.bin bs=1M count=128 2>&1");
        let out = bounded("writing the guest file", vm.agent().exec(&make))
            .await?
            .map_err(chain)?;
        check(out.status.success(), || text(&out.stdout))?;
        let out_dir = host.path().join("out");
        std::fs::create_dir(&out_dir)?;
        let dest = out_dir.join("out.bin");
        let agent = vm.agent().clone();
        let dest_task = dest.clone();
        let copy =
            tokio::spawn(async move { agent.copy_out("/tmp/panic-src.bin", &dest_task).await });
        wait_until("the host's staging file to grow", || {
            largest_starting(&out_dir, ".out.bin.krunbox-") > 0 || copy.is_finished()
        })
        .await?;
        check(!copy.is_finished(), || {
            "the copy ended before the fault could hit it".into()
        })?;
        let _ = bounded("the crashing exec", vm.agent().exec(&sh(CRASH_INIT))).await?;
        let result = bounded("the interrupted copy", copy).await??;
        check(matches!(result, Err(ClientError::Gone { .. })), || {
            format!("the interrupted copy gave {result:?}, not the agent gone")
        })?;
        println!(
            "interrupted copy out: {}",
            krunbox::error_chain(&result.unwrap_err())
        );
        dead_and_clean(vm).await?;
        let log = std::fs::read_to_string(&console).unwrap_or_default();
        check(log.contains("init.krun[1]: segfault"), || {
            format!("init did not crash:\n{log}")
        })?;
        let left = names_starting(&out_dir, "");
        check(left.is_empty(), || {
            format!("the interrupted copy left {left:?}")
        })
    })
}

fn runner_killed_during_exec_and_copy() -> Result<(), Failed> {
    run(async {
        let vm = agent_vm().boot().await.map_err(chain)?;
        let long = vm
            .agent()
            .exec_streaming(&sh("sleep 600"))
            .await
            .map_err(chain)?;
        let make = sh("dd if=/dev/zero of=/tmp/runner-src.bin bs=1M count=64 2>&1");
        bounded("writing the guest file", vm.agent().exec(&make))
            .await?
            .map_err(chain)?;
        let host = tempfile::tempdir()?;
        let dest = host.path().join("out.bin");
        let agent = vm.agent().clone();
        let dest_task = dest.clone();
        let copy =
            tokio::spawn(async move { agent.copy_out("/tmp/runner-src.bin", &dest_task).await });
        wait_until("the host's staging file to grow", || {
            largest_starting(host.path(), ".out.bin.krunbox-") > 0 || copy.is_finished()
        })
        .await?;
        kill(Pid::from_raw(vm.runner_pid() as i32), Signal::SIGKILL)?;
        let exec = bounded("the interrupted exec", long.collect(1 << 20)).await?;
        check(exec.is_err(), || format!("the exec survived: {exec:?}"))?;
        let copied = bounded("the interrupted copy", copy).await??;
        check(copied.is_err(), || format!("the copy survived: {copied:?}"))?;
        check(!dest.exists(), || {
            "a partial copy at the destination".into()
        })?;
        let stale = names_starting(host.path(), ".out.bin");
        check(stale.is_empty(), || format!("staging left: {stale:?}"))?;
        dead_and_clean(vm).await
    })
}

fn guest_out_of_memory() -> Result<(), Failed> {
    run(async {
        let host = tempfile::tempdir()?;
        let console = host.path().join("console.log");
        let vm = agent_vm()
            .memory_mib(256)
            .console_log(&console)
            .boot()
            .await
            .map_err(chain)?;
        let hog = sh("awk 'BEGIN { s = \"x\"; while (1) s = s s }'");
        let out = bounded("the memory hog", vm.agent().exec(&hog))
            .await?
            .map_err(chain)?;
        check(out.status.signal == Some(libc::SIGKILL), || {
            format!("the hog ended with {:?}", out.status)
        })?;
        // The agent survived and serves the next operations.
        let after = vm
            .agent()
            .exec(&sh("echo still here"))
            .await
            .map_err(chain)?;
        check(after.stdout == b"still here\n", || text(&after.stdout))?;
        let log = std::fs::read_to_string(&console).unwrap_or_default();
        check(log.contains("Out of memory: Killed process"), || {
            format!("the OOM killer did not run:\n{log}")
        })?;
        shut_down_cleanly(vm).await
    })
}
