//! Where a boot's time goes, for VMs of several memory sizes: boots each
//! size in turn (interleaved, so drift hits all), and prints P50/P95/P99
//! of every phase in host time (`Vm::boot_phases`, `BootPhases::percentiles`).
//!
//! ```sh
//! cargo run --release --example boot_phases -- /srv/rootfs 3 128 512 2048
//! ```

use krunbox::vm::{BootPhases, VmConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), krunbox::Report> {
    krunbox::runner::enter_if_requested();
    let usage = || std::io::Error::other("usage: boot_phases ROOTFS BOOTS MIB…");
    let mut args = std::env::args().skip(1);
    let rootfs = args.next().ok_or_else(usage)?;
    let boots: usize = args.next().and_then(|n| n.parse().ok()).ok_or_else(usage)?;
    let sizes: Vec<u32> = args.filter_map(|m| m.parse().ok()).collect();
    let mut phases = vec![Vec::new(); sizes.len()];
    for _ in 0..boots {
        for (i, mib) in sizes.iter().enumerate() {
            let vm = VmConfig::new(&rootfs).memory_mib(*mib).boot().await?;
            let measured = vm.boot_phases().await.map_err(std::io::Error::other)?;
            phases[i].extend(measured);
            vm.kill().await;
        }
    }
    for (mib, measured) in sizes.iter().zip(&phases) {
        println!(
            "{mib} MiB, {} boots:           p50       p95       p99 (ms)",
            measured.len()
        );
        for p in BootPhases::percentiles(measured) {
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
            println!(
                "  {:<20} {:>9.1} {:>9.1} {:>9.1}",
                p.phase,
                ms(p.p50),
                ms(p.p95),
                ms(p.p99)
            );
        }
    }
    Ok(())
}
