//! The vCPU watch of a case that boots its own VM: the case drops the VM,
//! and so kills its runner, before the rerun policy looks, so the policy
//! judges what the case watched while it still held the VM
//! (`vcpus::watch_before_drop`). This process plays the runner: it takes
//! the runner's name and starts a thread named like a vCPU, which sleeps
//! (no evidence wherever the test runs, root or not).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use krunbox_suite::evidence::EvidenceSources;
use krunbox_suite::rerun::{Budget, Rerun, RerunPolicy};
use krunbox_suite::{vcpus, Failed};

/// A runner's name and one sleeping vCPU thread, for as long as it lives.
struct FakeRunner {
    name: String,
    stop: Arc<AtomicBool>,
    vcpu: Option<std::thread::JoinHandle<()>>,
}

impl FakeRunner {
    fn start() -> Result<Self, Failed> {
        let name = std::fs::read_to_string("/proc/self/comm")?;
        std::fs::write("/proc/self/comm", "libkrun VM")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // The new thread names itself before it runs the closure: once
        // the closure has said so, the name is there to be found.
        let (running, started) = std::sync::mpsc::channel();
        let vcpu = std::thread::Builder::new()
            .name("fc_vcpu 0".into())
            .spawn(move || {
                let _ = running.send(());
                while !flag.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            })?;
        started.recv()?;
        Ok(Self {
            name,
            stop,
            vcpu: Some(vcpu),
        })
    }
}

impl Drop for FakeRunner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(vcpu) = self.vcpu.take() {
            let _ = vcpu.join();
        }
        let _ = std::fs::write("/proc/self/comm", self.name.trim_end());
    }
}

fn watching_policy() -> Result<(tempfile::TempDir, RerunPolicy), Failed> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("trace"), "# tracer: nop\n#\n")?;
    std::fs::write(dir.path().join("kmsg"), "6,1,10,-;Linux version 6.1\n")?;
    let sources = EvidenceSources {
        kvm_exits: dir.path().join("trace"),
        kernel_log: dir.path().join("kmsg"),
        watch_vcpus: true,
        guest_consoles: None,
    };
    let policy = RerunPolicy::new(Budget::SUITE, sources, 0, |_: &Rerun, _: Option<&str>| {});
    Ok((dir, policy))
}

/// One test, so that nothing else in this process runs while it plays
/// the runner.
#[test]
fn a_case_watches_its_own_vm_before_dropping_it() -> Result<(), Failed> {
    let (_dir, policy) = watching_policy()?;
    let failed_holding = |watch: bool| {
        policy.run("fake::own_vm", &|| {
            let runner = FakeRunner::start()?;
            if watch {
                vcpus::watch_before_drop();
            }
            drop(runner);
            Err("no answer from the agent within 60s".into())
        })
    };

    // Watched before the drop: the policy judged the live vCPU.
    let watched = failed_holding(true).expect_err("the case fails");
    let text = watched.message().unwrap_or_default();
    if !text.contains("fc_vcpu 0") || text.contains("no VM runner") {
        return Err(format!("the early watch is not what was judged:\n{text}").into());
    }
    // Not watched: by the time the policy looks, the runner is gone.
    let late = failed_holding(false).expect_err("the case fails");
    let text = late.message().unwrap_or_default();
    if !text.contains("no VM runner was running") {
        return Err(format!("a late watch saw a runner:\n{text}").into());
    }
    if policy.reruns().is_empty() {
        Ok(())
    } else {
        Err(format!(
            "a sleeping vCPU was taken for evidence: {:?}",
            policy.reruns()
        )
        .into())
    }
}
