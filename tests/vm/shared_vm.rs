//! The VMs that groups of cases share ([`krunbox_suite::Shared`]): booted
//! by the first case of the group, powered off after the last, with exit
//! 0 wanted and the runner gone.

use krunbox::vm::Vm;
use krunbox_suite::Resource;
use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// The agent cases' shared VM: the agent's test configuration, 512 MiB.
pub struct SharedVm(pub Vm);

impl Resource for SharedVm {
    fn set_up(_group: &str) -> Result<&'static Self, String> {
        let config = crate::support::agent_vm().memory_mib(512);
        let vm = runtime()
            .block_on(config.boot())
            .map_err(|e| krunbox::error_chain(&e))?;
        Ok(Box::leak(Box::new(SharedVm(vm))))
    }

    fn alive(&self) -> bool {
        alive(&self.0)
    }

    fn tear_down(&'static self, group: &str) -> Result<(), String> {
        power_off(&self.0, group)
    }

    fn pids(&self) -> Vec<u32> {
        vec![self.0.runner_pid()]
    }
}

/// Whether `vm` still serves: a VM whose agent fell silent is killed by
/// its watchdog.
pub fn alive(vm: &Vm) -> bool {
    vm.is_running() && vm.agent().is_alive()
}

/// Powers `vm` off after its group: the agent takes the power-off, the
/// runner ends with exit 0 and is gone.
pub fn power_off(vm: &'static Vm, group: &str) -> Result<(), String> {
    runtime().block_on(async {
        vm.agent().shutdown(0).await.map_err(|e| {
            format!(
                "the shared {group} VM did not take the power-off after its group: {}",
                krunbox::error_chain(&e)
            )
        })?;
        crate::fault_support::wait_until("the shared VM's exit", || !vm.is_running())
            .await
            .map_err(|e| format!("{e:?}"))
    })?;
    let pid = nix::unistd::Pid::from_raw(vm.runner_pid() as i32);
    if nix::sys::signal::kill(pid, None).is_ok() {
        return Err(format!(
            "the shared {group} VM's runner (pid {pid}) still runs after its power-off"
        ));
    }
    match vm.exit_status().and_then(|s| s.code()) {
        Some(0) => Ok(()),
        other => Err(format!(
            "the shared {group} VM powered off after its group with exit {other:?}, not 0"
        )),
    }
}

/// The runtime the shared VMs and their cases run on.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("tokio runtime"))
}
