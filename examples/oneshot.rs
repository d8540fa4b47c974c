//! One command in a fresh VM, its output and exit code back: the
//! README's first program.
//!
//! ```sh
//! cargo run --example oneshot -- ROOTFS
//! ```
//!
//! ROOTFS is a directory holding the guest's files (`cargo xtask setup`
//! builds a busybox one at `~/.local/share/krunbox/rootfs`).

use krunbox::vm::VmConfig;

fn main() -> Result<(), krunbox::Report> {
    // A VM runs in a child process of this very binary: this returns at
    // once here, and never in that child.
    krunbox::runner::enter_if_requested();
    let rootfs = std::env::args().nth(1).unwrap_or_else(|| "rootfs".into());
    let out = VmConfig::new(rootfs)
        .cpus(1)
        .memory_mib(256)
        .env("GREETING", "hello")
        .workdir("/tmp")
        .command(["sh", "-c", "echo $GREETING from $(pwd)"])
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.stdout, b"hello from /tmp\n");
    Ok(())
}
