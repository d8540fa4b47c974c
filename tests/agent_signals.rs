//! A process the agent starts has every signal at its default action,
//! whatever the agent inherited: a program started in the background by
//! a non-interactive shell (a CI script's `cmd &`) has SIGINT and SIGQUIT
//! ignored, and without the reset its guest processes would keep them
//! ignored through exec (`^C` in a terminal session did nothing).
//!
//! Its own test binary: ignoring signals here touches no other test.

mod agent_support;

use agent_support::TestAgent;
use krunbox::client::GuestCommand;

#[tokio::test]
async fn processes_start_with_default_signal_actions() {
    // SAFETY: signal(2) with SIG_IGN changes this test process's
    // dispositions only; the agent launched next inherits them.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let agent = TestAgent::start().await;
    let ignored = agent
        .client
        .exec(&GuestCommand::new("grep").args(["SigIgn", "/proc/self/status"]))
        .await
        .unwrap();
    let line = String::from_utf8_lossy(&ignored.stdout).into_owned();
    let mask = line
        .split_whitespace()
        .nth(1)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("no SigIgn mask in {line:?}"));
    // Signals 1 to 31; the real-time ones the C library keeps for itself
    // (32, 33) cannot be reset through it and are left as inherited.
    assert_eq!(mask & 0x7fff_ffff, 0, "{line}");
    let interrupted = agent
        .client
        .exec(&GuestCommand::new("sh").args(["-c", "kill -INT $$; sleep 5"]))
        .await
        .unwrap();
    assert_eq!(interrupted.status.signal, Some(libc::SIGINT));
}
