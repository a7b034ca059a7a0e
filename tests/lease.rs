//! The lease scenario: a leader election whose nodes time their lease with the wall clock.
//! Plain runs pass; under fault plans the nodes act as leader past their lease (two leaders,
//! mostly) only where a node's clock jumps, never with the other kinds of fault; the nodes
//! fixed (timing with the monotonic clock) pass every plan; and a faulted run replays.

use std::time::Duration;

use roof::fault::{FaultKind, FaultPlan, PlannedFault};

use crate::sim;

const SEEDS: u64 = 100;

/// Faults start within this window, as `--faults 2s` has them.
const WINDOW: Duration = Duration::from_secs(2);

fn faults() -> sim::Faults {
    sim::Faults {
        window: WINDOW,
        keep: None,
    }
}

fn buggy() -> &'static sim::Scenario {
    sim::find("lease").unwrap()
}

fn fixed() -> &'static sim::Scenario {
    sim::find("lease-fixed").unwrap()
}

fn is_clock_jump(kind: FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::ClockJumpForward | FaultKind::ClockJumpBackward
    )
}

/// `sim::run_with_plan` on a quiet loop of `seed`, running the plan `plan` makes.
fn run_planned(
    scenario: &sim::Scenario,
    seed: u64,
    plan: impl FnOnce(&[String], &[String]) -> FaultPlan + 'static,
) -> sim::FaultedRun {
    sim::run_with_plan(scenario, crate::quiet(seed), move |hosts, restartable| {
        let plan = plan(hosts, restartable);
        (plan.clone(), plan)
    })
}

/// A run with the plan of `seed` drawn from every default kind but the clock jumps.
fn run_without_clock_faults(scenario: &sim::Scenario, seed: u64) -> sim::FaultedRun {
    let kinds: Vec<FaultKind> = FaultKind::DEFAULT
        .iter()
        .copied()
        .filter(|&kind| !is_clock_jump(kind))
        .collect();
    run_planned(scenario, seed, move |hosts, restartable| {
        FaultPlan::draw_kinds(seed, hosts, restartable, WINDOW, &kinds)
    })
}

/// A fault of `kind` on `host` at `at_ms`, for `lasts_ms`.
fn fault(
    kind: FaultKind,
    host: &str,
    peer: Option<&str>,
    at_ms: u64,
    lasts_ms: u64,
) -> PlannedFault {
    PlannedFault {
        kind,
        host: host.to_string(),
        peer: peer.map(str::to_string),
        at: Duration::from_millis(at_ms),
        lasts: Duration::from_millis(lasts_ms),
    }
}

#[test]
fn both_pass_every_seed_without_faults() {
    for scenario in [buggy(), fixed()] {
        for seed in 0..SEEDS {
            let report = sim::run(scenario, crate::quiet(seed));
            assert!(
                report.passed(),
                "{} seed {seed}: {:?}",
                scenario.name,
                report.outcome
            );
        }
    }
}

#[test]
fn the_fixed_nodes_pass_every_fault_plan() {
    let mut fired = 0;
    for seed in 0..SEEDS {
        let run = sim::run_with_faults(fixed(), crate::quiet(seed), &faults());
        assert!(
            run.report.passed(),
            "seed {seed}: {:?}\nfired: {:#?}",
            run.report.outcome,
            run.fired
        );
        fired += run.fired.len();
    }
    assert!(fired > 5 * SEEDS as usize, "only {fired} faults fired");
}

/// The planted bug shows in a good part of the seeds, each time as a node acting as leader
/// past its lease, that node's clock having jumped; mostly while the other node led.
#[test]
fn the_buggy_nodes_lead_past_their_lease_only_when_their_clock_jumps() {
    let (mut failing, mut two_leaders) = (0, 0);
    for seed in 0..SEEDS {
        let run = sim::run_with_faults(buggy(), crate::quiet(seed), &faults());
        let Err(failure) = &run.report.outcome else {
            continue;
        };
        failing += 1;
        let failure = failure.to_string();
        let (_, message) = failure.split_once(": ").unwrap();
        let node = message.split(' ').next().unwrap();
        assert!(
            message.starts_with(&format!("{node} acted as leader at "))
                && message.contains(", but its lease ended at ")
                && (message.ends_with(": two leaders")
                    || message.ends_with(": a leader without a lease")),
            "seed {seed}: {failure}"
        );
        two_leaders += usize::from(message.ends_with(": two leaders"));
        let jumps = |fired: &String| {
            fired.contains(&format!("ClockJumpForward {node} "))
                || fired.contains(&format!("ClockJumpBackward {node} "))
        };
        assert!(
            run.fired.iter().any(jumps),
            "seed {seed}: {failure}, but {node}'s clock never jumped: {:#?}",
            run.fired
        );
    }
    assert!(
        (10..90).contains(&failing),
        "{failing} of {SEEDS} seeds failed"
    );
    assert!(
        two_leaders * 2 >= failing,
        "only {two_leaders} of {failing} failures were two leaders"
    );
}

/// With the same window but no clock jumps in the plans, the planted bug never shows: the
/// wall clocks then agree with the monotonic one.
#[test]
fn without_clock_jumps_the_buggy_nodes_pass_every_fault_plan() {
    let mut fired = 0;
    for seed in 0..SEEDS {
        let run = run_without_clock_faults(buggy(), seed);
        assert!(
            run.drawn
                .faults
                .iter()
                .all(|fault| !is_clock_jump(fault.kind)),
            "seed {seed}: {}",
            run.drawn
        );
        assert!(
            run.report.passed(),
            "seed {seed}: {:?}\nfired: {:#?}",
            run.report.outcome,
            run.fired
        );
        fired += run.fired.len();
    }
    assert!(fired > 5 * SEEDS as usize, "only {fired} faults fired");
}

/// One step back of both nodes' clocks (whichever leads then) is enough: the leader renews
/// late, the other node takes the lease, and the leader goes on leading. The fixed nodes
/// do not notice.
#[test]
fn one_step_back_of_the_leaders_clock_makes_two_leaders() {
    let step_back = || FaultPlan {
        kinds: vec![FaultKind::ClockJumpBackward],
        faults: ["n1", "n2"]
            .map(|node| fault(FaultKind::ClockJumpBackward, node, None, 1_000, 400))
            .to_vec(),
    };
    for seed in 0..20 {
        let run = run_planned(buggy(), seed, move |_, _| step_back());
        let failure = run.report.outcome.unwrap_err().to_string();
        assert!(failure.ends_with(": two leaders"), "seed {seed}: {failure}");
        let run = run_planned(fixed(), seed, move |_, _| step_back());
        assert!(run.report.passed(), "seed {seed}: {:?}", run.report.outcome);
    }
}

/// The oracle bites without clock faults too: a coordinator no node can reach grants
/// nothing, and the run fails for want of a leader.
#[test]
fn a_coordinator_cut_off_from_both_nodes_fails_the_run() {
    let cut_off = || FaultPlan {
        kinds: vec![FaultKind::Partition],
        faults: ["n1", "n2"]
            .map(|node| fault(FaultKind::Partition, "coord", Some(node), 0, 60_000))
            .to_vec(),
    };
    for scenario in [buggy(), fixed()] {
        let run = run_planned(scenario, 0, move |_, _| cut_off());
        let failure = run.report.outcome.unwrap_err().to_string();
        assert!(
            failure.contains("no node acted as leader after 3.000s"),
            "{}: {failure}",
            scenario.name
        );
    }
}

#[test]
fn a_faulted_run_replays() {
    let mut outcomes = Vec::new();
    for seed in 0..8 {
        let first = sim::run_with_faults(buggy(), crate::quiet(seed), &faults());
        let second = sim::run_with_faults(buggy(), crate::quiet(seed), &faults());
        assert_eq!(
            first.report.trace_hash, second.report.trace_hash,
            "seed {seed}"
        );
        assert_eq!(first.report.outcome, second.report.outcome, "seed {seed}");
        assert_eq!(first.fired, second.fired, "seed {seed}");
        outcomes.push(first.report.passed());
    }
    assert!(
        outcomes.contains(&true) && outcomes.contains(&false),
        "seeds 0..8 should hold a pass and a failure: {outcomes:?}"
    );
}
