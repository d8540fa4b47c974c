//! The pool's failures, without a VM: a configuration refused before
//! anything starts, and a refill that cannot boot (the booted cases are
//! in `tests/vm/pool_cases.rs`).

use std::time::Duration;

use krunbox::pool::{PoolConfig, PoolError};
use krunbox::runner::RunnerProgram;
use krunbox::vm::VmConfig;

fn unbootable(root: &std::path::Path) -> VmConfig {
    VmConfig::new(root).runner(RunnerProgram::Path("/nonexistent/krunbox-runner".into()))
}

#[test]
fn bad_configurations_start_nothing() {
    let root = tempfile::tempdir().expect("a rootfs directory");
    let outside = PoolConfig::new(unbootable(root.path()), 1).start();
    assert!(
        matches!(outside, Err(PoolError::NoRuntime(_))),
        "{outside:?}"
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let _in = runtime.enter();
    let missing = PoolConfig::new(VmConfig::new("/no/such/rootfs"), 1).start();
    assert!(matches!(missing, Err(PoolError::Config(_))), "{missing:?}");
    let no_boots = PoolConfig::new(unbootable(root.path()), 1)
        .max_boots(0)
        .start();
    assert!(matches!(no_boots, Err(PoolError::NoBoots)), "{no_boots:?}");
}

#[test]
fn a_refill_that_cannot_boot_says_why() {
    let root = tempfile::tempdir().expect("a rootfs directory");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let pool = PoolConfig::new(unbootable(root.path()), 2)
            .start()
            .expect("a valid configuration");
        let filled = tokio::time::timeout(Duration::from_secs(60), pool.filled())
            .await
            .expect("filled() gives up");
        let Err(PoolError::Refill { failures, last }) = &filled else {
            panic!("{filled:?}");
        };
        assert!(*failures >= 3, "{failures}");
        assert!(!last.is_empty());
        let stats = pool.stats();
        assert!(
            stats.boot_failures >= 3 && stats.failing.is_some(),
            "{stats:?}"
        );
        assert_eq!((stats.idle, stats.warm_leases), (0, 0), "{stats:?}");
        // An acquire boots cold, and says why that failed.
        let acquired = pool.acquire().await;
        assert!(matches!(acquired, Err(PoolError::Boot(_))), "{acquired:?}");
        pool.close().await;
    });
}

#[test]
fn a_pool_of_zero_boots_every_lease_cold() {
    let root = tempfile::tempdir().expect("a rootfs directory");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let pool = PoolConfig::new(unbootable(root.path()), 0)
            .max_boots(1)
            .start()
            .expect("a valid configuration");
        // A pool of 0 is full at once: every acquire boots cold.
        pool.filled().await.expect("a pool of 0 is full");
        assert!(matches!(pool.acquire().await, Err(PoolError::Boot(_))));
        assert_eq!(pool.stats().boot_failures, 0, "the refill never booted");
    });
}
