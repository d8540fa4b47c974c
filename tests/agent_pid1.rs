//! In the guest the agent runs as PID 1: orphaned processes are reparented
//! to it, and it must reap them without stealing its own children's exit
//! statuses. Checked in a new PID namespace (needs root and `unshare`).

mod agent_support;

use std::process::Command as StdCommand;
use std::time::Duration;

use krunbox::client::GuestCommand;

fn pid_namespaces_work() -> bool {
    StdCommand::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn as_pid_1_orphans_are_reaped_and_exit_codes_kept() {
    assert!(
        pid_namespaces_work(),
        "cannot create a PID namespace here (`unshare --pid --fork --mount-proc` \
         failed): this test needs root and util-linux's unshare"
    );
    let wrapper = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
    let (client, mut child, _dir, _ops) =
        agent_support::launch_wrapped(&wrapper, Default::default()).await;
    assert_eq!(client.hello().pid, 1);

    // The shell exits at once; its background sleep becomes PID 1's orphan.
    let out = client
        .exec(&GuestCommand::new("sh").args(["-c", "sleep 0.2 & echo $!"]))
        .await
        .unwrap();
    let orphan: u32 = out.stdout_text().trim().parse().unwrap();

    // Our own children keep their statuses while the reaper runs.
    for code in [0, 3, 42] {
        let out = client
            .exec(&GuestCommand::new("sh").args(["-c", &format!("exit {code}")]))
            .await
            .unwrap();
        assert_eq!(out.status.code, Some(code));
    }

    let mut reaped = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let out = client
            .exec(&GuestCommand::new("cat").arg(format!("/proc/{orphan}/stat")))
            .await
            .unwrap();
        if !out.status.success() {
            reaped = true;
            break;
        }
    }
    assert!(reaped, "orphan {orphan} was not reaped");
    drop(client);
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}
