//! `krunbox demo`: the main job in one command. Boot a VM with the agent,
//! provision a prompt and 10 skill directories in one request, run
//! commands that read them, print where the time went.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use krunbox::client::{Command, Provision};
use krunbox::vm::VmConfig;

use super::report;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Guest root directory (default: $KRUNBOX_TEST_ROOTFS, set in the lab).
    #[arg(long, value_name = "DIR", env = "KRUNBOX_TEST_ROOTFS")]
    rootfs: PathBuf,
    /// Exec round trips to time.
    #[arg(long, default_value_t = 10, value_name = "N")]
    execs: usize,
}

pub fn demo(args: DemoArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("krunbox: error: cannot start the async runtime: {e}");
            return super::EXIT_KRUNBOX_FAILED;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => 0,
        Err(e) => report::fail(&e),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

async fn run(args: DemoArgs) -> Result<(), krunbox::vm::Error> {
    let agent_error = |source| krunbox::vm::Error::Agent {
        source,
        log_tail: String::new(),
    };
    let start = Instant::now();
    let vm = VmConfig::new(&args.rootfs).memory_mib(512).boot().await?;
    let booted = start.elapsed();
    println!("== boot: agent ready {} after start", ms(booted));
    println!("{}", vm.timeline());

    let mut plan = Provision::new();
    plan.write_file(
        "/work/prompt.md",
        &b"You are a careful agent. Read the skills, then say hello.\n"[..],
        0o644,
    );
    for i in 0..10 {
        let skill = format!("/work/skills/skill-{i:02}");
        plan.mkdir(format!("{skill}/scripts"), 0o755);
        plan.write_file(
            format!("{skill}/SKILL.md"),
            format!("# Skill {i}\nRun scripts/run.sh.\n").into_bytes(),
            0o644,
        );
        plan.write_file(
            format!("{skill}/scripts/run.sh"),
            format!("#!/bin/sh\necho skill {i} ok\n").into_bytes(),
            0o755,
        );
    }
    let t = Instant::now();
    vm.agent().provision(&plan).await.map_err(agent_error)?;
    println!(
        "== provision: prompt + 10 skills ({} operations) in one request: {}",
        plan.len(),
        ms(t.elapsed())
    );

    let t = Instant::now();
    let out = vm
        .agent()
        .exec(&Command::new("sh").arg("-c").arg(
            "head -1 /work/prompt.md; ls /work/skills | wc -l; /work/skills/skill-07/scripts/run.sh",
        ))
        .await
        .map_err(agent_error)?;
    println!("== exec reading them ({}):", ms(t.elapsed()));
    print!("{}", out.stdout_text());

    let mut samples = Vec::with_capacity(args.execs);
    for _ in 0..args.execs {
        let t = Instant::now();
        vm.agent()
            .exec(&Command::new("true"))
            .await
            .map_err(agent_error)?;
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

    let t = Instant::now();
    let status = vm.shutdown(Duration::from_secs(60)).await?;
    println!("== shutdown: {} ({status})", ms(t.elapsed()));
    println!("== total: {}", ms(start.elapsed()));
    Ok(())
}
