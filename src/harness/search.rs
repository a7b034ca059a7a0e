//! Searching a failing seed's schedules: exhaustive exploration within a bound, and
//! shrinking a failure to the fewest deviations from FIFO, with the runs it reports.

use super::failure::record_regression;
use super::run::{run_seed, SeedRun};
use super::{Builder, SeedFailure, Seeds, ShrunkRun, Sim};
use crate::engine::report::Failure;
use crate::engine::sched::Choices;
use crate::engine::trace::TraceMode;
use crate::explore::{explore, Replayed};

impl Builder {
    /// Run every schedule of each seed within `preemptions` deviations from FIFO.
    pub(super) fn explore_seeds(
        &self,
        seeds: &[u64],
        preemptions: u32,
        body: &dyn Fn(&Sim),
        name: &str,
    ) -> Result<u64, Box<SeedFailure>> {
        let (mut schedules, mut complete) = (0, true);
        for &seed in seeds {
            let left = self.schedules_max.saturating_sub(schedules);
            if left == 0 {
                complete = false;
                break;
            }
            let found = explore(preemptions, left, true, |prefix| {
                self.replay(seed, prefix, body, None)
            });
            schedules += found.schedules;
            complete &= found.complete;
            if let Some(choices) = found.failing {
                let run = run_seed(
                    self.config(seed, TraceMode::Hash)
                        .choices(Choices(choices.clone())),
                    body,
                    self.stress.clone(),
                );
                if let Some(failure) = run.report.outcome.clone().err() {
                    return Err(self.fail(seed, failure, &run, body, name, Some(choices)));
                }
            }
        }
        if !self.quiet {
            if complete {
                eprintln!(
                    "roof: {name}: no failure in all {schedules} schedules within {preemptions} preemptions ({} seeds)",
                    seeds.len()
                );
            } else {
                eprintln!(
                    "roof: {name}: no failure in {schedules} schedules, but stopped at the cap of {} (ROOF_SCHEDULES_MAX): not every schedule within {preemptions} preemptions ran",
                    self.schedules_max
                );
            }
        }
        Ok(schedules as u64)
    }

    /// Replay `prefix` on `seed`: whether it failed (the way `kind` names, or at all), and
    /// the choices it made with their options.
    pub(super) fn replay(
        &self,
        seed: u64,
        prefix: &[u32],
        body: &dyn Fn(&Sim),
        kind: Option<&str>,
    ) -> Replayed {
        let config = self
            .config(seed, TraceMode::Off)
            .choices(Choices(prefix.to_vec()))
            .record_choices(true);
        Replayed::of(run_seed(config, body, self.stress.clone()).report, kind)
    }

    /// Report a failing seed: record it, shrink it (or take the schedule an exploration
    /// found, minimal already), print both replays and return it.
    pub(super) fn fail(
        &self,
        seed: u64,
        failure: Failure,
        run: &SeedRun,
        body: &dyn Fn(&Sim),
        name: &str,
        explored: Option<Vec<u32>>,
    ) -> Box<SeedFailure> {
        if let (Some(dir), false) = (&self.regressions, matches!(self.seeds, Seeds::One(_))) {
            record_regression(dir, name, seed, &self.stamp());
        }
        let stressed = self.stress.has_faults() || !run.fired.is_empty();
        let shrunk = match explored {
            Some(choices) => Some(self.shrunk_run(seed, body, name, None, choices, true, 0)),
            None if self.shrink
                && self.choices.is_none()
                && !matches!(failure, Failure::Nondeterminism { .. }) =>
            {
                Some(self.shrink_failure(seed, body, name, failure.kind(), run))
            }
            None => None,
        };
        let replay_choices = match &shrunk {
            // An exploration's failure is its schedule: the plain replay line needs it too.
            Some(shrunk) if shrunk.original.is_none() => Some(shrunk.choices.clone()),
            _ => self.choices.clone(),
        };
        let mut failure = SeedFailure {
            seed,
            failure,
            settings: self.describe(),
            faults: stressed.then(|| (run.plan.to_string(), run.fired.clone())),
            replay: self.replay_line(seed, name, replay_choices.as_deref()),
            trace: None,
            shrunk,
            timelines: Vec::new(),
            timeline_lines: Vec::new(),
        };
        if let Some(dir) = &self.timeline {
            let nondeterministic = matches!(failure.failure, Failure::Nondeterminism { .. });
            let pages = self.write_timelines(
                dir,
                seed,
                body,
                name,
                failure.shrunk.as_ref(),
                nondeterministic,
            );
            for page in pages {
                match page {
                    Ok(path) => {
                        failure
                            .timeline_lines
                            .push(format!("timeline: {}", path.display()));
                        failure.timelines.push(path);
                    }
                    Err(why) => failure.timeline_lines.push(format!("timeline: {why}")),
                }
            }
        }
        if self.print_trace {
            let run = run_seed(
                self.seed_config(seed, TraceMode::Record, body),
                body,
                self.stress.clone(),
            );
            failure.trace = run.report.trace.map(|trace| trace.render());
        }
        eprintln!("{failure}");
        Box::new(failure)
    }

    /// Shrink a failing seed: with faults, first the fault plan (the fewest faults that still
    /// fail the same way, by delta debugging, each candidate replayed under the seed's own
    /// policy), then the choices under the faults kept.
    fn shrink_failure(
        &self,
        seed: u64,
        body: &dyn Fn(&Sim),
        name: &str,
        kind: &str,
        run: &SeedRun,
    ) -> ShrunkRun {
        let stressed = self.stress.faults.is_some() || self.stress.plan.is_some();
        if !stressed || self.stress.keep.is_some() || run.plan.faults.is_empty() {
            return self.shrink_seed(seed, body, name, kind);
        }
        let all: Vec<usize> = (0..run.plan.faults.len()).collect();
        let fails = |kept: &[usize]| {
            let narrowed = self.clone().keep_faults(kept.to_vec());
            let report = run_seed(
                narrowed.seed_config(seed, TraceMode::Off, body),
                body,
                narrowed.stress.clone(),
            )
            .report;
            report
                .outcome
                .as_ref()
                .is_err_and(|failure| failure.kind() == kind)
        };
        // The faults that fired first: one that never fired is seldom what matters.
        let fired: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&index| {
                let fault = run.plan.faults[index].to_string();
                run.fired.iter().any(|line| line.ends_with(&fault))
            })
            .collect();
        let budget = (self.shrink_budget / 2).max(1);
        let start = if fired.len() < all.len() && fails(&fired) {
            fired
        } else {
            all.clone()
        };
        let kept = crate::shrink::minimal_subset(&start, fails, budget);
        let narrowed = self.clone().keep_faults(kept.clone());
        let mut shrunk = narrowed.shrink_seed(seed, body, name, kind);
        shrunk.faults = Some((
            kept.iter()
                .map(|&index| (index, run.plan.faults[index].to_string()))
                .collect(),
            all.len(),
        ));
        shrunk
    }

    /// Shrink the failing `seed`'s choices toward FIFO, keeping the failure's kind.
    fn shrink_seed(&self, seed: u64, body: &dyn Fn(&Sim), name: &str, kind: &str) -> ShrunkRun {
        let recorded = run_seed(
            self.seed_config(seed, TraceMode::Off, body)
                .record_choices(true),
            body,
            self.stress.clone(),
        )
        .report;
        let choices = recorded.choices.unwrap_or_default();
        let shrunk = crate::shrink::shrink(
            &choices,
            |prefix| self.replay(seed, prefix, body, Some(kind)),
            self.shrink_budget,
        );
        self.shrunk_run(
            seed,
            body,
            name,
            Some(choices),
            shrunk.choices,
            shrunk.proven,
            shrunk.replays,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn shrunk_run(
        &self,
        seed: u64,
        body: &dyn Fn(&Sim),
        name: &str,
        original: Option<Vec<u32>>,
        choices: Vec<u32>,
        proven: bool,
        replays: usize,
    ) -> ShrunkRun {
        let report = run_seed(
            self.config(seed, TraceMode::Off)
                .choices(Choices(choices.clone())),
            body,
            self.stress.clone(),
        )
        .report;
        ShrunkRun {
            token: crate::shrink::Token::encode(&choices),
            deviations: crate::shrink::deviations(&choices),
            original: original
                .map(|original| (original.len(), crate::shrink::deviations(&original))),
            headline: report.outcome.err().map(|failure| failure.headline()),
            faults: None,
            replay: self.replay_line(seed, name, Some(&choices)),
            proven,
            replays,
            choices,
        }
    }
}
