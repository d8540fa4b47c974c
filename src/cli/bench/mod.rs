//! `krunbox bench`: boot and provisioning times, each measured side by
//! side with the baseline it replaces, in the same run.
//!
//! Every case takes `--warmup` unrecorded runs, then `--runs` recorded
//! ones; each run takes one sample of each of its figures (the host-process
//! case, about a millisecond a sample, takes [`host::SAMPLES_PER_RUN`]).
//! Comparisons are ratios of medians: krunbox's figure over its baseline's.

mod cli_vm;
mod comparisons;
mod copy;
mod error;
mod host;
mod image;
mod launch;
mod loader;
mod net;
mod output;
mod peer;
mod phases;
mod provision;
mod pull;
mod python;
mod stats;
mod svg;
mod vm_cases;

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use krunbox::image::Reference;
use krunbox::vm::VmConfig;

use super::image::pull::{PullPolicy, RegistryArgs};
use comparisons::COMPARISONS;
pub use error::BenchError;
use output::{OutputFile, Report};
use stats::Figure;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Recorded runs of each case.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Unrecorded runs of each case before the recorded ones.
    #[arg(long, default_value_t = 1, value_name = "N")]
    warmup: u32,
    /// Cases to run, comma-separated (default: all but `pull`, which
    /// needs --image naming an image in a registry).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "CASE")]
    cases: Vec<Case>,
    /// The image the `image` case boots (against a --rootfs boot of a
    /// copy of its tree; default: the rootfs as an image) and the `pull`
    /// case pulls.
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// When the `image` case fetches --image (the `pull` case always
    /// starts from an empty store of its own).
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing, requires = "image")]
    pull: PullPolicy,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Guest root directory. Default: $KRUNBOX_TEST_ROOTFS (set in the
    /// lab), else the busybox rootfs that `cargo xtask setup` builds.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Write every sample, the summaries and the comparisons as JSON
    /// (`-`: to standard output, the table then going to standard error).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw the boot timeline and the comparisons as an SVG chart.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Measure nothing: print the table of a report saved with --json (and
    /// draw it with --svg), e.g. one brought back from the lab.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["runs", "warmup", "cases", "rootfs", "json", "image", "peer", "libkrunfw"])]
    report: Option<PathBuf>,
    /// Measure a peer side by side with krunbox (adds the `peer` case).
    #[arg(long, value_enum, value_name = "PEER")]
    peer: Option<peer::Peer>,
    /// smolvm's binary for the `peer` case: a path, or a name on PATH
    /// (the smolmachines wheel ships it as `smol/smol-vmm`, with its
    /// libkrun and libkrunfw beside it).
    #[arg(long, value_name = "PATH", default_value = "smolvm")]
    smolvm: PathBuf,
    /// smolvm's state directory (its `--state-dir`), e.g. one whose
    /// caches are already filled. Default: a temporary one.
    #[arg(long, value_name = "DIR", env = "KRUNBOX_BENCH_SMOLVM_STATE")]
    smolvm_state: Option<PathBuf>,
    /// Boot every krunbox VM of the run with this libkrunfw instead of the
    /// one on the loader path (e.g. a peer's, to split boot differences
    /// into kernel and driver).
    #[arg(long, value_name = "FILE")]
    libkrunfw: Option<PathBuf>,
    /// The Python interpreter the `python` case runs, with the krunbox
    /// package installed (`pip install ./python`).
    #[arg(long, value_name = "PYTHON", default_value = "python3")]
    python: PathBuf,
}

/// A group of figures measured together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Case {
    /// Boot to agent ready, against bare libkrun running /bin/true and
    /// against a boot whose runner is not confined.
    Boot,
    /// Exec round trips on a running VM, against a fresh VM per command.
    Exec,
    /// A prompt and 10 skills in one request, against one CLI call per file.
    Provision,
    /// 64 MiB copied in and out, against a virtio-fs shared directory.
    Copy,
    /// The agent as a host process: exec against a local fork/exec.
    HostExec,
    /// Image-style boots (read-only tree, the VM's own layer) against
    /// read-write boots of the same tree.
    Image,
    /// --image pulled into an empty store, against skopeo copy + umoci
    /// unpack.
    Pull,
    /// Connections and a 64 MiB download through the egress mode, against
    /// plain TSI.
    Net,
    /// A VM from a warm pool to its first exec, against a cold boot; and
    /// 20 acquires at once from a pool of 3.
    Launch,
    /// Exec from the Python package against the Rust library on the same
    /// VM, and against `krunbox exec` per call from Python (needs
    /// --python with the package installed).
    Python,
    /// krunbox against a peer's CLI (smolvm), operation by operation, in
    /// turns (`--peer` adds it).
    Peer,
}

impl Case {
    /// The cases run when none are named.
    const DEFAULT: [Case; 8] = [
        Case::Boot,
        Case::Exec,
        Case::Provision,
        Case::Copy,
        Case::HostExec,
        Case::Image,
        Case::Net,
        Case::Launch,
    ];

    /// Whether the case boots VMs.
    fn needs_vm(self) -> bool {
        !matches!(self, Case::HostExec | Case::Pull)
    }

    /// Samples taken per run, for the progress bar.
    fn samples_per_run(self) -> u64 {
        match self {
            Case::Boot => 4,
            Case::Exec => 6,
            Case::Provision => 3,
            Case::Copy => 4,
            Case::HostExec => 2 * host::SAMPLES_PER_RUN as u64,
            Case::Image => image::SAMPLES_PER_RUN,
            Case::Pull => pull::SAMPLES_PER_RUN,
            Case::Net => net::SAMPLES_PER_RUN,
            Case::Launch => launch::SAMPLES_PER_RUN,
            Case::Python => python::SAMPLES_PER_RUN,
            Case::Peer => peer::SAMPLES_PER_RUN,
        }
    }

    /// Samples taken once, after the runs, for the progress bar.
    fn samples_once(self) -> u64 {
        match self {
            Case::Launch => launch::BURST as u64,
            _ => 0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Case::Boot => "boot",
            Case::Exec => "exec",
            Case::Provision => "provision",
            Case::Copy => "copy",
            Case::HostExec => "host-exec",
            Case::Image => "image",
            Case::Pull => "pull",
            Case::Net => "net",
            Case::Launch => "launch",
            Case::Python => "python",
            Case::Peer => "peer",
        }
    }
}

/// What every case works with: the VM configuration, the run counts, the
/// figures so far and the progress bar.
pub struct Ctx {
    rootfs: Option<PathBuf>,
    python: PathBuf,
    runs: usize,
    warmup: usize,
    figures: Vec<Figure>,
    timelines: Vec<vm_cases::TimelineSample>,
    peer: Option<peer::PeerInfo>,
    progress: ProgressBar,
}

impl Ctx {
    /// The VM every case boots (512 MiB, 1 vCPU, the CLI's defaults).
    fn vm(&self) -> VmConfig {
        VmConfig::new(self.rootfs.clone().expect("VM cases resolve a rootfs")).memory_mib(512)
    }

    /// The interpreter of the `python` case.
    fn python(&self) -> &std::path::Path {
        &self.python
    }

    /// The rootfs directory.
    fn rootfs(&self) -> &std::path::Path {
        self.rootfs.as_deref().expect("VM cases resolve a rootfs")
    }

    /// All runs, warm-up first: iterate, and pass each to [`Ctx::sample`].
    fn all_runs(&self) -> std::ops::Range<usize> {
        0..self.warmup + self.runs
    }

    /// Adds `figure`, returning its index for [`Ctx::sample`].
    fn figure(&mut self, figure: Figure) -> usize {
        self.figures.push(figure);
        self.figures.len() - 1
    }

    /// Records `elapsed` for figure `index`, unless `run` is a warm-up.
    fn sample(&mut self, run: usize, index: usize, elapsed: Duration) {
        if run >= self.warmup {
            // Microseconds are plenty; more digits only bloat the JSON.
            let ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
            self.figures[index].samples_ms.push(ms);
        }
        self.progress.inc(1);
    }
}

/// Runs a shell command in `vm`; it must succeed. A failure of the VM
/// says how it ended.
async fn sh(case: &'static str, vm: &krunbox::vm::Vm, script: &str) -> Result<(), BenchError> {
    let command = krunbox::client::GuestCommand::new("sh")
        .arg("-c")
        .arg(script);
    let out = match vm.agent().exec(&command).await {
        Ok(out) => out,
        Err(e) => return Err(BenchError::agent_on(case, "exec", vm, e).await),
    };
    if !out.status.success() {
        return Err(BenchError::wrong(
            case,
            format!(
                "`{script}` failed ({:?}): {}",
                out.status,
                out.stderr_text().trim_end()
            ),
        ));
    }
    Ok(())
}

pub fn bench(args: BenchArgs) -> i32 {
    if let Some(saved) = &args.report {
        return match show_saved(saved, args.svg.as_deref()) {
            Ok(()) => 0,
            Err(e) => super::report::fail(&e),
        };
    }
    let mut cases = if args.cases.is_empty() {
        Case::DEFAULT.to_vec()
    } else {
        args.cases.clone()
    };
    if args.peer.is_some() && !cases.contains(&Case::Peer) {
        cases.push(Case::Peer);
    }
    if cases.iter().any(|c| c.needs_vm()) {
        if let Some(code) = super::demo::refuse_unbootable_host() {
            return code;
        }
    }
    // Before the runtime's threads: the runners inherit the loader path.
    let _libkrunfw = match args.libkrunfw.as_deref().map(loader::use_libkrunfw) {
        Some(Ok(dir)) => Some(dir),
        Some(Err(e)) => return super::report::fail(&e),
        None => None,
    };
    super::report::exit_code(run(args, cases))
}

async fn run(args: BenchArgs, cases: Vec<Case>) -> Result<(), BenchError> {
    let rootfs = if cases.iter().any(|c| c.needs_vm()) {
        Some(super::rootfs::resolve(args.rootfs.clone())?)
    } else {
        None
    };
    let pull_target = if cases.contains(&Case::Pull) {
        Some(pull_target(&args)?)
    } else {
        None
    };
    let image = match &args.image {
        Some(reference) if cases.contains(&Case::Image) => {
            Some(super::image::pull::image(reference, args.pull, &args.registry).await?)
        }
        _ => None,
    };
    // Opened before the long run, so a bad path fails at once.
    let json = args.json.as_deref().map(OutputFile::create).transpose()?;
    let svg = args.svg.as_deref().map(OutputFile::create).transpose()?;
    let (runs, warmup) = (args.runs as usize, args.warmup as usize);
    let total: u64 = cases
        .iter()
        .map(|c| c.samples_per_run() * (runs + warmup) as u64 + c.samples_once())
        .sum();
    let mut ctx = Ctx {
        rootfs,
        python: args.python.clone(),
        runs,
        warmup,
        figures: Vec::new(),
        timelines: Vec::new(),
        peer: None,
        progress: progress_bar(total),
    };
    let peer = peer::PeerSettings {
        bin: args.smolvm.clone(),
        state: args.smolvm_state.clone(),
    };
    // A case that fails (a VM lost, a tool missing) is reported; the run
    // goes on with the next case, which boots VMs of its own.
    let mut failed = Vec::new();
    for case in &cases {
        ctx.progress.set_message(case.name());
        let inputs = Inputs {
            image: image.as_ref(),
            pull_target: pull_target.as_ref(),
            peer: &peer,
        };
        if let Err(e) = run_case(&mut ctx, *case, &inputs).await {
            let failure = output::CaseFailure::new(case.name(), &e);
            ctx.progress.println(format!(
                "krunbox bench: case {} failed: {}; going on",
                failure.case, failure.error
            ));
            failed.push(failure);
        }
    }
    ctx.progress.finish_and_clear();
    let mut report = Report::new(
        &ctx,
        cases.iter().map(|c| Cow::Borrowed(c.name())).collect(),
        COMPARISONS,
    );
    report.failed = failed;
    report.meta.libkrunfw = args
        .libkrunfw
        .as_ref()
        .map(|file| format!("{} (--libkrunfw)", file.display()));
    // With the JSON on standard output, everything else goes to stderr.
    let to_stdout = json.as_ref().is_some_and(OutputFile::is_stdout);
    let say = |text: &str| {
        if to_stdout {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    };
    say(&report.table());
    if let Some(file) = json {
        if let Some(path) = file.write(&report.json())? {
            say(&format!("samples and summary: {}\n", path.display()));
        }
    }
    if let Some(file) = svg {
        if let Some(path) = file.write(svg::chart(&report).as_bytes())? {
            say(&format!("chart: {}\n", path.display()));
        }
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(BenchError::CasesFailed {
            cases: report.failed.iter().map(|f| f.case.to_string()).collect(),
            total: cases.len(),
        })
    }
}

/// What cases take from the command line, resolved once.
struct Inputs<'a> {
    image: Option<&'a krunbox::image::store::Image>,
    pull_target: Option<&'a pull::PullTarget>,
    peer: &'a peer::PeerSettings,
}

/// Runs one case.
async fn run_case(ctx: &mut Ctx, case: Case, inputs: &Inputs<'_>) -> Result<(), BenchError> {
    let Inputs {
        image, pull_target, ..
    } = *inputs;
    match case {
        Case::Boot => vm_cases::boot(ctx).await,
        Case::Exec => vm_cases::exec(ctx).await,
        Case::Provision => provision::provision(ctx).await,
        Case::Copy => copy::copy(ctx).await,
        Case::Net => net::net(ctx).await,
        Case::Launch => launch::launch(ctx).await,
        Case::Python => python::python(ctx).await,
        Case::HostExec => host::host_exec(ctx).await,
        Case::Image => image::image(ctx, image).await,
        Case::Pull => pull::pull(ctx, pull_target.expect("resolved before the cases")).await,
        Case::Peer => peer::peer(ctx, inputs.peer).await,
    }
}

/// What the pull case pulls: --image, a registry reference.
fn pull_target(args: &BenchArgs) -> Result<pull::PullTarget, BenchError> {
    let reference = args.image.as_deref().ok_or(BenchError::PullNeedsImage)?;
    let reference: Reference = reference
        .parse()
        .map_err(|e| BenchError::Image(super::image::ImageError::Reference(e)))?;
    Ok(pull::PullTarget {
        reference,
        insecure_registries: args.registry.insecure_registries.clone(),
    })
}

/// `--report FILE`: the table of a saved run, and its chart.
fn show_saved(saved: &std::path::Path, svg: Option<&std::path::Path>) -> Result<(), BenchError> {
    let report = Report::read(saved)?;
    print!("{}", report.table());
    if let Some(path) = svg {
        if let Some(path) = OutputFile::create(path)?.write(svg::chart(&report).as_bytes())? {
            println!("chart: {}", path.display());
        }
    }
    Ok(())
}

/// A bar on standard error, redrawn at most twice a second (in the lab it
/// travels over an emulated serial port).
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(2));
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}")
            .expect("a valid template"),
    );
    bar
}
