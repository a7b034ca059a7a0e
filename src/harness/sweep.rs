//! [`Builder::sweep`]: every seed of the range, failing or not, and a summary.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Builder, Sim};

/// What [`Builder::sweep`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sweep {
    /// Seeds run.
    pub seeds_run: u64,
    /// The failing seeds, in the order they ran.
    pub failures: Vec<SweepFailure>,
}

/// One failing seed of a sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepFailure {
    /// The seed.
    pub seed: u64,
    /// The failure's one-line headline.
    pub headline: String,
    /// The line that replays it (and shrinks it, as any failing seed of `check` is).
    pub replay: String,
}

impl Sweep {
    /// Whether every seed passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl std::fmt::Display for Sweep {
    /// `32 seeds, 2 failed: 5, 17`, or `32 seeds, all passed`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.failures.is_empty() {
            return write!(f, "{} seeds, all passed", self.seeds_run);
        }
        let seeds: Vec<String> = self
            .failures
            .iter()
            .map(|failure| failure.seed.to_string())
            .collect();
        write!(
            f,
            "{} seeds, {} failed: {}",
            self.seeds_run,
            self.failures.len(),
            seeds.join(", ")
        )
    }
}

impl Builder {
    /// Run every seed of the range, not stopping at a failure, and return what failed (each
    /// failing seed recorded in the regressions file, not shrunk: replay one to shrink it).
    /// Under [`Policy::Exhaustive`](crate::Policy::Exhaustive) each seed's schedules within
    /// the bound are explored (up to [`schedules_max`](Builder::schedules_max) each), and a
    /// failing seed's replay line names its first failing schedule.
    /// On a terminal a progress bar shows the sweep, and each failure prints its headline and
    /// replay line; [`quiet`](Builder::quiet) prints nothing.
    ///
    /// ```
    /// let sweep = roof::harness::Builder::new().seeds(0..20).quiet(true).sweep(|sim| {
    ///     sim.client("c", async {
    ///         // A planted bug: one seed in four fails.
    ///         if roof::random::below(4) == 0 { Err("unlucky") } else { Ok(()) }
    ///     });
    /// });
    /// assert_eq!(sweep.seeds_run, 20);
    /// assert!(!sweep.passed() && sweep.failures.len() < 20);
    /// assert!(sweep.failures[0].headline.contains("unlucky"));
    /// assert!(sweep.failures[0].replay.contains(&format!("ROOF_SEED={}", sweep.failures[0].seed)));
    /// ```
    pub fn sweep<F: Fn(&Sim)>(&self, body: F) -> Sweep {
        self.warn_if_another_build();
        let name = self.test_name();
        let seeds = self.seed_list(&name);
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(
                Some(seeds.len() as u64),
                ProgressDrawTarget::stderr(),
            );
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {per_sec}, {msg}")
            {
                bar.set_style(style);
            }
            bar
        };
        let mut sweep = Sweep::default();
        for seed in seeds {
            sweep.seeds_run += 1;
            let (failure, choices) = match (self.policy, &self.choices) {
                // Every schedule of the seed within the bound: its first failing one.
                (crate::Policy::Exhaustive { preemptions }, None) => {
                    let found =
                        crate::explore::explore(preemptions, self.schedules_max, true, |prefix| {
                            self.replay(seed, prefix, &body, None)
                        });
                    match found.failing {
                        Some(choices) => {
                            let config = self
                                .config(seed, crate::TraceMode::Off)
                                .choices(crate::Choices(choices.clone()));
                            let run = super::run_seed(config, &body, self.stress.clone());
                            (run.report.outcome.err(), Some(choices))
                        }
                        None => (None, None),
                    }
                }
                _ => (self.run_one(seed, &body).0, self.choices.clone()),
            };
            if let Some(failure) = failure {
                if let Some(dir) = &self.regressions {
                    super::record_regression(dir, &name, seed, &self.stamp());
                }
                let failed = SweepFailure {
                    seed,
                    headline: failure.headline(),
                    replay: self.replay_line(seed, &name, choices.as_deref()),
                };
                if !self.quiet {
                    bar.suspend(|| {
                        eprintln!("roof: seed {seed} {}\n{}", failed.headline, failed.replay)
                    });
                }
                sweep.failures.push(failed);
                bar.set_message(format!("{} failed", sweep.failures.len()));
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        if !self.quiet {
            eprintln!("roof: {name}: {sweep}");
        }
        sweep
    }
}
