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
pub use machine::{Vm, ANNOUNCE_PORT, OPS_PORT};
pub use oneshot::{OneShot, OneShotChild, OneShotOutput};
pub use timeline::BootTimeline;
