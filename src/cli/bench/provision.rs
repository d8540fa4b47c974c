//! The provisioning case: a prompt file and 10 skill directories (61
//! small files) placed in the guest with one request, against one
//! `krunbox` CLI process per operation (the shell-out pattern krunbox
//! replaces): `krunbox exec NAME -- mkdir -p …` for each skill's
//! directories, then `krunbox cp FILE NAME:PATH` for every file, on a
//! named VM started once for the case.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};
use std::time::Instant;

use krunbox::client::GuestCommand;
use tempfile::TempDir;

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
    let shell_out = ctx.figure(Figure::new(
        SHELL_OUT,
        "prompt + 10 skills, one krunbox CLI process per operation",
    ));
    let batched_rootfs = ctx.figure(Figure::new(
        BATCHED_ROOTFS,
        "prompt + 10 skills in one request, into the rootfs",
    ));
    let sample = Sample::create().map_err(BenchError::io(CASE, "writing the sample files"))?;
    let vm = ctx.vm().boot().await.map_err(BenchError::vm(CASE))?;
    let named = NamedVmCli::start(ctx.rootfs())?;
    for run in ctx.all_runs() {
        let dest = format!("/dev/shm/krunbox-bench-provision-{run}");
        batch(ctx, &vm, &sample, &dest, (run, batched)).await?;
        let on_rootfs = format!("/krunbox-bench-provision-{run}");
        batch(ctx, &vm, &sample, &on_rootfs, (run, batched_rootfs)).await?;

        let t = Instant::now();
        named.shell_out(&sample, &dest)?;
        ctx.sample(run, shell_out, t.elapsed());
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
fn check_and_remove(sample: &Sample, dest: &str) -> String {
    format!(
        "test $(find {dest} -type f | wc -l) -eq {} && test -x {dest}/{SKILLS_DIR}/skill-07/scripts/run.sh && rm -rf {dest}",
        sample.files().len()
    )
}

/// A named VM driven through the `krunbox` CLI, one process per call,
/// in a private state directory; stopped on drop.
struct NamedVmCli {
    exe: PathBuf,
    state: TempDir,
    name: String,
}

impl NamedVmCli {
    fn start(rootfs: &Path) -> Result<Self, BenchError> {
        let exe = std::env::current_exe()
            .map_err(BenchError::io(CASE, "finding the krunbox executable"))?;
        let state = tempfile::Builder::new()
            .prefix("krunbox-bench-state-")
            .tempdir()
            .map_err(BenchError::io(CASE, "creating a state directory"))?;
        let named = Self {
            exe,
            state,
            name: format!("bench-{}", std::process::id()),
        };
        named.cli([
            OsStr::new("start"),
            OsStr::new("--name"),
            OsStr::new(&named.name),
            OsStr::new("--rootfs"),
            rootfs.as_os_str(),
        ])?;
        Ok(named)
    }

    /// Places the sample at `dest` as a shell-out program would: one
    /// `exec mkdir -p` per skill (and one for `dest`), one `cp` per file.
    fn shell_out(&self, sample: &Sample, dest: &str) -> Result<(), BenchError> {
        self.exec(["mkdir", "-p", &format!("{dest}/{SKILLS_DIR}")])?;
        for dirs in sample.skill_dirs() {
            let mut argv = vec!["mkdir".to_owned(), "-p".to_owned()];
            argv.extend(dirs.iter().map(|d| format!("{dest}/{d}")));
            self.exec(argv.iter().map(String::as_str))?;
        }
        for file in sample.files() {
            let target = format!("{}:{dest}/{}", self.name, file.display());
            self.cli([
                OsStr::new("cp"),
                sample.root().join(&file).as_os_str(),
                OsStr::new(&target),
            ])?;
        }
        Ok(())
    }

    /// `krunbox exec NAME -- ARGV…`.
    fn exec<'a>(&self, argv: impl IntoIterator<Item = &'a str>) -> Result<Output, BenchError> {
        let head = ["exec", self.name.as_str(), "--"].map(str::to_owned);
        self.cli(head.into_iter().chain(argv.into_iter().map(str::to_owned)))
    }

    /// One `krunbox` process; it must exit 0.
    fn cli<I, S>(&self, args: I) -> Result<Output, BenchError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = Process::new(&self.exe)
            .args(&args)
            // The CLI makes it, private to this user.
            .env(
                krunbox::state::STATE_DIR_ENV,
                self.state.path().join("state"),
            )
            .stdin(Stdio::null())
            .output()
            .map_err(BenchError::io(
                CASE,
                format!("running {}", self.exe.display()),
            ))?;
        if !out.status.success() {
            return Err(BenchError::wrong(
                CASE,
                format!(
                    "`krunbox {}` failed ({}): {}",
                    args.iter()
                        .map(|a| a.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim_end()
                ),
            ));
        }
        Ok(out)
    }
}

impl Drop for NamedVmCli {
    fn drop(&mut self) {
        let _ = self.cli(["stop", "--time", "10", &self.name]);
    }
}
