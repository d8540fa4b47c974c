//! A sandbox as an agent runner uses one: boot once, provision a prompt
//! and a skills folder in one round trip, run commands, copy results out,
//! power off. The README's second program.
//!
//! ```sh
//! cargo run --example sandbox -- ROOTFS
//! ```

use std::time::Duration;

use krunbox::client::{GuestCommand, Provision};
use krunbox::vm::VmConfig;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), krunbox::Report> {
    krunbox::runner::enter_if_requested();
    let rootfs = std::env::args().nth(1).unwrap_or_else(|| "rootfs".into());
    let host = tempfile::tempdir()?;
    let skills = host.path().join("skills");
    std::fs::create_dir_all(skills.join("review"))?;
    std::fs::write(skills.join("review/SKILL.md"), "Read the diff first.\n")?;

    let vm = VmConfig::new(rootfs).memory_mib(256).boot().await?; // ready = the agent's hello
    let mut plan = Provision::new();
    plan.write_file("/work/prompt.md", "Summarize the repo.\n", 0o644);
    plan.copy_tree(&skills, "/work/skills")?;
    vm.agent().provision(&plan).await?; // many files, one round trip
    let script =
        "cat /work/prompt.md /work/skills/review/SKILL.md > /work/out.txt; wc -l < /work/out.txt";
    let out = vm
        .agent()
        .exec(&GuestCommand::new("sh").arg("-c").arg(script))
        .await?;
    println!(
        "{} lines (ready after {:?})",
        out.stdout_text().trim(),
        vm.timeline().ready
    );
    vm.agent()
        .copy_out("/work/out.txt", host.path().join("out.txt"))
        .await?;
    print!("{}", std::fs::read_to_string(host.path().join("out.txt"))?);
    let status = vm.shutdown(Duration::from_secs(10)).await?;
    println!("powered off: {status}");
    Ok(())
}
