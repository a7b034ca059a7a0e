//! `roof shrink`: a failing seed's scheduler choices, shrunk toward FIFO to the fewest
//! deviations (proven when every schedule with fewer was replayed); and `roof sweep
//! --exhaustive P`, every schedule within P deviations.

use roof::explore::{explore, Replayed};
use roof::shrink::{deviations, shrink as shrink_choices, Token};
use roof::{Choices, Config, Policy};

use super::out;
use crate::sim::{self, Scenario};

/// Replay `prefix` on `seed` (with `faults`): whether it failed (the way `kind` names, or
/// at all).
pub(super) fn replay(
    scenario: &Scenario,
    seed: u64,
    prefix: &[u32],
    kind: Option<&str>,
    faults: Option<&sim::Faults>,
) -> Replayed {
    let config = Config::new(seed)
        .echo(false)
        .choices(Choices(prefix.to_vec()))
        .record_choices(true);
    Replayed::of(sim::run_maybe_faulted(scenario, config, faults), kind)
}

/// With faults, the faults of the seed's plan that still fail the way `kind` names (ddmin
/// over the plan, each candidate replayed under the seed's own policy): the faults kept, and
/// the lines saying which they are, of how many.
fn shrink_faults(
    scenario: &Scenario,
    seed: u64,
    kind: &str,
    window: std::time::Duration,
    budget: usize,
) -> (sim::Faults, String) {
    let all = sim::Faults { window, keep: None };
    let drawn = sim::run_with_faults(scenario, Config::new(seed).echo(false), &all).drawn;
    let indices: Vec<usize> = (0..drawn.faults.len()).collect();
    let fails = |kept: &[usize]| {
        let faults = sim::Faults {
            window,
            keep: Some(kept.to_vec()),
        };
        sim::run_maybe_faulted(scenario, Config::new(seed).echo(false), Some(&faults))
            .outcome
            .is_err_and(|failure| failure.kind() == kind)
    };
    let kept = roof::shrink::minimal_subset(&indices, fails, budget);
    let listed: Vec<String> = kept
        .iter()
        .map(|&index| format!("#{index} {}", drawn.faults[index]))
        .collect();
    let line = format!(
        "faults that matter: {} of {}: {}",
        kept.len(),
        drawn.faults.len(),
        if listed.is_empty() {
            "none: it fails without faults".to_string()
        } else {
            listed.join("; ")
        }
    );
    (
        sim::Faults {
            window,
            keep: Some(kept),
        },
        line,
    )
}

pub(crate) fn shrink(
    scenario: &Scenario,
    seed: u64,
    budget: usize,
    faults: Option<std::time::Duration>,
) -> i32 {
    let all = faults.map(|window| sim::Faults { window, keep: None });
    let original = sim::run_maybe_faulted(
        scenario,
        Config::new(seed).echo(false).record_choices(true),
        all.as_ref(),
    );
    let Err(failure) = &original.outcome else {
        out::error_line(format_args!(
            "error: seed {seed} of {} passes: there is no failure to shrink",
            scenario.name
        ));
        return 1;
    };
    // The same kind of failure: a shrink must not wander off to a different bug.
    let kind = failure.kind();
    let (faults, fault_line) = match faults {
        Some(window) => {
            let (kept, line) = shrink_faults(scenario, seed, kind, window, budget / 2);
            (Some(kept), Some(line))
        }
        None => (None, None),
    };
    // The choices of the run with only the faults kept.
    let choices = sim::run_maybe_faulted(
        scenario,
        Config::new(seed).echo(false).record_choices(true),
        faults.as_ref(),
    )
    .choices
    .unwrap_or_default();
    let shrunk = shrink_choices(
        &choices,
        |prefix| replay(scenario, seed, prefix, Some(kind), faults.as_ref()),
        budget,
    );
    let token = Token::encode(&shrunk.choices);
    let replayed = sim::run_maybe_faulted(
        scenario,
        Config::new(seed)
            .echo(false)
            .choices(Choices(shrunk.choices.clone())),
        faults.as_ref(),
    );
    out::line(format_args!("failure: {failure}"));
    if let Some(line) = &fault_line {
        out::line(format_args!("{line}"));
    }
    let first = original.choices.clone().unwrap_or_default();
    out::line(format_args!(
        "original: {} choices, {} deviations from FIFO",
        first.len(),
        deviations(&first)
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
    let fault_flags = match &faults {
        Some(sim::Faults {
            window,
            keep: Some(keep),
        }) => {
            let kept: Vec<String> = keep.iter().map(usize::to_string).collect();
            let kept = if kept.is_empty() {
                "-".to_string()
            } else {
                kept.join(",")
            };
            format!(
                " --faults {} --keep-faults {kept}",
                humantime::format_duration(*window)
            )
        }
        _ => String::new(),
    };
    out::line(format_args!(
        "replay: roof run {} --seed {seed}{fault_flags} --choices {token}",
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
            replay(scenario, seed, prefix, None, None)
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
