//! A resource (a VM) shared by a group of cases, whatever their order or
//! parallelism: set up (booted) by the first case that needs it, and again
//! when the lab's emulation lost it and a case runs again; torn down
//! (powered off) once the last selected case of the group has ended, and
//! that checked there.
//!
//! A case joins a group by being declared with [`crate::group_trial`],
//! which registers the group with the suite: the suite tells each group
//! how many of its cases the run selected ([`Group::expect`]) before any
//! runs, and spares its resource's processes when it sweeps stray VMs
//! ([`Group::pids`]). Each case counts itself ended after its last run
//! (reruns included). Cases that fail still count: the VM is powered off
//! after them too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use libtest_mimic::Failed;

/// What a group shares: how it is set up, whether it still serves, and
/// how it is torn down.
pub trait Resource: Sync + 'static {
    /// Sets one up (a handle leaked for the cases' lifetime: a dead one
    /// holds nothing).
    fn set_up(group: &str) -> Result<&'static Self, String>;
    /// Whether it still serves (a VM the lab lost does not).
    fn alive(&self) -> bool;
    /// Tears it down after the group; why that failed.
    fn tear_down(&'static self, group: &str) -> Result<(), String>;
    /// Its processes, which the sweep of stray VMs spares while it serves.
    fn pids(&self) -> Vec<u32> {
        Vec::new()
    }
}

/// A fixture as the suite sees it, whatever it shares.
pub trait Group: Sync {
    /// Whether case `name` is one of the group's.
    fn has_member(&self, name: &str) -> bool;
    /// The run selected `cases` cases of the group.
    fn expect(&self, cases: usize);
    /// The processes of its resource now, if one is set up.
    fn pids(&self) -> Vec<u32>;
}

/// Every group that a case was declared in.
static GROUPS: Mutex<Vec<&'static dyn Group>> = Mutex::new(Vec::new());

/// The groups declared so far.
pub(crate) fn groups() -> Vec<&'static dyn Group> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The processes of every group's current resource.
pub(crate) fn spared_pids() -> Vec<u32> {
    groups().iter().flat_map(|g| g.pids()).collect()
}

/// One shared resource and the bookkeeping of its group.
pub struct Shared<T: Resource> {
    /// The group, for messages (e.g. "agent").
    group: &'static str,
    /// The names of the group's cases, as [`crate::group_trial`] made them.
    members: Mutex<Vec<&'static str>>,
    /// Whether the group is in [`GROUPS`].
    registered: AtomicBool,
    state: Mutex<State<T>>,
}

struct State<T: 'static> {
    /// The resource, once set up.
    current: Option<&'static T>,
    /// Cases of the group the run selected and that have not ended;
    /// `None` until the harness says.
    left: Option<usize>,
}

impl<T: Resource> Shared<T> {
    /// A fixture for group `group`, with no resource yet.
    pub const fn new(group: &'static str) -> Self {
        Self {
            group,
            members: Mutex::new(Vec::new()),
            registered: AtomicBool::new(false),
            state: Mutex::new(State {
                current: None,
                left: None,
            }),
        }
    }

    /// The resource now, if one is set up.
    pub fn current(&self) -> Option<&'static T> {
        self.state().current
    }

    /// Adds case `name` to the group, and the group to the suite's.
    pub(crate) fn add_member(&'static self, name: &'static str) {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name);
        if !self.registered.swap(true, Ordering::SeqCst) {
            GROUPS.lock().unwrap_or_else(|e| e.into_inner()).push(self);
        }
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The resource, set up now if there is none or it no longer serves.
    pub fn get(&self) -> Result<&'static T, String> {
        let mut state = self.state();
        if let Some(current) = state.current {
            if current.alive() {
                return Ok(current);
            }
            println!(
                "{} cases: the shared resource is gone; setting up another",
                self.group
            );
        }
        let fresh = T::set_up(self.group)?;
        state.current = Some(fresh);
        Ok(fresh)
    }

    /// One case of the group ended; after the last, tears the resource
    /// down and says whether that worked.
    pub fn case_ended(&self) -> Result<(), Failed> {
        let current = {
            let mut state = self.state();
            let Some(left) = state.left.as_mut() else {
                return Ok(());
            };
            *left = left.saturating_sub(1);
            if *left > 0 {
                return Ok(());
            }
            state.current.take()
        };
        match current.filter(|c| c.alive()) {
            Some(current) => current.tear_down(self.group).map_err(Failed::from),
            None => Ok(()),
        }
    }
}

impl<T: Resource> Group for Shared<T> {
    fn has_member(&self, name: &str) -> bool {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&name)
    }

    fn expect(&self, cases: usize) {
        self.state().left = Some(cases);
    }

    fn pids(&self) -> Vec<u32> {
        self.current()
            .filter(|r| r.alive())
            .map(|r| r.pids())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::time::Duration;

    use super::{Group, Resource, Shared};

    static SET_UP: AtomicUsize = AtomicUsize::new(0);
    static TORN_DOWN: AtomicUsize = AtomicUsize::new(0);

    /// A resource that counts its set-ups and tear-downs.
    struct Counted {
        torn: AtomicBool,
    }

    impl Resource for Counted {
        fn set_up(_group: &str) -> Result<&'static Self, String> {
            SET_UP.fetch_add(1, Ordering::SeqCst);
            Ok(Box::leak(Box::new(Counted {
                torn: AtomicBool::new(false),
            })))
        }

        fn alive(&self) -> bool {
            !self.torn.load(Ordering::SeqCst)
        }

        fn tear_down(&'static self, _group: &str) -> Result<(), String> {
            TORN_DOWN.fetch_add(1, Ordering::SeqCst);
            self.torn.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    /// Eight cases of one group at once: one set-up, every case sees it
    /// alive to its end, one tear-down after the last; a case that finds
    /// it lost gets a new one.
    #[test]
    fn shared_and_torn_down_once_under_parallel_cases() {
        static GROUP: Shared<Counted> = Shared::new("counted");
        const CASES: usize = 8;
        GROUP.expect(CASES + 1);
        let start = Barrier::new(CASES);
        let seen_alive = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for i in 0..CASES {
                let (start, seen_alive) = (&start, &seen_alive);
                s.spawn(move || {
                    start.wait();
                    let got = GROUP.get().expect("the counted resource");
                    std::thread::sleep(Duration::from_millis(5 * i as u64));
                    if got.alive() {
                        seen_alive.fetch_add(1, Ordering::SeqCst);
                    }
                    GROUP
                        .case_ended()
                        .expect("no tear-down before the last case");
                });
            }
        });
        assert_eq!(
            seen_alive.load(Ordering::SeqCst),
            CASES,
            "a case saw the resource torn down under it"
        );
        assert_eq!(SET_UP.load(Ordering::SeqCst), 1);
        assert_eq!(
            TORN_DOWN.load(Ordering::SeqCst),
            0,
            "torn down before the last case"
        );
        // The last case finds it lost (as when the lab lost a VM).
        let lost = GROUP.get().unwrap();
        lost.torn.store(true, Ordering::SeqCst);
        let fresh = GROUP.get().unwrap();
        assert!(fresh.alive(), "a lost resource was not set up again");
        assert_eq!(SET_UP.load(Ordering::SeqCst), 2);
        GROUP.case_ended().unwrap();
        assert_eq!(TORN_DOWN.load(Ordering::SeqCst), 1, "want one tear-down");
        assert!(!fresh.alive());
    }
}
