//! `krunbox demo`: the main job in one command. Boot a VM with the agent
//! on the default rootfs, provision a prompt and 10 skill directories in
//! one request, run a command that reads them, print where the time went.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use krunbox::client::{ClientError, Command};
use krunbox::host::Kvm;
use krunbox::vm::VmConfig;

use super::report;
use super::rootfs::RootfsError;
use super::sample::{Sample, SKILLS};

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
    super::report::block_on(async move {
        match run(args).await {
            Ok(()) => 0,
            Err(e) => report::fail(&e),
        }
    })
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

async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let (config, what) = match &args.image {
        Some(reference) => {
            let image = super::image::pull::image(
                reference,
                super::image::pull::PullPolicy::Missing,
                &super::image::pull::RegistryArgs::default(),
            )
            .await?;
            let config =
                VmConfig::from_image(&image).map_err(|source| super::image::ImageError::User {
                    image: super::image::display_name(&image),
                    source,
                })?;
            (
                config,
                format!("image {}", super::image::display_name(&image)),
            )
        }
        None => {
            let rootfs = super::rootfs::resolve(args.rootfs)?;
            let what = format!("rootfs {}", rootfs.display());
            (VmConfig::new(rootfs), what)
        }
    };
    let sample = Sample::create().map_err(DemoError::Sample)?;
    let plan = sample
        .plan(GUEST_DIR)
        .map_err(agent("planning the provisioning"))?;
    println!("krunbox demo: {what}");

    let start = Instant::now();
    let vm = config.memory_mib(512).boot().await?;
    let boot = start.elapsed();
    println!("== boot: agent ready {}", ms(boot));

    let t = Instant::now();
    vm.agent()
        .provision(&plan)
        .await
        .map_err(agent("provisioning"))?;
    let provision = t.elapsed();
    println!(
        "== provision: prompt + {SKILLS} skills ({} files, {} operations) in one request: {}",
        sample.files().len(),
        plan.len(),
        ms(provision)
    );

    let t = Instant::now();
    let out = vm
        .agent()
        .exec(&Command::new("sh").arg("-c").arg(READER))
        .await
        .map_err(agent("the exec reading them"))?;
    let first_exec = t.elapsed();
    println!("== exec reading them: {}", ms(first_exec));
    print!("{}", out.stdout_text());
    eprint!("{}", out.stderr_text());

    let mut samples = Vec::with_capacity(args.execs);
    for _ in 0..args.execs {
        let t = Instant::now();
        vm.agent()
            .exec(&Command::new("true"))
            .await
            .map_err(agent("exec"))?;
        samples.push(t.elapsed());
    }
    samples.sort();
    if let (Some(min), Some(max)) = (samples.first(), samples.last()) {
        println!(
            "== exec round trip (`true`, {} runs): min {}, median {}, max {}",
            samples.len(),
            ms(*min),
            ms(samples[samples.len() / 2]),
            ms(*max)
        );
    }
    vm.agent()
        .exec(&Command::new("rm").args(["-rf", GUEST_DIR]))
        .await
        .map_err(agent("removing the sample"))?;

    println!("== boot timeline (from spawning the runner):");
    println!("{}", vm.timeline());
    let t = Instant::now();
    let status = vm.shutdown(Duration::from_secs(60)).await?;
    let shutdown = t.elapsed();
    println!("== shutdown: {} ({status})", ms(shutdown));
    println!(
        "== total: {} (boot {}, provision {}, first exec {}, shutdown {})",
        ms(start.elapsed()),
        ms(boot),
        ms(provision),
        ms(first_exec),
        ms(shutdown)
    );
    Ok(())
}
