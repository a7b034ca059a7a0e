//! How one run is set up: [`Config`] and its defaults.

use std::time::Duration;

use crate::engine::sched::{Choices, Policy};
use crate::engine::trace::TraceMode;

/// The default virtual-time limit: one simulated day.
pub const TIME_MAX_DEFAULT: Duration = Duration::from_secs(24 * 60 * 60);

/// The default step limit: ten million task polls.
pub const STEPS_MAX_DEFAULT: u64 = 10_000_000;

/// How one run is set up. Every field is printed with a failing seed, so a run can be rebuilt
/// from its report.
///
/// ```
/// use roof::{Config, Policy, TraceMode};
/// use std::time::Duration;
/// let config = Config::new(42)
///     .policy(Policy::Fifo)
///     .time_max(Duration::from_secs(60))
///     .steps_max(1_000)
///     .trace(TraceMode::Record);
/// assert_eq!(config.seed, 42);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The seed every random decision derives from.
    pub seed: u64,
    /// The scheduling policy (default [`Policy::Random`]).
    pub policy: Policy,
    /// The virtual-time limit (default [`TIME_MAX_DEFAULT`], one day).
    pub time_max: Duration,
    /// The step limit (default [`STEPS_MAX_DEFAULT`]).
    pub steps_max: u64,
    /// How much trace to keep (default [`TraceMode::Hash`]).
    pub trace: TraceMode,
    /// A recorded choice sequence to replay instead of asking the policy.
    pub choices: Option<Choices>,
    /// Whether to record the scheduler's choices in the report.
    pub record_choices: bool,
    /// Whether [`println!`](crate::println) also writes to stdout (default true); the text is
    /// captured in the report either way.
    pub echo: bool,
    /// Whether the engine's own fault points fire (default false): now and then a disk
    /// operation fails with EIO or runs slow, and `accept`, `connect` or `bind` stalls, each
    /// drawn from the seed's buggify stream like [`buggify!`](crate::buggify), in the trace
    /// and in [`Report::injected`](crate::Report::injected).
    pub buggify: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config::new(0)
    }
}

impl Config {
    /// The defaults for `seed`.
    pub fn new(seed: u64) -> Config {
        Config {
            seed,
            policy: Policy::Random,
            time_max: TIME_MAX_DEFAULT,
            steps_max: STEPS_MAX_DEFAULT,
            trace: TraceMode::Hash,
            choices: None,
            record_choices: false,
            echo: true,
            buggify: false,
        }
    }

    /// Set the scheduling policy.
    pub fn policy(mut self, policy: Policy) -> Config {
        self.policy = policy;
        self
    }

    /// Set the virtual-time limit.
    pub fn time_max(mut self, limit: Duration) -> Config {
        self.time_max = limit;
        self
    }

    /// Set the step limit.
    pub fn steps_max(mut self, limit: u64) -> Config {
        self.steps_max = limit;
        self
    }

    /// Set the trace mode.
    pub fn trace(mut self, mode: TraceMode) -> Config {
        self.trace = mode;
        self
    }

    /// Replay a recorded choice sequence (past its end the run continues in FIFO order).
    pub fn choices(mut self, choices: Choices) -> Config {
        self.choices = Some(choices);
        self
    }

    /// Record the scheduler's choices into the report.
    pub fn record_choices(mut self, record: bool) -> Config {
        self.record_choices = record;
        self
    }

    /// Let the engine's own fault points fire (see [`Config::buggify`](Config#structfield.buggify)).
    ///
    /// ```
    /// let lp = roof::EventLoop::with_config(roof::Config::new(3).buggify(true).echo(false));
    /// let failed = lp.run_until_complete(async {
    ///     let mut failed = 0;
    ///     for _ in 0..400 {
    ///         if roof::fs::write("/f", b"x").await.is_err() { failed += 1 }
    ///     }
    ///     failed
    /// }).unwrap();
    /// assert_eq!(failed, lp.report().injected.iter().filter(|line| line.contains("EIO")).count());
    /// ```
    pub fn buggify(mut self, on: bool) -> Config {
        self.buggify = on;
        self
    }

    /// Whether printed lines also go to stdout.
    pub fn echo(mut self, echo: bool) -> Config {
        self.echo = echo;
        self
    }
}
