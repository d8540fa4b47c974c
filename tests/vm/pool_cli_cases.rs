//! The CLI's pool, without a daemon, on booted VMs: `krunbox pool create`
//! boots members; two `krunbox start --from-pool` processes at once each
//! take a different warm VM; the claims' background refills bring the
//! pool back to its size and no further; a claimed VM's end is recorded
//! in its new directory; members whose runners are frozen are stopped, not
//! handed out; `pool rm` stops the idle members and leaves the claimed VMs.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};

use crate::cases::{chain, check, text};
use crate::named_cases::State;
use crate::support::rootfs;
use krunbox_suite::trial;

/// The case, by name.
pub fn all() -> Vec<Trial> {
    vec![trial(
        "pool::cli_claims_across_processes",
        cli_claims_across_processes,
    )]
}

fn said(what: &str, out: &Output) -> String {
    format!(
        "{what}: status {:?}; stdout {:?}; stderr {:?}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The pool `p`'s row of `pool ls --json`.
fn pool_row(state: &State) -> Result<serde_json::Value, Failed> {
    let out = state.expect(0, &["pool", "ls", "--json"])?;
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(chain)?;
    Ok(rows[0].clone())
}

/// The pool's row once it has 2 ready members (or after 3 minutes).
fn wait_ready(state: &State) -> Result<serde_json::Value, Failed> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let row = pool_row(state)?;
        if row["ready"] == 2 || Instant::now() > deadline {
            return Ok(row);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Stops (SIGSTOP) the VM process of every member of pool `p` (the child
/// of the runner's monitor, the recorded pid); their pids.
fn freeze_members(state: &State) -> Result<Vec<i32>, Failed> {
    let mut pids = Vec::new();
    for member in std::fs::read_dir(state.path().join(".pools/p")).map_err(chain)? {
        let record = member.map_err(chain)?.path().join("vm.json");
        let Ok(bytes) = std::fs::read(&record) else {
            continue;
        };
        let record: serde_json::Value = serde_json::from_slice(&bytes).map_err(chain)?;
        let pid = record["runner"]["pid"]
            .as_i64()
            .ok_or("a member without a runner")?;
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).map_err(chain)?;
        for child in children.split_whitespace() {
            let child: i32 = child.parse().map_err(chain)?;
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child),
                nix::sys::signal::Signal::SIGSTOP,
            )
            .map_err(chain)?;
            pids.push(child);
        }
    }
    Ok(pids)
}

fn cli_claims_across_processes() -> Result<(), Failed> {
    let state = State::new()?;
    let root = rootfs();
    let root = root.to_str().ok_or("rootfs path is not UTF-8")?;
    state.expect(0, &["pool", "create", "p", "--size", "2", "--rootfs", root])?;
    let row = pool_row(&state)?;
    check(row["ready"] == 2 && row["size"] == 2, || row.to_string())?;

    // Two claims at once, from two processes.
    let claims: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            state
                .krunbox()
                .args(["start", "--name", name, "--from-pool", "p"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()
        .map_err(chain)?;
    for claim in claims {
        let out = claim.wait_with_output().map_err(chain)?;
        check(
            out.status.success() && text(&out.stderr).contains("warm"),
            || said("claim", &out),
        )?;
    }
    let boot_id = |name: &str| -> Result<String, Failed> {
        let out = state.expect(
            0,
            &["exec", name, "--", "cat", "/proc/sys/kernel/random/boot_id"],
        )?;
        Ok(text(&out.stdout).trim().to_owned())
    };
    let (a, b) = (boot_id("a")?, boot_id("b")?);
    check(!a.is_empty() && a != b, || format!("a {a:?}, b {b:?}"))?;

    // Two refills ran, one per claim: the pool is full again, not over.
    let row = wait_ready(&state)?;
    check(
        row["ready"] == 2 && row["starting"] == 0 && row["dead"] == 0,
        || format!("after the refills: {row}"),
    )?;

    // Members whose runners live but whose agents are silent (frozen
    // here) are not handed out: the claim stops each and boots cold.
    let frozen = freeze_members(&state)?;
    check(frozen.len() == 2, || format!("froze {frozen:?}"))?;
    let out = state.expect(0, &["start", "--name", "c", "--from-pool", "p"])?;
    let stderr = text(&out.stderr);
    check(
        stderr.matches("did not answer").count() == 2 && stderr.contains("cold"),
        || said("claim from frozen members", &out),
    )?;
    check(boot_id("c")? != a, || "c is not a VM of its own".into())?;
    for pid in frozen {
        check(!Path::new(&format!("/proc/{pid}")).exists(), || {
            format!("the frozen runner {pid} is still there")
        })?;
    }
    let row = wait_ready(&state)?;
    check(
        row["ready"] == 2 && row["starting"] == 0 && row["dead"] == 0,
        || format!("after the frozen members: {row}"),
    )?;

    // A claimed VM's end lands in its directory under its new name.
    let out = state.run(&["exec", "a", "--", "sh", "-c", "kill -9 $PPID; sleep 600"])?;
    check(out.status.code() == Some(125), || {
        said("killing a's agent", &out)
    })?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let ended = loop {
        let out = state.expect(0, &["ls", "--json"])?;
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(chain)?;
        let a = rows
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == "a"))
            .cloned()
            .unwrap_or_default();
        if a["ended"]["code"] == 137 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    check(
        ended["status"] == "dead" && ended["ended"]["code"] == 137,
        || format!("a after its agent was killed: {ended}"),
    )?;

    // Removing the pool stops its two idle VMs; b stays.
    let out = state.expect(0, &["pool", "rm", "p"])?;
    check(text(&out.stdout).contains("2 VMs stopped"), || {
        said("pool rm", &out)
    })?;
    check(boot_id("b")? == b, || "b changed".into())?;
    let out = state.expect(0, &["pool", "ls", "--json"])?;
    check(text(&out.stdout).trim() == "[]", || said("pool ls", &out))?;
    state.expect(0, &["stop", "a", "b", "c"])?;
    Ok(())
}
