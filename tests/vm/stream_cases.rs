//! Output around a process's end, readers that leave or lag, and guests
//! that power off or freeze under a running command, on booted VMs:
//! one-shot VMs (`VmConfig::command(..).output()`, `krunbox run`) and
//! named VMs through the CLI (`krunbox exec`).

use std::process::{Command, Output, Stdio};

use libtest_mimic::{Failed, Trial};

use crate::cases::{chain, check, text};
use crate::named_cases::State;
use crate::support::{rootfs, vm};
use krunbox_suite::trial;

/// Output sizes: empty, one byte, a page and its edges, a chunk plus one,
/// 1 MiB and 8 MiB.
pub const SIZES: [usize; 7] = [0, 1, 4095, 4096, 65537, 1 << 20, 8 << 20];

/// A guest script printing the same `size` random bytes on stdout, then
/// on stderr.
pub fn both_streams(size: usize) -> String {
    format!("head -c {size} /dev/urandom > /tmp/b; cat /tmp/b; cat /tmp/b >&2; rm /tmp/b")
}

/// Checks that a command running [`both_streams`] exited 0 having printed
/// exactly `size` bytes, the same on both streams.
pub fn check_both_streams(
    size: usize,
    success: bool,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<(), Failed> {
    check(success, || format!("{size} bytes: the command failed"))?;
    check(stdout.len() == size && stdout == stderr, || {
        format!(
            "{size} bytes: stdout {} stderr {} (equal: {})",
            stdout.len(),
            stderr.len(),
            stdout == stderr
        )
    })
}

/// The stream cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial("streams::oneshot_output_sizes", oneshot_output_sizes),
        trial(
            "streams::a_reader_that_leaves_ends_exec_and_run",
            a_reader_that_leaves_ends_exec_and_run,
        ),
        trial(
            "streams::a_late_reader_gets_every_byte",
            a_late_reader_gets_every_byte,
        ),
        trial(
            "streams::exec_ends_when_the_guest_stops_answering",
            exec_ends_when_the_guest_stops_answering,
        ),
        trial(
            "streams::a_dead_vm_says_how_it_ended",
            a_dead_vm_says_how_it_ended,
        ),
        trial(
            "streams::cp_keeps_fifos_hard_links_and_byte_names",
            cp_keeps_fifos_hard_links_and_byte_names,
        ),
    ]
}

/// The sizes a one-shot VM's command prints in `oneshot_output_sizes`:
/// nothing, less than a page, more than a pipe's buffer, many buffers (a
/// boot each; the shared agent VM takes every size in `SIZES`).
const ONESHOT_SIZES: [usize; 4] = [0, 4095, 65537, 8 << 20];

/// Sizes on both streams of a fresh VM's command, byte for byte.
fn oneshot_output_sizes() -> Result<(), Failed> {
    for size in ONESHOT_SIZES {
        let script = both_streams(size);
        let out = vm()
            .command(["sh", "-c", &script])
            .output()
            .map_err(chain)?;
        check_both_streams(size, out.status.success(), &out.stdout, &out.stderr)?;
    }
    Ok(())
}

/// `sh -c SCRIPT` with the krunbox CLI as `$KB`, bounded by `timeout(1)`
/// so a hang fails the case (exit 124) instead of the suite.
fn shell(state: &State, secs: u32, script: &str) -> Result<Output, Failed> {
    let cmd = state.krunbox();
    let program = cmd.get_program().to_owned();
    let mut sh = Command::new("timeout");
    sh.arg(secs.to_string())
        .args(["sh", "-c", script])
        .env("KB", program)
        .env("ROOTFS", rootfs())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null());
    sh.output().map_err(chain)
}

fn said(out: &Output) -> String {
    format!(
        "status {:?}; stdout {:?}; stderr {:?}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// `exec … | head -n 1` and `run … | head -n 1` end as ssh and docker do:
/// the reader's one line, then krunbox exits 141 and the guest process
/// is gone.
fn a_reader_that_leaves_ends_exec_and_run() -> Result<(), Failed> {
    let state = State::new()?;
    state.start("a")?;
    let out = shell(
        &state,
        120,
        r#"{ "$KB" exec a -- yes; echo "rc=$?" >&2; } | head -n 1"#,
    )?;
    check(out.status.success() && out.stdout == b"y\n", || said(&out))?;
    check(text(&out.stderr).contains("rc=141"), || said(&out))?;
    // The guest's `yes` was stopped (SIGPIPE, then the agent's kill when
    // the connection closed): nothing lingers.
    let left = shell(
        &state,
        60,
        r#"for i in 1 2 3 4 5 6 7 8 9 10; do
             n=$("$KB" exec a -- sh -c 'ps | grep -c "[y]es"'); [ "$n" = 0 ] && exit 0; sleep 1
           done; echo "still running: $n" >&2; exit 1"#,
    )?;
    check(left.status.success(), || said(&left))?;
    let out = shell(
        &state,
        180,
        r#"{ "$KB" run --rootfs "$ROOTFS" --net none -- yes; echo "rc=$?" >&2; } | head -n 1"#,
    )?;
    check(out.status.success() && out.stdout == b"y\n", || said(&out))?;
    check(text(&out.stderr).contains("rc=141"), || said(&out))?;
    state.expect(0, &["stop", "a"]).map(drop)
}

/// A reader that starts 5 s late gets all 8 MiB, and the command's own
/// stderr line; the exec exits 0.
fn a_late_reader_gets_every_byte() -> Result<(), Failed> {
    let state = State::new()?;
    state.start("a")?;
    let out = shell(
        &state,
        300,
        r#""$KB" exec a -- sh -c "head -c 8388608 /dev/zero; echo done >&2" | (sleep 5; wc -c)"#,
    )?;
    check(out.status.success(), || said(&out))?;
    check(text(&out.stdout).trim() == "8388608", || said(&out))?;
    check(text(&out.stderr).contains("done"), || said(&out))?;
    state.expect(0, &["stop", "a"]).map(drop)
}

/// A stopped agent, `poweroff -f` and `reboot -f` under a running
/// `krunbox exec`: each ends with krunbox's own error (125) saying what
/// happened, within the liveness bound (10 s) plus the boot of nothing;
/// `timeout(1)` at 90 s would make it 124.
fn exec_ends_when_the_guest_stops_answering() -> Result<(), Failed> {
    let state = State::new()?;
    // The agent is the exec'd shell's parent.
    state.start("a")?;
    let out = shell(
        &state,
        90,
        r#""$KB" exec a -- sh -c 'kill -STOP $PPID; sleep 600'"#,
    )?;
    check(out.status.code() == Some(125), || said(&out))?;
    check(text(&out.stderr).contains("no sign of life"), || said(&out))?;
    let next = shell(&state, 90, r#""$KB" exec a -- true"#)?;
    check(next.status.code() == Some(125), || said(&next))?;
    state.expect(0, &["stop", "-t", "5", "a"])?;

    // b and c boot together: one boot's wait, not two.
    std::thread::scope(|s| {
        let b = s.spawn(|| state.start("b").map_err(|e| format!("{e:?}")));
        let c = state.start("c").map_err(|e| format!("{e:?}"));
        b.join()
            .map_err(|_| "starting b panicked".to_owned())?
            .and(c)
    })?;
    for (name, command) in [("b", "poweroff"), ("c", "reboot")] {
        let script = format!(r#""$KB" exec {name} -- {command} -f"#);
        let out = shell(&state, 90, &script)?;
        check(out.status.code() == Some(125), || {
            format!("{command}: {}", said(&out))
        })?;
        let stderr = text(&out.stderr);
        check(
            stderr.contains("the VM stopped") || stderr.contains("agent is gone"),
            || format!("{command}: {}", said(&out)),
        )?;
        state.expect(0, &["stop", "-t", "5", name])?;
    }
    Ok(())
}

/// The agent killed inside the guest ends the VM (libkrun's init reports
/// its workload's death as 137): `ls` and the next command say so, from
/// the record the runner's monitor kept, until `stop`.
fn a_dead_vm_says_how_it_ended() -> Result<(), Failed> {
    let state = State::new()?;
    state.start("d")?;
    let out = shell(
        &state,
        90,
        r#""$KB" exec d -- sh -c 'kill -9 $PPID; sleep 600'"#,
    )?;
    check(out.status.code() == Some(125), || said(&out))?;
    let ended = shell(
        &state,
        90,
        r#"for i in $(seq 1 60); do
             "$KB" ls --json | grep -q '"status": "dead"' && exit 0; sleep 1
           done; exit 1"#,
    )?;
    check(ended.status.success(), || {
        format!("never dead: {}", said(&ended))
    })?;
    let ls = state.expect(0, &["ls", "--json"])?;
    let rows: serde_json::Value = serde_json::from_slice(&ls.stdout).map_err(chain)?;
    check(rows[0]["ended"]["code"] == 137, || text(&ls.stdout))?;
    let next = state.run(&["exec", "d", "--", "true"])?;
    check(
        next.status.code() == Some(125) && text(&next.stderr).contains("exited with status 137"),
        || said(&next),
    )?;
    state.expect(0, &["stop", "d"])?;
    check(state.run(&["ls", "-q"])?.stdout.is_empty(), || {
        "d is left".into()
    })
}

/// `krunbox cp` out of a booted guest: a fifo stays a fifo, a hard-linked
/// pair stays one inode, a name that is not UTF-8 comes back byte for
/// byte, and a device node is skipped and named on stderr; with
/// `--strict` the device fails the copy and nothing is left.
fn cp_keeps_fifos_hard_links_and_byte_names() -> Result<(), Failed> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    let state = State::new()?;
    state.start("e")?;
    let made = state.run(&[
        "exec",
        "e",
        "--",
        "sh",
        "-c",
        "mkdir /tmp/t && mkfifo -m 640 /tmp/t/p && echo x > /tmp/t/a && ln /tmp/t/a /tmp/t/b \
         && echo y > \"$(printf '/tmp/t/caf\\351')\" && mknod /tmp/t/null c 1 3",
    ])?;
    check(made.status.success(), || said(&made))?;
    let host = tempfile::tempdir()?;
    let out = host.path().join("out");
    let out_str = out.to_str().ok_or("temp path is not UTF-8")?;
    let copied = state.run(&["cp", "e:/tmp/t", out_str])?;
    check(copied.status.success(), || said(&copied))?;
    check(
        text(&copied.stderr).contains("skipped /tmp/t/null: character device"),
        || said(&copied),
    )?;
    let fifo = std::fs::symlink_metadata(out.join("p")).map_err(chain)?;
    check(
        fifo.file_type().is_fifo() && fifo.mode() & 0o777 == 0o640,
        || format!("p: {fifo:?}"),
    )?;
    let (a, b) = (
        std::fs::metadata(out.join("a")).map_err(chain)?,
        std::fs::metadata(out.join("b")).map_err(chain)?,
    );
    check(a.ino() == b.ino() && a.nlink() == 2, || {
        format!(
            "a and b are not one file: {} {} {}",
            a.ino(),
            b.ino(),
            a.nlink()
        )
    })?;
    let latin1 = out.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    check(std::fs::read(&latin1).map_err(chain)? == b"y\n", || {
        "the byte name's contents differ".into()
    })?;
    check(!out.join("null").exists(), || {
        "a device node was made".into()
    })?;

    let strict_dest = host.path().join("strict");
    let strict_str = strict_dest.to_str().ok_or("temp path is not UTF-8")?;
    let strict = state.run(&["cp", "--strict", "e:/tmp/t", strict_str])?;
    check(strict.status.code() == Some(125), || said(&strict))?;
    check(
        text(&strict.stderr).contains("cannot copy /tmp/t/null"),
        || said(&strict),
    )?;
    check(!strict_dest.exists(), || {
        "--strict left a destination".into()
    })?;
    state.expect(0, &["stop", "e"]).map(drop)
}
