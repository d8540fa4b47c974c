//! The boot and exec cases: each against booting a VM the bare way.

use std::time::Instant;

use krunbox::client::GuestCommand;
use krunbox::vm::StdioSpec;
use krunbox::vm::{BootTimeline, Confinement, VmConfig};
use serde::{Deserialize, Serialize};

use super::error::BenchError;
use super::phases::PhasesSample;
use super::stats::Figure;
use super::Ctx;

/// Runner spawned → the agent's hello accepted.
pub const BOOT_READY: &str = "boot.agent_ready";
/// Boot to agent ready with a runner that fences itself with neither
/// Landlock nor seccomp.
pub const BOOT_UNCONFINED: &str = "boot.agent_ready_unconfined";
/// What the runner spent fencing itself in, by its own clock.
pub const BOOT_CONFINEMENT: &str = "boot.runner_confinement";
/// Bare libkrun: boot the same rootfs, run `/bin/true`, exit.
pub const BOOT_FLOOR: &str = "boot.floor_true";
/// Exec `true` through the agent of a running VM.
pub const EXEC_TRUE: &str = "exec.true_running_vm";
/// Exec a command printing 1 MiB through the agent of a running VM.
pub const EXEC_1MIB: &str = "exec.1mib_running_vm";
/// `true` spawned by a shell inside the guest, timed by the guest: what an
/// exec of `true` needs without krunbox (the guest's floor).
pub const GUEST_FLOOR_TRUE: &str = "exec.true_guest_floor";
/// A request that spawns nothing (`stat /proc`, no virtio-fs): the
/// round trip over vsock to the agent and back, the part of an exec that
/// is not the guest's process.
pub const ROUND_TRIP: &str = "exec.round_trip_no_process";
/// `true` as the workload of a fresh VM.
pub const FRESH_TRUE: &str = "exec.true_fresh_vm";
/// The 1 MiB command as the workload of a fresh VM, output collected.
pub const FRESH_1MIB: &str = "exec.1mib_fresh_vm";

const MIB: usize = 1 << 20;

/// The command printing 1 MiB.
const PRINT_1MIB: [&str; 3] = ["head", "-c", "1048576"];

/// One boot's phases, in ms from spawning the runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineSample {
    /// libkrun configured.
    pub configured_ms: Option<f64>,
    /// `krun_start_enter` called.
    pub entered_ms: Option<f64>,
    /// The agent started, estimated: entered + its guest uptime then.
    pub agent_started_ms: Option<f64>,
    /// The guest's uptime when the agent started (kernel and init).
    pub agent_started_uptime_ms: Option<f64>,
    /// The host accepted the agent's hello.
    pub ready_ms: Option<f64>,
    /// The first exec (`true`) ended.
    pub first_exec_ms: Option<f64>,
    /// Every phase in host time (`Vm::boot_phases`); absent in reports
    /// saved before it was measured.
    #[serde(default)]
    pub phases: Option<PhasesSample>,
}

impl From<&BootTimeline> for TimelineSample {
    fn from(t: &BootTimeline) -> Self {
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        Self {
            configured_ms: ms(t.configured),
            entered_ms: ms(t.entered),
            agent_started_ms: ms(t.agent_started_estimate()),
            agent_started_uptime_ms: ms(t.agent_started_uptime),
            ready_ms: ms(t.ready),
            first_exec_ms: ms(t.first_exec),
            phases: None,
        }
    }
}

/// Boot to agent ready (and the first exec, for the timeline), against
/// the same boot with an unconfined runner and against bare libkrun booting the same rootfs and exiting `/bin/true` through
/// `krun_set_exec`: the same runner process, no agent. Interleaved, so
/// both see the same load.
pub async fn boot(ctx: &mut Ctx) -> Result<(), BenchError> {
    const CASE: &str = "boot";
    let ready = ctx.figure(Figure::new(
        BOOT_READY,
        "boot to agent ready (spawn runner -> agent hello)",
    ));
    let floor = ctx.figure(Figure::new(
        BOOT_FLOOR,
        "bare libkrun: boot, run /bin/true, exit (no agent)",
    ));
    let unconfined = ctx.figure(Figure::new(
        BOOT_UNCONFINED,
        "boot to agent ready, runner not confined (no Landlock, no seccomp)",
    ));
    let confining = ctx.figure(Figure::new(
        BOOT_CONFINEMENT,
        "  of which the runner confining itself (its own clock)",
    ));
    let config = ctx.vm();
    let unconfined_config = config.clone().confinement(Confinement::none());
    for run in ctx.all_runs() {
        let t = Instant::now();
        let vm = unconfined_config
            .boot()
            .await
            .map_err(BenchError::vm(CASE))?;
        ctx.sample(run, unconfined, t.elapsed());
        vm.kill().await;

        let t = Instant::now();
        let vm = config.boot().await.map_err(BenchError::vm(CASE))?;
        let elapsed = t.elapsed();
        ctx.sample(run, ready, elapsed);
        let took_us = vm.confinement().map_or(0, |c| c.took_us);
        ctx.sample(run, confining, std::time::Duration::from_micros(took_us));
        let out = vm
            .agent()
            .exec(&GuestCommand::new("true"))
            .await
            .map_err(BenchError::agent(CASE, "the first exec"))?;
        if !out.status.success() {
            return Err(BenchError::wrong(
                CASE,
                format!("`true` in the VM: {:?}", out.status),
            ));
        }
        if run >= ctx.warmup {
            let phases = vm
                .boot_phases()
                .await
                .map_err(BenchError::agent(CASE, "placing the guest's clock"))?;
            let mut sample = TimelineSample::from(&vm.timeline());
            sample.phases = phases.as_ref().map(PhasesSample::from);
            ctx.timelines.push(sample);
        }
        vm.kill().await;

        // The floor is libkrun's own init running the command: no agent.
        let t = Instant::now();
        let status = config
            .command(["/bin/true"])
            .stdin(StdioSpec::Null)
            .stdout(StdioSpec::Null)
            .stderr(StdioSpec::Null)
            .status()
            .map_err(BenchError::vm(CASE))?;
        ctx.sample(run, floor, t.elapsed());
        if !status.success() {
            return Err(BenchError::wrong(
                CASE,
                format!("/bin/true as libkrun's workload: {status}"),
            ));
        }
    }
    Ok(())
}

/// Exec round trips on one running VM (`true`, and a command printing
/// 1 MiB), against booting a fresh VM for each command.
pub async fn exec(ctx: &mut Ctx) -> Result<(), BenchError> {
    const CASE: &str = "exec";
    let running_true = ctx.figure(Figure::new(EXEC_TRUE, "exec `true` on a running VM"));
    let running_1mib = ctx.figure(Figure::new(
        EXEC_1MIB,
        "exec printing 1 MiB on a running VM",
    ));
    let fresh_true = ctx.figure(Figure::new(FRESH_TRUE, "`true` in a fresh VM"));
    let fresh_1mib = ctx.figure(Figure::new(FRESH_1MIB, "printing 1 MiB in a fresh VM"));
    let floor = ctx.figure(Figure::new(
        GUEST_FLOOR_TRUE,
        "`true` spawned by a shell in the guest (guest's clock)",
    ));
    let round_trip = ctx.figure(Figure::new(
        ROUND_TRIP,
        "a request spawning nothing (stat /proc), running VM",
    ));
    let config = ctx.vm();
    let vm = config.boot().await.map_err(BenchError::vm(CASE))?;
    let print_1mib =
        GuestCommand::new(PRINT_1MIB[0]).args([PRINT_1MIB[1], PRINT_1MIB[2], "/dev/zero"]);
    for run in ctx.all_runs() {
        let t = Instant::now();
        let out = vm
            .agent()
            .exec(&GuestCommand::new("true"))
            .await
            .map_err(BenchError::agent(CASE, "exec `true`"))?;
        let elapsed = t.elapsed();
        if !out.status.success() {
            return Err(BenchError::wrong(
                CASE,
                format!("`true` in the VM: {:?}", out.status),
            ));
        }
        ctx.sample(run, running_true, elapsed);
        let t = Instant::now();
        vm.agent()
            .stat("/proc")
            .await
            .map_err(BenchError::agent(CASE, "stat /proc"))?;
        ctx.sample(run, round_trip, t.elapsed());
        let per_spawn = guest_floor(&vm).await?;
        ctx.sample(run, floor, per_spawn);

        let t = Instant::now();
        let out = vm
            .agent()
            .exec(&print_1mib)
            .await
            .map_err(BenchError::agent(CASE, "exec printing 1 MiB"))?;
        let elapsed = t.elapsed();
        if !out.status.success() || out.stdout.len() != MIB {
            return Err(BenchError::wrong(
                CASE,
                format!(
                    "the 1 MiB command printed {} bytes ({:?})",
                    out.stdout.len(),
                    out.status
                ),
            ));
        }
        ctx.sample(run, running_1mib, elapsed);

        let t = Instant::now();
        one_shot(CASE, &config, &["true"], 0)?;
        ctx.sample(run, fresh_true, t.elapsed());

        let t = Instant::now();
        one_shot(
            CASE,
            &config,
            &[PRINT_1MIB[0], PRINT_1MIB[1], PRINT_1MIB[2], "/dev/zero"],
            MIB,
        )?;
        ctx.sample(run, fresh_1mib, t.elapsed());
    }
    vm.kill().await;
    Ok(())
}

/// Boots a VM running `argv` (through its agent, as `output()` does),
/// collects its output and checks that it exited 0 having printed
/// `stdout_len` bytes.
fn one_shot(
    case: &'static str,
    config: &VmConfig,
    argv: &[&str],
    stdout_len: usize,
) -> Result<(), BenchError> {
    let out = config
        .command(argv.iter().copied())
        .output()
        .map_err(BenchError::vm(case))?;
    if !out.status.success() || out.stdout.len() != stdout_len {
        return Err(BenchError::wrong(
            case,
            format!(
                "a fresh VM running {argv:?} printed {} bytes ({}); stderr: {}",
                out.stdout.len(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ),
        ));
    }
    Ok(())
}

/// A guest shell spawning `true` until half a second of the guest's
/// uptime has passed: the time per spawn, as the guest measures it
/// (`/proc/uptime`, in centiseconds, is read between spawns).
async fn guest_floor(vm: &krunbox::vm::Vm) -> Result<std::time::Duration, BenchError> {
    const CASE: &str = "exec";
    // No command substitution: a subshell per reading would be a second
    // fork per spawn. (Uptime is past 1 s here, so no leading zero.)
    const LOOP: &str = r#"read u _ < /proc/uptime; a=${u%.*}${u#*.}; b=$a; n=0
while [ $((b - a)) -lt 50 ]; do
  /bin/true; n=$((n + 1)); read u _ < /proc/uptime; b=${u%.*}${u#*.}
done
echo "$n $((b - a))""#;
    let out = vm
        .agent()
        .exec(&GuestCommand::new("sh").arg("-c").arg(LOOP))
        .await
        .map_err(BenchError::agent(CASE, "the guest's own spawn loop"))?;
    let said = out.stdout_text();
    let parsed = said.split_once(' ').and_then(|(n, cs)| {
        Some((
            n.trim().parse::<u32>().ok()?,
            cs.trim().parse::<u64>().ok()?,
        ))
    });
    match parsed {
        Some((spawns, cs)) if out.status.success() && spawns > 0 => {
            Ok(std::time::Duration::from_millis(cs * 10) / spawns)
        }
        _ => Err(BenchError::wrong(
            CASE,
            format!("the guest's spawn loop said {said:?} ({:?})", out.status),
        )),
    }
}
