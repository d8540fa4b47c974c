//! [`NamedPool`] without VMs: members are VM directories whose records
//! name `sleep` processes as their runners, so claims, fills' reservations
//! and removal run on the real state directory logic.

use std::process::{Child, Command};
use std::sync::Barrier;

use super::*;
use crate::state::ProcessId;

struct Fixture {
    _base: tempfile::TempDir,
    state: StateDir,
    runners: Vec<Child>,
}

impl Fixture {
    fn new() -> Self {
        let base = tempfile::tempdir().unwrap();
        let state = StateDir::at(base.path().join("state")).unwrap();
        Self {
            _base: base,
            state,
            runners: Vec::new(),
        }
    }

    fn pool(&self, size: usize) -> NamedPool {
        NamedPool::create(
            &self.state,
            &"p".parse().unwrap(),
            PoolSpec::new(size, vec!["--rootfs".into(), "/r".into()]),
        )
        .unwrap()
    }

    /// A member of `pool` whose runner is a live `sleep`.
    fn ready_member(&mut self, pool: &NamedPool, id: &str) {
        let runner = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = ProcessId::of(runner.id());
        self.runners.push(runner);
        self.member(pool, id, pid);
    }

    fn member(&self, pool: &NamedPool, id: &str, runner: Option<ProcessId>) {
        let name: VmName = id.parse().unwrap();
        let dir = pool.dir.join(id);
        let mut record = starting_record(&name, &VmConfig::new("/r"), &dir);
        record.runner = runner;
        record.starter = None;
        let _lock = self.state.lock().unwrap();
        place_locked(&name, &dir, &record).unwrap();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for runner in &mut self.runners {
            let _ = runner.kill();
            let _ = runner.wait();
        }
    }
}

#[test]
fn pools_are_created_once_found_and_listed() {
    let fx = Fixture::new();
    let name: VmName = "p".parse().unwrap();
    assert!(matches!(
        NamedPool::open(&fx.state, &name).unwrap_err(),
        Error::NoSuchPool { .. }
    ));
    assert!(NamedPool::list(&fx.state).unwrap().is_empty());
    let pool = fx.pool(2);
    let again = NamedPool::create(&fx.state, &name, PoolSpec::new(2, vec![]));
    assert!(matches!(again.unwrap_err(), Error::PoolExists { .. }));
    for size in [0, MAX_POOL_SIZE + 1] {
        let other = NamedPool::create(
            &fx.state,
            &"q".parse().unwrap(),
            PoolSpec::new(size, vec![]),
        );
        assert!(matches!(other.unwrap_err(), Error::BadPoolSize { .. }));
    }
    let listed = NamedPool::list(&fx.state).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].spec(), pool.spec());
    // Pools are not VMs.
    assert!(NamedVm::list(&fx.state).unwrap().is_empty());
}

#[test]
fn racing_claims_take_distinct_members_and_the_rest_get_none() {
    let mut fx = Fixture::new();
    let pool = fx.pool(3);
    for id in ["m0", "m1", "m2"] {
        fx.ready_member(&pool, id);
    }
    fx.member(&pool, "m3", None); // dead: a start that never finished
    assert_eq!(
        pool.counts(),
        MemberCounts {
            ready: 3,
            starting: 0,
            dead: 1
        }
    );
    let barrier = Barrier::new(8);
    let claimed: Vec<Option<NamedVm>> = std::thread::scope(|s| {
        let claims: Vec<_> = (0..8)
            .map(|i| {
                let (pool, barrier) = (&pool, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    pool.claim(&format!("vm{i}").parse().unwrap()).unwrap()
                })
            })
            .collect();
        claims.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let got: Vec<&NamedVm> = claimed.iter().flatten().collect();
    assert_eq!(got.len(), 3, "three ready members, three claims served");
    let mut runners: Vec<u32> = got
        .iter()
        .map(|vm| vm.record().runner.unwrap().pid)
        .collect();
    runners.sort();
    runners.dedup();
    assert_eq!(runners.len(), 3, "no member served twice");
    for vm in got {
        let found = NamedVm::open(&fx.state, vm.name()).unwrap();
        assert_eq!(found.status(), VmStatus::Running);
        assert_eq!(found.record().name, vm.name().as_str());
        assert!(
            found.log_path().starts_with(found.dir()),
            "{:?}",
            found.log_path()
        );
    }
    assert_eq!(pool.counts().ready, 0);
}

#[test]
fn a_claim_never_replaces_a_live_vm() {
    let mut fx = Fixture::new();
    let pool = fx.pool(1);
    fx.ready_member(&pool, "m0");
    let first = pool.claim(&"a".parse().unwrap()).unwrap();
    assert!(first.is_some());
    fx.ready_member(&pool, "m0");
    let err = pool.claim(&"a".parse().unwrap()).unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err}");
    assert_eq!(pool.counts().ready, 1, "the member stays in the pool");
}

#[test]
fn reservations_replace_dead_members_and_never_overshoot() {
    let mut fx = Fixture::new();
    let pool = fx.pool(3);
    fx.ready_member(&pool, "m0");
    fx.member(&pool, "m1", None);
    let config = VmConfig::new("/r");
    let first = pool.reserve(&config).unwrap();
    let names: Vec<&str> = first.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["m1", "m2"],
        "the dead m1 removed and reserved again"
    );
    // The reserved members are starting (this process is their starter):
    // a second fill meanwhile finds the pool full.
    assert!(pool.reserve(&config).unwrap().is_empty());
    assert_eq!(pool.counts().starting, 2);
}

#[test]
fn removal_stops_ready_members_and_leaves_claimed_vms() {
    let mut fx = Fixture::new();
    let pool = fx.pool(2);
    fx.ready_member(&pool, "m0");
    fx.ready_member(&pool, "m1");
    pool.claim(&"kept".parse().unwrap()).unwrap().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stopped = runtime
        .block_on(pool.clone().remove(Duration::from_millis(100)))
        .unwrap();
    assert_eq!(stopped, 1);
    assert!(NamedPool::list(&fx.state).unwrap().is_empty());
    assert!(!fx.state.pools_dir().join("p").exists());
    let kept = NamedVm::open(&fx.state, &"kept".parse().unwrap()).unwrap();
    assert_eq!(kept.status(), VmStatus::Running);
    assert!(matches!(
        pool.claim(&"late".parse().unwrap()).unwrap_err(),
        Error::NoSuchPool { .. }
    ));
}
