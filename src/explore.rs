//! Every schedule within a bound: the choice sequences with at most P deviations from FIFO.
//!
//! A run records its choices and how many options each had
//! ([`Report::arities`](crate::Report::arities)). Replaying a prefix of choices runs FIFO
//! past its end, so a schedule is its prefix up to its last deviation. [`explore`] starts from
//! FIFO (the empty prefix) and, from each schedule run, makes the schedules that deviate once
//! more at a later choice point, level by level: every schedule with `d` deviations is run
//! once, before any with `d + 1`. The network's draws come from their own streams, so they
//! stay those of the seed while the schedule changes.
//!
//! ```
//! use roof::explore::{explore, Replayed};
//! // A toy "program": three binary choice points; it fails when choices 1 and 2 both deviate.
//! let run = |prefix: &[u32]| {
//!     let mut choices = prefix.to_vec();
//!     choices.resize(3, 0);
//!     Replayed { failed: choices[1] == 1 && choices[2] == 1, choices, arities: vec![2; 3] }
//! };
//! let all = explore(3, 100, false, run);
//! assert_eq!((all.schedules, all.complete), (8, true), "2^3 schedules");
//! let first = explore(3, 100, true, run);
//! assert_eq!(first.failing, Some(vec![0, 1, 1]), "found with the fewest deviations");
//! assert!(explore(1, 100, true, run).failing.is_none(), "one deviation is not enough");
//! ```

use std::collections::VecDeque;

/// The schedules one exploration runs at most unless told otherwise (`ROOF_SCHEDULES_MAX`,
/// `roof sweep --schedules-max`).
pub const SCHEDULES_MAX_DEFAULT: usize = 10_000;

/// What the replay of one choice prefix did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Whether the run failed (the way the caller is looking for).
    pub failed: bool,
    /// The choices the run made (the prefix, then FIFO's zeros).
    pub choices: Vec<u32>,
    /// How many options each choice had.
    pub arities: Vec<u32>,
}

impl Replayed {
    /// What a replay's report says: whether it failed (the way `kind` names, such as
    /// `"panic"`, or at all with `None`), and its recorded choices with their options (run it
    /// with [`Config::record_choices`](crate::Config::record_choices)).
    pub fn of(report: crate::Report, kind: Option<&str>) -> Replayed {
        Replayed {
            failed: report
                .outcome
                .as_ref()
                .is_err_and(|failure| kind.is_none_or(|kind| failure.kind() == kind)),
            choices: report.choices.unwrap_or_default(),
            arities: report.arities.unwrap_or_default(),
        }
    }
}

/// What [`explore`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exploration {
    /// Schedules run.
    pub schedules: usize,
    /// Whether every schedule within the bound was run (false: the cap stopped it first).
    pub complete: bool,
    /// The first failing schedule's choices (trailing zeros dropped), if one failed; with
    /// `stop_at_first`, one with the fewest deviations.
    pub failing: Option<Vec<u32>>,
    /// Failing schedules seen.
    pub failures: usize,
}

/// Run every schedule with at most `preemptions` deviations from FIFO, at most `cap` of
/// them, fewest deviations first; stop at the first failure if `stop_at_first`.
pub fn explore(
    preemptions: u32,
    cap: usize,
    stop_at_first: bool,
    mut run: impl FnMut(&[u32]) -> Replayed,
) -> Exploration {
    let mut found = Exploration {
        schedules: 0,
        complete: true,
        failing: None,
        failures: 0,
    };
    // (prefix, its deviations): each prefix ends in a deviation (or is empty, FIFO).
    let mut queue: VecDeque<(Vec<u32>, u32)> = VecDeque::from([(Vec::new(), 0)]);
    while let Some((prefix, deviations)) = queue.pop_front() {
        if found.schedules >= cap {
            found.complete = false;
            break;
        }
        found.schedules += 1;
        let replayed = run(&prefix);
        if replayed.failed {
            found.failures += 1;
            if found.failing.is_none() {
                let mut choices = replayed.choices.clone();
                while choices.last() == Some(&0) {
                    choices.pop();
                }
                found.failing = Some(choices);
            }
            if stop_at_first {
                return found;
            }
        }
        if deviations >= preemptions {
            continue;
        }
        // One more deviation, at each choice point after the prefix's last one.
        let points = replayed.choices.len().min(replayed.arities.len());
        for at in prefix.len()..points {
            for value in 1..replayed.arities[at] {
                let mut child = replayed.choices[..at].to_vec();
                child.push(value);
                queue.push_back((child, deviations + 1));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy program whose choice points depend on earlier choices, as a real run's do.
    fn branching(prefix: &[u32]) -> Replayed {
        let mut choices = Vec::new();
        let mut arities = Vec::new();
        let mut points = 4;
        let mut at = 0;
        while at < points {
            let arity = if at % 2 == 0 { 3 } else { 2 };
            let choice = prefix.get(at).copied().unwrap_or(0).min(arity - 1);
            if choice == 2 {
                points += 1; // deviating here adds a choice point
            }
            choices.push(choice);
            arities.push(arity);
            at += 1;
        }
        Replayed {
            failed: false,
            choices,
            arities,
        }
    }

    #[test]
    fn each_schedule_runs_once_and_the_cap_is_reported() {
        let mut seen = std::collections::BTreeSet::new();
        let all = explore(8, 100_000, false, |prefix| {
            let replayed = branching(prefix);
            assert!(
                seen.insert(replayed.choices.clone()),
                "{prefix:?} ran twice"
            );
            replayed
        });
        assert!(all.complete);
        assert_eq!(all.schedules, seen.len());
        let capped = explore(8, 5, false, branching);
        assert_eq!((capped.schedules, capped.complete), (5, false));
        let none = explore(0, 100, false, branching);
        assert_eq!(none.schedules, 1, "no preemption: FIFO only");
    }
}
