//! The end-to-end cases: each boots at least one real VM.

use std::io::Write;
use std::process::Stdio;

use krunbox::runner::StdioSpec;
use krunbox::vm::{ConfigError, Error, VmConfig};
use libtest_mimic::{Failed, Trial};

use crate::support::{cli, rootfs, vm};
use krunbox_suite::trial;

/// Every case, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial("oneshot::echo_output_comes_back", echo_output_comes_back),
        trial("oneshot::exit_codes_come_back", exit_codes_come_back),
        trial("oneshot::missing_command_is_127", missing_command_is_127),
        trial(
            "oneshot::env_and_workdir_reach_guest",
            env_and_workdir_reach_guest,
        ),
        trial("oneshot::stdin_reaches_guest", stdin_reaches_guest),
        trial(
            "oneshot::missing_rootfs_is_a_clear_error",
            missing_rootfs_is_a_clear_error,
        ),
        trial(
            "cli::run_prints_output_and_exits_with_code",
            cli_run_prints_and_exits,
        ),
        trial(
            "cli::run_reports_missing_rootfs",
            cli_run_reports_missing_rootfs,
        ),
    ]
}

pub fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

/// A failure carrying the whole chain of causes, not just the outer message.
pub fn chain(error: impl std::error::Error) -> Failed {
    krunbox::error_chain(&error).into()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn echo_output_comes_back() -> Result<(), Failed> {
    let out = vm()
        .command(["sh", "-c", "echo hello; echo oops >&2"])
        .output()
        .map_err(chain)?;
    check(out.status.code() == Some(0), || {
        format!("status {:?}", out.status)
    })?;
    check(out.stdout == b"hello\n", || {
        format!("stdout {:?}", text(&out.stdout))
    })?;
    check(out.stderr == b"oops\n", || {
        format!("stderr {:?}", text(&out.stderr))
    })
}

fn exit_codes_come_back() -> Result<(), Failed> {
    for code in [0, 3] {
        let out = vm()
            .command(["sh", "-c", &format!("exit {code}")])
            .output()
            .map_err(chain)?;
        check(out.status.code() == Some(code), || {
            format!(
                "expected {code}, got {:?}; stderr {}",
                out.status,
                text(&out.stderr)
            )
        })?;
    }
    Ok(())
}

fn missing_command_is_127() -> Result<(), Failed> {
    let out = vm().command(["/no/such/command"]).output().map_err(chain)?;
    check(out.status.code() == Some(127), || {
        format!("status {:?}; stdout {}", out.status, text(&out.stdout))
    })?;
    let said = text(&out.stdout) + &text(&out.stderr);
    check(said.contains("/no/such/command"), || {
        format!("the guest did not name the command: {said:?}")
    })
}

fn env_and_workdir_reach_guest() -> Result<(), Failed> {
    let out = vm()
        .env("GREETING", "hello world")
        .workdir("/tmp")
        .command(["sh", "-c", "echo $GREETING; pwd"])
        .output()
        .map_err(chain)?;
    check(out.status.success(), || format!("status {:?}", out.status))?;
    check(out.stdout == b"hello world\n/tmp\n", || {
        format!("stdout {:?}", text(&out.stdout))
    })
}

fn stdin_reaches_guest() -> Result<(), Failed> {
    let mut child = vm()
        .command(["sh", "-c", "read line; echo got:$line"])
        .stdin(StdioSpec::Piped)
        .stdout(StdioSpec::Piped)
        .stderr(StdioSpec::Piped)
        .spawn()
        .map_err(chain)?;
    let mut stdin = child.stdin().ok_or("no stdin pipe")?;
    stdin.write_all(b"ping\n")?;
    drop(stdin);
    let out = child.wait_with_output().map_err(chain)?;
    check(out.stdout == b"got:ping\n", || {
        format!(
            "stdout {:?} stderr {:?}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

fn missing_rootfs_is_a_clear_error() -> Result<(), Failed> {
    let err = VmConfig::new("/no/such/rootfs")
        .command(["true"])
        .output()
        .expect_err("a missing rootfs must not boot");
    check(
        matches!(err, Error::Config(ConfigError::Rootfs { .. })),
        || format!("wrong error: {err:?}"),
    )?;
    check(err.advice().is_some(), || "no advice".into())
}

fn cli_run_prints_and_exits() -> Result<(), Failed> {
    // The lab's kernel has Landlock and seccomp: requiring them boots.
    let out = cli()
        .args(["run", "--require-confinement", "--rootfs"])
        .arg(rootfs())
        .args(["--", "sh", "-c", "echo hello; exit 3"])
        .stdin(Stdio::null())
        .output()
        .map_err(chain)?;
    check(out.status.code() == Some(3), || {
        format!(
            "status {:?}; stdout {:?}; stderr {:?}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        )
    })?;
    check(out.stdout == b"hello\n", || {
        format!("stdout {:?}", text(&out.stdout))
    })
}

fn cli_run_reports_missing_rootfs() -> Result<(), Failed> {
    let out = cli()
        .args(["run", "--rootfs", "/no/such/rootfs", "--", "true"])
        .output()
        .map_err(chain)?;
    let stderr = text(&out.stderr);
    check(out.status.code() == Some(125), || {
        format!("status {:?}", out.status)
    })?;
    check(
        stderr.contains("rootfs /no/such/rootfs does not exist") && stderr.contains("hint:"),
        || format!("stderr {stderr:?}"),
    )
}
