//! A program that depends on krunbox, as a user's would: it boots a VM
//! on the rootfs it is given and runs one command through the agent.

use krunbox::vm::VmConfig;

fn main() -> Result<(), krunbox::Report> {
    // The VM runs in a child of this very binary.
    krunbox::runner::enter_if_requested();
    let rootfs = std::env::args_os()
        .nth(1)
        .ok_or_else(|| std::io::Error::other("usage: krunbox-dependent ROOTFS"))?;
    let out = VmConfig::new(rootfs)
        .memory_mib(256)
        .command(["sh", "-c", "echo hello from a crate that depends on krunbox"])
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    std::process::exit(out.status.code().unwrap_or(1));
}
