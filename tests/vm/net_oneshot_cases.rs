//! Networking, volumes and configuration on one-shot VMs and through the
//! CLI, and the console log of a VM that does not boot.

use std::process::Stdio;
use std::time::Duration;

use krunbox::runner::RunnerProgram;
use krunbox::vm::{Error, NetMode, VmConfig};
use libtest_mimic::{Failed, Trial};

use crate::cases::{chain, check, text};
use crate::loopback::LoopbackServer;
use crate::support::{cli, rootfs, runner, vm};
use krunbox_suite::trial;

/// The one-shot cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial("net::none_has_no_network", none_has_no_network),
        trial(
            "console::boot_failure_quotes_console_log",
            boot_failure_quotes_console_log,
        ),
        trial(
            "cli::run_maps_volume_workdir_and_console_log",
            cli_run_maps_volume_workdir_and_console_log,
        ),
    ]
}

fn none_has_no_network() -> Result<(), Failed> {
    // The same connect that reaches the host under TSI
    // (net::tsi_reaches_host_loopback), and one to an outside address.
    let server = LoopbackServer::bind()?;
    let script = format!(
        "echo from-guest | nc -w 10 127.0.0.1 {port}; echo loopback=$?; \
         nc -w 10 192.0.2.1 80 </dev/null; echo outside=$?",
        port = server.port
    );
    let out = vm()
        .net(NetMode::None)
        .command(["sh", "-c", &script])
        .output()
        .map_err(chain)?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    check(stdout == "loopback=1\noutside=1\n", || {
        format!("stdout {stdout:?}, stderr {stderr:?}")
    })?;
    // The guest's 127.0.0.1 is its own, where nothing listens; nothing
    // else is routed.
    check(
        stderr.contains("Connection refused") && stderr.contains("Network is unreachable"),
        || format!("stderr {stderr:?}"),
    )?;
    check(!server.has_pending_connection(), || {
        "the host server was reached".into()
    })
}

fn boot_failure_quotes_console_log() -> Result<(), Failed> {
    // A root where /dev is a file: libkrun's init cannot mount devtmpfs,
    // says so on the console and gives up, so the agent never starts.
    let root = tempfile::tempdir()?;
    std::fs::write(root.path().join("dev"), b"")?;
    let logs = tempfile::tempdir()?;
    let console = logs.path().join("console.log");
    let runtime = tokio::runtime::Runtime::new()?;
    let config = VmConfig::new(root.path())
        .memory_mib(256)
        .runner(RunnerProgram::Path(runner()))
        .console_log(&console);
    let result = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(300), config.boot()).await });
    let err = match result {
        Err(_) => return Err("boot neither failed nor succeeded within 300 s".into()),
        Ok(Ok(_vm)) => return Err("a VM whose init fails booted".into()),
        Ok(Err(e)) => e,
    };
    let said = krunbox::error_chain(&err);
    check(matches!(err, Error::Lost { .. }), || format!("{err:?}"))?;
    check(said.contains("Couldn't mount filesystems"), || said.clone())?;
    let log = std::fs::read_to_string(&console)?;
    check(
        log.contains("mount(/dev): Not a directory") && log.contains("Couldn't mount filesystems"),
        || format!("console log {log:?}"),
    )
}

fn cli_run_maps_volume_workdir_and_console_log() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let volume = dir.path().join("vol");
    std::fs::create_dir(&volume)?;
    std::fs::write(volume.join("in.txt"), b"from the host\n")?;
    let console = dir.path().join("console.log");
    // The workdir is inside the volume: the wrapper enters it after
    // mounting.
    let out = cli()
        .args(["run", "--net", "none", "--hostname", "box7"])
        .args(["--rlimit", "nofile=100:200", "-w", "/mnt/vol"])
        .arg("-v")
        .arg(format!("{}:/mnt/vol", volume.display()))
        .arg("--console-log")
        .arg(&console)
        .arg("--rootfs")
        .arg(rootfs())
        .args([
            "--",
            "sh",
            "-c",
            "cat in.txt; echo from the guest > out.txt; hostname; ulimit -n; \
             echo console-marker > /dev/console; echo to-stderr >&2; exit 4",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(chain)?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    check(out.status.code() == Some(4), || {
        format!("{:?}: stdout {stdout:?} stderr {stderr:?}", out.status)
    })?;
    check(stdout == "from the host\nbox7\n100\n", || {
        format!("stdout {stdout:?}, stderr {stderr:?}")
    })?;
    check(stderr == "to-stderr\n", || format!("stderr {stderr:?}"))?;
    let written = std::fs::read_to_string(volume.join("out.txt"))?;
    check(written == "from the guest\n", || format!("{written:?}"))?;
    let log = std::fs::read_to_string(&console)?;
    check(
        log.contains("console-marker") && !log.contains("box7"),
        || format!("console log {log:?}"),
    )
}
