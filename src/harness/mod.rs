//! Running seeds from tests: [`check`], its [`Builder`], and the [`Sim`] a test body fills in.
//!
//! ```
//! use roof::io::{AsyncReadExt, AsyncWriteExt};
//! use roof::net::{TcpListener, TcpStream};
//!
//! roof::harness::Builder::new().seeds(0..8).run(|sim| {
//!     sim.host("server", || async {
//!         let listener = TcpListener::bind("0.0.0.0:7").await.unwrap();
//!         loop {
//!             let (mut stream, _) = listener.accept().await.unwrap();
//!             roof::spawn(async move {
//!                 let mut buf = [0u8; 4];
//!                 stream.read_exact(&mut buf).await.unwrap();
//!                 stream.write_all(&buf).await.unwrap();
//!             })
//!             .detach();
//!         }
//!     });
//!     sim.client("nc", async {
//!         let mut stream = TcpStream::connect("server:7").await.map_err(|e| e.to_string())?;
//!         stream.write_all(b"ping").await.map_err(|e| e.to_string())?;
//!         let mut reply = [0u8; 4];
//!         stream.read_exact(&mut reply).await.map_err(|e| e.to_string())?;
//!         if &reply == b"ping" { Ok(()) } else { Err(format!("got {reply:?}")) }
//!     });
//! });
//! ```
//!
//! # Which seeds run
//! [`check`] reads the environment (a malformed value is an error naming the variable):
//!
//! | variable | meaning |
//! |---|---|
//! | `ROOF_SEED=N` | run exactly seed N (replay) |
//! | `ROOF_SEEDS=N` or `A..B` | how many seeds (from 0) or which range; default [`SEEDS_DEFAULT`] |
//! | `ROOF_POLICY=random\|fifo\|pct:D\|exhaustive:P` | the scheduling policy (wins over [`Builder::policy`]); `exhaustive:P` runs every schedule with at most P deviations from FIFO |
//! | `ROOF_CHOICES=<token>` | replay exactly these scheduler choices (a shrunk replay line sets it) |
//! | `ROOF_FAULTS=I,J,...` | keep only these faults of the seed's plan, by index (a shrunk replay line sets it; `-` for none) |
//! | `ROOF_FAULT_KINDS=crash,pause,...` | draw fault plans from these kinds only ([`Builder::fault_kinds`]) |
//! | `ROOF_BUGGIFY=1` | let the engine's own fault points fire ([`Builder::buggify`]) |
//! | `ROOF_SHRINK=0` | do not shrink a failing seed (on by default) |
//! | `ROOF_SHRINK_BUDGET=N` | replays the shrinker may make; default [`SHRINK_BUDGET_DEFAULT`] |
//! | `ROOF_SCHEDULES_MAX=N` | schedules `exhaustive:P` runs at most; default [`SCHEDULES_MAX_DEFAULT`] |
//! | `ROOF_BUILD=<stamp>` | the build and settings a replay line was printed by: a warning if this run's differ |
//! | `ROOF_CHECK_DETERMINISM=1` | run each seed twice and compare the traces event by event |
//! | `ROOF_TRACE=1` | print the trace of a failing seed |
//! | `ROOF_TIMELINE=DIR` | write timeline pages of a failing seed (and of its shrunk run) into DIR |
//!
//! Seeds that failed before run first: [`check`] appends each failure to
//! `roof-regressions/<test name>.seeds` under the package's directory (`CARGO_MANIFEST_DIR`),
//! one seed per line with the build stamp that found it (`#` starts a comment). Commit that
//! folder, as proptest's regression files are, so every machine replays the seeds that once
//! failed; a seed recorded by another build or other settings runs too, with a warning that
//! it may not fail the same way.
//!
//! # A failure
//! A failing seed is shrunk: its scheduler choices (task picks, preemption points, select
//! branches) are brought down to a schedule with the fewest deviations from FIFO that still
//! fails the same way, within [`SHRINK_BUDGET_DEFAULT`] replays; when every schedule with
//! fewer deviations was replayed and passed, the result is *proven* minimal. It prints what
//! is needed to understand and replay both runs, then fails the test:
//!
//! ```text
//! roof: seed 8137 failed at 2.000341000s (task "nc" on host nc): connection reset by peer
//! roof: roof 0.1.0+5e2a9c01 (build stamp), policy random, time_max 86400s, steps_max 10000000, faults off, liveness off, check_determinism false
//! replay: ROOF_SEED=8137 ROOF_BUILD=0.1.0+5e2a9c01 cargo test --test main -- yell_echo_survives_faults --exact
//! roof: shrunk from 212 choices (37 deviations from FIFO) to 9 choices (1 deviation), proven minimal, in 41 replays
//! roof: shrunk run: failed at 1.000210000s (task "nc" on host nc): connection reset by peer
//! replay (shrunk): ROOF_SEED=8137 ROOF_CHOICES=8z,1 ROOF_BUILD=0.1.0+5e2a9c01 cargo test --test main -- yell_echo_survives_faults --exact
//! ```

use std::env;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::report::Failure;
use crate::engine::sched::{Choices, Policy};
use crate::engine::trace::TraceMode;
use crate::explore::SCHEDULES_MAX_DEFAULT;
use crate::kernel::Config;

mod env_vars;
mod failure;
mod pictures;
mod run;
mod search;
mod stress;
mod sweep;

pub use env_vars::{seed_range, EnvError, FAULT_INDICES_MAX};
pub use failure::{read_regressions, SeedFailure, ShrunkRun};
use failure::{record_regression, regressions_with_stamps, replay_line};
pub use run::Sim;
use run::{run_seed, SeedRun};
use stress::Stress;
pub use sweep::{Sweep, SweepFailure};

/// Seeds run by [`check`] when `ROOF_SEEDS` is not set: enough to catch the easy bugs, few
/// enough to keep `cargo test` quick.
pub const SEEDS_DEFAULT: u64 = 32;

/// Replays the shrinker may make for a failing seed, unless `ROOF_SHRINK_BUDGET` says
/// otherwise: for the small systems a test runs, a few seconds at most.
pub const SHRINK_BUDGET_DEFAULT: usize = 2_000;

/// The most `ROOF_SHRINK_BUDGET` and `ROOF_SCHEDULES_MAX` take.
pub const REPLAYS_MAX: usize = 10_000_000;

/// Which seeds to run.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seeds {
    One(u64),
    Range(Range<u64>),
}

/// How [`check`] runs; every setting defaults from the environment in [`Builder::from_env`].
///
/// ```
/// use roof::harness::Builder;
/// use std::time::Duration;
/// let ran = Builder::new()
///     .seeds(0..4)
///     .policy(roof::Policy::pct(2))
///     .time_max(Duration::from_secs(60))
///     .check_determinism(true)
///     .try_run(|sim| {
///         sim.client("c", async {
///             roof::sleep(Duration::from_secs(1)).await;
///             Ok::<(), String>(())
///         });
///     })
///     .unwrap();
/// assert_eq!(ran, 4, "seeds run");
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    seeds: Seeds,
    /// `ROOF_SEED`, when [`from_env`](Builder::from_env) found it: it wins over `seed` and
    /// `seeds`, so a printed replay line always replays.
    replay_seed: Option<u64>,
    policy: Policy,
    /// `ROOF_POLICY` set it: it wins over [`policy`](Builder::policy), and replay lines name it.
    policy_from_env: bool,
    /// `ROOF_CHOICES`: replay exactly these choices.
    choices: Option<Vec<u32>>,
    shrink: bool,
    shrink_budget: usize,
    schedules_max: usize,
    /// `ROOF_BUILD`: the stamp of the build that printed the replay line being run.
    expected_build: Option<String>,
    quiet: bool,
    time_max: Duration,
    steps_max: u64,
    check_determinism: bool,
    print_trace: bool,
    /// `ROOF_TIMELINE`: where a failing seed's timeline pages are written.
    timeline: Option<PathBuf>,
    /// Where failing seeds are recorded and read back (`None`: nowhere).
    regressions: Option<PathBuf>,
    name: Option<String>,
    stress: Stress,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Seeds `0..SEEDS_DEFAULT`, the random policy, default limits, shrinking on; no
    /// environment read.
    pub fn new() -> Builder {
        let defaults = Config::new(0);
        Builder {
            seeds: Seeds::Range(0..SEEDS_DEFAULT),
            replay_seed: None,
            policy: Policy::Random,
            policy_from_env: false,
            choices: None,
            shrink: true,
            shrink_budget: SHRINK_BUDGET_DEFAULT,
            schedules_max: SCHEDULES_MAX_DEFAULT,
            expected_build: None,
            quiet: false,
            time_max: defaults.time_max,
            steps_max: defaults.steps_max,
            check_determinism: false,
            print_trace: false,
            timeline: None,
            regressions: None,
            name: None,
            stress: Stress::default(),
        }
    }

    /// The defaults, then the `ROOF_*` variables (see the module documentation), with
    /// failing seeds recorded under `$CARGO_MANIFEST_DIR/roof-regressions`.
    pub fn from_env() -> Result<Builder, EnvError> {
        let mut builder = Builder::from_vars(|variable| env::var(variable).ok())?;
        builder.regressions = env::var_os("CARGO_MANIFEST_DIR")
            .map(|root| PathBuf::from(root).join("roof-regressions"));
        Ok(builder)
    }

    /// The defaults, then the `ROOF_*` settings that `get` returns (the environment, in
    /// [`from_env`](Builder::from_env)).
    ///
    /// ```
    /// use roof::harness::Builder;
    /// let env = |variable: &str| (variable == "ROOF_POLICY").then(|| "pct:0".to_string());
    /// let error = Builder::from_vars(env).unwrap_err();
    /// assert_eq!(error.variable, "ROOF_POLICY");
    /// ```
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Builder, EnvError> {
        let mut builder = Builder::new();
        if let Some(value) = get("ROOF_SEEDS") {
            let range = seed_range(&value).map_err(|_| EnvError {
                variable: "ROOF_SEEDS",
                value,
                expected: "a count N (at least 1) or a non-empty range A..B",
            })?;
            builder.seeds = Seeds::Range(range);
        }
        if let Some(value) = get("ROOF_SEED") {
            let seed = value.trim().parse().map_err(|_| EnvError {
                variable: "ROOF_SEED",
                value: value.clone(),
                expected: "a whole number (the seed to replay)",
            })?;
            builder.seeds = Seeds::One(seed);
            builder.replay_seed = Some(seed);
        }
        if let Some(policy) = env_vars::policy(&get)? {
            builder.policy = policy;
            builder.policy_from_env = true;
        }
        builder.choices = env_vars::choices(&get)?;
        builder.stress.keep = env_vars::faults(&get)?;
        builder.stress.buggify = env_vars::flag(&get, "ROOF_BUGGIFY")?;
        builder.stress.kinds = env_vars::fault_kinds(&get)?;
        builder.shrink = get("ROOF_SHRINK").is_none() || env_vars::flag(&get, "ROOF_SHRINK")?;
        let replays = "a whole number of replays from 1 to 10000000";
        if let Some(budget) = env_vars::number(&get, "ROOF_SHRINK_BUDGET", 1, REPLAYS_MAX, replays)?
        {
            builder.shrink_budget = budget;
        }
        if let Some(cap) = env_vars::number(&get, "ROOF_SCHEDULES_MAX", 1, REPLAYS_MAX, replays)? {
            builder.schedules_max = cap;
        }
        builder.expected_build = get("ROOF_BUILD").map(|stamp| stamp.trim().to_string());
        builder.check_determinism = env_vars::flag(&get, "ROOF_CHECK_DETERMINISM")?;
        builder.print_trace = env_vars::flag(&get, "ROOF_TRACE")?;
        if let Some(dir) = env_vars::directory(&get, "ROOF_TIMELINE")? {
            builder.timeline = Some(dir);
        }
        Ok(builder)
    }

    /// Run exactly `seed`, unless `ROOF_SEED` names one (in a builder made by
    /// [`from_env`](Builder::from_env)): an explicit `ROOF_SEED` always wins, so the printed
    /// replay line replays whatever the test asks for.
    pub fn seed(mut self, seed: u64) -> Builder {
        if self.replay_seed.is_none() {
            self.seeds = Seeds::One(seed);
        }
        self
    }

    /// Run the seeds in `range`, unless `ROOF_SEED` names one (see [`seed`](Builder::seed)).
    pub fn seeds(mut self, range: Range<u64>) -> Builder {
        if self.replay_seed.is_none() {
            self.seeds = Seeds::Range(range);
        }
        self
    }

    /// The scheduling policy, unless `ROOF_POLICY` names one (the environment wins, so a
    /// policy can be tried on a test without editing it). With
    /// [`Policy::exhaustive(P)`](Policy::exhaustive), every schedule of each seed with at
    /// most P deviations from FIFO runs, fewest first, up to
    /// [`schedules_max`](Builder::schedules_max).
    pub fn policy(mut self, policy: Policy) -> Builder {
        if !self.policy_from_env {
            self.policy = policy;
        }
        self
    }

    /// Keep only these faults of each seed's plan, by index in the plan as a failure prints
    /// it (what `ROOF_FAULTS` does; the fault-plan shrinker prints the indices that matter).
    pub fn keep_faults(mut self, indices: Vec<usize>) -> Builder {
        self.stress.keep = Some(indices);
        self
    }

    /// Replay exactly these scheduler choices on every seed run (what `ROOF_CHOICES` does).
    pub fn choices(mut self, choices: Vec<u32>) -> Builder {
        self.choices = Some(choices);
        self
    }

    /// Shrink a failing seed (on by default; `ROOF_SHRINK=0` turns it off).
    pub fn shrink(mut self, shrink: bool) -> Builder {
        self.shrink = shrink;
        self
    }

    /// The replays the shrinker may make (default [`SHRINK_BUDGET_DEFAULT`], at most
    /// [`REPLAYS_MAX`]).
    pub fn shrink_budget(mut self, replays: usize) -> Builder {
        self.shrink_budget = replays.clamp(1, REPLAYS_MAX);
        self
    }

    /// The most schedules an exhaustive exploration runs (default
    /// [`SCHEDULES_MAX_DEFAULT`], at most [`REPLAYS_MAX`]); reaching it is said, not failed.
    pub fn schedules_max(mut self, schedules: usize) -> Builder {
        self.schedules_max = schedules.clamp(1, REPLAYS_MAX);
        self
    }

    /// Print nothing but failures (no progress bar in [`sweep`](Builder::sweep), no summary
    /// of an exhaustive exploration).
    pub fn quiet(mut self, quiet: bool) -> Builder {
        self.quiet = quiet;
        self
    }

    /// The virtual-time limit of each run.
    pub fn time_max(mut self, limit: Duration) -> Builder {
        self.time_max = limit;
        self
    }

    /// The step limit of each run.
    pub fn steps_max(mut self, limit: u64) -> Builder {
        self.steps_max = limit;
        self
    }

    /// Run each seed twice and fail on the first event where the traces differ.
    ///
    /// What it catches: anything that makes two runs of one seed in one process differ, such
    /// as iterating a `HashMap`, reading the wall clock, or a `futures::select!` drawing from
    /// its own generator. What it cannot: a difference that happens not to show in those two
    /// runs (a select whose hidden draw agrees both times, about half the seeds for a two-way
    /// select), or one between processes or builds. Use [`roof::select`](crate::select) and
    /// [`roof::random`](crate::random) so that every draw comes from the seed.
    pub fn check_determinism(mut self, check: bool) -> Builder {
        self.check_determinism = check;
        self
    }

    /// Print the trace of a failing seed.
    pub fn print_trace(mut self, print: bool) -> Builder {
        self.print_trace = print;
        self
    }

    /// Write timeline pages of a failing seed into `dir` (as `ROOF_TIMELINE=DIR` does): the
    /// failing run as `<test>-seed-<N>.html` and, when it was shrunk, the shrunk replay as
    /// `…-shrunk.html` and both side by side as `…-diff.html`; a determinism failure
    /// (`check_determinism`) also writes two runs of the seed side by side as
    /// `…-determinism.html`. The report names them.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("roof-doc-timeline-{}", std::process::id()));
    /// let failure = roof::harness::Builder::new()
    ///     .seeds(0..1)
    ///     .name("doc_timeline")
    ///     .timeline(&dir)
    ///     .try_run(|sim| {
    ///         sim.client("c", async { Err::<(), _>("boom") });
    ///     })
    ///     .unwrap_err();
    /// assert!(dir.join("doc_timeline-seed-0.html").exists());
    /// assert!(failure.timelines[0].ends_with("doc_timeline-seed-0.html"));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn timeline(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.timeline = Some(dir.into());
        self
    }

    /// Record failing seeds in, and run first the seeds of, `<dir>/<test name>.seeds`.
    pub fn regressions_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.regressions = Some(dir.into());
        self
    }

    /// The name used for the regressions file and the replay line (default: the test's name,
    /// from the test thread).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    fn config(&self, seed: u64, trace: TraceMode) -> Config {
        let config = Config::new(seed)
            .policy(self.policy)
            .time_max(self.time_max)
            .steps_max(self.steps_max)
            .trace(trace)
            .echo(false);
        match &self.choices {
            Some(choices) => config.choices(Choices(choices.clone())),
            None => config,
        }
    }

    /// The configuration of `seed`'s run. PCT with the default horizon adapts it to the run:
    /// the change points are spread over as many steps as the seed's FIFO run takes (one
    /// probe run), so that the depth matters in a run of 50 steps as in one of 50,000. An
    /// explicit horizon (`pct:D@H`) is kept.
    fn seed_config(&self, seed: u64, trace: TraceMode, body: &dyn Fn(&Sim)) -> Config {
        let config = self.config(seed, trace);
        let Policy::Pct { depth, horizon } = self.policy else {
            return config;
        };
        if horizon != crate::engine::sched::PCT_HORIZON || self.choices.is_some() {
            return config;
        }
        let probe = run_seed(
            self.config(seed, TraceMode::Off).policy(Policy::Fifo),
            body,
            self.stress.clone(),
        );
        config.policy(Policy::Pct {
            depth,
            horizon: probe.report.steps.max(1),
        })
    }

    /// The seeds to run: those that failed before first, then the range (without repeats).
    fn seed_list(&self, name: &str) -> Vec<u64> {
        match &self.seeds {
            Seeds::One(seed) => vec![*seed],
            Seeds::Range(range) => {
                let earlier = self
                    .regressions
                    .as_ref()
                    .map(|dir| regressions_with_stamps(dir, name))
                    .unwrap_or_default();
                let stamp = self.stamp();
                let other: Vec<String> = earlier
                    .iter()
                    .filter(|(_, recorded)| recorded.as_deref().is_some_and(|r| r != stamp))
                    .map(|(seed, _)| seed.to_string())
                    .collect();
                if !other.is_empty() {
                    eprintln!(
                        "roof: warning: seeds {} of {name} were recorded by another roof build or other settings than {stamp}: they run first, but may not fail the same way",
                        other.join(", ")
                    );
                }
                let earlier: Vec<u64> = earlier.into_iter().map(|(seed, _)| seed).collect();
                let fresh = range.clone().filter(|seed| !earlier.contains(seed));
                earlier.iter().copied().chain(fresh).collect()
            }
        }
    }

    /// Run every seed; the first failure is shrunk, printed and returned (the rest are not
    /// run). Returns the runs made: the seeds, or under [`Policy::Exhaustive`] the schedules.
    pub fn try_run<F: Fn(&Sim)>(&self, body: F) -> Result<u64, Box<SeedFailure>> {
        self.warn_if_another_build();
        let name = self.test_name();
        let seeds = self.seed_list(&name);
        if let (Policy::Exhaustive { preemptions }, None) = (self.policy, &self.choices) {
            return self.explore_seeds(&seeds, preemptions, &body, &name);
        }
        let mut ran = 0;
        for seed in seeds {
            ran += 1;
            let (failure, run) = self.run_one(seed, &body);
            if let Some(failure) = failure {
                return Err(self.fail(seed, failure, &run, &body, &name, None));
            }
        }
        Ok(ran)
    }

    fn run_one(&self, seed: u64, body: &dyn Fn(&Sim)) -> (Option<Failure>, SeedRun) {
        if !self.check_determinism {
            let run = run_seed(
                self.seed_config(seed, TraceMode::Hash, body),
                body,
                self.stress.clone(),
            );
            return (run.report.outcome.clone().err(), run);
        }
        let first = run_seed(
            self.seed_config(seed, TraceMode::Record, body),
            body,
            self.stress.clone(),
        );
        let second = run_seed(
            self.seed_config(seed, TraceMode::Record, body),
            body,
            self.stress.clone(),
        );
        let (Some(left), Some(right)) = (&first.report.trace, &second.report.trace) else {
            unreachable!("record mode keeps the trace")
        };
        let failure = match left.first_divergence(right) {
            Some(divergence) => Some(Failure::Nondeterminism {
                index: divergence.index,
                first: divergence.left.map(|event| event.to_string()),
                second: divergence.right.map(|event| event.to_string()),
            }),
            None => first.report.outcome.clone().err(),
        };
        (failure, first)
    }

    /// Run every seed and panic (failing the test) on the first failure.
    pub fn run<F: Fn(&Sim)>(&self, body: F) {
        if let Err(failure) = self.try_run(body) {
            panic!("roof: seed {} failed: {}", failure.seed, failure.failure);
        }
    }

    /// The settings that shape a run, as text: what the build stamp's fingerprint covers.
    fn settings(&self) -> String {
        format!(
            "policy {}, time_max {:?}, steps_max {}, faults {}, liveness {}",
            self.policy,
            self.time_max,
            self.steps_max,
            self.stress.describe_faults(),
            match self.stress.liveness {
                Some(deadline) => format!("{deadline:?}"),
                None => "off".to_string(),
            },
        )
    }

    /// roof's version and a fingerprint of the settings that shape a run: a seed (and a
    /// choice token) is only valid with the build and settings that ran it.
    ///
    /// ```
    /// use roof::harness::Builder;
    /// let stamp = Builder::new().stamp();
    /// assert!(stamp.starts_with(&format!("{}+", env!("CARGO_PKG_VERSION"))), "{stamp}");
    /// assert_ne!(stamp, Builder::new().policy(roof::Policy::Fifo).stamp(), "the policy shapes a run");
    /// assert_eq!(stamp, Builder::new().seeds(5..9).stamp(), "which seeds run does not");
    /// ```
    pub fn stamp(&self) -> String {
        let fingerprint = crate::engine::trace::fnv1a_of(self.settings().as_bytes());
        format!(
            "{}+{:08x}",
            env!("CARGO_PKG_VERSION"),
            fingerprint & 0xffff_ffff
        )
    }

    /// The warning a replay prints when `ROOF_BUILD` names another build or other settings
    /// than this run's: a seed is only valid with the build and settings that ran it.
    ///
    /// ```
    /// use roof::harness::Builder;
    /// let env = |variable: &str| (variable == "ROOF_BUILD").then(|| "0.0.1+00000000".to_string());
    /// let replay = Builder::from_vars(env).unwrap();
    /// assert!(replay.build_warning().unwrap().contains("may not reproduce"));
    /// let stamp = Builder::new().stamp();
    /// let same = Builder::from_vars(|variable: &str| (variable == "ROOF_BUILD").then(|| stamp.clone())).unwrap();
    /// assert_eq!(same.build_warning(), None);
    /// ```
    pub fn build_warning(&self) -> Option<String> {
        let expected = self.expected_build.as_ref()?;
        let stamp = self.stamp();
        (*expected != stamp).then(|| {
            format!(
                "roof: warning: ROOF_BUILD={expected} but this run is {stamp} ({}): a seed is only valid with the roof build and settings that ran it, so it may not reproduce",
                self.settings()
            )
        })
    }

    fn warn_if_another_build(&self) {
        if let Some(warning) = self.build_warning() {
            eprintln!("{warning}");
        }
    }

    fn describe(&self) -> String {
        format!(
            "roof {} (build stamp), {}, check_determinism {}",
            self.stamp(),
            self.settings(),
            self.check_determinism
        )
    }

    /// The replay line of `seed` (with `choices`, a schedule's).
    fn replay_line(&self, seed: u64, name: &str, choices: Option<&[u32]>) -> String {
        let mut vars = format!("ROOF_SEED={seed}");
        if self.policy_from_env {
            vars.push_str(&format!(" ROOF_POLICY={}", self.policy));
        }
        if let Some(keep) = &self.stress.keep {
            let kept: Vec<String> = keep.iter().map(usize::to_string).collect();
            let kept = if kept.is_empty() {
                "-".to_string()
            } else {
                kept.join(",")
            };
            vars.push_str(&format!(" ROOF_FAULTS={kept}"));
        }
        if let Some(kinds) = &self.stress.kinds {
            let names: Vec<String> = kinds.iter().map(crate::fault::FaultKind::name).collect();
            vars.push_str(&format!(" ROOF_FAULT_KINDS={}", names.join(",")));
        }
        if self.stress.buggify {
            vars.push_str(" ROOF_BUGGIFY=1");
        }
        if let Some(choices) = choices {
            vars.push_str(&format!(
                " ROOF_CHOICES={}",
                crate::shrink::Token::encode(choices)
            ));
        }
        vars.push_str(&format!(" ROOF_BUILD={}", self.stamp()));
        replay_line(&vars, name)
    }

    fn test_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match std::thread::current().name() {
            Some(name) if name != "main" => name.to_string(),
            _ => "roof_check".to_string(),
        }
    }
}

/// Run the seeds the environment asks for (see the module documentation) and fail the test
/// on the first failing seed, printing it shrunk, with its replay lines.
///
/// Panics with a message naming the variable if a `ROOF_*` variable is malformed.
///
/// ```
/// let runs = std::cell::Cell::new(0);
/// roof::check(|sim| {
///     runs.set(runs.get() + 1);
///     sim.client("c", async {
///         let answer = roof::spawn(async { 6 * 7 }).await.map_err(|e| e.to_string())?;
///         assert_eq!(answer, 42); // a panic fails the seed, as an `Err` does
///         Ok::<(), String>(())
///     });
/// });
/// assert!(runs.get() >= 1, "32 seeds unless ROOF_SEED or ROOF_SEEDS says otherwise");
/// ```
pub fn check<F: Fn(&Sim)>(body: F) {
    match Builder::from_env() {
        Ok(builder) => builder.run(body),
        Err(error) => panic!("roof: {error}"),
    }
}
