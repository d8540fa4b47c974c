//! Fixtures through the suite, as the VM cases declare them: shared by
//! parallel cases, torn down once after the last selected case of the
//! group, failed cases included.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use krunbox_suite::{group_trial, Arguments, Failed, Host, LabPlan, Resource, Shared, Suite};

/// Counts for one group.
struct Counts {
    set_up: AtomicUsize,
    torn_down: AtomicUsize,
    /// Cases of the group ended when it was torn down.
    ended_at_tear_down: AtomicUsize,
    ended: AtomicUsize,
}

impl Counts {
    const fn new() -> Self {
        Self {
            set_up: AtomicUsize::new(0),
            torn_down: AtomicUsize::new(0),
            ended_at_tear_down: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
        }
    }
}

static ALL: Counts = Counts::new();
static FILTERED: Counts = Counts::new();

/// A resource that counts its set-ups and tear-downs in `counts`.
struct Counted {
    counts: &'static Counts,
    torn: AtomicBool,
}

fn counted(group: &str) -> &'static Counts {
    if group == "all" {
        &ALL
    } else {
        &FILTERED
    }
}

impl Resource for Counted {
    fn set_up(group: &str) -> Result<&'static Self, String> {
        let counts = counted(group);
        counts.set_up.fetch_add(1, Ordering::SeqCst);
        Ok(Box::leak(Box::new(Counted {
            counts,
            torn: AtomicBool::new(false),
        })))
    }

    fn alive(&self) -> bool {
        !self.torn.load(Ordering::SeqCst)
    }

    fn tear_down(&'static self, _group: &str) -> Result<(), String> {
        let ended = self.counts.ended.load(Ordering::SeqCst);
        self.counts
            .ended_at_tear_down
            .store(ended, Ordering::SeqCst);
        self.counts.torn_down.fetch_add(1, Ordering::SeqCst);
        self.torn.store(true, Ordering::SeqCst);
        Ok(())
    }
}

static GROUP_ALL: Shared<Counted> = Shared::new("all");
static GROUP_FILTERED: Shared<Counted> = Shared::new("filtered");

/// Uses the group's resource for a while; fails if it is torn down
/// under it.
fn use_it(group: &'static Shared<Counted>) -> Result<(), Failed> {
    let resource = group.get()?;
    std::thread::sleep(Duration::from_millis(30));
    let alive = resource.alive();
    resource.counts.ended.fetch_add(1, Ordering::SeqCst);
    if alive {
        Ok(())
    } else {
        Err("the shared resource was torn down under a running case".into())
    }
}

fn case_all() -> Result<(), Failed> {
    use_it(&GROUP_ALL)
}

fn case_all_failing() -> Result<(), Failed> {
    use_it(&GROUP_ALL)?;
    Err("this case fails on purpose".into())
}

fn case_filtered() -> Result<(), Failed> {
    use_it(&GROUP_FILTERED)
}

const ALL_NAMES: [&str; 8] = [
    "all::a", "all::b", "all::c", "all::d", "all::e", "all::f", "all::g", "all::h",
];
const FILTERED_NAMES: [&str; 6] = [
    "filtered::picked_1",
    "filtered::picked_2",
    "filtered::picked_3",
    "filtered::left_1",
    "filtered::left_2",
    "filtered::left_3",
];

fn args(threads: usize, filter: Option<&str>) -> Arguments {
    Arguments {
        test_threads: Some(threads),
        filter: filter.map(str::to_owned),
        quiet: true,
        ..Arguments::default()
    }
}

#[test]
fn a_fixture_is_shared_and_torn_down_once_under_parallel_cases() {
    // Eight cases on four threads, one of them failing: one set-up, no
    // case sees a tear-down, one tear-down after the eighth.
    let mut trials: Vec<_> = ALL_NAMES[..7]
        .iter()
        .map(|&name| group_trial(name, &GROUP_ALL, case_all))
        .collect();
    trials.push(group_trial(ALL_NAMES[7], &GROUP_ALL, case_all_failing));
    println!("fixtures: the fake suite below fails all::h on purpose");
    let code = Suite::new(trials, LabPlan::new(std::env::temp_dir()))
        .run_with_args(args(4, None), Host::Boots);
    assert_ne!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS),
        "the failing case fails the run"
    );
    assert_eq!(ALL.set_up.load(Ordering::SeqCst), 1);
    assert_eq!(ALL.torn_down.load(Ordering::SeqCst), 1);
    assert_eq!(ALL.ended_at_tear_down.load(Ordering::SeqCst), 8);

    // A run that selects three cases of six: torn down after the third.
    let trials = FILTERED_NAMES
        .iter()
        .map(|&name| group_trial(name, &GROUP_FILTERED, case_filtered))
        .collect();
    let code = Suite::new(trials, LabPlan::new(std::env::temp_dir()))
        .run_with_args(args(2, Some("filtered::picked")), Host::Boots);
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    assert_eq!(FILTERED.set_up.load(Ordering::SeqCst), 1);
    assert_eq!(FILTERED.torn_down.load(Ordering::SeqCst), 1);
    assert_eq!(FILTERED.ended_at_tear_down.load(Ordering::SeqCst), 3);
}
