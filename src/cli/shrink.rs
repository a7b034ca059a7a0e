//! `roof shrink`: a failing seed's scheduler choices, shrunk toward FIFO to the fewest
//! deviations (proven when every schedule with fewer was replayed); and `roof sweep
//! --exhaustive P`, every schedule within P deviations.

use roof::explore::{explore, Replayed};
use roof::shrink::{deviations, shrink as shrink_choices, Token};
use roof::{Choices, Config, Policy};

use super::out;
use crate::sim::{self, Scenario};

/// Replay `prefix` on `seed`: whether it failed (the way `kind` names, or at all).
fn replay(scenario: &Scenario, seed: u64, prefix: &[u32], kind: Option<&str>) -> Replayed {
    let config = Config::new(seed)
        .echo(false)
        .choices(Choices(prefix.to_vec()))
        .record_choices(true);
    Replayed::of(sim::run(scenario, config), kind)
}

pub(crate) fn shrink(scenario: &Scenario, seed: u64, budget: usize) -> i32 {
    let original = sim::run(scenario, Config::new(seed).echo(false).record_choices(true));
    let Err(failure) = &original.outcome else {
        out::error_line(format_args!(
            "error: seed {seed} of {} passes: there is no failure to shrink",
            scenario.name
        ));
        return 1;
    };
    // The same kind of failure: a shrink must not wander off to a different bug.
    let kind = failure.kind();
    let choices = original.choices.clone().unwrap_or_default();
    let shrunk = shrink_choices(
        &choices,
        |prefix| replay(scenario, seed, prefix, Some(kind)),
        budget,
    );
    let token = Token::encode(&shrunk.choices);
    let replayed = sim::run(
        scenario,
        Config::new(seed)
            .echo(false)
            .choices(Choices(shrunk.choices.clone())),
    );
    out::line(format_args!("failure: {failure}"));
    out::line(format_args!(
        "original: {} choices, {} deviations from FIFO",
        choices.len(),
        deviations(&choices)
    ));
    out::line(format_args!(
        "shrunk: {} choices, {} deviations from FIFO, {} ({} replays)",
        shrunk.choices.len(),
        shrunk.deviations,
        if shrunk.proven {
            "proven minimal: every schedule with fewer deviations passes"
        } else {
            "not proven minimal: the budget ran out (--budget)"
        },
        shrunk.replays
    ));
    if let Err(failure) = &replayed.outcome {
        out::line(format_args!("shrunk failure: {failure}"));
    }
    out::line(format_args!("token: {token}"));
    out::line(format_args!(
        "replay: roof run {} --seed {seed} --choices {token}",
        scenario.name
    ));
    0
}

/// `roof sweep --exhaustive P`: every schedule of each seed with at most `preemptions`
/// deviations from FIFO, fewest first, at most `cap` in all. Exit 1 at the first failure.
pub(crate) fn exhaustive(
    scenario: &Scenario,
    seeds: std::ops::Range<u64>,
    preemptions: u32,
    cap: usize,
) -> i32 {
    let (mut schedules, mut complete) = (0usize, true);
    for seed in seeds.clone() {
        let left = cap.saturating_sub(schedules);
        if left == 0 {
            complete = false;
            break;
        }
        let found = explore(preemptions, left, true, |prefix| {
            replay(scenario, seed, prefix, None)
        });
        schedules += found.schedules;
        complete &= found.complete;
        if let Some(choices) = found.failing {
            let report = sim::run(
                scenario,
                Config::new(seed)
                    .echo(false)
                    .choices(Choices(choices.clone())),
            );
            let token = Token::encode(&choices);
            if let Err(failure) = &report.outcome {
                out::line(format_args!("seed {seed} failed: {failure}"));
            }
            out::line(format_args!(
                "found after {schedules} schedules: {} choices, {} deviations from FIFO, the fewest of any failing schedule of seed {seed}",
                choices.len(),
                deviations(&choices)
            ));
            out::line(format_args!(
                "replay: roof run {} --seed {seed} --choices {token}",
                scenario.name
            ));
            return 1;
        }
    }
    let policy = Policy::exhaustive(preemptions);
    if complete {
        out::line(format_args!(
            "{}: no failure in all {schedules} schedules within {preemptions} preemptions (seeds {}..{}, {policy})",
            scenario.name, seeds.start, seeds.end
        ));
    } else {
        out::line(format_args!(
            "{}: no failure in {schedules} schedules, stopped at the cap (--schedules-max {cap}): not every schedule within {preemptions} preemptions ran",
            scenario.name
        ));
    }
    0
}
