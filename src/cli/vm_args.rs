//! The VM options shared by `krunbox run` and `krunbox start`, mapped one
//! to one onto [`VmConfig`].

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use krunbox::runner::NetMode;
use krunbox::vm::VmConfig;

/// How to boot a VM: root filesystem, resources, environment, network.
#[derive(Debug, Args)]
pub struct VmArgs {
    /// Host directory to use as the guest's root filesystem.
    #[arg(long, value_name = "DIR")]
    pub rootfs: PathBuf,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub cpus: u8,
    /// Guest memory in MiB.
    #[arg(long = "mem", default_value_t = 512, value_name = "MIB")]
    pub memory_mib: u32,
    /// Set an environment variable in the guest (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Working directory of the command in the guest.
    #[arg(short, long, value_name = "PATH")]
    pub workdir: Option<String>,
    /// Guest network: none, or tsi (guest sockets go through the host's).
    #[arg(long, value_enum, default_value_t = Net::Tsi)]
    pub net: Net,
    /// Write the guest console (kernel and init messages) to this file.
    #[arg(long, value_name = "PATH")]
    pub console_log: Option<PathBuf>,
    /// libkrun log level, 0 (off) to 5 (trace), on standard error.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub log_level: u32,
}

/// `--net`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Net {
    /// No network: the guest has only loopback.
    None,
    /// libkrun's transparent socket impersonation.
    Tsi,
}

impl VmArgs {
    /// The library configuration these options describe.
    pub fn config(&self) -> VmConfig {
        let mut config = VmConfig::new(&self.rootfs)
            .cpus(self.cpus)
            .memory_mib(self.memory_mib)
            .log_level(self.log_level)
            .net(match self.net {
                Net::None => NetMode::None,
                Net::Tsi => NetMode::Tsi,
            });
        for (key, value) in &self.env {
            config = config.env(key, value);
        }
        if let Some(dir) = &self.workdir {
            config = config.workdir(dir);
        }
        if let Some(path) = &self.console_log {
            config = config.console_log(path);
        }
        config
    }
}

pub fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_needs_key_and_equals() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=").unwrap(), ("A".into(), String::new()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("A").is_err());
    }
}
