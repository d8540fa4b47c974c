//! The image case: booting the way images boot (the tree shared read-only
//! under the VM's own writable layer: [`VmConfig::overlay_root`]) against
//! booting the same tree read-write, so the ratio is the per-VM root's
//! cost alone. Both the whole boot to the first exec and the host's work
//! before `krun_start_enter` are compared.
//!
//! [`VmConfig::overlay_root`]: krunbox::vm::VmConfig::overlay_root

use std::time::{Duration, Instant};

use krunbox::client::Command;
use krunbox::vm::VmConfig;

use super::error::BenchError;
use super::stats::Figure;
use super::Ctx;

/// Overlay root: spawn runner → the first exec (`true`) ended.
pub const OVERLAY_FIRST_EXEC: &str = "image.overlay_first_exec";
/// The same tree read-write: spawn runner → the first exec ended.
pub const ROOTFS_FIRST_EXEC: &str = "image.rootfs_first_exec";
/// Overlay root: spawn runner → `krun_start_enter` (host-side work).
pub const OVERLAY_ENTERED: &str = "image.overlay_host_work";
/// The same tree read-write: spawn runner → `krun_start_enter`.
pub const ROOTFS_ENTERED: &str = "image.rootfs_host_work";

/// Samples taken per run.
pub const SAMPLES_PER_RUN: u64 = 4;

/// Overlay-root boots and read-write boots of one tree, interleaved so
/// both see the same load.
pub async fn image(ctx: &mut Ctx) -> Result<(), BenchError> {
    let overlay_exec = ctx.figure(Figure::new(
        OVERLAY_FIRST_EXEC,
        "image-style boot (read-only tree + VM layer) to first exec",
    ));
    let rootfs_exec = ctx.figure(Figure::new(
        ROOTFS_FIRST_EXEC,
        "--rootfs boot of the same tree to first exec",
    ));
    let overlay_host = ctx.figure(Figure::new(
        OVERLAY_ENTERED,
        "image-style boot: host work before krun_start_enter",
    ));
    let rootfs_host = ctx.figure(Figure::new(
        ROOTFS_ENTERED,
        "--rootfs boot: host work before krun_start_enter",
    ));
    let plain = ctx.vm();
    let overlay = ctx.vm().overlay_root(true);
    for run in ctx.all_runs() {
        let (exec, entered) = first_exec(&overlay).await?;
        ctx.sample(run, overlay_exec, exec);
        ctx.sample(run, overlay_host, entered);
        let (exec, entered) = first_exec(&plain).await?;
        ctx.sample(run, rootfs_exec, exec);
        ctx.sample(run, rootfs_host, entered);
    }
    Ok(())
}

/// Boots `config`, runs `true`; returns the time to its end and the time
/// to `krun_start_enter`.
async fn first_exec(config: &VmConfig) -> Result<(Duration, Duration), BenchError> {
    const CASE: &str = "image";
    let t = Instant::now();
    let vm = config.boot().await.map_err(BenchError::vm(CASE))?;
    let out = vm
        .agent()
        .exec(&Command::new("true"))
        .await
        .map_err(BenchError::agent(CASE, "the first exec"))?;
    let elapsed = t.elapsed();
    let entered = vm.timeline().entered;
    vm.kill().await;
    if !out.status.success() {
        return Err(BenchError::wrong(CASE, format!("`true`: {:?}", out.status)));
    }
    let entered = entered
        .ok_or_else(|| BenchError::wrong(CASE, "the runner did not report entering libkrun"))?;
    Ok((elapsed, entered))
}
