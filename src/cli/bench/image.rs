//! The image case: booting the way images boot (the tree shared read-only
//! under the VM's own writable layer: [`VmConfig::overlay_root`]) against
//! booting the same tree read-write, so the ratio is the per-VM root's
//! cost alone. Both the whole boot to the first exec and the host's work
//! before `krun_start_enter` are compared.
//!
//! With `--image`, the image is booted as `run --image` boots it, against
//! a `--rootfs` boot of a copy of its tree (made before the timing, so
//! that the read-write boots leave the store's tree as it was).
//!
//! [`VmConfig::overlay_root`]: krunbox::vm::VmConfig::overlay_root

use std::time::{Duration, Instant};

use krunbox::client::GuestCommand;
use krunbox::image::Image;
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
/// both see the same load: the rootfs's, or `image`'s.
pub async fn image(ctx: &mut Ctx, image: Option<&Image>) -> Result<(), BenchError> {
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
    let copy = tempfile::tempdir().map_err(BenchError::io(CASE, "a temporary directory"))?;
    let (plain, overlay) = match image {
        None => (ctx.vm(), ctx.vm().overlay_root(true)),
        Some(image) => {
            let tree = copy.path().join("root");
            copy_tree(&image.root, &tree)?;
            let overlay = VmConfig::from_image(image).map_err(|e| {
                BenchError::wrong(
                    CASE,
                    format!("the image's user: {}", krunbox::error_chain(&e)),
                )
            })?;
            (VmConfig::new(tree).memory_mib(512), overlay.memory_mib(512))
        }
    };
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

const CASE: &str = "image";

/// `cp -a from to`: the image's tree, owners and all.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> Result<(), BenchError> {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(BenchError::io(CASE, "running cp"))?;
    if !status.success() {
        return Err(BenchError::wrong(
            CASE,
            format!("`cp -a {} {}`: {status}", from.display(), to.display()),
        ));
    }
    Ok(())
}

/// Boots `config`, runs `true`; returns the time to its end and the time
/// to `krun_start_enter`.
async fn first_exec(config: &VmConfig) -> Result<(Duration, Duration), BenchError> {
    let t = Instant::now();
    let vm = config.boot().await.map_err(BenchError::vm(CASE))?;
    let out = vm
        .agent()
        .exec(&GuestCommand::new("true"))
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
