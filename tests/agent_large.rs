//! A 64 MiB file copied in and out in bounded memory. In its own test
//! binary so that the test process's peak memory is this test's alone.

mod agent_support;

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use agent_support::{peak_rss_kib, TestAgent};

const SIZE: usize = 64 << 20;
/// Neither side may hold more than this at once (far below the file size).
const BOUND_KIB: u64 = 32 << 10;

fn write_pattern(path: &Path) {
    let mut file = File::create(path).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..SIZE / chunk.len() {
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = (i * 31 + j * 7 % 251) as u8;
        }
        file.write_all(&chunk).unwrap();
    }
}

fn same_contents(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        let mut got = 0;
        while got < n {
            let m = b.read(&mut y[got..n]).unwrap();
            if m == 0 {
                return false;
            }
            got += m;
        }
        if x[..n] != y[..n] {
            return false;
        }
        if n == 0 {
            return b.read(&mut y).unwrap() == 0;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_file_round_trips_in_bounded_memory() {
    let agent = TestAgent::start().await;
    let src = agent.path("big.bin");
    write_pattern(&src);
    let host_before = peak_rss_kib("/proc/self/status");

    let guest = agent.guest("guest/big.bin");
    let stats = agent.client.copy_in(&src, &guest).await.unwrap();
    assert_eq!(stats.bytes, SIZE as u64);
    let back = agent.path("back.bin");
    let stats = agent.client.copy_out(&guest, &back).await.unwrap();
    assert_eq!(stats.bytes, SIZE as u64);

    assert!(same_contents(&src, Path::new(&guest)));
    assert!(same_contents(&src, &back));
    let agent_peak = agent.agent_peak_rss_kib();
    let host_growth = peak_rss_kib("/proc/self/status").saturating_sub(host_before);
    eprintln!("agent peak RSS {agent_peak} KiB, host growth {host_growth} KiB");
    assert!(agent_peak < BOUND_KIB, "agent peak RSS {agent_peak} KiB");
    assert!(
        host_growth < BOUND_KIB,
        "host peak RSS grew by {host_growth} KiB"
    );
}
