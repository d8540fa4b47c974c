//! Where a boot's time goes, for VMs of several memory sizes: boots each
//! size in turn (interleaved, so drift hits all), and prints the median of
//! every phase in host time (`Vm::boot_phases`).
//!
//! ```sh
//! cargo run --release --example boot_phases -- /srv/rootfs 3 128 512 2048
//! ```

use std::time::Duration;

use krunbox::vm::VmConfig;

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
        println!("{mib} MiB, median of {} boots:", measured.len());
        let Some(first) = measured.first() else {
            continue;
        };
        for (k, (name, _)) in first.named().iter().enumerate() {
            let mut values: Vec<Duration> = measured.iter().map(|p| p.named()[k].1).collect();
            values.sort();
            println!(
                "  {name:<20} {:>9.1} ms",
                values[values.len() / 2].as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
