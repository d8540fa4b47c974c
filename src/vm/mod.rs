//! Booting microVMs: configuration, checks before boot, and the one-shot
//! workload (a VM that runs one command and exits with its code).

mod config;
mod error;
mod oneshot;

pub use config::{ConfigError, VmConfig, DEFAULT_PATH};
pub use error::Error;
pub use oneshot::{OneShot, OneShotChild, OneShotOutput};
