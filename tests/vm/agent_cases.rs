//! End-to-end cases through the guest agent. They share ONE booted VM
//! (a [`SharedVm`]), as a sandbox program would: one boot, many
//! execs and copies, several in flight at once.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use krunbox::client::{GuestCommand, Provision};
use krunbox::vm::Vm;
use libtest_mimic::{Failed, Trial};
use tokio::runtime::Runtime;

use crate::cases::{chain, check, text};
use crate::shared_vm::{runtime, SharedVm};
use crate::support::agent_vm;
use krunbox_suite::{group_trial, trial, Shared};

/// The VM the agent cases share (512 MiB, the agent's test config).
pub static SHARED: Shared<SharedVm> = Shared::new("agent");

/// The agent cases, by name; all but `shutdown_returns_status` run on
/// [`SHARED`], which is powered off (and that checked) after the last of
/// them, in whatever order they run.
pub fn all() -> Vec<Trial> {
    let shared = |name, case| group_trial(name, &SHARED, case);
    vec![
        shared("agent::boot_reports_timeline", boot_reports_timeline),
        shared(
            "agent::exec_output_and_exit_codes",
            exec_output_and_exit_codes,
        ),
        shared("agent::exec_stdin_and_env", exec_stdin_and_env),
        shared(
            "agent::exec_output_sizes_come_back_exactly",
            exec_output_sizes_come_back_exactly,
        ),
        shared("agent::copy_16mib_in_and_out", copy_16mib_in_and_out),
        shared("agent::tree_round_trips", tree_round_trips),
        shared(
            "agent::provision_prompt_and_skills",
            provision_prompt_and_skills,
        ),
        shared(
            "agent::background_survives_execs",
            background_survives_execs,
        ),
        shared("agent::concurrent_execs", concurrent_execs),
        shared(
            "agent::freed_guest_memory_returns_to_the_host",
            freed_guest_memory_returns_to_the_host,
        ),
        trial("agent::shutdown_returns_status", shutdown_returns_status),
    ]
}

/// Runs `body` against the shared VM.
fn with_vm<F, Fut>(body: F) -> Result<(), Failed>
where
    F: FnOnce(&'static Vm) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failed>>,
{
    let vm: &'static Vm = &SHARED
        .get()
        .map_err(|e| Failed::from(format!("the shared VM did not boot: {e}")))?
        .0;
    runtime().block_on(crate::post_mortem::explained(vm, body(vm)))
}

fn sh(script: &str) -> GuestCommand {
    GuestCommand::new("sh").arg("-c").arg(script)
}

fn boot_reports_timeline() -> Result<(), Failed> {
    with_vm(|vm| async move {
        let t = vm.timeline();
        println!("boot timeline:\n{t}");
        check(t.entered.is_some() && t.ready.is_some(), || {
            format!("{t:?}")
        })?;
        check(t.entered < t.ready, || {
            format!("entered after ready: {t:?}")
        })?;
        check(t.agent_started_uptime <= t.agent_hello_uptime, || {
            format!("{t:?}")
        })?;
        vm.agent().exec(&sh("true")).await.map_err(chain)?;
        let t = vm.timeline();
        check(t.first_exec.is_some() && t.first_exec > t.ready, || {
            format!("first exec not after ready: {t:?}")
        })?;
        // Every phase in host time, none missing, adding up to ready; the
        // guest's clock starts after krun_start_enter.
        let phases = vm.boot_phases().await.map_err(chain)?;
        let p = phases.ok_or_else(|| format!("a phase is missing: {t:?}"))?;
        println!("boot phases in host time:\n{p}");
        let sum: Duration = p.named().iter().map(|(_, d)| *d).sum();
        check(Some(p.total) == t.ready && sum == p.total, || {
            format!("phases {p:?} do not add up to ready {:?}", t.ready)
        })?;
        let slack = Duration::from_millis(1);
        check(p.adjusted <= p.error + slack, || {
            format!(
                "the guest's clock disagrees with the host's beyond ±{:?}: {p:?}",
                p.error
            )
        })?;
        check(p.before_guest_clock > p.error, || {
            format!("no time before the guest's clock: {p:?}")
        })?;
        // The vCPU thread's start splits it (found in /proc, to 10 ms).
        check(
            t.vcpu_started.is_some() && p.before_vcpu.is_some_and(|b| b <= p.before_guest_clock),
            || format!("no vCPU start within the time before the guest's clock: {t:?} {p:?}"),
        )
    })
}

fn exec_output_and_exit_codes() -> Result<(), Failed> {
    with_vm(|vm| async move {
        let out = vm
            .agent()
            .exec(&sh("echo hi; echo err >&2"))
            .await
            .map_err(chain)?;
        check(out.status.code == Some(0), || format!("{:?}", out.status))?;
        check(out.stdout == b"hi\n", || text(&out.stdout))?;
        check(out.stderr == b"err\n", || text(&out.stderr))?;
        let out = vm.agent().exec(&sh("exit 3")).await.map_err(chain)?;
        check(out.status.code == Some(3), || format!("{:?}", out.status))?;
        let missing = vm
            .agent()
            .exec(&GuestCommand::new("/no/such/program"))
            .await;
        match missing {
            Ok(out) => check(out.status.code == Some(127), || format!("{:?}", out.status)),
            Err(e) => check(e.io_kind() == std::io::ErrorKind::NotFound, || {
                krunbox::error_chain(&e)
            }),
        }
    })
}

/// Output sizes around chunk and page edges, on both streams, three times
/// each (8 MiB once): every byte arrives, or the exec fails saying the
/// output was cut.
fn exec_output_sizes_come_back_exactly() -> Result<(), Failed> {
    with_vm(|vm| async move {
        // Three rounds, the 8 MiB size once: the lab's emulation loses
        // VMs in proportion to the bytes moved.
        for round in 0..3 {
            for size in crate::stream_cases::SIZES {
                if round > 0 && size > 1 << 20 {
                    continue;
                }
                let script = crate::stream_cases::both_streams(size);
                // A failure names its round and size (a CI run lost the
                // agent here once, with no word of where).
                let out = vm.agent().exec(&sh(&script)).await.map_err(|e| {
                    Failed::from(format!(
                        "round {round}, {size} bytes on each stream: {}",
                        krunbox::error_chain(&e)
                    ))
                })?;
                crate::stream_cases::check_both_streams(
                    size,
                    out.status.success(),
                    &out.stdout,
                    &out.stderr,
                )
                .map_err(|e| format!("round {round}: {}", e.message().unwrap_or_default()))?;
            }
        }
        Ok(())
    })
}

fn exec_stdin_and_env() -> Result<(), Failed> {
    with_vm(|vm| async move {
        let cmd = sh("read a; echo $a-$FOO; pwd")
            .stdin(&b"from-stdin\n"[..])
            .env("FOO", "bar")
            .cwd("/tmp");
        let out = vm.agent().exec(&cmd).await.map_err(chain)?;
        check(out.stdout == b"from-stdin-bar\n/tmp\n", || {
            text(&out.stdout)
        })
    })
}

/// Memory the guest frees goes back to the host: libkrun's balloon
/// reports free pages (`VIRTIO_BALLOON_F_REPORTING`) and the runner
/// gives them up, so an idle VM holds what its guest uses, not the most
/// it ever used.
fn freed_guest_memory_returns_to_the_host() -> Result<(), Failed> {
    with_vm(|vm| async move {
        let fill = sh("dd if=/dev/zero of=/dev/shm/freed bs=1M count=200 2>&1");
        let out = vm.agent().exec(&fill).await.map_err(chain)?;
        check(out.status.success(), || text(&out.stdout))?;
        let full = resident_kib(vm.runner_pid())?;
        let out = vm
            .agent()
            .exec(&sh("rm /dev/shm/freed"))
            .await
            .map_err(chain)?;
        check(out.status.success(), || text(&out.stderr))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let now = resident_kib(vm.runner_pid())?;
            if full.saturating_sub(now) >= 100 * 1024 {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "the runner held {full} KiB with 200 MiB in the guest's tmpfs \
                     and still {now} KiB a minute after the guest freed them"
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// A process's resident set (`VmRSS`), in KiB.
fn resident_kib(pid: u32) -> Result<u64, Failed> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(chain)?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status").into())
}

async fn sha256sum_in_guest(vm: &Vm, path: &str) -> Result<String, Failed> {
    let cmd = GuestCommand::new("sha256sum").arg(path.to_owned());
    let out = vm.agent().exec(&cmd).await.map_err(chain)?;
    check(out.status.success(), || text(&out.stderr))?;
    Ok(text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned())
}

pub fn sha256_host(path: &Path) -> Result<String, Failed> {
    let out = std::process::Command::new("sha256sum").arg(path).output()?;
    Ok(text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned())
}

/// 16 MiB in and out, checked by a sum taken in the guest as well.
/// (`load::copy_big_in_and_out_under_execs` copies 64 MiB with execs
/// beside it; a guest-side sum of that much takes a minute on the lab's
/// emulated CPU, and its load is what most often stalled the lab.)
fn copy_16mib_in_and_out() -> Result<(), Failed> {
    with_vm(|vm| async move {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("big.bin");
        // Deterministic, incompressible-looking content.
        let mut data = vec![0u8; 16 << 20];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(&src, &data)?;
        drop(data);
        let stats = vm
            .agent()
            .copy_in(&src, "/tmp/big.bin")
            .await
            .map_err(chain)?;
        check(stats.bytes == 16 << 20, || format!("{stats:?}"))?;
        let want = sha256_host(&src)?;
        let got = sha256sum_in_guest(vm, "/tmp/big.bin").await?;
        check(got == want, || format!("guest {got} host {want}"))?;
        let back = dir.path().join("back.bin");
        vm.agent()
            .copy_out("/tmp/big.bin", &back)
            .await
            .map_err(chain)?;
        let back_sum = sha256_host(&back)?;
        check(back_sum == want, || format!("back {back_sum} host {want}"))
    })
}

fn tree_round_trips() -> Result<(), Failed> {
    with_vm(|vm| async move {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("tree");
        std::fs::create_dir_all(src.join("sub/empty"))?;
        std::fs::write(src.join("run.sh"), b"#!/bin/sh\necho ran\n")?;
        std::fs::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o750))?;
        std::fs::write(src.join("sub/data.txt"), b"data\n")?;
        symlink("sub/data.txt", src.join("link"))?;
        vm.agent().copy_in(&src, "/tmp/tree").await.map_err(chain)?;
        let out = vm
            .agent()
            .exec(&sh("/tmp/tree/run.sh; cat /tmp/tree/link; ls -d /tmp/tree/sub/empty; stat -c %a /tmp/tree/run.sh"))
            .await
            .map_err(chain)?;
        check(
            out.stdout == b"ran\ndata\n/tmp/tree/sub/empty\n750\n",
            || format!("{} / {}", text(&out.stdout), text(&out.stderr)),
        )?;
        let back = dir.path().join("back");
        vm.agent()
            .copy_out("/tmp/tree", &back)
            .await
            .map_err(chain)?;
        let mode = std::fs::metadata(back.join("run.sh"))?.permissions().mode() & 0o777;
        check(mode == 0o750, || format!("mode {mode:o}"))?;
        check(
            std::fs::read_link(back.join("link"))? == Path::new("sub/data.txt"),
            || "link".into(),
        )?;
        check(back.join("sub/empty").is_dir(), || "empty dir lost".into())?;
        check(
            std::fs::read(back.join("sub/data.txt"))? == b"data\n",
            || "data".into(),
        )
    })
}

fn provision_prompt_and_skills() -> Result<(), Failed> {
    with_vm(|vm| async move {
        let mut plan = Provision::new();
        plan.write_file("/work/prompt.md", &b"Summarize the repo.\n"[..], 0o644);
        for i in 0..10 {
            let skill = format!("/work/skills/skill-{i}");
            plan.mkdir(format!("{skill}/scripts"), 0o755);
            plan.write_file(
                format!("{skill}/SKILL.md"),
                format!("# skill {i}\n").into_bytes(),
                0o644,
            );
            plan.write_file(
                format!("{skill}/scripts/run.sh"),
                &b"#!/bin/sh\necho ok\n"[..],
                0o755,
            );
        }
        vm.agent().provision(&plan).await.map_err(chain)?;
        let out = vm
            .agent()
            .exec(&sh("cat /work/prompt.md; ls /work/skills | wc -l; cat /work/skills/skill-7/SKILL.md; /work/skills/skill-3/scripts/run.sh"))
            .await
            .map_err(chain)?;
        let got = text(&out.stdout);
        check(
            got.split_whitespace().collect::<Vec<_>>().join(" ")
                == "Summarize the repo. 10 # skill 7 ok",
            || format!("{got:?} / {}", text(&out.stderr)),
        )
    })
}

fn background_survives_execs() -> Result<(), Failed> {
    with_vm(|vm| async move {
        let daemon = vm
            .agent()
            .spawn_background(&sh(
                "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done",
            ))
            .await
            .map_err(chain)?;
        for _ in 0..3 {
            let out = vm
                .agent()
                .exec(&GuestCommand::new("true"))
                .await
                .map_err(chain)?;
            check(out.status.success(), || format!("{:?}", out.status))?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let running = vm
            .agent()
            .wait_process(daemon.id, Duration::ZERO)
            .await
            .map_err(chain)?;
        check(running.is_none(), || {
            format!("the daemon ended: {running:?}")
        })?;
        let output = vm
            .agent()
            .read_output(daemon.id, 0, 0)
            .await
            .map_err(chain)?;
        check(text(&output.stdout).contains("tick1"), || {
            text(&output.stdout)
        })?;
        vm.agent()
            .kill_process(daemon.id, libc::SIGKILL)
            .await
            .map_err(chain)?;
        let ended = vm
            .agent()
            .wait_process(daemon.id, Duration::from_secs(30))
            .await
            .map_err(chain)?;
        check(
            ended.is_some_and(|s| s.signal == Some(libc::SIGKILL)),
            || format!("{ended:?}"),
        )
    })
}

fn concurrent_execs() -> Result<(), Failed> {
    with_vm(|vm| async move {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..20 {
            set.spawn(async move { (i, vm.agent().exec(&sh(&format!("echo n{i}"))).await) });
        }
        while let Some(joined) = set.join_next().await {
            let (i, result) = joined?;
            let out = result.map_err(chain)?;
            check(out.stdout == format!("n{i}\n").as_bytes(), || {
                text(&out.stdout)
            })?;
        }
        Ok(())
    })
}

fn shutdown_returns_status() -> Result<(), Failed> {
    let runtime = Runtime::new()?;
    runtime.block_on(async {
        let vm = agent_vm().boot().await.map_err(chain)?;
        let out = vm
            .agent()
            .exec(&sh("echo before-shutdown"))
            .await
            .map_err(chain)?;
        check(out.stdout == b"before-shutdown\n", || text(&out.stdout))?;
        let status = vm.shutdown(Duration::from_secs(60)).await.map_err(chain)?;
        check(status.code() == Some(0), || format!("{status:?}"))
    })
}
