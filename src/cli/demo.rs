//! `krunbox demo`: the main job in one command. Boot a VM with the agent
//! on the default rootfs, provision a prompt and 10 skill directories in
//! one request, run a command that reads them, print where the time went.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use clap::Args;
use krunbox::client::{ClientError, ExecOutput, GuestCommand};
use krunbox::host::Kvm;
use krunbox::vm::{BootPhases, BootTimeline, VmConfig};

use super::report;
use super::rootfs::RootfsError;
use super::sample::{Sample, SKILLS};
use super::timings::ms as json_ms;

/// Where the demo puts the sample in the guest (removed at the end).
const GUEST_DIR: &str = "/tmp/krunbox-demo";

/// The command that reads what was provisioned.
const READER: &str = "cd /tmp/krunbox-demo && head -1 prompt.md && \
     echo \"$(ls skills | wc -l) skills, $(find skills -type f | wc -l) files\" && \
     sh skills/skill-07/scripts/run.sh";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Guest root directory. Default: $KRUNBOX_TEST_ROOTFS (set in the
    /// lab), else the busybox rootfs that `cargo xtask setup` builds.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    rootfs: Option<PathBuf>,
    /// Boot from an image in the store instead (`krunbox images`).
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// Exec round trips to time after the first.
    #[arg(long, default_value_t = 10, value_name = "N")]
    execs: usize,
    /// Print one JSON object at the end instead of the report (durations
    /// in milliseconds; the reading command's output under `output`).
    #[arg(long)]
    json: bool,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error("cannot write the sample prompt and skills")]
    Sample(#[source] io::Error),
    #[error("{op} failed")]
    Agent {
        op: &'static str,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Vm(#[from] krunbox::vm::Error),
    #[error(transparent)]
    Image(#[from] super::image::ImageError),
}

impl report::Advised for DemoError {
    fn advice(&self) -> Option<String> {
        match self {
            DemoError::Rootfs(e) => Some(e.advice().to_owned()),
            DemoError::Vm(e) => e.advice(),
            DemoError::Image(e) => e.advice(),
            _ => None,
        }
    }
}

pub fn demo(args: DemoArgs) -> i32 {
    if let Some(code) = refuse_unbootable_host() {
        return code;
    }
    report::exit_code(run(args))
}

/// On a host whose KVM cannot boot libkrun guests, says what to run
/// instead and returns the exit code.
pub fn refuse_unbootable_host() -> Option<i32> {
    let kvm = Kvm::probe();
    if kvm.can_boot() {
        return None;
    }
    let me = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    eprintln!("krunbox: {}", kvm.describe());
    if matches!(kvm, Kvm::Paravirtual) {
        eprintln!(
            "krunbox: libkrun guests cannot boot on this host directly; from a krunbox \
             checkout, run it in the nested lab:\n\n    cargo xtask lab -- krunbox {me}\n"
        );
    } else if let Some(advice) = kvm.advice() {
        eprintln!("krunbox: hint: {advice}");
    }
    Some(super::EXIT_KRUNBOX_FAILED)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn agent(op: &'static str) -> impl FnOnce(ClientError) -> DemoError {
    move |source| DemoError::Agent { op, source }
}

/// The guest the demo boots: the image's or the rootfs's, and its name.
async fn guest(args: &DemoArgs) -> Result<(VmConfig, String), DemoError> {
    let Some(reference) = &args.image else {
        let rootfs = super::rootfs::resolve(args.rootfs.clone())?;
        let what = format!("rootfs {}", rootfs.display());
        return Ok((VmConfig::new(rootfs), what));
    };
    let image = super::image::pull::image(
        reference,
        super::image::pull::PullPolicy::Missing,
        &super::image::pull::RegistryArgs::default(),
    )
    .await?;
    let name = super::image::display_name(&image);
    let config = VmConfig::from_image(&image).map_err(|source| super::image::ImageError::User {
        image: name.clone(),
        source,
    })?;
    Ok((config, format!("image {name}")))
}

async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let (config, what) = guest(&args).await?;
    let sample = Sample::create().map_err(DemoError::Sample)?;
    let plan = sample
        .plan(GUEST_DIR)
        .map_err(agent("planning the provisioning"))?;
    // The report, line by line as the demo goes, unless --json.
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };
    say(format!("krunbox demo: {what}"));

    let start = Instant::now();
    let vm = config.memory_mib(512).boot().await?;
    let boot = start.elapsed();
    say(format!("== boot: agent ready {}", ms(boot)));

    let t = Instant::now();
    vm.agent()
        .provision(&plan)
        .await
        .map_err(agent("provisioning"))?;
    let provision = t.elapsed();
    say(format!(
        "== provision: prompt + {SKILLS} skills ({} files, {} operations) in one request: {}",
        sample.files().len(),
        plan.len(),
        ms(provision)
    ));

    let t = Instant::now();
    let out = vm
        .agent()
        .exec(&GuestCommand::new("sh").arg("-c").arg(READER))
        .await
        .map_err(agent("the exec reading them"))?;
    let first_exec = t.elapsed();
    say(format!("== exec reading them: {}", ms(first_exec)));
    if !args.json {
        print!("{}", out.stdout_text());
        eprint!("{}", out.stderr_text());
    }

    let samples = round_trips(&vm, args.execs).await?;
    if let (Some(min), Some(max)) = (samples.first(), samples.last()) {
        say(format!(
            "== exec round trip (`true`, {} runs): min {}, median {}, max {}",
            samples.len(),
            ms(*min),
            ms(samples[samples.len() / 2]),
            ms(*max)
        ));
    }
    vm.agent()
        .exec(&GuestCommand::new("rm").args(["-rf", GUEST_DIR]))
        .await
        .map_err(agent("removing the sample"))?;

    let timeline = vm.timeline();
    let phases = vm
        .boot_phases()
        .await
        .map_err(agent("placing the guest's clock"))?;
    let t = Instant::now();
    let status = vm.shutdown(Duration::from_secs(60)).await?;
    let report = Report {
        guest: &what,
        files: sample.files().len(),
        operations: plan.len(),
        boot,
        provision,
        first_exec,
        output: &out,
        samples: &samples,
        timeline: &timeline,
        phases,
        shutdown: t.elapsed(),
        status,
        total: start.elapsed(),
    };
    report.print(args.json);
    Ok(())
}

/// `n` round trips of `true`, each timed, sorted.
async fn round_trips(vm: &krunbox::vm::Vm, n: usize) -> Result<Vec<Duration>, DemoError> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        vm.agent()
            .exec(&GuestCommand::new("true"))
            .await
            .map_err(agent("exec"))?;
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok(samples)
}

/// What the demo measured, printed at its end.
struct Report<'a> {
    guest: &'a str,
    files: usize,
    operations: usize,
    boot: Duration,
    provision: Duration,
    first_exec: Duration,
    output: &'a ExecOutput,
    /// Round trips of `true`, sorted.
    samples: &'a [Duration],
    timeline: &'a BootTimeline,
    /// The boot's phases in host time, when every stamp is there.
    phases: Option<BootPhases>,
    shutdown: Duration,
    status: ExitStatus,
    total: Duration,
}

impl Report<'_> {
    /// The report's last lines, or with `json` all of it as one object.
    fn print(&self, json: bool) {
        if !json {
            println!("== boot timeline (from spawning the runner):");
            println!("{}", self.timeline);
            if let Some(phases) = &self.phases {
                println!("== boot phases in host time (they add up to agent ready):");
                println!("{phases}");
            }
            println!("== shutdown: {} ({})", ms(self.shutdown), self.status);
            println!(
                "== total: {} (boot {}, provision {}, first exec {}, shutdown {})",
                ms(self.total),
                ms(self.boot),
                ms(self.provision),
                ms(self.first_exec),
                ms(self.shutdown)
            );
            return;
        }
        let report = serde_json::json!({
            "guest": self.guest,
            "boot_ms": json_ms(self.boot),
            "provision": {
                "files": self.files,
                "operations": self.operations,
                "ms": json_ms(self.provision),
            },
            "first_exec_ms": json_ms(self.first_exec),
            "output": {
                "stdout": self.output.stdout_text(),
                "stderr": self.output.stderr_text(),
            },
            "exec_round_trip_ms": self.samples.iter().map(|d| json_ms(*d)).collect::<Vec<_>>(),
            "timeline": super::timings::timeline(self.timeline),
            "phases": self.phases.as_ref().map(super::timings::phases),
            "shutdown_ms": json_ms(self.shutdown),
            "exit_code": self.status.code(),
            "total_ms": json_ms(self.total),
        });
        println!("{report}");
    }
}
