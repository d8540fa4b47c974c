//! The provisioning case: a prompt file and 10 skill directories (61
//! small files) placed in the guest with one request, against one
//! `krunbox` CLI process per operation (the shell-out pattern krunbox
//! replaces): `krunbox exec NAME -- mkdir -p …` for each skill's
//! directories, then `krunbox cp FILE NAME:PATH` for every file, on a
//! named VM started once for the case.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Instant;

use krunbox::client::GuestCommand;

use super::cli_vm::NamedVmCli;
use super::error::BenchError;
use super::stats::Figure;
use super::Ctx;
use crate::cli::sample::{Sample, SKILLS_DIR};

/// The sample in one provisioning request, into a tmpfs (`/dev/shm`).
pub const BATCHED: &str = "provision.batched";
/// The same request into the guest's root filesystem (virtio-fs), where
/// a sandbox's files usually go.
pub const BATCHED_ROOTFS: &str = "provision.batched_rootfs";
/// The sample with one CLI process per operation.
pub const SHELL_OUT: &str = "provision.shell_out";

const CASE: &str = "provision";

pub async fn provision(ctx: &mut Ctx) -> Result<(), BenchError> {
    let batched = ctx.figure(Figure::new(
        BATCHED,
        "prompt + 10 skills (61 files) in one request",
    ));
    let per_op = ctx.figure(Figure::new(
        SHELL_OUT,
        "prompt + 10 skills, one krunbox CLI process per operation",
    ));
    let batched_rootfs = ctx.figure(Figure::new(
        BATCHED_ROOTFS,
        "prompt + 10 skills in one request, into the rootfs",
    ));
    let sample = Sample::create().map_err(BenchError::io(CASE, "writing the sample files"))?;
    let vm = ctx.vm().boot().await.map_err(BenchError::vm(CASE))?;
    let named = NamedVmCli::start(CASE, ctx.rootfs())?;
    for run in ctx.all_runs() {
        let dest = format!("/dev/shm/krunbox-bench-provision-{run}");
        batch(ctx, &vm, &sample, &dest, (run, batched)).await?;
        let on_rootfs = format!("/krunbox-bench-provision-{run}");
        batch(ctx, &vm, &sample, &on_rootfs, (run, batched_rootfs)).await?;

        let t = Instant::now();
        shell_out(
            &sample,
            &dest,
            |argv: &[String]| named.exec(argv.iter().map(String::as_str)).map(drop),
            |file, target| {
                let target = format!("{}:{target}", named.name());
                named.cp(file.as_os_str(), OsStr::new(&target)).map(drop)
            },
        )?;
        ctx.sample(run, per_op, t.elapsed());
        named.exec(["sh", "-c", &check_and_remove(&sample, &dest)])?;
    }
    vm.kill().await;
    Ok(())
}

/// Provisions the sample at `dest` in one request, timed as `figure` of
/// `run`; checks that every file arrived, and removes them.
async fn batch(
    ctx: &mut Ctx,
    vm: &krunbox::vm::Vm,
    sample: &Sample,
    dest: &str,
    (run, figure): (usize, usize),
) -> Result<(), BenchError> {
    let agent = vm.agent();
    let plan = sample
        .plan(dest)
        .map_err(BenchError::agent(CASE, "planning"))?;
    let t = Instant::now();
    agent
        .provision(&plan)
        .await
        .map_err(BenchError::agent(CASE, "provision"))?;
    ctx.sample(run, figure, t.elapsed());
    let out = agent
        .exec(
            &GuestCommand::new("sh")
                .arg("-c")
                .arg(check_and_remove(sample, dest)),
        )
        .await
        .map_err(BenchError::agent(CASE, "checking the provisioned files"))?;
    if !out.status.success() {
        return Err(BenchError::wrong(
            CASE,
            format!("{dest} lacks files ({:?})", out.status),
        ));
    }
    Ok(())
}

/// A guest shell script: every sample file arrived under `dest`; then
/// remove it.
pub fn check_and_remove(sample: &Sample, dest: &str) -> String {
    format!(
        "test $(find {dest} -type f | wc -l) -eq {} && test -x {dest}/{SKILLS_DIR}/skill-07/scripts/run.sh && rm -rf {dest}",
        sample.files().len()
    )
}

/// Places the sample at `dest` as a shell-out program would: one `exec
/// mkdir -p` for `dest` and one per skill, then one copy per file
/// (`cp_in(host file, guest path)`).
pub fn shell_out(
    sample: &Sample,
    dest: &str,
    mut exec: impl FnMut(&[String]) -> Result<(), BenchError>,
    mut cp_in: impl FnMut(&Path, &str) -> Result<(), BenchError>,
) -> Result<(), BenchError> {
    let mkdir = |dirs: &mut dyn Iterator<Item = String>| {
        let mut argv = vec!["mkdir".to_owned(), "-p".to_owned()];
        argv.extend(dirs);
        argv
    };
    exec(&mkdir(&mut std::iter::once(format!("{dest}/{SKILLS_DIR}"))))?;
    for dirs in sample.skill_dirs() {
        exec(&mkdir(&mut dirs.iter().map(|d| format!("{dest}/{d}"))))?;
    }
    for file in sample.files() {
        cp_in(
            &sample.root().join(&file),
            &format!("{dest}/{}", file.display()),
        )?;
    }
    Ok(())
}
