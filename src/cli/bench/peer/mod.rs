//! The peer case: krunbox and smolvm side by side in one run, on the same
//! rootfs, 1 vCPU and 512 MiB each, each driven the way its users drive
//! it from another program: one CLI process per operation (and, for
//! krunbox, its library on the same VM).
//!
//! Each run first starts each VM alone, to its first exec, and stops it:
//! krunbox's, smolvm's and, when smolvm's libkrunfw is beside its binary,
//! krunbox's with that kernel (a boot comparison with the same guest
//! kernel), in an order that turns with every run. Then it starts one VM
//! of each and runs every operation on both, the two sides taking turns
//! going first (A B, then B A), so that drift over the run hits both.

mod smolvm;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::ValueEnum;
use krunbox::client::{AgentClient, GuestCommand};
use serde::{Deserialize, Serialize};

use super::cli_vm::NamedVmCli;
use super::error::BenchError;
use super::provision::{check_and_remove, shell_out};
use super::stats::{Figure, Text};
use super::Ctx;
use crate::cli::sample::Sample;
pub use smolvm::Smolvm;

/// A peer `bench` can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Peer {
    /// smolvm's CLI (PyPI `smolmachines`, whose `smol/smol-vmm` it is).
    Smolvm,
}

/// Where the peer is.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// Its binary: a path, or a name looked up on `PATH`.
    pub bin: PathBuf,
    /// Its state directory; `None`: a temporary one.
    pub state: Option<PathBuf>,
}

/// What the report says of the peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Which peer.
    pub name: Text,
    /// What its `--version` printed.
    pub version: String,
    /// The binary run.
    pub binary: PathBuf,
    /// Operations it could not do as krunbox does them, and why.
    pub cannot: Vec<Gap>,
}

/// An operation the peer cannot do (as krunbox does it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gap {
    /// The operation.
    pub operation: Text,
    /// Why, and what was measured instead.
    pub why: Text,
}

pub(super) const CASE: &str = "peer";

/// `krunbox start` → the CLI returns with the agent ready.
pub const KRUNBOX_START: &str = "peer.krunbox_cli_start";
/// The same, the runner loading smolvm's libkrunfw.
pub const KRUNBOX_START_PEER_KERNEL: &str = "peer.krunbox_cli_start_peer_libkrunfw";
/// `smolvm machine start` → the CLI returns with the machine running.
pub const SMOLVM_START: &str = "peer.smolvm_start";
/// The first `krunbox exec NAME -- true` after start.
pub const KRUNBOX_FIRST_EXEC: &str = "peer.krunbox_cli_first_exec";
/// The first `smolvm machine exec -- true` after start.
pub const SMOLVM_FIRST_EXEC: &str = "peer.smolvm_first_exec";
/// `true` through krunbox's library, attached to the CLI's VM.
pub const KRUNBOX_LIB_TRUE: &str = "peer.krunbox_lib_exec_true";
/// `krunbox exec NAME -- true`.
pub const KRUNBOX_CLI_TRUE: &str = "peer.krunbox_cli_exec_true";
/// `smolvm machine exec -- true`.
pub const SMOLVM_TRUE: &str = "peer.smolvm_exec_true";
/// `krunbox exec` of a command printing 1 MiB, output read.
pub const KRUNBOX_CLI_1MIB: &str = "peer.krunbox_cli_exec_1mib";
/// `smolvm machine exec` of the same.
pub const SMOLVM_1MIB: &str = "peer.smolvm_exec_1mib";
/// `krunbox cp` of 4 KiB into the guest.
pub const KRUNBOX_CP_IN: &str = "peer.krunbox_cli_cp_in_4k";
/// `smolvm machine cp` of 4 KiB into the guest.
pub const SMOLVM_CP_IN: &str = "peer.smolvm_cp_in_4k";
/// `krunbox cp` of 4 KiB out of the guest.
pub const KRUNBOX_CP_OUT: &str = "peer.krunbox_cli_cp_out_4k";
/// `smolvm machine cp` of 4 KiB out of the guest.
pub const SMOLVM_CP_OUT: &str = "peer.smolvm_cp_out_4k";
/// A prompt and 10 skills in one request of krunbox's library.
pub const KRUNBOX_PROVISION: &str = "peer.krunbox_lib_provision";
/// The same with smolvm's CLI: one process per directory and per file.
pub const SMOLVM_PROVISION: &str = "peer.smolvm_provision";
/// `krunbox stop NAME`.
pub const KRUNBOX_STOP: &str = "peer.krunbox_cli_stop";
/// `smolvm machine stop`.
pub const SMOLVM_STOP: &str = "peer.smolvm_stop";

/// Samples per run, for the progress bar.
pub const SAMPLES_PER_RUN: u64 = 18;

/// Where the 4 KiB file goes in the guest.
const GUEST_4K: &str = "/tmp/krunbox-bench-peer-4k";

/// The figure indices of the case, in [`Ctx`].
struct Figures {
    start: [usize; 2],
    start_peer_kernel: Option<usize>,
    first_exec: [usize; 2],
    lib_true: usize,
    cli_true: [usize; 2],
    mib: [usize; 2],
    cp_in: [usize; 2],
    cp_out: [usize; 2],
    provision: [usize; 2],
    stop: [usize; 2],
}

pub async fn peer(ctx: &mut Ctx, settings: &PeerSettings) -> Result<(), BenchError> {
    let mut smolvm = Smolvm::find(&settings.bin, settings.state.as_deref())?;
    let version = smolvm.version()?;
    ctx.peer = Some(PeerInfo {
        name: Text::Borrowed("smolvm"),
        version,
        binary: smolvm.bin().to_owned(),
        cannot: gaps(&smolvm),
    });
    let figures = figures(ctx, smolvm.libkrunfw_dir().is_some());
    let sample = Sample::create().map_err(BenchError::io(CASE, "writing the sample files"))?;
    let scratch = tempfile::tempdir().map_err(BenchError::io(CASE, "a scratch directory"))?;
    let four_k = scratch.path().join("4k");
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&four_k, &bytes).map_err(BenchError::io(CASE, "writing the 4 KiB file"))?;
    smolvm.create(ctx.rootfs())?;
    for run in ctx.all_runs() {
        boot_each_alone(ctx, run, &figures, &mut smolvm)?;
        let mut krunbox = NamedVmCli::new(CASE, format!("peer-{run}"))?;
        krunbox.boot(ctx.rootfs(), None)?;
        smolvm.start()?;
        // The first exec after a start is its own figure (smolvm's takes
        // seconds); the operations are measured on VMs past it.
        krunbox.exec(["true"])?;
        smolvm.exec(["true"])?;
        let agent = krunbox.agent()?;
        let sides = Sides {
            krunbox: &krunbox,
            agent: &agent,
            smolvm: &smolvm,
        };
        sides.operate(ctx, run, &figures, &sample, &four_k).await?;
        krunbox.stop()?;
        smolvm.stop()?;
    }
    Ok(())
}

/// Declares the case's figures.
fn figures(ctx: &mut Ctx, peer_kernel: bool) -> Figures {
    let mut pair = |k: (&'static str, &'static str), s: (&'static str, &'static str)| {
        [
            ctx.figure(Figure::new(k.0, k.1)),
            ctx.figure(Figure::new(s.0, s.1)),
        ]
    };
    let start = pair(
        (KRUNBOX_START, "krunbox start (CLI) -> agent ready"),
        (SMOLVM_START, "smolvm machine start -> running"),
    );
    let first_exec = pair(
        (KRUNBOX_FIRST_EXEC, "krunbox exec `true`, first after start"),
        (
            SMOLVM_FIRST_EXEC,
            "smolvm machine exec `true`, first after start",
        ),
    );
    let cli_true = pair(
        (KRUNBOX_CLI_TRUE, "krunbox exec `true` (CLI)"),
        (SMOLVM_TRUE, "smolvm machine exec `true`"),
    );
    let mib = pair(
        (KRUNBOX_CLI_1MIB, "krunbox exec printing 1 MiB (CLI)"),
        (SMOLVM_1MIB, "smolvm machine exec printing 1 MiB"),
    );
    let cp_in = pair(
        (KRUNBOX_CP_IN, "krunbox cp 4 KiB in (CLI)"),
        (SMOLVM_CP_IN, "smolvm machine cp 4 KiB in"),
    );
    let cp_out = pair(
        (KRUNBOX_CP_OUT, "krunbox cp 4 KiB out (CLI)"),
        (SMOLVM_CP_OUT, "smolvm machine cp 4 KiB out"),
    );
    let provision = pair(
        (
            KRUNBOX_PROVISION,
            "prompt + 10 skills, krunbox library, one request",
        ),
        (
            SMOLVM_PROVISION,
            "prompt + 10 skills, smolvm CLI, a process per op",
        ),
    );
    let stop = pair(
        (KRUNBOX_STOP, "krunbox stop (CLI)"),
        (SMOLVM_STOP, "smolvm machine stop"),
    );
    let lib_true = ctx.figure(Figure::new(
        KRUNBOX_LIB_TRUE,
        "krunbox exec `true` (library, same VM)",
    ));
    let start_peer_kernel = peer_kernel.then(|| {
        ctx.figure(Figure::new(
            KRUNBOX_START_PEER_KERNEL,
            "krunbox start (CLI) with smolvm's libkrunfw",
        ))
    });
    Figures {
        start,
        start_peer_kernel,
        first_exec,
        lib_true,
        cli_true,
        mib,
        cp_in,
        cp_out,
        provision,
        stop,
    }
}

/// What smolvm cannot do as krunbox does it.
fn gaps(smolvm: &Smolvm) -> Vec<Gap> {
    let mut gaps = vec![
        Gap {
            operation: Text::Borrowed("copy a directory tree"),
            why: Text::Borrowed(
                "smolvm's `machine cp` copies single files: provisioning is measured \
                 as one `machine exec mkdir -p` per directory and one `machine cp` per file",
            ),
        },
        Gap {
            operation: Text::Borrowed("provision in one request"),
            why: Text::Borrowed("smolvm has no batched upload; see the row above"),
        },
    ];
    if smolvm.libkrunfw_dir().is_none() {
        gaps.push(Gap {
            operation: Text::Borrowed("boot krunbox with smolvm's libkrunfw"),
            why: Text::Owned(format!(
                "no {} beside {}: the same-kernel boot comparison is not measured",
                krunbox::host::krunfw::SONAME,
                smolvm.bin().display()
            )),
        });
    }
    gaps
}

/// Starts each VM alone, in an order that turns with every run: krunbox's,
/// smolvm's and (with smolvm's libkrunfw) krunbox's with that kernel; each
/// to its first exec, then stopped.
fn boot_each_alone(
    ctx: &mut Ctx,
    run: usize,
    figures: &Figures,
    smolvm: &mut Smolvm,
) -> Result<(), BenchError> {
    let mut sides = vec![0, 1];
    if figures.start_peer_kernel.is_some() {
        sides.push(2);
    }
    let turn = run % sides.len();
    sides.rotate_left(turn);
    for side in sides {
        if side == 1 {
            let t = Instant::now();
            smolvm.start()?;
            ctx.sample(run, figures.start[1], t.elapsed());
            let t = Instant::now();
            smolvm.exec(["true"])?;
            ctx.sample(run, figures.first_exec[1], t.elapsed());
            let t = Instant::now();
            smolvm.stop()?;
            ctx.sample(run, figures.stop[1], t.elapsed());
            continue;
        }
        let mut krunbox = NamedVmCli::new(CASE, format!("peer-boot-{run}-{side}"))?;
        let (start, kernel) = match (side, figures.start_peer_kernel) {
            (2, Some(index)) => (index, smolvm.libkrunfw_dir()),
            _ => (figures.start[0], None),
        };
        let t = Instant::now();
        krunbox.boot(ctx.rootfs(), kernel)?;
        ctx.sample(run, start, t.elapsed());
        if side == 2 {
            krunbox.stop()?;
            continue;
        }
        let t = Instant::now();
        krunbox.exec(["true"])?;
        ctx.sample(run, figures.first_exec[0], t.elapsed());
        let t = Instant::now();
        krunbox.stop()?;
        ctx.sample(run, figures.stop[0], t.elapsed());
    }
    Ok(())
}

/// Both running VMs.
struct Sides<'a> {
    krunbox: &'a NamedVmCli,
    agent: &'a AgentClient,
    smolvm: &'a Smolvm,
}

impl Sides<'_> {
    /// Every operation on both sides, each side first in turn.
    async fn operate(
        &self,
        ctx: &mut Ctx,
        run: usize,
        figures: &Figures,
        sample: &Sample,
        four_k: &Path,
    ) -> Result<(), BenchError> {
        let first = run % 2;
        let order = [first, 1 - first];
        let t = Instant::now();
        self.agent
            .exec(&GuestCommand::new("true"))
            .await
            .map_err(BenchError::agent(CASE, "exec"))?;
        ctx.sample(run, figures.lib_true, t.elapsed());
        for side in order {
            let t = Instant::now();
            self.exec(side, &["true"])?;
            ctx.sample(run, figures.cli_true[side], t.elapsed());
        }
        for side in order {
            let t = Instant::now();
            let out = self.exec(side, &["head", "-c", "1048576", "/dev/zero"])?;
            ctx.sample(run, figures.mib[side], t.elapsed());
            if out.len() != 1 << 20 {
                return Err(BenchError::wrong(
                    CASE,
                    format!("side {side} printed {} bytes, not 1 MiB", out.len()),
                ));
            }
        }
        self.copies(ctx, run, figures, four_k)?;
        let dest = format!("/tmp/krunbox-bench-peer-{run}");
        for side in order {
            let t = Instant::now();
            self.provision(side, sample, &dest).await?;
            ctx.sample(run, figures.provision[side], t.elapsed());
            self.exec(side, &["sh", "-c", &check_and_remove(sample, &dest)])?;
        }
        Ok(())
    }

    /// 4 KiB in, then out again; what comes out must be what went in.
    fn copies(
        &self,
        ctx: &mut Ctx,
        run: usize,
        figures: &Figures,
        four_k: &Path,
    ) -> Result<(), BenchError> {
        let first = run % 2;
        for side in [first, 1 - first] {
            let t = Instant::now();
            if side == 0 {
                let target = format!("{}:{GUEST_4K}", self.krunbox.name());
                self.krunbox.cp(four_k.as_os_str(), OsStr::new(&target))?;
            } else {
                self.smolvm.cp_in(four_k, GUEST_4K)?;
            }
            ctx.sample(run, figures.cp_in[side], t.elapsed());
            let back = four_k.with_extension(format!("out{side}"));
            let t = Instant::now();
            if side == 0 {
                let source = format!("{}:{GUEST_4K}", self.krunbox.name());
                self.krunbox.cp(OsStr::new(&source), back.as_os_str())?;
            } else {
                self.smolvm.cp_out(GUEST_4K, &back)?;
            }
            ctx.sample(run, figures.cp_out[side], t.elapsed());
            let same = std::fs::read(&back).ok() == std::fs::read(four_k).ok();
            let _ = std::fs::remove_file(&back);
            if !same {
                return Err(BenchError::wrong(
                    CASE,
                    format!("side {side}: the 4 KiB file came back changed"),
                ));
            }
        }
        Ok(())
    }

    /// The sample at `dest`: krunbox's library in one request, smolvm's
    /// CLI one process per operation.
    async fn provision(&self, side: usize, sample: &Sample, dest: &str) -> Result<(), BenchError> {
        if side == 0 {
            let plan = sample
                .plan(dest)
                .map_err(BenchError::agent(CASE, "planning"))?;
            return self
                .agent
                .provision(&plan)
                .await
                .map(drop)
                .map_err(BenchError::agent(CASE, "provision"));
        }
        shell_out(
            sample,
            dest,
            |argv| self.smolvm.exec(argv.iter().map(String::as_str)).map(drop),
            |file, guest| self.smolvm.cp_in(file, guest),
        )
    }

    /// `argv` through side `side`'s CLI (0: krunbox, 1: smolvm); its
    /// standard output.
    fn exec(&self, side: usize, argv: &[&str]) -> Result<Vec<u8>, BenchError> {
        let out = if side == 0 {
            self.krunbox.exec(argv.iter().copied())?
        } else {
            self.smolvm.exec(argv.iter().copied())?
        };
        Ok(out.stdout)
    }
}
