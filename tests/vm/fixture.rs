//! A resource (a VM) shared by a group of cases, whatever their order or
//! parallelism: set up (booted) by the first case that needs it, and again
//! when the lab's emulation lost it and a case runs again; torn down
//! (powered off) once the last selected case of the group has ended, and
//! that checked there.
//!
//! The harness tells the fixture how many of its cases the run selected
//! ([`Shared::expect`]) before any runs; each case of the group is
//! wrapped by [`group_trial`], which counts it ended after its last
//! attempt (reruns included). Cases that fail still count: the VM is
//! powered off after them too.

use krunbox::vm::{Vm, VmConfig};
use libtest_mimic::{Failed, Trial};
use std::sync::{Mutex, MutexGuard, OnceLock};
use tokio::runtime::Runtime;

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
}

/// One shared resource and the bookkeeping of its group.
pub struct Shared<T: Resource> {
    /// The group, for messages (e.g. "agent").
    group: &'static str,
    /// The names of the group's cases, as [`group_trial`] made them.
    members: Mutex<Vec<&'static str>>,
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
    pub const fn new(group: &'static str) -> Self {
        Self {
            group,
            members: Mutex::new(Vec::new()),
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

    /// Whether case `name` is one of this group's.
    pub fn has_member(&self, name: &str) -> bool {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&name)
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run selected `cases` cases of this group.
    pub fn expect(&self, cases: usize) {
        self.state().left = Some(cases);
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

/// The shared agent VM: booted with the agent cases' configuration,
/// powered off (exit 0 wanted) after them.
impl Resource for Vm {
    fn set_up(_group: &str) -> Result<&'static Self, String> {
        let config: VmConfig = crate::support::agent_vm().memory_mib(512);
        let vm = runtime()
            .block_on(config.boot())
            .map_err(|e| krunbox::error_chain(&e))?;
        Ok(Box::leak(Box::new(vm)))
    }

    fn alive(&self) -> bool {
        // A VM whose agent fell silent is killed by its watchdog.
        self.is_running() && self.agent().is_alive()
    }

    fn tear_down(&'static self, group: &str) -> Result<(), String> {
        runtime().block_on(async {
            self.agent().shutdown(0).await.map_err(|e| {
                format!(
                    "the shared {group} VM did not take the power-off after its group: {}",
                    krunbox::error_chain(&e)
                )
            })?;
            crate::fault_support::wait_until("the shared VM's exit", || !self.is_running())
                .await
                .map_err(|e| format!("{e:?}"))
        })?;
        let pid = nix::unistd::Pid::from_raw(self.runner_pid() as i32);
        if nix::sys::signal::kill(pid, None).is_ok() {
            return Err(format!(
                "the shared {group} VM's runner (pid {pid}) still runs after its power-off"
            ));
        }
        match self.exit_status().and_then(|s| s.code()) {
            Some(0) => Ok(()),
            other => Err(format!(
                "the shared {group} VM powered off after its group with exit {other:?}, not 0"
            )),
        }
    }
}

/// The runtime the shared VMs and their cases run on.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("tokio runtime"))
}

/// A case of `fixture`'s group: a [`crate::lab_faults::trial`] that, once
/// its last attempt ended (passed, failed or panicked), counts itself ended in the group (and, if it
/// was the last, fails when the shared VM does not power off cleanly).
pub fn group_trial<T: Resource>(
    name: &'static str,
    fixture: &'static Shared<T>,
    case: fn() -> Result<(), Failed>,
) -> Trial {
    fixture
        .members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(name);
    Trial::test(name, move || {
        crate::lab_faults::run_case(name, case, &|| fixture.case_ended())
    })
}

/// The fixture's own checks, without a VM (`harness::` cases).
pub mod checks {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::time::Duration;

    use libtest_mimic::Failed;

    use super::{Resource, Shared};
    use crate::cases::check;

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
    pub fn shared_and_torn_down_once_under_parallel_cases() -> Result<(), Failed> {
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
        check(seen_alive.load(Ordering::SeqCst) == CASES, || {
            "a case saw the resource torn down under it".into()
        })?;
        check(
            SET_UP.load(Ordering::SeqCst) == 1 && TORN_DOWN.load(Ordering::SeqCst) == 0,
            || format!("set up {SET_UP:?}, torn down {TORN_DOWN:?} before the last case"),
        )?;
        // The last case finds it lost (as when the lab lost a VM).
        let lost = GROUP.get()?;
        lost.torn.store(true, Ordering::SeqCst);
        let fresh = GROUP.get()?;
        check(fresh.alive() && SET_UP.load(Ordering::SeqCst) == 2, || {
            "a lost resource was not set up again".into()
        })?;
        GROUP.case_ended()?;
        check(
            TORN_DOWN.load(Ordering::SeqCst) == 1 && !fresh.alive(),
            || format!("torn down {TORN_DOWN:?} after the last case; want once"),
        )
    }
}
