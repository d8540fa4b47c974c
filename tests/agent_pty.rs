//! Interactive execs on a pty.

mod agent_support;

use std::time::Duration;

use agent_support::TestAgent;
use krunbox::client::{ExecEvent, ExecSession, ExecStatus, GuestCommand, WinSize};

/// Reads pty output until it contains `needle`; returns everything read.
async fn read_until(session: &mut ExecSession, needle: &str) -> String {
    let mut seen = String::new();
    let wait = async {
        while !seen.contains(needle) {
            match session.next_event().await.unwrap() {
                Some(ExecEvent::Stdout(b)) => seen.push_str(&String::from_utf8_lossy(&b)),
                Some(ExecEvent::Exit(status)) => panic!("exited {status:?}, output {seen:?}"),
                Some(_) => {}
                None => panic!("ended, output {seen:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("pty output in time");
    seen
}

async fn exit_status(session: &mut ExecSession) -> ExecStatus {
    loop {
        match session.next_event().await.unwrap() {
            Some(ExecEvent::Exit(status)) => return status,
            Some(_) => {}
            None => panic!("no exit"),
        }
    }
}

#[tokio::test]
async fn pty_echo_size_and_resize() {
    let agent = TestAgent::start().await;
    let script = "tty; stty size; read line; echo got:$line; read x; stty size; exit 5";
    let mut session = agent
        .client
        .exec_pty(
            &GuestCommand::new("sh").args(["-c", script]),
            WinSize { rows: 24, cols: 80 },
        )
        .await
        .unwrap();
    let seen = read_until(&mut session, "24 80").await;
    assert!(seen.contains("/dev/pts/"), "{seen:?}");

    let control = session.control();
    control.write_stdin(b"hello\n").await.unwrap();
    // The terminal echoes the input, then the program answers.
    let seen = read_until(&mut session, "got:hello").await;
    assert!(seen.contains("hello\r\n"), "{seen:?}");

    control
        .resize(WinSize {
            rows: 50,
            cols: 132,
        })
        .await
        .unwrap();
    control.write_stdin(b"\n").await.unwrap();
    read_until(&mut session, "50 132").await;
    assert_eq!(exit_status(&mut session).await.code, Some(5));
}

#[tokio::test]
async fn pty_ctrl_c_interrupts() {
    let agent = TestAgent::start().await;
    let mut session = agent
        .client
        .exec_pty(
            &GuestCommand::new("sh").args(["-c", "echo ready; exec sleep 30"]),
            WinSize { rows: 24, cols: 80 },
        )
        .await
        .unwrap();
    read_until(&mut session, "ready").await;
    // Raw passthrough: ^C is a byte that the terminal turns into SIGINT.
    tokio::time::sleep(Duration::from_millis(100)).await;
    session.control().write_stdin(&[3]).await.unwrap();
    assert_eq!(exit_status(&mut session).await.signal, Some(2));
}
