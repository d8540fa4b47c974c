//! Test-only (the `confinement-probe` feature, which release builds leave
//! out): what a runner tries once it is confined, so that a test on a
//! booted VM shows each fence holding. Each attempt's outcome goes to the
//! runner's log as `krunbox probe: <what> <target>: denied (<error>)` or
//! `…: allowed`; the exec comes last, because the seccomp filter ends the
//! runner there.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// What to try.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Probe {
    /// A host file outside the runner's rules, to read.
    pub read: PathBuf,
    /// A file in a read-only share, to open for writing.
    pub write: PathBuf,
    /// A host address, to connect to.
    pub connect: SocketAddr,
    /// A host program, to execute in place of the runner.
    pub exec: PathBuf,
}

/// Tries each, in order; the exec, if the filter lets it through,
/// replaces the runner.
pub(crate) fn run(probe: &Probe) {
    let read = std::fs::read(&probe.read).map(drop);
    report("read", &probe.read.display(), read);
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(&probe.write)
        .map(drop);
    report("write", &probe.write.display(), write);
    report(
        "connect",
        &probe.connect,
        TcpStream::connect(probe.connect).map(drop),
    );
    let exec = Command::new(&probe.exec).exec();
    report("exec", &probe.exec.display(), Err(exec));
}

fn report(what: &str, target: &dyn std::fmt::Display, outcome: std::io::Result<()>) {
    match outcome {
        Ok(()) => eprintln!("krunbox probe: {what} {target}: allowed"),
        Err(e) => eprintln!("krunbox probe: {what} {target}: denied ({e})"),
    }
}
