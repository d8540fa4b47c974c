//! Booting microVMs: configuration, checks before boot, the one-shot
//! workload (a VM that runs one command and exits with its code), and
//! [`Vm`], a booted VM driven through its agent.

mod config;
mod error;
mod machine;
mod oneshot;
mod timeline;

pub use config::{ConfigError, VmConfig, DEFAULT_PATH};
pub use error::Error;
pub(crate) use machine::SocketDir;
pub use machine::{Vm, ANNOUNCE_PORT, OPS_PORT};
pub use oneshot::{OneShot, OneShotChild, OneShotOutput};
pub use timeline::BootTimeline;

/// Checks that this host can boot a guest at all (before every boot; the
/// libkrunfw probe is done once per process).
pub(crate) fn preflight() -> Result<(), Error> {
    let kvm = crate::host::Kvm::probe();
    if !kvm.can_boot() {
        return Err(Error::Kvm(kvm));
    }
    crate::host::krunfw::probe()?;
    Ok(())
}
