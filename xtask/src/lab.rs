//! `cargo xtask lab`: build `krunbox`, run a command in the nested lab.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use clap::Args;
use krunbox_lab::{LabError, LabSpec};

/// Exit status of `cargo xtask` when the lab (or another task) failed,
/// as opposed to the command in the lab.
pub(crate) const LAB_FAILED: u8 = 125;

/// Arguments of `cargo xtask lab`.
#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// Give up (and kill QEMU) after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    timeout: u64,
    /// Put a host file or directory into the lab (repeatable).
    #[arg(long = "file", value_name = "HOST:LAB", value_parser = parse_file)]
    files: Vec<(PathBuf, String)>,
    /// Put a host executable and its shared libraries into the lab's
    /// `/lab/bin`, first on `PATH` (repeatable).
    #[arg(long = "executable", value_name = "PATH")]
    executables: Vec<PathBuf>,
    /// Set an environment variable for the command (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Build krunbox with the release profile.
    #[arg(long)]
    release: bool,
    /// Do not build krunbox (nor put it into the lab).
    #[arg(long)]
    no_build: bool,
    /// Put this Python interpreter, its standard library and the krunbox
    /// package installed for it into the lab (`python` on the lab's PATH).
    #[arg(long, value_name = "PYTHON")]
    python: Option<PathBuf>,
    /// Put smolvm into the lab, prepared on the host (from its PyPI wheel,
    /// under target/peer): `smolvm` on PATH, its state in /opt/smolvm/state
    /// (for `krunbox bench --peer smolvm --smolvm-state /opt/smolvm/state`).
    #[arg(long)]
    smolvm: bool,
    /// L1 VM memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = LabSpec::DEFAULT_MEMORY_MIB)]
    memory: u32,
    /// L1 VM vCPUs.
    #[arg(long, default_value_t = LabSpec::DEFAULT_CPUS)]
    cpus: u32,
    /// The command to run in the lab and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Why `cargo xtask lab` could not run the command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LabTaskError {
    /// cargo could not be started.
    #[error("could not run `{command}`")]
    Cargo {
        command: String,
        #[source]
        source: io::Error,
    },
    /// krunbox did not compile.
    #[error(
        "building krunbox failed (`{command}` exited with {status}); \
         fix the build, or pass --no-build to run the lab without krunbox"
    )]
    BuildFailed { command: String, status: String },
    /// cargo built krunbox but did not say where.
    #[error("`{command}` did not report where the krunbox binary is")]
    NoArtifact { command: String },
    /// `cargo metadata` answered something unexpected.
    #[error("could not find the target directory in `cargo metadata` output")]
    Metadata(#[source] serde_json::Error),
    /// The lab failed.
    #[error("the lab failed")]
    Lab(#[from] LabError),
    /// `--python` could not be staged.
    #[error("could not put the Python into the lab")]
    Python(#[from] crate::lab_python::LabPythonError),
    /// `--smolvm` could not be prepared.
    #[error("smolvm could not be put into the lab")]
    Smolvm(#[from] crate::lab_smolvm::LabSmolvmError),
    /// No scratch directory for staging.
    #[error("could not make a scratch directory")]
    Scratch(#[source] io::Error),
}

pub(crate) fn run(args: &LabArgs) -> Result<ExitCode, LabTaskError> {
    let root = workspace_root();
    let target = target_dir(&root)?;
    let command = if args.smolvm {
        crate::lab_smolvm::wrap(&args.command)
    } else {
        args.command.clone()
    };
    let mut spec = LabSpec::new(command)
        .timeout(Duration::from_secs(args.timeout))
        .memory_mib(args.memory)
        .cpus(args.cpus)
        .work_dir(target.join("lab"));
    if !args.no_build {
        let krunbox = build_krunbox(&root, args.release)?;
        eprintln!("lab: krunbox from {}", krunbox.display());
        spec = spec.executable(krunbox);
    }
    for (host, lab) in &args.files {
        spec = spec.file(host, lab.clone());
    }
    for host in &args.executables {
        spec = spec.executable(host);
    }
    let staging = tempfile::tempdir().map_err(LabTaskError::Scratch)?;
    if let Some(python) = &args.python {
        spec = crate::lab_python::put_in(spec, python, &root, staging.path())?;
    }
    if args.smolvm {
        spec = crate::lab_smolvm::put_in(spec, &target)?;
    }
    for (name, value) in &args.env {
        spec = spec.env(name.clone(), value.clone());
    }
    let run = spec.run()?;
    eprintln!(
        "lab: booted in {:.2} s (QEMU start to command start; L1 kernel uptime {}), \
         command exited with {} after {:.2} s in QEMU",
        run.boot_time.as_secs_f64(),
        run.guest_uptime_at_start.map_or_else(
            || "unknown".to_owned(),
            |d| format!("{:.2} s", d.as_secs_f64())
        ),
        run.exit_code,
        run.run_time.as_secs_f64(),
    );
    // Exit codes are 0..=255 in the shell; anything else is reported as-is
    // above and mapped to a failure.
    Ok(ExitCode::from(
        u8::try_from(run.exit_code).unwrap_or(LAB_FAILED),
    ))
}

/// The workspace root: xtask lives in `<root>/xtask`.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_owned()
}

/// `cargo`, without the variables that `cargo run` set for xtask itself.
/// A build script that reads one of them with `rerun-if-env-changed`
/// (ring reads `CARGO_MANIFEST_DIR` and `CARGO_PKG_*` so) is fingerprinted
/// on cargo's own environment: left in, they made the lab's build and a
/// plain `cargo build` rebuild ring and everything above it each time one
/// followed the other.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_run) {
            command.env_remove(name);
        }
    }
    command
}

/// Whether `cargo run` sets `name` for the program it runs.
fn set_by_cargo_run(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

/// The workspace's target directory, as cargo resolves it
/// (`CARGO_TARGET_DIR`, `build.target-dir` or `<root>/target`).
fn target_dir(root: &Path) -> Result<PathBuf, LabTaskError> {
    let command = "cargo metadata --format-version 1 --no-deps";
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| LabTaskError::Cargo {
            command: command.into(),
            source,
        })?;
    if !output.status.success() {
        return Err(LabTaskError::Cargo {
            command: command.into(),
            source: io::Error::other(output.status.to_string()),
        });
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(LabTaskError::Metadata)?;
    match metadata["target_directory"].as_str() {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(root.join("target")),
    }
}

/// `cargo build -p krunbox --bin krunbox`, returning the binary's path as
/// cargo reports it (whatever the target dir and profile).
fn build_krunbox(root: &Path, release: bool) -> Result<PathBuf, LabTaskError> {
    let mut args = vec![
        "build",
        "-p",
        "krunbox",
        "--bin",
        "krunbox",
        "--message-format=json-render-diagnostics",
    ];
    if release {
        args.push("--release");
    }
    let command = format!("cargo {}", args.join(" "));
    eprintln!("lab: {command}");
    let output = cargo()
        .args(&args)
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| LabTaskError::Cargo {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(LabTaskError::BuildFailed {
            command,
            status: output.status.to_string(),
        });
    }
    executable_from_messages(&String::from_utf8_lossy(&output.stdout), "krunbox")
        .ok_or(LabTaskError::NoArtifact { command })
}

/// The `executable` of the last `compiler-artifact` message for `name`.
fn executable_from_messages(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// `HOST:LAB`, split at the last `:` (lab paths are absolute, without `:`).
fn parse_file(arg: &str) -> Result<(PathBuf, String), String> {
    match arg.rsplit_once(':') {
        Some((host, lab)) if !host.is_empty() && lab.starts_with('/') => {
            Ok((PathBuf::from(host), lab.to_owned()))
        }
        _ => Err(format!(
            "expected HOST:LAB with an absolute LAB path, got {arg:?}"
        )),
    }
}

/// `NAME=VALUE`.
fn parse_env(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {arg:?}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        lab: LabArgs,
    }

    #[test]
    fn only_what_cargo_run_set_is_dropped() {
        for name in [
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_MANIFEST_DIR",
        ] {
            assert!(set_by_cargo_run(name), "{name}");
        }
        // The user's own cargo settings reach the nested build.
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
        ] {
            assert!(!set_by_cargo_run(name), "{name}");
        }
    }

    #[test]
    fn parses_files_env_and_the_command() {
        let cli = Cli::try_parse_from([
            "lab",
            "--timeout",
            "60",
            "--file",
            "target/x:y:/lab/bin/x",
            "--env",
            "A=b=c",
            "--no-build",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .unwrap();
        let lab = cli.lab;
        assert_eq!(lab.timeout, 60);
        assert_eq!(
            lab.files,
            vec![(PathBuf::from("target/x:y"), "/lab/bin/x".to_owned())]
        );
        assert_eq!(lab.env, vec![("A".to_owned(), "b=c".to_owned())]);
        assert!(lab.no_build && !lab.release);
        assert_eq!(lab.command, ["sh", "-c", "exit 3"]);
        assert_eq!((lab.memory, lab.cpus), (2048, 2));
    }

    #[test]
    fn command_is_required_and_files_need_lab_paths() {
        assert!(Cli::try_parse_from(["lab"]).is_err());
        assert!(Cli::try_parse_from(["lab", "--file", "x", "--", "true"]).is_err());
        assert!(Cli::try_parse_from(["lab", "--file", "x:rel", "--", "true"]).is_err());
        assert!(Cli::try_parse_from(["lab", "--env", "=v", "--", "true"]).is_err());
    }

    #[test]
    fn finds_the_executable_in_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"krunbox_sys"},"executable":null}
{"reason":"compiler-artifact","target":{"name":"krunbox"},"executable":"/w/target/debug/krunbox"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_from_messages(messages, "krunbox"),
            Some(PathBuf::from("/w/target/debug/krunbox"))
        );
        assert_eq!(executable_from_messages(messages, "other"), None);
    }
}
