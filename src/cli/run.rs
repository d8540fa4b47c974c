//! `krunbox run`: one command in a fresh VM.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use krunbox::runner::NetMode;
use krunbox::vm::VmConfig;

use super::report;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Host directory to use as the guest's root filesystem.
    #[arg(long, value_name = "DIR")]
    rootfs: PathBuf,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1, value_name = "N")]
    cpus: u8,
    /// Guest memory in MiB.
    #[arg(long = "mem", default_value_t = 512, value_name = "MIB")]
    memory_mib: u32,
    /// Set an environment variable in the guest (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Working directory of the command in the guest.
    #[arg(short, long, value_name = "PATH")]
    workdir: Option<String>,
    /// Guest network: none, or tsi (guest sockets go through the host's).
    #[arg(long, value_enum, default_value_t = Net::Tsi)]
    net: Net,
    /// Write the guest console (kernel and init messages) to this file.
    #[arg(long, value_name = "PATH")]
    console_log: Option<PathBuf>,
    /// libkrun log level, 0 (off) to 5 (trace), on standard error.
    #[arg(long, default_value_t = 0, value_name = "N")]
    log_level: u32,
    /// The command to run in the guest, and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Net {
    None,
    Tsi,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

pub fn run(args: RunArgs) -> i32 {
    let mut config = VmConfig::new(args.rootfs)
        .cpus(args.cpus)
        .memory_mib(args.memory_mib)
        .log_level(args.log_level)
        .net(match args.net {
            Net::None => NetMode::None,
            Net::Tsi => NetMode::Tsi,
        });
    for (key, value) in args.env {
        config = config.env(key, value);
    }
    if let Some(dir) = args.workdir {
        config = config.workdir(dir);
    }
    if let Some(path) = args.console_log {
        config = config.console_log(path);
    }
    match config.command(args.command).status() {
        Ok(status) => status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Err(e) => report::fail(&e),
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
