//! The retry storm (sim/retry_storm.rs): both versions keep up without faults; after a pause,
//! stall or clog the buggy clients' retries swamp the server for good, and the fixed ones
//! (backoff with jitter, deadlines the server honours) recover from every fault.

use std::collections::BTreeMap;
use std::time::Duration;

use roof::fault::{FaultKind, FaultPlan, FiredFaults, PlannedFault};
use roof::EventLoop;

use crate::sim;
use crate::sim::retry_storm::{self, Tally};

const SEEDS: u64 = 100;

/// Every request the clients make.
const REQUESTS: usize = retry_storm::CLIENTS * retry_storm::SESSIONS * retry_storm::REQUESTS;

/// The kinds of fault that, alone in a plan, start the storm: each holds requests the
/// clients go on to abandon, then delivers them to the server together (a crash does not:
/// it empties the server's queue).
const TRIGGERS: &[FaultKind] = &[
    FaultKind::Pause,
    FaultKind::Stall,
    FaultKind::Clog,
    FaultKind::ClogIncoming,
    FaultKind::ClogOutgoing,
    FaultKind::OneWayPartition,
];

fn faults() -> sim::Faults {
    sim::Faults {
        window: Duration::from_secs(2),
        keep: None,
    }
}

/// Run `body` on a quiet loop of `seed` with a nemesis carrying out `plan`: what it
/// returned, the report, and the faults that fired.
fn with_plan<T>(
    seed: u64,
    plan: FaultPlan,
    body: impl FnOnce(&EventLoop) -> T,
) -> (T, roof::Report, Vec<String>) {
    let event_loop = EventLoop::with_config(crate::quiet(seed));
    let fired = FiredFaults::default();
    let (handle, slot) = (event_loop.handle(), fired.clone());
    event_loop.call_soon(move || handle.start_nemesis(plan, slot).detach());
    let value = body(&event_loop);
    let report = event_loop.report();
    let fired = fired.borrow().clone();
    (value, report, fired)
}

/// A plan of one fault of the server: `kind` from 500 ms to 1 s.
fn one_fault(kind: FaultKind) -> FaultPlan {
    FaultPlan {
        kinds: vec![kind],
        faults: vec![PlannedFault {
            kind,
            host: "server".into(),
            peer: None,
            at: Duration::from_millis(500),
            lasts: Duration::from_millis(500),
        }],
    }
}

/// The kind of a fired fault's line (`0.5s Pause server at 500ms for 500ms`).
fn kind_of(fired: &str) -> Option<FaultKind> {
    let name = fired.split_whitespace().nth(1)?;
    FaultKind::ALL
        .iter()
        .copied()
        .find(|kind| format!("{kind:?}") == name)
}

fn plain_tally(seed: u64, fixed: bool) -> Result<Tally, String> {
    let event_loop = EventLoop::with_config(crate::quiet(seed));
    retry_storm::run_with(&event_loop, fixed)
}

/// Without faults the queue never grows past the timeout: both versions finish, every
/// request answered at its first attempt.
#[test]
fn both_versions_keep_up_without_faults() {
    for name in ["retry-storm", "retry-storm-fixed"] {
        let scenario = sim::find(name).unwrap();
        for seed in 0..SEEDS {
            let report = sim::run(scenario, crate::quiet(seed));
            assert!(report.passed(), "{name} seed {seed}: {:?}", report.outcome);
            let tally = plain_tally(seed, name.ends_with("fixed")).unwrap();
            assert_eq!(tally.finished, REQUESTS, "{name} seed {seed}");
            assert_eq!(
                (tally.attempts, tally.served, tally.taken, tally.dropped),
                (REQUESTS, REQUESTS, REQUESTS, 0),
                "{name} seed {seed}: an attempt timed out without faults"
            );
        }
    }
}

/// The fix holds under every kind of fault the plans draw.
#[test]
fn the_fixed_clients_and_server_recover_from_every_fault() {
    let scenario = sim::find("retry-storm-fixed").unwrap();
    for seed in 0..SEEDS {
        let run = sim::run_with_faults(scenario, crate::quiet(seed), &faults());
        assert!(
            run.report.passed(),
            "seed {seed}: {:?}\nfired: {:?}",
            run.report.outcome,
            run.fired
        );
    }
}

/// With faults, the buggy clients are caught in a storm on some seeds, never all; each
/// such seed had a fault that holds requests back, and the server's work went to waste.
#[test]
fn the_storm_follows_a_fault_that_holds_requests_and_outlasts_it() {
    let scenario = sim::find("retry-storm").unwrap();
    let mut stormy = 0;
    let mut kinds: BTreeMap<FaultKind, usize> = BTreeMap::new();
    for seed in 0..SEEDS {
        let run = sim::run_with_faults(scenario, crate::quiet(seed), &faults());
        let Err(failure) = &run.report.outcome else {
            continue;
        };
        stormy += 1;
        let failure = failure.to_string();
        assert!(
            failure.contains("requests their clients had given up on (a retry storm)"),
            "seed {seed}: {failure}"
        );
        let fired: Vec<FaultKind> = run.fired.iter().filter_map(|f| kind_of(f)).collect();
        assert!(
            fired.iter().any(|kind| TRIGGERS.contains(kind)),
            "seed {seed}: a storm without a pause, stall or clog: {:?}",
            run.fired
        );
        for kind in fired.into_iter().collect::<std::collections::BTreeSet<_>>() {
            *kinds.entry(kind).or_default() += 1;
        }
    }
    println!("{stormy} of {SEEDS} seeds stormed; kinds among their faults: {kinds:?}");
    assert!(
        (10..90).contains(&stormy),
        "{stormy} of {SEEDS} seeds stormed"
    );
}

/// One pause, or one stall, of the server for half a second: the buggy system never
/// recovers, the fixed one drops the abandoned requests and finishes. A crash of the same
/// length starts no storm: it empties the server's queue.
#[test]
fn one_pause_or_stall_of_the_server_starts_a_storm_the_fix_rides_out() {
    for kind in [FaultKind::Pause, FaultKind::Stall] {
        for seed in 0..3 {
            let (buggy, _, fired) = with_plan(seed, one_fault(kind), |event_loop| {
                retry_storm::run_with(event_loop, false)
            });
            assert_eq!(fired.len(), 1, "{kind:?} seed {seed}: {fired:?}");
            let failure = buggy.unwrap_err();
            assert!(
                failure.contains("(a retry storm)"),
                "{kind:?} seed {seed}: {failure}"
            );
            let (fixed, _, _) = with_plan(seed, one_fault(kind), |event_loop| {
                retry_storm::run_with(event_loop, true)
            });
            let tally = fixed.unwrap_or_else(|error| panic!("{kind:?} seed {seed}: {error}"));
            assert_eq!(tally.finished, REQUESTS);
            assert!(
                tally.dropped > 0,
                "{kind:?} seed {seed}: no abandoned request dropped: {tally:?}"
            );
        }
    }
    for seed in 0..3 {
        let (buggy, _, fired) = with_plan(seed, one_fault(FaultKind::Crash), |event_loop| {
            retry_storm::run_with(event_loop, false)
        });
        assert_eq!(fired.len(), 1, "seed {seed}: {fired:?}");
        assert!(buggy.is_ok(), "crash, seed {seed}: {buggy:?}");
    }
}

/// A run with faults replays: the same trace, outcome and faults, storm or not.
#[test]
fn runs_with_faults_replay() {
    for name in ["retry-storm", "retry-storm-fixed"] {
        let scenario = sim::find(name).unwrap();
        for seed in [2, 3] {
            let first = sim::run_with_faults(scenario, crate::quiet(seed), &faults());
            let second = sim::run_with_faults(scenario, crate::quiet(seed), &faults());
            assert_eq!(
                first.report.trace_hash, second.report.trace_hash,
                "{name} seed {seed}"
            );
            assert_eq!(
                format!("{:?}", first.report.outcome),
                format!("{:?}", second.report.outcome),
                "{name} seed {seed}"
            );
            assert_eq!(first.fired, second.fired, "{name} seed {seed}");
            assert_eq!(first.report.virtual_time, second.report.virtual_time);
        }
    }
    // Seed 2 storms, seed 3 does not: both outcomes replayed above.
    let buggy = sim::find("retry-storm").unwrap();
    assert!(!sim::run_with_faults(buggy, crate::quiet(2), &faults())
        .report
        .passed());
    assert!(sim::run_with_faults(buggy, crate::quiet(3), &faults())
        .report
        .passed());
}
