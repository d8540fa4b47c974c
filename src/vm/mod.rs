//! Booting microVMs: configuration (network, published ports, volumes,
//! limits, console log), checks before boot, the one-shot workload (a VM
//! that runs one command and exits with its code), and [`Vm`], a booted VM
//! driven through its agent.

mod config;
mod config_error;
mod confinement;
mod egress;
mod error;
mod image;
mod machine;
mod oneshot;
mod phases;
mod publish;
mod rlimit;
mod root;
mod timeline;
mod vcpu_start;
mod volume;

pub use config::{ConfigError, VmConfig, DEFAULT_PATH};
pub use confinement::SECCOMP_ENV;
pub use error::Error;
pub(crate) use machine::SocketDir;
pub use machine::{Vm, ANNOUNCE_PORT, OPS_PORT};
pub use oneshot::{OneShot, OneShotChild, OneShotOutput};
pub use phases::{nearest_rank, BootPhases, PhasePercentiles};
pub use publish::{PortError, PublishedPort};
pub use rlimit::{Resource, Rlimit, RlimitError};
pub use timeline::BootTimeline;
pub use volume::{Volume, VolumeError};

pub use crate::runner::NetMode;
/// How [`OneShot`] connects the guest's standard streams (also
/// `krunbox::runner::StdioSpec`).
pub use crate::runner::StdioSpec;
pub use crate::runner::{
    Applied, CgroupLimits, Confinement, ConfinementReport, RunAs, SeccompMode,
};

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
