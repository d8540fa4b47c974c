//! The provisioning case: a prompt file and 10 skill directories (61
//! small files) placed in the guest with one request, against one
//! `krunbox` CLI process per operation (the shell-out pattern).

use std::time::Instant;

use krunbox::client::Command;

use super::error::BenchError;
use super::stats::Figure;
use super::Ctx;
use crate::cli::sample::Sample;

/// The sample in one provisioning request.
pub const BATCHED: &str = "provision.batched";
/// The sample with one CLI process per operation.
pub const SHELL_OUT: &str = "provision.shell_out";

const CASE: &str = "provision";

pub async fn provision(ctx: &mut Ctx) -> Result<(), BenchError> {
    let batched = ctx.figure(Figure::new(
        BATCHED,
        "prompt + 10 skills (61 files) in one request",
    ));
    let sample = Sample::create().map_err(BenchError::io(CASE, "writing the sample files"))?;
    let vm = ctx.vm().boot().await.map_err(BenchError::vm(CASE))?;
    let agent = vm.agent();
    for run in ctx.all_runs() {
        let dest = format!("/dev/shm/krunbox-bench-provision-{run}");
        let plan = sample
            .plan(&dest)
            .map_err(BenchError::agent(CASE, "planning"))?;
        let t = Instant::now();
        agent
            .provision(&plan)
            .await
            .map_err(BenchError::agent(CASE, "provision"))?;
        ctx.sample(run, batched, t.elapsed());
        let out = agent
            .exec(&Command::new("sh").arg("-c").arg(format!(
                "test $(find {dest} -type f | wc -l) -eq {} && rm -rf {dest}",
                sample.files().len()
            )))
            .await
            .map_err(BenchError::agent(CASE, "checking the provisioned files"))?;
        if !out.status.success() {
            return Err(BenchError::wrong(
                CASE,
                format!("{dest} lacks files ({:?})", out.status),
            ));
        }
    }
    vm.kill().await;
    Ok(())
}
